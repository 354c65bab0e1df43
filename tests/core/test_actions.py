"""Trash and move with undo, on real files; never a whole group; changed files are left alone."""

from __future__ import annotations

import os
import shutil

import pytest
from helpers import DATA

from core.actions import Journal, check_plan, remove_files, undo
from core.errors import ActionError
from core.results import Group, ImageRecord, Member


def _record(path):
    st = os.stat(path)
    return ImageRecord(str(path), st.st_size, st.st_mtime_ns, 320, 200, "JPEG")


@pytest.fixture
def three(tmp_path):
    paths = []
    for k in range(3):
        p = tmp_path / "photos" / f"p{k}.jpg"
        p.parent.mkdir(exist_ok=True)
        shutil.copy(DATA / "ok.jpg", p)
        paths.append(p)
    files = [_record(p) for p in paths]
    group = Group((Member(0, 1.0), Member(1, 0.99), Member(2, 0.98)), True, 2)
    return files, [group], Journal(tmp_path / "journal.sqlite3")


def test_trash_and_undo(three):
    files, groups, journal = three
    original = files[1].path
    content = open(original, "rb").read()
    res = remove_files([files[1], files[2]], groups=groups, files=files, journal=journal)
    assert res.done == (files[1].path, files[2].path) and not res.problems
    assert not os.path.exists(original)
    trash = os.path.join(os.environ["XDG_DATA_HOME"], "Trash", "files")
    assert os.listdir(trash)  # in the trash, not deleted
    back = undo(journal=journal)
    assert set(back.done) == {files[1].path, files[2].path} and not back.problems
    assert open(original, "rb").read() == content
    with pytest.raises(ActionError):
        undo(journal=journal)  # nothing left to undo


def test_move_and_undo(three, tmp_path):
    files, groups, journal = three
    dest = tmp_path / "moved"
    res = remove_files([files[0]], groups=groups, files=files, mode="move", dest=dest, journal=journal)
    assert res.done == (files[0].path,) and (dest / "p0.jpg").exists()
    undo(res.action_id, journal=journal)
    assert os.path.exists(files[0].path) and not (dest / "p0.jpg").exists()


def test_never_every_copy(three):
    files, groups, journal = three
    with pytest.raises(ActionError):
        remove_files(files, groups=groups, files=files, journal=journal)
    assert all(os.path.exists(f.path) for f in files)
    check_plan(groups, files, [files[0].path, files[1].path])  # one left: fine


def test_changed_file_is_skipped(three):
    files, groups, journal = three
    with open(files[2].path, "ab") as fh:
        fh.write(b"changed")
    res = remove_files([files[2]], groups=groups, files=files, journal=journal)
    assert res.done == () and "changed since the scan" in res.problems[0].reason
    assert os.path.exists(files[2].path)


def test_undo_does_not_overwrite(three):
    files, groups, journal = three
    remove_files([files[1]], groups=groups, files=files, journal=journal)
    shutil.copy(DATA / "cmyk.jpg", files[1].path)  # a new file took the place
    res = undo(journal=journal)
    assert res.done == () and "already exists" in res.problems[0].reason


def test_trash_and_undo_a_name_that_is_not_utf8(tmp_path):
    from make_data import make_odd_names

    paths = make_odd_names(tmp_path / "odd")
    files = [_record(p) for p in paths]
    group = Group((Member(0, 1.0), Member(1, 0.99)), False, files[1].size)
    journal = Journal(tmp_path / "j.sqlite3")
    victim = files[-1]
    res = remove_files([victim], groups=[group], files=files, journal=journal)
    assert res.done == (victim.path,) and not os.path.exists(victim.path)
    back = undo(journal=journal)
    assert back.done == (victim.path,) and os.path.exists(victim.path)


# -- "Never lose a photo": a stale result, a file moved into its own folder -----------------------------------
@pytest.fixture
def four(tmp_path):
    paths = []
    for k in range(4):
        p = tmp_path / "lib" / f"c{k}.jpg"
        p.parent.mkdir(exist_ok=True)
        shutil.copy(DATA / "ok.jpg", p)
        paths.append(p)
    files = [_record(p) for p in paths]
    group = Group(tuple(Member(k, 1.0 - k / 100) for k in range(4)), True, 3 * files[0].size)
    return files, [group], Journal(tmp_path / "journal.sqlite3")


def test_a_stale_result_cannot_remove_the_last_copies(four):
    files, groups, journal = four
    first = remove_files(files[2:], groups=groups, files=files, journal=journal)
    assert first.done == (files[2].path, files[3].path)
    with pytest.raises(ActionError, match="no other copy"):
        check_plan(groups, files, [files[0].path, files[1].path])
    with pytest.raises(ActionError, match="no other copy"):
        remove_files(files[:2], groups=groups, files=files, journal=journal)  # the same, now stale, result
    assert os.path.exists(files[0].path) and os.path.exists(files[1].path)
    assert journal.last_undoable() == first.action_id


def test_a_changed_or_linked_keeper_does_not_count(four):
    files, groups, journal = four
    with open(files[1].path, "ab") as fh:  # changed since the scan: not the copy the user saw
        fh.write(b"x")
    os.remove(files[2].path)
    os.symlink(files[0].path, files[2].path)  # a link to the target is no copy of it
    os.remove(files[3].path)
    os.link(files[0].path, files[3].path)  # neither is a second name of the same file
    files = [*files[:2], _record(files[2].path), _record(files[3].path)]  # as a scan would see them now
    with pytest.raises(ActionError, match="no other copy"):
        remove_files([files[0]], groups=groups, files=files, journal=journal)
    assert os.path.exists(files[0].path)


def test_moving_a_file_into_its_own_folder_is_refused(three):
    files, groups, journal = three
    res = remove_files([files[0]], groups=groups, files=files, mode="move", dest=os.path.dirname(files[0].path),
                       journal=journal)
    assert res.done == () and res.bytes == 0
    assert "already in the destination folder" in res.problems[0].reason
    assert sorted(os.listdir(os.path.dirname(files[0].path))) == ["p0.jpg", "p1.jpg", "p2.jpg"]
