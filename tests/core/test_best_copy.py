"""The best copy is the original capture, never an upscaled or re-encoded derivative (a 1.5x-upscaled PNG
used to beat the camera JPEG it was made from)."""

from __future__ import annotations

import os

from helpers import DEMO, camera_jpeg
from PIL import Image

from core.grouping import rank_copies
from core.results import ImageRecord


def test_an_upscaled_png_never_beats_thecamera_jpeg(tmp_path, engine_factory):
    root = tmp_path / "lib"
    root.mkdir()
    im = camera_jpeg(root / "IMG_2041.jpg")
    big = im.resize((im.width * 3 // 2, im.height * 3 // 2), Image.Resampling.LANCZOS)
    big.save(root / "IMG_2041_upscaled.png")
    later = os.stat(root / "IMG_2041.jpg").st_mtime + 3600
    os.utime(root / "IMG_2041_upscaled.png", (later, later))
    engine = engine_factory()
    result = engine.scan([root]).result(engine.bundle.duplicate_threshold)
    (group,) = result.groups
    assert os.path.basename(group.members[0].file.path) == "IMG_2041.jpg"


def test_the_rule_in_order():
    def rec(name, w, size, mtime_s, taken=None):
        return ImageRecord(f"/p/{name}", size, int(mtime_s * 1e9), w, w * 3 // 4, "JPEG", taken)

    camera = rec("camera.jpg", 4000, 5_000_000, 1000, "2021-06-05 07:41:12")
    upscaled = rec("upscaled.png", 6000, 40_000_000, 5000)
    assert rank_copies([upscaled, camera]) == [1, 0]
    # With the capture date on both: the older file wins even against a larger, later export.
    export = rec("export.jpg", 6000, 9_000_000, 5000, "2021-06-05 07:41:12")
    assert rank_copies([export, camera]) == [1, 0]
    # Equally old (a copy that kept its date): higher resolution, then more bytes per pixel.
    small = rec("small.jpg", 2000, 900_000, 1010, "2021-06-05 07:41:12")
    recompressed = rec("q40.jpg", 4000, 1_500_000, 1020, "2021-06-05 07:41:12")
    assert rank_copies([small, recompressed, camera]) == [2, 1, 0]


def test_an_upscale_that_kept_the_cameras_exif_is_told_by_the_size_the_camera_recorded(
    tmp_path, engine_factory
):
    # Both files dated alike (copied without their dates) and both with the camera's EXIF: the export's
    # pixels outnumber what the camera recorded (EXIF PixelXDimension/PixelYDimension), so it was enlarged.
    from core.selection import choose

    root = tmp_path / "lib"
    root.mkdir()
    src = Image.open(DEMO / "Camera" / "misty_lake.jpg").convert("RGB")
    exif = Image.Exif()
    exif.get_ifd(0x8769).update({0x9003: "2021:06:05 07:41:12", 0xA002: src.width, 0xA003: src.height})
    src.save(root / "IMG_2041.jpg", quality=92, exif=exif)
    big = src.resize((src.width * 3 // 2, src.height * 3 // 2), Image.Resampling.LANCZOS)
    big.save(root / "IMG_2041_export.jpg", quality=95, exif=exif)  # an editor that kept the EXIF as it was
    t = os.stat(root / "IMG_2041.jpg").st_mtime
    os.utime(root / "IMG_2041_export.jpg", (t, t))
    engine = engine_factory()
    result = engine.scan([root]).result(engine.default_threshold())
    (group,) = result.groups
    assert os.path.basename(group.members[0].file.path) == "IMG_2041.jpg"
    assert {os.path.basename(p) for p in choose(result, "resolution")} == {"IMG_2041_export.jpg"}


def test_the_recorded_size_never_splits_copies_into_two_captures():
    from core.decode import same_capture

    camera = "time=2021:06:05 07:41:12;exposure=0.004;pixels=4032x3024"
    resized = "time=2021:06:05 07:41:12;exposure=0.004;pixels=1008x756"  # an editor that updated it
    assert same_capture(camera, resized) is True
    assert ImageRecord("/p/a.jpg", 1, 1, 6048, 4536, "JPEG", "2021-06-05 07:41:12", camera).upscaled
    assert not ImageRecord("/p/b.jpg", 1, 1, 4032, 3024, "JPEG", "2021-06-05 07:41:12", camera).upscaled
    assert not ImageRecord(
        "/p/c.jpg", 1, 1, 3024, 4032, "JPEG", "2021-06-05 07:41:12", camera
    ).upscaled  # turned
    assert not ImageRecord("/p/d.jpg", 1, 1, 1008, 756, "JPEG", "2021-06-05 07:41:12", resized).upscaled
    assert not ImageRecord("/p/e.jpg", 1, 1, 6048, 4536, "JPEG").upscaled  # nothing recorded
    # resized either way from what the camera recorded: not the camera's file
    assert ImageRecord("/p/f.jpg", 1, 1, 2016, 1512, "JPEG", "2021-06-05 07:41:12", camera).resized
    assert ImageRecord("/p/g.jpg", 1, 1, 6048, 4536, "JPEG", "2021-06-05 07:41:12", camera).resized
    assert not ImageRecord("/p/h.jpg", 1, 1, 3024, 4032, "JPEG", "2021-06-05 07:41:12", camera).resized
    assert not ImageRecord("/p/i.jpg", 1, 1, 2016, 1512, "JPEG").resized
    # a RAW file is measured at its sensor's size, and its EXIF may be its preview's: it is the capture itself
    raw = ImageRecord("/p/j.dng", 1, 1, 6048, 4536, "DNG", "2021-06-05 07:41:12", resized)
    assert raw.is_raw and not raw.resized and not raw.upscaled
