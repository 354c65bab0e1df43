"""Auto-select's "Keep the highest resolution" keeps the camera's capture, not an upscaled export of it."""

from __future__ import annotations

import os

from helpers import camera_jpeg

from core.selection import choose


def test_keep_the_highest_resolution_keeps_the_capture(tmp_path, engine_factory):
    root = tmp_path / "lib"
    root.mkdir()
    im = camera_jpeg(root / "IMG_2041.jpg")
    im.resize((im.width * 3 // 2, im.height * 3 // 2)).save(root / "IMG_2041_big.png")
    engine = engine_factory()
    result = engine.scan([root]).result(engine.bundle.duplicate_threshold)
    assert {os.path.basename(p) for p in choose(result, "resolution")} == {"IMG_2041_big.png"}
