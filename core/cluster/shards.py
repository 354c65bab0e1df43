"""Parquet shards of embeddings and metadata, and the manifest that lists them: the Ray scan's cache.

One shard holds one batch of files, one row per file: its path (file-system bytes, as the SQLite cache keeps
them), size and mtime, what the decode learnt (size in pixels, format, EXIF date, capture record), a decode
error or the blank flag, and the duplicate embedding, ImageNet features and turned embeddings as float16
vectors. A shard is written to a temporary name and renamed, so a killed worker or driver never leaves half a
shard under a shard's name; leftovers are removed when the folder is opened again.

``manifest.json`` names the model (its cache key: the same vectors only from the same weights and
preprocessing), the vector sizes and every shard with its row count. Workers write shards, the driver records
them; a shard a worker finished after the driver died is adopted at the next run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.cache import CachedEntry
from core.results import ImageRecord, ModelInfo

log = logging.getLogger(__name__)

SHARD_VERSION = 1
MANIFEST = "manifest.json"
SHARD_GLOB = "shard-*.parquet"
SAVE_EVERY_S = 2.0
# Columns that describe a file; the vector columns follow (see ``shard_schema``).
META_COLUMNS = ("path", "size", "mtime_ns", "width", "height", "format", "taken", "capture", "error", "blank")


def shard_schema(embed_dim: int, feature_dim: int) -> pa.Schema:
    """The schema of every shard for a model with these vector sizes."""
    f16 = pa.float16()
    return pa.schema(
        [
            pa.field("path", pa.binary(), nullable=False),  # os.fsencode(path): any file name survives
            pa.field("size", pa.int64(), nullable=False),
            pa.field("mtime_ns", pa.int64(), nullable=False),
            pa.field("width", pa.int32()),
            pa.field("height", pa.int32()),
            pa.field("format", pa.string()),
            pa.field("taken", pa.string()),
            pa.field("capture", pa.string()),
            pa.field("error", pa.string()),  # why the file could not be used; its vectors are null
            pa.field("blank", pa.bool_()),
            pa.field("embedding", pa.list_(f16, embed_dim)),
            pa.field("features", pa.list_(f16, feature_dim)),
            pa.field("turned", pa.list_(f16, 2 * embed_dim)),  # portrait images: the two 90-degree turns
            # core.layout's hash; shards written before it have no such column (their rows read as None)
            pa.field("layout", pa.uint64()),
        ],
        metadata={"lookalike_shard_version": str(SHARD_VERSION)},
    )


def _vectors(rows: list[np.ndarray | None], dim: int) -> pa.FixedSizeListArray:
    mask = np.array([r is None for r in rows], bool)
    flat = np.zeros((len(rows), dim), np.float16)
    for k, r in enumerate(rows):
        if r is not None:
            flat[k] = np.asarray(r, np.float16).reshape(-1)
    values = pa.array(flat.reshape(-1), type=pa.float16())
    return pa.FixedSizeListArray.from_arrays(values, dim, mask=pa.array(mask) if mask.any() else None)


def entries_table(entries: Sequence[CachedEntry], embed_dim: int, feature_dim: int) -> pa.Table:
    """Cache rows (``Engine.embed_entries``) as a shard table."""
    recs = [e.record for e in entries]
    cols = {
        "path": pa.array([os.fsencode(r.path) for r in recs], pa.binary()),
        "size": pa.array([r.size for r in recs], pa.int64()),
        "mtime_ns": pa.array([r.mtime_ns for r in recs], pa.int64()),
        "width": pa.array([r.width for r in recs], pa.int32()),
        "height": pa.array([r.height for r in recs], pa.int32()),
        "format": pa.array([r.format for r in recs], pa.string()),
        "taken": pa.array([r.taken for r in recs], pa.string()),
        "capture": pa.array([r.capture for r in recs], pa.string()),
        "error": pa.array([e.error for e in entries], pa.string()),
        "blank": pa.array([bool(e.blank) for e in entries], pa.bool_()),
        "embedding": _vectors([e.embedding for e in entries], embed_dim),
        "features": _vectors([e.features for e in entries], feature_dim),
        "turned": _vectors([e.turned for e in entries], 2 * embed_dim),
        "layout": pa.array([e.layout for e in entries], pa.uint64()),
    }
    return pa.table(cols, schema=shard_schema(embed_dim, feature_dim))


def shard_name(paths: Iterable[str]) -> str:
    """A shard's file name, from the files it holds: a batch that Ray runs again (a worker died) rewrites the
    same shard instead of adding a second copy of its rows."""
    h = hashlib.blake2b(digest_size=12)
    for p in paths:
        h.update(os.fsencode(p) + b"\0")
    return f"shard-{h.hexdigest()}.parquet"


def write_shard(
    folder: str | os.PathLike, entries: Sequence[CachedEntry], embed_dim: int, feature_dim: int
) -> dict:
    """Write one shard whole (temporary name, then renamed) and return its manifest row."""
    folder = Path(folder)
    name = shard_name(e.path for e in entries)
    tmp = folder / f".{name}.{uuid.uuid4().hex}.tmp"
    try:
        pq.write_table(entries_table(entries, embed_dim, feature_dim), tmp, compression="zstd")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, folder / name)
    finally:
        tmp.unlink(missing_ok=True)
    return {"file": name, "rows": len(entries), "bytes": (folder / name).stat().st_size}


def column_matrix(table: pa.Table, name: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """A vector column as a float16 (rows, dim) matrix (zeros where null) and its validity mask."""
    col = table.column(name).combine_chunks()
    valid = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), bool)
    values = np.asarray(col.flatten().to_numpy(zero_copy_only=False), np.float16)
    out = np.zeros((len(col), dim), np.float16)
    out[valid] = values.reshape(-1, dim)  # flatten() leaves null rows out
    return out, valid


def read_entries(table: pa.Table, embed_dim: int, feature_dim: int) -> Iterator[CachedEntry]:
    """A shard's rows back as cache rows (vectors as float16, the cache's own form)."""
    meta = {c: table.column(c).to_pylist() for c in META_COLUMNS}
    emb, has_emb = column_matrix(table, "embedding", embed_dim)
    feat, _ = column_matrix(table, "features", feature_dim)
    turned, has_turned = column_matrix(table, "turned", 2 * embed_dim)
    has_layout = "layout" in table.column_names  # not in shards written before it was kept
    layouts = table.column("layout").to_pylist() if has_layout else [None] * table.num_rows
    for k in range(table.num_rows):
        rec = ImageRecord(
            os.fsdecode(meta["path"][k]),
            meta["size"][k],
            meta["mtime_ns"][k],
            meta["width"][k] or 0,
            meta["height"][k] or 0,
            meta["format"][k] or "",
            meta["taken"][k],
            meta["capture"][k],
        )
        if meta["error"][k] or not has_emb[k]:
            yield CachedEntry(rec, error=meta["error"][k] or "no embedding in the shard")
            continue
        yield CachedEntry(
            rec,
            emb[k],
            feat[k],
            turned=turned[k].reshape(2, embed_dim) if has_turned[k] else None,
            blank=bool(meta["blank"][k]),
            layout=layouts[k],
        )


@dataclass(frozen=True)
class ShardInfo:
    file: str
    rows: int
    bytes: int


class ShardStore:
    """A folder of shards for one model: what is already embedded, and where new shards go.

    Args:
        folder: the shard folder (made if missing). On a cluster it must be storage every worker can write.
        cache_key: ``Engine.cache_key`` of the model that embeds; shards of another model are refused.
        model: the model's name and hash (written to the manifest for people).
        embed_dim, feature_dim: the model's vector sizes.

    Raises:
        ValueError: the folder holds shards of another model or another shard version.
    """

    def __init__(
        self, folder: str | os.PathLike, cache_key: str, model: ModelInfo, embed_dim: int, feature_dim: int
    ) -> None:
        self.folder = Path(folder)
        self.cache_key, self.model = cache_key, model
        self.embed_dim, self.feature_dim = embed_dim, feature_dim
        self.folder.mkdir(parents=True, exist_ok=True)
        self.schema = shard_schema(embed_dim, feature_dim)
        self.shards: dict[str, ShardInfo] = {}
        self._saved = 0.0
        self._open()

    @property
    def manifest_path(self) -> Path:
        return self.folder / MANIFEST

    def _open(self) -> None:
        for tmp in self.folder.glob(".shard-*.tmp"):  # a shard a killed process was writing: never valid
            log.info("removing the unfinished shard %s", tmp.name)
            tmp.unlink(missing_ok=True)
        listed: list[dict] = []
        if self.manifest_path.exists():
            try:
                m = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise ValueError(f"{self.manifest_path} is unreadable ({e}); remove it to rebuild") from None
            if m.get("version") != SHARD_VERSION or m.get("cache_key") != self.cache_key:
                raise ValueError(
                    f"{self.folder} holds shards of another model or format "
                    f"({m.get('model', {}).get('name')}, version {m.get('version')}): "
                    "use another --shards folder"
                )
            listed = m.get("shards", [])
        for row in listed:
            if (self.folder / row["file"]).exists():
                self.shards[row["file"]] = ShardInfo(row["file"], int(row["rows"]), int(row["bytes"]))
        for path in sorted(self.folder.glob(SHARD_GLOB)):  # written by a worker after the driver stopped
            if path.name not in self.shards:
                info = self._check(path)
                if info:
                    self.shards[path.name] = info
        self.save()

    def _check(self, path: Path) -> ShardInfo | None:
        """A shard file not in the manifest, if it is a whole shard of this schema (else set aside)."""
        try:
            meta = pq.read_metadata(path)
            ok = meta.schema.to_arrow_schema().remove_metadata().equals(self.schema.remove_metadata())
        except (OSError, pa.ArrowException) as e:
            ok, meta = False, e
        if not ok:
            log.warning("setting aside %s: not a shard of this model (%s)", path.name, meta)
            path.rename(path.with_suffix(".bad"))
            return None
        return ShardInfo(path.name, meta.num_rows, path.stat().st_size)

    def add(self, row: dict) -> None:
        """Record a shard a worker wrote (``write_shard``'s row). The manifest is rewritten at most every
        ``SAVE_EVERY_S`` and by ``save``: a 10M-file archive has thousands of shards, and one not yet listed
        is adopted at the next run."""
        self.shards[row["file"]] = ShardInfo(row["file"], int(row["rows"]), int(row["bytes"]))
        if time.monotonic() - self._saved >= SAVE_EVERY_S:
            self.save()

    def save(self) -> None:
        """Write the manifest whole (temporary file, then renamed)."""
        m = {
            "version": SHARD_VERSION,
            "model": {"name": self.model.name, "sha256": self.model.sha256},
            "cache_key": self.cache_key,
            "embed_dim": self.embed_dim,
            "feature_dim": self.feature_dim,
            "rows": sum(s.rows for s in self.shards.values()),
            "shards": [{"file": s.file, "rows": s.rows, "bytes": s.bytes} for s in self.shards.values()],
        }
        tmp = self.manifest_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(m, indent=1), encoding="utf-8")
        os.replace(tmp, self.manifest_path)
        self._saved = time.monotonic()

    def layouts(self, name: str) -> np.ndarray:
        """One shard's grey-level layout hashes by row (uint64, ``core.layout``); 0, which is near nothing,
        where a row has none and for a whole shard written before they were kept."""
        path = self.folder / name
        if "layout" not in pq.read_schema(path).names:
            return np.zeros(pq.read_metadata(path).num_rows, np.uint64)
        column = pq.read_table(path, columns=["layout"]).column("layout").fill_null(0)
        return np.asarray(column.to_numpy(), np.uint64)

    def tables(
        self, columns: Sequence[str] | None = None, names: Sequence[str] | None = None
    ) -> Iterator[tuple[str, pa.Table]]:
        """Every shard's table (or those ``names``; or some of its columns), in manifest order."""
        for name in list(self.shards) if names is None else names:
            yield name, pq.read_table(self.folder / name, columns=list(columns) if columns else None)

    def done(self) -> dict[str, tuple[int, int]]:
        """``path → (size, mtime_ns)`` of every file in the shards (metadata columns only)."""
        out: dict[str, tuple[int, int]] = {}
        for _, t in self.tables(["path", "size", "mtime_ns"]):
            for p, s, m in zip(*(t.column(c).to_pylist() for c in ("path", "size", "mtime_ns")), strict=True):
                out[os.fsdecode(p)] = (s, m)
        return out

    def lookup(self, found: Iterable[tuple[str, int, int]]) -> dict[str, CachedEntry]:
        """The shard rows still valid for ``(path, size, mtime_ns)`` of the files found (as the SQLite cache's
        ``lookup``: a changed file's old row does not count)."""
        want = {p: (s, m) for p, s, m in found}
        out: dict[str, CachedEntry] = {}
        for _, table in self.tables():
            keep = [
                k
                for k, (p, s, m) in enumerate(
                    zip(*(table.column(c).to_pylist() for c in ("path", "size", "mtime_ns")), strict=True)
                )
                if want.get(os.fsdecode(p)) == (s, m)
            ]
            if keep:
                for e in read_entries(table.take(keep), self.embed_dim, self.feature_dim):
                    out[e.path] = e
        return out
