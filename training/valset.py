"""The validation set: held-out photos, each with one fixed, seeded copy per edit kind.

Edit ``k`` of photo ``i`` is drawn from ``numpy.random.default_rng([seed, i, k])`` on the photo at full size
(or as given), then squashed to the model's input by ``core.decode.resize_for_model`` like the app does. The
same files and seed give the same pixels on any machine.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.decode import read_full, resize_for_model
from core.embed import is_portrait
from training.augment import EDITS
from training.metrics import calibrate, pair_stats

log = logging.getLogger(__name__)

ORIGINAL = "original"


@dataclass(frozen=True)
class ValSet:
    images: np.ndarray  # uint8 (N, size, size, 3)
    labels: np.ndarray  # photo index of each image
    kinds: np.ndarray  # "original" or the edit's name
    files: list[str]  # the photo of each label
    portrait: np.ndarray | None = (
        None  # whether each image is portrait before squashing (the app embeds its turns)
    )


def _one_photo(args: tuple[str, int, int, int, tuple[str, ...]]) -> tuple[np.ndarray, np.ndarray]:
    path, i, size, seed, kinds = args
    im = read_full(path)
    ims = [im]
    for k, name in enumerate(kinds):
        rng = np.random.default_rng([seed, i, k])
        ims.append(EDITS[name](im, rng).convert("RGB"))
    return (
        np.stack([resize_for_model(x, size) for x in ims]),
        np.array([is_portrait(x.width, x.height) for x in ims]),
    )


def build_valset(
    files: list[Path],
    size: int,
    seed: int = 1234,
    kinds: tuple[str, ...] | None = None,
    workers: int | None = None,
) -> ValSet:
    kinds = tuple(EDITS) if kinds is None else kinds
    jobs = [(str(f), i, size, seed, kinds) for i, f in enumerate(files)]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            stacks = list(pool.map(_one_photo, jobs, chunksize=4))
    else:
        stacks = [_one_photo(j) for j in jobs]
    per = 1 + len(kinds)
    return ValSet(
        images=np.concatenate([s for s, _ in stacks]),
        labels=np.repeat(np.arange(len(files)), per),
        kinds=np.array([ORIGINAL, *kinds] * len(files)),
        files=[str(f) for f in files],
        portrait=np.concatenate([p for _, p in stacks]),
    )


def app_similarity(emb: np.ndarray, turned: dict[int, np.ndarray]) -> np.ndarray:
    """Every pair's score as the app scores it: the plain cosine, or a turned embedding against the other
    image's plain one when higher (``core.index.turned_pairs``). ``turned``: image -> its (2, D) turned
    rows."""
    emb = np.asarray(emb, dtype=np.float32)
    sim = emb @ emb.T
    for i, t in turned.items():
        best = (np.asarray(t, dtype=np.float32) @ emb.T).max(axis=0)
        best[i] = sim[i, i]
        sim[i] = np.maximum(sim[i], best)
        sim[:, i] = np.maximum(sim[:, i], best)
    return sim


def pair_scores_from_similarity(
    sim: np.ndarray, labels: np.ndarray, kinds: np.ndarray, block: int = 1024
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``pair_scores`` for a full similarity matrix instead of embeddings."""
    copies, ref = _copies_and_originals(labels, kinds)
    return sim[copies, ref], kinds[copies], _negatives(lambda s, e: sim[s:e], len(sim), labels, block)


def _copies_and_originals(labels: np.ndarray, kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every edited copy's index and its original's index (the positive pairs)."""
    orig = np.nonzero(kinds == ORIGINAL)[0]
    orig_of = dict(zip(labels[orig].tolist(), orig.tolist(), strict=True))
    copies = np.nonzero(kinds != ORIGINAL)[0]
    return copies, np.array([orig_of[label] for label in labels[copies].tolist()], dtype=np.int64)


def _negatives(rows, n: int, labels: np.ndarray, block: int) -> np.ndarray:
    """Scores of every pair (i < j) of different photos; ``rows(s, e)`` gives rows s..e of the similarity."""
    neg = []
    for s in range(0, n, block):
        sim = rows(s, min(s + block, n))
        i = np.arange(s, min(s + block, n))[:, None]
        j = np.arange(n)[None, :]
        neg.append(sim[(j > i) & (labels[j] != labels[i])])
    return np.concatenate(neg)


def pair_scores(
    emb: np.ndarray, labels: np.ndarray, kinds: np.ndarray, block: int = 1024
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positive scores, their edit kinds, negative scores).

    Positives: each edited copy against its original. Negatives: every pair of images of different photos
    (originals and copies alike), so precision is measured against everything the app could wrongly group.
    """
    emb = np.asarray(emb, dtype=np.float32)
    copies, ref = _copies_and_originals(labels, kinds)
    pos = (emb[copies] * emb[ref]).sum(1)
    return pos, kinds[copies], _negatives(lambda s, e: emb[s:e] @ emb.T, len(emb), labels, block)


def summarise(
    pos: np.ndarray,
    pos_kinds: np.ndarray,
    neg: np.ndarray,
    min_precision: float = 0.99,
    threshold: float | None = None,
) -> dict:
    """Precision/recall/F1 at the calibrated (or given) threshold, and recall per edit kind."""
    stats = calibrate(pos, neg, min_precision) if threshold is None else pair_stats(pos, neg, threshold)
    per_kind = {str(k): float((pos[pos_kinds == k] >= stats.threshold).mean()) for k in np.unique(pos_kinds)}
    return {
        "threshold": stats.threshold,
        "precision": stats.precision,
        "recall": stats.recall,
        "f1": stats.f1,
        "false_positives": stats.fp,
        "min_kind_recall": min(per_kind.values()),
        "worst_kind": min(per_kind, key=per_kind.get),
        "per_kind_recall": per_kind,
    }
