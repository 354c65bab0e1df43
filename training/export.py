"""Export a ``LookalikeNet`` to a model folder: fp16 safetensors + ONNX (uint8 NHWC in, fp16-stored
weights computed in fp32) + manifest.

The ONNX graph is exported from the very weights written to safetensors (rounded to fp16 first) and checked
against torch before the manifest is written.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from core.backbones import backbone_spec, freeze_same_padding
from core.embed import sha256_file
from core.model import LookalikeNet, ModelConfig, UInt8Wrapper
from training.weights import imagenet_backbone

log = logging.getLogger(__name__)


def imagenet_net(config: ModelConfig) -> LookalikeNet:
    """A LookalikeNet whose backbone carries the pinned package's ImageNet weights."""
    return LookalikeNet(config, imagenet_backbone(config.backbone))


def export_fixed_size(module: torch.nn.Module, net: LookalikeNet, path: Path, outputs: list[str]) -> None:
    """Export ``module`` (uint8 NHWC ``image`` in, ``net`` inside) for ``net``'s fixed input size, with
    constant "same" padding (2x faster in ONNX Runtime) and a dynamic batch."""
    r = net.config.resolution
    x = torch.zeros(2, r, r, 3, dtype=torch.uint8)
    freeze_same_padding(net, r)
    try:
        torch.onnx.export(
            module.eval(),
            (x,),
            str(path),
            input_names=["image"],
            output_names=outputs,
            dynamic_axes={"image": {0: "batch"}} | {o: {0: "batch"} for o in outputs},
            opset_version=17,
            dynamo=False,
        )
    finally:
        freeze_same_padding(net, None)


def export_onnx(net: LookalikeNet, path: Path) -> None:
    """The app's graph: both outputs, embedding and ImageNet features."""
    export_fixed_size(UInt8Wrapper(net), net, path, ["embedding", "features"])


def store_weights_fp16(path: Path, min_elements: int = 1024) -> None:
    """Store the graph's large float weights as fp16, each behind a Cast back to float32.

    Halves the committed file. ONNX Runtime folds the casts into float32 weights when the session loads, so
    inference runs in float32 at the same speed. The weights were rounded to fp16 before export; only the
    BatchNorm scales folded into the convolutions are rounded again (cosine to torch stays >= 0.9999).
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    casts, keep = [], []
    for init in graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and int(np.prod(init.dims)) >= min_elements:
            half = numpy_helper.from_array(
                numpy_helper.to_array(init).astype(np.float16), init.name + "_fp16"
            )
            keep.append(half)
            casts.append(
                helper.make_node(
                    "Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT, name=init.name + "_cast"
                )
            )
        else:
            keep.append(init)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def write_checked_onnx(net: LookalikeNet, onnx_path: Path) -> float:
    """Export to ``onnx_path`` only if ONNX Runtime agrees with torch (min cosine >= 0.999); returns it."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp_onnx = Path(tmp) / "model.onnx"
        export_onnx(net, tmp_onnx)
        store_weights_fp16(tmp_onnx)
        cos = check_onnx_matches_torch(net, tmp_onnx)
        if cos < 0.999:
            raise RuntimeError(f"ONNX export disagrees with torch (min cosine {cos:.5f})")
        os.replace(tmp_onnx, onnx_path)
    return cos


def check_onnx_matches_torch(net: LookalikeNet, onnx_path: Path, seed: int = 0) -> float:
    """Minimum cosine between torch and ONNX Runtime outputs on random and smooth images."""
    import onnxruntime as ort

    r = net.config.resolution
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (4, r, r, 3), dtype=np.uint8)
    ramp = np.broadcast_to(np.linspace(0, 255, r, dtype=np.float32)[None, :, None, None], (4, r, r, 3))
    smooth = (ramp * rng.uniform(0.2, 1.0, (4, 1, 1, 3))).astype(np.uint8)
    batch = np.concatenate([noise, smooth])
    with torch.inference_mode():
        t_emb, t_feat = UInt8Wrapper(net).eval()(torch.from_numpy(batch))
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    o_emb, o_feat = sess.run(None, {"image": batch})
    cos = min(float((t_emb.numpy() * o_emb).sum(1).min()), float((t_feat.numpy() * o_feat).sum(1).min()))
    return cos


def export_bundle(
    net: LookalikeNet,
    out_dir: Path,
    *,
    name: str,
    thresholds: dict,
    similar_source: str = "features",
    extra: dict | None = None,
) -> dict:
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    net = net.eval().cpu()
    state = {
        k: v.detach().to(torch.float16).contiguous()
        for k, v in net.export_state().items()
        if "num_batches_tracked" not in k
    }
    # Round the live model to the stored fp16 weights so torch and ONNX share exactly the same numbers.
    net.load_export_state({k: v.float() for k, v in state.items()})
    weights = out_dir / "model.safetensors"
    save_file(state, str(weights), metadata={"name": name})
    onnx_path = out_dir / "model.onnx"
    cos = write_checked_onnx(net, onnx_path)
    manifest = {
        "name": name,
        "architecture": net.config.to_dict(),
        "input": {
            "layout": "NHWC",
            "dtype": "uint8",
            "resize": "squash to resolution, bilinear",
            "normalisation": "inside the graph: (x - mean) / std",
            "mean": list(map(float, backbone_spec(net.config.backbone).mean)),
            "std": list(map(float, backbone_spec(net.config.backbone).std)),
        },
        "embedding_dim": net.embed_dim,
        "feature_dim": net.feature_dim,
        "weights": {"file": weights.name, "sha256": sha256_file(weights), "dtype": "float16"},
        "onnx": {
            "file": onnx_path.name,
            "sha256": sha256_file(onnx_path),
            "opset": 17,
            "min_cosine_vs_torch": round(cos, 6),
        },
        "thresholds": thresholds,
        "similar_source": similar_source,
        **(extra or {}),
    }
    _drop_int8(out_dir, manifest)
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _drop_int8(folder: Path, manifest: dict) -> None:
    """An int8 graph quantised from the float graph just replaced would run old numbers under a valid
    hash: it goes, until ``python -m training.quantize`` makes it again from the new graph."""
    from training.quantize import FILE

    old = manifest.pop("onnx_int8", None)
    stale = folder / (old or {}).get("file", FILE)
    if stale.exists():
        stale.unlink()
        log.info(
            "removed %s: run `python -m training.quantize --model %s` to quantise the new graph",
            stale,
            folder,
        )


def reexport_onnx(folder: Path) -> dict:
    """Export a bundle's ONNX file again from its own weights (the weights, their hash and every cached
    embedding stay valid); the manifest gets the new file's hash and the torch-vs-ONNX check."""
    from safetensors.torch import load_file

    from core.embed import load_bundle

    bundle = load_bundle(folder, verify=False)
    net = LookalikeNet(ModelConfig.from_dict(bundle.manifest["architecture"]))
    net.load_export_state({k: v.float() for k, v in load_file(str(bundle.file("weights"))).items()})
    net.eval()
    onnx_path = bundle.file("onnx")
    cos = write_checked_onnx(net, onnx_path)
    manifest = dict(bundle.manifest)
    manifest["onnx"] = {
        **manifest["onnx"],
        "sha256": sha256_file(onnx_path),
        "min_cosine_vs_torch": round(cos, 6),
    }
    _drop_int8(Path(folder), manifest)
    (Path(folder) / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description="Export the plain ImageNet model (no fine-tuning) to a folder, or "
        "--reexport a model folder's ONNX file from its weights."
    )
    p.add_argument("--reexport", type=Path, metavar="FOLDER", help="re-export FOLDER's ONNX file only")
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--out", type=Path, default=Path("resources/model"))
    p.add_argument("--duplicate-threshold", type=float, default=0.85)
    p.add_argument("--similar-threshold", type=float, default=0.6)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    if a.reexport:
        print(json.dumps(reexport_onnx(a.reexport)["onnx"], indent=2))
        return
    cfg = ModelConfig(
        backbone=a.backbone,
        resolution=backbone_spec(a.backbone).resolution,
        embed_dim=0,
        pooling="avg",
        fork=None,
    )
    m = export_bundle(
        imagenet_net(cfg),
        a.out,
        name=f"{a.backbone}-imagenet",
        thresholds={"duplicate": a.duplicate_threshold, "similar": a.similar_threshold},
        extra={"training": {"note": "ImageNet weights only, not fine-tuned"}},
    )
    print(json.dumps(m, indent=2))


if __name__ == "__main__":
    main()
