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
    sets = {"data": str(photo_folder), "val_data": str(photo_folder), "resolution": 64, "batch_identities": 8,
            "views": 2, "workers": 0, "out": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache"),
            "fork": 6, "init_weights": "resources/model", "val_every": 100} | over
    return load_config("training/configs/bundled.yaml", [f"{k}={v}" for k, v in sets.items()])


def _losses(run: Path) -> list[float]:
    with open(run / "summary.csv", newline="") as fh:
        return [float(r["loss"]) for r in csv.DictReader(fh)]


def test_cached_training_loss_goes_down_and_writes_its_files(tmp_path, photo_folder):
    # Every step sees the same 8 photos x 2 cached views, so the loss must fall as the
    # tail learns them.
    torch.set_num_threads(2)
    cfg = _cfg(tmp_path, photo_folder, cache_views=2, epochs_head=2, epochs_tail=4, lr=3e-3, lr_tail=1e-3,
               margin=0.5, steps_per_epoch=2)
    info = train(cfg)
    run = Path(cfg.out)
    losses = _losses(run)
    assert len(losses) == 6
    assert losses[-1] < 0.7 * losses[0], losses
    assert {"config.yaml", "summary.csv", "best.pt", "last.pt", "best_model_info.json"} <= {
        p.name for p in run.iterdir()}
    best = json.loads((run / "best_model_info.json").read_text())
    assert best["best_epoch"] == info["best_epoch"] and best["hyper_parameters"]["margin"] == 0.5
    net, ck = load_checkpoint(run / "best.pt")
    assert ck["architecture"]["fork"] == 6 and ck["config"]["resolution"] == 64
    assert 0 <= ck["metrics"]["f1"] <= 1 and "per_kind_recall" in ck["metrics"]


def test_live_training_and_export_load_in_core(tmp_path, photo_folder):
    cfg = _cfg(tmp_path, photo_folder, epochs_head=1, epochs_tail=1, steps_per_epoch=1, val_every=1)
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
