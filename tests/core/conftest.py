"""With LOOKALIKE_BLOCK_QT=1 (as `make test` runs this folder), PySide6 cannot be imported at all:
the engine's tests prove core/ works on a machine without Qt."""

from __future__ import annotations

import importlib.abc
import os
import sys


class _BlockQt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "PySide6" or name.startswith("PySide6."):
            raise ImportError(f"{name} is blocked: core tests run without Qt")
        return None


if os.environ.get("LOOKALIKE_BLOCK_QT") == "1":
    sys.meta_path.insert(0, _BlockQt())
