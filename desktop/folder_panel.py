"""The folders to scan: add (picker or drop), remove, and tick the reference folders."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class FolderPanel(QWidget):
    """Layout only; ``changed`` fires when the folders or the reference ticks change."""

    changed = Signal()
    add_requested = Signal()
    settings_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setToolTip("Tick a folder to make it a reference: its files are never marked for removal.")
        self.list.itemChanged.connect(lambda _: self.changed.emit())
        self.list.setMaximumHeight(140)
        self.list.installEventFilter(self)
        add = QPushButton("Add folder…")
        add.clicked.connect(self.add_requested)
        self.remove = QPushButton("Remove")
        self.remove.clicked.connect(self.remove_selected)
        options = QPushButton("Options…")
        options.clicked.connect(self.settings_requested)
        buttons = QHBoxLayout()
        for b in (add, self.remove, options):
            buttons.addWidget(b)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel("<b>Folders</b> (tick = reference, never removed from)"))
        lay.addWidget(self.list)
        lay.addLayout(buttons)

    _REMOVE_KEYS = (Qt.Key.Key_Delete, Qt.Key.Key_Backspace)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Delete in the folder list removes the selected folder. The window's Delete shortcut (move the
        marked copies to the trash) must not fire from here: the key is claimed before shortcuts are
        matched."""
        if watched is self.list and event.type() in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress):
            if event.key() in self._REMOVE_KEYS and event.modifiers() == Qt.KeyboardModifier.NoModifier:
                if event.type() == QEvent.Type.KeyPress and self.list.selectedItems():
                    self.remove_selected()
                event.accept()
                return event.type() == QEvent.Type.KeyPress
        return super().eventFilter(watched, event)

    def folders(self) -> list[str]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def reference(self) -> list[str]:
        return [
            self.list.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.list.count())
            if self.list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def set_folders(self, folders: list[str], reference: list[str]) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for f in folders:
            self._add(f, f in reference)
        self.list.blockSignals(False)
        self.changed.emit()

    def add(self, folder: str) -> bool:
        if folder in self.folders():
            return False
        self._add(folder, False)
        self.changed.emit()
        return True

    def set_reference(self, folder: str, on: bool) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole) == folder:
                self.list.item(i).setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def remove_selected(self) -> None:
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))
        self.changed.emit()

    def _add(self, folder: str, reference: bool) -> None:
        item = QListWidgetItem(folder)
        item.setData(Qt.ItemDataRole.UserRole, folder)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked if reference else Qt.CheckState.Unchecked)
        self.list.addItem(item)
