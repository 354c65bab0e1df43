"""The main window: lays out the panes and wires the views to the ``Session``. No engine work happens here."""

from __future__ import annotations

import logging
import os

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QPoint, Qt, QTimer, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.errors import LookalikeError
from core.results import Problem
from core.scan import IMAGE_EXTENSIONS
from core.selection import RULES, in_folders, twin_kept
from desktop.banner import ResultBanner, describe
from desktop.compare_pane import ComparePane
from desktop.error_dialog import ErrorDialog
from desktop.folder_panel import FolderPanel
from desktop.formatting import count, human_bytes
from desktop.gc_guard import install as collect_on_gui_thread
from desktop.group_list import GroupList
from desktop.icons import action_icon
from desktop.ignored_dialog import IgnoredPairsDialog
from desktop.image_menu import build_menu, build_problem_menu
from desktop.options_dialog import OptionsDialog
from desktop.problems_view import BLANK_REASON, ProblemsView
from desktop.scan_progress import ScanProgress
from desktop.session import Session
from desktop.settings import Settings
from desktop.similar_pane import SimilarPane
from desktop.thumbnails import ThumbnailCache
from desktop.viewer import ViewerDialog
from desktop.widgets import let_shrink, warning_colour

log = logging.getLogger(__name__)

IMAGE_FILTER = f"Images ({' '.join(f'*{e}' for e in sorted(IMAGE_EXTENSIONS))});;All files (*)"


def _check_note(result) -> str:
    """The duplicates' summary line's note on groups with a member the check was not sure of, and how much
    of the space to free is theirs (auto-select may leave most of it)."""
    unsure = [g for g in result.groups if g.unsure]
    if not unsure:
        return ""
    share = human_bytes(sum(g.reclaimable for g in unsure))
    return f" · {count(len(unsure), 'group')} to CHECK ({share} of that)"


def _doubt_note(result, marked: frozenset[str]) -> str:
    """What the trash confirmation says of marked files the check was not sure of (named), and of the others
    marked in groups to CHECK; a byte-identical copy of a file that stays is neither (no picture goes)."""
    doubtful, in_check = [], []
    for g in result.groups:
        for m in g.members:
            if m.file.path not in marked or not g.unsure or twin_kept(g, m, marked):
                continue
            (doubtful if m.unsure else in_check).append(m.file.path)
    parts = []
    if doubtful:
        names = ", ".join(os.path.basename(p) for p in doubtful[:3]) + ("…" if len(doubtful) > 3 else "")
        parts.append(f"{len(doubtful)} of them maybe not copies, CHECK: {names}")
    if in_check:
        parts.append(f"{len(in_check)} {'more' if doubtful else 'of them'} in groups to CHECK")
    return f" ({'; '.join(parts)})" if parts else ""


class MainWindow(QMainWindow):
    def __init__(self, session: Session, settings: Settings, thumbs: ThumbnailCache | None = None) -> None:
        super().__init__()
        self.collector = collect_on_gui_thread()  # never in a worker, where collecting a Qt wrapper crashes
        self.session = session
        self.settings = settings
        self.scan_settings = settings.load_scan()
        self.thumbs = thumbs or ThumbnailCache(self)
        self.setWindowTitle("Lookalike")
        self.setAcceptDrops(True)
        self.resize(1280, 800)
        self._restoring = False  # the scan running brings back the last results (restore_last)
        self._settling = False  # a new result is being put in the lists: show its group once, at the end
        self._build()
        self._wire()
        self.folders.set_folders(self.scan_settings.folders, self.scan_settings.reference)
        # the strictness chosen last time, for each tier
        if session.threshold is None:
            session.threshold = settings.stored_strictness()
        if session.similar_threshold is None:
            session.similar_threshold = settings.similar_strictness()
        self._restore_layout()
        self._update_actions()

    # -- layout
    # ------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.folders = FolderPanel()
        self.duplicates = GroupList(
            self.thumbs,
            similar=False,
            tip="Higher: only very close copies are grouped. Lower: looser edits too.",
        )
        # Similar shots: other captures of one subject, in their own list with their own strictness.
        self.similar_shots = GroupList(
            self.thumbs,
            similar=True,
            tip="Higher: only very close shots are grouped. Lower: looser look-alikes.",
        )
        # The parts other code and tests look at, by their long-standing names.
        self.groups, self.groups_model = self.duplicates.view, self.duplicates.model
        self.strictness, self.strictness_label = self.duplicates.slider, self.duplicates.label
        self.groups_title = self.duplicates.title
        self.shots, self.shots_model = self.similar_shots.view, self.similar_shots.model
        self.shots_strictness, self.shots_strictness_label = (
            self.similar_shots.slider,
            self.similar_shots.label,
        )
        self.shots_title = self.similar_shots.title
        self.tiers = QTabWidget()
        self.tiers.setObjectName("tiers")
        self.tiers.setDocumentMode(True)
        self.tiers.addTab(self.duplicates, "Duplicates")
        self.tiers.addTab(self.similar_shots, "Similar shots")
        self.tiers.setTabToolTip(0, "Copies of one photo, possibly edited: mark the ones to remove")
        self.tiers.setTabToolTip(
            1, "Other shots of a subject (bursts, re-takes) and photos much alike: shown, never marked"
        )

        left = QWidget()
        lay = QVBoxLayout(left)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.folders)
        lay.addWidget(self.tiers, 1)

        self.compare = ComparePane(self.thumbs)
        # The first-run page says what to do in one glance: drop a folder, or the one big button.
        self.empty = QLabel(
            "<h2>Find duplicate photos</h2>"
            "<p><b>Drop a folder of photos here</b>, or click <b>Add folder…</b>: "
            "the scan starts at once.</p>"
            "<p>Groups of copies appear on the left; pick one to compare its photos side by side. "
            "Other shots of one subject (a burst, a re-take) are listed apart under <b>Similar shots</b>, "
            "to look at: nothing there is removed.</p>"
        )
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.welcome_add = QPushButton(action_icon("folder-add"), "Add folder…")
        self.welcome_add.setToolTip("Choose a folder of photos: it is scanned at once")
        self.welcome_add.setMinimumHeight(self.fontMetrics().height() * 3)
        self.welcome_add.setMinimumWidth(self.fontMetrics().horizontalAdvance("Add folder…") * 3)
        welcome = QWidget()
        wlay = QVBoxLayout(welcome)
        wlay.addStretch(1)
        wlay.addWidget(self.empty)
        wlay.addWidget(self.welcome_add, 0, Qt.AlignmentFlag.AlignHCenter)
        wlay.addStretch(1)
        self.group_header = QLabel()
        self.group_header.setWordWrap(True)
        let_shrink(self.group_header)
        right = QWidget()
        rlay = QVBoxLayout(right)
        rlay.setContentsMargins(6, 6, 6, 6)
        rlay.addWidget(self.group_header)
        rlay.addWidget(self.compare, 1)
        self.center = QStackedWidget()
        self.center.addWidget(welcome)
        self.center.addWidget(right)

        self.splitter = QSplitter()
        self.splitter.setObjectName("main_splitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.center)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([400, 880])
        self.banner = ResultBanner()
        central = QWidget()
        clay = QVBoxLayout(central)
        clay.setContentsMargins(0, 0, 0, 0)
        clay.setSpacing(0)
        clay.addWidget(self.banner)
        clay.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        self.similar = SimilarPane(self.thumbs)
        self.similar_dock = QDockWidget("Similar photos", self)
        self.similar_dock.setObjectName("similar_dock")
        self.similar_dock.setWidget(self.similar)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.similar_dock)
        self.similar_dock.hide()
        self.problems = ProblemsView()
        self.problems_dock = QDockWidget("Problems", self)
        self.problems_dock.setObjectName("problems_dock")
        self.problems_dock.setWidget(self.problems)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.problems_dock)
        self.problems_dock.hide()

        self.progress = ScanProgress()
        self.status_text = QLabel()
        let_shrink(self.status_text)  # a long message is cut, never a reason for a wider window
        self.statusBar().addWidget(self.status_text, 1)
        self.statusBar().addPermanentWidget(self.progress)
        self._build_actions()

    def _action(
        self, text: str, slot, shortcut: str | QKeySequence.StandardKey | None = None, tip: str = ""
    ) -> QAction:
        act = QAction(text, self)
        act.triggered.connect(slot)
        if shortcut:
            act.setShortcut(QKeySequence(shortcut))
        act.setToolTip(f"{tip or text} ({act.shortcut().toString()})" if shortcut else (tip or text))
        self.addAction(act)
        return act

    def _build_actions(self) -> None:
        self.act_add = self._action("Add folder…", self.pick_folder, "Ctrl+O")
        self.act_scan = self._action("Scan", self.start_scan, "F5", "Scan the folders")
        self.act_trash = self._action(
            "Move to trash",
            lambda: self.act_on_marked("trash"),
            "Del",
            "Move the marked copies to the system trash",
        )
        self.act_move = self._action(
            "Move to folder…",
            lambda: self.act_on_marked("move"),
            "Shift+Del",
            "Move the marked copies into a folder",
        )
        self.act_undo = self._action(
            "Undo", self.undo, QKeySequence.StandardKey.Undo, "Put back the last removal"
        )
        self.act_quit = self._action("Quit", self.close, "Ctrl+Q", "Quit Lookalike")
        self.act_ignored = self._action(
            "Not-a-duplicate pairs…",
            self.edit_ignored,
            None,
            "The pairs you said are not duplicates: group any of them again",
        )
        self.act_notdup = self._action(
            "Not a duplicate",
            self.not_duplicate_group,
            "Ctrl+D",
            "These photos are not copies: never group them again",
        )
        self.act_similar_file = self._action("Find similar to an image…", self.pick_similar_file, "Ctrl+F")
        self.act_export = self._action("Export…", self.export, "Ctrl+E", "Save the groups as CSV or JSON")
        self.act_problems = self._action(
            "Problems", self.problems_dock.show, None, "Files that could not be read"
        )
        self.act_unmark = self._action("Unmark all", lambda: self.session.marks.clear(), "Ctrl+Shift+A")
        self.auto_actions = {
            rule: self._action(text, lambda _=False, r=rule: self.session.auto_select(r))
            for rule, text in RULES.items()
        }
        for act, icon in (
            (self.act_add, "folder-add"),
            (self.act_scan, "scan"),
            (self.act_trash, "trash"),
            (self.act_move, "move"),
            (self.act_undo, "undo"),
            (self.act_notdup, "not-duplicate"),
            (self.act_similar_file, "find-similar"),
            (self.act_export, "export"),
            (self.act_problems, "problems"),
        ):
            act.setIcon(action_icon(icon))
        bar = self.addToolBar("Main")
        bar.setObjectName("main_toolbar")
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for act in (self.act_add, self.act_scan):
            bar.addAction(act)
        bar.addSeparator()
        auto = self.auto_button = QToolButton()
        auto.setText("Auto-select")
        auto.setIcon(action_icon("auto-select"))
        auto.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        auto.setToolTip("Mark every copy but one in each duplicate group by a rule (never similar shots)")
        auto.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        for act in self.auto_actions.values():
            auto.addAction(act)
        auto.addAction(self.act_unmark)
        bar.addWidget(auto)
        for act in (self.act_trash, self.act_move, self.act_undo, self.act_notdup):
            bar.addAction(act)
        bar.addSeparator()
        for act in (self.act_similar_file, self.act_export, self.act_problems):
            bar.addAction(act)
        self._build_menus()

    def _build_menus(self) -> None:
        """File, Edit, View, Help: every action has a home a person can find, with its shortcut beside it."""
        self.act_options = self._action("Preferences…", self.edit_options, "Ctrl+,", "Scan options")
        self.act_shortcuts = self._action("Keyboard shortcuts", self.show_shortcuts, "F1")
        self.act_about = self._action("About Lookalike", self.show_about)
        menus = self.menuBar()
        file = menus.addMenu("&File")
        for act in (
            self.act_add,
            self.act_scan,
            None,
            self.act_similar_file,
            self.act_export,
            None,
            self.act_quit,
        ):
            file.addSeparator() if act is None else file.addAction(act)
        edit = menus.addMenu("&Edit")
        for act in (
            self.act_undo,
            None,
            self.act_trash,
            self.act_move,
            None,
            self.act_notdup,
            self.act_ignored,
            None,
            self.act_unmark,
        ):
            edit.addSeparator() if act is None else edit.addAction(act)
        auto = edit.addMenu("Auto-select")
        for act in self.auto_actions.values():
            auto.addAction(act)
        edit.addSeparator()
        edit.addAction(self.act_options)
        view = menus.addMenu("&View")
        view.addAction(self.act_problems)
        view.addAction(self.similar_dock.toggleViewAction())
        help_ = menus.addMenu("&Help")
        help_.addAction(self.act_shortcuts)
        help_.addAction(self.act_about)

    def show_shortcuts(self) -> None:
        rows = "".join(
            f"<tr><td>{a.text().replace('&', '')}</td><td><b>{a.shortcut().toString()}</b></td></tr>"
            for a in self.actions()
            if not a.shortcut().isEmpty()
        )
        extra = (
            "<tr><td>From the groups to the cards, then the actions</td><td><b>Tab</b></td></tr>"
            "<tr><td>Go into the current group (its first card)</td><td><b>Enter</b> on the groups</td></tr>"
            "<tr><td>Show the current group</td><td><b>Space</b> on the groups</td></tr>"
            "<tr><td>Previous or next card</td><td><b>Left</b>, <b>Right</b></td></tr>"
            "<tr><td>Mark or unmark the focused copy</td><td><b>Space</b></td></tr>"
            "<tr><td>Compare two copies at full size</td><td><b>Enter</b></td></tr>"
        )
        QMessageBox.information(self, "Keyboard shortcuts", f"<table cellspacing=6>{rows}{extra}</table>")

    def show_about(self) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            ver = version("lookalike")
        except PackageNotFoundError:
            ver = "from source"
        bundle = self.session.engine().bundle
        QMessageBox.about(
            self,
            "About Lookalike",
            f"<h3>Lookalike {ver}</h3><p>Finds duplicate photos and other shots of one subject, and "
            f"cleans up safely: copies go to the trash, with undo.</p>"
            f"<p>Model: {bundle.name} (sha256 {bundle.sha256[:12]}…)</p>"
            "<p>Apache-2.0. Qt (LGPL-3.0) through PySide6; ONNX Runtime (MIT); OpenCV (Apache-2.0); "
            "Pillow (MIT-CMU); demo photos under the licences in resources/demo/LICENSES.md.</p>",
        )

    def _wire(self) -> None:
        s = self.session
        self.folders.changed.connect(self._folders_changed)
        self.folders.add_requested.connect(self.pick_folder)
        self.welcome_add.clicked.connect(self.pick_folder)
        self.folders.settings_requested.connect(self.edit_options)
        self.duplicates.strictness_changed.connect(self._apply_strictness)
        self.duplicates.current_changed.connect(self._group_selected)
        self.similar_shots.strictness_changed.connect(self._apply_shots_strictness)
        self.similar_shots.current_changed.connect(self._shots_selected)
        for tier in (self.duplicates, self.similar_shots):
            tier.open_requested.connect(self.enter_group)
            tier.as_table.toggled.connect(lambda _on: self._chain_focus())
        self.tiers.currentChanged.connect(self._tier_changed)
        self.compare.show_difference.connect(self.show_difference)
        self.compare.toggle.connect(s.marks.toggle)
        self.compare.menu.connect(self._image_menu)
        self.compare.open_viewer.connect(self.open_viewer)
        self.similar.menu.connect(self._image_menu)
        self.problems.menu.connect(lambda paths, pos: self.problem_menu(paths).popup(pos))
        self.similar.open_viewer.connect(self.open_viewer)
        self.similar.query_file.connect(self.find_similar)
        self.similar.pick_file.connect(self.pick_similar_file)
        self.progress.cancel_requested.connect(self.cancel_scan)
        s.scan_started.connect(self.progress.start)
        s.scan_started.connect(self._scan_started)
        s.scan_progress.connect(self.progress.update_progress)
        s.scan_finished.connect(self.progress.finish)
        s.scan_finished.connect(self._scan_done)
        if self.collector is not None:  # no full collection while a scan runs or its result is shown
            for signal in (s.scan_progress, s.result_changed, s.scan_finished):
                signal.connect(lambda *_: self.collector.postpone_full())
        s.scan_cancelled.connect(self.progress.finish)
        s.failed.connect(self._failed)
        s.result_changed.connect(self._show_result)
        s.similar_started.connect(self._similar_started)
        s.similar_ready.connect(self.similar.show_matches)
        s.similar_failed.connect(self.similar.show_error)
        s.action_done.connect(self._action_done)
        s.message.connect(self.status_text.setText)
        s.busy_changed.connect(lambda _: self._update_actions())
        s.marks.changed.connect(self._marks_changed)
        s.marks.refused.connect(self.status_text.setText)

    # -- folders and scanning -----------------------------------------------------------------------------
    def add_folders(self, folders: list[str], scan: bool = True) -> None:
        for f in folders:
            self.folders.add(os.path.abspath(f))
        if scan:
            self.start_scan()

    def open_folders(self, folders: list[str]) -> None:
        """Add ``folders`` (from the command line or a drop on the app icon) to the saved ones and scan them
        all: the folders chosen before, and their reference ticks, stay."""
        self.add_folders([f for f in folders if os.path.isdir(f)])

    def restore_last(self) -> bool:
        """Bring back the last results at start: the saved folders are scanned again, silently. The engine's
        cache knows every unchanged file (no decoding, no model), so this takes seconds, and what changed on
        disk since is seen. Nothing happens before the first scan finished (or with no folders left)."""
        if not self.settings.results_to_restore() or not self.folders.folders():
            return False
        self._restoring = True
        self.start_scan()
        return True

    def pick_folder(self) -> None:
        """Add a folder and scan: what a person who chose a folder of photos expects next."""
        folder = QFileDialog.getExistingDirectory(self, "Add a folder to scan")
        if folder:
            self.add_folders([folder])

    def edit_options(self) -> None:
        before = self.scan_settings.options()
        dlg = OptionsDialog(self.scan_settings, self)
        if dlg.exec():
            dlg.apply_to(self.scan_settings)
            self.settings.save_scan(self.scan_settings)
            changed = self.scan_settings.options() != before
            if (
                changed
                and self.session.result is not None
                and not self.session.busy
                and self.confirm("Scan options changed", "Scan again with the new options now?")
            ):
                self.start_scan()

    @Slot()
    def _folders_changed(self) -> None:
        folders = self.folders.folders()
        self.scan_settings.folders = folders
        self.scan_settings.reference = self.folders.reference()
        self.session.marks.reference = self.scan_settings.reference
        self.settings.save_scan(self.scan_settings)
        removed = set(self.session.folders) - set(folders)
        if removed and self.session.result is not None and not self.session.busy:
            # A removed folder's photos leave the groups at once (and Auto-select can no longer mark them):
            # the remaining folders regroup from the cache, or the results clear when none is left.
            if folders:
                self.session.scan(folders, self.scan_settings.options())
            else:
                self.session.clear_result()
                self.settings.set_results_to_restore(False)
        self._tier_changed()  # the cards show reference tags: redraw them with the new ticks
        self._update_actions()

    def start_scan(self) -> None:
        self.session.scan(self.folders.folders(), self.scan_settings.options())

    @Slot()
    def _scan_started(self) -> None:
        self.status_text.setText("Scanning…")
        self.banner.scan_started()
        if self.session.result is None and self._restoring:
            self.empty.setText(
                "<h2>Bringing back your last results…</h2><p>Unchanged photos come from the cache.</p>"
            )
        elif self.session.result is None:
            self.empty.setText(
                "<h2>Scanning your photos…</h2><p>Groups appear here when the scan is done. "
                "Photos read once are cached: the next scan is instant.</p>"
            )

    @Slot()
    def _scan_done(self) -> None:
        self._restoring = False
        self.settings.set_results_to_restore(True)  # the next start brings these results back

    def cancel_scan(self) -> None:
        self.progress.stopping()
        self.session.cancel()

    # Drops are accepted as a *link*, never as the proposed action: some file managers take an accepted Move
    # as leave to delete the source. Lookalike only reads the folders it is given.
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(u.isLocalFile() and os.path.isdir(u.toLocalFile()) for u in event.mimeData().urls()):
            event.setDropAction(Qt.DropAction.LinkAction)
            event.accept()

    def dragMoveEvent(self, event) -> None:
        event.setDropAction(Qt.DropAction.LinkAction)
        event.accept()

    def dropEvent(self, event: QDropEvent) -> None:
        folders = [
            u.toLocalFile()
            for u in event.mimeData().urls()
            if u.isLocalFile() and os.path.isdir(u.toLocalFile())
        ]
        if folders:
            event.setDropAction(Qt.DropAction.LinkAction)
            event.accept()
            self.add_folders(folders)

    # -- results ---------------------------------------------------------------------------------------------
    @Slot(object)
    def _show_result(self, result) -> None:
        if result is None:  # every folder removed
            for tier in (self.duplicates, self.similar_shots):
                tier.show_result(None, "")
            self.tiers.setTabText(0, "Duplicates")
            self.tiers.setTabText(1, "Similar shots")
            self.center.setCurrentIndex(0)
            self.empty.setText(
                "<h2>No folders</h2><p>Drop folders on this window, or use <b>Add folder…</b>.</p>"
            )
            self._update_actions()
            return
        # The two lists below each pick a current group; the compare pane is built once, at the end. For a
        # scan's result, in the next turn of the event loop: lists (23 ms for 2,100 photos) and cards (42 ms)
        # in one go froze the window for over 100 ms when the result arrived.
        self._settling = True
        try:
            self._fill_tiers(result)
        finally:
            self._settling = False
        if self.session.arriving:
            QTimer.singleShot(0, self, self._tier_changed)
        else:
            self._tier_changed()

    def _fill_tiers(self, result) -> None:
        lib = self.session.library
        floor = lib.floor if lib is not None else None
        dup_floor = self.session.thresholds()[0] if lib is not None else None
        similar = self.session.similar_threshold or floor
        n, m = len(result.groups), len(result.similar_groups)
        self.duplicates.show_result(
            result,
            f"<b>{count(n, 'group')}</b> · {count(result.duplicates, 'copy', 'copies')} · "
            f"{human_bytes(result.reclaimable)} to free" + _check_note(result),
            dup_floor,
            result.threshold,
        )
        self.groups_model.set_marked(self.session.marks.paths)
        self.similar_shots.show_result(
            result,
            f"<b>{count(m, 'group')}</b> of photos alike but not copies: to look at, nothing to remove",
            floor,
            similar,
        )
        self.tiers.setTabText(0, f"Duplicates ({n})")
        self.tiers.setTabText(1, f"Similar shots ({m})")
        skipped = list(result.problems) + [Problem(f.path, BLANK_REASON) for f in result.blank]
        self.problems.set_problems(skipped)
        self.problems_dock.setWindowTitle(f"Problems ({len(skipped)})")
        self.act_problems.setText(f"Problems ({len(skipped)})")

    def showing_similar(self) -> bool:
        """True while the similar-shots list is the one shown (nothing can be marked there)."""
        return self.tiers.currentIndex() == 1

    @Slot()
    def _tier_changed(self, _index: int = 0) -> None:
        """Show the current group of the list now in front, or say there is none."""
        similar = self.showing_similar()
        model, view = (self.shots_model, self.shots) if similar else (self.groups_model, self.groups)
        has = model.rowCount() > 0
        self.center.setCurrentIndex(1 if has else 0)
        if not has and model.result is not None:
            self.empty.setText(
                "<h2>No similar shots</h2><p>No other shots of one subject at this strictness.</p>"
                if similar
                else "<h2>No duplicates left</h2><p>Every group has been dealt with.</p>"
                if self.banner.isVisible()
                else "<h2>No duplicates found</h2><p>Try a lower strictness, or add more folders.</p>"
            )
        if similar:
            self._shots_selected(view.currentIndex())
        else:
            self._group_selected(view.currentIndex())
        self._tier_status(similar)

    def _marked_text(self) -> str:
        """The status line's count of the marked copies (``_marks_changed`` recognises it by " marked (")."""
        marks = self.session.marks
        return f"{len(marks)} marked ({human_bytes(marks.bytes)})"

    def _tier_status(self, similar: bool) -> None:
        """The status line on a change of tab: what holds for the tab now in front (a slider's message was
        about the other tier's groups; Del does nothing among similar shots, and says why here)."""
        if self.session.result is None or self.session.busy:
            return
        marks = self.session.marks
        if similar:
            text = "Similar shots are for looking: nothing is removed from here."
            self.status_text.setText(text + (f" {len(marks)} marked in Duplicates." if len(marks) else ""))
        elif len(marks):
            self.status_text.setText(self._marked_text())
        else:
            self.status_text.setText(f"{count(self.groups_model.rowCount(), 'group')} of duplicates.")

    def _show_no_group(self) -> None:
        self.compare.show_group(None, [], frozenset(), lambda p: False)
        self.group_header.clear()
        self._update_actions()

    @Slot(QModelIndex)
    def _group_selected(self, index: QModelIndex, _previous: QModelIndex | None = None) -> None:
        if self.showing_similar() or self._settling:
            return
        if not index.isValid():
            self._show_no_group()
            return
        group = self.groups_model.group(index.row())
        records = self.groups_model.records(index.row())
        kind = "identical" if group.exact else "copies of one photo"
        if group.unsure:
            kind = "maybe copies of one photo (CHECK: auto-select leaves the ones it was not sure of)"
        n = len(records) - 1
        self.group_header.setText(
            f"<b>Group {index.row() + 1}</b>: {len(records)} files, {kind}; "
            f"removing the {n} {'copy' if n == 1 else 'copies'} beside the best frees "
            f"{human_bytes(group.reclaimable)}. <i>Space marks, Tab/arrows move, Enter views.</i>"
        )
        self.compare.show_group(group, records, self.session.marks.paths, self._is_reference)
        self._chain_focus()
        self._update_actions()

    @Slot(QModelIndex)
    def _shots_selected(self, index: QModelIndex, _previous: QModelIndex | None = None) -> None:
        if not self.showing_similar() or self._settling:
            return
        if not index.isValid():
            self._show_no_group()
            return
        group = self.shots_model.group(index.row())
        records = self.shots_model.records(index.row())
        self._shots_header()
        self.compare.show_group(group, records, self.session.marks.paths, self._is_reference, markable=False)
        self._chain_focus()
        self._update_actions()

    def _chain_focus(self) -> None:
        """Tab goes from the groups to the cards of the group shown, one by one, then on to the actions."""
        tier = self.similar_shots if self.showing_similar() else self.duplicates
        chain = [tier.current_view(), *self.compare.cards, self.auto_button]
        for a, b in zip(chain, chain[1:], strict=False):
            QWidget.setTabOrder(a, b)

    @Slot()
    def enter_group(self) -> None:
        """Enter on the groups list: the keyboard goes to the first card (Space marks, Enter views)."""
        if self.compare.cards:
            self.compare.cards[0].setFocus(Qt.FocusReason.TabFocusReason)
            self.compare.ensureWidgetVisible(self.compare.cards[0])

    def _shots_header(self) -> None:
        """The similar group's header: other shots, not copies; and, truthfully, whether any is marked as a
        copy."""
        row = self.shots.currentIndex().row()
        records = self.shots_model.records(row) if row >= 0 else []
        marked = sum(1 for r in records if r.path in self.session.marks)
        selected = (
            "nothing is selected for removal"
            if not marked
            else f"{marked} of them {'is' if marked == 1 else 'are'} marked for removal in Duplicates, "
            "as a copy of a photo there"
        )
        self.group_header.setText(
            f"<b>Similar shots {row + 1}</b>: {len(records)} photos. "
            f"<span style='color:{warning_colour(self.palette())}'>"
            # honest about the tier: other shots of one subject, and sometimes two photos of a kind (three
            # flowers, two skies): about 6 in 10 of its pairs on shots/ are one subject (tiers_eval)
            f"<b>Alike (other shots of a subject, or photos much like each other), not copies: "
            f"{selected}.</b></span>"
        )

    def _is_reference(self, path: str) -> bool:
        return in_folders(path, self.scan_settings.reference)

    @Slot(float)
    def _apply_strictness(self, threshold: float) -> None:
        self.session.set_threshold(threshold)
        self.settings.set_strictness(threshold)

    @Slot(float)
    def _apply_shots_strictness(self, threshold: float) -> None:
        self.session.set_similar_threshold(threshold)
        self.settings.set_similar_strictness(threshold)

    @Slot()
    def _marks_changed(self) -> None:
        marks = self.session.marks
        self.groups_model.set_marked(marks.paths)
        self.compare.set_marked(marks.paths)
        if self.showing_similar() and self.shots.currentIndex().isValid():
            self._shots_header()
        if len(marks):
            self.status_text.setText(self._marked_text())
        elif (
            " marked (" in self.status_text.text()
        ):  # a count that no longer holds (a stricter slider hid it)
            self.status_text.setText("Nothing marked at this strictness.")
        self._update_actions()

    def _update_actions(self) -> None:
        busy = self.session.busy
        has_result = self.session.result is not None
        marked = len(self.session.marks) > 0
        self.act_scan.setEnabled(not busy and bool(self.folders.folders()))
        self.welcome_add.setVisible(not self.folders.folders())
        # The similar shots are for looking: the marks and the rules that make them belong to Duplicates,
        # and acting on them from here would remove what this tab does not show
        looking = self.showing_similar()
        self.act_trash.setEnabled(not busy and marked and not looking)
        self.act_move.setEnabled(not busy and marked and not looking)
        undoable = not busy and self.session.can_undo()
        self.act_undo.setEnabled(undoable)
        tip = f"Undo {self.session.undo_label()}" if undoable else "Nothing to undo"
        self.act_undo.setToolTip(tip)
        self.act_undo.setStatusTip(tip)
        current = self.groups.currentIndex()
        # Byte-identical files are copies by definition: "Not a duplicate" is not offered for them.
        self.act_notdup.setEnabled(
            has_result
            and not self.showing_similar()
            and current.isValid()
            and not self.groups_model.group(current.row()).exact
        )
        self.act_export.setEnabled(has_result)
        for act in self.auto_actions.values():
            act.setEnabled(has_result and not busy and not looking)
        self.auto_button.setEnabled(not looking)

    # -- marking and acting
    # -------------------------------------------------------------------------------------
    def confirm(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(
            self,
            title,
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes

    def act_on_marked(self, mode: str) -> None:
        marks = self.session.marks
        if not len(marks):
            return
        dest = None
        if mode == "move":
            dest = QFileDialog.getExistingDirectory(self, "Move the marked copies into")
            if not dest:
                return
            if in_folders(dest, self.session.folders):
                # The next scan would find the moved copies there and group them all again.
                QMessageBox.warning(
                    self,
                    "Move to folder",
                    f"{dest} is inside a folder being scanned: the moved "
                    "copies would be found again. Choose a folder outside the scanned ones.",
                )
                return
        where = "to the trash" if mode == "trash" else f"into {dest}"
        res = self.session.result
        marked = marks.paths
        note = _doubt_note(res, marked) if res else ""
        if self.confirm(
            "Remove copies",
            f"Move {count(len(marks), 'marked copy', 'marked copies')} ({human_bytes(marks.bytes)}) {where}?"
            f"{note}\n\nYou can undo this.",
        ):
            self.session.act(mode, dest)

    def undo(self) -> None:
        if not self.session.can_undo():
            self.status_text.setText("Nothing to undo.")
            return
        what = self.session.undo_label()
        if not self.session.last_action_is_this_runs() and not self.confirm(
            "Undo an earlier action",
            f"Undo {what}?\n\nIt was done in an earlier run of Lookalike: the files "
            "go back to where they were.",
        ):
            return
        self.session.undo()

    @Slot(object)
    def _action_done(self, result) -> None:
        if result.problems:
            self.problems.set_problems(result.problems)
            self.problems_dock.show()
        undoable = self.session.can_undo() and not result.kind.startswith("undo") and bool(result.done)
        self.banner.show_message(describe(result), self.undo if undoable else None)  # stays until dismissed
        self.status_text.setText(describe(result))
        self.thumbs.forget()

    def not_duplicate_group(self) -> None:
        index = self.groups.currentIndex()
        if index.isValid() and not self.showing_similar():
            members = self.groups_model.group(index.row()).members
            paths = [m.file.path for m in members]
            # byte-identical files are copies by definition: never remembered as not duplicates
            pairs = self.session.not_duplicate(
                [
                    (a.file.path, b.file.path)
                    for i, a in enumerate(members)
                    for b in members[i + 1 :]
                    if not a.same_bytes(b)
                ]
            )
            if pairs:

                def undo() -> None:
                    self.session.forget_not_duplicate(pairs)
                    self.banner.show_message(
                        f"{len(paths)} photos are grouped as duplicates again.", until_scan=True
                    )

                self.banner.show_message(
                    f"{len(paths)} photos will no longer be grouped as duplicates of each other; close "
                    "ones are listed under Similar shots (Edit → Not-a-duplicate pairs… lists them).",
                    undo,
                    until_scan=True,
                )

    def remember_not_duplicate(self, pairs: list[tuple[str, str]], text: str) -> None:
        """Remember ``pairs`` as not duplicates (a card's menu), with an Undo in the banner as the toolbar's
        Not a duplicate has."""
        done = self.session.not_duplicate(pairs)
        if not done:
            return

        def undo() -> None:
            self.session.forget_not_duplicate(done)
            self.banner.show_message(
                f"{count(len(done), 'pair')} may be grouped as duplicates again.", until_scan=True
            )

        self.banner.show_message(
            f"{text}: close ones are listed under Similar shots (Edit → Not-a-duplicate pairs… lists them).",
            undo,
            until_scan=True,
        )

    def edit_ignored(self) -> None:
        """The "not a duplicate" pairs, with a way to group any of them again."""
        IgnoredPairsDialog(self.session, self).exec()

    # -- images: menu, viewer, find similar
    # ----------------------------------------------------------------------
    @Slot(str, QPoint)
    def _image_menu(self, path: str, pos: QPoint) -> None:
        self.image_menu(path).popup(pos)

    def image_menu(self, path: str):
        if self.showing_similar() and self.compare.card(path) is not None:
            # another shot, not a copy: view, open, show in folder, find similar; nothing to mark
            return build_menu(
                path, self.session, self, open_viewer=self.open_viewer, group_paths=[], markable=False
            )
        row = self.groups_model.row_of(path)
        group_paths = [r.path for r in self.groups_model.records(row)] if row is not None else []
        group = self.groups_model.group(row) if row is not None else None
        this = next((m for m in group.members if m.file.path == path), None) if group else None
        same_bytes = frozenset(m.file.path for m in group.twins(this)) if this is not None else frozenset()
        return build_menu(
            path,
            self.session,
            self,
            open_viewer=self.open_viewer,
            group_paths=group_paths,
            doubted=this.unsure_with if this is not None else (),
            same_bytes=same_bytes,
            not_duplicate=self.remember_not_duplicate,
        )

    def problem_menu(self, paths: list[str]) -> QMenu:
        """What can be done with files the scan could not use (open, show, trash with Undo)."""
        return build_problem_menu(paths, self, trash=self.trash_problems, can_trash=not self.session.busy)

    def trash_problems(self, paths: list[str]) -> None:
        n = len(paths)
        what = os.path.basename(paths[0]) if n == 1 else f"{n} files"
        if self.confirm("Move to trash", f"Move {what} to the trash?\n\nYou can undo this."):
            self.session.trash_files(paths)

    def open_viewer(self, path: str, difference: bool = False) -> ViewerDialog:
        """Full size; from a group, the image next to the group's first photo (zoom and pan in step). Two
        copies of a duplicate group also offer what changed between them (``difference=True`` shows it at
        once)."""
        similar = self.showing_similar() and self.compare.card(path) is not None
        model = self.shots_model if similar else self.groups_model
        paths, partners, notes = [path], [], {}
        row = model.row_of(path)
        if row is not None:
            first = model.records(row)[0].path
            if first != path:
                paths = [first, path]
            if not similar:
                members = model.group(row).members
                this = next(m for m in members if m.file.path == path)
                partners = [m.file.path for m in members if m is not this]
                # in a group to CHECK, a copy is first compared with the closest member the check was sure of
                # for it (its own original, where the best copy is another exposure), else with the best copy
                sure = [p for p in partners if p not in this.unsure_with]
                if this.unsure_with and sure and first != path:
                    paths = [self._closest(path, sure), path]
                for m in members:
                    if m is this:
                        continue
                    note = [
                        "best copy" if m.file.path == first else "",
                        "maybe not a copy: CHECK" if m.file.path in this.unsure_with else "",
                        "same bytes" if this.same_bytes(m) else "",
                    ]
                    notes[m.file.path] = ", ".join(n for n in note if n)
        copies = not similar and len(paths) == 2
        dlg = ViewerDialog(
            paths,
            self.session.runner,
            self,
            copies=copies,
            difference=difference and copies,
            partners=partners,
            partner_notes=notes,
        )
        dlg.show()
        return dlg

    def _closest(self, path: str, others: list[str]) -> str:
        """Of ``others``, the one whose embedding is closest to ``path``'s (the first if none is known)."""
        lib = self.session.library
        i = lib.index_of(path) if lib is not None else None
        if i is None:
            return others[0]

        def cosine(p: str) -> float:
            j = lib.index_of(p)
            return -2.0 if j is None else float(lib.embeddings[i] @ lib.embeddings[j])

        return max(others, key=cosine)

    @Slot(str)
    def show_difference(self, path: str) -> None:
        """What changed between ``path`` and the best copy of its duplicate group (or, in a group to CHECK, a
        member the check was sure of for it); the viewer offers the group's other members too."""
        self.open_viewer(path, difference=True)

    def find_similar(self, path: str) -> None:
        self.session.find_similar(path)

    @Slot(str)
    def _similar_started(self, path: str) -> None:
        self.similar.show_busy(path)
        self.similar_dock.show()
        self.similar_dock.raise_()

    def pick_similar_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Find photos similar to", "", IMAGE_FILTER)
        if path:
            self.find_similar(path)

    def export(self) -> None:
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export the groups", "lookalike.csv", "CSV (*.csv);;JSON (*.json)"
        )
        if path:
            kind = "json" if chosen.startswith("JSON") or path.lower().endswith(".json") else "csv"
            if not os.path.splitext(path)[1]:
                path += f".{kind}"  # "JSON" chosen and a bare name typed: a .json file with JSON in it
            try:
                self.session.export(path, kind)
            except (OSError, LookalikeError) as e:
                self.status_text.setText(f"Could not export: {e}")

    @Slot(str, str)
    def _failed(self, message: str, details: str) -> None:
        self.progress.finish()
        ErrorDialog(message, details, self).show()

    # -- remembering the layout
    # ------------------------------------------------------------------------------------
    def _restore_layout(self) -> None:
        for key, restore in (
            ("geometry", self.restoreGeometry),
            ("state", self.restoreState),
            ("splitter", self.splitter.restoreState),
        ):
            blob = self.settings.blob(key)
            if blob is not None:
                restore(blob)

    def save_layout(self) -> None:
        self.settings.set_blob("geometry", self.saveGeometry())
        self.settings.set_blob("state", self.saveState())
        self.settings.set_blob("splitter", self.splitter.saveState())
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_layout()
        self.session.cancel()
        self.thumbs.stop()
        super().closeEvent(event)

    def select_group(self, row: int) -> None:
        idx = self.groups_model.index(row)
        self.groups.selectionModel().setCurrentIndex(
            idx, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )
