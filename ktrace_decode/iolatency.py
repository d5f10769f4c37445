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

from typing import Any

import numpy as np
import polars as pl

from .formats import layouts as L

QUANTILES = (0.5, 0.9, 0.99)

_REQ = pl.col("io_type").replace_strict(
    dict(L.IOTIMES_REQUEST_TYPES), default=pl.format("type{}", pl.col("io_type")),
    return_dtype=pl.String).alias("request")


def request_names(codes: np.ndarray) -> list[str]:
    """The request name of each iotimes request type number (as ``_REQ``)."""
    return pl.DataFrame({"io_type": codes}).select(_REQ).to_series().to_list()


def _pct_names(prefix: str) -> list[str]:
    """Column names of the QUANTILES of ``prefix``, then of its maximum."""
    return [*(f"{prefix}_p{round(q * 100)}_us" for q in QUANTILES), f"{prefix}_max_us"]


def _pcts(col: str, prefix: str) -> list[pl.Expr]:
    *pct, top = _pct_names(prefix)
    out = [pl.col(col).quantile(q, interpolation="nearest").cast(pl.UInt64).alias(name)
           for name, q in zip(pct, QUANTILES, strict=True)]
    return [*out, pl.col(col).max().cast(pl.UInt64).alias(top)]


def iotimes(records: pl.LazyFrame) -> pl.LazyFrame:
    """The iotimes records with their request name and total latency."""
    return (
        records.filter(pl.col("type") == L.TYPE_IOTIMES)
        .with_columns(_REQ, (pl.col("time_us").cast(pl.Int64)
                             - pl.col("io_start_time").cast(pl.Int64)).alias("total_us"))
    )


def cs_entries(records: pl.LazyFrame, cs: pl.LazyFrame) -> pl.LazyFrame:
    """The chunk-server entries with their record's ``io_type``: just what
    :func:`per_cs_of` needs (a streamed export keeps only these columns).
    The request *name* is a function of ``io_type`` (one name per type), so
    it is put on the per-server rows only."""
    types = iotimes(records).select("cpu", "seq", "io_type")
    return (cs.join(types, on=["cpu", "seq"], how="inner")
            .select("csid", "io_type", "idx", "ts_net", "ts_io"))


def per_cs(records: pl.LazyFrame, cs: pl.LazyFrame) -> pl.LazyFrame:
    """One row per (csid, request): count and ts_net / ts_io percentiles in us."""
    return per_cs_of(cs_entries(records, cs).collect()).lazy()


#: per_cs_of's columns (tables.CS_LATENCY documents them).
PER_CS: dict[str, pl.DataType] = {
    "csid": pl.UInt64(), "request": pl.String(), "count": pl.UInt64(),
    "as_replier": pl.UInt64(),
    **{name: pl.UInt64() for k in ("net", "io") for name in _pct_names(k)},
}


def _nearest(n: np.ndarray, q: float) -> np.ndarray:
    """Polars' ``quantile(q, interpolation="nearest")`` position in a sorted group
    of ``n``: round((n - 1) * q), halves away from zero (Rust's f64::round)."""
    x = (n - 1).astype(np.float64) * q
    lo = np.floor(x)
    return (lo + (x - lo >= 0.5)).astype(np.int64)


def per_cs_of(entries: pl.DataFrame) -> pl.DataFrame:
    """:func:`per_cs` from :func:`cs_entries` (of one batch or of many, stacked).

    Sorted numpy arrays instead of a Polars group_by: the same numbers (a
    test checks against Polars' quantiles), with the temporary memory handed
    straight back, which matters at a streamed export's peak.
    """
    if entries.is_empty():
        return pl.DataFrame(schema=PER_CS)
    csid = entries["csid"].to_numpy()
    typ = entries["io_type"].to_numpy()
    order = np.lexsort((typ, csid))
    c, t = csid[order], typ[order]
    starts = np.flatnonzero(np.concatenate(([True], (c[1:] != c[:-1]) | (t[1:] != t[:-1]))))
    n = np.diff(np.append(starts, len(c)))
    out: dict[str, Any] = {
        "csid": c[starts], "io_type": t[starts], "count": n.astype(np.uint64),
        "as_replier": np.add.reduceat(entries["idx"].to_numpy()[order] == 0, starts)
        .astype(np.uint64),
    }
    # Each entry's group number, to rank values within groups with one sort
    # of (group << 32 | value) instead of a three-key lexsort per column.
    group = np.empty(len(order), np.uint64)
    group[order] = np.repeat(np.arange(len(starts), dtype=np.uint64), n)
    del order, c, t
    group <<= np.uint64(32)
    for col, prefix in (("ts_net", "net"), ("ts_io", "io")):
        v = entries[col].to_numpy().astype(np.uint64)  # schema.CS: UInt32, never null
        ranked = np.sort(group | v) & np.uint64(0xFFFFFFFF)  # each group's values, ascending
        *pct, top = _pct_names(prefix)
        for name, q in zip(pct, QUANTILES, strict=True):
            out[name] = ranked[starts + _nearest(n, q)]
        out[top] = ranked[starts + n - 1]
        del ranked
    return (pl.DataFrame(out).with_columns(_REQ).sort("csid", "request")
            .select([pl.col(k).cast(t) for k, t in PER_CS.items()]))


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
