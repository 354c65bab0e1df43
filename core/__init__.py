"""Lookalike's engine: scan → decode → embed → cache → index → group → actions. Knows nothing of Qt."""

from core.actions import Journal, remove_files, undo
from core.cache import EmbeddingCache
from core.embed import Embedder, load_bundle, pick_device
from core.engine import Engine, Library
from core.errors import ActionError, Cancelled, DeviceError, LookalikeError, ModelError
from core.progress import CancelToken
from core.results import Group, ImageRecord, Match, Member, ModelInfo, Pairs, Problem, ScanResult
from core.scan import ScanOptions, find_images

__all__ = [
    "ActionError",
    "Cancelled",
    "CancelToken",
    "DeviceError",
    "EmbeddingCache",
    "Embedder",
    "Engine",
    "Group",
    "ImageRecord",
    "Journal",
    "Library",
    "LookalikeError",
    "Match",
    "Member",
    "ModelError",
    "ModelInfo",
    "Pairs",
    "Problem",
    "ScanOptions",
    "ScanResult",
    "find_images",
    "load_bundle",
    "pick_device",
    "remove_files",
    "undo",
]
