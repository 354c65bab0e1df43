"""The groups of a ``ScanResult`` as a Qt list model (one row per group): its duplicate groups, or its
similar-shot groups (other captures of one subject, never marked)."""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from core.results import Group, ImageRecord, ScanResult
from desktop.formatting import human_bytes

GroupRole = Qt.ItemDataRole.UserRole + 1  # the core Group
RecordsRole = Qt.ItemDataRole.UserRole + 2  # list[ImageRecord], best copy first
MarkedRole = Qt.ItemDataRole.UserRole + 3  # how many members are marked
SummaryRole = Qt.ItemDataRole.UserRole + 4  # (headline, detail) for the row, e.g. ("3 copies", "frees 2 MB")

_Index = QModelIndex | QPersistentModelIndex


class GroupListModel(QAbstractListModel):
    """``similar=False``: ``result.groups`` (duplicates); ``similar=True``: ``result.similar_groups``."""

    def __init__(self, parent=None, *, similar: bool = False) -> None:
        super().__init__(parent)
        self.similar = similar
        self._result: ScanResult | None = None
        self._marked: frozenset[str] = frozenset()

    @property
    def result(self) -> ScanResult | None:
        return self._result

    def set_result(self, result: ScanResult | None) -> None:
        self.beginResetModel()
        self._result = result
        self.endResetModel()

    def set_marked(self, marked: frozenset[str]) -> None:
        self._marked = marked
        if self.rowCount():
            self.dataChanged.emit(self.index(0), self.index(self.rowCount() - 1), [MarkedRole])

    def _groups(self) -> tuple[Group, ...]:
        if self._result is None:
            return ()
        return self._result.similar_groups if self.similar else self._result.groups

    def group(self, row: int) -> Group:
        return self._groups()[row]

    def records(self, row: int) -> list[ImageRecord]:
        return list(self._groups()[row].files) if self._result else []

    def row_of(self, path: str) -> int | None:
        if self._result is None:
            return None
        for row, g in enumerate(self._groups()):
            if path in g.paths:
                return row
        return None

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        if parent.isValid() or self._result is None:
            return 0
        return len(self._groups())

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or self._result is None:
            return None
        g = self._groups()[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            name = os.path.basename(g.members[0].file.path)
            return f"{name} · {' · '.join(self._summary(g))}"
        if role == SummaryRole:
            return self._summary(g)
        if role == Qt.ItemDataRole.ToolTipRole:
            return "\n".join(g.paths)
        if role == GroupRole:
            return g
        if role == RecordsRole:
            return self.records(index.row())
        if role == MarkedRole:
            if self.similar:
                return 0  # similar shots are never marked here, even a file that is also a duplicate
            return sum(1 for r in self.records(index.row()) if r.path in self._marked)
        return None

    def _summary(self, g: Group) -> tuple[str, str]:
        if self.similar:
            return f"{len(g.members)} shots", "not copies"
        return f"{len(g.members)} copies", f"frees {human_bytes(g.reclaimable)}"
