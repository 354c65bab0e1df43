"""One tier's list of groups with its own strictness slider: the duplicates, or the similar shots.

The groups show as a list (thumbnails, name, folder, how alike) or as a table (one line per group, for ten
thousand of them); both views share one model and one selection, with a sort order and a filter.

Layout only: it shows what ``show_result`` gives it and reports what the person did (``strictness_changed``
after the slider rests, ``current_changed`` when another group is picked); the window decides what that means.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QItemSelectionModel, QModelIndex, QObject, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListView,
    QSlider,
    QStackedWidget,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.results import ScanResult
from desktop.group_delegate import GroupDelegate
from desktop.group_model import COLUMN_KEYS, SIMILAR_SORTS, SORTS, GroupListModel
from desktop.thumbnails import ThumbnailCache


class _ElideMiddle(QStyledItemDelegate):
    """Cells that elide in the middle: ``/home/me/…/Holiday 2019``."""

    def initStyleOption(self, option: QStyleOptionViewItem, index: QModelIndex) -> None:  # noqa: N802 (Qt)
        super().initStyleOption(option, index)
        option.textElideMode = Qt.TextElideMode.ElideMiddle


class GroupList(QWidget):
    """A strictness slider, a title and a list of groups (``similar``: the result's similar-shot groups)."""

    strictness_changed = Signal(float)  # the threshold asked for, once the slider has rested a moment
    current_changed = Signal(QModelIndex)
    open_requested = Signal()  # Enter on the list: go into the current group (its cards)

    def __init__(
        self, thumbs: ThumbnailCache, *, similar: bool, tip: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(60, 99)
        self.slider.setEnabled(False)
        self.slider.setToolTip(tip)
        self.label = QLabel("Strictness")
        self._timer = QTimer(self, singleShot=True, interval=120)
        self.model = GroupListModel(self, similar=similar)
        self.view = QListView()
        self.view.setObjectName("similar_shots" if similar else "groups")
        self.view.setModel(self.model)
        self.view.setItemDelegate(GroupDelegate(thumbs, self.view))
        self.view.setUniformItemSizes(True)
        self.view.setLayoutMode(QListView.LayoutMode.Batched)
        self.view.setBatchSize(200)
        self.view.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)  # the table's too
        self.title = QLabel("<b>Similar shots</b>" if similar else "<b>Groups</b>")
        self.title.setWordWrap(True)

        # The table: one line per group, every row the same height, sortable by a click on a header.
        self.table = QTableView()
        self.table.setObjectName("similar_shots_table" if similar else "groups_table")
        self.table.setModel(self.model)
        self.table.setSelectionModel(self.view.selectionModel())  # one current group for both views
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setSortingEnabled(True)
        self.table.setTabKeyNavigation(False)  # Tab leaves for the cards, as from the list
        self.sorts = SIMILAR_SORTS if similar else SORTS  # the orders its menu names, the first shown first
        first, _ = next(iter(self.sorts.values()))
        self.table.horizontalHeader().setSortIndicator(COLUMN_KEYS.index(first), Qt.SortOrder.DescendingOrder)
        self.table.setWordWrap(False)
        self.table.setColumnHidden(COLUMN_KEYS.index("space"), similar)  # similar shots free nothing
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.verticalHeader().hide()
        rows = self.table.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)  # uniform heights: no per-row measuring
        rows.setDefaultSectionSize(self.fontMetrics().height() + 8)
        head = self.table.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        head.setStretchLastSection(True)
        for col, width in enumerate((160, 44, 76, 86)):
            self.table.setColumnWidth(col, width)
        # a date whole, "2019-07-14 10:27:00" (seconds tell a burst's frames apart), whatever the font
        self.table.setColumnWidth(
            COLUMN_KEYS.index("date"), self.table.fontMetrics().horizontalAdvance("0000-00-00 00:00:00") + 24
        )
        # a path's end (the folder that tells two copies apart) matters more than its start
        self._folder_delegate = _ElideMiddle(self.table)
        self.table.setItemDelegateForColumn(COLUMN_KEYS.index("folder"), self._folder_delegate)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.view)
        self.stack.addWidget(self.table)

        self.sort = QComboBox()
        self.sort.setToolTip("Order of the groups")
        for text in self.sorts:
            self.sort.addItem(text)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter by name or folder")
        self.search.setClearButtonEnabled(True)
        self.as_table = QToolButton()
        self.as_table.setText("Table")
        self.as_table.setCheckable(True)
        self.as_table.setToolTip("One line per group: names, folders, sizes, dates (for many groups)")

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 6, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.label)
        row.addWidget(self.slider, 1)
        lay.addLayout(row)
        lay.addWidget(self.title)
        tools = QHBoxLayout()
        tools.addWidget(self.search, 1)
        tools.addWidget(self.sort)
        tools.addWidget(self.as_table)
        lay.addLayout(tools)
        lay.addWidget(self.stack, 1)

        self.slider.valueChanged.connect(self._moved)
        self._timer.timeout.connect(lambda: self.strictness_changed.emit(self.slider.value() / 100))
        self.view.selectionModel().currentChanged.connect(self.current_changed)
        self.sort.currentTextChanged.connect(self._sort_chosen)
        head.sortIndicatorChanged.connect(self._header_sorted)
        self.search.textChanged.connect(self.set_filter)
        self.as_table.toggled.connect(self.show_table)
        for v in (self.view, self.table):
            v.installEventFilter(self)
        thumbs.ready.connect(self.view.viewport().update)

    def current_view(self) -> QAbstractItemView:
        return self.table if self.as_table.isChecked() else self.view

    @Slot(bool)
    def show_table(self, on: bool) -> None:
        had_focus = self.current_view().hasFocus() or self.view.hasFocus() or self.table.hasFocus()
        self.as_table.setChecked(on)
        self.stack.setCurrentWidget(self.table if on else self.view)
        if self.view.currentIndex().isValid():
            self.current_view().scrollTo(self.view.currentIndex())
        if had_focus:
            self.current_view().setFocus()

    @Slot(str)
    def _sort_chosen(self, text: str) -> None:
        key, descending = self.sorts[text]
        head = self.table.horizontalHeader()
        head.blockSignals(True)  # the model sorts once, here
        order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        head.setSortIndicator(COLUMN_KEYS.index(key), order)
        head.blockSignals(False)
        self.model.sort_by(key, descending)
        self._keep_current_visible()

    @Slot(int, Qt.SortOrder)
    def _header_sorted(self, column: int, order: Qt.SortOrder) -> None:
        """A header click sorted the model; the menu names the order when it is one of its own."""
        wanted = (COLUMN_KEYS[column], order == Qt.SortOrder.DescendingOrder)
        text = next((t for t, v in self.sorts.items() if v == wanted), None)
        if text is not None:
            self.sort.blockSignals(True)
            self.sort.setCurrentText(text)
            self.sort.blockSignals(False)
        self._keep_current_visible()

    def _keep_current_visible(self) -> None:
        if self.view.currentIndex().isValid():
            self.current_view().scrollTo(self.view.currentIndex())

    @Slot(str)
    def set_filter(self, text: str) -> None:
        """Show the groups with a file whose name or folder contains ``text``; the current group stays
        current if it is still shown, else the first one is."""
        row = self.view.currentIndex().row()
        group = self.model.group(row) if row >= 0 else None
        if self.search.text() != text:
            self.search.blockSignals(True)
            self.search.setText(text)
            self.search.blockSignals(False)
        self.model.set_filter(text)
        keep = self.model.row_of_group(group) if group is not None else None
        self._select(keep if keep is not None else 0)

    def _select(self, row: int) -> None:
        if self.model.rowCount():
            index = self.model.index(min(max(row, 0), self.model.rowCount() - 1))
            self.view.selectionModel().setCurrentIndex(
                index,
                QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
            )
        else:
            self.current_changed.emit(QModelIndex())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Enter on the groups goes into the current group; Space selects (and shows) the current row."""
        if watched in (self.view, self.table) and event.type() == QEvent.Type.KeyPress:
            key = event.key()
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.view.currentIndex().isValid():
                self.open_requested.emit()
                return True
            if key == Qt.Key.Key_Space and self.view.currentIndex().isValid():
                self._select(self.view.currentIndex().row())
                return True
        return super().eventFilter(watched, event)

    def show_result(
        self,
        result: ScanResult | None,
        title: str,
        floor: float | None = None,
        threshold: float | None = None,
    ) -> None:
        """Show ``result``'s groups of this tier, keeping the current row where it can; with ``floor``, let
        the slider reach from it (rounded up: never below what the library was scanned at) and sit at
        ``threshold``."""
        row = self.view.currentIndex().row()
        current = self.model.group(row) if row >= 0 else None
        self.model.set_result(result)
        self.title.setText(title)
        if floor is not None and threshold is not None:
            self.slider.blockSignals(True)
            self.slider.setRange(math.ceil(floor * 100 - 1e-9), 99)
            self.slider.setValue(int(round(threshold * 100)))  # clamped to the range: never below the floor
            self.slider.blockSignals(False)
            self.slider.setEnabled(True)
            self.label.setText(f"Strictness {self.slider.value()} %")
        n = self.model.rowCount()
        if n:
            # the same group again where it is still there (the same files: a member's flags may have
            # changed), else the one holding most of its files (a pair just split off: a trial saw the view
            # jump to an unrelated group), else the same place
            same, most = None, 0
            if current is not None:
                before = set(current.paths)
                for k in range(n):
                    shared = len(before.intersection(self.model.group(k).paths))
                    if shared > most:
                        same, most = k, shared
                        if shared == len(before) == len(self.model.group(k).paths):
                            break
            self.view.setCurrentIndex(self.model.index(same if same is not None else min(max(row, 0), n - 1)))

    @Slot(int)
    def _moved(self, value: int) -> None:
        self.label.setText(f"Strictness {value} %")
        self._timer.start()
