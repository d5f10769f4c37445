"""The compiled loops' modules (``_*_jit``), imported when first wanted.

Importing one imports numba (~0.1 s, then ~0.2 s more on the first call),
so the modules that use a loop ask for it only for work big enough to pay
for that, and take their Polars path where it is missing.
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType


@cache
def load(name: str) -> ModuleType | None:
    """``ktrace_decode.pipeline.<name>``, or None where numba is missing or
    broken on this platform."""
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ImportError:
        return None
