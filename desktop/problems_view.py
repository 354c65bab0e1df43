"""Files the engine could not use, with the reason for each: a list, never a pile of dialogs."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPoint, Qt, Signal, Slot
from PySide6.QtWidgets import QHeaderView, QTableView, QWidget

from core.results import Problem


class ProblemsModel(QAbstractTableModel):
    HEADERS = ("File", "Why it was skipped")

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.problems: list[Problem] = []

    def set_problems(self, problems) -> None:
        self.beginResetModel()
        self.problems = list(problems)
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.problems)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else 2

    def data(self, index, role=Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return None
        p = self.problems[index.row()]
        return p.path if index.column() == 0 else p.reason

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None


BLANK_REASON = "blank image (one flat colour or no structure): never compared"


class ProblemsView(QTableView):
    """Layout only; ``menu(paths, pos)`` asks for the actions on the selected files (open, show in folder,
    move to the trash), which the window offers."""

    menu = Signal(list, QPoint)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self.model_ = ProblemsModel(self)
        self.setModel(self.model_)
        self.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.setWordWrap(False)
        self.verticalHeader().hide()
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.horizontalHeader().setStretchLastSection(True)
        self.setColumnWidth(0, 520)

    def set_problems(self, problems) -> None:
        self.model_.set_problems(problems)

    def selected_paths(self) -> list[str]:
        rows = sorted({i.row() for i in self.selectionModel().selectedRows()})
        return [self.model().index(r, 0).data() for r in rows]

    @Slot(QPoint)
    def _menu(self, pos: QPoint) -> None:
        index = self.indexAt(pos)
        if index.isValid() and not self.selectionModel().isRowSelected(index.row()):
            self.selectRow(index.row())
        paths = self.selected_paths()
        if paths:
            self.menu.emit(paths, self.viewport().mapToGlobal(pos))
