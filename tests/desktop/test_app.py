"""The entry point's command line and the unexpected-error dialog."""

from __future__ import annotations

import sys

from desktop import error_dialog
from desktop.app import build_parser


def test_command_line_takes_folders_and_options():
    args = build_parser().parse_args(["/photos/a", "/photos/b", "--device", "cpu"])
    assert args.folders == ["/photos/a", "/photos/b"] and args.device == "cpu"
    assert build_parser().parse_args([]).folders == []


def test_unexpected_errors_show_one_dialog_with_the_traceback(qtbot, monkeypatch, caplog):
    shown = []
    monkeypatch.setattr(error_dialog.ErrorDialog, "exec", lambda self: shown.append(self) or 0)
    try:
        raise RuntimeError("boom in a slot")
    except RuntimeError:
        error_dialog.excepthook(*sys.exc_info())
    assert len(shown) == 1
    details = shown[0].details.toPlainText()
    assert "Traceback" in details and "boom in a slot" in details
    assert "boom in a slot" in caplog.text  # and it is logged
