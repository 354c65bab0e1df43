"""Pairs and groups out of core: every pair found is exact, close pairs are found, streamed groups are the
in-memory ones, and the Ray scan's large-archive path writes the local scan's JSON."""

from __future__ import annotations

import numpy as np

from core.cluster.pairs import cell_pairs, stream_groups
from core.grouping import group_order, group_pairs
from core.index import exact_pairs
from core.results import ImageRecord


def _clustered(n: int, d: int = 64, seed: int = 0) -> np.ndarray:
    """Unit float16 vectors: half of them copies (plus noise) of a quarter as many originals."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    base = rng.normal(size=(n // 4, d))
    x[: n // 2] = base[rng.integers(0, n // 4, n // 2)] + 0.3 * rng.normal(size=(n // 2, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


def test_cell_pairs_are_exact_and_find_nearly_all(tmp_path):
    x = _clustered(12_000)
    truth = exact_pairs(x.astype(np.float32), 0.8)
    found = cell_pairs(x, 0.8, tmp_path, cell_size=1000).load()
    assert np.all(found.a < found.b)

    def key(p):
        return dict(zip(zip(p.a.tolist(), p.b.tolist(), strict=True), p.similarity.tolist(), strict=True))

    want, got = key(truth), key(found)
    assert set(got) <= set(want)  # never a pair below the threshold
    assert all(abs(got[k] - want[k]) < 1e-5 for k in got)
    assert len(got) >= 0.95 * len(want)


def test_one_cell_finds_every_pair(tmp_path):
    x = _clustered(3000)
    assert (
        cell_pairs(x, 0.8, tmp_path, cell_size=10_000).load().a.tolist()
        == exact_pairs(x.astype(np.float32), 0.8).a.tolist()
    )


def test_streamed_groups_are_the_in_memory_groups(tmp_path):
    x = _clustered(8000, seed=1)
    pairs = cell_pairs(x, 0.8, tmp_path / "p", cell_size=1000)
    files = [ImageRecord(f"/s/{k}.jpg", 1000 + k % 7, k, 10, 10, "JPEG") for k in range(len(x))]
    whole = group_pairs(files, pairs.load(), 0.85)
    streamed = stream_groups(files, lambda: pairs.chunks(3000), 0.85, tmp_path / "g", bucket_pairs=2000)
    assert sorted(streamed, key=group_order) == whole
    assert len(whole) > 100

    # merged in another order (as similar shots are, core.engine.shot_rank): the streamed buckets give each
    # pair the rank of its library positions, as the order of the whole table does
    def rank(a, b, s):
        return ((np.asarray(a) * 7919 + np.asarray(b) * 104729) % 1009).astype(np.float32)

    table = pairs.load()
    whole = group_pairs(files, table, 0.85, order=rank(table.a, table.b, table.similarity))
    streamed = stream_groups(
        files, lambda: pairs.chunks(3000), 0.85, tmp_path / "g", bucket_pairs=2000, rank=rank
    )
    assert sorted(streamed, key=group_order) == whole
    assert whole != group_pairs(files, table, 0.85)  # the order made other groups


def test_the_large_archive_path_writes_the_local_scans_json(ray_run, photos, local_report, engine_factory):
    from core.cluster.ray_scan import ray_scan
    from core.report import json_text, scan_json

    shards, _ = ray_run
    result = ray_scan(engine_factory(), [str(photos)], shards=shards, large_from=0)  # all in the shards
    assert result.stats["large"] and result.stats["embedded"] == 0
    assert json_text(scan_json(result)) == local_report


def test_the_archive_path_checks_a_pair_whose_layouts_match_as_the_local_scan_does(
    ray_local, tmp_path, engine_factory
):
    # A reviewer's finding: the local scan also checks pairs under the candidate cosine whose grey-level
    # layouts match (a strong colour filter's copy, core.layout); the archive path checked only the cosine,
    # so such a copy was a duplicate in one and a similar shot in the other.
    import json
    import shutil

    from helpers import DATA
    from PIL import Image

    from core.cluster.ray_scan import ray_scan
    from core.resources import resource_path
    from training.augment import COLOUR_FILTERS

    folder = tmp_path / "photos"
    folder.mkdir()
    photo = Image.open(DATA / "verify" / "photo.jpg").convert("RGB")
    photo.save(folder / "photo.jpg", quality=95)
    COLOUR_FILTERS["duotone"](photo, np.random.default_rng([3, 0])).convert("RGB").save(
        folder / "photo_duotone.jpg", quality=90
    )
    for name in ("leuven_a.jpg", "toronto_a.jpg", "facade_a.jpg"):
        shutil.copy(DATA / "verify" / name, folder / name)
    # candidate cosine 0.995: the duotone copy is a candidate by its layout alone (tests/core/test_layout.py)
    model = tmp_path / "model"
    shutil.copytree(resource_path("model"), model)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["thresholds"]["candidate"] = 0.995
    (model / "manifest.json").write_text(json.dumps(manifest))

    def names(result):
        return [{m.file.path.rsplit("/", 1)[1] for m in g.members} for g in result.groups]

    local_engine = engine_factory(tmp_path / "cache", model_dir=model)
    local = local_engine.scan([folder]).result(local_engine.default_threshold())
    assert names(local) == [{"photo.jpg", "photo_duotone.jpg"}]
    archive = ray_scan(
        engine_factory(tmp_path / "cache2", model_dir=model),
        [str(folder)],
        shards=tmp_path / "s",
        large_from=0,
    )
    assert archive.stats["large"]
    assert names(archive) == names(local)
    assert [m.similarity for m in archive.pairs] == [m.similarity for m in local.pairs]


def test_the_archive_path_flags_pairs_the_check_is_unsure_of_as_the_local_scan_does(
    ray_local, tmp_path, engine_factory, monkeypatch
):
    """``Member.unsure`` (a verified pair whose measures look like another capture, ``core.verify.doubt``)
    comes out of the archive path as out of the local scan; here every verified pair is unsure."""
    from helpers import DATA
    from PIL import Image

    from core import verify
    from core.cluster.ray_scan import ray_scan
    from core.report import scan_json
    from core.selection import choose
    from training.augment import EDITS

    monkeypatch.setattr(verify, "DOUBT_FROM", -np.inf)
    folder = tmp_path / "photos"
    folder.mkdir()
    photo = Image.open(DATA / "verify" / "photo.jpg").convert("RGB")
    photo.save(folder / "photo.jpg", quality=95)
    EDITS["downscale"](photo, np.random.default_rng(3)).convert("RGB").save(folder / "photo_small.jpg")
    local_engine = engine_factory(tmp_path / "cache")
    local = local_engine.scan([folder]).result(local_engine.default_threshold())
    archive = ray_scan(
        engine_factory(tmp_path / "cache2"), [str(folder)], shards=tmp_path / "s", large_from=0
    )
    assert archive.stats["large"]
    for result in (local, archive):
        assert [[m.unsure for m in g.members] for g in result.groups] == [[True, True]]
        assert not choose(result, "resolution")
    assert scan_json(archive)["groups"] == scan_json(local)["groups"]
