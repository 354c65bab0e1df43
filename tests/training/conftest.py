"""Tiny real image folders for the training tests (photos drawn with Pillow, saved as JPEG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw


def make_photo(path: Path, seed: int, size: tuple[int, int] = (160, 120)) -> Path:
    """A distinct synthetic "photo": a colour gradient with a few random shapes."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(0, 255, 3)
    slope = rng.uniform(-1.5, 1.5, (2, 3))
    a = base + x[..., None] * slope[0] + y[..., None] * slope[1]
    im = Image.fromarray(a.clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        box = (x0, y0, x0 + int(rng.integers(10, 60)), y0 + int(rng.integers(10, 60)))
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)(box, fill=fill)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, quality=92)
    return path


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for i in range(8):
        make_photo(root / ("sub" if i % 2 else ".") / f"p{i}.jpg", i)
    (root / "notes.txt").write_text("not an image")
    return root
