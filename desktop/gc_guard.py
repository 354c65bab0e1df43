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

from PySide6.QtCore import QCoreApplication, QObject, QTimer

INTERVAL_MS = 500


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

    def check(self) -> None:
        counts = gc.get_count()
        for generation in (2, 1, 0):  # the oldest generation due, which collects the younger ones too
            if counts[generation] > self.threshold[generation]:
                gc.collect(generation)
                return


def install() -> MainThreadCollector | None:
    """Once per application (idempotent): automatic collection off, collected on the GUI thread instead."""
    app = QCoreApplication.instance()
    if app is None:
        return None
    found = app.findChild(MainThreadCollector)
    return found if found is not None else MainThreadCollector(app)
