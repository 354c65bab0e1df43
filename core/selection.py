"""Auto-select rules: which copies of each group to mark for removal (the app lists them, the engine decides).

A rule picks the one copy to keep in every group; the others are marked, except files in a reference
folder, which are never marked. A group is therefore never marked whole. A RAW file and the JPEG the camera
wrote beside it (``Group.raw_pairs``) are kept together on purpose: only the rule that says so ("raw")
marks such a JPEG.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Set

from core.grouping import rank_copies
from core.results import Group, ImageRecord, Member, ScanResult

RULES: dict[str, str] = {
    "resolution": "Keep the highest resolution",
    "size": "Keep the largest file",
    "oldest": "Keep the oldest",
    "newest": "Keep the newest",
    "reference": "Keep the copy in a reference folder",
    "raw": "Keep the RAW file (also marks the JPEG of RAW+JPEG pairs)",
}


def in_folders(path: str, folders: Iterable[str]) -> bool:
    """True if ``path`` lies inside one of ``folders`` (at any depth)."""
    path = os.path.normcase(os.path.abspath(path))
    for folder in folders:
        root = os.path.normcase(os.path.abspath(folder)).rstrip(os.sep) + os.sep
        if path.startswith(root):
            return True
    return False


def _date_key(rec: ImageRecord) -> tuple:
    # The date the photo was taken when the camera recorded it, else the file's modification time.
    return (rec.taken or "9999", rec.mtime_ns)


def _keeper(group: Group, rule: str, reference: list[str]) -> int:
    """The position in ``group`` of the copy ``rule`` keeps."""
    members = group.files
    camera = any(r.taken for r in members)
    # Of equal resolution, the one the best-copy rule ranks first (an original before a later re-save that
    # kept its EXIF), not the larger file: ranked for that rule only
    rank = {id(members[k]): n for n, k in enumerate(rank_copies(members))} if rule == "resolution" else {}

    keys: dict[str, Callable[[ImageRecord], tuple]] = {
        # Among the camera's captures when there are any, and of those the files at the size the camera
        # recorded: an enlarged export has more pixels, not more photo. The file dates say nothing here: an
        # original copied again is newer than the small export made from it.
        "resolution": lambda r: (camera and not r.taken, r.resized, -r.pixels, rank[id(r)]),
        "size": lambda r: (-r.size, -r.pixels),
        "oldest": _date_key,
    }
    if rule == "newest":
        order = sorted(range(len(members)), key=lambda k: _date_key(members[k]), reverse=True)
        return order[0]
    if rule == "raw":
        return next((k for k, rec in enumerate(members) if rec.is_raw), 0)
    if rule == "reference":
        for k, rec in enumerate(members):
            if in_folders(rec.path, reference):
                return k
        return 0  # no copy in a reference folder: keep the engine's best copy
    if rule not in keys:
        raise ValueError(f"unknown auto-select rule {rule!r}; choose one of {', '.join(RULES)}")
    return min(range(len(members)), key=lambda k: keys[rule](members[k]))


def choose(result: ScanResult, rule: str, reference: Iterable[str] = ()) -> set[str]:
    """Paths to mark under ``rule``: every copy but one per duplicate group, never a file in a reference
    folder, and never either file of a RAW+JPEG pair unless ``rule`` is "raw".

    Similar shots (``result.similar_groups``) are other captures, not copies: a rule never marks them; nor a
    member the check was not sure of (``Member.unsure``: it could be another exposure or a burst frame),
    unless a byte-identical twin of it stays (``twin_kept``): then no picture goes."""
    reference = list(reference)
    return {p for g in result.groups for p in _marked(g, rule, reference)[0]}


def left_unsure(result: ScanResult, rule: str, reference: Iterable[str] = ()) -> int:
    """How many files ``choose`` leaves under ``rule`` only because the check was not sure of them."""
    reference = list(reference)
    return sum(_marked(g, rule, reference)[1] for g in result.groups)


def left_unsure_groups(result: ScanResult, rule: str, reference: Iterable[str] = ()) -> int:
    """In how many groups ``choose`` leaves a file under ``rule`` because the check was not sure of it."""
    reference = list(reference)
    return sum(_marked(g, rule, reference)[1] > 0 for g in result.groups)


def twin_kept(group: Group, member: Member, marked: Set[str]) -> bool:
    """Whether a byte-identical twin of ``member`` (``Member.twin_of``) stays in ``group`` when ``marked``
    go: then removing ``member`` loses no picture, whatever the check doubted about it."""
    return any(m.file.path not in marked for m in group.twins(member))


def _marked(group: Group, rule: str, reference: list[str]) -> tuple[set[str], int]:
    """What ``rule`` marks in ``group`` and how many members it leaves because the check was unsure of them.
    Of unsure members byte-identical to each other, all go but one when none of them is kept otherwise."""
    removable = _removable(group, rule, reference)
    marked = {m.file.path for m in removable if not m.unsure}
    unsure = [m for m in removable if m.unsure]
    twins: dict[str, list[Member]] = {}
    for m in unsure:
        if m.twin_of:
            twins.setdefault(m.twin_of, []).append(m)
    for same in twins.values():
        paths = [m.file.path for m in same]
        if twin_kept(group, same[0], marked | set(paths)):
            marked.update(paths)  # another file with these bytes stays (the keeper, a reference copy...)
        elif len(same) > 1:  # the rule keeps one of them; of equals, the one ranked first (the older file)
            same = [same[k] for k in rank_copies([m.file for m in same])]
            paths = [m.file.path for m in same]
            keep = _keeper(Group(tuple(same), True, 0), rule, reference)
            marked.update(p for k, p in enumerate(paths) if k != keep)
    return marked, sum(m.file.path not in marked for m in unsure)


def _removable(group: Group, rule: str, reference: list[str]) -> list[Member]:
    """The members of ``group`` that ``rule`` would mark if the check had been sure of every one: all but
    the one it keeps, a RAW+JPEG pair's files (unless the rule is "raw") and files in a reference folder."""
    keep = _keeper(group, rule, reference)
    paired = set() if rule == "raw" else {r.path for pair in group.raw_pairs for r in pair}
    return [
        m
        for k, m in enumerate(group.members)
        if k != keep and m.file.path not in paired and not in_folders(m.file.path, reference)
    ]
