"""The export format's documentation, as data next to the schemas it documents.

``python -m ktrace_decode.pipeline.export_doc`` prints the README section; a
test checks that every exported column is documented and nothing else is.
"""

from __future__ import annotations

import polars as pl

from .export import SCHEMAS

_T = "us (trace clock)"

#: stem -> (what one row is, {column: (unit, meaning)})
DOCS: dict[str, tuple[str, dict[str, tuple[str, str]]]] = {
    "events": ("one row per decoded record, in merged order (time_us, cpu, seq)", {
        "time_us": (_T, "record time: ktime_get() in microseconds since boot"),
        "cpu": ("", "CPU of the record (from the file name traceN)"),
        "seq": ("", "per-CPU sequence number in decode order, 0-based; (cpu, seq) is a key"),
        "record_type": ("", "text, iotimes or unknown (a record type the tool does not know)"),
        "event": ("", "catalogue event (pending, waiting, start, write_error, pages_error, end, "
                      "cs_latency, ...), iotimes, other (text outside the catalogue) or "
                      "unknown"),
        "function": ("", "kernel function prefix of a text record (empty if it has none)"),
        "nodeid": ("", "kernel FUSE nodeid, normalised: the work function prints nodeid - 1 "
                       "and is corrected here; iotimes: ino + 1; empty where that would not "
                       "fit a u64 (a garbled number)"),
        "fh": ("", "FUSE file handle (pending events)"),
        "err": ("", "negative errno printed by the message (write_error, pages_error, "
                    "cs_blacklist, cs_io_error)"),
        "ovfl": ("records", "records dropped on this CPU just before this one, modulo 65536 "
                            "(so: at least this many)"),
        "text": ("", "the message of a text record, function prefix included"),
    }),
    "invalidations": ("one row per invalidation episode of a nodeid, by nodeid then time", {
        "nodeid": ("", "kernel FUSE nodeid"),
        "userspace_id": ("", "nodeid - 1: the number the work function prints and userspace "
                             "uses"),
        "first_seen_us": (_T, "earliest of start_us and the episode's pending/waiting times"),
        "start_us": (_T, "the 'starts' that opened the episode (empty if the episode was "
                         "opened by an error or end: its start was lost or predates the trace)"),
        "end_us": (_T, "the 'ends' (empty: still in progress when the trace ends)"),
        "duration_us": ("us", "end_us - start_us (empty if either is unknown)"),
        "attempts": ("", "'starts' in the episode (1 + retries when the start is known)"),
        "write_errors": ("", "filemap_write_and_wait() failures (each one is retried)"),
        "pages_errors": ("", "invalidate_inode_pages2() failures (each one is retried)"),
        "last_err": ("errno", "err of the episode's last error, negative"),
        "pending_files": ("files", "files linked while invalidating: their reads and writes "
                                   "fail with -EIO"),
        "blocked_opens": ("opens", "opens that waited for the invalidation to end"),
        "max_open_wait_us": ("us", "longest wait of a blocked open: end_us - its time (empty "
                                   "if none or no end)"),
        "start_cpu": ("", "CPU of the opening 'starts'"),
        "end_cpu": ("", "CPU of the 'ends' (a retry can move the work to another CPU)"),
        "status": ("", "complete, in_progress (no end) or no_start (an end without a start)"),
        "lost_overlap": ("", "true if records were dropped on some CPU during the episode: "
                             "its counts may be incomplete"),
    }),
    "nodes": ("one row per nodeid that had an invalidation episode", {
        "nodeid": ("", "kernel FUSE nodeid"),
        "userspace_id": ("", "nodeid - 1"),
        "episodes": ("", "invalidation episodes"),
        "complete": ("", "episodes with a start and an end"),
        "in_progress": ("", "episodes without an end"),
        "no_start": ("", "episodes with an end but no start"),
        "first_seen_us": (_T, "earliest first_seen_us of its episodes"),
        "last_end_us": (_T, "latest end_us of its episodes"),
        "total_duration_us": ("us", "sum of the known durations (empty if none is known)"),
        "max_duration_us": ("us", "longest known duration"),
        "attempts": ("", "sum of attempts"),
        "retries": ("", "starts that did not open their episode (re-runs after an error)"),
        "write_errors": ("", "sum of write_errors"),
        "pages_errors": ("", "sum of pages_errors"),
        "blocked_opens": ("opens", "sum of blocked_opens"),
        "max_open_wait_us": ("us", "longest wait of a blocked open"),
        "poisoned_files": ("files", "sum of pending_files"),
        "lost_overlap": ("", "true if any of its episodes overlaps dropped records"),
    }),
    "iotimes": ("one row per iotimes record, in merged order", {
        "time_us": (_T, "record time (the reply)"),
        "cpu": ("", "CPU"),
        "seq": ("", "per-CPU sequence; joins iotimes_cs and events"),
        "nodeid": ("", "ino + 1 (kernel FUSE nodeid, inferred); empty for ino 2^64 - 1"),
        "ino": ("", "PCS file id as recorded"),
        "request": ("", "read, write, sync, write_sync, write_zero, write_hole, fiemap, "
                        "write_al, or typeN"),
        "type": ("", "chunk-server response type as recorded"),
        "chunk": ("bytes", "offset of the chunk in the file"),
        "offset": ("bytes", "absolute file offset (0 for sync)"),
        "size": ("bytes", "request size (0 for sync)"),
        "start_time_us": (_T, "request creation"),
        "local_delay_us": ("us", "creation to send"),
        "lat_us": ("us", "send to the record time"),
        "total_us": ("us", "time_us - start_time_us (negative if the request was created "
                     "after its record); empty if start_time_us is 2^52 or more, a time the "
                     "trace clock cannot have (a garbled field)"),
        "cses": ("", "entry count as recorded"),
        "chid": ("", "the pad1 field: a map id on newer kernels (inferred)"),
        "n_cs": ("", "chunk-server entries in the record: (pdu_len - 56) / 24"),
    }),
    "iotimes_cs": ("one row per chunk-server entry of an iotimes record", {
        "time_us": (_T, "time of its iotimes record"),
        "cpu": ("", "CPU of its record"),
        "seq": ("", "sequence of its record (cpu, seq joins iotimes)"),
        "nodeid": ("", "ino + 1 of its record"),
        "idx": ("", "0 = the replying server, then the chain"),
        "csid": ("", "chunk-server id"),
        "misc": ("", "raw misc word (flags + timestamp)"),
        "cached": ("", "misc bit 63"),
        "sequential": ("", "misc bit 62"),
        "sync": ("", "misc bit 60"),
        "misc_time": ("", "low 52 bits of misc (a timestamp, unit not documented)"),
        "ts_net_us": ("us", "time in the network"),
        "ts_io_us": ("us", "time in local IO on that chunk server"),
    }),
    "cs": ("IO latency per chunk server and request type, from the iotimes entries", {
        "csid": ("", "chunk-server id"),
        "request": ("", "read, write, sync, ... (the iotimes record's type)"),
        "count": ("entries", "iotimes entries naming this server"),
        "as_replier": ("entries", "of which it was the replying server (idx 0)"),
        **{f"{k}_{q}_us": ("us", f"{q} of {what} ({'maximum' if q == 'max' else 'nearest rank'})")
           for k, what in (("net", "ts_net, time in the network"),
                           ("io", "ts_io, time in local IO on the server"))
           for q in ("p50", "p90", "p99", "max")},
    }),
    "loss": ("one row per place where records are missing, by CPU then time", {
        "cpu": ("", "CPU"),
        "file": ("", "the trace file"),
        "kind": ("", "dropped (the relay buffer was full: the kernel counted them), garbage "
                     "(unreadable bytes skipped, decoding resumed after them) or truncated "
                     "(a record cut by the end of the file)"),
        "after_us": (_T, "time of the last record before the loss (empty: none before it)"),
        "before_us": (_T, "time of the first record after it (empty: none after it)"),
        "records_at_least": ("records", "dropped: at least this many (ovfl is kept modulo "
                                        "65536)"),
        "start_offset": ("bytes", "garbage/truncated: first skipped byte in the file"),
        "end_offset": ("bytes", "garbage/truncated: end of the skipped range (exclusive)"),
        "bytes": ("bytes", "garbage/truncated: bytes skipped"),
    }),
}


def _type(t: pl.DataType) -> str:
    return {pl.UInt8: "u8", pl.UInt16: "u16", pl.UInt32: "u32", pl.UInt64: "u64",
            pl.Int32: "i32", pl.Int64: "i64", pl.String: "string",
            pl.Boolean: "bool (true/false)"}[type(t)]


def markdown() -> str:
    """The README section: every exported file, column by column."""
    out: list[str] = []
    for stem, schema in SCHEMAS.items():
        what, cols = DOCS[stem]
        out += [f"#### `{stem}.csv` — {what}", "",
                "| column | type | unit | meaning |", "|---|---|---|---|"]
        out += [f"| `{c}` | {_type(t)} | {cols[c][0]} | {cols[c][1]} |" for c, t in schema.items()]
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown())
