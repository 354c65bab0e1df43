"""The first-run screen says what to do and Add folder scans; the Options dialog fits its content and a
changed option offers to scan again (from the review-workflow report)."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from desktop.options_dialog import OptionsDialog


def test_the_first_run_screen_has_one_add_folder_button_that_scans(qtbot, make_window, photos, monkeypatch):
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(photos))
    window = make_window()
    assert window.center.currentIndex() == 0
    assert "Drop a folder" in window.empty.text() and window.welcome_add.isVisible()
    assert "Similar shots" in window.empty.text()  # the second tab is named before a new user meets it
    with qtbot.waitSignal(window.session.scan_finished, timeout=120_000):
        window.welcome_add.click()
    assert window.folders.folders() == [str(photos)]
    assert window.groups_model.rowCount() > 0 and window.center.currentIndex() == 1
    assert not window.welcome_add.isVisible()  # there are folders now


def test_add_folder_from_the_menu_scans_too(qtbot, make_window, photos, monkeypatch):
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(photos))
    window = make_window()
    with qtbot.waitSignal(window.session.scan_finished, timeout=120_000):
        window.act_add.trigger()
    assert window.session.result is not None and window.groups_model.rowCount() > 0


def test_the_options_dialog_fits_its_examples(qtbot, make_window):
    window = make_window()
    dlg = OptionsDialog(window.scan_settings, window)
    qtbot.addWidget(dlg)
    dlg.show()
    QApplication.processEvents()
    for edit in (dlg.include, dlg.exclude):
        assert edit.width() >= edit.fontMetrics().horizontalAdvance(edit.placeholderText()) + 12


def test_a_changed_option_offers_to_scan_again(qtbot, scanned_window, photos, monkeypatch):
    window = scanned_window(photos)
    asked = []
    monkeypatch.setattr(
        QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Yes
    )

    def change_and_accept(dlg):
        dlg.min_size.setValue(200)  # skip files under 200 KB
        return True

    monkeypatch.setattr(OptionsDialog, "exec", change_and_accept)
    found_before = window.session.library.stats["found"]
    with qtbot.waitSignal(window.session.scan_finished, timeout=120_000):
        window.edit_options()
    assert asked and "new options" in asked[0]
    assert window.scan_settings.min_size_kb == 200
    assert window.session.library.stats["found"] < found_before  # scanned again with the option
    asked.clear()
    monkeypatch.setattr(OptionsDialog, "exec", lambda dlg: True)  # OK with nothing changed: no question
    window.edit_options()
    assert not asked and not window.session.busy
