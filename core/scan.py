"""Find the image files under the folders (and files) a person chose.

Recursive, with include/exclude globs and a minimum size; hidden files are skipped and symlinks are not
followed by default (and never loop when they are); a file reached twice (two roots, a link) counts once.
Images are recognised by extension, and files with any other extension by their first bytes.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from core.decode import open_regular
from core.errors import DecodeError
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.raw import RAW_EXTENSIONS
from core.results import Problem

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (
    frozenset(".jpg .jpeg .jpe .jfif .png .webp .gif .bmp .dib .tif .tiff .heic .heif .hif .avif".split())
    | RAW_EXTENSIONS
)
# Never worth sniffing: common non-image files in photo folders.
_SKIP_EXTENSIONS = frozenset(
    ".mp4 .mov .avi .mkv .m4v .3gp .mts .wav .mp3 .aac .m4a .txt .xmp .json .xml .ini .db .pdf .zip "
    ".thm .aae .lrv .dop .pp3 .html .htm .css .js .py .md".split()
)
_HIDDEN_NAMES = frozenset({"@eaDir", "$RECYCLE.BIN", "System Volume Information", "lost+found"})


def sniff(head: bytes) -> str | None:
    """The image format named by a file's first bytes, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:2] == b"BM":
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heim", b"heis"):
            return "HEIF"
    return None


@dataclass(frozen=True)
class ScanOptions:
    include: tuple[str, ...] = ()  # globs on the file name; empty = every image
    exclude: tuple[str, ...] = ()  # globs on the name or the full path (files and folders)
    min_size: int = 1  # bytes; zero-byte files are still reported as problems
    include_hidden: bool = False
    follow_symlinks: bool = False


@dataclass
class FoundFile:
    path: str
    size: int
    mtime_ns: int


@dataclass
class Walk:
    files: list[FoundFile] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    sniffed: dict[str, str] = field(
        default_factory=dict
    )  # new content verdicts ("" = not an image), to cache


def _excluded(name: str, path: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p) for p in patterns)


def _hidden(name: str) -> bool:
    return name.startswith(".") or name in _HIDDEN_NAMES


def find_images(
    roots: Iterable[str | os.PathLike],
    options: ScanOptions | None = None,
    *,
    sniffed: Callable[[str, int, int], str | None] | None = None,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> Walk:
    """Walk ``roots`` and return the image files found, sorted by path, with the problems met.

    ``sniffed(path, size, mtime_ns)`` may answer from a cache whether a file with an unknown extension is an
    image ("" for no), so that a rescan reads nothing but ``stat``; it returns None when it does not know.
    """
    options = options or ScanOptions()
    finder = _Finder(options, sniffed)
    out = finder.out
    dirs_seen: set[tuple[int, int]] = set()  # (st_dev, st_ino) of folders: no symlink loops
    stack: list[str] = []
    for root in roots:
        root = os.path.abspath(os.fspath(root))
        try:
            st = os.stat(root)
        except FileNotFoundError:
            out.problems.append(Problem(root, "does not exist"))
            continue
        except OSError as e:
            out.problems.append(Problem(root, f"cannot access: {e.strerror}"))
            continue
        if stat.S_ISDIR(st.st_mode):
            stack.append(root)
        elif not stat.S_ISREG(st.st_mode):
            out.problems.append(Problem(root, "not a regular file (device, pipe or socket)"))
        else:
            finder.consider(root, os.path.basename(root), st, explicit=True)

    while stack:
        cancel.raise_if_cancelled()
        folder = stack.pop()
        try:
            st = os.stat(folder)
            key = (st.st_dev, st.st_ino)
            if key in dirs_seen:
                continue
            dirs_seen.add(key)
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            out.problems.append(Problem(folder, f"cannot open folder: {e.strerror or e}"))
            continue
        progress(len(out.files), 0, f"Looking in {folder}")
        subdirs = []
        for entry in entries:
            name = entry.name
            if not options.include_hidden and _hidden(name):
                continue
            path = entry.path
            if options.exclude and _excluded(name, path, options.exclude):
                continue
            try:
                is_link = entry.is_symlink()
                if is_link and not options.follow_symlinks:
                    continue
                st = entry.stat(follow_symlinks=True)
            except FileNotFoundError:
                if is_link:
                    out.problems.append(Problem(path, "broken symbolic link"))
                continue
            except OSError as e:
                out.problems.append(Problem(path, f"cannot access: {e.strerror or e}"))
                continue
            if stat.S_ISDIR(st.st_mode):
                subdirs.append(path)
            elif stat.S_ISREG(st.st_mode):
                finder.consider(path, name, st)
            elif os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:  # a pipe or device named like a photo
                out.problems.append(Problem(path, "not a regular file (pipe, device or socket)"))
        stack.extend(reversed(subdirs))
    out.files.sort(key=lambda f: f.path)
    return out


@dataclass
class _Finder:
    """One walk's findings, and the rules a regular file must pass to be one of them."""

    options: ScanOptions
    sniffed: Callable[[str, int, int], str | None] | None  # a cached content verdict, see ``find_images``
    out: Walk = field(default_factory=Walk)
    seen: set[tuple[int, int]] = field(
        default_factory=set
    )  # (st_dev, st_ino): a file reached twice counts once

    def consider(self, path: str, name: str, st: os.stat_result, *, explicit: bool = False) -> None:
        """Add the regular file ``path`` (named ``name``, stat ``st``) if it is an image the options want.

        ``explicit``: the person named this file (not found in a folder): say why it is not used."""
        options, out = self.options, self.out
        key = (st.st_dev, st.st_ino)
        if key in self.seen:
            return
        ext = os.path.splitext(name)[1].lower()
        if options.include and not any(fnmatch.fnmatch(name, p) for p in options.include):
            return
        if ext not in IMAGE_EXTENSIONS:
            if ext in _SKIP_EXTENSIONS and not explicit:
                return
            kind = self.sniffed(path, st.st_size, st.st_mtime_ns) if self.sniffed else None
            if kind is None:
                try:
                    with open_regular(path) as fh:
                        kind = sniff(fh.read(16)) or ""
                except DecodeError as e:
                    out.problems.append(Problem(path, f"cannot read: {e}"))
                    return
                out.sniffed[path] = kind
            if not kind:
                if explicit:
                    out.problems.append(Problem(path, "not a recognised image format"))
                return
        self.seen.add(key)
        if st.st_size == 0:
            out.problems.append(Problem(path, "empty file (0 bytes)"))
            return
        if st.st_size < options.min_size:
            return
        out.files.append(FoundFile(path, st.st_size, st.st_mtime_ns))
