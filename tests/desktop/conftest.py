"""The real window over the real engine and model, on copies of the demo photos in ``tmp_path``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import DEMO, copy_demo


def demo_groups(n: int) -> list[str]:
    """The files (relative to the demo folder) of the first ``n`` duplicate groups of its manifest."""
    manifest = json.loads((DEMO / "MANIFEST.json").read_text())
    return [f for g in manifest["groups"][:n] for f in g]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Four duplicate groups of the demo library (13 files), copied so tests may remove them."""
    return copy_demo(tmp_path / "photos", demo_groups(4))


@pytest.fixture
def make_window(qtbot, tmp_path: Path, engine_factory):
    from PySide6.QtCore import QSettings

    from desktop.main_window import MainWindow
    from desktop.session import Session
    from desktop.settings import Settings

    made = []

    def make(**engine_kw):
        session = Session(
            lambda: engine_factory(tmp_path / "cache", **engine_kw), journal_path=tmp_path / "journal.sqlite3"
        )
        settings = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
        window = MainWindow(session, settings)
        qtbot.addWidget(window)
        window.show()
        made.append(window)
        return window

    yield make
    for w in made:
        w.session.cancel()
        w.session.runner.wait(60_000)
        w.thumbs.stop()
        w.thumbs.wait(60_000)


@pytest.fixture
def scanned_window(qtbot, make_window):
    """A new window that has finished scanning ``folders``."""

    def scan(*folders) -> object:
        window = make_window()
        with qtbot.waitSignal(window.session.scan_finished, timeout=120_000):
            window.open_folders([str(f) for f in folders])
        return window

    return scan


@pytest.fixture
def difference_threads(monkeypatch) -> list:
    """The threads ``core.verify.aligned_difference`` ran on (it runs for real): the GUI thread must not be
    one."""
    import threading

    from core import verify

    threads = []
    real = verify.aligned_difference

    def spy(*args, **kw):
        threads.append(threading.current_thread())
        return real(*args, **kw)

    monkeypatch.setattr(verify, "aligned_difference", spy)
    return threads
