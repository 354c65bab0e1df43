"""The Ray scan against the local scan on this machine: throughput, overhead, and the same JSON.

    python -m benchmarks.cluster [--sizes 200 600] [--src DIR] [--workdir DIR]

For each size, a folder of that many photos (ImageNet samples from ``--src``, a tenth of them with a resized
and recompressed copy) is scanned twice without a cache, each in a fresh process: ``lookalike scan --json``
and the same with ``--ray`` on a local Ray (all this machine's CPUs, shards in a fresh folder). Prints wall
seconds and images per second of each, the Ray scan's parts (starting the local cluster, embedding on the
workers), and whether the two JSON reports are identical. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

DEFAULT_SRC = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "imagenet-sample"


def build(folder: Path, n: int, src: Path) -> None:
    """``n`` photos: ``n - n // 10`` originals from ``src``, and a resized, recompressed copy of a tenth."""
    sources = sorted(p for p in src.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    originals = n - n // 10
    if len(sources) < originals:
        raise SystemExit(f"{src} has {len(sources)} photos; {originals} needed")
    folder.mkdir(parents=True)
    for k, p in enumerate(sources[:originals]):
        with Image.open(p) as im:
            im = im.convert("RGB")
            im.save(folder / f"IMG_{k:05d}.jpg", quality=92)
            if k < n // 10:
                im.resize((im.width * 3 // 4, im.height * 3 // 4)).save(
                    folder / f"copy_{k:05d}.jpg", quality=70
                )


def _one(kind: str, photos: Path, out: Path) -> dict:
    """One scan in this process (the child of ``main``): its figures."""
    from core.engine import Engine
    from core.report import json_text, scan_json

    started = time.perf_counter()
    engine = Engine(use_cache=False)
    figures: dict = {}
    if kind == "local":
        result = engine.scan([str(photos)]).result(
            engine.default_threshold(), engine.bundle.similar_shot_threshold
        )
    else:
        import logging

        import ray

        from core.cluster.ray_scan import ray_scan

        t = time.perf_counter()
        ray.init(
            address="local",
            num_cpus=os.cpu_count(),
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
        figures["cluster_start_s"] = round(time.perf_counter() - t, 2)
        result = ray_scan(engine, [str(photos)], shards=out.with_suffix(".shards"))
        figures["embed_s"] = round(result.stats["embed_s"], 2)
        figures["workers"] = f"{result.stats['ray_workers']} x {result.stats['ray_cpus_each']} CPUs"
    figures["wall_s"] = round(time.perf_counter() - started, 2)
    out.write_text(json_text(scan_json(result)))
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[200, 600])
    p.add_argument("--src", type=Path, default=DEFAULT_SRC, help="a folder of photos to build from")
    p.add_argument("--workdir", type=Path)
    p.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # kind, photos, out: a child process
    a = p.parse_args(argv)
    if a.one:
        print(json.dumps(_one(a.one[0], Path(a.one[1]), Path(a.one[2]))), flush=True)
        return 0
    with tempfile.TemporaryDirectory(dir=a.workdir) as tmp:
        for n in a.sizes:
            photos = Path(tmp) / f"photos-{n}"
            build(photos, n, a.src)
            runs = {}
            for kind in ("local", "ray"):
                out = Path(tmp) / f"{kind}-{n}.json"
                cmd = [sys.executable, "-m", "benchmarks.cluster", "--one", kind, str(photos), str(out)]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode:
                    print(f"{n} photos, {kind}: failed: {done.stderr.strip().splitlines()[-3:]}")
                    break
                runs[kind] = json.loads(done.stdout.strip().splitlines()[-1])
            if len(runs) < 2:
                continue
            local, ray = runs["local"], runs["ray"]
            same = (Path(tmp) / f"local-{n}.json").read_text() == (Path(tmp) / f"ray-{n}.json").read_text()
            print(
                f"{n} photos: local {local['wall_s']:.1f} s ({n / local['wall_s']:.0f} img/s); "
                f"Ray {ray['wall_s']:.1f} s ({n / ray['wall_s']:.0f} img/s end to end; embedding on "
                f"{ray['workers']}: {ray['embed_s']:.1f} s, {n / ray['embed_s']:.0f} img/s; cluster start "
                f"{ray['cluster_start_s']:.1f} s); same JSON: {same}; "
                f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
