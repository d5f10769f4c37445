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

from functools import cache
from typing import Any

import numpy as np
import polars as pl

from .formats import layouts as L
from .scan import TIME_LIMIT

QUANTILES = (0.5, 0.9, 0.99)

_REQ = pl.col("io_type").replace_strict(
    dict(L.IOTIMES_REQUEST_TYPES), default=pl.format("type{}", pl.col("io_type")),
    return_dtype=pl.String).alias("request")


@cache
def request_name(code: int) -> str:
    """The request name of an iotimes request type number (as ``_REQ``).

    Cached: a streamed export names each batch's few type numbers, and one
    Polars evaluation per batch cost more than the counting it labels."""
    return pl.DataFrame({"io_type": [code]}, schema={"io_type": pl.UInt16}).select(_REQ).item()


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
        # A creation time the trace clock cannot have (2**52 us or more,
        # ~142 years: scan.TIME_LIMIT, the scan's test of a record time) is a
        # garbled field: no total, rather than one of minus billions of years
        # (or a failed cast above 2**63).  Both times are below 2**52 then,
        # so the difference cannot overflow.
        .with_columns(_REQ, pl.when(pl.col("io_start_time") < TIME_LIMIT)
                      .then(pl.col("time_us").cast(pl.Int64)
                            - pl.col("io_start_time").cast(pl.Int64))
                      .alias("total_us"))
    )


def record_key() -> pl.Expr:
    """A record's (cpu, seq) as one UInt64 (cpu * 2**32 + seq): the key that
    ties a chunk-server entry to its record.  Polars encodes a key of several
    columns into byte rows before it joins or sorts on it; one integer column
    it does not."""
    return pl.col("cpu").cast(pl.UInt64) * (1 << 32) + pl.col("seq").cast(pl.UInt64)


def cs_with_record(records: pl.LazyFrame, cs: pl.LazyFrame,
                   *columns: str | pl.Expr) -> pl.LazyFrame:
    """The chunk-server entries with ``columns`` of their iotimes record, and
    the record's key (:func:`record_key`) as ``__rec``, in the entries' order."""
    key = record_key()
    recs = iotimes(records).select(key.alias("__rec"), *columns)
    return cs.with_columns(key.alias("__rec")).join(recs, on="__rec", how="inner",
                                                    maintain_order="left")


def cs_entries(records: pl.LazyFrame, cs: pl.LazyFrame) -> pl.LazyFrame:
    """The chunk-server entries with their record's ``io_type``: just what
    :func:`per_cs_of` needs (a streamed export keeps only these columns).
    The request *name* is a function of ``io_type`` (one name per type), so
    it is put on the per-server rows only."""
    return cs_entries_of(cs_with_record(records, cs, "io_type"))


def cs_entries_of(joined: pl.LazyFrame) -> pl.LazyFrame:
    """:func:`cs_entries` from the entries already joined with (at least) their
    record's ``io_type`` (:func:`cs_with_record`)."""
    return joined.select("csid", "io_type", "idx", "ts_net", "ts_io")


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

    The same numbers as Polars' ``quantile(interpolation="nearest")`` (a test
    checks), computed in numpy with little temporary memory, which matters
    at a streamed export's peak.  The groups come from :func:`_groups`;
    each group's order statistics from one ``np.partition`` of its values,
    linear where sorting every value was not (a sort of 3M entries per
    column plus a two-key lexsort took 0.7 s of a 10M-record export's end,
    this takes 0.26 s).  The loop is per (csid, request), a few hundred to
    a few thousand groups in a cluster, never per entry.
    """
    if entries.is_empty():
        return pl.DataFrame(schema=PER_CS)
    rows, n, csid, io_type = _groups(entries)
    starts = np.concatenate(([0], np.cumsum(n)[:-1]))
    out: dict[str, Any] = {
        "csid": csid, "io_type": io_type,
        "count": n.astype(np.uint64),
        "as_replier": np.add.reduceat(entries["idx"].to_numpy()[rows] == 0, starts)
        .astype(np.uint64),
    }
    # Per group: the ranks of the QUANTILES, then of the maximum.
    ranks = np.stack([*(_nearest(n, q) for q in QUANTILES), n - 1], axis=1).tolist()
    for col, prefix in (("ts_net", "net"), ("ts_io", "io")):
        values = entries[col].to_numpy()[rows]  # a copy, partitioned in place
        picked = np.empty((len(n), len(QUANTILES) + 1), values.dtype)
        for g, (s, m, k) in enumerate(zip(starts.tolist(), n.tolist(), ranks, strict=True)):
            seg = values[s : s + m]
            seg.partition(sorted(set(k)))
            picked[g] = seg[k]
        for name, column in zip(_pct_names(prefix), picked.T, strict=True):
            out[name] = column
    return (pl.DataFrame(out).with_columns(_REQ).sort("csid", "request")
            .select([pl.col(k).cast(t) for k, t in PER_CS.items()]))


def _groups(entries: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The (csid, io_type) groups of ``entries``: every group's row numbers,
    one group after another; each group's size, csid and io_type.

    A cluster's chunk servers have nearby ids and there are a few request
    types, so (csid, io_type) nearly always numbers into 16 bits: numpy's
    stable sort of such keys is a radix sort (15 ms for 3M entries), where
    Polars' group_by took 50 ms and ~210 MB of memory at a streamed export's
    peak.  Wider keys take the group_by.
    """
    csid, io_type = entries["csid"].to_numpy(), entries["io_type"].to_numpy()
    lo, width = int(csid.min()), int(io_type.max()) + 1
    if (int(csid.max()) - lo + 1) * width <= 1 << 16:
        key = ((csid - np.uint64(lo)) * np.uint64(width) + io_type).astype(np.uint16)
        rows = np.argsort(key, kind="stable")
        ordered = key[rows]
        starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
        n = np.diff(np.append(starts, len(rows)))
        first = ordered[starts].astype(np.uint64)
        return (rows, n, first // np.uint64(width) + np.uint64(lo),
                (first % np.uint64(width)).astype(np.uint16))
    groups = (entries.select("csid", "io_type").with_row_index("__row")
              .group_by("csid", "io_type").agg("__row"))
    return (groups["__row"].explode().to_numpy().astype(np.intp),
            groups["__row"].list.len().to_numpy().astype(np.int64),
            groups["csid"].to_numpy(), groups["io_type"].to_numpy())


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
        .filter(pl.col("total_us").is_not_null())  # no total: not among the slowest
        .sort("total_us", "time_us", descending=[True, False])
        .head(n)
        .select("time_us", "cpu", pl.col("io_ino").alias("ino"), "request",
                pl.col("io_offset").alias("offset"), pl.col("io_size").alias("size"),
                "total_us", pl.col("io_local_delay").alias("local_delay_us"),
                pl.col("io_lat").alias("lat_us"), "n_cs")
    )
