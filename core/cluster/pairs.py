"""Pairs and groups of millions of embeddings, out of core: what ``core.index`` and ``core.grouping`` do in
memory for one machine's library, for an archive.

Pairs (``cell_pairs``): the vectors (a float16 memory map: 10M x 256 is 5 GB) are split into cells of about
``CELL_SIZE`` around centroids learnt on a sample (spherical k-means). Each vector belongs to its ``probes``
nearest cells and is compared, by exact blocked products, with the members of its nearest one; so two close
vectors meet unless neither's nearest cell is among the other's ``probes`` nearest. One cell's vectors are in
memory at a time; the pairs go to disk in buckets by first index and come back sorted and unique
(``PairFile``). Work is ``N x CELL_SIZE x probes x D``: linear in N at a fixed cell size.

Groups (``stream_groups``): connected components by union-find over the pair file chunk by chunk (memory: one
int64 per vector), then the pairs bucketed by component on disk and each bucket grouped by
``core.grouping.group_pairs`` (complete linkage, best copy first), so groups are the in-memory ones.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from core.grouping import components, group_pairs
from core.index import MAX_PARTNERS
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.results import Group, ImageRecord, Pairs

log = logging.getLogger(__name__)

# Vectors a cell holds as their nearest (its primary members), and cells each vector belongs to. Measured on
# 100k synthetic 256-d vectors (benchmarks/scale.py), recall of the pairs at cosine >= 0.8 and time:
# 2048 x 3 93.9 % 10.6 s; 2048 x 5 97.6 % 14.7 s; 1024 x 6 97.7 % 8.8 s; 1024 x 10 99.6 % 11.0 s;
# 512 x 12 99.6 % 10.5 s (but N / 512 centroids to compare every vector with: 4x the work at 10M).
CELL_SIZE = 1024
PROBES = 10
PAIR = np.dtype([("a", "<i8"), ("b", "<i8"), ("s", "<f4")])
_RANKED = np.dtype([("a", "<i8"), ("b", "<i8"), ("s", "<f4"), ("o", "<f4")])  # stream_groups' buckets
QUERY_CELLS = 8_000_000  # similarities computed at once (float32)
BUCKET_PAIRS = 4_000_000  # pairs sorted in memory at once (96 MB with their merge order)
CHUNK = 1 << 20


class PairFile:
    """Pairs on disk, sorted by ``(a, b)``, unique, as records of ``PAIR`` (20 bytes a pair)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.count = self.path.stat().st_size // PAIR.itemsize

    def __len__(self) -> int:
        return self.count

    def records(self) -> np.ndarray:
        return np.memmap(self.path, PAIR, "r", shape=(self.count,)) if self.count else np.zeros(0, PAIR)

    def chunks(self, size: int = CHUNK) -> Iterator[Pairs]:
        """The pairs in order, ``size`` at a time."""
        rec = self.records()
        for s in range(0, self.count, size):
            part = np.array(rec[s : s + size])
            yield Pairs(part["a"], part["b"], part["s"])

    def load(self) -> Pairs:
        """Every pair in memory (for a library that fits)."""
        rec = np.array(self.records())
        return Pairs(rec["a"], rec["b"], rec["s"])


def _f32(rows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rows, dtype=np.float32)


def learn_centroids(vectors: np.ndarray, cells: int, *, iters: int = 4, seed: int = 0) -> np.ndarray:
    """``cells`` unit centroids by spherical k-means on a sample of the (normalised) rows."""
    n = len(vectors)
    rng = np.random.default_rng(seed)
    sample = _f32(vectors[np.sort(rng.choice(n, size=min(n, max(cells * 40, 10_000)), replace=False))])
    cent = sample[rng.choice(len(sample), size=cells, replace=False)].copy()
    for _ in range(iters):
        near = np.concatenate(
            [np.argmax(sample[s : s + 8192] @ cent.T, axis=1) for s in range(0, len(sample), 8192)]
        )
        sums = np.zeros_like(cent)
        np.add.at(sums, near, sample)
        empty = ~sums.any(axis=1)
        sums[empty] = sample[rng.choice(len(sample), size=int(empty.sum()))]  # an empty cell restarts
        cent = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    return cent


def assign(vectors: np.ndarray, centroids: np.ndarray, probes: int) -> np.ndarray:
    """Each row's ``probes`` nearest cells, nearest first: (N, probes) int32."""
    probes = min(probes, len(centroids))
    chunk = max(256, min(16384, QUERY_CELLS // len(centroids)))
    out = np.empty((len(vectors), probes), np.int32)
    for s in range(0, len(vectors), chunk):
        sims = _f32(vectors[s : s + chunk]) @ centroids.T
        top = (
            np.argpartition(-sims, probes - 1, axis=1)[:, :probes]
            if probes < sims.shape[1]
            else np.argsort(-sims, 1)
        )
        order = np.argsort(-np.take_along_axis(sims, top, 1), axis=1)
        out[s : s + chunk] = np.take_along_axis(top, order, 1)
    return out


def _by_cell(cell_of: np.ndarray, rows: np.ndarray, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by cell, and where each cell's run starts (``cells + 1`` bounds)."""
    order = np.argsort(cell_of, kind="stable")
    return rows[order], np.searchsorted(cell_of[order], np.arange(cells + 1))


def _crowded(sims: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """``hit`` with each row kept to its ``MAX_PARTNERS`` most similar hits (as ``core.index`` does)."""
    rows = np.nonzero(hit.sum(axis=1) > MAX_PARTNERS)[0]
    for r in rows:
        best = np.argpartition(-np.where(hit[r], sims[r], -np.inf), MAX_PARTNERS - 1)[:MAX_PARTNERS]
        hit[r] = False
        hit[r, best] = True
    return hit


class _Buckets:
    """Pairs appended to bucket files by first index; read back sorted and unique into one ``PairFile``."""

    def __init__(self, folder: Path, n: int, expected: int) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.count = max(1, min(4096, expected // BUCKET_PAIRS + 1))
        self.width = -(-max(n, 1) // self.count)
        self.files = [open(folder / f"bucket-{k:05d}.bin", "wb") for k in range(self.count)]  # noqa: SIM115

    def add(self, a: np.ndarray, b: np.ndarray, s: np.ndarray) -> None:
        rec = np.empty(len(a), PAIR)
        rec["a"], rec["b"], rec["s"] = a, b, s
        which = a // self.width
        order = np.argsort(which, kind="stable")
        bounds = np.searchsorted(which[order], np.arange(self.count + 1))
        for k in np.nonzero(np.diff(bounds))[0]:
            self.files[k].write(rec[order[bounds[k] : bounds[k + 1]]].tobytes())

    def finish(self, out: Path) -> PairFile:
        with open(out, "wb") as dst:
            for k, fh in enumerate(self.files):
                fh.close()
                rec = np.fromfile(self.folder / f"bucket-{k:05d}.bin", PAIR)
                (self.folder / f"bucket-{k:05d}.bin").unlink()
                if not len(rec):
                    continue
                rec = rec[np.lexsort((-rec["s"], rec["b"], rec["a"]))]  # by pair, best similarity first
                first = np.ones(len(rec), bool)
                first[1:] = (rec["a"][1:] != rec["a"][:-1]) | (rec["b"][1:] != rec["b"][:-1])
                dst.write(rec[first].tobytes())
        return PairFile(out)


def cell_pairs(
    vectors: np.ndarray,
    threshold: float,
    folder: str | os.PathLike,
    *,
    turned: tuple[np.ndarray, np.ndarray] | None = None,
    cell_size: int = CELL_SIZE,
    probes: int = PROBES,
    seed: int = 0,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> PairFile:
    """Pairs ``a < b`` with cosine ≥ ``threshold`` among unit rows of ``vectors`` (float16 or float32, a
    memory map is fine), written to ``folder/pairs.bin``.

    Args:
        vectors: (N, D) unit vectors.
        threshold: the cosine a pair must reach.
        folder: where the buckets and the pair file go (emptied first).
        turned: extra query rows and the row each belongs to (a portrait's turned embeddings): pairs of
            ``owner[r]`` with any row that ``turned[r]`` reaches.
        cell_size: vectors per cell on average; larger finds more pairs and costs proportionally more.
        probes: cells each vector belongs to.
        seed: for the centroid sample.

    Returns:
        The ``PairFile``; every pair in it is exact (cosine computed, not estimated), and a close pair is
        missed only when the two vectors fell in no common cell (``benchmarks/scale.py`` measures recall).
    """
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    n = len(vectors)
    cells = max(1, n // cell_size)
    if n < 2:
        return _Buckets(folder / "buckets", n, 0).finish(folder / "pairs.bin")
    progress(0, cells, "Comparing photos: learning cells")
    cent = (
        learn_centroids(vectors, cells, seed=seed)
        if cells > 1
        else np.zeros((1, vectors.shape[1]), np.float32)
    )
    near = assign(vectors, cent, probes) if cells > 1 else np.zeros((n, 1), np.int32)
    index = np.int32 if n < 2**31 else np.int64
    members, mbounds = _by_cell(near.reshape(-1), np.repeat(np.arange(n, dtype=index), near.shape[1]), cells)
    primary, pbounds = _by_cell(near[:, 0], np.arange(n, dtype=index), cells)
    if turned is not None and len(turned[0]):
        t_vectors, owner = turned
        t_cell = assign(t_vectors, cent, 1)[:, 0] if cells > 1 else np.zeros(len(t_vectors), np.int32)
        t_rows, tbounds = _by_cell(t_cell, np.arange(len(t_vectors)), cells)
    else:
        t_vectors, owner, t_rows, tbounds = None, None, None, None
    buckets = _Buckets(folder / "buckets", n, expected=n * 8)
    for c in range(cells):
        cancel.raise_if_cancelled()
        m = members[mbounds[c] : mbounds[c + 1]]
        if not len(m):
            continue
        mv = _f32(vectors[m])
        queries = [(primary[pbounds[c] : pbounds[c + 1]], vectors, None)]
        if t_rows is not None:
            queries.append((t_rows[tbounds[c] : tbounds[c + 1]], t_vectors, owner))
        for rows, source, owners in queries:
            step = max(64, QUERY_CELLS // len(m))  # a crowded cell's products in slices of ~32 MB
            for s in range(0, len(rows), step):
                q = rows[s : s + step]
                sims = _f32(source[q]) @ mv.T
                a = q.astype(np.int64) if owners is None else owners[q]
                hit = (sims >= threshold) & (a[:, None] != m[None, :])
                hit = _crowded(sims, hit)
                r, k = np.nonzero(hit)
                i, j = a[r], m[k].astype(np.int64)
                buckets.add(np.minimum(i, j), np.maximum(i, j), np.minimum(sims[r, k], 1.0))
        progress(c + 1, cells, "Comparing photos")
    return buckets.finish(folder / "pairs.bin")


def stream_groups(
    files: Sequence[ImageRecord],
    chunks: Callable[[], Iterable[Pairs]],
    threshold: float,
    folder: str | os.PathLike,
    *,
    identical: Callable[[int, int], bool] | None = None,
    ignored: set[tuple[str, str]] | None = None,
    share: float = 1.0,
    similarity: Callable[[int, int], float] | None = None,
    rank: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
    bucket_pairs: int = BUCKET_PAIRS,
    cancel: CancelToken = NEVER_CANCELLED,
) -> Iterator[Group]:
    """The groups ``group_pairs`` makes of the pairs ``chunks()`` yields, without holding every pair at once.

    ``chunks`` is called twice (components, then buckets), so it must give the same pairs each time. Groups
    come bucket by bucket; sort them with ``core.grouping.group_order`` for the in-memory order. The other
    arguments are ``group_pairs``'s, by position in ``files``; ``rank(a, b, s)`` gives a chunk's pairs their
    ``order`` there (computed once per pair, as the buckets are written).
    """
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    n = len(files)
    parent = np.arange(n, dtype=np.int64)
    total = 0
    for p in chunks():
        cancel.raise_if_cancelled()
        keep = p.similarity >= threshold
        parent = components(n, p.a[keep], p.b[keep], parent)
        total += int(keep.sum())
    if not total:
        return
    count = max(1, total // bucket_pairs + 1)
    width = -(-n // count)
    outs = [open(folder / f"component-{k:05d}.bin", "wb") for k in range(count)]  # noqa: SIM115
    try:
        for p in chunks():
            keep = p.similarity >= threshold
            rec = np.empty(int(keep.sum()), _RANKED)
            rec["a"], rec["b"], rec["s"] = p.a[keep], p.b[keep], p.similarity[keep]
            rec["o"] = rank(rec["a"], rec["b"], rec["s"]) if rank is not None and len(rec) else rec["s"]
            which = parent[rec["a"]] // width  # a component's pairs share its label, so one bucket
            order = np.argsort(which, kind="stable")
            bounds = np.searchsorted(which[order], np.arange(count + 1))
            for k in np.nonzero(np.diff(bounds))[0]:
                outs[k].write(rec[order[bounds[k] : bounds[k + 1]]].tobytes())
    finally:
        for fh in outs:
            fh.close()
    for k in range(count):
        cancel.raise_if_cancelled()
        path = folder / f"component-{k:05d}.bin"
        rec = np.fromfile(path, _RANKED)
        path.unlink()
        if not len(rec):
            continue
        nodes, inverse = np.unique(np.concatenate([rec["a"], rec["b"]]), return_inverse=True)
        sub = Pairs(inverse[: len(rec)], inverse[len(rec) :], rec["s"])
        yield from group_pairs(
            [files[x] for x in nodes.tolist()],
            sub,
            threshold,
            identical=(lambda x, y, nodes=nodes: identical(int(nodes[x]), int(nodes[y])))
            if identical
            else None,
            ignored=ignored,
            share=share,
            similarity=(lambda x, y, nodes=nodes: similarity(int(nodes[x]), int(nodes[y])))
            if similarity
            else None,
            order=rec["o"] if rank is not None else None,
        )
