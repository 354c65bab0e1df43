"""A broken cache degrades to no cache, never to a failed scan; saved indexes are verified before use; the
cache is keyed by everything that determines an embedding. Each case was a bug found by a fault probe."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import copy_demo

from core.cache import CachedEntry, EmbeddingCache
from core.results import ImageRecord

EXE = Path(sys.executable).with_name("lookalike")
FILES = [
    "Camera/kite_sky.jpg",
    "Downloads/kite_sky_small.jpg",
    "Camera/forest_path.jpg",
    "Backup/forest_path.jpg",
    "Camera/storm_clouds.jpg",
]


@pytest.fixture(scope="module")
def lib(tmp_path_factory) -> Path:
    return copy_demo(tmp_path_factory.mktemp("lib"), FILES)


def entry(path: str) -> CachedEntry:
    import numpy as np

    v = np.ones(8, np.float32) / 8**0.5
    return CachedEntry(ImageRecord(path, 10, 20, 4, 3, "JPEG"), v, v)


def test_a_full_disk_stops_writing_but_keeps_reading(tmp_path):
    """`database or disk is full` made every scan and rescan fail."""
    cache = EmbeddingCache(tmp_path)
    cache.store("m", [entry("/a.jpg")])
    pages = cache._conn.execute("PRAGMA page_count").fetchone()[0]
    cache._conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own 'disk is full'
    cache.store("m", [entry(f"/big{i}.jpg") for i in range(2000)])  # must not raise
    assert any("could not write" in w for w in cache.warnings)
    assert set(cache.lookup("m", [("/a.jpg", 10, 20)])) == {"/a.jpg"}  # reading still works
    cache.close()


def test_an_unusable_cache_folder_scans_without_a_cache(lib, tmp_path, engine_factory):
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder should be")
    engine = engine_factory(not_a_folder)
    result = engine.scan([lib]).result(engine.bundle.duplicate_threshold)
    assert len(result.files) == len(FILES) and len(result.groups) == 2
    assert any("scanning without it" in w for w in result.stats["warnings"])


HOLDER = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1])
c.execute("PRAGMA journal_mode=WAL")
c.execute("CREATE TABLE IF NOT EXISTS scratch (x)")
c.executemany("INSERT INTO scratch VALUES (?)", [(b"x" * 4000,)] * 200)
c.commit()
c.execute("BEGIN")
c.execute("INSERT INTO scratch VALUES (2)")
print("ready", flush=True)
time.sleep(60)
"""


def test_cache_deleted_while_another_scan_runs(lib, tmp_path, engine_factory):
    """Deleting cache.sqlite3 under a running scan (another process) left its -wal/-shm behind: `disk I/O
    error` for every later scan."""
    cache_dir = tmp_path / "c"
    engine = engine_factory(cache_dir)
    engine.scan([lib])
    other = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(cache_dir / "cache.sqlite3")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout.readline().strip() == "ready"
        (cache_dir / "cache.sqlite3").unlink()  # a person cleans the cache by hand
        assert Path(f"{cache_dir / 'cache.sqlite3'}-wal").exists()
        lib2 = engine.scan([lib])
        assert len(lib2.files) == len(FILES) and lib2.result(engine.bundle.duplicate_threshold).groups
        assert engine.scan([lib]).stats["cached"] == len(FILES)  # and the new cache works
    finally:
        other.kill()
        other.wait()


def test_corrupt_copies_are_pruned(tmp_path):
    for t in (1, 2, 3):
        (tmp_path / f"cache.sqlite3.corrupt-{t}").write_bytes(b"old")
    (tmp_path / "cache.sqlite3").write_bytes(b"this is not a database" * 100)
    cache = EmbeddingCache(tmp_path)
    assert cache.usable and any("moved it to" in w for w in cache.warnings)
    assert len(list(tmp_path.glob("cache.sqlite3.corrupt-*"))) == 1
    cache.close()


def _similar(lib: Path, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(EXE),
            "similar",
            str(lib / FILES[0]),
            "--in",
            str(lib),
            "--json",
            "-",
            "--cache-dir",
            str(cache),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_saved_index_is_rebuilt(lib, tmp_path, damage):
    """A corrupt saved Annoy index crashed the process (rc 139) or answered with wrong neighbours."""
    cache = tmp_path / "c"
    first = _similar(lib, cache)
    assert first.returncode == 0, first.stderr
    (ann,) = (cache / "index").glob("*.ann")
    data = bytearray(ann.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 3]
    elif damage == "flip":
        for k in range(0, len(data), 97):
            data[k] ^= 0x5A
    ann.write_bytes(bytes(data))
    again = _similar(lib, cache)
    assert again.returncode == 0, (again.returncode, again.stderr)
    assert json.loads(again.stdout) == json.loads(first.stdout)


def test_stale_indexes_are_pruned(lib, tmp_path):
    """Each `similar` after any file change wrote a new full-size index and kept every old one."""
    root = copy_demo(tmp_path / "lib", FILES)
    cache = tmp_path / "c"
    for k in range(4):
        shutil.copy(root / FILES[2], root / f"extra{k}.jpg")  # the library changes between runs
        assert _similar(root, cache).returncode == 0
    assert len(list((cache / "index").glob("*.ann"))) <= 2
    assert len(list((cache / "index").glob("*.sum"))) <= 2


def test_the_cache_key_includes_the_onnx_graph(lib, tmp_path, engine_factory):
    """A different ONNX file with the same weights reused the other model's cached embeddings."""
    import hashlib

    import onnx

    from core.embed import load_bundle
    from core.resources import resource_path

    model = tmp_path / "model"
    shutil.copytree(resource_path("model"), model)
    graph = load_bundle(model).cpu_graph()  # the one this CPU runs: float, or int8 (core.embed)
    manifest = json.loads((model / "manifest.json").read_text())
    path = model / manifest[graph]["file"]
    proto = onnx.load(str(path))
    proto.doc_string = "the same weights, another export"
    onnx.save(proto, str(path))
    manifest[graph]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (model / "manifest.json").write_text(json.dumps(manifest))
    cache = tmp_path / "c"
    assert engine_factory(cache).scan([lib]).stats["embedded"] == len(FILES)
    assert engine_factory(cache).scan([lib]).stats["cached"] == len(FILES)
    other = engine_factory(cache, model_dir=model).scan([lib])
    assert other.stats["embedded"] == len(FILES) and other.stats["cached"] == 0


def test_no_scan_fails_for_cache_trouble_on_open(tmp_path):
    """A read-only or unopenable database is a warning, not an exception (the engine gets an unusable
    cache)."""
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "cache.sqlite3").mkdir()  # a folder where the database file should be: SQLite cannot open it
    cache = EmbeddingCache(folder)
    assert not cache.usable and cache.warnings
    assert cache.lookup("m", [("/a.jpg", 1, 2)]) == {}
    cache.store("m", [entry("/a.jpg")])  # a no-op, no exception
    assert (folder / "cache.sqlite3").is_dir()  # and it was not moved aside as if it were corrupt
    cache.close()
    assert os.listdir(folder) == ["cache.sqlite3"]
