"""Training configuration: defaults, a YAML file on top, ``--set key=value`` overrides on top of that."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml


@dataclass
class TrainConfig:
    seed: int = 0
    # data
    data: str = ".data/gpu/train"
    layout: str = "photos"  # photos | identity | product (see training/data.py)
    val_data: str = ".data/gpu/val"
    val_seed: int = 1234
    # model
    backbone: str = "efficientnet_lite0"
    init_weights: str | None = None  # None: the pinned package's ImageNet weights; or a .pth / model folder
    resolution: int = 224
    embed_dim: int = 256
    pooling: str = "gem"
    fork: int | None = 5  # stage where the fine-tuned tail starts (None: head only)
    # objective
    loss: str = "triplet"  # triplet | infonce
    margin: float = 0.3
    temperature: float = 0.05
    koleo_weight: float = 0.0
    memory: int = 0  # infonce: embeddings kept from earlier steps as extra negatives (0: off)
    # batches: ``batch_identities`` photos x ``views`` edited copies
    batch_identities: int = 64
    views: int = 4
    strength: float = 1.0
    keep_original: float = 0.5
    neighbours: int = (
        0  # trunk-cache route: batches built of groups of this many mutually near photos (0: random)
    )
    # schedule: frozen backbone + head first, then the forked tail at a lower learning rate
    epochs_head: int = 4
    epochs_tail: int = 40
    lr: float = 1e-3
    lr_tail: float = 2e-4
    weight_decay: float = 1e-4
    steps_per_epoch: int = 0  # 0: one pass over the identities
    val_every: int = 1
    min_precision: float = 0.99
    # CPU route: > 0 precomputes this many edited views per photo through the frozen trunk (trunk_cache.py)
    cache_views: int = 0
    cache_rounds: int = 1  # more rounds add cache_views more views per photo each (seeds seed, seed+1, ...)
    cache_dir: str | None = "runs/cache"
    # machinery
    device: str = "auto"
    amp: bool = True
    workers: int = 4
    out: str = "runs/bundled"
    export: str | None = None  # a model folder to export the best checkpoint to
    # a last.pt to continue from; "last": the one in ``out``; "auto": that one if it exists (elastic restarts)
    resume: str | None = None

    @property
    def epochs(self) -> int:
        return self.epochs_head + self.epochs_tail

    def to_dict(self) -> dict:
        return asdict(self)


def _parse_value(text: str):
    return yaml.safe_load(text)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    values: dict = {}
    if path:
        values.update(yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}")
        values[key.strip()] = _parse_value(value)
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(unknown)}")
    return TrainConfig(**values)
