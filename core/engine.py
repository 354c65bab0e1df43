"""The pipeline: scan → decode → embed → cache → pairs → groups, and "find similar" over the same scan.

``Engine.scan`` returns a ``Library``: the files, their embeddings and the pairs down to a loose floor, so a
stricter or looser threshold regroups at once without embedding anything again.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from core import layout
from core.blank import is_blank
from core.cache import CachedEntry, EmbeddingCache, default_cache_dir
from core.confirm import WORK_COUNTS, Confirmed, confirm_pairs, verdicts_key
from core.decode import PREPROCESS_VERSION, DecodeError, decode_for_model, open_regular
from core.embed import Embedded, Embedder, ModelBundle, embed_files, load_bundle
from core.grouping import code_digest as grouping_code
from core.grouping import group_pairs, with_unsure
from core.index import (
    EXACT_LIMIT,
    VectorIndex,
    candidate_pairs,
    check_threshold,
    merge_pairs,
    prune_indexes,
    turned_pairs,
)
from core.memory import give_back, tune_allocator
from core.pair_store import PairStore, Verdicts, library_key
from core.previews import SIDE as PREVIEW_SIDE
from core.previews import PreviewSpool
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.results import Group, ImageRecord, ModelInfo, Pairs, Problem, ScanResult
from core.scan import FoundFile, ScanOptions, Walk, find_images
from core.verify import unsure as unsure_verdict

log = logging.getLogger(__name__)

# Similar shots group by complete linkage (every two members a close pair), their pairs merged by
# ``shot_order``. Merged by the duplicate embedding's cosine alone, complete linkage kept 64 % of the tuning
# split's other-shot pairs of shots/ together and half-linkage 66 %, with 603 pairs of different subjects in
# the tier; merged by the mean with the features, complete linkage keeps 70 % and 178 such pairs
# (training/reports/verification.md, "Similar shots grouped by both measures").
SIMILAR_SHARE = 1.0


def file_digest(path: str) -> str:
    """A hash of the file's bytes (for exact copies); ``OSError`` when it cannot be read as a regular file."""
    h = hashlib.blake2b(digest_size=16)
    try:
        opened = open_regular(path)  # a FIFO swapped in after the decode must not block the scan here either
    except DecodeError as e:
        raise OSError(str(e)) from e
    with opened as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pair_cosines(vectors, i: np.ndarray, j: np.ndarray, chunk: int = 256) -> np.ndarray:
    """``vectors[i] · vectors[j]`` row by row, ``chunk`` pairs at a time into two buffers kept for the whole
    call: 38,000 pairs of 1,280-d features gathered at once held 400 MB, most of a scan's peak memory; and
    4,096-pair chunks gathered into new arrays took 0.14 s for a 300-photo scan's 5,717 pairs, mostly the
    fresh memory's page faults (now ~10 ms).

    float16 rows are turned to float32 once each, up to ``_CONVERT_AT_ONCE`` bytes of them, rather than once
    per pair they are in (numpy converts float16 in software); the sums are the same either way.
    ``vectors``: an array, or any rows that an index array gathers (a cluster's memory-mapped shards)."""
    out = np.empty(len(i), np.float32)
    if not len(i):
        return out
    if not isinstance(vectors, np.ndarray):  # rows gathered on request (a cluster's memory-mapped shards)
        for s in range(0, len(i), chunk):
            x = np.asarray(vectors[i[s : s + chunk]], np.float32)
            out[s : s + chunk] = np.einsum("ij,ij->i", x, np.asarray(vectors[j[s : s + chunk]], np.float32))
        return out
    if vectors.dtype != np.float32 and len(i) > len(vectors) and vectors.size * 4 <= _CONVERT_AT_ONCE:
        vectors = vectors.astype(np.float32)
    rows = np.empty((2, chunk, vectors.shape[1]), vectors.dtype)
    f32 = rows if vectors.dtype == np.float32 else np.empty(rows.shape, np.float32)
    for s in range(0, len(i), chunk):
        n = min(chunk, len(i) - s)
        np.take(vectors, i[s : s + n], axis=0, out=rows[0, :n])
        np.take(vectors, j[s : s + n], axis=0, out=rows[1, :n])
        if f32 is not rows:
            np.copyto(f32[:, :n], rows[:, :n])
        out[s : s + n] = np.einsum("ij,ij->i", f32[0, :n], f32[1, :n])
    return out


_CONVERT_AT_ONCE = 64 << 20  # 12,500 photos' 1,280-d features as float32


class FileDigests:
    """Content hashes of ``files`` by position, each file read once (None: it cannot be read), and whether
    two files are byte-identical: sizes first, then hashes (an unreadable file is identical to nothing)."""

    def __init__(self, files: Sequence[ImageRecord]) -> None:
        self.files = files
        self.known: dict[int, str | None] = {}

    def get(self, k: int) -> str | None:
        if k not in self.known:
            try:
                self.known[k] = file_digest(self.files[k].path)
            except OSError:
                self.known[k] = None
        return self.known[k]

    def identical(self, a: int, b: int) -> bool:
        if self.files[a].size != self.files[b].size:
            return False
        return self.get(a) is not None and self.get(a) == self.get(b)


def shot_order(similarity: np.ndarray, features: np.ndarray) -> np.ndarray:
    """The order in which similar shots' pairs merge into groups, highest first: the mean of their
    duplicate-embedding cosine (``similarity``) and their ImageNet features' cosine. The embedding is taught
    that a copy under any edit is the same picture, and two scenes of a kind (two HDR brackets of two houses)
    come closer by it than two exposures of one; the features tell subjects apart."""
    return (np.asarray(similarity, np.float32) + np.asarray(features, np.float32)) / 2


def shot_rank(features) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """``shot_order`` of pairs ``(a, b)`` of cosine ``s``, their features' cosines computed from the vectors
    ``features`` (the archive path's ``stream_groups``, which sees a chunk of pairs at a time)."""

    def rank(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
        return shot_order(s, pair_cosines(features, a, b))

    return rank


def near_layout(pairs: Pairs, layouts: np.ndarray | None, below: float) -> np.ndarray:
    """Per pair: under the cosine ``below`` but with nearly the same grey-level layout (``core.layout``), as a
    strong colour filter leaves a copy (``layouts``: per file, uint64; None: unknown, nothing is near)."""
    near = np.zeros(len(pairs), bool)
    if layouts is None or not len(pairs):
        return near
    low = np.nonzero(pairs.similarity < below)[0]
    near[low[layout.near(layouts[pairs.a[low]], layouts[pairs.b[low]])]] = True
    return near


def counted_at(verified: Pairs, verify_from: float) -> Pairs:
    """Pairs verified as one capture as the duplicates count them: one checked because its layout matched
    (``near_layout``, under ``verify_from``) counts as the loosest candidate, shown at the default
    strictness."""
    return Pairs(verified.a, verified.b, np.maximum(verified.similarity, np.float32(verify_from)))


def unsure_pairs(
    files: Sequence[ImageRecord], a: Iterable[int], b: Iterable[int], reasons: Iterable[str]
) -> set[tuple[str, str]]:
    """The path pairs (sorted) of verified pairs ``(a, b)`` whose verdict was unsure (``core.verify.unsure``),
    for ``core.grouping.with_unsure``."""
    return {
        (min(files[x].path, files[y].path), max(files[x].path, files[y].path))
        for x, y, r in zip(a, b, reasons, strict=True)
        if unsure_verdict(r)
    }


def pair_keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """One int64 per unordered pair of positions ``a[k]``, ``b[k]`` among ``n`` files."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    return np.minimum(a, b) * n + np.maximum(a, b)


def ignored_keys(
    ignored: Iterable[tuple[str, str]], index_of: Callable[[str], int | None], n: int
) -> np.ndarray:
    """The ``pair_keys`` of path pairs a person marked "not a duplicate" (pairs of files not among the ``n``
    left out)."""
    at = [(index_of(a), index_of(b)) for a, b in ignored]
    at = [(x, y) for x, y in at if x is not None and y is not None]
    return pair_keys(np.array([x for x, _ in at], np.int64), np.array([y for _, y in at], np.int64), n)


def best_copies(groups: Iterable[Group], index_of: Callable[[str], int | None], n: int) -> np.ndarray:
    """For each of ``n`` files, the position of its duplicate group's best copy when it is another copy of
    that group, else -1."""
    out = np.full(n, -1, np.int64)
    for g in groups:
        first = index_of(g.members[0].file.path)
        out[[k for m in g.members[1:] if (k := index_of(m.file.path)) is not None]] = (
            -1 if first is None else first
        )
    return out


def similar_candidates(
    pairs: Pairs, same: np.ndarray, ignored: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """(pairs that may be similar shots: not verified as one capture, or marked "not a duplicate" by a person,
    which is not "not alike": another capture the check took for a copy belongs there; those marked).
    ``ignored``: the marked pairs' ``pair_keys``."""
    marked = np.isin(pair_keys(pairs.a, pairs.b, n), ignored) if len(ignored) else np.zeros(len(pairs), bool)
    return ~same | marked, marked


def through_best(pairs: Pairs, rows: np.ndarray, best: np.ndarray, n: int) -> np.ndarray:
    """The ``pair_keys`` of the candidate ``rows`` of ``pairs`` that have a best copy at one end (the
    ``best`` of ``best_copies``), for ``similar_rows``: a few per group."""
    is_best = np.zeros(n, bool)
    is_best[best[best >= 0]] = True
    rows = rows & (is_best[pairs.a] | is_best[pairs.b])
    return pair_keys(pairs.a[rows], pairs.b[rows], n)


def similar_rows(
    pairs: Pairs, rows: np.ndarray, marked: np.ndarray, best: np.ndarray, stood: np.ndarray, n: int
) -> np.ndarray:
    """Which ``pairs`` are similar shots, of the candidate ``rows`` (``similar_candidates``, close by the
    features): a photo with copies is listed once, by its duplicate group's best copy, so a pair of another
    copy ``x`` and a photo ``y`` is left out when the best copy of ``x`` is a candidate with ``y`` too
    (``stood``: ``through_best`` over all the pairs), unless a person ``marked`` it "not a duplicate"."""
    a, b = np.asarray(pairs.a, np.int64), np.asarray(pairs.b, np.int64)
    drop = np.zeros(len(pairs), bool)
    for x, y in ((a, b), (b, a)):
        s = best[x]
        drop |= (s >= 0) & (s != y) & np.isin(pair_keys(np.maximum(s, 0), y, n), stood)
    return rows & (marked | ~drop)


@dataclass
class Library:
    """What one scan found: records, vectors, problems, and the pairs at or above ``floor``."""

    files: tuple[ImageRecord, ...]
    embeddings: np.ndarray  # (N, D) duplicate embeddings
    features: np.ndarray  # (N, F) float16 vectors for "find similar" and the similar shots
    problems: tuple[Problem, ...]
    model: ModelInfo
    floor: float
    pairs: Pairs  # every pair ≥ floor, by position in ``files``
    ignored: set[tuple[str, str]] = field(default_factory=set)
    index_dir: Path | None = None
    cache_key: str = ""  # everything that determined the vectors (see Engine.cache_key)
    blank: tuple[ImageRecord, ...] = ()  # flat or structureless images: listed, never paired (core.blank)
    # Per pair: verified as the same capture (core.confirm). None: not verified, every pair counts.
    same: np.ndarray | None = None
    reasons: Sequence[str] = ()  # per pair, why it is or is not one capture (``PairReasons``)
    verify_from: float = 0.0  # pairs below this cosine were not checked: never duplicates
    similar_features: float = 0.0  # a similar shot must also reach this ImageNet-features cosine
    layouts: np.ndarray | None = None  # (N,) uint64 grey-level layout hashes (core.layout); None: unknown
    _feature_sims: np.ndarray | None = field(default=None, repr=False)
    # The name of this library's verdicts in its saved tables (``core.confirm.verdicts_key``; "" when none
    # are saved): groups made from them are saved too, and read back at the same thresholds.
    saved_as: str = ""
    stats: dict = field(default_factory=dict)
    _file_digests: FileDigests | None = field(default=None, repr=False)
    _similar_index: VectorIndex | None = field(default=None, repr=False)
    _positions: dict[str, int] | None = field(default=None, repr=False)
    # the verified pairs the check was not sure of, by path (``unsure_pairs``), set with ``same``
    unsure: set[tuple[str, str]] = field(default_factory=set, repr=False)

    def _hashes(self) -> FileDigests:
        if self._file_digests is None:
            self._file_digests = FileDigests(self.files)
        return self._file_digests

    def identical(self, a: int, b: int) -> bool:
        """Whether files ``a`` and ``b`` (positions in ``files``) are byte-identical (see ``FileDigests``)."""
        return self._hashes().identical(a, b)

    def result(
        self, threshold: float, similar_threshold: float | None = None, *, remember: bool = True
    ) -> ScanResult:
        """Group this library at a threshold, without embedding or reading any file again.

        Duplicates are pairs verified as the same capture; similar shots are the close pairs that were not.
        Groups of a library whose tables are saved are saved too (unless ``remember`` is false), and read
        back by the next scan of the unchanged library at the same thresholds and ignored pairs: at 20,000
        photos grouping took a third of a rescan.

        Args:
            threshold: the duplicates' cosine threshold, ≥ the floor this library was scanned with.
            similar_threshold: the similar shots' threshold (default: the floor).
            remember: save the groups for the next scan (off for a passing regrouping, such as a slider).

        Returns:
            A ``ScanResult``: duplicate groups, similar-shot groups, the confirmed pairs at ``threshold``.

        Raises:
            ValueError: a threshold below the scanned floor (scan again with a lower ``floor``).
        """
        check_threshold(threshold)
        similar_threshold = self.floor if similar_threshold is None else check_threshold(similar_threshold)
        if min(threshold, similar_threshold) < self.floor - 1e-9:
            raise ValueError(
                f"threshold {min(threshold, similar_threshold)} is below the scanned floor "
                f"{self.floor}; scan again"
            )
        # duplicates are verified pairs only; the others are at most similar shots
        pairs = self.pairs if self.same is None else self.pairs.select(self.same)
        if self.same is not None and self.verify_from:
            pairs = counted_at(pairs, self.verify_from)
        store = PairStore(self.index_dir) if self.index_dir and self.saved_as else None
        key = self._groups_key(threshold, similar_threshold) if store else ""
        saved = store.load_groups(key, self.files) if store else None
        if saved is not None and len(saved) == 2:
            groups, shots = saved
            return self._grouped(groups, shots, pairs, threshold)
        groups = tuple(
            group_pairs(self.files, pairs, threshold, identical=self.identical, ignored=self.ignored)
        )
        shots: tuple[Group, ...] = ()
        if self.same is not None:
            n = len(self.files)
            best = best_copies(groups, self.index_of, n)
            rows, marked = similar_candidates(
                self.pairs, self.same, ignored_keys(self.ignored, self.index_of, n), n
            )
            features = self.feature_similarity()  # computed once: 1M pairs' took 7 s
            rows &= features >= self.similar_features
            other = similar_rows(self.pairs, rows, marked, best, through_best(self.pairs, rows, best, n), n)
            shots = tuple(
                group_pairs(
                    self.files,
                    self.pairs.select(other),
                    similar_threshold,
                    share=SIMILAR_SHARE,
                    similarity=lambda a, b: float(self.embeddings[a] @ self.embeddings[b]),
                    order=shot_order(self.pairs.similarity[other], features[other]),
                )
            )
        if store and remember:
            store.save_groups(key, (groups, shots), self.index_of)
        return self._grouped(groups, shots, pairs, threshold)

    def _groups_key(self, threshold: float, similar_threshold: float) -> str:
        """A name for this library's groups at these thresholds, with its ignored pairs, by this code (the
        verdicts' name, ``saved_as``, stands for the library, its pairs and verdicts)."""
        h = hashlib.blake2b(digest_size=16)
        parts = (self.saved_as, threshold, similar_threshold, SIMILAR_SHARE, self.similar_features)
        h.update(f"{parts!r}\0{grouping_code()}\n".encode())
        for f in (
            Library.result,
            similar_rows,
            best_copies,
            through_best,
            similar_candidates,
            shot_order,
            counted_at,
        ):  # each tier's pairs
            h.update(marshal.dumps(f.__code__))
        for a, b in sorted(self.ignored):
            h.update(f"{a}\0{b}\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()

    def _grouped(
        self, groups: tuple[Group, ...], shots: tuple[Group, ...], pairs: Pairs, threshold: float
    ) -> ScanResult:
        """The result of ``groups`` (their members marked where the check was unsure, ``with_unsure``) and
        ``shots``, with the duplicates' ``pairs`` at ``threshold``."""
        return ScanResult(
            self.files,
            # a pair a person called "not a duplicate" is settled: no doubt left about it
            with_unsure(groups, self.unsure - self.ignored),
            pairs.select(pairs.similarity >= threshold).matches(self.files),
            self.problems,
            threshold,
            self.model,
            dict(self.stats),
            self.blank,
            shots,
        )

    def near_layout(self, below: float) -> np.ndarray:
        """``near_layout`` of this library's pairs. Such pairs are checked like candidates."""
        return near_layout(self.pairs, self.layouts, below)

    def feature_similarity(self) -> np.ndarray:
        """The ImageNet-features cosine of every pair (computed once)."""
        if self._feature_sims is None:
            i, j = self.pairs.a, self.pairs.b
            self._feature_sims = pair_cosines(self.features, i, j)
        return self._feature_sims

    def similar_index(self) -> VectorIndex:
        """Annoy index over the "find similar" vectors, persisted next to the cache and reused."""
        if self._similar_index is None:
            if not len(self.files):
                raise ValueError("no images were scanned")
            # The index file is named for what it indexes: the model and every file as scanned.
            fingerprint = hashlib.sha1(self.cache_key.encode())
            for f in self.files:
                fingerprint.update(f"{f.path}\0{f.size}\0{f.mtime_ns}\n".encode("utf-8", "surrogateescape"))
            path = self.index_dir / f"similar-{fingerprint.hexdigest()[:20]}.ann" if self.index_dir else None
            if path and path.exists():
                try:
                    self._similar_index = VectorIndex.load(path, self.features)
                    os.utime(path)  # most recently used: kept by pruning
                except (OSError, ValueError) as e:
                    log.warning("rebuilding the similar index: %s", e)
            if self._similar_index is None:
                self._similar_index = VectorIndex(self.features)
                if path:
                    try:
                        self._similar_index.save(path)
                        prune_indexes(path.parent)
                    except OSError as e:  # the saved index only saves time
                        log.warning("could not save the similar index %s: %s", path, e)
        return self._similar_index

    def index_of(self, path: str) -> int | None:
        """The position of ``path`` in ``files`` (None: not scanned, or set apart as blank or a problem)."""
        if self._positions is None:
            self._positions = {f.path: k for k, f in enumerate(self.files)}
        return self._positions.get(os.path.abspath(path))

    def digests(self) -> dict[int, str | None]:
        """The content hashes known so far, by file position."""
        return dict(self._hashes().known)

    def prepare_digests(
        self, cancel: CancelToken = NEVER_CANCELLED, known: dict[int, str] | None = None
    ) -> None:
        """Hash every file that has a same-size partner among the pairs, so ``result`` never reads files
        (the scan runs this in its worker thread; the GUI regroups without I/O). ``known``: hashes already
        at hand (from the cache)."""
        hashes = self._hashes()
        hashes.known.update(known or {})
        i, j = self.pairs.a, self.pairs.b
        sizes = np.fromiter((f.size for f in self.files), np.int64, len(self.files))
        same = sizes[i] == sizes[j]
        for k in np.union1d(i[same], j[same]).tolist():
            cancel.raise_if_cancelled()
            hashes.get(k)


class Engine:
    """The model, the cache and the settings one scan or query needs.

    Args:
        model_dir: the model folder (default: the bundled one, see ``core.resources``).
        device: "auto" (CUDA, then Apple MPS, then the CPU), or one of those by name.
        cache_dir: where embeddings and decisions are cached (default: the user's cache folder).
        use_cache: off: nothing is read from or written to a cache.
        batch_size: images embedded at once (default: 16 on the CPU, 64 on a GPU).
        workers: decoding and verification threads (default: the CPU count).
        verify: check candidate pairs as the same capture (``core.confirm``); off: the embedding alone.
        threads: ONNX Runtime's threads (default: the CPU count; a Ray worker gets the CPUs Ray gave it).
        int8: on the CPU, the model's int8 graph (True), its float graph (False), or whichever suits this CPU
            (None: ``core.embed.int8_suits_cpu``).
    """

    def __init__(
        self,
        *,
        model_dir: str | os.PathLike | None = None,
        device: str = "auto",
        cache_dir: str | os.PathLike | None = None,
        use_cache: bool = True,
        batch_size: int | None = None,
        workers: int | None = None,
        verify: bool = True,
        threads: int | None = None,
        int8: bool | None = None,
    ) -> None:
        tune_allocator()  # see core.memory: decoded photos must not leave the heap fragmented
        self.bundle: ModelBundle = load_bundle(model_dir)
        self.verify = verify  # check candidate pairs as the same capture (core.confirm); off: embedding only
        self.device = device
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.use_cache = use_cache
        self.batch_size = (
            batch_size  # None: 16 on the CPU (fits its caches: measured ~10% faster than 32), 64 on a GPU
        )
        self.workers = workers
        self.threads = threads
        self.int8 = int8
        self._embedder: Embedder | None = None

    @property
    def model_info(self) -> ModelInfo:
        """The model's name and weights hash, as results report them."""
        return ModelInfo(self.bundle.name, self.bundle.sha256)

    @property
    def embedder(self) -> Embedder:
        """The model on its device, made on first use."""
        if self._embedder is None:
            self._embedder = Embedder(self.bundle, self.device, threads=self.threads, int8=self.int8)
        return self._embedder

    @property
    def cache_key(self) -> str:
        """Everything that determines an embedding: the weights torch runs, the ONNX graph ONNX Runtime runs,
        what the model is fed, and whether portrait rows carry turned embeddings."""
        # The graph ONNX Runtime runs (float or int8, core.embed.int8_suits_cpu); torch keeps the float
        # graph's key, as it always has (their outputs agree to a cosine of 0.99995).
        graph = self.embedder.graph or "onnx"
        onnx = self.bundle.manifest.get(graph, {}).get("sha256", "")
        turned = "/turned" if self.bundle.turned_embeddings else ""
        return f"{self.bundle.sha256}/{onnx}/{PREPROCESS_VERSION}{turned}"

    def default_floor(self) -> float:
        """The loosest threshold a scan keeps pairs for: the similar-shot threshold, or the bottom of the
        app's duplicate slider (0.1 below the duplicate threshold) if lower. (The model's *similar* threshold
        is calibrated on the ImageNet features that serve "Find similar", not on the duplicate embedding, and
        on it would keep millions of pairs.)"""
        b = self.bundle
        return max(0.5, min(b.similar_shot_threshold, b.duplicate_threshold - 0.1, b.candidate_threshold))

    def default_threshold(self) -> float:
        """The duplicate threshold a scan reports at by default: with verification, every candidate that
        verifies is a duplicate (the check, not the cosine, keeps precision); without it, the calibrated
        one."""
        return self.bundle.candidate_threshold if self.verify else self.bundle.duplicate_threshold

    def checked_from(self, threshold: float) -> float:
        """Where a scan that reports duplicates at ``threshold`` starts checking pairs (``scan``'s
        ``verify_from``): at the model's candidate threshold even when ``threshold`` is stricter. A copy
        between the two left unchecked would be taken for another shot and shown among the similar shots."""
        return min(threshold, self.bundle.candidate_threshold)

    def checked_rows(self, pairs: Pairs, layouts: np.ndarray | None, verify_from: float) -> np.ndarray:
        """The rows of ``pairs`` a scan checking from ``verify_from`` verifies: those at or above it and,
        unless a stricter threshold than the candidate one was asked for, those under it whose grey-level
        layouts match (``near_layout``; such a pair counts at ``verify_from``, ``counted_at``)."""
        close = pairs.similarity >= verify_from
        if verify_from <= self.bundle.candidate_threshold + 1e-9:
            close |= near_layout(pairs, layouts, verify_from)
        return np.nonzero(close)[0]

    def open_cache(self) -> EmbeddingCache | None:
        """The cache this engine reads and writes (None when caching is off); the caller closes it."""
        return EmbeddingCache(self.cache_dir) if self.use_cache else None

    def mark_not_duplicate(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Remember path pairs a person said are not duplicates (kept in the cache, honoured by every scan).

        Args:
            pairs: ``(path, path)`` pairs, in either order. Without a cache this does nothing.
        """
        self._not_duplicate(pairs, forget=False)

    def forget_not_duplicate(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Take pairs off the "not a duplicate" list again.

        Args:
            pairs: ``(path, path)`` pairs as they were marked, in either order.
        """
        self._not_duplicate(pairs, forget=True)

    def not_duplicate_pairs(self) -> set[tuple[str, str]]:
        """Every pair remembered as "not a duplicate" (empty without a cache)."""
        cache = self.open_cache()
        if cache is None:
            return set()
        with cache:
            return cache.not_duplicate_pairs()

    def _not_duplicate(self, pairs: Iterable[tuple[str, str]], *, forget: bool) -> None:
        cache = self.open_cache()
        if cache is None:
            return
        with cache:
            for a, b in pairs:
                (cache.forget_not_duplicate if forget else cache.mark_not_duplicate)([a, b])

    def scan(
        self,
        paths: str | bytes | os.PathLike | Iterable[str | bytes | os.PathLike],
        options: ScanOptions | None = None,
        *,
        floor: float | None = None,
        verify_from: float | None = None,
        progress: ProgressFn = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> Library:
        """Find, decode, embed (or read from the cache) and pair the images under ``paths``.

        Args:
            paths: folders or files; one path (str, bytes or PathLike) or several.
            options: include/exclude globs, minimum size, hidden files, symlinks.
            floor: the loosest threshold the returned library can regroup at (default: ``default_floor()``).
            verify_from: pairs at or above this cosine are checked as the same capture, and only they can be
                duplicates (default: the model's candidate threshold, never below ``floor``).
            progress: called with ``(done, total, message)``.
            cancel: checked between items; a cancelled scan raises ``Cancelled`` and keeps its cached work.

        Returns:
            A ``Library``; ``library.result(threshold)`` gives groups at any threshold ≥ ``floor``.
        """
        floor = self.default_floor() if floor is None else check_threshold(floor, "floor")
        verify_from = max(floor, self.bundle.candidate_threshold if verify_from is None else verify_from)
        if isinstance(paths, (str, bytes, os.PathLike)):
            paths = [paths]  # one path, not its characters
        paths = [os.fsdecode(p) for p in paths]
        cache = self.open_cache()
        try:
            return self._scan(paths, options or ScanOptions(), floor, verify_from, cache, progress, cancel)
        finally:
            if cache:
                cache.close()

    def _scan(
        self,
        paths: list[str],
        options: ScanOptions,
        floor: float,
        verify_from: float,
        cache: EmbeddingCache | None,
        progress: ProgressFn,
        cancel: CancelToken,
    ) -> Library:
        run = _ScanRun(self, cache, progress, cancel)
        walk = run.walk(paths, options)
        entries, todo = run.lookup(walk.files)
        try:
            run.embed(todo, entries)
            if todo:
                self.embedder.release()  # see Embedder.release: what follows needs no model
            return run.library(walk, entries, floor, verify_from, embedded=len(todo))
        finally:
            run.close()

    def embed_entries(
        self,
        files: Sequence[FoundFile],
        *,
        cancel: CancelToken = NEVER_CANCELLED,
        previews: PreviewSpool | None = None,
    ) -> Iterator[list[CachedEntry]]:
        """Decode and embed ``files``, one batch of cache rows at a time (a file that cannot be read is a row
        with its ``error``). The local scan and the Ray workers (``core.cluster``) embed through this.

        Args:
            files: the files to read, as the walk found them (path, size, mtime).
            cancel: checked between batches.
            previews: where to keep each picture for the pair check (``core.previews``; None: nowhere).

        Yields:
            ``CachedEntry`` rows in the order of ``files``, a batch at a time.
        """
        embedder = self.embedder
        batch_size = self.batch_size or (16 if embedder.device == "cpu" else 64)
        for batch in embed_files(
            embedder,
            [f.path for f in files],
            batch_size=batch_size,
            workers=self.workers,
            turned=self.bundle.turned_embeddings,
            cancel=cancel,
            preview=PREVIEW_SIDE if previews is not None else 0,
        ):
            if previews is not None:
                for e in batch:
                    if e.decoded is not None:
                        f = files[e.index]
                        previews.put(f.path, f.size, f.mtime_ns, e.decoded.preview)
            yield [_entry(files[e.index], e) for e in batch]

    def library_from(
        self,
        walk: Walk,
        entries: dict[str, CachedEntry],
        *,
        floor: float | None = None,
        verify_from: float | None = None,
        embedded: int = 0,
        progress: ProgressFn = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> Library:
        """Pair, verify and wrap files embedded elsewhere (the Ray scan's shards) into a ``Library``, exactly
        as ``scan`` does after its embedding step.

        Args:
            walk: the files found (their order is the library's order) and the walk's problems.
            entries: a row per path of ``walk.files``, as ``embed_entries`` makes them; emptied (the
                rows' vectors move into the library's matrices).
            floor, verify_from: as for ``scan``.
            embedded: how many of the rows were embedded by this run (for ``stats``).
            progress, cancel: as for ``scan``.
        """
        floor = self.default_floor() if floor is None else check_threshold(floor, "floor")
        verify_from = max(floor, self.bundle.candidate_threshold if verify_from is None else verify_from)
        cache = self.open_cache()
        try:
            run = _ScanRun(self, cache, progress, cancel)
            return run.library(walk, entries, floor, verify_from, embedded=embedded, device=self.device)
        finally:
            if cache:
                cache.close()

    def embed_paths(
        self, paths: Sequence[str]
    ) -> tuple[list[tuple[np.ndarray, np.ndarray, int | None] | None], list[Problem]]:
        """Embed images outside any scan (for "find similar to this image").

        Args:
            paths: image files.

        Returns:
            Per path, its ``(embedding, features, layout)`` (``core.layout``, as a scan keeps it) or None when
            it cannot be decoded; and a ``Problem`` for each file that could not.
        """
        out, problems = [], []
        for p in paths:
            try:
                d = decode_for_model(str(p), self.embedder.size)
            except DecodeError as e:
                problems.append(Problem(str(p), str(e)))
                out.append(None)
                continue
            emb, feat = self.embedder.embed_arrays(d.pixels[None])
            out.append((_f16(emb[0]), _f16(feat[0]), d.layout))
        return out, problems

    def find_similar(self, library: Library, query: str, top: int = 10) -> list[tuple[str, float]]:
        """The images of ``library`` most like ``query``.

        Args:
            library: a scan's library.
            query: an image file, inside the library or not.
            top: how many to return at most.

        Returns:
            ``(path, similarity)`` pairs, most similar first (``query`` itself left out).

        Raises:
            DecodeError: ``query`` is outside the library and cannot be decoded.
        """
        idx = library.index_of(query)
        use_features = self.bundle.similar_source == "features"
        if idx is not None:
            vec = library.features[idx] if use_features else library.embeddings[idx]
        else:
            (vecs,), problems = self.embed_paths([query])
            if vecs is None:
                raise DecodeError(problems[0].reason)
            vec = vecs[1] if use_features else vecs[0]
        if use_features:
            index = library.similar_index()
        else:
            index = VectorIndex(library.embeddings)
        hits = index.query(vec, min(top, len(library.files) - (idx is not None)), exclude=idx)
        return [(library.files[i].path, s) for i, s in hits]


def _f16(v: np.ndarray) -> np.ndarray:
    """Round to float16 and back, as the cache stores it, so a first scan and a rescan agree exactly."""
    return np.asarray(v, dtype=np.float16).astype(np.float32)


class _Assembled(NamedTuple):
    """The usable images of a scan, as rows of the vector matrices, and what was set apart."""

    files: list[ImageRecord]
    embeddings: np.ndarray  # (N, D)
    features: np.ndarray  # (N, F)
    turned: tuple[np.ndarray, np.ndarray] | None  # turned embeddings (R, D) and the row each belongs to (R,)
    blank: list[ImageRecord]
    problems: list[Problem]
    layouts: np.ndarray  # (N,) uint64, core.layout.layout_hash per image


class _ScanRun:
    """One scan's stages, in order: walk → lookup → embed → assemble → pair → digest → verify. Each stage
    reads and writes the cache it was given (or none) and honours the scan's progress and cancel."""

    def __init__(
        self, engine: Engine, cache: EmbeddingCache | None, progress: ProgressFn, cancel: CancelToken
    ) -> None:
        self.engine, self.cache, self.progress, self.cancel = engine, cache, progress, cancel
        self.cache_key = engine.cache_key
        self.pairs_reused = False  # the pair stage read the last scan's table
        self.store: PairStore | None = None  # where pairs and verdicts are saved for the next scan
        self.library_key = ""  # what the saved pairs are named for (core.pair_store.library_key)
        self.previews: PreviewSpool | None = None  # the pictures embedded, for the pair check (core.previews)

    def close(self) -> None:
        """Let go of what the run kept for its later stages (the previews' temporary file)."""
        if self.previews is not None:
            self.previews.close()
            self.previews = None

    def walk(self, paths: list[str], options: ScanOptions) -> Walk:
        """The image files under ``paths``; content verdicts for odd extensions come from the cache."""
        cache = self.cache
        known = cache.sniffed() if cache else {}

        def sniffed(path: str, size: int, mtime: int) -> str | None:
            v = known.get(path)
            return v[2] if v and v[:2] == (size, mtime) else None

        self.progress(0, 0, "Looking for photos")
        walk = find_images(paths, options, sniffed=sniffed, progress=self.progress, cancel=self.cancel)
        if cache and walk.sniffed:
            stats = {p: os.stat(p) for p in walk.sniffed if os.path.exists(p)}
            cache.store_sniffed({p: (st.st_size, st.st_mtime_ns, walk.sniffed[p]) for p, st in stats.items()})
        return walk

    def lookup(self, found: list[FoundFile]) -> tuple[dict[str, CachedEntry], list[FoundFile]]:
        """Cached entries still valid for the files found, and the files to read."""
        entries = (
            self.cache.lookup(self.cache_key, ((f.path, f.size, f.mtime_ns) for f in found))
            if self.cache
            else {}
        )
        # a row from before layouts were kept (cache schema 6) is read again, once
        stale = [p for p, c in entries.items() if c.layout is None and not c.error and not c.blank]
        for p in stale:
            del entries[p]
        todo = [f for f in found if f.path not in entries]
        log.info("%d images found, %d from the cache, %d to read", len(found), len(entries), len(todo))
        return entries, todo

    def embed(self, todo: list[FoundFile], entries: dict[str, CachedEntry]) -> None:
        """Decode and embed ``todo`` into ``entries``, storing each batch in the cache as it comes."""
        total = len(todo)
        if not todo:
            self.progress(0, 0, "Reading 0 photos")
            return
        embedder = self.engine.embedder
        self.progress(0, 0, "Loading the model")  # its own step: ~1-3 s at 0 % made the first ETA wrong
        embedder.load()
        self.progress(0, total, f"Reading {total} photos")
        if self.engine.verify and self.previews is None:
            folder = self.engine.cache_dir if self.cache and self.cache.usable else None
            self.previews = PreviewSpool(folder)
        done = 0
        for fresh in self.engine.embed_entries(todo, cancel=self.cancel, previews=self.previews):
            if self.cache:
                self.cache.store(
                    self.cache_key, fresh
                )  # committed per batch: a cancelled scan keeps its work
            entries.update((c.path, c) for c in fresh)
            done += len(fresh)
            self.progress(done, total, f"Reading {os.path.basename(fresh[-1].path)}")

    def library(
        self,
        walk: Walk,
        entries: dict[str, CachedEntry],
        floor: float,
        verify_from: float,
        *,
        embedded: int,
        device: str | None = None,
    ) -> Library:
        """The stages after embedding: assemble → pair → digest → verify, into a ``Library``."""
        engine, cache = self.engine, self.cache
        files, emb, feat, turned, blank, problems, layouts = self.assemble(walk, entries)
        digests = {path: c.digest for path, c in entries.items() if c.digest}
        # The rows' vectors are in the matrices now: at 20,000 photos the rows held another ~80 MB through
        # pairing and the check.
        entries.clear()
        pairs, feature_sims = self.pair(files, emb, feat, turned, floor)
        lib = Library(
            tuple(files),
            emb,
            feat,
            tuple(problems),
            engine.model_info,
            floor,
            pairs,
            cache.not_duplicate_pairs() if cache else set(),
            index_dir=engine.cache_dir / "index" if cache and cache.usable else None,
            cache_key=self.cache_key,
            blank=tuple(blank),
            similar_features=engine.bundle.similar_shot_features,
            layouts=layouts,
            _feature_sims=feature_sims,
            stats={
                "found": len(walk.files),
                "cached": len(walk.files) - embedded,
                "embedded": embedded,
                "pairs_reused": self.pairs_reused,
                "device": device or (engine.embedder.device if embedded else engine.device),
                "warnings": [],
            },
        )
        self.digest(lib, digests)
        if engine.verify:
            self.verify(lib, verify_from)
            give_back()  # the decoded images of the check, freed
        if cache:
            lib.stats["warnings"] = list(cache.warnings)
        return lib

    def assemble(self, walk: Walk, entries: dict[str, CachedEntry]) -> _Assembled:
        """Records and vector matrices of the usable images; problems and blank images set apart."""
        files, embs, feats, turned, owner, blank, layouts = [], [], [], [], [], [], []
        problems = list(walk.problems)
        for f in walk.files:
            c = entries[f.path]
            if c.error:
                problems.append(Problem(f.path, c.error))
                continue
            rec = c.record  # valid for this path, size and mtime (EmbeddingCache.lookup)
            if c.blank:
                blank.append(rec)
                continue
            if c.turned is not None:
                turned.append(c.turned)
                owner += [len(files)] * len(c.turned)
            files.append(rec)
            embs.append(c.embedding)
            feats.append(c.features)
            layouts.append(c.layout or 0)
        problems.sort(key=lambda p: p.path)
        bundle = self.engine.bundle
        emb = _float_rows(embs, bundle.embed_dim)
        # The features stay float16, as cached (exactly: they were rounded to it when made): 51 MB, not 102,
        # at 20,000 photos; Annoy and the pairs' cosines take them to float32 as they need.
        feat = (
            np.stack(feats).astype(np.float16, copy=False)
            if feats
            else np.zeros((0, bundle.feature_dim), np.float16)
        )
        rows = (np.concatenate(turned).astype(np.float32), np.asarray(owner, np.int64)) if turned else None
        return _Assembled(files, emb, feat, rows, blank, problems, np.array(layouts, np.uint64))

    def pair(
        self,
        files: list[ImageRecord],
        emb: np.ndarray,
        feat: np.ndarray,
        turned: tuple[np.ndarray, np.ndarray] | None,
        floor: float,
    ) -> tuple[Pairs, np.ndarray | None]:
        """Pairs at or above ``floor``, including a photo and its copy turned by 90 degrees; with the check
        on, each pair's features cosine too (what the similar shots need; None without the check).

        The pairs of an unchanged library are read back from the last scan's (``core.pair_store``): at
        20,000 photos finding them again took seconds, the whole of a rescan.
        """
        self.progress(0, len(emb), "Comparing photos")
        store = PairStore(self.engine.cache_dir / "index") if self.cache and self.cache.usable else None
        key = library_key(self.cache_key, floor, turned is not None, files)
        self.store, self.library_key = store, key
        saved = store.load(key, len(files)) if store else None
        want_features = self.engine.verify
        if saved is not None and (saved.features is not None or not want_features):
            self.pairs_reused = True
            return saved.pairs, saved.features if want_features else None
        index = VectorIndex(emb) if len(emb) > EXACT_LIMIT else None
        pairs = candidate_pairs(emb, floor, index=index, progress=self.progress, cancel=self.cancel)
        if turned is not None:  # see core.embed.PORTRAIT_RATIO
            rot = turned_pairs(emb, turned[0], turned[1], floor, index=index, cancel=self.cancel)
            pairs = merge_pairs(pairs, rot)
        feature_sims = pair_cosines(feat, pairs.a, pairs.b) if want_features else None
        if store:
            store.save(key, pairs, feature_sims)
        return pairs, feature_sims

    def digest(self, lib: Library, known: dict[str, str]) -> None:
        """Content hashes of same-size partners (exact copies), from the cache (``known``: by path) or read
        once and cached."""
        cached = {k: known[f.path] for k, f in enumerate(lib.files) if f.path in known}
        lib.prepare_digests(self.cancel, known=cached)
        if self.cache:  # a rescan must not read the files again to tell exact copies
            files = lib.files
            self.cache.store_digests(
                self.cache_key,
                {
                    files[k].path: (files[k].size, files[k].mtime_ns, d)
                    for k, d in lib.digests().items()
                    if d and k not in cached
                },
            )

    def verify(self, lib: Library, verify_from: float) -> None:
        """Check every pair at or above ``verify_from`` as the same capture (core.confirm).

        An unchanged library's verdicts are read back whole from the last scan's (``core.pair_store``):
        looking up 100,000 pairs' verdicts one by one in the cache was a quarter of a 20,000-photo rescan.
        """
        # The layout check rescues copies a strong colour filter took under the candidate cosine, and a pair
        # it rescues counts at verify_from (Library.result). Asked for a stricter threshold than the
        # candidate one, nothing under it is a duplicate (`--threshold 0.9995` grouped a copy at 0.999).
        started, cpu_started = time.perf_counter(), time.process_time()
        close = self.engine.checked_rows(lib.pairs, lib.layouts, verify_from)
        checked = lib.pairs.select(close)
        key = verdicts_key(self.library_key, verify_from, close) if self.store else ""
        saved = self.store.load_verdicts(key, len(close)) if self.store else None
        if saved is not None:
            st = saved.stats
            looked_up = len(close) - st.get("identical", 0) - st.get("camera_data", 0)
            st |= {"verdicts_cached": looked_up, "verified": 0, **dict.fromkeys(WORK_COUNTS, 0)}
            confirmed = Confirmed(saved.same, tuple(saved.reasons), st)
        else:
            confirmed = confirm_pairs(
                lib.files,
                checked,
                identical=lib.identical,
                cache=self.cache,
                workers=self.engine.workers,
                progress=self.progress,
                cancel=self.cancel,
                previews=self.previews,
            )
            if self.store:
                verdicts = Verdicts(confirmed.same, list(confirmed.reasons), confirmed.stats)
                self.store.save_verdicts(key, verdicts)
        same = np.zeros(len(lib.pairs), bool)
        same[close] = confirmed.same
        reasons = PairReasons(len(lib.pairs), close, confirmed.reasons, "not close enough to be a copy")
        lib.same, lib.reasons, lib.verify_from = same, reasons, verify_from
        lib.unsure = unsure_pairs(lib.files, checked.a.tolist(), checked.b.tolist(), confirmed.reasons)
        lib.saved_as = key  # its groups are saved beside its verdicts
        # the stage's own time, so that any scan shows what the check cost (the previews it reads were made
        # while reading the photos: ~1 ms a picture of 2 MP or more, not counted here); and its CPU time,
        # which a busy machine inflates less than the seconds (nothing else of the scan runs meanwhile)
        lib.stats["verification"] = {
            **confirmed.stats,
            "seconds": round(time.perf_counter() - started, 3),
            "cpu_seconds": round(time.process_time() - cpu_started, 3),
        }


class PairReasons(Sequence[str]):
    """Per pair of a library, why it is or is not one capture: the checked pairs' own reasons, one shared
    default for the rest. A tuple of 3.8M references (20,000 photos) held 30 MB, and 60 MB while made."""

    def __init__(self, n: int, checked: np.ndarray, reasons: Sequence[str], default: str) -> None:
        self._n, self._checked, self._reasons, self._default = n, np.asarray(checked), tuple(reasons), default

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, k):  # type: ignore[override]
        if isinstance(k, slice):
            return [self[x] for x in range(*k.indices(self._n))]
        if not -self._n <= k < self._n:
            raise IndexError(k)
        k %= self._n
        at = int(np.searchsorted(self._checked, k))
        return self._reasons[at] if at < len(self._checked) and self._checked[at] == k else self._default

    def __iter__(self):
        given = dict(zip(self._checked.tolist(), self._reasons, strict=True))
        return (given.get(k, self._default) for k in range(self._n))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and len(other) == self._n and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]


def _float_rows(rows: list[np.ndarray], dim: int) -> np.ndarray:
    """One float32 matrix of the float16 rows the cache gives, converted row by row into place: stacking
    then converting a whole (20,000 x 1,280) matrix took 0.7 s of a rescan, this 0.2 s."""
    out = np.empty((len(rows), dim), np.float32)
    for k, row in enumerate(rows):
        out[k] = row
    return out


def _entry(f: FoundFile, e: Embedded) -> CachedEntry:
    """The cache row of one decoded and embedded file (or of its decode error)."""
    if e.error:
        return CachedEntry(ImageRecord(f.path, f.size, f.mtime_ns, 0, 0, ""), error=e.error)
    d = e.decoded
    return CachedEntry(
        ImageRecord(f.path, f.size, f.mtime_ns, d.width, d.height, d.format, d.taken, d.capture),
        _f16(e.embedding),
        _f16(e.features),
        turned=None if e.turned is None else _f16(e.turned),
        blank=is_blank(d.pixels),
        layout=e.layout,
    )
