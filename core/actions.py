"""Act on marked copies safely: to the system trash (default) or into a folder, journaled for undo.

Before touching a file the engine re-checks it is unchanged since the scan (size and mtime) and that its group
still keeps another copy on disk. The journal is written ahead: the action and its files are recorded before
the first move, and each file's destination before it moves, so a crash at any point leaves an undoable
record. Undo puts back only the very file that was moved (same trash entry, size and content) and never
replaces anything. Where a file goes in the trash, and finding it there again, is ``core.trash``'s: on Linux
and the BSDs it writes the freedesktop.org trash directly (so the destination is known before the move);
elsewhere, or when the spec's conditions fail, send2trash does it. Nothing here deletes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import stat
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from core import trash
from core.errors import ActionError
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.results import Group, ImageRecord, Problem

log = logging.getLogger(__name__)

TRASH, MOVE = "trash", "move"
HASH_LIMIT = 64 * 2**20  # files up to this size get a content hash in the journal, checked at undo
BATCH = 64  # files whose destinations are written to the journal in one durable transaction
# An entry's state: planned (nothing done yet), started (destination recorded, the move may have happened),
# done, skipped (left in place), restored (undone).
PLANNED, STARTED, DONE, SKIPPED, RESTORED = "planned", "started", "done", "skipped", "restored"
GONE_FROM_TRASH = "the trash no longer holds this file"


def default_journal_path() -> Path:
    return Path(platformdirs.user_data_dir("lookalike", appauthor=False)) / "journal.sqlite3"


@dataclass(frozen=True)
class ActionResult:
    action_id: int | None
    kind: str
    done: tuple[str, ...]
    problems: tuple[Problem, ...]
    bytes: int = 0


@dataclass
class _Entry:
    path: str
    dest: str | None = None  # where it went: trash file or target folder file
    info: str | None = None  # its .trashinfo
    size: int | None = None
    hash: str | None = None
    state: str = DONE
    row: int | None = None
    mtime_ns: int | None = None


# -- what may be removed
# ------------------------------------------------------------------------------------------
def check_plan(groups: Sequence[Group], marked: Iterable[str], *, on_disk: bool = True) -> None:
    """Raise ``ActionError`` unless every group with a marked member keeps another copy.

    With ``on_disk`` (the default) a kept copy counts only if it is on disk now, as scanned (same size and
    mtime), and is not the marked file under another name (a hard or symbolic link): the result may be stale.
    """
    marked = set(marked)
    for g in groups:
        recs = g.files
        targets = [r for r in recs if r.path in marked]
        if not targets:
            continue
        keepers = [r for r in recs if r.path not in marked]
        if not keepers:
            raise ActionError(
                f"refusing to remove every copy in a group (keep at least one of {recs[0].path!r} ...)"
            )
        if on_disk and not any(_still_a_copy(k, targets) for k in keepers):
            raise ActionError(
                f"refusing: no other copy of {targets[0].path!r} is still on disk as scanned; scan again"
            )


def _still_a_copy(keeper: ImageRecord, targets: Sequence[ImageRecord]) -> bool:
    """True if ``keeper`` is on disk as scanned and is a file of its own, not one of ``targets`` again."""
    if unchanged(keeper) is not None:
        return False
    try:
        st = os.stat(keeper.path)
    except OSError:
        return False
    for t in targets:
        try:
            if os.path.samestat(st, os.stat(t.path)):
                return False
        except OSError:
            continue
    return True


def unchanged(rec: ImageRecord) -> str | None:
    """None if the file is as scanned, else the reason it is not."""
    try:
        st = os.stat(rec.path)
    except FileNotFoundError:
        return "file no longer exists"
    except OSError as e:
        return f"cannot access: {e.strerror}"
    if st.st_size != rec.size or st.st_mtime_ns != rec.mtime_ns:
        return "file changed since the scan; scan again before acting on it"
    return None


# -- the journal
# ---------------------------------------------------------------------------------------------------
class Journal:
    """Every action, with where each file went, so it can be undone. Written ahead of every move."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path else default_journal_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
            self._conn.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the next move
            self._setup()
        except (OSError, sqlite3.Error) as e:  # read-only file or folder: still readable; acting will refuse
            log.warning("undo journal %s is not writable: %s", self.path, e)
            self._conn = self._read_only(e)

    def _read_only(self, why: Exception) -> sqlite3.Connection:
        uri = "file:" + urllib.parse.quote(str(self.path.absolute()))
        for flags in ("?mode=ro", "?immutable=1"):  # a WAL journal in a read-only folder needs immutable
            try:
                conn = sqlite3.connect(uri + flags, uri=True, check_same_thread=False)
                conn.execute("SELECT id FROM actions LIMIT 1").fetchall()
                return conn
            except sqlite3.Error:
                continue
        raise ActionError(f"cannot open the undo journal {self.path}: {why}") from why

    def _setup(self) -> None:
        # WAL: one fsync per commit, so journaling each batch stays cheap.
        self._conn.execute("PRAGMA journal_mode=WAL")
        # Paths are stored as file-system bytes: names need not be valid UTF-8.
        self._conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS actions (
                id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL, kind TEXT, target TEXT,
                undone INTEGER DEFAULT 0
            );
            CREATE TABLE IF NOT EXISTS entries (
                action INTEGER, path TEXT, dest TEXT, info TEXT, size INTEGER
            );
            """
        )
        # Journals from before the write-ahead schema gain the new columns; their rows read as finished.
        for table, column, decl in (
            ("actions", "status", "TEXT DEFAULT 'done'"),
            ("entries", "mtime_ns", "INTEGER"),
            ("entries", "hash", "TEXT"),
            ("entries", "state", "TEXT DEFAULT 'done'"),
        ):
            have = {r[1] for r in self._conn.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                with self._conn:
                    self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        with self._conn:
            self._conn.execute("CREATE INDEX IF NOT EXISTS entries_by_action ON entries (action)")

    def close(self) -> None:
        self._conn.close()

    def _write(self, sql: str, rows: Sequence[tuple]) -> None:
        try:
            with self._conn:
                self._conn.executemany(sql, rows)
        except sqlite3.Error as e:
            raise ActionError(f"cannot write the undo journal {self.path}: {e}") from e

    def begin(self, kind: str, target: str | None, recs: Sequence[ImageRecord]) -> tuple[int, list[int]]:
        """Record a pending action and its planned files in one transaction; the first write of an action."""
        try:
            with self._conn:
                cur = self._conn.execute(
                    "INSERT INTO actions (time, kind, target, status) VALUES (?, ?, ?, 'pending')",
                    (time.time(), kind, target),
                )
                aid = int(cur.lastrowid)
                rows = [
                    self._conn.execute(
                        "INSERT INTO entries (action, path, size, mtime_ns, state) VALUES (?, ?, ?, ?, ?)",
                        (aid, _b(r.path), r.size, r.mtime_ns, PLANNED),
                    ).lastrowid
                    for r in recs
                ]
        except sqlite3.Error as e:
            raise ActionError(f"cannot write the undo journal {self.path} ({e}); nothing was moved") from e
        return aid, rows

    def note(self, updates: Sequence[tuple[int, str, str | None, str | None, str | None]]) -> None:
        """Durably record (row, state, dest, info, hash) of entries."""
        if updates:
            self._write(
                "UPDATE entries SET state = ?, dest = ?, info = ?, hash = ? WHERE rowid = ?",
                [(state, _b(d), _b(i), h, row) for row, state, d, i, h in updates],
            )

    def finish(self, action_id: int, *, empty: bool) -> None:
        """Close an action; one that moved nothing is dropped, so undo goes to the one before."""
        if empty:
            self._write("DELETE FROM entries WHERE action = ?", [(action_id,)])
            self._write("DELETE FROM actions WHERE id = ?", [(action_id,)])
        else:
            self._write("UPDATE actions SET status = 'done' WHERE id = ?", [(action_id,)])

    def last_undoable(self) -> int | None:
        row = self._conn.execute(
            "SELECT id FROM actions WHERE undone = 0 ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return row[0] if row else None

    def actions(self) -> list[dict]:
        rows = self._conn.execute(
            "SELECT a.id, a.time, a.kind, a.target, a.undone, a.status, "
            "COUNT(CASE WHEN e.state IN ('started', 'done', 'restored') THEN 1 END) FROM actions a "
            "LEFT JOIN entries e ON e.action = a.id GROUP BY a.id ORDER BY a.id DESC"
        ).fetchall()
        keys = ("id", "time", "kind", "target", "undone", "status", "files")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def entries(self, action_id: int) -> tuple[str, list[_Entry]]:
        row = self._conn.execute("SELECT kind FROM actions WHERE id = ?", (action_id,)).fetchone()
        if row is None:
            raise ActionError(f"no action {action_id} in the journal")
        rows = self._conn.execute(
            "SELECT path, dest, info, size, hash, state, rowid, mtime_ns FROM entries WHERE action = ? "
            "ORDER BY rowid",
            (action_id,),
        )
        return row[0], [
            _Entry(_s(p), _s(d), _s(i), z, h, st or DONE, r, m) for p, d, i, z, h, st, r, m in rows
        ]

    def mark_undone(self, action_id: int) -> None:
        self._write("UPDATE actions SET undone = 1 WHERE id = ?", [(action_id,)])


def _b(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def _s(blob: bytes | str | None) -> str | None:
    return None if blob is None else os.fsdecode(blob)


# -- moving without ever replacing
# ----------------------------------------------------------------------------------
def _digest(path: str, size: int) -> str | None:
    if size > HASH_LIMIT:
        return None
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _holds(path: str, e: _Entry) -> bool:
    """True if ``path`` is a plain file with the journal's size and content hash.

    A file too big to hash must keep its mtime instead (moves keep it; 2 s leeway for FAT copies).
    """
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):  # a link that was trashed (scans may follow links): judge its file
            st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or (e.size is not None and st.st_size != e.size):
            return False
        if e.hash is None:
            return e.mtime_ns is None or abs(st.st_mtime_ns - e.mtime_ns) <= 2_000_000_000
        return _digest(path, st.st_size) == e.hash
    except OSError:
        return False


def _move(src: str, dst: str, *, copy: bool) -> None:
    """Move ``src`` to ``dst``; raise FileExistsError rather than replace anything there (a dangling link
    too).

    A hard link then unlink never replaces; where links are not supported, check just before renaming. Across
    devices (only if ``copy``) copy into a new file, then unlink the original.
    """
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno == errno.EXDEV:
            if not copy:
                raise
            return _copy_then_unlink(src, dst)
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "already exists", dst) from None
        try:
            os.rename(src, dst)
        except OSError as e2:
            if e2.errno != errno.EXDEV or not copy:
                raise
            return _copy_then_unlink(src, dst)
        return None
    os.unlink(src)
    return None


def _copy_then_unlink(src: str, dst: str) -> None:
    """Copy into a new file (never over one), flushed to disk, then remove the original. A copy that fails
    part-way (a full disk) is removed again, so no half file is left beside the intact original."""
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        shutil.copystat(src, dst)
    except BaseException:
        try:
            os.unlink(dst)
        except OSError:
            pass
        raise
    os.unlink(src)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samestat(os.lstat(a), os.lstat(b))
    except OSError:
        return False


def _same_dir(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _free_name(target: Path, taken: set[str]) -> Path:
    cand = target
    for n in range(1, 10_000):
        if not os.path.lexists(cand) and str(cand) not in taken:
            taken.add(str(cand))
            return cand
        cand = target.with_name(f"{target.stem} ({n}){target.suffix}")
    raise OSError(errno.EEXIST, "no free name", str(target))


# -- acting
# -----------------------------------------------------------------------------------------------------------
def remove_files(
    targets: Sequence[ImageRecord],
    *,
    groups: Sequence[Group] = (),
    mode: str = TRASH,
    dest: str | os.PathLike | None = None,
    journal: Journal | None = None,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> ActionResult:
    """Send ``targets`` to the trash, or move them into ``dest``; skip (and report) any that changed.

    Refuses as a whole (``ActionError``, nothing moved) if a group would lose its last copy on disk or the
    journal cannot be written. Each file's destination is in the journal before the file moves.
    """
    if mode not in (TRASH, MOVE):
        raise ValueError(f"unknown mode {mode!r}: use 'trash' or 'move'")
    if mode == MOVE and not dest:
        raise ValueError("moving needs a destination folder")
    check_plan(groups, (t.path for t in targets))
    journal = journal or Journal()
    dest_dir = Path(dest) if mode == MOVE else None
    if dest_dir is not None:
        dest_dir.mkdir(parents=True, exist_ok=True)
    aid, rows = journal.begin(mode, str(dest) if dest else None, targets)
    by_target = _groups_of(groups, targets)
    done: list[str] = []
    problems: list[Problem] = []
    freed, taken, finished = 0, set(), []
    reached = len(targets)  # targets from here on were never tried (cancelled, or the journal failed)
    for start in range(0, len(targets), BATCH):
        if cancel.cancelled:
            reached = start
            break
        batch, updates = [], []
        for rec, row in zip(targets[start : start + BATCH], rows[start : start + BATCH], strict=True):
            why = unchanged(rec) or _group_gone(rec, by_target)
            if not why and dest_dir is not None and _same_dir(os.path.dirname(rec.path), dest_dir):
                why = "already in the destination folder"
            if not why:
                try:
                    digest = _digest(rec.path, rec.size)
                    where = _destination(rec.path, dest_dir, taken)
                except OSError as e:
                    why = f"could not {mode}: {e}"
            if why:
                problems.append(Problem(rec.path, why))
                updates.append((row, SKIPPED, None, None, None))
                continue
            updates.append((row, STARTED, *where, digest))
            batch.append((rec, row, *where, digest))
        try:
            journal.note(updates + finished)  # durable before any of this batch moves
        except ActionError as e:
            for rec, _row, _d, info, _h in batch:
                trash.drop_info(info, rec.path)
            left = [b[0] for b in batch] + list(targets[start + BATCH :])
            problems += [Problem(r.path, f"not moved: {e}") for r in left]
            reached = len(targets)  # the journal cannot take more: leave those entries as planned
            break
        finished = []
        for rec, row, to, info, digest in batch:
            why = unchanged(rec) or _group_gone(rec, by_target)  # again, right before the move
            if why:
                trash.drop_info(info, rec.path)
                problems.append(Problem(rec.path, why))
                finished.append((row, SKIPPED, None, None, None))
                continue
            try:
                to, info = _move_one(rec, to, info, digest, mode)
            except OSError as e:
                trash.drop_info(info, rec.path)
                problems.append(Problem(rec.path, f"could not {mode}: {e}"))
                finished.append((row, SKIPPED, None, None, None))
                continue
            done.append(rec.path)
            freed += rec.size
            finished.append((row, DONE, to, info, digest))
            progress(len(done), len(targets), os.path.basename(rec.path))
    try:
        journal.note(finished + [(row, SKIPPED, None, None, None) for row in rows[reached:]])
        journal.finish(aid, empty=not done)
    except ActionError as e:  # every moved file's destination is already recorded: undo still works
        log.warning("%s", e)
    log.info("%s: %d files, %d bytes, %d problems", mode, len(done), freed, len(problems))
    return ActionResult(aid if done else None, mode, tuple(done), tuple(problems), freed)


def _groups_of(groups: Sequence[Group], targets: Sequence[ImageRecord]) -> dict:
    """For each target path: the (keepers, targets) of every group it belongs to."""
    marked = {t.path for t in targets}
    out: dict[str, list] = {}
    for g in groups:
        recs = g.files
        mine = [r for r in recs if r.path in marked]
        keepers = [r for r in recs if r.path not in marked]
        for r in mine:
            out.setdefault(r.path, []).append((keepers, mine))
    return out


def _group_gone(rec: ImageRecord, by_target: dict) -> str | None:
    """Re-checked right before each file moves: another program may have removed the kept copy meanwhile."""
    for keepers, mine in by_target.get(rec.path, ()):
        if not any(_still_a_copy(k, mine) for k in keepers):
            return "no other copy of it is still on disk as scanned; left it in place"
    return None


def _destination(path: str, dest_dir: Path | None, taken: set[str]) -> tuple[str | None, str | None]:
    """(where the file will go, its .trashinfo) decided before the move; (None, None): send2trash decides."""
    if dest_dir is not None:
        return str(_free_name(dest_dir / os.path.basename(path), taken)), None
    return trash.reserve(path) or (None, None)


def _move_one(rec: ImageRecord, to: str | None, info: str | None, digest: str | None, mode: str):
    """Move one file to its recorded destination; return where it went (and its .trashinfo)."""
    if to is not None:
        try:
            _move(rec.path, to, copy=mode == MOVE)
            return to, info
        except OSError as e:
            if mode == MOVE or e.errno != errno.EXDEV:
                raise
            trash.drop_info(info, rec.path)  # a bind mount or the like: let send2trash pick a trash
    moved = _Entry(rec.path, size=rec.size, hash=digest, mtime_ns=rec.mtime_ns)
    return trash.send(rec.path, lambda held: _holds(held, moved)) or (None, None)


def undo(action_id: int | None = None, journal: Journal | None = None) -> ActionResult:
    """Put back the files of an action (default: the last one not yet undone, finished or interrupted).

    A file comes back only if the trash (or folder) still holds the very file that was moved: its trash entry
    names the original path and it has the journal's size and content hash. Nothing at the original path is
    ever replaced."""
    journal = journal or Journal()
    action_id = action_id if action_id is not None else journal.last_undoable()
    if action_id is None:
        raise ActionError("nothing to undo")
    kind, entries = journal.entries(action_id)
    restored, problems, updates = [], [], []
    for e in entries:
        if e.state == PLANNED and kind == TRASH and trash.available() and _holds(e.path, e):
            trash.drop_reservations(e.path)  # reserved when interrupted, unused
        if e.state in (PLANNED, SKIPPED, RESTORED):
            continue
        try:
            why = _put_back(kind, e)
        except OSError as err:
            why = f"could not restore: {err}"
        if why is None:
            restored.append(e.path)
            updates.append((e.row, RESTORED, e.dest, e.info, e.hash))
        elif why:
            problems.append(Problem(e.path, why))
    journal.note(updates)
    if restored or not problems:
        journal.mark_undone(action_id)
    return ActionResult(action_id, f"undo {kind}", tuple(restored), tuple(problems))


def _put_back(kind: str, e: _Entry) -> str | None:
    """Restore one entry: None if it came back, "" if there was nothing to do, else the reason it did not."""
    src, info = e.dest, e.info
    if src and os.path.lexists(src) and _same_file(src, e.path):  # stopped between link and unlink
        os.unlink(src)
        trash.drop_info(info, e.path)
        return None
    ours = (
        bool(src)
        and os.path.lexists(src)
        and (kind != TRASH or trash.info_names(info, e.path))
        and _holds(src, e)
    )
    if not ours and kind == TRASH and trash.available():
        # moved but not recorded (interrupted, older journal), or trashed again since
        found = trash.find(e.path, lambda held: _holds(held, e))
        if found:
            (src, info), ours = found, True
    if os.path.lexists(e.path):  # never replace anything there, not even a dangling link
        if not ours and (e.state == STARTED or e.hash) and _holds(e.path, e):
            trash.drop_info(info, e.path)  # never moved (interrupted before), or already back
            return ""
        return "a file already exists at the original place; left it in place"
    if not ours:
        if kind == TRASH and not trash.available() and not src:
            return "this system's trash cannot be searched; restore it from the trash by hand"
        if kind == TRASH and src and os.path.lexists(src):
            return f"{GONE_FROM_TRASH}: its entry there now holds another file; left the trash as it is"
        if kind == TRASH:
            return f"{GONE_FROM_TRASH} (emptied?); restore it by hand if you still have it"
        if src and os.path.lexists(src):
            return f"{src} is not the file that was moved there (size or content differs); left it in place"
        return f"cannot find it in {e.dest} any more; restore it by hand"
    os.makedirs(os.path.dirname(e.path), exist_ok=True)
    try:
        _move(src, e.path, copy=True)
    except FileExistsError:
        return "a file already exists at the original place; left it in place"
    if kind == TRASH:
        trash.drop_info(info, e.path)
    return None


def describe(result: ActionResult) -> str:
    return json.dumps(
        {
            "action": result.action_id,
            "kind": result.kind,
            "files": len(result.done),
            "bytes": result.bytes,
            "problems": len(result.problems),
        }
    )
