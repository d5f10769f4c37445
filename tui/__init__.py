"""The Textual incident browser (installed as ``ktrace_decode.tui``)."""

from .app import KtraceApp, create_app

__all__ = ["KtraceApp", "create_app"]
