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
