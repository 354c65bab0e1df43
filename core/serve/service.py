"""What ``lookalike serve`` answers, without HTTP: one library of served folders, queried by uploaded images.

The library is swapped whole when a rescan finishes; every query takes the current one once and uses only it,
so queries are answered, from the old library, while a rescan runs. The model runs one batch at a time across
all threads (``ServeEngine``) and at most one CPU's worth of upload work runs per core, so concurrent uploads
and a rescan never oversubscribe the cores. Nothing here writes, moves or deletes a user's file.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from core import layout, verify
from core.decode import open_image, read_full
from core.engine import Engine, Library
from core.errors import Cancelled, DecodeError, LookalikeError
from core.index import VectorIndex, check_threshold
from core.progress import CancelToken, ProgressFn, no_progress
from core.report import scan_json
from core.scan import ScanOptions
from core.serve.roots import Roots

log = logging.getLogger(__name__)

TIERS = ("duplicate", "similar_shot", "similar")  # best first
_VERIFY_AT_MOST = 20  # library photos verified against one upload (the closest by duplicate embedding)


# How core.decode words the refusal of an image too large to decode safely (pixels or memory).
_TOO_LARGE = ("image too large to decode safely", "too large to decode within the memory budget")


class BadImage(LookalikeError):
    """An uploaded image that cannot be used: which upload (``field``) and why, in the CLI's words."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason

    @property
    def too_large(self) -> bool:
        """Over the decompression-bomb pixel limit or the per-image memory budget."""
        return self.reason.startswith(_TOO_LARGE)


class _Serialised:
    """An embedder whose ``embed_arrays`` runs under a lock; everything else is the embedder's own."""

    def __init__(self, embedder, lock: threading.Lock) -> None:
        self._inner = embedder
        self._lock = lock

    def embed_arrays(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            return self._inner.embed_arrays(batch)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


class ServeEngine(Engine):
    """An ``Engine`` whose model runs one batch at a time, whichever thread (query or rescan) calls it.

    ONNX Runtime already spreads one batch over every core; two at once only make both slower.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model_lock = threading.Lock()
        self._made = threading.Lock()
        self._serialised: _Serialised | None = None

    @property
    def embedder(self):
        with self._made:
            if self._serialised is None:
                self._serialised = _Serialised(super().embedder, self.model_lock)
            return self._serialised


@dataclass
class Job:
    """A background rescan, as clients see it."""

    id: str
    state: str = "running"  # running, done, failed, cancelled
    done: int = 0
    total: int = 0
    message: str = "starting"
    started: float = field(default_factory=time.time)
    finished: float | None = None
    error: str | None = None
    files: int | None = None

    def update(self, done: int, total: int, message: str) -> None:
        self.done, self.total, self.message = done, total, message

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "message": self.message,
            "started": self.started,
            "finished": self.finished,
            "error": self.error,
            "files": self.files,
        }


@dataclass
class _State:
    """One library and what is derived from it; replaced whole by a rescan, never changed in place."""

    library: Library
    index: VectorIndex | None  # over the "find similar" vectors
    by_features: bool  # those are the ImageNet features (else the duplicate embedding)
    groups: dict = field(default_factory=dict)  # (tier, threshold) -> groups JSON


@dataclass(frozen=True)
class Hit:
    path: str  # the client's name (see Roots)
    similarity: float  # cosine on the "find similar" features
    tier: str
    duplicate_similarity: float  # cosine on the duplicate embedding


class Service:
    """The served library and the questions it answers."""

    def __init__(self, engine: Engine, roots: Roots, options: ScanOptions | None = None) -> None:
        self.engine = engine
        self.roots = roots
        # Symlinks are never followed: a link inside a root may point anywhere.
        self.options = options or ScanOptions()
        if self.options.follow_symlinks:
            raise ValueError("the served library never follows symbolic links")
        self._state: _State | None = None
        self._cpu = threading.BoundedSemaphore(os.cpu_count() or 1)
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._jobs_lock = threading.Lock()
        self._running: Job | None = None
        self._thread: threading.Thread | None = None
        self._cancel = CancelToken()
        self._features: OrderedDict[tuple, verify.ImageFeatures | None] = OrderedDict()
        self._features_lock = threading.Lock()
        self._thumbs: OrderedDict[tuple, bytes] = OrderedDict()
        self._thumbs_lock = threading.Lock()
        self._next_job = 1

    # --- the library -------------------------------------------------------------------------------------

    def _scan(self, progress: ProgressFn, cancel: CancelToken) -> Library:
        e = self.engine
        threshold = e.default_threshold()
        floor = min(threshold, e.bundle.similar_shot_threshold)
        return e.scan(
            self.roots.paths,
            self.options,
            floor=floor,
            verify_from=threshold,
            progress=progress,
            cancel=cancel,
        )

    def _install(self, lib: Library) -> None:
        by_features = self.engine.bundle.similar_source == "features"
        index = None
        if lib.files:  # built now, not by the first query
            index = lib.similar_index() if by_features else VectorIndex(lib.embeddings)
        self._state = _State(lib, index, by_features)

    def load(self, progress: ProgressFn = no_progress) -> Library:
        """Scan the roots (or read them from the cache) and serve the result."""
        lib = self._scan(progress, self._cancel)
        self._install(lib)
        self.engine.embedder  # noqa: B018 - load the model now, not on the first upload
        return lib

    @property
    def library(self) -> Library:
        if self._state is None:
            raise RuntimeError("the library is not loaded (call load first)")
        return self._state.library

    def health(self) -> dict:
        lib = self.library
        st = lib.stats
        running = self._running
        return {
            "status": "ok",
            "model": {"name": self.engine.bundle.name, "sha256": self.engine.bundle.sha256},
            "library": {
                "files": len(lib.files),
                "problems": len(lib.problems),
                "blank": len(lib.blank),
                "roots": list(self.roots.names),
            },
            "cache": {
                "enabled": bool(self.engine.use_cache),
                "from_cache": st.get("cached", 0),
                "embedded": st.get("embedded", 0),
                "warnings": list(st.get("warnings", [])),
            },
            "thresholds": {
                "candidate": self.engine.bundle.candidate_threshold,
                "similar_shot": self.engine.bundle.similar_shot_threshold,
            },
            "rescan": running.id if running else None,
        }

    # --- rescans -----------------------------------------------------------------------------------------

    def start_rescan(self) -> tuple[Job, bool]:
        """Start a rescan in a thread: (its job, True), or (the one already running, False)."""
        with self._jobs_lock:
            if self._running is not None:
                return self._running, False
            job = Job(str(self._next_job))
            self._next_job += 1
            self._jobs[job.id] = job
            while len(self._jobs) > 50:
                self._jobs.popitem(last=False)
            self._running = job
            self._thread = threading.Thread(
                target=self._rescan, args=(job,), name=f"rescan-{job.id}", daemon=True
            )
            self._thread.start()
        return job, True

    def _rescan(self, job: Job) -> None:
        try:
            lib = self._scan(job.update, self._cancel)
            self._install(lib)
            job.files, job.state, job.message = len(lib.files), "done", f"{len(lib.files)} photos"
            job.done = job.total
        except Cancelled:
            job.state, job.message = "cancelled", "cancelled"
        except Exception as e:  # noqa: BLE001 - a failed rescan keeps the old library and says why
            log.exception("rescan failed")
            job.state, job.error, job.message = "failed", f"{type(e).__name__}: {e}", "failed"
        finally:
            job.finished = time.time()
            with self._jobs_lock:
                self._running = None

    def job(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def close(self, timeout: float = 10.0) -> None:
        """Cancel a running rescan and wait for it a little."""
        self._cancel.cancel()
        if self._thread is not None:
            self._thread.join(timeout)

    # --- queries -----------------------------------------------------------------------------------------

    @staticmethod
    def _check_header(path: str, field: str) -> None:
        """Refuse what is not an image, or a bomb, from its header alone: no wait for a CPU slot."""
        try:
            with open_image(path):
                pass
        except DecodeError as e:
            raise BadImage(field, str(e)) from e

    def _embed(self, path: str, field: str) -> tuple[np.ndarray, np.ndarray, int | None]:
        (vecs,), problems = self.engine.embed_paths([path])
        if vecs is None:
            raise BadImage(field, problems[0].reason)
        return vecs

    @staticmethod
    def _extract(path: str, field: str) -> verify.ImageFeatures:
        try:
            return verify.extract(path)
        except DecodeError as e:
            raise BadImage(field, str(e)) from e

    def _library_features(self, lib: Library, i: int) -> verify.ImageFeatures | None:
        f = lib.files[i]
        key = (f.path, f.size, f.mtime_ns)
        with self._features_lock:
            if key in self._features:
                self._features.move_to_end(key)
                return self._features[key]
        try:
            feats = verify.extract(f.path)
        except (DecodeError, ValueError, OSError, MemoryError) as e:
            log.info("no verification features for %s: %s", f.path, e)
            feats = None
        with self._features_lock:
            self._features[key] = feats
            while len(self._features) > 256:
                self._features.popitem(last=False)
        return feats

    def _tier(self, dup: float, features: float, same: bool | None) -> str:
        """The engine's rule: a verified copy; else a similar shot when close on both the duplicate embedding
        and the ImageNet features (as ``Library.result`` groups them); else only similar."""
        if same:
            return "duplicate"
        b = self.engine.bundle
        return (
            "similar_shot"
            if dup >= b.similar_shot_threshold and features >= b.similar_shot_features
            else "similar"
        )

    def similar(self, image: str, k: int = 10) -> list[Hit]:
        """The ``k`` library photos most like the image file ``image``, best first: verified copies of the
        same capture, then other shots, then the rest, each by similarity. Raises ``BadImage`` for a bad
        image."""
        if k < 1:
            raise ValueError("k must be at least 1")
        self._check_header(image, "image")
        state = self._state
        if state is None or not state.library.files:
            with self._cpu:
                self._embed(image, "image")  # a bad upload is still a bad upload
            return []
        lib = state.library
        b = self.engine.bundle
        with self._cpu:
            emb, feat, upload_layout = self._embed(image, "image")
            dup = lib.embeddings @ emb
            found = dict(state.index.query(feat if state.by_features else emb, min(k, len(lib.files))))
            close = np.nonzero(dup >= b.similar_shot_threshold)[0]
            close = close[np.argsort(-dup[close], kind="stable")][: max(k, _VERIFY_AT_MOST)]
            for i in close.tolist():
                found.setdefault(i, float(lib.features[i] @ feat) if state.by_features else float(dup[i]))
            same: dict[int, bool] = {}
            # as a scan checks them: close enough, or above the floor with the same layout (a colour filter)
            near = (
                layout.near(upload_layout or 0, lib.layouts[close])
                if lib.layouts is not None
                else np.zeros(len(close), bool)
            )
            wanted = near | (dup[close] >= b.candidate_threshold)
            check = close[wanted].tolist()[:_VERIFY_AT_MOST]
            if check:
                mine = self._extract(image, "image")
                for i in check:
                    theirs = self._library_features(lib, i)
                    same[i] = theirs is not None and verify.verify(theirs, mine).same
        hits = []
        for i, s in found.items():
            name = self.roots.relative(lib.files[i].path)
            if name is not None:
                tier = self._tier(float(dup[i]), float(lib.features[i] @ feat), same.get(i))
                hits.append(Hit(name, _cosine(s), tier, _cosine(dup[i])))
        hits.sort(key=lambda h: (TIERS.index(h.tier), -h.similarity))
        return hits[:k]

    def compare(self, a: str, b: str) -> dict:
        """Both similarities of two image files and whether they are one capture. Raises ``BadImage`` (field
        "a" or "b") for a bad image."""
        self._check_header(a, "a")
        self._check_header(b, "b")
        vecs = {}
        with self._cpu:
            for name, path in (("a", a), ("b", b)):
                vecs[name] = self._embed(path, name)
            fa, fb = self._extract(a, "a"), self._extract(b, "b")
            verdict = verify.verify(fa, fb)
            bundle = self.engine.bundle
            dup = _cosine(vecs["a"][0] @ vecs["b"][0])
            near = dup >= min(bundle.similar_shot_threshold, bundle.candidate_threshold) and bool(
                layout.near(vecs["a"][2] or 0, vecs["b"][2] or 0)
            )
        features = _cosine(vecs["a"][1] @ vecs["b"][1])
        same = (dup >= bundle.candidate_threshold or near) and verdict.same
        return {
            "duplicate_similarity": dup,
            "similarity": features,
            "same": bool(verdict.same),
            # verified, but it may be another capture (core.verify.doubtful)
            "unsure": verify.unsure(verdict.reason),
            "reason": verdict.reason,
            "tier": self._tier(dup, features, same),
        }

    def groups(self, tier: str, threshold: float | None = None) -> dict:
        """The current groups of one tier in the ``scan --json`` shape, paths named as clients see them."""
        if tier not in ("duplicates", "similar"):
            raise ValueError("tier must be 'duplicates' or 'similar'")
        state = self._state
        lib = state.library
        e = self.engine
        default = e.default_threshold() if tier == "duplicates" else e.bundle.similar_shot_threshold
        threshold = default if threshold is None else check_threshold(threshold)
        key = (tier, threshold)
        if key not in state.groups:
            if tier == "duplicates":
                result = lib.result(threshold, max(lib.floor, e.bundle.similar_shot_threshold))
            else:
                result = lib.result(max(threshold, e.default_threshold()), threshold)
            data = scan_json(result)
            groups = data["groups" if tier == "duplicates" else "similar_groups"]
            for g in groups:
                for f in g["files"]:
                    f["path"] = self.roots.relative(f["path"])
            state.groups[key] = {
                "tier": tier,
                "threshold": threshold,
                "model": data["model"],
                "groups": groups,
            }
        return state.groups[key]

    def thumbnail(self, name: str, side: int = 256) -> bytes | None:
        """A JPEG of the photo a client names, at most ``side`` px; None if it is not a file inside a root.
        Raises ``DecodeError`` for a file that is not a readable image."""
        real = self.roots.resolve(name)
        if real is None:
            return None
        try:
            st = os.stat(real)
        except OSError:
            return None
        key = (real, st.st_size, st.st_mtime_ns, side)
        with self._thumbs_lock:
            if key in self._thumbs:
                self._thumbs.move_to_end(key)
                return self._thumbs[key]
        with self._cpu:
            im = read_full(real, max_side=side)
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=85)
        data = buf.getvalue()
        with self._thumbs_lock:
            self._thumbs[key] = data
            while len(self._thumbs) > 512:
                self._thumbs.popitem(last=False)
        return data


def _cosine(x) -> float:
    """A cosine for clients: vectors stored as float16 can exceed 1 by a hair."""
    return round(min(1.0, max(-1.0, float(x))), 6)
