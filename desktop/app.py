"""Entry point: ``lookalike-gui [FOLDER...]`` opens the window and scans the folders given."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import multiprocessing
import sys
from pathlib import Path

import platformdirs

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lookalike-gui", description="Find duplicate photos and clean them up.")
    p.add_argument("folders", nargs="*", help="folders to scan at start (as a file manager passes them)")
    p.add_argument("--device", default="auto", help="compute device: auto, cpu, cuda, mps")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    return p


def setup_logging(verbose: bool = False) -> Path:
    """Log to stderr and to a rotating file in the user's log folder; returns the file."""
    folder = Path(platformdirs.user_log_dir("lookalike", appauthor=False))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lookalike-gui.log"
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    file_handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
    )
    stream = logging.StreamHandler()
    for h in (file_handler, stream):
        h.setFormatter(fmt)
        root.addHandler(h)
    return path


def main(argv: list[str] | None = None) -> int:
    multiprocessing.freeze_support()
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    log_file = setup_logging(args.verbose)

    from PySide6.QtWidgets import QApplication

    from core.engine import Engine
    from desktop import error_dialog
    from desktop.main_window import MainWindow
    from desktop.session import Session
    from desktop.settings import APP, ORG, Settings

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setOrganizationName(ORG)
    app.setApplicationName(APP)
    app.setApplicationDisplayName("Lookalike")
    app.setDesktopFileName("lookalike")  # Wayland finds the icon through the .desktop entry
    from PySide6.QtGui import QIcon

    from core.resources import resource_path

    icon = QIcon()
    for png in sorted(resource_path("icons").glob("lookalike-*.png")):
        icon.addFile(str(png))
    app.setWindowIcon(icon)
    error_dialog.install()  # Qt follows the system palette (light/dark) by itself; views use palette roles.
    log.info("Lookalike starting; log file %s", log_file)
    session = Session(lambda: Engine(device=args.device))
    window = MainWindow(session, Settings())
    window.show()
    if args.folders:  # added to the saved folders, all scanned (from the cache where unchanged)
        window.open_folders([f for f in args.folders if Path(f).is_dir()])
    else:  # the last results again, from the cache
        window.restore_last()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
