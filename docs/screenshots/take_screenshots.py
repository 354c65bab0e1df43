"""Take the README screenshots: the real window on the demo folder under Xvfb, captured with ImageMagick.

    Xvfb :99 -screen 0 1280x800x24 &  DISPLAY=:99 .venv/bin/python docs/screenshots/take_screenshots.py

Settings and caches live in a temporary folder, so the "empty" state is a first start.
"""

from __future__ import annotations

import os
import subprocess
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

from PySide6.QtCore import QEventLoop, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from core.engine import Engine  # noqa: E402
from desktop.main_window import MainWindow  # noqa: E402
from desktop.session import Session  # noqa: E402
from desktop.settings import Settings  # noqa: E402
from desktop.viewer import ViewerDialog  # noqa: E402


def shoot(name: str) -> None:
    png = OUT / f"{name}.png"
    subprocess.run(
        ["import", "-window", "root", "-depth", "8", "-define", "png:compression-level=9", str(png)],
        check=True,
    )
    if png.stat().st_size > 280_000:  # photos fill the screen: a 256-colour palette keeps it small enough
        subprocess.run(
            ["convert", str(png), "-dither", "FloydSteinberg", "-colors", "256", f"png8:{png}"], check=True
        )
    print(f"{png.name}: {png.stat().st_size // 1024} KB")


def wait(app, seconds: float) -> None:
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def main() -> None:
    app = QApplication([sys.argv[0]])
    app.setOrganizationName("Lookalike")
    app.setApplicationName("Lookalike")
    session = Session(lambda: Engine(batch_size=4, workers=1))
    window = MainWindow(session, Settings())
    window.setGeometry(0, 0, 1280, 800)
    window.show()
    wait(app, 1.0)
    shoot("empty")

    shot_scanning = []

    def maybe_shoot(done: int, total: int, message: str) -> None:
        if not shot_scanning and message.startswith("Reading") and total and done >= total // 3:
            shot_scanning.append(1)
            wait(app, 0.3)
            shoot("scanning")

    session.scan_progress.connect(maybe_shoot)
    window.open_folders([str(DEMO)])
    while session.busy:
        wait(app, 0.1)
    rows = window.groups_model.rowCount()
    biggest = max(range(rows), key=lambda r: len(window.groups_model.records(r)))
    window.select_group(biggest)
    window.compare.cards[0].setFocus()
    window.session.auto_select("resolution")
    for _ in range(30):
        wait(app, 0.1)
        window.thumbs.wait(2000)
    shoot("groups")

    path = window.compare.cards[2].rec.path
    window.open_viewer(path)
    dlg = window.findChild(ViewerDialog)
    dlg.setGeometry(190, 110, 900, 560)
    wait(app, 2.0)
    dlg.fit()
    views = list(dlg.views.values())
    views[0].zoom_by(2.5)
    wait(app, 0.5)
    shoot("compare")
    dlg.close()

    window.session.marks.clear()
    with_similar = window.compare.cards[1].rec.path
    window.find_similar(with_similar)
    while not window.similar.model.rowCount():
        wait(app, 0.1)
    window.resizeDocks([window.similar_dock], [380], Qt.Orientation.Horizontal)
    for _ in range(30):
        wait(app, 0.1)
        window.thumbs.wait(2000)
    shoot("find-similar")
    window.close()


if __name__ == "__main__":
    main()
