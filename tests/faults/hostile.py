"""Hostile image files, generated at test time (importable as ``hostile``; also a script for measurements).

Each maker writes one file (or FIFO, folder, link) and returns its path. Flat giants are deflated one block
at a time and the block repeated, so a 15000x15000 16-bit PNG (450 MB of pixels) is ~0.5 MB written in
milliseconds. ``corpus(folder)`` writes the whole set and says what each entry is.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# PNG colour types -> channels
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _adler32_combine(adler1: int, adler2: int, len2: int) -> int:
    """Adler-32 of A + B from those of A and B (zlib's adler32_combine)."""
    base = 65521
    rem = len2 % base
    sum1 = adler1 & 0xFFFF
    sum2 = (rem * sum1) % base
    sum1 += (adler2 & 0xFFFF) + base - 1
    sum2 += (adler1 >> 16) + (adler2 >> 16) + base - rem
    sum1 = sum1 - base if sum1 >= base else sum1
    sum1 = sum1 - base if sum1 >= base else sum1
    sum2 = sum2 - 2 * base if sum2 >= 2 * base else sum2
    sum2 = sum2 - base if sum2 >= base else sum2
    return sum1 | (sum2 << 16)


def _deflate_repeated(row: bytes, count: int, *, finish: bool = True) -> bytes:
    """A zlib stream of ``row`` repeated ``count`` times, without compressing all of it: a ~4 MB block is
    compressed once after a full flush (no back-references across it), and its bytes are repeated."""
    per_block = max(1, (1 << 22) // len(row))
    n, rest = divmod(count, per_block)
    block, tail = row * per_block, row * rest
    z = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate; the zlib header and checksum are added here
    body = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH) if n else b""
    end = zlib.compressobj(9, zlib.DEFLATED, -15)
    last = end.compress(tail) + end.flush(zlib.Z_FINISH if finish else zlib.Z_SYNC_FLUSH)
    adler, block_adler = 1, zlib.adler32(block)
    for _ in range(n):
        adler = _adler32_combine(adler, block_adler, len(block))
    adler = zlib.adler32(tail, adler)
    return b"\x78\xda" + body * n + last + (struct.pack(">I", adler) if finish else b"")


def write_png(
    path: os.PathLike | str,
    width: int,
    height: int,
    *,
    bits: int = 8,
    color: int = 2,
    fill: int = 0,
    rows: int | None = None,
) -> Path:
    """A valid PNG of ``width``x``height`` with every sample ``fill`` (a flat image compresses to almost
    nothing).

    ``color``: PNG colour type (0 grey, 2 RGB, 4 grey+alpha, 6 RGBA); ``bits``: 8 or 16. ``rows``: write only
    that many rows of image data (a truncated file whose header still claims ``height``).
    """
    path = Path(path)
    row_bytes = width * _CHANNELS[color] * bits // 8
    sample = fill.to_bytes(bits // 8, "big")
    row = b"\x00" + sample * (row_bytes // len(sample))  # filter type 0, then the samples
    ihdr = struct.pack(">IIBBBBB", width, height, bits, color, 0, 0, 0)
    idat = _deflate_repeated(row, height if rows is None else rows, finish=rows is None)
    parts = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", ihdr), _chunk(b"IDAT", idat)]
    if rows is None:
        parts.append(_chunk(b"IEND", b""))
    path.write_bytes(b"".join(parts))
    return path


def bomb_png(path: os.PathLike | str, width: int = 100_000, height: int = 100_000) -> Path:
    """A tiny PNG whose header claims a huge image (10 GP): must be refused from the header, never decoded."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 1024, 9))
    Path(path).write_bytes(body + _chunk(b"IEND", b""))
    return Path(path)


def giant16_png(path: os.PathLike | str, side: int = 15000) -> Path:
    """16-bit grey ``side``x``side`` PNG, zeros: ~450 MB decoded from a ~440 KB file (the issue's example)."""
    return write_png(path, side, side, bits=16, color=0)


def photo(size: tuple[int, int] = (320, 240), seed: int = 0) -> Image.Image:
    """A small picture with structure (not flat), different for each seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    fx, fy, phase = rng.uniform(0.01, 0.06, 3)
    base = np.stack([np.sin(x * fx + phase), np.cos(y * fy), np.sin((x + y) * fx * 0.5)], axis=2)
    noise = rng.normal(0, 0.08, (h, w, 3))
    return Image.fromarray(((base + noise) * 100 + 128).clip(0, 255).astype(np.uint8), "RGB")


def jpeg_bytes(im: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def flat_float_tiff(path: os.PathLike | str, value: float) -> Path:
    """A 64x64 32-bit float TIFF with every pixel ``value`` (NaN included)."""
    Image.fromarray(np.full((64, 64), value, np.float32), "F").save(path, "TIFF")
    return Path(path)


def corpus(
    folder: os.PathLike | str, *, giants: bool = True, fifo: bool = True, unreadable: bool = True
) -> dict[str, dict[Path, str]]:
    """Write the hostile set into ``folder``; returns ``{kind: {path: what it is}}``. Kinds:

    "problem": must become a ``Problem`` with a one-line reason. "heavy": giants that must decode within the
    memory budget or be refused with a reason. "flat": must not crash (no assertion on how they group).
    "good": ordinary photos that must still be scanned. "skip": a folder, links and a FIFO that the walk does
    not list as files; they must neither crash nor appear as scanned images.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[Path, str]] = {"problem": {}, "heavy": {}, "flat": {}, "good": {}, "skip": {}}
    p = out["problem"]
    p[bomb_png(folder / "bomb.png")] = "decompression bomb: 100000x100000 in a tiny header"
    p[bomb_png(folder / "wide_bomb.png", 1_000_000, 300)] = "bomb: 300 MP in one long strip"
    if giants:
        h = out["heavy"]
        h[giant16_png(folder / "giant16.png")] = "16-bit 15000x15000 grey: 450 MB decoded from 440 KB"
        h[write_png(folder / "giant_rgba16.png", 9000, 9000, bits=16, color=6)] = "16-bit RGBA, 81 MP"
    (folder / "zero.jpg").write_bytes(b"")
    p[folder / "zero.jpg"] = "zero bytes"
    good_jpeg = jpeg_bytes(photo(seed=1))
    (folder / "truncated.jpg").write_bytes(good_jpeg[: len(good_jpeg) * 2 // 5])
    p[folder / "truncated.jpg"] = "JPEG cut at 40 %"
    p[write_png(folder / "truncated.png", 400, 300, rows=100)] = (
        "PNG whose image data stops at row 100 of 300"
    )
    (folder / "header_only.png").write_bytes(png_bytes(photo(seed=2))[:40])
    p[folder / "header_only.png"] = "PNG cut inside its first chunk"
    rng = np.random.default_rng(7)
    for name in ("garbage.jpg", "garbage.png", "garbage.heic", "garbage.tiff", "garbage.webp"):
        (folder / name).write_bytes(rng.bytes(5000))
        p[folder / name] = "random bytes with an image extension"
    (folder / "text.jpg").write_text("this is not a picture\n")
    p[folder / "text.jpg"] = "text with a .jpg extension"
    (folder / "jpeg_magic.jpg").write_bytes(b"\xff\xd8\xff\xe0" + rng.bytes(3000))
    p[folder / "jpeg_magic.jpg"] = "a JPEG signature followed by garbage"
    if unreadable:
        (folder / "unreadable.jpg").write_bytes(good_jpeg)
        os.chmod(folder / "unreadable.jpg", 0)
        p[folder / "unreadable.jpg"] = "mode 000"
    (folder / "folder.jpg").mkdir()
    out["skip"][folder / "folder.jpg"] = "a directory named like an image"
    os.symlink("loop_b.jpg", folder / "loop_a.jpg")
    os.symlink("loop_a.jpg", folder / "loop_b.jpg")
    out["skip"][folder / "loop_a.jpg"] = "symlink loop (a problem when links are followed)"
    out["skip"][folder / "loop_b.jpg"] = "symlink loop (a problem when links are followed)"
    if fifo:
        os.mkfifo(folder / "pipe.jpg")
        out["skip"][folder / "pipe.jpg"] = "a FIFO named like an image (the walk lists regular files only)"
    f = out["flat"]
    for name, colour in (("white.png", 255), ("black.jpg", 0)):
        Image.new("RGB", (200, 150), (colour,) * 3).save(folder / name)
        f[folder / name] = f"flat {name.split('.')[0]}"
    f[flat_float_tiff(folder / "nan.tiff", float("nan"))] = "float TIFF, every pixel NaN"
    f[flat_float_tiff(folder / "zeros_float.tiff", 0.0)] = "float TIFF, every pixel 0"
    f[write_png(folder / "white16.png", 300, 200, bits=16, color=0, fill=65535)] = "16-bit grey, all white"
    g = out["good"]
    for k in range(3):
        (folder / f"good{k}.jpg").write_bytes(jpeg_bytes(photo(seed=10 + k)))
        g[folder / f"good{k}.jpg"] = "ordinary JPEG"
    (folder / "good.png").write_bytes(png_bytes(photo(seed=20)))
    g[folder / "good.png"] = "ordinary PNG"
    return out


if (
    __name__ == "__main__"
):  # python tests/faults/hostile.py OUT.png [SIDE]: write a 16-bit giant for measuring
    giant16_png(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 15000)
