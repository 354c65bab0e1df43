"""Views on their own: 10,000 groups scroll smoothly, problems are listed, export, settings remembered."""

from __future__ import annotations

import csv
import json
import shutil
import time

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from core.results import Group, ImageRecord, Member, ModelInfo, ScanResult


def synthetic_result(n_groups: int, folder) -> ScanResult:
    """A large result over files that do not exist (thumbnails fail fast, as for unreadable files)."""
    files, groups = [], []
    for g in range(n_groups):
        members = []
        for k in range(3):
            files.append(ImageRecord(str(folder / f"g{g}_{k}.jpg"), 1000 + k, 0, 640, 480, "JPEG"))
            members.append(Member(files[-1], 1.0 - k / 100))
        groups.append(Group(tuple(members), exact=False, reclaimable=2001))
    return ScanResult(tuple(files), tuple(groups), (), (), 0.9, ModelInfo("test", "0"))


def test_ten_thousand_groups_scroll_smoothly(qtbot, make_window, tmp_path):
    window = make_window()
    window.resize(1280, 800)
    window.session.result = result = synthetic_result(10_000, tmp_path)
    window._show_result(result)
    view = window.groups
    assert window.groups_model.rowCount() == 10_000
    bar = view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=5_000)
    started = time.perf_counter()
    steps = 100
    for k in range(steps):
        bar.setValue(bar.maximum() * k // (steps - 1))
        view.viewport().repaint()  # paint now, synchronously: what a person would see while scrolling
    per_frame = (time.perf_counter() - started) / steps
    assert per_frame < 0.05, f"{per_frame * 1000:.1f} ms per frame"
    # Only what was on screen asked for thumbnails, not 30,000 files.
    asked = len(window.thumbs._pending) + len(window.thumbs._failed) + len(window.thumbs._cache)
    assert asked < 3 * 4 * 15 * steps // 10


def test_problems_are_listed_not_popped_up(qtbot, make_window, photos, monkeypatch):
    from helpers import DATA

    for name in ("garbage.png", "not_an_image.jpg"):
        shutil.copy(DATA / name, photos / name)
    popped = []
    monkeypatch.setattr(QMessageBox, "exec", lambda self: popped.append(self) or 0)
    window = make_window()
    with qtbot.waitSignal(window.session.scan_finished, timeout=120_000):
        window.open_folders([str(photos)])
    model = window.problems.model_
    listed = {model.index(r, 0).data() for r in range(model.rowCount())}
    assert {str(photos / "garbage.png"), str(photos / "not_an_image.jpg")} <= listed
    assert all(model.index(r, 1).data() for r in range(model.rowCount()))  # each with a reason
    assert window.act_problems.text() == f"Problems ({model.rowCount()})"
    assert not popped


def test_export_csv_and_json_match_the_groups(qtbot, make_window, photos, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    window = make_window()
    with qtbot.waitSignal(window.session.scan_finished, timeout=120_000):
        window.open_folders([str(photos)])
    result = window.session.result
    for name in ("groups.csv", "groups.json"):
        out = tmp_path / name
        monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, o=out, **k: (str(o), ""))
        window.act_export.trigger()
        if name.endswith(".csv"):
            rows = list(csv.DictReader(out.open()))
            assert len({r["group"] for r in rows}) == len(result.groups)
            assert len(rows) == sum(len(g.members) for g in result.groups)
        else:
            data = json.loads(out.read_text())
            assert [[f["path"] for f in g["files"]] for g in data["groups"]] == [
                [m.file.path for m in g.members] for g in result.groups
            ]


def test_folders_references_and_layout_are_remembered(qtbot, make_window, photos, tmp_path):
    window = make_window()
    window.folders.add(str(photos))
    window.folders.set_reference(str(photos), True)
    window.resize(711, 533)  # inside the offscreen platform's 800 × 600 screen
    window.close()
    again = make_window()  # same settings file
    assert again.folders.folders() == [str(photos)]
    assert again.folders.reference() == [str(photos)]
    assert (again.size().width(), again.size().height()) == (711, 533)
    q = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    assert q.value("scan/folders") in ([str(photos)], str(photos))
