"""The pairs that measure the copy verifier: edited copies, other shots of one subject, similar-scene photos.

Split, fixed and deterministic (tune thresholds on ``tune``, report ``heldout`` separately):
- photos: ``training.prepare_data.split_shared_datasets`` — its ``val`` part (BSDS test + every 5th ImageNet
  sample, the embedding model's own validation photos) is held out, the rest is for tuning;
- shots/: a group is held out when sha1(group name) mod 3 == 0.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.decode import read_full
from training.augment import COLOUR_FILTERS, EDITS
from training.prepare_data import split_shared_datasets

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"  # ../shared beside the repo
KINDS = {**EDITS, **COLOUR_FILTERS}
SPLITS = ("tune", "heldout")


@dataclass(frozen=True)
class Pair:
    family: str  # "copy", "shot" or "negative"
    kind: str  # edit kind, shot kind ("exposure", "burst", ...) or how the negative was mined
    a: str  # path, or "path#kind" for an edited copy made in memory
    b: str


def shot_split(group: str) -> str:
    return "heldout" if int(hashlib.sha1(group.encode()).hexdigest(), 16) % 3 == 0 else "tune"


def photos(split: str, root: Path = DATASETS) -> list[Path]:
    parts = split_shared_datasets(root)
    return parts["val" if split == "heldout" else "train"]


def subset(files: list[Path], n: int) -> list[Path]:
    """Every k-th file, ``n`` of them (deterministic, spread over both sources)."""
    if n <= 0 or n >= len(files):
        return files
    step = len(files) / n
    return [files[int(i * step)] for i in range(n)]


def copy_pairs(files: list[Path], kinds: dict = KINDS) -> list[Pair]:
    return [Pair("copy", k, str(f), f"{f}#{k}") for f in files for k in kinds]


def shot_pairs(split: str, root: Path = DATASETS) -> list[Pair]:
    groups = json.loads((root / "shots" / "groups.json").read_text())["groups"]
    out = []
    for name, g in sorted(groups.items()):
        if shot_split(name) != split:
            continue
        paths = [str(root / "shots" / "images" / name / f) for f in g["files"]]
        out += [Pair("shot", g["kind"], a, b) for a, b in itertools.combinations(paths, 2)]
    return out


def load(ref: str, max_side: int = 1024) -> Image.Image:
    """An image by reference: a path, or ``path#kind`` for that photo edited by ``KINDS[kind]``.

    The edit's random settings are seeded by the path and kind, so every run makes the same copy.
    """
    path, _, kind = ref.partition("#")
    im = read_full(path, max_side=max_side)
    if not kind:
        return im
    seed = int(hashlib.sha1(ref.encode()).hexdigest()[:12], 16)
    return KINDS[kind](im, np.random.default_rng(seed)).convert("RGB")
