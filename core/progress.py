"""Progress reporting and cancellation without Qt (after dupeGuru's Job and napari's progress).

Every long call takes ``progress(done, total, message)`` and a ``CancelToken``; both default to no-ops.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from core.errors import Cancelled

ProgressFn = Callable[[int, int, str], None]


def no_progress(done: int, total: int, message: str) -> None:
    """The default progress reporter: says nothing."""


class CancelToken:
    """Thread-safe flag that a long operation checks between items."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled")


NEVER_CANCELLED = CancelToken()
