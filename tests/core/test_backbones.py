"""The backbone registry: each backbone is named once; a new one plugs into the network by registering."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from core.backbones import (
    EfficientNetLite,
    ResNet,
    backbone_spec,
    build_backbone,
    list_backbones,
    register_backbone,
)
from core.model import LookalikeNet, ModelConfig, Normalise


def test_the_registry_holds_the_shipped_families_with_their_input_conventions():
    assert list_backbones() == sorted(
        [f"efficientnet_lite{i}" for i in range(5)] + ["resnet50", "resnet101", "resnet152"]
    )
    lite, resnet = backbone_spec("efficientnet_lite2"), backbone_spec("resnet50")
    assert (lite.resolution, lite.mean, lite.std) == (260, (127.0,) * 3, (128.0,) * 3)
    assert resnet.resolution == 224 and resnet.mean == (123.675, 116.28, 103.53)
    assert (lite.family, resnet.family) == ("efficientnet_lite", "torchvision_resnet")
    assert isinstance(build_backbone("efficientnet_lite0"), EfficientNetLite)
    assert isinstance(build_backbone("resnet50"), ResNet)


def test_an_unknown_name_lists_the_choices_and_a_name_is_registered_once():
    with pytest.raises(ValueError, match="unknown backbone 'vgg16'; choose one of efficientnet_lite0"):
        backbone_spec("vgg16")
    with pytest.raises(ValueError, match="registered twice"):
        register_backbone("resnet50", resolution=224, mean=(0.0,) * 3, std=(1.0,) * 3)(lambda: nn.Identity())


class _Tiny(nn.Module):
    """A two-stage toy backbone, as a user would add one."""

    num_features, resolution = 16, 32

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)
        self.stages = nn.ModuleList([nn.Conv2d(8, 8, 3, 1, 1), nn.Conv2d(8, 16, 3, 2, 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages[1](self.stages[0](self.stem(x)))

    def parts(self) -> tuple[nn.Module, list[nn.Module], nn.Module]:
        return self.stem, list(self.stages), nn.Identity()


def test_a_registered_backbone_plugs_into_the_network_and_its_normalisation():
    register_backbone("tiny_test_backbone", resolution=32, mean=(10.0,) * 3, std=(2.0,) * 3)(_Tiny)
    torch.manual_seed(0)
    net = LookalikeNet(ModelConfig(backbone="tiny_test_backbone", resolution=32, embed_dim=8, fork=1)).eval()
    x = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    norm = Normalise("tiny_test_backbone")
    assert torch.equal(norm(x), (x.permute(0, 3, 1, 2).float() - 10.0) / 2.0)
    emb, features = net(norm(x))
    assert emb.shape == (2, 8) and features.shape == (2, 16)
    # One embedding step: the full forward, the training path and the cached-trunk path agree.
    assert torch.allclose(net.embed(norm(x)), emb) and torch.allclose(
        net.embed_from_trunk(net.trunk(norm(x))), emb
    )
