"""Lazy thumbnails: decoded in pool threads (as QImage, which is thread-safe), cached as QPixmap in the GUI
thread.

Views ask ``pixmap(path)``; a miss queues a load (newest request first, so what is on screen now comes
first while scrolling) and returns None; ``ready(path)`` fires when it arrives.
"""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal, Slot
from PySide6.QtGui import QImage, QPixmap

from core.decode import read_full

log = logging.getLogger(__name__)

THUMB_SIDE = 256


def to_qimage(img) -> QImage:
    """A PIL RGB image as a QImage that owns its pixels."""
    img = img.convert("RGB")
    data = img.tobytes("raw", "RGB")
    return QImage(data, img.width, img.height, 3 * img.width, QImage.Format.Format_RGB888).copy()


class _Signals(QObject):
    loaded = Signal(str, QImage)
    failed = Signal(str, str)


class _Load(QRunnable):
    def __init__(self, path: str, side: int, signals: _Signals) -> None:
        super().__init__()
        self.path, self.side, self.signals = path, side, signals

    def run(self) -> None:
        try:
            image = to_qimage(read_full(self.path, max_side=self.side))
        except Exception as e:  # noqa: BLE001 - a broken file gets a placeholder, not a crash
            log.debug("no thumbnail for %s: %s", self.path, e)
            self.signals.failed.emit(self.path, str(e))
        else:
            self.signals.loaded.emit(self.path, image)


class ThumbnailCache(QObject):
    """Thumbnails by path, at most ``capacity`` kept (least recently used go first)."""

    ready = Signal(str)

    def __init__(
        self, parent: QObject | None = None, *, capacity: int = 600, threads: int = 2, side: int = THUMB_SIDE
    ) -> None:
        super().__init__(parent)
        self.side = side
        self.capacity = capacity
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads)
        self._cache: OrderedDict[str, QPixmap] = OrderedDict()
        self._pending: set[str] = set()
        self._failed: set[str] = set()
        self._order = itertools.count()
        self._signals = _Signals()
        self._signals.loaded.connect(self._loaded, Qt.ConnectionType.QueuedConnection)
        self._signals.failed.connect(self._failed_load, Qt.ConnectionType.QueuedConnection)

    def pixmap(self, path: str) -> QPixmap | None:
        pm = self._cache.get(path)
        if pm is not None:
            self._cache.move_to_end(path)
            return pm
        if path not in self._pending and path not in self._failed:
            self._pending.add(path)
            # QThreadPool runs higher priorities first: the latest request (on screen now) wins.
            self.pool.start(_Load(path, self.side, self._signals), next(self._order) % 2_000_000_000)
        return None

    def failed(self, path: str) -> bool:
        return path in self._failed

    def forget(self) -> None:
        """Drop every cached thumbnail (files changed on disk)."""
        self.pool.clear()
        self._cache.clear()
        self._pending.clear()
        self._failed.clear()

    def wait(self, msecs: int = 10_000) -> bool:
        return self.pool.waitForDone(msecs)

    @Slot(str, QImage)
    def _loaded(self, path: str, image: QImage) -> None:
        self._pending.discard(path)
        self._cache[path] = QPixmap.fromImage(image)
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        self.ready.emit(path)

    @Slot(str, str)
    def _failed_load(self, path: str, reason: str) -> None:
        self._pending.discard(path)
        self._failed.add(path)
        self.ready.emit(path)
