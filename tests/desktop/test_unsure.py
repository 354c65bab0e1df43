"""A duplicate the check was not sure of (``core.verify.doubt``: its pixels look more like another exposure or
a burst frame than an edit): a CHECK badge in the list, a warning icon in the table, a warning on its card;
left alone by Auto-select, which says so; still markable by hand."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DATA
from PIL import Image
from PySide6.QtCore import Qt

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
    assert (index.data(Qt.ItemDataRole.DecorationRole) is not None) == unsure
    assert index.data(Qt.ItemDataRole.ToolTipRole).startswith("CHECK: not surely copies") == unsure
    window.select_group(0)
    cards = window.compare.cards
    assert len(cards) == 3
    assert [c.unsure.isVisible() for c in cards] == [unsure] * 3
    assert all("Not surely the same photo" in c.unsure.text() for c in cards)
    said = []
    window.session.message.connect(said.append)
    window.session.auto_select("resolution")
    assert len(window.session.marks) == (0 if unsure else 2)
    assert ("Left for you: 2 files the check was not sure are copies" in said[-1]) == unsure, said
    # a person may still decide: the mark box is there
    target = cards[1]
    assert target.check.isVisible() and target.check.isEnabled()
    if unsure:
        qtbot.mouseClick(target.check, Qt.MouseButton.LeftButton)
        assert target.rec.path in window.session.marks.paths
