"""The Ray scan's grouping for archives too large for a ``Library`` in memory (``ray_scan.LARGE_LIBRARY``
files and up): the same steps as ``Engine.library_from`` then ``Library.result``, with the vectors, the pairs
and the grouping on disk.

The shards are read twice, a shard at a time: their metadata columns give the files in the walk's order (the
records stay in memory: about 400 bytes a file), then the vector columns fill float16 memory maps (512 bytes
a file for the embedding, 2,560 for the features). Pairs come from ``cell_pairs`` into a pair file; the pairs
at or above the verification threshold are checked as one capture (``core.confirm``, as in a local scan) a
chunk at a time; both tiers are grouped by ``stream_groups``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from core.cluster.pairs import PairFile, cell_pairs, stream_groups
from core.cluster.shards import ShardStore, column_matrix
from core.confirm import confirm_pairs
from core.engine import (
    SIMILAR_SHARE,
    Engine,
    FileDigests,
    best_copies,
    counted_at,
    ignored_keys,
    pair_cosines,
    shot_rank,
    similar_candidates,
    similar_rows,
    through_best,
    unsure_pairs,
)
from core.errors import LookalikeError
from core.grouping import group_order, with_unsure
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.results import ImageRecord, Pairs, Problem, ScanResult
from core.scan import Walk

log = logging.getLogger(__name__)

VERIFY_CHUNK = 50_000  # candidate pairs checked at once


class _Rows32:
    """Rows of a float16 memory map, gathered as float32 (the local scan's vectors are float16 values held
    as float32, so the cosines agree)."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    def __getitem__(self, k: np.ndarray) -> np.ndarray:
        return self.rows[k].astype(np.float32)


def _read_shards(store: ShardStore, walk: Walk, work: Path):
    """Files in walk order, blank and problems, and the float16 memory maps of their vectors."""
    want = {f.path: (f.size, f.mtime_ns) for f in walk.files}
    where: dict[str, tuple[int, int]] = {}  # path -> (shard, row)
    meta: dict[str, tuple] = {}
    names = list(store.shards)
    for si, (_, t) in enumerate(
        store.tables(
            ["path", "size", "mtime_ns", "width", "height", "format", "taken", "capture", "error", "blank"]
        )
    ):
        cols = [t.column(c).to_pylist() for c in t.column_names]
        for r, row in enumerate(zip(*cols, strict=True)):
            path = os.fsdecode(row[0])
            if want.get(path) == (row[1], row[2]):
                where[path] = (si, r)
                meta[path] = row
    files, blank, problems, pos = [], [], list(walk.problems), {}
    for f in walk.files:
        if f.path not in meta:
            raise LookalikeError(f"{f.path} is missing from the shards after embedding")
        _, size, mtime, width, height, fmt, taken, capture, error, is_blank = meta.pop(f.path)
        if error:
            problems.append(Problem(f.path, error))
            continue
        rec = ImageRecord(f.path, size, mtime, width or 0, height or 0, fmt or "", taken, capture)
        if is_blank:
            blank.append(rec)
            continue
        pos[f.path] = len(files)
        files.append(rec)
    problems.sort(key=lambda p: p.path)
    n, d, fd = len(files), store.embed_dim, store.feature_dim
    work.mkdir(parents=True, exist_ok=True)
    emb = np.lib.format.open_memmap(work / "embeddings.npy", "w+", np.float16, (max(n, 1), d))[:n]
    feat = np.lib.format.open_memmap(work / "features.npy", "w+", np.float16, (max(n, 1), fd))[:n]
    layouts = np.zeros(n, np.uint64)  # core.layout's hashes; 0 (near nothing) where a shard has none
    owner: list[np.ndarray] = []
    per_shard: dict[int, list[tuple[int, int]]] = {}
    for path, (si, r) in where.items():
        if path in pos:
            per_shard.setdefault(si, []).append((r, pos[path]))
    del where, pos
    with open(work / "turned.bin", "wb") as turned:  # portraits' turned embeddings, on disk as they come
        for si, name in enumerate(names):
            if si not in per_shard:
                continue
            rows, at = (np.array(x) for x in zip(*per_shard.pop(si), strict=True))
            ((_, t),) = store.tables(["embedding", "features", "turned"], names=[name])
            t = t.take(rows)
            emb[at] = column_matrix(t, "embedding", d)[0]
            feat[at] = column_matrix(t, "features", fd)[0]
            layouts[at] = store.layouts(name)[rows]
            rot, has = column_matrix(t, "turned", 2 * d)
            turned.write(np.ascontiguousarray(rot[has]).tobytes())
            owner.append(np.repeat(at[has].astype(np.int64), 2))
    owners = np.concatenate(owner) if owner else np.zeros(0, np.int64)
    rows = (
        (np.memmap(work / "turned.bin", np.float16, "r", shape=(len(owners), d)), owners)
        if len(owners)
        else None
    )
    return files, blank, problems, emb, feat, rows, layouts


def large_result(
    engine: Engine,
    store: ShardStore,
    walk: Walk,
    threshold: float,
    similar: float,
    *,
    floor: float,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> ScanResult:
    """``Engine.library_from(...).result(threshold, similar)`` for an archive, out of core.

    The working files (vectors, pairs, buckets) go to ``store.folder / "work"``.
    """
    started = time.perf_counter()
    work = store.folder / "work"
    files, blank, problems, emb, feat, turned, layouts = _read_shards(store, walk, work)
    read_s = time.perf_counter() - started
    pairs: PairFile = cell_pairs(emb, floor, work / "pairs", turned=turned, progress=progress, cancel=cancel)
    pairs_s = time.perf_counter() - started - read_s
    identical = FileDigests(files).identical
    cache = engine.open_cache()
    try:
        ignored = cache.not_duplicate_pairs() if cache else set()
        same = np.zeros(len(pairs), bool)
        unsure: set[tuple[str, str]] = set()  # verified pairs the check was not sure of, by path
        # from the candidate threshold even when the duplicates' is stricter: a copy left unchecked would be
        # taken for a similar shot
        verify_from = max(floor, engine.checked_from(threshold))
        if engine.verify:
            at = 0
            for chunk in pairs.chunks():
                close = engine.checked_rows(chunk, layouts, verify_from)  # as the local scan's
                if len(close):
                    confirmed = confirm_pairs(
                        files,
                        chunk.select(close),
                        identical=identical,
                        cache=cache,
                        workers=engine.workers,
                        progress=progress,
                        cancel=cancel,
                    )
                    same[at + close] = confirmed.same
                    checked = chunk.select(close)
                    unsure |= unsure_pairs(files, checked.a, checked.b, confirmed.reasons)
                at += len(chunk)
        else:
            same[:] = True
    finally:
        if cache:
            cache.close()

    def selected(mask: np.ndarray):
        def chunks():
            at = 0
            for chunk in pairs.chunks():
                yield chunk.select(mask[at : at + len(chunk)])
                at += len(chunk)

        return chunks

    def verified():
        """The pairs verified as one capture, counted as Library.result counts them (``counted_at``)."""
        for chunk in selected(same)():
            yield counted_at(chunk, verify_from) if engine.verify else chunk

    def cosine(a: int, b: int) -> float:
        return float(emb[a].astype(np.float32) @ emb[b].astype(np.float32))

    groups = tuple(
        sorted(
            stream_groups(
                files,
                verified,
                threshold,
                work / "groups",
                identical=identical,
                ignored=ignored,
                cancel=cancel,
            ),
            key=group_order,
        )
    )
    groups = with_unsure(groups, unsure - ignored)  # as Library.result
    # as Library.result: pairs not verified or marked "not a duplicate", close by the features, and none
    # through a copy that its group's best copy stands for (the pairs through best copies, over all chunks
    # first)
    n = len(files)
    position = {f.path: k for k, f in enumerate(files)}
    best, keys = best_copies(groups, position.get, n), ignored_keys(ignored, position.get, n)
    other = np.zeros(len(pairs), bool)  # the candidates close by the features, then the similar shots
    if engine.verify:
        marked = np.zeros(len(pairs), bool)
        stood, at = [], 0
        for chunk in pairs.chunks():
            rows = slice(at, at + len(chunk))
            cand, marked[rows] = similar_candidates(chunk, same[rows], keys, n)
            k = np.nonzero(cand)[0]
            sims = pair_cosines(_Rows32(feat), chunk.a[k], chunk.b[k]) if len(k) else np.zeros(0, np.float32)
            other[at + k] = sims >= engine.bundle.similar_shot_features
            stood.append(through_best(chunk, other[rows], best, n))
            at += len(chunk)
        stood = np.concatenate(stood) if stood else np.zeros(0, np.int64)
        at = 0
        for chunk in pairs.chunks():
            rows = slice(at, at + len(chunk))
            other[rows] = similar_rows(chunk, other[rows], marked[rows], best, stood, n)
            at += len(chunk)

    shots = ()
    if engine.verify:
        shots = tuple(
            sorted(
                stream_groups(
                    files,
                    selected(other),
                    similar,
                    work / "similar",
                    share=SIMILAR_SHARE,
                    similarity=cosine,
                    rank=shot_rank(_Rows32(feat)),
                    cancel=cancel,
                ),
                key=group_order,
            )
        )
    kept = [c.select(c.similarity >= threshold) for c in verified()]
    matches = Pairs(
        np.concatenate([c.a for c in kept]) if kept else np.zeros(0, np.int64),
        np.concatenate([c.b for c in kept]) if kept else np.zeros(0, np.int64),
        np.concatenate([c.similarity for c in kept]) if kept else np.zeros(0, np.float32),
    ).matches(files)
    stats = {
        "large": True,
        "pairs": len(pairs),
        "read_s": round(read_s, 2),
        "pairs_s": round(pairs_s, 2),
        "group_s": round(time.perf_counter() - started - read_s - pairs_s, 2),
        "warnings": [],
    }
    return ScanResult(
        tuple(files),
        groups,
        matches,
        tuple(problems),
        threshold,
        engine.model_info,
        stats,
        tuple(blank),
        shots,
    )
