"""``ktrace export`` with message classification made free: a lower bound.

    python tests/benchmarks/export_floor.py DUMP --out DIR [--force]

Runs the real ``ktrace export`` command line, except that the events stage
classifies nothing: :func:`ktrace_decode.pipeline.events.classify` returns
"no function, no match" for every text, so no byte program or pattern runs
and no field is read.  Everything else (the decode, the event columns, the
other record-sized tables, every CSV write, the end tables) runs as usual,
and ``events.csv`` keeps its rows and nearly its size (the event names are
as long; only the function and the nodeid/fh/err cells are empty).

With no patch events left, the end tables have nothing to do, so this is a
lower bound on what any classifier could reach: ``run_all.py`` prints it
next to the real export to show how much of the export's time is
classification and how much is everything else.  Its output files are
meaningless; only its time is.
"""

from __future__ import annotations

import sys

import polars as pl

from ktrace_decode.cli import main
from ktrace_decode.pipeline import events as E


def unclassified(text: pl.Series) -> pl.Series:
    """:func:`ktrace_decode.pipeline.events.classify` deciding nothing: every
    field of the struct null."""
    return pl.repeat(None, text.len(), dtype=E.CLASSIFIED, eager=True).alias(text.name)


if __name__ == "__main__":
    E.classify = unclassified  # what events() calls, through the lazy plan, per batch
    sys.exit(main(["export", *sys.argv[1:]]))
