"""Act on marked copies safely: to the system trash (default) or into a folder, journaled for undo.

Before touching a file the engine re-checks it is unchanged since the scan (size and mtime); it refuses to
remove every member of a group; every action is written to a SQLite journal so it can be undone (restored
from the trash, or moved back). Nothing here deletes permanently.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from core.errors import ActionError
from core.results import Group, ImageRecord, Problem

log = logging.getLogger(__name__)

TRASH, MOVE = "trash", "move"


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
    info: str | None = None  # the .trashinfo written by the trash, when found
    extra: dict = field(default_factory=dict)


def check_plan(
    groups: Sequence[Group], files: Sequence[ImageRecord], marked: Iterable[str], *, on_disk: bool = True
) -> None:
    """Raise ``ActionError`` unless every group with a marked member keeps another copy.

    With ``on_disk`` (the default) a kept copy counts only if it is on disk now, as scanned (same size and
    mtime), and is not the marked file under another name (a hard or symbolic link): the result may be stale.
    """
    marked = set(marked)
    for g in groups:
        recs = [files[m.index] for m in g.members]
        targets = [r for r in recs if r.path in marked]
        if not targets:
            continue
        keepers = [r for r in recs if r.path not in marked]
        if not keepers:
            raise ActionError(f"refusing to remove every copy in a group (keep at least one of {recs[0].path!r} ...)")
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


class Journal:
    """Every action, with where each file went, so it can be undone."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path else default_journal_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False)
        # Paths are stored as file-system bytes: names need not be valid UTF-8.
        self._conn.executescript(
            """
            CREATE TABLE IF NOT EXISTS actions (
                id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL, kind TEXT, target TEXT, undone INTEGER DEFAULT 0
            );
            CREATE TABLE IF NOT EXISTS entries (
                action INTEGER, path TEXT, dest TEXT, info TEXT, size INTEGER
            );
            """
        )

    def close(self) -> None:
        self._conn.close()

    def record(self, kind: str, target: str | None, entries: list[_Entry], sizes: dict[str, int]) -> int:
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO actions (time, kind, target) VALUES (?, ?, ?)", (time.time(), kind, target)
            )
            aid = cur.lastrowid
            self._conn.executemany(
                "INSERT INTO entries VALUES (?, ?, ?, ?, ?)",
                [(aid, _b(e.path), _b(e.dest), _b(e.info), sizes.get(e.path, 0)) for e in entries],
            )
        return int(aid)

    def last_undoable(self) -> int | None:
        row = self._conn.execute("SELECT id FROM actions WHERE undone = 0 ORDER BY id DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def actions(self) -> list[dict]:
        rows = self._conn.execute(
            "SELECT a.id, a.time, a.kind, a.target, a.undone, COUNT(e.path) FROM actions a "
            "LEFT JOIN entries e ON e.action = a.id GROUP BY a.id ORDER BY a.id DESC"
        ).fetchall()
        keys = ("id", "time", "kind", "target", "undone", "files")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def entries(self, action_id: int) -> tuple[str, list[_Entry]]:
        row = self._conn.execute("SELECT kind FROM actions WHERE id = ?", (action_id,)).fetchone()
        if row is None:
            raise ActionError(f"no action {action_id} in the journal")
        rows = self._conn.execute("SELECT path, dest, info FROM entries WHERE action = ?", (action_id,))
        return row[0], [_Entry(_s(p), _s(d), _s(i)) for p, d, i in rows]

    def mark_undone(self, action_id: int) -> None:
        with self._conn:
            self._conn.execute("UPDATE actions SET undone = 1 WHERE id = ?", (action_id,))


def _b(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def _s(blob: bytes | str | None) -> str | None:
    return None if blob is None else os.fsdecode(blob)


# -- the freedesktop trash: where send2trash put a file, so undo can bring it back ---------------------------
def _trash_dirs(path: str) -> list[Path]:
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share")
    dirs = [data / "Trash"]
    try:
        mount = Path(path).resolve().parent
        while not os.path.ismount(mount) and mount != mount.parent:
            mount = mount.parent
        uid = os.getuid() if hasattr(os, "getuid") else 0
        dirs += [mount / ".Trash" / str(uid), mount / f".Trash-{uid}"]
    except OSError:
        pass
    return [d for d in dirs if (d / "info").is_dir()]


def _find_in_trash(original: str, since: float) -> tuple[str, str] | None:
    """The (file, .trashinfo) the trash holds for ``original``, deleted at or after ``since``."""
    best = None
    for tdir in _trash_dirs(original):
        for info in (tdir / "info").glob("*.trashinfo"):
            try:
                if info.stat().st_mtime < since - 2:
                    continue
                text = info.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
            stored = os.fsdecode(urllib.parse.unquote_to_bytes(fields.get("Path", "")))
            if not os.path.isabs(stored):
                stored = str(tdir.parent / stored)
            if os.path.normpath(stored) == os.path.normpath(original):
                f = tdir / "files" / info.name[: -len(".trashinfo")]
                if f.exists() and (best is None or info.stat().st_mtime > best[2]):
                    best = (str(f), str(info), info.stat().st_mtime)
    return (best[0], best[1]) if best else None


def remove_files(
    targets: Sequence[ImageRecord],
    *,
    groups: Sequence[Group] = (),
    files: Sequence[ImageRecord] = (),
    mode: str = TRASH,
    dest: str | os.PathLike | None = None,
    journal: Journal | None = None,
) -> ActionResult:
    """Send ``targets`` to the trash, or move them into ``dest``; skip (and report) any that changed."""
    if mode not in (TRASH, MOVE):
        raise ValueError(f"unknown mode {mode!r}: use 'trash' or 'move'")
    if mode == MOVE and not dest:
        raise ValueError("moving needs a destination folder")
    check_plan(groups, files, (t.path for t in targets))
    journal = journal or Journal()
    done: list[_Entry] = []
    problems: list[Problem] = []
    freed = 0
    started = time.time()
    if mode == MOVE:
        dest_dir = Path(dest)
        dest_dir.mkdir(parents=True, exist_ok=True)
    for rec in targets:
        why = unchanged(rec)
        if not why and mode == MOVE and _same_dir(os.path.dirname(rec.path), dest_dir):
            why = "already in the destination folder"
        if why:
            problems.append(Problem(rec.path, why))
            continue
        try:
            if mode == TRASH:
                from send2trash import send2trash

                send2trash(rec.path)
                found = _find_in_trash(rec.path, started)
                done.append(_Entry(rec.path, found[0] if found else None, found[1] if found else None))
            else:
                target = _free_name(dest_dir / Path(rec.path).name)
                shutil.move(rec.path, target)
                done.append(_Entry(rec.path, str(target)))
            freed += rec.size
        except Exception as e:  # noqa: BLE001 - report per file, keep going
            problems.append(Problem(rec.path, f"could not {mode}: {e}"))
    sizes = {t.path: t.size for t in targets}
    aid = journal.record(mode, str(dest) if dest else None, done, sizes) if done else None
    log.info("%s: %d files, %d bytes, %d problems", mode, len(done), freed, len(problems))
    return ActionResult(aid, mode, tuple(e.path for e in done), tuple(problems), freed)


def undo(action_id: int | None = None, journal: Journal | None = None) -> ActionResult:
    """Put back the files of an action (default: the last one not yet undone)."""
    journal = journal or Journal()
    action_id = action_id if action_id is not None else journal.last_undoable()
    if action_id is None:
        raise ActionError("nothing to undo")
    kind, entries = journal.entries(action_id)
    restored, problems = [], []
    for e in entries:
        if os.path.exists(e.path):
            problems.append(Problem(e.path, "a file already exists at the original place; left it in place"))
            continue
        if not e.dest or not os.path.exists(e.dest):
            where = "the trash" if kind == TRASH else e.dest
            problems.append(Problem(e.path, f"cannot find it in {where} any more; restore it by hand"))
            continue
        try:
            os.makedirs(os.path.dirname(e.path), exist_ok=True)
            shutil.move(e.dest, e.path)
            if e.info and os.path.exists(e.info):
                os.remove(e.info)
            restored.append(e.path)
        except OSError as err:
            problems.append(Problem(e.path, f"could not restore: {err}"))
    if restored or not problems:
        journal.mark_undone(action_id)
    return ActionResult(action_id, f"undo {kind}", tuple(restored), tuple(problems))


def _same_dir(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _free_name(target: Path) -> Path:
    if not target.exists():
        return target
    for n in range(1, 10_000):
        cand = target.with_name(f"{target.stem} ({n}){target.suffix}")
        if not cand.exists():
            return cand
    raise ActionError(f"no free name for {target}")


def describe(result: ActionResult) -> str:
    return json.dumps({"action": result.action_id, "kind": result.kind, "files": len(result.done),
                       "bytes": result.bytes, "problems": len(result.problems)})
