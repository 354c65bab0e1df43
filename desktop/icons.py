"""Icons for the main actions: the desktop's icon theme first, else the ones bundled in
``resources/icons/actions`` (drawn for Lookalike; see the LICENSE.md there)."""

from __future__ import annotations

from PySide6.QtGui import QIcon

from core.resources import resource_path

# bundled name -> the freedesktop theme names tried first, in order
THEME = {
    "folder-add": ("folder-new",),
    "scan": ("view-refresh",),
    "trash": ("user-trash",),
    "move": ("folder-move", "go-next"),
    "undo": ("edit-undo",),
    "export": ("document-save-as",),
    "find-similar": ("edit-find",),
    "problems": ("dialog-warning",),
    "not-duplicate": (),
    "auto-select": ("edit-select-all",),
}


def action_icon(name: str) -> QIcon:
    """The icon for the action ``name`` (a key of ``THEME``)."""
    if name not in THEME:
        raise ValueError(f"no icon named {name!r}")
    for theme in THEME[name]:
        if QIcon.hasThemeIcon(theme):
            return QIcon.fromTheme(theme)
    return QIcon(str(resource_path("icons", "actions", f"{name}.svg")))
