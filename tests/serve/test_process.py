"""The real server: ``lookalike serve`` in its own process on a free loopback port, spoken to over HTTP."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
from conftest import VERIFY, Server
from helpers import DATA, DEMO, REPO

TOKEN = "another-s3cret-token-0123456789"


def similar(url, path, headers=None, k=5):
    with open(path, "rb") as fh:
        return httpx.post(
            f"{url}/v1/similar?k={k}", files={"image": (path.name, fh)}, headers=headers, timeout=60
        )


def test_real_server_answers_with_tiers(server, served, tmp_path):
    copy = tmp_path / "copy_of_ladybird.jpg"
    copy.write_bytes((DEMO / "Camera/ladybird.jpg").read_bytes())
    hits = similar(server.url, copy).json()["results"]
    assert hits[0] == {**hits[0], "path": "photos/Camera/ladybird.jpg", "tier": "duplicate"}
    assert hits[0]["similarity"] > 0.99
    hits = similar(server.url, VERIFY / "leuven_b.jpg").json()["results"]
    assert hits[0]["path"] == "shots/leuven_a.jpg" and hits[0]["tier"] == "similar_shot"
    hits = similar(server.url, DEMO / "Camera/colorful_cups.jpg").json()["results"]
    assert {h["tier"] for h in hits} == {"similar"}
    bad = similar(server.url, DATA / "truncated.jpg")
    assert (
        bad.status_code == 422 and bad.json()["detail"] == "file is truncated (incomplete download or copy?)"
    )
    assert similar(server.url, DATA / "bomb.png").status_code == 413
    h = httpx.get(f"{server.url}/v1/health").json()
    assert h["library"]["files"] == 11 and h["cache"]["embedded"] == 0  # all from the session's cache
    assert httpx.get(f"{server.url}/docs").status_code == 200
    assert httpx.get(f"{server.url}/v1/thumb", params={"path": "photos/link.jpg"}).status_code == 404
    # a page elsewhere cannot reach it by rebinding a name to 127.0.0.1
    assert httpx.get(f"{server.url}/v1/health", headers={"Host": "evil.example:80"}).status_code == 400


def test_no_token_no_other_address(served):
    """Listening beyond loopback without a token is refused at once, before any scan."""
    t0 = time.monotonic()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.cli",
            "serve",
            str(served.photos),
            "--host",
            "0.0.0.0",
            "--cache-dir",
            str(served.cache),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "refusing to listen on 0.0.0.0 without a token" in r.stderr
    assert time.monotonic() - t0 < 20
    r = subprocess.run(
        [sys.executable, "-m", "core.cli", "serve", str(served.photos), "--follow-symlinks"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "never follows symbolic links" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "core.cli", "serve", str(served.photos / "Camera" / "ladybird.jpg")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "not a folder to serve" in r.stderr


def test_with_a_token_every_route_needs_it(served, service, tmp_path):
    (tmp_path / "short").write_text("abc\n")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.cli",
            "serve",
            str(served.photos),
            "--token-file",
            str(tmp_path / "short"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "too short" in r.stderr
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    s = Server(
        [str(served.photos), "--token-file", str(token), "--cache-dir", str(served.cache)], tmp_path / "log"
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        s.wait(headers=auth)
        assert httpx.get(f"{s.url}/v1/health").status_code == 401
        assert httpx.get(f"{s.url}/v1/health", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert similar(s.url, DEMO / "Camera/ladybird.jpg").status_code == 401
        assert httpx.get(f"{s.url}/").status_code == 200  # the page, which asks for the token
        hits = similar(s.url, DEMO / "Camera/ladybird.jpg", headers=auth).json()["results"]
        assert hits[0]["path"] == "Camera/ladybird.jpg"  # one root: no prefix
    finally:
        rc = s.stop()
    assert rc in (0, -signal.SIGTERM)  # uvicorn shuts down cleanly, then lets the signal end the process
    assert "Traceback" not in s.log.read_text()
