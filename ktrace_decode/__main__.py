"""``python -m ktrace_decode``: the ``ktrace`` command."""

from .cli import entry

entry()
