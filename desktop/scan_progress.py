"""Scan progress for the status bar: a bar, the current file, the count, an ETA, and Cancel."""

from __future__ import annotations

import time

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from desktop.formatting import human_duration


class ScanProgress(QWidget):
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = QLabel()
        self.message.setMinimumWidth(260)
        self.bar = QProgressBar()
        self.bar.setMinimumWidth(220)
        self.count = QLabel()
        self.eta = QLabel()
        self.cancel = QPushButton("Cancel")
        self.cancel.clicked.connect(self.cancel_requested)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for w in (self.message, self.bar, self.count, self.eta, self.cancel):
            lay.addWidget(w)
        self._phase_start = time.monotonic()
        self._phase_total = -1
        self.hide()

    def start(self) -> None:
        self.message.setText("Starting…")
        self.bar.setRange(0, 0)
        self.count.clear()
        self.eta.clear()
        self.cancel.setEnabled(True)
        self._phase_total = -1
        self.show()

    @Slot(int, int, str)
    def update_progress(self, done: int, total: int, message: str) -> None:
        now = time.monotonic()
        if total != self._phase_total:  # a new phase (finding, reading, comparing): restart the clock
            self._phase_total = total
            self._phase_start = now
        self.message.setText(message)
        if total <= 0:
            self.bar.setRange(0, 0)
            self.count.setText(f"{done}" if done else "")
            self.eta.clear()
            return
        self.bar.setRange(0, total)
        self.bar.setValue(done)
        self.count.setText(f"{done} / {total}")
        elapsed = now - self._phase_start
        if done > 0 and elapsed > 1.0:
            self.eta.setText(f"about {human_duration(elapsed / done * (total - done))} left")
        else:
            self.eta.setText("")

    def stopping(self) -> None:
        self.message.setText("Cancelling…")
        self.cancel.setEnabled(False)

    def finish(self) -> None:
        self.hide()
