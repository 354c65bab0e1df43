"""The freedesktop.org trash, written directly, so a file's place in the trash is known before it moves.

On Linux and the BSDs a file goes to the trash the spec picks for it: the home trash on the home's device,
else its volume's ``$topdir/.Trash/$uid`` (only if ``.Trash`` is a real, sticky directory) or
``$topdir/.Trash-$uid``.
Its ``.trashinfo`` is written first, under a name reserved with O_EXCL, so a crash leaves a record of where
the file went. Where the spec's conditions fail, or on other systems, send2trash does it and the entry is
looked up afterwards by its ``Path=``. Entries are only ever found by the names the trash gives a file
(``b.jpg``, ``b 1.jpg`` ...), never by listing the whole trash. Which file is the one that was moved (size,
content) is the caller's to judge; this module knows names, places and ``.trashinfo`` files, and never deletes
a trashed file."""

from __future__ import annotations

import errno
import logging
import os
import stat
import sys
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)


# -- the interface
# ------------------------------------------------------------------------------------------------
def available() -> bool:
    """True where this module writes the trash itself (Linux, the BSDs); elsewhere only send2trash can."""
    return os.name == "posix" and sys.platform != "darwin"


def reserve(path: str) -> tuple[str, str] | None:
    """(trash file, .trashinfo) that ``path`` is to move to, its .trashinfo already written under a free name.

    Decided before the move so the caller can record it first. None where the spec cannot be followed (another
    system, or no trash on the file's device qualifies): then ``send`` must do it. Raises ``OSError`` if no
    name is free."""
    if available():
        trash = _trash_for(path)
        if trash is not None:
            return _reserve(trash, path)
    return None


def send(path: str, is_ours: Callable[[str], bool]) -> tuple[str, str] | None:
    """Trash ``path`` with send2trash; return the (file, .trashinfo) it went to, if ``find`` can tell."""
    from send2trash import send2trash

    send2trash(path)
    return find(path, is_ours) if available() else None


def find(original: str, is_ours: Callable[[str], bool]) -> tuple[str, str] | None:
    """(file, .trashinfo) of the trash entry holding what was trashed from ``original``, or None.

    The entry's Path= must name ``original`` and ``is_ours`` accept its file; the latest such entry wins. For
    a file moved but not recorded (an interrupted action, send2trash), or trashed again since under another
    name."""
    found = [
        (os.lstat(info).st_mtime, dest, info) for dest, info in _entries_named_like(original) if is_ours(dest)
    ]
    return max(found)[1:] if found else None


def info_names(info: str | None, original: str) -> bool:
    """True if the .trashinfo ``info`` names ``original``."""
    named = _info_path(info) if info else None
    return bool(named) and _same_place(named, original)


def drop_info(info: str | None, original: str, *, blank: bool = False) -> None:
    """Remove a .trashinfo of ours whose file is no longer in the trash (restored, or never moved).

    With ``blank``, an empty one without a file goes too: it holds nothing and names nothing.
    """
    if not info or not os.path.lexists(info):
        return
    held = os.path.join(
        os.path.dirname(os.path.dirname(info)), "files", os.path.basename(info)[: -len(".trashinfo")]
    )
    if os.path.lexists(held):
        return
    if info_names(info, original) or (blank and os.lstat(info).st_size == 0):
        os.unlink(info)


def drop_reservations(original: str) -> None:
    """Remove the .trashinfo files reserved for ``original`` that hold no file (an action interrupted before
    its move), and empty ones among its names (interrupted while writing one)."""
    for _held, info in _entries_named_like(original, blank=True):
        drop_info(info, original, blank=True)  # only where no file is held


# -- which trash, and where in it
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _TrashDir:
    root: Path  # holds files/ and info/
    topdir: Path | None  # a volume's trash: Path= is relative to this; None in the home trash (absolute)


def _home_trash() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")) / "Trash"


def _device(path: str | os.PathLike) -> int:
    return os.stat(path).st_dev


def _mount_point(path: str | os.PathLike) -> Path:
    p = Path(os.path.realpath(path))
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def _own_dir(root: Path, *, check_owner: bool) -> bool:
    """Make ``root``/{files,info} (0700); True if ``root`` is then a real directory (and ours, if asked)."""
    for sub in ("files", "info"):
        os.makedirs(root / sub, 0o700, exist_ok=True)
    st = os.lstat(root)
    return stat.S_ISDIR(st.st_mode) and (not check_owner or st.st_uid == os.getuid())


def _trash_for(path: str) -> _TrashDir | None:
    """The trash the spec picks for ``path`` (created if needed), or None if none on its device qualifies."""
    try:
        dev = os.lstat(path).st_dev
        home = _home_trash()
        _own_dir(home, check_owner=False)
        if _device(home) == dev:
            return _TrashDir(home, None)
        top = _mount_point(os.path.dirname(os.path.abspath(path)))
        if _device(top) != dev:
            return None
        uid = os.getuid()
        shared = top / ".Trash"  # an admin-made $topdir/.Trash: a real, sticky directory, never a symlink
        if os.path.lexists(shared):
            st = os.lstat(shared)
            if stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
                try:
                    if _own_dir(shared / str(uid), check_owner=True):
                        return _TrashDir(shared / str(uid), top)
                except OSError:
                    pass
        mine = top / f".Trash-{uid}"
        if _own_dir(mine, check_owner=True):
            return _TrashDir(mine, top)
    except OSError as e:
        log.info("no freedesktop trash for %s: %s", path, e)
    return None


def _topdir_of(root: Path) -> Path:
    """What relative Path= values in the trash at ``root`` are relative to."""
    return root.parent.parent if root.parent.name == ".Trash" else root.parent


def _info_text(trash: _TrashDir, path: str) -> bytes:
    where = os.path.abspath(path)
    if trash.topdir is not None:
        parent = os.path.realpath(os.path.dirname(where))
        if (parent + os.sep).startswith(str(trash.topdir).rstrip(os.sep) + os.sep):
            where = os.path.relpath(os.path.join(parent, os.path.basename(where)), trash.topdir)
    date = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    return f"[Trash Info]\nPath={urllib.parse.quote(os.fsencode(where))}\nDeletionDate={date}\n".encode()


def _names(path: str) -> Iterable[bytes]:
    """Trash names for ``path``: ``b.jpg``, ``b 1.jpg``, ``b 2.jpg`` ... (as send2trash names them)."""
    name = os.path.basename(os.fsencode(path))
    stem, ext = os.path.splitext(name)
    yield name
    for n in range(1, 100_000):
        yield stem + b" %d" % n + ext


def _slot(root: Path, name: bytes) -> tuple[bytes, bytes]:
    """(file, .trashinfo) of the entry called ``name`` in the trash at ``root``: files/NAME,
    info/NAME.trashinfo.

    Bytes, as the names are: a file name need not be valid in the file-system encoding.
    """
    base = os.fsencode(root)
    return os.path.join(base, b"files", name), os.path.join(base, b"info", name + b".trashinfo")


def _reserve(trash: _TrashDir, path: str) -> tuple[str, str]:
    """Write the .trashinfo for ``path`` under a free name (O_EXCL, so the name is ours); return (file,
    info)."""
    text = _info_text(trash, path)
    for name in _names(path):
        dest, note = _slot(trash.root, name)
        if os.path.lexists(dest):
            continue
        try:
            fd = os.open(note, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as fh:
            fh.write(text)
        if os.path.lexists(dest):  # taken meanwhile by a program that does not write the info first
            os.unlink(note)
            continue
        return os.fsdecode(dest), os.fsdecode(note)
    raise OSError(errno.EEXIST, "no free name in the trash", path)


# -- reading it back
# ----------------------------------------------------------------------------------------------
def _info_path(info: str | None) -> str | None:
    """The original path a .trashinfo names, made absolute; None if unreadable."""
    try:
        with open(info, "rb") as fh:  # type: ignore[arg-type]
            text = fh.read(64 * 1024)
    except (OSError, TypeError):
        return None
    for line in text.splitlines():
        if line.startswith(b"Path="):
            where = os.fsdecode(urllib.parse.unquote_to_bytes(line[5:].strip()))
            if not os.path.isabs(where):
                where = os.path.join(_topdir_of(Path(info).parent.parent), where)
            return where
    return None


def _same_place(a: str, b: str) -> bool:
    if os.path.normpath(a) == os.path.normpath(b):
        return True
    return os.path.basename(a) == os.path.basename(b) and (
        os.path.realpath(os.path.dirname(a)) == os.path.realpath(os.path.dirname(b))
    )


def _trusted_topdir_trash(top: Path) -> list[Path]:
    """The volume's trashes the spec lets us use: ``.Trash/$uid`` only under a real, sticky ``.Trash`` (never
    a symlink, so another user cannot point it elsewhere), and ``.Trash-$uid`` only when it is ours."""
    uid = os.getuid()
    out = []
    try:
        st = os.lstat(top / ".Trash")
        if stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
            mine = top / ".Trash" / str(uid)
            if stat.S_ISDIR(os.lstat(mine).st_mode) and os.lstat(mine).st_uid == uid:
                out.append(mine)
    except OSError:
        pass
    try:
        st = os.lstat(top / f".Trash-{uid}")
        if stat.S_ISDIR(st.st_mode) and st.st_uid == uid:
            out.append(top / f".Trash-{uid}")
    except OSError:
        pass
    return out


def _trash_dirs(path: str) -> list[Path]:
    """The existing trashes that may hold ``path``: home, and its volume's two when the spec trusts them (the
    same rules ``_trash_for`` uses to pick one: what we may not write into, we do not search or clean)."""
    dirs = [_home_trash()]
    try:
        dirs += _trusted_topdir_trash(_mount_point(os.path.dirname(os.path.abspath(path))))
    except OSError:
        pass
    return [d for d in dirs if (d / "info").is_dir()]


def _entries_named_like(path: str, *, blank: bool = False) -> Iterable[tuple[str, str]]:
    """(file, .trashinfo) of the trash entries that could hold ``path``, by the names the trash gives it.

    Only those names are looked at (``b.jpg``, ``b 1.jpg`` ...), never the whole trash, so the cost does not
    grow with the number of unrelated files in it. With ``blank``, empty .trashinfo files come too (a crash
    between creating one and writing it).
    """
    for root in _trash_dirs(path):
        misses = 0
        for name in _names(path):
            held, info = map(os.fsdecode, _slot(root, name))
            try:
                empty = os.lstat(info).st_size == 0
            except OSError:
                misses += 1
                if misses > 8:  # names freed by emptying leave gaps; a long run of misses ends the list
                    break
                continue
            misses = 0
            if info_names(info, path) or (blank and empty):
                yield held, info
