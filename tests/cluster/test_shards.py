"""Parquet shards without Ray: rows come back as they went in, a shard is whole or absent, a folder holds one
model's shards."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.cache import CachedEntry
from core.cluster.shards import ShardStore, write_shard
from core.results import ImageRecord, ModelInfo

D, F = 8, 12


def _entries() -> list[CachedEntry]:
    rng = np.random.default_rng(0)
    unit = lambda n: (v := rng.normal(size=n)) / np.linalg.norm(v)  # noqa: E731
    weird = "/photos/caf\udce9.jpg"  # a name that is not valid UTF-8 (surrogate-escaped)
    return [
        CachedEntry(
            ImageRecord("/photos/a.jpg", 10, 5, 640, 480, "JPEG", "2021-06-05 07:41:12", "Canon|1"),
            unit(D).astype(np.float16),
            unit(F).astype(np.float16),
            layout=(1 << 63) + 12345,  # above int64's range: stored unsigned
        ),
        CachedEntry(
            ImageRecord(weird, 11, 6, 480, 640, "PNG"),
            unit(D).astype(np.float16),
            unit(F).astype(np.float16),
            turned=np.stack([unit(D), unit(D)]).astype(np.float16),
            blank=True,
        ),
        CachedEntry(ImageRecord("/photos/bad.jpg", 3, 7, 0, 0, ""), error="file is truncated"),
    ]


def _store(folder, key="model-a") -> ShardStore:
    return ShardStore(folder, key, ModelInfo("m", "sha"), D, F)


def test_rows_come_back_as_written(tmp_path):
    store = _store(tmp_path)
    store.add(write_shard(tmp_path, _entries(), D, F))
    back = store.lookup([(e.path, e.record.size, e.record.mtime_ns) for e in _entries()])
    for e in _entries():
        got = back[e.path]
        assert got.record == e.record and got.record.capture == e.record.capture
        assert got.error == e.error and got.blank == e.blank
        assert got.layout == e.layout if not e.error else got.layout is None
        for a, b in ((got.embedding, e.embedding), (got.features, e.features), (got.turned, e.turned)):
            assert (a is None and b is None) or (a.dtype == np.float16 and np.array_equal(a, b))


def test_a_changed_file_is_not_in_the_shards(tmp_path):
    store = _store(tmp_path)
    store.add(write_shard(tmp_path, _entries(), D, F))
    assert store.lookup([("/photos/a.jpg", 10, 999)]) == {}
    assert store.done()["/photos/a.jpg"] == (10, 5)


def test_reopening_adopts_finished_shards_and_drops_unfinished_ones(tmp_path):
    store = _store(tmp_path)
    row = write_shard(tmp_path, _entries(), D, F)  # a worker wrote it; the driver died before recording it
    assert json.loads(store.manifest_path.read_text())["shards"] == []
    (tmp_path / ".shard-abc.parquet.123.tmp").write_bytes(b"PAR1 half a shard")
    (tmp_path / "shard-garbage.parquet").write_bytes(b"not parquet")
    again = _store(tmp_path)
    assert list(again.shards) == [row["file"]]
    assert json.loads(again.manifest_path.read_text())["rows"] == 3
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    assert (tmp_path / "shard-garbage.bad").exists()


def test_a_folder_holds_one_models_shards(tmp_path):
    _store(tmp_path)
    with pytest.raises(ValueError, match="another model"):
        _store(tmp_path, key="model-b")


def test_shards_written_before_layouts_read_without_one(tmp_path):
    """Shards from before the layout hash was kept lack its column: their rows come back with no layout (a
    scan then nominates pairs by cosine alone), not an error."""
    import pyarrow.parquet as pq

    store = _store(tmp_path)
    info = write_shard(tmp_path, _entries(), D, F)
    path = tmp_path / info["file"]
    with_layouts = _store(tmp_path / "new")
    with_layouts.add(write_shard(tmp_path / "new", _entries(), D, F))
    (name,) = with_layouts.shards
    expected = [0 if e.layout is None else e.layout for e in _entries()]
    assert with_layouts.layouts(name).tolist() == expected and with_layouts.layouts(name).dtype == np.uint64
    pq.write_table(pq.read_table(path).drop_columns(["layout"]), path)
    store.add(info)
    back = store.lookup([(e.path, e.record.size, e.record.mtime_ns) for e in _entries()])
    assert len(back) == 3 and all(e.layout is None for e in back.values())
    assert back["/photos/a.jpg"].embedding is not None
    assert store.layouts(info["file"]).tolist() == [0, 0, 0]  # near nothing: pairs by cosine alone
