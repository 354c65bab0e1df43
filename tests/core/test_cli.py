"""The `lookalike` console script: the JSON contract field by field, CSV, similar, exit codes."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DATA, copy_demo

EXE = Path(sys.executable).with_name("lookalike")


def run(*args, cwd=None, env=None):
    return subprocess.run(
        [str(EXE), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300, env=env
    )


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = copy_demo(
        tmp_path_factory.mktemp("lib"),
        [
            "Camera/kite_sky.jpg",
            "Downloads/kite_sky_small.jpg",
            "Edited/kite_sky_rotated.jpg",
            "Camera/forest_path.jpg",
            "Backup/forest_path.jpg",
            "Camera/storm_clouds.jpg",
        ],
    )
    shutil.copy(DATA / "truncated.jpg", root / "broken.jpg")
    return root


def test_scan_json_contract(library, tmp_path):
    out = tmp_path / "r.json"
    p = run("scan", library, "--json", out, "--csv", tmp_path / "r.csv", "--cache-dir", tmp_path / "c")
    assert p.returncode == 0, p.stderr
    assert "2 groups" in p.stdout and "1 problem," in p.stdout  # counts agree with their nouns
    d = json.loads(out.read_text())
    assert set(d) == {"threshold", "model", "files", "groups", "similar_groups", "pairs", "problems", "blank"}
    assert d["blank"] == []
    for g in d["similar_groups"]:  # the same shape as duplicate groups
        assert set(g) == {"exact", "files", "raw_jpeg_pairs"} and len(g["files"]) >= 2
        assert all(set(f) == {"path", "width", "height", "bytes", "similarity", "unsure"} for f in g["files"])
    assert isinstance(d["threshold"], float) and 0 < d["threshold"] <= 1
    assert set(d["model"]) == {"name", "sha256"} and len(d["model"]["sha256"]) == 64
    assert d["files"] == 6
    assert len(d["groups"]) == 2
    for g in d["groups"]:
        assert set(g) == {"exact", "files", "raw_jpeg_pairs"} and isinstance(g["exact"], bool)
        assert g["raw_jpeg_pairs"] == []  # no RAW files here (tests/core/test_raw.py has them)
        for f in g["files"]:
            assert set(f) == {"path", "width", "height", "bytes", "similarity", "unsure"}
            assert isinstance(f["unsure"], bool)  # verified, but not surely one photo: never auto-selected
            assert os.path.isabs(f["path"]) and f["width"] > 0 and f["height"] > 0
            assert f["bytes"] == os.path.getsize(f["path"])
            assert isinstance(f["similarity"], float) and d["threshold"] <= f["similarity"] <= 1.0
    names = sorted(sorted(os.path.basename(f["path"]) for f in g["files"]) for g in d["groups"])
    assert names == [
        ["forest_path.jpg", "forest_path.jpg"],
        ["kite_sky.jpg", "kite_sky_rotated.jpg", "kite_sky_small.jpg"],
    ]
    # Every pair at or above the threshold, absolute paths.
    assert len(d["pairs"]) == 4
    for pr in d["pairs"]:
        assert set(pr) == {"a", "b", "similarity"} and pr["similarity"] >= d["threshold"]
        assert os.path.isabs(pr["a"]) and os.path.isabs(pr["b"])
    assert d["problems"] == [
        {"path": str(library / "broken.jpg"), "reason": "file is truncated (incomplete download or copy?)"}
    ]
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert len(rows) == 5 and {r["group"] for r in rows} == {"1", "2"}


@pytest.mark.parametrize("int8", ["0", "1"], ids=["float", "int8"])
def test_a_strict_threshold_is_not_lifted_by_the_layout_check(tmp_path, int8):
    """A pair under a strict --threshold with the same grey layout (any resized copy has one) was checked and
    counted *at* that threshold: the layout check, meant for copies a colour filter took under the candidate
    cosine, made `--threshold 0.9995` group a downscaled copy at cosine 0.999."""
    root = copy_demo(tmp_path / "lib", ["Camera/kite_sky.jpg", "Downloads/kite_sky_small.jpg"])
    out = tmp_path / "strict.json"
    env = {**os.environ, "LOOKALIKE_INT8": int8}
    p = run("scan", root, "--threshold", "0.9995", "--json", out, "--no-cache", env=env)
    assert p.returncode == 0, p.stderr
    assert json.loads(out.read_text())["groups"] == []
    p = run("scan", root, "--json", out, "--no-cache", env=env)
    assert p.returncode == 0, p.stderr
    assert len(json.loads(out.read_text())["groups"]) == 1  # at the default strictness they are copies


def test_threshold_flag_changes_result(library, tmp_path):
    out = tmp_path / "strict.json"
    assert run("scan", library, "--threshold", "0.9995", "--json", out, "--no-cache").returncode == 0
    d = json.loads(out.read_text())
    assert d["threshold"] == 0.9995
    # Only copies with the same pixels survive: the byte-identical pair and, when the model embeds turns
    # (manifest turned_embeddings), the losslessly turned copy (0.9998 with the float graph; 0.9991 with the
    # int8 graph, whose last digits are coarser); the shrunk copy (0.9990 float, 0.9986 int8) drops out.
    from core.embed import Embedder

    groups = sorted(sorted(os.path.basename(f["path"]) for f in g["files"]) for g in d["groups"])
    expected = [["forest_path.jpg", "forest_path.jpg"]]
    embedder = Embedder(device="cpu")
    if embedder.bundle.turned_embeddings and embedder.graph == "onnx":
        expected.append(["kite_sky.jpg", "kite_sky_rotated.jpg"])
    assert groups == sorted(expected)
    assert all(p["similarity"] >= 0.9995 for p in d["pairs"])


def test_similar_threshold_sets_the_similar_shots_tier(library, tmp_path):
    out = tmp_path / "loose.json"
    p = run("scan", library, "--similar-threshold", "0.5", "--json", out, "--no-cache")
    assert p.returncode == 0, p.stderr
    line = [x for x in p.stdout.splitlines() if x.startswith("similar shots")]
    assert line and "threshold 0.500" in line[0]
    d = json.loads(out.read_text())
    assert int(line[0].split(": ")[1].split(" group")[0]) == len(d["similar_groups"])
    duplicate_pairs = {frozenset((q["a"], q["b"])) for q in d["pairs"]}
    for g in d["similar_groups"]:  # a similar-shot pair is never also a duplicate pair
        paths = [f["path"] for f in g["files"]]
        assert not any(
            frozenset((x, y)) in duplicate_pairs for k, x in enumerate(paths) for y in paths[k + 1 :]
        )


def test_similar_json(library, tmp_path):
    out = tmp_path / "s.json"
    q1, q2 = library / "Camera" / "kite_sky.jpg", DATA / "ok.jpg"
    p = run("similar", q1, q2, "--in", library, "--top", "2", "--json", out, "--no-cache")
    assert p.returncode == 0, p.stderr
    d = json.loads(out.read_text())
    assert [q["query"] for q in d["queries"]] == [str(q1), str(q2)]
    first = d["queries"][0]["results"]
    assert len(first) == 2 and {os.path.basename(r["path"]) for r in first} == {
        "kite_sky_small.jpg",
        "kite_sky_rotated.jpg",
    }
    assert first[0]["similarity"] >= first[1]["similarity"]


@pytest.mark.parametrize(
    "args",
    [
        ["scan"],
        ["scan", "/no/such/folder"],
        ["scan", ".", "--threshold", "1.5"],
        ["scan", ".", "--device", "tpu"],
        ["frobnicate"],
        ["similar", "x.jpg"],
    ],
)
def test_bad_usage_exits_2_with_one_line(args):
    p = run(*args)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.startswith("lookalike: ") and p.stderr.count("\n") == 1


def test_unavailable_device_fails_cleanly(library):
    p = run("scan", library, "--device", "cuda", "--no-cache")
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    assert p.returncode == 1 and "CUDA" in p.stderr


def test_scan_says_what_the_same_capture_check_did_and_what_it_cost(library, tmp_path):
    first = run("scan", library, "--cache-dir", tmp_path / "c")
    assert first.returncode == 0, first.stderr
    line = next(x for x in first.stdout.splitlines() if x.startswith("same-capture check:"))
    # kite_sky with its small and its turned copy (3 pairs), forest_path with its backup (byte-identical,
    # accepted unread): every other candidate is compared, and its images read
    nums = [int(t) for t in line.replace("(", " ").replace(",", " ").replace(";", " ").split() if t.isdigit()]
    candidates, compared, cached, read = nums[:4]
    assert candidates >= 4 and compared >= 3 and cached == 0 and read >= 3, line
    assert line.endswith(" s") and " in " in line
    again = run("scan", library, "--cache-dir", tmp_path / "c")
    line = next(x for x in again.stdout.splitlines() if x.startswith("same-capture check:"))
    assert f"{candidates} candidate pairs, 0 compared, {compared} from the cache; 0 images read" in line, line


def test_a_stricter_threshold_never_turns_copies_into_similar_shots(tmp_path):
    # Copies under the asked threshold but over the candidate one were not checked at all, and fell into the
    # similar-shot tier, described as "other captures" (a new user's trial: a sepia copy at --threshold 0.95).
    import numpy as np
    from PIL import Image

    from training.augment import EDITS

    folder = tmp_path / "photos"
    folder.mkdir()
    photo = Image.open(DATA / "verify" / "photo.jpg").convert("RGB")
    photo.save(folder / "photo.jpg", quality=95)
    kinds = ["grayscale", "colour", "text", "crop_75"]
    for k, kind in enumerate(kinds):
        EDITS[kind](photo, np.random.default_rng([3, k])).convert("RGB").save(
            folder / f"{kind}.jpg", quality=90
        )
    out = tmp_path / "strict.json"
    p = run("scan", folder, "--threshold", "0.999", "--json", out, "--no-cache")
    assert p.returncode == 0, p.stderr
    d = json.loads(out.read_text())
    assert d["groups"] == []  # every copy is under 0.999 ...
    assert d["similar_groups"] == [], d["similar_groups"]  # ... and none of them is another shot
