"""A large library, whole processes: first scan and rescan of ``--files`` small photos (10 % byte-identical
copies), wall seconds, files per second and peak RSS of ``lookalike scan``. Prints figures, asserts none.

    python -m benchmarks.library_scale [--files 20000] [--workdir DIR]

The photos are small (272x182 tiles of real photos) so that building and embedding 20,000 of them takes
minutes: what grows with the file count (walking, the cache, pairs, the same-capture check, grouping, the
library held in memory) is what this measures, not decoding. ``benchmarks.peers`` measures decoding on
camera-size files.

There are not 20,000 real photos to be had here, and distinct photos cut from 1,912 are more alike than a real
library's: tiles of sky and foliage, or the 2x2 mosaics this used before (which shared quarters), put 1.4M
pairs above the candidate cosine, where real photos put ~50,000 at 20,000 files. So the builder cuts more
tiles than it needs, embeds them once, and drops the tiles with the most close partners until the share of
pairs at or above the candidate cosine is what the real photos of ``--src`` show (measured by the same pass).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.peers import _sources, measure

TILE = (272, 182)


def tiles(folder: Path, src: Path, grid: int = 4) -> list[Path]:
    """``grid`` x ``grid`` disjoint tiles of every photo under ``src``: distinct pixels, never crops of each
    other."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    w, h = TILE
    for s, path in enumerate(_sources(src)):
        with Image.open(path) as im:
            im.draft("RGB", (w * grid, h * grid))
            im = im.convert("RGB").resize((w * grid, h * grid))
        for y in range(grid):
            for x in range(grid):
                p = folder / f"IMG_{s:05d}_{y}{x}.jpg"
                im.crop((x * w, y * h, x * w + w, y * h + h)).save(p, quality=88)
                out.append(p)
    return out


def _embeddings(paths: list[str], cache: Path) -> tuple[list[str], np.ndarray, float]:
    """Unit duplicate embeddings of ``paths`` (by a scan without the check) and the candidate cosine."""
    from core.engine import Engine

    engine = Engine(cache_dir=cache, verify=False, device="cpu")
    lib = engine.scan(paths)
    v = lib.embeddings / np.linalg.norm(lib.embeddings, axis=1, keepdims=True)
    return [f.path for f in lib.files], v.astype(np.float32), engine.bundle.candidate_threshold


def close_share(v: np.ndarray, threshold: float, block: int = 1024) -> tuple[np.ndarray, float]:
    """Per row, how many other rows reach ``threshold``; and the share of all pairs that do."""
    degree = np.zeros(len(v), np.int64)
    for s in range(0, len(v), block):
        sims = v[s : s + block] @ v.T
        sims[np.arange(len(sims)), np.arange(s, s + len(sims))] = -1.0
        degree[s : s + block] = np.count_nonzero(sims >= threshold, axis=1)
    n = len(v)
    return degree, degree.sum() / 2 / max(1, n * (n - 1) / 2)


def realistic(v: np.ndarray, keep: int, share: float, threshold: float) -> np.ndarray:
    """Rows to keep: ``keep`` of them, dropping the ones with the most partners at ``threshold`` until the
    share of close pairs among the kept is at most ``share``."""
    alive = np.arange(len(v))
    while True:
        degree, now = close_share(v[alive], threshold)
        if len(alive) <= keep and now <= share:
            return alive
        # Drop a slice of the most crowded rows, then recount: a dropped row lowers its partners' counts.
        # Past ``keep`` rows (the tiles are still too alike), the library comes out smaller.
        drop = min(2000, len(alive) - keep) if len(alive) > keep else max(1, len(alive) // 100)
        order = np.argsort(-degree, kind="stable")
        alive = np.sort(alive[order[drop:]])


def build(folder: Path, n: int, src: Path) -> None:
    work = folder.parent / "tiles"
    shutil.rmtree(work, ignore_errors=True)
    cut = tiles(work / "all", src)
    paths, v, threshold = _embeddings([str(p) for p in cut], work / "cache")
    real_paths, real, _ = _embeddings([str(src)], work / "cache")
    _, share = close_share(real, threshold)
    kept = realistic(v, n - n // 10, share, threshold)
    _, got = close_share(v[kept], threshold)
    print(
        f"{len(real_paths):,} real photos: {share:.2e} of pairs at cosine >= {threshold}; "
        f"{len(kept):,} of {len(paths):,} tiles kept: {got:.2e}",
        flush=True,
    )
    photos = folder / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    distinct = []
    for k, i in enumerate(kept):
        distinct.append(photos / f"IMG_{k:06d}.jpg")
        shutil.move(paths[i], distinct[-1])
    shutil.rmtree(work, ignore_errors=True)
    for k in range(n // 10):
        sub = folder / f"copies{k // 500:03d}"
        sub.mkdir(exist_ok=True)
        shutil.copyfile(distinct[k * 7 % len(distinct)], sub / f"copy{k:06d}.jpg")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=20_000)
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench-scale")
    p.add_argument("--src", type=Path, default=Path("../shared/datasets"))
    p.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    library = a.workdir / f"library-{a.files}"
    if a.build_only:
        build(library, a.files, a.src)
        return
    if not (library / "photos").is_dir():
        # In its own process: a child's peak RSS counts from the fork, so this process must stay small.
        print(f"building {a.files:,} files in {library} ...", flush=True)
        args = ["--build-only", "--files", str(a.files), "--workdir", str(a.workdir), "--src", str(a.src)]
        subprocess.run([sys.executable, "-m", "benchmarks.library_scale", *args], check=True)
    cache = a.workdir / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    scan = [sys.executable, "-m", "core.cli", "scan", str(library), "-q", "--device", "cpu"]
    scan += ["--cache-dir", str(cache)]
    rows = {"first scan": measure(scan)}
    for k in range(3):
        rows[f"rescan {k + 1}"] = measure(scan)
    files = sum(1 for _ in library.rglob("*.jpg"))
    print(f"\n{files:,} files, whole `lookalike scan` processes\n")
    print("| | wall s | files/s | CPU s | peak RSS MB |\n|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['wall']:.1f} | {files / r['wall']:,.0f} | {r['cpu']:.1f} | {r['rss']:.0f} |")


if __name__ == "__main__":
    main()
