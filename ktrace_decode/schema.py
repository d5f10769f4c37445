"""Column schemas of every table this tool produces: the contract between stages.

bytes -> RECORDS (+ CS) -> EVENTS -> INVALIDATIONS -> views / exports.

The emitter writes its ground truth with the same schemas, so tests compare
frames directly.  Units: every ``*_us`` column is microseconds of the kernel's
monotonic clock (``ktime_get()``), as written in the record header.
"""

from __future__ import annotations

import polars as pl

#: One row per decoded record, in merged order (time_us, cpu, seq).
RECORDS: dict[str, pl.DataType] = {
    "cpu": pl.UInt16(),  # from the file name traceN
    "seq": pl.UInt32(),  # per-CPU sequence in decode order (0-based)
    "offset": pl.UInt64(),  # byte offset of the header in its file
    "time_us": pl.UInt64(),
    "type": pl.UInt16(),  # 1 text, 2 iotimes, other = unknown (kept raw)
    "ovfl": pl.UInt16(),  # records dropped on this CPU just before (mod 65536)
    "pdu_len": pl.UInt16(),
    "text": pl.String(),  # text records: up to the first NUL, trailing \n stripped
    "io_chunk": pl.UInt64(),  # iotimes header fields (null for other types)
    "io_offset": pl.UInt64(),
    "io_size": pl.UInt64(),
    "io_start_time": pl.UInt64(),
    "io_local_delay": pl.UInt32(),
    "io_lat": pl.UInt32(),
    "io_ino": pl.UInt64(),
    "io_type": pl.UInt16(),
    "io_cses": pl.UInt8(),
    "io_chid": pl.UInt32(),  # the pad1 field; newer kernels store the map id
    "n_cs": pl.UInt16(),  # number of chunk-server entries: (pdu_len - 56) / 24
    "long_text": pl.Boolean(),  # pdu_len > 256: text cut at the first NUL
    "unknown_type": pl.Boolean(),
    "resynced": pl.Boolean(),  # first record after skipped bytes
    "time_backwards": pl.Boolean(),  # earlier than the previous record of its CPU
    "payload": pl.Binary(),  # raw payload of unknown-type records only
}

#: One row per fuse_tr_iotimes_cs entry; (cpu, seq) joins to RECORDS.  Always
#: in (cpu, seq, idx) order: tables.iotimes_cs relies on it.
CS: dict[str, pl.DataType] = {
    "cpu": pl.UInt16(),
    "seq": pl.UInt32(),
    "idx": pl.UInt8(),  # 0 = the replying server, then the chain
    "csid": pl.UInt64(),
    "misc": pl.UInt64(),
    "ts_net": pl.UInt32(),
    "ts_io": pl.UInt32(),
}

#: One row per record, classified through the message catalogue.
EVENTS: dict[str, pl.DataType] = {
    "time_us": pl.UInt64(),
    "cpu": pl.UInt16(),
    "seq": pl.UInt32(),
    "record_type": pl.String(),  # text | iotimes | unknown
    "event": pl.String(),  # catalogue event, "iotimes", "other" or "unknown"
    "function": pl.String(),  # kernel function prefix of text records
    "nodeid": pl.UInt64(),  # normalised to the kernel's FUSE nodeid
    "fh": pl.UInt64(),
    "err": pl.Int32(),
    "ovfl": pl.UInt16(),
    "text": pl.String(),
}

#: One row per invalidation episode of a nodeid (invalidations.csv).
INVALIDATIONS: dict[str, pl.DataType] = {
    "nodeid": pl.UInt64(),  # kernel FUSE nodeid
    "userspace_id": pl.UInt64(),  # nodeid - 1, what the work function prints
    "first_seen_us": pl.UInt64(),
    "start_us": pl.UInt64(),
    "end_us": pl.UInt64(),
    "duration_us": pl.Int64(),
    "attempts": pl.UInt32(),
    "write_errors": pl.UInt32(),
    "pages_errors": pl.UInt32(),
    "last_err": pl.Int32(),
    "pending_files": pl.UInt32(),
    "blocked_opens": pl.UInt32(),
    "max_open_wait_us": pl.Int64(),
    "start_cpu": pl.UInt16(),
    "end_cpu": pl.UInt16(),
    "status": pl.String(),  # complete | in_progress | no_start
    "lost_overlap": pl.Boolean(),
}

STATUSES = ("complete", "in_progress", "no_start")


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """An empty frame with the given schema."""
    return pl.DataFrame(schema=schema)


def conform(df: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Select and cast ``df`` to exactly ``schema`` (column order and types)."""
    return df.select([pl.col(name).cast(dtype) for name, dtype in schema.items()])
