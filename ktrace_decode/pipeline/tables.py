"""The derived export tables: nodes, iotimes, iotimes_cs, loss (schemas and stages).

Each ``*_SCHEMA`` is part of the documented, stable export format (the README
lists column, type, unit and meaning); the stages end with a select in exactly
that order and those types.
"""

from __future__ import annotations

import polars as pl

from .. import iolatency
from ..formats import layouts as L
from .events import ino_nodeid

#: nodes.csv: one row per kernel nodeid that had at least one invalidation episode.
NODES: dict[str, pl.DataType] = {
    "nodeid": pl.UInt64(),
    "userspace_id": pl.UInt64(),
    "episodes": pl.UInt32(),
    "complete": pl.UInt32(),
    "in_progress": pl.UInt32(),
    "no_start": pl.UInt32(),
    "first_seen_us": pl.UInt64(),
    "last_end_us": pl.UInt64(),
    "total_duration_us": pl.Int64(),
    "max_duration_us": pl.Int64(),
    "attempts": pl.UInt32(),
    "retries": pl.UInt32(),
    "write_errors": pl.UInt32(),
    "pages_errors": pl.UInt32(),
    "blocked_opens": pl.UInt32(),
    "max_open_wait_us": pl.Int64(),
    "poisoned_files": pl.UInt32(),
    "lost_overlap": pl.Boolean(),
}

#: iotimes.csv: one row per iotimes record.
IOTIMES: dict[str, pl.DataType] = {
    "time_us": pl.UInt64(),
    "cpu": pl.UInt16(),
    "seq": pl.UInt32(),
    "nodeid": pl.UInt64(),
    "ino": pl.UInt64(),
    "request": pl.String(),
    "type": pl.UInt16(),
    "chunk": pl.UInt64(),
    "offset": pl.UInt64(),
    "size": pl.UInt64(),
    "start_time_us": pl.UInt64(),
    "local_delay_us": pl.UInt32(),
    "lat_us": pl.UInt32(),
    "total_us": pl.Int64(),
    "cses": pl.UInt8(),
    "chid": pl.UInt32(),
    "n_cs": pl.UInt16(),
}

#: iotimes_cs.csv: one row per chunk-server entry of an iotimes record.
IOTIMES_CS: dict[str, pl.DataType] = {
    "time_us": pl.UInt64(),
    "cpu": pl.UInt16(),
    "seq": pl.UInt32(),
    "nodeid": pl.UInt64(),
    "idx": pl.UInt8(),
    "csid": pl.UInt64(),
    "misc": pl.UInt64(),
    "cached": pl.Boolean(),
    "sequential": pl.Boolean(),
    "sync": pl.Boolean(),
    "misc_time": pl.UInt64(),
    "ts_net_us": pl.UInt32(),
    "ts_io_us": pl.UInt32(),
}

#: cs.csv: IO latency per chunk server and request type (from iotimes entries).
CS_LATENCY: dict[str, pl.DataType] = dict(iolatency.PER_CS)

#: loss.csv: one row per place where records are missing.
LOSS: dict[str, pl.DataType] = {
    "cpu": pl.UInt16(),
    "file": pl.String(),
    "kind": pl.String(),  # dropped | garbage | truncated
    "after_us": pl.UInt64(),
    "before_us": pl.UInt64(),
    "records_at_least": pl.UInt32(),
    "start_offset": pl.UInt64(),
    "end_offset": pl.UInt64(),
    "bytes": pl.UInt64(),
}


def _select(lf: pl.LazyFrame, schema: dict[str, pl.DataType]) -> pl.LazyFrame:
    return lf.select([pl.col(n).cast(t) for n, t in schema.items()])


def nodes(invalidations: pl.LazyFrame) -> pl.LazyFrame:
    """Per nodeid totals over its episodes (schema NODES), sorted by nodeid."""
    # A start that did not open its episode is a retry (the work function
    # re-queued the inode after an error and began again).
    retries = pl.col("attempts") - pl.col("start_us").is_not_null().cast(pl.UInt32)
    dur = pl.col("duration_us")
    return _select(
        invalidations.group_by("nodeid").agg(
            pl.col("userspace_id").first(),
            pl.len().alias("episodes"),
            *((pl.col("status") == s).sum().alias(s)
              for s in ("complete", "in_progress", "no_start")),
            pl.col("first_seen_us").min(),
            pl.col("end_us").max().alias("last_end_us"),
            # null, not 0, when no episode of the nodeid has a known duration
            pl.when(dur.count() > 0).then(dur.sum()).alias("total_duration_us"),
            dur.max().alias("max_duration_us"),
            pl.col("attempts").sum(),
            retries.sum().alias("retries"),
            pl.col("write_errors").sum(),
            pl.col("pages_errors").sum(),
            pl.col("blocked_opens").sum(),
            pl.col("max_open_wait_us").max(),
            pl.col("pending_files").sum().alias("poisoned_files"),
            pl.col("lost_overlap").any(),
        ).sort("nodeid"),
        NODES,
    )


def iotimes(records: pl.LazyFrame) -> pl.LazyFrame:
    """One row per iotimes record (schema IOTIMES), in merged order."""
    return _select(
        iolatency.iotimes(records).with_columns(
            ino_nodeid(pl.col("io_ino")).alias("nodeid"),  # PCS file id = kernel nodeid - 1
            pl.col("io_ino").alias("ino"),
            pl.col("io_type").alias("type"),
            pl.col("io_chunk").alias("chunk"),
            pl.col("io_offset").alias("offset"),
            pl.col("io_size").alias("size"),
            pl.col("io_start_time").alias("start_time_us"),
            pl.col("io_local_delay").alias("local_delay_us"),
            pl.col("io_lat").alias("lat_us"),
            pl.col("io_cses").alias("cses"),
            pl.col("io_chid").alias("chid"),
        ),
        IOTIMES,
    )


def cs_joined(records: pl.LazyFrame, cs: pl.LazyFrame) -> pl.LazyFrame:
    """The chunk-server entries with every column of their record that
    :func:`iotimes_cs_of` and :func:`.iolatency.cs_entries_of` read: plans
    built on it and collected together join once (a common subplan)."""
    return iolatency.cs_with_record(records, cs, "time_us", "io_type",
                                    ino_nodeid(pl.col("io_ino")).alias("nodeid"))


def iotimes_cs(records: pl.LazyFrame, cs: pl.LazyFrame) -> pl.LazyFrame:
    """One row per chunk-server entry (schema IOTIMES_CS), by (time_us, cpu, seq, idx)."""
    return iotimes_cs_of(cs_joined(records, cs))


def iotimes_cs_of(joined: pl.LazyFrame) -> pl.LazyFrame:
    """:func:`iotimes_cs` from :func:`cs_joined`."""
    misc = pl.col("misc")

    def bit(mask: int) -> pl.Expr:
        return (misc & pl.lit(mask, pl.UInt64)) != 0

    return _select(
        joined.with_columns(
            bit(L.CS_MISC_CACHED).alias("cached"),
            bit(L.CS_MISC_SEQUENTIAL).alias("sequential"),
            bit(L.CS_MISC_SYNC).alias("sync"),
            (misc & pl.lit(L.CS_MISC_TIME_MASK, pl.UInt64)).alias("misc_time"),
            pl.col("ts_net").alias("ts_net_us"),
            pl.col("ts_io").alias("ts_io_us"),
        )
        # By (time_us, cpu, seq, idx): the entries come in (cpu, seq, idx)
        # order (schema.CS) and the join keeps it, so one stable sort by time
        # does.  Two sorts in a row would be fused by the optimizer into one
        # sort on two keys, which Polars encodes into byte rows first (a third
        # of this table's CPU).
        .sort("time_us", maintain_order=True),
        IOTIMES_CS,
    )


def loss(records: pl.LazyFrame, windows: pl.LazyFrame, skips: pl.LazyFrame,
         files: pl.LazyFrame) -> pl.LazyFrame:
    """Dropped-record windows and skipped byte ranges per CPU (schema LOSS).

    ``windows`` is decode.drop_windows(); ``skips`` is Decoded.skips_frame();
    ``files`` maps cpu -> file (the CPU reports' ``source``).  A skipped range
    gets the time window it sits in: the last record that ends at or before it
    and the first record that starts at or after its end (where the decoder
    resynchronised).
    """
    dropped = windows.join(files, on="cpu", how="left", maintain_order="left").select(
        "cpu", "file", pl.lit("dropped").alias("kind"), "after_us", "before_us",
        pl.col("at_least").alias("records_at_least"),
    )
    # Only the CPUs with skipped bytes need their records sorted by offset
    # (usually none: then this costs nothing).
    recs = (records.join(skips.select("cpu").unique(), on="cpu", how="semi")
            .select("cpu", "offset", "time_us",
                    (pl.col("offset") + L.HEADER_SIZE + pl.col("pdu_len")).alias("rec_end")))
    before = recs.select("cpu", "rec_end", pl.col("time_us").alias("after_us")).sort("rec_end")
    after = recs.select("cpu", "offset", pl.col("time_us").alias("before_us")).sort("offset")
    skipped = (
        skips.select("cpu", pl.col("source").alias("file"), "kind",
                     pl.col("start").alias("start_offset"), pl.col("end").alias("end_offset"),
                     "bytes")
        .sort("start_offset")
        .join_asof(before, left_on="start_offset", right_on="rec_end", by="cpu",
                   strategy="backward", check_sortedness=False)
        .sort("end_offset")
        .join_asof(after, left_on="end_offset", right_on="offset", by="cpu",
                   strategy="forward", check_sortedness=False)
    )
    both = pl.concat([_select(dropped.with_columns(*_nulls("start_offset", "end_offset", "bytes")),
                              LOSS),
                      _select(skipped.with_columns(*_nulls("records_at_least")), LOSS)])
    # Time order first (null times of an empty CPU last), then file order;
    # windows that tie keep their (cpu, seq) order (the same file every run).
    return both.sort("cpu", "before_us", "after_us", "start_offset", nulls_last=True,
                     maintain_order=True)


def _nulls(*names: str) -> list[pl.Expr]:
    return [pl.lit(None).alias(n) for n in names]


def cs_latency_of(entries: pl.DataFrame) -> pl.DataFrame:
    """cs.csv (schema CS_LATENCY) from :func:`iolatency.cs_entries` (one dump's,
    or a stream's batches stacked)."""
    return iolatency.per_cs_of(entries)
