"""A RAW file and the JPEG its camera wrote beside it: labelled in the list and on their cards, and left alone
by Auto-select unless the rule says so."""

from __future__ import annotations

import shutil

import pytest
from helpers import DEMO, camera_dng
from PIL import Image
from PySide6.QtWidgets import QLabel

from desktop.group_model import SummaryRole

pytest.importorskip("rawpy")


def test_raw_jpeg_pair_is_labelled_and_not_auto_selected(qtbot, scanned_window, tmp_path):
    src = DEMO / "Camera/misty_lake.jpg"
    shoot, exports = tmp_path / "shoot", tmp_path / "exports"
    shoot.mkdir()
    exports.mkdir()
    camera_dng(shoot / "IMG_0001.DNG", src, preview=0.5)
    shutil.copy(src, shoot / "IMG_0001.JPG")
    Image.open(src).resize((640, 400)).save(exports / "IMG_0001.jpg", quality=80)
    window = scanned_window(shoot, exports)
    model = window.groups_model
    assert model.rowCount() == 1
    name, detail, _ = model.index(0).data(SummaryRole)
    assert name == "IMG_0001.DNG" and "RAW+JPEG" in detail
    window.select_group(0)
    tags = {c.rec.path: " ".join(lab.text() for lab in c.findChildren(QLabel)) for c in window.compare.cards}
    assert "RAW+JPEG pair" in tags[str(shoot / "IMG_0001.DNG")]
    assert "RAW+JPEG pair" in tags[str(shoot / "IMG_0001.JPG")]
    assert "RAW+JPEG pair" not in tags[str(exports / "IMG_0001.jpg")]
    window.session.auto_select("resolution")
    assert set(window.session.marks.paths) == {str(exports / "IMG_0001.jpg")}
    window.session.auto_select("raw")
    assert set(window.session.marks.paths) == {str(exports / "IMG_0001.jpg"), str(shoot / "IMG_0001.JPG")}
