"""A large library, whole processes: first scan and rescan of ``--files`` small photos (10 % byte-identical
copies), wall seconds, files per second and peak RSS of ``lookalike scan``. Prints figures, asserts none.

    python -m benchmarks.library_scale [--files 20000] [--workdir DIR]

The photos are small (0.05 MP mosaics of four photos each) so that building and embedding 20,000 of them
takes minutes: what grows with the file count (walking, the cache, pairs, grouping, the library held in
memory) is what this measures, not decoding. ``benchmarks.peers`` measures decoding on camera-size files.
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


def mosaics(folder: Path, n: int, src: Path, seed: int = 3) -> list[Path]:
    """``n`` distinct small photos: each a 2x2 mosaic of four random photos at random crops. Crops of a few
    originals would be near-duplicates of each other, and verifying thousands of such pairs would be the
    whole first scan; mosaics share at most a quarter."""
    rng = np.random.default_rng(seed)
    sources = _sources(src)
    thumbs = []
    for path in sources:
        with Image.open(path) as im:
            im.draft("RGB", (320, 320))
            thumbs.append(im.convert("RGB").resize((320, 240)))
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        canvas = Image.new("RGB", (272, 182))
        for x, y in ((0, 0), (136, 0), (0, 91), (136, 91)):
            t = thumbs[int(rng.integers(len(thumbs)))]
            cx, cy = int(rng.integers(0, 320 - 136)), int(rng.integers(0, 240 - 91))
            canvas.paste(t.crop((cx, cy, cx + 136, cy + 91)), (x, y))
        path = folder / f"IMG_{k:06d}.jpg"
        canvas.save(path, quality=88)
        out.append(path)
    return out


def build(folder: Path, n: int, src: Path) -> None:
    distinct = mosaics(folder / "photos", n - n // 10, src)
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
    print(f"\n{a.files:,} files, whole `lookalike scan` processes\n")
    print("| | wall s | files/s | CPU s | peak RSS MB |\n|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['wall']:.1f} | {a.files / r['wall']:,.0f} | {r['cpu']:.1f} | {r['rss']:.0f} |")


if __name__ == "__main__":
    main()
