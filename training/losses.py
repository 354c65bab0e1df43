"""Metric-learning losses on L2-normalised embeddings; similarities are cosines."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def batch_hard_triplet(emb: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Triplet loss with batch-hard mining (Hermans et al. 2017) on cosine similarity.

    For each anchor: its least similar positive and its most similar negative in the batch;
    loss = mean(relu(sim_neg - sim_pos + margin)).
    """
    sim = emb @ emb.T
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=emb.device)
    pos_mask, neg_mask = same & ~eye, ~same
    if not pos_mask.any(1).all() or not neg_mask.any(1).all():
        raise ValueError("every anchor needs a positive and a negative in the batch")
    hardest_pos = sim.masked_fill(~pos_mask, 2.0).min(1).values
    hardest_neg = sim.masked_fill(~neg_mask, -2.0).max(1).values
    return F.relu(hardest_neg - hardest_pos + margin).mean()


def info_nce(
    emb: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    memory: torch.Tensor | None = None,
    memory_labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Multi-positive InfoNCE (SupCon form): each anchor pulls all its positives against every other image.

    ``memory`` (M, D) adds embeddings kept from earlier steps (a cross-batch memory, Wang et al. 2020) as more
    negatives; memory rows of an anchor's own identity are left out (stale views of it, neither side).
    """
    sim = (emb @ emb.T) / temperature
    eye = torch.eye(len(labels), dtype=torch.bool, device=emb.device)
    sim = sim.masked_fill(eye, float("-inf"))
    pos = (labels[:, None] == labels[None, :]) & ~eye
    if memory is not None and len(memory):
        mem = (emb @ memory.T) / temperature
        mem = mem.masked_fill(labels[:, None] == memory_labels[None, :], float("-inf"))
        sim = torch.cat([sim, mem], 1)
        pos = torch.cat([pos, torch.zeros_like(mem, dtype=torch.bool)], 1)
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    return -(log_prob.masked_fill(~pos, 0).sum(1) / pos.sum(1).clamp(min=1)).mean()


class CrossBatchMemory:
    """The last ``size`` embeddings (detached) and their labels, as extra negatives for InfoNCE."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.emb: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None

    def reset(self) -> None:
        self.emb = self.labels = None

    def add(self, emb: torch.Tensor, labels: torch.Tensor) -> None:
        emb, labels = emb.detach(), labels.detach()
        if self.emb is not None:
            emb, labels = torch.cat([emb, self.emb]), torch.cat([labels, self.labels])
        self.emb, self.labels = emb[: self.size], labels[: self.size]


def koleo(emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """KoLeo spreading term (as in SSCD): -log distance to the nearest other identity, averaged.

    It pushes unrelated photos apart uniformly, so one threshold separates copies from the rest everywhere.
    """
    sim = emb @ emb.T
    other = labels[:, None] != labels[None, :]
    nearest = sim.masked_fill(~other, -2.0).max(1).values
    dist = (2 - 2 * nearest).clamp(min=1e-8).sqrt()
    return -torch.log(dist).mean()


def metric_loss(
    emb: torch.Tensor,
    labels: torch.Tensor,
    kind: str,
    margin: float,
    temperature: float,
    koleo_weight: float = 0.0,
    memory: CrossBatchMemory | None = None,
) -> torch.Tensor:
    if kind == "triplet":
        loss = batch_hard_triplet(emb, labels, margin)
    elif kind == "infonce":
        past = (memory.emb, memory.labels) if memory is not None else (None, None)
        loss = info_nce(emb, labels, temperature, *past)
    else:
        raise ValueError(f"unknown loss {kind!r}; choose triplet or infonce")
    if koleo_weight:
        loss = loss + koleo_weight * koleo(emb, labels)
    return loss
