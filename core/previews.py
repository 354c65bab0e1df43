"""Previews a first scan keeps of the photos it decodes, for the pair check that follows it.

The check extracts keypoints from a ~384 px picture of each image in a candidate pair. Reading a camera
JPEG again for that cost as much as the scan's own decode (~37 ms for 12-24 MP, entropy decoding at any
scale), so a first scan keeps the picture it already decoded for the model as a small JPEG (~20-30 KB) in
one anonymous temporary file, and the check reads it back in ~1 ms. The file has no name on disk (it goes
when closed, or when the process dies) and holds at most ``MAX_BYTES``; a file that changed since, or a
preview that cannot be stored, is simply read from disk again.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path

from core.verify import DETECT_SIDE

log = logging.getLogger(__name__)

SIDE = DETECT_SIDE  # the picture the check's keypoints come from
MAX_BYTES = 2 << 30  # ~70,000 previews; later ones are not kept (their files are read again)


class PreviewSpool:
    """JPEG previews by path, valid for one (size, mtime) of the file; written by one thread, read by any."""

    def __init__(self, folder: str | Path | None = None, max_bytes: int = MAX_BYTES) -> None:
        self._lock = threading.Lock()
        self._index: dict[str, tuple[int, int, int, int]] = {}  # path -> (size, mtime_ns, offset, length)
        self._end = 0
        self._max = max_bytes
        self._file = None
        try:
            if folder is not None:
                os.makedirs(folder, exist_ok=True)
            self._file = tempfile.TemporaryFile(dir=folder, prefix="lookalike-previews-")
        except OSError as e:  # no room for it: the check reads the files again, as without a spool
            log.info("no preview spool (%s): the pair check will read candidates' files again", e)

    def put(self, path: str, size: int, mtime_ns: int, data: bytes | None) -> bool:
        """Keep ``data`` for ``path`` as it is now; False when not kept (no data, no room, an error)."""
        if not data or self._file is None or self._end + len(data) > self._max:
            return False
        with self._lock:
            try:
                self._file.seek(self._end)
                self._file.write(data)
            except OSError as e:  # a full disk: stop spooling, keep what is there
                log.info("preview spool stopped: %s", e)
                self._max = self._end
                return False
            self._index[path] = (size, mtime_ns, self._end, len(data))
            self._end += len(data)
        return True

    def get(self, path: str, size: int, mtime_ns: int) -> bytes | None:
        """The preview kept for ``path`` at this size and modification time, else None."""
        at = self._index.get(path)
        if at is None or at[:2] != (size, mtime_ns) or self._file is None:
            return None
        with self._lock:
            try:
                self._file.flush()
                self._file.seek(at[2])
                data = self._file.read(at[3])
            except (OSError, ValueError):  # closed meanwhile, or unreadable: read the file instead
                return None
        return data if len(data) == at[3] else None

    def __len__(self) -> int:
        return len(self._index)

    @property
    def nbytes(self) -> int:
        return self._end

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            self._index.clear()

    def __enter__(self) -> PreviewSpool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
