"""Nearest neighbours over embeddings: an Annoy index (angular), and the pairs above a threshold.

Candidates come from Annoy's k-NN and are confirmed with the exact cosine, so the approximation can lose a
pair but never invent one. Below ``EXACT_LIMIT`` vectors an exact blocked matrix product is both faster than
building an index and complete, so it is used there; ``candidate_pairs(method="annoy")`` forces Annoy (the
benchmark measures its recall against the exact pairs).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.results import Pairs

log = logging.getLogger(__name__)

EXACT_LIMIT = 20_000
DEFAULT_K = 32
# At most this many partners per image are kept (its most similar): real groups of copies are far smaller, and
# a degenerate folder (2,000 smooth gradients all alike) would otherwise cost millions of pairs and minutes.
MAX_PARTNERS = 200
BLOCK_CELLS = 8 << 20  # products held at once by exact_pairs (float32: 32 MB)
# The loosest threshold accepted anywhere: below it nearly every two photos pair up, and nothing is learnt.
MIN_THRESHOLD = 0.5


def check_threshold(threshold: float, what: str = "threshold") -> float:
    """``threshold`` if it is a usable cosine threshold, else ``ValueError`` (NaN included)."""
    if not MIN_THRESHOLD <= threshold <= 1.0:
        raise ValueError(
            f"the {what} must be between {MIN_THRESHOLD} and 1 (a cosine similarity), got {threshold}"
        )
    return float(threshold)


def default_trees(n: int) -> int:
    return 10 if n < 10_000 else 25 if n < 200_000 else 50


class VectorIndex:
    """An Annoy (angular) index over L2-normalised vectors, with exact cosines for its answers."""

    def __init__(self, vectors: np.ndarray, n_trees: int | None = None, seed: int = 1234) -> None:
        if vectors.ndim != 2 or len(vectors) == 0:
            raise ValueError(f"need a non-empty (N, d) matrix, got shape {vectors.shape}")
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.n, self.dim = self.vectors.shape
        self.n_trees = n_trees or default_trees(self.n)
        self.annoy = AnnoyIndex(self.dim, "angular")
        self.annoy.set_seed(seed)
        for i, v in enumerate(self.vectors):
            self.annoy.add_item(i, v)
        self.annoy.build(self.n_trees, n_jobs=-1)

    @classmethod
    def load(cls, path: str | os.PathLike, vectors: np.ndarray) -> VectorIndex:
        """Load a saved index of exactly these vectors. Its checksums are verified *before* Annoy maps the
        file:
        a damaged index crashes Annoy's reader or answers with wrong neighbours. Raises ``ValueError``."""
        self = cls.__new__(cls)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.n, self.dim = self.vectors.shape
        try:
            saved = json.loads(Path(_sum_path(path)).read_text(encoding="utf-8"))
            ok = saved.get("file") == _file_digest(path) and saved.get("vectors") == _vectors_digest(
                self.vectors
            )
        except (OSError, ValueError, AttributeError) as e:
            raise ValueError(f"{path} has no valid checksum ({e})") from None
        if not ok:
            raise ValueError(f"{path} is damaged or indexes other vectors")
        self.annoy = AnnoyIndex(self.dim, "angular")
        if not self.annoy.load(str(path)) or self.annoy.get_n_items() != self.n:
            raise ValueError(f"{path} does not index these {self.n} vectors")
        self.n_trees = self.annoy.get_n_trees()
        return self

    def save(self, path: str | os.PathLike) -> None:
        """Write the index and a checksum of it and of its vectors beside it (``load`` verifies both)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{path}.tmp"
        self.annoy.save(tmp)
        self.annoy.unload()
        try:
            sums = {"file": _file_digest(tmp), "vectors": _vectors_digest(self.vectors)}
            Path(f"{_sum_path(path)}.tmp").write_text(json.dumps(sums), encoding="utf-8")
            os.replace(tmp, path)
            os.replace(f"{_sum_path(path)}.tmp", _sum_path(path))
        finally:
            self.annoy = AnnoyIndex(self.dim, "angular")
            self.annoy.load(str(path) if os.path.exists(path) else tmp)

    def search_k(self, k: int) -> int:
        return k * self.n_trees * 10

    def query(self, vector: np.ndarray, k: int, exclude: int | None = None) -> list[tuple[int, float]]:
        """Top ``k`` neighbours of a vector as ``(index, cosine)``, best first."""
        ids = self.annoy.get_nns_by_vector(vector, k + (exclude is not None), self.search_k(k))
        ids = [i for i in ids if i != exclude][:k]
        sims = self.vectors[ids] @ vector.astype(np.float32)
        order = np.argsort(-sims, kind="stable")
        return [(ids[o], float(sims[o])) for o in order]

    def neighbours(self, i: int, k: int) -> list[int]:
        return self.annoy.get_nns_by_item(i, k, self.search_k(k))


def _sum_path(path: str | os.PathLike) -> str:
    return f"{os.fspath(path)}.sum"


def _file_digest(path: str | os.PathLike) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _vectors_digest(vectors: np.ndarray) -> str:
    return hashlib.blake2b(
        np.ascontiguousarray(vectors, dtype=np.float32).tobytes(), digest_size=16
    ).hexdigest()


def prune_indexes(folder: str | os.PathLike, keep: int = 2) -> None:
    """Delete all but the ``keep`` most recently used saved indexes in ``folder`` (each library's file set has
    its own; a changed file makes a new one, so old ones only take disk space)."""
    try:
        saved = sorted(Path(folder).glob("*.ann"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return
    for p in saved[keep:]:
        for f in (p, Path(_sum_path(p))):
            try:
                f.unlink(missing_ok=True)
            except OSError:
                pass


def exact_pairs(
    vectors: np.ndarray, threshold: float, *, block: int | None = None, cancel: CancelToken = NEVER_CANCELLED
) -> Pairs:
    """Every pair ``i < j`` with cosine ≥ threshold, by blocked matrix products; a row with more than
    ``MAX_PARTNERS`` such partners keeps its most similar ones.

    A block's products are held with a mask, their indices and a crowded rows' copy: at 20,000 images,
    2,048 rows a block was 164 MB of products and about 500 MB at the peak; blocks are sized so that the
    products stay near ``BLOCK_CELLS`` (32 MB).
    """
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    block = block or int(np.clip(BLOCK_CELLS // max(1, len(v)), 64, 2048))
    out_i, out_j, out_s = [], [], []
    for s in range(0, len(v), block):
        cancel.raise_if_cancelled()
        sims = v[s : s + block] @ v[s:].T
        sims[np.tril_indices(len(sims), 0, sims.shape[1])] = -np.inf  # upper triangle only: j > i
        crowded = np.count_nonzero(sims >= threshold, axis=1) > MAX_PARTNERS
        if crowded.any():  # keep only each crowded row's best partners
            rows = np.nonzero(crowded)[0]
            best = np.argpartition(-sims[rows], MAX_PARTNERS - 1, axis=1)[:, :MAX_PARTNERS]
            kept = np.take_along_axis(sims[rows], best, axis=1)
            sims[rows] = -np.inf
            sims[rows[:, None], best] = kept
        ii, jj = np.nonzero(sims >= threshold)
        out_i.append(ii + s)
        out_j.append(jj + s)
        out_s.append(sims[ii, jj])
    return _concat(out_i, out_j, out_s)


def annoy_pairs(
    index: VectorIndex,
    threshold: float,
    *,
    k: int = DEFAULT_K,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
    workers: int | None = None,
) -> Pairs:
    """Pairs above ``threshold`` among each item's Annoy neighbours, confirmed with the exact cosine.

    When an item's k-th neighbour is still above the threshold, its query is repeated with 4k, so large
    groups (bursts) are not cut at k.
    """
    v = index.vectors
    n = index.n
    chunk = 2048

    def run(start: int) -> Pairs:
        ii, jj, ss = [], [], []
        for i in range(start, min(start + chunk, n)):
            kk = min(k, n)
            while True:
                ids = np.asarray(index.neighbours(i, kk), dtype=np.int64)
                sims = v[ids] @ v[i]
                if kk >= min(n, MAX_PARTNERS) or sims.min(initial=1.0) < threshold:
                    break
                kk = min(kk * 4, n, MAX_PARTNERS)
            keep = (sims >= threshold) & (ids > i)
            ii.append(np.full(int(keep.sum()), i, dtype=np.int64))
            jj.append(ids[keep])
            ss.append(sims[keep])
        return _concat(ii, jj, ss)

    results = []
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        futures = [pool.submit(run, s) for s in range(0, n, chunk)]
        for done, f in enumerate(futures, 1):
            if cancel.cancelled:
                for g in futures:
                    g.cancel()
                cancel.raise_if_cancelled()
            results.append(f.result())
            progress(min(done * chunk, n), n, "Comparing images")
    return merge_pairs(*results)  # a pair found from both ends appears twice: keep one


def candidate_pairs(
    vectors: np.ndarray,
    threshold: float,
    *,
    method: str = "auto",
    index: VectorIndex | None = None,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> Pairs:
    """Pairs ``a < b`` with cosine ≥ threshold, sorted by ``(a, b)``."""
    if method not in ("auto", "exact", "annoy"):
        raise ValueError(f"unknown method {method!r}")
    if len(vectors) < 2:
        return Pairs.empty()
    if method == "exact" or (method == "auto" and len(vectors) <= EXACT_LIMIT):
        found = exact_pairs(vectors, threshold, cancel=cancel)
    else:
        index = index or VectorIndex(vectors)
        found = annoy_pairs(index, threshold, progress=progress, cancel=cancel)
    found = found.select(np.lexsort((found.b, found.a)))
    # Vectors are stored as float16: a byte-identical pair can come out a hair above 1.
    return Pairs(found.a, found.b, np.minimum(found.similarity, 1.0))


def turned_pairs(
    vectors: np.ndarray,
    turned: np.ndarray,
    owner: np.ndarray,
    threshold: float,
    *,
    index: VectorIndex | None = None,
    block: int = 1024,
    cancel: CancelToken = NEVER_CANCELLED,
) -> Pairs:
    """Pairs between images' turned embeddings (``turned[r]`` belongs to image ``owner[r]``) and every image's
    plain embedding, at or above ``threshold``; exact below ``EXACT_LIMIT`` images, else Annoy then exact."""
    if not len(turned) or len(vectors) < 2:
        return Pairs.empty()
    t = np.ascontiguousarray(turned, dtype=np.float32)
    ii, jj, ss = [], [], []
    if index is None and len(vectors) <= EXACT_LIMIT:
        v = np.ascontiguousarray(vectors, dtype=np.float32)
        for start in range(0, len(t), block):
            cancel.raise_if_cancelled()
            sims = t[start : start + block] @ v.T
            r, c = np.nonzero(sims >= threshold)
            ii.append(owner[start + r])
            jj.append(c)
            ss.append(sims[r, c])
    else:
        index = index or VectorIndex(vectors)
        for r in range(len(t)):
            if r % 1024 == 0:
                cancel.raise_if_cancelled()
            hits = [(k, x) for k, x in index.query(t[r], DEFAULT_K) if x >= threshold]
            ii.append(np.full(len(hits), owner[r], np.int64))
            jj.append(np.array([k for k, _ in hits], np.int64))
            ss.append(np.array([x for _, x in hits], np.float32))
    found = _concat(ii, jj, ss)
    found = found.select(found.a != found.b)
    a, b = found.a, found.b
    return Pairs(np.minimum(a, b), np.maximum(a, b), np.minimum(found.similarity, 1.0))


def merge_pairs(
    *tables: Pairs,
) -> Pairs:
    """Union of pair lists, keeping the highest similarity of a pair found more than once; sorted by (i,
    j)."""
    both = _concat([p.a for p in tables], [p.b for p in tables], [p.similarity for p in tables])
    if not len(both):
        return both
    order = np.lexsort((-both.similarity, both.b, both.a))  # by pair, best similarity first
    i, j = both.a[order], both.b[order]
    first = np.ones(len(i), bool)
    first[1:] = (i[1:] != i[:-1]) | (j[1:] != j[:-1])
    return both.select(order[first])


def _concat(i, j, s) -> Pairs:
    cat = lambda xs, dt: np.concatenate(xs).astype(dt) if len(xs) else np.zeros(0, dt)  # noqa: E731
    return Pairs(cat(list(i), np.int64), cat(list(j), np.int64), cat(list(s), np.float32))
