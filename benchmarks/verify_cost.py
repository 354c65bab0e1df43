"""What the same-capture check costs on a first scan: a folder where 10 % of the photos have an edited copy,
scanned with an empty cache with the check and without it, alternately. Prints figures, asserts nothing.

    python -m benchmarks.verify_cost [--photos 400] [--rounds 2] [--src ../shared/datasets]
    python -m benchmarks.verify_cost --peers [--files 1000] [--workdir DIR]
    python -m benchmarks.verify_cost --peers --files 300 --candidate 0.80 0.82

``--candidate``: scan with these candidate thresholds instead of the bundled one (each round scans without
the check, then with it at each threshold), to weigh what a threshold saves against the copies it loses
(``training.verify_eval``'s candidate table).

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
    p.add_argument("--candidate", type=float, nargs="*", default=None, help="candidate thresholds to try")
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
        # None: the check off; a number: on, at that candidate threshold (the bundled one by default).
        # The order alternates from round to round: this machine's speed drifts by 10-20 % over minutes, and
        # a fixed order charged the drift to whichever setting came last.
        settings: list[float | None] = [None, *(a.candidate or [None])]
        # seconds, CPU seconds, the stage's CPU seconds and its own seconds
        times: dict[str, list[tuple[float, float, float, float]]] = {}
        for r in range(a.rounds):
            order = range(len(settings)) if r % 2 == 0 else reversed(range(len(settings)))
            for n_set in order:
                cand, verify = settings[n_set], n_set > 0
                engine = Engine(cache_dir=Path(tmp) / f"cache-{r}-{n_set}", verify=verify)
                if cand is not None:  # the manifest is the bundle's own dict: set it for this engine
                    engine.bundle.manifest["thresholds"] = {**engine.bundle.manifest["thresholds"]}
                    engine.bundle.manifest["thresholds"]["candidate"] = cand
                name = f"on at {engine.bundle.candidate_threshold:.2f}" if verify else "off"
                t0, c0 = time.perf_counter(), time.process_time()
                lib = engine.scan([folder])
                extra = lib.stats.get("verification", {})
                times.setdefault(name, []).append(
                    (
                        time.perf_counter() - t0,
                        time.process_time() - c0,
                        extra.get("cpu_seconds", 0.0),
                        extra.get("seconds", 0.0),
                    )
                )
                res = lib.result(engine.default_threshold())
                secs, cpu_secs, _, _ = times[name][-1]
                print(
                    f"round {r + 1}, check {name}: {secs:.1f} s ({cpu_secs:.1f} s CPU), "
                    f"{len(res.groups)} groups, {res.duplicates} duplicates {extra}"
                )
        off = np.array(times.pop("off"))
        for name, on in times.items():
            on = np.array(on)
            wall = np.sort((on[:, 0] - off[:, 0]) / off[:, 0])
            cpu = np.sort((on[:, 1] - off[:, 1]) / off[:, 1])
            stage = np.sort(on[:, 2] / off[:, 1])
            # the stage's own seconds against a scan without it, and what the rest of the scan (reading and
            # embedding, which keeps previews when the check is on) took more: round by round, as above
            stage_wall = np.median(on[:, 3]) / np.median(off[:, 0])
            rest = np.sort((on[:, 0] - on[:, 3] - off[:, 0]) / off[:, 0])
            print(
                f"check {name}: first scan {np.median(off[:, 0]):.1f} s without it, "
                f"{np.median(on[:, 0]):.1f} s with it (medians of {a.rounds}); round by round "
                f"{wall[0]:+.1%} to {wall[-1]:+.1%} (median {np.median(wall):+.1%}); CPU {cpu[0]:+.1%} to "
                f"{cpu[-1]:+.1%} (median {np.median(cpu):+.1%}); the check stage's own CPU "
                f"{np.median(stage):.1%} of a scan without it; its own seconds {stage_wall:.1%} (median "
                f"{np.median(on[:, 3]):.2f} s), the rest of the scan {np.median(rest):+.1%} (median)"
            )


if __name__ == "__main__":
    main()
