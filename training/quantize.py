"""Quantise a bundle's ONNX graph to int8 for CPUs that run it well: ``python -m training.quantize``.

Static quantisation with ONNX Runtime: uint8 activations, int8 weights per output channel, activation
ranges from a percentile of what training photos produce (``CALIBRATION`` photos of the training split,
never the validation photos). QOperator format: measured on a 2-core EPYC with AVX-512 VNNI, 165-209
img/s against 68-79 for the float graph; QDQ ran at 121 and with int8 activations at 68.

The result is checked before it is kept: embedding and features of ``CHECK`` other training photos must
agree with the float graph's (minimum cosine ``MIN_COSINE``). It is written as ``model.int8.onnx`` and
recorded under ``onnx_int8`` in the manifest; ``core.embed.int8_suits_cpu`` decides where it runs. The
validation figures of both graphs are in ``training/reports/evaluation.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

from core.decode import read_full, resize_for_model
from core.embed import Embedder, ModelBundle, load_bundle, sha256_file
from training.prepare_data import split_shared_datasets

log = logging.getLogger(__name__)

CALIBRATION = 96
CHECK = 104
SEED = 0
# The least cosine between the int8 and float graphs' outputs on the check photos (measured: embedding
# 0.9944, features 0.9731 with percentile calibration).
MIN_COSINE = 0.96
FILE = "model.int8.onnx"


def photo_arrays(files: list[Path], size: int) -> np.ndarray:
    return np.stack([resize_for_model(read_full(str(f), 2 * size), size) for f in files])


def _agreement(bundle: ModelBundle, int8_file: Path, images: np.ndarray) -> dict[str, float]:
    """Least cosine per output between the bundle's float graph and the int8 graph in ``int8_file``."""
    staged = ModelBundle(bundle.folder, {**bundle.manifest, "onnx_int8": {"file": str(int8_file.resolve())}})
    floats = Embedder(staged, "cpu", backend="onnx", int8=False).embed_arrays(images)
    ints = Embedder(staged, "cpu", backend="onnx", int8=True).embed_arrays(images)
    names = ("embedding", "features")
    return {n: float((a * b).sum(1).min()) for n, a, b in zip(names, floats, ints, strict=True)}


def quantize_bundle(bundle_dir: Path, train_files: list[Path]) -> dict:
    """Write ``model.int8.onnx`` beside the bundle's float graph and record it in the manifest."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    bundle = load_bundle(bundle_dir)
    rng = np.random.default_rng(SEED)
    pick = [train_files[i] for i in rng.choice(len(train_files), CALIBRATION + CHECK, replace=False)]
    images = photo_arrays(pick, bundle.resolution)
    calib, check = images[:CALIBRATION], images[CALIBRATION:]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"image": calib[i : i + 4]} for i in range(0, len(calib), 4)])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    out = bundle_dir / FILE
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(bundle.file("onnx")), str(pre))
        staged = Path(tmp) / FILE
        quantize_static(
            str(pre),
            str(staged),
            Reader(),
            quant_format=QuantFormat.QOperator,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.Percentile,
        )
        # checked where it was made: the bundle is written only with a graph that passed
        agree = _agreement(bundle, staged, check)
        if min(agree.values()) < MIN_COSINE:
            raise RuntimeError(f"the int8 graph disagrees with the float one: {agree}")
        shutil.move(staged, out)  # a temporary folder may be on another file system
    manifest = dict(bundle.manifest)
    manifest["onnx_int8"] = {
        "file": FILE,
        "sha256": sha256_file(out),
        "format": "QOperator, uint8 activations, int8 weights per channel",
        "calibration": {"method": "percentile", "photos": CALIBRATION, "seed": SEED, "split": "train"},
        "min_cosine_vs_float": {k: round(v, 4) for k, v in agree.items()},
    }
    (bundle_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest["onnx_int8"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=Path("resources/model"))
    p.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(json.dumps(quantize_bundle(a.model, split_shared_datasets(a.datasets)["train"]), indent=2))


if __name__ == "__main__":
    main()
