import numpy as np
import pytest

from training.metrics import (
    average_precision_at_k,
    best_f1,
    calibrate,
    map_at_k,
    pair_stats,
    recall_at_k,
    roc_auc,
    sweep,
)

POS = np.array([0.9, 0.8, 0.7, 0.4])
NEG = np.array([0.75, 0.5, 0.3, 0.2, 0.1])


def test_pair_stats_by_hand():
    s = pair_stats(POS, NEG, 0.7)  # tp: .9 .8 .7 ; fp: .75
    assert (s.tp, s.fp, s.fn) == (3, 1, 1)
    assert s.precision == pytest.approx(0.75)
    assert s.recall == pytest.approx(0.75)
    assert s.f1 == pytest.approx(0.75)
    assert pair_stats(POS, NEG, 0.75).fp == 1  # a tie counts as "same", as the app groups at >= threshold


def test_calibrate_takes_lowest_threshold_meeting_precision():
    s = calibrate(POS, NEG, 0.99)
    assert s.threshold == pytest.approx(0.8)  # 0.7 would admit the 0.75 negative
    assert (s.precision, s.recall) == (1.0, 0.5)
    assert calibrate(POS, NEG, 0.7).threshold == pytest.approx(0.7)  # P = 3/4 there


def test_calibrate_when_no_positive_is_clean():
    s = calibrate(np.array([0.2]), np.array([0.9]), 0.99)
    assert s.threshold > 0.9 and s.fp == 0 and s.tp == 0


def test_best_f1_and_sweep():
    b = best_f1(POS, NEG)
    # thresholds .4 (P 4/6 R 1 F1 .8), .7 (F1 .75), .8 (P1 R.5 F1 .667), .9 (F1 .4)
    assert b.threshold == pytest.approx(0.4)
    assert b.f1 == pytest.approx(0.8)
    s = sweep(POS, NEG, np.array([0.0, 1.0]))
    assert list(s["recall"]) == [1.0, 0.0] and list(s["fpr"]) == [1.0, 0.0]


def test_roc_auc_by_hand_with_ties():
    # pairs (pos > neg): .9:5 .8:5 .7:4 .4:3 → 17 of 20
    assert roc_auc(POS, NEG) == pytest.approx(17 / 20)
    assert roc_auc(np.array([0.5]), np.array([0.5])) == pytest.approx(0.5)


def test_recall_at_k():
    sim = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8]])
    q = np.array([1, 0])
    g = np.array([0, 1, 2])
    # query 0 (label 1): ranking g0, g2, g1 → label 1 at rank 3; query 1 (label 0): g2, g1, g0 → rank 3
    assert recall_at_k(sim, q, g, (1, 2, 3)) == {1: 0.0, 2: 0.0, 3: 1.0}
    assert recall_at_k(sim, np.array([0, 2]), g, (1,)) == {1: 1.0}


def test_average_precision_at_k_by_hand():
    # relevant at ranks 1 and 3, 2 relevant in all: (1/1 + 2/3) / 2
    assert average_precision_at_k(np.array([1, 0, 1, 0]), 2, 4) == pytest.approx((1 + 2 / 3) / 2)
    # K smaller than the number of relevant items: normalise by K
    assert average_precision_at_k(np.array([1, 1, 0]), 5, 2) == pytest.approx(1.0)
    assert average_precision_at_k(np.array([0, 0]), 0, 2) == 0.0


def test_map_at_k():
    sim = np.array([[0.9, 0.8, 0.1], [0.1, 0.9, 0.5]])
    q = np.array([0, 1])
    g = np.array([0, 1, 1])
    # q0: g0 relevant at rank 1 → AP 1. q1: ranking g1, g2, g0 → both relevant at ranks 1, 2 → AP 1
    assert map_at_k(sim, q, g, 3) == pytest.approx(1.0)
    sim[1] = [0.9, 0.1, 0.5]  # q1: ranking g0, g2, g1 → relevant at 2, 3 → (1/2 + 2/3) / 2
    assert map_at_k(sim, q, g, 3) == pytest.approx((1 + (0.5 + 2 / 3) / 2) / 2)


def test_app_similarity_takes_the_turned_score_when_higher():
    from training.valset import app_similarity, pair_scores_from_similarity

    e = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.6, 0.8, 0.0]], dtype=np.float32)
    turned = {1: np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)}  # image 1 turned is image 0
    sim = app_similarity(e, turned)
    assert sim[0, 1] == sim[1, 0] == 1.0  # turned(1) . plain(0)
    assert np.isclose(sim[1, 2], 0.8) and np.isclose(sim[2, 1], 0.8)  # max(plain 0.8, turned 0.6 / 0.0)
    assert np.isclose(sim[0, 2], 0.6)  # no portrait among them: the plain cosine
    labels = np.array([0, 0, 1])
    kinds = np.array(["original", "rotate_90", "original"])
    pos, pos_kinds, neg = pair_scores_from_similarity(sim, labels, kinds)
    assert pos.tolist() == [1.0] and pos_kinds.tolist() == ["rotate_90"]
    assert np.allclose(sorted(neg), [0.6, 0.8])
