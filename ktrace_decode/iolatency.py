"""IO latency from iotimes records: "is it the invalidation or the storage underneath?"

Pure LazyFrame -> LazyFrame functions over the records table (schema.RECORDS)
and the chunk-server entries (schema.CS).

- per chunk server (csid) and request type: count, network and IO time
  percentiles (``ts_net``, ``ts_io`` of its entry);
- per inode (ino) and request type: count, bytes, total latency percentiles,
  where total = trace time - request creation (``time_us - io_start_time``);
- the slowest IOs.
"""

from __future__ import annotations

import polars as pl

from .formats import layouts as L

QUANTILES = (0.5, 0.9, 0.99)

_REQ = pl.col("io_type").replace_strict(
    dict(L.IOTIMES_REQUEST_TYPES), default=pl.format("type{}", pl.col("io_type")),
    return_dtype=pl.String).alias("request")


def _pcts(col: str, prefix: str) -> list[pl.Expr]:
    out = [pl.col(col).quantile(q, interpolation="nearest").cast(pl.UInt64)
           .alias(f"{prefix}_p{round(q * 100)}_us") for q in QUANTILES]
    return [*out, pl.col(col).max().cast(pl.UInt64).alias(f"{prefix}_max_us")]


def iotimes(records: pl.LazyFrame) -> pl.LazyFrame:
    """The iotimes records with their request name and total latency."""
    return (
        records.filter(pl.col("type") == L.TYPE_IOTIMES)
        .with_columns(_REQ, (pl.col("time_us").cast(pl.Int64)
                             - pl.col("io_start_time").cast(pl.Int64)).alias("total_us"))
    )


def cs_entries(records: pl.LazyFrame, cs: pl.LazyFrame) -> pl.LazyFrame:
    """The chunk-server entries with their record's request name: just what
    :func:`per_cs_of` needs (a streamed export keeps only these columns)."""
    reqs = iotimes(records).select("cpu", "seq", "request")
    return (cs.join(reqs, on=["cpu", "seq"], how="inner")
            .select("csid", "request", "idx", "ts_net", "ts_io"))


def per_cs(records: pl.LazyFrame, cs: pl.LazyFrame) -> pl.LazyFrame:
    """One row per (csid, request): count and ts_net / ts_io percentiles in us."""
    return per_cs_of(cs_entries(records, cs))


def per_cs_of(entries: pl.LazyFrame) -> pl.LazyFrame:
    """:func:`per_cs` from :func:`cs_entries` (of one batch or of many, stacked)."""
    return (
        entries
        .group_by("csid", "request")
        .agg(pl.len().cast(pl.UInt64).alias("count"),
             (pl.col("idx") == 0).sum().cast(pl.UInt64).alias("as_replier"),
             *_pcts("ts_net", "net"), *_pcts("ts_io", "io"))
        .sort("csid", "request")
    )


def per_ino(records: pl.LazyFrame) -> pl.LazyFrame:
    """One row per (ino, request): count, bytes, total latency percentiles in us."""
    return (
        iotimes(records)
        .group_by(pl.col("io_ino").alias("ino"), "request")
        .agg(pl.len().cast(pl.UInt64).alias("count"),
             pl.col("io_size").sum().cast(pl.UInt64).alias("bytes"),
             *_pcts("total_us", "lat"))
        .sort("ino", "request")
    )


def slowest(records: pl.LazyFrame, n: int = 10) -> pl.LazyFrame:
    """The n IOs with the largest total latency."""
    return (
        iotimes(records)
        .sort("total_us", "time_us", descending=[True, False])
        .head(n)
        .select("time_us", "cpu", pl.col("io_ino").alias("ino"), "request",
                pl.col("io_offset").alias("offset"), pl.col("io_size").alias("size"),
                "total_us", pl.col("io_local_delay").alias("local_delay_us"),
                pl.col("io_lat").alias("lat_us"), "n_cs")
    )
