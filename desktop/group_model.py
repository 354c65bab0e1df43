"""The groups of a ``ScanResult`` as a Qt table model (one row per group): its duplicate groups, or its
similar-shot groups (other captures of one subject, never marked).

The list view shows column 0 (painted by ``GroupDelegate``); the table view shows every column. Both share
one model, so sorting and filtering happen once, in plain Python over precomputed keys: 10,000 groups sort
and filter in milliseconds (``benchmarks/results_list.py`` measures it).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from core.results import Group, ImageRecord, ScanResult
from desktop.formatting import count, human_bytes, taken_or_modified

GroupRole = Qt.ItemDataRole.UserRole + 1  # the core Group
RecordsRole = Qt.ItemDataRole.UserRole + 2  # list[ImageRecord], best copy first
MarkedRole = Qt.ItemDataRole.UserRole + 3  # how many members are marked
SummaryRole = Qt.ItemDataRole.UserRole + 4  # (name, "3 files · frees 2 MB · 97 %", folder) for the row

_Index = QModelIndex | QPersistentModelIndex

COLUMNS = ("Name", "Files", "Frees", "Similarity", "Date", "Folder")
# The sort key of each column, and the orders a person picks by name (key, descending).
COLUMN_KEYS = ("name", "files", "space", "similarity", "date", "folder")
SORTS = {
    "Most space freed": ("space", True),
    "Least similar first": ("similarity", False),
    "Newest first": ("date", True),
    "Folder A–Z": ("folder", False),
}
# Similar shots free nothing (none is selected for removal): the largest sets of shots come first.
SIMILAR_SORTS = {
    "Most shots first": ("files", True),
    "Most similar first": ("similarity", True),
    **{k: v for k, v in SORTS.items() if v[0] != "space"},
}
# A group with a member the check verified but was not sure of (``Member.unsure``)
UNSURE_TIP = "CHECK: maybe not copies (another exposure or a burst frame?); auto-select leaves them"


@dataclass(frozen=True)
class _Row:
    """One group with what its row shows and sorts by, computed once per result."""

    group: Group
    records: tuple[ImageRecord, ...]
    name: str
    folder: str  # the best copy's folder, "+ N more" when the group spans several
    similarity: float  # the lowest similarity to the best copy: how far apart the group reaches
    date: str  # the best copy's date (EXIF when taken, else modified), sortable text
    haystack: str  # every member's path, lower case: what the filter searches
    raw_pair: bool = False  # holds a RAW file and the JPEG its camera wrote with it

    def key(self, name: str):
        return {
            "name": self.name.lower(),
            "files": len(self.records),
            "space": self.group.reclaimable,
            "similarity": self.similarity,
            "date": self.date,
            "folder": self.folder.lower(),
        }[name]


def _row(group: Group) -> _Row:
    records = group.files
    best = records[0]
    folders = {os.path.dirname(r.path) for r in records}  # not ``r.folder``: pathlib is slow for 10,000
    extra = len(folders) - 1
    folder = os.path.dirname(best.path) + (f"  (+{extra} more)" if extra else "")
    # A member paired with another member but not with the best copy has no similarity to it (0.0; a group
    # made with ``share`` < 1 may hold one, none the app makes now): the lowest known one is the honest
    # summary.
    sim = (
        1.0
        if group.exact
        else min((m.similarity for m in group.members[1:] if m.similarity > 0), default=0.0)
    )
    date = best.taken or time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(best.mtime_ns / 1e9))
    return _Row(
        group,
        records,
        os.path.basename(best.path),
        folder,
        sim,
        date,
        "\n".join(r.path for r in records).lower(),
        any(r.is_raw for r in records) and bool(group.raw_pairs),
    )


class GroupListModel(QAbstractTableModel):
    """``similar=False``: ``result.groups`` (duplicates); ``similar=True``: ``result.similar_groups``.

    Rows are in the chosen order (``sort``/``sort_by``) and only those matching the filter (``set_filter``);
    ``group(row)`` and ``records(row)`` follow what is shown."""

    def __init__(self, parent=None, *, similar: bool = False) -> None:
        super().__init__(parent)
        self.similar = similar
        self._result: ScanResult | None = None
        self._marked: frozenset[str] = frozenset()
        self._all: list[_Row] = []  # in the engine's order (most space freed first)
        self._rows: list[_Row] = []  # sorted and filtered: what the views show
        self.sort_key, self.descending = next(iter((SIMILAR_SORTS if similar else SORTS).values()))
        self.filter_text = ""

    @property
    def result(self) -> ScanResult | None:
        return self._result

    def set_result(self, result: ScanResult | None) -> None:
        self.beginResetModel()
        self._result = result
        groups = () if result is None else result.similar_groups if self.similar else result.groups
        self._all = [_row(g) for g in groups] if result is not None else []
        self._rows = self._arranged()
        self.endResetModel()

    def set_marked(self, marked: frozenset[str]) -> None:
        self._marked = marked
        if self.rowCount():
            last = self.index(self.rowCount() - 1, len(COLUMNS) - 1)
            self.dataChanged.emit(self.index(0), last, [MarkedRole])

    # -- order and filter ------------------------------------------------------------------------------------
    def _arranged(self) -> list[_Row]:
        needle = self.filter_text.lower()
        rows = [r for r in self._all if needle in r.haystack] if needle else list(self._all)
        key = self.sort_key
        if self.similar:  # ties most similar first (the engine orders similar shots by the space they take)
            rows.sort(key=lambda r: r.similarity, reverse=True)
        rows.sort(key=lambda r: r.key(key), reverse=self.descending)  # stable: ties keep the order so far
        return rows

    def sort_by(self, key: str, descending: bool) -> None:
        """Order the rows by ``key`` (one of ``COLUMN_KEYS``); the current group stays current."""
        if key not in COLUMN_KEYS:
            raise ValueError(f"unknown sort key {key!r}")
        self.sort_key, self.descending = key, descending
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        before = [(self._rows[i.row()], i.column()) if i.isValid() else None for i in old]
        self._rows = self._arranged()
        where = {id(r): k for k, r in enumerate(self._rows)}
        new = [
            self.index(where[id(b[0])], b[1]) if b is not None and id(b[0]) in where else QModelIndex()
            for b in before
        ]
        self.changePersistentIndexList(old, new)
        self.layoutChanged.emit()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """A click on a table header."""
        self.sort_by(COLUMN_KEYS[column], order == Qt.SortOrder.DescendingOrder)

    def set_filter(self, text: str) -> None:
        """Show only the groups with a file whose path contains ``text`` (any case)."""
        self.beginResetModel()
        self.filter_text = text.strip()
        self._rows = self._arranged()
        self.endResetModel()

    # -- what other code asks --------------------------------------------------------------------------------
    def group(self, row: int) -> Group:
        return self._rows[row].group

    def records(self, row: int) -> list[ImageRecord]:
        return list(self._rows[row].records) if 0 <= row < len(self._rows) else []

    def row_of(self, path: str) -> int | None:
        for row, r in enumerate(self._rows):
            if any(rec.path == path for rec in r.records):
                return row
        return None

    def row_of_group(self, group: Group) -> int | None:
        return next((k for k, r in enumerate(self._rows) if r.group is group), None)

    # -- Qt ------------------------------------------------------------------------------------------------
    def index(self, row: int, column: int = 0, parent: _Index = QModelIndex()) -> QModelIndex:  # noqa: B008
        return super().index(row, column, parent)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        r = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._cell(r, index.column())
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() in (1, 2, 3):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == SummaryRole:
            return r.name, self._detail(r), r.folder
        if role == Qt.ItemDataRole.ToolTipRole:
            paths = "\n".join(rec.path for rec in r.records)
            doubtful = sum(m.unsure for m in r.group.members)
            if doubtful and not self.similar:  # the list's CHECK badge, said in words (and in the table)
                return f"{UNSURE_TIP} ({count(doubtful, 'file')})\n{paths}"
            return paths
        if role == GroupRole:
            return r.group
        if role == RecordsRole:
            return list(r.records)
        if role == MarkedRole:
            if self.similar:
                return 0  # similar shots are never marked here, even a file that is also a duplicate
            return sum(1 for rec in r.records if rec.path in self._marked)
        return None

    def _cell(self, r: _Row, column: int) -> str:
        if column == 0:
            return r.name
        if column == 1:
            return str(len(r.records))
        if column == 2:
            return "—" if self.similar else human_bytes(r.group.reclaimable)
        if column == 3:
            # the table has no badges: a group with a member the check was not sure of says CHECK here
            check = not self.similar and r.group.unsure
            return f"{r.similarity * 100:.0f} %" + (" CHECK" if check else "")
        if column == 4:
            return taken_or_modified(r.records[0])[1]
        return r.folder

    def _detail(self, r: _Row) -> str:
        """The row's second line. Wording: a group has *files*; the ones beyond the best are its *copies*."""
        n = len(r.records)
        if self.similar:
            return f"{n} shots · {r.similarity * 100:.0f} % alike"  # not copies: the tab and header say so
        alike = "identical" if r.group.exact else f"{r.similarity * 100:.0f} % alike"
        raw = " · RAW+JPEG" if r.raw_pair else ""
        return f"{n} files · frees {human_bytes(r.group.reclaimable)} · {alike}{raw}"
