"""Small helpers shared by the views."""

from __future__ import annotations

from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QLabel, QSizePolicy


def let_shrink(label: QLabel) -> None:
    """Let ``label`` be narrower than its longest word or line: a long file name or message is cut instead
    of setting the window's minimum width."""
    policy = label.sizePolicy()
    policy.setHorizontalPolicy(QSizePolicy.Policy.Ignored)
    label.setSizePolicy(policy)
    label.setMinimumWidth(40)


def warning_colour(palette: QPalette) -> str:
    """An orange that reads on the window's background (WCAG 4.5:1 or more), light theme or dark."""
    dark = palette.color(QPalette.ColorRole.Window).lightness() < 128
    return "#ffb366" if dark else "#8f4700"
