"""What changed between two copies: the verifier's alignment, its verdict in words, and a difference map.

``compute_difference`` is a worker function (it decodes and aligns: never on the GUI thread); it returns a
``Difference`` whose ``image`` is ready to show: the first copy greyed, with the places where the second
differs once lined up painted over it in red-orange, and what the second does not show at all (a crop) in
blue."""

from __future__ import annotations

import filecmp
import logging
import os
from dataclasses import dataclass

import cv2
import numpy as np
from PySide6.QtGui import QImage

from core import verify
from core.decode import read_full

log = logging.getLogger(__name__)

DECODE_SIDE = 1024  # both copies are compared at this long side: enough to see an edit, quick to align


@dataclass(frozen=True)
class Difference:
    """The outcome for one pair: ``image`` is None when the pair does not line up (``text`` says why)."""

    path_a: str
    path_b: str
    same: bool
    aligned: bool
    text: str
    image: QImage | None = None
    reason: str = ""  # the verifier's own words, for a tooltip


def describe(verdict: verify.Verdict, shown: float = 1.0) -> str:
    """The verdict in a sentence for people, e.g. "Same photo: aligned 212 points; mirrored." or "Same photo:
    the whole picture lines up."; ``shown``: the share of the first picture that the second covers once lined
    up."""
    # a copy of the whole picture is compared frame to frame (``core.verify``): no points to count
    lined = (
        "the whole picture lines up" if verdict.measures.get("frame") else f"aligned {verdict.inliers} points"
    )
    how = lined + ("; mirrored" if verdict.mirrored else "")
    if verdict.transform is None:
        return f"These two do not line up, so there is no difference to show ({verdict.reason})."
    crop = f" The second shows {shown:.0%} of the first (blue: not in it)." if shown < 0.97 else ""
    if verdict.same and verify.unsure(verdict.reason):
        return (
            f"Lines up ({how}), but maybe another shot: what differs looks like another exposure or a burst "
            f"frame rather than an edit. Compare them before removing either.{crop}"
        )
    if verdict.same:
        return f"Same photo: {how}.{crop}"
    return f"Lined up on {verdict.inliers} points, but not one capture: {verdict.reason}.{crop}"


def overlap(shape_a: tuple[int, ...], shape_b: tuple[int, ...], transform: np.ndarray) -> np.ndarray:
    """bool (h_a, w_a): where picture b lands on picture a under the verdict's ``transform`` (b's normalised
    coordinates to a's, (0, 0) and (1, 1) the outer corners)."""
    (ha, wa), (hb, wb) = shape_a[:2], shape_b[:2]
    t = np.vstack([np.asarray(transform, np.float64), [0.0, 0.0, 1.0]])
    m = (np.diag([wa, ha, 1.0]) @ t @ np.diag([1 / wb, 1 / hb, 1.0]))[:2]
    return cv2.warpAffine(np.ones((hb, wb), np.uint8), m, (wa, ha), flags=cv2.INTER_NEAREST) > 0


def overlay(base: np.ndarray, diff: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8: ``base`` (RGB, a's pixels) dimmed to grey, ``diff`` (0-255) painted over it in red-orange
    and, where ``inside`` is False (not in the other picture), a blue tint."""
    grey = base.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    out = np.repeat((grey * 0.45)[..., None], 3, axis=2)
    d = np.clip(diff.astype(np.float32) - 16, 0, None) * (255 / 239)  # JPEG noise and resampling stay dark
    out[..., 0] += d
    out[..., 1] += d * 0.45
    if inside is not None:
        out[~inside] = grey[~inside, None] * 0.3 + np.array([10, 45, 120], np.float32)
    return out.clip(0, 255).astype(np.uint8)


def _qimage(rgb: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(rgb)
    h, w, _ = rgb.shape
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()  # owns its pixels


IDENTICAL_TEXT = "Identical files: byte for byte the same, so nothing differs between them."


def _same_bytes(path_a: str, path_b: str) -> bool:
    """Whether the two files hold the same bytes (False when either cannot be read: the decode says why)."""
    try:
        return os.path.getsize(path_a) == os.path.getsize(path_b) and filecmp.cmp(
            path_a, path_b, shallow=False
        )
    except OSError:
        return False


def compute_difference(path_a: str, path_b: str, *, progress=None, cancel=None) -> Difference:
    """Worker function: line ``path_b`` up with ``path_a`` and map where it differs (in a's pixels)."""
    if progress:
        progress(0, 2, "Reading both copies")
    if _same_bytes(path_a, path_b):  # nothing can differ, and lining them up would say less
        return Difference(path_a, path_b, True, True, IDENTICAL_TEXT, reason="byte-identical files")
    img_a = np.asarray(read_full(path_a, max_side=DECODE_SIDE))
    img_b = np.asarray(read_full(path_b, max_side=DECODE_SIDE))
    if cancel is not None:
        cancel.raise_if_cancelled()
    if progress:
        progress(1, 2, "Lining them up")
    verdict = verify.verify(verify.extract(img_a), verify.extract(img_b))
    if verdict.transform is None:
        return Difference(path_a, path_b, verdict.same, False, describe(verdict), reason=verdict.reason)
    diff = verify.aligned_difference(img_a, img_b, verdict)
    inside = overlap(img_a.shape, img_b.shape, verdict.transform)
    text = describe(verdict, float(inside.mean()))
    log.debug("difference %s / %s: %s", path_a, path_b, text)
    return Difference(
        path_a, path_b, verdict.same, True, text, _qimage(overlay(img_a, diff, inside)), reason=verdict.reason
    )
