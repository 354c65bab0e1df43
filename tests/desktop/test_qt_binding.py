"""The Qt binding keeps Python's reference counts: PySide6 6.12.0 released a reference to None on every call
of a method that returns nothing (``setChecked``, ``setValue``, ``setText``...). None's count starts near
12,500 in the app, so after some thousands of such calls (a scan's progress, a results list) the app
aborted ("none_dealloc: deallocating None"), mid-session or on quit after a scan of 412 photos."""

from __future__ import annotations

import sys


def test_calls_to_qt_methods_leave_the_reference_counts_of_none_true_and_false_alone(qtbot):
    from PySide6.QtWidgets import QCheckBox, QLabel, QProgressBar

    box, bar, label = QCheckBox(), QProgressBar(), QLabel()
    for w in (box, bar, label):
        qtbot.addWidget(w)
    before = sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)
    for k in range(2000):
        box.setChecked(k % 2 == 0)
        bar.setValue(k % 100)
        label.setText("scanning")
        box.isChecked()
        label.isVisible()
    after = sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)
    # a few references may come or go with Python's own caches; a leak here is one per call (thousands)
    assert all(abs(a - b) < 100 for a, b in zip(after, before, strict=True)), (before, after)
