import math

import pytest
import torch
import torch.nn.functional as F

from training.losses import batch_hard_triplet, info_nce, koleo, metric_loss


def _unit(*angles_deg):
    a = torch.tensor([math.radians(x) for x in angles_deg])
    return torch.stack([a.cos(), a.sin()], 1)


def test_batch_hard_triplet_by_hand():
    emb = _unit(0, 60, 90, 100)  # labels 0 0 1 1
    labels = torch.tensor([0, 0, 1, 1])
    c = lambda d: math.cos(math.radians(d))  # noqa: E731
    # anchor 0: pos 60°, hardest neg 90°; anchor 1: pos 60°, neg 30°; anchor 2: pos 10°, neg 30°; anchor 3:
    # pos 10°, neg 40°
    expected = [
        max(0.0, c(90) - c(60) + 0.2),
        max(0.0, c(30) - c(60) + 0.2),
        max(0.0, c(30) - c(10) + 0.2),
        max(0.0, c(40) - c(10) + 0.2),
    ]
    assert float(batch_hard_triplet(emb, labels, 0.2)) == pytest.approx(sum(expected) / 4, abs=1e-6)


def test_batch_hard_triplet_needs_positives():
    with pytest.raises(ValueError):
        batch_hard_triplet(_unit(0, 90), torch.tensor([0, 1]), 0.2)


def test_info_nce_prefers_aligned_pairs():
    labels = torch.tensor([0, 0, 1, 1])
    good = info_nce(_unit(0, 5, 90, 95), labels, 0.1)
    bad = info_nce(_unit(0, 90, 5, 95), labels, 0.1)
    assert float(good) < float(bad)


def test_koleo_spreads():
    labels = torch.tensor([0, 1])
    assert float(koleo(_unit(0, 10), labels)) > float(koleo(_unit(0, 180), labels))


def test_metric_loss_rejects_unknown():
    emb = F.normalize(torch.randn(4, 8), dim=1)
    with pytest.raises(ValueError):
        metric_loss(emb, torch.tensor([0, 0, 1, 1]), "arcface", 0.2, 0.1)


def test_info_nce_memory_rows_are_negatives_and_own_identity_rows_are_left_out():
    from training.losses import CrossBatchMemory

    t = 0.5
    a1 = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2, 0.0]]), dim=1)
    a2 = torch.nn.functional.normalize(torch.tensor([[0.9, 0.0, 0.3]]), dim=1)
    m = torch.nn.functional.normalize(torch.tensor([[0.5, 0.5, 0.5]]), dim=1)
    stale = torch.nn.functional.normalize(torch.tensor([[0.0, 0.0, 1.0]]), dim=1)  # an old view of identity 0
    emb, labels = torch.cat([a1, a2]), torch.tensor([0, 0])
    mem = CrossBatchMemory(size=2)
    mem.add(torch.cat([m, stale]), torch.tensor([1, 0]))
    got = metric_loss(emb, labels, "infonce", 0.3, t, memory=mem)
    # By hand: each anchor's one positive against that positive plus the memory's identity-1 row only.
    pos = float(a1 @ a2.T) / t
    want = 0.0
    for a in (a1, a2):
        neg = float(a @ m.T) / t
        want += -(pos - math.log(math.exp(pos) + math.exp(neg))) / 2
    assert float(got) == pytest.approx(want, rel=1e-5)
    assert float(got) > float(info_nce(emb, labels, t))  # a negative can only add to the loss
    # The memory keeps the newest rows, up to its size.
    mem.add(a1, torch.tensor([7]))
    assert mem.labels.tolist() == [7, 1] and torch.equal(mem.emb[0], a1[0])
