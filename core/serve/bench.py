"""Load test of a real ``lookalike serve`` process on 127.0.0.1 (``make bench-serve``).

    python -m core.serve.bench [--requests 500] [--concurrency 8]

Serves a copy of the demo photos, then sends a bounded mix of uploads from ``--concurrency`` threads: valid
photos (copies in the library, photos from outside it) and bad ones (truncated, garbage, empty, text, a
decompression bomb's header, a 64 MB body, a missing field). Prints throughput and p50/p95 latency, and checks
that no answer is a 5xx, that every bad upload gets the 4xx it should, that every photo gets 200, and that the
server's resident memory is stable across the run (after a warm-up). Exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from core.resources import resource_path

BOUNDARY = "lookalike-bench-boundary"
OVERSIZE = 64 * 1024 * 1024  # over the 50 MB an image (plus 1 MB of form) a request may carry
RSS_GROWTH_MB = 64  # allowed growth of the server's RSS from after the warm-up to the end


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels and holds none: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _form(field: str, name: str, data: bytes) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


Payload = tuple[str, bytes | None, int]  # kind, multipart body (None: the oversized one), expected status


def payloads(demo: Path) -> tuple[list[Payload], list[Payload]]:
    """The valid uploads (every demo photo) and the bad ones."""
    photos = sorted(p for p in demo.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    valid = [("photo", _form("image", p.name, p.read_bytes()), 200) for p in photos]
    jpeg = photos[0].read_bytes()
    bad = [
        ("truncated", _form("image", "t.jpg", jpeg[: len(jpeg) // 3]), 422),
        ("garbage", _form("image", "g.jpg", random.Random(0).randbytes(50_000)), 422),
        ("empty", _form("image", "e.jpg", b""), 422),
        ("text", _form("image", "notes.jpg", b"just some text\n" * 100), 422),
        ("bomb", _form("image", "bomb.png", _png_header(40_000, 40_000)), 413),
        ("oversize", None, 413),
        ("no field", _form("other", "x.jpg", jpeg), 422),
    ]
    return valid, bad


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _request(port: int, body: bytes | None) -> tuple[int, float]:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        if body is None:  # announce 64 MB and send none of it: the server must refuse from the header
            conn.putrequest("POST", "/v1/similar?k=10")
            conn.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
            conn.putheader("Content-Length", str(OVERSIZE))
            conn.endheaders()
        else:
            conn.request(
                "POST",
                "/v1/similar?k=10",
                body,
                {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            )
        r = conn.getresponse()
        r.read()
        return r.status, time.perf_counter() - t0
    finally:
        conn.close()


def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))] if v else float("nan")


def run(requests: int = 500, concurrency: int = 8, bad_share: float = 0.3, seed: int = 0) -> int:
    work = Path(tempfile.mkdtemp(prefix="lookalike-bench-serve-"))
    demo = work / "photos"
    shutil.copytree(resource_path("demo"), demo, ignore=shutil.ignore_patterns("*.md", "*.json"))
    port = _free_port()
    log = open(work / "server.log", "wb")  # noqa: SIM115 - closed at the end
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core.cli",
            "serve",
            str(demo),
            "--port",
            str(port),
            "--cache-dir",
            str(work / "cache"),
            "-q",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        t0 = time.monotonic()
        while True:
            if server.poll() is not None:
                print((work / "server.log").read_text(), file=sys.stderr)
                return 1
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/v1/health")
                health = json.loads(conn.getresponse().read())
                conn.close()
                break
            except OSError:
                time.sleep(0.2)
            if time.monotonic() - t0 > 300:
                print("the server did not start in 5 minutes", file=sys.stderr)
                return 1
        print(
            f"server up in {time.monotonic() - t0:.1f} s: {health['library']['files']} photos, "
            f"model {health['model']['name']}, {os.cpu_count()} CPUs"
        )
        valid, bad = payloads(demo)
        rng = random.Random(seed)
        plan = [rng.choice(bad) if rng.random() < bad_share else rng.choice(valid) for _ in range(requests)]
        # Warm-up at full concurrency: every worker thread started, every code path (and its allocator
        # arenas) used once, so what follows measures growth, not the first use.
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(lambda p: _request(port, p[1]), bad + valid[:4] + plan[: 6 * concurrency]))
        rss = [_rss_mb(server.pid)]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.25):
                rss.append(_rss_mb(server.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(lambda p: (p[0], p[2], *_request(port, p[1])), plan))
        elapsed = time.perf_counter() - start
        stop.set()
        sampler.join()
        rss.append(_rss_mb(server.pid))
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

    lat = [r[3] for r in results]
    ok = [r[3] for r in results if r[0] == "photo"]
    refused = [r[3] for r in results if r[0] != "photo"]
    print(
        f"{len(results)} requests ({len(ok)} photos, {len(refused)} bad), {concurrency} at a time: "
        f"{len(results) / elapsed:.1f} req/s over {elapsed:.1f} s"
    )
    print(f"latency all    p50 {_pct(lat, 0.5) * 1000:7.1f} ms   p95 {_pct(lat, 0.95) * 1000:7.1f} ms")
    print(f"latency photos p50 {_pct(ok, 0.5) * 1000:7.1f} ms   p95 {_pct(ok, 0.95) * 1000:7.1f} ms")
    print(
        f"latency bad    p50 {_pct(refused, 0.5) * 1000:7.1f} ms   p95 {_pct(refused, 0.95) * 1000:7.1f} ms"
    )
    quarters = " -> ".join(f"{rss[min(len(rss) - 1, q * (len(rss) - 1) // 4)]:.0f}" for q in range(5))
    print(
        f"server RSS: {rss[0]:.0f} MB after warm-up, {rss[-1]:.0f} MB at the end, {max(rss):.0f} MB peak "
        f"(by quarter of the run: {quarters} MB)"
    )
    failures = []
    five = [r for r in results if r[2] >= 500]
    if five:
        failures.append(f"{len(five)} answers were 5xx")
    wrong = [(r[0], r[2]) for r in results if r[2] != r[1]]
    if wrong:
        failures.append(f"{len(wrong)} unexpected statuses, e.g. {wrong[:5]}")
    if not all(400 <= r[2] < 500 for r in results if r[0] != "photo"):
        failures.append("a bad upload was not answered with a 4xx")
    if rss[-1] - rss[0] > RSS_GROWTH_MB:
        failures.append(f"server RSS grew by {rss[-1] - rss[0]:.0f} MB (allowed {RSS_GROWTH_MB})")
    for f in failures:
        print(f"FAIL: {f}")
    if not failures:
        print("checks: no 5xx, every bad upload answered with its 4xx, every photo 200, RSS stable")
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.serve.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--bad-share", type=float, default=0.3, help="share of bad uploads (default 0.3)")
    a = p.parse_args(argv)
    return run(a.requests, a.concurrency, a.bad_share)


if __name__ == "__main__":
    sys.exit(main())
