"""Python's cyclic garbage collector, run on the GUI thread only.

Automatic collection starts on whichever thread happens to allocate when a generation's threshold trips: in
this app, often a scan or thumbnail worker. Collecting a cycle that holds a Qt object's wrapper there destroys
the object off its own thread, and a test run segfaulted exactly so ("Garbage-collecting" in a scan
worker). So automatic collection is switched off and a timer on the GUI thread collects, generation by
generation, when the same thresholds are exceeded (the pattern PyQt applications such as calibre use).

What exists once the window is built (~49,000 objects: modules, Qt wrappers, the engine) lives as long as
the app, so it is frozen out of every later collection (``gc.freeze``): a full collection after a scan of
2,100 photos took 104 ms with them and 13 ms without, and one in the middle of that scan froze the window
for 258 ms.
"""

from __future__ import annotations

import gc
import time

from PySide6.QtCore import QCoreApplication, QObject, QTimer

INTERVAL_MS = 500
POSTPONE_S = 3.0


class MainThreadCollector(QObject):
    def __init__(self, parent: QObject, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        gc.disable()
        gc.collect()  # the garbage of start-up goes; what remains stays for the app's life: never traversed
        gc.freeze()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check)
        self.timer.start(interval_ms)
        self._quiet_from = 0.0  # monotonic time before which a full collection waits

    def postpone_full(self, seconds: float = POSTPONE_S) -> None:
        """Hold full collections back for ``seconds`` (a scan running, a result just shown): the younger
        generations are still collected, the oldest when the window is quiet again. A full collection of what
        a 2,100-photo scan leaves took 75-102 ms, the longest stall left while its result is shown."""
        self._quiet_from = max(self._quiet_from, time.monotonic() + seconds)

    def check(self) -> None:
        counts = gc.get_count()
        full_waits = time.monotonic() < self._quiet_from
        for generation in (2, 1, 0):  # the oldest generation due, which collects the younger ones too
            if counts[generation] > self.threshold[generation]:
                gc.collect(1 if generation == 2 and full_waits else generation)
                return


def install() -> MainThreadCollector | None:
    """Once per application (idempotent): automatic collection off, collected on the GUI thread instead."""
    app = QCoreApplication.instance()
    if app is None:
        return None
    found = app.findChild(MainThreadCollector)
    return found if found is not None else MainThreadCollector(app)
