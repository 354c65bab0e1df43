"""Scan progress for the status bar: a bar, the current file, the count, an ETA, and Cancel."""

from __future__ import annotations

import time

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from core.progress import TimeLeft
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
        self._time_left = TimeLeft(time.monotonic)
        self.hide()

    def start(self) -> None:
        self.message.setText("Starting…")
        self.bar.setRange(0, 0)
        self.count.clear()
        self.eta.clear()
        self.cancel.setEnabled(True)
        self._time_left = TimeLeft(time.monotonic)
        self.show()

    @Slot(int, int, str)
    def update_progress(self, done: int, total: int, message: str) -> None:
        left = self._time_left.update(done, total)  # phases (finding, reading, comparing) restart it
        self.message.setText(message)
        if total <= 0:
            self.bar.setRange(0, 0)
            self.count.setText(f"{done}" if done else "")
            self.eta.clear()
            return
        self.bar.setRange(0, total)
        self.bar.setValue(done)
        self.count.setText(f"{done} / {total}")
        self.eta.setText(f"about {human_duration(left)} left" if left is not None else "")

    def stopping(self) -> None:
        self.message.setText("Cancelling…")
        self.cancel.setEnabled(False)

    def finish(self) -> None:
        self.hide()
