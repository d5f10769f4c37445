"""``ktrace tui``: browse a dump in the terminal."""

from __future__ import annotations

import argparse

from ..cli_common import add_input_args, load_input
from ..samples import sample_path
from ..sources import in_memory, open_dump
from . import memory_guard


def add_tui_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "tui", help="browse a dump in the terminal (no PATH: the bundled sample)",
        description="An incident browser: overview, invalidation episodes (enter opens one), "
                    "the merged event stream with a filter, and per-CPU health.",
        epilog="keys: ? help, / filter, n/N next/previous match, g go to time, enter open, "
               "esc back, tab next screen, q quit",
    )
    add_input_args(p)
    p.add_argument("--ignore-memory", action="store_true",
                   help="open the dump even if it looks too big for the available memory "
                        "(the TUI holds the whole dump: about 4.3x the trace files' size; "
                        "it refuses, with one line, when MemAvailable or the cgroup limit "
                        "is smaller)")
    p.set_defaults(func=run_tui)
    # PATH is optional here: default to the bundled sample.
    for action in p._actions:
        if action.dest == "path":
            action.nargs = "?"
            action.default = None
    return p


def run_tui(args: argparse.Namespace) -> int:
    from .app import create_app  # Textual only loads when the TUI runs

    path = args.path if args.path is not None else str(sample_path())
    # Open and decode before the app starts: a bad path, or a dump too big for
    # this machine, gives the CLI's one-line error, not a broken screen.
    dump = open_dump(path)
    if not args.ignore_memory:
        memory_guard.check(dump, memory_guard.available())
    # Read, not mapped, once it is known to fit: the TUI stays open for hours,
    # and a new dump written over the directory meanwhile must not kill it
    # (SIGBUS on a truncated mapping).
    decoded = load_input(args, in_memory(dump))
    create_app(decoded=decoded).run()
    return 0
