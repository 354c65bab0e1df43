"""Small helpers shared by the views."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QSizePolicy


def let_shrink(label: QLabel) -> None:
    """Let ``label`` be narrower than its longest word or line: a long file name or message is cut instead
    of setting the window's minimum width."""
    policy = label.sizePolicy()
    policy.setHorizontalPolicy(QSizePolicy.Policy.Ignored)
    label.setSizePolicy(policy)
    label.setMinimumWidth(40)
