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


class TimeLeft:
    """Seconds left in one phase of ``total`` items, from the pace since its first reported item.

    The time before the first item (loading the model, starting decode threads, the first batch's start-up)
    is not counted: timed from the phase's start, a scan's first seconds said 104 s were left when 58 were.
    No estimate until ``settle`` seconds of steady work have passed.
    """

    def __init__(self, clock: Callable[[], float], settle: float = 1.0) -> None:
        self._clock = clock
        self._settle = settle
        self._total = -1
        self._base: tuple[float, int] | None = None

    def update(self, done: int, total: int) -> float | None:
        """Record ``done`` of ``total``; returns the estimated seconds left, or None while unknown."""
        now = self._clock()
        if total != self._total or (self._base is not None and done < self._base[1]):
            self._total, self._base = total, None  # a new phase
        if self._base is None:
            self._base = (now, done) if done > 0 else None
            return None
        t0, d0 = self._base
        if done <= d0 or now - t0 < self._settle:
            return None
        return (total - done) * (now - t0) / (done - d0)
