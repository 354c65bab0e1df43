"""Camera RAW files (DNG, CR2/CR3, NEF, ARW, ORF, RW2, RAF...) through LibRaw (``rawpy``).

Every RAW file carries the camera's own rendering of the picture as a preview, usually a JPEG of 1-2 MP or
more: that is what the model and the viewer see, as fast as a JPEG. Only a file without a usable preview is
developed from its sensor data, at half size. The result is a Pillow image like any other format's, so the
rest of ``core.decode`` (drafting, EXIF, orientation, memory budget) applies unchanged.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from core.errors import DecodeError

# The format shown for each extension (what photographers call them).
RAW_FORMATS = {
    ".dng": "DNG",
    ".cr2": "CR2",
    ".cr3": "CR3",
    ".crw": "CRW",
    ".nef": "NEF",
    ".nrw": "NRW",
    ".arw": "ARW",
    ".srf": "SRF",
    ".sr2": "SR2",
    ".orf": "ORF",
    ".rw2": "RW2",
    ".raf": "RAF",
    ".pef": "PEF",
    ".srw": "SRW",
    ".rwl": "RWL",
    ".3fr": "3FR",
    ".iiq": "IIQ",
    ".x3f": "X3F",
}
RAW_EXTENSIONS = frozenset(RAW_FORMATS)
# LibRaw's ``flip`` as an EXIF orientation (0: as stored, 3: 180°, 5: 90° counter-clockwise, 6: clockwise).
_FLIP_TO_EXIF = {0: 1, 3: 3, 5: 8, 6: 6}
# A preview smaller than this on its long side is not enough for the model and the viewer: develop instead.
MIN_PREVIEW_SIDE = 512


def is_raw(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in RAW_EXTENSIONS


def raw_format(path: str) -> str:
    return RAW_FORMATS.get(os.path.splitext(path)[1].lower(), "RAW")


def open_raw(path: str) -> Image.Image:
    """The picture of a RAW file as a Pillow image, not yet loaded where it is a JPEG preview.

    In ``im.info``: ``raw_format`` names the RAW format; ``raw_size`` is the sensor's (width, height);
    ``raw_orientation`` is the camera's orientation as an EXIF value, which wins over the preview's own EXIF
    (many cameras leave it out of the preview, or at 1).
    Raises ``DecodeError`` with a reason.
    """
    try:
        import rawpy
    except ImportError as e:  # pragma: no cover - rawpy is a declared dependency
        raise DecodeError("RAW files need rawpy (LibRaw), which is not installed") from e
    try:
        with rawpy.imread(path) as raw:
            orientation = _FLIP_TO_EXIF.get(raw.sizes.flip, 1)
            size = (raw.sizes.width, raw.sizes.height)  # as stored, before the orientation
            im = _preview(raw, rawpy)
            if im is None:
                # user_flip=0: as stored, turned upright later like every other format
                rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8, user_flip=0)
                im = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    except rawpy.LibRawFileUnsupportedError as e:
        raise DecodeError("not a RAW file LibRaw can read (unsupported camera or corrupt)") from e
    except (rawpy.LibRawIOError, rawpy.LibRawDataError, rawpy.LibRawTooBigError) as e:
        raise DecodeError(f"corrupt or truncated RAW file ({e})") from e
    except rawpy.LibRawError as e:
        raise DecodeError(f"cannot read this RAW file ({type(e).__name__}: {e})") from e
    except MemoryError as e:
        raise DecodeError("not enough memory to develop this RAW file") from e
    im.info["raw_format"] = raw_format(path)
    im.info["raw_orientation"] = orientation
    im.info["raw_size"] = size
    return im


def _preview(raw, rawpy) -> Image.Image | None:
    """The embedded preview when it is large enough, else None."""
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    except rawpy.LibRawError:
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            im = Image.open(io.BytesIO(bytes(thumb.data)))
        except (OSError, SyntaxError, ValueError):
            return None
    elif thumb.format == rawpy.ThumbFormat.BITMAP:
        data = np.ascontiguousarray(thumb.data)
        if data.ndim != 3 or data.shape[2] != 3 or data.dtype != np.uint8:
            return None
        im = Image.fromarray(data, "RGB")
    else:
        return None
    return im if max(im.size) >= MIN_PREVIEW_SIDE else None
