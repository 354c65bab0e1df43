"""A results list that scales (from the review-workflow report): rows name the photo, its folder and how
alike the group is; the groups sort and filter; a table shows 10,000 groups with uniform rows; long names end
in an ellipsis; a group has *files* and its *copies* are the ones beyond the best; the card with the better
facts says so."""

from __future__ import annotations

import os
import shutil

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHeaderView, QStyleOptionViewItem

from core.results import Group, ImageRecord, Member, ModelInfo, ScanResult
from desktop.compare_pane import better_facts
from desktop.group_model import COLUMN_KEYS, SORTS, RecordsRole, SummaryRole


def _rows(model) -> list[list[str]]:
    return [[r.path for r in model.index(row).data(RecordsRole)] for row in range(model.rowCount())]


def test_rows_name_the_photo_its_folder_and_how_alike(qtbot, scanned_window, photos):
    window = scanned_window(photos)
    model = window.groups_model
    assert model.rowCount() >= 3
    for row in range(model.rowCount()):
        records = model.records(row)
        group = model.group(row)
        name, detail, folder = model.index(row).data(SummaryRole)
        assert name == os.path.basename(records[0].path)
        assert folder.startswith(records[0].folder)
        # a group of n files frees the space of its n - 1 copies, and says how alike they are
        assert detail.startswith(f"{len(records)} files · frees ")
        lowest = min(m.similarity for m in group.members[1:])
        assert ("identical" in detail) if group.exact else (f"{lowest * 100:.0f} % alike" in detail)
    window.select_group(0)
    n = len(model.records(0)) - 1
    assert f"{n + 1} files" in window.group_header.text()
    assert f"the {n} {'copy' if n == 1 else 'copies'} beside the best" in window.group_header.text()


def test_the_groups_sort_by_each_order_and_the_current_group_stays(qtbot, scanned_window, photos):
    window = scanned_window(photos)
    tier, model = window.duplicates, window.groups_model
    window.select_group(1)
    current = model.group(1)

    def key(row, what):
        recs, group = model.records(row), model.group(row)
        return {
            "space": group.reclaimable,
            "similarity": 1.0 if group.exact else min(m.similarity for m in group.members[1:]),
            "date": recs[0].taken or recs[0].mtime_ns,
            "folder": recs[0].folder.lower(),
        }[what]

    for text, (what, descending) in SORTS.items():
        tier.sort.setCurrentText(text)
        keys = [key(row, what) for row in range(model.rowCount())]
        if what != "date" or all(model.records(r)[0].taken for r in range(model.rowCount())):
            assert keys == sorted(keys, reverse=descending), text
        assert model.group(window.groups.currentIndex().row()) is current  # still the one being looked at
        assert window.compare.cards[0].rec.path == model.records(window.groups.currentIndex().row())[0].path
    # a click on the table's header sorts the same model, and the menu follows when it names that order
    tier.show_table(True)
    tier.table.horizontalHeader().setSortIndicator(COLUMN_KEYS.index("space"), Qt.SortOrder.DescendingOrder)
    assert tier.sort.currentText() == "Most space freed"
    assert [model.group(r).reclaimable for r in range(model.rowCount())] == sorted(
        (model.group(r).reclaimable for r in range(model.rowCount())), reverse=True
    )


def test_the_filter_keeps_the_groups_with_a_matching_file(qtbot, scanned_window, photos):
    window = scanned_window(photos)
    tier, model = window.duplicates, window.groups_model
    everything = _rows(model)
    target = everything[2][1]  # a copy's name, not the best one's
    tier.search.setText(os.path.basename(target).upper())  # any case
    assert _rows(model) == [g for g in everything if any(os.path.basename(target) in p for p in g)]
    assert [c.rec.path for c in window.compare.cards] == _rows(model)[0]  # the match is shown at once
    tier.search.setText("no such photo anywhere")
    assert model.rowCount() == 0 and window.compare.cards == []
    tier.search.clear()
    assert _rows(model) == everything


def _synthetic(n: int, root) -> ScanResult:
    """``n`` groups of two records each (paths under ``root``; the files need not exist for the list)."""
    files, groups = [], []
    for k in range(n):
        for j in range(2):
            files.append(
                ImageRecord(
                    path=str(root / f"folder{k % 97:02d}" / f"photo_{k:05d}_{j}.jpg"),
                    size=100_000 + (k * 7919) % 50_000 + j,
                    mtime_ns=1_600_000_000_000_000_000 + k * 1_000_000_000,
                    width=1000,
                    height=800,
                    format="JPEG",
                )
            )
        sim = 0.90 + (k * 31 % 97) / 1000
        groups.append(
            Group(
                members=(Member(files[2 * k], 1.0), Member(files[2 * k + 1], sim)),
                exact=False,
                reclaimable=files[-1].size,
            )
        )
    groups.sort(key=lambda g: -g.reclaimable)
    return ScanResult(tuple(files), tuple(groups), (), (), 0.9, ModelInfo("test", "0"))


def test_ten_thousand_groups_in_a_table_with_uniform_rows(qtbot, make_window, tmp_path):
    window = make_window()
    tier, model = window.duplicates, window.groups_model
    tier.show_result(_synthetic(10_000, tmp_path), "10,000 groups", 0.8, 0.9)
    tier.show_table(True)
    table = tier.table
    assert model.rowCount() == 10_000 and tier.stack.currentWidget() is table
    assert table.verticalHeader().sectionResizeMode(0) == QHeaderView.ResizeMode.Fixed
    assert tier.view.uniformItemSizes()
    table.sortByColumn(COLUMN_KEYS.index("similarity"), Qt.SortOrder.AscendingOrder)
    sims = [model.group(r).members[1].similarity for r in range(model.rowCount())]
    assert sims == sorted(sims)
    assert tier.sort.currentText() == "Least similar first"
    table.selectRow(5_000)
    chosen = model.group(5_000)
    assert model.group(tier.view.currentIndex().row()) is chosen  # the list and the table share the current
    tier.search.setText("photo_04242_")
    assert model.rowCount() == 1 and model.group(0).members[0].file is model.group(0).files[0]
    assert model.group(0).members[0].file.path.endswith("photo_04242_0.jpg")


def test_a_long_name_ends_in_an_ellipsis(qtbot, scanned_window, photos):
    first = sorted((photos / "Camera").glob("*.jpg"))[0]
    long = first.with_name("a_very_long_file_name_from_a_phone_backup_" * 4 + first.name)
    shutil.move(first, long)
    window = scanned_window(photos)
    model = window.groups_model
    row = model.row_of(str(long))
    assert row is not None
    index = model.index(row)
    delegate = window.groups.itemDelegate()
    option = QStyleOptionViewItem()
    option.font = window.groups.font()
    top, _, _ = delegate.lines(option, index, 200)
    assert top.endswith("…") and option.fontMetrics.horizontalAdvance(top) <= 220
    window.select_group(model.row_of(str(long)))
    card = window.compare.card(str(long))
    assert card.title.text().endswith("…") and card.title.toolTip() == str(long)


def test_the_card_with_the_better_facts_says_so(qtbot, scanned_window, photos):
    window = scanned_window(photos)
    model = window.groups_model
    for row in range(model.rowCount()):
        records = model.records(row)
        window.select_group(row)
        better = better_facts(records)
        pixels = [r.pixels for r in records]
        if len(set(pixels)) > 1:
            assert [("Resolution" in b) for b in better] == [p == max(pixels) for p in pixels]
        sizes = [r.size for r in records]
        if len(set(sizes)) > 1:
            assert [("Size" in b) for b in better] == [s == max(sizes) for s in sizes]
        for card, facts in zip(window.compare.cards, better, strict=True):
            for fact, label in card.facts.items():
                assert ("<b>" in label.text()) == (fact in facts), (fact, card.rec.path)
    assert any(better_facts(model.records(r)) != [frozenset()] * 2 for r in range(model.rowCount()))


def test_the_table_selects_the_whole_row_of_the_group_shown(qtbot, scanned_window, photos):
    window = scanned_window(photos)
    window.select_group(1)
    window.duplicates.show_table(True)
    table = window.duplicates.table
    selected = {i.column() for i in table.selectionModel().selectedIndexes() if i.row() == 1}
    assert selected == set(range(window.groups_model.columnCount()))


def test_the_table_keeps_the_end_of_a_long_folder_and_the_start_of_a_long_name(qtbot, make_window, tmp_path):
    from PySide6.QtWidgets import QStyleOptionViewItem

    window = make_window()
    tier, model = window.duplicates, window.groups_model
    tier.show_result(_synthetic(3, tmp_path), "3 groups", 0.8, 0.9)
    tier.show_table(True)
    table = tier.table

    def elide_mode(column: int) -> Qt.TextElideMode:
        option = QStyleOptionViewItem()
        option.textElideMode = table.textElideMode()
        delegate = table.itemDelegateForColumn(column) or table.itemDelegate()
        delegate.initStyleOption(option, model.index(0, column))
        return option.textElideMode

    # /home/me/Pictures/2019/…/Holiday: the folder that tells copies apart is at the end of the path
    assert elide_mode(COLUMN_KEYS.index("folder")) == Qt.TextElideMode.ElideMiddle
    assert elide_mode(COLUMN_KEYS.index("name")) == Qt.TextElideMode.ElideRight


def test_an_enlarged_export_gets_no_tick_for_its_resolution():
    # A new user's trial: the upscaled export had two ticks (Resolution, Size) against the original's one,
    # nudging people to keep it. Pixels past what the camera recorded are not more photo.
    from core.results import ImageRecord

    sig = "time=2021:06:05 07:41:12;pixels=1600x1067"
    original = ImageRecord("/p/IMG_1.jpg", 107_808, 1, 1600, 1067, "JPEG", "2021-06-05 07:41:12", sig)
    export = ImageRecord("/p/IMG_1_big.jpg", 426_794, 1, 2400, 1601, "JPEG", "2021-06-05 07:41:12", sig)
    assert export.upscaled and not original.upscaled
    assert better_facts([original, export]) == [frozenset({"Resolution"}), frozenset({"Size"})]


def test_the_tables_dates_are_whole_and_of_one_format(qtbot, scanned_window, photos):
    # A new user's trial: the table cut a camera date short ("2019-07-14 10:27…"), and dates read from EXIF
    # carried seconds while file dates did not.
    from desktop.formatting import taken_or_modified

    window = scanned_window(photos)
    tier, model = window.duplicates, window.groups_model
    tier.show_table(True)
    table, column = tier.table, COLUMN_KEYS.index("date")
    texts = [model.index(row, column).data() for row in range(model.rowCount())]
    assert any(model.records(row)[0].taken for row in range(model.rowCount()))
    assert all(len(t) == len("2019-07-14 10:27:00") for t in texts), texts
    room = table.columnWidth(column) - 2 * table.style().pixelMetric(
        table.style().PixelMetric.PM_FocusFrameHMargin
    )
    assert max(table.fontMetrics().horizontalAdvance(t) for t in texts) <= room - 6
    modified = next(r for row in range(model.rowCount()) for r in model.records(row) if not r.taken)
    assert len(taken_or_modified(modified)[1]) == len("2019-07-14 10:27:00")
