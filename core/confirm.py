"""Confirm candidate pairs as the same capture: the step between "close by embedding" and "a duplicate".

The embedding proposes pairs; ``core.verify`` decides whether two images are one capture (edited or not) or
another shot of the subject. Here that decision is run for a scan's candidates: features once per image
(extracted in threads from a reduced decode, cached), a verdict once per pair (cached, keyed by both files'
size and mtime and the verifier's version), byte-identical pairs accepted without looking.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from core import layout, verify
from core.cache import EmbeddingCache
from core.decode import same_capture
from core.errors import DecodeError
from core.previews import PreviewSpool
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.results import ImageRecord, Pairs

log = logging.getLogger(__name__)

IDENTICAL = "byte-identical files"
DIFFERENT_CAPTURES = "another capture: the camera recorded a different time or exposure"
# Candidate pairs checked together, and the most images whose features stay in memory between blocks
# (~175 KB each: the colour thumbnail, ORB points and descriptors, mirrored too).
PAIRS_PER_BLOCK = 256
FEATURES_HELD = 768


@dataclass(frozen=True)
class Confirmed:
    """Per candidate pair (aligned with the pairs table's rows): whether it is one capture, and why."""

    same: np.ndarray  # bool (P,)
    reasons: tuple[str, ...]
    stats: dict


# What a check that compares pairs counts of its own work (stats): none of it is done when every verdict
# comes from a saved scan
WORK_COUNTS = ("features_extracted", "from_previews", "keypoints_extracted", "frame_to_frame")


def verdicts_key(library: str, verify_from: float, checked: np.ndarray | None = None) -> str:
    """A name for the verdicts on a library's pairs (``core.pair_store.library_key``) checked from
    ``verify_from``, by this verifier; ``checked``: the rows of the pairs table that were checked."""
    # The pairs checked are the close ones and those with near layouts (core.layout), which the library's key
    # does not cover (a scan whose rows carry no layout, such as one from old cluster shards, checks fewer):
    # the rows themselves are part of the name, so groups saved beside other verdicts are never read back.
    version = f"v{verify.VERSION}.{verify.RULE_VERSION}\0layout{layout.VERSION}/{layout.NEAR_BITS}"
    text = f"{library}\0{verify_from!r}\0{version}"
    h = hashlib.blake2b(text.encode(), digest_size=16)
    if checked is not None:
        h.update(np.ascontiguousarray(checked, np.int64).tobytes())
    return h.hexdigest()


def _stats_key(a: ImageRecord, b: ImageRecord) -> str:
    return f"{a.size}:{a.mtime_ns}/{b.size}:{b.mtime_ns}/v{verify.VERSION}.{verify.RULE_VERSION}"


def confirm_pairs(
    files: Sequence[ImageRecord],
    pairs: Pairs,
    *,
    identical: Callable[[int, int], bool],
    cache: EmbeddingCache | None = None,
    workers: int | None = None,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
    previews: PreviewSpool | None = None,
) -> Confirmed:
    """Verify the ``pairs`` of ``files`` (positions into ``files``) as the same capture.

    Args:
        identical: whether two files are byte-identical (those are accepted as they are).
        cache: where features and verdicts are kept between scans (None: none).
        workers: threads for extraction and verification (default: the CPU count).
        previews: the pictures the scan decoded (``core.previews``): features come from them rather than
            from the files read again, where they are kept for the file as it is.

    Returns:
        ``Confirmed``: ``same[k]`` and ``reasons[k]`` for every pair, and counts for the scan's stats.
    """
    i, j = pairs.a, pairs.b
    n = len(pairs)
    same = np.zeros(n, bool)
    reasons = [""] * n
    todo: list[int] = []
    keys = {}
    camera = 0
    for k, (a, b) in enumerate(zip(i.tolist(), j.tolist(), strict=True)):
        if identical(a, b):
            same[k], reasons[k] = True, IDENTICAL
        elif same_capture(files[a].capture, files[b].capture) is False:
            # The camera recorded two captures (another time, sub-second or exposure): a burst frame or a
            # bracket, however alike the pixels; an edit keeps these fields.
            reasons[k] = DIFFERENT_CAPTURES
            camera += 1
        else:
            todo.append(k)
            keys[(files[a].path, files[b].path)] = _stats_key(files[a], files[b])
    known = cache.verdicts(keys) if cache and todo else {}
    fresh = []
    for k in todo:
        hit = known.get((files[i[k]].path, files[j[k]].path))
        if hit is None:
            fresh.append(k)
        else:
            same[k], reasons[k] = hit
    stats = {
        "candidates": n,
        "identical": n - len(todo) - camera,
        "camera_data": camera,
        "verdicts_cached": len(todo) - len(fresh),
        "verified": len(fresh),
        **dict.fromkeys(WORK_COUNTS, 0),
    }
    if not fresh:
        return Confirmed(same, tuple(reasons), stats)

    # Pairs are checked in blocks so that memory does not grow with their number: each block's images are
    # read from the cache or extracted, its verdicts stored, and the features no later block needs dropped;
    # at most FEATURES_HELD images' features stay in memory (an evicted one is read again if needed). All at
    # once, 1.4M candidate pairs of a 20,000-photo library held 7 GB and growing.
    fresh.sort(key=lambda k: (int(i[k]), int(j[k])))
    blocks = [fresh[s : s + PAIRS_PER_BLOCK] for s in range(0, len(fresh), PAIRS_PER_BLOCK)]
    last_use: dict[int, int] = {}
    for bi, block in enumerate(blocks):
        for k in block:
            last_use[int(i[k])] = last_use[int(j[k])] = bi
    # Keypoints (~8 of an extraction's ~10 ms) only for images with a pair that cannot be compared frame to
    # frame: two shapes (by the files' sizes), over all their pairs, whichever block checks them. An image
    # whose pairs all have its shape is extracted without them (~2 ms); a pair that then does not pass frame
    # to frame gets them (from the grey picture kept, within its block).
    framed: dict[int, bool] = dict.fromkeys(last_use, True)
    for k in fresh:
        a, b = files[i[k]], files[j[k]]
        if not verify.frame_shapes((a.width, a.height), (b.width, b.height)):
            framed[int(i[k])] = framed[int(j[k])] = False
    total = len(last_use) + len(fresh)
    progress(0, total, f"Checking {len(fresh)} pairs of look-alikes")
    feats: dict[int, verify.ImageFeatures | None] = {}  # in order of arrival: the oldest go first
    seen: set[int] = set()
    done = extracted = previewed = with_keypoints = frame_to_frame = 0

    def extract(job: tuple[int, bool]) -> tuple[int, verify.ImageFeatures | None, bytes, bool, bool]:
        """``features(job)``, where any failure leaves the image without features: one image must never
        stop a scan's check (its pairs stay unconfirmed, "could not be read again")."""
        try:
            return features(job)
        except Exception:  # noqa: BLE001 - reported in the log, with its traceback
            log.exception("extracting verification features of %s failed", files[job[0]].path)
            return job[0], None, b"", False, True

    def features(job: tuple[int, bool]) -> tuple[int, verify.ImageFeatures | None, bytes, bool, bool]:
        """An image's features (with keypoints or not) and, when there is a cache, their bytes for it:
        coded here, in the pool (1.1 ms an image, which the collecting thread did one after another);
        whether they came from the scan's preview of it; and whether the image was read (decoded) for
        them. Keypoints for features extracted without them come from the grey picture they still hold,
        when they do, without reading anything."""
        x, keypoints = job
        rec = files[x]
        light = feats.get(x)
        if keypoints and light is not None and light.gray is not None:
            f = verify.with_keypoints(light)
            return x, f, f.to_bytes() if cache else b"", False, False
        kept = previews.get(rec.path, rec.size, rec.mtime_ns) if previews is not None else None
        f = None
        if kept:
            try:
                with Image.open(io.BytesIO(kept)) as im:
                    f = verify.extract(im, source=rec.path, keypoints=keypoints)
            except (DecodeError, ValueError, OSError, MemoryError) as e:  # the file itself, then
                log.info("preview of %s unusable (%s): reading the file", rec.path, e)
        from_preview = f is not None
        if f is None:
            try:
                f = verify.extract(rec.path, keypoints=keypoints)
            except (DecodeError, ValueError, OSError, MemoryError) as e:
                log.info("no verification features for %s: %s", rec.path, e)
                return x, None, b"", False, True
        return x, f, f.to_bytes() if cache else b"", from_preview, True

    def check(job: tuple[int, bool]) -> tuple[int, verify.Verdict | None]:
        """A pair's verdict; None when it needs keypoints that one of its images was extracted without
        (``frame``: compare frame to frame first, see ``core.verify.verify``)."""
        k, frame = job
        fa, fb = feats.get(int(i[k])), feats.get(int(j[k]))
        if fa is None or fb is None:
            return k, verify.Verdict(False, "one of the two files could not be read again to compare them")
        try:
            return k, verify.verify(fa, fb, frame=frame)
        except verify.NeedKeypoints:
            return k, None
        except Exception as e:  # noqa: BLE001 - one pair must never stop a scan: it stays unconfirmed
            log.exception("verifying %s and %s failed", files[i[k]].path, files[j[k]].path)
            return k, verify.Verdict(False, f"could not be compared ({type(e).__name__})")

    def step() -> None:
        nonlocal done
        done += 1
        if done % 16 == 0:
            progress(done, total, "Comparing look-alikes in detail")

    def count(x: int) -> None:  # an image's features at hand: counted once, however often it is read
        if x not in seen:
            seen.add(x)
            step()

    with (
        verify.one_thread_each(),
        ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1, thread_name_prefix="verify") as pool,
    ):

        def settle(k: int, v: verify.Verdict, verdicts: dict) -> None:
            nonlocal frame_to_frame
            same[k], reasons[k] = v.same, v.reason
            frame_to_frame += bool(v.same and v.measures.get("frame"))
            a, b = files[i[k]], files[j[k]]
            verdicts[(a.path, b.path)] = (_stats_key(a, b), bool(v.same), v.reason)
            step()

        def collect(jobs: list[tuple[int, bool]]) -> None:
            """Extract ``jobs`` in the pool, keep their features and store them in the cache."""
            nonlocal extracted, previewed, with_keypoints
            new_features: dict[str, tuple[int, int, bytes]] = {}
            for x, f, coded, from_preview, decoded in pool.map(extract, jobs):
                cancel.raise_if_cancelled()
                extracted += decoded  # images read, once each unless their grey picture was let go
                previewed += from_preview
                if f is None and feats.get(x) is not None:
                    continue  # read again for keypoints and failed (changed meanwhile?): keep what it had
                feats[x] = f
                with_keypoints += f is not None and f.keypoints
                if coded:
                    rec = files[x]
                    new_features[rec.path] = (rec.size, rec.mtime_ns, coded)
                count(x)
            if cache and new_features:
                cache.store_verify_features(verify.VERSION, new_features)

        for bi, block in enumerate(blocks):
            want = sorted({int(x) for k in block for x in (i[k], j[k])} - feats.keys())
            stored = (
                cache.verify_features(
                    verify.VERSION, ((files[x].path, files[x].size, files[x].mtime_ns) for x in want)
                )
                if cache and want
                else {}
            )
            missing = []
            for x in want:
                try:
                    got = verify.ImageFeatures.from_bytes(stored[files[x].path])
                except (KeyError, ValueError):
                    missing.append((x, not framed[x]))
                    continue
                if got.keypoints or framed[x]:
                    feats[x] = got
                    count(x)
                else:  # cached without keypoints, and a pair of two shapes needs them
                    missing.append((x, True))
            del stored
            collect(missing)
            verdicts: dict[tuple[str, str], tuple[str, bool, str]] = {}
            later = []
            for k, v in pool.map(check, [(k, True) for k in block]):
                cancel.raise_if_cancelled()
                if v is None:
                    later.append(k)
                else:
                    settle(k, v, verdicts)
            if later:  # compared frame to frame and not the same: with keypoints, as any other pair
                need = {int(x) for k in later for x in (i[k], j[k])}
                need = sorted(x for x in need if feats.get(x) is not None and not feats[x].keypoints)
                collect([(x, True) for x in need])
                for k, v in pool.map(check, [(k, False) for k in later]):
                    cancel.raise_if_cancelled()
                    settle(k, v or verify.Verdict(False, "could not be compared"), verdicts)
            if cache:
                cache.store_verdicts(verdicts)
            for x, f in feats.items():  # the grey pictures kept for keypoints: this block is done with them
                if f is not None and f.gray is not None:
                    feats[x] = dataclasses.replace(f, gray=None)
            for x in [x for x in feats if last_use[x] <= bi]:
                del feats[x]
            while len(feats) > FEATURES_HELD:
                del feats[next(iter(feats))]
    stats["features_extracted"] = extracted
    stats["from_previews"] = previewed
    stats["keypoints_extracted"] = with_keypoints
    stats["frame_to_frame"] = frame_to_frame
    progress(total, total, "Compared look-alikes")
    return Confirmed(same, tuple(reasons), stats)
