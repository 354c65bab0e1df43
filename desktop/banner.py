"""The result of an action, said where it cannot be missed: "Moved 21 copies (1.2 MB) to the trash — Undo".

It stays until dismissed (a rescan's status text no longer replaces it), and offers Undo while the action it
reports is the one Undo would undo.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget

from core.actions import ActionResult
from desktop.formatting import count, human_bytes
from desktop.widgets import let_shrink


def describe(result: ActionResult) -> str:
    """One line for a person: what moved, how much, where, and what was skipped."""
    n = len(result.done)
    files = count(n, "copy", "copies")
    if result.kind.startswith("undo"):
        text = f"Put back {count(n, 'file')} where {'it was' if n == 1 else 'they were'}"
    else:
        where = "to the trash" if result.kind == "trash" else "to the chosen folder"
        text = f"Moved {files} ({human_bytes(result.bytes)}) {where}"
    if result.problems:
        text += f"; {len(result.problems)} skipped (see Problems)"
    return text + "."


class ResultBanner(QFrame):
    """Layout only: a line of text, an Undo button (running what the caller gave) and a close button."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("result_banner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("#result_banner { background: palette(alternate-base); }")
        self.text = QLabel()
        self.text.setWordWrap(True)
        let_shrink(self.text)  # a long path in the message must not widen the window
        self.undo_button = QPushButton("Undo")
        self.undo_button.clicked.connect(self._undo_clicked)
        self._undo: Callable[[], object] | None = None
        self._until_scan = False
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

    def show_message(
        self, text: str, undo: Callable[[], object] | None = None, *, until_scan: bool = False
    ) -> None:
        """Say ``text`` until dismissed (``until_scan``: or until the next scan starts: news about the groups
        on screen, not about files moved); with ``undo``, offer an Undo button that runs it (once)."""
        self.text.setText(text)
        self._undo = undo
        self._until_scan = until_scan
        self.undo_button.setVisible(undo is not None)
        self.show()

    def scan_started(self) -> None:
        """A scan began: a message about the groups it replaces goes (what was moved, and its Undo, stays)."""
        if self._until_scan:
            self.hide()

    def _undo_clicked(self) -> None:
        undo, self._undo = self._undo, None
        self.undo_button.hide()
        if undo is not None:
            undo()
