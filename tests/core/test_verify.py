"""The copy verifier on real images: edited copies are the same capture, other shots of one subject are not.

Copies are made at test time with the evaluation's own edit functions from a redistributable photo; the
other-shot pairs are real (see tests/data/verify/README.md for sources and licences).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import verify as V
from training.augment import COLOUR_FILTERS, EDITS

DATA = Path(__file__).resolve().parents[1] / "data" / "verify"
PHOTO = DATA / "photo.jpg"
OTHER_SHOTS = {  # kind of pair: (a, b)
    "viewpoint (planar facade)": ("facade_a.jpg", "facade_b.jpg"),
    "exposure (Oxford leuven)": ("leuven_a.jpg", "leuven_b.jpg"),
    "viewpoint (street)": ("toronto_a.jpg", "toronto_b.jpg"),
    "panorama (camera turned)": ("uttower_a.jpg", "uttower_b.jpg"),
    "burst (players moved)": ("basketball_a.jpg", "basketball_b.jpg"),
}
COPY_KINDS = [
    "crop_50",
    "flip",
    "rotate_90",
    "rotate_small",
    "grayscale",
    "blur",
    "noise",
    "jpeg",
    "downscale",
    "text",
    "letterbox",
    "screenshot",
    "stretch",
    "combo",
    "sepia",
    "duotone",
    "vintage",
    "warm",
    "cool",
    "channel_swap",
    "channel_mix",
]


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(PHOTO).convert("RGB")


@pytest.fixture(scope="module")
def original(photo) -> V.ImageFeatures:
    return V.extract(photo)


def _copy(photo: Image.Image, kind: str, seed: int = 7) -> Image.Image:
    edit = {**EDITS, **COLOUR_FILTERS}[kind]
    return edit(photo, np.random.default_rng(seed)).convert("RGB")


@pytest.mark.parametrize("kind", COPY_KINDS)
def test_edited_copy_is_the_same_capture(photo, original, kind):
    copy = V.extract(_copy(photo, kind))
    verdict = V.verify(original, copy)
    assert verdict.same, f"{kind}: {verdict.reason} {verdict.measures}"
    assert verdict.transform is not None and verdict.transform.shape == (2, 3)


def test_the_verdict_does_not_depend_on_the_order(photo, original):
    copy = V.extract(_copy(photo, "screenshot"))
    assert V.verify(original, copy).same and V.verify(copy, original).same


def test_a_flipped_copy_is_found_through_the_mirror(photo, original):
    verdict = V.verify(original, V.extract(_copy(photo, "flip")))
    assert verdict.same and verdict.mirrored
    assert verdict.transform[0, 0] < 0  # x runs the other way


def test_transform_maps_a_crop_inside_the_original(photo, original):
    w, h = photo.size
    crop = photo.crop((w // 4, h // 4, w // 4 + w // 2, h // 4 + h // 2))
    verdict = V.verify(original, V.extract(crop))
    assert verdict.same
    corners = np.array([[0, 0], [1, 1]]) @ verdict.transform[:, :2].T + verdict.transform[:, 2]
    np.testing.assert_allclose(corners, [[0.25, 0.25], [0.75, 0.75]], atol=0.02)


@pytest.mark.parametrize("kind", list(OTHER_SHOTS))
def test_another_shot_of_the_subject_is_not_the_same(kind):
    a, b = (V.extract(DATA / f) for f in OTHER_SHOTS[kind])
    for x, y in ((a, b), (b, a)):
        verdict = V.verify(x, y)
        assert not verdict.same, f"{kind}: {verdict.reason} {verdict.measures}"
        assert verdict.reason


def test_features_round_trip_through_bytes(photo, original):
    data = original.to_bytes()
    assert len(data) < 80_000
    back = V.ImageFeatures.from_bytes(data)
    np.testing.assert_array_equal(back.descriptors, original.descriptors)
    np.testing.assert_array_equal(back.thumb, original.thumb)
    np.testing.assert_allclose(back.points, original.points, atol=0.25)  # stored as float16
    assert back.size == original.size and back.native == original.native
    copy = V.extract(_copy(photo, "text"))
    assert V.verify(back, copy).same == V.verify(original, copy).same
    assert back.to_bytes() == data


@pytest.mark.parametrize("data", [b"", b"garbage", b"\x00" * 64])
def test_damaged_bytes_raise_value_error(data):
    with pytest.raises(ValueError):
        V.ImageFeatures.from_bytes(data)


def test_a_changed_byte_in_the_keypoints_is_found(original):
    """The bytes are no longer compressed (zlib was a tenth of an extraction): a CRC stands in for what
    decompressing used to catch, so a cache entry damaged on disk is extracted again, never matched."""
    data = bytearray(original.to_bytes())
    for at in (40, len(data) // 8, 4 + struct.unpack_from("<I", data)[0] - 1):
        bad = bytearray(data)
        bad[at] ^= 0x10
        with pytest.raises(ValueError, match="damaged"):
            V.ImageFeatures.from_bytes(bytes(bad))
    with pytest.raises(ValueError):
        V.ImageFeatures.from_bytes(bytes(data[: len(data) // 3]))


def test_other_version_is_refused(original, monkeypatch):
    data = original.to_bytes()
    monkeypatch.setattr(V, "VERSION", V.VERSION + 1)
    with pytest.raises(ValueError, match="version"):
        V.ImageFeatures.from_bytes(data)


def test_a_flat_image_has_no_keypoints_and_is_never_same(original):
    flat = V.extract(np.full((240, 320, 3), 128, np.uint8))
    assert len(flat.points) == 0
    assert V.ImageFeatures.from_bytes(flat.to_bytes()).points.shape == (0, 2)
    for a, b in ((flat, original), (original, flat), (flat, flat)):
        verdict = V.verify(a, b)
        assert not verdict.same and verdict.inliers == 0


def test_tiny_and_grey_inputs_are_handled(photo, original):
    for image in (np.zeros((3, 5), np.uint8), Image.new("L", (40, 30), 200), np.zeros((1, 1, 3), np.uint8)):
        assert not V.verify(original, V.extract(image)).same
    # pictures of a few pixels, with each other and with the photo (two 2 x 2 ones crashed the frame check)
    few = [V.extract(photo.resize(size)) for size in [(2, 2), (7, 5), (12, 8), (30, 2)]]
    for a in few:
        for b in [*few, original]:
            V.verify(a, b, complete=True)
            V.verify(b, a, complete=True)


def test_extract_reads_a_path(original):
    assert V.verify(V.extract(PHOTO), original).same


def test_bad_array_is_a_value_error():
    with pytest.raises(ValueError):
        V.extract(np.zeros((10, 10, 3), np.float32))


def test_aligned_difference_shows_an_overlay(photo, original):
    copy_img = _copy(photo, "logo")
    verdict = V.verify(original, V.extract(copy_img))
    assert verdict.same
    diff = V.aligned_difference(photo, copy_img, verdict)
    assert diff.shape == (photo.height, photo.width) and diff.dtype == np.uint8
    plain = V.aligned_difference(photo, photo, V.verify(original, original))
    assert plain.mean() < 5 < diff.max()


def test_aligned_difference_needs_an_alignment(photo):
    with pytest.raises(ValueError):
        V.aligned_difference(photo, photo, V.Verdict(False, "no alignment"))


def test_a_phone_heic_is_checked_through_its_thumbnail_and_still_matches_its_jpeg_export(tmp_path):
    """Decoding a 12 MP HEIC whole took ~1 s, half of the pair check on the benchmark library; its 320 px
    thumbnail (enlarged to 384 for the detector) is read instead, and its JPEG export still verifies."""
    from helpers import DEMO

    from core.decode import read_full, register_plugins

    register_plugins()
    photo = Image.open(DEMO / "Camera/misty_lake.jpg").convert("RGB").resize((2400, 1800))
    photo.save(tmp_path / "IMG_1.heic", quality=80, thumbnails=[320], enc_params={"preset": "ultrafast"})
    photo.resize((1200, 900)).save(tmp_path / "IMG_1.jpg", quality=85)
    heic = V.extract(str(tmp_path / "IMG_1.heic"))
    assert heic.native == 320  # the thumbnail, not the 2400 px picture
    verdict = V.verify(heic, V.extract(str(tmp_path / "IMG_1.jpg")))
    assert verdict.same, verdict.reason
    # a card of 256 px comes from the thumbnail too; asked for more than it holds, the picture itself
    assert read_full(str(tmp_path / "IMG_1.heic"), max_side=256).size == (256, 192)
    assert read_full(str(tmp_path / "IMG_1.heic"), max_side=384).size == (384, 288)


def _saved(folder: Path, made: dict[str, Image.Image]) -> list:
    """Each picture saved in ``folder`` under its name (JPEG at quality 90, or PNG), as the scan's records."""
    import os

    from core.results import ImageRecord

    files = []
    for name, im in made.items():
        path = folder / name
        im.save(path, quality=90)
        st = os.stat(path)
        fmt = "PNG" if name.endswith(".png") else "JPEG"
        files.append(ImageRecord(str(path), st.st_size, st.st_mtime_ns, im.width, im.height, fmt))
    return files


def _small_on_a_canvas(photo: Image.Image, path: Path) -> tuple[float, float, float, float]:
    """The photo shown small in an app window (1600x1000, title bar, sidebar text), saved to ``path``; the
    photo's normalised box."""
    from PIL import ImageDraw

    canvas = Image.new("RGB", (1600, 1000), (236, 236, 240))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, 1600, 40), fill=(60, 60, 70))
    for y in range(120, 900, 40):
        draw.text((40, y), "IMG_0412.jpg  4032 x 3024  2.4 MB", fill=(30, 30, 30))
    small = photo.resize((420, round(420 * photo.height / photo.width)), Image.Resampling.LANCZOS)
    x, y = 700, 300
    canvas.paste(small, (x, y))
    canvas.save(path, quality=92)
    return x / 1600, y / 1000, (x + small.width) / 1600, (y + small.height) / 1000


def test_a_small_photo_in_a_screenshot_is_compared_without_the_app_around_it(photo, original, tmp_path):
    """Read at 384 px, the photo in this screenshot was ~100 px wide among the app's pixels: too few
    keypoints on it, and the copy was missed. The canvas is trimmed first, and the file read again larger."""
    box = _small_on_a_canvas(photo, tmp_path / "screenshot.jpg")
    shot = V.extract(tmp_path / "screenshot.jpg")
    np.testing.assert_allclose(shot.box, box, atol=0.02)
    once = (box[2] - box[0]) * V.DETECT_SIDE  # the picture's width when the screenshot is read at 384 px
    assert shot.native > 2 * once  # read again larger for its picture
    verdict = V.verify(original, shot)
    assert verdict.same, f"{verdict.reason} {verdict.measures}"
    # the transform is between the whole images: the photo's corners in the screenshot land on the original's
    corners = np.array([box[:2], box[2:]]) @ verdict.transform[:, :2].T + verdict.transform[:, 2]
    np.testing.assert_allclose(corners, [[0, 0], [1, 1]], atol=0.03)
    back = V.ImageFeatures.from_bytes(shot.to_bytes())
    assert back.box == pytest.approx(shot.box) and V.verify(original, back).same


def test_a_photo_a_tenth_of_a_phone_screenshot_is_found_among_its_buttons(photo, original, tmp_path):
    """A phone screenshot (1080 x 2340, title bar, buttons and captions scattered over the canvas) of a photo
    under a fifth of its height: the canvas trim kept at least a fifth of each side, so it returned the whole
    column with the buttons, and ORB found too few of the photo's corners (read back from files, the
    evaluation's phone screenshots failed so)."""
    from PIL import ImageDraw

    canvas = Image.new("RGB", (1080, 2340), (32, 32, 32))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, 1080, 160), fill=(12, 12, 12))
    draw.text((120, 50), "Photos", fill=(230, 230, 230))
    for x, y, fill in ((320, 300, (70, 60, 66)), (90, 1010, (110, 225, 160)), (900, 2200, (165, 220, 110))):
        draw.rounded_rectangle((x, y, x + 130, y + 80), radius=6, fill=fill)
    small = photo.resize((480, round(480 * photo.height / photo.width)), Image.Resampling.LANCZOS)
    x, y = 300, 1700
    canvas.paste(small, (x, y))
    canvas.save(tmp_path / "phone.png")
    box = (x / 1080, y / 2340, (x + small.width) / 1080, (y + small.height) / 2340)
    assert box[3] - box[1] < 0.15  # a seventh of the screenshot's height
    shot = V.extract(tmp_path / "phone.png")
    np.testing.assert_allclose(shot.box, box, atol=0.02)
    verdict = V.verify(original, shot)
    assert verdict.same, f"{verdict.reason} {verdict.measures}"


def test_skipping_what_cannot_change_the_verdict_gives_the_same_verdicts(photo, original):
    """A scan skips the photometric check after a failed alignment and the optical flow after failed
    detail checks; the evaluation measures everything. Both must agree on every pair, reasons included."""
    feats = {name: V.extract(DATA / name) for pair in OTHER_SHOTS.values() for name in pair}
    pairs = [(feats[a], feats[b]) for a, b in OTHER_SHOTS.values()]
    pairs += [(feats[a], feats[b]) for a in feats for b in feats if a < b]
    pairs += [(original, V.extract(_copy(photo, kind))) for kind in ("jpeg", "text", "vintage", "screenshot")]
    # detail lost both ways (a quarter blurred in each, opposite sides): aligned, refused before the flow
    from PIL import ImageFilter

    w, h = photo.size
    blur = photo.filter(ImageFilter.GaussianBlur(8))
    left, right = photo.copy(), photo.copy()
    left.paste(blur.crop((0, 0, w // 4, h)), (0, 0))
    right.paste(blur.crop((w - w // 4, 0, w, h)), (w - w // 4, 0))
    pairs.append((V.extract(left), V.extract(right)))
    skipped = flow_only = 0
    for x, y in pairs:
        fast, full = V.verify(x, y), V.verify(x, y, complete=True)
        assert (fast.same, fast.reason) == (full.same, full.reason)
        assert "moved" in full.measures or full.inliers < V._PHOTOMETRIC_FROM
        skipped += "moved" not in fast.measures and "moved" in full.measures
        flow_only += "r2_1" in fast.measures and "moved" not in fast.measures
        if fast.same:
            assert fast.measures == full.measures
    assert skipped and flow_only  # other shots fail before the flow is needed, some after the detail checks


@pytest.mark.parametrize("kind", ["jpeg", "downscale", "grayscale", "sepia", "noise", "flip"])
def test_a_copy_of_the_whole_picture_is_settled_frame_to_frame_without_keypoints(photo, original, kind):
    """Most copies are the whole picture resized, re-saved, recoloured or mirrored: they are compared frame to
    frame, so neither side needs keypoints (~8 of an extraction's ~10 ms)."""
    light_a = V.extract(photo, keypoints=False)
    light_b = V.extract(_copy(photo, kind), keypoints=False)
    assert not light_a.keypoints and len(light_a.points) == 0 and light_a.gray is not None
    np.testing.assert_array_equal(light_a.thumb, original.thumb)  # the same thumbnail as with keypoints
    verdict = V.verify(light_a, light_b)
    assert verdict.same and verdict.measures["frame"] == 1.0, verdict.reason
    assert verdict.mirrored == (kind == "flip")
    assert verdict.measures["shift"] <= V.RULE["frame_shift"]


def _shrunk(im: Image.Image, side: int) -> Image.Image:
    s = side / max(im.size)
    return im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.Resampling.BILINEAR)


@pytest.mark.parametrize("side", [16, 20, 24, 32, 48, 80])
def test_a_thumbnail_copy_is_compared_at_its_own_resolution(photo, original, side):
    """A copy shrunk to a few dozen pixels (a messenger's thumbnail) has no keypoints to match, and enlarged
    into the 192 px thumbnail its blur read as lost structure and its pixel grid as a misaligned frame: such
    copies were never verified. Both are now compared at twice its size, the sharp side brought down to its
    resolution first (a 20 x 12 thumbnail of a 16:10 photo still has the photo's shape, within rounding)."""
    tiny = V.extract(_shrunk(photo, side), keypoints=False)
    for a, b in ((original, tiny), (tiny, original)):
        verdict = V.verify(a, b)
        assert verdict.same and verdict.measures["frame"] == 1.0, (side, verdict.reason)
        assert verdict.measures["enlarged"] == pytest.approx(min(V.SMALL_FROM, V.THUMB_SIDE / side))


@pytest.mark.parametrize("kind", list(OTHER_SHOTS))
def test_a_pairs_verdict_does_not_depend_on_the_pairs_checked_before_it(photo, original, kind):
    """OpenCV's DIS flow lowers its finest scale to fit a small picture and keeps it lowered: once a thumbnail
    copy had been compared (at 2x its size), every later flow of the thread ran at full resolution and other
    pairs' motion measures changed (a London Bridge pair went from 8 % to 25 % moved)."""
    a_file, b_file = OTHER_SHOTS[kind]
    a, b = V.extract(DATA / a_file), V.extract(DATA / b_file)
    V._local.__dict__.pop("flow", None)  # a fresh flow, as a new check thread has
    before = V.verify(a, b, complete=True).measures
    tiny = V.verify(original, V.extract(_shrunk(photo, 24)), complete=True)
    assert tiny.measures["frame"] == 1.0 and "moved" in tiny.measures  # a flow at 48 px was computed
    assert V.verify(a, b, complete=True).measures == before


@pytest.mark.parametrize("offset", [(0.01, 1.0), (0.02, 1.02), (0.0, 1.03)])
def test_a_keypoint_fit_that_is_off_is_corrected_by_the_flow(photo, original, offset):
    """A few noisy inliers (a stretched or re-shared copy) can fit a transform a few thumbnail pixels off: the
    fine structure then disagrees and copies were refused ("the picture differs", "parts moved"). The flow's
    global part measures the error; composed into the alignment, the copy lines up and passes."""
    copy = V.extract(_copy(photo, "jpeg"))
    dx, scale = offset
    t = np.array([[scale, 0.0, dx], [0.0, scale, 0.0]])
    verdict = V._aligned_verdict(original, copy, t, {"inliers": 50.0, "cover": 1.0}, True, 50, False, t)
    assert verdict.same and verdict.measures["realigned"] == 1.0, verdict.reason
    assert verdict.measures["shift"] < V._REALIGN_SHIFT
    np.testing.assert_allclose(verdict.transform, np.eye(2, 3), atol=0.02)  # the alignment the verdict shows


def test_a_pair_not_settled_frame_to_frame_asks_for_keypoints(photo, original):
    """A crop keeps the shape but not the frame: the frame-to-frame comparison does not pass, the pair needs
    keypoints, and with them (added from the grey picture the features kept) it is the same capture."""
    w, h = photo.size
    crop = photo.crop((w // 8, h // 8, w - w // 8, h - h // 8))
    light = V.extract(crop, keypoints=False)
    with pytest.raises(V.NeedKeypoints):
        V.verify(V.extract(photo, keypoints=False), light)
    full = V.with_keypoints(light)
    fresh = V.extract(crop)
    np.testing.assert_array_equal(full.descriptors, fresh.descriptors)
    assert full.gray is None and full.to_bytes() == fresh.to_bytes()
    verdict = V.verify(original, full, frame=False)
    assert verdict.same and "frame" not in verdict.measures and verdict.inliers >= V.RULE["inliers"]


@pytest.mark.parametrize("kind", list(OTHER_SHOTS))
def test_other_shots_are_not_the_same_frame_to_frame_either(kind):
    a, b = (V.extract(DATA / f, keypoints=False) for f in OTHER_SHOTS[kind])
    for x, y in ((a, b), (b, a)):
        try:
            verdict = V.verify(x, y)
        except V.NeedKeypoints:
            continue
        assert not verdict.same, f"{kind}: {verdict.reason} {verdict.measures}"


def test_features_without_keypoints_round_trip_and_then_ask_for_them(photo):
    light = V.extract(photo, keypoints=False)
    back = V.ImageFeatures.from_bytes(light.to_bytes())
    assert not back.keypoints and back.gray is None  # the grey picture is never stored
    with pytest.raises(ValueError, match="extract them again"):
        V.with_keypoints(back)


def test_the_scan_extracts_keypoints_only_for_pairs_not_settled_frame_to_frame(photo, tmp_path):
    """``confirm_pairs``: copies of the whole picture cost a thumbnail each, turned ones too (compared in
    their turned frame); a crop of the same shape gets keypoints after its frame-to-frame comparison fails.
    The verdicts are those of ``verify`` on features with keypoints."""
    from core import confirm
    from core.results import Pairs

    w, h = photo.size
    made = {
        "photo.jpg": photo,
        "jpeg.jpg": _copy(photo, "jpeg"),
        "small.jpg": photo.resize((w // 2, h // 2)),
        "crop.jpg": photo.crop((w // 8, h // 8, w - w // 8, h - h // 8)),
        "turned.jpg": photo.transpose(Image.Transpose.ROTATE_90),
    }
    files = _saved(tmp_path, made)
    pairs = Pairs(np.zeros(4, np.int64), np.arange(1, 5), np.full(4, 0.9, np.float32))
    out = confirm.confirm_pairs(files, pairs, identical=lambda a, b: False)
    assert out.same.tolist() == [True] * 4, out.reasons
    st = out.stats
    assert st["frame_to_frame"] == 3 and "frame to frame" in out.reasons[3], out.reasons
    # keypoints for the photo and its crop; the whole copies, turned or not, never needed them
    assert st["features_extracted"] == 5 and st["keypoints_extracted"] == 2, st
    full = [V.extract(f.path) for f in files]
    assert [V.verify(full[0], full[k]).same for k in range(1, 5)] == out.same.tolist()


def test_features_cached_without_keypoints_get_them_when_a_later_scan_needs_them(photo, tmp_path):
    """A first scan caches a photo's features without keypoints (its only pair was settled frame to frame);
    a later scan pairs it with a crop of another shape, which needs keypoints: they are added, the pair is
    the same capture, and the cache now holds the photo's features with keypoints."""
    from core import confirm
    from core.cache import EmbeddingCache
    from core.results import Pairs

    made = {
        "photo.jpg": photo,
        "jpeg.jpg": _copy(photo, "jpeg"),
        "cropped.jpg": photo.crop((0, 0, photo.width * 3 // 5, photo.height)),  # another shape
    }
    files = _saved(tmp_path, made)
    cache = EmbeddingCache(tmp_path / "cache")
    photo_key = [(files[0].path, files[0].size, files[0].mtime_ns)]

    def cached_photo() -> V.ImageFeatures:
        return V.ImageFeatures.from_bytes(cache.verify_features(V.VERSION, photo_key)[files[0].path])

    first = confirm.confirm_pairs(
        files[:2],
        Pairs(np.array([0]), np.array([1]), np.array([0.95], np.float32)),
        identical=lambda a, b: False,
        cache=cache,
    )
    assert first.same.tolist() == [True] and first.stats["keypoints_extracted"] == 0, first.stats
    assert not cached_photo().keypoints

    later = confirm.confirm_pairs(
        [files[0], files[2]],
        Pairs(np.array([0]), np.array([1]), np.array([0.9], np.float32)),
        identical=lambda a, b: False,
        cache=cache,
    )
    assert later.same.tolist() == [True], later.reasons
    assert later.stats["keypoints_extracted"] == 2 and later.stats["frame_to_frame"] == 0, later.stats
    upgraded = cached_photo()
    assert upgraded.keypoints and len(upgraded.points) > 100
    np.testing.assert_array_equal(upgraded.descriptors, V.extract(files[0].path).descriptors)


def test_an_image_is_read_once_when_its_pairs_fall_in_different_blocks(photo, tmp_path, monkeypatch):
    """Whether an image needs keypoints is decided over all its pairs, not one block's: a photo whose copy of
    its own shape is checked in one block and whose crop of another shape in the next is read once, with
    keypoints, and the stats count what was read."""
    from core import confirm
    from core.results import Pairs

    w, h = photo.size
    made = {
        "photo.jpg": photo,
        "small.jpg": photo.resize((w // 2, h // 2)),
        "cropped.jpg": photo.crop((0, 0, photo.width * 3 // 5, photo.height)),  # another shape
    }
    files = _saved(tmp_path, made)
    reads = []
    extract = V.extract

    def counted(image, source=None, *, keypoints=True):
        reads.append((Path(str(source or image)).name, keypoints))
        return extract(image, source, keypoints=keypoints)

    monkeypatch.setattr(V, "extract", counted)
    monkeypatch.setattr(confirm, "PAIRS_PER_BLOCK", 1)
    out = confirm.confirm_pairs(
        files,
        Pairs(np.array([0, 0]), np.array([1, 2]), np.full(2, 0.9, np.float32)),
        identical=lambda a, b: False,
        workers=1,
    )
    assert out.same.tolist() == [True, True], out.reasons
    assert sorted(reads) == [("cropped.jpg", True), ("photo.jpg", True), ("small.jpg", False)], reads
    assert out.stats["features_extracted"] == 3 and out.stats["keypoints_extracted"] == 2, out.stats


def test_a_failed_read_for_keypoints_keeps_the_features_an_image_had(photo, tmp_path, monkeypatch):
    """An image cached without keypoints is read again when a pair needs them; if that read fails (the file
    changed or went away meanwhile), the pair is not compared, but the image's other pairs are still
    compared with the features it had, rather than "could not be read"."""
    from core import confirm
    from core.cache import EmbeddingCache
    from core.results import Pairs

    w, h = photo.size
    made = {
        "photo.jpg": photo,
        "jpeg.jpg": _copy(photo, "jpeg"),
        "crop.jpg": photo.crop((w // 8, h // 8, w - w // 8, h - h // 8)),
        "small.jpg": photo.resize((w // 2, h // 2)),
    }
    files = _saved(tmp_path, made)
    cache = EmbeddingCache(tmp_path / "cache")
    first = confirm.confirm_pairs(
        files[:2],
        Pairs(np.array([0]), np.array([1]), np.array([0.95], np.float32)),
        identical=lambda a, b: False,
        cache=cache,
    )
    assert first.same.tolist() == [True] and first.stats["keypoints_extracted"] == 0, first.stats

    extract = V.extract

    def photo_gone_for_keypoints(image, source=None, *, keypoints=True):
        if keypoints and str(source or image).endswith("photo.jpg"):
            raise OSError("No such file or directory")
        return extract(image, source, keypoints=keypoints)

    monkeypatch.setattr(V, "extract", photo_gone_for_keypoints)
    monkeypatch.setattr(confirm, "PAIRS_PER_BLOCK", 1)  # the crop's pair first, then the small copy's
    later = confirm.confirm_pairs(
        files,
        Pairs(np.array([0, 0]), np.array([2, 3]), np.full(2, 0.9, np.float32)),
        identical=lambda a, b: False,
        cache=cache,
        workers=1,
    )
    assert not later.same[0], later.reasons  # the crop needed the photo's keypoints
    assert later.same[1] and "frame to frame" in later.reasons[1], later.reasons


@pytest.mark.parametrize("size", [(3000, 2), (2, 3000), (800, 1)])
def test_a_picture_one_pixel_thin_at_the_check_size_is_compared_not_a_crash(photo, tmp_path, size):
    """A strip so thin that it is one pixel high at 384 px made ORB's pyramid raise a cv2.error, which no
    handler expected: the whole scan's check stopped. It has no keypoints (none under 31 px), so its pairs
    are simply not the same capture."""
    from core import confirm
    from core.results import Pairs

    strip = photo.resize(size)
    f = V.extract(strip)
    assert f.keypoints and len(f.points) == 0
    light = V.extract(strip, keypoints=False)
    assert len(V.with_keypoints(light).points) == 0
    assert not V.verify(f, V.extract(strip.transpose(Image.Transpose.FLIP_LEFT_RIGHT))).same
    files = _saved(tmp_path, {"strip.png": strip, "copy.png": strip.copy(), "photo.jpg": photo})
    out = confirm.confirm_pairs(
        files,
        Pairs(np.array([0, 0]), np.array([1, 2]), np.full(2, 0.9, np.float32)),
        identical=lambda a, b: False,
    )
    assert not out.same.any() and all(out.reasons), out.reasons


def test_an_unexpected_error_extracting_one_image_leaves_its_pairs_unconfirmed(photo, tmp_path, monkeypatch):
    """Any failure extracting one image's features (an OpenCV assertion, a library bug) must not stop the
    scan's check: that image's pairs stay unconfirmed, and the others are still compared."""
    from core import confirm
    from core.results import Pairs

    made = {"photo.jpg": photo, "jpeg.jpg": _copy(photo, "jpeg"), "odd.jpg": _copy(photo, "noise")}
    files = _saved(tmp_path, made)
    extract = V.extract

    def fails_on_odd(image, source=None, *, keypoints=True):
        if str(source or image).endswith("odd.jpg"):
            raise RuntimeError("an assertion deep in a library")
        return extract(image, source, keypoints=keypoints)

    monkeypatch.setattr(V, "extract", fails_on_odd)
    out = confirm.confirm_pairs(
        files,
        Pairs(np.array([0, 0]), np.array([1, 2]), np.full(2, 0.9, np.float32)),
        identical=lambda a, b: False,
    )
    assert out.same.tolist() == [True, False], out.reasons
    assert "could not be read again" in out.reasons[1]


@pytest.mark.parametrize("size", [(2800, 400), (4600, 400), (1920, 250)])
def test_a_wide_panorama_and_its_copy_are_compared_without_killing_the_process(photo, tmp_path, size):
    """A panorama of about 6:1 to 13:1 has a thumbnail 8-31 px high, on which OpenCV's optical flow crashed
    the whole process (a segfault: no exception to catch), in a scan and in the compare view. Run in a child
    process, so that a crash fails this test rather than the test run."""
    import subprocess
    import sys

    pano, copy = tmp_path / "pano.jpg", tmp_path / "pano_copy.jpg"
    wide = photo.resize(size)
    wide.save(pano, quality=92)
    wide.save(copy, quality=75)
    code = (
        "import sys; from core import verify as V; "
        "a, b = V.extract(sys.argv[1]), V.extract(sys.argv[2]); v = V.verify(a, b); "
        "print(a.thumb.shape[0], v.same, v.reason)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(pano), str(copy)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    high, same, _ = run.stdout.split(" ", 2)
    assert int(high) < 32  # the thin thumbnail that crashed
    assert same == "True", run.stdout


def test_a_picture_on_a_canvas_that_cannot_be_read_larger_keeps_the_picture_it_has(
    photo, tmp_path, monkeypatch
):
    """The small picture on a canvas is read again larger; when that read fails (a huge PNG over the memory
    budget at the larger size), the features come from the picture already read, rather than none at all
    ("could not be read again to compare them" for a pair the scan had grouped)."""
    from core.errors import DecodeError

    _small_on_a_canvas(photo, tmp_path / "screenshot.jpg")
    read = V._read

    def no_larger(path, side):
        if side > V.DETECT_SIDE:
            raise DecodeError("too large to decode within the memory budget")
        return read(path, side)

    monkeypatch.setattr(V, "_read", no_larger)
    shot = V.extract(tmp_path / "screenshot.jpg")
    assert shot.box != (0.0, 0.0, 1.0, 1.0) and shot.native < V.DETECT_SIDE  # the trimmed picture as read


@pytest.mark.parametrize("turn", list(Image.Transpose))
def test_a_turned_copy_is_compared_frame_to_frame_turned_exactly(photo, original, turn):
    """A copy turned a quarter (a phone photo set upright, or not) or half: compared frame to frame in its
    turned frame, without keypoints, so the sub-pixel error of a keypoint fit does not blur its fine band (it
    had, and such copies read as doubtful: ``doubt``)."""
    turned = photo.transpose(turn)
    light = V.extract(turned, keypoints=False)
    verdict = V.verify(V.extract(photo, keypoints=False), light)  # no keypoints to fall back on
    assert verdict.same and verdict.measures["frame"] == 1.0, verdict.reason
    assert verdict.measures["r2_1"] > 0.97, verdict.measures
    mirroring = {
        Image.Transpose.FLIP_LEFT_RIGHT,
        Image.Transpose.FLIP_TOP_BOTTOM,
        Image.Transpose.TRANSPOSE,
        Image.Transpose.TRANSVERSE,
    }
    assert bool(verdict.mirrored) == (turn in mirroring)
    # the transform maps the copy's corners onto the original's: the copy's top left is where the turn put it
    w, h = photo.size
    mark = photo.copy()
    mark.paste((255, 0, 0), (0, 0, w // 8, h // 8))  # a red corner, found again through the transform
    m = np.asarray(mark.transpose(turn).convert("RGB"))
    ys, xs = np.nonzero((m[..., 0] > 200) & (m[..., 1] < 60))
    centre_b = np.array([(xs.mean() + 0.5) / m.shape[1], (ys.mean() + 0.5) / m.shape[0]])
    centre_a = verdict.transform[:, :2] @ centre_b + verdict.transform[:, 2]
    np.testing.assert_allclose(centre_a, [1 / 16, 1 / 16], atol=0.02)
    assert V.frame_shapes(photo.size, turned.size)


def test_clean_copies_are_sure_and_other_captures_read_as_doubtful(photo, original):
    """The doubt score on real pairs: plain copies (re-saved, resized, flipped, turned) are far under the
    threshold and their reason is a plain one; every other-shot pair's full measures are over it (the rule
    rejects those anyway: what the score catches are the few it lets through, measured in the report)."""
    for kind in ("downscale", "flip", "rotate_90", "grayscale", "sepia"):
        v = V.verify(original, V.extract(_copy(photo, kind, seed=3)))
        assert v.same and not V.unsure(v.reason) and V.doubt(v.measures) < V.DOUBT_FROM - 0.5, kind
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=80)  # re-saved
    resaved = V.verify(original, V.extract(Image.open(buf)))
    assert resaved.same and not V.unsure(resaved.reason)
    for kind, (fa, fb) in OTHER_SHOTS.items():
        v = V.verify(V.extract(DATA / fa), V.extract(DATA / fb), complete=True)
        assert V.doubt(v.measures) > V.DOUBT_FROM, f"{kind}: {V.doubt(v.measures)} {v.measures}"


def test_a_verified_pair_over_the_doubt_threshold_stays_the_same_and_says_it_is_unsure(
    photo, original, monkeypatch
):
    copy = V.extract(_copy(photo, "text"))
    monkeypatch.setattr(V, "DOUBT_FROM", np.inf)
    plain = V.verify(original, copy)
    assert plain.same
    score = V.doubt(plain.measures)
    monkeypatch.setattr(V, "DOUBT_FROM", score - 0.01)
    v = V.verify(original, copy)
    assert v.same and V.unsure(v.reason) and plain.reason in v.reason
    assert "another exposure or a burst frame" in v.reason
    monkeypatch.setattr(V, "DOUBT_FROM", score + 0.01)
    assert V.verify(original, copy).reason == plain.reason
    # a pair that is not the same is never "unsure": it is not a duplicate at all
    monkeypatch.setattr(V, "DOUBT_FROM", -np.inf)
    a, b = (V.extract(DATA / f) for f in OTHER_SHOTS["burst (players moved)"])
    other = V.verify(a, b)
    assert not other.same and not V.unsure(other.reason)


def test_a_copy_a_stop_brighter_or_darker_is_a_duplicate_the_check_is_not_sure_of(photo, original):
    """Brightness a stop or more apart (``TONE_FROM``) is what another exposure looks like, and at the
    sizes the check sees nothing tells it from a brightened copy: such a pair stays the same photo but is
    unsure (a trial: auto-select marked a real exposure a stop darker, which the check was sure of). A
    re-saved or recoloured copy keeps its brightness and stays sure. (The real bracket pairs it catches are
    in ``shots/``: ``training.verify_eval``; this folder's Oxford pair is only a fifth of a stop apart.)"""
    from PIL import ImageEnhance

    for factor in (0.55, 1.6):
        brighter = V.extract(ImageEnhance.Brightness(photo).enhance(factor))
        v = V.verify(original, brighter)
        assert v.same and V.unsure(v.reason) and v.measures["tone"] >= V.TONE_FROM, (factor, v.measures)
        assert V.doubtful(v.measures)
    for kind in ("downscale", "jpeg", "warm", "grayscale"):
        v = V.verify(original, V.extract(_copy(photo, kind, seed=3)))
        assert v.same and v.measures["tone"] < V.TONE_FROM / 2 and not V.unsure(v.reason), (kind, v.measures)
