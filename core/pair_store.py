"""The candidate pairs of the last scans, saved next to the cache so that a rescan of an unchanged library
reads them instead of finding them again.

Finding the pairs is the one step of a rescan that grows with the square of the library: at 20,000 photos
the exact products took 3-12 s and Annoy above that longer, when everything else of a rescan takes about a
second. Each pair's ImageNet-features cosine (what the similar-shots tier also needs) is saved beside it: at
20,000 photos and 3.8M pairs working it out again was 6 of a rescan's 11 s; so are the same-capture
verdicts on the pairs (``core.confirm.verdicts_key``). A saved table is named for everything that
determined it (``library_key``: the model and settings, the floor, and every file as scanned), and zip
checks each array's CRC-32 as it is read; anything else, or any trouble reading it, means finding the
pairs again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from core.index import EXACT_LIMIT, MAX_PARTNERS
from core.results import Group, ImageRecord, Member, Pairs

log = logging.getLogger(__name__)

# Bump when the way pairs are found changes (index parameters, turned pairs, partner limits) or what is saved.
PAIRS_VERSION = 2
KEEP = 2  # saved tables kept: the current library and the one before (another folder set)


def library_key(cache_key: str, floor: float, turned: bool, files: Sequence[ImageRecord]) -> str:
    """A name for the pairs of ``files`` (in this order) at ``floor`` under the model and settings of
    ``cache_key``."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{PAIRS_VERSION}\0{EXACT_LIMIT}\0{MAX_PARTNERS}\0{cache_key}\0{floor!r}\0{turned}\n".encode())
    for f in files:
        h.update(f"{f.path}\0{f.size}\0{f.mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


class Saved(NamedTuple):
    pairs: Pairs
    features: np.ndarray | None  # per pair, the ImageNet-features cosine (None: not saved)


class Verdicts(NamedTuple):
    same: np.ndarray  # bool, per checked pair
    reasons: list[str]  # per checked pair
    stats: dict  # the check's counts when it ran


class PairStore:
    """Saved pair tables (and the same-capture verdicts on them) in ``folder`` (created when first saved)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def _path(self, key: str, kind: str = "pairs") -> Path:
        return self.folder / f"{kind}-{key}.npz"

    def _read(self, key: str, kind: str) -> dict[str, np.ndarray] | None:
        """The arrays saved as ``key``, each CRC-32 checked (None: none saved); raises on damage."""
        path = self._path(key, kind)
        if not path.is_file():
            return None
        # zip checks each array's CRC-32 as it is read (BadZipFile on damage): a checksum of our own, over
        # 60 MB of pairs, was another 0.15 s of a rescan.
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        os.utime(path)  # most recently used: kept by pruning
        return arrays

    def _write(self, key: str, kind: str, arrays: dict[str, np.ndarray]) -> None:
        """Save ``arrays`` as ``key`` (written whole, then renamed) and prune old tables. Never raises:
        saved tables only save time."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{kind}-", suffix=".npz", dir=self.folder)
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.savez(fh, **arrays)
                os.replace(tmp, self._path(key, kind))
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as e:
            log.warning("could not save the %s for the next scan: %s", kind, e)
            return
        self._prune(kind)

    def load(self, key: str, n_files: int) -> Saved | None:
        """The saved pairs named ``key`` (with their features' cosines if saved), or None when there are
        none or they cannot be trusted."""
        try:
            z = self._read(key, "pairs")
            if z is None:
                return None
            a, b, s, f = z["a"], z["b"], z["similarity"], z.get("features")
            if len({len(x) for x in (a, b, s) + (() if f is None else (f,))}) != 1:
                raise ValueError("arrays of different lengths")
            if len(a) and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= n_files):
                raise ValueError("pairs name files outside the library")
        except Exception as e:  # noqa: BLE001 - a damaged table of any kind only costs finding pairs again
            log.warning("finding the pairs again: the saved table for %s is unusable (%s)", key, e)
            return None
        return Saved(Pairs(a, b, s), f)

    def save(self, key: str, pairs: Pairs, features: np.ndarray | None = None) -> None:
        """Save ``pairs`` as ``key``, with each pair's features cosine if given. Never raises."""
        arrays = {
            "a": np.asarray(pairs.a, np.int32),
            "b": np.asarray(pairs.b, np.int32),
            "similarity": np.asarray(pairs.similarity, np.float32),
        }
        if features is not None:
            arrays["features"] = np.asarray(features, np.float32)
        self._write(key, "pairs", arrays)

    def load_verdicts(self, key: str, n_checked: int) -> Verdicts | None:
        """The verdicts saved as ``key`` for ``n_checked`` pairs, or None (none, damaged, another count)."""
        try:
            z = self._read(key, "verdicts")
            if z is None:
                return None
            same, ends, text = z["same"], z["ends"], z["text"].tobytes()
            if not (len(same) == len(ends) == n_checked) or (len(ends) and ends[-1] != len(text)):
                raise ValueError("verdicts for another set of pairs")
            starts = np.concatenate(([0], ends[:-1])).tolist()
            reasons = [text[a:b].decode() for a, b in zip(starts, ends.tolist(), strict=True)]
            stats = json.loads(str(z["stats"]))
        except Exception as e:  # noqa: BLE001 - damaged verdicts only cost reading them from the cache
            log.warning("checking the pairs again: the saved verdicts for %s are unusable (%s)", key, e)
            return None
        return Verdicts(same.astype(bool), reasons, stats)

    def save_verdicts(self, key: str, verdicts: Verdicts) -> None:
        """Save the verdicts of the checked pairs as ``key``. Never raises."""
        encoded = [r.encode() for r in verdicts.reasons]
        arrays = {
            "same": np.asarray(verdicts.same, bool),
            "ends": np.cumsum([len(r) for r in encoded], dtype=np.int64),
            "text": np.frombuffer(b"".join(encoded), np.uint8),
            "stats": np.array(json.dumps(verdicts.stats)),
        }
        self._write(key, "verdicts", arrays)

    def load_groups(self, key: str, files: Sequence[ImageRecord]) -> list[tuple[Group, ...]] | None:
        """The tiers of groups saved as ``key`` over ``files``, or None (none saved, or unusable)."""
        try:
            z = self._read(key, "groups")
            if z is None:
                return None
            tier, exact, reclaim, ends = z["tier"], z["exact"], z["reclaimable"], z["ends"]
            # twin_of: the position of the first byte-identical member, -1 for none
            file, sim, twin = z["member"].tolist(), z["similarity"].tolist(), z["twin_of"].tolist()
            if not (
                len(tier) == len(exact) == len(reclaim) == len(ends) and len(file) == len(sim) == len(twin)
            ):
                raise ValueError("arrays of different lengths")
            if (len(ends) and ends[-1] != len(file)) or (
                file and not 0 <= min(file) <= max(file) < len(files)
            ):
                raise ValueError("groups name files outside the library")
            if twin and not -1 <= min(twin) <= max(twin) < len(files):
                raise ValueError("twins name files outside the library")
            tiers: list[list[Group]] = [[] for _ in range(int(z["tiers"]))]
            start = 0
            for t, e, r, end in zip(
                tier.tolist(), exact.tolist(), reclaim.tolist(), ends.tolist(), strict=True
            ):
                members = tuple(
                    Member(files[file[k]], sim[k], files[twin[k]].path if twin[k] >= 0 else "")
                    for k in range(start, end)
                )
                tiers[t].append(Group(members, e, r))
                start = end
        except Exception as e:  # noqa: BLE001 - damaged groups only cost grouping again
            log.warning("grouping again: the saved groups for %s are unusable (%s)", key, e)
            return None
        return [tuple(t) for t in tiers]

    def save_groups(
        self, key: str, tiers: Sequence[Sequence[Group]], position: Callable[[str], int | None]
    ) -> None:
        """Save tiers of groups as ``key``, members by ``position(path)`` in the library. Never raises."""
        groups = [(t, g) for t, tier in enumerate(tiers) for g in tier]
        members = [m for _, g in groups for m in g.members]
        where = [position(m.file.path) for m in members]
        twins = [position(m.twin_of) if m.twin_of else -1 for m in members]
        if any(w is None for w in where + twins):
            return  # not the library's files: nothing to save
        arrays = {
            "tiers": np.array(len(tiers)),
            "tier": np.array([t for t, _ in groups], np.int8),
            "exact": np.array([g.exact for _, g in groups], bool),
            "reclaimable": np.array([g.reclaimable for _, g in groups], np.int64),
            "ends": np.cumsum([len(g.members) for _, g in groups], dtype=np.int64),
            "member": np.array(where, np.int32),
            "similarity": np.array([m.similarity for m in members], np.float64),
            "twin_of": np.array(twins, np.int32),
        }
        self._write(key, "groups", arrays)

    def _prune(self, kind: str) -> None:
        try:
            saved = sorted(self.folder.glob(f"{kind}-*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
            for p in saved[KEEP:]:
                p.unlink(missing_ok=True)
        except OSError:
            pass
