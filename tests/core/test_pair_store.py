"""A rescan of an unchanged library reads its pairs back instead of finding them again; anything changed or
damaged means finding them again, with the same result."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
from helpers import copy_demo

from core.engine import Engine, pair_cosines
from core.pair_store import KEEP, PairStore
from core.results import Pairs


def _scan(tmp_path, folder):
    engine = Engine(device="cpu", cache_dir=tmp_path / "cache")
    lib = engine.scan([folder])
    return lib, lib.result(engine.default_threshold())


def _same(p: Pairs, q: Pairs) -> bool:
    return (
        np.array_equal(p.a, q.a) and np.array_equal(p.b, q.b) and np.array_equal(p.similarity, q.similarity)
    )


def _tables(tmp_path):
    return sorted((tmp_path / "cache" / "index").glob("pairs-*.npz"))


def test_an_unchanged_library_reads_its_pairs_back(tmp_path):
    folder = copy_demo(tmp_path / "photos")
    first, r1 = _scan(tmp_path, folder)
    assert not first.stats["pairs_reused"] and len(first.pairs) > 10
    again, r2 = _scan(tmp_path, folder)
    assert again.stats["pairs_reused"]
    assert _same(first.pairs, again.pairs)
    # each pair's features cosine (the similar shots' second test) came back with it, as it was worked out
    assert again._feature_sims is not None
    assert np.array_equal(again._feature_sims, pair_cosines(first.features, first.pairs.a, first.pairs.b))
    assert [g.paths for g in r1.groups] == [g.paths for g in r2.groups]
    assert [g.paths for g in r1.similar_groups] == [g.paths for g in r2.similar_groups]


def test_a_changed_file_means_finding_the_pairs_again(tmp_path):
    folder = copy_demo(tmp_path / "photos")
    first, _ = _scan(tmp_path, folder)
    photo = next(folder.rglob("*.jpg"))
    st = photo.stat()
    os.utime(photo, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again, _ = _scan(tmp_path, folder)
    assert not again.stats["pairs_reused"]
    assert _same(first.pairs, again.pairs)  # same pixels, same pairs
    assert len(_tables(tmp_path)) == 2  # the new library's and the old one's


def test_a_damaged_table_is_found_again_with_a_warning(tmp_path, caplog):
    folder = copy_demo(tmp_path / "photos")
    first, _ = _scan(tmp_path, folder)
    (table,) = _tables(tmp_path)
    data = bytearray(table.read_bytes())
    data[len(data) // 2] ^= 0xFF
    table.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="core.pair_store"):
        again, _ = _scan(tmp_path, folder)
    assert not again.stats["pairs_reused"] and _same(first.pairs, again.pairs)
    assert "unusable" in caplog.text
    # A consistent table that names files outside the library is not trusted either.
    key = table.name[len("pairs-") : -len(".npz")]
    PairStore(table.parent).save(key, Pairs(np.array([0]), np.array([10**6]), np.array([0.9])))
    assert PairStore(table.parent).load(key, len(again.files)) is None
    third, _ = _scan(tmp_path, folder)
    assert not third.stats["pairs_reused"] and _same(first.pairs, third.pairs)


def test_only_the_most_recent_tables_are_kept(tmp_path):
    store = PairStore(tmp_path / "index")
    pairs = Pairs(np.array([0, 1]), np.array([1, 2]), np.array([0.9, 0.8]))
    for k in range(KEEP + 3):
        store.save(f"{k:032x}", pairs)
        os.utime(store._path(f"{k:032x}"), (k, k))
    left = sorted(p.name for p in (tmp_path / "index").glob("pairs-*.npz"))
    assert left == [f"pairs-{k:032x}.npz" for k in range(3, KEEP + 3)]
    assert _same(store.load(f"{KEEP + 2:032x}", 3).pairs, pairs)
    assert not list((tmp_path / "index").glob(".pairs-*"))  # no temporary file left


def test_without_a_cache_nothing_is_saved(tmp_path):
    folder = copy_demo(tmp_path / "photos", ["Camera/ladybird.jpg", "Downloads/ladybird.png"])
    engine = Engine(device="cpu", cache_dir=tmp_path / "cache", use_cache=False)
    assert not engine.scan([folder]).stats["pairs_reused"]
    assert not engine.scan([folder]).stats["pairs_reused"]
    assert not (tmp_path / "cache" / "index").exists() or not _tables(tmp_path)


def test_features_cosines_are_saved_and_checked_with_the_pairs(tmp_path):
    store = PairStore(tmp_path / "index")
    pairs = Pairs(np.array([0, 1]), np.array([1, 2]), np.array([0.9, 0.8]))
    store.save("a" * 32, pairs, np.array([0.7, 0.4]))
    saved = store.load("a" * 32, 3)
    assert _same(saved.pairs, pairs) and saved.features.tolist() == pytest.approx([0.7, 0.4])
    assert store.load("a" * 32, 3) is not None
    # a table whose features were damaged is not trusted
    path = store._path("a" * 32)
    data = bytearray(path.read_bytes())
    at = data.index(np.array([0.7, 0.4], np.float32).tobytes())
    data[at + 5] ^= 0x40
    path.write_bytes(bytes(data))
    assert store.load("a" * 32, 3) is None
    store.save("b" * 32, pairs)  # without features: the pairs alone
    assert store.load("b" * 32, 3).features is None


def test_an_unchanged_librarys_groups_are_read_back_at_the_same_thresholds(tmp_path, monkeypatch, caplog):
    """Groups made from saved verdicts are saved too; a rescan at the same thresholds and ignored pairs
    reads them back (grouping itself is not run), anything else groups again; damage means grouping again."""
    import core.engine as engine_module

    folder = copy_demo(tmp_path / "photos")
    engine = Engine(device="cpu", cache_dir=tmp_path / "cache")
    first = engine.scan([folder])
    t = engine.default_threshold()
    made = first.result(t)
    assert made.groups and made.similar_groups
    again = engine.scan([folder])

    def no_grouping(*args, **kwargs):
        raise AssertionError("grouped again")

    with monkeypatch.context() as m:
        m.setattr(engine_module, "group_pairs", no_grouping)
        read = again.result(t)
        assert read == made and read.similar_groups == made.similar_groups
        with pytest.raises(AssertionError, match="grouped again"):
            again.result(min(1.0, t + 0.05))  # another strictness
        pair = tuple(sorted(m.file.path for m in made.groups[0].members[:2]))
        again.ignored.add(pair)
        with pytest.raises(AssertionError, match="grouped again"):
            again.result(t)  # another set of ignored pairs
        again.ignored.discard(pair)
    # a passing regrouping is not saved; the next one at that strictness groups again
    again.result(min(1.0, t + 0.05), remember=False)
    with monkeypatch.context() as m:
        m.setattr(engine_module, "group_pairs", no_grouping)
        with pytest.raises(AssertionError, match="grouped again"):
            again.result(min(1.0, t + 0.05))
    # damaged: grouped again, the same groups
    for table in (tmp_path / "cache" / "index").glob("groups-*.npz"):
        data = bytearray(table.read_bytes())
        data[len(data) // 2] ^= 0xFF
        table.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="core.pair_store"):
        regrouped = engine.scan([folder]).result(t)
    assert "unusable" in caplog.text
    assert regrouped == made and regrouped.similar_groups == made.similar_groups
