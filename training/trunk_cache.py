"""Precomputed trunk features: the CPU route to fine-tuning in minutes instead of hours.

The stages before ``fork`` stay frozen during training, so their output for an edited view never changes.
``build_trunk_cache`` draws ``views`` seeded edits of every photo once, runs them through the frozen trunk and
keeps the result (bfloat16); training then runs only the forked tail on random subsets of those views.
A fixed pool of edits is less varied than fresh ones each epoch: it is the trade for training on two cores.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from core.model import LookalikeNet
from training.data import ViewsDataset, seed_worker

log = logging.getLogger(__name__)


@torch.no_grad()
def trunk_features(net: LookalikeNet, norm: torch.nn.Module, images: torch.Tensor | np.ndarray,
                   device: torch.device, batch: int = 64, amp: bool = True) -> torch.Tensor:
    """uint8 (N, H, W, 3) → the trunk's output (N, C, h, w) in bfloat16, on the CPU."""
    net.eval()
    images = torch.as_tensor(images)
    out = []
    for s in range(0, len(images), batch):
        x = norm(images[s:s + batch].to(device))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out.append(net.trunk(x).to(torch.bfloat16).cpu())
    return torch.cat(out)


def build_trunk_cache(net: LookalikeNet, norm: torch.nn.Module, dataset: ViewsDataset, device: torch.device,
                      workers: int = 1, amp: bool = True) -> torch.Tensor:
    """(identities, views, C, h, w) bfloat16 trunk features of ``dataset``'s seeded views (epoch 0)."""
    loader = DataLoader(dataset, batch_size=8, shuffle=False, num_workers=workers, worker_init_fn=seed_worker)
    chunks = []
    start = time.monotonic()
    for i, (views, _) in enumerate(loader):
        b, v = views.shape[:2]
        feats = trunk_features(net, norm, views.flatten(0, 1), device, amp=amp)
        chunks.append(feats.view(b, v, *feats.shape[1:]))
        if i % 20 == 0:
            log.info("trunk cache: %d/%d photos, %.0fs", (i + 1) * b, len(dataset), time.monotonic() - start)
    return torch.cat(chunks)


def sample_batch(cache: torch.Tensor, ids: np.ndarray, views: int, rng: np.random.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``views`` distinct cached views of each identity in ``ids`` → (features, labels)."""
    v_total = cache.shape[1]
    pick = np.stack([rng.choice(v_total, views, replace=False) for _ in ids])
    feats = cache[torch.as_tensor(ids)[:, None], torch.as_tensor(pick)]
    labels = torch.as_tensor(ids).repeat_interleave(views)
    return feats.flatten(0, 1), labels
