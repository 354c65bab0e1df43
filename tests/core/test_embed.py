"""The bundled model: manifest hashes, device choice, and ONNX Runtime vs torch giving the same embeddings."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest
from helpers import DEMO

from core.decode import decode_for_model
from core.embed import Embedder, int8_suits_cpu, load_bundle, pick_device, sha256_file
from core.errors import DeviceError, ModelError


def test_manifest_hashes_match_files():
    b = load_bundle()
    assert sha256_file(b.file("weights")) == b.sha256
    assert sha256_file(b.file("onnx")) == b.manifest["onnx"]["sha256"]
    assert 0 < b.similar_threshold <= b.duplicate_threshold < 1


@pytest.mark.parametrize("graph", ["onnx", "onnx_int8"])
def test_tampered_model_is_refused(tmp_path, graph):
    b = load_bundle()
    shutil.copytree(b.folder, tmp_path / "m")
    with open(tmp_path / "m" / b.manifest[graph]["file"], "ab") as fh:
        fh.write(b"x")
    with pytest.raises(ModelError, match="sha256"):
        load_bundle(tmp_path / "m")
    (tmp_path / "m" / "manifest.json").write_text("{broken")
    with pytest.raises(ModelError):
        load_bundle(tmp_path / "m")


def test_device_choice():
    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError):
        pick_device("tpu")
    with pytest.raises(ValueError):
        pick_device("mps:0")  # only CUDA devices are numbered
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA"):
            pick_device("cuda:0")
    else:
        assert pick_device("cuda:0") == "cuda:0"
        with pytest.raises(DeviceError, match="CUDA devices"):
            pick_device(f"cuda:{torch.cuda.device_count()}")


def _batch(size):
    paths = sorted(DEMO.glob("*/*.jpg"))[:8]
    return np.stack([decode_for_model(str(p), size).pixels for p in paths])


def test_onnx_outputs_are_unit_vectors():
    e = Embedder(device="cpu")
    emb, feat = e.embed_arrays(_batch(e.size))
    assert emb.shape == (8, e.bundle.embed_dim) and feat.shape == (8, e.bundle.feature_dim)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)
    assert np.allclose(np.linalg.norm(feat, axis=1), 1, atol=1e-4)
    with pytest.raises(ValueError):
        e.embed_arrays(np.zeros((1, 10, 10, 3), np.uint8))


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_onnx_and_torch_agree():
    onnx = Embedder(device="cpu", backend="onnx", int8=False)  # the float graph; int8: see below
    torch_ = Embedder(device="cpu", backend="torch")
    batch = _batch(onnx.size)
    (e1, f1), (e2, f2) = onnx.embed_arrays(batch), torch_.embed_arrays(batch)
    assert (e1 * e2).sum(1).min() >= 0.999
    assert (f1 * f2).sum(1).min() >= 0.999


def test_manifest_is_complete():
    m = json.loads((load_bundle().folder / "manifest.json").read_text())
    for key in (
        "name",
        "architecture",
        "input",
        "embedding_dim",
        "feature_dim",
        "weights",
        "onnx",
        "thresholds",
    ):
        assert key in m


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="onnx not installed")
def test_onnx_graph_has_constant_padding():
    """Shape arithmetic before every convolution halved ONNX Runtime's speed; the export freezes padding."""
    import onnx

    ops = [n.op_type for n in onnx.load(str(load_bundle().file("onnx"))).graph.node]
    # Only the two output L2 normalisations read a shape (dynamic padding had 68 Shape ops).
    assert ops.count("Shape") <= 2 and "Gather" not in ops, sorted(set(ops))


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_frozen_padding_changes_nothing():
    import torch

    from core.backbones import EfficientNetLite, freeze_same_padding

    torch.manual_seed(0)
    net = EfficientNetLite("efficientnet_lite0").eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        dynamic = net(x)
        freeze_same_padding(net, 224)
        frozen = net(x)
        freeze_same_padding(net, None)
        again = net(torch.randn(1, 3, 200, 200))  # dynamic again: any size works
    assert torch.allclose(dynamic, frozen, atol=1e-5) and again.shape[-1] == 7


def test_auto_never_imports_torch_where_no_gpu_can_exist():
    """`--device auto` imported torch (1.5 s, ~700 MB) on machines that cannot have CUDA or MPS."""
    import subprocess
    import sys

    from core.embed import _accelerator_may_exist

    if _accelerator_may_exist():
        pytest.skip("this machine may have a GPU")
    code = (
        "import sys; from core.embed import pick_device; print(pick_device('auto'), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["cpu", "False"], out.stderr


def test_memory_budget_bounds_what_decodes_hold_at_once():
    import threading
    import time

    from core.embed import MemoryBudget

    budget = MemoryBudget(100)
    held, most = [0], [0]
    lock = threading.Lock()

    def work(n):
        with budget.reserve(n):
            with lock:
                held[0] += min(n, 100)
                most[0] = max(most[0], held[0])
            time.sleep(0.02)
            with lock:
                held[0] -= min(n, 100)

    threads = [threading.Thread(target=work, args=(n,)) for n in (60, 60, 30, 500, 10, 10, 60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads), "a reservation never ran"
    assert most[0] <= 100 and budget.peak <= 100
    with budget.reserve(10), budget.reserve(10):  # small ones run side by side
        assert budget.peak >= 20
    with pytest.raises(ValueError):
        MemoryBudget(0)


def test_parallel_giant_decodes_share_one_memory_budget(tmp_path):
    """Four 16-bit 15000x15000 PNGs over two decode threads peaked at 5.2 GB RSS. With cheaper decodes and the
    default budget they take ~1.0 GB; a budget below two of them (0.5 GB each) makes them decode one at a
    time."""
    from faults.hostile import giant16_png
    from test_decode import peak_rss_mb

    paths = [str(giant16_png(tmp_path / f"g{k}.png")) for k in range(3)]
    peak, out = peak_rss_mb(
        "from core.embed import Embedder, embed_files\n"
        f"for batch in embed_files(Embedder(device='cpu'), {paths!r}, workers=2, "
        f"memory_budget=600_000_000):\n"
        "    print('ERRORS', [e.error for e in batch])\n",
        timeout=180,
    )
    assert "ERRORS [None, None, None]" in out, out
    assert peak < 900, f"peak RSS {peak:.0f} MB"  # one giant (~0.45 GB of pixels), the model and Python


def test_a_large_batch_is_inferred_in_small_calls_with_the_same_result():
    """ONNX Runtime's arena keeps its largest call's activations: 16 portraits with their two turns (48 rows)
    held 842 MB of RSS for the rest of the scan. The rows go through in small calls, with equal results."""
    from test_decode import peak_rss_mb

    peak, out = peak_rss_mb(
        "import numpy as np\n"
        "from core.embed import Embedder\n"
        "e = Embedder(device='cpu')\n"
        "x = np.random.default_rng(0).integers(0, 255, (48, 224, 224, 3), dtype=np.uint8)\n"
        "emb, feat = e.embed_arrays(x)\n"
        "one = e.embed_arrays(x[40:41])\n"
        "print('SHAPES', emb.shape[0], feat.shape[0], float(np.abs(emb[40] - one[0][0]).max()))\n",
        timeout=120,
    )
    shapes = out.split("SHAPES")[1].split()
    assert shapes[:2] == ["48", "48"], out
    assert float(shapes[2]) < 1e-4, out
    assert peak < 450, f"peak RSS {peak:.0f} MB"  # 842 MB when the 48 rows went in one call


def _demo_batch(size: int) -> np.ndarray:
    files = sorted(p for p in DEMO.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    return np.stack([decode_for_model(str(f), size).pixels for f in files[:12]])


def test_the_int8_graph_agrees_with_the_float_graph_on_real_photos():
    """The quantised graph (training/quantize.py) is another graph, not a copy of the float one, and gives
    the same answers to a cosine the thresholds cannot tell apart (validation: F1 0.9906 -> 0.9908)."""
    b = load_bundle()
    assert sha256_file(b.file("onnx_int8")) == b.manifest["onnx_int8"]["sha256"]
    floats, ints = Embedder(b, "cpu", int8=False), Embedder(b, "cpu", int8=True)
    assert (floats.graph, ints.graph) == ("onnx", "onnx_int8")
    batch = _demo_batch(floats.size)
    (e1, f1), (e2, f2) = floats.embed_arrays(batch), ints.embed_arrays(batch)
    assert np.abs(e1 - e2).max() > 1e-3  # really the quantised graph
    assert (e1 * e2).sum(1).min() >= 0.99
    assert (f1 * f2).sum(1).min() >= 0.96
    assert np.allclose(np.linalg.norm(e2, axis=1), 1, atol=1e-4)


def test_the_graph_follows_the_cpu_and_can_be_forced(monkeypatch, tmp_path):
    b = load_bundle()
    monkeypatch.setenv("LOOKALIKE_INT8", "0")
    assert not int8_suits_cpu() and Embedder(b, "cpu").graph == "onnx"
    monkeypatch.setenv("LOOKALIKE_INT8", "1")
    assert int8_suits_cpu() and Embedder(b, "cpu").graph == "onnx_int8"
    assert Embedder(b, "cpu", int8=False).graph == "onnx"  # the caller's word beats the environment
    monkeypatch.delenv("LOOKALIKE_INT8")
    from numpy._core._multiarray_umath import __cpu_features__ as cpu

    assert int8_suits_cpu() == bool(cpu.get("AVX512VNNI") or cpu.get("ASIMDDP"))
    # A bundle made before quantisation runs its float graph, whatever the CPU.
    shutil.copytree(b.folder, tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    del manifest["onnx_int8"]
    (tmp_path / "m" / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "m" / "model.int8.onnx").unlink()
    assert Embedder(load_bundle(tmp_path / "m"), "cpu", int8=True).graph == "onnx"


def test_cached_embeddings_are_named_for_the_graph_that_made_them(monkeypatch, tmp_path):
    """Embeddings of the int8 graph are not served to a run of the float graph, nor the other way."""
    from core.engine import Engine

    keys = {}
    for flag in ("0", "1"):
        monkeypatch.setenv("LOOKALIKE_INT8", flag)
        engine = Engine(device="cpu", cache_dir=tmp_path)
        keys[flag] = engine.cache_key
        graph = "onnx_int8" if flag == "1" else "onnx"
        assert engine.bundle.manifest[graph]["sha256"] in keys[flag]
    assert keys["0"] != keys["1"]
    # An engine told which graph to run (a Ray worker runs the driver's) keys its cache by that graph.
    monkeypatch.delenv("LOOKALIKE_INT8")
    for int8, flag in ((False, "0"), (True, "1")):
        engine = Engine(device="cpu", cache_dir=tmp_path, int8=int8)
        assert engine.embedder.graph == ("onnx_int8" if int8 else "onnx")
        assert engine.cache_key == keys[flag]
