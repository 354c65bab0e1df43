from pathlib import Path

import numpy as np
import pytest
import torch

from tests.training.conftest import make_photo
from training.data import ViewsDataset, collate_views, read_layout


def test_photos_layout_one_identity_per_image(photo_folder: Path):
    groups = read_layout(photo_folder, "photos")
    assert len(groups) == 8 and all(len(g) == 1 for g in groups)
    assert {g[0].name for g in groups} == {f"p{i}.jpg" for i in range(8)}


def test_identity_layout(tmp_path: Path):
    for obj, n in (("mug", 3), ("shoe", 2)):
        for v in range(n):
            make_photo(tmp_path / obj / f"view{v}.jpg", hash((obj, v)) % 1000)
    (tmp_path / "empty").mkdir()
    groups = read_layout(tmp_path, "identity")
    assert [len(g) for g in groups] == [3, 2]
    assert all(p.parent.name == "mug" for p in groups[0])


def test_product_layout(tmp_path: Path):
    for name in ("a12_0.jpg", "a12_1.jpg", "b_7_front.jpg", "b_7_back.png", "c9_1.jpg"):
        make_photo(tmp_path / name, len(name))
    groups = read_layout(tmp_path, "product")
    assert [[p.name for p in g] for g in groups] == [
        ["a12_0.jpg", "a12_1.jpg"],
        ["b_7_back.png", "b_7_front.jpg"],
        ["c9_1.jpg"],
    ]
    make_photo(tmp_path / "noproductid.jpg", 1)
    with pytest.raises(ValueError, match="product_id"):
        read_layout(tmp_path, "product")


def test_bad_layout_and_folder(tmp_path: Path):
    with pytest.raises(ValueError):
        read_layout(tmp_path / "missing", "photos")
    with pytest.raises(ValueError):
        read_layout(tmp_path, "photos")  # no images
    with pytest.raises(ValueError):
        read_layout(tmp_path, "bogus")


def test_views_dataset_is_seeded_and_batches(photo_folder: Path):
    groups = read_layout(photo_folder, "photos")
    ds = ViewsDataset(groups, size=64, views=3, seed=5)
    x, label = ds[2]
    assert x.shape == (3, 64, 64, 3) and x.dtype == torch.uint8 and label == 2
    assert torch.equal(ds[2][0], x)  # same seed, epoch and item: same edits
    ds.epoch = 1
    assert not torch.equal(ds[2][0], x)  # a new epoch draws new edits
    images, labels = collate_views([ds[0], ds[1]])
    assert images.shape == (6, 64, 64, 3) and labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert np.ptp(images.numpy()) > 0
