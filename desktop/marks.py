"""Which files are marked for removal, with the one rule the app never breaks: a group is never marked
whole."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from PySide6.QtCore import QObject, Signal

from core.results import ScanResult
from core.selection import in_folders, twin_kept

log = logging.getLogger(__name__)


class Marks(QObject):
    """The marked paths of the current result; ``changed`` fires after every edit."""

    changed = Signal()
    refused = Signal(str)  # a reason to show in the status bar

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._paths: set[str] = set()
        # What the person marked, with each file's (size, mtime) then: a stricter threshold may hide a mark
        # (its file leaves every group) and a looser one brings it back, while the file is unchanged.
        self._wanted: dict[str, tuple[int, int]] = {}
        self._groups: dict[str, list[str]] = {}  # path -> the paths of its group
        self._sizes: dict[str, int] = {}
        self._stats: dict[str, tuple[int, int]] = {}
        self.reference: list[str] = []
        # The marks an auto-select rule made and the person has not touched since. A rule never marks a
        # member the check was unsure of (``core.selection.choose``), so a regrouping that makes one unsure
        # drops its mark rather than re-applying it; a mark by hand is the person's and stays.
        self._by_rule: set[str] = set()
        self.unmarked: list[str] = []  # the rule's marks the last ``set_result`` dropped, for the status line

    # -- the result the marks apply to ------------------------------------------------------------------
    def set_result(self, result: ScanResult | None) -> None:
        """Show the marks that make sense in ``result``: files in a group, unchanged since they were marked,
        never a whole group, no rule's mark on a member the check is unsure of whose byte-identical twin does
        not stay (``unmarked`` lists those).
        Marks hidden by this result come back with a result that groups them again."""
        self._groups.clear()
        self._sizes.clear()
        self.unmarked = []
        if result is not None:
            for g in result.groups:
                if not g.unsure:
                    continue
                for m in g.members:
                    p = m.file.path
                    # a rule marks an unsure member only when a byte-identical twin of it stays (choose)
                    if (
                        m.unsure
                        and p in self._by_rule
                        and p in self._wanted
                        and not twin_kept(g, m, self._wanted)
                    ):
                        del self._wanted[p]
                        self._by_rule.discard(p)
                        self.unmarked.append(p)
            self.unmarked.sort()
            for g in result.groups:
                paths = g.paths
                for p in paths:
                    self._groups[p] = paths
            self._sizes = {f.path: f.size for f in result.files}
            self._stats = {f.path: (f.size, f.mtime_ns) for f in result.files}
            for p in [p for p, st in self._wanted.items() if p in self._stats and self._stats[p] != st]:
                del self._wanted[p]  # the file changed since it was marked: the mark is no longer about it
            self._by_rule &= self._wanted.keys()
        kept = {p for p in self._wanted if p in self._groups}
        for paths in {id(v): v for v in self._groups.values()}.values():
            if all(p in kept for p in paths):
                kept.discard(paths[0])  # keep the best copy
        self._paths = kept
        self.changed.emit()

    # -- queries --------------------------------------------------------------------------------------------
    def __contains__(self, path: str) -> bool:
        return path in self._paths

    def __len__(self) -> int:
        return len(self._paths)

    @property
    def paths(self) -> frozenset[str]:
        return frozenset(self._paths)

    @property
    def bytes(self) -> int:
        return sum(self._sizes.get(p, 0) for p in self._paths)

    def why_not(self, path: str) -> str | None:
        """None if ``path`` may be marked now, else the reason it may not."""
        if path not in self._groups:
            return "only files in a group can be marked"
        if in_folders(path, self.reference):
            return "files in a reference folder are never marked"
        if all(p in self._paths for p in self._groups[path] if p != path):
            return "every other copy in this group is marked; one copy always stays"
        return None

    # -- edits ---------------------------------------------------------------------------------------------
    def mark(self, path: str, on: bool = True) -> bool:
        """Mark or unmark ``path`` by hand: from now on the mark is the person's, whatever made it (a refused
        mark changes nothing)."""
        if not on:
            self._by_rule.discard(path)
            self._wanted.pop(path, None)
            if path in self._paths:
                self._paths.discard(path)
                self.changed.emit()
            return True
        if path in self._paths:
            self._by_rule.discard(path)
            return True
        reason = self.why_not(path)
        if reason:
            self.refused.emit(reason)
            return False
        self._by_rule.discard(path)
        self._paths.add(path)
        self._wanted[path] = self._stats.get(path, (0, 0))
        self.changed.emit()
        return True

    def toggle(self, path: str) -> bool:
        return self.mark(path, path not in self._paths)

    def replace(self, paths: Iterable[str]) -> None:
        """Mark exactly ``paths``, as an auto-select rule chose them, dropping any that would break the
        rules."""
        self._paths = set()
        self._wanted.clear()
        for p in paths:
            if self.why_not(p) is None:
                self._paths.add(p)
                self._wanted[p] = self._stats.get(p, (0, 0))
        self._by_rule = set(self._paths)
        self.changed.emit()

    def clear(self) -> None:
        self._paths.clear()
        self._wanted.clear()
        self._by_rule.clear()
        self.changed.emit()
