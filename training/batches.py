"""Where training batches come from, and how a batch becomes embeddings.

Two sources with one interface: ``set_epoch(epoch)``, ``next()`` → (inputs on the device, identity labels),
``embed(net, inputs)`` → L2-normalised embeddings with gradients, and ``validate(net, val, amp)``. Under
distributed training (``Dist``) ``next()`` returns this rank's slice of the global batch.

- ``LiveBatches``: fresh seeded edits every epoch, decoded by DataLoader workers, through the whole network
  (the GPU route).
- ``CachedBatches``: views edited once and run through the frozen trunk ahead of time
  (``training/trunk_cache.py``); steps run only the forked tail (the CPU route).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from core.decode import PREPROCESS_VERSION
from core.model import LookalikeNet, Normalise
from training.augment import AUGMENT_VERSION
from training.config import TrainConfig
from training.data import EpochShuffle, ViewsDataset, collate_views, seed_worker
from training.distributed import SINGLE, Dist
from training.trunk_cache import (
    TrunkFn,
    build_trunk_cache,
    make_trunk,
    neighbour_batches,
    sample_batch,
    trunk_runtime,
)
from training.valset import ValSet, pair_scores, summarise

log = logging.getLogger(__name__)


@torch.no_grad()
def embed_in_batches(
    embed: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    device: torch.device,
    amp: bool,
    batch: int = 256,
) -> np.ndarray:
    """L2-normalised ``embed(inputs)``, ``batch`` rows at a time, as float32 numpy on the CPU."""
    out = []
    for s in range(0, len(inputs), batch):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out.append(embed(inputs[s : s + batch]).float().cpu())
    return torch.nn.functional.normalize(torch.cat(out), dim=1).numpy()


class BatchSource:
    """What the two sources share: moving stored inputs to the device, embedding them, validating."""

    cfg: TrainConfig
    device: torch.device
    steps: int  # batches in one pass over the identities

    def to_device(self, stored: torch.Tensor) -> torch.Tensor:
        """Stored inputs (uint8 images or bfloat16 trunk features) → what ``embed`` takes, on the device."""
        raise NotImplementedError

    def embed(self, net: LookalikeNet, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def val_inputs(self, val: ValSet) -> torch.Tensor:
        raise NotImplementedError

    def embed_all(self, net: LookalikeNet, stored: torch.Tensor, amp: bool) -> np.ndarray:
        """Embeddings of many stored inputs, in evaluation mode and without gradients."""
        net.eval()
        return embed_in_batches(lambda s: self.embed(net, self.to_device(s)), stored, self.device, amp)

    def validate(self, net: LookalikeNet, val: ValSet, amp: bool) -> dict:
        emb = self.embed_all(net, self.val_inputs(val), amp)
        pos, kinds, neg = pair_scores(emb, val.labels, val.kinds)
        return summarise(pos, kinds, neg, self.cfg.min_precision)


class LiveBatches(BatchSource):
    """Fresh seeded edits every epoch, decoded and edited by DataLoader workers (the GPU route)."""

    def __init__(
        self, cfg: TrainConfig, groups: list, norm: Normalise, device: torch.device, ctx: Dist = SINGLE
    ) -> None:
        self.cfg, self.norm, self.device = cfg, norm, device
        dataset = ViewsDataset(groups, cfg.resolution, cfg.views, cfg.strength, cfg.keep_original, cfg.seed)
        self.sampler = EpochShuffle(dataset, cfg.seed, cfg.batch_identities, ctx.rank, ctx.world)
        self.loader = DataLoader(
            dataset,
            batch_size=cfg.batch_identities // ctx.world,
            sampler=self.sampler,
            drop_last=True,
            num_workers=cfg.workers,
            collate_fn=collate_views,
            worker_init_fn=seed_worker,
            generator=torch.Generator().manual_seed(cfg.seed),
            pin_memory=device.type == "cuda",
            persistent_workers=cfg.workers > 0,
            prefetch_factor=4 if cfg.workers else None,
        )
        self.steps = len(self.loader)
        self._it = None

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self._it = iter(self.loader)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            images, labels = next(self._it)
        except StopIteration:
            self._it = iter(self.loader)
            images, labels = next(self._it)
        return self.to_device(images), labels

    def to_device(self, stored: torch.Tensor) -> torch.Tensor:
        return self.norm(stored.to(self.device, non_blocking=True))

    def embed(self, net: LookalikeNet, x: torch.Tensor) -> torch.Tensor:
        return net.embed(x)

    def val_inputs(self, val: ValSet) -> torch.Tensor:
        return torch.from_numpy(val.images)


class CachedBatches(BatchSource):
    """Batches of cached trunk features (see ``training/trunk_cache.py``): the CPU route."""

    def __init__(
        self,
        cfg: TrainConfig,
        groups: list,
        val: ValSet,
        net: LookalikeNet,
        norm: Normalise,
        device: torch.device,
        ctx: Dist = SINGLE,
    ) -> None:
        self.cfg, self.device, self.net, self.ctx = cfg, device, net, ctx
        runtime = trunk_runtime(device, cfg.amp)

        @functools.cache
        def trunk() -> TrunkFn:  # built only when something is not cached yet
            log.info("trunk cache: computing with %s", runtime)
            return make_trunk(net, norm, device, runtime)

        def cached(name: str, key: dict, compute: Callable[[], dict]) -> dict:
            key = key | {"preprocess": PREPROCESS_VERSION, "trunk": runtime}
            digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
            path = Path(cfg.cache_dir) / f"{name}-{digest}.pt" if cfg.cache_dir else None
            if path is not None and not ctx.is_main:  # rank 0 computes it; the others read its file
                ctx.barrier()
                return torch.load(path, weights_only=True)
            if path is not None and path.exists():
                log.info("trunk cache: reusing %s", path)
                value = torch.load(path, weights_only=True)
            else:
                value = compute() | {"key": key}
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    torch.save(value, path)
            if path is not None:
                ctx.barrier()
            return value

        net_key = {k: getattr(cfg, k) for k in ("resolution", "fork", "backbone", "init_weights")}
        # The validation images are keyed by their content: a run may bring its own ValSet (tests, search).
        val_digest = hashlib.sha256(np.ascontiguousarray(val.images).data).hexdigest()
        self.val_feats = cached(
            "val", net_key | {"images": val_digest}, lambda: {"val": trunk()(torch.from_numpy(val.images))}
        )["val"]
        self.train_feats = None
        rounds = max(1, cfg.cache_rounds)
        for r in range(rounds):  # each round: cache_views more seeded views per photo
            # (val_data and val_seed stay in the key so rounds cached when they also held validation
            # features keep their digests)
            key = net_key | {
                k: getattr(cfg, k)
                for k in (
                    "data",
                    "layout",
                    "cache_views",
                    "strength",
                    "keep_original",
                    "val_data",
                    "val_seed",
                )
            }
            key |= {"seed": cfg.seed + r, "augment": AUGMENT_VERSION}

            def views(seed: int = cfg.seed + r) -> dict:
                dataset = ViewsDataset(
                    groups, cfg.resolution, cfg.cache_views, cfg.strength, cfg.keep_original, seed
                )
                return {"train": build_trunk_cache(trunk(), dataset, min(cfg.workers, 1))}

            part = cached("trunk", key, views)["train"]
            if self.train_feats is None:  # one allocation: 80 views of 1,100 photos are ~4 GB
                n, v = part.shape[:2]
                self.train_feats = torch.empty((n, v * rounds, *part.shape[2:]), dtype=part.dtype)
            self.train_feats[:, r * v : (r + 1) * v] = part
            del part
        self.n = len(self.train_feats)
        self.steps = self.n // cfg.batch_identities
        self.rng = np.random.default_rng(cfg.seed)
        self.order: list[np.ndarray] = []

    def set_epoch(self, epoch: int) -> None:
        self.rng = np.random.default_rng([self.cfg.seed, epoch])
        emb = self._one_view_each() if self.cfg.neighbours > 1 else None
        self.order = neighbour_batches(self.n, self.cfg.batch_identities, self.rng, emb, self.cfg.neighbours)

    def _one_view_each(self) -> np.ndarray:
        """The current network's embedding of one random cached view per identity (for neighbour batches)."""
        pick = torch.as_tensor(self.rng.integers(0, self.train_feats.shape[1], self.n))
        return self.embed_all(self.net, self.train_feats[torch.arange(self.n), pick], amp=False)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.order:
            self.set_epoch(int(self.rng.integers(1 << 30)))
        ids = self.order.pop(0)
        # Every rank draws the whole global batch (the same random numbers as one process) and keeps its rows.
        feats, labels = sample_batch(self.train_feats, ids, self.cfg.views, self.rng)
        mine = self.ctx.shard(len(labels))
        return self.to_device(feats[mine]), labels[mine]

    def to_device(self, stored: torch.Tensor) -> torch.Tensor:
        # stored in bfloat16; float32 in (autocast, where on, casts down again)
        return stored.to(self.device, torch.float32).contiguous(memory_format=torch.channels_last)

    def embed(self, net: LookalikeNet, x: torch.Tensor) -> torch.Tensor:
        return net.embed_from_trunk(x)

    def val_inputs(self, val: ValSet) -> torch.Tensor:
        return self.val_feats
