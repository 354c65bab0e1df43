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
    # anchor 0: pos 60°, hardest neg 90°; anchor 1: pos 60°, neg 30°; anchor 2: pos 10°, neg 30°; anchor 3: pos 10°, neg 40°
    expected = [max(0.0, c(90) - c(60) + 0.2), max(0.0, c(30) - c(60) + 0.2),
                max(0.0, c(30) - c(10) + 0.2), max(0.0, c(40) - c(10) + 0.2)]
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
