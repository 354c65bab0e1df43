"""Walking folders: recursion, globs, sizes, hidden files, symlinks, loops, content sniffing, odd names."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
from helpers import DATA
from make_data import make_fifo, make_odd_names, make_symlink_loop

from core.scan import ScanOptions, find_images, sniff


def _tree(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    shutil.copy(DATA / "ok.jpg", tmp_path / "a" / "one.jpg")
    shutil.copy(DATA / "photo.webp", tmp_path / "a" / "b" / "two.WEBP")
    shutil.copy(DATA / "png_named.dat", tmp_path / "a" / "b" / "three.dat")
    shutil.copy(DATA / "ok.jpg", tmp_path / ".hidden" / "four.jpg")
    shutil.copy(DATA / "ok.jpg", tmp_path / "a" / ".five.jpg")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "a" / "zero.png").write_bytes(b"")
    return tmp_path


def names(walk):
    return sorted(os.path.relpath(f.path) for f in walk.files)


def test_recursive_with_sniffing_and_hidden_skipped(tmp_path):
    root = _tree(tmp_path)
    w = find_images([root])
    got = sorted(os.path.basename(f.path) for f in w.files)
    assert got == ["one.jpg", "three.dat", "two.WEBP"]
    assert [os.path.basename(p.path) for p in w.problems] == ["zero.png"]
    assert "0 bytes" in w.problems[0].reason
    assert w.sniffed[str(root / "a" / "b" / "three.dat")] == "PNG"


def test_hidden_included_on_request(tmp_path):
    w = find_images([_tree(tmp_path)], ScanOptions(include_hidden=True))
    assert {os.path.basename(f.path) for f in w.files} >= {"four.jpg", ".five.jpg"}


def test_exclude_include_and_min_size(tmp_path):
    root = _tree(tmp_path)
    assert {os.path.basename(f.path) for f in find_images([root], ScanOptions(exclude=("b",))).files} == {
        "one.jpg"
    }
    assert {os.path.basename(f.path) for f in find_images([root], ScanOptions(include=("*.jpg",))).files} == {
        "one.jpg"
    }
    big = (DATA / "ok.jpg").stat().st_size + 1
    got = {os.path.basename(f.path) for f in find_images([root], ScanOptions(min_size=big)).files}
    assert "one.jpg" not in got


def test_same_file_twice_counts_once(tmp_path):
    root = _tree(tmp_path)
    w = find_images([root, root / "a", root / "a" / "one.jpg"])
    assert len(w.files) == 3


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
def test_symlinks_not_followed_by_default_and_loops_end(tmp_path):
    make_symlink_loop(tmp_path)
    shutil.copy(DATA / "ok.jpg", tmp_path / "real.jpg")
    os.symlink(tmp_path / "real.jpg", tmp_path / "link.jpg")
    w = find_images([tmp_path])
    assert [os.path.basename(f.path) for f in w.files] == ["real.jpg"]
    w2 = find_images(
        [tmp_path], ScanOptions(follow_symlinks=True)
    )  # must terminate; the link is the same file
    assert len(w2.files) == 1


def test_non_utf8_names_fifo_and_missing_root(tmp_path):
    created = make_odd_names(tmp_path)
    fifo = make_fifo(tmp_path)
    w = find_images([tmp_path, tmp_path / "missing"])
    assert len(w.files) == len(created)
    assert any("does not exist" in p.reason for p in w.problems)
    if fifo:
        assert all(f.path != str(fifo) for f in w.files)
        w = find_images([fifo])
        assert w.problems and "not a regular file" in w.problems[0].reason


def test_sniff_magic():
    assert sniff((DATA / "ok.jpg").read_bytes()[:16]) == "JPEG"
    assert sniff((DATA / "photo.heic").read_bytes()[:16]) == "HEIF"
    assert sniff(b"hello world, text") is None


def test_cancel(tmp_path):
    from core.errors import Cancelled
    from core.progress import CancelToken

    t = CancelToken()
    t.cancel()
    with pytest.raises(Cancelled):
        find_images([_tree(tmp_path)], cancel=t)


def test_a_pipe_named_like_a_photo_is_a_problem_not_a_silent_skip(tmp_path):
    import os

    from core.scan import find_images

    os.mkfifo(tmp_path / "IMG_0001.jpg")
    os.mkfifo(tmp_path / "notes.fifo")  # not named like an image: not ours to mention
    walk = find_images([tmp_path])
    assert walk.files == []
    assert [(os.path.basename(p.path), p.reason) for p in walk.problems] == [
        ("IMG_0001.jpg", "not a regular file (pipe, device or socket)")
    ]


def test_exact_copy_hashing_never_blocks_on_a_pipe(tmp_path):
    import os
    import threading

    from core.engine import file_digest

    os.mkfifo(tmp_path / "swapped.jpg")
    out = []

    def run():
        try:
            file_digest(str(tmp_path / "swapped.jpg"))
        except OSError as e:
            out.append(str(e))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive() and out == ["not a regular file (pipe, device or socket)"]
