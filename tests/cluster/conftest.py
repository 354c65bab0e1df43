"""The cluster extra's tests: a local Ray (``ray.init(num_cpus=2)``) shared by the session, and a small real
photo library (the demo folder) with its local scan's JSON to compare against."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the cluster extra is not installed")
pytest.importorskip("pyarrow", reason="the cluster extra is not installed")

from helpers import copy_demo  # noqa: E402


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the session (starting one costs ~4 s): two CPUs, as the issue's local mode asks."""
    import logging

    import ray

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    """The 36 demo photos: copies (resized, recompressed, cropped, flipped, captioned) and similar shots."""
    return copy_demo(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="session")
def local_report(photos, tmp_path_factory) -> str:
    """``lookalike scan --json`` of ``photos`` here, without Ray: the text a Ray scan must equal."""
    from core.cli import main

    out = tmp_path_factory.mktemp("local") / "local.json"
    assert main(["scan", str(photos), "--no-cache", "-q", "--json", str(out)]) == 0
    text = out.read_text()
    assert json.loads(text)["groups"], "the demo folder must have duplicates to compare"
    return text


@pytest.fixture(scope="session")
def ray_run(ray_local, photos, tmp_path_factory):
    """A Ray scan of the demo photos through the CLI, five files a shard: (shard folder, JSON text)."""
    from core.cli import main

    tmp = tmp_path_factory.mktemp("ray")
    out, shards = tmp / "ray.json", tmp / "shards"
    args = ["scan", str(photos), "--no-cache", "-q", "--ray", "--shards", str(shards), "--shard-files", "5"]
    assert main([*args, "--json", str(out)]) == 0
    return shards, out.read_text()
