"""Byte buffers reused from batch to batch of a streamed export.

Each batch's ``events.csv`` rows (~22 MB for 170k records) are written by
:mod:`.fused` into a buffer sized for the worst case (~80 MB).  A fresh
buffer that large is its own ``mmap`` (glibc's per-thread arenas stop at
64 MiB), unmapped again once the rows are written, so every batch faulted
in and cleared ~5,000 new pages: ~0.9 CPU-s of ``clear_page`` over a
10M-record export on this VM.  A buffer that comes back here after its
rows are written is handed to a later batch instead, its pages already in
place.
"""

from __future__ import annotations

import threading

import numpy as np


class BufferPool:
    """Free buffers kept for reuse, at most ``keep`` of them.

    :meth:`take` gives a buffer of at least the size asked for (a free one
    if one is big enough, else a new one with some room to spare);
    :meth:`give` takes it back once nothing reads it any more.  Thread-safe:
    the table workers take, the writer thread gives back.
    """

    def __init__(self, keep: int = 8) -> None:
        self.keep = keep
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, size: int) -> np.ndarray:
        with self._lock:
            fits = [i for i, b in enumerate(self._free) if len(b) >= size]
            if fits:
                return self._free.pop(min(fits, key=lambda i: len(self._free[i])))
        # An eighth more: the next batches ask for about as much, a little more or less.
        return np.empty(size + size // 8, np.uint8)

    def give(self, buf: np.ndarray) -> None:
        with self._lock:
            if len(self._free) < self.keep and not any(b is buf for b in self._free):
                self._free.append(buf)

    def clear(self) -> None:
        """Let every free buffer go (before work that needs the memory)."""
        with self._lock:
            self._free.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._free)
