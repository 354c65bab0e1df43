"""Long work off the GUI thread. Workers never touch widgets; they talk only through queued signals.

``Task`` runs one function in the global ``QThreadPool``. The function gets ``progress`` and ``cancel``
keyword arguments (core's protocol) and its return value arrives through ``finished``.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal, Slot

from core.errors import Cancelled
from core.progress import CancelToken

log = logging.getLogger(__name__)


class TaskSignals(QObject):
    progress = Signal(int, int, str)
    finished = Signal(object)
    failed = Signal(str, str)  # message, traceback
    cancelled = Signal()


class Task(QRunnable):
    """``fn(*args, progress=..., cancel=..., **kwargs)`` in a pool thread; cancel through ``cancel()``."""

    def __init__(self, fn: Callable[..., Any], *args: Any, name: str = "task", **kwargs: Any) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the Python object owns it; signals outlive run()
        self.signals = TaskSignals()
        self.token = CancelToken()
        self.name = name
        self._fn, self._args, self._kwargs = fn, args, kwargs

    def cancel(self) -> None:
        self.token.cancel()

    def run(self) -> None:
        try:
            out = self._fn(
                *self._args, progress=self.signals.progress.emit, cancel=self.token, **self._kwargs
            )
        except Cancelled:
            log.info("%s cancelled", self.name)
            self.signals.cancelled.emit()
        except Exception as e:  # noqa: BLE001 - reported to the GUI thread, which shows it
            log.exception("%s failed", self.name)
            self.signals.failed.emit(str(e) or type(e).__name__, traceback.format_exc())
        else:
            self.signals.finished.emit(out)


class TaskRunner(QObject):
    """Starts tasks and keeps them alive until they report back (so their signals are never collected)."""

    def __init__(self, parent: QObject | None = None, pool: QThreadPool | None = None) -> None:
        super().__init__(parent)
        self.pool = pool or QThreadPool.globalInstance()
        self._live: dict[TaskSignals, Task] = {}

    def start(self, task: Task) -> Task:
        """Run ``task``; connect its signals (queued, to bound slots of GUI objects) before calling this."""
        self._live[task.signals] = task
        for sig in (task.signals.finished, task.signals.failed, task.signals.cancelled):
            sig.connect(self._release, Qt.ConnectionType.QueuedConnection)
        self.pool.start(task)
        return task

    @Slot()
    def _release(self, *_: object) -> None:
        self._live.pop(self.sender(), None)

    @property
    def busy(self) -> bool:
        return bool(self._live)

    def wait(self, msecs: int = 30_000) -> bool:
        return self.pool.waitForDone(msecs)
