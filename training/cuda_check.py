"""Check the GPU path: the bundled model through torch on CUDA against ONNX Runtime on the CPU, same images.

``python -m training.cuda_check --out docs/cuda_check.md`` on a machine with an NVIDIA GPU; prints and writes
the minimum cosine between the two backends for both outputs, and the throughput of each.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from core.decode import decode_for_model
from core.embed import Embedder, load_bundle

EXTS = {".jpg", ".jpeg", ".png"}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=Path, default=Path("resources/demo"))
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    import torch

    bundle = load_bundle()
    files = sorted(f for f in a.images.rglob("*") if f.suffix.lower() in EXTS)
    batch = np.stack([decode_for_model(str(f), bundle.resolution).pixels for f in files])
    rows = []
    results = {}
    for name, emb in (
        ("onnx-cpu", Embedder(bundle, "cpu", backend="onnx")),
        ("torch-cuda", Embedder(bundle, "cuda", backend="torch")),
    ):
        emb.embed_arrays(batch[:4])  # warm-up
        t = time.perf_counter()
        results[name] = emb.embed_arrays(batch)
        rows.append(f"| {name} | {len(batch) / (time.perf_counter() - t):.0f} |")
    (e1, f1), (e2, f2) = results["onnx-cpu"], results["torch-cuda"]
    cos_e, cos_f = float((e1 * e2).sum(1).min()), float((f1 * f2).sum(1).min())
    text = "\n".join(
        [
            "# CUDA check of the bundled model",
            "",
            f"`python -m training.cuda_check` on {torch.cuda.get_device_name(0)} (torch {torch.__version__}, "
            f"{platform.python_version()}), model `{bundle.name}` sha256 `{bundle.sha256[:16]}`, "
            f"{len(files)} real photos from `{a.images}`.",
            "",
            f"- min cosine, embedding, torch-CUDA vs ONNX-CPU: **{cos_e:.6f}**",
            f"- min cosine, features, torch-CUDA vs ONNX-CPU: **{cos_f:.6f}**",
            "",
            "| backend | img/s (one batch, after warm-up) |",
            "|---|---|",
            *rows,
            "",
        ]
    )
    print(text)
    if a.out:
        a.out.write_text(text, encoding="utf-8")
    if min(cos_e, cos_f) < 0.999:
        raise SystemExit("CUDA and ONNX outputs disagree")


if __name__ == "__main__":
    main()
