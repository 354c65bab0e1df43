"""Split the training photos by photo into train/validation and store them small, for a fast or remote run.

The split is deterministic: BSDS500 ``test`` plus every fifth ImageNet-sample photo (sorted by name) are the
validation photos; everything else trains. Photos are shrunk so the shorter side is ``short_side`` px (JPEG):
the model sees 224 px, and small copies load fast and travel to a GPU machine.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from PIL import Image

from core.decode import read_full

log = logging.getLogger(__name__)

EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def split_shared_datasets(src: Path) -> dict[str, list[Path]]:
    """``{"train": [...], "val": [...]}`` for ``../shared/datasets`` (see SOURCES.md)."""
    split: dict[str, list[Path]] = {"train": [], "val": []}
    for sub in sorted((src / "bsds500").iterdir()) if (src / "bsds500").exists() else []:
        files = sorted(p for p in sub.iterdir() if p.suffix.lower() in EXTS)
        split["val" if sub.name == "test" else "train"] += files
    imagenet = sorted(p for p in (src / "imagenet-sample").glob("*") if p.suffix.lower() in EXTS)
    for i, p in enumerate(imagenet):
        split["val" if i % 5 == 0 else "train"].append(p)
    return split


def shrink(src: Path, dst: Path, short_side: int, quality: int = 90) -> None:
    im = read_full(str(src))
    scale = short_side / min(im.size)
    if scale < 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
    dst.parent.mkdir(parents=True, exist_ok=True)
    im.save(dst, "JPEG", quality=quality)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", type=Path, default=Path("../shared/datasets"))
    p.add_argument("--out", type=Path, default=Path(".data/gpu"))
    p.add_argument("--short-side", type=int, default=240)
    p.add_argument("--quality", type=int, default=82)
    p.add_argument(
        "--val-limit", type=int, default=160, help="keep every n-th validation photo to this many (0: all)"
    )
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if a.out.exists():
        shutil.rmtree(a.out)
    for part, files in split_shared_datasets(a.src).items():
        if part == "val" and a.val_limit and len(files) > a.val_limit:
            files = files[:: -(-len(files) // a.val_limit)]
        for f in files:
            shrink(f, a.out / part / f"{f.parent.name}__{f.stem}.jpg", a.short_side, a.quality)
        log.info("%s: %d photos", part, len(files))


if __name__ == "__main__":
    main()
