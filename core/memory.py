"""Keep the process's memory near what a scan holds, not what it once held (glibc's allocator on Linux).

Two habits of glibc's ``malloc`` make a scan's peak memory grow with what it has freed:

- Its threshold for serving a block from ``mmap`` rises to the size of every large block freed (up to
  32 MB), so after the first decoded photo is freed, later ones come from the heap and leave it fragmented.
  A fixed 1 MB threshold keeps every decoded image in its own mapping, returned to the system when freed.
  Measured on the 1,000-file benchmark library (12-24 MP JPEGs, HEIC, PNG, WebP; 2 cores): peak RSS while
  reading 461-469 MB -> 341 MB, the whole scan 573-605 MB -> 450 MB, for ~5 % more CPU time (page faults
  of fresh mappings).
- Memory freed inside the heap stays with the process until ``malloc_trim`` is called: after dropping the
  model's session (see ``core.embed.Embedder.release``) RSS went 236 -> 142 MB, and 86 MB after a trim.

Both are no-ops where the C library is not glibc (macOS, Windows, musl).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
MMAP_THRESHOLD_BYTES = 1 << 20

_libc = None
_tuned = False


def _glibc():
    global _libc
    if _libc is None:
        _libc = False
        if sys.platform.startswith("linux"):
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                lib.gnu_get_libc_version  # noqa: B018 - present in glibc only (not musl)
                _libc = lib
            except (OSError, AttributeError):
                pass
    return _libc or None


def tune_allocator() -> bool:
    """Serve blocks of 1 MB and more from their own mappings (once per process); True if applied."""
    global _tuned
    libc = _glibc()
    if libc is None:
        return False
    if not _tuned:
        _tuned = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
        if not _tuned:
            log.info("mallopt(M_MMAP_THRESHOLD) refused")
    return _tuned


def give_back() -> None:
    """Return the heap's free memory to the system (after a phase that freed much of it)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
