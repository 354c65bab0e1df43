"""Drop a folder on the window, scan with the real engine, and see the engine's groups."""

from __future__ import annotations

from drag import drop_paths

from desktop.group_model import RecordsRole


def shown_groups(window) -> list[list[str]]:
    model = window.groups_model
    return [[r.path for r in model.index(row).data(RecordsRole)] for row in range(model.rowCount())]


def test_dropped_folder_is_scanned_and_groups_match_the_engine(
    qtbot, make_window, photos, engine_factory, tmp_path
):
    window = make_window()
    with qtbot.waitSignal(window.session.scan_finished, timeout=120_000):
        drop_paths(window, photos)
    assert window.folders.folders() == [str(photos)]
    threshold = window.session.threshold
    expected = engine_factory(tmp_path / "cache").scan([photos]).result(threshold)  # from the cache
    want = [[m.file.path for m in g.members] for g in expected.groups]
    assert shown_groups(window) == want
    assert len(want) == 4  # the four demo groups that were copied
    # The comparison pane shows the selected group side by side.
    assert [c.rec.path for c in window.compare.cards] == want[0]
    assert window.center.currentIndex() == 1


def test_strictness_slider_regroups_live(qtbot, make_window, tmp_path, engine_factory):
    from helpers import copy_demo

    # Every demo photo. Duplicates are verified pairs only, so a loose threshold no longer merges unrelated
    # photos; the strictest step, though, leaves out the looser copies (crops, re-encodes).
    photos = copy_demo(tmp_path / "all")
    window = make_window()
    with qtbot.waitSignal(window.session.scan_finished, timeout=120_000):
        window.open_folders([str(photos)])
    lib = window.session.library
    before = shown_groups(window)
    loose = window.strictness.minimum() / 100
    # The lowest 1 % step at or above what duplicates can be: the cosine the scan verified pairs from.
    assert lib.verify_from <= loose < lib.verify_from + 0.01
    with qtbot.waitSignal(window.session.result_changed, timeout=5_000):
        window.strictness.setValue(window.strictness.maximum())
    after = shown_groups(window)
    want = lib.result(window.strictness.maximum() / 100)
    assert after == [[m.file.path for m in g.members] for g in want.groups]
    assert after != before
    assert sum(map(len, after)) < sum(map(len, before))
    assert window.strictness_label.text().endswith(f"{window.strictness.maximum()} %")
    # the status counts what is shown now, not what the scan found (a trial: "1 group", "Duplicates (0)")
    qtbot.waitUntil(lambda: window.status_text.text().startswith(f"At {window.strictness.maximum()} %"))
    assert f"{len(want.groups)} group" in window.status_text.text()


def test_keyboard_moves_between_groups_and_into_the_cards(qtbot, make_window, photos):
    from PySide6.QtCore import Qt

    window = make_window()
    with qtbot.waitSignal(window.session.scan_finished, timeout=120_000):
        window.open_folders([str(photos)])
    groups = shown_groups(window)
    window.groups.setFocus()
    qtbot.keyClick(window.groups, Qt.Key.Key_Down)
    assert [c.rec.path for c in window.compare.cards] == groups[1]
    qtbot.keyClick(window.groups, Qt.Key.Key_End)
    assert [c.rec.path for c in window.compare.cards] == groups[-1]
    cards = window.compare.cards
    window.activateWindow()
    qtbot.waitUntil(lambda: cards[0].isVisible(), timeout=5_000)
    cards[0].setFocus()
    qtbot.waitUntil(cards[0].hasFocus, timeout=5_000)
    qtbot.keyClick(cards[0], Qt.Key.Key_Right)
    assert cards[1].hasFocus()
    qtbot.keyClick(cards[1], Qt.Key.Key_Space)
    assert cards[1].rec.path in window.session.marks


def test_the_first_grouping_is_made_in_the_scan_worker_not_on_the_gui_thread(qtbot, make_window, monkeypatch):
    """Grouping 2,100 photos took 49 ms of a 134 ms freeze when the result arrived: it is done in the worker,
    and the GUI thread groups again only when the strictness moved during the scan."""
    import threading

    from helpers import DEMO

    from core.engine import Library

    threads = []
    real = Library.result

    def recording(self, *args, **kw):
        threads.append(threading.current_thread() is threading.main_thread())
        return real(self, *args, **kw)

    monkeypatch.setattr(Library, "result", recording)
    window = make_window()
    with qtbot.waitSignal(window.session.scan_finished, timeout=120_000):
        window.open_folders([str(DEMO)])
    assert threads == [False]  # once, in the worker
    assert window.session.result.groups  # and shown


def test_the_status_counts_the_photos_read_and_the_files_that_could_not_be(qtbot, make_window, tmp_path):
    # A new user's trial: 36 files, 4 unreadable, read "Scanned 35 photos", and "1 groups of duplicates".
    import shutil

    from helpers import DATA, copy_demo

    folder = copy_demo(
        tmp_path / "few", ["Camera/forest_path.jpg", "Backup/forest_path.jpg", "Camera/kite_sky.jpg"]
    )
    shutil.copy(DATA / "truncated.jpg", folder / "broken.jpg")
    (folder / "empty.jpg").write_bytes(b"")
    window = make_window()
    messages = []
    window.session.message.connect(messages.append)
    with qtbot.waitSignal(window.session.scan_finished, timeout=120_000):
        drop_paths(window, folder)
    qtbot.waitUntil(lambda: any(m.startswith("Scanned") for m in messages))
    (line,) = [m for m in messages if m.startswith("Scanned")]
    assert line.startswith(
        "Scanned 3 photos (0 from the cache, 2 files could not be read): 1 group of duplicates"
    )
