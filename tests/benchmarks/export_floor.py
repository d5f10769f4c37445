"""``ktrace export`` with message classification made free: a lower bound.

    python tests/benchmarks/export_floor.py DUMP --out DIR [--force]

Runs the real ``ktrace export`` command line, except that the events stage
(:func:`ktrace_decode.pipeline.events.events`) skips its one matching step
(``catalogue_match``): the function name is split off and the names and
columns are built as usual, but every text record is ``other``, so no
pattern is tested and no field is captured.  Everything else (the decode,
the other record-sized tables, every CSV write, the end tables) runs as
usual, and ``events.csv`` keeps its rows and nearly its size (the event
names are as long; only the text records' nodeid/fh/err cells are empty).

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
from ktrace_decode.pipeline import streamed


def unclassified_events(records: pl.LazyFrame) -> pl.LazyFrame:
    """:func:`ktrace_decode.pipeline.events.events` with no pattern tested:
    every text record matches nothing (so no field is captured either)."""
    return E.from_matches(E.with_function(records), pl.lit(None, pl.UInt8))


if __name__ == "__main__":
    streamed.events = unclassified_events  # the stage the streamed export calls per batch
    sys.exit(main(["export", *sys.argv[1:]]))
