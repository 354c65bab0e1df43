"""Is a candidate pair the same capture (possibly edited), or another shot of the same subject?

The embedding calls bursts, exposure brackets and moved-camera shots of one subject duplicates as readily as
edited copies. This module checks a candidate pair geometrically and photometrically.

Interface (all Qt- and torch-free; per-pair trouble gives ``Verdict(same=False, reason=...)``, never a crash):

- ``extract(image) -> ImageFeatures``: once per image. ``image`` is a path (decoded reduced, JPEG draft to
  ~``DETECT_SIDE`` px), a PIL image or an RGB/grey uint8 array (any size; pass the scan's reduced decode to
  avoid a second one). ORB keypoints spread over a grid on a grey ``DETECT_SIDE`` px version, descriptors for
  it and its mirror image, and a ``THUMB_SIDE`` px colour thumbnail. Raises ``core.decode.DecodeError`` for an
  unreadable path, ``ValueError`` for a bad array.
- ``ImageFeatures.to_bytes()`` / ``ImageFeatures.from_bytes(data)``: ~47-58 KB cache entry (keypoints,
  descriptors, JPEG thumbnail); ``from_bytes`` raises ``ValueError`` on damaged bytes or another ``VERSION``.
  Key a cache on the file's identity and ``VERSION``.
- ``verify(a, b) -> Verdict``: is ``b`` a copy of the same capture as ``a``? ``Verdict.same``, ``reason`` (for
  the UI), ``inliers``, ``score`` (share of fine detail explained by a global colour mix), ``transform`` (2x3,
  b's normalised coordinates -> a's; (0, 0) and (1, 1) are the outer corners of the picture), ``mirrored``,
  and ``measures`` (every number the rule looked at).
- ``decide(measures, rule=None) -> (same, reason)``: the rule alone, for evaluation sweeps; ``RULE`` holds the
  tuned thresholds.
- ``aligned_difference(img_a, img_b, verdict) -> uint8 (h, w)``: where b differs from a once aligned, in a's
  pixels, for the GUI to show what changed between two copies.

How: ratio-test matches, RANSAC affine fit (the mirror tried when the direct fit fails), then the sharper
thumbnail is warped down onto the other and compared over the overlap: per band (fine and coarse) one image's
band-pass colours must be a global 3x3 linear mix of the other's (true of any colour filter, grey, tint,
brightness or contrast change) in nearly every cell where both have comparable detail; detail and contrast may
not have moved both ways, stronger here in some cells and there in others (an exposure bracket; an edit adds
grain or clips, one way only); and no local motion may remain after the global alignment (optical flow that
explains the difference: a burst, parallax).
Copies must also cover all of one image (a panorama's frames overlap only in part).
"""

from __future__ import annotations

import functools
import logging
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image

from core.errors import DecodeError

log = logging.getLogger(__name__)


class _OpenCV:
    """OpenCV, imported when first used: the import is 0.28 s, and a rescan whose verdicts are all known
    (a tenth of a 20,000-photo rescan) or a scan without the check never uses it."""

    def __getattr__(self, name: str):
        import cv2 as real

        globals()["cv2"] = real  # later calls go straight to the module
        return getattr(real, name)


cv2 = _OpenCV()

VERSION = 9  # part of a cache key: bump when extraction, its byte format or what a verdict means changes
# part of the verdicts' cache key with VERSION: bump when only the rule or the doubt changes (the features
# extracted stay valid)
RULE_VERSION = 2

DETECT_SIDE = 384  # long side of the image ORB sees (extract() measured 7.7 ms mean, 1 thread: report's Cost)
# A phone HEIC is read from its 320 px thumbnail (0.83 of DETECT_SIDE, enlarged to it) rather than decoded
# whole: ~5 ms instead of ~1 s (12 MP, 2-core EPYC), which was half of a first scan's pair check on the peer
# benchmark's library; its copies are all still verified there (100 of 100).
HEIF_SHARE = 0.8
THUMB_SIDE = 192  # long side of the colour thumbnail the photometric check compares
N_FEATURES = 500
_N_CANDIDATES = 1500  # ORB corners detected, of which N_FEATURES spread over the picture are kept
RATIO = 0.8  # Lowe's ratio test
RANSAC_PX = 4.0  # reprojection threshold in DETECT_SIDE pixels

# Decision thresholds, tuned by `python -m training.verify_eval --tune` on the tuning split (150 photos x 28
# edit kinds, 235 other-shot pairs, 386 similar-scene negatives): the grid rule that verifies the fewest other
# shots while every edit kind keeps 98 % (or its best reachable rate). See training/reports/verification.md.
RULE = {
    "inliers": 8,
    "cover": 0.8,
    "mutual_loss": 0.0,
    "r2_1": 0.0,
    "r2_2": 0.8,
    "bad_1": 0.4,
    "bad_2": 1.0,
    "moved": 0.1,
    "uneven": 0.05,
    # compared frame to frame (no keypoints): the flow's global part may move the frame this far at most,
    # in thumbnail pixels (what keypoint inliers vouch for otherwise). Not tuned: copies resized or re-saved
    # move by ~0.1, a frame off by one pixel is not the same alignment.
    "frame_shift": 0.5,
}
SMALL_FROM = 2.0  # a thumbnail-sized picture is compared enlarged at most this much (``_frame_verdict``)
MIN_INLIERS = 12  # stops the mirror search early when 3x this many align directly ...
CLEAN_RESIDUAL = 1.0  # ... with a median residual under this (detection pixels; true copies: 0.1-0.6)
MAX_STRETCH = 2.4  # anisotropy of the fitted affine (stretch edits reach 1.8)

_CELL = 16  # photometric cell size in thumbnail pixels
_PHOTOMETRIC_FROM = 6  # fewer inliers than this: no alignment worth checking
_SIGMAS = (0.7, 2.0, 5.0)  # band edges: fine band 0.7-2 px, coarse band 2-5 px (thumbnail pixels)
_MAX_UPSCALE = 1.25  # a thumbnail enlarged more than this from its source has no fine band to compare
_TEXTURE = 1.0  # rms band-pass level (grey levels) below which a cell counts as flat


@dataclass(frozen=True)
class ImageFeatures:
    """What ``verify`` needs of one image: keypoints (detection-image pixels), descriptors, a colour
    thumbnail."""

    size: tuple[int, int]  # (width, height) of the detection image
    points: np.ndarray  # float32 (N, 2)
    descriptors: np.ndarray  # uint8 (N, 32)
    mirror_points: np.ndarray  # of the mirrored image, mapped back to unmirrored coordinates
    mirror_descriptors: np.ndarray
    thumb: np.ndarray  # uint8 (h, w, 3) RGB, long side THUMB_SIDE (already through the cache's JPEG coding)
    native: int = 0  # long side of the picture extract() was given, in pixels (0: unknown)
    thumb_jpeg: bytes = field(default=b"", repr=False, compare=False)  # that coding, kept for to_bytes
    # Where the picture lies in the image, normalised (left, top, right, bottom): when bars or an app's
    # canvas take over half of it (``_PICTURE_SHARE``), they are trimmed first, as for the model (a
    # screenshot's photo got too few keypoints among the app's pixels).
    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    # False: extracted without keypoints (``extract(..., keypoints=False)``), enough for a pair compared
    # frame to frame; ``verify`` raises ``NeedKeypoints`` for a pair that needs them
    keypoints: bool = True
    # without keypoints: the grey detection image, in memory only, so that ``with_keypoints`` need not read
    # the picture again (dropped once the pair check is done with it)
    gray: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_bytes(self) -> bytes:
        """Compact, versioned bytes for a cache: a header, keypoints and descriptors with their CRC-32, then
        the JPEG thumbnail (~47-58 KB in all for 500 + 500 keypoints). Not compressed: zlib took ~0.9 ms an
        image for 18 % fewer bytes (the descriptors hardly compress), a tenth of extracting them."""
        head = struct.pack(
            _HEAD,
            VERSION,
            self.size[0],
            self.size[1],
            len(self.points),
            len(self.mirror_points),
            self.native,
            int(self.keypoints),
            *self.box,
        )
        arrays = b"".join(
            np.ascontiguousarray(a).tobytes()
            for a in (
                self.points.astype(np.float16),
                self.descriptors,
                self.mirror_points.astype(np.float16),
                self.mirror_descriptors,
            )
        )
        body = head + arrays
        body += struct.pack("<I", zlib.crc32(body))
        return struct.pack("<I", len(body)) + body + (self.thumb_jpeg or _encode_thumb(self.thumb))

    @classmethod
    def from_bytes(cls, data: bytes) -> ImageFeatures:
        """Inverse of ``to_bytes``; raises ``ValueError`` on another version or damaged bytes."""
        head = struct.calcsize(_HEAD)
        try:
            (n_body,) = struct.unpack_from("<I", data)
            raw = memoryview(data)[4 : 4 + n_body]
            if n_body < head + 4 or len(raw) != n_body:
                raise ValueError("damaged verification features")
            (crc,) = struct.unpack_from("<I", raw, n_body - 4)
            if zlib.crc32(raw[:-4]) != crc:
                raise ValueError("damaged verification features")
            (version,) = struct.unpack_from("<I", raw)
            if version != VERSION:
                raise ValueError(f"verification features of version {version}, expected {VERSION}")
            _, w, h, n, m, native, keypoints, *box = struct.unpack_from(_HEAD, raw)
        except struct.error as e:
            raise ValueError(f"not verification features: {e}") from e
        off = head
        if n_body != off + (n + m) * (4 + 32) + 4:
            raise ValueError("damaged verification features")

        def take(count: int, dtype, shape):
            nonlocal off
            a = np.frombuffer(raw, dtype, count, off).reshape(shape)
            off += a.nbytes
            return a

        pts = take(n * 2, np.float16, (n, 2)).astype(np.float32)
        des = take(n * 32, np.uint8, (n, 32))
        mpts = take(m * 2, np.float16, (m, 2)).astype(np.float32)
        mdes = take(m * 32, np.uint8, (m, 32))
        jpeg = bytes(data[4 + n_body :])
        thumb = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) if jpeg else None
        if thumb is None:
            raise ValueError("damaged verification thumbnail")
        return cls((w, h), pts, des, mpts, mdes, thumb, native, jpeg, tuple(box), bool(keypoints))


_HEAD = "<7I4f"  # version, detection size, keypoints and mirrored ones, native side, has keypoints, box


def _encode_thumb(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(
        ".jpg",
        rgb,
        [
            cv2.IMWRITE_JPEG_QUALITY,
            95,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
        ],
    )
    if not ok:
        raise ValueError("cannot encode the thumbnail")
    return buf.tobytes()


@dataclass(frozen=True)
class Verdict:
    same: bool
    reason: str
    inliers: int = 0
    score: float = 0.0  # fine-band detail explained by one global colour mix, in the cells that fit (r2_1)
    transform: np.ndarray | None = None  # 2x3, b's normalised coordinates -> a's
    mirrored: bool = False
    measures: dict[str, float] = field(default_factory=dict, compare=False)  # everything measured, for tuning


def _read(path: str, side: int) -> Image.Image:
    from core.decode import read_full

    return read_full(path, max_side=side, heif_share=HEIF_SHARE)


def _rgb(image) -> np.ndarray:
    if isinstance(image, (str, os.PathLike)):
        image = _read(str(image), DETECT_SIDE)
    if isinstance(image, Image.Image):
        image = image.convert("RGB")
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] < 3 or min(a.shape[:2]) < 1:
        raise ValueError(f"expected an RGB or grey uint8 image, got {a.dtype} {a.shape}")
    return np.ascontiguousarray(a[..., :3])


def _resize_long(a: np.ndarray, side: int) -> np.ndarray:
    h, w = a.shape[:2]
    s = side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(a, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)


_local = threading.local()  # per-thread OpenCV detector, matcher and optical flow


@contextmanager
def one_thread_each() -> Iterator[None]:
    """Run OpenCV single-threaded inside a caller's own thread pool (the scan extracts and verifies with a
    thread per core): OpenCV's pool on top of it oversubscribes the cores. Measured on 2 cores, 160 images and
    158 pairs: extraction 1.37 -> 1.23 s, verification 0.69 -> 0.46 s."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


_EDGE = 15  # ORB's border: a picture under 2 * _EDGE + 1 px on a side has no keypoints


def _detector():
    """This thread's ORB detector: OpenCV's detectors and matchers must not be shared between threads (the
    scan extracts and verifies in a thread pool; a shared matcher aborted the process)."""
    orb = getattr(_local, "orb", None)
    if orb is None:
        orb = _local.orb = cv2.ORB_create(
            _N_CANDIDATES, scaleFactor=1.2, nlevels=8, edgeThreshold=_EDGE, patchSize=15, fastThreshold=8
        )
    return orb


def _spread(kps: list, shape: tuple[int, ...], n: int, grid: int = 6) -> list:
    """The ``n`` keypoints to keep, taken round-robin over a grid by response, so that a caption, a logo or an
    app's buttons (all strong corners) cannot take every keypoint from the photo around them."""
    if not kps:
        return []
    h, w = shape[:2]
    # Strongest first (stable, as sorted() was); each keypoint's cell, its rank inside the cell, and the
    # cells in the order their strongest keypoint comes: rank 0 of every cell in that order, then rank 1...
    # (numpy: the loop over 1,500 keypoints in Python was a fifth of an extraction).
    order = np.argsort(-np.array([k.response for k in kps], np.float32), kind="stable")
    pts = cv2.KeyPoint_convert(kps).astype(np.float64)[order]  # float64: as Python divided before
    cell = (pts[:, 1] * grid / h).astype(np.int64) * (grid + 1) + (pts[:, 0] * grid / w).astype(np.int64)
    by_cell = np.argsort(cell, kind="stable")
    sorted_cells = cell[by_cell]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_cells)) + 1]
    rank = np.empty(len(cell), np.int64)
    rank[by_cell] = np.arange(len(cell)) - np.repeat(starts, np.diff(np.r_[starts, len(cell)]))
    first = np.full(int(cell.max()) + 1, len(cell), np.int64)
    np.minimum.at(first, cell, np.arange(len(cell)))
    keep = np.lexsort((first[cell], rank))[:n]
    return [kps[i] for i in order[keep].tolist()]


def _detect(g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Keypoints and descriptors of ``g`` and of its mirror image (the same corners, mirrored: FAST is
    symmetric, only the descriptors must be computed again), the mirror's points in unmirrored coordinates."""
    none = np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    if min(g.shape[:2]) < 2 * _EDGE + 1:  # none to find; and a 1 px strip made ORB's pyramid raise
        return *none, *none
    orb = _detector()
    kps = _spread(orb.detect(g, None), g.shape, N_FEATURES)
    kps, des = orb.compute(g, kps) if kps else ((), None)
    if des is None or not kps:
        return *none, *none
    wd = g.shape[1]
    mirrored = [
        cv2.KeyPoint(wd - 1 - k.pt[0], k.pt[1], k.size, (180 - k.angle) % 360, k.response, k.octave)
        for k in kps
    ]
    mkps, mdes = orb.compute(np.ascontiguousarray(g[:, ::-1]), mirrored)
    pts = np.array([k.pt for k in kps], np.float32)
    if mdes is None or not mkps:
        return pts, des, *none
    mpts = np.array([k.pt for k in mkps], np.float32)
    mpts[:, 0] = wd - 1 - mpts[:, 0]
    return pts, des, mpts, mdes


def extract(image, source: str | os.PathLike | None = None, *, keypoints: bool = True) -> ImageFeatures:
    """Features of one image: a path (decoded reduced), a PIL image, or an RGB/grey uint8 array.

    ``source``: the file a given picture was decoded from (a scan's preview of it), read again larger
    when the picture turns out to be a small photo on a big canvas (see ``_picture``).
    ``keypoints=False``: the thumbnail alone (~2 ms instead of ~10), for pairs compared frame to frame; the
    same thumbnail as with keypoints.
    Raises ``core.decode.DecodeError`` for an unreadable path and ``ValueError`` for a bad array.
    """
    rgb = _rgb(image)
    rgb, box = _picture(rgb, image if source is None else source)
    g = _resize_long(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), DETECT_SIDE)
    if keypoints:
        pts, des, mpts, mdes = _detect(g)
    else:
        pts = mpts = np.zeros((0, 2), np.float32)
        des = mdes = np.zeros((0, 32), np.uint8)
    thumb = _resize_long(rgb, THUMB_SIDE)
    # through the cache's coding now, so that fresh and cached features verify alike
    jpeg = _encode_thumb(thumb)
    thumb = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    size = (g.shape[1], g.shape[0])
    return ImageFeatures(
        size, pts, des, mpts, mdes, thumb, max(rgb.shape[:2]), jpeg, box, keypoints, None if keypoints else g
    )


def with_keypoints(f: ImageFeatures) -> ImageFeatures:
    """Features extracted without keypoints (and still holding their grey image), with them: what
    ``extract(..., keypoints=True)`` gives for the same picture."""
    if f.keypoints:
        return f
    if f.gray is None:
        raise ValueError("these features no longer hold their picture: extract them again")
    pts, des, mpts, mdes = _detect(f.gray)
    return replace(
        f, points=pts, descriptors=des, mirror_points=mpts, mirror_descriptors=mdes, keypoints=True, gray=None
    )


_MAX_REREAD = 3.0  # a small picture on a big canvas is read again at most this much larger
# Trimmed only when the picture is under this share of the image. Trimming every image that has a flat edge
# lost the evidence of exposure brackets (a crushed sky or a clipped wall at the edge, "lost" detail): on the
# tuning split 9 instead of 6 bracket pairs were verified. Screenshots' photos are 13-30 % of the image (5th
# percentile to median), letterboxed copies' 37-60 %; 5 % of the other shots are under 60 %.
_PICTURE_SHARE = 0.5


def _picture(rgb: np.ndarray, source) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The picture inside ``rgb`` once bars and an app's canvas are trimmed (``core.decode.content_box``),
    if they take over half of it, and its normalised box. A file whose picture is under DETECT_SIDE after
    trimming is read again larger (up to ``_MAX_REREAD`` times), so the photo in a screenshot gets its
    keypoints."""
    from core.decode import content_box

    def trimmed(a: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float]]:
        H, W = a.shape[:2]
        left, top, right, bottom = content_box(Image.fromarray(a))
        if (right - left) * (bottom - top) >= _PICTURE_SHARE * W * H:
            return a, (0.0, 0.0, 1.0, 1.0)
        return a[top:bottom, left:right], (left / W, top / H, right / W, bottom / H)

    pic, box = trimmed(rgb)
    whole = box == (0.0, 0.0, 1.0, 1.0)
    if not whole and isinstance(source, (str, os.PathLike)) and max(pic.shape[:2]) < 0.8 * DETECT_SIDE:
        k = min(_MAX_REREAD, DETECT_SIDE / max(1, max(pic.shape[:2])))
        try:
            larger = _rgb(_read(str(source), round(DETECT_SIDE * k)))
        except (DecodeError, OSError, ValueError, MemoryError) as e:  # over the memory budget, changed...
            log.info("%s not read again larger (%s): its picture as read", source, e)
            larger = rgb
        if max(larger.shape[:2]) > max(rgb.shape[:2]):
            pic, box = trimmed(larger)
    if min(pic.shape[:2]) < 8:  # nothing sensible left: the whole image
        return rgb, (0.0, 0.0, 1.0, 1.0)
    return np.ascontiguousarray(pic), box


def _match(da: np.ndarray, db: np.ndarray) -> np.ndarray:
    """Index pairs (i in a, j in b) passing the ratio test."""
    if len(da) < 2 or len(db) < 2:
        return np.zeros((0, 2), np.int64)
    matcher = getattr(_local, "matcher", None)
    if matcher is None:
        matcher = _local.matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    out = [
        (m[0].queryIdx, m[0].trainIdx)
        for m in matcher.knnMatch(da, db, k=2)
        if len(m) == 2 and m[0].distance < RATIO * m[1].distance
    ]
    return np.array(out, np.int64).reshape(-1, 2)


def _fit(pa: np.ndarray, pb: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """RANSAC affine b -> a in detection pixels; (matrix, inlier mask)."""
    if len(pa) < 4:
        return None, np.zeros(len(pa), bool)
    m, inl = cv2.estimateAffine2D(
        pb,
        pa,
        method=cv2.RANSAC,
        ransacReprojThreshold=RANSAC_PX,
        maxIters=2000,
        confidence=0.995,
        refineIters=10,
    )
    if m is None or inl is None:
        return None, np.zeros(len(pa), bool)
    return m, inl.ravel().astype(bool)


def _plausible(m: np.ndarray, mirrored: bool) -> bool:
    lin = m[:, :2]
    det = float(np.linalg.det(lin))
    if (det < 0) != mirrored or abs(det) < 1e-6:
        return False
    s = np.linalg.svd(lin, compute_uv=False)
    return 1 / 8 <= float(np.sqrt(abs(det))) <= 8 and s[0] / s[1] <= MAX_STRETCH


def _norm(size: tuple[int, int]) -> np.ndarray:
    """Pixel coordinates (centres at integers) to normalised ones (the image spans 0..1)."""
    return np.array([[1 / size[0], 0, 0.5 / size[0]], [0, 1 / size[1], 0.5 / size[1]], [0, 0, 1]])


def _compose(m: np.ndarray, size_a: tuple[int, int], size_b: tuple[int, int]) -> np.ndarray:
    """Pixel transform b -> a (detection sizes) as normalised coordinates."""
    m3 = np.vstack([m, [0, 0, 1]])
    return (_norm(size_a) @ m3 @ np.linalg.inv(_norm(size_b)))[:2]


def _to_pixels(t_norm: np.ndarray, size_a: tuple[int, int], size_b: tuple[int, int]) -> np.ndarray:
    t3 = np.vstack([t_norm, [0, 0, 1]])
    return (np.linalg.inv(_norm(size_a)) @ t3 @ _norm(size_b))[:2]


def _blurs(a: np.ndarray, w: np.ndarray, wb: dict[float, np.ndarray]) -> dict[float, np.ndarray]:
    """Gaussian blurs of ``a`` inside the mask ``w`` at each sigma of ``wb`` (normalised convolution: what
    lies outside the overlap, such as a letterbox bar or an app's canvas, never leaks in)."""
    aw = cv2.multiply(a, cv2.merge([w, w, w]))
    return {s: cv2.divide(cv2.GaussianBlur(aw, (0, 0), s), d) for s, d in wb.items()}


_ONES = np.ones((1, 3), np.float32)


def _sqsum(a: np.ndarray) -> np.ndarray:
    """Per-pixel sum of squares over the colour channels (cv2: ~15x faster than numpy here)."""
    return cv2.transform(cv2.multiply(a, a), _ONES)


def _cells(x: np.ndarray, k: int) -> np.ndarray:
    """Sums over k x k cells of a 2-D array (the ragged edge dropped)."""
    h, w = x.shape[0] // k * k, x.shape[1] // k * k
    return cv2.resize(
        np.ascontiguousarray(x[:h, :w], np.float32), (w // k, h // k), interpolation=cv2.INTER_AREA
    ) * (k * k)


def _solve(ss: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return np.linalg.solve(ss + np.eye(3) * (1e-6 * np.trace(ss) + 1e-9), sd)


def _linear_fit(x: np.ndarray, y: np.ndarray, cells: np.ndarray, k: int) -> tuple[float, float, float]:
    """How well one image's band-pass colours are a global linear mix of the other's (any channel mixer, tint,
    grey, gain, contrast), fitted both ways, the better kept: (share of energy explained in the cells that
    fit, share of cells textured in both where less than half is, share of cells with much more detail on the
    side that has less elsewhere). The fit is refitted once without the cells it leaves
    unexplained, so that a caption or a logo does not bend it. ``x`` and ``y`` are zero outside the overlap.

    Works on per-cell second moments (6x6 per cell), so a refit costs nothing per pixel.
    """
    ch, cw = cells.shape
    # each cell's pixels as one (k * k, 6) matrix, both images' channels side by side; the cells' moments as
    # one batched product (4x faster than an einsum over the cell grid)
    p = np.empty((ch, cw, k, k, 6), np.float32)
    p[..., :3] = x[: ch * k, : cw * k].reshape(ch, k, cw, k, 3).transpose(0, 2, 1, 3, 4)
    p[..., 3:] = y[: ch * k, : cw * k].reshape(ch, k, cw, k, 3).transpose(0, 2, 1, 3, 4)
    p = p.reshape(ch * cw, k * k, 6)
    mom = np.matmul(p.transpose(0, 2, 1), p).reshape(ch, cw, 6, 6)
    best = None
    for s_, d_ in ((slice(0, 3), slice(3, 6)), (slice(3, 6), slice(0, 3))):
        ss, sd, dd = mom[..., s_, s_], mom[..., s_, d_], mom[..., d_, d_]
        ey, es = np.trace(dd, axis1=-2, axis2=-1), np.trace(ss, axis1=-2, axis2=-1)
        # only cells with detail in both can be compared: detail in one alone is grain, noise or an overlay
        # (or clipping: mutual_loss looks at that)
        tex0 = cells & (ey > _TEXTURE**2 * 3 * k * k) & (es > _TEXTURE**2 * 3 * k * k)
        if not tex0.any():
            continue
        keep = tex = tex0
        for _ in range(2):
            m = _solve(ss[keep].sum(0), sd[keep].sum(0))
            ep = np.einsum("ij,abik,kj->ab", m, ss, m)  # energy of the prediction
            er = ey - 2 * np.einsum("abij,ij->ab", sd, m) + ep
            # compare only cells where both sides carry similar amounts of detail (within 4x): added grain,
            # noise or a caption over a flat area is not a mismatch of structure
            tex = tex0 & (ep > 0.25 * ey) & (ey > 0.25 * ep)
            ok = tex & (er <= 0.5 * ey)
            if ok.sum() < 0.5 * tex.sum():
                break
            keep = ok
        r2 = 1 - float(er[ok].sum()) / max(float(ey[ok].sum()), 1e-9) if ok.any() else 0.0
        n0 = max(int(tex0.sum()), 1)
        # detail that is much stronger on one side in some cells and on the other side in others: another
        # exposure's tone curve (an edit, whatever its curve, changes contrast one way: grain and captions
        # add, clipping removes)
        uneven = min(float((tex0 & (ey > 4 * ep)).sum()) / n0, float((tex0 & (ep > 4 * ey)).sum()) / n0)
        bad = float(1 - ok.sum() / max(tex.sum(), 1)) if tex.sum() >= 0.25 * tex0.sum() else 1.0
        if best is None or (bad, -r2) < best[:2]:
            best = (bad, -r2, uneven)
    return (0.0, 1.0, 1.0) if best is None else (-best[1], best[0], best[2])


def _tone(ref: np.ndarray, mov: np.ndarray, valid: np.ndarray) -> float:
    """How far apart the two pictures' overall brightness is where they overlap: |log| of the ratio of their
    mean levels (an offset keeps dark pictures' ratios sane). Another exposure of a scene is a stop or more
    (~0.3 and up); a re-save, a resize or a colour filter moves it little."""
    if not valid.any():
        return 0.0
    a, b = float(ref[valid].mean()), float(mov[valid].mean())
    return abs(float(np.log((a + 8.0) / (b + 8.0))))


def photometric(
    ref: np.ndarray,
    mov: np.ndarray,
    m: np.ndarray,
    need_motion: Callable[[dict], bool] | None = None,
    correction: list[np.ndarray] | None = None,
) -> dict[str, float]:
    """Compare ``ref`` with ``mov`` warped onto it by ``m`` (2x3, mov pixels -> ref pixels, not enlarging).

    Per band (fine 0.7-2 px, coarse 2-5 px) the band-pass RGB of one image is fitted as a global 3x3 linear
    mix of the other's, both ways, keeping the better: a colour filter, grey conversion, tint, brightness or
    contrast change is such a mix; parallax, a moved subject, other shadows or another exposure's tone curve
    are not. ``bad`` counts cells the fit leaves mostly unexplained. Separately, cells textured in one image
    and flat in the other, both ways round (``mutual_loss``), betray an exposure bracket: an edit can clip
    detail away in one direction, never create it.
    """
    ref = ref.astype(np.float32)
    mov = mov.astype(np.float32)
    size = (ref.shape[1], ref.shape[0])
    shrink = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if shrink < 0.9:  # anti-alias before shrinking
        mov = cv2.GaussianBlur(mov, (0, 0), 0.5 * np.sqrt(1 / shrink**2 - 1))
    x_all = cv2.warpAffine(mov, m, size, flags=cv2.INTER_LINEAR)
    w = cv2.warpAffine(np.full(mov.shape[:2], 255, np.uint8), m, size, flags=cv2.INTER_NEAREST)
    w = (cv2.erode(w, np.ones((3, 3), np.uint8)) > 0).astype(np.float32)
    valid = w > 0
    k = int(np.clip(np.sqrt(valid.sum() / 40), 6, _CELL))  # at least ~40 cells, even for a small overlap
    cells = _cells(w, k) >= 0.9 * k * k
    out: dict[str, float] = {"overlap_cells": float(cells.sum()), "tone": _tone(ref, x_all, valid)}
    if cells.sum() < 4:
        return {
            **out,
            "r2_1": 0.0,
            "r2_2": 0.0,
            "bad_1": 1.0,
            "bad_2": 1.0,
            "mutual_loss": 1.0,
            "uneven_1": 1.0,
            "uneven_2": 1.0,
        }
    wb = {s: cv2.merge([np.maximum(cv2.GaussianBlur(w, (0, 0), s), 1e-3)] * 3) for s in _SIGMAS}
    by, bx = _blurs(ref, w, wb), _blurs(x_all, w, wb)
    for name, s1, s2 in (("1", _SIGMAS[0], _SIGMAS[1]), ("2", _SIGMAS[1], _SIGMAS[2])):
        w3 = cv2.merge([w, w, w])
        y, x = cv2.multiply(by[s1] - by[s2], w3), cv2.multiply(bx[s1] - bx[s2], w3)
        out[f"r2_{name}"], out[f"bad_{name}"], out[f"uneven_{name}"] = _linear_fit(x, y, cells, k)
        if name == "2":
            ea = np.sqrt(_cells(_sqsum(y), k) / (3 * k * k))
            eb = np.sqrt(_cells(_sqsum(x), k) / (3 * k * k))
            both = cells & (ea > _TEXTURE) & (eb > _TEXTURE)
            gain = float(np.median(eb[both] / ea[both])) if both.sum() >= 4 else 1.0
            n = max(1, int(cells.sum()))
            lost_b = cells & (ea > 2 * _TEXTURE) & (eb < 0.25 * gain * ea)
            lost_a = cells & (eb > 2 * _TEXTURE * gain) & (ea * gain < 0.25 * eb)
            out["lost_a"], out["lost_b"] = float(lost_a.sum() / n), float(lost_b.sum() / n)
            out["mutual_loss"] = min(out["lost_a"], out["lost_b"])
    if need_motion is None or need_motion(out):
        y, x = by[_SIGMAS[0]] - by[_SIGMAS[2]], bx[_SIGMAS[0]] - bx[_SIGMAS[2]]
        out.update(_motion(y, x, w, cells, k, correction))
    return out


# A keypoint-aligned pair that fails the rule while the flow's global part still moves the frame more than
# this (thumbnail pixels) is corrected by that global part and measured once more (``_aligned_verdict``)
_REALIGN_SHIFT = 1.5
_DIS_FINEST = 2  # DIS's finest pyramid level in its FAST preset (OpenCV 4-5)
_FLOW_MIN = 32  # OpenCV 5.1's DIS flow killed the process on pictures 8-31 px high (from ~80 px wide)


def _flow(flow, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """DIS flow from ``a`` to ``b``; a thin picture (a wide panorama's thumbnail is under 32 px high) is
    padded by repeating its edge first, and the flow of the picture itself returned."""
    # DIS lowers its finest scale to fit a small picture and keeps it lowered: every later flow of the thread
    # was then computed at full resolution, so a pair's verdict depended on the pictures checked before it
    flow.setFinestScale(_DIS_FINEST)
    h, w = a.shape[:2]
    ph, pw = max(0, _FLOW_MIN - h), max(0, _FLOW_MIN - w)
    if not (ph or pw):
        return flow.calc(a, b, None)
    a, b = (cv2.copyMakeBorder(x, 0, ph, 0, pw, cv2.BORDER_REPLICATE) for x in (a, b))
    return np.ascontiguousarray(flow.calc(a, b, None)[:h, :w])


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel coordinates of an h x w picture: y and x (h, w), and the (h * w, 3) design of an affine fit
    (read-only: shared by every pair of that shape)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    design = np.stack([xx.ravel(), yy.ravel(), np.ones(h * w, np.float32)], 1)
    for a in (yy, xx, design):
        a.flags.writeable = False
    return yy, xx, design


def _motion(
    y: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    cells: np.ndarray,
    k: int,
    correction: list[np.ndarray] | None = None,
) -> dict[str, float]:
    """Local motion left after the global alignment: dense optical flow between one image and the other
    mapped into its colours (global 3x3 mix), per cell. A copy has none; a burst, a moved subject or parallax
    has some. ``moved``: share of textured cells whose mean flow exceeds half a thumbnail pixel."""
    flow = getattr(_local, "flow", None)
    if flow is None:
        flow = _local.flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    w3 = cv2.merge([w, w, w])
    y, x = cv2.multiply(y, w3), cv2.multiply(x, w3)
    xf, yf = x.reshape(-1, 3), y.reshape(-1, 3)
    xx, xy = xf.T @ xf, xf.T @ yf
    m = np.linalg.solve(xx + np.eye(3) * (1e-6 * np.trace(xx) + 1e-9), xy).astype(np.float32)
    pred = cv2.transform(x, m.T)

    def to8(a: np.ndarray) -> np.ndarray:
        c0, c1, c2 = cv2.split(a)
        g = cv2.add(cv2.add(c0, c1), c2) / np.float32(3)  # a.mean(axis=2) to the bit, 7x faster
        sd = float(np.sqrt((g * g).sum() / max(w.sum(), 1.0))) + 1e-3
        return (128 + 40 * np.clip(g / sd, -3, 3)).astype(np.uint8)

    gy, gp = to8(y), to8(pred)
    f = _flow(flow, gy, gp)
    tex = cells & (_cells(_sqsum(y), k) > _TEXTURE**2 * 3 * k * k)
    if not tex.any():
        return {"moved": 1.0, "flow": 4.0}
    # what a global affine correction of the keypoint fit explains is not local motion: remove it
    h, wd = w.shape
    yy, xx, design = _grid(h, wd)
    wt = w.ravel() * (np.sqrt(_sqsum(y)).ravel() > _TEXTURE)
    a = design * wt[:, None]
    coef = np.linalg.lstsq(a.T @ design + np.eye(3) * 1e-3, a.T @ f.reshape(-1, 2), rcond=None)[0]
    glob = np.empty((h, wd, 2), np.float32)  # design @ coef, to the bit, without a (h * w, 3) float64 copy
    for c in range(2):
        glob[..., c] = xx * coef[0, c] + yy * coef[1, c] + coef[2, c]
    if correction is not None:  # the flow's global part as a 2x3 displacement of ref's pixels
        correction.append(coef.T.astype(np.float64))
    local = f - glob
    # how far the flow's global part moves the frame (at its corners): a pair aligned frame to frame
    # without keypoints must not be off by more than FRAME_SHIFT
    corners = glob[[0, 0, -1, -1], [0, -1, 0, -1]]
    shift = float(np.sqrt((corners * corners).sum(-1)).max())
    lx, ly = local[..., 0], local[..., 1]
    mag = np.minimum(np.sqrt(lx * lx + ly * ly), 4.0) * w  # (local * local).sum(-1), to the bit
    per_cell = _cells(mag, k) / (k * k)
    # a cell moved only if following the flow explains what differs there (flow in flat or noisy areas
    # wanders)
    maps = np.stack([xx + f[..., 0], yy + f[..., 1]], -1)
    follow = cv2.remap(gp, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    g0, g1, gq = gy.astype(np.float32), follow.astype(np.float32), gp.astype(np.float32)
    e_still = _cells((g0 - gq) ** 2 * w, k)
    e_moved = _cells((g0 - g1) ** 2 * w, k)
    e_cell = _cells((g0 - 128) ** 2 * w, k)
    explained = (e_moved < 0.5 * e_still) & (e_still > 0.05 * e_cell)
    per_cell = np.where(explained, per_cell, 0.0)
    return {"moved": float((per_cell[tex] > 0.5).mean()), "flow": float(per_cell[tex].mean()), "shift": shift}


_GRID = np.stack(np.meshgrid(np.linspace(0.01, 0.99, 24), np.linspace(0.01, 0.99, 24)), -1).reshape(-1, 2)


def _coverage(t_norm: np.ndarray) -> dict[str, float]:
    """Shares of a and of b that the other image covers once aligned (a copy: one of them is ~all covered)."""
    inside = lambda p: float(np.mean((p >= 0).all(axis=1) & (p <= 1).all(axis=1)))  # noqa: E731
    cov_b = inside(_GRID @ t_norm[:, :2].T + t_norm[:, 2])
    inv = cv2.invertAffineTransform(t_norm)
    cov_a = inside(_GRID @ inv[:, :2].T + inv[:, 2])
    return {"cover_a": cov_a, "cover_b": cov_b, "cover": max(cov_a, cov_b)}


# Doubt about a pair the rule verified: how much its measures look like another capture (an exposure
# bracket, a burst frame) rather than an edit, as a logistic score fitted on the tuning split's copies and
# other shots (``python -m training.verify_eval --fit-doubt``). No threshold of the rule separates the two
# without losing copies of some kind (report, "Unsure verdicts"); this only says which verified pairs to
# show as unsure: they stay duplicates, and auto-select leaves them to the person (``core.selection``).
DOUBT_MEASURES = ("r2_1", "r2_2", "bad_1", "bad_2", "uneven_1", "uneven_2", "moved", "flow", "lost")
DOUBT_WEIGHTS = (-9.7137, -7.5159, 8.0435, 6.9602, 0.2968, 0.2618, 3.3558, 3.9812, 0.4952)
DOUBT_BIAS = 13.8820
# Verified pairs scoring above this are unsure: 5 % of the tuning split's verified copies
DOUBT_FROM = -1.7973
# ... and so are verified pairs whose overall brightness differs by this much or more (``_tone``, about a
# stop): a brighter or darker version of the same frame is what an exposure bracket looks like, and nothing
# the check sees at 192-384 px tells the two apart. The check was *sure* of two bracket pairs (tone 0.61
# tuning, 0.38 held out; every exposure pair it verifies is 0.29-1.65); three in four brightness-edited
# copies and 13 % of duotone ones are flagged with them (training/reports/verification.md, "A stop apart").
TONE_FROM = 0.3
UNSURE = "probably the same picture, but not surely"


def doubt_inputs(measures: dict[str, float]) -> list[float]:
    """The measures ``doubt`` weighs, in ``DOUBT_MEASURES`` order (the coarse band's stand in for the fine
    band's where that was not compared; ``lost``: the larger share of cells one side lost)."""
    fine = measures.get("fine_ok", 1.0)
    r2_2, bad_2 = measures.get("r2_2", 0.0), measures.get("bad_2", 1.0)
    return [
        measures.get("r2_1", 0.0) if fine else r2_2,
        r2_2,
        measures.get("bad_1", 1.0) if fine else bad_2,
        bad_2,
        measures.get("uneven_1", 1.0),
        measures.get("uneven_2", 1.0),
        measures.get("moved", 1.0),
        min(measures.get("flow", 4.0), 4.0),
        max(measures.get("lost_a", 1.0), measures.get("lost_b", 1.0)),
    ]


def doubt(measures: dict[str, float]) -> float:
    """The doubt score of a verified pair's measures (higher: more like another capture)."""
    return float(np.dot(DOUBT_WEIGHTS, doubt_inputs(measures)) + DOUBT_BIAS)


def doubtful(measures: dict[str, float]) -> bool:
    """Whether a verified pair with these measures is one the check is not sure of: a doubt score over
    ``DOUBT_FROM``, or brightness a stop or more apart (``TONE_FROM``)."""
    return doubt(measures) > DOUBT_FROM or measures.get("tone", 0.0) >= TONE_FROM


def unsure(reason: str) -> bool:
    """Whether a verdict's reason is that of a verified pair the check was not sure of (``UNSURE``)."""
    return reason.startswith(UNSURE)


def _with_doubt(v: Verdict) -> Verdict:
    """``v``, its reason saying so when it is a verified pair the check is not sure of (``doubtful``)."""
    if not v.same or not doubtful(v.measures):
        return v
    reason = f"{UNSURE}: it could be another exposure or a burst frame ({v.reason})"
    return replace(v, reason=reason)


def decide(measures: dict[str, float], rule: dict[str, float] | None = None) -> tuple[bool, str]:
    """The rule on ``Verdict.measures``; apart from ``verify`` so that evaluation can sweep its thresholds."""
    r = {**RULE, **(rule or {})}
    inliers = int(measures.get("inliers", 0))
    if inliers < r["inliers"] and not measures.get("frame"):
        return False, f"too few consistent keypoint matches ({inliers})"
    if measures.get("cover", 0.0) < r["cover"]:
        return False, f"only partly overlapping ({measures['cover']:.0%}): another shot of a wider scene"
    if measures.get("mutual_loss", 1.0) > r["mutual_loss"]:
        return False, "each image has detail the other lost: an exposure bracket"
    r1, r2 = measures.get("r2_1", 0.0), measures.get("r2_2", 0.0)
    if max(measures.get("uneven_1", 1.0), measures.get("uneven_2", 1.0)) > r["uneven"]:
        return False, "contrast moved both ways between the two: another exposure"
    if measures.get("moved", 1.0) > r["moved"]:
        return False, f"parts of the picture moved ({measures['moved']:.0%} of it): another shot"
    # a copy resized to a few dozen pixels had its size rounded by up to half a pixel: its frame may be off
    # by a quarter of one of its own pixels at the corners, which the compared thumbnails enlarge ``enlarged``
    # times
    shift_limit = r["frame_shift"] + 0.25 * max(0.0, measures.get("enlarged", 1.0) - 1.0)
    if measures.get("frame") and measures.get("shift", np.inf) > shift_limit:
        return False, "not aligned frame to frame"
    fine_bad = measures.get("fine_ok", 1.0) and (r1 < r["r2_1"] or measures.get("bad_1", 1.0) > r["bad_1"])
    if fine_bad or r2 < r["r2_2"] or measures.get("bad_2", 1.0) > r["bad_2"]:
        return False, f"aligned, but the picture differs (structure explained {r1:.2f} fine, {r2:.2f} coarse)"
    return True, f"same picture: {inliers} matching keypoints, structure explained {r1:.2f}"


def _align(a: ImageFeatures, b: ImageFeatures) -> tuple[int, int, np.ndarray | None, bool, float]:
    """Best fit over direct and mirrored matching: (inliers, matches, matrix b->a, mirrored, median
    residual)."""
    best = (0, 0, None, False, 0.0)
    for mirrored in (False, True):
        pb_all, db = (b.mirror_points, b.mirror_descriptors) if mirrored else (b.points, b.descriptors)
        pairs = _match(a.descriptors, db)
        if len(pairs) < 4:
            cand = (0, len(pairs), None, mirrored, 0.0)
        else:
            pa, pb = a.points[pairs[:, 0]], pb_all[pairs[:, 1]]
            m, inl = _fit(pa, pb)
            ok = m is not None and _plausible(m, mirrored)
            n = int(inl.sum()) if ok else 0
            res = 0.0
            if n:
                proj = pb[inl] @ m[:, :2].T + m[:, 2]
                res = float(np.median(np.linalg.norm(proj - pa[inl], axis=1)))
            cand = (n, len(pairs), m if ok else None, mirrored, res)
        if cand[0] > best[0] or best[2] is None and cand[1] > best[1]:
            best = cand
        # Clearly aligned, and tightly: no need to try the mirror. A loose fit (residual over a pixel) can be
        # a symmetric scene matched the wrong way round (a pier, a facade), so its mirror is tried too.
        if best[0] >= 3 * MIN_INLIERS and best[4] <= CLEAN_RESIDUAL:
            break
    return best


def verify(a: ImageFeatures, b: ImageFeatures, *, complete: bool = False, frame: bool = True) -> Verdict:
    """Decide whether ``b`` is a copy (edited or not) of the same capture as ``a``.

    A pair of one shape is first compared frame to frame (``_frame_verdict``): most copies are the whole
    picture resized, re-saved or recoloured, and need no keypoints. Only a pair that does not pass that way
    is matched by keypoints (``frame=False``: skip the first step, for a pair known to have failed it).

    Measures that cannot change the verdict or its reason are skipped (the photometric check when the
    alignment already fails the rule, the optical flow when the detail checks made before it do): a scan's
    candidates are mostly other photos. ``complete``: measure everything, for evaluation sweeps.
    Raises ``NeedKeypoints`` when either side was extracted without keypoints and the frame-to-frame
    comparison does not settle the pair.

    A verified pair whose measures look like another capture says so in its reason (``unsure``)."""
    return _with_doubt(_verify(a, b, complete=complete, frame=frame))


def _verify(a: ImageFeatures, b: ImageFeatures, *, complete: bool, frame: bool) -> Verdict:
    if frame:
        v = _frame_verdict(a, b, complete)
        if v is not None and v.same:
            return v
    if not (a.keypoints and b.keypoints):
        raise NeedKeypoints("this pair needs keypoints: extract both images with keypoints=True")
    inliers, n_matches, m, mirrored, resid = _align(a, b)
    measures = {
        "matches": float(n_matches),
        "inliers": float(inliers),
        "mirrored": float(mirrored),
        "residual": resid,
    }
    if m is None or inliers < _PHOTOMETRIC_FROM:
        same, reason = decide(measures)
        return Verdict(same, reason, inliers, mirrored=mirrored, measures=measures)
    t_norm = _compose(m, a.size, b.size)
    measures.update(_coverage(t_norm))
    whole = _uncrop(t_norm, a, b)
    if not complete and (inliers < RULE["inliers"] or measures["cover"] < RULE["cover"]):
        same, reason = decide(measures)  # those two are the rule's first checks
        return Verdict(same, reason, inliers, 0.0, whole, mirrored, measures)
    return _aligned_verdict(a, b, t_norm, measures, complete, inliers, mirrored, whole)


def _aligned_verdict(
    a: ImageFeatures,
    b: ImageFeatures,
    t_norm: np.ndarray,
    measures: dict[str, float],
    complete: bool,
    inliers: int,
    mirrored: bool,
    whole: np.ndarray,
) -> Verdict:
    """The photometric check of a pair aligned by ``t_norm`` (b's normalised coordinates -> a's), and the
    rule's verdict on everything measured."""
    size_a, size_b = (a.thumb.shape[1], a.thumb.shape[0]), (b.thumb.shape[1], b.thumb.shape[0])
    m_thumb = _to_pixels(t_norm, size_a, size_b)
    ref, mov = (b, a) if abs(np.linalg.det(m_thumb[:, :2])) > 1 else (a, b)  # warp down, never up
    m_ref = cv2.invertAffineTransform(m_thumb) if ref is b else m_thumb
    # the fine band means nothing where either side was enlarged from a smaller picture (a thumbnail copy)
    up_ref = max(ref.thumb.shape[:2]) / max(ref.native, 1)
    up_mov = max(mov.thumb.shape[:2]) / max(mov.native, 1) * float(np.sqrt(abs(np.linalg.det(m_ref[:, :2]))))
    measures["fine_ok"] = float(max(up_ref, up_mov) <= _MAX_UPSCALE)

    def need_motion(out: dict) -> bool:
        # skipped only when a check the rule makes before the flow's already fails: then neither the verdict
        # nor its reason can depend on the flow
        m = {**measures, **out}
        return complete or (
            m["mutual_loss"] <= RULE["mutual_loss"] and max(m["uneven_1"], m["uneven_2"]) <= RULE["uneven"]
        )

    correction: list[np.ndarray] = []
    measures.update(photometric(ref.thumb, mov.thumb, m_ref, need_motion, correction))
    if inliers and correction and measures["shift"] > _REALIGN_SHIFT and not decide(measures)[0]:
        # The keypoint fit was off (a stretched copy, a few noisy inliers): the flow's global part says by how
        # much. Compose it into the alignment and look again; what a better fit cannot explain still moves.
        g = correction[0]
        h3 = np.vstack([np.hstack([np.eye(2) + g[:, :2], g[:, 2:]]), [0, 0, 1]])
        m_new = (np.linalg.inv(h3) @ np.vstack([m_ref, [0, 0, 1]]))[:2]
        again = photometric(ref.thumb, mov.thumb, m_new, need_motion)
        # kept if the pair passes that way or the frame lines up better than it did
        if decide({**measures, **again})[0] or again.get("shift", np.inf) < measures["shift"]:
            measures.update(again, realigned=1.0)
            m_thumb = m_new if ref is a else cv2.invertAffineTransform(m_new)
            whole = _uncrop(_compose(m_thumb, size_a, size_b), a, b)
    same, reason = decide(measures)
    return Verdict(same, reason, inliers, measures.get("r2_1", 0.0), whole, mirrored, measures)


class NeedKeypoints(Exception):
    """``verify`` was given features without keypoints for a pair that the frame-to-frame comparison does not
    settle: extract them with keypoints and verify again (with ``frame=False``)."""


FRAME_ASPECT = 0.02  # shapes within 2 % (log of the aspect ratios): one may be the other resized


def one_shape(size_a: tuple[float, float], size_b: tuple[float, float]) -> bool:
    """Whether two (width, height) sizes have one shape: aspect ratios within ``FRAME_ASPECT``, as a pair
    must be to be compared frame to frame, plus what rounding the smaller one's sides to whole pixels can
    change (a 20 x 12 thumbnail of a 16:10 photo is 4 % off its shape)."""
    (wa, ha), (wb, hb) = size_a, size_b
    if min(wa, ha, wb, hb) <= 0:
        return False
    w, h = min((wa, ha), (wb, hb), key=lambda s: s[0] * s[1])
    rounding = 0.5 / w + 0.5 / h
    return abs(float(np.log((wa / ha) / (wb / hb)))) <= FRAME_ASPECT + rounding


_FRAME_SIDE = 24  # grey thumbnail side for choosing between the frame and its mirror
_FRAME_CORR = 0.8  # ... and the correlation it needs before the photometric check is tried


def frame_shapes(size_a: tuple[float, float], size_b: tuple[float, float]) -> bool:
    """Whether two (width, height) sizes can be compared frame to frame: one shape (``one_shape``), or one
    shape once one of them is turned a quarter (a copy turned 90°)."""
    return one_shape(size_a, size_b) or one_shape(size_a, (size_b[1], size_b[0]))


# The frames a copy of the whole picture can take without keypoints: b's normalised coordinates -> a's, for b
# as it is, mirrored, turned 180°, flipped upside down; and (sides swapped) turned 90° either way, or
# transposed either way (turned and mirrored)
_SAME_FRAMES = (
    ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    ((-1.0, 0.0, 1.0), (0.0, 1.0, 0.0)),
    ((-1.0, 0.0, 1.0), (0.0, -1.0, 1.0)),
    ((1.0, 0.0, 0.0), (0.0, -1.0, 1.0)),
)
_TURNED_FRAMES = (
    ((0.0, 1.0, 0.0), (-1.0, 0.0, 1.0)),
    ((0.0, -1.0, 1.0), (1.0, 0.0, 0.0)),
    ((0.0, 1.0, 0.0), (1.0, 0.0, 0.0)),
    ((0.0, -1.0, 1.0), (-1.0, 0.0, 1.0)),
)


def _frame_verdict(a: ImageFeatures, b: ImageFeatures, complete: bool = False) -> Verdict | None:
    """The pair compared frame to frame, without keypoints: None unless both are whole pictures (no trimmed
    bars or canvas) of one shape, or of one shape once turned a quarter, whose small grey versions correlate
    in one of the frames a copy of the whole picture can take (as it is, mirrored, turned, flipped: the best
    is checked). The same photometric check as after a keypoint alignment decides, and the flow's global
    part must not move the frame by more than ``RULE["frame_shift"]`` thumbnail pixels (the alignment that
    keypoint inliers vouch for otherwise). Turned exactly, a turned copy is compared without the sub-pixel
    error of a keypoint fit, which blurs its fine band."""
    whole_box = (0.0, 0.0, 1.0, 1.0)
    if a.box != whole_box or b.box != whole_box:
        return None
    (ha, wa), (hb, wb) = a.thumb.shape[:2], b.thumb.shape[:2]
    if min(ha, wa, hb, wb) < 16:
        return None
    native_a, native_b = _native_size(a), _native_size(b)
    frames = (_SAME_FRAMES if one_shape(native_a, native_b) else ()) + (
        _TURNED_FRAMES if one_shape(native_a, (native_b[1], native_b[0])) else ()
    )
    if not frames:
        return None
    ga, gb = (
        cv2.resize(
            cv2.cvtColor(t, cv2.COLOR_RGB2GRAY), (_FRAME_SIDE, _FRAME_SIDE), interpolation=cv2.INTER_AREA
        ).astype(np.float32)
        for t in (a.thumb, b.thumb)
    )
    ga = ga.ravel() - ga.mean()
    square = (_FRAME_SIDE, _FRAME_SIDE)

    def corr(t: tuple) -> float:
        # b's grey square in a's frame: the frame's own map, pixel for pixel (every frame is a whole turn or
        # flip, so nearest-neighbour moves each pixel exactly)
        m = _to_pixels(np.array(t), square, square)
        y = cv2.warpAffine(gb, m, square, flags=cv2.INTER_NEAREST).ravel()
        y = y - y.mean()
        return float(ga @ y / (np.sqrt((ga @ ga) * (y @ y)) + 1e-6))

    scores = [abs(corr(t)) for t in frames]  # a negative or a channel swap may invert grey
    best = int(np.argmax(scores))
    if scores[best] < _FRAME_CORR:
        return None
    t_norm = np.array(frames[best])
    mirrored = bool(np.linalg.det(t_norm[:, :2]) < 0)
    # A thumbnail copy (a 40 px picture enlarged into the 192 px thumbnail) is compared with the other side
    # brought down to its resolution, both at most SMALL_FROM times its size: against the sharp side its
    # enlarged blur and resampling grid read as lost structure and a misaligned frame, and at 192 px the
    # photometric bands fall inside one of its pixels, where its JPEG blocks are (tiny copies all failed).
    small, sharp = (a, b) if a.native <= b.native else (b, a)
    enlarged = max(small.thumb.shape[:2]) / small.native if small.native else 1.0
    if enlarged > _MAX_UPSCALE:
        side = min(THUMB_SIDE, round(SMALL_FROM * small.native))
        if side * min(ha, wa, hb, wb) < 16 * THUMB_SIDE:  # a few pixels: nothing to compare in them
            return None
        low, high = _at_resolution(small, small.native, side), _at_resolution(sharp, small.native, side)
        a, b = (low, high) if small is a else (high, low)
    measures = {
        "frame": 1.0,
        "enlarged": max(1.0, min(enlarged, SMALL_FROM)),  # the smaller picture, in the compared thumbnails
        "inliers": 0.0,
        "mirrored": float(mirrored),
        "cover_a": 1.0,
        "cover_b": 1.0,
        "cover": 1.0,
    }
    v = _aligned_verdict(a, b, t_norm, measures, complete, 0, mirrored, t_norm)
    if v.same:
        reason = f"same picture, frame to frame: structure explained {measures.get('r2_1', 0.0):.2f}"
        return Verdict(True, reason, 0, v.score, t_norm, mirrored, measures)
    return v


def _native_size(f: ImageFeatures) -> tuple[float, float]:
    """(width, height) of the picture ``f`` was extracted from, as far as its thumbnail tells (its own size
    when the native size is unknown)."""
    h, w = f.thumb.shape[:2]
    s = f.native / max(h, w) if f.native else 1.0
    return w * s, h * s


def _at_resolution(f: ImageFeatures, native: int, side: int) -> ImageFeatures:
    """``f`` with a thumbnail ``side`` pixels long made as if from a picture ``native`` pixels long: shrunk to
    that size, then enlarged the way ``extract`` enlarges a small picture."""
    h, w = f.thumb.shape[:2]
    t = side / max(h, w)
    small = _resize_long(f.thumb, native)  # native is under the thumbnail's side: shrunk by area
    size = (max(1, round(w * t)), max(1, round(h * t)))
    return replace(f, thumb=cv2.resize(small, size, interpolation=cv2.INTER_LINEAR), native=native)


def _uncrop(t_norm: np.ndarray, a: ImageFeatures, b: ImageFeatures) -> np.ndarray:
    """A transform between the trimmed pictures' normalised coordinates as one between the whole images'."""

    def frame(box: tuple[float, float, float, float]) -> np.ndarray:  # picture coords -> image coords
        left, top, right, bottom = box
        return np.array([[right - left, 0, left], [0, bottom - top, top], [0, 0, 1]])

    t3 = np.vstack([t_norm, [0, 0, 1]])
    return (frame(a.box) @ t3 @ np.linalg.inv(frame(b.box)))[:2]


def aligned_difference(img_a, img_b, verdict: Verdict) -> np.ndarray:
    """uint8 (h, w) map of where ``img_b`` differs from ``img_a`` once aligned to it (a's size; 0 outside).

    Both are brought to a common grey level first (mean and contrast over the overlap), so a colour filter
    shows as little and an overlay or a moved object shows brightly.
    """
    ga = cv2.cvtColor(_rgb(img_a), cv2.COLOR_RGB2GRAY).astype(np.float32)
    gb = cv2.cvtColor(_rgb(img_b), cv2.COLOR_RGB2GRAY).astype(np.float32)
    if verdict.transform is None:
        raise ValueError("the verdict has no alignment (the pair did not align)")
    size_a, size_b = (ga.shape[1], ga.shape[0]), (gb.shape[1], gb.shape[0])
    m = _to_pixels(verdict.transform, size_a, size_b)
    warped = cv2.warpAffine(gb, m, size_a, flags=cv2.INTER_LINEAR)
    valid = cv2.warpAffine(np.ones_like(gb), m, size_a, flags=cv2.INTER_NEAREST) > 0
    if not valid.any():
        return np.zeros(ga.shape, np.uint8)
    za = (ga - ga[valid].mean()) / (ga[valid].std() + 1e-3)
    zb = (warped - warped[valid].mean()) / (warped[valid].std() + 1e-3)
    d = np.abs(za - zb) * 64
    d[~valid] = 0
    return d.clip(0, 255).astype(np.uint8)
