"""Duplicates and similar shots apart: the similar-shots tab, its own slider, never marked; what changed.

A real library: demo copies (exact, brightened, re-encoded, cropped), edited copies made here with PIL (grey,
mirrored), and two real pairs of other shots from tests/data/verify (an exposure pair, two panorama frames).
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from helpers import DATA, DEMO, copy_demo
from PIL import Image, ImageOps
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication, QMenu

from core.selection import RULES, choose
from desktop.group_model import SummaryRole
from desktop.viewer import ViewerDialog

SHOTS = ({"leuven_a.jpg", "leuven_b.jpg"}, {"uttower_a.jpg", "uttower_b.jpg"})
SHOT_FILES = set().union(*SHOTS)


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = copy_demo(
        tmp_path / "lib",
        [
            "Camera/water_drop.jpg",
            "Backup/IMG_0412.jpg",
            "Edited/water_drop_bright.jpg",
            "Camera/dune_grass.jpg",
            "Downloads/dune_grass_q40.jpg",
            "Edited/dune_grass_crop.jpg",
        ],
    )
    im = Image.open(DEMO / "Camera/misty_lake.jpg").convert("RGB")
    (root / "Lake").mkdir()
    im.save(root / "Lake/misty_lake.jpg", quality=92)
    ImageOps.grayscale(im).save(root / "Lake/misty_lake_grey.jpg", quality=90)
    ImageOps.mirror(im).save(root / "Lake/misty_lake_mirrored.jpg", quality=90)
    (root / "Shots").mkdir()
    for name in SHOT_FILES:
        shutil.copy2(DATA / "verify" / name, root / "Shots" / name)
    return root


@pytest.fixture
def window(qtbot, make_window, library):
    w = make_window()
    with qtbot.waitSignal(w.session.scan_finished, timeout=120_000):
        w.open_folders([str(library)])
    return w


def names(model) -> list[set[str]]:
    return [{os.path.basename(r.path) for r in model.records(row)} for row in range(model.rowCount())]


def duplicate_paths(window) -> set[str]:
    m = window.groups_model
    return {r.path for row in range(m.rowCount()) for r in m.records(row)}


def test_similar_shots_sort_by_what_they_hold_not_by_space_freed(qtbot, window):
    # Nothing is freed among similar shots: their menu offered "Most space freed" first (every group frees
    # nothing), and their rows ran out of room before saying how alike the shots are.
    tier, model = window.similar_shots, window.shots_model
    orders = [tier.sort.itemText(k) for k in range(tier.sort.count())]
    assert "Most space freed" not in orders
    assert tier.sort.currentText() == orders[0] == "Most shots first"
    sizes = [len(model.records(row)) for row in range(model.rowCount())]
    assert sizes == sorted(sizes, reverse=True)
    for row in range(model.rowCount()):
        _, detail, _ = model.index(row).data(SummaryRole)
        lowest = min(m.similarity for m in model.group(row).members[1:])
        assert detail == f"{len(model.records(row))} shots · {lowest * 100:.0f} % alike"
    assert window.duplicates.sort.currentText() == "Most space freed"  # the duplicates keep theirs


def test_similar_tab_lists_the_other_shots_and_not_the_copies(qtbot, window):
    dups, shots = names(window.groups_model), names(window.shots_model)
    # Each real other-shot pair is shown together in the similar tab, and nothing else is there.
    for pair in SHOTS:
        assert any(pair <= group for group in shots), pair
    assert set().union(*shots) == SHOT_FILES
    assert not set().union(*dups) & SHOT_FILES  # the other shots are not duplicates
    assert {
        "misty_lake.jpg",
        "misty_lake_grey.jpg",
        "misty_lake_mirrored.jpg",
    } in dups  # the edited copies are
    assert window.tiers.tabText(0) == f"Duplicates ({len(dups)})"
    assert window.tiers.tabText(1) == f"Similar shots ({len(shots)})"

    window.tiers.setCurrentIndex(1)
    assert window.center.currentIndex() == 1
    shown = {os.path.basename(c.rec.path) for c in window.compare.cards}
    assert shown == names(window.shots_model)[window.shots.currentIndex().row()]
    assert "not copies: nothing is selected for removal" in window.group_header.text()
    assert all(c.check.isHidden() and c.difference.isHidden() for c in window.compare.cards)
    assert not window.act_notdup.isEnabled()
    # Back on duplicates, the duplicate group is shown again, mark boxes and all.
    window.tiers.setCurrentIndex(0)
    assert [c.rec.path for c in window.compare.cards] == [
        r.path for r in window.groups_model.records(window.groups.currentIndex().row())
    ]
    assert all(not c.check.isHidden() for c in window.compare.cards)


@pytest.mark.parametrize("rule", list(RULES))
def test_auto_select_never_marks_a_similar_shot(qtbot, window, rule):
    window.auto_actions[rule].trigger()
    marked = window.session.marks.paths
    assert marked, "the duplicate groups have copies to mark"
    assert marked <= duplicate_paths(window)
    assert not {os.path.basename(p) for p in marked} & SHOT_FILES
    # The rule itself, not only the marks' guard, leaves the similar shots alone.
    chosen = choose(window.session.result, rule, window.session.marks.reference)
    assert chosen and chosen <= duplicate_paths(window)


def test_the_similar_tab_offers_nothing_to_remove(qtbot, window):
    # A new user's trial: with copies marked under Duplicates, the Similar shots tab said "nothing is
    # selected for removal" while Auto-select, Move to trash (Del) and Move to folder stayed enabled there,
    # acting on marks it does not show.
    window.auto_actions["resolution"].trigger()
    assert len(window.session.marks)
    removal = [window.act_trash, window.act_move, *window.auto_actions.values()]
    assert all(a.isEnabled() for a in removal)
    window.tiers.setCurrentIndex(1)
    assert "nothing is selected for removal" in window.group_header.text()
    assert not any(a.isEnabled() for a in removal) and not window.auto_button.isEnabled()
    qtbot.keyClick(window.shots, Qt.Key.Key_Delete)
    assert len(window.session.marks) and all(os.path.exists(p) for p in window.session.marks.paths)
    window.tiers.setCurrentIndex(0)
    assert all(a.isEnabled() for a in removal) and window.auto_button.isEnabled()


def test_the_status_line_speaks_of_the_tab_in_front(qtbot, window):
    # A new user's trial: after the similar slider, the Duplicates tab still said "At 60 % strictness: 9
    # groups of similar shots."; and Del on the Similar tab did nothing, without a word.
    window.auto_actions["resolution"].trigger()
    marked = len(window.session.marks)
    window.tiers.setCurrentIndex(1)
    window.similar_shots.strictness_changed.emit(0.7)
    assert "similar shots" in window.status_text.text()
    window.tiers.setCurrentIndex(0)
    assert "similar shots" not in window.status_text.text()
    assert window.status_text.text().startswith(f"{marked} marked")
    window.tiers.setCurrentIndex(1)
    assert "nothing is removed from here" in window.status_text.text()
    assert f"{marked} marked in Duplicates" in window.status_text.text()


def test_the_similar_shots_table_and_rows_show_what_they_hold(qtbot, window):
    # Similar shots free nothing: their table has no Frees column; groups of as many shots come most
    # similar first, and they can be sorted by that alone; a row's name line counts no thumbnails
    from desktop.group_model import COLUMN_KEYS, GroupRole

    tier, model = window.similar_shots, window.shots_model
    assert tier.table.isColumnHidden(COLUMN_KEYS.index("space"))
    assert not window.duplicates.table.isColumnHidden(COLUMN_KEYS.index("space"))
    rows = [
        (len(model.records(r)), min(m.similarity for m in model.group(r).members[1:]))
        for r in range(model.rowCount())
    ]
    assert rows == sorted(rows, reverse=True)
    tier.sort.setCurrentText("Most similar first")
    assert tier.sort.currentText() == "Most similar first"
    sims = [min(m.similarity for m in model.group(r).members[1:]) for r in range(model.rowCount())]
    assert sims == sorted(sims, reverse=True)
    delegate = window.shots.itemDelegate()
    from PySide6.QtWidgets import QStyleOptionViewItem

    option = QStyleOptionViewItem()
    option.font = window.shots.font()
    for r in range(model.rowCount()):
        top, _, _ = delegate.lines(option, model.index(r), 400)
        assert top == os.path.basename(model.records(r)[0].path) and model.index(r).data(GroupRole)


def test_a_similar_shot_cannot_be_marked_by_hand(qtbot, window):
    window.tiers.setCurrentIndex(1)
    card = window.compare.cards[1]
    card.setFocus()
    qtbot.keyClick(card, Qt.Key.Key_Space)
    assert not len(window.session.marks)
    with qtbot.waitSignal(window.session.marks.refused):
        assert not window.session.marks.mark(card.rec.path)
    card.customContextMenuRequested.emit(QPoint(10, 10))
    qtbot.waitUntil(lambda: isinstance(QApplication.activePopupWidget(), QMenu), timeout=5_000)
    menu = QApplication.activePopupWidget()
    texts = [a.text() for a in menu.actions() if not a.isSeparator()]
    menu.close()
    assert {"Find similar", "View full size", "Open", "Show in folder"} <= set(texts)
    assert not [t for t in texts if "mark" in t.lower() or "duplicate" in t.lower()]


def test_similar_slider_regroups_the_shots_only(qtbot, window):
    session = window.session
    dups_before = names(window.groups_model)
    lib = window.session.library
    assert window.shots_strictness.minimum() == round(
        lib.floor * 100
    )  # similar shots reach the library floor
    assert window.strictness.minimum() == round(
        lib.verify_from * 100
    )  # duplicates start where pairs were checked
    assert window.shots_strictness.value() == window.shots_strictness.minimum()
    with qtbot.waitSignal(session.result_changed, timeout=5_000):
        window.shots_strictness.setValue(85)  # leuven's pair is closer (0.93) than the panorama's (0.80)
    assert session.similar_threshold == 0.85
    want = session.library.result(session.threshold, 0.85)
    assert [
        [r.path for r in window.shots_model.records(row)] for row in range(window.shots_model.rowCount())
    ] == [[m.file.path for m in g.members] for g in want.similar_groups]
    assert names(window.shots_model) == [SHOTS[0]]
    assert window.tiers.tabText(1) == "Similar shots (1)"
    assert window.shots_strictness_label.text() == "Strictness 85 %"
    assert names(window.groups_model) == dups_before


def test_the_similar_strictness_is_remembered(qtbot, window, make_window, library):
    with qtbot.waitSignal(window.session.result_changed, timeout=5_000):
        window.shots_strictness.setValue(85)
    window.close()
    again = make_window()  # the same settings file: a restart
    with qtbot.waitSignal(again.session.scan_finished, timeout=120_000):
        again.open_folders([str(library)])
    assert again.shots_strictness.value() == 85
    assert names(again.shots_model) == [SHOTS[0]]


def test_difference_of_two_copies_is_worked_out_off_the_gui_thread(qtbot, window, difference_threads):
    threads = difference_threads
    row = next(r for r, g in enumerate(names(window.groups_model)) if "misty_lake_mirrored.jpg" in g)
    window.select_group(row)
    card = next(c for c in window.compare.cards if c.rec.path.endswith("misty_lake_mirrored.jpg"))
    assert not card.difference.isHidden() and window.compare.cards[0].difference.isHidden()  # not on the best
    card.difference.click()
    dlg = window.findChild(ViewerDialog)
    with qtbot.waitSignal(dlg.difference_shown, timeout=30_000) as blocker:
        pass
    diff = blocker.args[0]
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert diff.same and diff.aligned
    assert dlg.difference_button.isChecked() and not dlg.difference_view.item.pixmap().isNull()
    text = dlg.difference_label.text()
    # a mirrored copy of the whole picture lines up frame to frame, without points to count
    assert text.startswith("Same photo: the whole picture lines up; mirrored"), text
    dlg.close()


def test_two_shots_open_side_by_side_without_a_difference(qtbot, window):
    window.tiers.setCurrentIndex(1)
    dlg = window.open_viewer(window.compare.cards[1].rec.path)
    assert len(dlg.views) == 2 and dlg.difference_button.isHidden()
    dlg.close()


def test_a_shot_marked_as_a_copy_elsewhere_says_so(qtbot, make_window, tmp_path):
    # A capture with a re-encoded copy (a duplicate group) and a look-alike of another subject (a similar
    # group):
    # the copy, marked in Duplicates, is shown as marked in the similar group too, and the header says so.
    root = tmp_path / "lib"
    root.mkdir()
    shutil.copy(DATA / "verify" / "leuven_a.jpg", root / "leuven_a.jpg")
    shutil.copy(DATA / "verify" / "leuven_b.jpg", root / "leuven_b.jpg")  # the same view, another exposure
    Image.open(root / "leuven_a.jpg").save(root / "leuven_a_q40.jpg", quality=40)
    window = make_window()
    with qtbot.waitSignal(window.session.scan_finished, timeout=120_000):
        window.open_folders([str(root)])
    assert names(window.groups_model) == [{"leuven_a.jpg", "leuven_a_q40.jpg"}]
    shots = names(window.shots_model)
    assert shots and "leuven_b.jpg" in shots[0] and shots[0] & {"leuven_a.jpg", "leuven_a_q40.jpg"}
    window.tiers.setCurrentIndex(1)
    assert "nothing is selected for removal" in window.group_header.text()
    # Mark one copy shown here (the duplicate group keeps the other).
    copy_here = next(
        c.rec.path for c in window.compare.cards if os.path.basename(c.rec.path) != "leuven_b.jpg"
    )
    assert window.session.marks.mark(copy_here)
    (marked,) = window.session.marks.paths
    assert (
        "1 of them is marked for removal in Duplicates, as a copy of a photo there"
        in window.group_header.text()
    )
    assert "nothing is selected" not in window.group_header.text()
    for card in window.compare.cards:
        assert card.check.isHidden()
        assert card.elsewhere.isHidden() == (card.rec.path != marked)
