"""Every typed error of the engine lives here. Per-file trouble is data (``Problem``), not an exception."""

from __future__ import annotations


class LookalikeError(Exception):
    """Base class for the engine's errors."""


class Cancelled(LookalikeError):
    """A long operation was cancelled through its cancel token."""


class DecodeError(LookalikeError):
    """Why one file cannot be decoded; the engine turns it into a ``Problem`` (per-file trouble is data)."""


class ModelError(LookalikeError):
    """The bundled model is missing, corrupt or does not match its manifest."""


class DeviceError(LookalikeError):
    """The requested compute device is not available."""


class ActionError(LookalikeError):
    """A file action (trash, move, undo) was refused as unsafe or failed as a whole."""


class OutputError(LookalikeError):
    """A report cannot be written where asked (an image, a folder, a file that is not ours, no such
    folder)."""


class CacheError(LookalikeError):
    """The cache cannot be used; the engine carries on without it and says so."""
