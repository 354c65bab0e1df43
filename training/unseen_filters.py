"""Colour and tone presets that no training, calibration or tuning step has seen: how the duplicate tier holds
up on filters it was not built for. Each photo of a split is edited by each preset and saved as JPEG (quality
88), then put through the app's candidate rule (embedding cosine at or above the candidate threshold, or above
the scan's floor with grey-level layouts within ``NEAR_BITS``) and its same-capture check. Prints rates per
preset; asserts nothing.

    python -m training.unseen_filters [--split heldout] [--photos 60]

The presets (film S-curve, cross processing, red-filter black and white, local tone mapping, teal-and-orange
grade, posterisation, tilt-shift with vignette, false-colour infrared) are kept here, apart from
``training.augment``: adding them to what the model trains on or what ``verify_eval --tune`` tunes on would
make this check meaningless.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

Filter = Callable[[Image.Image, np.random.Generator], Image.Image]


def _curve(a: np.ndarray, points: list[tuple[float, float]]) -> np.ndarray:
    """``a`` (uint8) through the tone curve joining ``points`` (input, output) on 0-255."""
    x, y = zip(*points, strict=True)
    return np.interp(np.arange(256), x, y).clip(0, 255).astype(np.uint8)[a]


def film(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A film preset: S-curve with lifted blacks and soft whites, part desaturated, warm."""
    lift, soft = float(rng.uniform(15, 40)), float(rng.uniform(225, 250))
    a = _curve(np.asarray(im), [(0, lift), (64, lift + 25), (128, 130), (192, 205), (255, soft)])
    a = a.astype(np.float32)
    k = float(rng.uniform(0.2, 0.5))
    a = (1 - k) * a + k * a.mean(axis=2, keepdims=True)
    a *= np.array([rng.uniform(1.0, 1.08), 1.0, rng.uniform(0.88, 0.97)], np.float32)
    return Image.fromarray(a.clip(0, 255).astype(np.uint8))


def cross_process(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Cross processing: a steep curve on red and green, blue flattened and lifted."""
    a = np.asarray(im).copy()
    s = float(rng.uniform(20, 35))
    a[..., 0] = _curve(a[..., 0], [(0, 0), (64, 64 - s), (192, 192 + s), (255, 255)])
    a[..., 1] = _curve(a[..., 1], [(0, 0), (64, 64 - s / 2), (192, 192 + s / 2), (255, 255)])
    a[..., 2] = _curve(a[..., 2], [(0, float(rng.uniform(30, 60))), (255, float(rng.uniform(180, 220)))])
    return Image.fromarray(a)


def bw_red_filter(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Black and white through a red filter (dark skies), with a hard contrast curve."""
    a = np.asarray(im, dtype=np.float32)
    r = float(rng.uniform(0.6, 0.9))
    g = (r * a[..., 0] + (1 - r) * a[..., 1]).clip(0, 255).astype(np.uint8)
    lo, hi = float(rng.uniform(40, 70)), float(rng.uniform(180, 210))
    return Image.fromarray(_curve(g, [(0, 0), (lo, 20), (hi, 235), (255, 255)])).convert("RGB")


def local_tone(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """An "HDR" look: local contrast equalisation of the lightness (CLAHE), more saturation."""
    import cv2

    lab = cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2LAB)
    clahe = cv2.createCLAHE(clipLimit=float(rng.uniform(2.0, 4.0)), tileGridSize=(8, 8))
    lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
    out = Image.fromarray(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB))
    return ImageEnhance.Color(out).enhance(float(rng.uniform(1.2, 1.6)))


def teal_orange(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A cinema grade: teal shadows, orange highlights, faded."""
    a = np.asarray(im, dtype=np.float32) / 255.0
    y = a.mean(axis=2, keepdims=True)
    shadows, highs = np.array([0.0, 0.35, 0.45], np.float32), np.array([1.0, 0.65, 0.35], np.float32)
    k = float(rng.uniform(0.3, 0.5))
    a = (1 - k) * a + k * (y * highs + (1 - y) * shadows * y)
    fade = float(rng.uniform(0.05, 0.12))
    return Image.fromarray(((fade + (1 - fade) * a) * 255).clip(0, 255).astype(np.uint8))


def posterize(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A poster look: 3-4 bits per channel, saturated."""
    out = ImageOps.posterize(im, int(rng.integers(3, 5)))
    return ImageEnhance.Color(out).enhance(float(rng.uniform(1.3, 1.8)))


def tilt_shift(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Tilt-shift: top and bottom blurred, a strong vignette, more saturation."""
    w, h = im.size
    blur = np.asarray(im.filter(ImageFilter.GaussianBlur(max(1.0, w / float(rng.uniform(100, 200))))))
    y = np.linspace(-1, 1, h, dtype=np.float32)[:, None, None]
    mask = np.clip((np.abs(y) - 0.25) / 0.4, 0, 1)
    a = np.asarray(im, dtype=np.float32) * (1 - mask) + blur * mask
    xx, yy = np.meshgrid(np.linspace(-1, 1, w, dtype=np.float32), np.linspace(-1, 1, h, dtype=np.float32))
    a *= (1 - float(rng.uniform(0.4, 0.6)) * np.clip(xx**2 + yy**2, 0, 1.5) / 1.5)[..., None]
    out = Image.fromarray(a.clip(0, 255).astype(np.uint8))
    return ImageEnhance.Color(out).enhance(float(rng.uniform(1.3, 1.6)))


def infrared(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """False-colour infrared: green into red, red into green, blue inverted and halved."""
    a = np.asarray(im)
    red = _curve(a[..., 1], [(0, float(rng.uniform(10, 40))), (255, 255)])
    return Image.fromarray(np.stack([red, a[..., 0], 255 - a[..., 2] // 2], axis=-1))


UNSEEN_FILTERS: dict[str, Filter] = {
    "film": film,
    "cross_process": cross_process,
    "bw_red_filter": bw_red_filter,
    "local_tone": local_tone,
    "teal_orange": teal_orange,
    "posterize": posterize,
    "tilt_shift": tilt_shift,
    "infrared": infrared,
}


def _saved(im: Image.Image, quality: int = 88) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def evaluate(split: str, n: int) -> dict[str, dict[str, float]]:
    """Per preset: the share of copies that are candidates, that the check verifies, and both."""
    from core import layout
    from core import verify as V
    from core.decode import read_full, resize_for_model
    from core.engine import Engine
    from training.pairset import photos, subset

    engine = Engine(use_cache=False)
    embedder, candidate_from, floor = engine.embedder, engine.default_threshold(), engine.default_floor()

    def embed(im: Image.Image) -> np.ndarray:
        return embedder.embed_arrays(resize_for_model(im, embedder.size)[None])[0][0]

    counts = {k: np.zeros(4, np.int64) for k in UNSEEN_FILTERS}  # copies, candidates, verified, both
    for i, path in enumerate(subset(photos(split), n)):
        im = read_full(str(path), 1024).convert("RGB")
        ea, fa, la = embed(im), V.extract(im), layout.layout_hash(im)
        for j, (name, edit) in enumerate(UNSEEN_FILTERS.items()):
            copy = _saved(edit(im, np.random.default_rng([i, j])))
            cos = float(ea @ embed(copy))
            near = bin(la ^ layout.layout_hash(copy)).count("1") <= layout.NEAR_BITS
            candidate = cos >= candidate_from or (cos >= floor and near)
            same = V.verify(fa, V.extract(copy)).same
            counts[name] += (1, candidate, same, candidate and same)
    return {
        k: {"copies": int(c[0]), "candidate": c[1] / c[0], "verified": c[2] / c[0], "duplicate": c[3] / c[0]}
        for k, c in counts.items()
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", default="heldout", choices=["tune", "heldout"])
    p.add_argument("--photos", type=int, default=60)
    a = p.parse_args(argv)
    print(f"{'preset':15} {'copies':>6} {'candidate':>9} {'verified':>9} {'duplicate tier':>15}")
    for name, r in evaluate(a.split, a.photos).items():
        print(f"{name:15} {r['copies']:6d} {r['candidate']:9.3f} {r['verified']:9.3f} {r['duplicate']:15.3f}")


if __name__ == "__main__":
    main()
