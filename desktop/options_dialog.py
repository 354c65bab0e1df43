"""Scan options: include/exclude patterns and the minimum file size."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLineEdit, QSpinBox, QWidget

from desktop.settings import ScanSettings


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]


class OptionsDialog(QDialog):
    def __init__(self, settings: ScanSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Scan options")
        self.include = QLineEdit(", ".join(settings.include))
        self.include.setPlaceholderText("every image (e.g. *.jpg, IMG_*)")
        self.exclude = QLineEdit(", ".join(settings.exclude))
        self.exclude.setPlaceholderText("nothing (e.g. *thumb*, */cache/*)")
        self.min_size = QSpinBox()
        self.min_size.setRange(0, 1_000_000)
        self.min_size.setSuffix(" KB")
        self.min_size.setValue(settings.min_size_kb)
        for edit in (self.include, self.exclude):  # wide enough for its example, and a little more typing
            edit.setMinimumWidth(edit.fontMetrics().horizontalAdvance(edit.placeholderText() + "MMMMMM"))
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        form.addRow("Include files named", self.include)
        form.addRow("Exclude names or paths", self.exclude)
        form.addRow("Skip files smaller than", self.min_size)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def apply_to(self, settings: ScanSettings) -> None:
        settings.include = _split(self.include.text())
        settings.exclude = _split(self.exclude.text())
        settings.min_size_kb = self.min_size.value()
