"""Unexpected errors: logged, and shown in a dialog whose traceback can be copied into a bug report."""

from __future__ import annotations

import logging
import sys
import traceback

from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

log = logging.getLogger(__name__)


class ErrorDialog(QDialog):
    def __init__(self, message: str, details: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Lookalike: unexpected error")
        self.resize(700, 420)
        label = QLabel(
            f"<b>Something went wrong.</b><br>{message}<br><br>"
            "Your files were not changed by this error. The details below are in the log too."
        )
        label.setWordWrap(True)
        self.details = QPlainTextEdit(details)
        self.details.setReadOnly(True)
        copy = QPushButton("Copy details")
        copy.clicked.connect(lambda: QApplication.clipboard().setText(self.details.toPlainText()))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(label)
        lay.addWidget(self.details, 1)
        lay.addWidget(buttons)


_showing = False


def excepthook(exc_type, exc, tb) -> None:
    """``sys.excepthook`` for the GUI: log, then one dialog at a time (never a storm)."""
    global _showing
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    log.error("unexpected error:\n%s", text)
    if issubclass(exc_type, KeyboardInterrupt) or QApplication.instance() is None or _showing:
        sys.__excepthook__(exc_type, exc, tb)
        return
    _showing = True
    try:
        ErrorDialog(f"{exc_type.__name__}: {exc}", text, QApplication.activeWindow()).exec()
    finally:
        _showing = False


def install() -> None:
    sys.excepthook = excepthook
