"""The compiled loops' modules (``pipeline/_*_jit.py``), imported when first wanted.

Importing one imports numba (~0.1 s, then ~0.2 s more on the first call),
so the modules that use a loop ask for it only for work big enough to pay
for that, and take their numpy or Polars path where it is missing.

The first run after an install compiles the loops into numba's cache
(~20 s for an export's, once); :func:`notice_compiling` lets the command
line say so instead of seeming to hang.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from functools import cache
from types import ModuleType

import numpy as np

_notice: Callable[[], None] | None = None
_said = threading.Event()


def notice_compiling(say: Callable[[], None] | None) -> None:
    """Call ``say`` (once per process) when a loop is compiled rather than
    loaded from numba's cache; None: say nothing (the default)."""
    global _notice
    _notice = say


def offset_of(dtype: np.dtype, name: str, width: int) -> int:
    """Where field ``name`` of a layout's numpy dtype (formats.layouts)
    starts, checked to be the little-endian unsigned integer of ``width``
    bytes a loop reads there: a layout change must stop the loop, not feed
    it the wrong bytes."""
    if dtype.fields[name][0] != np.dtype(f"<u{width}"):
        raise RuntimeError(f"a compiled loop reads {name} as a {width}-byte integer; "
                           f"the layout says {dtype.fields[name][0]}")
    return int(dtype.fields[name][1])


#: The iotimes header fields the loops read, with the width each reads
#: them as, in the order of their slot numbers in the loops' tables
#: (``_fused_jit.IO_CHUNK`` ..., ``_records_jit.L_CHUNK`` ...).
IOTIMES_FIELDS = (("chunk", 8), ("offset", 8), ("size", 8), ("start_time", 8),
                  ("local_delay", 4), ("lat", 4), ("ino", 8), ("type", 2), ("cses", 1),
                  ("pad1", 4))


def iotimes_offsets() -> list[int]:
    """Where each of :data:`IOTIMES_FIELDS` starts in an iotimes header (checked)."""
    from .formats import layouts as L

    return [offset_of(L.IOTIMES_HEADER_DTYPE, name, width) for name, width in IOTIMES_FIELDS]


@cache
def load(name: str) -> ModuleType | None:
    """``ktrace_decode.pipeline.<name>``, or None where numba is missing or
    broken on this platform."""
    try:
        module = importlib.import_module(f"{__package__}.pipeline.{name}")
    except ImportError:
        return None
    _listen()
    return module


@cache
def _listen() -> None:
    """Hear numba's compile events (it sends none for a loop its cache had)."""
    from numba.core import event

    class Compiling(event.Listener):  # type: ignore[misc]
        def on_start(self, ev: event.Event) -> None:
            if _notice is not None and not _said.is_set():
                _said.set()
                _notice()

        def on_end(self, ev: event.Event) -> None:
            pass

    event.register("numba:compile", Compiling())
