"""Find similar from the right-click menu, "Not a duplicate", the viewer, and cancelling a scan."""

from __future__ import annotations

import os

from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QApplication, QMenu

from desktop.similar_pane import PathRole, SimilarityRole
from desktop.viewer import ViewerDialog


def scan(qtbot, window, folder) -> None:
    with qtbot.waitSignal(window.session.scan_finished, timeout=120_000):
        window.open_folders([str(folder)])


def popup_menu(qtbot, card) -> QMenu:
    card.customContextMenuRequested.emit(QPoint(10, 10))
    qtbot.waitUntil(lambda: isinstance(QApplication.activePopupWidget(), QMenu), timeout=5_000)
    return QApplication.activePopupWidget()


def test_find_similar_from_the_context_menu(qtbot, make_window, photos, engine_factory, tmp_path):
    window = make_window()
    scan(qtbot, window, photos)
    card = window.compare.cards[1]
    menu = popup_menu(qtbot, card)
    action = next(a for a in menu.actions() if a.text() == "Find similar")
    with qtbot.waitSignal(window.session.similar_ready, timeout=60_000):
        action.trigger()
    menu.close()
    assert window.similar_dock.isVisible()
    model = window.similar.model
    got = [
        (model.index(r).data(PathRole), model.index(r).data(SimilarityRole)) for r in range(model.rowCount())
    ]
    engine = engine_factory(tmp_path / "cache")
    want = engine.find_similar(engine.scan([photos]), card.rec.path, top=20)
    assert [p for p, _ in got] == [p for p, _ in want]
    sims = [s for _, s in got]
    assert sims == sorted(sims, reverse=True)
    # The other copies of its group rank first.
    group = {c.rec.path for c in window.compare.cards} - {card.rec.path}
    assert {p for p, _ in got[: len(group)]} == group


def test_find_similar_to_an_outside_image_dropped_on_the_pane(qtbot, make_window, photos, tmp_path):
    from drag import drop_paths
    from helpers import DEMO

    window = make_window()
    scan(qtbot, window, photos)
    outside = DEMO / "Camera" / "water_drop.jpg"  # same picture as the first demo group, not in the scan
    with qtbot.waitSignal(window.session.similar_ready, timeout=60_000) as blocker:
        drop_paths(window.similar, outside)
    query, matches = blocker.args
    assert query == str(outside)
    assert os.path.basename(matches[0][0]) in {"water_drop.jpg", "IMG_0412.jpg", "water_drop_bright.jpg"}


def test_not_a_duplicate_is_remembered_across_scans(qtbot, make_window, photos):
    window = make_window()
    scan(qtbot, window, photos)
    n = window.groups_model.rowCount()
    first = [c.rec.path for c in window.compare.cards]
    window.act_notdup.trigger()
    assert window.groups_model.rowCount() == n - 1
    assert all(first != [r.path for r in window.groups_model.records(row)] for row in range(n - 1))
    scan(qtbot, window, photos)  # a new scan reads the decision back from the cache
    assert window.groups_model.rowCount() == n - 1


def test_viewer_compares_two_images_in_step(qtbot, make_window, photos):
    window = make_window()
    scan(qtbot, window, photos)
    window.open_viewer(window.compare.cards[1].rec.path)
    dlg = window.findChild(ViewerDialog)
    qtbot.waitUntil(lambda: all(not v.item.pixmap().isNull() for v in dlg.views.values()), timeout=30_000)
    a, b = dlg.views.values()
    dlg.actual()
    a.zoom_by(2.0)
    ratio = a.item.boundingRect().width() / b.item.boundingRect().width()
    assert abs(b.zoom() - a.zoom() * ratio) < 1e-6
    dlg.close()


def test_cancel_mid_scan_leaves_the_app_usable(qtbot, make_window, photos):
    window = make_window(batch_size=2)  # small batches: the cancel is seen between them
    session = window.session

    def cancel_once_reading(done, total, message):
        if done > 0 and message.startswith("Reading") and not getattr(session, "_test_cancelled", False):
            session._test_cancelled = True
            window.progress.cancel.click()

    session.scan_progress.connect(cancel_once_reading)
    with qtbot.waitSignal(session.scan_cancelled, timeout=120_000):
        window.open_folders([str(photos)])
    assert not session.busy and session.result is None
    assert window.act_scan.isEnabled() and not window.progress.isVisible()
    with qtbot.waitSignal(session.scan_finished, timeout=120_000):
        window.act_scan.trigger()
    assert window.groups_model.rowCount() == 4
    assert 0 < session.library.stats["cached"] < len(session.library.files)  # the first try's work was kept


def test_find_similar_to_an_unreadable_file_says_why_in_the_pane(qtbot, make_window, photos):
    """The worker fails through its ``failed`` signal; the pane says why, and no crash dialog opens."""
    from helpers import DATA

    window = make_window()
    scan(qtbot, window, photos)
    crashes = []
    window.session.failed.connect(lambda *a: crashes.append(a))
    query = str(DATA / "truncated.jpg")
    with qtbot.waitSignal(window.session.similar_failed, timeout=60_000) as blocker:
        window.session.find_similar(query)
    path, message = blocker.args
    assert path == query and message
    assert "Cannot search with" in window.similar.title.text() and window.similar.model.rowCount() == 0
    assert crashes == []


def test_not_a_duplicate_is_written_off_the_gui_thread(qtbot, make_window, photos, monkeypatch):
    import threading

    from core.engine import Engine

    writers = []
    real = Engine.mark_not_duplicate

    def spy(self, pairs):
        writers.append(threading.current_thread())
        return real(self, pairs)

    monkeypatch.setattr(Engine, "mark_not_duplicate", spy)
    window = make_window()
    scan(qtbot, window, photos)
    paths = [c.rec.path for c in window.compare.cards]
    window.act_notdup.trigger()
    qtbot.waitUntil(lambda: bool(writers), timeout=10_000)
    assert writers[0] is not threading.main_thread()
    engine = window.session.engine()
    qtbot.waitUntil(lambda: tuple(sorted(paths[:2])) in engine.not_duplicate_pairs(), timeout=10_000)


def test_undoing_not_a_duplicate_says_so_and_the_group_comes_back(qtbot, make_window, photos):
    # A new user's trial: after the banner's Undo the banner still said the photos would no longer be grouped.
    window = make_window()
    scan(qtbot, window, photos)
    groups = window.groups_model.rowCount()
    paths = sorted(c.rec.path for c in window.compare.cards)
    window.act_notdup.trigger()
    qtbot.waitUntil(lambda: window.groups_model.rowCount() == groups - 1, timeout=20_000)
    assert "no longer be grouped" in window.banner.text.text()
    window.banner.undo_button.click()
    qtbot.waitUntil(lambda: window.groups_model.rowCount() == groups, timeout=20_000)
    assert "no longer" not in window.banner.text.text() and "again" in window.banner.text.text()
    shown = [sorted(r.path for r in window.groups_model.records(row)) for row in range(groups)]
    assert paths in shown
    # news about the groups on screen: gone once another scan starts (it stayed through three, a trial found)
    with qtbot.waitSignal(window.session.scan_finished, timeout=60_000):
        window.session.scan([str(photos)])
    assert not window.banner.isVisible()
