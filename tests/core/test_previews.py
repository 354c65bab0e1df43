"""A first scan keeps the pictures it decoded for the pair check (core.previews): the check reads them instead
of decoding a candidate's file again, and decides exactly as from the files."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from helpers import DEMO
from PIL import Image

from core import confirm
from core.decode import PREVIEW_FROM_PIXELS, PREVIEW_SHARE, decode_for_model, read_full
from core.previews import SIDE, PreviewSpool
from core.results import ImageRecord, Pairs


def _jpeg(path, size, orientation: int = 1) -> str:
    im = Image.open(DEMO / "Camera" / "misty_lake.jpg").convert("RGB").resize(size)
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    im.save(path, "JPEG", quality=92, exif=exif)
    return str(path)


def test_the_preview_is_the_upright_picture_at_the_check_s_size(tmp_path):
    # stored sideways (EXIF 6: shown turned 90 degrees clockwise), 4000 x 3000 pixels
    path = _jpeg(tmp_path / "sideways.jpg", (4000, 3000), orientation=6)
    d = decode_for_model(path, 224, preview=SIDE)
    with Image.open(io.BytesIO(d.preview)) as im:
        kept = np.asarray(im.convert("RGB"), np.float32)
    assert kept.shape[:2] == (SIDE, 288)  # upright: tall, long side SIDE
    reread = np.asarray(read_full(path, SIDE), np.float32)  # what the check read before
    assert reread.shape == kept.shape
    assert np.abs(kept - reread).mean() < 4  # the same picture (another DCT scale, resized, JPEG)
    assert decode_for_model(path, 224).preview is None  # none unless asked
    # 3000 x 2000 decodes at 1/8 for the model: 375 px, kept as it is (the check scales it to SIDE)
    smaller = decode_for_model(_jpeg(tmp_path / "3k.jpg", (3000, 2000)), 224, preview=SIDE).preview
    with Image.open(io.BytesIO(smaller)) as im:
        assert im.size == (375, 250)


def test_no_preview_where_reading_the_file_again_is_cheap_or_the_model_s_decode_is_too_small(tmp_path):
    # under PREVIEW_FROM_PIXELS a file decodes again in a few ms: not worth a preview for every image
    small = _jpeg(tmp_path / "small.jpg", (1200, 900))
    assert 1200 * 900 < PREVIEW_FROM_PIXELS
    assert decode_for_model(small, 224, preview=SIDE).preview is None
    # 1800 x 1800: the model's draft decodes it at 1/8 (225 px), under PREVIEW_SHARE of the 384 px the check
    # wants; the check reads the file at its own size then
    square = _jpeg(tmp_path / "square.jpg", (1800, 1800))
    assert 225 < PREVIEW_SHARE * SIDE
    assert decode_for_model(square, 224, preview=SIDE).preview is None


def test_the_spool_gives_a_preview_back_only_for_the_file_as_it_was(tmp_path):
    folder = tmp_path / "cache"
    with PreviewSpool(folder) as spool:
        assert spool.put("/p/a.jpg", 10, 111, b"first")
        assert spool.put("/p/b.jpg", 20, 222, b"second")
        assert not spool.put("/p/c.jpg", 30, 333, None)  # nothing decoded: nothing kept
        assert os.listdir(folder) == []  # an anonymous file: nothing left behind, even by a crash
        assert spool.get("/p/a.jpg", 10, 111) == b"first"
        assert spool.get("/p/b.jpg", 20, 222) == b"second"
        assert spool.get("/p/a.jpg", 10, 112) is None  # modified since: read the file again
        assert spool.get("/p/a.jpg", 11, 111) is None
        assert spool.get("/p/c.jpg", 30, 333) is None
        assert len(spool) == 2 and spool.nbytes == len(b"firstsecond")
    assert spool.get("/p/a.jpg", 10, 111) is None  # closed


def test_the_spool_stops_at_its_size_limit(tmp_path):
    with PreviewSpool(tmp_path, max_bytes=10) as spool:
        assert spool.put("/p/a.jpg", 1, 1, b"123456")
        assert not spool.put("/p/b.jpg", 1, 1, b"123456")  # would pass 10 bytes: read from the file later
        assert spool.get("/p/b.jpg", 1, 1) is None and spool.get("/p/a.jpg", 1, 1) == b"123456"


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """Camera-size photos (4 MP, from the demo's) and edited copies of them: big and small, cropped, flipped,
    recoloured."""
    root = tmp_path_factory.mktemp("previews") / "lib"
    root.mkdir()
    rng = np.random.default_rng(0)
    for path in sorted((DEMO / "Camera").glob("*.jpg"))[:6]:
        im = Image.open(path).convert("RGB")
        im = im.resize((2400, round(2400 * im.height / im.width)), Image.Resampling.BICUBIC)
        px = np.asarray(im, np.int16) + rng.normal(0, 4, (im.height, im.width, 3)).astype(np.int16)
        im = Image.fromarray(np.clip(px, 0, 255).astype(np.uint8))
        im.save(root / path.name, quality=92)
        w, h = im.size
        im.crop((w // 8, h // 8, w - w // 8, h - h // 8)).save(root / f"{path.stem}_crop.jpg", quality=85)
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / f"{path.stem}_flip.jpg", quality=85)
        im.resize((w // 3, h // 3)).save(root / f"{path.stem}_small.jpg", quality=80)  # read from its file
    return root


def test_a_scan_checks_pairs_from_its_previews_with_the_same_verdicts(
    engine_factory, copies, tmp_path, monkeypatch
):
    with_previews = engine_factory(tmp_path / "a")
    lib = with_previews.scan([copies])
    st = lib.stats["verification"]
    # the camera-size photos and their crops and mirrors from previews, the small copies from their files
    assert st["features_extracted"] == 24 and st["from_previews"] == 18, st
    assert [p for p in os.listdir(tmp_path / "a") if "preview" in p] == []  # the spool is gone

    import core.engine

    monkeypatch.setattr(core.engine, "PREVIEW_SIDE", 0)  # previews off: every candidate read from its file
    without = engine_factory(tmp_path / "b").scan([copies])
    assert without.stats["verification"]["from_previews"] == 0
    assert without.stats["verification"]["features_extracted"] == st["features_extracted"]
    assert np.array_equal(lib.same, without.same)
    groups = lib.result(with_previews.default_threshold()).groups
    assert sorted(len(g.members) for g in groups) == [4] * 6  # each photo with its three copies


def test_an_unusable_preview_falls_back_to_the_file(tmp_path):
    a = _jpeg(tmp_path / "a.jpg", (2400, 1600))
    b = tmp_path / "b.jpg"
    Image.open(a).resize((1800, 1200)).save(b, quality=80)  # a smaller copy
    files = []
    for p in (a, str(b)):
        st = os.stat(p)
        files.append(ImageRecord(p, st.st_size, st.st_mtime_ns, 0, 0, "JPEG"))
    pairs = Pairs(np.array([0]), np.array([1]), np.array([0.95], np.float32))
    with PreviewSpool(tmp_path / "spool") as spool:
        spool.put(files[0].path, files[0].size, files[0].mtime_ns, b"not a jpeg")  # unreadable
        spool.put(
            files[1].path,
            files[1].size,
            files[1].mtime_ns,
            decode_for_model(str(b), 224, preview=SIDE).preview,
        )
        out = confirm.confirm_pairs(files, pairs, identical=lambda i, j: False, previews=spool)
    assert out.same.tolist() == [True], out.reasons
    assert out.stats["features_extracted"] == 2 and out.stats["from_previews"] == 1


def _big(src: Image.Image, scale: float = 1.6) -> Image.Image:
    # over PREVIEW_FROM_PIXELS: the demo photos are ~1.5 MP
    return src.resize((round(src.width * scale), round(src.height * scale)), Image.Resampling.BICUBIC)


def _kinds(tmp_path):
    """Big pictures in every mode and format a preview must survive, path by kind."""
    rgb = _big(Image.open(DEMO / "Camera" / "misty_lake.jpg").convert("RGB"))
    out = {}
    out["cmyk.jpg"] = rgb.convert("CMYK")
    out["grey.jpg"] = rgb.convert("L")
    out["alpha.png"] = rgb.convert("RGBA")
    a = np.asarray(out["alpha.png"]).copy()
    a[: a.shape[0] // 3, :, 3] = 0  # a transparent top: white in the picture, as everywhere else
    out["alpha.png"] = Image.fromarray(a)
    out["grey16.png"] = Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257)
    out["palette.png"] = rgb.convert("P")
    out["photo.tiff"] = rgb
    out["photo.webp"] = rgb
    paths = {}
    for name, im in out.items():
        paths[name] = tmp_path / name
        im.save(paths[name], quality=90) if name.endswith((".jpg", ".webp")) else im.save(paths[name])
    return paths


def test_every_mode_and_format_gives_the_picture_read_full_gives(tmp_path):
    for name, path in _kinds(tmp_path).items():
        d = decode_for_model(str(path), 224, preview=SIDE)
        assert d.preview is not None, name
        with Image.open(io.BytesIO(d.preview)) as im:
            assert im.mode == "RGB" and max(im.size) == SIDE, (name, im.mode, im.size)
            kept = np.asarray(im, np.float32)
        reread = np.asarray(read_full(str(path), SIDE), np.float32)
        assert reread.shape == kept.shape, name
        assert np.abs(kept - reread).mean() < 6, name  # the same picture, transparency and all
