"""The learning-rate schedule: two phases (frozen backbone + head, then the forked tail), each with a linear
warm-up and a cosine decay to zero over its own steps."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

WARMUP_STEPS = 50  # or one epoch, whichever is shorter


@dataclass(frozen=True)
class Phase:
    tail: bool  # False: only the head learns; True: the forked tail learns too
    start: int  # first epoch of the phase
    epochs: int

    @property
    def name(self) -> str:
        return "tail" if self.tail else "head"


def phase_of(epoch: int, epochs_head: int, epochs: int) -> Phase:
    """The phase ``epoch`` belongs to: the first ``epochs_head`` epochs train the head, the rest the tail."""
    if epoch < epochs_head:
        return Phase(False, 0, epochs_head)
    return Phase(True, epochs_head, epochs - epochs_head)


def lr_factor(phase: Phase, epoch: int, step: int, steps: int) -> float:
    """Multiplier of the base learning rates at ``step`` of ``epoch`` (``steps`` per epoch)."""
    k = (epoch - phase.start) * steps + step  # step within the phase
    warm = min(1.0, (k + 1) / max(1, min(steps, WARMUP_STEPS)))
    return warm * 0.5 * (1 + math.cos(math.pi * k / max(1, phase.epochs * steps)))


def set_lr(opt: torch.optim.Optimizer, factor: float) -> None:
    """Each parameter group's ``base_lr`` times ``factor``."""
    for g in opt.param_groups:
        g["lr"] = g["base_lr"] * factor
