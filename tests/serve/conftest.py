"""Served folders for the serve tests: two roots of real photos, a folder outside them, and links out of a
root.

One engine, one cache and one loaded ``Service`` for the session; the real-server tests reuse the cache, so
their scan is a lookup. Skips the folder when the ``serve`` extra is not installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')")
pytest.importorskip("httpx", reason="fastapi.testclient needs httpx")

from helpers import DATA, REPO, copy_demo  # noqa: E402

# A copy group, a pair, and photos with no copy; the other root holds one shot of three scenes.
PHOTOS = [
    "Camera/ladybird.jpg",
    "Edited/ladybird_flipped.jpg",
    "Downloads/ladybird.png",
    "Camera/water_drop.jpg",
    "Backup/IMG_0412.jpg",
    "Camera/orange_flower.jpg",
    "Camera/storm_clouds.jpg",
    "Camera/rain_drops.jpg",
]
SHOTS = ["leuven_a.jpg", "toronto_a.jpg", "uttower_a.jpg"]
VERIFY = DATA / "verify"


def _tree(folder: Path) -> dict:
    return {str(p): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="session")
def served(tmp_path_factory) -> SimpleNamespace:
    base = tmp_path_factory.mktemp("served")
    photos = copy_demo(base / "photos", PHOTOS)
    shots = base / "shots"
    shots.mkdir()
    for name in SHOTS:
        shutil.copy2(VERIFY / name, shots / name)
    outside = base / "outside"
    outside.mkdir()
    shutil.copy2(VERIFY / "facade_a.jpg", outside / "secret.jpg")
    (photos / "notes.txt").write_text("not a photo")
    os.symlink(outside / "secret.jpg", photos / "link.jpg")  # a file link out of the root
    os.symlink(outside, photos / "linkdir")  # a folder link out of the root
    ns = SimpleNamespace(base=base, photos=photos, shots=shots, outside=outside, cache=base / "cache")
    ns.tree = lambda: {**_tree(photos), **_tree(shots), **_tree(outside)}
    return ns


@pytest.fixture(scope="session")
def service(served):
    from core.serve.roots import Roots
    from core.serve.service import ServeEngine, Service

    svc = Service(ServeEngine(cache_dir=served.cache), Roots([served.photos, served.shots]))
    svc.load()
    yield svc
    svc.close()


@pytest.fixture
def client(service):
    from fastapi.testclient import TestClient

    from core.serve.app import create_app

    with TestClient(create_app(service)) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``lookalike serve`` in a process of its own on a free loopback port."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "serve", *args, "--port", str(self.port), "-q"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(log, "wb"),
        )  # closed with the process

    def wait(self, headers: dict | None = None, timeout: float = 60) -> None:
        import httpx

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited ({self.proc.returncode}): {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/v1/health", headers=headers, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"the server did not answer in {timeout} s: {self.log.read_text()}")

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@pytest.fixture(scope="session")
def server(served, service, tmp_path_factory):
    """A real server over the session's folders and cache (``service`` filled the cache), no token."""
    s = Server(
        [str(served.photos), str(served.shots), "--cache-dir", str(served.cache)],
        tmp_path_factory.mktemp("server") / "log",
    )
    try:
        s.wait()
        yield s
    finally:
        s.stop()
