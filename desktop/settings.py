"""What the app remembers between runs (QSettings, organisation and application "Lookalike")."""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6.QtCore import QByteArray, QSettings

from core.scan import ScanOptions

ORG = APP = "Lookalike"


@dataclass
class ScanSettings:
    folders: list[str] = field(default_factory=list)
    reference: list[str] = field(default_factory=list)
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    min_size_kb: int = 0

    def options(self) -> ScanOptions:
        return ScanOptions(
            include=tuple(self.include), exclude=tuple(self.exclude), min_size=max(1, self.min_size_kb * 1024)
        )


def _list(value) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


class Settings:
    """Typed access to the app's QSettings."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self._q = qsettings or QSettings(ORG, APP)

    def load_scan(self) -> ScanSettings:
        q = self._q
        return ScanSettings(
            folders=_list(q.value("scan/folders")),
            reference=_list(q.value("scan/reference")),
            include=_list(q.value("scan/include")),
            exclude=_list(q.value("scan/exclude")),
            min_size_kb=int(q.value("scan/min_size_kb", 0) or 0),
        )

    def save_scan(self, s: ScanSettings) -> None:
        for key in ("folders", "reference", "include", "exclude"):
            self._q.setValue(f"scan/{key}", list(getattr(s, key)))
        self._q.setValue("scan/min_size_kb", int(s.min_size_kb))
        self._q.sync()

    def strictness(self, default: float) -> float:
        return float(self._q.value("view/threshold", default))

    def set_strictness(self, value: float) -> None:
        self._q.setValue("view/threshold", float(value))

    def stored_strictness(self) -> float | None:
        """The duplicates' strictness chosen last time (None: never chosen)."""
        v = self._q.value("view/threshold")
        return None if v is None else float(v)

    def similar_strictness(self) -> float | None:
        """The similar shots' strictness chosen last time (None: never chosen, the library's floor)."""
        v = self._q.value("view/similar_threshold")
        return None if v is None else float(v)

    def set_similar_strictness(self, value: float) -> None:
        self._q.setValue("view/similar_threshold", float(value))

    def results_to_restore(self) -> bool:
        """Whether a scan finished last time (the next start brings its results back from the cache)."""
        return str(self._q.value("view/restore", "false")).lower() == "true"

    def set_results_to_restore(self, on: bool) -> None:
        self._q.setValue("view/restore", bool(on))  # written to disk by Qt soon, and on close

    def blob(self, key: str) -> QByteArray | None:
        v = self._q.value(f"layout/{key}")
        return v if isinstance(v, QByteArray) else None

    def set_blob(self, key: str, value: QByteArray) -> None:
        self._q.setValue(f"layout/{key}", value)

    def sync(self) -> None:
        """Write what changed to disk now (Qt otherwise writes it later, or at exit)."""
        self._q.sync()
