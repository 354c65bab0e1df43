"""The run's ``summary.csv``: one row per epoch, appended as the run goes (as timm's ``update_summary``)."""

from __future__ import annotations

import csv
from pathlib import Path

FIELDS = [
    "epoch",
    "phase",
    "lr",
    "loss",
    "f1",
    "precision",
    "recall",
    "threshold",
    "min_kind_recall",
    "worst_kind",
    "seconds",
]


def update_summary(path: Path, row: dict, fields: list[str] = FIELDS) -> None:
    """Append ``row`` (other keys ignored, missing ones blank); a new file gets the header first."""
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)


def read_summary(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def truncate_summary(path: Path, epochs: int, fields: list[str] = FIELDS) -> None:
    """Keep the rows of the first ``epochs`` epochs (a resumed run rewrites the ones after its checkpoint)."""
    if not path.exists():
        return
    rows = [r for r in read_summary(path) if int(r["epoch"]) <= epochs]
    path.unlink()
    for r in rows:
        update_summary(path, r, fields)
