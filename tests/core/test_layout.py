"""The grey-level layout hash (core.layout): strong colour filters keep it, other photos do not share it, and
a scan checks a pair whose layouts match even when the embedding put it under the candidate threshold."""

from __future__ import annotations

import shutil
import sqlite3

import numpy as np
import pytest
from helpers import DATA
from PIL import Image

from core import layout
from core.decode import decode_for_model
from training.augment import COLOUR_FILTERS

VERIFY = DATA / "verify"
OTHERS = ["leuven_a.jpg", "toronto_a.jpg", "facade_a.jpg", "uttower_a.jpg"]


def _hash(path) -> int:
    return decode_for_model(str(path), 224).layout


def _bits(a: int, b: int) -> int:
    return int(layout.distance(np.array([a], np.uint64), np.array([b], np.uint64))[0])


@pytest.fixture(scope="module")
def filtered(tmp_path_factory):
    root = tmp_path_factory.mktemp("layout")
    photo = Image.open(VERIFY / "photo.jpg").convert("RGB")
    photo.save(root / "photo.jpg", quality=95)
    for k, kind in enumerate(("duotone", "sepia", "channel_swap", "cool")):
        COLOUR_FILTERS[kind](photo, np.random.default_rng([3, k])).convert("RGB").save(
            root / f"photo_{kind}.jpg", quality=90
        )
    return root


def test_colour_filtered_copies_keep_the_layout(filtered):
    original = _hash(filtered / "photo.jpg")
    for kind in ("duotone", "sepia", "channel_swap", "cool"):
        assert _bits(original, _hash(filtered / f"photo_{kind}.jpg")) <= layout.NEAR_BITS, kind


def test_different_photos_have_different_layouts():
    hashes = [_hash(VERIFY / name) for name in ["photo.jpg", *OTHERS]]
    for i in range(len(hashes)):
        for j in range(i + 1, len(hashes)):
            assert _bits(hashes[i], hashes[j]) > layout.NEAR_BITS + 4


def test_hash_shape_and_storage_round_trip():
    h = _hash(VERIFY / "photo.jpg")
    assert 0 < h < 1 << 64
    assert bin(h).count("1") == 31  # 63 coefficients cut at their median; the DC bit is always 0
    assert layout.from_signed(layout.to_signed(h)) == h
    assert -(1 << 63) <= layout.to_signed(h) < 1 << 63
    grey = np.asarray(Image.open(VERIFY / "photo.jpg").convert("L").resize((224, 224)))
    assert isinstance(layout.layout_hash(grey), int)
    with pytest.raises(ValueError):
        layout.layout_hash(np.zeros(5, np.uint8))


def test_distance_without_numpy_bitwise_count(monkeypatch):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 1 << 63, 50, dtype=np.uint64) * np.uint64(2)
    b = rng.integers(0, 1 << 63, 50, dtype=np.uint64)
    expected = np.array([bin(int(x) ^ int(y)).count("1") for x, y in zip(a, b, strict=True)])
    assert (layout.distance(a, b) == expected).all()
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    assert (layout.distance(a, b) == expected).all()


def test_a_near_layout_pair_is_checked_below_the_candidate_cosine(filtered, tmp_path, engine_factory):
    import json

    from core.resources import resource_path

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("photo.jpg", "photo_duotone.jpg"):
        shutil.copy(filtered / name, folder / name)
    for name in OTHERS:
        shutil.copy(VERIFY / name, folder / name)
    # A model whose candidate cosine is 0.995: the duotone copy (cosine ~0.9 to its original) is no candidate
    # by its cosine, as a strong filter leaves a copy under the bundled 0.80; its layout makes it one, and the
    # check finds it the same picture.
    model = tmp_path / "model"
    shutil.copytree(resource_path("model"), model)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["thresholds"]["candidate"] = 0.995
    (model / "manifest.json").write_text(json.dumps(manifest))
    engine = engine_factory(tmp_path / "cache", model_dir=model)
    lib = engine.scan([folder])
    k = lib.index_of(str(folder / "photo.jpg")), lib.index_of(str(folder / "photo_duotone.jpg"))
    row = [r for r in range(len(lib.pairs)) if {int(lib.pairs.a[r]), int(lib.pairs.b[r])} == set(k)]
    assert len(row) == 1 and lib.pairs.similarity[row[0]] < 0.995
    assert lib.near_layout(0.995)[row[0]] and lib.same[row[0]], lib.reasons[row[0]]
    result = lib.result(engine.default_threshold())
    names = [{m.file.path.rsplit("/", 1)[1] for m in g.members} for g in result.groups]
    assert names == [{"photo.jpg", "photo_duotone.jpg"}]
    # counted as the loosest checked candidate: shown up to that strictness, not above
    assert [m.similarity for m in result.pairs] == [pytest.approx(0.995)]
    assert lib.result(0.996).groups == ()
    assert lib.stats["verification"]["verified"] == 1
    # Asked for more than the candidate cosine, nothing under the threshold asked for is rescued.
    strict = engine_factory(tmp_path / "cache2", model_dir=model).scan([folder], verify_from=0.999)
    assert strict.result(0.999).groups == () and strict.stats["verification"]["verified"] == 0


def test_rows_cached_without_a_layout_are_embedded_again(filtered, tmp_path, engine_factory):
    engine = engine_factory(tmp_path / "cache")
    first = engine.scan([filtered])
    assert first.stats["embedded"] == 5 and (first.layouts != 0).all()
    db = next((tmp_path / "cache").rglob("*.sqlite3"))
    with sqlite3.connect(db) as conn:  # as a cache written before layouts were kept leaves them
        conn.execute("UPDATE files SET layout = NULL")
    conn.close()
    again = engine_factory(tmp_path / "cache").scan([filtered])
    assert again.stats["embedded"] == 5
    assert (again.layouts == first.layouts).all()
    assert engine_factory(tmp_path / "cache").scan([filtered]).stats["embedded"] == 0


def test_verdicts_are_named_for_the_pairs_checked():
    """Which pairs are checked depends on the layouts too (a scan from shards without them checks fewer):
    verdicts, and the groups saved beside them, must not be read back for another set of checked pairs."""
    from core.confirm import verdicts_key

    same = verdicts_key("library", 0.8, np.array([1, 2, 3]))
    assert same == verdicts_key("library", 0.8, np.array([1, 2, 3]))
    assert same != verdicts_key("library", 0.8, np.array([1, 2]))
    assert same != verdicts_key("library", 0.85, np.array([1, 2, 3]))
