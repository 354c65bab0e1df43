"""Take the README screenshots: the real window on the demo folder, light and dark.

    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshots/take_screenshots.py          # light
    QT_QPA_PLATFORM=offscreen .venv/bin/python docs/screenshots/take_screenshots.py --dark   # *-dark.png

Each picture is the window (or dialog) drawn by Qt itself (``QWidget.grab``), so it needs no X server and is
the same on every machine; ``--dark`` applies a dark palette (Breeze Dark's colours) with the Fusion style, as
a dark desktop would. Settings and caches live in a temporary folder, so the "empty" state is a first start.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

HOME = Path(tempfile.mkdtemp(prefix="lookalike-shots-"))
for var in ("XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
    os.environ[var] = str(HOME / var.lower())
REPO = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
DEMO = REPO / "resources" / "demo"
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402
from PySide6.QtCore import QEventLoop, Qt, QTimer  # noqa: E402
from PySide6.QtGui import QColor, QPalette  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from core.engine import Engine  # noqa: E402
from desktop.main_window import MainWindow  # noqa: E402
from desktop.session import Session  # noqa: E402
from desktop.settings import Settings  # noqa: E402

DARK = {
    "Window": "#2a2e32",
    "WindowText": "#fcfcfc",
    "Base": "#1b1e20",
    "AlternateBase": "#232629",
    "Text": "#fcfcfc",
    "Button": "#31363b",
    "ButtonText": "#fcfcfc",
    "Highlight": "#3daee9",
    "HighlightedText": "#fcfcfc",
    "ToolTipBase": "#31363b",
    "ToolTipText": "#fcfcfc",
    "PlaceholderText": "#a1a9b1",
    "Light": "#4d5257",
    "Midlight": "#3b4045",
    "Mid": "#4d5257",
    "Dark": "#191b1d",
    "Shadow": "#101112",
    "Link": "#1d99f3",
    "BrightText": "#ffffff",
}


def dark_palette() -> QPalette:
    p = QPalette()
    for role, colour in DARK.items():
        p.setColor(getattr(QPalette.ColorRole, role), QColor(colour))
    for role in ("WindowText", "Text", "ButtonText"):
        p.setColor(QPalette.ColorGroup.Disabled, getattr(QPalette.ColorRole, role), QColor("#6e7175"))
    return p


class Shooter:
    def __init__(self, suffix: str) -> None:
        self.suffix = suffix

    def __call__(self, name: str, widget: QWidget) -> None:
        png = OUT / f"{name}{self.suffix}.png"
        widget.grab().save(str(png))
        if png.stat().st_size > 280_000:
            # photos fill the window: a 256-colour palette keeps the file small enough for the repository
            with Image.open(png) as im:
                small = im.convert("RGB").quantize(256, dither=Image.Dither.FLOYDSTEINBERG)
            small.save(png, optimize=True)
        print(f"{png.name}: {png.stat().st_size // 1024} KB")


def wait(seconds: float) -> None:
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def settle(window: MainWindow, seconds: float = 2.0) -> None:
    """Let the thumbnails arrive and the window repaint."""
    for _ in range(int(seconds * 10)):
        wait(0.1)
        window.thumbs.wait(2000)


def main() -> None:
    dark = "--dark" in sys.argv
    app = QApplication([sys.argv[0]])
    app.setOrganizationName("Lookalike")
    app.setApplicationName("Lookalike")
    app.setStyle("Fusion")
    if dark:
        app.setPalette(dark_palette())
    shoot = Shooter("-dark" if dark else "")
    session = Session(lambda: Engine(batch_size=4, workers=1))
    window = MainWindow(session, Settings())
    window.resize(1280, 800)
    window.show()
    wait(1.0)
    shoot("empty", window)

    window.open_folders([str(DEMO)])
    while session.busy:
        wait(0.1)
    model = window.groups_model
    biggest = max(range(model.rowCount()), key=lambda r: len(model.records(r)))
    window.select_group(biggest)
    window.session.auto_select("resolution")
    window.compare.cards[1].setFocus()
    settle(window)
    shoot("groups", window)

    sizes = window.splitter.sizes()
    window.splitter.setSizes([700, sum(sizes) - 700])  # room for every column
    window.duplicates.show_table(True)
    window.duplicates.sort.setCurrentText("Least similar first")
    settle(window, 1.0)
    shoot("groups-table", window)
    window.duplicates.show_table(False)
    window.splitter.setSizes(sizes)
    window.duplicates.sort.setCurrentText("Most space freed")

    window.tiers.setCurrentIndex(1)
    settle(window)
    shoot("similar-shots", window)
    window.tiers.setCurrentIndex(0)
    if dark:
        window.close()
        return

    window.select_group(biggest)
    path = window.compare.cards[2].rec.path
    dlg = window.open_viewer(path)
    dlg.resize(1000, 620)
    wait(2.0)
    dlg.fit()
    list(dlg.views.values())[0].zoom_by(2.5)
    wait(0.5)
    shoot("compare", dlg)
    dlg.close()

    # an edit that shows: a copy with a caption added
    edited = next(r.path for k in range(model.rowCount()) for r in model.records(k) if "caption" in r.path)
    if model.records(model.row_of(edited))[0].path == edited:  # the best copy: compare another with it
        edited = model.records(model.row_of(edited))[1].path
    dlg = window.open_viewer(edited, difference=True)
    dlg.resize(1280, 560)
    for _ in range(300):  # worked out in a worker: wait for it (30 s at most)
        if dlg.difference is not None:
            break
        wait(0.1)
    wait(1.0)
    dlg.fit()
    wait(0.3)
    shoot("difference", dlg)
    dlg.close()

    window.session.marks.clear()
    window.find_similar(window.compare.cards[1].rec.path)
    while not window.similar.model.rowCount():
        wait(0.1)
    window.resizeDocks([window.similar_dock], [380], Qt.Orientation.Horizontal)
    settle(window)
    shoot("find-similar", window)
    window.close()


if __name__ == "__main__":
    main()
