"""The edits people make to photos, as image functions: training draws random ones, evaluation fixed ones.

Every edit takes an upright RGB ``PIL.Image`` and a ``numpy.random.Generator`` and returns a new RGB image;
the result then goes through ``core.decode.resize_for_model`` exactly as in the app. ``EDITS`` names the 21
kinds the evaluation measures one by one; ``random_edit`` composes several of them for training.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

Edit = Callable[[Image.Image, np.random.Generator], Image.Image]

_WORDS = [
    "holiday",
    "2024",
    "best day",
    "IMG_0412",
    "@lookalike",
    "summer!",
    "family",
    "sale -50%",
    "© photo",
    "wow",
    "beach trip",
    "look at this",
    "Lorem ipsum",
    "day 3",
]


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def crop(im: Image.Image, rng: np.random.Generator, area: tuple[float, float] = (0.5, 0.9)) -> Image.Image:
    """Random crop keeping ``area`` of the picture, aspect within 3:4..4:3 of the original's."""
    w, h = im.size
    a = rng.uniform(*area)
    r = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw, ch = min(w, round(w * np.sqrt(a * r))), min(h, round(h * np.sqrt(a / r)))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return im.crop((x, y, x + cw, y + ch))


def crop_50(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    return crop(im, rng, (0.45, 0.55))


def crop_75(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    return crop(im, rng, (0.7, 0.8))


def flip(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    return im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def rotate_90(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    return im.transpose(Image.Transpose.ROTATE_90)


def rotate_180(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    return im.transpose(Image.Transpose.ROTATE_180)


def rotate_270(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    return im.transpose(Image.Transpose.ROTATE_270)


def rotate_small(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A straightening tilt of 3-12 degrees either way; the corners fill with a plain colour."""
    angle = float(rng.uniform(3, 12) * rng.choice([-1, 1]))
    fill = (0, 0, 0) if rng.random() < 0.5 else (255, 255, 255)
    return im.rotate(angle, Image.Resampling.BILINEAR, expand=bool(rng.random() < 0.5), fillcolor=fill)


def brightness(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    f = float(rng.choice([rng.uniform(0.5, 0.75), rng.uniform(1.3, 1.7)]))
    return ImageEnhance.Brightness(im).enhance(f)


def colour(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Saturation, contrast and a warm/cool cast, as a photo filter does."""
    im = ImageEnhance.Color(im).enhance(float(rng.uniform(0.3, 1.8)))
    im = ImageEnhance.Contrast(im).enhance(float(rng.uniform(0.7, 1.4)))
    gains = 1.0 + rng.uniform(-0.15, 0.15, 3)
    a = np.asarray(im, dtype=np.float32) * gains
    return Image.fromarray(a.clip(0, 255).astype(np.uint8))


def grayscale(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageOps.grayscale(im).convert("RGB")


def blur(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    return im.filter(ImageFilter.GaussianBlur(float(rng.uniform(1.0, 2.5)) * max(im.size) / 400))


def noise(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    a = np.asarray(im, dtype=np.float32)
    a = a + rng.normal(0, rng.uniform(8, 20), a.shape).astype(np.float32)
    return Image.fromarray(a.clip(0, 255).astype(np.uint8))


def jpeg(im: Image.Image, rng: np.random.Generator, quality: tuple[int, int] = (10, 30)) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=int(rng.integers(*quality)))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def downscale(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A thumbnail sent through a messenger: much smaller, then shown big again."""
    s = float(rng.uniform(0.15, 0.35))
    small = im.resize((max(8, round(im.width * s)), max(8, round(im.height * s))), Image.Resampling.BILINEAR)
    return small


def text(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    im = im.copy()
    d = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(1, 3))):
        size = max(8, int(min(im.size) * rng.uniform(0.07, 0.14)))
        x, y = int(rng.uniform(0, 0.6) * im.width), int(rng.uniform(0, 0.85) * im.height)
        fill = (255, 255, 255) if rng.random() < 0.5 else _colour(rng)
        d.text(
            (x, y),
            str(rng.choice(_WORDS)),
            font=_font(size),
            fill=fill,
            stroke_width=max(1, size // 12),
            stroke_fill=(0, 0, 0),
        )
    return im


def logo(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A semi-transparent watermark badge in a corner."""
    im = im.convert("RGBA")
    s = max(12, int(min(im.size) * rng.uniform(0.15, 0.3)))
    badge = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(badge)
    c = _colour(rng)
    if rng.random() < 0.5:
        d.ellipse((0, 0, s - 1, s - 1), fill=(*c, 170))
    else:
        d.rounded_rectangle((0, 0, s - 1, s - 1), radius=s // 5, fill=(*c, 170))
    d.text((s // 5, s // 3), "LK", font=_font(max(6, s // 3)), fill=(255, 255, 255, 230))
    corner = int(rng.integers(4))
    m = max(2, s // 8)
    x = m if corner in (0, 2) else im.width - s - m
    y = m if corner in (0, 1) else im.height - s - m
    im.alpha_composite(badge, (max(0, x), max(0, y)))
    return im.convert("RGB")


def letterbox(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Padded to another aspect ratio (square, 16:9 or 9:16) with bars, as when posting or making a video."""
    target = float(rng.choice([1.0, 16 / 9, 9 / 16, 4 / 5]))
    w, h = im.size
    if w / h < target:
        nw, nh = round(h * target), h
    else:
        nw, nh = w, round(w / target)
    nw, nh = max(nw, w + 2 * max(2, w // 10)) if rng.random() < 0.3 else nw, nh
    fill = (0, 0, 0) if rng.random() < 0.6 else (255, 255, 255) if rng.random() < 0.5 else _colour(rng)
    canvas = Image.new("RGB", (nw, nh), fill)
    canvas.paste(im, ((nw - w) // 2, (nh - h) // 2))
    return canvas


def stretch(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    f = float(np.exp(rng.uniform(np.log(1.3), np.log(1.8)) * rng.choice([-1, 1])))
    w, h = im.size
    return im.resize((max(8, round(w * f)), h), Image.Resampling.BILINEAR)


def screenshot(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The photo shown inside an app window or phone screen, with bars, buttons and text around it."""
    w, h = im.size
    phone = rng.random() < 0.4
    scale = float(rng.uniform(0.55, 0.8))
    if phone:
        cw = round(w / scale)
        ch = round(cw * rng.uniform(1.8, 2.2))
    else:
        ch = round(h / scale)
        cw = max(round(ch * rng.uniform(1.3, 1.8)), round(w / scale))
    dark = rng.random() < 0.4
    bg = (int(rng.integers(15, 45)),) * 3 if dark else (int(rng.integers(225, 256)),) * 3
    canvas = Image.new("RGB", (cw, ch), bg)
    d = ImageDraw.Draw(canvas)
    bar = max(6, ch // 14)
    d.rectangle((0, 0, cw, bar), fill=_colour(rng) if rng.random() < 0.5 else tuple(c - 20 for c in bg))
    fs = max(6, bar // 2)
    fg = (230, 230, 230) if dark else (30, 30, 30)
    d.text((bar, bar // 4), str(rng.choice(_WORDS)), font=_font(fs), fill=fg)
    x = int(rng.integers(0, max(1, cw - w)))
    y = int(rng.integers(bar, max(bar + 1, ch - h)))
    canvas.paste(im, (x, y))
    for _ in range(int(rng.integers(2, 6))):  # buttons and lines of text in the margins
        bx, by = int(rng.integers(0, cw)), int(rng.integers(bar, ch))
        if x <= bx <= x + w and y <= by <= y + h:
            continue
        if rng.random() < 0.5:
            d.rounded_rectangle((bx, by, bx + cw // 8, by + bar // 2), radius=3, fill=_colour(rng))
        else:
            d.text((bx, by), str(rng.choice(_WORDS)), font=_font(fs), fill=fg)
    return canvas


def border(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A thin frame (white or coloured), as a print-style filter adds."""
    b = max(2, int(min(im.size) * rng.uniform(0.03, 0.08)))
    return ImageOps.expand(im, border=b, fill=(255, 255, 255) if rng.random() < 0.5 else _colour(rng))


def combo(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Several edits together: crop, colour, resize and recompress (a re-shared copy)."""
    im = crop(im, rng, (0.6, 0.85))
    im = colour(im, rng)
    im = im.resize((max(8, im.width // 2), max(8, im.height // 2)), Image.Resampling.BILINEAR)
    return jpeg(im, rng, (20, 45))


EDITS: dict[str, Edit] = {
    "crop_50": crop_50,
    "crop_75": crop_75,
    "flip": flip,
    "rotate_90": rotate_90,
    "rotate_180": rotate_180,
    "rotate_270": rotate_270,
    "rotate_small": rotate_small,
    "brightness": brightness,
    "colour": colour,
    "grayscale": grayscale,
    "blur": blur,
    "noise": noise,
    "jpeg": jpeg,
    "downscale": downscale,
    "text": text,
    "logo": logo,
    "letterbox": letterbox,
    "stretch": stretch,
    "screenshot": screenshot,
    "border": border,
    "combo": combo,
}

# Training mixes the same kinds with these probabilities, in this order (geometry, then content, then pixels).
# Version 2 drew more of the kinds version 1 left below 0.9 recall (crops, grayscale, downscale); version 3
# crops deeper than the evaluation's 50 % and adds re-shared copies (crop, colour, shrink, recompress at
# once), the two kinds version 2 still left below 0.9. Part of the trunk-cache key: cached views of another
# mix are never reused.
AUGMENT_VERSION = 3
_GEOMETRY = [
    (0.6, lambda im, r: crop(im, r, (0.35, 1.0))),
    (0.5, flip),
    (0.15, rotate_small),
    (0.15, stretch),
]
_ORIENTATION = 0.45  # 90/180/270 rotation: the edit plain ImageNet features fail most
_FRAMING = [(0.12, letterbox), (0.12, screenshot), (0.06, border)]
_CONTENT = [(0.15, text), (0.12, logo)]
_PIXELS = [
    (0.3, brightness),
    (0.35, colour),
    (0.2, grayscale),
    (0.15, blur),
    (0.12, noise),
    (0.25, downscale),
    (0.35, jpeg),
]


_RESHARED = 0.15  # a copy re-shared through apps: cropped, filtered, shrunk and recompressed in one go


def reshared(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Like ``combo`` with its settings drawn: crop 45-90 %, colour, shrink to 30-70 %, JPEG quality 15-50."""
    im = crop(im, rng, (0.45, 0.9))
    im = colour(im, rng)
    s = float(rng.uniform(0.3, 0.7))
    im = im.resize((max(8, round(im.width * s)), max(8, round(im.height * s))), Image.Resampling.BILINEAR)
    return jpeg(im, rng, (15, 50))


def random_edit(im: Image.Image, rng: np.random.Generator, strength: float = 1.0) -> Image.Image:
    """A random mix of edits for training; ``strength`` scales every probability (0: the photo itself)."""
    if strength <= 0:
        return im
    if rng.random() < _RESHARED * strength:
        im = reshared(im, rng)
        if rng.random() < _ORIENTATION * strength:
            im = [rotate_90, rotate_180, rotate_270][int(rng.integers(3))](im, rng)
        return im
    for p, edit in _GEOMETRY:
        if rng.random() < p * strength:
            im = edit(im, rng)
    if rng.random() < _ORIENTATION * strength:
        im = [rotate_90, rotate_180, rotate_270][int(rng.integers(3))](im, rng)
    framing = [(p, e) for p, e in _FRAMING if rng.random() < p * strength]
    if framing:  # at most one frame: a screenshot of a letterboxed photo is rare
        im = framing[0][1](im, rng)
    for group in (_CONTENT, _PIXELS):
        for p, edit in group:
            if rng.random() < p * strength:
                im = edit(im, rng)
    return im


# Colour filters as photo apps apply them (sepia, duotone, film presets, strong casts, channel tricks). Kept
# apart from ``EDITS`` so the embedding's evaluation keeps measuring its 21 kinds; ``training/verify_eval.py``
# measures both sets.
def _luma(a: np.ndarray) -> np.ndarray:
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


def sepia(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Classic sepia toning, blended with the original at 70-100 %."""
    a = np.asarray(im, dtype=np.float32)
    m = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], np.float32)
    k = float(rng.uniform(0.7, 1.0))
    out = k * (a @ m.T) + (1 - k) * a
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))


def duotone(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Luminance mapped onto a ramp between a dark and a light colour."""
    y = _luma(np.asarray(im, dtype=np.float32))[..., None] / 255.0
    dark = rng.uniform(0, 110, 3).astype(np.float32)
    light = rng.uniform(150, 255, 3).astype(np.float32)
    return Image.fromarray((dark + y * (light - dark)).clip(0, 255).astype(np.uint8))


def vintage(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A film preset: faded blacks, split toning (cool shadows, warm highlights), grain and a vignette."""
    a = np.asarray(im, dtype=np.float32) / 255.0
    lift = float(rng.uniform(0.08, 0.2))
    a = lift + a * (1 - lift - float(rng.uniform(0.0, 0.08)))  # faded blacks, softened whites
    y = _luma(a)[..., None]
    shadow = np.array([-1, 0.2, 1], np.float32) * float(rng.uniform(0.03, 0.08))
    high = np.array([1, 0.3, -1], np.float32) * float(rng.uniform(0.03, 0.08))
    a = a + (1 - y) * shadow + y * high
    h, w = a.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    a = a * (1 - float(rng.uniform(0.2, 0.45)) * np.clip(r2 / 2, 0, 1))[..., None]
    grain = rng.normal(0, float(rng.uniform(0.015, 0.04)), (h, w, 1)).astype(np.float32)
    return Image.fromarray(((a + grain) * 255).clip(0, 255).astype(np.uint8))


def warm(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A strong warm cast: red up, blue down."""
    g = np.array([rng.uniform(1.15, 1.35), rng.uniform(1.0, 1.1), rng.uniform(0.6, 0.8)], np.float32)
    return Image.fromarray((np.asarray(im, dtype=np.float32) * g).clip(0, 255).astype(np.uint8))


def cool(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A strong cool cast: blue up, red down."""
    g = np.array([rng.uniform(0.6, 0.8), rng.uniform(0.95, 1.05), rng.uniform(1.15, 1.35)], np.float32)
    return Image.fromarray((np.asarray(im, dtype=np.float32) * g).clip(0, 255).astype(np.uint8))


def channel_swap(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The colour channels in another order (a 'pop art' filter)."""
    perms = [(0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
    return Image.fromarray(
        np.ascontiguousarray(np.asarray(im)[..., list(perms[int(rng.integers(len(perms)))])])
    )


def channel_mix(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A channel mixer: every output channel a random positive mix of the inputs (rows sum to 0.8-1.2)."""
    m = rng.uniform(0, 1, (3, 3)).astype(np.float32) + np.eye(3, dtype=np.float32) * float(rng.uniform(0, 1))
    m = m / m.sum(axis=1, keepdims=True) * rng.uniform(0.8, 1.2, (3, 1)).astype(np.float32)
    return Image.fromarray((np.asarray(im, dtype=np.float32) @ m.T).clip(0, 255).astype(np.uint8))


COLOUR_FILTERS: dict[str, Edit] = {
    "sepia": sepia,
    "duotone": duotone,
    "vintage": vintage,
    "warm": warm,
    "cool": cool,
    "channel_swap": channel_swap,
    "channel_mix": channel_mix,
}
