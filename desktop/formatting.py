"""How numbers and records read in the UI."""

from __future__ import annotations

import time

from core.report import human_bytes
from core.results import ImageRecord

__all__ = ["count", "human_bytes", "human_duration", "percent", "taken_or_modified"]


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun agreeing with it: "1 group", "2 groups", "1 copy", "3 copies"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def human_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def taken_or_modified(rec: ImageRecord) -> tuple[str, str]:
    """("Taken", EXIF date) when the camera recorded one, else ("Modified", the file's date)."""
    if rec.taken:
        return "Taken", rec.taken
    return "Modified", time.strftime("%Y-%m-%d %H:%M", time.localtime(rec.mtime_ns / 1e9))


def percent(similarity: float) -> str:
    return f"{similarity * 100:.1f} %"
