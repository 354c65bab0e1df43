"""Training on several processes: ``torchrun`` starts one per GPU (or a few on a CPU), each on its own shard.

``torchrun --nproc_per_node N -m training.train --config ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; ``init_distributed`` joins the process group (NCCL on GPUs, gloo on CPUs). Every rank builds
the same global batch order from the shared seed and embeds only its slice of each batch; the embeddings are
then gathered so the loss sees the whole global batch (its hardest negatives may live on another rank), and
gradients flow back to the rank that made each embedding. DistributedDataParallel averages the gradients, so
N processes take the same steps as one process with the same global batch. Only rank 0 writes files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """The one process that writes checkpoints, summaries and the export, and validates."""
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's rows of a global batch of ``n`` rows (``n`` divisible by the world size)."""
        per = n // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


SINGLE = Dist()  # one process, no process group


def from_environment() -> Dist:
    """The rank and world size ``torchrun`` put in the environment (none: a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    return Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(ctx: Dist, device: torch.device) -> torch.device:
    """Join the process group; returns this rank's device (its own GPU under CUDA)."""
    if not ctx.active:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():  # device_id binds NCCL's communicator (and barriers) to this rank's GPU
        dist.init_process_group(
            backend, rank=ctx.rank, world_size=ctx.world, device_id=device if device.type == "cuda" else None
        )
    log.info("rank %d of %d on %s (%s)", ctx.rank, ctx.world, device, backend)
    return device


def shutdown(ctx: Dist) -> None:
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()


class _GatherRows(torch.autograd.Function):
    """All ranks' rows (the same count on each) in rank order; backward hands each rank the gradient of its
    own rows summed over every rank's loss (an all-reduce, then this rank's slice)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = slice(dist.get_rank() * len(x), (dist.get_rank() + 1) * len(x))
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rows]


def gather_batch(ctx: Dist, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's embeddings and labels in rank order (the global batch), with gradients back to the rank
    that computed each row.

    Every rank then computes the same loss L on the global batch; the backward sums the N ranks' identical
    gradients (N dL/de for each row e) and DistributedDataParallel divides by N when it averages: each
    parameter gets exactly dL/dw, as in one process.
    """
    if not ctx.active:
        return emb, labels
    labels = labels.to(emb.device)
    all_labels = [torch.empty_like(labels) for _ in range(ctx.world)]
    dist.all_gather(all_labels, labels)
    return _GatherRows.apply(emb), torch.cat(all_labels)


def broadcast_object(ctx: Dist, obj: object) -> object:
    """Rank 0's ``obj`` on every rank (a resumed checkpoint read where only rank 0 sees the run folder)."""
    if not ctx.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
