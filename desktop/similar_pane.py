"""Ranked "find similar" matches, with their similarity; drop an image here to search with it."""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPoint, QSize, Qt, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QIcon
from PySide6.QtWidgets import QLabel, QListView, QPushButton, QVBoxLayout, QWidget

from desktop.formatting import percent
from desktop.thumbnails import ThumbnailCache
from desktop.widgets import let_shrink

PathRole = Qt.ItemDataRole.UserRole + 1
SimilarityRole = Qt.ItemDataRole.UserRole + 2
ICON = 96


class SimilarModel(QAbstractListModel):
    def __init__(self, thumbs: ThumbnailCache, parent=None) -> None:
        super().__init__(parent)
        self.thumbs = thumbs
        self.matches: list[tuple[str, float]] = []
        thumbs.ready.connect(self._thumb_ready)

    def set_matches(self, matches: list[tuple[str, float]]) -> None:
        self.beginResetModel()
        self.matches = list(matches)
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.matches)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        path, sim = self.matches[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            folder = os.path.basename(os.path.dirname(path))
            return f"{index.row() + 1}. {os.path.basename(path)}\n{percent(sim)} similar\nin {folder}"
        if role == Qt.ItemDataRole.DecorationRole:
            pm = self.thumbs.pixmap(path)
            return QIcon(pm) if pm is not None else None
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{path}\n{percent(sim)} similar"
        if role == PathRole:
            return path
        if role == SimilarityRole:
            return sim
        return None

    @Slot(str)
    def _thumb_ready(self, path: str) -> None:
        for row, (p, _) in enumerate(self.matches):
            if p == path:
                idx = self.index(row)
                self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DecorationRole])


class SimilarPane(QWidget):
    """Layout only: a title, the matches, and a button to search with any image file."""

    menu = Signal(str, QPoint)
    open_viewer = Signal(str)
    query_file = Signal(str)  # an image was dropped here
    pick_file = Signal()

    def __init__(self, thumbs: ThumbnailCache, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.title = QLabel("Right-click a photo and choose <b>Find similar</b>, or drop an image here.")
        self.title.setWordWrap(True)
        let_shrink(self.title)  # a long file name in it must not widen the dock
        self.model = SimilarModel(thumbs, self)
        self.list = QListView()
        self.list.setModel(self.model)
        self.list.setIconSize(QSize(ICON, ICON))
        self.list.setUniformItemSizes(True)
        self.list.setSpacing(2)
        self.list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)
        self.list.activated.connect(lambda idx: self.open_viewer.emit(idx.data(PathRole)))
        pick = QPushButton("Find similar to an image…")
        pick.clicked.connect(self.pick_file)
        lay = QVBoxLayout(self)
        lay.addWidget(self.title)
        lay.addWidget(self.list, 1)
        lay.addWidget(pick)

    def show_busy(self, query: str) -> None:
        self.title.setText(f"Looking for photos like <b>{os.path.basename(query)}</b>…")
        self.model.set_matches([])

    def show_matches(self, query: str, matches: list[tuple[str, float]]) -> None:
        self.title.setText(f"Most like <b>{os.path.basename(query)}</b> ({len(matches)} matches)")
        self.title.setToolTip(query)
        self.model.set_matches(matches)

    def show_error(self, query: str, message: str) -> None:
        self.title.setText(f"Cannot search with <b>{os.path.basename(query)}</b>: {message}")
        self.model.set_matches([])

    @Slot(QPoint)
    def _menu(self, pos: QPoint) -> None:
        idx = self.list.indexAt(pos)
        if idx.isValid():
            self.menu.emit(idx.data(PathRole), self.list.viewport().mapToGlobal(pos))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile() and os.path.isfile(urls[0].toLocalFile()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile():
            event.acceptProposedAction()
            self.query_file.emit(urls[0].toLocalFile())
