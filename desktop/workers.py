"""Long work off the GUI thread. Workers never touch widgets; they talk only through queued signals.

``Task`` runs one function in the global ``QThreadPool``. The function gets ``progress`` and ``cancel``
keyword arguments (core's protocol) and its return value arrives through ``finished``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal, Slot

from core.errors import Cancelled, LookalikeError
from core.progress import CancelToken

log = logging.getLogger(__name__)

# Niceness of worker threads. A scan keeps both cores busy (decode threads, ONNX Runtime's pool); at equal
# priority the GUI thread waits its turn for the CPU and the window stalls. On Linux niceness is per thread
# and inherited by the threads a thread starts, so the decode pool and the model's threads, created from the
# worker, yield to the GUI too.
WORKER_NICE = 10


def yield_to_gui() -> None:
    """Lower the calling thread's CPU priority (Linux; elsewhere nothing). Raising niceness needs no
    privilege; it is never lowered again, and pool threads only ever run background work."""
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < WORKER_NICE:
            os.setpriority(os.PRIO_PROCESS, tid, WORKER_NICE)
    except OSError as e:  # a sandbox may refuse: then the worker runs at normal priority
        log.debug("could not lower a worker thread's priority: %s", e)


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
        yield_to_gui()
        try:
            out = self._fn(
                *self._args, progress=self.signals.progress.emit, cancel=self.token, **self._kwargs
            )
        except Cancelled:
            log.info("%s cancelled", self.name)
            self.signals.cancelled.emit()
        except LookalikeError as e:  # the engine's own refusal (an unreadable file, an unsafe action): no bug
            log.warning("%s failed: %s", self.name, e)
            self.signals.failed.emit(str(e) or type(e).__name__, traceback.format_exc())
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
