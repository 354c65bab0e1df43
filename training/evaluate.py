"""Evaluate a model bundle on held-out photos with fixed edits: ``python -m training.evaluate``.

The model runs as the app runs it (ONNX Runtime on the CPU, uint8 input from ``resize_for_model``). Reported
side by side: the fine-tuned ``embedding`` and the plain ImageNet ``features`` (the same network's frozen
branch). Also measured: whether fine-tuning eroded "same scene" similarity (two different crops of one photo),
which is why "Find similar" is served from ``features``. Thresholds are calibrated here and, with
``--write-manifest``, written into the bundle's manifest with the metrics.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from core.decode import read_full, resize_for_model
from core.embed import Embedder, load_bundle
from training import plots
from training.metrics import best_f1, calibrate, map_at_k, recall_at_k, roc_auc
from training.prepare_data import split_shared_datasets
from training.valset import (
    ORIGINAL,
    ValSet,
    app_similarity,
    build_valset,
    pair_scores,
    pair_scores_from_similarity,
    summarise,
)

log = logging.getLogger(__name__)

NAMES = {"embedding": "fine-tuned embedding", "features": "ImageNet features"}


def embed(embedder: Embedder, images: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    embs, feats = [], []
    for s in range(0, len(images), batch):
        e, f = embedder.embed_arrays(images[s : s + batch])
        embs.append(e)
        feats.append(f)
    return np.concatenate(embs), np.concatenate(feats)


def retrieval(emb: np.ndarray, val: ValSet) -> dict:
    """Queries: edited copies against a gallery of the originals (R@K); originals against all copies
    (mAP@10)."""
    orig = val.kinds == ORIGINAL
    sim = emb[~orig] @ emb[orig].T
    r = recall_at_k(sim, val.labels[~orig], val.labels[orig], (1, 5, 10))
    m = map_at_k(emb[orig] @ emb[~orig].T, val.labels[orig], val.labels[~orig], 10)
    return {"recall@1": r[1], "recall@5": r[5], "recall@10": r[10], "mAP@10": m}


def app_scoring(
    embedder: Embedder, val: ValSet, emb: np.ndarray, min_precision: float, alone_f1: float
) -> dict:
    """The duplicate embedding scored as the engine scores it: portrait images also embed their two 90-degree
    turns (``core.embed.embed_files``) and a pair takes the higher of the plain and turned cosines
    (``core.index.turned_pairs``), for negatives as much as for positives. ``alone_f1``: the plain embedding's
    calibrated F1, which the turns must beat to be used."""
    portrait = np.nonzero(val.portrait)[0]
    turns = np.stack([np.rot90(val.images[i], k) for i in portrait for k in (1, 3)])
    turned_emb = embed(embedder, turns)[0]
    sim = app_similarity(emb, {int(i): turned_emb[2 * n : 2 * n + 2] for n, i in enumerate(portrait)})
    pos, kinds, neg = pair_scores_from_similarity(sim, val.labels, val.kinds)
    at = summarise(pos, kinds, neg, min_precision)
    # The engine embeds turns only where they pay: a better F1 at precision >= min_precision than the model
    # alone.
    return {
        "portrait_images": len(portrait),
        "roc_auc": roc_auc(pos, neg),
        "calibrated": at,
        "use": bool(at["f1"] > alone_f1),
    }


_GRAPH_KEYS = ("threshold", "f1", "min_kind_recall", "worst_kind", "per_kind_recall")


def compare_graphs(bundle, val: ValSet, ran: str, ran_calibrated: dict, min_precision: float) -> dict:
    """The float and int8 graphs side by side on the same images (``training/quantize.py``): each output's
    calibrated F1 and recall per edit kind. ``ran_calibrated``: the calibrated summary per output of the graph
    the evaluation ran (``ran``); the other graph is embedded and summarised here. The quantised graph is kept
    only if F1 drops by <= 0.002 and no kind's recall by more than 0.01."""
    other = "onnx" if ran == "onnx_int8" else "onnx_int8"
    alt = Embedder(bundle, device="cpu", backend="onnx", int8=other == "onnx_int8")
    t0 = time.monotonic()
    vectors = dict(zip(("embedding", "features"), embed(alt, val.images), strict=True))
    log.info("the %s graph embedded in %.0fs", other, time.monotonic() - t0)
    out: dict = {ran: {k: {f: c[f] for f in _GRAPH_KEYS} for k, c in ran_calibrated.items()}, other: {}}
    for key, vecs in vectors.items():
        at = summarise(*pair_scores(vecs, val.labels, val.kinds), min_precision)
        out[other][key] = {f: at[f] for f in _GRAPH_KEYS}
    for key in ("embedding", "features"):
        f, q = out["onnx"][key], out["onnx_int8"][key]
        drops = {k: f["per_kind_recall"][k] - q["per_kind_recall"][k] for k in f["per_kind_recall"]}
        worst = max(drops, key=drops.get)
        out[f"{key}_int8_vs_float"] = {
            "f1_drop": f["f1"] - q["f1"],
            "largest_kind_drop": drops[worst],
            "kind": worst,
        }
        d = out[f"{key}_int8_vs_float"]
        log.info(
            "%s int8 vs float: F1 drop %.4f, largest kind drop %.3f (%s)",
            key,
            d["f1_drop"],
            d["largest_kind_drop"],
            d["kind"],
        )
    return out


def scene_pairs(files: list[str], size: int) -> np.ndarray:
    """Two different crops of each photo (left and right 55 %): the same scene, different pixels."""
    out = []
    for f in files:
        im = read_full(f)
        w, h = im.size
        cw = int(w * 0.55)
        out += [
            resize_for_model(im.crop((0, 0, cw, h)), size),
            resize_for_model(im.crop((w - cw, 0, w, h)), size),
        ]
    return np.stack(out)


def scene_scores(vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = vecs[0::2], vecs[1::2]
    pos = (a * b).sum(1)
    sim = vecs @ vecs.T
    lab = np.repeat(np.arange(len(a)), 2)
    iu = np.triu_indices(len(vecs), 1)
    neg = sim[iu][lab[iu[0]] != lab[iu[1]]]
    return pos, neg


def evaluate(
    bundle_dir: Path,
    files: list[Path],
    out: Path,
    seed: int = 1234,
    min_precision: float = 0.99,
    similar_precision: float = 0.95,
    workers: int = 2,
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    bundle = load_bundle(bundle_dir)
    embedder = Embedder(bundle, device="cpu", backend="onnx")  # the graph the app runs on this CPU
    t0 = time.monotonic()
    val = build_valset(files, bundle.resolution, seed, workers=workers)
    log.info(
        "validation set: %d images of %d photos (%.0fs)", len(val.images), len(files), time.monotonic() - t0
    )
    t0 = time.monotonic()
    outputs = dict(zip(("embedding", "features"), embed(embedder, val.images), strict=True))
    log.info("embedded in %.0fs", time.monotonic() - t0)

    report: dict = {
        "model": bundle.name,
        "sha256": bundle.sha256,
        "photos": len(files),
        "images": len(val.images),
        "edit_kinds": sorted(set(val.kinds) - {ORIGINAL}),
        "seed": seed,
        "training": bundle.manifest.get("training", {}),
        "graph": embedder.graph,
    }
    scores = {}
    for key, vecs in outputs.items():
        pos, kinds, neg = pair_scores(vecs, val.labels, val.kinds)
        scores[key] = (pos, neg)
        at = summarise(pos, kinds, neg, min_precision)
        bf = best_f1(pos, neg)
        report[key] = {
            "pairs": {"positive": len(pos), "negative": len(neg)},
            "roc_auc": roc_auc(pos, neg),
            "calibrated": at,
            "best_f1": {
                "threshold": bf.threshold,
                "f1": bf.f1,
                "precision": bf.precision,
                "recall": bf.recall,
            },
            **retrieval(vecs, val),
        }
        log.info(
            "%s: F1 %.4f P %.4f R %.4f at %.4f, worst %s %.3f",
            key,
            at["f1"],
            at["precision"],
            at["recall"],
            at["threshold"],
            at["worst_kind"],
            at["min_kind_recall"],
        )

    if "onnx_int8" in bundle.manifest:
        calibrated = {key: report[key]["calibrated"] for key in outputs}
        report["graphs"] = compare_graphs(bundle, val, embedder.graph, calibrated, min_precision)

    report["app"] = app_scoring(
        embedder, val, outputs["embedding"], min_precision, report["embedding"]["calibrated"]["f1"]
    )
    log.info(
        "with turned embeddings: F1 %.4f at %.4f, worst %s %.3f",
        report["app"]["calibrated"]["f1"],
        report["app"]["calibrated"]["threshold"],
        report["app"]["calibrated"]["worst_kind"],
        report["app"]["calibrated"]["min_kind_recall"],
    )

    # "Same scene" similarity: does the fine-tuned embedding still see two crops of a scene as related?
    scene = embed(embedder, scene_pairs(val.files, bundle.resolution))
    report["same_scene"] = {}
    for key, vecs in zip(("embedding", "features"), scene, strict=True):
        pos, neg = scene_scores(vecs)
        report["same_scene"][key] = {
            "mean_pair": float(pos.mean()),
            "mean_other": float(neg.mean()),
            "roc_auc": roc_auc(pos, neg),
        }
    sim_cal = calibrate(*scene_scores(scene[1]), similar_precision)
    report["same_scene"]["similar_threshold"] = {
        "threshold": sim_cal.threshold,
        "precision": sim_cal.precision,
        "recall": sim_cal.recall,
        "source": "features",
        "min_precision": similar_precision,
    }
    # The app's duplicate threshold is calibrated on the scores the app computes: with turned embeddings if
    # on.
    dup_t = report["app" if report["app"]["use"] else "embedding"]["calibrated"]["threshold"]
    report["thresholds"] = {"duplicate": round(dup_t, 4), "similar": round(sim_cal.threshold, 4)}

    _plots(report, val, outputs, scores, out)
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "evaluation.md").write_text(markdown(report), encoding="utf-8")
    return report


def _plots(report: dict, val: ValSet, outputs: dict, scores: dict, out: Path) -> None:
    named = {NAMES[k]: v for k, v in scores.items()}
    thr = {NAMES[k]: report[k]["calibrated"]["threshold"] for k in scores}
    plots.pr_curves(named, thr, out / "pr_curve.png")
    plots.roc_curves(named, out / "roc_curve.png")
    for key in scores:
        marks = {
            "duplicate (P≥0.99)": report[key]["calibrated"]["threshold"],
            "best F1": report[key]["best_f1"]["threshold"],
        }
        plots.histograms(*scores[key], marks, f"{NAMES[key]}: pair similarities", out / f"hist_{key}.png")
    sub = val.labels < 20
    plots.tsne(
        outputs["embedding"][sub],
        val.labels[sub],
        val.kinds[sub],
        "fine-tuned embedding, 20 photos",
        out / "tsne_embedding.png",
    )
    plots.tsne(
        outputs["features"][sub],
        val.labels[sub],
        val.kinds[sub],
        "ImageNet features, 20 photos",
        out / "tsne_features.png",
    )
    emb = outputs["embedding"]
    hard = ["rotate_90", "screenshot", "letterbox", "crop_50", "combo", "text"]
    queries = [
        int(np.nonzero((val.kinds == k) & (val.labels == (3 + 7 * i) % len(val.files)))[0][0])
        for i, k in enumerate(hard)
    ]
    plots.retrieval_grid(
        val.images, emb @ emb.T, queries, val.labels, list(val.kinds), out / "retrieval_grid.png"
    )


def _pct(x: float) -> str:
    return f"{x:.4f}"


def _selection_note(r: dict) -> str:
    """Which held-out photos training saw for picking its best epoch (from the manifest's training config)."""
    val_data = r.get("training", {}).get("config", {}).get("val_data")
    if not val_data:
        return ""
    return (
        f" (Training picked its best epoch on a subset of these photos, shrunk as in `{val_data}` by "
        "`training/prepare_data.py`.)"
    )


def markdown(r: dict) -> str:
    e, f = r["embedding"], r["features"]
    lines = [
        f"# Evaluation of `{r['model']}`",
        "",
        f"Held-out validation: {r['photos']} photos never used in training, each with one fixed seeded "
        f"copy per "
        f"edit kind ({len(r['edit_kinds'])} kinds, seed {r['seed']}): {r['images']} images. Positives: every "
        f"copy against its original ({e['pairs']['positive']:,} pairs); negatives: every pair of images of "
        f"different photos ({e['pairs']['negative']:,} pairs). The model ran through ONNX Runtime on the "
        f"CPU, as in the app ({_GRAPH_NAMES.get(r.get('graph'), 'float')} graph). Thresholds are "
        "calibrated on this set: *duplicate* = the lowest cosine with precision ≥ 0.99." + _selection_note(r),
        "",
        "| metric | fine-tuned embedding | ImageNet features |",
        "|---|---|---|",
        f"| duplicate threshold (P ≥ 0.99) | {_pct(e['calibrated']['threshold'])} | "
        f"{_pct(f['calibrated']['threshold'])} |",
    ]
    for label, key in [("precision", "precision"), ("recall", "recall"), ("F1", "f1")]:
        lines.append(
            f"| {label} at that threshold | {_pct(e['calibrated'][key])} | {_pct(f['calibrated'][key])} |"
        )
    lines += [
        f"| best F1 (any threshold) | {_pct(e['best_f1']['f1'])} @ {e['best_f1']['threshold']:.3f} | "
        f"{_pct(f['best_f1']['f1'])} @ {f['best_f1']['threshold']:.3f} |",
        f"| ROC AUC | {e['roc_auc']:.6f} | {f['roc_auc']:.6f} |",
    ]
    for k in ("recall@1", "recall@5", "recall@10", "mAP@10"):
        lines.append(f"| {k} | {_pct(e[k])} | {_pct(f[k])} |")
    lines += [
        "",
        "## Recall per edit kind, each at its own duplicate threshold",
        "",
        "| edit | fine-tuned | ImageNet |",
        "|---|---|---|",
    ]
    for k in r["edit_kinds"]:
        a, b = e["calibrated"]["per_kind_recall"][k], f["calibrated"]["per_kind_recall"][k]
        lines.append(f"| {k} | {'**' if a < 0.9 else ''}{a:.3f}{'**' if a < 0.9 else ''} | {b:.3f} |")
    if "app" in r:
        a = r["app"]["calibrated"]
        lines += [
            "",
            "## With turned embeddings for portrait images",
            "",
            f"The engine can also embed the two 90° turns of every portrait image "
            f"({r['app']['portrait_images']} of "
            "these images) and score a pair by the higher of the plain and turned cosines, negatives "
            "included. "
            "Calibrated the same way (precision ≥ 0.99). The manifest's `turned_embeddings` switches this "
            "on only "
            f"when it raises F1: **{'on' if r['app']['use'] else 'off'}** for this model, so the app's "
            f"duplicate "
            f"threshold is **{r['thresholds']['duplicate']}**, calibrated on "
            f"{'these scores' if r['app']['use'] else 'the model alone'}.",
            "",
            "| threshold | precision | recall | F1 | ROC AUC | worst edit |",
            "|---|---|---|---|---|---|",
            f"| {_pct(a['threshold'])} | {_pct(a['precision'])} | {_pct(a['recall'])} | {_pct(a['f1'])} | "
            f"{r['app']['roc_auc']:.6f} | {a['worst_kind']} {a['min_kind_recall']:.3f} |",
            "",
            "| edit | model alone | with turned embeddings |",
            "|---|---|---|",
        ]
        for k in r["edit_kinds"]:
            m, x = e["calibrated"]["per_kind_recall"][k], a["per_kind_recall"][k]
            lines.append(f"| {k} | {m:.3f} | {'**' if x < 0.9 else ''}{x:.3f}{'**' if x < 0.9 else ''} |")
    lines += _graph_lines(r)
    s = r["same_scene"]
    lines += [
        "",
        '## Same-scene similarity (why "Find similar" uses the ImageNet features)',
        "",
        "Two different crops of each validation photo (left and right 55 %) stand in for two shots of one "
        "scene.",
        "",
        "| output | mean cosine, same scene | mean cosine, different photos | ROC AUC |",
        "|---|---|---|---|",
        f"| fine-tuned embedding | {s['embedding']['mean_pair']:.3f} | {s['embedding']['mean_other']:.3f} | "
        f"{s['embedding']['roc_auc']:.4f} |",
        f"| ImageNet features | {s['features']['mean_pair']:.3f} | {s['features']['mean_other']:.3f} | "
        f"{s['features']['roc_auc']:.4f} |",
        "",
        f"*Similar* threshold on the features (precision ≥ {s['similar_threshold']['min_precision']} on "
        f"these "
        f"same-scene pairs): **{s['similar_threshold']['threshold']:.4f}** "
        f"(recall {s['similar_threshold']['recall']:.3f}). The features come from the frozen ImageNet "
        f"branch, so "
        "fine-tuning cannot change them.",
        "",
        *_training_lines(r.get("training") or {}),
        "## Pictures",
        "",
        "![PR](pr_curve.png) ![ROC](roc_curve.png)",
        "",
        "![histogram, fine-tuned](hist_embedding.png) ![histogram, ImageNet](hist_features.png)",
        "",
        "![t-SNE, fine-tuned](tsne_embedding.png) ![t-SNE, ImageNet](tsne_features.png)",
        "",
        "Retrieval grid (fine-tuned embedding; query, then its top 5 among all validation images; green = "
        "a copy "
        "of the same photo):",
        "",
        "![retrieval](retrieval_grid.png)",
        "",
    ]
    return "\n".join(lines)


_GRAPH_NAMES = {"onnx": "float", "onnx_int8": "int8"}


def _graph_lines(r: dict) -> list[str]:
    g = r.get("graphs")
    if not g:
        return []
    lines = [
        "",
        "## The int8 graph (`training/quantize.py`)",
        "",
        "The bundle also holds the float graph quantised to int8 (uint8 activations, int8 weights per "
        "channel, percentile ranges from 96 training photos). The app runs it on CPUs with AVX-512 VNNI or "
        "ARM dot products (`core.embed.int8_suits_cpu`), the float graph elsewhere. Both on these images, "
        "each calibrated the same way (precision ≥ 0.99); kept only while F1 drops by ≤ 0.002 and no edit "
        "kind's recall by more than 0.01:",
        "",
        "| output | graph | threshold | F1 | worst edit |",
        "|---|---|---|---|---|",
    ]
    for key in ("embedding", "features"):
        for graph in ("onnx", "onnx_int8"):
            c = g[graph][key]
            lines.append(
                f"| {NAMES[key]} | {_GRAPH_NAMES[graph]} | {c['threshold']:.4f} | {_pct(c['f1'])} | "
                f"{c['worst_kind']} {c['min_kind_recall']:.3f} |"
            )
    for key in ("embedding", "features"):
        d = g[f"{key}_int8_vs_float"]
        lines.append(
            f"\n{NAMES[key]}: F1 drop {d['f1_drop']:+.4f}, largest recall drop of one edit kind "
            f"{d['largest_kind_drop']:+.3f} ({d['kind']})."
        )
    return lines


def _training_lines(t: dict) -> list[str]:
    c = t.get("config")
    if not c:
        return []
    keys = (
        "backbone",
        "resolution",
        "fork",
        "embed_dim",
        "pooling",
        "loss",
        "temperature",
        "margin",
        "batch_identities",
        "views",
        "lr",
        "lr_tail",
        "epochs_head",
        "epochs_tail",
        "cache_views",
        "cache_rounds",
        "seed",
    )
    return [
        "## How this model was trained",
        "",
        f"`python -m training.train --config training/configs/bundled.yaml` on `{c['data']}` (layout "
        f"{c['layout']}); best epoch {t.get('best_epoch')} by validation on `{c['val_data']}`; "
        f"{t.get('train_seconds')} s of training after the trunk cache was built.",
        "",
        "| " + " | ".join(k for k in keys if k in c) + " |",
        "|" + "---|" * sum(k in c for k in keys),
        "| " + " | ".join(str(c[k]) for k in keys if k in c) + " |",
        "",
    ]


def write_manifest(bundle_dir: Path, report: dict) -> None:
    path = bundle_dir / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    e, f = report["embedding"], report["features"]
    # keep the verifier's
    manifest["thresholds"] = {**manifest.get("thresholds", {}), **report["thresholds"]}
    manifest["evaluation"] = {
        "data": f"{report['photos']} held-out photos x {len(report['edit_kinds'])} edits "
        "(training/valset.py, "
        f"seed {report['seed']}); report: training/reports/evaluation.md",
        "embedding": {k: e[k] for k in ("roc_auc", "recall@1", "recall@5", "recall@10", "mAP@10")}
        | {k: e["calibrated"][k] for k in ("precision", "recall", "f1", "min_kind_recall", "worst_kind")},
        "imagenet_features": {k: f[k] for k in ("roc_auc", "recall@1")}
        | {k: f["calibrated"][k] for k in ("threshold", "precision", "recall", "f1", "min_kind_recall")},
        "similar_threshold": report["same_scene"]["similar_threshold"],
    }
    if "app" in report:
        manifest["evaluation"]["with_turned_embeddings"] = {
            k: report["app"]["calibrated"][k]
            for k in ("threshold", "precision", "recall", "f1", "min_kind_recall", "worst_kind")
        }
        manifest["turned_embeddings"] = report["app"]["use"]
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=Path("resources/model"))
    p.add_argument(
        "--datasets",
        type=Path,
        default=Path("../shared/datasets"),
        help="the shared datasets; their validation split (training/prepare_data.py) is used",
    )
    p.add_argument("--val-dir", type=Path, help="a folder of validation photos instead of --datasets")
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N photos only")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--out", type=Path, default=Path("training/reports"))
    p.add_argument("--write-manifest", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if a.val_dir:
        from training.data import photo_groups

        files = [g[0] for g in photo_groups(a.val_dir)]
    else:
        files = split_shared_datasets(a.datasets)["val"]
    if a.limit:
        files = files[: a.limit]
    report = evaluate(a.model, files, a.out, a.seed)
    if a.write_manifest:
        write_manifest(a.model, report)
    print(
        json.dumps(
            {
                "thresholds": report["thresholds"],
                "embedding_f1": report["embedding"]["calibrated"]["f1"],
                "features_f1": report["features"]["calibrated"]["f1"],
            }
        )
    )


if __name__ == "__main__":
    main()
