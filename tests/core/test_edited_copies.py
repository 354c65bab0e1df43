"""Edited copies of real photos are found at the bundled threshold; different photos are never grouped.

Every demo original gets seven kinds of edits (resize, recompress, crop, flip, rotate, colour, text); the scan
must put each original with all its copies and nothing else.
"""

from __future__ import annotations

import os

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
    d.text(
        (h // 2, im.height - h * 0.8), "Summer 2024 - do not share", fill=(255, 255, 255), font_size=h * 0.6
    )
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


@pytest.fixture(scope="module")
def scanned(edited, engine_factory):
    engine = engine_factory(None)
    result = engine.scan([edited]).result(engine.bundle.duplicate_threshold)
    return engine, result


def _photo(path: str) -> str:
    return os.path.basename(path).split("__")[0]


def test_distinct_photos_are_never_grouped(scanned):
    _, result = scanned
    assert result.groups
    for g in result.groups:
        assert len({_photo(m.file.path) for m in g.members}) == 1, [m.file.path for m in g.members]


# 90-degree turns: plain ImageNet features find ~0.15 of them, the fine-tuned model ~0.96 by itself
# (training/reports/evaluation.md). The engine can also embed portrait images turned both ways
# (core.embed.PORTRAIT_RATIO); the manifest's ``turned_embeddings`` says whether this model uses that.
@pytest.mark.parametrize("kind", list(EDITS))
def test_edited_copies_are_found(scanned, kind):
    engine, result = scanned
    pairs = {frozenset((os.path.basename(p.a.path), os.path.basename(p.b.path))) for p in result.pairs}
    stems = sorted({os.path.basename(f.path).split("__")[0] for f in result.files})
    missed = []
    for stem in stems:
        if frozenset((f"{stem}__original.jpg", f"{stem}__{kind}.jpg")) not in pairs:
            missed.append(stem)
    recall = 1 - len(missed) / len(stems)
    if engine.bundle.name.endswith("-imagenet") and recall < 0.9:
        pytest.xfail(f"the plain ImageNet placeholder model misses {kind} edits: recall {recall:.2f}")
    assert recall >= 0.9, f"{kind}: recall {recall:.2f} at {result.threshold}, missed {missed}"
