"""The real CLI under faults: kill -9 at random points of a scan, a cache on a tiny full disk, and permission
faults as an unprivileged user. After each fault a scan must exit 0 and give the same groups as a clean run;
nothing may crash. The counts are printed (run with -s) and asserted."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import DATA, as_other_user, copy_demo

PYTHON = sys.executable


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / "xdg-cache"),
        XDG_DATA_HOME=str(home / "xdg-data"),
        XDG_CONFIG_HOME=str(home / "xdg-config"),
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    return env


def scan(root: Path, cache: Path, out: Path, home: Path, prefix: list[str] | None = None, **popen):
    cmd = [
        *(prefix or []),
        PYTHON,
        "-m",
        "core.cli",
        "scan",
        str(root),
        "--cache-dir",
        str(cache),
        "--json",
        str(out),
        "-q",
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(home), **popen)


def finish(proc, timeout=300) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err.decode(errors="replace")


def groups_of(out: Path, root: Path) -> list[list[str]]:
    data = json.loads(out.read_text())
    return sorted(sorted(os.path.relpath(f["path"], root) for f in g["files"]) for g in data["groups"])


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """The demo photos (10 groups of copies) plus a truncated file, and the groups of a clean, cache-less
    run."""
    base = Path(tempfile.mkdtemp(prefix="lookalike-faults-"))  # readable by the unprivileged user too
    root = copy_demo(base / "lib")
    shutil.copy(DATA / "truncated.jpg", root / "broken.jpg")
    home = base / "home"
    home.mkdir()
    out = base / "clean.json"
    rc, err = finish(scan(root, base / "clean-cache", out, home))
    assert rc == 0, err
    clean = groups_of(out, root)
    assert len(clean) >= 5
    os.chmod(base, 0o755)
    yield root, clean
    shutil.rmtree(base, ignore_errors=True)


def test_kill_9_at_random_points_of_a_scan(library, tmp_path):
    root, clean = library
    rng = random.Random(12)
    cache, home = tmp_path / "cache", tmp_path / "home"
    home.mkdir()
    started = time.monotonic()
    rc, err = finish(scan(root, tmp_path / "timing-cache", tmp_path / "timing.json", home))
    assert rc == 0, err
    full = time.monotonic() - started  # a first scan's length on this machine: kills land inside it
    tried = crashes = mismatches = 0
    for k in range(12):  # 6 rounds, more when a kill came too late (a loaded machine varies the timing)
        if k >= 6 and tried >= 3:
            break
        if k % 2 == 0:
            shutil.rmtree(cache, ignore_errors=True)  # odd rounds kill a scan that resumes a killed one
        proc = scan(root, cache, tmp_path / f"killed{k}.json", home)
        time.sleep(rng.uniform(0.05, 0.9) * full)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            tried += 1
        else:
            full *= 0.7  # it had finished: aim earlier next time
        proc.wait()
        rc, err = finish(scan(root, cache, tmp_path / f"after{k}.json", home))
        crashes += rc != 0 or "Traceback" in err
        mismatches += rc == 0 and groups_of(tmp_path / f"after{k}.json", root) != clean
        # A killed run never leaves a partial report or a stray temporary file in the output folder.
        assert not (tmp_path / f"killed{k}.json").exists() or json.loads(
            (tmp_path / f"killed{k}.json").read_text()
        )
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert not leftovers
    print(
        f"\nscan faults tried: {tried} kills, crashes after: {crashes}, wrong groups after: {mismatches}, "
        f"temporary files left: {len(leftovers)}"
    )
    assert tried >= 3 and crashes == 0 and mismatches == 0


def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    where.mkdir(parents=True, exist_ok=True)
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
        ).returncode
        == 0
    )


def test_a_cache_on_a_full_disk(library, tmp_path):
    """`database or disk is full` made every scan and rescan fail."""
    root, clean = library
    disk = tmp_path / "tiny"
    if not _mount_tmpfs(disk, "96k"):
        pytest.skip("needs root and a tmpfs mount to make a real full disk")
    home = tmp_path / "home"
    home.mkdir()
    try:
        for attempt in ("first scan", "rescan"):
            rc, err = finish(scan(root, disk / "cache", tmp_path / "out.json", home))
            assert rc == 0 and "Traceback" not in err, (attempt, err)
            assert groups_of(tmp_path / "out.json", root) == clean, attempt
        assert (
            "warning:"
            in subprocess.run(
                [PYTHON, "-m", "core.cli", "scan", str(root), "--cache-dir", str(disk / "cache")],
                capture_output=True,
                text=True,
                env=_env(home),
            ).stdout
        )
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


@pytest.fixture
def nobody(tmp_path):
    prefix = as_other_user()
    if prefix is None:
        pytest.skip("running as root and cannot switch to an unprivileged user (setpriv/runuser)")
    base = Path(tempfile.mkdtemp(prefix="lookalike-user-"))
    (base / "home").mkdir()
    if os.geteuid() == 0:
        os.chown(base, 65534, 65534)
        os.chown(base / "home", 65534, 65534)
    yield base, prefix
    for p in [base, *base.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize(
    "fault", ["read-only cache file", "read-only empty cache folder", "unreadable photo"]
)
def test_permission_faults_as_an_unprivileged_user(library, nobody, fault):
    """A read-only cache file or folder ended the scan (`attempt to write a readonly database`,
    `FileNotFoundError` from os.replace); an unreadable photo must be a problem, not a failure."""
    root, clean = library
    base, prefix = nobody
    cache, home, out = base / "cache", base / "home", base / "out.json"
    expected = clean
    lib = root
    if fault == "read-only cache file":
        rc, err = finish(scan(root, cache, out, home, prefix))  # a good cache first, as that user
        assert rc == 0, err
        for f in cache.glob("cache.sqlite3*"):
            f.chmod(0o444)
        cache.chmod(0o555)
    elif fault == "read-only empty cache folder":
        cache.mkdir()
        os.chown(cache, 65534, 65534) if os.geteuid() == 0 else None
        cache.chmod(0o555)
    else:
        lib = copy_demo(
            base / "lib",
            [
                "Camera/forest_path.jpg",
                "Backup/forest_path.jpg",
                "Camera/kite_sky.jpg",
                "Downloads/kite_sky_small.jpg",
            ],
        )
        for p in [base / "lib", *(base / "lib").rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        (lib / "Camera/kite_sky.jpg").chmod(0o000)
        expected = [["Backup/forest_path.jpg", "Camera/forest_path.jpg"]]
    rc, err = finish(scan(lib, cache, out, home, prefix))
    assert rc == 0 and "Traceback" not in err, err
    assert groups_of(out, lib) == expected
    data = json.loads(out.read_text())
    if fault == "unreadable photo":
        assert [(os.path.relpath(p["path"], lib), p["reason"]) for p in data["problems"]] == [
            ("Camera/kite_sky.jpg", "permission denied")
        ]
    print(
        f"\n{fault}: scan exit {rc}, {len(data['groups'])} groups, warnings: "
        f"{[line for line in err.splitlines() if 'warning' in line][:1]}"
    )
