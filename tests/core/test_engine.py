"""The whole pipeline on real photos with the real bundled model: groups, distinct photos, cache, cancel."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from helpers import DATA, copy_demo

from core.errors import Cancelled
from core.progress import CancelToken


def _groups_rel(result, root):
    return sorted(sorted(os.path.relpath(m.file.path, root) for m in g.members) for g in result.groups)


@pytest.fixture(scope="module")
def demo_scan(tmp_path_factory, engine_factory):
    root = copy_demo(tmp_path_factory.mktemp("demo"))
    engine = engine_factory(tmp_path_factory.mktemp("cache"))
    lib = engine.scan([root])
    return engine, root, lib


def test_demo_groups_match_the_manifest(demo_scan, demo_manifest):
    engine, root, lib = demo_scan
    result = lib.result(engine.bundle.duplicate_threshold)
    expected = sorted(sorted(g) for g in demo_manifest["groups"])
    assert _groups_rel(result, root) == expected
    assert result.problems == ()
    grouped = {os.path.relpath(m.file.path, root) for g in result.groups for m in g.members}
    assert not grouped & set(demo_manifest["distinct"])


def test_groups_are_sorted_and_best_copy_first(demo_scan):
    engine, _, lib = demo_scan
    result = lib.result(engine.bundle.duplicate_threshold)
    rec = [g.reclaimable for g in result.groups]
    assert rec == sorted(rec, reverse=True)
    for g in result.groups:
        best = g.members[0].file
        assert g.members[0].similarity == 1.0
        assert all(best.pixels >= m.file.pixels for m in g.members)
        assert g.reclaimable == sum(m.file.size for m in g.members[1:])
        # Complete linkage: every pair inside a group is a confirmed pair.
        pairs = {frozenset((p.a.path, p.b.path)) for p in result.pairs}
        assert all(frozenset((a, b)) in pairs for k, a in enumerate(g.paths) for b in g.paths[k + 1 :])


def test_the_demo_keeps_each_camera_original_never_its_caption_or_brightened_edit(demo_scan, demo_manifest):
    # The camera's files carry its capture record (DateTimeOriginal); an edit of the same size with more bytes
    # (a caption, a brightened copy) used to be kept over the original it was made from.
    engine, root, lib = demo_scan
    result = lib.result(engine.bundle.duplicate_threshold)
    assert result.groups
    for g in result.groups:
        best = os.path.relpath(g.members[0].file.path, root)
        original = next(p for p in demo_manifest["groups"] if best in p)[0]  # the manifest lists it first
        assert original.startswith("Camera/")
        with open(os.path.join(root, best), "rb") as kept, open(os.path.join(root, original), "rb") as camera:
            assert kept.read() == camera.read(), (best, original)  # the original or its exact backup


def test_exact_copies_are_marked(demo_scan):
    engine, root, lib = demo_scan
    result = lib.result(engine.bundle.duplicate_threshold)
    identical = {os.path.relpath(m.file.path, root) for g in result.groups for m in g.members if m.identical}
    assert "Backup/forest_path.jpg" in identical and "Backup/IMG_0412.jpg" in identical
    # A group made only of byte-identical files is an exact group.
    src = root / "Camera" / "orange_flower.jpg"
    assert not any(g.exact for g in result.groups)
    d = root / "exact"
    d.mkdir()
    shutil.copy(src, d / "copy.jpg")
    again = engine.scan([root]).result(engine.bundle.duplicate_threshold)
    exact = [g for g in again.groups if g.exact]
    assert len(exact) == 1 and len(exact[0].members) == 2
    (d / "copy.jpg").unlink()
    d.rmdir()


def test_rescan_reads_only_the_cache(demo_scan):
    engine, root, lib = demo_scan
    again = engine.scan([root])
    assert again.stats["embedded"] == 0 and again.stats["cached"] == len(lib.files)
    assert again.result(0.9).groups == lib.result(0.9).groups


def test_one_folder_of_a_large_cache_is_read_by_key(demo_scan):
    # Scanning one folder fetches its rows by path (core.cache: the whole library's rows are not read), and a
    # changed file in it is embedded again while its unchanged neighbour comes from the cache.
    engine, root, lib = demo_scan
    folder = root / "Backup"
    names = sorted(p.name for p in folder.iterdir())
    assert len(lib.files) > engine_cache_ratio() * len(names)  # so the keyed lookup is the one exercised
    changed = folder / names[0]
    st = changed.stat()
    os.utime(changed, ns=(1, 1))
    try:
        again = engine.scan([folder])
    finally:  # the module's other tests share this folder and cache
        os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns))
        engine.scan([folder])
    assert again.stats["embedded"] == 1 and again.stats["cached"] == len(names) - 1
    before = {f.path: i for i, f in enumerate(lib.files)}
    for i, f in enumerate(again.files):
        old = lib.files[before[f.path]]
        assert abs(float(again.embeddings[i] @ lib.embeddings[before[f.path]]) - 1) < 1e-3, f.path
        assert (f.size, f.width, f.height) == (old.size, old.width, old.height)


def engine_cache_ratio() -> int:
    from core.cache import EmbeddingCache

    return EmbeddingCache._KEYED_RATIO


def test_strictness_regroups_without_embedding(demo_scan):
    engine, _, lib = demo_scan
    loose = lib.result(lib.floor)
    strict = lib.result(0.995)
    assert len(strict.pairs) < len(loose.pairs)
    with pytest.raises(ValueError):
        lib.result(lib.floor - 0.1)


def test_problems_never_stop_a_scan(tmp_path, engine_factory):
    for name in (
        "ok.jpg",
        "truncated.jpg",
        "zero.jpg",
        "bomb.png",
        "garbage.png",
        "not_an_image.jpg",
        "cmyk.jpg",
    ):
        shutil.copy(DATA / name, tmp_path / name)
    lib = engine_factory(None).scan([tmp_path])
    reasons = {os.path.basename(p.path): p.reason for p in lib.problems}
    assert set(reasons) == {"truncated.jpg", "zero.jpg", "bomb.png", "garbage.png", "not_an_image.jpg"}
    assert {os.path.basename(f.path) for f in lib.files} == {"ok.jpg", "cmyk.jpg"}
    assert lib.result(0.9).groups  # cmyk.jpg is a colour-space copy of ok.jpg


def test_cancelled_scan_keeps_its_work(tmp_path, engine_factory):
    root = copy_demo(tmp_path / "lib")
    cache = tmp_path / "cache"
    engine = engine_factory(cache, batch_size=8)
    token = CancelToken()

    def progress(done, total, message):
        if message.startswith("Reading") and done >= 8:
            token.cancel()

    with pytest.raises(Cancelled):
        engine.scan([root], progress=progress, cancel=token)
    lib = engine.scan([root])
    assert 8 <= lib.stats["cached"] < len(lib.files)


def test_corrupt_cache_is_moved_aside(tmp_path, engine_factory):
    root = copy_demo(tmp_path / "lib", ["Camera/kite_sky.jpg", "Downloads/kite_sky_small.jpg"])
    cache = tmp_path / "cache"
    engine = engine_factory(cache)
    engine.scan([root])
    db = cache / "cache.sqlite3"
    for extra in cache.glob("cache.sqlite3-*"):
        extra.unlink()
    db.write_bytes(b"this is not a database" * 100)
    lib = engine.scan([root])
    assert lib.stats["embedded"] == 2
    assert list(cache.glob("cache.sqlite3.corrupt-*"))
    sqlite3.connect(db).execute("SELECT count(*) FROM files").fetchone()


def test_find_similar_inside_and_outside(demo_scan):
    engine, root, lib = demo_scan
    hits = engine.find_similar(lib, str(root / "Camera" / "kite_sky.jpg"), top=3)
    names = [os.path.basename(p) for p, _ in hits]
    assert "kite_sky_small.jpg" in names and str(root / "Camera" / "kite_sky.jpg") not in [p for p, _ in hits]
    sims = [s for _, s in hits]
    assert sims == sorted(sims, reverse=True)
    outside = DATA / "ok.jpg"  # the red marigold at 320 px, not in the library
    top = engine.find_similar(lib, str(outside), top=3)
    assert any("red_marigold" in p for p, _ in top)


def test_odd_names_through_cache_and_json(tmp_path, engine_factory):
    import json

    from make_data import make_odd_names

    from core.report import scan_json, write_json

    paths = make_odd_names(tmp_path / "odd")
    engine = engine_factory(tmp_path / "cache")
    engine.scan([tmp_path / "odd"])
    lib = engine.scan([tmp_path / "odd"])  # from the cache, names intact
    assert lib.stats["cached"] == len(paths) and {f.path for f in lib.files} == {str(p) for p in paths}
    write_json(scan_json(lib.result(0.9)), tmp_path / "r.json")
    names = {f["path"] for g in json.loads((tmp_path / "r.json").read_text())["groups"] for f in g["files"]}
    assert names == {str(p) for p in paths} and all(os.path.exists(n) for n in names)


def test_regrouping_reads_no_files(tmp_path, engine_factory):
    """The scan hashes same-size partners in its own thread; ``result`` must not touch the disk (the GUI
    regroups on its own thread while the slider moves)."""
    root = copy_demo(
        tmp_path / "lib", ["Camera/forest_path.jpg", "Backup/forest_path.jpg", "Edited/forest_path_crop.jpg"]
    )
    lib = engine_factory(None).scan([root])
    shutil.rmtree(root)  # every file gone: any read would now fail
    g = lib.result(0.9).groups
    assert len(g) == 1 and sum(m.identical for m in g[0].members) == 2
    assert lib.index_of(str(tmp_path / "lib" / "Backup" / "forest_path.jpg")) is not None


def _model_with_turns(tmp_path: Path, turned: bool) -> Path:
    """The bundled model with its manifest's ``turned_embeddings`` set (the weights, and their hash,
    unchanged)."""
    import json

    from core.resources import resource_path

    folder = tmp_path / f"model-turned-{turned}"
    shutil.copytree(resource_path("model"), folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["turned_embeddings"] = turned
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_portrait_images_carry_turned_embeddings_through_the_cache(tmp_path, engine_factory):
    root = copy_demo(tmp_path / "lib", ["Camera/kite_sky.jpg", "Edited/kite_sky_rotated.jpg"])
    engine = engine_factory(tmp_path / "cache", model_dir=_model_with_turns(tmp_path, True))
    first = engine.scan([root]).result(engine.bundle.duplicate_threshold)
    again = engine.scan([root])
    assert again.stats["embedded"] == 0
    second = again.result(engine.bundle.duplicate_threshold)
    assert len(first.groups) == 1 and first.groups == second.groups
    assert first.pairs[0].similarity > 0.99  # the rotated copy is turned back, not merely similar
    # The same weights without turned embeddings: a different cache key, so the portrait is embedded again
    plain = engine_factory(tmp_path / "cache", model_dir=_model_with_turns(tmp_path, False)).scan([root])
    assert plain.stats["embedded"] == 2
    cosine = float(plain.embeddings[0] @ plain.embeddings[1])  # plain cosine only (no turned rows)
    assert cosine < first.pairs[0].similarity
    assert not plain.result(max(cosine + 1e-3, plain.floor)).pairs


def test_rescan_of_exact_copies_reads_no_file_contents(tmp_path, engine_factory, monkeypatch):
    import core.engine

    root = copy_demo(tmp_path / "lib", ["Camera/forest_path.jpg", "Backup/forest_path.jpg"])
    engine = engine_factory(tmp_path / "cache")
    first = engine.scan([root]).result(0.9)
    assert first.groups[0].exact

    def no_reading(path):
        raise AssertionError(f"rescan read {path}")

    monkeypatch.setattr(core.engine, "file_digest", no_reading)
    again = engine.scan([root]).result(0.9)  # exact-copy digests come from the cache
    assert again.groups == first.groups


def test_a_plain_string_or_bytes_path_is_one_path(tmp_path, engine_factory):
    """`Engine.scan("/dir")` scanned each character as a path (starting at "/"); `[b"/dir"]` raised
    TypeError."""
    root = copy_demo(tmp_path / "lib", ["Camera/forest_path.jpg", "Backup/forest_path.jpg"])
    engine = engine_factory()
    for paths in (str(root), os.fsencode(root), [os.fsencode(root)], root):
        lib = engine.scan(paths)
        assert sorted(f.path for f in lib.files) == sorted(str(p) for p in root.rglob("*.jpg")), paths


def test_a_model_folder_with_missing_manifest_keys_or_a_wrong_onnx_is_a_model_error(tmp_path):
    import json
    import shutil

    import onnx
    from onnx import TensorProto, helper

    from core.embed import Embedder, load_bundle, sha256_file
    from core.errors import ModelError
    from core.resources import resource_path

    model = tmp_path / "model"
    shutil.copytree(resource_path("model"), model)
    manifest = json.loads((model / "manifest.json").read_text())
    broken = {k: v for k, v in manifest.items() if k != "thresholds"}
    (model / "manifest.json").write_text(json.dumps(broken))
    with pytest.raises(ModelError, match="thresholds.duplicate"):
        load_bundle(model)
    # An ONNX file with one output (someone swapped the file and its hash).
    x = helper.make_tensor_value_info("x", TensorProto.UINT8, [None, 224, 224, 3])
    y = helper.make_tensor_value_info("y", TensorProto.UINT8, [None, 224, 224, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "one", [x], [y])
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model / "model.onnx")
    )
    manifest["onnx"]["sha256"] = sha256_file(model / "model.onnx")
    (model / "manifest.json").write_text(json.dumps(manifest))
    embedder = Embedder(load_bundle(model), "cpu", int8=False)
    with pytest.raises(ModelError, match="2 outputs|outputs"):
        embedder.embed_arrays(np.zeros((1, 224, 224, 3), np.uint8))


def test_results_hold_their_records(demo_scan):
    """A group's members and a result's pairs carry the scan's own records: no caller looks a file up."""
    engine, _, lib = demo_scan
    result = lib.result(engine.bundle.duplicate_threshold)
    scanned = {id(f) for f in result.files}
    members = [m for g in (*result.groups, *result.similar_groups) for m in g.members]
    assert members and all(id(m.file) in scanned for m in members)
    assert result.pairs and all(id(p.a) in scanned and id(p.b) in scanned for p in result.pairs)
    # The pairs reported are the library's table rows at the threshold, in its order.
    table = lib.pairs.select(lib.same & (lib.pairs.similarity >= result.threshold))
    assert [(p.a.path, p.b.path) for p in result.pairs] == [
        (lib.files[a].path, lib.files[b].path)
        for a, b in zip(table.a.tolist(), table.b.tolist(), strict=True)
    ]


def test_feature_cosines_of_many_pairs_are_computed_in_bounded_memory():
    """``Library.feature_similarity`` gathered both sides of every pair at once: 38,000 pairs of 1,280-d
    features held 400 MB, most of a 1,000-photo scan's peak. It goes in chunks, with the same values."""
    from test_decode import peak_rss_mb

    from core.engine import pair_cosines

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((300, 64)).astype(np.float32)
    i, j = rng.integers(0, 300, 10_000), rng.integers(0, 300, 10_000)
    assert np.allclose(pair_cosines(vectors, i, j, chunk=999), np.einsum("ij,ij->i", vectors[i], vectors[j]))
    setup = (
        "import numpy as np\n"
        "from core.engine import pair_cosines\n"
        "rng = np.random.default_rng(0)\n"
        "v = rng.standard_normal((1000, 1280)).astype(np.float32)\n"
        "i, j = rng.integers(0, 1000, 40_000), rng.integers(0, 1000, 40_000)\n"
    )
    base, _ = peak_rss_mb(setup)
    peak, _ = peak_rss_mb(setup + "s = pair_cosines(v, i, j)\n")
    assert peak - base < 100, f"{peak - base:.0f} MB for 40,000 pairs"  # gathered whole: 2 x 205 MB


def test_feature_cosines_of_float16_vectors_are_the_pairwise_sums(monkeypatch):
    """A scan's features are float16: their rows are turned to float32 once (0.19 s of a 300-photo scan went
    on converting each pair's rows), and the cosines are the same as converting row by row."""
    import core.engine as eng

    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((300, 64)).astype(np.float16)
    i, j = rng.integers(0, 300, 5_000), rng.integers(0, 300, 5_000)
    want = np.array(
        [vectors[a].astype(np.float32) @ vectors[b].astype(np.float32) for a, b in zip(i, j, strict=True)]
    )
    at_once = eng.pair_cosines(vectors, i, j, chunk=999)
    monkeypatch.setattr(eng, "_CONVERT_AT_ONCE", 0)  # a library too big to convert whole: chunk by chunk
    chunked = eng.pair_cosines(vectors, i, j, chunk=999)
    assert at_once.dtype == chunked.dtype == np.float32
    assert np.array_equal(at_once, chunked)
    assert np.allclose(at_once, want, rtol=1e-5, atol=1e-4)
