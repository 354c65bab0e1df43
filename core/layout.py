"""A photo's grey-level layout in 64 bits: finds copies whose colours changed beyond the embedding's reach.

A strong colour filter (duotone, sepia, swapped channels) moves a copy's embedding far from its original's:
on the tuning split 9 of 150 duotone copies fell below the candidate cosine, so they were never checked and
never called duplicates. Such filters keep where the picture is light and dark. This hash is the sign of
the 63 lowest DCT frequencies of the grey picture (squashed to 32x32, untrimmed; its median as the cut), a
perceptual hash. No two different photos of 1,500 came closer than 12 bits (684,250 pairs, tuning and
held-out splits; 16 among those with a cosine between the floor and the candidate threshold). A pair of the
scan's table (cosine at or above the floor) whose layouts differ by at most ``NEAR_BITS`` is checked as the
same capture like a candidate (``core.confirm``); the check, not the hash, decides.

Crops, turns and mirrors change the layout; the embedding finds those.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Cached rows carry no version of their own: a change to the hash must also make the engine read rows made
# by the old one again (``core.engine``, where rows without a layout are). Part of the verdicts' key.
VERSION = 1
NEAR_BITS = 10  # layouts this close nominate a pair for the check (filtered copies: 0-8 bits; others: >= 12)
_SIDE = 32
_KEEP = 8


def _dct_matrix(n: int, keep: int) -> np.ndarray:
    k = np.arange(keep)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


_DCT = _dct_matrix(_SIDE, _KEEP)


def layout_hash(image: Image.Image | np.ndarray) -> int:
    """The 64-bit layout of a PIL image or an RGB (or grey) uint8 array, as an unsigned int (the DC bit is
    always 0)."""
    if not isinstance(image, Image.Image):
        a = np.asarray(image)
        if a.ndim not in (2, 3):
            raise ValueError(f"expected an image array, got shape {a.shape}")
        image = Image.fromarray(np.ascontiguousarray(a[..., :3] if a.ndim == 3 else a, np.uint8))
    small = np.asarray(image.convert("L").resize((_SIDE, _SIDE), Image.Resampling.BOX), np.float64)
    coef = (_DCT @ small @ _DCT.T).ravel()[1:]  # the DC term says only how bright the picture is
    bits = coef > np.median(coef)
    return int(np.packbits(np.concatenate([[False], bits])).view(">u8")[0])


def to_signed(h: int) -> int:
    """The hash as SQLite's signed 64-bit INTEGER stores it."""
    return h - (1 << 64) if h >= 1 << 63 else h


def from_signed(v: int) -> int:
    return v + (1 << 64) if v < 0 else v


def near(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether layouts ``a`` and ``b`` (uint64 arrays, broadcast) are within ``NEAR_BITS``; 0 is no layout
    (a hash always has 31 bits set) and is near nothing."""
    a, b = np.asarray(a, np.uint64), np.asarray(b, np.uint64)
    return (a != 0) & (b != 0) & (distance(a, b) <= NEAR_BITS)


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Differing bits between two arrays of uint64 layouts (element-wise)."""
    x = np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64))
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x).astype(np.int64)
    return np.unpackbits(x.reshape(-1, 1).view(np.uint8), axis=1).sum(1).astype(np.int64).reshape(x.shape)
