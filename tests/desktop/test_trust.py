"""What a careful desktop app owes a user's files (from the review-workflow report): drops never read as a
Move, Delete in the folder list removes the folder (not the marked photos), Undo of an earlier run's action
asks first, and Ctrl+Q quits. Each failed on the old app."""

from __future__ import annotations

import os
import shutil

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox


def _drag_events(folder):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    actions = Qt.DropAction.MoveAction | Qt.DropAction.LinkAction  # the file manager proposes a Move
    pos = QPointF(20, 20)
    enter = QDragEnterEvent(  # a QPoint before PySide6 6.12, a QPointF from it
        pos.toPoint(), actions, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier
    )
    drop = QDropEvent(pos, actions, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    return enter, drop, mime  # the events do not own the mime data: keep it alive


def test_a_drop_is_never_accepted_as_a_move(qtbot, make_window, photos):
    """A file manager that proposes Move may delete the source once the drop is accepted as a Move."""
    window = make_window()
    enter, drop, _mime = _drag_events(photos)
    assert enter.proposedAction() == Qt.DropAction.MoveAction
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted() and enter.dropAction() == Qt.DropAction.LinkAction
    with qtbot.waitSignal(window.session.scan_finished, timeout=120_000):
        QApplication.sendEvent(window, drop)
    assert drop.isAccepted() and drop.dropAction() == Qt.DropAction.LinkAction
    assert str(photos) in window.folders.folders()


def test_delete_in_the_folder_list_removes_the_folder_not_the_marked_copies(
    qtbot, scanned_window, photos, monkeypatch
):
    asked = []
    monkeypatch.setattr(
        QMessageBox, "question", lambda *a, **k: asked.append(a) or QMessageBox.StandardButton.Yes
    )
    window = scanned_window(photos)
    window.auto_actions["resolution"].trigger()
    marked = set(window.session.marks.paths)
    assert marked
    window.folders.list.setCurrentRow(0)
    window.folders.list.setFocus()
    qtbot.keyClick(window.folders.list, Qt.Key.Key_Delete)
    assert window.folders.folders() == []
    assert not asked and not window.session.busy  # no "move to the trash?" question, no action started
    assert all(os.path.exists(p) for p in marked)


def test_undo_of_an_earlier_runs_action_says_what_and_asks(qtbot, make_window, photos, monkeypatch):
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    first = make_window()
    with qtbot.waitSignal(first.session.scan_finished, timeout=120_000):
        first.open_folders([str(photos)])
    first.auto_actions["resolution"].trigger()
    marked = sorted(first.session.marks.paths)
    with qtbot.waitSignal(first.session.scan_finished, timeout=60_000):
        first.act_trash.trigger()
    assert not any(os.path.exists(p) for p in marked)
    assert first.session.last_action_is_this_runs()  # this run's own action: Undo needs no question
    first.close()

    later = make_window()  # a new start of the app, the same journal
    questions = []

    def decline(_parent, title, text, *a, **k):
        questions.append((title, text))
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "question", decline)
    later.act_undo.trigger()
    assert len(questions) == 1
    title, text = questions[0]
    assert "earlier" in title.lower() and f"moving {len(marked)} files to the trash" in text
    assert not later.session.busy and not any(os.path.exists(p) for p in marked)  # declined: nothing moved


def test_ctrl_q_quits(qtbot, make_window):
    window = make_window()
    assert window.act_quit.shortcut().toString() == "Ctrl+Q"
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5_000)
    qtbot.keyClick(window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    assert not window.isVisible()


def test_marks_survive_a_strictness_change(qtbot, scanned_window, photos):
    """Mark a copy, slider to 99 %, back: the mark was gone while the status bar still counted it."""
    window = scanned_window(photos)
    start = window.strictness.value()
    lib = window.session.library
    loose = lib.result(start / 100)
    strict = lib.result(0.99)
    in_strict = {m.file.path for g in strict.groups for m in g.members}
    group = next(g for g in loose.groups if any(m.file.path not in in_strict for m in g.members))
    copy = next(m.file.path for m in group.members[1:] if m.file.path not in in_strict)
    assert window.session.marks.mark(copy)
    with qtbot.waitSignal(window.session.result_changed, timeout=5_000):
        window.strictness.setValue(99)
    assert copy not in window.session.marks and len(window.session.marks) == 0  # hidden, and not counted
    assert "1 marked" not in window.status_text.text()
    with qtbot.waitSignal(window.session.result_changed, timeout=5_000):
        window.strictness.setValue(start)
    assert copy in window.session.marks  # back with its group
    assert window.act_trash.isEnabled()


def test_export_writes_the_chosen_format_and_the_persons_own_keep_column(
    qtbot, scanned_window, photos, tmp_path, monkeypatch
):
    import csv
    import json

    from PySide6.QtWidgets import QFileDialog

    window = scanned_window(photos)
    result = window.session.result
    first = result.groups[0]
    best = first.members[0].file.path
    other = first.members[1].file.path
    assert window.session.marks.mark(best)  # the person keeps another copy than the engine's best
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "report"), "JSON (*.json)")
    )
    window.export()
    data = json.loads((tmp_path / "report.json").read_text())  # JSON, under a .json name
    assert len(data["groups"]) == len(result.groups)
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "rows"), "CSV (*.csv)")
    )
    window.export()
    rows = {r["path"]: r["keep"] for r in csv.DictReader(open(tmp_path / "rows.csv"))}
    assert rows[best] == "False" and rows[other] == "True"


def test_removing_a_folder_takes_its_photos_out_of_the_groups(qtbot, scanned_window, tmp_path):
    from helpers import copy_demo

    root = copy_demo(tmp_path / "a", ["Camera/forest_path.jpg", "Backup/forest_path.jpg"])
    other = copy_demo(tmp_path / "b", ["Camera/kite_sky.jpg", "Downloads/kite_sky_small.jpg"])
    window = scanned_window(root, other)
    assert len(window.session.result.groups) == 2
    row = window.folders.folders().index(str(other))
    window.folders.list.setCurrentRow(row)
    with qtbot.waitSignal(window.session.scan_finished, timeout=60_000):
        window.folders.remove_selected()
    paths = {m.file.path for g in window.session.result.groups for m in g.members}
    assert paths and not any(p.startswith(str(other)) for p in paths)
    window.auto_actions["resolution"].trigger()
    assert not any(p.startswith(str(other)) for p in window.session.marks.paths)
    window.folders.list.setCurrentRow(0)
    window.folders.remove_selected()  # the last folder: nothing left to show
    assert window.session.result is None and window.groups_model.rowCount() == 0


def test_a_move_target_inside_a_scanned_folder_is_refused(qtbot, scanned_window, photos, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    warned = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: warned.append(a))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    inside = photos / "set aside"
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(inside))
    window = scanned_window(photos)
    window.auto_actions["resolution"].trigger()
    marked = set(window.session.marks.paths)
    window.act_move.trigger()
    assert warned and "inside a folder being scanned" in warned[0][2]
    assert not window.session.busy and all(os.path.exists(p) for p in marked) and not inside.exists()


def test_not_a_duplicate_is_not_offered_for_identical_files_and_ticks_redraw_the_cards(
    qtbot, scanned_window, tmp_path
):
    from helpers import copy_demo

    root = copy_demo(tmp_path / "lib", ["Camera/forest_path.jpg", "Backup/forest_path.jpg"])
    window = scanned_window(root)
    (group,) = window.session.result.groups
    assert group.exact
    window.groups.setCurrentIndex(window.groups_model.index(0))
    assert not window.act_notdup.isEnabled()
    camera = str(root / "Camera")
    window.folders.add(camera)
    window.folders.set_reference(camera, True)  # a tick: the card's tag must follow at once
    from PySide6.QtWidgets import QLabel

    card = next(c for c in window.compare.cards if c.rec.path.startswith(camera + os.sep))
    assert any("reference folder" in label.text() for label in card.findChildren(QLabel))


def test_the_result_of_an_action_stays_in_a_banner_with_undo(qtbot, scanned_window, photos, monkeypatch):
    """ "trash: 21 files" was replaced at once by the automatic rescan's text."""
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window = scanned_window(photos)
    window.auto_actions["resolution"].trigger()
    marked = sorted(window.session.marks.paths)
    with qtbot.waitSignal(window.session.scan_finished, timeout=60_000):  # the action, then the rescan
        window.act_trash.trigger()
    assert window.banner.isVisible()
    assert (
        window.banner.text.text().startswith(f"Moved {len(marked)} copies (")
        and "to the trash" in window.banner.text.text()
    )
    assert window.banner.undo_button.isVisible()
    assert window.center.currentIndex() == 0  # every group dealt with: not "try a lower strictness"
    assert "No duplicates left" in window.empty.text()
    with qtbot.waitSignal(window.session.scan_finished, timeout=60_000):
        window.banner.undo_button.click()  # this run's action: no question
    assert all(os.path.exists(p) for p in marked)
    assert window.banner.text.text() == f"Put back {len(marked)} files where they were."
    assert not window.banner.undo_button.isVisible()


def test_not_a_duplicate_can_be_undone_and_listed(qtbot, scanned_window, tmp_path, monkeypatch):
    """'Not a duplicate' could not be undone and there was no list of ignored pairs."""
    from helpers import copy_demo

    from desktop.ignored_dialog import IgnoredPairsDialog

    root = copy_demo(tmp_path / "lib", ["Camera/kite_sky.jpg", "Downloads/kite_sky_small.jpg"])
    window = scanned_window(root)
    assert window.groups_model.rowCount() == 1
    window.groups.setCurrentIndex(window.groups_model.index(0))
    window.act_notdup.trigger()
    assert window.groups_model.rowCount() == 0
    assert window.banner.isVisible() and window.banner.undo_button.isVisible()
    window.banner.undo_button.click()
    assert window.groups_model.rowCount() == 1  # grouped again at once
    window.groups.setCurrentIndex(window.groups_model.index(0))
    window.act_notdup.trigger()
    dialog = IgnoredPairsDialog(window.session, window)
    assert dialog.list.count() == 1
    dialog.list.item(0).setSelected(True)
    dialog.forget.click()
    assert dialog.list.count() == 0 and window.groups_model.rowCount() == 1
    # and a new start of the app still knows nothing is ignored (the cache forgot the pair too)
    assert window.session.ignored_pairs() == []


def test_a_menu_bar_with_quit_preferences_shortcuts_and_about(qtbot, make_window, monkeypatch):
    window = make_window()
    titles = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert titles == ["File", "Edit", "View", "Help"]
    everything = {a.text() for m in window.menuBar().actions() for a in m.menu().actions()}
    assert {
        "Quit",
        "Preferences…",
        "Keyboard shortcuts",
        "About Lookalike",
        "Not-a-duplicate pairs…",
    } <= everything
    shown = []
    monkeypatch.setattr(QMessageBox, "information", lambda _p, title, text: shown.append(text))
    monkeypatch.setattr(QMessageBox, "about", lambda _p, title, text: shown.append(text))
    window.act_shortcuts.trigger()
    window.act_about.trigger()
    assert "Ctrl+Q" in shown[0] and "Del" in shown[0]
    assert window.session.engine().bundle.name in shown[1]


def test_the_percentage_on_the_slider_is_the_threshold_in_use(qtbot, scanned_window, photos):
    """'89 %' meant two thresholds: the default 0.8858 showed as 89 % and moving back gave 0.89."""
    window = scanned_window(photos)
    shown = window.strictness.value()
    assert window.session.result.threshold == shown / 100
    with qtbot.waitSignal(window.session.result_changed, timeout=5_000):
        window.strictness.setValue(shown + 5)
    with qtbot.waitSignal(window.session.result_changed, timeout=5_000):
        window.strictness.setValue(shown)
    assert window.session.result.threshold == shown / 100


def test_the_last_results_come_back_at_start_from_the_cache(qtbot, make_window, photos):
    first = make_window()
    with qtbot.waitSignal(first.session.scan_finished, timeout=120_000):
        first.open_folders([str(photos)])
    want = [[r.path for r in first.groups_model.records(k)] for k in range(first.groups_model.rowCount())]
    assert want
    first.close()
    again = make_window()  # a restart: the same settings, journal and cache
    assert again.groups_model.rowCount() == 0
    with qtbot.waitSignal(again.session.scan_finished, timeout=120_000):
        assert again.restore_last()
    got = [[r.path for r in again.groups_model.records(k)] for k in range(again.groups_model.rowCount())]
    assert got == want
    stats = again.session.library.stats
    files = sum(1 for p in photos.rglob("*") if p.is_file())
    assert stats["cached"] == stats["found"] == files  # every file from the cache: nothing embedded again


def test_nothing_is_restored_before_a_first_scan(qtbot, make_window, photos):
    window = make_window()
    window.add_folders([str(photos)], scan=False)
    window.close()
    again = make_window()
    assert again.folders.folders() == [str(photos)]
    assert not again.restore_last() and not again.session.busy


def test_a_folder_from_the_command_line_is_added_to_the_saved_ones(qtbot, make_window, photos, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    first = make_window()
    first.add_folders([str(photos)], scan=False)
    first.folders.set_reference(str(photos), True)
    first.close()
    again = make_window()
    with qtbot.waitSignal(again.session.scan_finished, timeout=120_000):
        again.open_folders([str(other)])  # what `lookalike-gui OTHER` does
    assert again.folders.folders() == [str(photos), str(other)]
    assert again.folders.reference() == [str(photos)]
    assert again.session.folders == [str(photos), str(other)]


def test_problems_can_be_opened_shown_and_trashed_with_undo(qtbot, make_window, photos, monkeypatch):
    from helpers import DATA

    broken = photos / "Camera" / "broken.jpg"
    shutil.copy2(DATA / "truncated.jpg", broken)
    shutil.copy2(DATA / "zero.jpg", photos / "Camera" / "empty.jpg")
    window = make_window()
    with qtbot.waitSignal(window.session.scan_finished, timeout=120_000):
        window.open_folders([str(photos)])
    listed = [p.path for p in window.problems.model().problems]
    assert str(broken) in listed
    marked_before = set(window.session.marks.paths)
    window.auto_actions["resolution"].trigger()
    marked = set(window.session.marks.paths)
    assert marked and marked != marked_before
    menu = window.problem_menu([str(broken)])
    texts = [a.text() for a in menu.actions()]
    assert "Open" in texts and "Show in folder" in texts
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(window.session.scan_finished, timeout=120_000):  # moved, then the rescan
        menu.findChild(QAction, "trash_problems").trigger()
    assert not broken.exists()
    assert set(window.session.marks.paths) == marked  # the person's marks are not touched
    assert str(broken) not in [p.path for p in window.problems.model().problems]
    assert "trash" in window.banner.text.text() and window.banner.undo_button.isVisible()
    with qtbot.waitSignal(window.session.action_done, timeout=60_000):
        window.banner.undo_button.click()
    assert broken.exists() and broken.read_bytes() == (DATA / "truncated.jpg").read_bytes()


def test_one_file_is_said_in_the_singular():
    # A second trial: "Put back 1 file where they were", and a dialog asking to move "1 marked copies".
    from core.actions import ActionResult
    from desktop.banner import describe

    assert describe(ActionResult(7, "undo trash", ("/p/a.jpg",), ())) == "Put back 1 file where it was."
    one = describe(ActionResult(7, "trash", ("/p/a.jpg",), (), 2048))
    assert one == "Moved 1 copy (2.0 KB) to the trash."
    two = describe(ActionResult(7, "undo trash", ("/p/a.jpg", "/p/b.jpg"), ()))
    assert two == "Put back 2 files where they were."
