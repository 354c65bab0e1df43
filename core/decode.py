"""Decode any supported image into the model's input, fast and safely.

JPEGs are decoded with DCT-domain reduction (Pillow ``draft``): the model needs ~224 px, and a full 12 MP
decode is ~5x slower for nothing. EXIF orientation is applied; every mode (P, LA, CMYK, I;16, RGBA...) becomes
RGB (transparency over white). Decompression bombs are refused with a reason, never decoded.

Memory is bounded: the pixel buffers a decode will need are estimated from the header (``decode_cost``) before
anything is loaded; an image over ``MAX_DECODE_BYTES`` is refused with a reason, and callers running decodes
in parallel can make each wait for its share of a global budget (``reserve``). Images far larger than the
model needs are shrunk right after loading, before any conversion: the loaded pixels are the peak, not 3-4
copies."""

from __future__ import annotations

import io
import logging
import math
import os
import stat
import struct
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from core.errors import DecodeError
from core.layout import layout_hash
from core.raw import is_raw, open_raw
from core.results import RECORDED_SIZE

log = logging.getLogger(__name__)

MAX_PIXELS = 250_000_000  # larger than any camera; a header claiming more is treated as a bomb
# Each scan of a progressive JPEG is decoded over the whole picture: a file repeating one scan thousands of
# times took 18 s (12 MP, 2,000 scans, 123 KB) to minutes. Encoders write ~10 (libjpeg) to a few dozen.
MAX_JPEG_SCANS = 200
# One image's estimated peak pixel buffers. Admits every 8-bit image up to the bomb limit that can be shrunk
# after loading (250 MP RGBA: 1.0 GB) and 16-bit greys to 250 MP (0.5 GB); refuses what would need more.
MAX_DECODE_BYTES = 1 << 30
# Images with more pixels are shrunk right after loading, keeping 8x the model's size per side; photos from
# cameras and phones stay below it (and JPEGs are reduced by ``draft`` anyway), so their pixels never change.
REDUCE_ABOVE_PIXELS = 64_000_000
_KEEP = 8
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
if "PILLOW_BLOCK_SIZE" not in os.environ:
    # Pillow allocates big images in blocks (16 MB by default). glibc serves blocks that size from per-thread
    # arenas that keep freed memory, so giant images decoded one after another in different threads added up
    # (measured: 570 MB -> 1 GB RSS for one 450 MB image at a time). Blocks over 32 MB are mmap'ed and given
    # back on free. Small images are allocated at their own size, as before.
    Image.core.set_block_size(64 << 20)
ImageFile.LOAD_TRUNCATED_IMAGES = False

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_heif_registered = False


def register_plugins() -> None:
    """Teach Pillow HEIC/HEIF (and AVIF where Pillow lacks it) through pillow-heif, once."""
    global _heif_registered
    if _heif_registered:
        return
    _heif_registered = True
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        if "AVIF" not in Image.registered_extensions().values() and hasattr(
            pillow_heif, "register_avif_opener"
        ):
            pillow_heif.register_avif_opener()
    except ImportError:  # pragma: no cover - pillow-heif is a declared dependency
        log.warning("pillow-heif is not installed: HEIC/HEIF files will be reported as unsupported")


@dataclass(frozen=True)
class Decoded:
    pixels: np.ndarray  # uint8 (size, size, 3), RGB, upright
    width: int  # of the upright original
    height: int
    format: str
    taken: str | None
    capture: str | None = None  # the camera's record of the capture (see ``capture_signature``)
    layout: int | None = None  # core.layout.layout_hash of the whole upright picture, before any trimming
    preview: bytes | None = None  # JPEG of the upright picture, long side <= the ``preview`` side asked for


# EXIF tags that name one capture: an edit keeps them; another frame of a burst or a bracket changes them.
_CAPTURE_TAGS = {
    0x9003: "time",
    0x9291: "subsec",
    0x829A: "exposure",
    0x829D: "f",
    0x8827: "iso",
    0x9204: "bias",
}


def capture_signature(exif: Image.Exif) -> str | None:
    """``"time=2021:06:05 07:41:12;subsec=345;exposure=0.004;..."`` from the Exif IFD, or None without a
    capture time. Two files whose signatures disagree on a field both carry are two captures
    (``same_capture``)."""
    ifd = exif.get_ifd(0x8769)
    fields = []
    for tag, name in _CAPTURE_TAGS.items():
        v = ifd.get(tag)
        if isinstance(v, tuple):  # (numerator, denominator) or ISO as a sequence
            v = v[0] if len(v) == 1 else (float(v[0]) / float(v[1]) if len(v) == 2 and v[1] else v[0])
        if v is None or v == "":
            continue
        text = f"{float(v):.6g}" if isinstance(v, (int, float)) or hasattr(v, "numerator") else str(v)
        # ";" separates the fields: a value holding one would pose as more fields
        fields.append(f"{name}={text.strip(chr(0)).strip().replace(';', ',')}")
    # the size the camera wrote the picture at (PixelXDimension, PixelYDimension): not part of the capture (an
    # editor that resizes may update it), but a file with more pixels than that was enlarged after it
    w, h = ifd.get(0xA002), ifd.get(0xA003)
    if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0:
        fields.append(f"{RECORDED_SIZE}={w}x{h}")
    return ";".join(fields) if any(f.startswith("time=") for f in fields) else None


def _fields(signature: str) -> dict[str, str]:
    """A capture signature's fields; a part without "=" (a cache row written before values were cleaned of
    ";") is not a field."""
    return dict(f.split("=", 1) for f in signature.split(";") if "=" in f)


def same_capture(a: str | None, b: str | None) -> bool | None:
    """False when two capture signatures disagree on a field both carry; None when they cannot tell."""
    if not a or not b:
        return None
    fa, fb = _fields(a), _fields(b)
    common = fa.keys() & fb.keys() - {RECORDED_SIZE}
    if "time" not in common:
        return None
    return all(fa[k] == fb[k] for k in common)


def _taken(exif: Image.Exif) -> str | None:
    value = exif.get_ifd(0x8769).get(0x9003) or exif.get(0x0132)  # DateTimeOriginal, else DateTime
    if not isinstance(value, str) or len(value) < 19:
        return None
    value = value.strip("\x00 ")[:19]
    return value[:10].replace(":", "-") + value[10:]


def _to_8bit(a: np.ndarray, lo: float, scale: float) -> np.ndarray:
    """``(a - lo) * scale`` clipped to uint8, a block of rows at a time: no full-size float copies."""
    out = np.empty(a.shape, np.uint8)
    step = max(1, (1 << 20) // max(1, a.shape[1]))
    for r in range(0, a.shape[0], step):
        block = a[r : r + step].astype(np.float32)
        if lo:
            block -= np.float32(lo)
        block *= np.float32(scale)
        np.clip(block, 0, 255, out=block)
        out[r : r + step] = block
    return out


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB; transparent areas become white, 16-bit greys keep their range."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.int32 if im.mode == "I" else np.uint16)
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo < 0 or hi > 65535:  # 32-bit data (a scientific TIFF): its own range, as for floats
            return Image.fromarray(_to_8bit(a, float(lo), 255.0 / (hi - lo or 1)), "L").convert("RGB")
        top = 65535 if hi > 255 else 255
        return Image.fromarray(_to_8bit(a, 0.0, 255.0 / top), "L").convert("RGB")
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float32)
        finite = np.isfinite(a)
        if finite.all():
            lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        elif finite.any():  # NaN or infinite pixels (scientific TIFFs) show as the lowest value
            lo, hi = float(a.min(initial=np.inf, where=finite)), float(a.max(initial=-np.inf, where=finite))
            a = np.where(finite, a, np.float32(lo))
        else:
            lo, hi, a = 0.0, 0.0, np.zeros_like(a)
        return Image.fromarray(_to_8bit(a, lo, 255.0 / (hi - lo or 1.0)), "L").convert("RGB")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("LA", "PA", "La"):
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "RGBa"):
        rgba = im if im.mode == "RGBA" else im.convert("RGBA")
        bg = Image.new("RGB", im.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba)  # an RGBA mask is its alpha band
        return bg
    return im.convert("RGB")


# What the model sees from a file; part of the cache key, so changing it re-embeds instead of mixing old and
# new.
PREPROCESS_VERSION = "squash-trim2"


def _thumbnail(rgb: Image.Image) -> np.ndarray:
    """At most 96 px on the long side, box-filtered (~40x fewer pixels than the JPEG draft): int16 (h, w,
    3)."""
    W, H = rgb.size
    scale = 96 / max(W, H)
    small = rgb.resize((max(1, round(W * scale)), max(1, round(H * scale))), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.int16)


Box = tuple[int, int, int, int]  # left, top, right, bottom in pixels, as PIL's crop takes it


def _margin_box(
    size: tuple[int, int], shape: tuple[int, ...], top: int, bottom: int, left: int, right: int
) -> Box | None:
    """The box inside margins found on a thumbnail of ``shape``, for an image of ``size``; None when no
    margin is left after slivers under 2 % of a side are ignored (JPEG edge noise)."""
    h, w = shape[:2]
    top, bottom = (x if x >= 0.02 * h else 0 for x in (top, bottom))
    left, right = (x if x >= 0.02 * w else 0 for x in (left, right))
    if not (top or bottom or left or right):
        return None
    W, H = size
    sx, sy = W / w, H / h
    return round(left * sx), round(top * sy), W - round(right * sx), H - round(bottom * sy)


# The verifier's picture may be this small a share of a side of an app's canvas (the model's trim keeps 20 %):
# a photo shown in a phone screenshot can be under a fifth of its height, and the trim then kept the whole
# column of buttons and captions around it, where ORB found too few of the photo's corners.
CONTENT_MIN_SIDE = 0.1


def content_box(rgb: Image.Image) -> Box:
    """Where the picture is once flat bars and an app's canvas are trimmed, as ``resize_for_model`` trims
    them (but down to ``CONTENT_MIN_SIDE`` of a side of a canvas): the box in ``rgb``'s pixels (the whole
    image when nothing is trimmed)."""
    W, H = rgb.size
    if rgb.height < 16 or rgb.width < 16:
        return 0, 0, W, H
    thumb = _thumbnail(rgb)
    outer = _border_box(rgb, thumb=thumb)
    if outer is None:
        return _canvas_box(rgb, thumb=thumb, min_side=CONTENT_MIN_SIDE) or (0, 0, W, H)
    inner = _canvas_box(rgb.crop(outer), min_side=CONTENT_MIN_SIDE)
    if inner is None:
        return outer
    return outer[0] + inner[0], outer[1] + inner[1], outer[0] + inner[2], outer[1] + inner[3]


def trim_borders(
    rgb: Image.Image, tolerance: int = 8, share: float = 0.99, thumb: np.ndarray | None = None
) -> Image.Image:
    """Cut flat bars off the edges (letterbox, padding, frames), so a padded copy looks like its original.

    Found on a thumbnail of at most 96 px: a row or column is a bar when ``share`` of its pixels lie within
    ``tolerance`` of that edge's median colour (padding is flat; skies and fog have gradients). At least 20 %
    of each side is always kept. ``thumb``: this image's ``_thumbnail``, when the caller has it.
    """
    box = _border_box(rgb, tolerance, share, thumb)
    return rgb if box is None else rgb.crop(box)


def _border_box(
    rgb: Image.Image, tolerance: int = 8, share: float = 0.99, thumb: np.ndarray | None = None
) -> Box | None:
    """The box ``trim_borders`` crops to (None: no bar)."""
    if rgb.height < 16 or rgb.width < 16:
        return None
    a = _thumbnail(rgb) if thumb is None else thumb
    h, w = a.shape[:2]

    def run(lines: np.ndarray) -> int:  # lines: (n, m, 3) from the edge inwards; at most 80 % can be a bar
        lines = lines[: int(len(lines) * 0.8) + 1]
        ref = lines[0].mean(axis=0)
        close = (np.abs(lines - ref).max(axis=2) <= tolerance).mean(axis=1) >= share
        return int(np.argmin(close)) if not close.all() else len(close)

    def flat(line: np.ndarray) -> bool:
        return bool((np.abs(line - line.mean(axis=0)).max(axis=1) <= tolerance).mean() >= share)

    if not (flat(a[0]) or flat(a[-1]) or flat(a[:, 0]) or flat(a[:, -1])):
        return None  # the common case: no edge is flat, so there is no bar
    top = run(a)
    bottom = run(a[::-1])
    at = np.ascontiguousarray(a.transpose(1, 0, 2))
    left = run(at)
    right = run(at[::-1])
    top, bottom = (top, bottom) if h - top - bottom >= 0.2 * h else (0, 0)
    left, right = (left, right) if w - left - right >= 0.2 * w else (0, 0)
    return _margin_box(rgb.size, a.shape, top, bottom, left, right)


def _box_sums(mask: np.ndarray, k: int) -> np.ndarray:
    """The number of set pixels in every k x k window that fits inside ``mask`` (an integral image)."""
    c = np.pad(mask.astype(np.int32).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


def _opening(mask: np.ndarray, k: int) -> np.ndarray:
    """Morphological opening with a k x k square: keeps regions at least k px across, drops thinner marks."""
    eroded = _box_sums(mask, k) == k * k
    return _box_sums(np.pad(eroded, k - 1), k) > 0


def trim_canvas(
    rgb: Image.Image,
    tolerance: int = 6,
    ring_share: float = 0.5,
    line_share: float = 0.85,
    k: int = 6,
    thumb: np.ndarray | None = None,
) -> Image.Image:
    """Cut a flat canvas with sparse marks off a picture placed on it: a screenshot of a photo in an app.

    Found on a thumbnail of at most 96 px. The canvas colour is the commonest colour of the outer ring, and at
    least ``ring_share`` of the ring must be that colour (title bars, flat lines of another colour, are left
    out of that count). Pixels away from the canvas colour are the content; title bars are removed, then an
    opening with a ``k``-px square drops thin marks (lines of text, buttons), and the content's bounding box
    is kept. At least 20 % of each side is always kept. Measured on 400 held-out photos: screenshot copies'
    recall 0.50 -> 0.99 with the same model, no edit kind worse by more than one photo in 400.
    """
    box = _canvas_box(rgb, tolerance, ring_share, line_share, k, thumb)
    return rgb if box is None else rgb.crop(box)


def _canvas_box(
    rgb: Image.Image,
    tolerance: int = 6,
    ring_share: float = 0.5,
    line_share: float = 0.85,
    k: int = 6,
    thumb: np.ndarray | None = None,
    min_side: float = 0.2,
) -> Box | None:
    """The box ``trim_canvas`` crops to (None: no canvas, or content under ``min_side`` of a side)."""
    if rgb.height < 16 or rgb.width < 16:
        return None
    a = _thumbnail(rgb) if thumb is None else thumb
    h, w = a.shape[:2]
    ring = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    q = (ring // 8).astype(np.int32)
    key = (q[:, 0] << 10) | (q[:, 1] << 5) | q[:, 2]
    values, counts = np.unique(key, return_counts=True)
    if counts.max() < 0.3 * len(ring):
        return None  # the common case: a photo's edges have no dominant flat colour
    bg = np.median(ring[key == values[np.argmax(counts)]], axis=0)
    near = np.abs(a - bg).max(axis=2) <= tolerance

    def flat_lines(x: np.ndarray) -> np.ndarray:  # (n, m, 3) -> which lines are one flat colour
        return (np.abs(x - np.median(x, axis=1, keepdims=True)).max(axis=2) <= tolerance).mean(
            axis=1
        ) >= line_share

    rows, cols = flat_lines(a), flat_lines(a.transpose(1, 0, 2))
    edges = [(near[0], rows[0]), (near[-1], rows[-1]), (near[:, 0], cols[0]), (near[:, -1], cols[-1])]
    counted = [
        line for line, is_flat in edges if not is_flat or line.mean() > 0.5
    ]  # skip bars of another colour
    if not counted or np.concatenate(counted).mean() < ring_share:
        return None
    content = ~near
    content[rows] = False
    content[:, cols] = False
    content = _opening(content, k)
    ys, xs = np.nonzero(content.any(axis=1))[0], np.nonzero(content.any(axis=0))[0]
    if len(ys) == 0:
        return None
    y0, y1, x0, x1 = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
    if y1 - y0 < min_side * h or x1 - x0 < min_side * w:
        return None
    return _margin_box(rgb.size, a.shape, y0, h - y1, x0, w - x1)


def resize_for_model(rgb: Image.Image, size: int) -> np.ndarray:
    """The model's input from an upright RGB image: bars and app canvases trimmed, squashed to
    ``size``x``size``.

    Training uses this too, so the app and the training see the same pixels.
    """
    thumb = _thumbnail(rgb) if rgb.height >= 16 and rgb.width >= 16 else None
    trimmed = trim_borders(rgb, thumb=thumb)  # measured: letterbox recall 0.85 -> 1.0, F1 0.955 -> 0.964
    # measured: screenshot recall 0.50 -> 0.99, F1 0.960 -> 0.972 with the same model
    rgb = trim_canvas(rgb, thumb=thumb) if trimmed is rgb else trim_canvas(trimmed)
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(rgb, dtype=np.uint8)


def open_regular(path: str) -> BinaryIO:
    """The file at ``path`` opened for reading, refused unless it is a regular file.

    ``O_NONBLOCK``: a FIFO put where a photo was (between the walk and the decode) would otherwise block the
    open, and the scan with it, for ever; ``fstat`` on the open descriptor then checks what was really opened,
    with no window for another swap. Symlinks are followed on purpose (the walk may follow them).
    """
    flags = (
        os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    )
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as e:
        raise DecodeError("file vanished before it could be read") from e
    except PermissionError as e:
        raise DecodeError("permission denied") from e
    except IsADirectoryError as e:
        raise DecodeError("is a directory") from e
    except OSError as e:
        raise DecodeError(f"cannot read file: {e.strerror or e}") from e
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise DecodeError("is a directory")
        if not stat.S_ISREG(mode):
            raise DecodeError("not a regular file (pipe, device or socket)")
        # O_NONBLOCK stays set: it changes nothing for regular files.
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _jpeg_scans(fh: BinaryIO, stop: int) -> int:
    """How many scans (SOS markers) a JPEG file holds, counting no further than ``stop`` + 1. Entropy-coded
    data never holds the marker (an 0xFF byte there is followed by 0 or a restart number)."""
    at = fh.tell()
    fh.seek(0)
    count, tail = 0, b""
    try:
        while count <= stop and (chunk := fh.read(1 << 20)):
            data = tail + chunk
            count += data.count(b"\xff\xda")
            tail = data[-1:] if data[-1:] == b"\xff" else b""  # a marker split between two reads
    finally:
        fh.seek(at)
    return count


@contextmanager
def open_image(path: str) -> Iterator[Image.Image]:
    """Open ``path`` and validate its header; raise ``DecodeError`` with a clear reason. Closes the file
    after."""
    register_plugins()
    with open_regular(path) as fh:
        if is_raw(path):
            im = open_raw(path)  # LibRaw reads the file itself; open_regular has checked it is a file
            with im:
                yield im
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im = Image.open(fh)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise DecodeError(f"image too large to decode safely ({e})") from e
        except UnidentifiedImageError as e:
            raise DecodeError("not a recognised image format (unsupported or corrupt)") from e
        except OSError as e:
            raise DecodeError(f"cannot read file: {e.strerror or e}") from e
        with im:
            w, h = im.size
            if w <= 0 or h <= 0:
                raise DecodeError(f"invalid image size {w}x{h}")
            if w * h > MAX_PIXELS:
                raise DecodeError(
                    f"image too large to decode safely ({w}x{h} px, limit {MAX_PIXELS // 1_000_000} MP)"
                )
            if im.format == "JPEG" and (im.info.get("progressive") or im.info.get("progression")):
                scans = _jpeg_scans(fh, MAX_JPEG_SCANS)
                if scans > MAX_JPEG_SCANS:
                    raise DecodeError(
                        f"progressive JPEG with over {MAX_JPEG_SCANS} scans (a real one has about 10): "
                        "refused, decoding it would take minutes"
                    )
            yield im


# Bytes per pixel of Pillow's storage (RGB is stored in 4), and a rough upper bound of what the steps after
# loading hold at once per pixel: to_rgb's copies, then a crop and a turn of the RGB image (4 bytes each).
_STORED = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
_WORKING = {
    "RGB": 8,
    "RGBA": 12,
    "LA": 16,
    "La": 16,
    "PA": 16,
    "RGBa": 16,
    "P": 20,
    "I;16": 15,
    "I;16B": 15,
    "I;16L": 15,
    "I;16N": 15,
    "I": 17,
    "F": 18,
}
_DESCRIBE = {
    "1": "1-bit",
    "L": "8-bit grey",
    "P": "palette",
    "I": "32-bit integer",
    "F": "32-bit float",
    "I;16": "16-bit grey",
    "I;16B": "16-bit grey",
    "I;16L": "16-bit grey",
    "I;16N": "16-bit grey",
}
# Formats that can decode smaller for less (Pillow's ``draft``). JPEG: DCT scaling, at 1/2, 1/4 or 1/8 when
# that is enough. HEIF: the thumbnail phones embed, when it is a scaled copy at least as large as asked (a
# 12 MP HEIC: 150-700 ms of CPU decoded whole, 3 ms through its 320 x 240 thumbnail).
_DRAFTED = frozenset({"JPEG", "HEIF"})
# A HEIF thumbnail may be a little smaller than asked: a 3:2 phone photo's 320 px thumbnail is 213 px high,
# enlarged 1.05x to the model's 224; the embedding moves by ~1 % (cosine to the whole image 0.988-0.996 on the
# peer bench's HEICs). 16:9 ones (320 x 180) are too small and decode whole.
HEIF_DRAFT_SHARE = 0.9
# Decoders that fill a buffer of their own and then copy it into Pillow's.
_BUFFERED = {"HEIF", "AVIF", "WEBP"}


def _reduction(width: int, height: int, size: int, keep_aspect: bool = False) -> tuple[int, int]:
    """How much to shrink an image right after loading: (1, 1) unless it has more than
    ``REDUCE_ABOVE_PIXELS``;
    at least ``_KEEP`` x ``size`` px stay on each side (on the long side with ``keep_aspect``)."""
    if width * height <= REDUCE_ABOVE_PIXELS:
        return 1, 1
    if keep_aspect:
        k = max(1, max(width, height) // (_KEEP * size))
        return k, k
    return max(1, width // (_KEEP * size)), max(1, height // (_KEEP * size))


def decode_cost(im: Image.Image, size: int, keep_aspect: bool = False) -> int:
    """Estimated peak bytes of pixel buffers to decode ``im`` (opened, drafted, not loaded) for ``size`` px.

    The loaded image, plus the conversions done on it (or on its shrunk copy); Python and the model are not
    counted. Deliberately rough, but an upper bound for the formats measured (PNG, TIFF, JPEG, HEIF).
    """
    w, h = im.size
    mode = im.mode
    loaded = w * h * _STORED.get(mode, 4)
    if im.format in _BUFFERED:
        loaded *= 2
    kx, ky = _reduction(w, h, size, keep_aspect)
    if (kx, ky) != (1, 1):
        if mode in ("P", "1"):  # no reduce for these: converted first (see _shrink)
            loaded += w * h * 4
            mode = "RGBA"
        w, h = -(-w // kx), -(-h // ky)
    return loaded + w * h * _WORKING.get(mode, 12)


def describe(im: Image.Image) -> str:
    """``15000x15000 16-bit grey``: an image's size and kind, for reasons people read."""
    return f"{im.width}x{im.height} {_DESCRIBE.get(im.mode, im.mode)}"


def _check_cost(im: Image.Image, size: int, keep_aspect: bool = False) -> int:
    need = decode_cost(im, size, keep_aspect)
    if need > MAX_DECODE_BYTES:
        raise DecodeError(
            f"too large to decode within the memory budget: {describe(im)}, "
            f"needs ~{need / 1e9:.1f} GB (limit {MAX_DECODE_BYTES / 1e9:.1f} GB)"
        )
    return need


def _shrink(im: Image.Image, size: int, keep_aspect: bool = False) -> Image.Image:
    """A loaded image far larger than needed, box-reduced before any conversion (see ``_reduction``)."""
    kx, ky = _reduction(im.width, im.height, size, keep_aspect)
    if (kx, ky) == (1, 1):
        return im
    if im.mode in ("P", "1"):
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode.startswith("I;16"):  # reduce() lacks 16-bit modes; a box resize is the same filter
        return im.resize((-(-im.width // kx), -(-im.height // ky)), Image.Resampling.BOX)
    if im.mode in ("LA", "RGBA"):
        # reduce() premultiplies alpha in a full-size copy (measured: 9000x9000 RGBA peaked at 2x its pixels):
        # reduce strips of whole ky-row blocks instead, which gives the same pixels
        out = Image.new(im.mode, (-(-im.width // kx), -(-im.height // ky)))
        rows = ky * max(1, (16 << 20) // (4 * im.width * ky))
        for y in range(0, im.height, rows):
            out.paste(im.crop((0, y, im.width, min(im.height, y + rows))).reduce((kx, ky)), (0, y // ky))
        return out
    return im.reduce((kx, ky))


def _orientation_and_date(im: Image.Image) -> tuple[int, str | None, str | None]:
    try:
        exif = im.getexif()
    except Exception:  # noqa: BLE001 - broken EXIF must not lose the picture
        return 1, None, None
    try:
        capture = capture_signature(exif)
    except Exception:  # noqa: BLE001
        capture = None
    try:
        return im.info.get("raw_orientation") or exif.get(0x0112, 1), _taken(exif), capture
    except Exception:  # noqa: BLE001
        return 1, None, capture


def decode_for_model(
    path: str,
    size: int,
    *,
    reserve: Callable[[int], AbstractContextManager] | None = None,
    preview: int = 0,
) -> Decoded:
    """Decode ``path`` to an upright ``size``x``size`` RGB array (aspect squashed, nothing cropped).

    ``reserve(nbytes)``: a context manager held while the pixels are decoded, given the estimated bytes
    (``decode_cost``); a pool of decode threads uses it to share one memory budget.
    ``preview``: also keep the upright picture as a JPEG of at most this many pixels on its long side
    (``Decoded.preview``), when the pixels decoded for the model hold about that much (``PREVIEW_SHARE``):
    the scan's pair check reads it instead of decoding a candidate's file a second time.
    """
    with open_image(path) as im:
        fmt = im.info.get("raw_format") or im.format or "unknown"
        w, h = im.info.get("raw_size") or im.size  # before the draft; a RAW file's sensor, not its preview
        try:
            if im.format in _DRAFTED:  # a RAW file's JPEG preview too
                side = math.ceil(HEIF_DRAFT_SHARE * size) if im.format == "HEIF" else size
                im.draft("RGB", (side, side))
            need = _check_cost(im, size)
            with reserve(need) if reserve else nullcontext():
                im.seek(0)
                opaque_webp = _load_opaque_webp(im)
                if opaque_webp is None:
                    _load(im)
                # after load: PNG's getexif loads pixels
                orientation, taken, capture = _orientation_and_date(im)
                small = _shrink(opaque_webp or im, size)
                rgb = to_rgb(small)
                del opaque_webp
                if rgb is not im:
                    im.close()  # the loaded pixels are the biggest buffer: free them before the next steps
                del small
                if orientation in _TRANSPOSE:
                    rgb = rgb.transpose(_TRANSPOSE[orientation])
                kept = _preview(rgb, preview, max(w, h)) if preview and w * h >= PREVIEW_FROM_PIXELS else None
                # before trimming: bars are found with fixed grey-level tolerances, and a contrast-flattening
                # filter (duotone) made them cut a fifth of some copies that their originals kept
                shape = layout_hash(rgb)
                pixels = resize_for_model(rgb, size)
                del rgb
        except _BAD_DATA as e:
            raise _bad_data(e) from e
        if orientation in (5, 6, 7, 8):
            w, h = h, w
        return Decoded(pixels, w, h, fmt, taken, capture, shape, kept)


# A preview is kept when the picture decoded for the model has at least this share of the preview's side (or
# of the image's own, when smaller): a 3:2 JPEG of 3,000 px decodes at 1/8 to 375 px for the model, which
# serves a 384 px preview; so does a phone HEIC's 320 px thumbnail, which the pair check would read anyway
# (``core.verify.HEIF_SHARE``).
PREVIEW_SHARE = 0.8
# Only for pictures of at least this many pixels: keeping one costs ~1-1.5 ms an image, reading the file again
# for the check saves 3 ms at 0.3 MP, 10 ms at 3 MP and 25 ms at 12 MP (JPEG, 2-core EPYC), and only the
# images of candidate pairs are read again (a tenth to a third of a library).
PREVIEW_FROM_PIXELS = 2_000_000
PREVIEW_QUALITY = 92
PREVIEW_SUBSAMPLING = 2  # Pillow's code: 2 is 4:2:0, 0 is 4:4:4


def _preview(rgb: Image.Image, side: int, native: int) -> bytes | None:
    """``rgb`` at most ``side`` px on its long side, as JPEG bytes; None when it was decoded too small."""
    long = max(rgb.size)
    if long < PREVIEW_SHARE * min(side, native) or min(rgb.size) < 1:
        return None
    if long > side:
        # In two steps: a box filter by a whole factor (Pillow's reduce), then bilinear by less than 2x
        # (OpenCV, which at such a scale averages about the 2x2 pixels a box would). Pillow's filtered resize
        # alone took 2.1 ms from 750 px and 5.2 ms from 1920 px (Pillow 13, 2-core EPYC), paid by every
        # picture of a first scan; this takes ~0.4 and ~2 ms.
        import cv2

        k = long // side
        a = np.asarray(rgb.reduce(k) if k >= 2 else rgb)
        s = side / max(a.shape[:2])
        if s < 1:
            size = (max(1, round(a.shape[1] * s)), max(1, round(a.shape[0] * s)))
            a = cv2.resize(a, size, interpolation=cv2.INTER_LINEAR)
        rgb = Image.fromarray(a)
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", quality=PREVIEW_QUALITY, subsampling=PREVIEW_SUBSAMPLING)
    return buf.getvalue()


def _load_opaque_webp(im: Image.Image) -> Image.Image | None:
    """A still WebP without alpha, decoded by OpenCV straight into one RGB buffer; None for any other image.

    Pillow's WebP decoder goes through libwebp's animation API and holds ~16 bytes per pixel: a 6 MP photo
    peaked at +110 MB and took 194 ms, against +2 MB and 75 ms this way (2-core EPYC, under load).
    """
    if im.format != "WEBP" or im.mode != "RGB" or getattr(im, "n_frames", 1) != 1 or im.fp is None:
        return None
    import cv2

    im.fp.seek(0)
    data = np.frombuffer(im.fp.read(), np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    del data
    if bgr is None or bgr.shape[:2] != (im.height, im.width):
        return None  # Pillow's decoder will say what is wrong with it
    return Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr))


# What decoding a file's data raises when the data is bad (truncated, corrupt, too large once decoded)
_BAD_DATA = (
    Image.DecompressionBombError,
    MemoryError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    struct.error,
)


def _load(im: Image.Image) -> None:
    """``im.load()``; a decoder plugin's RuntimeError (AVIF, HEIF: "Failed to decode frame 0: ...") is damaged
    data like any other, not a bug."""
    try:
        im.load()
    except RuntimeError as e:
        raise DecodeError(f"corrupt image data ({e})") from e


def _bad_data(e: BaseException) -> DecodeError:
    """The one-line reason for an error of ``_BAD_DATA``."""
    if isinstance(e, (Image.DecompressionBombError, MemoryError)):
        return DecodeError(f"image too large to decode safely ({e})")
    msg = str(e)
    if "truncated" in msg or "end of file" in msg.lower() or isinstance(e, EOFError):
        return DecodeError("file is truncated (incomplete download or copy?)")
    return DecodeError(f"corrupt image data ({msg or type(e).__name__})")


def read_full(path: str, max_side: int | None = None, heif_share: float = 1.0) -> Image.Image:
    """Upright RGB image for viewing (optionally reduced so its longest side is about ``max_side``).

    Reduced images (thumbnails, training) are held to ``MAX_DECODE_BYTES`` like the model's input; the full
    image for the viewer, one at a time at a person's request, only to the bomb limit. A HEIF is read from
    its embedded thumbnail when that has at least ``heif_share`` x ``max_side`` px on its long side (a phone's
    is 320 px: ~5 ms instead of ~1 s for the 12 MP picture).
    """
    with open_image(path) as im:
        if max_side and im.format == "HEIF":
            k = heif_share * max_side / max(im.size)
            im.draft("RGB", (math.ceil(im.width * k), math.ceil(im.height * k)))
        elif max_side and im.format in _DRAFTED:
            im.draft("RGB", (max_side, max_side))
        if max_side:
            _check_cost(im, max_side, keep_aspect=True)
        try:
            im.seek(0)
            _load(im)
        except _BAD_DATA as e:
            raise _bad_data(e) from e
        try:
            orientation = im.info.get("raw_orientation") or im.getexif().get(0x0112, 1)
        except Exception:  # noqa: BLE001
            orientation = 1
        rgb = to_rgb(_shrink(im, max_side, keep_aspect=True) if max_side else im)
        if max_side:
            rgb.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
        if orientation in _TRANSPOSE:
            rgb = rgb.transpose(_TRANSPOSE[orientation])
        return rgb
