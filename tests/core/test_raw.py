"""Camera RAW files: read through their preview (or developed), upright, with the sensor's size and format."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from helpers import DEMO, camera_dng
from PIL import Image

from core.decode import decode_for_model, read_full
from core.engine import Engine
from core.errors import DecodeError
from core.raw import RAW_EXTENSIONS
from core.scan import ScanOptions, find_images

pytest.importorskip("rawpy")
SRC = DEMO / "Camera/misty_lake.jpg"


def _size(src=SRC):
    w, h = Image.open(src).size
    return w // 2 * 2, h // 2 * 2


def test_dng_is_read_from_its_preview_with_the_sensor_size(tmp_path):
    camera_dng(tmp_path / "IMG_0001.dng", preview=0.5)
    d = decode_for_model(str(tmp_path / "IMG_0001.dng"), 224)
    assert d.format == "DNG"
    assert (d.width, d.height) == _size()  # the sensor's pixels, not the preview's
    jpeg = decode_for_model(str(SRC), 224)
    diff = np.abs(d.pixels.astype(int) - jpeg.pixels.astype(int)).mean()
    assert diff < 6, diff  # the same picture as the camera's JPEG


def test_dng_without_a_usable_preview_is_developed(tmp_path):
    camera_dng(tmp_path / "raw.dng", preview=0)
    d = decode_for_model(str(tmp_path / "raw.dng"), 224)
    assert d.format == "DNG" and (d.width, d.height) == _size()
    assert d.pixels.std() > 5  # a picture, not a flat fill
    assert read_full(str(tmp_path / "raw.dng")).size == (_size()[0] // 2, _size()[1] // 2)  # half size


@pytest.mark.parametrize("preview", [0.5, 0])
def test_the_cameras_orientation_is_applied(tmp_path, preview):
    camera_dng(tmp_path / "turned.dng", preview=preview, orientation=6)
    d = decode_for_model(str(tmp_path / "turned.dng"), 224)
    w, h = _size()
    assert (d.width, d.height) == (h, w)
    shown = read_full(str(tmp_path / "turned.dng"))
    assert shown.height > shown.width


@pytest.mark.parametrize("name", ["garbage.nef", "truncated.dng", "empty.cr2"])
def test_broken_raw_files_are_a_reason_not_a_crash(tmp_path, name):
    path = tmp_path / name
    if name == "garbage.nef":
        path.write_bytes(b"this is not a raw file" * 100)
    elif name == "truncated.dng":
        camera_dng(tmp_path / "whole.dng", preview=0)
        data = (tmp_path / "whole.dng").read_bytes()
        path.write_bytes(data[: len(data) // 3])
    else:
        path.write_bytes(b"")
    with pytest.raises(DecodeError) as e:
        decode_for_model(str(path), 224)
    assert str(e.value) and "\n" not in str(e.value)


def test_scan_finds_raw_files_and_pairs_them_with_their_jpeg(tmp_path):
    folder = tmp_path / "shoot"
    folder.mkdir()
    shutil.copy(SRC, folder / "IMG_0001.JPG")
    camera_dng(folder / "IMG_0001.DNG", preview=0.5)
    (folder / "broken.ARW").write_bytes(b"\0" * 4096)
    assert {".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf"} <= RAW_EXTENSIONS
    assert [f.path.rsplit("/", 1)[1] for f in find_images([str(folder)], ScanOptions()).files] == [
        "IMG_0001.DNG",
        "IMG_0001.JPG",
        "broken.ARW",
    ]
    engine = Engine(device="cpu", cache_dir=tmp_path / "cache")
    lib = engine.scan([folder])
    result = lib.result(engine.default_threshold())
    assert [p.path.rsplit("/", 1)[1] for p in result.problems] == ["broken.ARW"]
    formats = {f.path.rsplit("/", 1)[1]: f.format for f in result.files}
    assert formats["IMG_0001.DNG"] == "DNG"
    assert len(result.groups) == 1
    assert {m.file.path.rsplit("/", 1)[1] for m in result.groups[0].members} == {
        "IMG_0001.DNG",
        "IMG_0001.JPG",
    }


def _shoot(tmp_path):
    """A camera's RAW+JPEG pair, and a smaller export of the same photo in another folder."""
    folder = tmp_path / "shoot"
    folder.mkdir()
    camera_dng(folder / "IMG_0001.DNG", preview=0.5)
    shutil.copy(SRC, folder / "IMG_0001.JPG")
    (tmp_path / "exports").mkdir()
    Image.open(SRC).resize((640, 400)).save(tmp_path / "exports" / "IMG_0001.jpg", quality=80)
    engine = Engine(device="cpu", cache_dir=tmp_path / "cache")
    return engine.scan([tmp_path / "shoot", tmp_path / "exports"]).result(engine.default_threshold())


def test_a_raw_and_its_camera_jpeg_are_a_labelled_pair_that_no_default_rule_selects(tmp_path):
    from core.report import scan_json
    from core.selection import RULES, choose

    result = _shoot(tmp_path)
    (group,) = result.groups
    names = [os.path.relpath(p, tmp_path) for p in group.paths]
    assert names[0] == "shoot/IMG_0001.DNG"  # the capture itself is the best copy
    assert sorted(names) == ["exports/IMG_0001.jpg", "shoot/IMG_0001.DNG", "shoot/IMG_0001.JPG"]
    assert [(a.path.rsplit("/", 2)[1:], b.path.rsplit("/", 2)[1:]) for a, b in group.raw_pairs] == [
        (["shoot", "IMG_0001.DNG"], ["shoot", "IMG_0001.JPG"])
    ]
    export = str(tmp_path / "exports" / "IMG_0001.jpg")
    for rule in set(RULES) - {"raw"}:
        expected = set() if rule == "newest" else {export}  # "newest" keeps the export itself
        assert choose(result, rule) == expected, rule  # the pair stays whole
    assert choose(result, "raw") == {export, str(tmp_path / "shoot" / "IMG_0001.JPG")}
    (report,) = scan_json(result)["groups"]
    assert report["raw_jpeg_pairs"] == [
        [str(folder / n) for n in ("IMG_0001.DNG", "IMG_0001.JPG")] for folder in [tmp_path / "shoot"]
    ]


def test_only_the_same_name_in_the_same_folder_makes_a_raw_pair(tmp_path):
    from core.results import ImageRecord, raw_jpeg_pairs

    def rec(path, fmt):
        return ImageRecord(str(tmp_path / path), 1, 1, 10, 10, fmt)

    raw = rec("a/IMG_1.NEF", "NEF")
    records = (
        raw,
        rec("a/img_1.jpg", "JPEG"),  # the camera's twin, whatever the case
        rec("b/IMG_1.JPG", "JPEG"),  # another folder: a copy, not the twin
        rec("a/IMG_1_edit.jpg", "JPEG"),  # another name
        rec("a/IMG_1.png", "PNG"),  # not what a camera writes beside its RAW
    )
    assert [(r.path, j.path) for r, j in raw_jpeg_pairs(records)] == [(raw.path, records[1].path)]
