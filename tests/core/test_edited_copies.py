"""Edited copies of real photos are found at the bundled threshold; different photos are never grouped.

Every demo original gets seven kinds of edits (resize, recompress, crop, flip, rotate, colour, text); the scan
must put each original with all its copies and nothing else.
"""

from __future__ import annotations

import os
from collections import defaultdict

import pytest
from helpers import DEMO
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

EDITS = {
    "resize": lambda im: im.resize((im.width // 3, im.height // 3), Image.Resampling.LANCZOS),
    "recompress": lambda im: im,  # saved at quality 25 below
    "crop": lambda im: im.crop((im.width // 10, im.height // 10, im.width * 9 // 10, im.height * 9 // 10)),
    "flip": ImageOps.mirror,
    "rotate": lambda im: im.rotate(90, expand=True),
    "colour": lambda im: ImageEnhance.Contrast(ImageEnhance.Color(im).enhance(1.5)).enhance(1.2),
    "text": lambda im: _caption(im),
}


def _caption(im):
    im = im.copy()
    d = ImageDraw.Draw(im)
    h = im.height // 10
    d.rectangle((0, im.height - h, im.width, im.height), fill=(0, 0, 0))
    d.text((h // 2, im.height - h * 0.8), "Summer 2024 - do not share", fill=(255, 255, 255), font_size=h * 0.6)
    return im


@pytest.fixture(scope="module")
def edited(tmp_path_factory):
    root = tmp_path_factory.mktemp("edited")
    originals = sorted((DEMO / "Camera").glob("*.jpg"))
    for src in originals:
        im = Image.open(src).convert("RGB")
        im.thumbnail((800, 800))
        stem = src.stem
        im.save(root / f"{stem}__original.jpg", quality=92)
        for kind, fn in EDITS.items():
            fn(im).save(root / f"{stem}__{kind}.jpg", quality=25 if kind == "recompress" else 90)
    return root


def test_edited_copies_found_and_distinct_photos_apart(edited, engine_factory):
    engine = engine_factory(None)
    lib = engine.scan([edited])
    t = engine.bundle.duplicate_threshold
    result = lib.result(t)
    photo = lambda i: os.path.basename(result.files[i].path).split("__")[0]  # noqa: E731
    # Distinct photos are never grouped together.
    for g in result.groups:
        assert len({photo(m.index) for m in g.members}) == 1, [result.files[m.index].path for m in g.members]
    # Recall per edit kind: pairs (original, edit) at or above the threshold.
    pairs = {(min(p.a, p.b), max(p.a, p.b)) for p in result.pairs}
    index = {os.path.basename(f.path): k for k, f in enumerate(result.files)}
    missed = defaultdict(list)
    stems = sorted({n.split("__")[0] for n in index})
    for stem in stems:
        o = index[f"{stem}__original.jpg"]
        for kind in EDITS:
            e = index[f"{stem}__{kind}.jpg"]
            if (min(o, e), max(o, e)) not in pairs:
                missed[kind].append(stem)
    recall = {k: 1 - len(missed[k]) / len(stems) for k in EDITS}
    print("recall per edit at", t, recall)
    if engine.bundle.name.endswith("-imagenet") and not all(r >= 0.9 for r in recall.values()):
        pytest.xfail(f"the plain ImageNet placeholder model misses edits (issue 3 fine-tunes): {recall}")
    assert all(r >= 0.9 for r in recall.values()), dict(missed)
