"""One tier's list of groups with its own strictness slider: the duplicates, or the similar shots.

Layout only: it shows what ``show_result`` gives it and reports what the person did (``strictness_changed``
after the slider rests, ``current_changed`` when another group is picked); the window decides what that means.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QModelIndex, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QListView, QSlider, QVBoxLayout, QWidget

from core.results import ScanResult
from desktop.group_delegate import GroupDelegate
from desktop.group_model import GroupListModel
from desktop.thumbnails import ThumbnailCache


class GroupList(QWidget):
    """A strictness slider, a title and a list of groups (``similar``: the result's similar-shot groups)."""

    strictness_changed = Signal(float)  # the threshold asked for, once the slider has rested a moment
    current_changed = Signal(QModelIndex)

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
        self.title = QLabel("<b>Similar shots</b>" if similar else "<b>Groups</b>")
        self.title.setWordWrap(True)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 6, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.label)
        row.addWidget(self.slider, 1)
        lay.addLayout(row)
        lay.addWidget(self.title)
        lay.addWidget(self.view, 1)

        self.slider.valueChanged.connect(self._moved)
        self._timer.timeout.connect(lambda: self.strictness_changed.emit(self.slider.value() / 100))
        self.view.selectionModel().currentChanged.connect(self.current_changed)
        thumbs.ready.connect(self.view.viewport().update)

    def show_result(
        self,
        result: ScanResult | None,
        title: str,
        floor: float | None = None,
        threshold: float | None = None,
    ) -> None:
        """Show ``result``'s groups of this tier, keeping the current row where it can; with ``floor``, let
        the
        slider reach from it (rounded up: never below what the library was scanned at) and sit at
        ``threshold``."""
        current = self.view.currentIndex().row()
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
            self.view.setCurrentIndex(self.model.index(min(max(current, 0), n - 1)))

    @Slot(int)
    def _moved(self, value: int) -> None:
        self.label.setText(f"Strictness {value} %")
        self._timer.start()
