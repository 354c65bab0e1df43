"""Tiny real trainings: a few steps on real (small) photos with the real EfficientNet-Lite0."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.embed import Embedder, load_bundle
from training.config import load_config
from training.train import export_best, load_checkpoint, train


def _cfg(tmp_path: Path, photo_folder: Path, **over):
    sets = {
        "data": str(photo_folder),
        "val_data": str(photo_folder),
        "resolution": 64,
        "batch_identities": 8,
        "views": 2,
        "workers": 0,
        "out": str(tmp_path / "run"),
        "cache_dir": str(tmp_path / "cache"),
        "fork": 6,
        "init_weights": "resources/model",
        "val_every": 100,
        "export": str(tmp_path / "export"),
    } | over  # never the config's runs/bundled/model: a real run's
    return load_config("training/configs/bundled.yaml", [f"{k}={v}" for k, v in sets.items()])


def _losses(run: Path) -> list[float]:
    with open(run / "summary.csv", newline="") as fh:
        return [float(r["loss"]) for r in csv.DictReader(fh)]


def test_cached_training_loss_goes_down_and_writes_its_files(tmp_path, photo_folder):
    # Every step sees the same 8 photos x 2 cached views, so the loss must fall as the
    # tail learns them. Neighbour batches (groups of 4) embed every photo's cached view at each epoch start.
    torch.set_num_threads(2)
    cfg = _cfg(
        tmp_path,
        photo_folder,
        cache_views=2,
        epochs_head=2,
        epochs_tail=4,
        lr=3e-3,
        lr_tail=1e-3,
        margin=0.5,
        steps_per_epoch=2,
        neighbours=4,
    )
    info = train(cfg)
    run = Path(cfg.out)
    losses = _losses(run)
    assert len(losses) == 6
    assert losses[-1] < 0.7 * losses[0], losses
    assert {"config.yaml", "summary.csv", "best.pt", "last.pt", "best_model_info.json"} <= {
        p.name for p in run.iterdir()
    }
    best = json.loads((run / "best_model_info.json").read_text())
    assert best["best_epoch"] == info["best_epoch"] and best["hyper_parameters"]["margin"] == 0.5
    net, ck = load_checkpoint(run / "best.pt")
    assert ck["architecture"]["fork"] == 6 and ck["config"]["resolution"] == 64
    assert 0 <= ck["metrics"]["f1"] <= 1 and "per_kind_recall" in ck["metrics"]


def test_live_training_and_export_load_in_core(tmp_path, photo_folder):
    cfg = _cfg(
        tmp_path,
        photo_folder,
        cache_views=0,
        neighbours=0,
        epochs_head=1,
        epochs_tail=1,
        steps_per_epoch=1,
        val_every=1,
    )
    info = train(cfg)
    out = tmp_path / "model"
    manifest = export_best(Path(cfg.out) / "best.pt", out, info)
    bundle = load_bundle(out)  # checks both files' sha256 against the manifest
    assert bundle.resolution == 64 and bundle.embed_dim == 256 and manifest["architecture"]["fork"] == 6
    x = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    e1, f1 = Embedder(bundle, "cpu", backend="onnx").embed_arrays(x)
    e2, f2 = Embedder(bundle, "cpu", backend="torch").embed_arrays(x)
    assert (e1 * e2).sum(1).min() > 0.999 and (f1 * f2).sum(1).min() > 0.999


def test_config_overrides_are_checked():
    with pytest.raises(ValueError, match="unknown config keys"):
        load_config(None, ["learning_rate=1"])
    with pytest.raises(ValueError, match="key=value"):
        load_config(None, ["lr"])
    assert load_config(None, ["lr=0.5", "fork=null"]).fork is None


def test_onnx_trunk_matches_torch_on_real_photos(photo_folder):
    # The CPU route caches trunk features from ONNX Runtime: they must be torch's, to bfloat16 rounding.
    from core.model import Normalise
    from training.data import ViewsDataset, read_layout
    from training.train import build_net
    from training.trunk_cache import OnnxTrunk, torch_trunk

    cfg = load_config("training/configs/bundled.yaml", ["resolution=96", "init_weights=resources/model"])
    net = build_net(cfg).eval()
    views = ViewsDataset(read_layout(photo_folder, "photos")[:3], 96, views=2, seed=0)
    images = torch.cat([views[i][0] for i in range(3)])
    got = OnnxTrunk(net)(images).float()
    want = torch_trunk(net, Normalise(cfg.backbone), torch.device("cpu"), amp=False)(images).float()
    assert got.shape == want.shape == (6, 112, 6, 6)
    cos = torch.nn.functional.cosine_similarity(got.flatten(1), want.flatten(1))
    assert cos.min() > 0.9999, cos
    assert float((got - want).abs().max()) < 0.02 * float(want.abs().max())


def test_neighbour_batches_put_close_photos_in_one_batch():
    from training.trunk_cache import neighbour_batches

    # Four clusters of four identities (unit vectors around four axes), their ids shuffled.
    rng = np.random.default_rng(5)
    ids = rng.permutation(16)
    emb = np.zeros((16, 8))
    for cluster in range(4):
        for j in range(4):
            emb[ids[cluster * 4 + j], cluster] = 1.0
            emb[ids[cluster * 4 + j], 4 + j] = 0.1
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    cluster_of = {int(i): c for c in range(4) for i in ids[c * 4 : c * 4 + 4]}
    batches = neighbour_batches(16, batch=8, rng=np.random.default_rng(0), emb=emb, group=4)
    assert len(batches) == 2 and sorted(np.concatenate(batches).tolist()) == list(range(16))
    for b in batches:  # two whole clusters per batch, never a cluster split across batches
        assert sorted(np.bincount([cluster_of[int(i)] for i in b], minlength=4).tolist()) == [0, 0, 4, 4]
    # group 1 is the plain shuffled order, and an incomplete last batch is dropped either way
    assert [b.tolist() for b in neighbour_batches(16, 5, np.random.default_rng(3), emb, 1)] == [
        b.tolist() for b in np.split(np.random.default_rng(3).permutation(16)[:15], 3)
    ]
    assert sum(len(b) for b in neighbour_batches(16, 6, np.random.default_rng(1), emb, 4)) == 12


def test_neighbours_need_the_trunk_cache(tmp_path, photo_folder):
    with pytest.raises(ValueError, match="trunk cache"):
        train(_cfg(tmp_path, photo_folder, neighbours=4, cache_views=0, epochs_head=1, epochs_tail=0))


def test_cache_rounds_fill_one_pool_and_are_reused(tmp_path, photo_folder):
    from core.model import Normalise
    from training.batches import CachedBatches
    from training.data import read_layout
    from training.train import build_net
    from training.valset import build_valset

    cfg = _cfg(tmp_path, photo_folder, cache_views=2, cache_rounds=2)
    groups = read_layout(cfg.data, cfg.layout)
    val = build_valset(
        [g[0] for g in groups[:2]], cfg.resolution, cfg.val_seed, kinds=("flip", "crop_50"), workers=1
    )
    net, norm, cpu = build_net(cfg), Normalise(cfg.backbone), torch.device("cpu")
    first = CachedBatches(cfg, groups, val, net, norm, cpu)
    assert first.train_feats.shape[:2] == (len(groups), 4)  # 2 rounds x 2 views in one tensor
    assert len(first.val_feats) == len(val.images)
    # The rounds differ (their own seeds) and a second run reads the same tensors back from the cache files.
    assert not torch.equal(first.train_feats[:, :2], first.train_feats[:, 2:])
    assert len(list(Path(cfg.cache_dir).glob("trunk-*.pt"))) == 2
    again = CachedBatches(cfg, groups, val, net, norm, cpu)
    assert torch.equal(first.train_feats, again.train_feats) and torch.equal(first.val_feats, again.val_feats)
    # Seed 1 finds its first round cached as the second round of seed 0 (stored without validation
    # features): it reuses those views and computes the validation features it lacks.
    cfg.seed, cfg.cache_rounds = 1, 1
    shifted = CachedBatches(cfg, groups, val, net, norm, cpu)
    assert torch.equal(shifted.train_feats, first.train_feats[:, 2:])
    assert torch.allclose(shifted.val_feats.float(), first.val_feats.float())
    assert len(list(Path(cfg.cache_dir).glob("trunk-*.pt"))) == 2


def test_resnet_with_weights_you_bring_trains_and_a_wrong_file_is_refused(tmp_path, photo_folder):
    # No ImageNet ResNet weights can be had here, so the "brought" file is a seeded torchvision-layout state
    # dict, saved the way torchvision users save one (under "state_dict", DataParallel's "module." prefix).
    from core.backbones import ResNet
    from training.train import build_net, main

    torch.manual_seed(0)
    ref = ResNet("resnet50")
    weights = tmp_path / "resnet50.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}}, weights)
    out = tmp_path / "run"
    main(
        [
            "--config",
            "training/configs/bundled.yaml",
            "--backbone",
            "resnet50",
            "--weights",
            str(weights),
            "--set",
            "fork=3",
            "--set",
            "resolution=64",
            "--set",
            f"data={photo_folder}",
            "--set",
            f"val_data={photo_folder}",
            "--set",
            "batch_identities=4",
            "--set",
            "views=2",
            "--set",
            "workers=0",
            "--set",
            "cache_views=0",
            "--set",
            "neighbours=0",
            "--set",
            "epochs_head=1",
            "--set",
            "epochs_tail=1",
            "--set",
            "steps_per_epoch=1",
            "--set",
            f"out={out}",
            "--set",
            "export=null",
        ]
    )
    net, ck = load_checkpoint(out / "best.pt")
    assert ck["architecture"]["backbone"] == "resnet50" and ck["config"]["init_weights"] == str(weights)
    # The frozen ImageNet branch is the brought weights, tensor for tensor.
    got = net.backbone.state_dict()
    assert all(torch.equal(got[k], v) for k, v in ref.state_dict().items() if not k.startswith("fc."))

    lite = tmp_path / "lite.pth"
    torch.save(build_net(load_config(None, ["init_weights=resources/model"])).backbone.state_dict(), lite)
    with pytest.raises(ValueError, match="does not hold resnet50 weights"):
        build_net(load_config(None, ["backbone=resnet50", "fork=3", f"init_weights={lite}"]))
    with pytest.raises(SystemExit):  # no weights: a clear refusal, not a silently random backbone
        main(["--backbone", "resnet50", "--set", f"data={photo_folder}"])
