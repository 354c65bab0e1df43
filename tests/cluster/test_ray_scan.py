"""``lookalike scan --ray`` on a local Ray: the same JSON as a local scan, Parquet shards of the documented
schema, and a rerun that resumes after a worker and then the driver were killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]


def test_ray_scan_writes_the_local_scans_json(ray_run, local_report):
    _, text = ray_run
    ray, local = json.loads(text), json.loads(local_report)
    assert ray["groups"] == local["groups"]
    assert ray["similar_groups"] == local["similar_groups"]
    assert ray["pairs"] == local["pairs"]
    assert text == local_report  # and every other field, byte for byte


def test_shards_have_the_documented_schema(ray_run, photos):
    from core.embed import load_bundle

    shards, _ = ray_run
    bundle = load_bundle()
    manifest = json.loads((shards / "manifest.json").read_text())
    files = sorted(p.name for p in shards.glob("*.parquet"))
    assert sorted(s["file"] for s in manifest["shards"]) == files
    assert len(files) == 8  # 36 files, 5 a shard
    assert manifest["rows"] == 36 == sum(s["rows"] for s in manifest["shards"])
    assert manifest["model"]["sha256"] == bundle.sha256
    assert (manifest["embed_dim"], manifest["feature_dim"]) == (bundle.embed_dim, bundle.feature_dim)
    paths = []
    for name in files:
        t = pq.read_table(shards / name)
        types = {f.name: str(f.type) for f in t.schema}
        assert types == {
            "path": "binary",
            "size": "int64",
            "mtime_ns": "int64",
            "width": "int32",
            "height": "int32",
            "format": "string",
            "taken": "string",
            "capture": "string",
            "error": "string",
            "blank": "bool",
            "embedding": f"fixed_size_list<element: halffloat>[{bundle.embed_dim}]",
            "features": f"fixed_size_list<element: halffloat>[{bundle.feature_dim}]",
            "turned": f"fixed_size_list<element: halffloat>[{2 * bundle.embed_dim}]",
            "layout": "uint64",
        }
        emb = np.stack(t.column("embedding").to_numpy(zero_copy_only=False))
        assert emb.dtype == np.float16 and emb.shape[1] == bundle.embed_dim
        assert np.allclose(np.linalg.norm(emb.astype(np.float32), axis=1), 1.0, atol=2e-3)
        assert t.column("error").null_count == t.num_rows
        assert t.column("layout").null_count == 0  # every image has its grey-level layout
        paths += [os.fsdecode(p) for p in t.column("path").to_pylist()]
    assert sorted(paths) == sorted(str(p) for p in photos.rglob("*") if p.is_file())  # each file once


def _descendants(pid: int) -> list[int]:
    """Every living process under ``pid`` (from /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _kill(pids) -> None:
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _shards(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("shard-*.parquet")}


@pytest.mark.slow
def test_resume_after_a_worker_and_the_driver_are_killed(
    ray_local, photos, local_report, engine_factory, tmp_path
):
    """The first run's worker is killed once it has written a shard (Ray restarts it and runs the batch
    again), then the driver is killed before the end. Every shard on disk is whole; the rerun embeds only
    the files not in a shard and writes the local scan's JSON."""
    from core.cli import main

    shards = tmp_path / "shards"
    cmd = [sys.executable, "-m", "core.cli", "scan", str(photos), "--no-cache", "-q", "--ray"]
    cmd += ["--shards", str(shards), "--shard-files", "1", "--json", str(tmp_path / "first.json")]
    driver = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started: list[int] = []
    try:
        deadline = time.monotonic() + 120

        def wait_for(cond) -> None:
            while not cond():
                assert driver.poll() is None, "the first run ended before it could be interrupted"
                assert time.monotonic() < deadline, "timed out"
                started[:] = sorted(set(started) | set(_descendants(driver.pid)))
                time.sleep(0.01)

        wait_for(lambda: _shards(shards))
        workers = [p for p in _descendants(driver.pid) if "MapWorker" in _cmdline(p)]
        assert workers, "no Ray worker found under the driver"
        _kill(workers)  # mid-run: at most a few of the 36 one-file shards are written
        before = len(_shards(shards))
        assert before < 36
        wait_for(lambda: len(_shards(shards)) > before)  # Ray restarted the worker and went on
        _kill([driver.pid])
        driver.wait(30)
    finally:
        _kill([driver.pid, *started, *_descendants(driver.pid)])
        driver.wait(30)
    written = _shards(shards)
    assert 0 < len(written) < 36, "the driver was killed after the end: nothing left to resume"
    for name in written:  # whole shards only: a killed writer leaves at most a hidden temporary file
        assert pq.read_table(shards / name).num_rows == 1

    from core.cluster.ray_scan import ray_scan

    engine = engine_factory()
    result = ray_scan(engine, [str(photos)], shards=shards, shard_files=4)
    assert result.stats["in_shards"] == len(written)
    assert result.stats["embedded"] == 36 - len(written)
    assert not list(shards.glob(".*.tmp"))
    out = tmp_path / "again.json"
    assert (
        main(["scan", str(photos), "--no-cache", "-q", "--ray", "--shards", str(shards), "--json", str(out)])
        == 0
    )
    assert out.read_text() == local_report
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["rows"] == 36 and len(manifest["shards"]) == len(_shards(shards))


def test_cli_flags_go_together(photos, tmp_path, capsys):
    from core.cli import main

    assert main(["scan", str(photos), "--no-cache", "--ray"]) == 2
    assert "--ray needs --shards" in capsys.readouterr().err
    assert main(["scan", str(photos), "--no-cache", "--shards", str(tmp_path)]) == 2
    assert "--shards goes with --ray" in capsys.readouterr().err
    args = ["scan", str(photos), "--no-cache", "--ray", "--shards", str(tmp_path), "--shard-files", "0"]
    assert main(args) == 2


def test_an_address_with_no_cluster_is_one_line_not_minutes_of_retries(photos, tmp_path, capsys):
    from core.cli import main

    args = ["scan", str(photos), "--no-cache", "-q", "--ray", "127.0.0.1:1", "--shards", str(tmp_path)]
    assert main(args) == 1
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in capsys.readouterr().err
