"""The Lookalike embedding network: one forward pass, two outputs.

``embedding``: the duplicate embedding (GeM pooling → linear projection → L2), fine-tuned for edited copies.
``features``: the backbone's globally average-pooled ImageNet features (L2), which keep "same subject"
similarity for "Find similar". When the fine-tuned part forks from the backbone at stage ``fork``, the
ImageNet branch keeps the original later stages so its features stay ImageNet features; the shared early
stages run once.

Importing this module imports torch: the run-time CPU path never does (it runs the ONNX export).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.backbones import backbone_spec, build_backbone

__all__ = ["ModelConfig", "GeM", "LookalikeNet", "Normalise", "UInt8Wrapper"]


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "efficientnet_lite0"
    resolution: int = 224
    embed_dim: int = 256  # 0: no projection, the duplicate embedding is the pooled backbone features
    pooling: str = "gem"  # "gem" or "avg"
    fork: int | None = (
        None  # stage where the fine-tuned branch starts (n stages: the head conv); None: head-only
    )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class GeM(nn.Module):
    """Generalised-mean pooling (Radenović et al.), used by SSCD for copy detection."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=self.eps).pow(self.p).mean((2, 3)).pow(1.0 / self.p)


class LookalikeNet(nn.Module):
    def __init__(self, config: ModelConfig, backbone: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone if backbone is not None else build_backbone(config.backbone)
        stem, stages, head = self.backbone.parts()
        n = len(stages)
        fork = n if config.fork is None else config.fork
        if not 0 <= fork <= n:
            raise ValueError(f"fork must be in 0..{n}, got {config.fork}")
        self._stem = stem
        self._shared = nn.Sequential(*stages[:fork])
        self._imagenet_tail = nn.Sequential(*stages[fork:], head)
        # The fine-tuned tail starts as a copy of the ImageNet one (with fork == n: a copy of the head conv
        # alone); fork None: no tuned tail, only pooling and projection learn.
        self.tuned_tail = (
            copy.deepcopy(nn.Sequential(*stages[fork:], head)) if config.fork is not None else None
        )
        dim = self.backbone.num_features
        self.pool = GeM() if config.pooling == "gem" else None
        self.proj = nn.Linear(dim, config.embed_dim) if config.embed_dim else None

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim or self.backbone.num_features

    @property
    def feature_dim(self) -> int:
        return self.backbone.num_features

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shared = self._shared(self._stem(x))
        imagenet = self._imagenet_tail(shared)
        features = F.normalize(imagenet.mean((2, 3)), dim=1)
        tuned = self.tuned_tail(shared) if self.tuned_tail is not None else imagenet
        return self._embedding(tuned), features

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """The stages both branches share (frozen in training, so their output can be cached)."""
        return self._shared(self._stem(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The duplicate embedding alone (training: skips the ImageNet branch when the model forks)."""
        return self.embed_from_trunk(self.trunk(x))

    def embed_from_trunk(self, shared: torch.Tensor) -> torch.Tensor:
        """The duplicate embedding of the trunk's output (training on cached trunk features)."""
        tail = self.tuned_tail if self.tuned_tail is not None else self._imagenet_tail
        return self._embedding(tail(shared))

    def _embedding(self, tuned: torch.Tensor) -> torch.Tensor:
        """Fine-tuned feature map → pooled → projected → L2: the one place the duplicate embedding is made."""
        pooled = self.pool(tuned) if self.pool is not None else tuned.mean((2, 3))
        emb = self.proj(pooled) if self.proj is not None else pooled
        return F.normalize(emb, dim=1)

    _ALIASES = ("_stem.", "_shared.", "_imagenet_tail.")

    def export_state(self) -> dict[str, torch.Tensor]:
        """The weights without the alias entries (``_stem`` etc. share tensors with ``backbone``)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(self._ALIASES)}

    def load_export_state(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith(self._ALIASES) and "num_batches_tracked" not in k]
        if missing or unexpected:
            raise ValueError(
                f"weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )

    def trainable_parameters(self, unfreeze_tail: bool) -> list[nn.Parameter]:
        """The parameters training updates: the head, plus the fine-tuned tail once it is unfrozen."""
        params = [p for m in (self.pool, self.proj) if m is not None for p in m.parameters()]
        if unfreeze_tail and self.tuned_tail is not None:
            params += list(self.tuned_tail.parameters())
        return params


class Normalise(nn.Module):
    """uint8 NHWC RGB → the backbone's normalised float NCHW (``channels_last`` for fast GPU convolutions)."""

    def __init__(self, backbone: str, channels_last: bool = False) -> None:
        super().__init__()
        spec = backbone_spec(backbone)
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.permute(0, 3, 1, 2).float() - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


class UInt8Wrapper(nn.Module):
    """Takes uint8 NHWC RGB batches, normalises inside the graph (measured 5-10% faster in ONNX Runtime)."""

    def __init__(self, net: LookalikeNet) -> None:
        super().__init__()
        self.net = net
        self.normalise = Normalise(net.config.backbone)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(self.normalise(x))
