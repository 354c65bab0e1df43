"""The committed model in resources/model: intact, loadable by core/, ONNX = torch, and right on the demo."""

import json
from pathlib import Path

import numpy as np
import pytest

from core.decode import decode_for_model
from core.embed import Embedder, load_bundle, sha256_file

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "resources" / "model"
DEMO = ROOT / "resources" / "demo"


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(MODEL)


@pytest.fixture(scope="module")
def demo():
    groups = json.loads((DEMO / "MANIFEST.json").read_text())
    return groups


def _embed(bundle, files, **kw):
    batch = np.stack([decode_for_model(str(DEMO / f), bundle.resolution).pixels for f in files])
    return Embedder(bundle, **kw).embed_arrays(batch)


def test_manifest_hashes_match_the_files(bundle):
    m = json.loads((MODEL / "manifest.json").read_text())
    assert sha256_file(MODEL / m["weights"]["file"]) == m["weights"]["sha256"]
    assert sha256_file(MODEL / m["onnx"]["file"]) == m["onnx"]["sha256"]
    assert sha256_file(MODEL / m["onnx_int8"]["file"]) == m["onnx_int8"]["sha256"]
    assert 0 < m["thresholds"]["similar"] < m["thresholds"]["duplicate"] < 1
    assert m["architecture"]["embed_dim"] == bundle.embed_dim and m["similar_source"] == "features"


def test_onnx_and_torch_agree_on_real_photos(bundle, demo):
    files = [g[0] for g in demo["groups"]] + [g[-1] for g in demo["groups"]]
    e1, f1 = _embed(bundle, files, device="cpu", backend="onnx", int8=False)
    e2, f2 = _embed(bundle, files, device="cpu", backend="torch")
    assert float((e1 * e2).sum(1).min()) >= 0.999
    assert float((f1 * f2).sum(1).min()) >= 0.999


@pytest.mark.parametrize("int8", [False, True], ids=["float", "int8"])
def test_demo_copies_are_duplicates_and_distinct_photos_are_not(bundle, demo, int8):
    files = [f for g in demo["groups"] for f in g] + demo["distinct"]
    label = [i for i, g in enumerate(demo["groups"]) for _ in g] + [
        -1 - i for i in range(len(demo["distinct"]))
    ]
    emb, _ = _embed(bundle, files, device="cpu", backend="onnx", int8=int8)
    sim = emb @ emb.T
    label = np.array(label)
    same = (label[:, None] == label[None, :]) & ~np.eye(len(files), dtype=bool)
    t = bundle.duplicate_threshold
    assert sim[same].min() >= t, f"a demo copy falls below the duplicate threshold {t}"
    assert sim[~same & ~np.eye(len(files), dtype=bool)].max() < t


def test_features_branch_is_the_plain_imagenet_network(bundle):
    """ "Find similar" relies on this: fine-tuning left the backbone (and so the features output)
    untouched."""
    import torch
    from safetensors.torch import load_file

    from core.model import ModelConfig
    from training.export import imagenet_net

    ref = imagenet_net(ModelConfig.from_dict(bundle.manifest["architecture"])).export_state()
    got = load_file(str(bundle.file("weights")))
    keys = [k for k in ref if k.startswith("backbone.") and "num_batches_tracked" not in k]
    assert len(keys) > 100
    for k in keys:
        assert torch.equal(got[k], ref[k].to(torch.float16)), k


def test_onnx_stores_its_weights_in_fp16(bundle):
    """The committed graph keeps large weights as fp16 behind Casts (half the size); it still computes in
    fp32."""
    import onnx

    model = onnx.load(str(bundle.file("onnx")))
    big = [i for i in model.graph.initializer if int(np.prod(i.dims)) >= 1024]
    assert big and all(i.data_type == onnx.TensorProto.FLOAT16 for i in big)
    casts = {n.input[0] for n in model.graph.node if n.op_type == "Cast"}
    assert {i.name for i in big} <= casts
    assert bundle.file("onnx").stat().st_size < 15_000_000


def test_a_reexported_float_graph_drops_the_int8_graph_made_from_the_old_one(tmp_path):
    """The int8 graph is quantised from the float one: kept beside a new float graph, it would run the old
    numbers under a valid hash."""
    import shutil

    from training.export import reexport_onnx

    shutil.copytree(MODEL, tmp_path / "m")
    manifest = reexport_onnx(tmp_path / "m")
    assert "onnx_int8" not in manifest and not (tmp_path / "m" / "model.int8.onnx").exists()
    assert Embedder(load_bundle(tmp_path / "m"), "cpu", int8=True).graph == "onnx"
