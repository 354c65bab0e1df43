"""The result shapes themselves: the pairs table, and groups whose members carry their records."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from helpers import DATA

from core.actions import Journal, remove_files
from core.errors import ActionError
from core.grouping import group_pairs
from core.index import merge_pairs
from core.results import Group, ImageRecord, Match, Member, Pairs


def _records(n: int) -> list[ImageRecord]:
    return [ImageRecord(f"/p/{k}.jpg", 1000 + k, k, 10, 10, "JPEG") for k in range(n)]


def test_the_pairs_table_round_trips():
    a, b = np.array([0, 1, 0]), np.array([2, 2, 1])
    s = np.array([0.9, 0.95, 0.99])
    pairs = Pairs(a, b, s)
    # Columns are typed once, whatever came in.
    assert pairs.a.dtype == np.int64 and pairs.b.dtype == np.int64 and pairs.similarity.dtype == np.float32
    assert len(pairs) == 3
    assert Pairs(pairs.a, pairs.b, pairs.similarity) == pairs
    assert pairs.select(np.array([True, False, True])) == Pairs([0, 0], [2, 1], [0.9, 0.99])
    assert pairs.select(np.array([2, 0])) == Pairs([0, 0], [1, 2], [0.99, 0.9])
    assert merge_pairs(pairs, Pairs.empty()) == pairs.select(np.array([2, 0, 1]))  # sorted by (a, b)
    files = _records(3)
    assert pairs.matches(files) == (
        Match(files[0], files[2], round(float(np.float32(0.9)), 6)),
        Match(files[1], files[2], round(float(np.float32(0.95)), 6)),
        Match(files[0], files[1], 0.99),
    )
    assert Pairs.empty() == Pairs([], [], []) and len(Pairs.empty()) == 0


def test_a_pairs_table_is_not_a_triple():
    """The old shape was an ``(i, j, s)`` tuple; unpacking the table must fail loudly, not silently."""
    with pytest.raises(TypeError):
        i, j, s = Pairs([0], [1], [0.9])
    with pytest.raises(ValueError, match="shape"):
        Pairs([0, 1], [1], [0.9])


def test_group_members_are_the_files_records():
    files = _records(4)
    pairs = Pairs([0, 2], [1, 3], [0.99, 0.98])
    groups = group_pairs(files, pairs, 0.9)
    assert [g.files for g in groups] == [(files[3], files[2]), (files[1], files[0])]
    assert all(any(m.file is f for f in files) for g in groups for m in g.members)
    assert groups[0].paths == [files[3].path, files[2].path]


def test_remove_files_needs_only_the_groups(tmp_path):
    """The groups know their files: the last copy of a group is protected without any other list."""
    folder = tmp_path / "photos"
    folder.mkdir()
    recs = []
    for k in range(2):
        shutil.copy(DATA / "ok.jpg", folder / f"p{k}.jpg")
        st = os.stat(folder / f"p{k}.jpg")
        recs.append(ImageRecord(str(folder / f"p{k}.jpg"), st.st_size, st.st_mtime_ns, 320, 200, "JPEG"))
    group = Group((Member(recs[0], 1.0), Member(recs[1], 1.0)), True, recs[1].size)
    journal = Journal(tmp_path / "j.sqlite3")
    with pytest.raises(ActionError, match="every copy"):
        remove_files(recs, groups=[group], journal=journal)
    assert all(os.path.exists(r.path) for r in recs)
    done = remove_files([recs[1]], groups=[group], journal=journal)
    assert done.done == (recs[1].path,) and os.path.exists(recs[0].path)
