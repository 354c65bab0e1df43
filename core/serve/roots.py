"""The served folders: how a library path is named to clients, and how a client's name is confined to them.

Clients never see or send absolute paths. With one root a photo is named by its path inside that root
(``Camera/a.jpg``); with several, that path is prefixed by the root's name (``photos/Camera/a.jpg``; two roots
with one name become ``photos`` and ``photos-2``). ``resolve`` maps a name back and refuses (None) anything
that is not a regular file inside its root once every symlink is resolved: ``..``, absolute names, NUL bytes,
and links that point out of the root.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class Roots:
    """Served folders, each resolved once (``os.path.realpath``) and named for clients."""

    def __init__(self, folders: Iterable[str | os.PathLike]) -> None:
        self.paths: list[str] = []
        for f in folders:
            real = os.path.realpath(os.fspath(f))
            if not os.path.isdir(real):
                raise ValueError(f"not a folder: {os.fspath(f)}")
            if real not in self.paths:
                self.paths.append(real)
        if not self.paths:
            raise ValueError("no folder to serve")
        self.names: list[str] = []
        for p in self.paths:
            base = os.path.basename(p) or "root"
            name, n = base, 1
            while name in self.names:
                n += 1
                name = f"{base}-{n}"
            self.names.append(name)
        self.prefixed = len(self.paths) > 1

    def root_of(self, path: str) -> int | None:
        """Index of the innermost root holding ``path`` (an absolute library path), or None."""
        best = None
        for k, root in enumerate(self.paths):
            if _inside(path, root) and (best is None or len(root) > len(self.paths[best])):
                best = k
        return best

    def relative(self, path: str) -> str | None:
        """The client's name for a library path (``/``-separated), or None if it lies in no root."""
        k = self.root_of(path)
        if k is None:
            return None
        rel = os.path.relpath(path, self.paths[k]).replace(os.sep, "/")
        return f"{self.names[k]}/{rel}" if self.prefixed else rel

    def resolve(self, name: str) -> str | None:
        """The real path of the regular file a client names, or None if it escapes its root or is no file."""
        if not name or "\0" in name or "\\" in name or name.startswith("/"):
            return None
        parts = name.split("/")
        if any(p in ("", ".", "..") for p in parts):
            return None
        if self.prefixed:
            if parts[0] not in self.names or len(parts) < 2:
                return None
            root = self.paths[self.names.index(parts[0])]
            parts = parts[1:]
        else:
            root = self.paths[0]
        real = os.path.realpath(os.path.join(root, *parts))
        if not _inside(real, root) or real == root:
            return None
        try:
            if not stat.S_ISREG(os.stat(real).st_mode):
                return None
        except OSError:
            return None
        return real
