"""Lookalike against Czkawka in one run, on one mixed library: wall seconds, CPU seconds and peak memory of
the whole process, first scan (empty cache) and rescan, alternately, and the ratios. Prints figures, asserts
none.

    python -m benchmarks.peers [--files 1000] [--rounds 3] [--workdir DIR]     (make bench-peers)

The library is built once (kept in ``--workdir``): camera-size JPEGs (12-24 MP with sensor-like grain, every
fifth rotated by its EXIF orientation), 12 MP phone HEICs, 1080p PNG screenshots, WebP photos, and edited
copies (smaller, recompressed, cropped) of 10 % of them. Pixels come from ``../shared/datasets`` when
present, else the demo photos, upscaled: speed depends on pixel counts, bytes and formats, not on what the
photos show. Czkawka is the PyPI bindings (``pip install czkawka``), ``ImageSimilarity().find_similar()``
with its defaults; each tool runs in its own process, measured by ``os.wait4``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from core.resources import resource_path

CZKAWKA = """
import sys
from czkawka import ImageSimilarity
finder = ImageSimilarity()
finder.set_directories([sys.argv[1]])
groups = finder.find_similar()
print(len(groups), sum(len(g) - 1 for g in groups))
"""


def _sources(src: Path) -> list[Path]:
    files = sorted(p for p in src.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    return files or sorted(resource_path("demo", "Camera").glob("*.jpg"))


def build(folder: Path, n: int, src: Path, seed: int = 0) -> None:
    """``n`` files of mixed formats and sizes, 10 % of them edited copies of others."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    rng = np.random.default_rng(seed)
    sources = _sources(src)
    folder.mkdir(parents=True, exist_ok=True)
    # Sensor grain, tiled: upscaled photos alone compress to ~1 MB at 20 MP, far below a camera's 6-12 MB,
    # and entropy decoding (what a JPEG decode spends its time on) scales with the bytes.
    grain = rng.normal(0, 5, (512, 512, 3)).astype(np.int16)
    originals = []
    for k in range(n - n // 10):
        im = Image.open(sources[k % len(sources)]).convert("RGB")
        kind = rng.choice(["camera"] * 6 + ["png", "webp", "heic"])
        if kind in ("camera", "heic"):
            mp = rng.uniform(12, 24) * 1e6 if kind == "camera" else 12.2e6
            scale = (mp / (im.width * im.height)) ** 0.5
            big = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BILINEAR)
            px = np.asarray(big).astype(np.int16)
            reps = (-(-px.shape[0] // 512), -(-px.shape[1] // 512), 1)
            px += np.tile(grain, reps)[: px.shape[0], : px.shape[1]]
            big = Image.fromarray(np.clip(px, 0, 255).astype(np.uint8))
            del px
        if kind == "heic":  # a phone's photo: 12 MP HEIC with the 320 px thumbnail phones embed (x265's
            path = folder / f"IMG_{k:04d}.heic"  # fastest preset, to build in minutes)
            big.save(path, quality=80, thumbnails=[320], enc_params={"preset": "ultrafast"})
        elif kind == "camera":
            exif = Image.Exif()
            exif.get_ifd(0x8769)[0x9003] = f"2024:05:{1 + k % 28:02d} 10:{k % 60:02d}:00"
            if k % 5 == 0:
                exif[0x0112] = 6  # stored sideways, shown upright
                big = big.transpose(Image.Transpose.ROTATE_90)
            path = folder / f"IMG_{k:04d}.jpg"
            big.save(path, "JPEG", quality=90, exif=exif)
        elif kind == "png":
            path = folder / f"Screenshot_{k:04d}.png"
            im.resize((1920, 1080), Image.Resampling.BILINEAR).save(path)
        else:
            path = folder / f"photo_{k:04d}.webp"
            im.resize((2048, round(2048 * im.height / im.width)), Image.Resampling.BILINEAR).save(
                path, quality=85
            )
        originals.append(path)
    for k in range(n // 10):
        src_path = originals[int(rng.integers(len(originals)))]
        im = Image.open(src_path).convert("RGB")
        if k % 3 == 0:
            im = im.resize((im.width // 3, im.height // 3))
        elif k % 3 == 1:
            w, h = im.size
            im = im.crop((w // 10, h // 10, w - w // 10, h - h // 10))
        im.save(folder / f"copy_{k:04d}_{src_path.stem}.jpg", "JPEG", quality=70)


def measure(cmd: list[str], env: dict | None = None) -> dict:
    """Wall and CPU seconds and peak RSS (MB) of one process and its children."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd[0]} failed: {err.strip()[-400:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss / 1024, "out": out}


def _library_dir(workdir: Path, files: int) -> Path:
    return workdir / f"library-{files}-v3"  # v3: grain, phone HEICs with thumbnails


def library_path(workdir: Path, files: int, src: Path) -> Path:
    """The benchmark's library in ``workdir``, built first if it is not there yet."""
    library = _library_dir(workdir, files)
    if not library.is_dir():
        # In its own process: Linux counts a child's peak memory from the fork of this one, so this process
        # must stay small (the images it would decode would show up in every tool's figure).
        print(f"building {files} files in {library} ...", flush=True)
        cmd = [sys.executable, "-m", "benchmarks.peers", "--build-only", "--files", str(files)]
        subprocess.run([*cmd, "--workdir", str(workdir), "--src", str(src)], check=True)
    return library


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "lookalike-bench-peers")
    p.add_argument("--src", type=Path, default=Path("../shared/datasets"))
    p.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.build_only:  # into a side folder first: an interrupted build is not taken for a library
        library = _library_dir(a.workdir, a.files)
        part = library.with_name(library.name + ".part")
        shutil.rmtree(part, ignore_errors=True)
        build(part, a.files, a.src)
        part.rename(library)
        return
    library = library_path(a.workdir, a.files, a.src)
    size = sum(f.stat().st_size for f in library.iterdir()) / 2**20
    print(f"{a.files} files, {size:.0f} MB, {os.cpu_count()} cores")
    lookalike = [sys.executable, "-m", "core.cli", "scan", str(library), "-q", "--device", "cpu"]
    rows: dict[str, list[dict]] = {"czkawka": [], "lookalike first scan": [], "lookalike rescan": []}
    for r in range(a.rounds):
        cache = a.workdir / f"cache-{r}"
        shutil.rmtree(cache, ignore_errors=True)
        rows["czkawka"].append(measure([sys.executable, "-c", CZKAWKA, str(library)]))
        rows["lookalike first scan"].append(measure([*lookalike, "--cache-dir", str(cache)]))
        rows["lookalike rescan"].append(measure([*lookalike, "--cache-dir", str(cache)]))
        print(
            f"round {r + 1}: " + ", ".join(f"{k} {v[-1]['wall']:.1f} s" for k, v in rows.items()), flush=True
        )

    def span(name: str, key: str, fmt: str) -> str:
        xs = [x[key] for x in rows[name]]
        return f"{min(xs):{fmt}}–{max(xs):{fmt}}" if len(xs) > 1 else f"{xs[0]:{fmt}}"

    print(f"\n| ({a.rounds} runs, range) | wall s | CPU s | peak RSS MB |\n|---|---|---|---|")
    for name in rows:
        print(
            f"| {name} | {span(name, 'wall', '.1f')} | {span(name, 'cpu', '.1f')} | "
            f"{span(name, 'rss', '.0f')} |"
        )
    first = [x["wall"] for x in rows["lookalike first scan"]]
    czk = [x["wall"] for x in rows["czkawka"]]
    ratios = [c / f for c, f in zip(czk, first, strict=True)]
    cpu = [x["cpu"] / y["cpu"] for x, y in zip(rows["lookalike first scan"], rows["czkawka"], strict=True)]
    rescan = [a.files / x["wall"] for x in rows["lookalike rescan"]]
    print(
        f"\nfirst-scan throughput vs Czkawka: {min(ratios):.2f}–{max(ratios):.2f}x (target >= 1.25x); "
        f"CPU seconds vs Czkawka: {min(cpu):.2f}–{max(cpu):.2f}x (target <= 1); "
        f"rescan {min(rescan):.0f}–{max(rescan):.0f} files/s (whole process, model load included)"
    )
    print(
        "Czkawka's answer (groups, duplicates):",
        rows["czkawka"][-1]["out"].strip(),
        "| Lookalike's:",
        rows["lookalike first scan"][-1]["out"].strip().splitlines()[0],
    )


if __name__ == "__main__":
    main()
