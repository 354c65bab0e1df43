"""The app's state and its long operations, without widgets: engine, library, result, marks, actions.

Every long call (scan, find similar on an outside file, trash/move/undo) runs as a ``Task`` in the thread
pool; results come back through queued signals to slots here, in the GUI thread, and leave as signals the
window connects to its views.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from core.actions import ActionResult, Journal, remove_files, undo
from core.engine import Engine, Library
from core.errors import ActionError
from core.progress import CancelToken, ProgressFn
from core.report import scan_json, write_csv, write_json
from core.results import Group, ImageRecord, ScanResult
from core.scan import ScanOptions
from core.selection import choose, left_unsure, left_unsure_groups
from desktop.formatting import count
from desktop.marks import Marks
from desktop.workers import Task, TaskRunner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Scanned:
    """A scan's library and its first grouping, made in the worker at ``key`` (duplicates, similar)."""

    library: Library
    result: ScanResult
    key: tuple[float, float | None]


def _duplicates_floor(library: Library) -> float:
    """The lowest duplicates' threshold a library can group at: with verification, duplicates exist only from
    the cosine the scan checked pairs from."""
    return max(library.floor, library.verify_from) if library.same is not None else library.floor


class Session(QObject):
    scan_started = Signal()
    scan_progress = Signal(int, int, str)
    scan_finished = Signal()
    scan_cancelled = Signal()
    failed = Signal(str, str)  # what failed (in words), traceback
    result_changed = Signal(object)  # ScanResult | None
    similar_started = Signal(str)
    similar_ready = Signal(str, list)
    similar_failed = Signal(str, str)
    action_done = Signal(object)  # ActionResult
    message = Signal(str)
    busy_changed = Signal(bool)

    def __init__(
        self,
        engine_factory: Callable[[], Engine] = Engine,
        journal_path: str | Path | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._engine_factory = engine_factory
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        self._journal_path = journal_path
        self._journal: Journal | None = None
        self.runner = TaskRunner(self)
        self.marks = Marks(self)
        self.library: Library | None = None
        self.arriving = False  # True while a scan's result is being handed to the views
        self.result: ScanResult | None = None
        self.threshold: float | None = None
        self._this_run: set[int] = set()  # journal ids of the actions done since the app started
        self.similar_threshold: float | None = None  # for similar shots; None: the library's floor
        self.folders: list[str] = []
        self.options = ScanOptions()
        self._scan_task: Task | None = None
        self._action_task: Task | None = None
        self._similar_paths: dict[object, str] = {}  # a find-similar task's signals -> its query path
        # "Not a duplicate" decisions waiting to be written to the cache, in the order they were made:
        # (forget, pairs). Written in workers, one at a time, so an Undo never lands before its mark.
        self._ignored_writes: deque[tuple[bool, list[tuple[str, str]]]] = deque()
        self._ignored_queue_lock = threading.Lock()
        self._ignored_write_lock = threading.Lock()
        # the decisions made since the running scan started: its library may have read the cache before they
        # were written, so they are applied to it again when it arrives
        self._since_scan: list[tuple[bool, list[tuple[str, str]]]] = []
        self._keep_marks = False  # the action running leaves the marks as they are (no marked file moves)

    # -- the engine, made on first use (in a worker: loading the model is not the GUI thread's job) ----------
    def engine(self) -> Engine:
        with self._engine_lock:
            if self._engine is None:
                self._engine = self._engine_factory()
            return self._engine

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            self._journal = Journal(self._journal_path)
        return self._journal

    @property
    def scanning(self) -> bool:
        return self._scan_task is not None

    @property
    def busy(self) -> bool:
        return self._scan_task is not None or self._action_task is not None

    def thresholds(self) -> tuple[float, float, float]:
        """(floor of the duplicates' slider, default duplicate threshold, similar) of the library and model.

        With verification, duplicates exist only from the cosine the scan checked pairs from
        (``verify_from``)."""
        if self.library is None or self._engine is None:
            raise RuntimeError("no library yet: scan first")
        engine = self._engine
        return _duplicates_floor(self.library), engine.default_threshold(), engine.bundle.similar_threshold

    # -- scanning
    # ---------------------------------------------------------------------------------------------
    def scan(self, folders: list[str], options: ScanOptions | None = None) -> bool:
        if self.busy:
            self.message.emit("Busy: wait for the current operation, or cancel it.")
            return False
        if not folders:
            self.message.emit("Add a folder to scan first.")
            return False
        self.folders = list(folders)
        self.options = options or self.options
        task = Task(self._scan_work, list(folders), self.options, name="scan")
        task.signals.progress.connect(self.scan_progress, Qt.ConnectionType.QueuedConnection)
        task.signals.finished.connect(self._scanned, Qt.ConnectionType.QueuedConnection)
        task.signals.failed.connect(self._scan_failed, Qt.ConnectionType.QueuedConnection)
        task.signals.cancelled.connect(self._scan_cancelled, Qt.ConnectionType.QueuedConnection)
        self._scan_task = task
        self._since_scan = []
        self.scan_started.emit()
        self.busy_changed.emit(True)
        self.runner.start(task)
        return True

    def _scan_work(
        self, folders: list[str], options: ScanOptions, *, progress: ProgressFn, cancel: CancelToken
    ) -> Library:
        progress(0, 0, "Loading the model")
        with self._ignored_write_lock:  # "not a duplicate" decisions made so far are in the cache it reads
            self._apply_ignored_writes()
        library = self.engine().scan(folders, options, progress=progress, cancel=cancel)
        # The first grouping is made here (49 ms of a 134 ms freeze for 2,100 photos; every pair's feature
        # similarity comes with the library): used unless the strictness moved meanwhile.
        key = self._grouping_thresholds(library)
        return _Scanned(library, library.result(*key), key)

    def cancel(self) -> None:
        if self._scan_task is not None:
            self._scan_task.cancel()

    def _grouping_thresholds(self, library: Library) -> tuple[float, float | None]:
        """The (duplicates, similar shots) thresholds a new library is first grouped at: the current ones,
        or the model's default, never below what the library can group."""
        t = self.engine().default_threshold() if self.threshold is None else self.threshold
        return max(_duplicates_floor(library), t), self._similar_at(library)

    def _similar_at(self, library: Library) -> float | None:
        """The similar shots' threshold, never below the library's floor (None: the floor itself)."""
        similar = self.similar_threshold
        return None if similar is None else max(library.floor, similar)

    @Slot(object)
    def _scanned(self, scanned: _Scanned) -> None:
        self._scan_task = None
        library = self.library = scanned.library
        replayed = bool(self._since_scan)
        for forget, pairs in self._since_scan:  # made during the scan: perhaps after it read the cache
            (library.ignored.difference_update if forget else library.ignored.update)(pairs)
        self._since_scan = []
        key = self._grouping_thresholds(library)
        self.threshold = key[0]
        self.arriving = True  # views may build their slower parts in the next turn of the event loop
        try:
            if key == scanned.key and not replayed:
                self.result = scanned.result
                self.marks.set_result(self.result)
                self.result_changed.emit(self.result)
            else:
                self._regroup()
        finally:
            self.arriving = False
        # after what the views deferred: a scan is finished once its result is on screen
        QTimer.singleShot(0, self, self._scan_finished)

    def _scan_finished(self) -> None:
        self.busy_changed.emit(False)
        self.scan_finished.emit()
        st = self.library.stats
        # the photos read (a file that could not be read is a problem, listed apart, not a photo scanned)
        problems = len(self.library.problems)
        unread = f", {count(problems, 'file')} could not be read" if problems else ""
        self.message.emit(
            f"Scanned {count(len(self.library.files), 'photo')} "
            f"({st.get('cached', 0)} from the cache{unread}): "
            f"{count(len(self.result.groups), 'group')} of duplicates, "
            f"{len(self.result.similar_groups)} of similar shots.{self._unmarked_note()}"
        )

    @Slot(str, str)
    def _scan_failed(self, message: str, details: str) -> None:
        self._scan_task = None
        self.busy_changed.emit(False)
        self.failed.emit(f"The scan failed: {message}", details)

    @Slot()
    def _scan_cancelled(self) -> None:
        self._scan_task = None
        self.busy_changed.emit(False)
        self.scan_cancelled.emit()
        self.message.emit("Scan cancelled. What was read is cached: scanning again continues from there.")

    # -- grouping
    # ---------------------------------------------------------------------------------------------
    def set_threshold(self, threshold: float) -> None:
        """Regroup at ``threshold`` from the library (no re-embedding)."""
        self._set_threshold("threshold", threshold)

    def set_similar_threshold(self, threshold: float) -> None:
        """Regroup the similar shots at ``threshold`` (the duplicates stay as they are)."""
        self._set_threshold("similar_threshold", threshold)

    def _set_threshold(self, which: str, threshold: float) -> None:
        if self.library is not None:
            threshold = max(self.library.floor, threshold)  # never below what the library was scanned at
        setattr(self, which, threshold)
        if self.library is not None:
            self._regroup()
            # the scan's summary no longer counts what is shown: say what the new strictness shows
            similar = which == "similar_threshold"
            shown = count(len(self.result.similar_groups if similar else self.result.groups), "group")
            tier = "similar shots" if similar else "duplicates"
            note = self._unmarked_note()
            self.message.emit(f"At {threshold * 100:.0f} % strictness: {shown} of {tier}.{note}")

    def clear_result(self) -> None:
        """Forget the current library and result (every folder was removed): nothing left to show or mark."""
        self.library, self.result, self.folders = None, None, []
        self.marks.set_result(None)
        self.result_changed.emit(None)

    def _regroup(self) -> None:
        assert self.library is not None and self.threshold is not None
        # a passing regrouping (a slider, an ignored pair) is not saved for the next scan
        self.result = self.library.result(self.threshold, self._similar_at(self.library), remember=False)
        self.marks.set_result(self.result)
        self.result_changed.emit(self.result)

    def _unmarked_note(self) -> str:
        """What the last regrouping unmarked (``Marks.unmarked``), for the message that reports it."""
        unmarked = self.marks.unmarked
        n = len(unmarked)
        if not n:
            return ""
        names = ", ".join(os.path.basename(p) for p in unmarked[:3]) + (f" and {n - 3} more" if n > 3 else "")
        return (
            f" Unmarked {count(n, 'file')} Auto-select had marked ({names}): the check is not sure "
            f"{'it is a copy' if n == 1 else 'they are copies'} (CHECK)."
        )

    def not_duplicate(self, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Remember that each pair is not a duplicate (across scans, in the cache) and regroup; returns the
        pairs newly remembered (for Undo)."""
        pairs = sorted({tuple(sorted(p)) for p in pairs if p[0] != p[1]})
        if self.library is None or not pairs:
            return []
        self._write_ignored(forget=False, pairs=pairs)
        self.library.ignored.update(pairs)
        self._regroup()
        self.message.emit(f"Remembered {len(pairs)} pair(s) as not duplicates.{self._unmarked_note()}")
        return pairs

    def forget_not_duplicate(self, pairs: list[tuple[str, str]]) -> None:
        """Take pairs off the "not a duplicate" list: they group again as the engine sees them."""
        pairs = [tuple(sorted(p)) for p in pairs]
        self._write_ignored(forget=True, pairs=pairs)
        if self.library is not None:
            self.library.ignored.difference_update(pairs)
            self._regroup()
        self.message.emit(f"{len(pairs)} pair(s) may be grouped again.{self._unmarked_note()}")

    def ignored_pairs(self) -> list[tuple[str, str]]:
        """Every pair marked "not a duplicate", in the cache (all scans) and in this library."""
        pairs = set(self.library.ignored) if self.library is not None else set()
        with self._ignored_write_lock:  # the decisions made so far are in the cache before it is read
            self._apply_ignored_writes()
            return sorted(pairs | self.engine().not_duplicate_pairs())

    def _write_ignored(self, *, forget: bool, pairs: list[tuple[str, str]]) -> None:
        """Queue a "not a duplicate" decision for the cache and write it in a worker (the GUI thread never
        writes the cache)."""
        self._since_scan.append((forget, list(pairs)))
        with self._ignored_queue_lock:
            self._ignored_writes.append((forget, list(pairs)))
        self.runner.start(Task(self._ignored_work, name="not a duplicate"))

    def _ignored_work(self, *, progress: ProgressFn, cancel: CancelToken) -> None:
        with self._ignored_write_lock:
            self._apply_ignored_writes()

    def _apply_ignored_writes(self) -> None:
        """Write every queued decision, oldest first (called with ``_ignored_write_lock`` held)."""
        while True:
            with self._ignored_queue_lock:
                if not self._ignored_writes:
                    return
                forget, pairs = self._ignored_writes.popleft()
            engine = self.engine()
            (engine.forget_not_duplicate if forget else engine.mark_not_duplicate)(pairs)

    def auto_select(self, rule: str) -> None:
        """Mark by ``rule`` in the duplicate groups only: similar shots are other captures, never marked."""
        if self.result is not None:
            self.marks.replace(choose(self.result, rule, self.marks.reference))
            text = f"Marked {count(len(self.marks), 'copy', 'copies')}."
            # a rule with nothing to go by keeps each group's best copy: say so (a trial read it as working)
            if rule == "reference" and not self.marks.reference:
                text += " No folder is ticked as a reference (Folders), so each group's best copy was kept."
            elif rule == "raw" and not any(r.is_raw for g in self.result.groups for r in g.files):
                text += " No group holds a RAW file, so each group's best copy was kept."
            # members the check was not sure of (Member.unsure) are left: say so ("0 copies" read as a fault)
            left = left_unsure(self.result, rule, self.marks.reference)
            if left:
                groups = left_unsure_groups(self.result, rule, self.marks.reference)
                text += (
                    f" Left for you: {count(left, 'file')} that may not be "
                    f"{'a copy' if left == 1 else 'copies'}, in "
                    f"{count(groups, 'CHECK group')}."
                )
            self.message.emit(text)

    # -- acting on marked files
    # -------------------------------------------------------------------------------
    def act(self, mode: str = "trash", dest: str | None = None) -> bool:
        if self.busy or self.result is None or not len(self.marks):
            return False
        res = self.result
        marked = self.marks.paths
        targets = [f for f in res.files if f.path in marked]
        try:
            from core.actions import check_plan

            check_plan(res.groups, marked, on_disk=False)  # the worker re-checks against the disk
        except ActionError as e:
            self.message.emit(str(e))
            return False
        task = Task(self._act_work, targets, res.groups, mode, dest, name=mode)
        return self._start_action(task)

    def _act_work(
        self,
        targets: list[ImageRecord],
        groups: Sequence[Group],
        mode: str,
        dest: str | None,
        *,
        progress: ProgressFn,
        cancel: CancelToken,
    ) -> ActionResult:
        progress(0, len(targets), "Moving to the trash" if mode == "trash" else f"Moving to {dest}")
        return remove_files(
            targets,
            groups=groups,
            mode=mode,
            dest=dest,
            journal=self.journal,
            progress=progress,
            cancel=cancel,
        )

    def trash_files(self, paths: list[str]) -> bool:
        """Send files that are in no group (the ones the scan could not use) to the trash: journaled and
        undoable like any removal; the marks stay."""
        if self.busy or not paths:
            return False
        targets = []
        for path in paths:
            try:
                st = os.stat(path)
            except OSError as e:
                self.message.emit(f"Cannot move {path} to the trash: {e.strerror or e}")
                continue
            targets.append(ImageRecord(path, st.st_size, st.st_mtime_ns, 0, 0, ""))
        if not targets:
            return False
        task = Task(self._act_work, targets, (), "trash", None, name="trash")
        return self._start_action(task, keep_marks=True)

    def undo(self) -> bool:
        if self.busy:
            return False
        return self._start_action(Task(self._undo_work, name="undo"))

    def _undo_work(self, *, progress, cancel) -> ActionResult:
        return undo(journal=self.journal)

    def can_undo(self) -> bool:
        return self.journal.last_undoable() is not None

    def last_action_is_this_runs(self) -> bool:
        """Whether the action Undo would undo was done since this app started (else it asks first)."""
        return self.journal.last_undoable() in self._this_run

    def undo_label(self) -> str:
        """What Undo would undo, in words: "moving 21 files to the trash (today 14:02)"."""
        last = self.journal.last_undoable()
        action = next((a for a in self.journal.actions() if a["id"] == last), None)
        if action is None:
            return "nothing"
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(action["time"]))
        where = "to the trash" if action["kind"] == "trash" else f"to {action['target']}"
        return f"moving {action['files']} files {where} ({when})"

    def _start_action(self, task: Task, keep_marks: bool = False) -> bool:
        self._keep_marks = keep_marks
        task.signals.finished.connect(self._acted, Qt.ConnectionType.QueuedConnection)
        task.signals.failed.connect(self._action_failed, Qt.ConnectionType.QueuedConnection)
        self._action_task = task
        self.busy_changed.emit(True)
        self.runner.start(task)
        return True

    @Slot(object)
    def _acted(self, result: ActionResult) -> None:
        if result.action_id is not None and not result.kind.startswith("undo"):
            self._this_run.add(result.action_id)
        self._action_task = None
        self.busy_changed.emit(False)
        if not self._keep_marks:
            self.marks.clear()
        self.action_done.emit(result)
        if self.folders:
            self.scan(self.folders)  # files moved: regroup what is left (instant, from the cache)

    @Slot(str, str)
    def _action_failed(self, message: str, details: str) -> None:
        self._action_task = None
        self.busy_changed.emit(False)
        self.message.emit(message)  # ActionError and the like: said in words, not a crash dialog

    # -- find similar ----------------------------------------------------------------------------------------
    def find_similar(self, path: str, top: int = 20) -> bool:
        if self.library is None or not len(self.library.files):
            self.message.emit("Scan a folder first: similar photos are looked for among the scanned ones.")
            return False
        task = Task(self._similar_work, self.library, path, top, name="find similar")
        self._similar_paths[task.signals] = path
        task.signals.finished.connect(self._similar_done, Qt.ConnectionType.QueuedConnection)
        task.signals.failed.connect(self._similar_failed, Qt.ConnectionType.QueuedConnection)
        self.similar_started.emit(path)
        self.runner.start(task)
        return True

    def _similar_work(
        self, library: Library, path: str, top: int, *, progress: ProgressFn, cancel: CancelToken
    ) -> list[tuple[str, float]]:
        return self.engine().find_similar(library, path, top=top)

    @Slot(object)
    def _similar_done(self, matches: list[tuple[str, float]]) -> None:
        self.similar_ready.emit(self._similar_paths.pop(self.sender(), ""), matches)

    @Slot(str, str)
    def _similar_failed(self, message: str, details: str) -> None:
        # An unreadable query file is said in the pane, not in a crash dialog.
        self.similar_failed.emit(self._similar_paths.pop(self.sender(), ""), message)

    # -- export
    # -------------------------------------------------------------------------------------------------
    def export(self, path: str, kind: str = "csv") -> None:
        """Write the duplicate groups as ``kind`` ("csv" or "json"). The CSV's keep column is the person's own
        decision: a file is kept unless it is marked."""
        if self.result is None:
            raise ValueError("nothing to export yet: scan first")
        if kind == "json":
            write_json(scan_json(self.result), path)
        else:
            marked = self.marks.paths
            write_csv(self.result, path, keep={f.path for f in self.result.files if f.path not in marked})
        self.message.emit(f"Exported {count(len(self.result.groups), 'group')} to {path}")
