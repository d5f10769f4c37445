"""Memory allocator settings of the ``ktrace`` process (never applied on import).

A streamed export allocates and frees the same few hundred MB for every batch
of records: numpy arrays (glibc malloc) and Polars columns and CSV buffers
(Polars' own jemalloc).  By default both hand freed memory back to the kernel
quickly -- glibc serves every block above 128 KiB to 32 MiB with its own
``mmap`` and unmaps it on free; Polars' jemalloc purges dirty pages after
0.5 s and sends blocks above 8 MiB to an arena that keeps nothing -- so the
next batch touches fresh pages again.  On a virtual machine that returns
freed memory to its host, every fresh page costs a fault and a clear: a
10M-record export took about 500k page faults and 3.5-4.5 s of system time.

Keeping the memory for a few seconds instead (the settings below) halves the
faults; the peak RSS hardly moves, because the batches reuse the same blocks
(README, Performance, measures both).  Only the ``ktrace`` command applies
them (:func:`apply`, first thing in :func:`ktrace_decode.cli.main`): a
program that imports ``ktrace_decode`` keeps its own allocator settings.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from functools import cache
from typing import Any

#: Polars' jemalloc (built with the ``_rjem_`` prefix) reads its options from
#: this variable once.  Polars' ``__init__`` writes its own defaults there
#: and appends what it found, which jemalloc then reads as overrides.
JEMALLOC_ENV = "_RJEM_MALLOC_CONF"
#: No separate arena for big blocks (it purges at once); freed pages kept 5 s.
JEMALLOC_CONF = "oversize_threshold:0,dirty_decay_ms:5000,muzzy_decay_ms:5000"
#: glibc: blocks up to this size come from the heap, not their own mmap ...
MMAP_THRESHOLD = 256 << 20
#: ... and the heap's top is given back only above this much free memory.
TRIM_THRESHOLD = 512 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)


def apply() -> dict[str, str]:
    """Set both allocators up for batch work; what was set, for diagnostics.

    The user's own ``_RJEM_MALLOC_CONF`` (or glibc's ``MALLOC_*_`` variables
    or ``glibc.malloc`` tunables) win.  The jemalloc options only count if
    they are set before Polars is imported.
    """
    done: dict[str, str] = {}
    if "polars" not in sys.modules and JEMALLOC_ENV not in os.environ:
        os.environ[JEMALLOC_ENV] = JEMALLOC_CONF
        done[JEMALLOC_ENV] = JEMALLOC_CONF
    libc = _glibc()
    users_own = (any(k.startswith("MALLOC_") for k in os.environ)
                 or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""))
    # Both are needed: setting either one turns off glibc's dynamic
    # threshold, and a trim threshold alone leaves blocks above 128 KiB
    # to mmap (four times the faults, measured).
    if (libc is not None and not users_own
            and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        done["mallopt"] = f"mmap_threshold={MMAP_THRESHOLD},trim_threshold={TRIM_THRESHOLD}"
    return done


def give_back() -> None:
    """Return glibc's free memory to the system now (``malloc_trim``): at a
    phase change, when what the next phase needs is not what was freed.
    Harmless anywhere; a no-op without glibc."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@cache
def _glibc() -> Any:
    """The process's C library if it is glibc (mallopt, malloc_trim), else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None
