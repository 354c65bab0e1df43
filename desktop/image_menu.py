"""The right-click menus of any image (in the comparison pane or the similar pane) and of the files the scan
could not use (the Problems list)."""

from __future__ import annotations

import os
import subprocess
import sys

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QMenu, QWidget

from desktop.icons import action_icon
from desktop.session import Session


def show_in_folder(path: str) -> None:
    """Reveal ``path`` in the system file manager (selected where the platform can)."""
    if sys.platform == "darwin":
        subprocess.Popen(["open", "-R", path])
    elif sys.platform == "win32":
        subprocess.Popen(["explorer", "/select,", os.path.normpath(path)])
    else:
        QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.dirname(path)))


def build_menu(
    path: str,
    session: Session,
    parent: QWidget,
    *,
    open_viewer,
    group_paths: list[str],
    markable: bool = True,
    doubted: tuple[str, ...] = (),
    same_bytes: frozenset[str] = frozenset(),
    not_duplicate=None,
) -> QMenu:
    """The menu for ``path``; ``group_paths`` are the other copies it was grouped with (for Not a duplicate);
    ``doubted``: the files the check was not sure it is one photo with (``Member.unsure_with``), each of which
    a person can settle as another shot, in the group or not; ``same_bytes``: members with this file's very
    bytes (copies by definition: never offered as "not a duplicate"); ``not_duplicate(pairs, text)``: how the
    window remembers pairs with an Undo (the session's own ``not_duplicate`` without one).
    ``markable=False`` (a similar shot, not a copy): only looking, no marking and no Not a duplicate."""
    menu = QMenu(parent)
    menu.addAction("Find similar", lambda: session.find_similar(path)).setObjectName("find_similar")
    menu.addAction("View full size", lambda: open_viewer(path))
    menu.addAction("Open", lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(path)))
    menu.addAction("Show in folder", lambda: show_in_folder(path))
    menu.addAction("Copy path", lambda: QGuiApplication.clipboard().setText(path))
    if not markable:
        return menu
    menu.addSeparator()
    if path in session.marks:
        menu.addAction("Unmark", lambda: session.marks.mark(path, False))
    else:
        act = menu.addAction("Mark for removal", lambda: session.marks.mark(path, True))
        act.setEnabled(session.marks.why_not(path) is None)
    remember = not_duplicate or (lambda pairs, _text: session.not_duplicate(pairs))
    others = [p for p in group_paths if p != path and p not in same_bytes]
    # what is said of this file is said of its byte-identical twins: they are one picture
    these = sorted(same_bytes | {path})
    name = os.path.basename(path)
    nd = menu.addAction(
        "Not a duplicate (take it out of this group)",
        lambda: remember(
            [(t, o) for t in these for o in others], f"{name} will no longer be grouped with these copies"
        ),
    )
    nd.setObjectName("not_duplicate")
    nd.setEnabled(bool(others))
    for other in doubted[:8]:  # the CHECK: a person says which are different shots, one pair at a time
        act = menu.addAction(
            f"Another shot than {os.path.basename(other)} (settles the CHECK)",
            lambda other=other: remember(
                [(t, other) for t in these],
                f"{name} and {os.path.basename(other)} are now other shots of one subject",
            ),
        )
        act.setObjectName("another_shot")
    return menu


def build_problem_menu(paths: list[str], parent: QWidget, *, trash, can_trash: bool = True) -> QMenu:
    """Open, show in folder, copy the paths, and move to the trash (``trash(paths)``: the window asks first
    and acts through the session, journaled and undoable like any removal)."""
    menu = QMenu(parent)
    first = paths[0]
    menu.addAction("Open", lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(first)))
    menu.addAction("Show in folder", lambda: show_in_folder(first))
    menu.addAction("Copy path", lambda: QGuiApplication.clipboard().setText("\n".join(paths)))
    menu.addSeparator()
    n = len(paths)
    act = menu.addAction(
        action_icon("trash"), f"Move {'this file' if n == 1 else f'{n} files'} to the trash…"
    )
    act.setObjectName("trash_problems")
    act.triggered.connect(lambda: trash(paths))
    act.setEnabled(can_trash)
    return menu
