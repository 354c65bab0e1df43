"""SQLite cache of every file's embedding and metadata, so a rescan of an unchanged library reads only
``stat``.

Rows are keyed by path and the engine's cache key (the model's hashes and preprocessing, see
``Engine.cache_key``; the ``model`` column holds it) and valid while size and mtime match. Writes are
committed in batches so a cancelled or killed scan keeps what it did. A corrupt database is moved aside and
rebuilt.

The cache only ever saves time: any error from it (a full disk, a read-only file or folder, a database deleted
under a running scan) becomes a warning and the scan carries on without it — reading still works after a
failed write, and a failed read turns the cache off for the rest of the scan.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import platformdirs

from core import layout
from core.results import ImageRecord

log = logging.getLogger(__name__)

# 2: paths as file-system bytes; 3: turned embeddings; 4: content digests; 5: blank flag;
# 6: capture signature; 7: grey-level layout hash (core.layout)
SCHEMA_VERSION = 7
# Upgrades that keep the rows: {from_version: statements}. Older versions are rebuilt.
_MIGRATIONS = {
    4: ["ALTER TABLE files ADD COLUMN blank INTEGER"],
    5: ["ALTER TABLE files ADD COLUMN capture TEXT"],
    6: ["ALTER TABLE files ADD COLUMN layout INTEGER"],
}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS files (
    path BLOB NOT NULL, model TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    width INTEGER, height INTEGER, format TEXT, taken TEXT,
    embedding BLOB, features BLOB, error TEXT, turned BLOB, digest TEXT, blank INTEGER, capture TEXT,
    layout INTEGER,
    PRIMARY KEY (path, model)
);
CREATE TABLE IF NOT EXISTS sniffed (
    path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, kind TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS verify_features (
    path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, version INTEGER NOT NULL,
    data BLOB
);
CREATE TABLE IF NOT EXISTS verdicts (
    a BLOB NOT NULL, b BLOB NOT NULL, stats TEXT NOT NULL, same INTEGER NOT NULL, reason TEXT,
    PRIMARY KEY (a, b)
);
CREATE TABLE IF NOT EXISTS not_duplicate (
    a BLOB NOT NULL, b BLOB NOT NULL, PRIMARY KEY (a, b)
);
"""


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("lookalike", appauthor=False))


@dataclass(frozen=True)
class CachedEntry:
    """What the cache keeps of one file: its record and vectors, or why it could not be read."""

    record: ImageRecord  # a file that could not be read has its path, size and mtime only
    embedding: np.ndarray | None = None
    features: np.ndarray | None = None
    error: str | None = None
    turned: np.ndarray | None = None  # (2, D) for portrait images, see core.embed.PORTRAIT_RATIO
    digest: str | None = None  # content hash, once an exact-copy check needed it
    blank: bool = False  # one flat colour or structureless (core.blank): listed apart, never paired
    layout: int | None = None  # core.layout.layout_hash of the whole picture, untrimmed (unsigned)

    @property
    def path(self) -> str:
        return self.record.path


def _vec(blob: bytes | None) -> np.ndarray | None:
    """A float16 view of a stored vector (callers convert whole matrices at once)."""
    return None if blob is None else np.frombuffer(blob, dtype=np.float16)


def _blob(v: np.ndarray | None) -> bytes | None:
    return None if v is None else np.ascontiguousarray(v, dtype=np.float16).tobytes()


_CORRUPT_KEEP = 1  # moved-aside corrupt databases kept for a bug report; older ones are deleted


def _reading(default: Callable[[], object]):
    """A read: on a cache error, warn, turn the cache off and answer ``default()`` (as if nothing is
    cached)."""

    def wrap(method):
        @functools.wraps(method)
        def guarded(self, *args, **kwargs):
            if self._conn is None:
                return default()
            try:
                return method(self, *args, **kwargs)
            except (sqlite3.Error, OSError) as e:
                self._disable(f"the cache {self.path} failed ({e}); carrying on without it")
                return default()

        return guarded

    return wrap


def _writing(method):
    """A write: on a cache error, warn and stop writing; what was read stays valid."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        if self._conn is None or self._no_writes:
            return None
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.Error, OSError) as e:
            self._no_writes = True
            self._warn(f"could not write to the cache {self.path} ({e}); this scan's results are not cached")
            return None

    return guarded


class EmbeddingCache:
    """One SQLite file; safe to use from one thread at a time (the engine's scan thread).

    Never raises for its own trouble: see ``warnings`` and ``usable``.
    """

    def __init__(self, folder: str | os.PathLike | None = None) -> None:
        self.folder = Path(folder) if folder else default_cache_dir()
        self.path = self.folder / "cache.sqlite3"
        self.warnings: list[str] = []
        self._conn: sqlite3.Connection | None = None
        self._no_writes = False
        self.integrity_checked = False  # whether opening ran the whole-file check (see ``_as_left``)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._conn = self._open()
        except (sqlite3.Error, OSError) as e:
            self._disable(
                f"the cache {self.path} cannot be used ({getattr(e, 'strerror', None) or e}); "
                "scanning without it"
            )

    @property
    def usable(self) -> bool:
        return self._conn is not None

    def _warn(self, msg: str) -> None:
        log.warning(msg)
        self.warnings.append(msg)

    def _disable(self, msg: str) -> None:
        self._warn(msg)
        self.close()

    def _open(self) -> sqlite3.Connection:
        self._drop_orphan_wal()
        try:
            return self._connect()
        except sqlite3.OperationalError:
            raise  # cannot open or write (permissions, full disk, I/O): not corruption, leave the file alone
        except sqlite3.DatabaseError as e:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self._warn(
                f"the cache {self.path} could not be used ({e}); moved it to {aside.name} and started a "
                "new one"
            )
            self._prune_corrupt()
            return self._connect()

    def _drop_orphan_wal(self) -> None:
        """A ``-wal``/``-shm`` pair whose database was deleted (by hand, while a scan ran) would make SQLite
        fail with a disk I/O error on the new database: with no database left, they belong to nothing."""
        if self.path.exists():
            return
        for suffix in ("-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def _prune_corrupt(self) -> None:
        old = sorted(self.folder.glob(f"{self.path.name}.corrupt-*"), key=lambda p: p.name)
        for p in old[:-_CORRUPT_KEEP]:
            try:
                p.unlink()
            except OSError:
                pass

    def _connect(self) -> sqlite3.Connection:
        as_left = self._as_left()  # before connecting: an open connection has a write-ahead log
        conn = sqlite3.connect(self.path, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self.integrity_checked = not as_left
            if not as_left:
                ok = conn.execute("PRAGMA quick_check").fetchone()[0]
                if ok != "ok":
                    raise sqlite3.DatabaseError(f"integrity check failed: {ok}")
            conn.executescript(_SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) in _MIGRATIONS and int(row[0]) < SCHEMA_VERSION:
                for v in range(int(row[0]), SCHEMA_VERSION):
                    for statement in _MIGRATIONS[v]:
                        conn.execute(statement)
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"schema version {row[0]}, expected {SCHEMA_VERSION}")
            conn.commit()
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            else:
                self._stamp()
            self._conn = None

    # The integrity check reads the whole database (0.6 s of a 20,000-photo rescan, at 880 MB), so it is
    # skipped when the file is exactly as a clean close left it: same inode, size and mtime, and no
    # write-ahead log (a crashed or still-open writer leaves one). Any other change means checking again.
    def _stamp_path(self) -> Path:
        return self.path.with_name(self.path.name + ".closed")

    def _file_state(self) -> str | None:
        if Path(f"{self.path}-wal").exists():
            return None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return f"{st.st_ino} {st.st_size} {st.st_mtime_ns}"

    def _as_left(self) -> bool:
        state = self._file_state()
        try:
            return state is not None and self._stamp_path().read_text() == state
        except OSError:
            return False

    def _stamp(self) -> None:
        state = self._file_state()
        stamp = self._stamp_path()
        try:
            if state is None:  # another connection is still open: whoever closes last stamps
                stamp.unlink(missing_ok=True)
                return
            tmp = stamp.with_name(f".{stamp.name}.{os.getpid()}")
            tmp.write_text(state)
            os.replace(tmp, stamp)
        except OSError:
            pass  # the stamp only saves time

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- embeddings ----------------------------------------------------------------------------------------
    # Above this many cached rows per wanted path, rows are fetched by key rather than by reading the model's
    # whole table: scanning one small folder must not read a large library's embeddings.
    _KEYED_RATIO = 4

    @_reading(dict)
    def lookup(self, cache_key: str, files: Iterable[tuple[str, int, int]]) -> dict[str, CachedEntry]:
        """Entries still valid for ``(path, size, mtime_ns)`` under ``cache_key`` (``Engine.cache_key``)."""
        wanted = {p: (s, m) for p, s, m in files}
        out: dict[str, CachedEntry] = {}
        if not wanted:
            return out
        cols = (
            "f.path, f.size, f.mtime_ns, f.width, f.height, f.format, f.taken, f.embedding, f.features, "
            "f.error, f.turned, f.digest, f.blank, f.capture, f.layout"
        )
        # The (path, model) key index is the smallest covering one, so this counts without reading any blob.
        rows = self._conn.execute("SELECT COUNT(*) FROM files WHERE model = ?", (cache_key,)).fetchone()[0]
        if rows > self._KEYED_RATIO * len(wanted):
            with self._conn:
                self._conn.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (path BLOB PRIMARY KEY)")
                self._conn.execute("DELETE FROM temp.wanted")
                self._conn.executemany(
                    "INSERT OR IGNORE INTO temp.wanted VALUES (?)", ((os.fsencode(p),) for p in wanted)
                )
            # CROSS JOIN keeps the wanted paths as the outer loop (SQLite's planner otherwise scans
            # ``files``).
            cur = self._conn.execute(
                f"SELECT {cols} FROM temp.wanted w CROSS JOIN files f ON f.path = w.path AND f.model = ?",
                (cache_key,),
            )
        else:
            cur = self._conn.execute(f"SELECT {cols} FROM files f WHERE f.model = ?", (cache_key,))
        for key, size, mtime, w, h, fmt, taken, emb, feat, err, turned, digest, blank, capture, lay in cur:
            path = os.fsdecode(key)
            if wanted.get(path) != (size, mtime):
                continue
            e = _vec(emb)
            t = _vec(turned)
            out[path] = CachedEntry(
                ImageRecord(path, size, mtime, w or 0, h or 0, fmt or "", taken, capture),
                e,
                _vec(feat),
                err,
                None if t is None or e is None else t.reshape(-1, len(e)),
                digest,
                bool(blank),
                None if lay is None else layout.from_signed(lay),
            )
        return out

    @_writing
    def store(self, cache_key: str, entries: Iterable[CachedEntry]) -> None:
        """Keep ``entries`` under ``cache_key``, replacing older rows of the same paths."""
        rows = [
            (
                os.fsencode(r.path),
                cache_key,
                r.size,
                r.mtime_ns,
                r.width,
                r.height,
                r.format,
                r.taken,
                _blob(e.embedding),
                _blob(e.features),
                e.error,
                _blob(e.turned),
                e.digest,
                int(e.blank),
                r.capture,
                None if e.layout is None else layout.to_signed(e.layout),
            )
            for e in entries
            for r in (e.record,)
        ]
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows
            )

    @_writing
    def store_digests(self, cache_key: str, digests: dict[str, tuple[int, int, str]]) -> None:
        """Remember content hashes ``{path: (size, mtime_ns, digest)}`` of rows still valid for those
        stats."""
        with self._conn:
            self._conn.executemany(
                "UPDATE files SET digest = ? WHERE path = ? AND model = ? AND size = ? AND mtime_ns = ?",
                [(d, os.fsencode(p), cache_key, s, m) for p, (s, m, d) in digests.items()],
            )

    # -- same-capture verification: per-image features and per-pair verdicts (core.confirm) ------------------
    @_reading(dict)
    def verify_features(self, version: int, files: Iterable[tuple[str, int, int]]) -> dict[str, bytes]:
        """Stored features ``{path: bytes}`` still valid for ``(path, size, mtime_ns)`` and ``version``."""
        out = {}
        for p, size, mtime in files:
            row = self._conn.execute(
                "SELECT size, mtime_ns, version, data FROM verify_features WHERE path = ?", (os.fsencode(p),)
            ).fetchone()
            if row and row[:3] == (size, mtime, version) and row[3]:
                out[p] = row[3]
        return out

    @_writing
    def store_verify_features(self, version: int, rows: dict[str, tuple[int, int, bytes]]) -> None:
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO verify_features VALUES (?, ?, ?, ?, ?)",
                [(os.fsencode(p), s, m, version, d) for p, (s, m, d) in rows.items()],
            )

    @_reading(dict)
    def verdicts(self, keys: dict[tuple[str, str], str]) -> dict[tuple[str, str], tuple[bool, str]]:
        """Stored verdicts for path pairs whose ``stats`` key (both files' size, mtime, the verifier's
        version) is unchanged: ``{(a, b): (same, reason)}``."""
        out: dict[tuple[str, str], tuple[bool, str]] = {}
        if not keys:
            return out
        # One join, not a query per pair: 100,000 pairs of a 20,000-photo rescan took 0.9 s one at a time.
        rows = self._conn.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
        if rows > self._KEYED_RATIO * len(keys):
            with self._conn:
                self._conn.execute("CREATE TEMP TABLE IF NOT EXISTS wanted_pairs (a BLOB, b BLOB)")
                self._conn.execute("DELETE FROM temp.wanted_pairs")
                self._conn.executemany(
                    "INSERT INTO temp.wanted_pairs VALUES (?, ?)",
                    ((os.fsencode(a), os.fsencode(b)) for a, b in keys),
                )
            cur = self._conn.execute(
                "SELECT v.a, v.b, v.stats, v.same, v.reason FROM temp.wanted_pairs w "
                "CROSS JOIN verdicts v ON v.a = w.a AND v.b = w.b"
            )
        else:
            cur = self._conn.execute("SELECT a, b, stats, same, reason FROM verdicts")
        for a, b, stats, same, reason in cur:
            key = (os.fsdecode(a), os.fsdecode(b))
            if keys.get(key) == stats:
                out[key] = (bool(same), reason or "")
        return out

    @_writing
    def store_verdicts(self, rows: dict[tuple[str, str], tuple[str, bool, str]]) -> None:
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?)",
                [
                    (os.fsencode(a), os.fsencode(b), st, int(same), reason)
                    for (a, b), (st, same, reason) in rows.items()
                ],
            )

    # -- content sniffing verdicts for files with unknown extensions ---------------------------------------
    @_reading(dict)
    def sniffed(self) -> dict[str, tuple[int, int, str]]:
        return {os.fsdecode(p): (s, m, k) for p, s, m, k in self._conn.execute("SELECT * FROM sniffed")}

    @_writing
    def store_sniffed(self, verdicts: dict[str, tuple[int, int, str]]) -> None:
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO sniffed VALUES (?,?,?,?)",
                [(os.fsencode(p), *v) for p, v in verdicts.items()],
            )

    # -- "not a duplicate" decisions, remembered across scans -----------------------------------------------
    @_reading(set)
    def not_duplicate_pairs(self) -> set[tuple[str, str]]:
        rows = self._conn.execute("SELECT a, b FROM not_duplicate")
        return {(os.fsdecode(a), os.fsdecode(b)) for a, b in rows}

    @_writing
    def mark_not_duplicate(self, paths: Iterable[str]) -> None:
        """Remember every two of ``paths`` as not duplicates of each other."""
        with self._conn:
            self._conn.executemany("INSERT OR IGNORE INTO not_duplicate VALUES (?, ?)", _every_two(paths))

    @_writing
    def forget_not_duplicate(self, paths: Iterable[str]) -> None:
        """Forget that every two of ``paths`` are not duplicates."""
        with self._conn:
            self._conn.executemany("DELETE FROM not_duplicate WHERE a = ? AND b = ?", _every_two(paths))


def _every_two(paths: Iterable[str]) -> list[tuple[bytes, bytes]]:
    """Every two distinct paths as a sorted pair of file-system bytes (the "not a duplicate" rows' key)."""
    ps = sorted(set(paths))
    return [(os.fsencode(a), os.fsencode(b)) for i, a in enumerate(ps) for b in ps[i + 1 :]]
