"""Full-size viewing: one image with zoom, or two side by side with zoom and pan kept in step.

Images are decoded in a worker (``Task``); the dialog shows "Loading…" until they arrive. Two copies of one
photo can also show *what changed*: the second lined up on the first and their difference mapped, worked out
in a worker too (``desktop.difference``) and shown in a third pane in step with the others.
"""

from __future__ import annotations

import os

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QImage, QKeySequence, QPixmap, QShortcut, QWheelEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.decode import read_full
from desktop.difference import Difference, compute_difference
from desktop.thumbnails import to_qimage
from desktop.workers import Task, TaskRunner


def load_full(path: str, *, progress=None, cancel=None) -> tuple[str, QImage]:
    """Worker function: the whole image, upright, as a QImage."""
    return path, to_qimage(read_full(path))


class ZoomView(QGraphicsView):
    """A picture that zooms with the wheel (or +/-) around the cursor and pans by dragging."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self.item)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.fitted = True
        self.peers: list[ZoomView] = []

    def set_image(self, image: QImage) -> None:
        self.item.setPixmap(QPixmap.fromImage(image))
        self.scene().setSceneRect(self.item.boundingRect())
        self.fit()

    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, factor: float) -> None:
        if not factor > 0:  # matched to a picture still loading: a zero scale could never be fitted again
            return
        self.fitted = False
        self.resetTransform()
        self.scale(factor, factor)

    def fit(self) -> None:
        self.fitted = True
        self.fitInView(self.item, Qt.AspectRatioMode.KeepAspectRatio)

    def zoom_by(self, step: float) -> None:
        self.fitted = False
        if self.zoom() <= 0:
            self.resetTransform()
        factor = max(0.02, min(32.0, self.zoom() * step))
        self.scale(factor / self.zoom(), factor / self.zoom())
        for peer in self.peers:
            # Same scale on screen, whatever each file's resolution: an edited copy lines up with its
            # original.
            ratio = self.item.boundingRect().width() / max(1.0, peer.item.boundingRect().width())
            peer.set_zoom(self.zoom() * ratio)
            peer.sync_from(self)

    def sync_from(self, other: ZoomView) -> None:
        """Show the same part of the picture as ``other`` (images of different sizes line up by fraction)."""
        for mine, theirs in (
            (self.horizontalScrollBar(), other.horizontalScrollBar()),
            (self.verticalScrollBar(), other.verticalScrollBar()),
        ):
            span = max(1, theirs.maximum() - theirs.minimum())
            mine.setValue(
                int(
                    mine.minimum()
                    + (theirs.value() - theirs.minimum()) / span * (mine.maximum() - mine.minimum())
                )
            )

    def wheelEvent(self, event: QWheelEvent) -> None:
        self.zoom_by(1.25 if event.angleDelta().y() > 0 else 0.8)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.fitted:
            self.fit()


class ViewerDialog(QDialog):
    """One image, or two images in step (zoom and pan one, the other follows).

    ``copies=True`` (two copies of one photo, the best first) offers the *Difference* toggle, and
    ``partners`` (the group's members the second may be compared with, the first among them) a choice of
    which one the first pane shows: in a group to CHECK, a copy's own original may not be the best copy.
    """

    difference_shown = Signal(object)  # the Difference, once it is on screen

    def __init__(
        self,
        paths: list[str],
        runner: TaskRunner,
        parent: QWidget | None = None,
        *,
        copies: bool = False,
        difference: bool = False,
        partners: list[str] | tuple[str, ...] = (),
        partner_notes: dict[str, str] | None = None,
    ) -> None:
        super().__init__(parent)
        self.resize(1100, 750)
        self.runner = runner
        self.paths = list(paths)
        self._views: list[ZoomView] = []
        self._labels: list[QLabel] = []
        self.difference: Difference | None = None
        self._difference_task = None
        self.partner: QComboBox | None = None
        self._refit = False
        row = QHBoxLayout()
        for p in paths:
            col = QVBoxLayout()
            view = ZoomView(self)
            view.scene().addText("Loading…")
            label = QLabel(p, wordWrap=True)
            col.addWidget(label)
            col.addWidget(view, 1)
            row.addLayout(col, 1)
            self._views.append(view)
            self._labels.append(label)
        self.difference_view = ZoomView(self)
        self.difference_label = QLabel(wordWrap=True)
        self.difference_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._difference_col = QWidget()
        dcol = QVBoxLayout(self._difference_col)
        dcol.setContentsMargins(0, 0, 0, 0)
        dcol.addWidget(
            QLabel(
                "<b>What changed</b>: bright where the second differs, lined up on the first; "
                "blue where the second does not reach",
                wordWrap=True,
            )
        )
        dcol.addWidget(self.difference_view, 1)
        dcol.addWidget(self.difference_label)
        self._difference_col.hide()
        row.addWidget(self._difference_col, 1)
        views = list(self.views.values())
        if copies and len(paths) == 2:
            views.append(self.difference_view)
        self._all_views = views
        for v in views:
            v.peers = [o for o in views if o is not v]
            for bar in (v.horizontalScrollBar(), v.verticalScrollBar()):
                bar.valueChanged.connect(self._synced_scroll)
        buttons = QHBoxLayout()
        for text, slot, key in (
            ("Fit", self.fit, "0"),
            ("100 %", self.actual, "1"),
            ("Zoom in", lambda: self.zoom(1.25), "+"),
            ("Zoom out", lambda: self.zoom(0.8), "-"),
        ):
            b = QPushButton(f"{text}  ({key})")
            b.clicked.connect(slot)
            buttons.addWidget(b)
            QShortcut(QKeySequence(key), self, slot)
        self.difference_button = QPushButton("Difference  (D)")
        self.difference_button.setCheckable(True)
        self.difference_button.setToolTip("Line the second copy up on the first and show where they differ")
        self.difference_button.toggled.connect(self.show_difference)
        self.difference_button.setVisible(copies and len(paths) == 2)
        if copies and len(paths) == 2:
            buttons.addWidget(self.difference_button)
            QShortcut(QKeySequence("D"), self, self.difference_button.toggle)
            if len(partners) > 1:  # the first pane: any member of the group
                buttons.addSpacing(12)
                buttons.addWidget(QLabel("Compared with:"))
                self.partner = QComboBox()
                self.partner.setToolTip("Which copy of the group the right-hand one is lined up on (left)")
                names = [os.path.basename(q) for q in [*partners, self.paths[1]]]
                for q in partners:
                    note = (partner_notes or {}).get(q)
                    name = os.path.basename(q)
                    if names.count(name) > 1:  # one name in several folders: say which folder
                        name = os.path.join(os.path.basename(os.path.dirname(q)), name)
                    self.partner.addItem(name + (f"  ({note})" if note else ""), q)
                self.partner.setCurrentIndex(max(0, self.partner.findData(self.paths[0])))
                self.partner.currentIndexChanged.connect(self._partner_chosen)
                buttons.addWidget(self.partner)
        buttons.addStretch(1)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        buttons.addWidget(close)
        lay = QVBoxLayout(self)
        lay.addLayout(row, 1)
        lay.addLayout(buttons)
        self._syncing = False
        for p in paths:
            self._load(p)
        self._title()
        if difference and copies and len(paths) == 2:
            self.difference_button.setChecked(True)

    @property
    def views(self) -> dict[str, ZoomView]:
        """The image panes by the path each shows now."""
        return dict(zip(self.paths, self._views, strict=True))

    def _title(self) -> None:
        self.setWindowTitle(" ↔ ".join(os.path.basename(p) for p in self.paths))

    def _load(self, path: str) -> None:
        task = Task(load_full, path, name=f"load {path}")
        task.signals.finished.connect(self._loaded, Qt.ConnectionType.QueuedConnection)
        self.runner.start(task)

    @Slot(int)
    def _partner_chosen(self, index: int) -> None:
        """Show another member of the group in the first pane, and what changed against it."""
        path = self.partner.itemData(index)
        if not path or path == self.paths[0]:
            return
        self.paths[0] = path
        self._labels[0].setText(path)
        self._title()
        view = self._views[0]
        view.item.setPixmap(QPixmap())
        self._clear_text(view)
        view.scene().addText("Loading…")
        self._refit = True  # the panes start again from Fit, in step, once the new picture is in
        self._load(path)
        # what changed is worked out again for the new pair; a result still coming for the old one is dropped
        self.difference, self._difference_task = None, None
        self.difference_label.setToolTip("")
        self._clear_text(self.difference_view)
        self.difference_view.item.setPixmap(QPixmap())
        if self.difference_button.isChecked():
            self.show_difference(True)

    @Slot(bool)
    def show_difference(self, on: bool) -> None:
        """Show (working it out in a worker the first time) or hide what changed between the two copies."""
        self._difference_col.setVisible(on)
        if not on or self.difference is not None or self._difference_task is not None:
            return
        self.difference_label.setText("Lining the copies up…")
        self.difference_view.scene().addText("Working out what changed…")
        task = Task(compute_difference, self.paths[0], self.paths[1], name="difference")
        task.signals.finished.connect(self._difference_ready, Qt.ConnectionType.QueuedConnection)
        task.signals.failed.connect(self._difference_failed, Qt.ConnectionType.QueuedConnection)
        self._difference_task = task.signals
        self.runner.start(task)

    def _clear_text(self, view: ZoomView) -> None:
        for it in list(view.scene().items()):
            if it is not view.item:
                view.scene().removeItem(it)

    @Slot(object)
    def _difference_ready(self, diff: Difference) -> None:
        if self.sender() is not self._difference_task:
            return  # worked out for a pair no longer shown
        self._difference_task = None
        self.difference = diff
        self._clear_text(self.difference_view)
        self.difference_label.setText(diff.text)
        self.difference_label.setToolTip(f"The verifier: {diff.reason}" if diff.reason else "")
        if diff.image is not None:
            self.difference_view.set_image(diff.image)
        elif diff.aligned:  # identical files
            self.difference_view.scene().addText("Nothing differs: the two files are identical.")
        else:
            self.difference_view.scene().addText("No difference map: the two do not line up.")
        self.difference_shown.emit(diff)

    @Slot(str, str)
    def _difference_failed(self, message: str, _details: str) -> None:
        if self.sender() is not self._difference_task:
            return
        self._difference_task = None
        self._clear_text(self.difference_view)
        self.difference_label.setText(f"Could not compare the two copies: {message}")

    @Slot(object)
    def _loaded(self, out: tuple[str, QImage]) -> None:
        path, image = out
        for p, view in zip(self.paths, self._views, strict=True):
            if p == path:  # else a member no longer chosen
                self._clear_text(view)
                view.set_image(image)
                if self._refit and view is self._views[0]:
                    self._refit = False
                    self.fit()

    def _synced_scroll(self) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            src = next((v for v in self.views.values() if v.underMouse() or v.hasFocus()), None)
            if src is not None:
                for peer in src.peers:
                    peer.sync_from(src)
        finally:
            self._syncing = False

    def fit(self) -> None:
        for v in self._all_views:
            v.fit()

    def actual(self) -> None:
        for v in self.views.values():
            v.set_zoom(1.0)
        first = self.views[self.paths[0]]
        shown = first.item.boundingRect().width(), self.difference_view.item.boundingRect().width()
        # the map is in the first copy's pixels, reduced; nothing to match while either is still coming (a
        # zero scale could not be fitted again)
        if self.difference_view in self._all_views and min(shown) > 0:
            self.difference_view.set_zoom(shown[0] / shown[1])

    def zoom(self, step: float) -> None:
        first = next(iter(self.views.values()))
        first.zoom_by(step)
