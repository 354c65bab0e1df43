"""What changed between two copies: the full-size viewer's Difference, worked out in a worker thread."""

from __future__ import annotations

import threading

import pytest
from helpers import DEMO
from PIL import Image, ImageDraw

from desktop.viewer import ViewerDialog
from desktop.workers import TaskRunner


@pytest.fixture
def runner(qtbot):
    r = TaskRunner()
    yield r
    r.wait()


def open_viewer(qtbot, paths, runner, **kw) -> ViewerDialog:
    dlg = ViewerDialog([str(p) for p in paths], runner, copies=True, **kw)
    qtbot.addWidget(dlg)
    dlg.show()
    return dlg


def test_difference_shows_where_a_copy_was_edited(qtbot, tmp_path, runner, difference_threads):
    threads = difference_threads
    original = DEMO / "Camera/forest_path.jpg"
    im = Image.open(original).convert("RGB")
    w, h = im.size
    ImageDraw.Draw(im).rectangle((w * 0.1, h * 0.6, w * 0.6, h * 0.9), fill=(255, 30, 30))  # a sticker
    edited = tmp_path / "forest_path_sticker.jpg"
    im.save(edited, quality=92)
    dlg = open_viewer(qtbot, [original, edited], runner)
    assert not dlg.difference_view.isVisible() and not dlg.difference_button.isChecked()
    with qtbot.waitSignal(dlg.difference_shown, timeout=30_000) as blocker:
        dlg.difference_button.click()
    diff = blocker.args[0]
    assert threads and all(t is not threading.main_thread() for t in threads)  # never on the GUI thread
    # The sticker's verdict is the verifier's call (still being tuned); lined up, the map shows it either way.
    assert diff.aligned and " points" in diff.text
    assert dlg.difference_label.text() == diff.text
    pm = dlg.difference_view.item.pixmap()
    assert not pm.isNull()
    # The sticker is where the map is bright; the untouched top of the picture stays dark.
    img = pm.toImage()
    sx, sy = img.width() / w, img.height() / h

    def red(x0: float, y0: float, x1: float, y1: float) -> float:
        """Mean red of the map over a box (fractions of the picture), on a 10 x 10 grid."""
        pts = [(x0 + (x1 - x0) * i / 9, y0 + (y1 - y0) * j / 9) for i in range(10) for j in range(10)]
        return sum(img.pixelColor(int(x * w * sx), int(y * h * sy)).red() for x, y in pts) / len(pts)

    sticker, untouched = red(0.15, 0.65, 0.55, 0.85), red(0.1, 0.05, 0.9, 0.45)
    assert sticker > 3 * untouched, (sticker, untouched)
    # Toggling off hides the map; on again shows it without working it out a second time.
    dlg.difference_button.click()
    assert not dlg.difference_view.isVisible()
    dlg.difference_button.click()
    assert dlg.difference_view.isVisible() and len(threads) == 1


def test_a_pair_that_does_not_line_up_is_said_in_words(qtbot, runner):
    dlg = open_viewer(qtbot, [DEMO / "Camera/misty_lake.jpg", DEMO / "Camera/water_drop.jpg"], runner)
    with qtbot.waitSignal(dlg.difference_shown, timeout=30_000) as blocker:
        dlg.difference_button.click()
    diff = blocker.args[0]
    assert not diff.aligned and diff.image is None
    assert dlg.difference_label.text().startswith("These two do not line up")
    assert dlg.difference_view.item.pixmap().isNull()


def test_one_image_offers_no_difference(qtbot, runner):
    dlg = open_viewer(qtbot, [DEMO / "Camera/misty_lake.jpg"], runner)
    assert dlg.difference_button.isHidden()


def test_a_crop_is_shown_as_the_part_the_copy_does_not_reach(tmp_path):
    from desktop.difference import compute_difference

    original = DEMO / "Camera/misty_lake.jpg"
    im = Image.open(original).convert("RGB")
    w, h = im.size
    crop = tmp_path / "misty_lake_crop.jpg"
    im.crop((w * 3 // 10, h * 3 // 10, w, h)).save(crop, quality=92)  # keeps 49 % of the picture
    diff = compute_difference(str(original), str(crop))
    assert diff.same and diff.aligned
    shown = int(diff.text.split("The second shows ")[1].split("%")[0])
    assert 40 <= shown <= 58, diff.text
    img = diff.image
    cut, kept = (
        img.pixelColor(img.width() // 10, img.height() // 10),
        img.pixelColor(img.width() * 2 // 3, img.height() * 2 // 3),
    )
    assert cut.blue() > cut.red() + 60  # blue: not in the crop
    assert abs(kept.blue() - kept.red()) < 40  # inside it: the greyed picture


@pytest.mark.parametrize("mirrored", [False, True])
def test_a_copy_of_the_whole_picture_is_said_to_line_up_as_a_whole(tmp_path, mirrored):
    """A copy settled frame to frame has no matched points to count: the words must not say "0 points"."""
    from desktop.difference import compute_difference

    original = DEMO / "Camera/misty_lake.jpg"
    im = Image.open(original).convert("RGB")
    if mirrored:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    copy = tmp_path / "misty_lake_copy.jpg"
    im.resize((im.width // 2, im.height // 2)).save(copy, quality=80)
    diff = compute_difference(str(original), str(copy))
    assert diff.same and diff.aligned and diff.image is not None
    assert " 0 points" not in diff.text, diff.text
    assert diff.text.startswith("Same photo: the whole picture lines up"), diff.text
    assert ("mirrored" in diff.text) == mirrored


class HeldRunner:
    """Runs each task when the test says so (a slow disk, in order), on this thread."""

    def __init__(self, app) -> None:
        self.app, self.tasks = app, []

    def start(self, task) -> None:
        self.tasks.append(task)

    def run(self, name: str) -> None:
        task = next(t for t in self.tasks if name in t.name)
        self.tasks.remove(task)
        task.run()
        self.app.processEvents()


def test_100_percent_while_a_partner_loads_leaves_the_difference_zoomable(qtbot, qapp, tmp_path):
    """Another member chosen to compare with, "100 %" (1) pressed before it has loaded: the difference view
    kept a zero scale (0 px wide / its width) that neither Fit nor a new map could undo, and the wheel then
    divided by it (a reviewer's finding)."""
    original = str(DEMO / "Camera/forest_path.jpg")
    im = Image.open(original).convert("RGB")
    copies = []
    for k, q in enumerate((70, 40)):
        p = tmp_path / f"copy{k}.jpg"
        im.save(p, quality=q)
        copies.append(str(p))
    runner = HeldRunner(qapp)
    dlg = ViewerDialog([original, copies[0]], runner, copies=True, partners=[original, copies[1]])
    qtbot.addWidget(dlg)
    dlg.show()
    runner.run(f"load {original}")
    runner.run(f"load {copies[0]}")
    dlg.actual()  # 100 %, in step
    dlg.partner.setCurrentIndex(1)
    assert dlg.paths == [copies[1], copies[0]] and dlg.windowTitle() == "copy1.jpg ↔ copy0.jpg"
    dlg.actual()
    assert dlg.difference_view.zoom() > 0
    runner.run(f"load {copies[1]}")
    # the new picture in: both panes start again from Fit, in step (the left one alone was fitted)
    left, right = dlg.views[copies[1]], dlg.views[copies[0]]
    assert left.fitted and right.fitted and abs(left.zoom() - right.zoom()) < 1e-6
    dlg.difference_button.setChecked(True)
    runner.run("difference")
    assert dlg.difference is not None and dlg.difference.path_a == copies[1]
    assert not dlg.difference_view.item.pixmap().isNull() and dlg.difference_view.zoom() > 0
    dlg.difference_view.zoom_by(1.25)
    assert dlg.difference_view.zoom() > 0


def test_identical_files_are_said_to_be_identical(qtbot, tmp_path):
    """Two files with the same bytes: nothing to line up (a trial read "Same photo: the whole picture lines
    up" for them, which says less)."""
    import shutil

    from desktop.difference import IDENTICAL_TEXT, compute_difference

    original = DEMO / "Camera/misty_lake.jpg"
    twin = tmp_path / "misty_lake (1).jpg"
    shutil.copy(original, twin)
    diff = compute_difference(str(original), str(twin))
    assert diff.same and diff.aligned and diff.image is None and diff.text == IDENTICAL_TEXT
    # one byte apart: lined up as ever
    data = bytearray(twin.read_bytes())
    data[-3] ^= 1
    twin.write_bytes(bytes(data))
    assert compute_difference(str(original), str(twin)).text != IDENTICAL_TEXT
