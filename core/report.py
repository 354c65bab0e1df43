"""Reports of a scan: the JSON contract, CSV rows, byte formatting, and writing them without harming a file.

Every front end (the CLI, the app's Export, the packaged self-test) writes through this module. An output path
is checked *before* the work that fills it: it must not be an image, a folder, or an existing file that is not
a report this module wrote; its folder must exist and take a new file. The report is written to a temporary
file beside the target and renamed over it, so a full disk or a crash never leaves a truncated report in place
of a good one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from pathlib import Path

from core.errors import OutputError
from core.results import Group, ScanResult
from core.scan import IMAGE_EXTENSIONS, sniff

CSV_HEADER = ["group", "exact", "keep", "path", "width", "height", "bytes", "similarity", "taken", "unsure"]
# a report written before the "unsure" column: still ours to replace
_CSV_PREFIX = ",".join(CSV_HEADER[:-1])
STDOUT = "-"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and the noun agreeing with it: "1 group", "2 groups", "1 copy", "3 copies"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def human_bytes(n: float) -> str:
    """``1536`` → ``"1.5 KB"``: whole bytes below 1 KB, one decimal above (binary units, as file managers
    show)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover - the loop returns at GB


def _group_json(g: Group) -> dict:
    return {
        "exact": g.exact,
        "files": [
            {
                "path": m.file.path,
                "width": m.file.width,
                "height": m.file.height,
                "bytes": m.file.size,
                "similarity": m.similarity,
                "unsure": m.unsure,
            }
            for m in g.members
        ],
        "raw_jpeg_pairs": [[raw.path, jpeg.path] for raw, jpeg in g.raw_pairs],
    }


def scan_json(result: ScanResult) -> dict:
    """The ``scan --json`` contract (README, "Command line")."""
    return {
        "threshold": result.threshold,
        "model": {"name": result.model.name, "sha256": result.model.sha256},
        "files": len(result.files),
        "groups": [_group_json(g) for g in result.groups],
        "similar_groups": [_group_json(g) for g in result.similar_groups],
        "pairs": [{"a": p.a.path, "b": p.b.path, "similarity": p.similarity} for p in result.pairs],
        "problems": [{"path": p.path, "reason": p.reason} for p in result.problems],
        "blank": [
            {"path": f.path, "width": f.width, "height": f.height, "bytes": f.size} for f in result.blank
        ],
    }


def json_text(data: dict) -> str:
    # ASCII escapes keep names that are not valid UTF-8 (surrogate-escaped) faithful and the file valid JSON.
    return json.dumps(data, indent=2) + "\n"


def csv_text(result: ScanResult, keep: set[str] | None = None) -> str:
    """One row per grouped file. ``keep``: the paths to mark as kept (default: each group's best copy).
    ``unsure``: the check was not sure the file is a copy (``Member.unsure``): the app never auto-selects it,
    and a script should not remove it on ``keep`` alone."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(CSV_HEADER)
    for n, g in enumerate(result.groups, 1):
        for k, m in enumerate(g.members):
            f = m.file
            kept = k == 0 if keep is None else f.path in keep
            row = [n, g.exact, kept, f.path, f.width, f.height, f.size, m.similarity, f.taken or "", m.unsure]
            w.writerow(row)
    return buf.getvalue()


def _ours(data: bytes) -> bool:
    """Whether an existing file's bytes are a JSON or CSV report this module wrote (and so may be
    replaced)."""
    if data.startswith(_CSV_PREFIX.encode()):
        return True
    try:
        report = json.loads(data) if data.lstrip().startswith(b"{") else None
    except ValueError:
        return False
    return isinstance(report, dict) and "model" in report and ("groups" in report or "queries" in report)


class Output:
    """A report file, checked now, written whole later (``write``); ``discard`` drops a half-written one."""

    def __init__(self, path: str | os.PathLike, kind: str) -> None:
        self.kind = kind
        self.stdout = os.fspath(path) == STDOUT
        self.path = Path(path)
        self._tmp: str | None = None
        self._folder = Path(".")
        if not self.stdout:
            self._check()

    def _check(self) -> None:
        p = self.path
        name = os.fsdecode(p)
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            raise OutputError(f"refusing to write the {self.kind} report to {name}: that is an image's name")
        if p.is_dir():
            raise OutputError(f"cannot write the {self.kind} report to {name}: it is a folder")
        if os.path.lexists(p):
            if not p.is_file() or p.is_symlink():
                raise OutputError(f"refusing to write the {self.kind} report over {name}: not a regular file")
            try:
                data = p.read_bytes()  # read once: is it an image, is it one of our reports?
            except OSError as e:
                raise OutputError(
                    f"cannot write the {self.kind} report to {name}: {e.strerror or e}"
                ) from None
            if sniff(data[:16]) is not None or not _ours(data):
                raise OutputError(
                    f"refusing to write the {self.kind} report over {name}: the file exists and is "
                    "not a report Lookalike wrote (choose a new name)"
                )
        folder = p.parent if str(p.parent) else Path(".")
        if not folder.is_dir():
            raise OutputError(
                f"cannot write the {self.kind} report to {name}: no folder {os.fsdecode(folder)}"
            )
        try:  # a folder that cannot take a new file fails now, before the scan, not after it
            fd, probe = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise OutputError(
                f"cannot write the {self.kind} report in {os.fsdecode(folder)}: {e.strerror or e}"
            ) from None
        self._folder = folder

    def write(self, text: str) -> None:
        """Write ``text`` whole: temporary file, flushed to disk, renamed over the target."""
        if self.stdout:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        try:
            fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self._folder)
            with open(fd, "w", encoding="utf-8", errors="surrogateescape", newline="") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(self._tmp, self.path)
            self._tmp = None
        except OSError as e:
            self.discard()
            raise OutputError(
                f"could not write the {self.kind} report {os.fsdecode(self.path)}: "
                f"{e.strerror or e} (an earlier file there is unchanged)"
            ) from None

    def discard(self) -> None:
        if self._tmp:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self._tmp = None

    def __enter__(self) -> Output:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


def write_json(data: dict, path: str | os.PathLike) -> None:
    with Output(path, "JSON") as out:
        out.write(json_text(data))


def write_csv(result, path: str | os.PathLike, keep: set[str] | None = None) -> None:
    with Output(path, "CSV") as out:
        out.write(csv_text(result, keep))
