"""Measure the copy verifier (``core.verify``): ``python -m training.verify_eval [--photos 150]``.

Builds, per split (see ``training.pairset``): every photo of a subset edited by every kind (``EDITS`` and the
colour filters), all other-shot pairs of shots/, and similar-scene negatives (the split's highest-cosine pairs
of different photos by embedding and by features). Embeds everything as the app does, extracts verification
features, verifies every pair, and writes one record per pair to ``--cache`` so that ``--rule`` sweeps can be
re-run without recomputing. Prints and writes the metrics table (per kind, tune and held-out).
``--as-files``: every edited copy saved as a file first (JPEG q90, screenshots PNG) and read back as the app
reads files, rather than compared straight from memory.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import logging
import pickle
import time
from pathlib import Path

import cv2
import numpy as np

from core import layout
from core import verify as V
from core.decode import _border_box, _canvas_box, content_box, decode_for_model, read_full, resize_for_model
from core.embed import Embedder, is_portrait, load_bundle
from training.pairset import DATASETS, KINDS, SPLITS, Pair, copy_pairs, load, photos, shot_pairs, subset

log = logging.getLogger(__name__)

CAND_THRESHOLDS = (0.70, 0.75, 0.80, 0.82, 0.83, 0.85, 0.8858)
FLOOR = 0.6  # the engine's default floor: pairs under it are not in a scan's table at all


def candidate(r: dict, t: float) -> bool:
    """Checked by the engine: cosine at ``t`` or above, or above the floor with a near layout
    (``core.layout``)."""
    return r["emb"] >= t or (r["emb"] >= FLOOR and r.get("layout_bits", 64) <= layout.NEAR_BITS)


def _measures_source() -> str:
    """The code that computes ``Verdict.measures`` (not the thresholds): records are reused while it is
    unchanged."""
    fns = (
        V.extract,
        V._picture,
        V._uncrop,
        content_box,
        _border_box,
        _canvas_box,
        V._detect,
        V._spread,
        V._align,
        V._fit,
        V._match,
        V._plausible,
        V._coverage,
        V.photometric,
        V._linear_fit,
        V._blurs,
        V._motion,
        V.verify,
        V._verify,
        V._aligned_verdict,
        V._frame_verdict,
        V.one_shape,
        V.frame_shapes,
        V._native_size,
        V._at_resolution,
        V._flow,
    )
    consts = (
        V.VERSION,
        V.DETECT_SIDE,
        V.THUMB_SIDE,
        V.N_FEATURES,
        V.RATIO,
        V.RANSAC_PX,
        V.MIN_INLIERS,
        V.MAX_STRETCH,
        V._SIGMAS,
        V._TEXTURE,
        V._MAX_UPSCALE,
        V._CELL,
        V._PICTURE_SHARE,
        V._PHOTOMETRIC_FROM,
        V.FRAME_ASPECT,
        V.SMALL_FROM,
        V._DIS_FINEST,
        V._REALIGN_SHIFT,
        V._FLOW_MIN,
    )
    return repr(consts) + "".join(inspect.getsource(f) for f in fns)


def _key(*parts) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


class Store:
    """Per-reference embeddings and features, pickled under ``folder`` between runs."""

    def __init__(self, folder: Path, embedder: Embedder) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.embedder = embedder
        self.emb_file = folder / f"emb_{_key(embedder.bundle.sha256)}.pkl"
        trims = "".join(inspect.getsource(f) for f in (content_box, _border_box, _canvas_box))
        extraction = (V.VERSION, V.DETECT_SIDE, V.THUMB_SIDE, V.N_FEATURES, V._PICTURE_SHARE, trims)
        self.feat_file = folder / f"feat_{_key(*extraction)}.pkl"
        self.emb = pickle.loads(self.emb_file.read_bytes()) if self.emb_file.exists() else {}
        self.feat = pickle.loads(self.feat_file.read_bytes()) if self.feat_file.exists() else {}
        self.extract_ms: list[float] = []
        self.layout_file = folder / f"layout_{_key(layout.VERSION, embedder.size)}.pkl"
        self.layout = pickle.loads(self.layout_file.read_bytes()) if self.layout_file.exists() else {}

    def layouts(self, refs: list[str]) -> None:
        """The grey-level layout of each reference, of the whole upright picture as the engine makes it."""
        todo = [r for r in dict.fromkeys(refs) if r not in self.layout]
        for r in todo:
            if "#" in r:
                self.layout[r] = layout.layout_hash(load(r))
            else:
                self.layout[r] = decode_for_model(r, self.embedder.size).layout
        if todo:
            self.layout_file.write_bytes(pickle.dumps(self.layout))

    def save(self) -> None:
        self.emb_file.write_bytes(pickle.dumps(self.emb))
        self.feat_file.write_bytes(pickle.dumps(self.feat))

    def embed(self, refs: list[str], batch: int = 32) -> None:
        todo = [r for r in dict.fromkeys(refs) if r not in self.emb]
        for s in range(0, len(todo), batch):
            chunk = todo[s : s + batch]
            pix, turned_of = [], {}
            for r in chunk:
                if "#" in r:
                    im = load(r)
                    p, w, h = resize_for_model(im, self.embedder.size), im.width, im.height
                else:
                    d = decode_for_model(r, self.embedder.size)
                    p, w, h = d.pixels, d.width, d.height
                pix.append(p)
                if is_portrait(w, h):
                    turned_of[r] = len(pix)
                    pix += [np.ascontiguousarray(np.rot90(p, 1)), np.ascontiguousarray(np.rot90(p, 3))]
            e, f = self.embedder.embed_arrays(np.stack(pix))
            i = 0
            for r in chunk:
                t = e[turned_of[r] : turned_of[r] + 2] if r in turned_of else None
                self.emb[r] = (e[i], f[i], t)
                i += 3 if r in turned_of else 1
            log.info("embedded %d/%d", min(s + batch, len(todo)), len(todo))

    def features(self, refs: list[str]) -> None:
        todo = [r for r in dict.fromkeys(refs) if r not in self.feat]
        for n, r in enumerate(todo):
            src = load(r) if "#" in r else r  # a file is decoded reduced, as the app would
            t = time.perf_counter()
            f = V.extract(src)
            self.extract_ms.append((time.perf_counter() - t) * 1000)
            self.feat[r] = f.to_bytes()
            if n % 500 == 0:
                log.info("features %d/%d", n, len(todo))


def emb_cosine(ea, eb) -> float:
    """The app's pair score: plain embeddings, or a portrait image's turned embeddings against the other."""
    s = float(ea[0] @ eb[0])
    for t, o in ((ea[2], eb[0]), (eb[2], ea[0])):
        if t is not None:
            s = max(s, float((t @ o).max()))
    return s


def negatives(store: Store, files: list[str], top: int) -> list[Pair]:
    """The ``top`` highest-cosine pairs of different photos, by embedding and by features."""
    store.embed(files)
    e = np.stack([store.emb[f][0] for f in files]).astype(np.float32)
    f = np.stack([store.emb[f][1] for f in files]).astype(np.float32)
    out: dict[tuple[int, int], str] = {}
    iu = np.triu_indices(len(files), 1)
    for name, m in (("top_embedding", e), ("top_features", f)):
        s = (m @ m.T)[iu]
        for k in np.argsort(-s)[:top]:
            out.setdefault((int(iu[0][k]), int(iu[1][k])), name)
    return [Pair("negative", kind, files[i], files[j]) for (i, j), kind in out.items()]


# ``--as-files``: how each edited copy is stored, as a user's file would be (a screenshot is a PNG)
SAVED_AS = {"screenshot": ("png", {})}
SAVED_JPEG = ("jpg", {"quality": 90})


def saved_copy(ref: str, folder: Path) -> str:
    """The edited copy ``ref`` ("path#kind") written once to a file under ``folder``, and that file's path."""
    kind = ref.partition("#")[2]
    ext, options = SAVED_AS.get(kind, SAVED_JPEG)
    path = folder / f"{_key(ref, ext, sorted(options.items()))}.{ext}"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        load(ref).save(tmp, format="PNG" if ext == "png" else "JPEG", **options)
        tmp.replace(path)
    return str(path)


def run_split(
    store: Store, split: str, n_photos: int, n_neg_photos: int, top: int, as_files: bool = False
) -> tuple[list[dict], dict]:
    all_files = [str(p) for p in photos(split)]
    sub = [str(p) for p in subset([Path(p) for p in all_files], n_photos)]
    neg_files = [str(p) for p in subset([Path(p) for p in all_files], n_neg_photos)]
    copies = copy_pairs([Path(p) for p in sub])
    if as_files:  # each copy read from its own file, as the app reads it, rather than edited in memory
        folder = store.folder / "copies"
        copies = [Pair(p.family, p.kind, p.a, saved_copy(p.b, folder)) for p in copies]
    pairs = copies + shot_pairs(split) + negatives(store, neg_files, top)
    refs = [r for p in pairs for r in (p.a, p.b)]
    store.embed(refs)
    store.features(refs)
    store.save()
    cv2.setNumThreads(1)
    records, verify_ms = [], []
    for p in pairs:
        fa, fb = V.ImageFeatures.from_bytes(store.feat[p.a]), V.ImageFeatures.from_bytes(store.feat[p.b])
        t = time.perf_counter()
        v = V.verify(fa, fb, complete=True)
        verify_ms.append((time.perf_counter() - t) * 1000)
        ea, eb = store.emb[p.a], store.emb[p.b]
        records.append(
            {
                "family": p.family,
                "kind": p.kind,
                "a": p.a,
                "b": p.b,
                "emb": emb_cosine(ea, eb),
                "feat": float(ea[1] @ eb[1]),
                "ms": verify_ms[-1],
                **v.measures,
            }
        )
    # what a "similar" rule lets in from unrelated photos: share of all pairs of the split's photos above it
    e = np.stack([store.emb[f][0] for f in neg_files]).astype(np.float32)
    f = np.stack([store.emb[f][1] for f in neg_files]).astype(np.float32)
    iu = np.triu_indices(len(neg_files), 1)
    background = {"n_photos": len(neg_files), "emb": (e @ e.T)[iu], "feat": (f @ f.T)[iu]}
    return records, background


def same(r: dict, rule: dict) -> bool:
    return V.decide(r, rule["verify"])[0]


def metrics(records: list[dict], background: dict, rule: dict) -> dict:
    """Everything the report needs for one split under one rule."""
    cand_t, sim = rule["candidate"], rule["similar"]
    out: dict = {"copies": {}, "shots": {}, "negatives": {}}
    dup = [candidate(r, cand_t) and same(r, rule) for r in records]

    def similar_tier(r, d):
        return not d and (r["feat"] >= sim["feat"] or r["emb"] >= sim["emb"])

    for fam in ("copy", "shot", "negative"):
        kinds = sorted(
            {r["kind"] for r in records if r["family"] == fam},
            key=lambda k: list(KINDS).index(k) if k in KINDS else 0,
        )
        for k in kinds + ["all"]:
            rs = [
                (r, d)
                for r, d in zip(records, dup, strict=True)
                if r["family"] == fam and k in ("all", r["kind"])
            ]
            n = len(rs)
            row = {
                "n": n,
                "verified": sum(same(r, rule) for r, _ in rs) / n,
                "dup_tier": sum(d for _, d in rs) / n,
                "similar_tier": sum(similar_tier(r, d) for r, d in rs) / n,
                # in the duplicate tier but shown as unsure (core.verify.doubt): never auto-selected
                "unsure": sum(d and V.doubtful(r) for r, d in rs) / n,
            }
            if fam == "copy":
                row["candidate"] = {t: sum(candidate(r, t) for r, _ in rs) / n for t in CAND_THRESHOLDS}
            out[{"copy": "copies", "shot": "shots", "negative": "negatives"}[fam]][k] = row
    tp = sum(d for r, d in zip(records, dup, strict=True) if r["family"] == "copy")
    fp = sum(d for r, d in zip(records, dup, strict=True) if r["family"] != "copy")
    out["precision"] = tp / max(1, tp + fp)
    out["false_positives"] = [
        (r["family"], r["kind"], r["a"], r["b"], "unsure" if V.doubtful(r) else "sure")
        for r, d in zip(records, dup, strict=True)
        if d and r["family"] != "copy"
    ]
    # what auto-select may mark: the duplicate tier less its unsure pairs
    sure = [d and not V.doubtful(r) for r, d in zip(records, dup, strict=True)]
    tp_sure = sum(d for r, d in zip(records, sure, strict=True) if r["family"] == "copy")
    fp_sure = sum(d for r, d in zip(records, sure, strict=True) if r["family"] != "copy")
    out["precision_sure"] = tp_sure / max(1, tp_sure + fp_sure)
    out["background_similar"] = float(
        np.mean((background["feat"] >= sim["feat"]) | (background["emb"] >= sim["emb"]))
    )
    out["background_photos"] = background["n_photos"]
    # the candidate threshold and the verifier together: what each threshold gives
    ver = np.array([same(r, rule) for r in records])
    fam = np.array([r["family"] for r in records])
    kinds = np.array([r["kind"] for r in records])
    out["by_candidate"] = []
    for t in CAND_THRESHOLDS:
        d = ver & np.array([candidate(r, t) for r in records])
        worst = min((d[(fam == "copy") & (kinds == k)].mean(), k) for k in set(kinds[fam == "copy"]))
        fp = int(d[fam != "copy"].sum())
        out["by_candidate"].append(
            {
                "candidate": t,
                "worst_copy_kind": worst,
                "copies": float(d[fam == "copy"].mean()),
                "shots": float(d[fam == "shot"].mean()),
                "false_positives": fp,
                "precision": float(d[fam == "copy"].sum() / max(1, d.sum())),
                "unrelated_per_photo": float((background["emb"] >= t).sum() * 2 / background["n_photos"]),
            }
        )
    # which "similar shots" rule reaches how many other-shot pairs, and what it lets in from unrelated photos
    shots = [(r, d) for r, d in zip(records, dup, strict=True) if r["family"] == "shot"]
    out["similar_rules"] = []
    for src, ts in (("feat", (0.5, 0.55, 0.6, 0.65, 0.714)), ("emb", (0.6, 0.65, 0.7, 0.75, 0.8))):
        for t in ts:
            out["similar_rules"].append(
                {
                    "rule": f"{src} >= {t:g}",
                    "shots": float(np.mean([not d and r[src] >= t for r, d in shots])),
                    "unrelated_pairs": float(np.mean(background[src] >= t)),
                    "unrelated_per_photo": float((background[src] >= t).sum() * 2 / background["n_photos"]),
                }
            )
    ms = np.array([r["ms"] for r in records])
    out["verify_ms"] = {
        "mean": float(ms.mean()),
        "p50": float(np.median(ms)),
        "p95": float(np.percentile(ms, 95)),
    }
    return out


GRID = {
    "inliers": [8, 12],
    "cover": [0.8],
    "mutual_loss": [0.0, 0.02, 1.0],
    "r2_1": [0.0, 0.6, 0.7, 0.75, 0.8, 0.85],
    "r2_2": [0.6, 0.8, 0.85, 0.9],
    "bad_1": [0.2, 0.3, 0.4, 1.0],
    "bad_2": [0.1, 0.2, 1.0],
    "moved": [0.05, 0.1, 0.2],
    "uneven": [0.0, 0.02, 0.05, 1.0],
}


def tune_rule(records: list[dict], target: float = 0.985) -> tuple[dict, float, float]:
    """The grid rule that verifies the fewest other-shot and negative pairs while every copy kind keeps
    ``target`` of its pairs verified (or, where no rule of the grid does, as much as the best rule keeps);
    (rule, worst copy kind's rate, other-shot rate)."""
    import itertools

    def col(k, default):
        return np.array([float(r.get(k, default)) for r in records])

    cols = {k: col(k, 0.0) for k in ("inliers", "cover", "r2_1", "r2_2")}
    cols |= {
        k: col(k, 1.0) for k in ("mutual_loss", "bad_1", "bad_2", "fine_ok", "moved", "uneven_1", "uneven_2")
    }
    cols["uneven"] = np.maximum(cols["uneven_1"], cols["uneven_2"])
    fine = cols["fine_ok"] > 0
    fam = np.array([r["family"] for r in records])
    kind = np.array([r["kind"] for r in records])
    copy_kinds = [kind == k for k in sorted(set(kind[fam == "copy"]))]
    shots, negs = fam == "shot", fam == "negative"
    results = []
    for values in itertools.product(*GRID.values()):
        rule = dict(zip(GRID, values, strict=True))
        ok = (
            (cols["inliers"] >= rule["inliers"])
            & (cols["cover"] >= rule["cover"])
            & (cols["mutual_loss"] <= rule["mutual_loss"])
            & (cols["r2_2"] >= rule["r2_2"])
            & (cols["bad_2"] <= rule["bad_2"])
            & (cols["moved"] <= rule["moved"])
            & (cols["uneven"] <= rule["uneven"])
            & (~fine | ((cols["r2_1"] >= rule["r2_1"]) & (cols["bad_1"] <= rule["bad_1"])))
        )
        rates = np.array([ok[m].mean() for m in copy_kinds])
        results.append((rates, ok[shots].mean() + ok[negs].mean(), ok[shots].mean(), rule))
    # a kind that keypoints alone cannot reach (tiny screenshots) must not force every other test to go lax:
    # each kind keeps ``target``, or what the best rule of the grid keeps of it, less one pair in 150
    ceiling = np.max([r[0] for r in results], axis=0)
    need = np.minimum(target, ceiling) - 0.007
    feasible = [r for r in results if (r[0] >= need).all()]
    rates, _, shot_rate, rule = min(feasible, key=lambda r: (r[1], -r[0].min()))
    return rule, float(rates.min()), shot_rate


DOUBT_FLAGGED = 0.05  # share of the tuning split's verified copies shown as unsure


def fit_doubt(
    records: list[dict], rule: dict, flagged: float = DOUBT_FLAGGED
) -> tuple[list[float], float, float]:
    """``core.verify.doubt`` fitted on one split's records: a logistic regression of other shot (1) against
    copy (0) over ``core.verify.doubt_inputs``, on every pair whose photometric test ran, classes weighted
    equally; and the score above which a verified pair is unsure: the one that ``flagged`` of the verified
    copies exceed. Returns (weights, bias, threshold)."""
    from sklearn.linear_model import LogisticRegression

    rows = [r for r in records if r["family"] in ("copy", "shot") and "r2_2" in r and "moved" in r]
    x = np.array([V.doubt_inputs(r) for r in rows], np.float64)
    y = np.array([r["family"] == "shot" for r in rows])
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=10000).fit(x, y)
    weights, bias = [float(w) for w in model.coef_[0]], float(model.intercept_[0])
    scores = x @ np.array(weights) + bias
    verified = np.array(
        [r["family"] == "copy" and candidate(r, rule["candidate"]) and same(r, rule) for r in rows]
    )
    return weights, bias, float(np.quantile(scores[verified], 1 - flagged))


def table(name: str, m: dict) -> str:
    lines = [
        f"### {name}",
        "",
        "| copies: kind | n | verified | candidate@"
        + " | @".join(f"{t:g}" for t in CAND_THRESHOLDS)
        + " | duplicate tier | of which unsure |",
        "|---|---|---|" + "---|" * len(CAND_THRESHOLDS) + "---|---|",
    ]
    for k, r in m["copies"].items():
        lines.append(
            f"| {k} | {r['n']} | {r['verified']:.3f} | "
            + " | ".join(f"{r['candidate'][t]:.3f}" for t in CAND_THRESHOLDS)
            + f" | {r['dup_tier']:.3f} | {r['unsure']:.3f} |"
        )
    lines += [
        "",
        "| other shots / negatives: kind | n | verified | duplicate tier | of which unsure | similar tier |",
        "|---|---|---|---|---|---|",
    ]
    for fam in ("shots", "negatives"):
        for k, r in m[fam].items():
            lines.append(
                f"| {fam}: {k} | {r['n']} | {r['verified']:.3f} | {r['dup_tier']:.3f} | {r['unsure']:.3f} | "
                f"{r['similar_tier']:.3f} |"
            )
    lines += [
        "",
        f"precision of the duplicate tier: {m['precision']:.4f}; false positives: "
        f"{len(m['false_positives'])}; of the pairs shown as sure (what auto-select marks): "
        f"{m['precision_sure']:.4f}",
        f"unrelated photo pairs in the similar tier: "
        f"{m['background_similar']:.4%} (of all pairs of {m['background_photos']} photos)",
        f"verify ms per pair: {m['verify_ms']}",
        "",
    ]
    lines += [
        "| candidate threshold | copies in duplicate tier | worst kind | other shots in duplicate tier | "
        "false positives | precision | unrelated candidates a photo |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {c['candidate']:g} | {c['copies']:.4f} | {c['worst_copy_kind'][1]} "
        f"{c['worst_copy_kind'][0]:.3f} | "
        f"{c['shots']:.3f} | {c['false_positives']} | {c['precision']:.4f} | "
        f"{c.get('unrelated_per_photo', float('nan')):.3f} |"
        for c in m["by_candidate"]
    ]
    lines += [
        "",
        "| similar-tier rule | other-shot pairs reached (not verified) | unrelated pairs above | per photo |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['rule']} | {r['shots']:.3f} | {r['unrelated_pairs']:.4%} | {r['unrelated_per_photo']:.2f} |"
        for r in m["similar_rules"]
    ]
    lines += ["", *[f"- FP: {fp}" for fp in m["false_positives"]]]
    return "\n".join(lines)


def bench(files: list[str], n_pairs: int = 300) -> dict:
    """Single-thread cost: decode + extract per file (as ``extract(path)`` does), serialised size, and verify
    per pair (consecutive files: mostly different pictures, the common case of a candidate pair that
    fails)."""
    cv2.setNumThreads(1)
    feats, ms_path, ms_extract, sizes = [], [], [], []
    for f in files:
        t = time.perf_counter()
        im = read_full(f, max_side=V.DETECT_SIDE)
        t1 = time.perf_counter()
        feats.append(V.extract(im))
        t2 = time.perf_counter()
        ms_path.append((t2 - t) * 1000)
        ms_extract.append((t2 - t1) * 1000)
        sizes.append(len(feats[-1].to_bytes()))
    pair_ms, copy_ms = [], []
    for i in range(min(n_pairs, len(feats) - 1)):
        t = time.perf_counter()
        V.verify(feats[i], feats[i + 1])
        pair_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        V.verify(feats[i], feats[i])
        copy_ms.append((time.perf_counter() - t) * 1000)

    def stats(x):
        return {"mean": float(np.mean(x)), "p50": float(np.median(x)), "p95": float(np.percentile(x, 95))}

    return {
        "files": len(files),
        "decode_and_extract_ms": stats(ms_path),
        "extract_only_ms": stats(ms_extract),
        "bytes": stats(sizes),
        "verify_other_ms": stats(pair_ms),
        "verify_same_ms": stats(copy_ms),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=int, default=150, help="photos per split to make edited copies of")
    p.add_argument("--neg-photos", type=int, default=0, help="photos per split mined for negatives (0: all)")
    p.add_argument(
        "--top", type=int, default=200, help="highest-cosine pairs by each of embedding and features"
    )
    p.add_argument("--cache", type=Path, default=Path(".data/verify"))
    p.add_argument("--out", type=Path, default=Path("training/reports/verification_metrics.json"))
    p.add_argument("--splits", nargs="+", default=list(SPLITS))
    p.add_argument(
        "--candidate",
        type=float,
        default=None,
        help="candidate threshold of the duplicate tier (default: the bundled manifest's)",
    )
    p.add_argument("--similar-feat", type=float, default=0.60)
    p.add_argument("--similar-emb", type=float, default=0.70)
    p.add_argument(
        "--rule", type=json.loads, default={}, help="verifier thresholds over core.verify.RULE (JSON)"
    )
    p.add_argument("--tune", action="store_true", help="search the verifier thresholds on the tuning split")
    p.add_argument(
        "--bench", type=int, default=0, help="only time extraction and verification on this many files"
    )
    p.add_argument(
        "--fit-doubt",
        action="store_true",
        help="fit core.verify's doubt score on the tuning split (prints it; the run reports with it)",
    )
    p.add_argument("--target", type=float, default=0.985, help="--tune: share of every copy kind to keep")
    p.add_argument(
        "--as-files",
        action="store_true",
        help="store every edited copy as a file (JPEG q90, screenshots PNG) and read it back as the app does",
    )
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if a.bench:
        groups = sorted((DATASETS / "shots" / "images").glob("*/*.jpg"))
        files = [
            str(f) for f in subset(groups, a.bench // 2) + subset(photos("heldout"), a.bench - a.bench // 2)
        ]
        result = bench(files)
        print(json.dumps(result, indent=1))
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.with_name("verification_bench.json").write_text(json.dumps(result, indent=1))
        return
    if a.candidate is None:
        a.candidate = float(load_bundle(verify=False).manifest["thresholds"]["candidate"])
    rule = {
        "candidate": a.candidate,
        "similar": {"feat": a.similar_feat, "emb": a.similar_emb},
        "verify": {**V.RULE, **a.rule},
    }
    store = Store(a.cache, Embedder(threads=2))
    report = {"rule": rule, "splits": {}}
    for split in a.splits:
        parts = (a.photos, a.neg_photos, a.top, _measures_source())
        if a.as_files:
            parts += ("files", SAVED_AS, SAVED_JPEG)
        rec_file = a.cache / f"records_{split}_{_key(*parts)}.pkl"
        if rec_file.exists():
            records, background = pickle.loads(rec_file.read_bytes())
        else:
            records, background = run_split(store, split, a.photos, a.neg_photos, a.top, a.as_files)
            rec_file.write_bytes(pickle.dumps((records, background)))
        store.layouts([x for r in records for x in (r["a"], r["b"])])
        for r in records:
            h = np.array([store.layout[r["a"]], store.layout[r["b"]]], np.uint64)
            r["layout_bits"] = int(layout.distance(h[:1], h[1:])[0])
        if a.fit_doubt and split == "tune":
            weights, bias, start = fit_doubt(records, rule)
            V.DOUBT_WEIGHTS, V.DOUBT_BIAS, V.DOUBT_FROM = tuple(weights), bias, start
            print(
                f"DOUBT_WEIGHTS = ({', '.join(f'{w:.4f}' for w in weights)})\n"
                f"DOUBT_BIAS = {bias:.4f}\nDOUBT_FROM = {start:.4f}"
            )
        if a.tune and split == "tune":
            found, worst, shot_rate = tune_rule(records, a.target)
            log.info(
                "tuned rule %s: worst copy kind %.3f verified, other shots %.3f", found, worst, shot_rate
            )
            rule["verify"] = found
        m = metrics(records, background, rule)
        if store.extract_ms:
            x = np.array(store.extract_ms)
            m["extract_ms"] = {
                "mean": float(x.mean()),
                "p50": float(np.median(x)),
                "p95": float(np.percentile(x, 95)),
            }
        report["splits"][split] = m
        print(table(split, m))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
