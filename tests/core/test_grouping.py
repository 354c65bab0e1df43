"""Pairs and groups on controlled vectors: no chaining, determinism, Annoy never invents a pair."""

from __future__ import annotations

import numpy as np
import pytest

from core.grouping import group_pairs
from core.index import VectorIndex, annoy_pairs, candidate_pairs, exact_pairs
from core.results import ImageRecord, Pairs


def _files(n, sizes=None):
    sizes = sizes or [1000 + k for k in range(n)]
    return [ImageRecord(f"/p/{k:03d}.jpg", sizes[k], k, 100, 100, "JPEG") for k in range(n)]


def _at(files, group):
    """The positions in ``files`` of a group's members, in the group's order."""
    where = {f.path: k for k, f in enumerate(files)}
    return [where[r.path] for r in group.files]


def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_chain_is_not_merged():
    # A~B (0.95), B~C (0.95), A~C (0.80) at threshold 0.9: {A,B} or {B,C}, never {A,B,C}.
    files = _files(3)
    i, j, s = np.array([0, 1, 0]), np.array([1, 2, 2]), np.array([0.95, 0.96, 0.80], np.float32)
    groups = group_pairs(files, Pairs(i, j, s), 0.9)
    assert len(groups) == 1 and sorted(_at(files, groups[0])) == [1, 2]  # the stronger link wins
    # With A~C above the threshold too, they form one group.
    s2 = np.array([0.95, 0.96, 0.91], np.float32)
    assert sorted(_at(files, group_pairs(files, Pairs(i, j, s2), 0.9)[0])) == [0, 1, 2]


def test_hand_computed_groups_and_order():
    # Two cliques and a singleton; sizes make the second group the larger reclaim.
    files = _files(6, sizes=[100, 90, 5000, 4000, 3000, 7])
    i = np.array([0, 2, 2, 3])
    j = np.array([1, 3, 4, 4])
    s = np.array([0.99, 0.97, 0.95, 0.96], np.float32)
    groups = group_pairs(files, Pairs(i, j, s), 0.9)
    assert [_at(files, g) for g in groups] == [[2, 3, 4], [0, 1]]
    assert groups[0].reclaimable == 7000 and groups[1].reclaimable == 90
    assert groups[0].members[1].similarity == pytest.approx(0.97)


def test_ignored_pairs_are_dropped():
    files = _files(2)
    g = group_pairs(
        files,
        Pairs(np.array([0]), np.array([1]), np.array([0.99], np.float32)),
        0.9,
        ignored={(files[0].path, files[1].path)},
    )
    assert g == []


def _planted(n=3000, d=64, groups=200, seed=0):
    rng = np.random.default_rng(seed)
    base = _unit(rng.normal(size=(n, d)))
    for g in range(groups):  # each planted group: 3 noisy copies of one vector
        src = base[g * 3]
        for k in (1, 2):
            base[g * 3 + k] = _unit(src + rng.normal(scale=0.15, size=d) / np.sqrt(d))
    return base


def test_exact_pairs_match_brute_force():
    v = _planted(500, 32, 40)
    p = exact_pairs(v, 0.9, block=64)
    i, j, s = p.a, p.b, p.similarity
    sims = v @ v.T
    bi, bj = np.nonzero(np.triu(sims >= 0.9, 1))
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == set(zip(bi.tolist(), bj.tolist(), strict=True))
    assert np.allclose(s, sims[i, j], atol=1e-5)


def test_annoy_recall_and_no_invented_pairs():
    v = _planted()
    exact = exact_pairs(v, 0.9)
    truth = set(zip(exact.a.tolist(), exact.b.tolist(), strict=True))
    p = annoy_pairs(VectorIndex(v), 0.9)
    found = set(zip(p.a.tolist(), p.b.tolist(), strict=True))
    assert found <= truth  # confirmed by exact cosine: never invented
    assert len(found) / len(truth) >= 0.99
    assert (p.similarity >= 0.9).all()


def test_candidate_pairs_are_deterministic():
    v = _planted(800, 32, 50)
    a = candidate_pairs(v, 0.9, method="annoy")
    b = candidate_pairs(v, 0.9, method="annoy")
    assert len(a) and a == b


def test_big_group_is_not_cut_at_k():
    rng = np.random.default_rng(1)
    src = _unit(rng.normal(size=64))
    burst = _unit(src + rng.normal(scale=0.05, size=(100, 64)) / 8)  # 100 near-identical shots
    v = np.vstack([burst, _unit(rng.normal(size=(400, 64)))])
    assert len(annoy_pairs(VectorIndex(v), 0.9, k=16)) == 100 * 99 // 2


def test_index_save_load_query(tmp_path):
    v = _planted(300, 16, 10)
    idx = VectorIndex(v)
    idx.save(tmp_path / "x.ann")
    again = VectorIndex.load(tmp_path / "x.ann", v)
    assert [h[0] for h in again.query(v[0], 3, exclude=0)][:2] == [1, 2]
    with pytest.raises(ValueError):
        VectorIndex.load(tmp_path / "x.ann", v[:10])


def test_turned_pairs_and_merge():
    from core.index import merge_pairs, turned_pairs

    rng = np.random.default_rng(5)
    v = _unit(rng.normal(size=(6, 16)))
    turned = np.stack([_unit(v[4] + 0.01 * rng.normal(size=16)), _unit(rng.normal(size=16))])
    owner = np.array([1, 1])  # image 1's turned embeddings: the first looks like image 4
    p = turned_pairs(v, turned, owner, 0.9)
    assert list(zip(p.a.tolist(), p.b.tolist(), strict=True)) == [(1, 4)] and p.similarity[0] > 0.99
    # Never pairs an image with itself, even when its turn looks like itself.
    assert len(turned_pairs(v, v[[2]], np.array([2]), 0.9)) == 0
    # Merge keeps one row per pair, the highest similarity, sorted.
    m = merge_pairs(Pairs(np.array([1, 0]), np.array([4, 3]), np.array([0.91, 0.95], np.float32)), p)
    assert (
        m.a.tolist() == [0, 1]
        and m.b.tolist() == [3, 4]
        and m.similarity[1] == pytest.approx(p.similarity[0])
    )
    # The Annoy path agrees with the exact one.
    a = turned_pairs(v, turned, owner, 0.9, index=VectorIndex(v))
    assert a.a.tolist() == p.a.tolist() and a.b.tolist() == p.b.tolist()


def _reference_clusters(nodes, edges):
    """The rule spelled out plainly (the old, quadratic implementation): merge by decreasing similarity while
    every cross pair is an edge."""
    adj = {int(u): set() for u in nodes}
    for _, a, b in edges:
        adj[a].add(b)
        adj[b].add(a)
    owner = {int(u): int(u) for u in nodes}
    members = {int(u): [int(u)] for u in nodes}
    for _, a, b in sorted(edges, key=lambda e: (-e[0], e[1], e[2])):
        ca, cb = owner[a], owner[b]
        if ca == cb:
            continue
        A, B = members[ca], members[cb]
        if all(y in adj[x] for x in A for y in B):
            if len(A) < len(B):
                ca, cb, A, B = cb, ca, B, A
            A.extend(B)
            for y in B:
                owner[y] = ca
            del members[cb]
    return [c for c in members.values() if len(c) > 1]


@pytest.mark.parametrize("seed", range(6))
def test_fast_complete_linkage_equals_the_plain_rule(seed):
    from core.grouping import _clusters

    rng = np.random.default_rng(seed)
    n = 60
    nodes = np.arange(n)
    a, b = np.triu_indices(n, 1)
    keep = rng.random(len(a)) < (0.5 if seed % 2 else 0.15)
    a, b = a[keep], b[keep]
    s = rng.choice(np.linspace(0.9, 1.0, 7), len(a)).astype(np.float32)  # ties on purpose
    edges = [(float(x), int(p), int(q)) for p, q, x in zip(a, b, s, strict=True)]
    assert _clusters(nodes, a, b, s) == _reference_clusters(nodes, edges)


def test_a_degenerate_folder_costs_bounded_pairs_and_groups_never_chain():
    """2,000 near-identical images (smooth gradients) gave 1.8M pairs, a group of 955 and 183 s in
    result()."""
    from core.index import MAX_PARTNERS

    rng = np.random.default_rng(0)
    n = 2000
    v = _unit(rng.normal(size=256) + rng.normal(size=(n, 256)) * 0.02)
    p = candidate_pairs(v, 0.786)
    i, j, s = p.a, p.b, p.similarity
    assert len(p) <= MAX_PARTNERS * n
    assert np.bincount(i, minlength=n).max() <= MAX_PARTNERS
    files = _files(n)
    groups = group_pairs(files, p, 0.8858)
    pairs = set(zip(i[s >= 0.8858].tolist(), j[s >= 0.8858].tolist(), strict=True))
    for g in groups:  # complete linkage: every two members are a confirmed pair
        idx = sorted(_at(files, g))
        assert all((x, y) in pairs for k, x in enumerate(idx) for y in idx[k + 1 :])


@pytest.mark.parametrize("bad", [1e-300, 0.0, -1.0, float("nan"), 1.5])
def test_thresholds_that_keep_everything_are_refused(bad, tmp_path, engine_factory):
    from core.index import check_threshold

    with pytest.raises(ValueError, match="between"):
        check_threshold(bad)
    with pytest.raises(ValueError, match="between"):
        engine_factory().scan([tmp_path], floor=bad)


@pytest.mark.parametrize("seed", range(4))
def test_components_match_a_plain_search(seed):
    from core.grouping import components

    rng = np.random.default_rng(seed)
    n = 300
    i = rng.integers(0, n, 250)
    j = rng.integers(0, n, 250)
    labels = components(n, i, j)
    adj = {k: set() for k in range(n)}
    for a, b in zip(i.tolist(), j.tolist(), strict=True):
        adj[a].add(b)
        adj[b].add(a)
    for start in range(n):  # the label is the smallest node reachable from each node
        seen, stack = {start}, [start]
        while stack:
            for nxt in adj[stack.pop()] - seen:
                seen.add(nxt)
                stack.append(nxt)
        assert labels[start] == min(seen)
    chain = components(10_000, np.arange(9_999), np.arange(1, 10_000))  # a long chain: still one component
    assert (chain == 0).all()


def test_a_loosely_knit_group_reports_each_members_similarity_to_the_best_copy():
    # A burst A~B, B~C, A~C missing (below the floor): with share 0.5 the three form one similar-shots group.
    # C's similarity to the best copy is not a pair of the table; it must come from the vectors, not read 0.
    files = _files(3, sizes=[3000, 2000, 1000])
    i, j, s = np.array([0, 1]), np.array([1, 2]), np.array([0.9, 0.9], np.float32)
    vectors = _unit([[1.0, 0.0], [0.9, 0.43], [0.6, 0.8]])
    groups = group_pairs(
        files, Pairs(i, j, s), 0.8, share=0.5, similarity=lambda a, b: float(vectors[a] @ vectors[b])
    )
    assert len(groups) == 1 and len(groups[0].members) == 3
    by_path = {m.file.path: m.similarity for m in groups[0].members}
    best = _at(files, groups[0])[0]
    paired = (
        {best}
        | {int(b) for a, b in zip(i, j, strict=True) if a == best}
        | {int(a) for a, b in zip(i, j, strict=True) if b == best}
    )
    unpaired = [k for k in range(3) if k not in paired]
    assert unpaired  # the case under test: a member with no pair to the best copy
    for k in unpaired:
        assert by_path[files[k].path] == pytest.approx(float(vectors[best] @ vectors[k]), abs=1e-5)
    assert min(by_path.values()) > 0.5


def test_an_order_decides_which_pairs_merge_first_and_the_similarities_stay():
    # Similar shots merge by another measure than the one shown: A~C is the most similar pair, but A~B comes
    # first, so under complete linkage {A, B} forms and C stays out; the members keep their similarity.
    files = _files(3)
    i, j, s = np.array([0, 0]), np.array([1, 2]), np.array([0.7, 0.9], np.float32)
    plain = group_pairs(files, Pairs(i, j, s), 0.6)
    assert sorted(_at(files, plain[0])) == [0, 2]
    ordered = group_pairs(files, Pairs(i, j, s), 0.6, order=np.array([1.0, 0.5]))
    assert len(ordered) == 1 and sorted(_at(files, ordered[0])) == [0, 1]
    assert [m.similarity for m in ordered[0].members[1:]] == [pytest.approx(0.7)]
    # the order follows its pairs through the threshold and the pairs a person marked "not a duplicate":
    # A~C merges first by it, though A~B is the more similar
    files = _files(4)
    i, j = np.array([0, 1, 0, 0]), np.array([3, 3, 1, 2])
    s = np.array([0.5, 0.95, 0.9, 0.7], np.float32)
    marked = {(files[1].path, files[3].path)}
    kept = group_pairs(files, Pairs(i, j, s), 0.6, ignored=marked, order=np.array([0.0, 9.0, 0.5, 1.0]))
    assert sorted(_at(files, kept[0])) == [0, 2]
    assert sorted(_at(files, group_pairs(files, Pairs(i, j, s), 0.6, ignored=marked)[0])) == [0, 1]
