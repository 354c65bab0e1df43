"""The scan gives memory back: the model is dropped once embedding is done, and decoded photos do not leave
glibc's heap fragmented (core.memory)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from helpers import DEMO

from core.embed import Embedder
from core.memory import tune_allocator


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator, /proc")
def test_releasing_the_model_returns_its_memory_and_the_next_call_loads_it_again():
    assert tune_allocator()  # glibc on Linux: the mmap threshold is set
    emb = Embedder()
    import onnxruntime  # noqa: F401 - its library's pages are not the model's memory

    batch = np.random.default_rng(0).integers(0, 255, (4, emb.size, emb.size, 3), np.uint8)
    # the first session in a process initialises ONNX Runtime itself (~13 MB, kept): a load and release
    # first, so that what is measured is the model's own memory whether or not an earlier test loaded one
    first = emb.embed_arrays(batch)[0].copy()  # ONNX Runtime's outputs live in the session's memory
    emb.release()
    before = _rss_mb()
    emb.embed_arrays(batch)
    loaded = _rss_mb()
    emb.release()
    released = _rss_mb()
    # the session's weights and arena: ~108 MB measured for the float graph, ~29 MB for the int8 one; all
    # of it goes back
    assert loaded - before > 20 and released - before < 10, (before, loaded, released)
    again = emb.embed_arrays(batch)[0]
    np.testing.assert_allclose(again, first, atol=1e-5)


def test_a_scan_ends_without_the_model_loaded_and_a_later_query_still_works(engine_factory, tmp_path):
    engine = engine_factory(tmp_path / "cache")
    lib = engine.scan(DEMO / "Camera")
    assert lib.stats["embedded"] > 0
    assert "_backend" not in engine.embedder.__dict__  # released after embedding
    # an image outside the library is embedded with the model loaded again: its original comes first
    hits = engine.find_similar(lib, str(DEMO / "Downloads" / "misty_lake_small.jpg"), top=3)
    assert hits[0][0] == str(DEMO / "Camera" / "misty_lake.jpg")
    assert hits[0][1] > 0.9 > hits[1][1]
