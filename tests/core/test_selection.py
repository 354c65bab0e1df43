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


def _camera_file(path, src, *, size=None):
    """``src`` saved as a camera would, recording its capture date and the size it was written at (EXIF
    PixelXDimension, PixelYDimension); ``size``: resized first, the recorded size left as the camera's (an
    export that kept the EXIF as it was)."""
    from PIL import Image

    im = Image.open(src).convert("RGB")
    exif = Image.Exif()
    exif.get_ifd(0x8769).update({0x9003: "2021:06:05 07:41:12", 0xA002: im.width, 0xA003: im.height})
    (im.resize(size, Image.Resampling.LANCZOS) if size else im).save(path, quality=92, exif=exif)
    return im


def _kept_by_resolution(root, engine_factory):
    """Scan ``root`` at the default threshold: its result, and the names "Keep the highest resolution"
    marks."""
    engine = engine_factory()
    result = engine.scan([root]).result(engine.default_threshold())
    return result, {os.path.basename(p) for p in choose(result, "resolution")}


def test_keep_the_highest_resolution_keeps_the_original_over_exports_that_kept_its_exif(
    tmp_path, engine_factory
):
    # A new user's trial: exports that kept the camera's EXIF (a 1.5x upscale, a quality-100 re-save) were
    # kept by "Keep the highest resolution" (more pixels, more bytes) and the originals marked.
    from helpers import DEMO
    from PIL import Image

    root = tmp_path / "lib"
    (root / "Camera").mkdir(parents=True)
    (root / "Export").mkdir()
    lake = _camera_file(root / "Camera" / "IMG_2041.jpg", DEMO / "Camera" / "misty_lake.jpg")
    _camera_file(root / "Camera" / "IMG_2042.jpg", DEMO / "Camera" / "forest_path.jpg")
    _camera_file(
        root / "Export" / "IMG_2041_big.jpg",
        DEMO / "Camera" / "misty_lake.jpg",
        size=(lake.width * 3 // 2, lake.height * 3 // 2),
    )
    exif = Image.open(root / "Camera" / "IMG_2042.jpg").info["exif"]
    Image.open(root / "Camera" / "IMG_2042.jpg").save(
        root / "Export" / "IMG_2042_q100.jpg", quality=100, exif=exif
    )
    made = os.stat(root / "Camera" / "IMG_2041.jpg").st_mtime
    for name in ("IMG_2041_big.jpg", "IMG_2042_q100.jpg"):
        os.utime(root / "Export" / name, (made + 3600, made + 3600))  # exported an hour later
    result, marked = _kept_by_resolution(root, engine_factory)
    assert len(result.groups) == 2
    assert marked == {"IMG_2041_big.jpg", "IMG_2042_q100.jpg"}


def test_keep_the_highest_resolution_keeps_an_original_copied_again_after_its_small_export(
    tmp_path, engine_factory
):
    # The second trial: the original's file was written after a half-size export that kept its EXIF (restored
    # from a backup, copied again): the date rule then kept the small export and marked the original.
    from helpers import DEMO

    root = tmp_path / "lib"
    (root / "Camera").mkdir(parents=True)
    (root / "Shared").mkdir()
    im = _camera_file(root / "Camera" / "storm.jpg", DEMO / "Camera" / "storm_clouds.jpg")
    _camera_file(
        root / "Shared" / "storm_small.jpg",
        DEMO / "Camera" / "storm_clouds.jpg",
        size=(im.width // 2, im.height // 2),
    )
    t = os.stat(root / "Shared" / "storm_small.jpg").st_mtime
    os.utime(root / "Camera" / "storm.jpg", (t + 3600, t + 3600))
    result, marked = _kept_by_resolution(root, engine_factory)
    (group,) = result.groups
    assert os.path.basename(group.members[0].file.path) == "storm.jpg"  # the best copy too
    assert marked == {"storm_small.jpg"}


def test_of_unsure_twins_the_rule_keeps_the_one_ranked_first(tmp_path):
    """Two byte-identical files the check was unsure of, neither kept by the rule: one goes. Of equals (Keep
    the largest file: the same size), the one the best-copy rule ranks first stays (here the shorter path),
    not whichever the group lists first (a trial: the copy's name was kept and the original marked)."""
    import shutil

    from PIL import Image

    from core.results import Group, ImageRecord, Member, ModelInfo, ScanResult
    from core.selection import left_unsure, left_unsure_groups

    big = tmp_path / "big.png"
    Image.effect_noise((600, 400), 60).convert("RGB").save(big)
    original = tmp_path / "b.jpg"
    Image.effect_noise((300, 200), 40).convert("RGB").save(original, quality=90)
    copy = tmp_path / "a copy of b.jpg"
    shutil.copy(original, copy)

    def rec(p):
        st = p.stat()
        with Image.open(p) as im:
            return ImageRecord(str(p), st.st_size, st.st_mtime_ns, im.width, im.height, im.format)

    k, t_copy, t_orig = rec(big), rec(copy), rec(original)
    members = (
        Member(k, 1.0, unsure_with=(t_copy.path, t_orig.path)),
        Member(t_copy, 0.9, twin_of=t_copy.path, unsure_with=(k.path,)),
        Member(t_orig, 0.9, twin_of=t_copy.path, unsure_with=(k.path,)),
    )
    result = ScanResult((k, t_copy, t_orig), (Group(members, False, 0),), (), (), 0.8, ModelInfo("m", "0"))
    assert choose(result, "size") == {t_copy.path}
    assert left_unsure(result, "size") == 1 and left_unsure_groups(result, "size") == 1
