"""Trash and move with undo, on real files; never a whole group; changed files are left alone."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import DATA

from core.actions import Journal, check_plan, remove_files, undo
from core.errors import ActionError
from core.results import Group, ImageRecord, Member


def _record(path):
    st = os.stat(path)
    return ImageRecord(str(path), st.st_size, st.st_mtime_ns, 320, 200, "JPEG")


def _copies(folder, stem: str, n: int) -> list[ImageRecord]:
    """``n`` byte-identical real JPEGs ``folder/{stem}{k}.jpg`` and their records."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        shutil.copy(DATA / "ok.jpg", folder / f"{stem}{k}.jpg")
    return [_record(folder / f"{stem}{k}.jpg") for k in range(n)]


@pytest.fixture
def three(tmp_path):
    files = _copies(tmp_path / "photos", "p", 3)
    group = Group((Member(files[0], 1.0), Member(files[1], 0.99), Member(files[2], 0.98)), True, 2)
    return files, [group], Journal(tmp_path / "journal.sqlite3")


def test_trash_and_undo(three):
    files, groups, journal = three
    original = files[1].path
    content = open(original, "rb").read()
    res = remove_files([files[1], files[2]], groups=groups, journal=journal)
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
    res = remove_files([files[0]], groups=groups, mode="move", dest=dest, journal=journal)
    assert res.done == (files[0].path,) and (dest / "p0.jpg").exists()
    undo(res.action_id, journal=journal)
    assert os.path.exists(files[0].path) and not (dest / "p0.jpg").exists()


def test_never_every_copy(three):
    files, groups, journal = three
    with pytest.raises(ActionError):
        remove_files(files, groups=groups, journal=journal)
    assert all(os.path.exists(f.path) for f in files)
    check_plan(groups, [files[0].path, files[1].path])  # one left: fine


def test_changed_file_is_skipped(three):
    files, groups, journal = three
    with open(files[2].path, "ab") as fh:
        fh.write(b"changed")
    res = remove_files([files[2]], groups=groups, journal=journal)
    assert res.done == () and "changed since the scan" in res.problems[0].reason
    assert os.path.exists(files[2].path)


def test_undo_does_not_overwrite(three):
    files, groups, journal = three
    remove_files([files[1]], groups=groups, journal=journal)
    shutil.copy(DATA / "cmyk.jpg", files[1].path)  # a new file took the place
    res = undo(journal=journal)
    assert res.done == () and "already exists" in res.problems[0].reason


def test_trash_and_undo_a_name_that_is_not_utf8(tmp_path):
    from make_data import make_odd_names

    paths = make_odd_names(tmp_path / "odd")
    files = [_record(p) for p in paths]
    group = Group((Member(files[0], 1.0), Member(files[1], 0.99)), False, files[1].size)
    journal = Journal(tmp_path / "j.sqlite3")
    victim = files[-1]
    res = remove_files([victim], groups=[group], journal=journal)
    assert res.done == (victim.path,) and not os.path.exists(victim.path)
    back = undo(journal=journal)
    assert back.done == (victim.path,) and os.path.exists(victim.path)


# -- "Never lose a photo": a stale result, a file moved into its own folder
# -----------------------------------
@pytest.fixture
def four(tmp_path):
    files = _copies(tmp_path / "lib", "c", 4)
    group = Group(tuple(Member(files[k], 1.0 - k / 100) for k in range(4)), True, 3 * files[0].size)
    return files, [group], Journal(tmp_path / "journal.sqlite3")


def test_a_stale_result_cannot_remove_the_last_copies(four):
    files, groups, journal = four
    first = remove_files(files[2:], groups=groups, journal=journal)
    assert first.done == (files[2].path, files[3].path)
    with pytest.raises(ActionError, match="no other copy"):
        check_plan(groups, [files[0].path, files[1].path])
    with pytest.raises(ActionError, match="no other copy"):
        remove_files(files[:2], groups=groups, journal=journal)  # the same, now stale, result
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
    groups = [
        Group(tuple(Member(f, m.similarity) for f, m in zip(files, groups[0].members, strict=True)), True, 0)
    ]
    with pytest.raises(ActionError, match="no other copy"):
        remove_files([files[0]], groups=groups, journal=journal)
    assert os.path.exists(files[0].path)


def test_moving_a_file_into_its_own_folder_is_refused(three):
    files, groups, journal = three
    res = remove_files(
        [files[0]],
        groups=groups,
        mode="move",
        dest=os.path.dirname(files[0].path),
        journal=journal,
    )
    assert res.done == () and res.bytes == 0
    assert "already in the destination folder" in res.problems[0].reason
    assert sorted(os.listdir(os.path.dirname(files[0].path))) == ["p0.jpg", "p1.jpg", "p2.jpg"]


# -- undo puts back only the file it moved, and never over anything
# --------------------------------------------
def _trash_dir() -> str:
    return os.path.join(os.environ["XDG_DATA_HOME"], "Trash")


def _empty_trash() -> None:
    for sub in ("files", "info"):
        folder = os.path.join(_trash_dir(), sub)
        for name in os.listdir(folder) if os.path.isdir(folder) else ():
            os.remove(os.path.join(folder, name))


def _pair(tmp_path, name="b.jpg", data=None):
    """A file in lib/ and its kept copy in keep/, with their group."""
    paths = [tmp_path / "keep" / name, tmp_path / "lib" / name]
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            shutil.copy(DATA / "ok.jpg", p)
        else:
            p.write_bytes(data)
    files = [_record(p) for p in paths]
    return files, [Group((Member(files[0], 1.0), Member(files[1], 1.0)), True, files[1].size)]


def test_undo_never_restores_an_unrelated_file_from_the_trash(tmp_path):
    _empty_trash()
    files, groups = _pair(tmp_path)
    journal = Journal(tmp_path / "j.sqlite3")
    remove_files([files[1]], groups=groups, journal=journal)
    _empty_trash()  # the user empties the trash ...
    other = tmp_path / "other" / "b.jpg"  # ... and a file manager trashes an unrelated b.jpg
    other.parent.mkdir()
    shutil.copy(DATA / "cmyk.jpg", other)
    from send2trash import send2trash

    send2trash(str(other))
    res = undo(journal=journal)
    assert res.done == () and "the trash no longer holds this file" in res.problems[0].reason
    assert not os.path.lexists(files[1].path)
    held = os.path.join(_trash_dir(), "files", "b.jpg")
    assert open(held, "rb").read() == (DATA / "cmyk.jpg").read_bytes()
    assert os.path.exists(os.path.join(_trash_dir(), "info", "b.jpg.trashinfo"))


def test_undo_never_restores_a_file_that_changed_in_the_trash(tmp_path):
    files, groups = _pair(tmp_path, "same-size.jpg", b"A" * 1000)
    journal = Journal(tmp_path / "j.sqlite3")
    remove_files([files[1]], groups=groups, journal=journal)
    held = os.path.join(_trash_dir(), "files", "same-size.jpg")
    with open(held, "r+b") as fh:  # same size, other bytes
        fh.write(b"B")
    res = undo(journal=journal)
    assert res.done == () and "the trash no longer holds this file" in res.problems[0].reason
    assert not os.path.lexists(files[1].path) and os.path.exists(held)


def test_undo_of_a_move_checks_the_moved_file(tmp_path):
    files, groups = _pair(tmp_path, "m.jpg", b"A" * 1000)
    journal = Journal(tmp_path / "j.sqlite3")
    remove_files([files[1]], groups=groups, mode="move", dest=tmp_path / "out", journal=journal)
    (tmp_path / "out" / "m.jpg").write_bytes(b"B" * 1000)  # another file took its name there
    res = undo(journal=journal)
    assert res.done == () and res.problems and not os.path.lexists(files[1].path)


def test_undo_does_not_replace_a_dangling_symlink(tmp_path):
    files, groups = _pair(tmp_path, "d.jpg")
    journal = Journal(tmp_path / "j.sqlite3")
    remove_files([files[1]], groups=groups, journal=journal)
    os.symlink(tmp_path / "nowhere.jpg", files[1].path)
    res = undo(journal=journal)
    assert res.done == () and "already exists" in res.problems[0].reason
    assert os.path.islink(files[1].path)


# -- write-ahead journal: a crash mid-action leaves it undoable
# --------------------------------------------------
class _Crash(BaseException):
    """Stands for the process dying (kill -9): nothing after it runs."""


def test_a_crash_mid_action_leaves_the_interrupted_action_undoable(tmp_path, monkeypatch):
    earlier_files, earlier_groups = _pair(tmp_path, "earlier.jpg")
    journal = Journal(tmp_path / "j.sqlite3")
    earlier = remove_files([earlier_files[1]], groups=earlier_groups, journal=journal)
    lib = tmp_path / "lib"
    keep = _record(tmp_path / "keep" / "earlier.jpg")
    targets = []
    for k in range(5):
        shutil.copy(DATA / "ok.jpg", lib / f"x{k}.jpg")
        targets.append(_record(lib / f"x{k}.jpg"))
    files = [keep, *targets]
    groups = [Group(tuple(Member(files[k], 1.0) for k in range(6)), True, 0)]
    moves = {"n": 0}

    def crash_on_the_fourth(real):
        def move(*a, **kw):
            moves["n"] += 1
            if moves["n"] == 4:
                raise _Crash
            return real(*a, **kw)

        return move

    monkeypatch.setattr(os, "rename", crash_on_the_fourth(os.rename))
    monkeypatch.setattr(os, "link", crash_on_the_fourth(os.link))
    with pytest.raises(_Crash):
        remove_files(targets, groups=groups, journal=journal)
    monkeypatch.undo()
    gone = [t.path for t in targets if not os.path.exists(t.path)]
    assert len(gone) == 3
    fresh = Journal(tmp_path / "j.sqlite3")  # as after a restart
    assert fresh.last_undoable() not in (None, earlier.action_id)
    res = undo(journal=fresh)
    assert sorted(res.done) == sorted(gone) and not res.problems
    assert all(os.path.exists(t.path) for t in targets)
    assert not os.path.exists(earlier_files[1].path)  # the earlier action was left alone
    assert fresh.last_undoable() == earlier.action_id


def test_an_old_journal_is_read_and_undone(tmp_path):
    """Journals written before the write-ahead schema keep working."""
    import sqlite3
    import urllib.parse

    original = tmp_path / "lib" / "old.jpg"
    original.parent.mkdir()
    trash = _trash_dir()
    os.makedirs(os.path.join(trash, "files"), exist_ok=True)
    os.makedirs(os.path.join(trash, "info"), exist_ok=True)
    held = os.path.join(trash, "files", "old.jpg")
    shutil.copy(DATA / "ok.jpg", held)
    info = os.path.join(trash, "info", "old.jpg.trashinfo")
    with open(info, "w") as fh:
        fh.write(
            f"[Trash Info]\nPath={urllib.parse.quote(str(original))}\nDeletionDate=2024-01-01T00:00:00\n"
        )
    conn = sqlite3.connect(tmp_path / "old.sqlite3")
    conn.executescript(
        """
        CREATE TABLE actions (
            id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL, kind TEXT, target TEXT, undone INTEGER DEFAULT 0
        );
        CREATE TABLE entries (action INTEGER, path TEXT, dest TEXT, info TEXT, size INTEGER);
        """
    )
    with conn:
        conn.execute("INSERT INTO actions (time, kind, target) VALUES (0, 'trash', NULL)")
        conn.execute(
            "INSERT INTO entries VALUES (1, ?, ?, ?, ?)",
            (os.fsencode(original), os.fsencode(held), os.fsencode(info), os.path.getsize(held)),
        )
    conn.close()
    journal = Journal(tmp_path / "old.sqlite3")
    assert journal.actions()[0]["files"] == 1
    res = undo(journal=journal)
    assert res.done == (str(original),) and original.read_bytes() == (DATA / "ok.jpg").read_bytes()
    assert not os.path.exists(info)


# -- the cost of trashing does not grow with the trash
# ------------------------------------------------------------
def test_trashing_never_reads_the_other_entries_of_the_trash(tmp_path, monkeypatch):
    import builtins
    import io

    _empty_trash()
    trash = _trash_dir()
    for k in range(2000):  # what other programs put in the trash before
        with open(os.path.join(trash, "files", f"u{k}.jpg"), "wb") as fh:
            fh.write(b"x")
        with open(os.path.join(trash, "info", f"u{k}.jpg.trashinfo"), "w") as fh:
            fh.write(f"[Trash Info]\nPath=/elsewhere/u{k}.jpg\nDeletionDate=2024-01-01T00:00:00\n")
    files, groups = _pair(tmp_path)
    targets = []
    for k in range(20):
        shutil.copy(DATA / "ok.jpg", tmp_path / "lib" / f"t{k}.jpg")
        targets.append(_record(tmp_path / "lib" / f"t{k}.jpg"))
    files = [files[0], *targets]
    groups = [Group(tuple(Member(files[k], 1.0) for k in range(len(files))), True, 0)]
    touched = []

    def spy(real, kind):
        def call(path, *a, **kw):
            p = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else ""
            if p.startswith(trash) and (kind == "list" or os.path.basename(p).startswith("u")):
                touched.append((kind, p))
            return real(path, *a, **kw)

        return call

    monkeypatch.setattr(os, "scandir", spy(os.scandir, "list"))
    monkeypatch.setattr(os, "listdir", spy(os.listdir, "list"))
    monkeypatch.setattr(builtins, "open", spy(builtins.open, "read"))
    monkeypatch.setattr(io, "open", spy(io.open, "read"))
    monkeypatch.setattr(os, "open", spy(os.open, "read"))
    res = remove_files(targets, groups=groups, journal=Journal(tmp_path / "j.sqlite3"))
    assert len(res.done) == 20
    assert touched == []
    monkeypatch.undo()
    back = undo(journal=Journal(tmp_path / "j.sqlite3"))
    assert len(back.done) == 20 and len(os.listdir(os.path.join(trash, "files"))) == 2000


# -- the trash as the spec writes it
# ----------------------------------------------------------------------------
def test_trash_entries_follow_the_spec_and_same_names_do_not_mix(tmp_path):
    import re
    import urllib.parse

    _empty_trash()
    a, groups_a = _pair(tmp_path / "a", "same name.jpg")
    b, groups_b = _pair(tmp_path / "b", "same name.jpg", b"other bytes")
    journal = Journal(tmp_path / "j.sqlite3")
    first = remove_files([a[1]], groups=groups_a, journal=journal)
    remove_files([b[1]], groups=groups_b, journal=journal)
    info = open(os.path.join(_trash_dir(), "info", "same name 1.jpg.trashinfo")).read()
    assert info.startswith("[Trash Info]\n")
    assert f"Path={urllib.parse.quote(b[1].path)}\n" in info and "%20" in info
    assert re.search(r"^DeletionDate=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$", info, re.M)
    undo(first.action_id, journal=journal)  # the older one first: each gets its own file back
    assert open(a[1].path, "rb").read() == (DATA / "ok.jpg").read_bytes()
    undo(journal=journal)
    assert open(b[1].path, "rb").read() == b"other bytes"
    assert os.listdir(os.path.join(_trash_dir(), "info")) == []


@pytest.mark.parametrize("shared", ["sticky", "symlink", "none"])
def test_a_file_on_another_volume_goes_to_that_volumes_trash(tmp_path, monkeypatch, shared):
    """$topdir/.Trash/$uid when .Trash is a real sticky folder, else $topdir/.Trash-$uid; Path= relative."""
    import core.trash as actions

    volume = tmp_path / "vol"
    files, groups = _pair(volume, "v.jpg")
    if shared == "sticky":
        (volume / ".Trash").mkdir(mode=0o1777)
        os.chmod(volume / ".Trash", 0o1777)
    elif shared == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o1777)
        os.symlink(tmp_path / "elsewhere", volume / ".Trash")
    real_device = actions._device
    monkeypatch.setattr(
        actions, "_device", lambda p: -1 if str(p).startswith(_trash_dir()) else real_device(p)
    )
    monkeypatch.setattr(actions, "_mount_point", lambda p: volume)
    journal = Journal(tmp_path / "j.sqlite3")
    remove_files([files[1]], groups=groups, journal=journal)
    trash = volume / ".Trash" / str(os.getuid()) if shared == "sticky" else volume / f".Trash-{os.getuid()}"
    assert os.listdir(trash / "files") == ["v.jpg"]
    assert "Path=lib/v.jpg\n" in (trash / "info" / "v.jpg.trashinfo").read_text()
    assert not os.listdir(tmp_path / "elsewhere") if shared == "symlink" else True
    back = undo(journal=journal)
    assert back.done == (files[1].path,) and os.listdir(trash / "info") == []


def test_where_the_spec_cannot_be_followed_send2trash_does_it_and_undo_finds_it(tmp_path, monkeypatch):
    import core.trash as actions

    _empty_trash()
    files, groups = _pair(tmp_path, "fallback.jpg")
    monkeypatch.setattr(actions, "_trash_for", lambda path: None)
    journal = Journal(tmp_path / "j.sqlite3")
    res = remove_files([files[1]], groups=groups, journal=journal)
    assert res.done == (files[1].path,)
    kind, entries = journal.entries(res.action_id)
    assert entries[0].dest and entries[0].dest.endswith("fallback.jpg")
    with journal._conn:  # as if killed right after send2trash, before the destination was written
        journal._conn.execute("UPDATE entries SET dest = NULL, info = NULL, state = 'started'")
    back = undo(journal=journal)
    assert back.done == (files[1].path,) and not back.problems


def test_cancel_stops_between_batches_and_keeps_what_was_done_undoable(tmp_path):
    from core.progress import CancelToken

    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(DATA / "ok.jpg", lib / "keep.jpg")
    targets = []
    for k in range(70):
        shutil.copy(DATA / "ok.jpg", lib / f"n{k}.jpg")
        targets.append(_record(lib / f"n{k}.jpg"))
    files = [_record(lib / "keep.jpg"), *targets]
    groups = [Group(tuple(Member(files[k], 1.0) for k in range(len(files))), True, 0)]
    token = CancelToken()
    journal = Journal(tmp_path / "j.sqlite3")

    def progress(done, total, message):
        if done == 10:
            token.cancel()

    res = remove_files(targets, groups=groups, journal=journal, progress=progress, cancel=token)
    assert 10 <= len(res.done) < 70  # the batch under way finishes; the next one never starts
    assert sum(os.path.exists(t.path) for t in targets) == 70 - len(res.done)
    assert len(undo(journal=journal).done) == len(res.done)


def test_undo_finds_the_file_trashed_again_under_another_name(tmp_path):
    """Restored by hand, its trash name taken by another file, trashed again by a file manager: still
    found."""
    from send2trash import send2trash

    _empty_trash()
    files, groups = _pair(tmp_path, "again.jpg")
    journal = Journal(tmp_path / "j.sqlite3")
    remove_files([files[1]], groups=groups, journal=journal)
    trash = _trash_dir()
    os.rename(os.path.join(trash, "files", "again.jpg"), files[1].path)  # restored by hand
    os.remove(os.path.join(trash, "info", "again.jpg.trashinfo"))
    other = tmp_path / "other" / "again.jpg"
    other.parent.mkdir()
    shutil.copy(DATA / "cmyk.jpg", other)
    send2trash(str(other))  # takes the name again.jpg
    send2trash(files[1].path)  # so this one becomes "again 1.jpg"
    res = undo(journal=journal)
    assert res.done == (files[1].path,) and open(files[1].path, "rb").read() == (DATA / "ok.jpg").read_bytes()
    assert open(os.path.join(trash, "files", "again.jpg"), "rb").read() == (DATA / "cmyk.jpg").read_bytes()
    assert sorted(os.listdir(os.path.join(trash, "info"))) == ["again.jpg.trashinfo"]


def test_an_untrusted_volume_trash_is_never_searched_or_cleaned(tmp_path, monkeypatch):
    """A symlinked or non-sticky $topdir/.Trash (another user may control it) was searched by undo and had
    matching .trashinfo files deleted by the clean-up of interrupted actions."""
    import core.trash as trash

    volume = tmp_path / "vol"
    for kind in ("symlink", "not sticky"):
        shutil.rmtree(volume, ignore_errors=True)
        volume.mkdir(parents=True)
        target = tmp_path / f"elsewhere-{kind.replace(' ', '-')}"
        (target / str(os.getuid()) / "info").mkdir(parents=True)
        if kind == "symlink":
            os.symlink(target, volume / ".Trash")
        else:
            os.rename(target, volume / ".Trash")
            os.chmod(volume / ".Trash", 0o777)
        monkeypatch.setattr(trash, "_mount_point", lambda p: volume)
        assert trash._trash_dirs(str(volume / "lib" / "v.jpg")) == [
            d for d in [Path(_trash_dir())] if (d / "info").is_dir()
        ], kind


def test_a_copy_across_devices_that_fails_leaves_no_half_file(tmp_path, monkeypatch):
    """Moving to another device copies; a copy that failed part-way (a full disk) left a partial file."""
    import errno as errno_

    import core.actions as actions

    src = tmp_path / "a.jpg"
    shutil.copy(DATA / "ok.jpg", src)
    dst = tmp_path / "dest.jpg"

    def full(fin, fout, length=0):
        fout.write(fin.read(100))
        raise OSError(errno_.ENOSPC, "No space left on device")

    monkeypatch.setattr(actions.shutil, "copyfileobj", full)
    with pytest.raises(OSError, match="No space"):
        actions._copy_then_unlink(str(src), str(dst))
    assert not dst.exists() and src.read_bytes() == (DATA / "ok.jpg").read_bytes()
