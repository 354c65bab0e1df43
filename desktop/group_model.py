"""The groups of a ``ScanResult`` as a Qt list model (one row per group)."""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from core.results import Group, ImageRecord, ScanResult
from desktop.formatting import human_bytes

GroupRole = Qt.ItemDataRole.UserRole + 1  # the core Group
RecordsRole = Qt.ItemDataRole.UserRole + 2  # list[ImageRecord], best copy first
MarkedRole = Qt.ItemDataRole.UserRole + 3  # how many members are marked

_Index = QModelIndex | QPersistentModelIndex


class GroupListModel(QAbstractListModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
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

    def group(self, row: int) -> Group:
        assert self._result is not None
        return self._result.groups[row]

    def records(self, row: int) -> list[ImageRecord]:
        res = self._result
        return [res.files[m.index] for m in res.groups[row].members] if res else []

    def row_of(self, path: str) -> int | None:
        if self._result is None:
            return None
        for row, g in enumerate(self._result.groups):
            if any(self._result.files[m.index].path == path for m in g.members):
                return row
        return None

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        if parent.isValid() or self._result is None:
            return 0
        return len(self._result.groups)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or self._result is None:
            return None
        g = self._result.groups[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            name = os.path.basename(self._result.files[g.members[0].index].path)
            return f"{name} · {len(g.members)} copies · {human_bytes(g.reclaimable)}"
        if role == Qt.ItemDataRole.ToolTipRole:
            return "\n".join(self._result.files[m.index].path for m in g.members)
        if role == GroupRole:
            return g
        if role == RecordsRole:
            return self.records(index.row())
        if role == MarkedRole:
            return sum(1 for r in self.records(index.row()) if r.path in self._marked)
        return None
