"""The evaluation end to end on a few small photos, with the real bundled model through ONNX Runtime."""

import json
import shutil
from pathlib import Path

from tests.training.conftest import make_photo
from training.evaluate import evaluate, write_manifest

ROOT = Path(__file__).resolve().parents[2]


def test_evaluate_writes_report_plots_and_manifest(tmp_path):
    files = [make_photo(tmp_path / "val" / f"v{i}.jpg", 100 + i, (180, 130)) for i in range(4)]
    report = evaluate(ROOT / "resources" / "model", files, tmp_path / "report", workers=1)
    assert report["images"] == 4 * 22
    for key in ("embedding", "features"):
        r = report[key]
        assert r["pairs"] == {"positive": 4 * 21, "negative": (88 * 87) // 2 - 4 * (22 * 21) // 2}
        assert 0 <= r["calibrated"]["recall"] <= 1 and 0.5 <= r["roc_auc"] <= 1
        assert r["recall@1"] <= r["recall@5"] <= r["recall@10"]
        assert set(r["calibrated"]["per_kind_recall"]) == set(report["edit_kinds"])
    app = report["app"]  # rotate_90/270 of a landscape photo are portrait: their turns are embedded
    assert app["portrait_images"] >= 2 * 4
    assert set(app["calibrated"]["per_kind_recall"]) == set(report["edit_kinds"])
    names = {p.name for p in (tmp_path / "report").iterdir()}
    assert {
        "evaluation.md",
        "metrics.json",
        "pr_curve.png",
        "roc_curve.png",
        "hist_embedding.png",
        "tsne_embedding.png",
        "retrieval_grid.png",
    } <= names
    model = tmp_path / "model"
    shutil.copytree(ROOT / "resources" / "model", model)
    write_manifest(model, report)
    m = json.loads((model / "manifest.json").read_text())
    before = json.loads((ROOT / "resources" / "model" / "manifest.json").read_text())["thresholds"]
    # The evaluation's thresholds are written; the verifier's (candidate, similar shots) are kept.
    assert m["thresholds"] == {**before, **report["thresholds"]} and "evaluation" in m
    assert m["thresholds"]["candidate"] == before["candidate"]
    assert m["evaluation"]["with_turned_embeddings"]["f1"] == app["calibrated"]["f1"]
    assert m["turned_embeddings"] == app["use"]
    assert "With turned embeddings" in (tmp_path / "report" / "evaluation.md").read_text()
    # Both graphs of the bundle on the same images: the one this CPU runs and the other.
    graphs = report["graphs"]
    assert report["graph"] in ("onnx", "onnx_int8") and {"onnx", "onnx_int8"} <= set(graphs)
    for key in ("embedding", "features"):
        assert set(graphs["onnx_int8"][key]["per_kind_recall"]) == set(report["edit_kinds"])
        d = graphs[f"{key}_int8_vs_float"]
        assert d["f1_drop"] == graphs["onnx"][key]["f1"] - graphs["onnx_int8"][key]["f1"]
    assert "## The int8 graph" in (tmp_path / "report" / "evaluation.md").read_text()
