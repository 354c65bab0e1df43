"""Load the bundled model and turn images into embeddings.

On CPU the model runs through ONNX Runtime (measured 3.8x faster than torch eager on these machines, same
outputs); on CUDA or Apple MPS it runs through torch, imported lazily so the installer can leave torch out.
Decoding runs in a thread pool (Pillow releases the GIL) one batch ahead of inference; the threads share one
memory budget, so a folder of giant images cannot add up to more than one machine's memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from core.decode import Decoded, DecodeError, decode_for_model
from core.errors import DeviceError, ModelError
from core.memory import give_back
from core.progress import NEVER_CANCELLED, CancelToken
from core.resources import resource_path

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "mps")
# A photo turned by 90 degrees changes aspect: its copies at the other orientation are portrait when it is
# landscape. For portrait images the two 90-degree turns of the decoded pixels are embedded too (no extra
# decode), so a landscape original and its turned copy meet even though CNN features are not
# rotation-invariant.
PORTRAIT_RATIO = 1.15
# Estimated pixel bytes (core.decode.decode_cost) that all decode threads may hold at once. A 12 MP JPEG
# decoded at draft scale needs ~2 MB and a 24 MP PNG ~200 MB, so ordinary photos never wait; two 16-bit
# 15000x15000 PNGs (0.5 GB each) fit, a third waits, whatever the number of cores.
DECODE_BUDGET_BYTES = 1 << 30


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelBundle:
    """A model folder: ``manifest.json`` + weights (safetensors, for torch) + ONNX export (for CPU)."""

    folder: Path
    manifest: dict

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def sha256(self) -> str:
        return self.manifest["weights"]["sha256"]

    @property
    def resolution(self) -> int:
        return int(self.manifest["architecture"]["resolution"])

    @property
    def embed_dim(self) -> int:
        return int(self.manifest["embedding_dim"])

    @property
    def feature_dim(self) -> int:
        return int(self.manifest["feature_dim"])

    @property
    def duplicate_threshold(self) -> float:
        return float(self.manifest["thresholds"]["duplicate"])

    @property
    def candidate_threshold(self) -> float:
        """Duplicate-embedding cosine from which a pair is checked as the same capture (core.confirm); a pair
        below it is never a duplicate. Falls back to the duplicate threshold for models calibrated before."""
        return float(self.manifest["thresholds"].get("candidate", self.duplicate_threshold))

    @property
    def similar_shot_threshold(self) -> float:
        """Duplicate-embedding cosine from which a pair that is not one capture counts as a similar shot."""
        return float(self.manifest["thresholds"].get("similar_shot", self.duplicate_threshold - 0.1))

    @property
    def similar_shot_features(self) -> float:
        """ImageNet-features cosine a similar shot must also reach (filters unrelated photos of a kind)."""
        return float(self.manifest["thresholds"].get("similar_shot_features", 0.0))

    @property
    def similar_threshold(self) -> float:
        return float(self.manifest["thresholds"]["similar"])

    @property
    def similar_source(self) -> str:
        """Which output serves "Find similar": ``features`` (ImageNet) or ``embedding``."""
        return self.manifest.get("similar_source", "features")

    @property
    def turned_embeddings(self) -> bool:
        """Whether portrait images also embed their two 90-degree turns. The evaluation decides and writes it:
        a model that matches turned copies by itself loses precision to the extra comparisons."""
        return bool(self.manifest.get("turned_embeddings", True))

    def file(self, key: str) -> Path:
        return self.folder / self.manifest[key]["file"]

    def cpu_graph(self, int8: bool | None = None) -> str:
        """The manifest key of the ONNX graph ONNX Runtime runs: ``onnx_int8`` (the quantised graph,
        ``training/quantize.py``) where the bundle has one and ``int8`` asks for it (None: where this CPU
        runs it well, ``int8_suits_cpu``), else ``onnx`` (float)."""
        use = int8_suits_cpu() if int8 is None else int8
        return "onnx_int8" if use and _has(self.manifest, ("onnx_int8", "file")) else "onnx"


_REQUIRED_KEYS = (
    ("name",),
    ("architecture", "resolution"),
    ("embedding_dim",),
    ("feature_dim",),
    ("weights", "file"),
    ("weights", "sha256"),
    ("onnx", "file"),
    ("onnx", "sha256"),
    ("thresholds", "duplicate"),
    ("thresholds", "similar"),
)


def int8_suits_cpu() -> bool:
    """Whether this CPU runs the int8 graph fast and without overflow: x86 with AVX-512 VNNI, or 64-bit ARM
    with dot-product instructions. Older x86 (AVX2, AVX-512 without VNNI) multiplies uint8 by int8 with an
    instruction that can saturate, so it keeps the float graph. ``LOOKALIKE_INT8=1``/``0`` decides instead.
    Measured on a 2-core EPYC with VNNI: 165-209 img/s against 68-79 for the float graph."""
    forced = os.environ.get("LOOKALIKE_INT8")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as cpu
    except ImportError:  # numpy moved its private CPU table: the float graph is always right
        return False
    return bool(cpu.get("AVX512VNNI") or cpu.get("ASIMDDP"))


def _has(manifest: dict, keys: tuple[str, ...]) -> bool:
    node = manifest
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            return False
        node = node[k]
    return True


def load_bundle(folder: str | os.PathLike | None = None, *, verify: bool = True) -> ModelBundle:
    """Read a model folder's manifest (default: the bundled model) and check its files' hashes."""
    folder = Path(folder) if folder else resource_path("model")
    mpath = folder / "manifest.json"
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ModelError(f"no model manifest at {mpath}") from e
    except (OSError, ValueError) as e:
        raise ModelError(f"unreadable model manifest {mpath}: {e}") from e
    missing = [".".join(k) for k in _REQUIRED_KEYS if not _has(manifest, k)]
    if missing:
        raise ModelError(f"the model manifest {mpath} lacks {', '.join(missing)}")
    bundle = ModelBundle(folder, manifest)
    if verify:
        for key in ("weights", "onnx", "onnx_int8"):
            if key not in manifest:
                continue  # only the quantised graph is optional (_REQUIRED_KEYS)
            path = bundle.file(key)
            if not path.exists():
                raise ModelError(f"model file missing: {path}")
            if sha256_file(path) != manifest[key]["sha256"]:
                raise ModelError(f"{path} does not match the sha256 in its manifest (corrupt or replaced)")
    return bundle


def _accelerator_may_exist() -> bool:
    """Whether CUDA or Apple MPS could be present, asked without importing torch (1.5 s and ~700 MB when a
    CUDA build is installed): CUDA needs the NVIDIA driver's device files (Linux) or its library (Windows),
    MPS an Apple-silicon Mac. ``LOOKALIKE_PROBE_TORCH=1`` asks torch anyway."""
    import platform
    import sys

    if os.environ.get("LOOKALIKE_PROBE_TORCH") == "1":
        return True
    if sys.platform == "darwin":
        return platform.machine() == "arm64"
    if sys.platform.startswith("linux"):
        return (
            os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0") or os.path.exists("/dev/dxg")
        )
    if sys.platform == "win32":
        return any(
            os.path.exists(os.path.join(os.environ.get("SystemRoot", r"C:\Windows"), "System32", dll))
            for dll in ("nvcuda.dll",)
        )
    return True


def pick_device(requested: str = "auto") -> str:
    """CUDA, then Apple MPS, then CPU; an explicit request that cannot be met is an error. ``cuda:N`` asks for
    one GPU of several (training)."""
    kind, _, index = requested.partition(":")
    if kind not in DEVICES or (index and not (kind == "cuda" and index.isdigit())):
        raise ValueError(f"unknown device {requested!r}; choose one of {', '.join(DEVICES)} (or cuda:N)")
    if requested == "cpu" or (requested == "auto" and not _accelerator_may_exist()):
        return "cpu"
    try:
        import torch
    except ImportError:
        if requested != "auto":
            raise DeviceError(f"device {requested!r} needs PyTorch, which is not installed") from None
        return "cpu"
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if kind == "cuda" and not cuda:
        raise DeviceError("CUDA was requested but no CUDA device is available")
    if index and int(index) >= torch.cuda.device_count():
        raise DeviceError(f"{requested} was requested but there are {torch.cuda.device_count()} CUDA devices")
    if requested == "mps" and not mps:
        raise DeviceError("Apple MPS was requested but is not available")
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    return requested


# Rows per ONNX Runtime call on the CPU. Its memory arena keeps the largest call's activations for good: RSS
# after a call of 4 rows 221 MB, 8 rows 285, 16 rows 412, 48 (16 portraits with their two turns) 842. Small
# calls cost no speed: 8.0-8.7 ms CPU per image at 4 rows vs 9.0-9.6 at 8 (2-core EPYC, AVX2). The arena
# itself stays on: without it every call allocates afresh, 50 % slower.
CPU_ROWS = 4


class OnnxBackend:
    def __init__(self, bundle: ModelBundle, threads: int | None = None, graph: str = "onnx") -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or os.cpu_count() or 1
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(bundle.file(graph)), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ModelError(f"cannot load the ONNX model: {e}") from e
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 2:
            raise ModelError(
                f"{bundle.file(graph)} is not a Lookalike model: it has {len(inputs)} inputs and "
                f"{len(outputs)} outputs (expected 1 image input; embedding and features out)"
            )
        self.input = inputs[0].name

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        emb, feat = self.session.run(None, {self.input: batch})
        return emb, feat


class TorchBackend:
    def __init__(self, bundle: ModelBundle, device: str) -> None:
        import torch
        from safetensors.torch import load_file

        from core.model import LookalikeNet, ModelConfig, UInt8Wrapper

        self.torch = torch
        net = LookalikeNet(ModelConfig.from_dict(bundle.manifest["architecture"]))
        state = {k: v.float() for k, v in load_file(str(bundle.file("weights"))).items()}
        net.load_export_state(state)
        self.model = UInt8Wrapper(net).eval().to(device)
        self.device = device

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(np.require(batch, requirements=["C", "W"])).to(self.device)
            emb, feat = self.model(x)
            return emb.float().cpu().numpy(), feat.float().cpu().numpy()


class Embedder:
    """The model on one device. ``backend`` is "onnx" on CPU and "torch" elsewhere unless told otherwise.

    ``int8``: on ONNX Runtime, run the bundle's quantised graph (True), its float graph (False), or whichever
    suits this CPU (None, ``int8_suits_cpu``). ``graph`` names the one chosen (None on torch).
    """

    def __init__(
        self,
        bundle: ModelBundle | None = None,
        device: str = "auto",
        *,
        backend: str | None = None,
        threads: int | None = None,
        int8: bool | None = None,
    ) -> None:
        self.bundle = bundle or load_bundle()
        self.device = pick_device(device)
        self.backend_name = backend or ("onnx" if self.device == "cpu" else "torch")
        if self.backend_name == "onnx" and self.device != "cpu":
            raise ValueError("the ONNX backend runs on the CPU only")
        self.threads = threads
        self.graph = self.bundle.cpu_graph(int8) if self.backend_name == "onnx" else None
        log.info("model %s on %s (%s)", self.bundle.name, self.device, self.graph or self.backend_name)

    @cached_property
    def _backend(self):
        if self.backend_name == "onnx":
            return OnnxBackend(self.bundle, self.threads, self.graph)
        return TorchBackend(self.bundle, self.device)

    def load(self) -> None:
        """Load the model now (it loads on first use otherwise): a step a progress bar can show."""
        self._backend  # noqa: B018 - a cached property: reading it loads the model

    def release(self) -> None:
        """Drop the loaded model and its runtime's memory (ONNX Runtime's arena keeps ~150 MB of
        activations); the next call loads it again (~0.2 s on the CPU). A scan releases it once embedding is
        done, so checking pairs and showing results do not carry it."""
        if self.__dict__.pop("_backend", None) is not None:
            give_back()

    @property
    def size(self) -> int:
        return self.bundle.resolution

    def embed_arrays(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, size, size, 3) RGB → (embeddings, ImageNet features), float32, L2-normalised."""
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != (self.size, self.size, 3):
            raise ValueError(
                f"expected uint8 (N, {self.size}, {self.size}, 3), got {batch.dtype} {batch.shape}"
            )
        if self.backend_name != "onnx" or len(batch) <= CPU_ROWS:
            return self._backend(np.ascontiguousarray(batch))
        parts = [
            self._backend(np.ascontiguousarray(batch[s : s + CPU_ROWS]))
            for s in range(0, len(batch), CPU_ROWS)
        ]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@dataclass(frozen=True)
class Embedded:
    index: int  # position in the input list
    decoded: Decoded | None
    error: str | None
    embedding: np.ndarray | None
    features: np.ndarray | None
    turned: np.ndarray | None = None  # (2, D): duplicate embeddings of the image turned 90 and 270 degrees
    layout: int | None = None  # core.layout.layout_hash of the whole picture, before trimming


class MemoryBudget:
    """Bytes shared by decode threads: each holds its image's estimated decode bytes while it decodes.

    Served in arrival order, so a big image is not starved by a stream of small ones. A request larger than
    the whole budget waits until nothing else is held and then runs alone.
    """

    def __init__(self, total: int) -> None:
        if total <= 0:
            raise ValueError(f"a memory budget must be positive, got {total}")
        self.total = total
        self.peak = 0  # the most bytes held at once
        self._used = 0
        self._queue: deque[object] = deque()
        self._cond = threading.Condition()

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        n = min(max(0, int(nbytes)), self.total)
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            while self._queue[0] is not ticket or self._used + n > self.total:
                self._cond.wait()
            self._queue.popleft()
            self._used += n
            self.peak = max(self.peak, self._used)
            self._cond.notify_all()  # the next in line may fit as well
        try:
            yield
        finally:
            with self._cond:
                self._used -= n
                self._cond.notify_all()


def is_portrait(width: int, height: int) -> bool:
    return height > width * PORTRAIT_RATIO


def embed_files(
    embedder: Embedder,
    paths: Sequence[str],
    *,
    batch_size: int = 32,
    workers: int | None = None,
    turned: bool = True,
    memory_budget: int = DECODE_BUDGET_BYTES,
    cancel: CancelToken = NEVER_CANCELLED,
    preview: int = 0,
) -> Iterator[list[Embedded]]:
    """Decode and embed ``paths`` batch by batch; a file that fails becomes an ``Embedded`` with ``error``.

    ``turned``: also embed portrait images turned by 90 and 270 degrees (``Embedded.turned``).
    ``memory_budget``: estimated decode bytes all decode threads may hold at once (see ``MemoryBudget``).
    ``preview``: keep each picture as a JPEG of this side too (``Decoded.preview``; 0: none).

    Decoding of the next batch runs in the thread pool while the current one is inferred.
    """
    size = embedder.size
    workers = workers or min(8, os.cpu_count() or 1)
    budget = MemoryBudget(memory_budget)

    def decode(i: int) -> tuple[int, Decoded | None, str | None]:
        try:
            return i, decode_for_model(paths[i], size, reserve=budget.reserve, preview=preview), None
        except DecodeError as e:
            return i, None, str(e)
        except MemoryError:
            return i, None, "not enough memory to decode this image"
        except Exception as e:  # noqa: BLE001 - one bad file must never stop a scan
            log.exception("unexpected error decoding %s", paths[i])
            return i, None, f"unexpected decoder error: {type(e).__name__}: {e}"

    batches = [range(s, min(s + batch_size, len(paths))) for s in range(0, len(paths), batch_size)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        pending = pool.map(decode, batches[0]) if batches else None
        for bi in range(len(batches)):
            cancel.raise_if_cancelled()
            decoded = list(pending)
            if bi + 1 < len(batches):
                pending = pool.map(decode, batches[bi + 1])
            ok = [(i, d) for i, d, _ in decoded if d is not None]
            out = [Embedded(i, None, err, None, None) for i, d, err in decoded if d is None]
            if ok:
                arrays = [d.pixels for _, d in ok]
                turned_at: dict[int, int] = {}  # position in ok -> first of its two turned rows
                for j, (_, d) in enumerate(ok):
                    if turned and is_portrait(d.width, d.height):
                        turned_at[j] = len(arrays)
                        arrays += [np.rot90(d.pixels, 1), np.rot90(d.pixels, 3)]
                emb, feat = embedder.embed_arrays(np.stack(arrays))
                out += [
                    Embedded(
                        i,
                        d,
                        None,
                        emb[j],
                        feat[j],
                        emb[turned_at[j] : turned_at[j] + 2] if j in turned_at else None,
                        d.layout,
                    )
                    for j, (i, d) in enumerate(ok)
                ]
            out.sort(key=lambda e: e.index)
            yield out
