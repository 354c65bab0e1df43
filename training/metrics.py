"""Retrieval and pair-classification metrics, from similarity scores.

Pair metrics take the scores of same-photo pairs (``pos``) and different-photo pairs (``neg``); ties at the
threshold count as "same" (a pair is grouped when its similarity is at or above the threshold), as in the app.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairStats:
    threshold: float
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int


def _count_at_or_above(sorted_scores: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    return len(sorted_scores) - np.searchsorted(sorted_scores, t, side="left")


def pair_stats(pos: np.ndarray, neg: np.ndarray, threshold: float) -> PairStats:
    tp = int((pos >= threshold).sum())
    fp = int((neg >= threshold).sum())
    fn = len(pos) - tp
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / len(pos) if len(pos) else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return PairStats(float(threshold), p, r, f1, tp, fp, fn)


def sweep(pos: np.ndarray, neg: np.ndarray, thresholds: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and false-positive rate at each threshold (default: every positive score)."""
    ps, ns = np.sort(pos), np.sort(neg)
    t = np.unique(ps) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    tp = _count_at_or_above(ps, t).astype(np.float64)
    fp = _count_at_or_above(ns, t).astype(np.float64)
    precision = np.divide(tp, tp + fp, out=np.ones_like(tp), where=(tp + fp) > 0)
    recall = tp / max(len(ps), 1)
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0
    )
    return {"threshold": t, "precision": precision, "recall": recall, "f1": f1, "fpr": fp / max(len(ns), 1)}


def calibrate(pos: np.ndarray, neg: np.ndarray, min_precision: float) -> PairStats:
    """The lowest threshold (most recall) whose precision is at least ``min_precision``.

    If even the highest positive score misses the precision, the threshold goes just above the highest
    negative."""
    s = sweep(pos, neg)
    ok = np.nonzero(s["precision"] >= min_precision)[0]
    if len(ok):
        return pair_stats(pos, neg, float(s["threshold"][ok[0]]))
    return pair_stats(pos, neg, float(np.nextafter(np.max(neg), np.inf)))


def best_f1(pos: np.ndarray, neg: np.ndarray) -> PairStats:
    s = sweep(pos, neg)
    return pair_stats(pos, neg, float(s["threshold"][int(np.argmax(s["f1"]))]))


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a random positive > a random negative), ties counting one half (Mann-Whitney U)."""
    ns = np.sort(neg)
    below = np.searchsorted(ns, pos, side="left")
    ties = np.searchsorted(ns, pos, side="right") - below
    return float((below + 0.5 * ties).sum() / (len(pos) * len(neg)))


def roc_curve(pos: np.ndarray, neg: np.ndarray, n: int = 2001) -> tuple[np.ndarray, np.ndarray]:
    s = sweep(pos, neg, np.linspace(-1.0, 1.0001, n))
    return s["fpr"], s["recall"]


def recall_at_k(sim: np.ndarray, q_labels: np.ndarray, g_labels: np.ndarray, ks: tuple[int, ...]) -> dict:
    """Fraction of queries with a same-label gallery item among their top-k (ties broken by gallery order)."""
    order = np.argsort(-sim, axis=1, kind="stable")
    hit = g_labels[order] == q_labels[:, None]
    return {k: float(hit[:, :k].any(1).mean()) for k in ks}


def average_precision_at_k(relevant: np.ndarray, n_relevant: int, k: int) -> float:
    """AP@K of one ranked list (``relevant``: booleans in rank order), normalised by min(k, n_relevant)."""
    rel = np.asarray(relevant[:k], dtype=np.float64)
    if n_relevant == 0:
        return 0.0
    precision_at_i = np.cumsum(rel) / np.arange(1, len(rel) + 1)
    return float((precision_at_i * rel).sum() / min(k, n_relevant))


def map_at_k(sim: np.ndarray, q_labels: np.ndarray, g_labels: np.ndarray, k: int) -> float:
    order = np.argsort(-sim, axis=1, kind="stable")
    rel = g_labels[order] == q_labels[:, None]
    n_rel = (g_labels[None, :] == q_labels[:, None]).sum(1)
    return float(np.mean([average_precision_at_k(r, int(n), k) for r, n in zip(rel, n_rel, strict=True)]))
