"""Auto-select, hand marks, trash and undo on real temporary files."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from core.selection import RULES


def trashed_originals() -> list[str]:
    """Original paths of what the trash of the test XDG_DATA_HOME now holds."""
    info = Path(os.environ["XDG_DATA_HOME"]) / "Trash" / "info"
    out = []
    for f in info.glob("*.trashinfo") if info.is_dir() else ():
        for line in f.read_text().splitlines():
            if line.startswith("Path="):
                out.append(unquote(line[5:]))
    return out


@pytest.fixture
def scanned(qtbot, make_window, photos):
    window = make_window()
    with qtbot.waitSignal(window.session.scan_finished, timeout=120_000):
        window.open_folders([str(photos)])
    return window


def group_paths(window) -> list[list[str]]:
    res = window.session.result
    return [[m.file.path for m in g.members] for g in res.groups]


@pytest.mark.parametrize("rule", list(RULES))
def test_auto_select_never_marks_a_whole_group(scanned, rule):
    window = scanned
    # One folder as reference: its files are never marked, whatever the rule.
    camera = os.path.join(window.folders.folders()[0], "Camera")
    window.folders.add(camera)
    window.folders.set_reference(camera, True)
    window.auto_actions[rule].trigger()
    marked = window.session.marks.paths
    groups = group_paths(window)
    assert marked, "each group has copies to mark"
    for paths in groups:
        kept = [p for p in paths if p not in marked]
        assert len(kept) >= 1
        assert len(kept) == 1 or rule == "reference" or any(p.startswith(camera + os.sep) for p in kept)
    assert not any(p.startswith(camera + os.sep) for p in marked)
    assert sum(
        1
        for row in range(window.groups_model.rowCount())
        if window.groups_model.index(row).data(Qt.ItemDataRole.UserRole + 3)
    ) == len(groups)


def test_space_marks_a_card_but_never_the_last_copy(qtbot, scanned):
    window = scanned
    window.center.currentWidget().setFocus()
    cards = window.compare.cards
    for card in cards:
        card.setFocus()
        qtbot.keyClick(card, Qt.Key.Key_Space)
    marked = window.session.marks.paths
    paths = [c.rec.path for c in cards]
    assert [p in marked for p in paths] == [True] * (len(paths) - 1) + [False]
    assert [c.check.isChecked() for c in cards] == [p in marked for p in paths]
    assert "one copy always stays" in window.status_text.text()
    qtbot.keyClick(cards[0], Qt.Key.Key_Space)  # Space again unmarks
    assert paths[0] not in window.session.marks


def test_trash_and_undo_real_files(qtbot, scanned, monkeypatch):
    window = scanned
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.auto_actions["resolution"].trigger()
    marked = sorted(window.session.marks.paths)
    n_groups = len(group_paths(window))
    assert marked and all(os.path.exists(p) for p in marked)
    with qtbot.waitSignal(window.session.scan_finished, timeout=60_000):  # trash, then the instant rescan
        with qtbot.waitSignal(window.session.action_done, timeout=60_000) as done:
            window.act_trash.trigger()
    result = done.args[0]
    assert sorted(result.done) == marked and not result.problems
    assert not any(os.path.exists(p) for p in marked)
    assert set(marked) <= set(trashed_originals())  # in the freedesktop trash under the test XDG_DATA_HOME
    assert window.groups_model.rowCount() == 0  # only the best copies are left: no groups
    with qtbot.waitSignal(window.session.scan_finished, timeout=60_000):
        window.act_undo.trigger()
    assert all(os.path.exists(p) for p in marked)
    assert not set(trashed_originals()) & set(marked)
    assert len(group_paths(window)) == n_groups


def test_undo_is_offered_only_when_there_is_something_to_undo_and_says_what(qtbot, scanned, monkeypatch):
    window = scanned
    assert not window.act_undo.isEnabled()  # a fresh journal: nothing to undo
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.auto_actions["resolution"].trigger()
    n = len(window.session.marks.paths)
    with qtbot.waitSignal(window.session.scan_finished, timeout=60_000):
        window.act_trash.trigger()
    assert window.act_undo.isEnabled()
    assert f"moving {n} files to the trash" in window.act_undo.toolTip()
    with qtbot.waitSignal(window.session.scan_finished, timeout=60_000):
        window.act_undo.trigger()
    assert not window.act_undo.isEnabled()  # undone: the journal has nothing left to put back


def test_move_to_a_folder_and_undo(qtbot, scanned, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QFileDialog

    window = scanned
    dest = tmp_path / "set aside"
    asked = []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(dest))
    monkeypatch.setattr(
        QMessageBox, "question", lambda _p, _t, text, *a: asked.append(text) or QMessageBox.StandardButton.Yes
    )
    first = window.compare.cards[-1].rec
    window.session.marks.mark(first.path)
    with qtbot.waitSignal(window.session.scan_finished, timeout=60_000):
        window.act_move.trigger()
    # the confirmation says count and place
    assert "Move 1 marked copy (" in asked[0] and str(dest) in asked[0]
    assert not os.path.exists(first.path)
    assert (dest / os.path.basename(first.path)).read_bytes()
    with qtbot.waitSignal(window.session.scan_finished, timeout=60_000):
        window.act_undo.trigger()
    assert os.path.exists(first.path) and not (dest / os.path.basename(first.path)).exists()


def test_declining_the_confirmation_changes_nothing(qtbot, scanned, monkeypatch):
    window = scanned
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Cancel)
    window.auto_actions["size"].trigger()
    marked = window.session.marks.paths
    window.act_trash.trigger()
    assert not window.session.busy
    assert all(os.path.exists(p) for p in marked) and window.session.marks.paths == marked


def test_a_stale_result_cannot_trash_the_last_copy(qtbot, scanned, monkeypatch):
    """Trash all but the best copies, the automatic rescan does not happen (cancelled), then mark the best
    copy of the group still shown: the old app trashed it, and the whole group was gone."""
    window = scanned
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    monkeypatch.setattr(window.session, "scan", lambda *a, **k: False)  # the rescan is cancelled
    window.auto_actions["resolution"].trigger()
    groups = group_paths(window)
    with qtbot.waitSignal(window.session.action_done, timeout=60_000):
        window.act_trash.trigger()
    best = groups[0][0]
    assert os.path.exists(best) and not any(os.path.exists(p) for p in groups[0][1:])
    assert window.session.marks.mark(best)  # the stale result still shows the trashed copies as unmarked
    with qtbot.waitSignal(window.session.busy_changed, timeout=60_000, check_params_cb=lambda busy: not busy):
        window.act_trash.trigger()
    assert os.path.exists(best)
    assert best not in trashed_originals()
