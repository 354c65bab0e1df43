"""Full-size viewing: one image with zoom, or two side by side with zoom and pan kept in step.

Images are decoded in a worker (``Task``); the dialog shows "Loading…" until they arrive.
"""

from __future__ import annotations

import os

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QImage, QKeySequence, QPixmap, QShortcut, QWheelEvent
from PySide6.QtWidgets import (
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
        self.fitted = False
        self.resetTransform()
        self.scale(factor, factor)

    def fit(self) -> None:
        self.fitted = True
        self.fitInView(self.item, Qt.AspectRatioMode.KeepAspectRatio)

    def zoom_by(self, step: float) -> None:
        self.fitted = False
        factor = max(0.02, min(32.0, self.zoom() * step))
        self.scale(factor / self.zoom(), factor / self.zoom())
        for peer in self.peers:
            # Same scale on screen, whatever each file's resolution: an edited copy lines up with its original.
            ratio = self.item.boundingRect().width() / max(1.0, peer.item.boundingRect().width())
            peer.set_zoom(self.zoom() * ratio)
            peer.sync_from(self)

    def sync_from(self, other: ZoomView) -> None:
        """Show the same part of the picture as ``other`` (images of different sizes line up by fraction)."""
        for mine, theirs in ((self.horizontalScrollBar(), other.horizontalScrollBar()),
                             (self.verticalScrollBar(), other.verticalScrollBar())):
            span = max(1, theirs.maximum() - theirs.minimum())
            mine.setValue(int(mine.minimum() + (theirs.value() - theirs.minimum()) / span
                              * (mine.maximum() - mine.minimum())))

    def wheelEvent(self, event: QWheelEvent) -> None:
        self.zoom_by(1.25 if event.angleDelta().y() > 0 else 0.8)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.fitted:
            self.fit()


class ViewerDialog(QDialog):
    """One image, or two images in step (zoom and pan one, the other follows)."""

    def __init__(self, paths: list[str], runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(" ↔ ".join(os.path.basename(p) for p in paths))
        self.resize(1100, 750)
        self.views: dict[str, ZoomView] = {}
        row = QHBoxLayout()
        for p in paths:
            col = QVBoxLayout()
            view = ZoomView(self)
            view.scene().addText("Loading…")
            col.addWidget(QLabel(p, wordWrap=True))
            col.addWidget(view, 1)
            row.addLayout(col, 1)
            self.views[p] = view
        views = list(self.views.values())
        for v in views:
            v.peers = [o for o in views if o is not v]
            for bar in (v.horizontalScrollBar(), v.verticalScrollBar()):
                bar.valueChanged.connect(self._synced_scroll)
        buttons = QHBoxLayout()
        for text, slot, key in (("Fit", self.fit, "0"), ("100 %", self.actual, "1"),
                                ("Zoom in", lambda: self.zoom(1.25), "+"),
                                ("Zoom out", lambda: self.zoom(0.8), "-")):
            b = QPushButton(f"{text}  ({key})")
            b.clicked.connect(slot)
            buttons.addWidget(b)
            QShortcut(QKeySequence(key), self, slot)
        buttons.addStretch(1)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        buttons.addWidget(close)
        lay = QVBoxLayout(self)
        lay.addLayout(row, 1)
        lay.addLayout(buttons)
        self._syncing = False
        for p in paths:
            task = Task(load_full, p, name=f"load {p}")
            task.signals.finished.connect(self._loaded, Qt.ConnectionType.QueuedConnection)
            runner.start(task)

    @Slot(object)
    def _loaded(self, out: tuple[str, QImage]) -> None:
        path, image = out
        view = self.views[path]
        for it in list(view.scene().items()):
            if it is not view.item:
                view.scene().removeItem(it)
        view.set_image(image)

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
        for v in self.views.values():
            v.fit()

    def actual(self) -> None:
        for v in self.views.values():
            v.set_zoom(1.0)

    def zoom(self, step: float) -> None:
        first = next(iter(self.views.values()))
        first.zoom_by(step)
