"""``lookalike scan --ray``: embed an archive on a Ray cluster into Parquet shards, then group it as a local
scan does.

The driver walks the folders (the same walk as a local scan), drops the files whose rows are already in the
shards (a rerun resumes), and writes the rest as a file list that Ray Data reads. ``map_batches`` runs
``EmbedWorker`` on the cluster's workers: each loads the bundled model once (ONNX Runtime on CPUs, torch
where Ray gave it a GPU), decodes and embeds one batch of files through ``Engine.embed_entries`` and writes
the batch as one shard. Ray restarts a killed worker and runs its batch again (the shard's name comes from
its files, so a batch run twice writes one shard).
The driver records each shard in the manifest as it comes back.

Then the shards are read back in the walk's order and grouped: up to ``LARGE_LIBRARY`` files through
``Engine.library_from`` (the local scan's own pairing, verification and grouping, so the JSON is the same),
above it out of core (``core.cluster.large``: cell-partitioned pairs on disk, streamed grouping).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from core.cluster.shards import ShardStore, write_shard
from core.engine import Engine
from core.errors import LookalikeError
from core.progress import NEVER_CANCELLED, CancelToken, ProgressFn, no_progress
from core.results import ScanResult
from core.scan import FoundFile, ScanOptions, Walk, find_images

log = logging.getLogger(__name__)

# Files per shard by default: ~3 KB of vectors a file, so ~1 MB shards, and a killed worker loses one shard.
SHARD_FILES = 256
# Above this many files the pairs and groups are made out of core (core.cluster.large).
LARGE_LIBRARY = 200_000


class EmbedWorker:
    """Ray Data's callable class: the model loads once per worker; each call embeds one batch into a shard.

    Args:
        folder: the shard folder (storage every worker can write).
        model_dir: the model folder (default: the bundled one).
        threads: CPUs Ray gave this worker (ONNX Runtime and decode threads).
        int8: run the model's int8 graph on a CPU worker: the driver's choice, so that every shard holds what
            the graph its cache key names gives, whatever each worker's CPU would pick for itself.
    """

    def __init__(self, folder: str, model_dir: str | None, threads: int, int8: bool = False) -> None:
        import ray

        device = "cuda" if ray.get_gpu_ids() else "cpu"
        self.engine = Engine(
            model_dir=model_dir, device=device, use_cache=False, workers=threads, threads=threads, int8=int8
        )
        self.engine.embedder.load()
        self.folder = folder

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        files = [
            FoundFile(os.fsdecode(p), int(s), int(m))
            for p, s, m in zip(batch["path"], batch["size"], batch["mtime_ns"], strict=True)
        ]
        entries = [e for chunk in self.engine.embed_entries(files) for e in chunk]
        b = self.engine.bundle
        row = write_shard(self.folder, entries, b.embed_dim, b.feature_dim)
        return {k: [v] for k, v in row.items()}


def _connect(address: str | None) -> None:
    """Join the cluster at ``address`` or start a local one (all this machine's CPUs); a session that
    already called ``ray.init`` is used as it is (an address is still checked: a typo is an error)."""
    import ray

    local = address in (None, "", "local")
    host, sep, port = (address or "").rpartition(":")
    if not local and sep and port.isdigit() and "://" not in address:  # Ray retries a silent one for minutes
        try:
            socket.create_connection((host, int(port)), timeout=10).close()
        except OSError as e:
            raise LookalikeError(f"cannot reach the Ray cluster at {address}: {e}") from None
    if ray.is_initialized():
        return
    kw = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
    if local:
        ray.init(address="local", num_cpus=os.cpu_count(), **kw)  # a new one, even where `ray start` ran
        return
    try:
        ray.init(address=address, **kw)
    except ConnectionError as e:  # one line for the CLI, not Ray's traceback
        raise LookalikeError(
            f"cannot reach the Ray cluster at {address} ({e}): is it running, and does this machine hold "
            "its authentication token (Ray's token-auth documentation)?"
        ) from None


def _resources() -> tuple[int, float, float]:
    """(workers, CPUs each, GPUs each): one worker per GPU when the cluster has GPUs, else one per 4 CPUs."""
    import ray

    res = ray.cluster_resources()
    cpus, gpus = int(res.get("CPU", 1)), int(res.get("GPU", 0))
    if gpus:
        return gpus, max(1, cpus // gpus), 1
    each = min(4, max(1, cpus))
    return max(1, cpus // each), each, 0


def _file_list(todo: list[FoundFile]) -> pa.Table:
    """The files to embed as an Arrow table: what Ray Data splits into the workers' batches."""
    return pa.table(
        {
            "path": pa.array([os.fsencode(f.path) for f in todo], pa.binary()),
            "size": pa.array([f.size for f in todo], pa.int64()),
            "mtime_ns": pa.array([f.mtime_ns for f in todo], pa.int64()),
        }
    )


def embed_on_ray(
    engine: Engine,
    store: ShardStore,
    todo: list[FoundFile],
    *,
    shard_files: int = SHARD_FILES,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> dict:
    """Embed ``todo`` on the connected cluster into shards of ``store``; returns figures for ``stats``."""
    import ray.data

    if shard_files < 1:
        raise ValueError(f"--shard-files must be at least 1, got {shard_files}")
    started = time.perf_counter()
    workers, cpus, gpus = _resources()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    # The list goes in from the driver (which walked the folders anyway, ~80 bytes a file): a read task would
    # wait for a CPU that the workers hold on a small cluster.
    ds = ray.data.from_arrow(_file_list(todo))
    out = ds.map_batches(
        EmbedWorker,
        fn_constructor_kwargs={
            "folder": str(store.folder),
            "model_dir": str(engine.bundle.folder),
            "threads": int(cpus),
            "int8": engine.embedder.graph == "onnx_int8",
        },
        batch_size=shard_files,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpus,
        num_gpus=gpus,
    )
    done = 0
    progress(0, len(todo), f"Reading {len(todo)} photos on {workers} Ray workers")
    for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
        for f, r, b in zip(batch["file"], batch["rows"], batch["bytes"], strict=True):
            store.add({"file": str(f), "rows": int(r), "bytes": int(b)})
            done += int(r)
        progress(done, len(todo), f"Reading: {done} of {len(todo)} photos in shards")
        cancel.raise_if_cancelled()
    store.save()
    return {
        "ray_workers": workers,
        "ray_cpus_each": cpus,
        "ray_gpus_each": gpus,
        "embed_s": time.perf_counter() - started,
    }


def ray_scan(
    engine: Engine,
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    options: ScanOptions | None = None,
    *,
    shards: str | os.PathLike,
    address: str | None = None,
    shard_files: int = SHARD_FILES,
    threshold: float | None = None,
    similar_threshold: float | None = None,
    large_from: int = LARGE_LIBRARY,
    progress: ProgressFn = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> ScanResult:
    """Scan ``paths`` with the embedding on a Ray cluster, resuming from the shards already in ``shards``.

    Args:
        engine: the model and settings (its cache serves the verification step, as in a local scan).
        paths: folders or files, as for ``Engine.scan``.
        options: include/exclude globs and the rest, as for ``Engine.scan``.
        shards: the shard folder (on a cluster: storage every node reads and writes at the same path).
        address: a running cluster's address (``ray start --head`` prints it); None: a local one.
        shard_files: files per shard (one Ray batch).
        threshold, similar_threshold: as ``lookalike scan`` takes them (default: the model's).
        large_from: from this many files on, pairs and groups are made out of core.
        progress, cancel: as for ``Engine.scan``.

    Returns:
        The ``ScanResult`` a local scan at these thresholds gives (``stats`` says what ran where).
    """
    threshold = threshold or engine.default_threshold()
    similar = similar_threshold or engine.bundle.similar_shot_threshold
    floor = min(threshold, similar)
    b = engine.bundle
    store = ShardStore(shards, engine.cache_key, engine.model_info, b.embed_dim, b.feature_dim)
    progress(0, 0, "Looking for photos")
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]  # one path, not its characters
    walk: Walk = find_images(
        [os.fsdecode(p) for p in paths], options or ScanOptions(), progress=progress, cancel=cancel
    )
    have = store.done()
    todo = [f for f in walk.files if have.get(f.path) != (f.size, f.mtime_ns)]
    del have  # ~170 bytes a file: 1.7 GB of the driver's memory at 10M files
    log.info(
        "%d images found, %d in the shards, %d to embed",
        len(walk.files),
        len(walk.files) - len(todo),
        len(todo),
    )
    stats = {"found": len(walk.files), "in_shards": len(walk.files) - len(todo), "embedded": len(todo)}
    if todo:
        _connect(address)
        stats.update(
            embed_on_ray(engine, store, todo, shard_files=shard_files, progress=progress, cancel=cancel)
        )
    if len(walk.files) >= large_from:
        from core.cluster.large import large_result

        result = large_result(
            engine, store, walk, threshold, similar, floor=floor, progress=progress, cancel=cancel
        )
    else:
        entries = store.lookup((f.path, f.size, f.mtime_ns) for f in walk.files)
        missing = [f.path for f in walk.files if f.path not in entries]
        if missing:
            raise LookalikeError(
                f"{len(missing)} files are missing from the shards after embedding, e.g. {missing[0]}"
            )
        lib = engine.library_from(
            walk,
            entries,
            floor=floor,
            verify_from=engine.checked_from(threshold),
            embedded=len(todo),
            progress=progress,
            cancel=cancel,
        )
        result = lib.result(threshold, similar)
    result.stats.update(stats, shards=len(store.shards))
    return result
