"""Shared test setup: Qt offscreen before any Qt import; caches, journals and the trash under tmp dirs."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Settings, caches, journal and the freedesktop trash of the whole session live in one temporary home,
# never in the real user's folders. (send2trash reads XDG_DATA_HOME when imported.)
_HOME = Path(tempfile.mkdtemp(prefix="lookalike-tests-"))
for var, sub in (("XDG_CACHE_HOME", "cache"), ("XDG_DATA_HOME", "data"), ("XDG_CONFIG_HOME", "config")):
    os.environ[var] = str(_HOME / sub)
    (_HOME / sub).mkdir()

import pytest  # noqa: E402

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent / "data")]
from helpers import DEMO  # noqa: E402


@pytest.fixture(scope="session")
def engine_factory():
    """Engines share the real bundled model; each test gets its own cache folder."""
    from core.engine import Engine

    def make(cache_dir: Path | None = None, **kw):
        return Engine(cache_dir=cache_dir, use_cache=cache_dir is not None, **kw)

    return make


@pytest.fixture(scope="session")
def demo_manifest() -> dict:
    import json

    return json.loads((DEMO / "MANIFEST.json").read_text())
