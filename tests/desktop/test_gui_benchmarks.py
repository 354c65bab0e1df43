"""Benchmark mode (``LOOKALIKE_BENCH=1``, marker ``bench``): figures printed, never asserted as timings.

- Event-loop stalls during a real scan: a 10 ms ``QTimer`` in the GUI thread records the gap between its
  ticks while the window scans a folder; a gap much longer than 10 ms is time the window could not repaint or
  answer. Reports the longest gap and how many passed 100 ms, and in which phase they happened;
  ``LOOKALIKE_BENCH_STACKS=1`` also samples where the GUI thread was while a tick ran late.
- The results list with 10,000 synthetic groups: building the model, sorting by each order, filtering, and
  showing the table.

Photos: ``LOOKALIKE_BENCH_PHOTOS`` names a folder to scan (it is copied, never changed); otherwise
``LOOKALIKE_BENCH_N`` (default 300) distinct photos are generated from the demo ones, one in ten with a
recompressed copy."""

from __future__ import annotations

import collections
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from desktop.gc_guard import POSTPONE_S

pytestmark = [
    pytest.mark.bench,
    pytest.mark.skipif(not os.environ.get("LOOKALIKE_BENCH"), reason="benchmark mode: set LOOKALIKE_BENCH=1"),
]


def _photos(tmp_path):
    given = os.environ.get("LOOKALIKE_BENCH_PHOTOS")
    folder = tmp_path / "bench"
    if given:
        shutil.copytree(given, folder, ignore=shutil.ignore_patterns("*.md", "*.json", "*.txt"))
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    else:
        from benchmarks.speed import make_corpus

        files = make_corpus(folder, int(os.environ.get("LOOKALIKE_BENCH_N", "300")), 1.6, noise=3.0)
    for p in files[::10]:  # one in ten gets a recompressed copy: real groups to build and show
        Image.open(p).convert("RGB").save(p.with_name(p.stem + "_copy.jpg"), quality=70)
    return folder


class StallProbe:
    """Ticks every ``interval`` ms on the GUI thread and keeps each gap longer than that, with the phase."""

    def __init__(self, interval: int = 10) -> None:
        from PySide6.QtCore import QTimer

        self.interval = interval
        self.gaps: list[tuple[float, str]] = []
        self.phase = "start"
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(interval)
        self.timer.timeout.connect(self._tick)
        self.stacks: collections.Counter[str] = collections.Counter()
        self._watching = False

    def start(self) -> None:
        self._last = time.perf_counter()
        self.timer.start()
        if os.environ.get("LOOKALIKE_BENCH_STACKS"):  # where the GUI thread is while a tick is late
            self._watching = True
            threading.Thread(target=self._watch, args=(threading.get_ident(),), daemon=True).start()

    def stop(self) -> None:
        self.timer.stop()
        self._watching = False

    def _watch(self, gui: int) -> None:
        """Every 20 ms: a tick more than 50 ms late gets the GUI thread's innermost project frames noted,
        counted by place, and printed by ``report``."""
        while self._watching:
            time.sleep(0.02)
            late = (time.perf_counter() - self._last) * 1000
            frame = sys._current_frames().get(gui)
            if late < 50 or frame is None:
                continue
            where = []
            while frame is not None and len(where) < 4:
                name = frame.f_code.co_filename
                if "/site-packages/" not in name and "/lib/python" not in name:
                    where.append(f"{Path(name).name}:{frame.f_lineno} {frame.f_code.co_name}")
                frame = frame.f_back
            self.stacks[" < ".join(where) or "(in Qt)"] += 1

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(((now - self._last) * 1000, self.phase))
        self._last = now

    def report(self) -> str:
        worst = max(self.gaps, default=(0.0, ""))
        over = [g for g in self.gaps if g[0] > 100]
        phases = sorted({p for _, p in over})
        return (
            f"ticks {len(self.gaps)}, max stall {worst[0]:.0f} ms (during {worst[1]!r}), "
            f"{len(over)} over 100 ms {phases}"
        ) + "".join(f"\n    {n * 20} ms late at {where}" for where, n in self.stacks.most_common(12))


def test_event_loop_stalls_during_a_scan(qtbot, make_window, tmp_path):
    folder = _photos(tmp_path)
    n = sum(1 for p in folder.rglob("*") if p.is_file())
    window = make_window()
    probe = StallProbe()
    window.session.scan_progress.connect(
        lambda done, total, msg: setattr(probe, "phase", (msg.split() or ["?"])[0])
    )
    window.session.scan_finished.connect(lambda: setattr(probe, "phase", "showing the result"))
    probe.start()
    t0 = time.perf_counter()
    with qtbot.waitSignal(window.session.scan_finished, timeout=1_800_000):
        window.open_folders([str(folder)])
    scanned = time.perf_counter() - t0
    # the result on screen, its thumbnails arriving, and the full collection held back while it came
    qtbot.wait(int((POSTPONE_S + 1.5) * 1000))
    probe.stop()
    first = probe.report()
    # the same folder again, from the cache
    probe.gaps.clear()
    probe.stacks.clear()
    probe.phase = "rescan"
    probe.start()
    t0 = time.perf_counter()
    with qtbot.waitSignal(window.session.scan_finished, timeout=600_000):
        window.start_scan()
    rescanned = time.perf_counter() - t0
    qtbot.wait(500)
    probe.stop()
    print(
        f"\n[gui stalls] {n} photos, {len(window.session.result.groups)} groups; scan {scanned:.1f} s: "
        f"{first}\n[gui stalls] rescan from the cache {rescanned:.1f} s: {probe.report()}"
    )
    assert probe.gaps  # the probe ran


def test_ten_thousand_groups_build_sort_and_filter(qtbot, make_window, tmp_path):
    from PySide6.QtWidgets import QApplication
    from test_results_list import _synthetic

    from desktop.group_model import SORTS

    result = _synthetic(10_000, tmp_path)
    window = make_window()
    tier = window.duplicates
    times = {}
    t0 = time.perf_counter()
    tier.show_result(result, "10,000 groups", 0.8, 0.9)
    QApplication.processEvents()
    times["show in the list"] = time.perf_counter() - t0
    for text in SORTS:
        t0 = time.perf_counter()
        tier.sort.setCurrentText(text)
        QApplication.processEvents()
        times[f"sort: {text}"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tier.show_table(True)
    QApplication.processEvents()
    times["switch to the table"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tier.search.setText("folder42")
    QApplication.processEvents()
    times["filter"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tier.table.scrollToBottom()
    QApplication.processEvents()
    times["scroll to the end"] = time.perf_counter() - t0
    print("\n[10,000 groups] " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in times.items()))
    assert window.groups_model.rowCount() > 0
