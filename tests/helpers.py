"""Paths and small helpers shared by the test folders (importable as ``helpers``)."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
DEMO = REPO / "resources" / "demo"


def copy_demo(dest: Path, subset: list[str] | None = None) -> Path:
    """Copy the demo folder (or some of its files, paths relative to it) into ``dest``."""
    if subset is None:
        shutil.copytree(DEMO, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.md", "*.json"))
    else:
        for rel in subset:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(DEMO / rel, dest / rel)
    return dest


def as_other_user() -> list[str] | None:
    """A command prefix that runs a command as the unprivileged user 65534 ("nobody") when we are root, so
    permission faults bite ([] when we are not root; None when we are root and cannot switch)."""
    import os
    import subprocess
    import sys

    if os.geteuid() != 0:
        return []
    for prefix in (
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
        ["runuser", "-u", "nobody", "--"],
    ):
        if shutil.which(prefix[0]):
            try:
                probe = subprocess.run(
                    [*prefix, sys.executable, "-c", "import os; print(os.geteuid())"],
                    capture_output=True,
                    timeout=30,
                )
            except (OSError, subprocess.SubprocessError):
                continue
            if probe.stdout.strip() == b"65534":
                return prefix
    return None


def camera_jpeg(path, src: Path = DEMO / "Camera/misty_lake.jpg"):
    """Save ``src`` as a camera would: a JPEG with the capture date (EXIF DateTimeOriginal) and a make."""
    from PIL import Image

    im = Image.open(src).convert("RGB")
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2021:06:05 07:41:12"
    exif[0x010F] = "Canon"
    im.save(path, "JPEG", quality=92, exif=exif)
    return im


def camera_dng(
    path, src: Path = DEMO / "Camera/misty_lake.jpg", *, preview: float = 1.0, orientation: int = 1
) -> None:
    """Write ``src`` as a camera's DNG would hold it: a Bayer (RGGB) 12-bit sensor image in a SubIFD, and
    the camera's rendering as the preview in IFD0, ``preview`` times the sensor's size (0: none).

    A real DNG that LibRaw reads like any camera's; only the colour matrices are plain identities, so a
    developed (not previewed) image has the right shapes but not the right colours.
    """
    import numpy as np
    import tifffile
    from PIL import Image

    rgb = np.asarray(Image.open(src).convert("RGB"))
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    rgb = rgb[:h, :w]
    linear = (rgb.astype(np.float32) / 255) ** 2.2 * 4000 + 64
    cfa = np.empty((h, w), np.uint16)
    cfa[0::2, 0::2] = linear[0::2, 0::2, 0]
    cfa[0::2, 1::2] = linear[0::2, 1::2, 1]
    cfa[1::2, 0::2] = linear[1::2, 0::2, 1]
    cfa[1::2, 1::2] = linear[1::2, 1::2, 2]
    identity = (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1)
    ifd0 = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, "s", 0, "Lookalike Test Camera", True),  # UniqueCameraModel
        (50721, "2i", 9, identity, True),  # ColorMatrix1
        (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True),  # AsShotNeutral
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
        (271, "s", 0, "Lookalike", True),  # Make
        (272, "s", 0, "Test Camera", True),  # Model
        (274, "H", 1, orientation, True),  # Orientation
    ]
    sensor = [
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: RGGB
        (50714, "H", 1, 64, True),  # BlackLevel
        (50717, "H", 1, 4095, True),  # WhiteLevel
    ]
    if preview:
        size = (max(1, round(w * preview)), max(1, round(h * preview)))
        shown = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
    else:
        shown = np.zeros((8, 8, 3), np.uint8)  # DNG needs an IFD0 image; 8 px is no usable preview
    with tifffile.TiffWriter(path) as tw:
        tw.write(shown, photometric="rgb", subfiletype=1, subifds=1, extratags=ifd0, metadata=None)
        tw.write(cfa, photometric=32803, subfiletype=0, extratags=sensor, metadata=None)
