"""Turn records into lines: text (like blkparse), JSON lines, CSV.

Formatting is done with Polars string expressions on batches of rows, so
``ktrace decode`` never formats a record in a Python loop and its memory is
bounded by the batch size, not by the dump.
"""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl

from .formats import layouts as L

BATCH_ROWS = 200_000

_TYPE_NAME = (
    pl.when(pl.col("type") == L.TYPE_TEXT).then(pl.lit("text"))
    .when(pl.col("type") == L.TYPE_IOTIMES).then(pl.lit("iotimes"))
    .otherwise(pl.format("type{}", pl.col("type")))
)
_IO_NAME = pl.col("io_type").replace_strict(
    {k: v for k, v in L.IOTIMES_REQUEST_TYPES.items()}, default=pl.col("io_type").cast(pl.String),
    return_dtype=pl.String)


def _seconds(col: str) -> pl.Expr:
    return pl.format("{}.{}", (pl.col(col) // 1_000_000).cast(pl.String).str.pad_start(5),
                     (pl.col(col) % 1_000_000).cast(pl.String).str.zfill(6))


def text_lines(df: pl.DataFrame) -> pl.Series:
    """One line per record: CPU, s.us, type, lost-before marker, message."""
    iot = pl.format(
        "ino={} {} off={} size={} lat={}us local={}us cs={}",
        pl.col("io_ino"), _IO_NAME, pl.col("io_offset"), pl.col("io_size"), pl.col("io_lat"),
        pl.col("io_local_delay"), pl.col("n_cs"))
    msg = (
        pl.when(pl.col("type") == L.TYPE_TEXT).then(pl.col("text"))
        .when(pl.col("type") == L.TYPE_IOTIMES).then(iot)
        .otherwise(pl.format("<{} payload bytes>", pl.col("pdu_len")))
    )
    flags = (
        pl.when(pl.col("long_text")).then(pl.lit(" [long: cut at NUL]")).otherwise(pl.lit(""))
    )
    lost = (
        pl.when(pl.col("ovfl") > 0).then(pl.format(">={} lost", pl.col("ovfl")))
        .otherwise(pl.lit(""))
    )
    return df.select(
        pl.format("{} {} {} {} {}{}",
                  pl.col("cpu").cast(pl.String).str.pad_start(3), _seconds("time_us"),
                  _TYPE_NAME.str.pad_end(7), lost.str.pad_end(11), msg, flags)
    ).to_series()


def batches(df: pl.DataFrame, rows: int = BATCH_ROWS) -> Iterator[pl.DataFrame]:
    """Zero-copy slices of ``df``."""
    for off in range(0, df.height, rows):
        yield df.slice(off, rows)


def _portable(df: pl.DataFrame) -> pl.DataFrame:
    # Raw payloads of unknown-type records as hex: JSON and CSV cannot hold bytes.
    return df.with_columns(pl.col("payload").bin.encode("hex"))


def jsonl_text(df: pl.DataFrame) -> str:
    """One JSON object per record."""
    return _portable(df).write_ndjson()


def csv_text(df: pl.DataFrame, header: bool) -> str:
    """The batch as CSV (payload as hex)."""
    return _portable(df).write_csv(include_header=header)
