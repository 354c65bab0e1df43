"""Flat, near-uniform and structureless images are listed apart as blank, never grouped as duplicates
(a white 300x300, a black 10x10 and an all-NaN TIFF matched each other at 0.992)."""

from __future__ import annotations

import os

import numpy as np
from helpers import copy_demo
from PIL import Image

from core.blank import is_blank
from core.decode import decode_for_model


def make_blank_set(folder) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.new("RGB", (300, 300), "white").save(folder / "white.png")
    Image.new("RGB", (10, 10), "black").save(folder / "black.png")
    Image.new("RGB", (640, 480), (200, 30, 40)).save(folder / "red.jpg", quality=70)
    Image.fromarray(np.full((64, 64), np.nan, np.float32), "F").save(folder / "nan.tiff")
    near = np.clip(128 + rng.normal(0, 1.5, (400, 600, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(near).save(folder / "near_grey.png")
    for name, shape in (
        ("noise_wide.png", (40, 900)),
        ("noise_tall.png", (700, 50)),
        ("noise_sq.png", (256, 256)),
    ):
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(folder / name)
    return sorted(os.listdir(folder))


def test_real_photos_are_not_blank(tmp_path):
    root = copy_demo(tmp_path / "demo")
    photos = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
    assert len(photos) > 30
    assert not [p for p in photos if is_blank(decode_for_model(p, 224).pixels)]


def test_blank_images_are_listed_apart_and_never_grouped(tmp_path, engine_factory):
    names = make_blank_set(tmp_path / "lib" / "blank")
    copy_demo(tmp_path / "lib", ["Camera/forest_path.jpg", "Backup/forest_path.jpg"])
    engine = engine_factory(tmp_path / "cache")
    for attempt in ("first scan", "from the cache"):
        result = engine.scan([tmp_path / "lib"]).result(engine.bundle.duplicate_threshold)
        assert sorted(os.path.basename(f.path) for f in result.blank) == names, attempt
        grouped = {os.path.basename(m.file.path) for g in result.groups for m in g.members}
        assert grouped == {"forest_path.jpg"}, attempt
        assert not result.problems
