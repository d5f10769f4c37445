"""The numbers of ``ktrace analyze``: one JSON-ready dict, built from the pipeline tables.

The terminal report (:mod:`.report`) is rendered from this same dict, so the
screen and ``--json`` can never disagree.  The dict is validated against
:data:`.analyze_schema.ANALYZE_SCHEMA` in the tests.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from ..decode import Decoded
from ..errors import KtraceError
from ..formats import messages as M
from ..metrics import parse_metrics
from ..scan import TIME_LIMIT

SCHEMA_ID = "ktrace-analyze/1"
#: Same percentile definition as the IO latency tables (iolatency.py).
INTERPOLATION = "nearest"


@dataclass(frozen=True)
class Selection:
    """What ``analyze`` looks at: options of the command line."""

    top: int = 10
    nodeid: int | None = None  # kernel FUSE nodeid
    since_us: int | None = None
    until_us: int | None = None
    boot_time_us: int | None = None  # wall-clock time of monotonic 0, us since the epoch
    clock_source: str = "none"  # none | --boot-time | --wall-clock


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The last UTC time wall() is sure to render: a day short of datetime.max,
#: so that astimezone() can add any UTC offset (all are below 24 h).
_LAST_WALL = datetime(9999, 12, 31, tzinfo=UTC)
#: The latest boot time (us since 1970) for which every trace time (all are
#: below scan.TIME_LIMIT, 2**52 us, ~142 years) is a date wall() can render:
#: ~248,898,614,772 s, in the year 9857.
MAX_BOOT_TIME_US = (_LAST_WALL - _EPOCH) // timedelta(microseconds=1) - TIME_LIMIT


def wall(sel: Selection, us: int | None) -> str | None:
    """ISO 8601 local time (with its UTC offset) of a trace time, if a boot time
    is known; None also when the date is out of datetime's range (years 1 to
    9999: a boot time the command line refuses, see :data:`MAX_BOOT_TIME_US`)."""
    if us is None or sel.boot_time_us is None:
        return None
    try:
        t = _EPOCH + timedelta(microseconds=sel.boot_time_us + us)
        return t.astimezone().isoformat(timespec="microseconds")
    except (OverflowError, ValueError, OSError):  # past year 9999 or before year 1
        return None


def errno_name(err: int | None) -> str | None:
    """"EAGAIN" for -11 (the kernel prints negative errnos)."""
    if err is None:
        return None
    return errno.errorcode.get(-err) if err < 0 else None


def _overlaps(sel: Selection) -> pl.Expr:
    """Episodes whose [first seen or start, end] meets [since, until] (open ends unbounded)."""
    cond = pl.lit(True)
    lo = pl.coalesce("first_seen_us", "start_us")
    if sel.until_us is not None:
        cond = cond & (lo.is_null() | (lo <= sel.until_us))
    if sel.since_us is not None:
        cond = cond & (pl.col("end_us").is_null() | (pl.col("end_us") >= sel.since_us))
    if sel.nodeid is not None:
        cond = cond & (pl.col("nodeid") == sel.nodeid)
    return cond


def _in_window(sel: Selection) -> pl.Expr:
    cond = pl.lit(True)
    if sel.since_us is not None:
        cond = cond & (pl.col("time_us") >= sel.since_us)
    if sel.until_us is not None:
        cond = cond & (pl.col("time_us") <= sel.until_us)
    if sel.nodeid is not None:
        cond = cond & (pl.col("nodeid") == sel.nodeid)
    return cond


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def trace_section(decoded: Decoded, events: pl.DataFrame, sel: Selection,
                  kinds: dict[str, int]) -> dict[str, Any]:
    """``kinds`` is records per record_type (:func:`.events.record_type_counts`
    of the records, or a stream's running totals of it): ``events`` may hold
    only the patch's events, which is all the rest needs."""
    span = decoded.span_us
    patch = int(events["event"].is_in(M.PATCH_EVENTS).sum())
    windows = sum(c.drop_events for c in decoded.cpus)
    return {
        "path": str(decoded.path),
        "first_us": span[0] if span else None,
        "last_us": span[1] if span else None,
        "span_us": span[1] - span[0] if span else None,
        "first_wall": wall(sel, span[0] if span else None),
        "last_wall": wall(sel, span[1] if span else None),
        "cpus": len(decoded.cpus),
        "records": decoded.n_records,
        "text_records": int(kinds.get("text", 0)),
        "iotimes_records": int(kinds.get("iotimes", 0)),
        "unknown_records": int(kinds.get("unknown", 0)),
        "invalidate_records": patch,
        "dropped_at_least": decoded.dropped_at_least,
        "drop_windows": windows,
        "skipped_bytes": decoded.skipped_bytes,
        "resyncs": decoded.resyncs,
        "long_text_records": sum(c.long_text for c in decoded.cpus),
        "per_cpu": [
            {"cpu": c.cpu, "file": c.source, "layout": c.layout, "records": c.records,
             "first_us": c.first_time_us, "last_us": c.last_time_us,
             "dropped_at_least": c.dropped_at_least, "drop_windows": c.drop_events,
             "skipped_bytes": c.skipped_bytes, "resyncs": c.resyncs}
            for c in decoded.cpus
        ],
    }


def _episode(row: dict[str, Any], sel: Selection, trace_last: int | None) -> dict[str, Any]:
    out = {k: row[k] for k in (
        "nodeid", "userspace_id", "first_seen_us", "start_us", "end_us", "duration_us",
        "attempts", "write_errors", "pages_errors", "last_err", "pending_files",
        "blocked_opens", "max_open_wait_us", "start_cpu", "end_cpu", "status", "lost_overlap")}
    out["last_err_name"] = errno_name(row["last_err"])
    since = row["first_seen_us"] if row["first_seen_us"] is not None else row["start_us"]
    # An open episode has lasted at least until the last record of the trace.
    out["open_for_at_least_us"] = (
        trace_last - since if row["end_us"] is None and None not in (since, trace_last) else None)
    out["start_wall"] = wall(sel, row["start_us"])
    out["end_wall"] = wall(sel, row["end_us"])
    return out


def invalidation_sections(inv: pl.DataFrame, events: pl.DataFrame, sel: Selection,
                          trace_last: int | None) -> dict[str, Any]:
    # One collect_all: Polars runs the queries side by side, not one eager
    # step after another (a 10M-record export's 600k episodes and 2.3M patch
    # events: 29-57 -> 21-26 ms alone, ~10 ms less of the export's end).
    eps = inv.lazy().filter(_overlaps(sel))
    ev = events.lazy().filter(_in_window(sel))
    dur = pl.col("duration_us").drop_nulls()
    retries = pl.col("attempts").cast(pl.Int64) - pl.col("start_us").is_not_null().cast(pl.Int64)
    pend = ev.filter(pl.col("event") == "pending")
    queries = [
        eps.select(
            pl.len().alias("episodes"), pl.col("nodeid").n_unique().alias("nodeids"),
            pl.col("lost_overlap").sum().alias("lost_overlap"),
            dur.len().alias("count"),
            *(dur.quantile(p, interpolation=INTERPOLATION).alias(f"p{round(p * 100)}")
              for p in (0.5, 0.9, 0.99)),
            dur.max().alias("max"), dur.sum().alias("total"),
            retries.sum().alias("retries"), (retries > 0).sum().alias("with_retries"),
            pl.col("attempts").max().alias("max_attempts"),
            pl.col("blocked_opens").sum().alias("blocked"),
            (pl.col("blocked_opens") > 0).sum().alias("blocked_episodes"),
            pl.col("pending_files").sum().alias("pending")),
        eps.group_by("status").len(),
        (eps.filter(pl.col("duration_us").is_not_null())
         .sort("duration_us", "nodeid", "start_us", descending=[True, False, False])
         .head(sel.top)),
        (eps.filter(pl.col("status") == "in_progress")
         .sort(pl.coalesce("first_seen_us", "start_us"), "nodeid", nulls_last=True)),
        (ev.filter(pl.col("event").is_in(("write_error", "pages_error")))
         .group_by("event", "err").len()
         # by name, also when the caller keeps events as categories (streamed.py)
         .sort("len", pl.col("event").cast(pl.String), "err",
               descending=[True, False, False])),
        (eps.filter(pl.col("max_open_wait_us").is_not_null())
         .sort("max_open_wait_us", "nodeid", descending=[True, False]).head(1)),
        pend.select(pl.struct("nodeid", "fh").n_unique().alias("distinct_files"),
                    pl.col("nodeid").n_unique().alias("nodeids")),
    ]
    if sel.nodeid is not None:
        queries.append(eps)
    stats_df, status_df, slowest, stuck, errs, waits, pend_df, *picked = pl.collect_all(queries)
    stats, pending = stats_df.row(0, named=True), pend_df.row(0, named=True)
    status = dict(status_df.iter_rows())
    out: dict[str, Any] = {
        "invalidations": {
            "episodes": stats["episodes"],
            "nodeids": stats["nodeids"],
            "complete": int(status.get("complete", 0)),
            "in_progress": int(status.get("in_progress", 0)),
            "no_start": int(status.get("no_start", 0)),
            "lost_overlap": int(stats["lost_overlap"]),
            "duration_us": {
                "count": stats["count"],
                **{q: _int(stats[q]) for q in ("p50", "p90", "p99")},
                "max": _int(stats["max"]), "total": int(stats["total"]),
            },
        },
        "slowest": [_episode(r, sel, trace_last) for r in slowest.iter_rows(named=True)],
        "in_progress": [_episode(r, sel, trace_last) for r in stuck.iter_rows(named=True)],
        "retries": {
            "retries": int(stats["retries"]),
            "episodes_with_retries": int(stats["with_retries"]),
            "max_attempts": _int(stats["max_attempts"]),
        },
        "errors": [
            {"kind": "write" if e == "write_error" else "pages", "err": _int(err),
             "name": errno_name(_int(err)), "count": int(n)}
            for e, err, n in errs.iter_rows()
        ],
        "blocked_opens": {
            "count": int(stats["blocked"]),
            "episodes": int(stats["blocked_episodes"]),
            "worst_wait_us": _int(waits["max_open_wait_us"][0]) if waits.height else None,
            "worst_nodeid": _int(waits["nodeid"][0]) if waits.height else None,
        },
        "poisoned_files": {
            "count": int(stats["pending"]),
            "distinct_files": pending["distinct_files"],
            "nodeids": pending["nodeids"],
        },
    }
    if picked:
        out["episodes"] = [_episode(r, sel, trace_last) for r in picked[0].iter_rows(named=True)]
    return out


def warnings(decoded: Decoded, trace: dict[str, Any], inv: dict[str, Any]) -> list[str]:
    """What the reader must know before trusting the numbers."""
    out: list[str] = []
    if trace["invalidate_records"] == 0:
        out.append(
            "no invalidate_files records at all in this trace: either ktrace ran below "
            "LOG_TRACE (the patch traces only at that level) or the kernel lacks the VZ10 "
            "invalidate_files patch; the invalidation numbers below are empty, not zero")
    if trace["dropped_at_least"]:
        cpus = sorted(c.cpu for c in decoded.cpus if c.drop_events)
        out.append(
            f"at least {trace['dropped_at_least']:,} records were dropped (relay buffer full) "
            f"in {trace['drop_windows']} window(s) on CPU {', '.join(map(str, cpus))}; "
            f"{inv['invalidations']['lost_overlap']} episode(s) overlap a drop window and may "
            "miss events (lost_overlap)")
    if trace["skipped_bytes"]:
        out.append(
            f"{trace['skipped_bytes']:,} unreadable bytes skipped ({trace['resyncs']} resync(s)); "
            "records in them are lost")
    if trace["unknown_records"]:
        out.append(f"{trace['unknown_records']} record(s) of unknown type kept raw")
    if trace["long_text_records"]:
        out.append(f"{trace['long_text_records']} message(s) of 256+ characters cut at their "
                   "NUL (kernel bug: the bytes after it are unrelated memory)")
    damage = _metrics_damage(decoded)
    if damage:
        out.append(damage)
    return out


def _metrics_damage(decoded: Decoded) -> str | None:
    """The metrics file's totals past a u64 (:meth:`..metrics.Metrics.damage`).

    Read here (4 KB, again) rather than from the document's metrics section:
    that section is added after the summary, and this warning belongs with the
    others, on the report's first screen and on stderr."""
    if decoded.prometheus is None:
        return None
    try:
        m = parse_metrics(decoded.prometheus)
    except KtraceError:  # an unreadable file is the metrics section's own error line
        return None
    return m.damage()


def summarize(decoded: Decoded, events: pl.DataFrame, invalidations: pl.DataFrame,
              sel: Selection, kinds: dict[str, int]) -> dict[str, Any]:
    """The whole ``analyze`` document (see :func:`trace_section` for ``kinds``)."""
    trace = trace_section(decoded, events, sel, kinds)
    inv = invalidation_sections(invalidations, events, sel, trace["last_us"])
    warn = warnings(decoded, trace, inv)
    if sel.nodeid is not None and inv["invalidations"]["episodes"] == 0:
        # The work function prints nodeid - 1, and so does userspace: an easy mix-up.
        near = invalidations.filter(pl.col("nodeid") == sel.nodeid + 1).height
        hint = (f"; nodeid {sel.nodeid + 1} has {near} (--nodeid takes the kernel nodeid, "
                f"userspace id + 1)" if near else "")
        warn.append(f"no invalidation episode of nodeid {sel.nodeid} in the selection{hint}")
    return {
        "schema": SCHEMA_ID,
        "selection": {"nodeid": sel.nodeid, "since_us": sel.since_us, "until_us": sel.until_us,
                      "top": sel.top},
        "clock": {"source": sel.clock_source, "boot_time_us": sel.boot_time_us},
        "trace": trace,
        **inv,
        "warnings": warn,
    }
