"""The candidate pairs of the last scans, saved next to the cache so that a rescan of an unchanged library
reads them instead of finding them again.

Finding the pairs is the one step of a rescan that grows with the square of the library: at 20,000 photos
the exact products took 3-12 s and Annoy above that longer, when everything else of a rescan takes about a
second. A saved table is named for everything that determined it (``library_key``: the model and settings,
the floor, and every file as scanned) and carries a checksum of its arrays; anything else, or any trouble
reading it, means finding the pairs again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.index import EXACT_LIMIT, MAX_PARTNERS
from core.results import ImageRecord, Pairs

log = logging.getLogger(__name__)

# Bump when the way pairs are found changes (index parameters, turned pairs, partner limits).
PAIRS_VERSION = 1
KEEP = 2  # saved tables kept: the current library and the one before (another folder set)


def library_key(cache_key: str, floor: float, turned: bool, files: Sequence[ImageRecord]) -> str:
    """A name for the pairs of ``files`` (in this order) at ``floor`` under the model and settings of
    ``cache_key``."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{PAIRS_VERSION}\0{EXACT_LIMIT}\0{MAX_PARTNERS}\0{cache_key}\0{floor!r}\0{turned}\n".encode())
    for f in files:
        h.update(f"{f.path}\0{f.size}\0{f.mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _checksum(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    for x in (a, b, s):
        h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()


class PairStore:
    """Saved pair tables in ``folder`` (created when first saved)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / f"pairs-{key}.npz"

    def load(self, key: str, n_files: int) -> Pairs | None:
        """The saved pairs named ``key``, or None when there are none or they cannot be trusted."""
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                a, b, s = z["a"], z["b"], z["similarity"]
                stored = str(z["checksum"])
            if stored != _checksum(a, b, s) or not (len(a) == len(b) == len(s)):
                raise ValueError("checksum mismatch")
            if len(a) and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= n_files):
                raise ValueError("pairs name files outside the library")
            os.utime(path)  # most recently used: kept by pruning
        except Exception as e:  # noqa: BLE001 - a damaged table of any kind only costs finding pairs again
            log.warning("finding the pairs again: the saved table %s is unusable (%s)", path.name, e)
            return None
        return Pairs(a, b, s)

    def save(self, key: str, pairs: Pairs) -> None:
        """Save ``pairs`` as ``key`` (written whole, then renamed) and prune old tables. Never raises:
        the saved table only saves time."""
        a = np.asarray(pairs.a, np.int32)
        b = np.asarray(pairs.b, np.int32)
        s = np.asarray(pairs.similarity, np.float32)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".pairs-", suffix=".npz", dir=self.folder)
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.savez(fh, a=a, b=b, similarity=s, checksum=np.array(_checksum(a, b, s)))
                os.replace(tmp, self._path(key))
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as e:
            log.warning("could not save the pairs for the next scan: %s", e)
            return
        self._prune()

    def _prune(self) -> None:
        try:
            saved = sorted(self.folder.glob("pairs-*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
            for p in saved[KEEP:]:
                p.unlink(missing_ok=True)
        except OSError:
            pass
