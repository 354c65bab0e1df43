"""`lookalike bench`: speed figures on a generated corpus of real photos, printed, never asserted.

Builds ~1.6 MP and 12 MP JPEG corpora from the demo photos (shifted crops, so every file differs), then
measures decode, inference and end-to-end img/s, a naive baseline in the same run (full decode + torch eager,
one image at a time), rescan files/s, "find similar" latency, Annoy's recall of the exact pairs, and grouping
of one million synthetic embeddings.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from core.decode import decode_for_model
from core.resources import resource_path

log = logging.getLogger(__name__)


def _say(text: str = "") -> None:
    print(text, flush=True)


def make_corpus(folder: Path, n: int, megapixels: float, seed: int = 0, noise: float = 0.0) -> list[Path]:
    """``n`` distinct JPEGs of about ``megapixels`` MP cut from the demo originals."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sources = sorted(resource_path("demo", "Camera").glob("*.jpg"))
    w = int(round((megapixels * 1e6 * 1.5) ** 0.5))
    h = int(round(w / 1.5))
    bases = []
    for src in sources:
        im = Image.open(src).convert("RGB")
        scale = max(w * 1.1 / im.width, h * 1.1 / im.height)
        bases.append(
            im.resize((int(im.width * scale) + 1, int(im.height * scale) + 1), Image.Resampling.BICUBIC)
        )
    out = []
    for k in range(n):
        base = bases[k % len(bases)]
        x = int(rng.integers(0, base.width - w))
        y = int(rng.integers(0, base.height - h))
        im = base.crop((x, y, x + w, y + h))
        if noise:  # camera-like sensor noise makes file sizes realistic
            a = np.asarray(im, dtype=np.int16) + rng.normal(0, noise, (h, w, 1)).astype(np.int16)
            im = Image.fromarray(a.clip(0, 255).astype(np.uint8))
        p = folder / f"img_{k:05d}.jpg"
        im.save(p, quality=90)
        out.append(p)
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM resets at exec; ru_maxrss survives fork and exec on Linux,
    so a spawned child would report its parent's peak."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def bench_corpus(name: str, files: list[Path], engine, baseline_n: int) -> dict:
    size = engine.embedder.size
    workers = os.cpu_count() or 1
    paths = [str(p) for p in files]
    mb = sum(p.stat().st_size for p in files) / len(files) / 1e6
    # Decode alone (threads, like the engine).
    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        decoded = list(pool.map(lambda p: decode_for_model(p, size).pixels, paths))
    decode_rate = _rate(len(paths), time.perf_counter() - t)
    # Inference alone, in the engine's CPU batch size.
    batch = np.stack(decoded[:16])
    engine.embedder.embed_arrays(batch)  # warm-up
    t = time.perf_counter()
    reps = max(1, 256 // len(batch))
    for _ in range(reps):
        engine.embedder.embed_arrays(batch)
    infer_rate = _rate(reps * len(batch), time.perf_counter() - t)
    # End to end through the engine (walk, decode, embed, pairs), no cache: without the same-capture check
    # (what the embedding pipeline sustains), then with it. The corpus is shifted crops of the few demo
    # photos, so every file is a crop-copy of dozens of others: thousands of pairs to check, far more than a
    # real library has (benchmarks.verify_cost measures the check where 10 % of the photos have a copy).
    verify = engine.verify
    try:
        engine.verify = False
        t = time.perf_counter()
        plain = engine.scan([files[0].parent])
        e2e = _rate(len(plain.files), time.perf_counter() - t)
        engine.verify = True
        t = time.perf_counter()
        lib = engine.scan([files[0].parent])
        e2e_checked = _rate(len(lib.files), time.perf_counter() - t)
    finally:
        engine.verify = verify
    checked = lib.stats.get("verification", {}).get("verified", 0)
    naive = naive_baseline(paths[:baseline_n], engine)
    return {
        "corpus": name,
        "files": len(paths),
        "mb_per_file": mb,
        "decode": decode_rate,
        "infer": infer_rate,
        "end_to_end": e2e,
        "end_to_end_checked": e2e_checked,
        "pairs_checked": checked,
        "naive": naive,
        "library": lib,
    }


def naive_baseline(paths: list[str], engine) -> float | None:
    """Full decode + torch eager, one image at a time: what a straightforward implementation does."""
    try:
        import torch

        from core.embed import TorchBackend
    except ImportError:
        return None
    backend = TorchBackend(engine.bundle, "cpu")
    size = engine.embedder.size
    torch.set_num_threads(os.cpu_count() or 1)
    t = time.perf_counter()
    for p in paths:
        im = Image.open(p).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        backend(np.asarray(im, dtype=np.uint8)[None])
    return _rate(len(paths), time.perf_counter() - t)


def bench_rescan(work: Path, engine_cls, n: int) -> tuple[float, float]:
    """Files/s of a first scan and of a rescan of an unchanged folder of ``n`` small photos."""
    folder = work / "rescan"
    distinct = make_corpus(folder / "photos", n - n // 10, 0.05, seed=3)  # small distinct photos...
    for k in range(n // 10):  # ...and 10 % byte-identical copies, as libraries have
        sub = folder / f"copies{k // 500:03d}"
        sub.mkdir(exist_ok=True)
        shutil.copyfile(distinct[k * 7 % len(distinct)], sub / f"copy{k:06d}.jpg")
    engine = engine_cls(cache_dir=work / "cache", use_cache=True)
    t = time.perf_counter()
    engine.scan([folder])
    first = _rate(n, time.perf_counter() - t)
    t = time.perf_counter()
    lib = engine.scan([folder])
    rescan = _rate(n, time.perf_counter() - t)
    assert lib.stats["embedded"] == 0, "rescan embedded files: the cache did not hold"
    return first, rescan


def bench_queries(engine, lib, outside: Path) -> tuple[float, float]:
    lib.similar_index()
    qs = [f.path for f in lib.files[:50]]
    t = time.perf_counter()
    for q in qs:
        engine.find_similar(lib, q, 10)
    inside = (time.perf_counter() - t) / len(qs) * 1000
    t = time.perf_counter()
    for _ in range(5):
        engine.find_similar(lib, str(outside), 10)
    out = (time.perf_counter() - t) / 5 * 1000
    return inside, out


def annoy_recall(vectors: np.ndarray, threshold: float) -> tuple[float, int]:
    from core.index import VectorIndex, annoy_pairs, exact_pairs

    exact = exact_pairs(vectors, threshold)
    truth = set(zip(exact.a.tolist(), exact.b.tolist(), strict=True))
    approx = annoy_pairs(VectorIndex(vectors), threshold)
    found = set(zip(approx.a.tolist(), approx.b.tolist(), strict=True))
    assert found <= truth
    return (len(found) / len(truth) if truth else 1.0), len(truth)


def synthetic(n: int, d: int, groups: int, seed: int = 0) -> np.ndarray:
    """Random unit vectors with ``groups`` planted triples of near-duplicates (cosine ~0.93)."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, d), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    src = np.arange(groups) * 3
    for k in (1, 2):
        x = v[src] + rng.standard_normal((groups, d), dtype=np.float32) * (0.35 / np.sqrt(d))
        v[src + k] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return v


def bench_million(n: int = 1_000_000, d: int = 256, seed: int = 0) -> dict:
    """Group ``n`` synthetic embeddings: exact-cosine confirmation of ~10 candidate edges per node, then
    complete-linkage grouping. Planted groups of 2-8 near-duplicates (cosine ~0.96)."""
    from core.grouping import group_pairs
    from core.results import ImageRecord, Pairs

    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 9, n // 5)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    sizes, starts = sizes[starts[1:] <= n], starts[:-1][starts[1:] <= n]
    planted = len(sizes)
    owner = np.full(n, -1, np.int64)
    owner[: int(sizes.sum())] = np.repeat(np.arange(planted), sizes)
    heads = rng.standard_normal((planted, d), dtype=np.float32)
    v16 = np.empty((n, d), np.float16)  # what the engine keeps (the cache stores float16)
    for c in range(0, n, 65536):  # in chunks: no gigabyte temporaries
        o = owner[c : c + 65536]
        x = rng.standard_normal((len(o), d), dtype=np.float32)
        x = np.where((o >= 0)[:, None], heads[o] + x * (0.3 / np.sqrt(d)), x)
        first = (o >= 0) & (np.arange(c, c + len(o)) == starts[np.maximum(o, 0)])
        x[first] = heads[o[first]]
        v16[c : c + 65536] = x / np.linalg.norm(x, axis=1, keepdims=True)
    del heads
    # Candidate edges: every pair inside a planted group, plus four random non-matches per node.
    ii, jj = [], []
    for s_ in range(2, 9):
        idx = starts[sizes == s_]
        for a in range(s_):
            for b in range(a + 1, s_):
                ii.append(idx + a)
                jj.append(idx + b)
    rnd = rng.integers(0, n, (2, n * 4))
    ii.append(rnd.min(0))
    jj.append(rnd.max(0))
    i = np.concatenate(ii).astype(np.int64)
    j = np.concatenate(jj).astype(np.int64)
    ok = i < j
    i, j = i[ok], j[ok]
    files = [ImageRecord(f"/s/{k}", 1000 + k % 7, k, 10, 10, "JPEG") for k in range(n)]
    t = time.perf_counter()
    s = np.empty(len(i), np.float32)
    for c in range(0, len(i), 1 << 16):  # exact cosine of every candidate, in chunks
        sl = slice(c, c + (1 << 16))
        s[sl] = np.einsum("ij,ij->i", v16[i[sl]].astype(np.float32), v16[j[sl]].astype(np.float32))
    t_confirm = time.perf_counter() - t
    groups = group_pairs(files, Pairs(i, j, s), 0.85)
    total = time.perf_counter() - t
    where = {f.path: k for k, f in enumerate(files)}
    got = {tuple(sorted(where[f.path] for f in g.files)) for g in groups}
    want = {tuple(range(a, a + z)) for a, z in zip(starts.tolist(), sizes.tolist(), strict=True)}
    return {
        "n": n,
        "edges": len(i),
        "confirm_s": t_confirm,
        "total_s": total,
        "groups": len(groups),
        "planted": planted,
        "exact_match": len(got & want) / len(want),
        "peak_rss_mb": peak_rss_mb(),
    }


def bench_annoy_million(n: int = 1_000_000, d: int = 256, queries: int = 20_000) -> dict:
    """Candidate generation at 1M: Annoy build time, then a sample of k-NN queries, extrapolated."""
    from core.index import VectorIndex, annoy_pairs

    v = synthetic(n, d, queries // 3)
    t = time.perf_counter()
    index = VectorIndex(v, n_trees=10)
    build = time.perf_counter() - t
    sub = VectorIndex.__new__(VectorIndex)  # the same index, queried for the first ``queries`` items only
    sub.__dict__.update(index.__dict__, n=queries)
    t = time.perf_counter()
    pairs = annoy_pairs(sub, 0.85, k=10)
    per_query = (time.perf_counter() - t) / queries
    found = len(
        {
            (a, b)
            for a, b in zip(pairs.a.tolist(), pairs.b.tolist(), strict=True)
            if b < queries and a // 3 == b // 3
        }
    )
    return {
        "build_s": build,
        "ms_per_query": per_query * 1000,
        "all_queries_s": per_query * n,
        "recall": found / (queries // 3 * 3),
    }


def run_bench(workdir: Path | None = None, quick: bool = False, skip_1m: bool = False) -> int:
    from core.engine import Engine

    logging.basicConfig(level=logging.WARNING)
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="lookalike-bench-")) if own else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        n_small, n_big, n_rescan = (48, 16, 1000) if quick else (320, 120, 10_000)
        _say(f"Lookalike benchmark, {os.cpu_count()} CPU cores, corpus in {work}")
        small = make_corpus(work / "mp1.6", n_small, 1.6, seed=1, noise=2.0)
        big = make_corpus(work / "mp12", n_big, 12.0, seed=2, noise=3.0)
        engine = Engine(use_cache=False)
        e = engine.embedder
        _say(f"model {engine.bundle.name} on {e.device} ({e.graph or e.backend_name})")
        rows = [
            bench_corpus("1.6 MP", small, engine, 24 if quick else 48),
            bench_corpus("12 MP", big, engine, 8 if quick else 24),
        ]
        _say()
        _say(
            f"{'corpus':8} {'files':>6} {'MB/file':>8} {'decode':>8} {'infer':>8} {'end-to-end':>11} "
            f"{'naive':>7} {'speed-up':>9}   (img/s)"
        )
        for r in rows:
            naive = r["naive"]
            _say(
                f"{r['corpus']:8} {r['files']:>6} {r['mb_per_file']:>8.2f} {r['decode']:>8.1f} "
                f"{r['infer']:>8.1f} "
                f"{r['end_to_end']:>11.1f} {naive or float('nan'):>7.1f} "
                f"{(r['end_to_end'] / naive) if naive else float('nan'):>8.1f}x"
            )
        for r in rows:
            _say(
                f"{r['corpus']} end to end with the same-capture check: {r['end_to_end_checked']:.1f} img/s "
                f"({r['pairs_checked']} pairs of crops of the same photo checked)"
            )
        first, rescan = bench_rescan(work, Engine, n_rescan)
        _say(f"\nscan of {n_rescan} small photos: first {first:.0f} files/s, rescan {rescan:.0f} files/s")
        inside, outside = bench_queries(engine, rows[0]["library"], big[0])
        _say(f"find similar: {inside:.2f} ms/query in the library, {outside:.1f} ms for an outside image")
        lib = rows[0]["library"]
        t = engine.bundle.duplicate_threshold
        rec, n_true = annoy_recall(lib.embeddings, t)
        _say(f"Annoy recall of exact pairs >= {t} on real embeddings: {rec:.4f} ({n_true} pairs)")
        syn = synthetic(20_000 if quick else 100_000, engine.bundle.embed_dim, 2000)
        rec, n_true = annoy_recall(syn, 0.85)
        _say(f"Annoy recall on {len(syn)} synthetic embeddings (planted): {rec:.4f} ({n_true} pairs)")
        if not skip_1m:
            n = 100_000 if quick else 1_000_000
            import multiprocessing

            # In a process of its own, so that its peak memory is its own and not the whole benchmark's.
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                m = pool.apply(bench_million, (n, engine.bundle.embed_dim))
            _say(
                f"grouping {m['n']:,} synthetic {engine.bundle.embed_dim}-d embeddings, {m['edges']:,} "
                f"candidate "
                f"edges: {m['total_s']:.1f} s (exact confirm {m['confirm_s']:.1f} s), peak RSS "
                f"{m['peak_rss_mb']:.0f} MB, planted groups recovered exactly {m['exact_match']:.4f}"
            )
            a = bench_annoy_million(n, engine.bundle.embed_dim, 5_000 if quick else 20_000)
            _say(
                f"Annoy candidates at {n:,} (worst case: uniform random vectors): build "
                f"{a['build_s']:.0f} s, "
                f"{a['ms_per_query']:.2f} ms/query -> {a['all_queries_s'] / 60:.1f} min for every item, "
                f"recall of planted pairs {a['recall']:.3f}"
            )
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    return 0
