"""Measure cold start of a built bundle: ``python packaging/cold_start.py [dist/Lookalike] [--runs 3]``.

"Cold" means the bundle's files are evicted from the page cache first (``posix_fadvise(DONTNEED)`` on each
file, which works without the root-only ``drop_caches``), as after a reboot. Times, per run:
- ``--self-test`` until it exits (headless demo scan);
- the window: from launch until ``xdotool`` sees a visible "Lookalike" window on a private Xvfb display.
Needs Xvfb and xdotool for the window figure (skipped otherwise). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def evict(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def free_display() -> int:
    n = 90
    while Path(f"/tmp/.X11-unix/X{n}").exists() or Path(f"/tmp/.X{n}-lock").exists():
        n += 1
    return n


def time_window(exe: Path, env: dict[str, str], display: str, limit: float = 30.0) -> float | None:
    t0 = time.perf_counter()
    app = subprocess.Popen([str(exe)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - t0 < limit and app.poll() is None:
            found = subprocess.run(
                ["xdotool", "search", "--onlyvisible", "--name", "Lookalike"],
                env=dict(env, DISPLAY=display),
                capture_output=True,
            )
            if found.returncode == 0:
                return time.perf_counter() - t0
            time.sleep(0.02)
        return None
    finally:
        app.terminate()
        app.wait(timeout=20)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", nargs="?", type=Path, default=Path("dist/Lookalike"))
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    exe = a.bundle / "Lookalike"
    home = Path(tempfile.mkdtemp(prefix="lookalike-cold-"))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"),
    }
    out: dict[str, object] = {"bundle": str(a.bundle)}

    self_test = []
    for _ in range(a.runs):
        evict(a.bundle)
        t0 = time.perf_counter()
        subprocess.run([str(exe), "--self-test"], env=env, check=True, capture_output=True)
        self_test.append(round(time.perf_counter() - t0, 2))
    out["self_test_seconds"] = self_test

    if shutil.which("Xvfb") and shutil.which("xdotool"):
        n = free_display()
        xvfb = subprocess.Popen(
            ["Xvfb", f":{n}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(50):
                if Path(f"/tmp/.X11-unix/X{n}").exists():
                    break
                time.sleep(0.1)
            windows = []
            for _ in range(a.runs):
                evict(a.bundle)
                t = time_window(exe, dict(env, DISPLAY=f":{n}"), f":{n}")
                windows.append(None if t is None else round(t, 2))
            out["window_seconds"] = windows
            ok = [w for w in windows if w is not None]
            out["window_median"] = statistics.median(ok) if ok else None
        finally:
            xvfb.terminate()
            xvfb.wait(timeout=10)
    shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
