"""Icons on the main actions: the theme's where the desktop has one, else a bundled one that renders."""

from __future__ import annotations

from PySide6.QtGui import QIcon

from core.resources import resource_path
from desktop.icons import THEME, action_icon


def test_every_bundled_icon_renders_and_has_its_licence(qapp):
    assert (resource_path("icons", "actions", "LICENSE.md")).is_file()
    for name in THEME:
        pm = action_icon(name).pixmap(24, 24)
        assert not pm.isNull(), name
        image = pm.toImage()
        drawn = sum(image.pixelColor(x, y).alpha() > 0 for x in range(24) for y in range(24))
        assert 20 < drawn < 24 * 24 * 0.8, name  # strokes, not an empty or filled square


def test_the_main_actions_show_icons(qtbot, make_window, monkeypatch):
    window = make_window()
    for act in (window.act_add, window.act_scan, window.act_trash, window.act_move, window.act_undo):
        assert not act.icon().isNull() and not act.icon().pixmap(24, 24).isNull(), act.text()
    assert not window.auto_button.icon().isNull()


def test_a_theme_icon_is_preferred_when_the_desktop_has_one(qtbot, tmp_path, monkeypatch):
    theme = tmp_path / "icons" / "testtheme"
    (theme / "24x24" / "actions").mkdir(parents=True)
    (theme / "index.theme").write_text(
        "[Icon Theme]\nName=testtheme\nDirectories=24x24/actions\n\n[24x24/actions]\nSize=24\nType=Fixed\n"
    )
    # a plain red square as the theme's edit-undo: unlike the bundled strokes
    (theme / "24x24" / "actions" / "edit-undo.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="24" height="24"><rect width="24" height="24" '
        'fill="#ff0000"/></svg>'
    )
    paths, name = QIcon.themeSearchPaths(), QIcon.themeName()
    try:
        QIcon.setThemeSearchPaths([str(tmp_path / "icons")])
        QIcon.setThemeName("testtheme")
        image = action_icon("undo").pixmap(24, 24).toImage()
        assert image.pixelColor(12, 12).red() == 255 and image.pixelColor(1, 1).alpha() == 255
    finally:
        QIcon.setThemeSearchPaths(paths)
        QIcon.setThemeName(name)
