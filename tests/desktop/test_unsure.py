"""A duplicate the check was not sure of (``core.verify.doubt``: its pixels look more like another exposure or
a burst frame than an edit): a CHECK badge in the list, a warning icon in the table, a warning on its card;
left alone by Auto-select, which says so; still markable by hand."""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import DATA
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from core import verify
from desktop.group_delegate import _badge_of
from desktop.group_model import GroupRole
from training.augment import EDITS


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    photo = Image.open(DATA / "verify" / "photo.jpg").convert("RGB")
    photo.save(root / "photo.jpg", quality=95)
    EDITS["downscale"](photo, np.random.default_rng(3)).convert("RGB").save(root / "photo_small.jpg")
    photo.save(root / "photo_again.jpg", quality=70)
    return root


@pytest.mark.parametrize("unsure", [False, True])
def test_an_unsure_copy_is_badged_warned_and_left_by_auto_select(
    qtbot, scanned_window, photos, monkeypatch, unsure
):
    monkeypatch.setattr(verify, "DOUBT_FROM", -np.inf if unsure else np.inf)
    window = scanned_window(photos)
    model = window.groups_model
    assert model.rowCount() == 1
    group = model.index(0).data(GroupRole)
    assert _badge_of(group) == ("CHECK" if unsure else "")
    # the table has no badges: the name cell and the tooltip say it
    index = model.index(0, 0)
    assert index.data(Qt.ItemDataRole.DisplayRole) == "photo.jpg"  # type-ahead finds it by its name
    assert model.index(0, 3).data(Qt.ItemDataRole.DisplayRole).endswith(" CHECK") == unsure
    assert index.data(Qt.ItemDataRole.ToolTipRole).startswith("CHECK: maybe not copies") == unsure
    window.select_group(0)
    cards = window.compare.cards
    assert len(cards) == 3
    assert [c.unsure.isVisible() for c in cards] == [unsure] * 3
    # each card names the photos the check was not sure of, and says what to do
    for card, member in zip(cards, group.members, strict=True):
        others = [m.file.path for m in group.members if m is not member]
        assert member.unsure_with == (tuple(others) if unsure else ())
        if unsure:
            assert card.unsure.text().startswith("⚠ <b>Maybe not a copy</b> of ")
            assert all(os.path.basename(p) in card.unsure.text() for p in others)
            assert "right-click: <i>Another shot than …</i>" in card.unsure.text()
    assert ("maybe copies of one photo (CHECK" in window.group_header.text()) == unsure
    title = window.duplicates.title.text()
    assert (" · 1 group to CHECK (" in title and title.endswith(" of that)")) == unsure, title
    said = []
    window.session.message.connect(said.append)
    window.session.auto_select("resolution")
    assert len(window.session.marks) == (0 if unsure else 2)
    assert ("Left for you: 2 files that may not be copies, in 1 CHECK group." in said[-1]) == unsure, said
    # a person may still decide: the mark box is there
    target = cards[1]
    assert target.check.isVisible() and target.check.isEnabled()
    if unsure:
        qtbot.mouseClick(target.check, Qt.MouseButton.LeftButton)
        assert target.rec.path in window.session.marks.paths
        # and the confirmation says so before anything moves
        asked = []
        monkeypatch.setattr(window, "confirm", lambda title, text: asked.append(text) or False)
        window.act_on_marked("trash")
        assert f"(1 of them maybe not copies, CHECK: {os.path.basename(target.rec.path)})" in asked[0]
        assert target.rec.path in window.session.marks.paths and os.path.exists(target.rec.path)


def test_what_changed_does_not_call_an_unsure_pair_the_same_photo(monkeypatch):
    """The difference view is where the card sends a person to look: for a pair the check was not sure of it
    must not say "Same photo" (a new user's trial: it did, for a burst whose players had visibly moved)."""
    from desktop.difference import describe

    photo = Image.open(DATA / "verify" / "photo.jpg").convert("RGB")
    a = verify.extract(photo)
    b = verify.extract(EDITS["downscale"](photo, np.random.default_rng(3)).convert("RGB"))
    for doubt_from, said in ((np.inf, "Same photo: "), (-np.inf, "Lines up (")):
        monkeypatch.setattr(verify, "DOUBT_FROM", doubt_from)
        text = describe(verify.verify(a, b))
        assert text.startswith(said), text
    assert "maybe another shot" in text and "Compare them before removing" in text


def test_a_regrouping_unmarks_what_auto_select_marked_once_it_is_unsure(
    qtbot, scanned_window, photos, monkeypatch
):
    """Auto-select's marks are re-applied after a slider change or a rescan, but not on a member that has
    since become one the check is unsure of (its unsure partner joined the group): auto-select would not
    have marked it. What the person marked by hand stays marked."""
    monkeypatch.setattr(verify, "DOUBT_FROM", np.inf)  # every verdict sure at first
    window = scanned_window(photos)
    session = window.session
    session.auto_select("resolution")
    auto = set(session.marks.paths)
    assert len(auto) == 2
    said = []
    session.message.connect(said.append)
    # the check's verdicts on the pairs with the original, as a scan that was unsure of them records them
    group = session.result.groups[0]
    best = group.members[0].file.path
    session.library.unsure = {tuple(sorted((best, p))) for p in auto}
    session.set_threshold(session.threshold)
    assert all(m.unsure for m in session.result.groups[0].members)
    assert session.marks.paths == frozenset()
    names = ", ".join(sorted(os.path.basename(p) for p in auto))
    note = f"Unmarked 2 files Auto-select had marked ({names}): the check is not sure they are copies"
    assert any(note in s for s in said), said
    # a mark by hand on an unsure member is the person's decision: a regrouping keeps it
    hand = sorted(auto)[0]
    assert session.marks.mark(hand)
    session.set_threshold(session.threshold)
    assert session.marks.paths == frozenset({hand})
    # and a mark made by auto-select, then confirmed by hand (unmarked and marked again), is the person's
    session.library.unsure = set()
    session.set_threshold(session.threshold)
    session.auto_select("resolution")
    assert session.marks.paths == frozenset(auto)
    other = sorted(auto)[1]
    session.marks.mark(other, False)
    session.marks.mark(other, True)
    session.library.unsure = {tuple(sorted((best, p))) for p in auto}
    session.set_threshold(session.threshold)
    assert session.marks.paths == frozenset({other})


def test_what_changed_in_a_check_group_compares_a_copy_with_a_member_it_surely_copies(
    qtbot, scanned_window, photos, monkeypatch
):
    """In a group to CHECK the best copy may be another exposure: "What changed?" on a copy the check was
    unsure of against the best copy lines it up first on a member it was sure of, and the viewer lets the
    person pick any member of the group to compare with."""
    from desktop.viewer import ViewerDialog

    monkeypatch.setattr(verify, "DOUBT_FROM", np.inf)
    window = scanned_window(photos)
    session = window.session
    members = [m.file.path for m in session.result.groups[0].members]
    best, small = members[0], str(photos / "photo_small.jpg")
    other = next(p for p in members if p not in (best, small))
    session.library.unsure = {tuple(sorted((best, small)))}
    session.set_threshold(session.threshold)
    window.select_group(0)
    card = window.compare.card(small)
    assert card.difference.isVisible()
    card.difference.click()
    dialogs = window.findChildren(ViewerDialog)
    assert len(dialogs) == 1
    dlg = dialogs[0]
    qtbot.addWidget(dlg)
    assert dlg.paths == [other, small]
    assert dlg.partner is not None and dlg.partner.isVisible()
    assert [dlg.partner.itemData(k) for k in range(dlg.partner.count())] == [best, other]
    # the choice says which is which
    assert [dlg.partner.itemText(k) for k in range(dlg.partner.count())] == [
        "photo.jpg  (best copy, maybe not a copy: CHECK)",
        os.path.basename(other),
    ]
    assert dlg.partner.currentData() == other
    # of several members the check was sure of, the closest comes first (a trial: the first in the list was
    # another exposure while the copy's own original was further down)
    crop = photos / "photo_crop.jpg"
    EDITS["crop_50"](Image.open(best).convert("RGB"), np.random.default_rng(5)).convert("RGB").save(crop)
    assert window._closest(small, [str(crop), other]) == other  # not in the library: never chosen
    lib = session.library
    cos = {
        p: float(lib.embeddings[lib.index_of(small)] @ lib.embeddings[lib.index_of(p)]) for p in (best, other)
    }
    assert cos[best] != cos[other]
    assert (
        window._closest(small, [best, other])
        == window._closest(small, [other, best])
        == max(cos, key=cos.get)
    )
    qtbot.waitUntil(lambda: dlg.difference is not None, timeout=30_000)
    assert dlg.difference.path_a == other and dlg.difference.same
    # the best copy, chosen: its pane, its title and what changed follow
    with qtbot.waitSignal(dlg.difference_shown, timeout=30_000) as shown:
        dlg.partner.setCurrentIndex(0)
    assert shown.args[0].path_a == best and dlg.paths == [best, small]
    assert dlg.windowTitle() == "photo.jpg ↔ photo_small.jpg"
    qtbot.waitUntil(lambda: not dlg.views[best].item.pixmap().isNull(), timeout=30_000)
    # a sure member is compared with the best copy, as before
    dlg.close()
    window.compare.card(other).difference.click()
    dlg2 = [d for d in window.findChildren(ViewerDialog) if d is not dlg][0]
    qtbot.addWidget(dlg2)
    assert dlg2.paths == [best, other] and dlg2.partner.currentData() == best


def test_auto_select_removes_a_byte_identical_twin_in_a_check_group_and_keeps_it_marked(
    qtbot, scanned_window, photos, monkeypatch
):
    """Every edited pair unsure: the only file a rule may take from the group is the exact copy of the photo
    it keeps (no picture goes). Its mark survives a regrouping, and the trash confirmation does not count it
    among the files that may not be copies."""
    import shutil

    shutil.copy(photos / "photo.jpg", photos / "photo_twin.jpg")
    monkeypatch.setattr(verify, "DOUBT_FROM", -np.inf)
    window = scanned_window(photos)
    session = window.session
    group = session.result.groups[0]
    assert len(group.members) == 4 and all(m.unsure for m in group.members)
    twins = {str(photos / "photo.jpg"), str(photos / "photo_twin.jpg")}
    assert {m.file.path for m in group.members if m.identical} == twins
    said = []
    session.message.connect(said.append)
    session.auto_select("resolution")
    assert len(session.marks.paths) == 1 and session.marks.paths < twins
    assert "Marked 1 copy. Left for you: 2 files that may not be copies, in 1 CHECK group." in said[-1], said
    # the cards say why a rule took one of them (a trial: its card still said "Auto-select leaves it")
    window.select_group(0)
    for path in twins:
        card = window.compare.card(path)
        other = os.path.basename((twins - {path}).pop())
        assert any(f"same bytes as {other}</i>" in w.text() for w in card.findChildren(QLabel))
        assert "Auto-select leaves it" not in card.unsure.text()
        assert (
            f"It has the same bytes as {other}: Auto-select may remove all but one of them"
            in card.unsure.text()
        )
    edited = next(m.file.path for m in group.members if m.file.path not in twins)
    assert "Auto-select leaves it" in window.compare.card(edited).unsure.text()
    session.set_threshold(session.threshold)
    assert len(session.marks.paths) == 1 and not any("Unmarked" in s for s in said[1:]), said
    asked = []
    monkeypatch.setattr(window, "confirm", lambda title, text: asked.append(text) or False)
    window.act_on_marked("trash")
    assert asked and "maybe not copies" not in asked[0]
    # the other twin marked by hand too: now neither copy of that picture stays, and the dialog says so
    other = (twins - session.marks.paths).pop()
    assert session.marks.mark(other)
    window.act_on_marked("trash")
    names = sorted(os.path.basename(p) for p in twins)
    assert any(f"(2 of them maybe not copies, CHECK: {a}, {b})" in asked[-1] for a, b in (names, names[::-1]))
    assert all(os.path.exists(p) for p in twins)


def test_a_refused_mark_leaves_a_rule_mark_the_rule_s(qtbot, tmp_path):
    """Space on a member that may not be marked (every other copy of its group is) is refused and changes
    nothing: the mark that auto-select made there stays the rule's, and goes when that member turns unsure.
    (A reviewer's finding: the refusal used to make it the person's mark, which a regrouping keeps.)"""
    from core.results import Group, ImageRecord, Member, ModelInfo, ScanResult
    from desktop.marks import Marks

    recs = {}
    for name in "ABCD":
        p = tmp_path / f"{name}.jpg"
        Image.new("RGB", (8, 8), (10 * len(recs), 0, 0)).save(p)
        st = p.stat()
        recs[name] = ImageRecord(str(p), st.st_size, st.st_mtime_ns, 8, 8, "JPEG")

    def result(*groups, unsure=()):
        made = []
        for names in groups:
            members = tuple(
                Member(recs[n], 1.0, unsure_with=tuple(recs[o].path for o in names if {n, o} == set(unsure)))
                for n in names
            )
            made.append(Group(members, False, 0))
        return ScanResult(tuple(recs.values()), tuple(made), (), (), 0.9, ModelInfo("m", "0"))

    marks = Marks()
    marks.set_result(result("AB", "CD"))
    marks.replace([recs["B"].path, recs["D"].path])
    marks.set_result(result("BD"))  # both marked once alone together: B is hidden (one copy always stays)
    assert marks.paths == frozenset({recs["D"].path})
    with qtbot.waitSignal(marks.refused):
        assert not marks.toggle(recs["B"].path)
    marks.set_result(result("AB", "CD", unsure="AB"))
    assert marks.paths == frozenset({recs["D"].path}) and marks.unmarked == [recs["B"].path]


def test_a_card_says_when_the_photo_in_doubt_is_not_in_the_group(qtbot, scanned_window, photos, monkeypatch):
    """A stricter slider may leave the other exposure out of the group; the card still warns, and says that
    the photo it names is not there."""
    monkeypatch.setattr(verify, "DOUBT_FROM", np.inf)
    window = scanned_window(photos)
    session = window.session
    small = str(photos / "photo_small.jpg")
    outside = str(photos.parent / "elsewhere" / "frame2.jpg")
    session.library.unsure = {tuple(sorted((small, outside)))}
    session.set_threshold(session.threshold)
    window.select_group(0)
    text = window.compare.card(small).unsure.text()
    assert text.startswith("⚠ <b>Maybe not a copy</b> of frame2.jpg (not in this group): "), text
    assert _badge_of(window.groups_model.index(0).data(GroupRole)) == "CHECK"
    session.auto_select("resolution")
    assert small not in session.marks.paths and len(session.marks.paths) == 1
    # the person settles it from the card's menu: another shot than the file named, in the group or not
    menu = window.image_menu(small)
    acts = [a for a in menu.actions() if a.objectName() == "another_shot"]
    assert [a.text() for a in acts] == ["Another shot than frame2.jpg (settles the CHECK)"]
    acts[0].trigger()
    assert not session.result.groups[0].unsure
    assert (small, outside) in session.library.ignored or (outside, small) in session.library.ignored


def test_card_menus_never_split_identical_files_and_offer_undo(qtbot, scanned_window, photos, monkeypatch):
    """A second trial: the card's Not a duplicate remembered a byte-identical pair as different captures
    (the toolbar never offers that), and neither it nor Another shot than … could be undone where it was
    done. The confirmation also says when marked files lie in a group to CHECK."""
    import shutil

    shutil.copy(photos / "photo.jpg", photos / "photo_twin.jpg")
    monkeypatch.setattr(verify, "DOUBT_FROM", np.inf)
    window = scanned_window(photos)
    session = window.session
    twin, best = str(photos / "photo_twin.jpg"), str(photos / "photo.jpg")
    menu = window.image_menu(twin)
    nd = next(a for a in menu.actions() if a.objectName() == "not_duplicate")
    nd.trigger()
    ignored = {frozenset(p) for p in session.library.ignored}
    edits = (str(photos / "photo_small.jpg"), str(photos / "photo_again.jpg"))
    # the twin and its same-bytes original leave together: one picture, never a pair of captures
    assert ignored == {frozenset((t, e)) for t in (twin, best) for e in edits}
    assert "no longer be grouped" in window.banner.text.text() and window.banner.undo_button.isVisible()
    window.banner.undo_button.click()
    assert not session.library.ignored
    # a group to CHECK: a file marked beside the ones in doubt is counted in the confirmation
    small, again = edits
    session.library.unsure = {tuple(sorted((best, small)))}
    session.set_threshold(session.threshold)
    assert session.marks.mark(again)
    asked = []
    monkeypatch.setattr(window, "confirm", lambda title, text: asked.append(text) or False)
    window.act_on_marked("trash")
    assert "(1 of them in groups to CHECK)" in asked[-1], asked
    # Another shot than … from the menu: the banner offers Undo, which brings the doubt back
    act = next(a for a in window.image_menu(small).actions() if a.objectName() == "another_shot")
    act.trigger()
    assert not any(m.unsure for g in session.result.groups for m in g.members)
    assert "are now other shots of one subject" in window.banner.text.text()
    window.banner.undo_button.click()
    assert {m.file.path for g in session.result.groups for m in g.members if m.unsure} == {best, small}
    # a doubt about both twins is settled for both from either card (a reviewer: the twin kept its CHECK)
    session.library.unsure = {tuple(sorted((best, again))), tuple(sorted((twin, again)))}
    session.set_threshold(session.threshold)
    act = next(a for a in window.image_menu(twin).actions() if a.objectName() == "another_shot")
    assert act.text() == "Another shot than photo_again.jpg (settles the CHECK)"
    act.trigger()
    assert not any(m.unsure for g in session.result.groups for m in g.members)


def test_a_decision_made_during_a_rescan_applies_to_its_result(qtbot, scanned_window, photos, monkeypatch):
    """'Another shot than …' (any 'not a duplicate') clicked while a scan runs: the scan may have read the
    cache before the decision was written (a reviewer), and its result grouped the pair again with the banner
    and its Undo gone. The decision is applied to the new library when it arrives."""
    window = scanned_window(photos)
    session = window.session
    small, again = str(photos / "photo_small.jpg"), str(photos / "photo_again.jpg")
    assert len(session.result.groups) == 1 and len(session.result.groups[0].members) == 3
    # the cache write lands after this scan has read the cache
    monkeypatch.setattr(session, "_apply_ignored_writes", lambda: None)
    with qtbot.waitSignal(session.scan_finished, timeout=120_000):
        assert session.scan(session.folders)
        assert session.not_duplicate([(small, again)])
    assert (min(small, again), max(small, again)) in session.library.ignored
    together = [g for g in session.result.groups if {small, again} <= set(g.paths)]
    assert not together


def test_settling_a_check_keeps_the_view_on_its_photos(qtbot, scanned_window, photos, monkeypatch):
    """A trial: 'Another shot than …' split the group, and the list jumped to an unrelated group in the
    same row. The list stays on the group holding most of the files it showed."""
    from helpers import DEMO

    for k, name in enumerate(("misty_lake.jpg", "forest_path.jpg")):
        im = Image.open(DEMO / "Camera" / name).convert("RGB")
        for q in (95, 60):
            im.save(photos / f"z{k}_{q}.jpg", quality=q)
    monkeypatch.setattr(verify, "DOUBT_FROM", np.inf)
    window = scanned_window(photos)
    session = window.session
    best, small = str(photos / "photo.jpg"), str(photos / "photo_small.jpg")
    session.library.unsure = {tuple(sorted((best, small)))}
    session.set_threshold(session.threshold)
    assert len(session.result.groups) == 3
    window.groups_model.sort_by("files", True)  # the three-file group first; after the split it has two
    row = window.groups_model.row_of(small)
    assert row == 0
    window.select_group(row)
    shown = set(window.groups_model.group(window.groups.currentIndex().row()).paths)
    assert small in shown
    act = next(a for a in window.image_menu(small).actions() if a.objectName() == "another_shot")
    act.trigger()
    now = set(window.groups_model.group(window.groups.currentIndex().row()).paths)
    assert now & shown and (best in now or small in now), (shown, now)


def test_rules_with_nothing_to_go_by_say_so_and_same_names_show_their_folder(qtbot, scanned_window, photos):
    """A trial: Keep the copy in a reference folder with none ticked, and Keep the RAW file with no RAW
    file, marked what the default rule marks without a word; and the Compared with list showed two entries
    "IMG_1025.jpg" from two folders."""
    import shutil

    backup = photos / "Backup"
    backup.mkdir()
    shutil.copy(photos / "photo_again.jpg", backup / "photo_again.jpg")
    window = scanned_window(photos)
    session = window.session
    said = []
    session.message.connect(said.append)
    session.auto_select("reference")
    assert "No folder is ticked as a reference (Folders), so each group's best copy was kept." in said[-1]
    session.auto_select("raw")
    assert "No group holds a RAW file, so each group's best copy was kept." in said[-1]
    session.auto_select("resolution")
    assert "best copy was kept" not in said[-1]
    from desktop.viewer import ViewerDialog

    small = str(photos / "photo_small.jpg")
    window.select_group(window.groups_model.row_of(small))
    window.compare.card(small).difference.click()
    dlg = window.findChildren(ViewerDialog)[-1]
    qtbot.addWidget(dlg)
    texts = [dlg.partner.itemText(k) for k in range(dlg.partner.count())]
    names = [t.split("  (")[0] for t in texts]
    assert "photos/photo_again.jpg" in names and "Backup/photo_again.jpg" in names, texts
    assert "photo.jpg" in names  # a name no other member has stays bare
