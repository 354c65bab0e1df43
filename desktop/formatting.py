"""How numbers and records read in the UI."""

from __future__ import annotations

import time

from core.report import count, human_bytes
from core.results import ImageRecord

__all__ = ["count", "human_bytes", "human_duration", "percent", "taken_or_modified"]


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
    return "Modified", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rec.mtime_ns / 1e9))  # as EXIF's


def percent(similarity: float) -> str:
    return f"{similarity * 100:.1f} %"
