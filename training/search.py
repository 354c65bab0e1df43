"""A small hyper-parameter search: short trainings that each change one setting of the base config.

``python -m training.search --config training/configs/bundled.yaml --set epochs_tail=10 --minutes 6`` trains
every trial on the same validation set, stops starting new trials once ``minutes`` have passed, and writes
``results.json`` and a Markdown table (``search.md``) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

from training.config import load_config
from training.data import read_layout
from training.train import train
from training.valset import build_valset

log = logging.getLogger(__name__)

# Each trial: a name and the settings it changes from the base config.
TRIALS: list[tuple[str, dict]] = [
    ("base", {}),
    ("margin 0.2", {"margin": 0.2}),
    ("margin 0.5", {"margin": 0.5}),
    ("lr x3", {"lr": 3e-3, "lr_tail": 6e-4}),
    ("lr /3", {"lr": 3e-4, "lr_tail": 7e-5}),
    ("batch 32x4", {"batch_identities": 32}),
    ("embed 128", {"embed_dim": 128}),
    ("input 192", {"resolution": 192}),
    ("input 256", {"resolution": 256}),
    ("fork 4 (deeper)", {"fork": 4}),
    ("head only", {"fork": None}),
    ("InfoNCE t=0.05", {"loss": "infonce"}),
]

COLUMNS = ["lr", "lr_tail", "margin", "batch_identities", "views", "embed_dim", "resolution", "fork", "loss"]


def table(rows: list[dict]) -> str:
    head = [
        "trial",
        *COLUMNS,
        "F1 @P≥0.99",
        "threshold",
        "worst edit recall",
        "worst edit",
        "best epoch",
        "s",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        m = r["metrics"]
        cells = [
            r["trial"],
            *[str(r["config"][c]) for c in COLUMNS],
            f"{m['f1']:.4f}",
            f"{m['threshold']:.3f}",
            f"{m['min_kind_recall']:.3f}",
            m["worst_kind"],
            str(r["best_epoch"]),
            f"{r['train_seconds']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", type=Path, default=Path("runs/search"))
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--only", help="comma-separated trial names")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep each trial's best.pt/last.pt")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    base = load_config(a.config, a.overrides)
    a.out.mkdir(parents=True, exist_ok=True)
    val_files = [g[0] for g in read_layout(base.val_data, "photos")]
    vals = {}
    results = a.out / "results.json"
    rows: list[dict] = json.loads(results.read_text(encoding="utf-8")) if results.exists() else []
    done = {r["trial"] for r in rows}  # a re-run adds the trials it has not recorded yet
    start = time.monotonic()
    for name, change in TRIALS:
        if (a.only and name not in a.only.split(",")) or name in done:
            continue
        if time.monotonic() - start > a.minutes * 60:
            log.info("time budget spent; skipping %s and later trials", name)
            break
        cfg = replace(
            base, **change, out=str(a.out / name.replace(" ", "_").replace("/", "div")), export=None
        )
        if cfg.resolution not in vals:
            vals[cfg.resolution] = build_valset(
                val_files, cfg.resolution, cfg.val_seed, workers=cfg.workers or 1
            )
        info = train(cfg, vals[cfg.resolution])
        rows.append({"trial": name, **info})
        if not a.keep_checkpoints:
            for ck in ("best.pt", "last.pt"):
                (Path(cfg.out) / ck).unlink(missing_ok=True)
        results.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        (a.out / "search.md").write_text(table(rows), encoding="utf-8")
    print(table(rows))


if __name__ == "__main__":
    main()
