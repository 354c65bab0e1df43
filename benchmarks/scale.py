"""Pairs and groups of synthetic archives out of core (``core.cluster.pairs``): time, peak memory, recall.

    python -m benchmarks.scale [--sizes 100000 300000 1000000] [--workdir DIR]

Each size runs in its own process (so its peak RSS is its own) over a float16 memory map of clustered unit
vectors, 256-d like the bundled model's: 2,000 topics; each photo near a topic (cosine ~0.6); a quarter of
the photos have 1-4 edited copies at cosine 0.78-0.995 to them. Prints, per size: the time to find the pairs
at cosine >= 0.8 (``cell_pairs``), the time to group them (``stream_groups``, complete linkage), the peak RSS,
and the recall of the true pairs of 1,000 sampled vectors (brute force against all N) at cosine >= 0.8.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

DIM = 256
THRESHOLD = 0.8
TOPICS = 2000


def make_vectors(path: Path, n: int, seed: int = 0, chunk: int = 100_000) -> None:
    """``n`` clustered unit vectors (float16) into the ``.npy`` file ``path``, a chunk at a time."""
    rng = np.random.default_rng(seed)
    topics = rng.normal(size=(TOPICS, DIM)).astype(np.float32)
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    out = np.lib.format.open_memmap(path, "w+", np.float16, (n, DIM))
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        noise = rng.normal(size=(m, DIM)).astype(np.float32)
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        x = 0.6 * topics[rng.integers(0, TOPICS, m)] + 0.8 * noise
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        # A quarter of the rows are originals followed by 1-4 copies each: copy = original + noise of norm
        # sigma, so cosine 1 / sqrt(1 + sigma^2), from 0.78 to 0.995.
        k = 0
        while k < m // 4:
            copies = int(rng.integers(1, 5))
            orig = x[k]
            for c in range(1, copies + 1):
                if k + c >= m:
                    break
                e = rng.normal(size=DIM).astype(np.float32)
                e -= (e @ orig) * orig
                e /= np.linalg.norm(e)
                x[k + c] = orig + rng.uniform(0.1, 0.8) * e
                x[k + c] /= np.linalg.norm(x[k + c])
            k += copies + 1
        out[s : s + m] = x[rng.permutation(m)].astype(np.float16)
    out.flush()


class _Records(Sequence):
    """Synthetic file records, made when asked (a list of 1M records would be the benchmark's memory)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, k):
        from core.results import ImageRecord

        return ImageRecord(f"/archive/{k:08d}.jpg", 200_000 + k % 9973, 1_600_000_000 + k, 1600, 1067, "JPEG")


def _recall(vectors: np.ndarray, pairs, sample: int = 1000, seed: int = 1) -> tuple[float, int]:
    """Share of the true pairs (cosine >= THRESHOLD) of ``sample`` random rows that ``pairs`` holds."""
    n = len(vectors)
    rows = np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False)
    q = vectors[rows].astype(np.float32)
    want_a, want_b = [], []
    for s in range(0, n, 5_000):
        sims = q @ vectors[s : s + 5_000].astype(np.float32).T
        r, c = np.nonzero(sims >= THRESHOLD)
        c = c + s
        keep = c != rows[r]
        want_a.append(np.minimum(rows[r][keep], c[keep]))
        want_b.append(np.maximum(rows[r][keep], c[keep]))
    a, b = np.concatenate(want_a), np.concatenate(want_b)
    keys = np.unique(a * n + b)
    rec = pairs.records()
    have = rec["a"] * n + rec["b"]  # sorted by (a, b), so sorted keys
    at = np.clip(np.searchsorted(have, keys), 0, max(len(have) - 1, 0))
    found = have[at] == keys if len(have) else np.zeros(len(keys), bool)
    return float(found.mean()) if len(keys) else 1.0, len(keys)


def _peak_rss_mb() -> int:
    """This process's peak RSS (VmHWM: ``ru_maxrss`` keeps the parent's peak across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def measure(n: int, workdir: Path) -> dict:
    """One size, in this process, over vectors another process made: pair, group; the figures as a dict."""
    from core.cluster.pairs import cell_pairs, stream_groups

    vectors = np.load(workdir / f"vectors-{n}.npy", mmap_mode="r")
    t = time.perf_counter()
    pairs = cell_pairs(vectors, THRESHOLD, workdir / f"pairs-{n}")
    pairs_s = time.perf_counter() - t
    t = time.perf_counter()
    groups = sum(
        1 for _ in stream_groups(_Records(n), lambda: pairs.chunks(), THRESHOLD, workdir / f"groups-{n}")
    )
    group_s = time.perf_counter() - t
    recall, true_pairs = _recall(vectors, pairs)
    return {
        "n": n,
        "pairs_s": round(pairs_s, 1),
        "group_s": round(group_s, 1),
        "pairs": len(pairs),
        "groups": groups,
        "recall": round(recall, 4),
        "true_pairs_sampled": true_pairs,
        "peak_rss_mb": _peak_rss_mb(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    p.add_argument("--workdir", type=Path, help="where the vectors and pairs go (default: a temp folder)")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process: measure this size
    a = p.parse_args(argv)
    if a.one:
        print(json.dumps(measure(a.one, a.workdir)), flush=True)
        return 0
    with tempfile.TemporaryDirectory(dir=a.workdir) as tmp:
        print(
            f"{'N':>10} {'pairs s':>8} {'group s':>8} {'peak RSS':>9} {'recall':>7} "
            f"{'pairs':>10} {'groups':>9}"
        )
        for n in a.sizes:
            t = time.perf_counter()
            make_vectors(Path(tmp) / f"vectors-{n}.npy", n)  # here: its memory is not the measured process's
            made = time.perf_counter() - t
            cmd = [sys.executable, "-m", "benchmarks.scale", "--one", str(n), "--workdir", tmp]
            out = subprocess.run(cmd, capture_output=True, text=True)
            (Path(tmp) / f"vectors-{n}.npy").unlink()
            if out.returncode:
                print(f"{n:>10} failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{r['n']:>10,} {r['pairs_s']:>8.1f} {r['group_s']:>8.1f} {r['peak_rss_mb']:>6,} MB "
                f"{100 * r['recall']:>6.1f}% {r['pairs']:>10,} {r['groups']:>9,}"
                f"   ({r['true_pairs_sampled']} true pairs sampled; generated in {made:.1f} s; "
                f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
