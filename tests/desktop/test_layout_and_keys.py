"""The window at a laptop's width, and the keyboard path through it (groups → cards → actions), from the
review-workflow report: the window could not shrink below 1,195 px with the side panels open, Tab visited
the compare pane and the toolbar before the cards, a focused card looked like any other, and Enter or Space
on the groups list did nothing."""

from __future__ import annotations

import shutil

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

LONG = "holiday_" + "very_long_name_from_a_phone_backup_" * 5  # one word of 180+ characters


def _long_named(photos):
    """Give the first photo of every folder a very long name (as phone backups and messengers make them)."""
    renamed = []
    for folder in sorted({p.parent for p in photos.rglob("*.jpg")}):
        first = sorted(folder.glob("*.jpg"))[0]
        target = first.with_name(LONG + first.name)
        shutil.move(first, target)
        renamed.append(target)
    return renamed


def _activate(qtbot, window):
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)


def test_the_window_shrinks_to_a_laptop_width_with_every_panel_open(qtbot, scanned_window, photos):
    renamed = _long_named(photos)
    window = scanned_window(photos)
    window.similar_dock.show()
    window.problems_dock.show()
    with qtbot.waitSignal(window.session.similar_ready, timeout=60_000):
        window.find_similar(str(renamed[0]))
    window.problems.set_problems(window.session.result.problems)
    window.status_text.setText(f"Could not export: {renamed[0]} is not writable ({LONG})")
    window.banner.show_message(f"Moved 1 copy (1 MB) to {photos / LONG}.")
    window.select_group(0)
    QApplication.processEvents()
    assert window.minimumSizeHint().width() <= 900
    window.resize(900, 700)
    QApplication.processEvents()
    assert window.width() <= 900


def test_tab_goes_from_the_groups_to_each_card_then_to_the_actions(qtbot, scanned_window, photos):
    window = scanned_window(photos)
    _activate(qtbot, window)
    window.select_group(0)
    cards = window.compare.cards
    assert len(cards) >= 2
    window.groups.setFocus()
    visited = []
    for _ in range(len(cards) + 1):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        visited.append(QApplication.focusWidget())
    assert visited[: len(cards)] == cards
    assert visited[-1] is window.auto_button  # then the actions (Auto-select first), not back to the pane


def test_a_focused_card_shows_a_focus_ring(qtbot, scanned_window, photos):
    window = scanned_window(photos)
    _activate(qtbot, window)
    window.select_group(0)
    card = window.compare.cards[1]
    window.groups.setFocus()
    QApplication.processEvents()
    plain = card.grab().toImage()
    card.setFocus()
    qtbot.waitUntil(card.hasFocus)
    QApplication.processEvents()
    focused = card.grab().toImage()
    # the border (the outermost pixels) changes colour when the card has the focus
    edge = [(x, 1) for x in range(0, plain.width(), 3)] + [(1, y) for y in range(0, plain.height(), 3)]
    changed = sum(plain.pixel(x, y) != focused.pixel(x, y) for x, y in edge)
    assert changed > len(edge) // 4


def test_enter_on_the_groups_goes_into_the_group_and_space_selects_the_current_row(
    qtbot, scanned_window, photos
):
    window = scanned_window(photos)
    _activate(qtbot, window)
    window.select_group(0)
    window.groups.setFocus()
    qtbot.keyClick(window.groups, Qt.Key.Key_Return)
    assert QApplication.focusWidget() is window.compare.cards[0]
    # Ctrl+Down moves the current row without selecting it; Space selects it and shows its group.
    window.groups.setFocus()
    qtbot.keyClick(window.groups, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    second = window.groups_model.records(1)
    assert window.groups.currentIndex().row() == 1
    qtbot.keyClick(window.groups, Qt.Key.Key_Space)
    assert window.groups.selectionModel().isRowSelected(1)
    assert [c.rec.path for c in window.compare.cards] == [r.path for r in second]


def test_in_table_mode_tab_and_enter_go_from_the_table_to_the_cards(qtbot, scanned_window, photos):
    window = scanned_window(photos)
    _activate(qtbot, window)
    window.select_group(0)
    window.duplicates.as_table.click()
    table = window.duplicates.table
    table.setFocus()
    qtbot.keyClick(table, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is window.compare.cards[0]
    table.setFocus()
    qtbot.keyClick(table, Qt.Key.Key_Down)
    qtbot.keyClick(table, Qt.Key.Key_Return)
    assert window.groups.currentIndex().row() == 1
    assert QApplication.focusWidget() is window.compare.cards[0]
    assert window.compare.cards[0].rec.path == window.groups_model.records(1)[0].path
