"""What the same-capture check costs on a first scan: a folder where 10 % of the photos have an edited copy,
scanned with an empty cache with the check and without it, alternately. Prints figures, asserts nothing.

    python -m benchmarks.verify_cost [--photos 400] [--rounds 2] [--src ../shared/datasets]
    python -m benchmarks.verify_cost --peers [--files 1000] [--workdir DIR]

The photos come from ``--src`` (any folder of distinct photos), else from the demo folder's originals, at
their own sizes (0.1-1 MP for the datasets: a cheap scan, so the check weighs most there). ``--peers`` scans
the peer benchmark's library instead (``benchmarks.peers``: camera-size JPEGs, phone HEICs, screenshots,
WebP, and 10 % edited copies), built once in ``--workdir`` and kept.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from core.engine import Engine
from core.resources import resource_path
from training.augment import EDITS

KINDS = ["crop_75", "jpeg", "downscale", "flip", "colour", "text", "rotate_90", "screenshot"]


def build(folder: Path, src: Path, photos: int, seed: int = 0) -> int:
    files = sorted(p for p in src.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    rng = np.random.default_rng(seed)
    chosen = [files[k] for k in rng.permutation(len(files))[:photos]]
    for n, path in enumerate(chosen):
        shutil.copy(path, folder / f"{n:05d}{path.suffix.lower()}")
    copies = max(1, photos // 10)
    for n, path in enumerate(chosen[:copies]):
        kind = KINDS[n % len(KINDS)]
        im = Image.open(path).convert("RGB")
        EDITS[kind](im, np.random.default_rng([seed, n])).convert("RGB").save(
            folder / f"{n:05d}_{kind}.jpg", quality=90
        )
    return len(chosen) + copies


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=int, default=400)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--src", type=Path, default=Path("../shared/datasets"))
    p.add_argument("--peers", action="store_true", help="scan the peer benchmark's mixed library")
    p.add_argument("--files", type=int, default=1000, help="with --peers: its size")
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench-peers")
    a = p.parse_args(argv)
    src = a.src if a.src.is_dir() else resource_path("demo", "Camera")
    with tempfile.TemporaryDirectory(prefix="lookalike-verify-cost-") as tmp:
        if a.peers:
            from benchmarks.peers import library_path

            folder = library_path(a.workdir, a.files, a.src)
            n = sum(1 for _ in folder.iterdir())
            print(f"{n} files in {folder} (the peer benchmark's library, 10 % edited copies)")
        else:
            folder = Path(tmp) / "photos"
            folder.mkdir()
            n = build(folder, src, a.photos)
            print(f"{n} files in {folder} ({a.photos} photos, 10 % with an edited copy) from {src}")
        times: dict[bool, list[float]] = {False: [], True: []}
        for r in range(a.rounds):
            for verify in (False, True):
                engine = Engine(cache_dir=Path(tmp) / f"cache-{r}-{verify}", verify=verify)
                t0 = time.perf_counter()
                lib = engine.scan([folder])
                times[verify].append(time.perf_counter() - t0)
                res = lib.result(engine.default_threshold())
                extra = lib.stats.get("verification", {})
                print(
                    f"round {r + 1}, check {'on ' if verify else 'off'}: {times[verify][-1]:.1f} s, "
                    f"{len(res.groups)} groups, {res.duplicates} duplicates {extra}"
                )
        off, on = min(times[False]), min(times[True])
        rounds = sorted((b - o) / o for o, b in zip(times[False], times[True], strict=True))
        print(
            f"first scan: {off:.1f} s without the check, {on:.1f} s with it: +{(on - off) / off:.1%} "
            f"(best of {a.rounds} each); round by round +{rounds[0]:.1%} to +{rounds[-1]:.1%}, "
            f"median +{rounds[len(rounds) // 2]:.1%}"
        )


if __name__ == "__main__":
    main()
