"""Python's cyclic garbage collector runs on the GUI thread only: a collection in a scan worker once
destroyed a Qt wrapper off its thread and crashed the test run ("Fatal Python error: Segmentation fault
... Garbage-collecting" in Session._scan_work)."""

from __future__ import annotations

import gc
import threading
import time


class _Cycle:
    collected_on: list[str] = []

    def __init__(self) -> None:
        self.me = self  # only the cyclic collector can free this

    def __del__(self) -> None:
        _Cycle.collected_on.append(threading.current_thread().name)


def test_cycles_made_in_a_worker_are_collected_on_the_gui_thread(qtbot, make_window):
    make_window()
    assert not gc.isenabled()  # no automatic collection, which would start on whatever thread allocates

    def worker() -> None:
        for _ in range(2000):  # well past the youngest generation's threshold of allocations
            _Cycle()

    t = threading.Thread(target=worker, name="scan-worker")
    t.start()
    t.join()
    assert _Cycle.collected_on == []  # nothing collected in the worker
    qtbot.waitUntil(lambda: len(_Cycle.collected_on) >= 2000, timeout=10_000)
    assert set(_Cycle.collected_on) == {threading.main_thread().name}


def test_what_exists_at_start_up_is_frozen_out_of_later_collections(qtbot, make_window):
    """A full collection in the middle of a 2,100-photo scan froze the window for 258 ms; with the ~49,000
    start-up objects frozen out of collections, 48 ms."""
    make_window()
    assert gc.get_freeze_count() > 10_000


def test_full_collections_wait_while_a_scan_runs_and_its_result_is_shown(qtbot, make_window, monkeypatch):
    """The longest stall left while a 2,100-photo scan's result was shown was a full collection (75-102 ms):
    while scanning and for a few seconds after the result, the oldest generation waits (younger ones not)."""
    from desktop import gc_guard

    window = make_window()
    collector = window.collector
    collected = []
    monkeypatch.setattr(gc_guard.gc, "collect", lambda generation=2: collected.append(generation) or 0)
    monkeypatch.setattr(gc_guard.gc, "get_count", lambda: (800, 20, 20))  # every generation due
    window.session.scan_progress.emit(1, 10, "Reading IMG_0001.jpg")
    collector.check()
    assert collected == [1]  # the young ones only
    later = time.monotonic() + gc_guard.POSTPONE_S + 1
    monkeypatch.setattr(gc_guard.time, "monotonic", lambda: later)
    collector.check()
    assert collected == [1, 2]  # quiet again: the full collection
