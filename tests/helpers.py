"""Paths and small helpers shared by the test folders (importable as ``helpers``)."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
DEMO = REPO / "resources" / "demo"


def copy_demo(dest: Path, subset: list[str] | None = None) -> Path:
    """Copy the demo folder (or some of its files, paths relative to it) into ``dest``."""
    if subset is None:
        shutil.copytree(DEMO, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.md", "*.json"))
    else:
        for rel in subset:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(DEMO / rel, dest / rel)
    return dest
