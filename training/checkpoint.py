"""Checkpoints: ``last.pt`` after every epoch (with what a resumed run needs) and ``best.pt`` whenever the
validation score improves (as timm's ``CheckpointSaver``). Each carries its config, architecture, epoch,
metrics and weights; files are written to a temporary name and renamed, so a killed run never leaves half a
checkpoint behind."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from core.model import LookalikeNet, ModelConfig
from training.config import TrainConfig


def save_checkpoint(
    path: Path, net: LookalikeNet, cfg: TrainConfig, epoch: int, metrics: dict, **extra: object
) -> None:
    tmp = path.with_name(path.name + ".tmp")
    state = {
        "config": cfg.to_dict(),
        "architecture": net.config.to_dict(),
        "epoch": epoch,
        "metrics": metrics,
        "state": net.export_state(),
    }
    torch.save(state | extra, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> tuple[LookalikeNet, dict]:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    net = LookalikeNet(ModelConfig.from_dict(ck["architecture"]))
    net.load_export_state(ck["state"])
    return net, ck


class CheckpointSaver:
    """Writes ``best.pt`` and ``last.pt`` into ``folder`` and remembers the best score so far."""

    def __init__(self, folder: Path, cfg: TrainConfig) -> None:
        self.folder, self.cfg = Path(folder), cfg
        self.best: dict = {"score": -math.inf, "epoch": None, "metrics": None}

    @property
    def last(self) -> Path:
        return self.folder / "last.pt"

    def update_best(self, net: LookalikeNet, epoch: int, metrics: dict, score: float) -> bool:
        """Save ``best.pt`` if ``score`` beats every earlier one; returns whether it did."""
        if score <= self.best["score"]:
            return False
        self.best = {"score": score, "epoch": epoch, "metrics": metrics}
        save_checkpoint(self.folder / "best.pt", net, self.cfg, epoch, metrics)
        return True

    def save_last(self, net: LookalikeNet, epoch: int, metrics: dict, resume: dict) -> None:
        """``last.pt``: the weights after ``epoch``, ``resume`` (optimizer, phase...) and the best so far."""
        save_checkpoint(self.last, net, self.cfg, epoch, metrics, resume=resume, best=self.best)

    def restore(self, ck: dict) -> None:
        """Continue from a ``last.pt`` read back: the best score so far travels with it."""
        self.best = dict(ck["best"])
