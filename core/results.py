"""Plain, frozen results: what the engine hands to the CLI and the desktop app."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """A file the engine could not use, and why, in words a person understands."""

    path: str
    reason: str


@dataclass(frozen=True)
class ImageRecord:
    """What the engine knows of one image file (all cheap to show in the UI)."""

    path: str
    size: int
    mtime_ns: int
    width: int
    height: int
    format: str
    taken: str | None = None  # EXIF DateTimeOriginal as "YYYY-MM-DD HH:MM:SS"
    capture: str | None = field(
        default=None, compare=False
    )  # the camera's record of the capture (core.decode)

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def folder(self) -> str:
        return str(Path(self.path).parent)


@dataclass(frozen=True)
class Match:
    """Two images and their cosine similarity (a = lower index)."""

    a: int
    b: int
    similarity: float


@dataclass(frozen=True)
class Member:
    index: int  # into ScanResult.files
    similarity: float  # to the group's best copy (1.0 for the best copy itself)
    identical: bool = False  # byte-identical to another member of the group (an exact copy)


@dataclass(frozen=True)
class Group:
    """Near-duplicates: every pair of members is at or above the threshold. Best copy first."""

    members: tuple[Member, ...]
    exact: bool  # every member is byte-identical
    reclaimable: int  # bytes freed by removing all but the best copy

    @property
    def indices(self) -> list[int]:
        return [m.index for m in self.members]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    sha256: str


@dataclass(frozen=True)
class ScanResult:
    files: tuple[ImageRecord, ...]
    groups: tuple[Group, ...]
    pairs: tuple[Match, ...]  # confirmed pairs at or above ``threshold``
    problems: tuple[Problem, ...]
    threshold: float
    model: ModelInfo
    stats: dict = field(default_factory=dict, compare=False)
    blank: tuple[ImageRecord, ...] = ()  # one flat colour or structureless: nothing to compare, never grouped
    # Other shots of one subject (a burst, a re-take, a moved camera): close, but not verified as one capture.
    # Shown apart and never auto-selected; a file may be in a duplicate group and a similar group at once.
    similar_groups: tuple[Group, ...] = ()

    @property
    def duplicates(self) -> int:
        return sum(len(g.members) - 1 for g in self.groups)

    @property
    def reclaimable(self) -> int:
        return sum(g.reclaimable for g in self.groups)
