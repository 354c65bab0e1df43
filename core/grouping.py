"""Turn confirmed pairs into groups of near-duplicates that do not chain.

Rule (complete linkage): every two members of a group are at or above the threshold. A~B and B~C put A, B
and C together only when A~C too. Components of the pair graph that are already cliques (almost all of them)
become groups at once; the others are split by merging clusters in order of decreasing similarity, a merge
allowed only when every cross pair is a confirmed pair.
"""

from __future__ import annotations

import functools
import hashlib
import marshal
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from core.results import Group, ImageRecord, Member, Pairs

# Files written within this long after the group's oldest one count as equally old (a copy that kept its date,
# a burst of saves); a derivative (an export, a download, an upscale) is made later than that.
SAME_AGE_NS = 60 * 1_000_000_000


def components(n: int, i: np.ndarray, j: np.ndarray, parent: np.ndarray | None = None) -> np.ndarray:
    """Connected-component labels of the graph on ``n`` nodes with edges ``(i[k], j[k])``: each node's label
    is the smallest node of its component. ``parent``: the labels of the edges seen so far, to continue from
    (``core.cluster`` streams millions of edges through in chunks); it is not changed.

    Hook every edge's larger root under its smaller one, then jump pointers until each node points at its
    root; repeat until no edge joins two roots. Vectorised, a few rounds for any real graph, and it keeps
    scipy out of the app (52 MB of the installer).
    """
    parent = np.arange(n, dtype=np.int64) if parent is None else np.array(parent, np.int64)
    if not len(i):
        return parent
    i, j = np.asarray(i, np.int64), np.asarray(j, np.int64)
    while True:
        pi, pj = parent[i], parent[j]
        apart = pi != pj
        if not apart.any():
            return parent
        lo, hi = np.minimum(pi[apart], pj[apart]), np.maximum(pi[apart], pj[apart])
        np.minimum.at(parent, hi, lo)
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped


def rank_copies(records: list[ImageRecord]) -> list[int]:
    """Positions of ``records`` (copies of one photo), the copy to keep first.

    The rule, so that no upscaled or re-encoded derivative is kept over its original:
    0. a camera RAW file before anything else: it is the capture itself;
    1. a file with the camera's capture date (EXIF DateTimeOriginal) before one without: editors and
       converters drop it, cameras write it;
    2. among those, one at the size the camera recorded (EXIF PixelXDimension: a file enlarged, reduced or
       cropped since is not the camera's), then the oldest file (within a minute of the oldest): derivatives
       are made later;
    3. then the higher resolution, then the larger file (more bytes per pixel at equal content), then the
       shorter path and the path itself (a stable tie-break).
    """
    with_exif = [r for r in records if r.taken]
    pool = with_exif or records
    oldest = min(r.mtime_ns for r in pool)

    def key(k: int) -> tuple:
        r = records[k]
        late = r.mtime_ns > oldest + SAME_AGE_NS
        return (
            not r.is_raw,
            not r.taken if with_exif else False,
            r.resized,
            late,
            -r.pixels,
            -r.size,
            len(r.path),
            r.path,
        )

    return sorted(range(len(records)), key=key)


def _clusters(
    nodes: np.ndarray, a: np.ndarray, b: np.ndarray, s: np.ndarray, share: float = 1.0
) -> list[list[int]]:
    """Complete-linkage clusters of one connected component with edges ``(a[k], b[k], s[k])``.

    Edges are taken by decreasing similarity; two clusters merge when every cross pair is an edge, which is
    when the number of edges between them equals ``|A| x |B|``. Those counts are kept per pair of clusters and
    summed on a merge (the smaller cluster folds into the larger), so the work is about E log V, not the
    |A| x |B| look-ups per candidate merge that took 183 s for 1.8M pairs.
    """
    m = len(nodes)
    if len(a) >= share * (m * (m - 1) // 2):
        return [nodes.tolist()]
    links: dict[int, dict[int, int]] = {int(u): {} for u in nodes}
    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        links[x][y] = 1
        links[y][x] = 1
    owner = {int(u): int(u) for u in nodes}
    members = {int(u): [int(u)] for u in nodes}
    order = np.lexsort((b, a, -s))  # by similarity, best first; ties by (a, b)
    for x, y in zip(a[order].tolist(), b[order].tolist(), strict=True):
        ca, cb = owner[x], owner[y]
        if ca == cb:
            continue
        A, B = members[ca], members[cb]
        if links[ca].get(cb, 0) < share * len(A) * len(B):
            continue
        if len(A) < len(B):
            ca, cb, A, B = cb, ca, B, A
        A.extend(B)
        for z in B:
            owner[z] = ca
        del members[cb]
        into, gone = links[ca], links.pop(cb)
        del into[cb]
        for c, n in gone.items():
            if c == ca:
                continue
            into[c] = into.get(c, 0) + n
            lc = links[c]
            lc[ca] = lc.get(ca, 0) + lc.pop(cb)
    return [c for c in members.values() if len(c) > 1]


def with_unsure(groups: Sequence[Group], unsure: set[tuple[str, str]]) -> tuple[Group, ...]:
    """``groups`` with ``Member.unsure_with`` naming, for every file of a pair of ``unsure`` (path pairs,
    sorted: verified pairs whose check was not sure they are one photo, ``core.verify.unsure``), the other
    file of each of its pairs: the group's members first, in group order, then files outside the group by
    path. A doubt outlives the strictness: a frame whose other exposure a stricter slider leaves out of the
    group is still one the check was unsure of, and auto-select still leaves it."""
    if not unsure:
        return tuple(groups)
    partners: dict[str, set[str]] = {}
    for a, b in unsure:
        partners.setdefault(a, set()).add(b)
        partners.setdefault(b, set()).add(a)
    out = []
    for g in groups:
        order = [m.file.path for m in g.members]
        # most groups: nothing to look at (a big one stays O(n)); and in a group of byte-identical files a
        # doubt about a file outside it cannot matter: removing one of them loses nothing
        if g.exact or not any(p in partners for p in order):
            out.append(g)
            continue
        at = {p: k for k, p in enumerate(order)}
        doubts = {p: sorted(partners.get(p, ()), key=lambda q: (q not in at, at.get(q, 0), q)) for p in order}
        g = replace(
            g,
            members=tuple(replace(m, unsure_with=tuple(doubts[m.file.path])) for m in g.members),
        )
        out.append(g)
    return tuple(out)


def group_pairs(
    files: Sequence[ImageRecord],
    pairs: Pairs,
    threshold: float,
    *,
    identical: Callable[[int, int], bool] | None = None,
    ignored: set[tuple[str, str]] | None = None,
    share: float = 1.0,
    similarity: Callable[[int, int], float] | None = None,
    order: np.ndarray | None = None,
) -> list[Group]:
    """Groups of ``files`` from the ``pairs`` at or above ``threshold``, largest reclaimable space first.

    ``identical(a, b)`` says whether two files are byte-identical (for exact-copy badges); ``ignored`` holds
    path pairs a person marked "not a duplicate". ``share``: the part of the cross pairs two clusters need to
    merge (1.0: complete linkage, every two members a pair; less lets loosely knit sets such as a burst or a
    panorama sequence stay together without chaining everything). ``similarity(a, b)`` gives a member's
    similarity to the best copy where the two are not a pair of the table (a loosely knit group, ``share``
    < 1). ``order``: per pair of ``pairs``, which merge first, highest first (default: the most similar);
    the members' similarities stay the pairs' own.
    """
    keep = pairs.similarity >= threshold
    pairs = pairs.select(keep)
    o = None if order is None else np.asarray(order, np.float32)[keep]
    if ignored and len(pairs):
        drop = np.fromiter(
            (
                tuple(sorted((files[a].path, files[b].path))) in ignored
                for a, b in zip(pairs.a.tolist(), pairs.b.tolist(), strict=True)
            ),
            dtype=bool,
            count=len(pairs),
        )
        pairs = pairs.select(~drop)
        o = None if o is None else o[~drop]
    i, j, s = pairs.a, pairs.b, pairs.similarity
    o = s if o is None else o
    n = len(files)
    if not len(i):
        return []
    _, labels = np.unique(components(n, i, j), return_inverse=True)
    sizes = np.bincount(labels)
    # Nodes and edges of components with two or more nodes, bucketed by component.
    nodes = np.nonzero(sizes[labels] > 1)[0]
    nodes = nodes[np.argsort(labels[nodes], kind="stable")]
    node_splits = np.split(nodes, np.cumsum(np.bincount(labels[nodes]))[:-1]) if len(nodes) else []
    edge_order = np.argsort(labels[i], kind="stable")
    ei, ej, es, eo = i[edge_order], j[edge_order], s[edge_order], o[edge_order]
    edge_bounds = np.searchsorted(labels[ei], np.arange(len(sizes) + 1))
    groups: list[Group] = []
    for comp_nodes in node_splits:
        if len(comp_nodes) < 2:
            continue
        c = labels[comp_nodes[0]]
        lo, hi = edge_bounds[c], edge_bounds[c + 1]
        ca, cb, cs, co = ei[lo:hi], ej[lo:hi], es[lo:hi], eo[lo:hi]
        sim = dict(zip(zip(ca.tolist(), cb.tolist(), strict=True), cs.tolist(), strict=True))
        for cluster in _clusters(comp_nodes, ca, cb, co, share):
            groups.append(_make_group(files, cluster, sim, identical, similarity))
    groups.sort(key=group_order)
    return groups


def group_order(g: Group) -> tuple:
    """How groups are listed: most reclaimable space first, then the larger group, then the best copy's
    path."""
    return (-g.reclaimable, -len(g.members), g.members[0].file.path)


def _make_group(
    files: Sequence[ImageRecord],
    cluster: list[int],
    sim: dict[tuple[int, int], float],
    identical: Callable[[int, int], bool] | None,
    similarity: Callable[[int, int], float] | None = None,
) -> Group:
    """One group of the files at positions ``cluster``: the copy to keep first, then by similarity to it."""
    ordered = [cluster[k] for k in rank_copies([files[x] for x in cluster])]
    best = ordered[0]

    def same(a: int, b: int) -> bool:
        return bool(identical and files[a].size == files[b].size and identical(a, b))

    # byte-identical members by the first of them (in ranked order): equal bytes are an equivalence
    twin_of: dict[int, int] = {}
    for k, a in enumerate(ordered):
        if a in twin_of:
            continue
        for b in ordered[k + 1 :]:
            if b not in twin_of and same(a, b):
                twin_of[a] = twin_of[b] = a
    members = [Member(files[best], 1.0, files[twin_of[best]].path if best in twin_of else "")]
    for x in ordered[1:]:
        key = (min(best, x), max(best, x))
        value = sim[key] if key in sim else similarity(best, x) if similarity else 0.0
        members.append(
            Member(files[x], round(float(value), 6), files[twin_of[x]].path if x in twin_of else "")
        )
    # Others sorted by similarity to the best copy, most similar first; ties by path.
    members[1:] = sorted(members[1:], key=lambda m: (-m.similarity, m.file.path))
    exact = all(same(best, x) for x in ordered[1:])
    reclaimable = sum(m.file.size for m in members[1:])
    return Group(tuple(members), exact, reclaimable)


@functools.cache
def code_digest() -> str:
    """A digest of this module's code: saved groups (``core.pair_store``) are named for it, so that any
    change to how groups are made means making them again."""
    h = hashlib.blake2b(digest_size=16)
    for f in (components, rank_copies, _clusters, group_pairs, group_order, _make_group):
        h.update(marshal.dumps(f.__code__))
    return h.hexdigest()
