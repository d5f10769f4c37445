"""The Textual incident browser (installed as ``ktrace_decode.tui``).

The app is imported on first use (``ktrace_decode.tui.create_app``), not with
the package: ``ktrace`` imports ``ktrace_decode.tui.cli`` to register the
``tui`` command, and every other command would otherwise pay for importing
Textual (about half a second).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import KtraceApp, create_app

__all__ = ["KtraceApp", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
