"""``ktrace export`` with message classification made free: a lower bound.

    python tests/benchmarks/export_floor.py DUMP --out DIR [--force]

Runs the real ``ktrace export`` command line, except that the events stage
(:func:`ktrace_decode.pipeline.events.events`) is replaced by one that only
splits off the function name and names every text record ``other``: no
pattern is tested and no field is extracted.  Everything else (the decode,
the other record-sized tables, every CSV write, the end tables) runs as
usual, and ``events.csv`` keeps its rows and nearly its size (the event
names are as long, only the nodeid/fh/err cells are empty).

With no patch events left, the end tables have nothing to do, so this is a
lower bound on what any classifier could reach: ``run_all.py`` prints it
next to the real export to show how much of the export's time is
classification and how much is everything else.  Its output files are
meaningless; only its time is.
"""

from __future__ import annotations

import sys

import polars as pl

from ktrace_decode import schema
from ktrace_decode.cli import main
from ktrace_decode.formats import layouts as L
from ktrace_decode.pipeline import streamed


def unclassified_events(records: pl.LazyFrame) -> pl.LazyFrame:
    """schema.EVENTS rows with the function split off and no message matched."""
    split = pl.col("text").str.splitn(": ", 2)
    kind = (pl.when(pl.col("type") == L.TYPE_TEXT).then(pl.lit("text"))
            .when(pl.col("type") == L.TYPE_IOTIMES).then(pl.lit("iotimes"))
            .otherwise(pl.lit("unknown")))
    event = pl.when(kind == "text").then(pl.lit("other")).otherwise(kind)
    values = {
        "record_type": kind,
        "event": event,
        "function": pl.when(split.struct.field("field_1").is_not_null())
        .then(split.struct.field("field_0")),
    }
    return records.select(
        (values[name] if name in values else pl.col(name) if name in ("time_us", "cpu", "seq",
                                                                        "ovfl", "text")
         else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in schema.EVENTS.items())


if __name__ == "__main__":
    streamed.events = unclassified_events  # the stage the streamed export calls per batch
    sys.exit(main(["export", *sys.argv[1:]]))
