"""Two tiers through the whole engine: edited copies land in duplicates, other shots of a subject in similar
shots and never in duplicates; verdicts are cached and reused on a rescan."""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import logging
import os
import shutil
import sqlite3

import numpy as np
import pytest
from helpers import DATA
from PIL import Image

from training.augment import EDITS

VERIFY = DATA / "verify"
SHOTS = [
    ("leuven_a.jpg", "leuven_b.jpg"),
    ("toronto_a.jpg", "toronto_b.jpg"),
    ("facade_a.jpg", "facade_b.jpg"),
    ("uttower_a.jpg", "uttower_b.jpg"),
]
COPIES = ["flip", "rotate_90", "crop_75", "jpeg", "downscale", "grayscale", "text", "screenshot", "colour"]


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiers")
    for a, b in SHOTS:
        shutil.copy(VERIFY / a, root / a)
        shutil.copy(VERIFY / b, root / b)
    photo = Image.open(VERIFY / "photo.jpg").convert("RGB")
    photo.save(root / "photo.jpg", quality=95)
    for k, kind in enumerate(COPIES):
        EDITS[kind](photo, np.random.default_rng([7, k])).convert("RGB").save(
            root / f"photo_{kind}.jpg", quality=90
        )
    return root


@pytest.fixture(scope="module")
def scanned(library, tmp_path_factory, engine_factory):
    engine = engine_factory(tmp_path_factory.mktemp("cache"))
    lib = engine.scan([library])
    return engine, lib, lib.result(engine.default_threshold())


def _pairs(result, groups) -> set[frozenset[str]]:
    out = set()
    for g in groups:
        names = [os.path.basename(m.file.path) for m in g.members]
        out |= {frozenset(p) for p in itertools.combinations(names, 2)}
    return out


def test_edited_copies_are_duplicates(scanned):
    _, _, result = scanned
    dup = _pairs(result, result.groups)
    missed = [k for k in COPIES if frozenset(("photo.jpg", f"photo_{k}.jpg")) not in dup]
    assert not missed, f"copies not grouped with their original: {missed}"


def test_other_shots_are_never_duplicates(scanned):
    _, _, result = scanned
    dup = _pairs(result, result.groups)
    assert not [p for p in SHOTS if frozenset(p) in dup]
    names = {os.path.basename(m.file.path) for g in result.groups for m in g.members}
    assert not names & {n for p in SHOTS for n in p}


def test_other_shots_that_are_close_are_similar_shots(scanned):
    engine, lib, _ = scanned
    result = lib.result(engine.default_threshold(), lib.floor)
    similar = _pairs(result, result.similar_groups)
    shots_in_similar = [p for p in SHOTS if frozenset(p) in similar]
    # Each shot pair that the embedding put close enough to be a candidate must be a similar shot.
    i, j = lib.pairs.a, lib.pairs.b
    names = [os.path.basename(f.path) for f in lib.files]
    close = lib.feature_similarity() >= lib.similar_features  # close on both the embedding and the features
    candidates = {
        frozenset((names[a], names[b])) for a, b in zip(i[close].tolist(), j[close].tolist(), strict=True)
    }
    assert {frozenset(p) for p in SHOTS if frozenset(p) in candidates} <= {
        frozenset(p) for p in shots_in_similar
    }
    assert shots_in_similar, "at least one real other-shot pair is a candidate and lands in similar shots"


def test_every_two_similar_shots_of_a_group_are_close(scanned):
    # Four buildings of tests/data made one similar-shots group when half the pairs between two sets had
    # to be close: another building's photo beside a subject it is not close to. Every two members of a
    # group must be a pair that is close by the embedding and the features, and not one capture.
    engine, lib, _ = scanned
    result = lib.result(engine.default_threshold(), lib.floor)
    close = lib.feature_similarity() >= lib.similar_features
    names = [os.path.basename(f.path) for f in lib.files]
    candidates = {
        frozenset((names[a], names[b]))
        for a, b, ok, same in zip(lib.pairs.a.tolist(), lib.pairs.b.tolist(), close, lib.same, strict=True)
        if ok and not same
    }
    assert result.similar_groups
    for pair in _pairs(result, result.similar_groups):
        assert pair in candidates, f"{sorted(pair)} share a similar-shots group without being close"


def test_a_pair_said_not_to_be_a_duplicate_is_shown_among_similar_shots(scanned):
    # A new user's trial: exposure brackets the check took for copies, marked "not a duplicate", vanished
    # from both tiers instead of joining the similar shots (where another capture belongs).
    engine, lib, _ = scanned
    a, b = (
        next(f.path for f in lib.files if os.path.basename(f.path) == n)
        for n in ("photo.jpg", "photo_jpeg.jpg")
    )
    lib.ignored.add(tuple(sorted((a, b))))
    try:
        result = lib.result(engine.default_threshold(), lib.floor, remember=False)
    finally:
        lib.ignored.clear()
    pair = frozenset(("photo.jpg", "photo_jpeg.jpg"))
    assert pair not in _pairs(result, result.groups)
    assert pair in _pairs(result, result.similar_groups)


def test_verdicts_are_cached_and_reused_on_a_rescan(scanned, library):
    engine, first, result = scanned
    stats = first.stats["verification"]
    assert stats["verified"] > 0 and stats["features_extracted"] > 0
    again = engine.scan([library])
    st = again.stats["verification"]
    assert st["verified"] == 0 and st["features_extracted"] == 0
    # nothing read, so no keypoints either (the first scan's counts must not carry over)
    assert stats["keypoints_extracted"] > 0
    assert st["keypoints_extracted"] == 0 and st["frame_to_frame"] == 0 and st["from_previews"] == 0, st
    assert st["verdicts_cached"] == stats["verified"] + stats["verdicts_cached"]
    assert np.array_equal(again.same, first.same)
    second = again.result(engine.default_threshold())
    assert second.groups == result.groups


def test_a_changed_file_is_verified_again(scanned, library, tmp_path):
    engine, first, _ = scanned
    root = tmp_path / "lib"
    shutil.copytree(library, root)
    lib = engine.scan([root])  # new paths: verified once
    target = root / "photo_jpeg.jpg"
    Image.open(target).save(target, quality=60)  # same picture, new bytes
    again = engine.scan([root])
    assert 0 < again.stats["verification"]["verified"] < lib.stats["verification"]["verified"]


def _with_exif(im: Image.Image, path, **fields) -> None:
    exif = Image.Exif()
    ifd = exif.get_ifd(0x8769)
    tags = {"time": 0x9003, "subsec": 0x9291, "exposure": 0x829A, "f": 0x829D, "iso": 0x8827}
    for name, value in fields.items():
        ifd[tags[name]] = value
    im.save(path, "JPEG", quality=92, exif=exif)


def test_the_cameras_record_tells_bracket_and_burst_frames_from_copies(tmp_path, engine_factory):
    """A bracket (same second, other exposure) and a burst (same second, other sub-second) are other captures
    even when their pixels align as one; an edited copy keeps the camera's record (or part of it)."""
    from PIL import ImageEnhance

    root = tmp_path / "camera"
    root.mkdir()
    photo = Image.open(VERIFY / "photo.jpg").convert("RGB")
    t = "2024:07:14 18:02:31"
    _with_exif(photo, root / "IMG_0001.jpg", time=t, subsec="120", exposure=1 / 250, f=8.0, iso=100)
    _with_exif(
        ImageEnhance.Brightness(photo).enhance(1.6),
        root / "IMG_0002.jpg",
        time=t,
        subsec="120",
        exposure=1 / 100,
        f=8.0,
        iso=100,
    )  # the bracket's brighter frame
    _with_exif(
        photo.rotate(0.4), root / "IMG_0003.jpg", time=t, subsec="245", exposure=1 / 250, f=8.0, iso=100
    )  # the next frame of a burst
    small = photo.resize((photo.width // 2, photo.height // 2))
    _with_exif(small, root / "IMG_0001_small.jpg", time=t, exposure=1 / 250)  # an export that dropped fields
    engine = engine_factory()
    lib = engine.scan([root])
    result = lib.result(engine.default_threshold(), lib.floor)
    dup = _pairs(result, result.groups)
    assert dup == {frozenset(("IMG_0001.jpg", "IMG_0001_small.jpg"))}
    others = [frozenset(("IMG_0001.jpg", "IMG_0002.jpg")), frozenset(("IMG_0001.jpg", "IMG_0003.jpg"))]
    names = [os.path.basename(f.path) for f in lib.files]
    reasons = {
        frozenset((names[a], names[b])): why
        for a, b, why in zip(lib.pairs.a.tolist(), lib.pairs.b.tolist(), lib.reasons, strict=True)
    }
    for pair in others:
        assert pair not in dup
        if pair in reasons:  # a candidate: the camera's record decided, whatever the pixels say
            assert "another capture" in reasons[pair]
    assert lib.stats["verification"]["camera_data"] >= 1


@pytest.mark.parametrize(
    "fields",
    [
        {"time": "2024:07:14 18:02:31;x"},
        {"time": "2024:07:14 18:02:31", "subsec": "12;3"},
        {"time": "2024:07:14 18:02:31", "subsec": "1;exposure=9"},
    ],
)
def test_a_semicolon_in_the_cameras_record_is_not_a_stopped_scan(tmp_path, engine_factory, fields):
    """The capture record is kept as "name=value;..." text: a value holding ";" made parsing it raise, and
    the whole scan failed; one holding ";name=value" could pose as another field. A copy with that record
    (and one whose record is whole) is still the same photo."""
    root = tmp_path / "odd"
    root.mkdir()
    photo = Image.open(VERIFY / "photo.jpg").convert("RGB")
    _with_exif(photo, root / "IMG_0001.jpg", exposure=1 / 250, **fields)
    _with_exif(
        photo.resize((photo.width // 2, photo.height // 2)), root / "copy.jpg", exposure=1 / 250, **fields
    )
    engine = engine_factory()
    lib = engine.scan([root])
    result = lib.result(engine.default_threshold(), lib.floor)
    assert _pairs(result, result.groups) == {frozenset(("IMG_0001.jpg", "copy.jpg"))}


@pytest.mark.parametrize("cached", [True, False])
def test_pairs_are_checked_in_blocks_with_few_features_held_and_the_same_verdicts(
    scanned, library, tmp_path, engine_factory, monkeypatch, cached
):
    """Memory must not grow with the number of candidate pairs: all features held at once, 1.4M pairs of a
    20,000-photo library took 7 GB. In blocks of 2 pairs with at most 3 images' features kept between
    blocks (read again from the cache, or extracted again without one), the verdicts are the same."""
    import gc

    from core import confirm
    from core import verify as V

    _, first, _ = scanned
    monkeypatch.setattr(confirm, "PAIRS_PER_BLOCK", 2, raising=False)
    monkeypatch.setattr(confirm, "FEATURES_HELD", 3, raising=False)
    held = []
    real_verify = V.verify

    def counting(a, b, **kw):
        held.append(sum(isinstance(o, V.ImageFeatures) for o in gc.get_objects()))
        return real_verify(a, b, **kw)

    monkeypatch.setattr(V, "verify", counting)
    engine = engine_factory(tmp_path / "cache" if cached else None)
    lib = engine.scan([library])
    assert np.array_equal(lib.same, first.same)
    # features read back from the cache give the same verdicts; a measure in a reason may differ by 0.01
    assert [r.split(":")[0] for r in lib.reasons] == [r.split(":")[0] for r in first.reasons]
    # every pair once, and again with keypoints where it was not settled frame to frame
    st = first.stats["verification"]
    assert st["verified"] <= len(held) <= 2 * st["verified"] and st["verified"] > 3
    # kept between blocks + one block's two pairs + the last one extracted, still named by its loop (all
    # at once: 16 here)
    assert max(held) <= 3 + 2 * 2 + 1, held


def test_an_unchanged_librarys_verdicts_are_read_back_whole(scanned, library, caplog):
    """A rescan of an unchanged library reads its verdicts from the last scan's saved table, not pair by
    pair from the cache (there: emptied, and nothing is checked again); a damaged table means looking them
    up or checking them again, with the same verdicts."""
    engine, first, _ = scanned
    engine.scan([library])  # this library's verdicts are the last saved (other tests scanned others)
    with contextlib.closing(sqlite3.connect(engine.cache_dir / "cache.sqlite3")) as db, db:
        db.execute("DELETE FROM verdicts")
    again = engine.scan([library])
    assert again.stats["verification"]["verified"] == 0
    assert np.array_equal(again.same, first.same) and again.reasons == first.reasons
    table = max((engine.cache_dir / "index").glob("verdicts-*.npz"), key=lambda p: p.stat().st_mtime_ns)
    data = bytearray(table.read_bytes())
    data[len(data) // 2] ^= 0xFF
    table.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="core.pair_store"):
        third = engine.scan([library])
    assert "unusable" in caplog.text
    assert third.stats["verification"]["verified"] > 0  # the cache had none left: checked again
    assert np.array_equal(third.same, first.same)


def test_reasons_are_one_per_pair_without_a_string_per_pair_held(scanned):
    """``library.reasons`` answers for every pair like a tuple would, but holds only the checked pairs'."""
    from core.engine import PairReasons

    _, lib, _ = scanned
    reasons = lib.reasons
    assert isinstance(reasons, PairReasons) and len(reasons) == len(lib.pairs)
    as_list = list(reasons)
    assert [reasons[k] for k in range(len(reasons))] == as_list == reasons[:]
    assert reasons[-1] == as_list[-1] and reasons == as_list and reasons != as_list[:-1]
    close = lib.pairs.similarity >= lib.verify_from
    assert all(why != "not close enough to be a copy" for why, c in zip(as_list, close, strict=True) if c)
    assert all(why == "not close enough to be a copy" for why, c in zip(as_list, close, strict=True) if not c)
    with pytest.raises(IndexError):
        reasons[len(reasons)]
    small = PairReasons(4, np.array([1, 3]), ("one", "three"), "-")
    assert list(small) == ["-", "one", "-", "three"] and small[-3] == "one" and small[1:3] == ["one", "-"]


def test_similar_shots_show_a_photo_with_copies_once(tmp_path, engine_factory):
    # A new user's trial: a photo and its edited copy were both listed among similar shots beside another
    # shot of the subject; the copy is already in duplicates, where its group's best copy stands for it.
    root = tmp_path / "lib"
    root.mkdir()
    for name in ("leuven_a.jpg", "leuven_b.jpg"):
        shutil.copy(VERIFY / name, root / name)
    Image.open(VERIFY / "leuven_a.jpg").save(root / "leuven_a_resaved.jpg", quality=70)
    engine = engine_factory(tmp_path / "cache")
    lib = engine.scan([root])
    result = lib.result(engine.default_threshold(), lib.floor)
    (group,) = result.groups
    best, copy = (os.path.basename(m.file.path) for m in group.members)
    assert {best, copy} == {"leuven_a.jpg", "leuven_a_resaved.jpg"}
    shots = _pairs(result, result.similar_groups)
    assert frozenset((best, "leuven_b.jpg")) in shots
    assert not any(copy in pair for pair in shots)


def test_a_copy_leaves_similar_shots_only_where_its_best_copy_stands_for_it():
    # A second trial: a photo verified as a copy of A but not grouped with it (complete linkage), and close to
    # A's other copy, vanished from both tabs once pairs through that copy were left out of similar shots.
    from core.engine import similar_candidates, similar_rows, through_best
    from core.results import Pairs

    n = 3  # 0: A, the best copy of the group {A, A'}; 1: A'; 2: B
    best = np.array([-1, 0, -1])
    pairs = Pairs(np.array([0, 0, 1]), np.array([1, 2, 2]), np.array([0.99, 0.9, 0.9], np.float32))
    none = np.zeros(0, np.int64)

    def rows(same, ignored=none, close=(True, True, True)):
        cand, marked = similar_candidates(pairs, np.array(same), ignored, n)
        cand &= np.array(close)
        return similar_rows(pairs, cand, marked, best, through_best(pairs, cand, best, n), n).tolist()

    # A-B another shot: A stands for A' beside B, so A'-B is not listed again
    assert rows([True, False, False]) == [False, True, False]
    # A-B verified (a duplicate pair, but not in A's group): nothing stands for A' beside B, so A'-B stays
    assert rows([True, True, False]) == [False, False, True]
    # marked "not a duplicate" by a person: listed whatever stands for it
    assert rows([True, False, False], ignored=np.array([1 * n + 2])) == [False, True, True]
    # A and B not close by the features: A stands for nothing there, so A'-B (close) stays
    assert rows([True, False, False], close=(True, False, True)) == [False, False, True]


def _doubt_library(root):
    """A photo, a byte-identical copy of it and two edited copies: one duplicate group."""
    root.mkdir()
    photo = Image.open(VERIFY / "photo.jpg").convert("RGB")
    photo.save(root / "photo.jpg", quality=95)
    shutil.copy(root / "photo.jpg", root / "photo_same.jpg")
    for k, kind in enumerate(("downscale", "grayscale")):
        EDITS[kind](photo, np.random.default_rng([3, k])).convert("RGB").save(root / f"photo_{kind}.jpg")
    return root


@pytest.mark.parametrize("unsure", [False, True])
def test_a_pair_the_check_is_unsure_of_stays_a_duplicate_that_auto_select_leaves(
    tmp_path, engine_factory, monkeypatch, capsys, unsure
):
    """Verified pairs whose measures look like another capture (``core.verify.doubt`` over ``DOUBT_FROM``;
    here every edited pair, or none) stay duplicates; every member of such a pair is flagged ``unsure`` in the
    result, its saved groups read back, the JSON and the CSV, and no auto-select rule marks it. A
    byte-identical copy in the group is flagged too (the check was not sure of the photo it is a copy of), but
    a rule marks it all the same while its twin stays: no picture goes. Of two unsure twins neither of which
    the rule keeps (Keep the newest keeps an edited copy here), one goes and the other stays."""
    from core import verify
    from core.report import csv_text, scan_json
    from core.selection import RULES, choose, left_unsure

    monkeypatch.setattr(verify, "DOUBT_FROM", -np.inf if unsure else np.inf)
    root = _doubt_library(tmp_path / "photos")
    engine = engine_factory(tmp_path / "cache")
    for _ in range(2):  # the second scan reads verdicts and groups back from the first
        lib = engine.scan([root])
        result = lib.result(engine.default_threshold(), lib.floor)
        assert len(result.groups) == 1 and len(result.groups[0].members) == 4
        flags = {os.path.basename(m.file.path): m.unsure for m in result.groups[0].members}
        assert flags == dict.fromkeys(flags, unsure)
        reasons = [r for r in lib.reasons if r.startswith(("same", "probably", "byte"))]
        assert sum(verify.unsure(r) for r in reasons) == (5 if unsure else 0)  # all pairs but the identical
        files = scan_json(result)["groups"][0]["files"]
        assert [f["unsure"] for f in files] == [unsure] * 4
        for rule in RULES:
            if rule != "reference":
                chosen = {os.path.basename(p) for p in choose(result, rule)}
                if unsure:  # one of the two byte-identical files, never both
                    assert len(chosen) == 1 and chosen < {"photo.jpg", "photo_same.jpg"}, (rule, chosen)
                else:
                    assert len(chosen) == 3, rule
                assert left_unsure(result, rule) == (2 if unsure else 0), rule  # the unsure edits
        rows = list(csv.DictReader(io.StringIO(csv_text(result))))
        assert [r["unsure"] for r in rows] == [str(unsure)] * 4
    # the command line's summary says how many files are not surely copies
    from core.cli import main

    assert main(["scan", str(root), "--cache-dir", str(tmp_path / "cli-cache")]) == 0
    said = [x for x in capsys.readouterr().out.splitlines() if x.startswith("maybe not copies")]
    assert len(said) == unsure and all(x.startswith("maybe not copies: 4 files in 1 group (") for x in said)


def test_a_doubt_outlives_the_strictness_and_a_person_s_decision_settles_it(
    tmp_path, engine_factory, monkeypatch
):
    """A file the check was unsure of with another stays unsure when a stricter threshold leaves that other
    file out of its group (a trial: at 95 % a bracket frame lost its CHECK and auto-select marked it with its
    copy, every file of that exposure). Its ``unsure_with`` names the file outside last. Once a person calls
    the pair "not a duplicate", the doubt is settled and goes."""
    from core import verify
    from core.selection import choose

    monkeypatch.setattr(verify, "DOUBT_FROM", np.inf)  # every verdict sure
    root = _doubt_library(tmp_path / "photos")
    engine = engine_factory(tmp_path / "cache")
    lib = engine.scan([root])
    result = lib.result(engine.default_threshold(), lib.floor)
    assert len(result.groups) == 1 and not result.groups[0].unsure
    # the check's verdict on the edited copy against a file that this strictness leaves out of the group
    # (here simply one that is not in it: the verdicts are the scan's data, set as a scan records them)
    outside = str(tmp_path / "elsewhere.jpg")
    edited = str(root / "photo_grayscale.jpg")
    lib.unsure = {tuple(sorted((edited, outside)))}
    group = lib.result(engine.default_threshold(), lib.floor).groups[0]
    flagged = {m.file.path: m.unsure_with for m in group.members if m.unsure}
    assert flagged == {edited: (outside,)}
    assert edited not in choose(lib.result(engine.default_threshold(), lib.floor), "resolution")
    # with a partner inside the group too, the members come first
    inside = str(root / "photo_downscale.jpg")
    lib.unsure.add(tuple(sorted((edited, inside))))
    group = lib.result(engine.default_threshold(), lib.floor).groups[0]
    assert next(m.unsure_with for m in group.members if m.file.path == edited) == (inside, outside)
    lib.ignored.update({tuple(sorted((edited, outside))), tuple(sorted((edited, inside)))})
    result = lib.result(engine.default_threshold(), lib.floor)
    assert not any(m.unsure for g in result.groups for m in g.members)
    # in a group of byte-identical files a doubt about a file outside it cannot matter: no CHECK there (a
    # trial saw EXACT and CHECK on one group)
    photo = str(root / "photo.jpg")
    lib.unsure = {tuple(sorted((photo, outside)))}
    assert next(
        m for m in lib.result(engine.default_threshold(), lib.floor).groups[0].members if m.file.path == photo
    ).unsure
    strict = lib.result(0.9999, lib.floor).groups
    assert len(strict) == 1 and strict[0].exact and not strict[0].unsure
