"""Is a candidate pair the same capture (possibly edited), or another shot of the same subject?

The embedding calls bursts, exposure brackets and moved-camera shots of one subject duplicates as readily as
edited copies. This module checks a candidate pair geometrically and photometrically:

1. ``extract(image)`` once per image: ORB keypoints and descriptors on a grey version ~``DETECT_SIDE`` px long
   (and on its mirror image, for flipped copies), plus a small grey thumbnail for the photometric check.
   ``ImageFeatures.to_bytes()`` / ``ImageFeatures.from_bytes()`` make it a cache entry of ~40 KB.
2. ``verify(a, b)``: ratio-test matches, RANSAC affine fit (the mirror tried when the direct fit fails), then
   warp b's thumbnail onto a's and compare their band-pass structure cell by cell. A copy aligns as one global
   transform whose residual structure matches over the whole overlap, whatever its colours; another shot has
   parallax, moved subjects, other shadows, or detail where the other frame is clipped.
3. ``aligned_difference(img_a, img_b, verdict)`` shows the GUI what changed between two verified copies.

``Verdict.transform`` maps b's normalised coordinates (x / width, y / height, in [0, 1]) to a's.

Everything here is Qt- and torch-free; a bad input gives a ``Verdict(same=False, reason=...)``, never a crash.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import zlib
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

VERSION = 1  # part of a cache key: bump when extraction or its byte format changes

DETECT_SIDE = 384  # long side of the image ORB sees (measured: 2.5-3 ms per image for 500 features)
THUMB_SIDE = 192  # long side of the grey thumbnail the photometric check compares
N_FEATURES = 500
RATIO = 0.8  # Lowe's ratio test
RANSAC_PX = 4.0  # reprojection threshold in DETECT_SIDE pixels

# Decision thresholds: see training/reports/verification.md (tuned on the tuning split of verify_eval.py).
MIN_INLIERS = 12
MIN_CELL_MATCH = 0.75
MAX_STRETCH = 2.4  # anisotropy of the fitted affine (stretch edits reach 1.8)

_CELL = 16  # photometric cell size in thumbnail pixels
_PHOTOMETRIC_FROM = 6  # fewer inliers than this: no alignment worth checking


@dataclass(frozen=True)
class ImageFeatures:
    """What ``verify`` needs of one image: keypoints (detection-image pixels), descriptors, a grey thumbnail."""

    size: tuple[int, int]  # (width, height) of the detection image
    points: np.ndarray  # float32 (N, 2)
    descriptors: np.ndarray  # uint8 (N, 32)
    mirror_points: np.ndarray  # of the mirrored image, mapped back to unmirrored coordinates
    mirror_descriptors: np.ndarray
    thumb: np.ndarray  # uint8 (h, w) grey, long side THUMB_SIDE

    def to_bytes(self) -> bytes:
        """Compact, versioned bytes for a cache (zlib over a small header and the arrays)."""
        buf = io.BytesIO()
        th, tw = self.thumb.shape
        buf.write(struct.pack("<6I", VERSION, self.size[0], self.size[1], len(self.points),
                              len(self.mirror_points), tw | th << 16))
        for arr in (self.points.astype(np.float16), self.descriptors, self.mirror_points.astype(np.float16),
                    self.mirror_descriptors, self.thumb):
            buf.write(np.ascontiguousarray(arr).tobytes())
        return zlib.compress(buf.getvalue(), 6)

    @classmethod
    def from_bytes(cls, data: bytes) -> ImageFeatures:
        """Inverse of ``to_bytes``; raises ``ValueError`` on another version or damaged bytes."""
        try:
            raw = zlib.decompress(data)
            version, w, h, n, m, t = struct.unpack_from("<6I", raw)
        except (zlib.error, struct.error) as e:
            raise ValueError(f"not verification features: {e}") from e
        if version != VERSION:
            raise ValueError(f"verification features of version {version}, expected {VERSION}")
        tw, th = t & 0xFFFF, t >> 16
        off = struct.calcsize("<6I")
        need = off + n * 4 + n * 32 + m * 4 + m * 32 + tw * th
        if len(raw) != need:
            raise ValueError(f"damaged verification features ({len(raw)} bytes, expected {need})")

        def take(count: int, dtype, shape):
            nonlocal off
            a = np.frombuffer(raw, dtype, count, off).reshape(shape)
            off += a.nbytes
            return a

        pts = take(n * 2, np.float16, (n, 2)).astype(np.float32)
        des = take(n * 32, np.uint8, (n, 32))
        mpts = take(m * 2, np.float16, (m, 2)).astype(np.float32)
        mdes = take(m * 32, np.uint8, (m, 32))
        thumb = take(tw * th, np.uint8, (th, tw))
        return cls((w, h), pts, des, mpts, mdes, thumb)


@dataclass(frozen=True)
class Verdict:
    same: bool
    reason: str
    inliers: int = 0
    score: float = 0.0  # photometric agreement: share of textured overlap cells whose structure matches
    transform: np.ndarray | None = None  # 2x3, b's normalised coordinates -> a's
    mirrored: bool = False
    measures: dict[str, float] = field(default_factory=dict, compare=False)  # everything measured, for tuning


def _grey(image) -> np.ndarray:
    if isinstance(image, (str, os.PathLike)):
        from core.decode import read_full

        image = read_full(str(image), max_side=DETECT_SIDE)
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    a = np.asarray(image)
    if a.ndim == 3:
        a = cv2.cvtColor(np.ascontiguousarray(a[..., :3]), cv2.COLOR_RGB2GRAY)
    if a.dtype != np.uint8 or a.ndim != 2 or min(a.shape) < 1:
        raise ValueError(f"expected an RGB or grey uint8 image, got {a.dtype} {a.shape}")
    return a


def _resize_long(a: np.ndarray, side: int) -> np.ndarray:
    h, w = a.shape
    s = side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(a, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)


_orb = None


def _detector():
    global _orb
    if _orb is None:
        _orb = cv2.ORB_create(N_FEATURES, scaleFactor=1.2, nlevels=8, edgeThreshold=15, patchSize=15,
                              fastThreshold=8)
    return _orb


def _detect(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    kps, des = _detector().detectAndCompute(g, None)
    if des is None or not kps:
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    return np.array([k.pt for k in kps], np.float32), des


def extract(image) -> ImageFeatures:
    """Features of one image: a path (decoded reduced), a PIL image, or an RGB/grey uint8 array.

    Raises ``core.decode.DecodeError`` for an unreadable path and ``ValueError`` for a bad array.
    """
    g = _resize_long(_grey(image), DETECT_SIDE)
    pts, des = _detect(g)
    mpts, mdes = _detect(np.ascontiguousarray(g[:, ::-1]))
    if len(mpts):
        mpts[:, 0] = g.shape[1] - 1 - mpts[:, 0]
    thumb = _resize_long(g, THUMB_SIDE)
    return ImageFeatures((g.shape[1], g.shape[0]), pts, des, mpts, mdes, thumb)


_matcher = None


def _match(da: np.ndarray, db: np.ndarray) -> np.ndarray:
    """Index pairs (i in a, j in b) passing the ratio test."""
    global _matcher
    if len(da) < 2 or len(db) < 2:
        return np.zeros((0, 2), np.int64)
    if _matcher is None:
        _matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    out = [(m[0].queryIdx, m[0].trainIdx) for m in _matcher.knnMatch(da, db, k=2)
           if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
    return np.array(out, np.int64).reshape(-1, 2)


def _fit(pa: np.ndarray, pb: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """RANSAC affine b -> a in detection pixels; (matrix, inlier mask)."""
    if len(pa) < 4:
        return None, np.zeros(len(pa), bool)
    m, inl = cv2.estimateAffine2D(pb, pa, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=2000,
                                  confidence=0.995, refineIters=10)
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
    return np.array([[1 / size[0], 0, 0], [0, 1 / size[1], 0], [0, 0, 1]])


def _compose(m: np.ndarray, size_a: tuple[int, int], size_b: tuple[int, int]) -> np.ndarray:
    """Pixel transform b -> a (detection sizes) as normalised coordinates."""
    m3 = np.vstack([m, [0, 0, 1]])
    return (_norm(size_a) @ m3 @ np.linalg.inv(_norm(size_b)))[:2]


def _to_pixels(t_norm: np.ndarray, size_a: tuple[int, int], size_b: tuple[int, int]) -> np.ndarray:
    t3 = np.vstack([t_norm, [0, 0, 1]])
    return (np.linalg.inv(_norm(size_a)) @ t3 @ _norm(size_b))[:2]


def _band(a: np.ndarray, s1: float, s2: float) -> np.ndarray:
    return cv2.GaussianBlur(a, (0, 0), s1) - cv2.GaussianBlur(a, (0, 0), s2)


def _cells(x: np.ndarray, k: int) -> np.ndarray:
    h, w = x.shape[0] // k * k, x.shape[1] // k * k
    return x[:h, :w].reshape(h // k, k, w // k, k).sum(axis=(1, 3))


def photometric(ta: np.ndarray, tb_warped: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    """Compare two aligned grey thumbnails over ``valid``: band-pass correlation, globally and per cell.

    Per band and cell the structures are compared by normalised correlation, which ignores gain and offset
    (colour filters, brightness, contrast); |correlation| is used so that a channel swap that inverts some
    edges still counts. Cells that are flat in both images say nothing and are skipped; a cell textured in one
    image and flat in the other (clipped highlights of an exposure bracket, an overlay) counts as a mismatch.
    """
    a = ta.astype(np.float32)
    b = tb_warped.astype(np.float32)
    v = valid.astype(np.float32)
    out: dict[str, float] = {}
    n_cells_valid = _cells(v, _CELL) >= 0.9 * _CELL * _CELL
    if not n_cells_valid.any():
        return {"overlap_cells": 0.0, "cell_match": 0.0, "ncc1": 0.0, "ncc2": 0.0}
    agree = np.zeros(n_cells_valid.shape, np.float32)
    textured_any = np.zeros(n_cells_valid.shape, bool)
    for name, s1, s2 in (("ncc1", 0.7, 2.0), ("ncc2", 2.0, 5.0)):
        ra, rb = _band(a, s1, s2) * v, _band(b, s1, s2) * v
        den = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
        out[name] = float((ra * rb).sum() / den) if den > 0 else 0.0
        saa, sbb, sab = _cells(ra * ra, _CELL), _cells(rb * rb, _CELL), _cells(ra * rb, _CELL)
        ea, eb = np.sqrt(saa / _CELL**2), np.sqrt(sbb / _CELL**2)  # rms band energy per cell
        tex_a, tex_b = ea > 1.0, eb > 1.0
        both = tex_a & tex_b
        c = np.where(both, np.abs(sab) / np.sqrt(saa * sbb + 1e-9), 0.0)
        agree += (c > 0.5) & both
        textured_any |= tex_a | tex_b
    cells = n_cells_valid & textured_any
    n = int(cells.sum())
    out["overlap_cells"] = float(n_cells_valid.sum())
    out["textured_cells"] = float(n)
    out["cell_match"] = float((agree[cells] / 2).mean()) if n else 0.0
    out["cell_match_strict"] = float((agree[cells] == 2).mean()) if n else 0.0
    return out


def _coverage(t_norm: np.ndarray) -> dict[str, float]:
    """Shares of a and of b that the other image covers once aligned (a copy: one of them is ~all covered)."""
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    quad = (square @ t_norm[:, :2].T + t_norm[:, 2]).astype(np.float32)
    if np.cross(quad[1] - quad[0], quad[2] - quad[1]) < 0:  # a mirrored transform reverses the winding
        quad = quad[::-1].copy()
    area, _ = cv2.intersectConvexConvex(square, quad)
    det = abs(float(np.linalg.det(t_norm[:, :2])))
    cov_a, cov_b = float(area), float(area) / max(det, 1e-9)
    return {"cover_a": cov_a, "cover_b": min(cov_b, 1.0), "cover": max(cov_a, min(cov_b, 1.0))}


def decide(measures: dict[str, float], min_inliers: int = MIN_INLIERS,
           min_cell_match: float = MIN_CELL_MATCH) -> tuple[bool, str]:
    """The rule on ``Verdict.measures``; apart from ``verify`` so that evaluation can sweep its thresholds."""
    inliers = int(measures.get("inliers", 0))
    if inliers < min_inliers:
        return False, f"too few consistent keypoint matches ({inliers})"
    score = measures.get("cell_match", 0.0)
    if score < min_cell_match:
        return False, f"aligned, but the picture differs in places (structure match {score:.2f})"
    return True, f"same picture: {inliers} matching keypoints, structure match {score:.2f}"


def _align(a: ImageFeatures, b: ImageFeatures) -> tuple[int, int, np.ndarray | None, bool, float]:
    """Best fit over direct and mirrored matching: (inliers, matches, matrix b->a, mirrored, median residual)."""
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
        if best[0] >= 3 * MIN_INLIERS:  # clearly aligned: no need to try the mirror
            break
    return best


def verify(a: ImageFeatures, b: ImageFeatures) -> Verdict:
    """Decide whether ``b`` is a copy (edited or not) of the same capture as ``a``."""
    inliers, n_matches, m, mirrored, resid = _align(a, b)
    measures = {"matches": float(n_matches), "inliers": float(inliers), "mirrored": float(mirrored),
                "residual": resid}
    if m is None or inliers < _PHOTOMETRIC_FROM:
        same, reason = decide(measures)
        return Verdict(same, reason, inliers, mirrored=mirrored, measures=measures)
    t_norm = _compose(m, a.size, b.size)
    measures.update(_coverage(t_norm))
    size_a, size_b = (a.thumb.shape[1], a.thumb.shape[0]), (b.thumb.shape[1], b.thumb.shape[0])
    m_thumb = _to_pixels(t_norm, size_a, size_b)
    ref, mov, m_ref = a.thumb, b.thumb, m_thumb
    if abs(np.linalg.det(m_thumb[:, :2])) > 1:  # warp the sharper side down onto the other, never up
        ref, mov = b.thumb, a.thumb
        m_ref = cv2.invertAffineTransform(m_thumb)
    size = (ref.shape[1], ref.shape[0])
    shrink = float(np.sqrt(abs(np.linalg.det(m_ref[:, :2]))))
    if shrink < 0.9:  # anti-alias before shrinking
        mov = cv2.GaussianBlur(mov, (0, 0), 0.5 * np.sqrt(1 / shrink**2 - 1))
    warped = cv2.warpAffine(mov, m_ref, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    valid = cv2.warpAffine(np.full(mov.shape, 255, np.uint8), m_ref, size, flags=cv2.INTER_NEAREST) > 0
    valid = cv2.erode(valid.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    measures.update(photometric(ref, warped, valid))
    measures["overlap"] = float(valid.mean())
    same, reason = decide(measures)
    return Verdict(same, reason, inliers, measures.get("cell_match", 0.0), t_norm, mirrored, measures)


def aligned_difference(img_a, img_b, verdict: Verdict) -> np.ndarray:
    """uint8 (h, w) map of where ``img_b`` differs from ``img_a`` once aligned to it (a's size; 0 outside).

    Both are brought to a common grey level first (mean and contrast over the overlap), so a colour filter
    shows as little and an overlay or a moved object shows brightly.
    """
    ga, gb = _grey(img_a).astype(np.float32), _grey(img_b).astype(np.float32)
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
