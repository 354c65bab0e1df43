"""Plain, frozen results: what the engine hands to the CLI and the desktop app."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.raw import RAW_FORMATS

RAW_FORMAT_NAMES = frozenset(RAW_FORMATS.values())
# What a camera writes beside its RAW file when set to RAW+JPEG (HEIF on some newer bodies).
_CAMERA_TWIN_FORMATS = frozenset({"JPEG", "HEIF"})


@dataclass(frozen=True)
class Problem:
    """A file the engine could not use, and why, in words a person understands."""

    path: str
    reason: str


# The field of a capture signature (``core.decode.capture_signature``) that holds the size the camera recorded
RECORDED_SIZE = "pixels"


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

    def _against_recorded(self) -> tuple[float, float] | None:
        """This file's sides over the ones its camera recorded (EXIF PixelXDimension and PixelYDimension,
        kept in ``capture``), shortest with shortest (a turned file is not resized); None when none was
        recorded, or for a RAW file (the capture itself, measured at its sensor's size; its EXIF may be its
        preview's)."""
        if self.is_raw:
            return None
        key = RECORDED_SIZE + "="
        recorded = next((f[len(key) :] for f in (self.capture or "").split(";") if f.startswith(key)), "")
        try:
            w, h = sorted(int(v) for v in recorded.split("x"))
        except ValueError:
            return None
        small, large = sorted((self.width, self.height))
        return small / max(w, 1), large / max(h, 1)

    @property
    def upscaled(self) -> bool:
        """More pixels on both sides than the camera recorded for this capture: an enlarged export that kept
        the camera's EXIF."""
        r = self._against_recorded()
        return r is not None and min(r) > 1.01

    @property
    def resized(self) -> bool:
        """Not the size the camera recorded for this capture (enlarged, reduced or cropped by something that
        kept its EXIF as it was): not the camera's file."""
        r = self._against_recorded()
        return r is not None and not all(0.99 <= x <= 1.01 for x in r)

    @property
    def folder(self) -> str:
        return str(Path(self.path).parent)

    @property
    def is_raw(self) -> bool:
        """A camera RAW file (``core.raw``): the capture itself."""
        return self.format in RAW_FORMAT_NAMES


@dataclass(frozen=True)
class Match:
    """Two images and their cosine similarity (``a`` is the one scanned first)."""

    a: ImageRecord
    b: ImageRecord
    similarity: float


@dataclass(frozen=True, eq=False)
class Pairs:
    """A table of image pairs by position in a scan's files (``a[k] < b[k]`` as the engine makes them) and
    their cosine ``similarity[k]``.

    Columns are numpy arrays so that millions of pairs cost a few arrays, not millions of objects; rows are
    selected with a boolean mask or positions (``pairs.select(mask)``); ``matches(files)`` turns them into
    ``Match`` objects that hold their records.
    """

    a: np.ndarray  # int64 (P,)
    b: np.ndarray  # int64 (P,)
    similarity: np.ndarray  # float32 (P,)

    def __post_init__(self) -> None:
        a, b = np.asarray(self.a, np.int64), np.asarray(self.b, np.int64)
        s = np.asarray(self.similarity, np.float32)
        if not a.shape == b.shape == s.shape or a.ndim != 1:
            raise ValueError(f"pair columns differ in shape: {a.shape}, {b.shape}, {s.shape}")
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "similarity", s)

    @classmethod
    def empty(cls) -> Pairs:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.a)

    def select(self, rows: np.ndarray) -> Pairs:
        """The pairs at ``rows`` (a boolean mask or positions), in that order."""
        return Pairs(self.a[rows], self.b[rows], self.similarity[rows])

    def matches(self, files: Sequence[ImageRecord]) -> tuple[Match, ...]:
        """Every pair as a ``Match`` of the two records (similarity rounded to 6 places, as reported)."""
        return tuple(
            Match(files[a], files[b], round(s, 6))
            for a, b, s in zip(self.a.tolist(), self.b.tolist(), self.similarity.tolist(), strict=True)
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pairs):
            return NotImplemented
        return all(
            np.array_equal(x, y)
            for x, y in ((self.a, other.a), (self.b, other.b), (self.similarity, other.similarity))
        )

    __hash__ = None  # mutable arrays inside: not a dict key


@dataclass(frozen=True)
class Member:
    """One file of a group, with its similarity to the group's best copy."""

    file: ImageRecord
    similarity: float  # to the group's best copy (1.0 for the best copy itself)
    # byte-identical members (exact copies) share this: the path of one of them, the same for each; "" when no
    # other member has this file's bytes
    twin_of: str = ""
    # the files the check verified this file with as one photo but was not sure of (verdicts
    # ``core.verify.unsure``: it could be another exposure or a burst frame), by path: members of the group
    # first, in group order, then files a stricter threshold left out of it
    unsure_with: tuple[str, ...] = ()

    @property
    def identical(self) -> bool:
        """Whether another member of the group is byte-identical to this file (an exact copy)."""
        return bool(self.twin_of)

    def same_bytes(self, other: Member) -> bool:
        """Whether ``other`` (of the same group) holds this file's very bytes (itself included)."""
        return bool(self.twin_of) and other.twin_of == self.twin_of

    @property
    def unsure(self) -> bool:
        """Whether the check was not sure of this file with another member: auto-select leaves it."""
        return bool(self.unsure_with)


@dataclass(frozen=True)
class Group:
    """Near-duplicates: every pair of members is at or above the threshold. Best copy first."""

    members: tuple[Member, ...]
    exact: bool  # every member is byte-identical
    reclaimable: int  # bytes freed by removing all but the best copy

    @property
    def unsure(self) -> bool:
        """Whether a member is one the check was not sure of (``Member.unsure``): a group to CHECK."""
        return any(m.unsure for m in self.members)

    def twins(self, member: Member) -> tuple[Member, ...]:
        """The other members with ``member``'s very bytes (``Member.same_bytes``)."""
        return tuple(m for m in self.members if m is not member and member.same_bytes(m))

    @property
    def files(self) -> tuple[ImageRecord, ...]:
        """The members' records, best copy first."""
        return tuple(m.file for m in self.members)

    @property
    def paths(self) -> list[str]:
        """The members' paths, best copy first."""
        return [m.file.path for m in self.members]

    @property
    def raw_pairs(self) -> tuple[tuple[ImageRecord, ImageRecord], ...]:
        """The RAW+JPEG pairs in this group (see ``raw_jpeg_pairs``): never auto-selected by default."""
        return raw_jpeg_pairs(self.files)


def raw_jpeg_pairs(records: tuple[ImageRecord, ...]) -> tuple[tuple[ImageRecord, ImageRecord], ...]:
    """(RAW, JPEG) pairs a camera wrote together: a RAW file and a JPEG or HEIF in the same folder with the
    same name but the extension (``IMG_0412.CR2`` + ``IMG_0412.JPG``). Photographers keep both on purpose."""

    def key(r: ImageRecord) -> tuple[str, str]:
        folder, name = os.path.split(r.path)
        return os.path.normcase(folder), os.path.splitext(name)[0].casefold()

    twins: dict[tuple[str, str], list[ImageRecord]] = {}
    for r in records:
        if r.format in _CAMERA_TWIN_FORMATS:
            twins.setdefault(key(r), []).append(r)
    return tuple((r, t) for r in records if r.is_raw for t in twins.get(key(r), ()))


@dataclass(frozen=True)
class ModelInfo:
    name: str
    sha256: str


@dataclass(frozen=True)
class ScanResult:
    """What a scan found, grouped at one threshold (``Library.result``)."""

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
