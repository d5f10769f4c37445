"""Declarations of the ktrace on-disk layouts and the message catalogue.

Installed as ``ktrace_decode.formats``.  This package is the single source of
truth: the decoder, the emitter and the docs import from here.
"""

from . import layouts, messages, prometheus

__all__ = ["layouts", "messages", "prometheus"]
