"""Training data: three folder layouts read into identity groups, and a dataset of K views per identity.

- ``photos``: any folder of photos (self-supervised). Every photo is its own identity; its views are edited
  copies (``augment.random_edit``), and other photos are the negatives.
- ``identity``: one sub-folder per object; the files inside are views of that object.
- ``product``: files named ``<product_id>_<view_id>.jpg``; the files sharing a product id are one identity.

Every view goes through ``core.decode.resize_for_model`` after its edits, as the app's decoder does.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from core.decode import read_full, resize_for_model
from training.augment import random_edit

log = logging.getLogger(__name__)

EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
LAYOUTS = ("photos", "identity", "product")


def _images(folder: Path, recursive: bool) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in EXTS and not p.name.startswith("."))


def photo_groups(root: Path) -> list[list[Path]]:
    """Layout ``photos``: every image under ``root`` (recursively) is its own identity."""
    return [[p] for p in _images(root, recursive=True)]


def identity_groups(root: Path) -> list[list[Path]]:
    """Layout ``identity``: each sub-folder of ``root`` holds the views of one object."""
    groups = [_images(d, recursive=True) for d in sorted(root.iterdir()) if d.is_dir()]
    return [g for g in groups if g]


def product_groups(root: Path) -> list[list[Path]]:
    """Layout ``product``: ``<product_id>_<view_id>.<ext>``; the product id is everything before the last
    "_"."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for p in _images(root, recursive=False):
        pid, sep, _view = p.stem.rpartition("_")
        if not sep or not pid:
            raise ValueError(f"{p.name}: expected <product_id>_<view_id>{p.suffix}")
        groups[pid].append(p)
    return [groups[k] for k in sorted(groups)]


def read_layout(root: str | Path, layout: str) -> list[list[Path]]:
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"no such data folder: {root}")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    groups = {"photos": photo_groups, "identity": identity_groups, "product": product_groups}[layout](root)
    if not groups:
        raise ValueError(f"no images found in {root} (layout {layout})")
    log.info("%s: %d identities, %d images (layout %s)", root, len(groups), sum(map(len, groups)), layout)
    return groups


class ViewsDataset(Dataset):
    """Item ``i``: ``views`` edited copies of identity ``i`` as uint8 (views, size, size, 3), and ``i``.

    For a single-photo identity every view is an edit of that photo; with ``keep_original`` > 0 the first view
    is the unedited photo that often (an original and its copy is the app's commonest pair).
    """

    def __init__(
        self,
        groups: list[list[Path]],
        size: int,
        views: int = 2,
        strength: float = 1.0,
        keep_original: float = 0.5,
        seed: int = 0,
    ) -> None:
        if views < 2:
            raise ValueError("need at least two views per identity for positives")
        self.groups, self.size, self.views = groups, size, views
        self.strength, self.keep_original, self.seed = strength, keep_original, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.groups)

    def _rng(self, i: int) -> np.random.Generator:
        # Seeded by (seed, epoch, item): the same run draws the same edits whatever the worker count.
        return np.random.default_rng([self.seed, self.epoch, i])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        rng = self._rng(i)
        files = self.groups[i]
        out = []
        for v in range(self.views):
            path = files[int(rng.integers(len(files)))] if len(files) > 1 else files[0]
            im = read_full(str(path), max_side=2 * self.size)
            keep = v == 0 and rng.random() < self.keep_original
            out.append(resize_for_model(im if keep else random_edit(im, rng, self.strength), self.size))
        return torch.from_numpy(np.stack(out)), i


class EpochShuffle(Sampler[int]):
    """A seeded permutation per epoch; tells the dataset the epoch so its edits change too.

    Under distributed training (``world`` > 1) every rank draws the same permutation, cuts it into global
    batches of ``batch`` and yields its own ``batch // world`` slice of each: together the ranks' slices
    are the batches one process would see. An incomplete last batch is left out.
    """

    def __init__(
        self, dataset: ViewsDataset, seed: int, batch: int = 1, rank: int = 0, world: int = 1
    ) -> None:
        if batch % world:
            raise ValueError(f"a batch of {batch} identities does not split over {world} processes")
        self.dataset, self.seed, self.epoch = dataset, seed, 0
        self.batch, self.rank, self.world = batch, rank, world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.dataset.epoch = epoch

    def __len__(self) -> int:
        if self.world == 1:
            return len(self.dataset)
        return len(self.dataset) // self.batch * (self.batch // self.world)

    def __iter__(self):
        order = list(range(len(self.dataset)))
        random.Random(self.seed * 1000 + self.epoch).shuffle(order)
        if self.world > 1:
            per = self.batch // self.world
            starts = range(0, len(order) - self.batch + 1, self.batch)
            order = [i for b in starts for i in order[b + self.rank * per : b + (self.rank + 1) * per]]
        return iter(order)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: numpy and random follow torch's per-worker seed."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def collate_views(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(identities, views, H, W, 3) → images (identities*views, H, W, 3) and their identity labels."""
    views = torch.stack([b[0] for b in batch])
    labels = torch.tensor([b[1] for b in batch]).repeat_interleave(views.shape[1])
    return views.flatten(0, 1), labels
