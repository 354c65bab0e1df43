"""Blank images: one flat colour, near-uniform, or structureless noise.

Such images all embed alike (a white 300x300 and a black 10x10 matched at 0.992), so they would form false
duplicate groups. The engine lists them apart (``ScanResult.blank``) and never pairs them.

Measured on the model's 224 px input of 1,912 real photos (../shared/datasets): luminance std ≥ 11.0 and the
std of 8x8 block means ("coarse std") ≥ 5.7 for every one; a flat image has std < 1, uniform noise a coarse
std near 2.6. The limits below sit at about half the real minimum.
"""

from __future__ import annotations

import numpy as np

FLAT_STD = 4.0  # luminance std (0-255) under which an image is one colour, give or take JPEG noise
COARSE_STD = 3.0  # std of 8x8 block means under which an image has no large-scale structure (noise, grain)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def is_blank(pixels: np.ndarray) -> bool:
    """Whether a model input (uint8 (S, S, 3), S divisible by 8) shows nothing to compare."""
    y = pixels.astype(np.float32) @ _LUMA
    if not np.isfinite(y).all() or y.std() < FLAT_STD:
        return True
    s = y.shape[0] // 8
    coarse = y[: s * 8, : s * 8].reshape(8, s, 8, s).mean(axis=(1, 3))
    return bool(coarse.std() < COARSE_STD)
