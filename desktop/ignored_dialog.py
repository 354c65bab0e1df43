"""The "not a duplicate" pairs a person set, listed, with a way to group any of them again."""

from __future__ import annotations

import os

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class IgnoredPairsDialog(QDialog):
    """Lists ``session.ignored_pairs()``; "Group again" forgets the selected ones through the session."""

    def __init__(self, session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Not-a-duplicate pairs")
        self.session = session
        self.list = QListWidget()
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.forget = QPushButton("Group again")
        self.forget.setToolTip(
            "Take the selected pairs off this list: they are grouped again when they match"
        )
        self.forget.clicked.connect(self.forget_selected)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.addButton(self.forget, QDialogButtonBox.ButtonRole.ActionRole)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Pairs you said are not duplicates. They are never grouped together."))
        lay.addWidget(self.list, 1)
        lay.addWidget(buttons)
        self.resize(720, 360)
        self.reload()

    def reload(self) -> None:
        self.list.clear()
        for a, b in self.session.ignored_pairs():
            item = QListWidgetItem(f"{os.path.basename(a)}  ↔  {os.path.basename(b)}")
            item.setToolTip(f"{a}\n{b}")
            item.setData(Qt.ItemDataRole.UserRole, (a, b))
            self.list.addItem(item)
        self.forget.setEnabled(self.list.count() > 0)

    def forget_selected(self) -> None:
        pairs = [item.data(Qt.ItemDataRole.UserRole) for item in self.list.selectedItems()]
        if pairs:
            self.session.forget_not_duplicate(pairs)
            self.reload()
