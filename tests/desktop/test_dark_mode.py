"""Dark mode on a real dark palette (from the review-workflow report): every label the window shows, with
its own inline colours, keeps a readable contrast (WCAG's 4.5:1) on the dark background, as on the light."""

from __future__ import annotations

import re
import shutil

import pytest
from helpers import DATA, copy_demo
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QLabel

INLINE = re.compile(r"color\s*:\s*(#[0-9a-fA-F]{3,8}|[a-zA-Z]+)")


def dark_palette() -> QPalette:
    """The colours a dark desktop theme hands to Qt (close to Breeze Dark)."""
    p = QPalette()
    roles = QPalette.ColorRole
    for role, colour in (
        (roles.Window, "#2a2e32"),
        (roles.WindowText, "#fcfcfc"),
        (roles.Base, "#1b1e20"),
        (roles.AlternateBase, "#232629"),
        (roles.Text, "#fcfcfc"),
        (roles.Button, "#31363b"),
        (roles.ButtonText, "#fcfcfc"),
        (roles.Highlight, "#3daee9"),
        (roles.HighlightedText, "#fcfcfc"),
        (roles.ToolTipBase, "#31363b"),
        (roles.ToolTipText, "#fcfcfc"),
        (roles.PlaceholderText, "#a1a9b1"),
        (roles.Mid, "#4d5257"),
        (roles.Link, "#1d99f3"),
    ):
        p.setColor(role, QColor(colour))
    return p


def contrast(a: QColor, b: QColor) -> float:
    def lum(c: QColor) -> float:
        def ch(v: float) -> float:
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

        return 0.2126 * ch(c.redF()) + 0.7152 * ch(c.greenF()) + 0.0722 * ch(c.blueF())

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.fixture(params=["light", "dark"])
def palette(request):
    app = QApplication.instance()
    before = app.palette()
    if request.param == "dark":
        app.setPalette(dark_palette())
    yield request.param
    app.setPalette(before)


def _unreadable(window) -> list[str]:
    bad = []
    for label in window.findChildren(QLabel):
        if not label.isVisible() or not label.text():
            continue
        background = label.palette().color(QPalette.ColorRole.Window)
        colours = [QColor(c) for c in INLINE.findall(label.text())]
        colours.append(label.palette().color(label.foregroundRole()))
        for colour in colours:
            if contrast(colour, background) < 4.5:
                bad.append(f"{colour.name()} on {background.name()}: {label.text()[:80]}")
    return bad


def test_every_label_is_readable_on_a_light_and_a_dark_palette(qtbot, make_window, tmp_path, palette):
    root = copy_demo(
        tmp_path / "lib", ["Camera/water_drop.jpg", "Backup/IMG_0412.jpg", "Edited/water_drop_bright.jpg"]
    )
    (root / "Shots").mkdir()
    for name in ("leuven_a.jpg", "leuven_b.jpg"):
        shutil.copy2(DATA / "verify" / name, root / "Shots" / name)
    window = make_window()
    if palette == "dark":
        assert window.palette().color(QPalette.ColorRole.Window).lightness() < 80  # the palette is applied
    with qtbot.waitSignal(window.session.scan_finished, timeout=120_000):
        window.open_folders([str(root)])
    window.select_group(0)
    window.banner.show_message("Moved 1 copy (1 MB) to the trash.", lambda: None)
    assert _unreadable(window) == []
    window.tiers.setCurrentIndex(1)  # the similar shots: a header with a warning colour
    assert window.shots_model.rowCount() >= 1
    assert "color" in window.group_header.text()
    assert _unreadable(window) == []
