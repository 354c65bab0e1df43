"""Every odd file in tests/data decodes or becomes a clear problem; nothing crashes."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DATA
from make_data import DATE_TAKEN, EXPECTED
from PIL import Image

from core.decode import DecodeError, decode_for_model, read_full, resize_for_model

SIZE = 224


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return decode_for_model(str(DATA / "ok.jpg"), SIZE).pixels.astype(np.float32)


@pytest.mark.parametrize("name", sorted(n for n, (kind, _) in EXPECTED.items() if kind == "ok"))
def test_good_files_decode_upright_rgb(name, reference):
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{name} was not generated on this machine")
    d = decode_for_model(str(path), SIZE)
    assert d.pixels.shape == (SIZE, SIZE, 3) and d.pixels.dtype == np.uint8
    assert d.width > 0 and d.height > 0
    if name in ("gray16.png", "la.png"):  # grey versions: compare luminance
        ref, got = reference.mean(2), d.pixels.astype(np.float32).mean(2)
    else:
        ref, got = reference, d.pixels.astype(np.float32)
    # The same photo after format conversion: strongly correlated pixels (a wrong orientation or an
    # inverted CMYK would fail this).
    corr = np.corrcoef(ref.ravel(), got.ravel())[0, 1]
    # Their alpha gradient fades the photo into white (and the flat white edge is then trimmed as a bar).
    floor = 0.6 if name in ("rgba.png", "la.png") else 0.8
    assert corr > floor, f"{name}: correlation {corr:.3f} with ok.jpg"


@pytest.mark.parametrize("name", sorted(n for n, (kind, _) in EXPECTED.items() if kind == "error"))
def test_bad_files_raise_a_reason(name):
    with pytest.raises(DecodeError) as err:
        decode_for_model(str(DATA / name), SIZE)
    assert str(err.value)  # a reason a person can read


@pytest.mark.parametrize("name", sorted(n for n, (kind, _) in EXPECTED.items() if kind == "error"))
@pytest.mark.parametrize("side", [None, 1024])
def test_bad_files_raise_a_reason_when_read_for_viewing_too(name, side):
    """The viewer, the thumbnails and the compare view read through ``read_full``: a truncated or corrupt
    file is the same one-line reason there, not a raw OSError that the GUI reports as a bug."""
    with pytest.raises(DecodeError) as err:
        read_full(str(DATA / name), max_side=side)
    assert str(err.value)


def test_specific_reasons():
    def reason(name):
        with pytest.raises(DecodeError) as e:
            decode_for_model(str(DATA / name), SIZE)
        return str(e.value)

    assert "too large" in reason("bomb.png")
    assert "truncated" in reason("truncated.jpg")
    assert "not a recognised image" in reason("not_an_image.jpg")
    assert "vanished" in reason("does_not_exist.jpg")


def test_exif_orientation_and_date():
    d = decode_for_model(str(DATA / "exif_rotated.jpg"), SIZE)
    ok = decode_for_model(str(DATA / "ok.jpg"), SIZE)
    assert (d.width, d.height) == (ok.width, ok.height)  # reported upright
    assert d.taken == DATE_TAKEN[:10].replace(":", "-") + DATE_TAKEN[10:]
    diff = np.abs(d.pixels.astype(int) - ok.pixels.astype(int)).mean()
    assert diff < 12, diff


def test_transparency_becomes_white():
    d = decode_for_model(str(DATA / "palette_alpha.png"), SIZE)
    assert d.pixels.max() == 255


def test_jpeg_draft_matches_full_decode():
    """DCT reduction must not change what the model sees beyond resampling noise."""
    from PIL import Image

    from core.decode import resize_for_model

    path = DATA.parent.parent / "resources" / "demo" / "Camera" / "misty_lake.jpg"
    fast = decode_for_model(str(path), SIZE).pixels.astype(int)
    full = resize_for_model(Image.open(path).convert("RGB"), SIZE).astype(int)
    assert np.abs(fast - full).mean() < 4


def test_read_full_for_viewer():
    im = read_full(str(DATA / "exif_rotated.jpg"), max_side=100)
    assert max(im.size) <= 100 and im.mode == "RGB"


def test_trim_borders_removes_padding_and_keeps_photos():
    from PIL import Image

    from core.decode import trim_borders

    photo = Image.open(DATA / "ok.jpg").convert("RGB")  # 320 x 200
    boxed = Image.new("RGB", (320, 569), (0, 0, 0))  # letterboxed to 9:16, as for a phone video
    boxed.paste(photo, (0, 184))
    out = trim_borders(boxed)
    assert abs(out.size[0] - 320) <= 2 and abs(out.size[1] - 200) <= 4, out.size
    framed = Image.new("RGB", (360, 240), (255, 255, 255))
    framed.paste(photo, (20, 20))
    assert abs(trim_borders(framed).size[0] - 320) <= 3
    assert trim_borders(photo).size == photo.size  # a real photo's edges are not bars
    sliver = Image.new("RGB", (320, 202), (0, 0, 0))  # a 1-px line is JPEG noise, not a bar
    sliver.paste(photo, (0, 1))
    assert trim_borders(sliver).size == sliver.size
    flat = Image.new("RGB", (300, 300), (40, 40, 40))  # all flat: 20 % of each side is always kept
    assert min(trim_borders(flat).size) >= 60


def test_letterboxed_copy_embeds_like_its_original():
    from PIL import Image

    from core.decode import resize_for_model

    photo = Image.open(DATA / "ok.jpg").convert("RGB")
    boxed = Image.new("RGB", (320, 569), (0, 0, 0))
    boxed.paste(photo, (0, 184))
    diff = np.abs(
        resize_for_model(boxed, SIZE).astype(int) - resize_for_model(photo, SIZE).astype(int)
    ).mean()
    assert diff < 6, diff


def _app_screenshot(photo, dark: bool, size: tuple[int, int], at: tuple[int, int]):
    """The photo inside an app window: a coloured title bar with text, buttons and text lines around it."""
    from PIL import Image, ImageDraw

    bg = (28, 28, 28) if dark else (242, 242, 242)
    fg = (230, 230, 230) if dark else (30, 30, 30)
    canvas = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(canvas)
    d.rectangle((0, 0, size[0], 40), fill=(40, 90, 200))
    d.text((12, 10), "Photos - holiday", fill=(255, 255, 255))
    d.rounded_rectangle((20, size[1] - 50, 110, size[1] - 30), radius=4, fill=(200, 60, 40))  # a button
    d.text((size[0] - 150, 60), "IMG_0412.jpg  2.4 MB", fill=fg)
    d.text((20, at[1] + photo.height + 12), "Shared with family", fill=fg)
    canvas.paste(photo, at)
    return canvas


def test_trim_canvas_finds_the_photo_in_a_screenshot():
    from PIL import Image

    from core.decode import trim_canvas

    photo = Image.open(DATA / "ok.jpg").convert("RGB")  # 320 x 200
    for dark in (False, True):
        shot = _app_screenshot(photo, dark, (600, 420), (140, 90))
        out = trim_canvas(shot)
        # within 2 thumbnail pixels (96 px on the long side: 6.25 px here) of the photo on every side
        assert abs(out.size[0] - 320) <= 13 and abs(out.size[1] - 200) <= 13, (dark, out.size)
    assert trim_canvas(photo).size == photo.size  # a photo's edges are no canvas
    phone = _app_screenshot(photo, False, (400, 860), (40, 300))  # a tall phone screen
    out = trim_canvas(phone)
    assert abs(out.size[0] - 320) <= 20 and abs(out.size[1] - 200) <= 20, out.size


def test_screenshot_embeds_like_its_original():
    from PIL import Image

    from core.decode import resize_for_model

    photo = Image.open(DATA / "ok.jpg").convert("RGB")
    shot = _app_screenshot(photo, True, (600, 420), (140, 90))
    diff = np.abs(resize_for_model(shot, SIZE).astype(int) - resize_for_model(photo, SIZE).astype(int)).mean()
    assert diff < 12, diff


def _decode_in_thread(path, timeout: float):
    """decode_for_model(path) in a thread: (finished, exception). A regression that blocks fails, not
    hangs."""
    import threading

    box: dict = {}

    def run():
        try:
            box["result"] = decode_for_model(str(path), SIZE)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    return not t.is_alive(), box.get("error")


def test_fifo_at_an_image_path_fails_fast(tmp_path):
    """A file replaced by a named pipe between the walk and the decode must not block the decode thread."""
    import os

    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    finished, error = _decode_in_thread(fifo, 1.0)
    if not finished:  # release the blocked reader so the thread ends, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert finished, "decoding a FIFO blocked"
    assert isinstance(error, DecodeError) and "not a regular file" in str(error), error
    with pytest.raises(DecodeError, match="not a regular file"):
        read_full(str(fifo))


def test_directory_and_link_loop_are_reasons(tmp_path):
    import os

    (tmp_path / "folder.jpg").mkdir()
    os.symlink("b.jpg", tmp_path / "a.jpg")
    os.symlink("a.jpg", tmp_path / "b.jpg")
    with pytest.raises(DecodeError, match="is a directory"):
        decode_for_model(str(tmp_path / "folder.jpg"), SIZE)
    with pytest.raises(DecodeError, match="symbolic links"):
        decode_for_model(str(tmp_path / "a.jpg"), SIZE)


# Memory: a 440 KB PNG can decode to 450 MB of 16-bit pixels (15000x15000 grey); before it was bounded, one
# such file peaked at 2.6 GB RSS. The decode runs in a child process that reports its own peak RSS.


@pytest.fixture(scope="module")
def giant16(tmp_path_factory):
    from faults.hostile import giant16_png

    return giant16_png(tmp_path_factory.mktemp("giant") / "giant16.png")


def peak_rss_mb(code: str, timeout: float = 120) -> tuple[float, str]:
    """Run ``code`` in a fresh interpreter (this checkout's ``core``); its peak RSS in MB and its stdout.

    The peak is the child's VmHWM: ``ru_maxrss`` would include the RSS of this (forked) test process.
    """
    import subprocess
    import sys
    from pathlib import Path

    from helpers import REPO

    if not Path("/proc/self/status").exists():
        pytest.skip("peak RSS is read from /proc (Linux)")
    tail = (
        "\nfor line in open('/proc/self/status'):\n"
        "    if line.startswith('VmHWM:'):\n        print('PEAK', line.split()[1])\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code + tail], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return int(r.stdout.split("PEAK")[-1]) / 1024, r.stdout


def test_16bit_giant_decodes_in_bounded_memory(giant16):
    peak, out = peak_rss_mb(
        "from core.decode import decode_for_model, read_full\n"
        f"d = decode_for_model({str(giant16)!r}, 224)\n"
        "print('SHAPE', d.pixels.shape, d.width, d.height)\n"
        f"print('THUMB', read_full({str(giant16)!r}, max_side=256).size)\n"
    )
    assert "SHAPE (224, 224, 3) 15000 15000" in out and "THUMB (256, 256)" in out, out
    assert peak < 1200, f"peak RSS {peak:.0f} MB"


def test_too_large_for_the_per_image_budget_is_a_reason(giant16, monkeypatch):
    import core.decode

    monkeypatch.setattr(core.decode, "MAX_DECODE_BYTES", 100_000_000, raising=False)
    with pytest.raises(DecodeError) as e:
        decode_for_model(str(giant16), SIZE)
    reason = str(e.value)
    assert reason.startswith("too large to decode within the memory budget: 15000x15000 16-bit"), reason
    assert "needs ~0.5 GB" in reason, reason


def test_16bit_conversion_keeps_its_pixels():
    """Integer conversion of 16-bit greys gives exactly what the float formula gave (the model's input)."""
    from PIL import Image

    from core.decode import to_rgb

    rng = np.random.default_rng(0)
    for top in (255, 65535):
        a = rng.integers(0, top + 1, (123, 77), dtype=np.uint16)
        im = Image.fromarray(a)
        assert im.mode == "I;16"
        expected = (a.astype(np.float32) * (255.0 / top)).clip(0, 255).astype(np.uint8)
        assert np.array_equal(np.asarray(to_rgb(im))[..., 0], expected)
        i32 = Image.fromarray(a.astype(np.int32))
        assert np.array_equal(np.asarray(to_rgb(i32))[..., 0], expected)


def test_early_reduction_keeps_what_the_model_sees(tmp_path, monkeypatch):
    """Images far above the model's size are shrunk right after loading; the model's input barely moves."""
    from faults.hostile import photo

    import core.decode

    path = tmp_path / "big.png"
    photo((1800, 1200), seed=3).save(path, compress_level=1)
    full = decode_for_model(str(path), SIZE).pixels.astype(int)
    monkeypatch.setattr(core.decode, "REDUCE_ABOVE_PIXELS", 1_000_000, raising=False)
    monkeypatch.setattr(core.decode, "_KEEP", 1, raising=False)  # harsher than real: 1800x1200 -> 225x240
    reduced = decode_for_model(str(path), SIZE).pixels.astype(int)
    diff = np.abs(full - reduced).mean()
    assert 0 < diff < 2, diff  # the real reduction (8x the size per side) leaves the resize more to do


def test_flat_and_nan_float_images_decode_quietly(tmp_path):
    import warnings

    from faults.hostile import flat_float_tiff

    for value in (float("nan"), 0.0, 1e30):
        path = flat_float_tiff(tmp_path / "f.tiff", value)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            d = decode_for_model(str(path), SIZE)
        assert d.pixels.shape == (SIZE, SIZE, 3)


def test_alpha_giants_are_reduced_in_strips_with_the_same_pixels(monkeypatch):
    """reduce() premultiplies alpha in a full-size copy; the strip-wise reduction must give its exact
    pixels."""
    from PIL import Image

    import core.decode

    monkeypatch.setattr(core.decode, "REDUCE_ABOVE_PIXELS", 1000)
    rng = np.random.default_rng(1)
    for mode, size in (("RGBA", (1003, 2011)), ("LA", (3000, 1999))):
        bands = len(mode)
        a = rng.integers(0, 256, (size[1], size[0], bands), dtype=np.uint8)
        im = Image.merge(mode, [Image.fromarray(a[..., b]) for b in range(bands)])
        k = core.decode._reduction(*size, 100)
        assert k != (1, 1)
        assert np.array_equal(np.asarray(core.decode._shrink(im, 100)), np.asarray(im.reduce(k)))


def test_an_opaque_webp_decodes_in_one_buffer(tmp_path):
    """Pillow's WebP decoder held ~16 bytes a pixel (+110 MB for a 6 MP photo): opaque still WebPs go
    through OpenCV into one RGB buffer, with the same pixels; transparent ones keep Pillow (over white)."""
    rng = np.random.default_rng(3)
    small = rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)
    photo = Image.fromarray(small).resize((4000, 3000), Image.Resampling.BICUBIC)
    photo.save(tmp_path / "big.webp", quality=85)
    setup = (
        "import cv2, numpy as np\n"
        "from PIL import Image\n"
        "import core.decode as cd\n"
        f"path = {str(tmp_path / 'big.webp')!r}\n"
    )
    base, _ = peak_rss_mb(setup + "Image.open(path).size\n")
    peak, out = peak_rss_mb(setup + "d = cd.decode_for_model(path, 224)\nprint('SUM', int(d.pixels.sum()))\n")
    # 12 MP: OpenCV's BGR (3 bytes a pixel) and Pillow's RGB (4) are ~85 MB; Pillow's decoder took ~190
    assert peak - base < 120, f"decode added {peak - base:.0f} MB"
    fast = decode_for_model(str(tmp_path / "big.webp"), 224)
    with Image.open(tmp_path / "big.webp") as im:
        im.load()
        pillow = np.asarray(resize_for_model(im.convert("RGB"), 224))
    assert np.array_equal(fast.pixels, pillow)
    assert f"SUM {int(fast.pixels.sum())}" in out
    rgba = Image.new("RGBA", (64, 48), (255, 0, 0, 0))
    rgba.save(tmp_path / "clear.webp", lossless=True)
    assert decode_for_model(str(tmp_path / "clear.webp"), 224).pixels.min() == 255  # over white


def test_a_heic_with_a_thumbnail_is_read_through_it(tmp_path):
    """Phones embed a small HEVC thumbnail in their HEICs; the model's 224 px come from it (3 ms of CPU
    instead of 150-700 ms for 12 MP), with the same picture, the full size reported, and no thumbnail used
    when it is smaller than asked."""
    import time

    from helpers import DEMO

    from core.decode import register_plugins
    from core.embed import Embedder

    register_plugins()  # pillow-heif's opener, which also writes HEIC
    photo = Image.open(DEMO / "Camera/misty_lake.jpg").convert("RGB").resize((2400, 1800))  # 4:3, as phones
    fast = {"preset": "ultrafast"}  # x265's fastest encoder preset: the test writes two in seconds
    photo.save(tmp_path / "thumb.heic", quality=80, thumbnails=[320], enc_params=fast)
    photo.save(tmp_path / "plain.heic", quality=80, thumbnails=[], enc_params=fast)
    t = time.process_time()
    small = decode_for_model(str(tmp_path / "thumb.heic"), 224)
    via_thumbnail = time.process_time() - t
    t = time.process_time()
    whole = decode_for_model(str(tmp_path / "plain.heic"), 224)
    decoded_whole = time.process_time() - t
    assert (small.width, small.height) == (whole.width, whole.height) == (2400, 1800)
    assert via_thumbnail < decoded_whole / 3, (via_thumbnail, decoded_whole)
    emb, _ = Embedder(device="cpu").embed_arrays(np.stack([small.pixels, whole.pixels]))
    assert float(emb[0] @ emb[1]) > 0.97
    # Asked for more than the thumbnail holds (the viewer, verification at 384 px): the image itself.
    assert read_full(str(tmp_path / "thumb.heic"), max_side=600).size == (600, 450)


def test_a_3_2_heic_is_read_through_its_320_x_213_thumbnail(tmp_path):
    """A 3:2 phone photo's 320 px thumbnail is 213 px high, a little under the model's 224: squashed to 224
    it is enlarged 1.05x, which changes the embedding by ~1 % (cosine to the whole image 0.988-0.996 on the
    benchmark's HEICs), so it is used."""
    import time

    from helpers import DEMO

    from core.decode import register_plugins

    register_plugins()
    photo = Image.open(DEMO / "Camera/misty_lake.jpg").convert("RGB").resize((3000, 2000))
    fast = {"preset": "ultrafast"}
    photo.save(tmp_path / "thumb.heic", quality=80, thumbnails=[320], enc_params=fast)
    photo.save(tmp_path / "plain.heic", quality=80, thumbnails=[], enc_params=fast)
    seconds = {}
    for name in ("thumb", "plain"):
        t = time.process_time()
        decoded = decode_for_model(str(tmp_path / f"{name}.heic"), 224)
        seconds[name] = time.process_time() - t
        assert (decoded.width, decoded.height) == (3000, 2000)
    assert seconds["thumb"] < seconds["plain"] / 3, seconds


def _progressive_with_scans(path, repeats: int) -> None:
    """A real progressive JPEG (a demo photo) whose last scan is repeated ``repeats`` times: each scan is
    decoded in full, so thousands of them made one 123 KB file take 18 s (12 MP) to minutes."""
    import io
    import struct

    from helpers import DEMO

    buf = io.BytesIO()
    Image.open(DEMO / "Camera/misty_lake.jpg").convert("RGB").save(buf, "JPEG", quality=85, progressive=True)
    data = buf.getvalue()
    pos, last = 2, b""
    while data[pos + 1] != 0xD9:
        marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        end = pos + 2 + length
        if marker == 0xDA:  # the scan's entropy-coded data runs to the next marker that is not a restart
            while not (data[end] == 0xFF and data[end + 1] != 0 and not 0xD0 <= data[end + 1] <= 0xD7):
                end += 1
            last = data[pos:end]
        pos = end
    path.write_bytes(data[:pos] + last * repeats + b"\xff\xd9")


def test_a_progressive_jpeg_with_thousands_of_scans_is_refused_not_decoded(tmp_path):
    bomb, normal = tmp_path / "bomb.jpg", tmp_path / "normal.jpg"
    _progressive_with_scans(bomb, 3000)
    _progressive_with_scans(normal, 0)
    assert decode_for_model(str(normal), 224).pixels.shape == (224, 224, 3)
    assert read_full(str(normal)).size == Image.open(normal).size
    for read in (lambda p: decode_for_model(p, 224), read_full):
        with pytest.raises(DecodeError, match="scans"):
            read(str(bomb))


@pytest.mark.parametrize("offset", [-30_000, 100_000])
def test_a_32_bit_grey_tiff_outside_16_bits_keeps_its_picture(tmp_path, offset):
    """Signed 32-bit pixels below 0 wrapped round to the top of an unsigned range, and ones over 65535 were
    clipped: the whole picture turned white and the file was listed as blank."""
    from helpers import DEMO

    grey = np.asarray(Image.open(DEMO / "Camera/misty_lake.jpg").convert("L"), np.int32)
    path = tmp_path / "science.tif"
    Image.fromarray(grey * 100 + offset, "I").save(path)
    assert Image.open(path).mode == "I"
    for rgb in (np.asarray(read_full(str(path))), decode_for_model(str(path), SIZE).pixels):
        g = rgb[..., 0].astype(np.float32)
        assert g.std() > 10, g.std()  # a picture, not one flat colour
    small = np.asarray(read_full(str(path)).convert("L").resize((64, 40)), np.float32)
    ref = np.asarray(Image.fromarray(grey.astype(np.uint8)).resize((64, 40)), np.float32)
    assert np.corrcoef(small.ravel(), ref.ravel())[0, 1] > 0.95


def test_a_corrupt_avif_is_a_reason_not_an_unexpected_error(tmp_path):
    """The AVIF decoder raises RuntimeError ("Failed to decode frame 0: ...") on damaged data: that is a
    corrupt file (a one-line reason), not "unexpected decoder error" with a traceback in the log."""
    import random

    from helpers import DEMO

    from core.decode import register_plugins

    register_plugins()
    good = tmp_path / "good.avif"
    Image.open(DEMO / "Camera/misty_lake.jpg").convert("RGB").save(good, "AVIF", quality=70)
    data = good.read_bytes()
    rng, refused = random.Random(1), 0
    for n in range(30):
        damaged = bytearray(data)
        for _ in range(20):
            damaged[rng.randrange(len(data) // 4, len(data))] = rng.randrange(256)
        path = tmp_path / f"damaged{n}.avif"
        path.write_bytes(bytes(damaged))
        for read in (lambda p: decode_for_model(p, SIZE), read_full):
            try:
                read(str(path))
            except DecodeError as e:
                refused += 1
                assert "corrupt" in str(e) or "not a recognised" in str(e), e
    assert refused >= 2  # some of the damage is in the picture's data
