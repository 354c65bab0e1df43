"""The frozen app's entry point (PyInstaller runs this script as ``Lookalike``).

One executable serves three roles, so the installed folder carries one copy of the Python runtime:

- ``Lookalike --self-test``: scan the bundled demo folder headlessly and print a JSON summary. Imports no Qt
  (PyInstaller's own PySide6 run-time hook loads QtCore at start-up to register qt.conf; nothing of the GUI),
  so it proves the engine and its CPU runtime (ONNX Runtime, no torch) work on a machine without a display.
- ``Lookalike --cli ARGS...``, or the executable invoked as ``lookalike`` (the ``/usr/bin/lookalike``
symlink):
  the command-line tool, ``core.cli.main``.
- anything else: the desktop app, ``desktop.app.main``.
"""

from __future__ import annotations

import multiprocessing
import os
import sys


def _cli_name(argv0: str) -> bool:
    """True when run as ``lookalike`` (a symlink to the app) or ``lookalike-cli[.exe]`` (the Windows console
    twin).

    Case matters: the app itself is ``Lookalike`` and must open the window.
    """
    name = os.path.basename(argv0)
    if name.lower().endswith(".exe"):
        name = name[:-4]
    return name == "lookalike" or name.lower() == "lookalike-cli"


def self_test() -> int:
    """Scan the bundled demo folder; exit 0 only if duplicates were found and no file was a problem."""
    import json
    import platform
    import time

    t0 = time.perf_counter()
    from core.engine import Engine
    from core.report import scan_json
    from core.resources import resource_path

    demo = resource_path("demo")
    engine = Engine(use_cache=False)
    t_load = time.perf_counter() - t0
    library = engine.scan([str(demo)])
    result = library.result(engine.bundle.duplicate_threshold)
    data = scan_json(result)
    seconds = time.perf_counter() - t0
    groups = data["groups"]
    summary = {
        "ok": bool(groups) and not data["problems"],
        "demo": str(demo),
        "files": data["files"],
        "groups": len(groups),
        "duplicates": sum(len(g["files"]) - 1 for g in groups),
        "exact_groups": sum(1 for g in groups if g["exact"]),
        # Each group's files relative to the demo folder, best copy first: lets a test compare with the source
        # run.
        "group_files": [[os.path.relpath(f["path"], demo) for f in g["files"]] for g in groups],
        "problems": data["problems"],
        "threshold": data["threshold"],
        "model": data["model"],
        "device": engine.embedder.device,
        "backend": engine.embedder.backend_name,
        "frozen": bool(getattr(sys, "frozen", False)),
        "torch_loaded": "torch" in sys.modules,
        "qt_modules": sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "shiboken6")),
        "python": platform.python_version(),
        "load_seconds": round(t_load, 3),
        "seconds": round(seconds, 3),
    }
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    multiprocessing.freeze_support()
    argv = sys.argv if argv is None else argv
    args = argv[1:]
    if args[:1] == ["--self-test"]:
        return self_test()
    if args[:1] == ["--cli"]:
        from core.cli import main as cli_main

        return cli_main(args[1:])
    if argv and _cli_name(argv[0]):
        from core.cli import main as cli_main

        return cli_main(args)
    from desktop.app import main as gui_main

    return gui_main() or 0  # reads sys.argv itself (folders to open)


if __name__ == "__main__":
    sys.exit(main())
