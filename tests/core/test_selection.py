"""Auto-select's "Keep the highest resolution" keeps the camera's capture, not an upscaled export of it."""

from __future__ import annotations

import os

from helpers import camera_jpeg

from core.selection import choose


def test_keep_the_highest_resolution_keeps_the_capture(tmp_path, engine_factory):
    root = tmp_path / "lib"
    root.mkdir()
    im = camera_jpeg(root / "IMG_2041.jpg")
    im.resize((im.width * 3 // 2, im.height * 3 // 2)).save(root / "IMG_2041_big.png")
    engine = engine_factory()
    result = engine.scan([root]).result(engine.bundle.duplicate_threshold)
    assert {os.path.basename(p) for p in choose(result, "resolution")} == {"IMG_2041_big.png"}


def test_keep_the_highest_resolution_keeps_the_original_over_exports_that_kept_its_exif(
    tmp_path, engine_factory
):
    # A new user's trial: exports made later that kept the camera's EXIF (a 1.5x upscale, a quality-100
    # re-save) were kept by "Keep the highest resolution" (more pixels, more bytes) and the originals marked.
    from helpers import DEMO
    from PIL import Image

    root = tmp_path / "lib"
    (root / "Camera").mkdir(parents=True)
    (root / "Export").mkdir()
    lake = camera_jpeg(root / "Camera" / "IMG_2041.jpg")
    camera_jpeg(root / "Camera" / "IMG_2042.jpg", DEMO / "Camera" / "forest_path.jpg")
    exif = {n: Image.open(root / "Camera" / f"IMG_{n}.jpg").info["exif"] for n in (2041, 2042)}
    lake.resize((lake.width * 3 // 2, lake.height * 3 // 2), Image.Resampling.LANCZOS).save(
        root / "Export" / "IMG_2041_big.jpg", quality=95, exif=exif[2041]
    )
    Image.open(root / "Camera" / "IMG_2042.jpg").save(
        root / "Export" / "IMG_2042_q100.jpg", quality=100, exif=exif[2042]
    )
    made = os.stat(root / "Camera" / "IMG_2041.jpg").st_mtime
    for name in ("IMG_2041_big.jpg", "IMG_2042_q100.jpg"):
        os.utime(root / "Export" / name, (made + 3600, made + 3600))  # exported an hour later
    engine = engine_factory()
    result = engine.scan([root]).result(engine.default_threshold())
    assert len(result.groups) == 2
    marked = {os.path.basename(p) for p in choose(result, "resolution")}
    assert marked == {"IMG_2041_big.jpg", "IMG_2042_q100.jpg"}
