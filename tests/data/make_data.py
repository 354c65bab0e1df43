#!/usr/bin/env python3
"""Generate the odd image files in ``tests/data/`` and runtime-only fixtures.

Run ``python tests/data/make_data.py`` to (re)write the committed files.  They
are derived from ``resources/demo/Camera/red_marigold.jpg`` (Charles Barbin, mate-backgrounds, GPL-2+; see
``resources/demo/LICENSES.md``) resized to 320 px wide.  Only Pillow, numpy
and pillow-heif are needed.

Things that cannot be committed portably to git are made at test time by the
helper functions below (import this file as a module):

* :func:`make_odd_names`   -- a non-UTF-8 file name (``b"caf\\xe9.jpg"``) and a
  non-ASCII UTF-8 one
* :func:`make_symlink_loop` -- a directory symlink cycle and a file symlink loop
* :func:`make_unreadable`  -- a file with mode 000 (root can still read it!)
* :func:`make_fifo`        -- a named pipe with a ``.jpg`` name (must not block)

``EXPECTED`` maps each committed file to what the engine must do with it.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BASE_SOURCE = REPO / "resources" / "demo" / "Camera" / "red_marigold.jpg"
BASE_WIDTH = 320
DATE_TAKEN = "2021:07:04 10:30:00"

# file name -> ("ok", note) when it must decode to the base photo (or a
# near-duplicate of it), or ("error", reason) when the engine must skip it and
# report a problem instead of crashing.
EXPECTED: dict[str, tuple[str, str]] = {
    "ok.jpg": ("ok", "plain baseline JPEG, 320x200 RGB (the reference)"),
    "truncated.jpg": ("error", "truncated: only the first 40% of ok.jpg's bytes"),
    "zero.jpg": ("error", "empty file (0 bytes)"),
    "cmyk.jpg": ("ok", "CMYK JPEG; convert to RGB"),
    "gray16.png": ("ok", "16-bit greyscale PNG (mode I;16); scale to 8-bit"),
    "palette_alpha.png": ("ok", "palette (P) PNG with a transparent index (tRNS)"),
    "la.png": ("ok", "greyscale + alpha (LA) PNG"),
    "rgba.png": ("ok", "RGBA PNG with an alpha gradient"),
    "animated.gif": ("ok", "3-frame animated GIF; use the first frame"),
    "exif_rotated.jpg": (
        "ok",
        "pixels stored rotated, EXIF Orientation=6; upright after "
        "exif_transpose equals ok.jpg; DateTimeOriginal " + DATE_TAKEN,
    ),
    "photo.heic": ("ok", "HEIF/HEVC, needs pillow-heif"),
    "photo.avif": ("ok", "AVIF (may be absent if no encoder was available)"),
    "photo.webp": ("ok", "lossy WebP"),
    "photo.bmp": ("ok", "8-bit palette BMP"),
    "photo.tiff": ("ok", "JPEG-compressed (YCbCr) TIFF"),
    "not_an_image.jpg": ("error", "text file with a .jpg extension: not an image"),
    "png_named.dat": ("ok", "valid PNG with a wrong extension: sniff content, not name"),
    "bomb.png": ("error", "decompression bomb: IHDR claims 60000x60000 pixels"),
    "garbage.png": ("error", "PNG signature followed by random bytes: corrupt"),
}


# ---------------------------------------------------------------------------
# committed files
# ---------------------------------------------------------------------------


def base_image():
    """The natural-looking 320 px base photo (RGB)."""
    from PIL import Image

    im = Image.open(BASE_SOURCE).convert("RGB")
    h = round(im.height * BASE_WIDTH / im.width)
    return im.resize((BASE_WIDTH, h), Image.Resampling.LANCZOS)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def bomb_png_bytes(width: int = 60000, height: int = 60000) -> bytes:
    """A tiny, structurally valid PNG whose header claims a huge image."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    # One (short) scanline's worth of zeros: the image data is far too short
    # for the header, so a decoder that ignores the size check fails later.
    idat = zlib.compress(b"\x00" * 1024, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def generate(out: Path = HERE) -> list[Path]:
    import numpy as np
    from PIL import Image, ImageDraw

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def put(name: str, data: bytes) -> None:
        p = out / name
        p.write_bytes(data)
        written.append(p)

    def encode(im, fmt: str, **kw) -> bytes:
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        return buf.getvalue()

    base = base_image()
    w, h = base.size

    ok = encode(base, "JPEG", quality=85)
    put("ok.jpg", ok)
    put("truncated.jpg", ok[: int(len(ok) * 0.4)])
    put("zero.jpg", b"")
    put("cmyk.jpg", encode(base.convert("CMYK"), "JPEG", quality=85))

    gray = np.asarray(base.convert("L"), dtype=np.uint16) * 257
    put("gray16.png", encode(Image.fromarray(gray.astype("<u2")), "PNG"))

    # Palette image, index 255 reserved as fully transparent (a corner disc).
    pal = base.quantize(colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette = pal.getpalette()[: 255 * 3] + [0, 0, 0]
    pal.putpalette(palette)
    ImageDraw.Draw(pal).ellipse((w - 90, -40, w + 40, 70), fill=255)
    put("palette_alpha.png", encode(pal, "PNG", transparency=255, optimize=True))

    alpha = Image.linear_gradient("L").rotate(90).resize((w, h))  # opaque left, clear right
    la = base.convert("L")
    la.putalpha(alpha)
    put("la.png", encode(la, "PNG", optimize=True))
    rgba = base.copy()
    rgba.putalpha(alpha)
    put("rgba.png", encode(rgba, "PNG", optimize=True))

    frames = [
        base,
        base.point(lambda v: min(255, int(v * 1.2))),
        base.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    ]
    frames = [f.quantize(colors=128, dither=Image.Dither.NONE) for f in frames]
    put(
        "animated.gif",
        encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=300, loop=0),
    )

    # Orientation 6 = "rotate 90 CW to display"; exif_transpose applies ROTATE_270,
    # so store the pixels rotated 90 CCW (ROTATE_90).
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    exif.get_ifd(0x8769)[0x9003] = DATE_TAKEN  # ExifIFD DateTimeOriginal
    rotated = base.transpose(Image.Transpose.ROTATE_90)
    put("exif_rotated.jpg", encode(rotated, "JPEG", quality=85, exif=exif.tobytes()))

    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        put("photo.heic", encode(base, "HEIF", quality=70))
    except Exception as exc:  # pragma: no cover - depends on local codecs
        print(f"skipping photo.heic: {exc}", file=sys.stderr)
    try:
        put("photo.avif", encode(base, "AVIF", quality=70))
    except Exception as exc:  # pragma: no cover - depends on local codecs
        print(f"skipping photo.avif: {exc}", file=sys.stderr)

    put("photo.webp", encode(base, "WEBP", quality=80, method=6))
    put("photo.bmp", encode(base.quantize(colors=256, dither=Image.Dither.FLOYDSTEINBERG), "BMP"))
    put("photo.tiff", encode(base, "TIFF", compression="jpeg", quality=85))

    put(
        "not_an_image.jpg",
        b"This is a plain text file, not a JPEG.\nThe engine must report it instead of crashing.\n",
    )
    put("png_named.dat", encode(base, "PNG", optimize=True))
    put("bomb.png", bomb_png_bytes())
    rng = np.random.default_rng(1234)
    put("garbage.png", b"\x89PNG\r\n\x1a\n" + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return written


# ---------------------------------------------------------------------------
# runtime-only fixtures (call from tests with a tmp_path)
# ---------------------------------------------------------------------------


def make_odd_names(directory: os.PathLike | str) -> list[Path]:
    """Create copies of ok.jpg under awkward names; return the paths made.

    * ``b"caf\\xe9.jpg"`` -- Latin-1 bytes, invalid UTF-8.  Made with a bytes
      path on POSIX; the returned ``Path`` holds it as a surrogate escape
      (``os.fsdecode``).  Skipped (not returned) where the file system refuses
      such names (macOS APFS, Windows).
    * ``"café 写真 #1.jpg"`` -- valid UTF-8 with spaces and non-ASCII chars.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = (HERE / "ok.jpg").read_bytes()
    made: list[Path] = []
    if os.name == "posix":
        raw = os.path.join(os.fsencode(directory), b"caf\xe9.jpg")
        try:
            with open(raw, "wb") as fh:
                fh.write(data)
            made.append(Path(os.fsdecode(raw)))
        except (OSError, UnicodeError):
            pass
    try:
        p = directory / "café 写真 #1.jpg"
        p.write_bytes(data)
        made.append(p)
    except (OSError, UnicodeError):
        pass
    return made


def make_symlink_loop(directory: os.PathLike | str) -> list[Path]:
    """Create symlink cycles; return the links made ([] if symlinks unsupported).

    * ``loop_dir/back -> ..`` : a directory cycle (walking with
      ``follow_symlinks=True`` would recurse forever);
    * ``self_a.jpg -> self_b.jpg -> self_a.jpg`` : a file loop (``ELOOP`` on open);
    * ``dangling.jpg -> does_not_exist.jpg`` : a broken link.
    """
    directory = Path(directory)
    (directory / "loop_dir").mkdir(parents=True, exist_ok=True)
    links = [
        (directory / "loop_dir" / "back", Path(".."), True),
        (directory / "self_a.jpg", Path("self_b.jpg"), False),
        (directory / "self_b.jpg", Path("self_a.jpg"), False),
        (directory / "dangling.jpg", Path("does_not_exist.jpg"), False),
    ]
    made: list[Path] = []
    for link, target, is_dir in links:
        try:
            link.symlink_to(target, target_is_directory=is_dir)
            made.append(link)
        except (OSError, NotImplementedError):
            return made
    return made


def make_unreadable(directory: os.PathLike | str) -> Path:
    """Create ``unreadable.jpg`` (a copy of ok.jpg) with permissions 000.

    Root (and Windows) ignore these permission bits, so the file stays
    readable there: tests must ``pytest.skip`` when
    ``os.access(path, os.R_OK)`` is still true.  Restore with
    ``path.chmod(0o644)`` before the tmp dir is cleaned up, if needed.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    p = directory / "unreadable.jpg"
    p.write_bytes((HERE / "ok.jpg").read_bytes())
    p.chmod(0)
    return p


def make_fifo(directory: os.PathLike | str) -> Path | None:
    """Create a named pipe ``pipe.jpg``; opening it for reading would block
    forever, so the scanner must skip non-regular files.  None where
    ``os.mkfifo`` is unavailable (Windows)."""
    if not hasattr(os, "mkfifo"):
        return None
    p = Path(directory) / "pipe.jpg"
    os.mkfifo(p)
    assert stat.S_ISFIFO(p.lstat().st_mode)
    return p


def main() -> None:
    files = generate()
    total = 0
    for p in files:
        size = p.stat().st_size
        total += size
        print(f"{size:8d}  {p.name}")
    print(f"{total:8d}  total ({len(files)} files)")


if __name__ == "__main__":
    main()
