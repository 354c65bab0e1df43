"""The result of an action, said where it cannot be missed: "Moved 21 copies (1.2 MB) to the trash — Undo".

It stays until dismissed (a rescan's status text no longer replaces it), and offers Undo while the action it
reports is the one Undo would undo.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget

from core.actions import ActionResult
from desktop.formatting import human_bytes


def describe(result: ActionResult) -> str:
    """One line for a person: what moved, how much, where, and what was skipped."""
    n = len(result.done)
    files = f"{n} {'copy' if n == 1 else 'copies'}"
    if result.kind.startswith("undo"):
        text = f"Put back {n} {'file' if n == 1 else 'files'} where they were"
    else:
        where = "to the trash" if result.kind == "trash" else "to the chosen folder"
        text = f"Moved {files} ({human_bytes(result.bytes)}) {where}"
    if result.problems:
        text += f"; {len(result.problems)} skipped (see Problems)"
    return text + "."


class ResultBanner(QFrame):
    """Layout only: a line of text, an Undo button and a close button. ``undo`` asks to undo."""

    undo = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("result_banner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("#result_banner { background: palette(alternate-base); }")
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.undo_button = QPushButton("Undo")
        self.undo_button.clicked.connect(self.undo)
        close = QToolButton()
        close.setText("×")
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 4, 4, 4)
        lay.addWidget(self.text, 1)
        lay.addWidget(self.undo_button)
        lay.addWidget(close)
        self.hide()

    def show_result(self, result: ActionResult, can_undo: bool) -> None:
        self.text.setText(describe(result))
        self.undo_button.setVisible(can_undo and not result.kind.startswith("undo") and bool(result.done))
        self.show()
