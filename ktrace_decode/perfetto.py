"""Chrome Trace Event JSON for Perfetto UI and chrome://tracing.

Built from the pipeline's tables (schema.EVENTS, schema.INVALIDATIONS) and the
drop windows, never from bytes.  Layout of the timeline:

- one process per dump (``pid``), named after the dump;
- one track (``tid``) per nodeid that had episodes: each *attempt* of an
  invalidation is a complete ``X`` slice (start -> its error or its end),
  errors / pending files / blocked opens are instant ``i`` events on it;
- the wait of each blocked open is its own ``X`` slice on a "waits" track of
  that nodeid; waits overlap each other, so they are packed greedily onto as
  many tracks as needed — overlapping slices never share a track;
- dropped-record windows are ``X`` slices on a per-CPU "loss" track.

Track ids (``tid``) are small numbers given in order within each dump: 1..N
for the nodeid tracks (by nodeid), then the waits tracks (by nodeid, then
lane), then the loss tracks (by CPU); each is named by ``thread_name``
metadata.  Ids derived from the nodeid (once nodeid, 1_000_000 + cpu and
2_000_000 + nodeid*64 + lane) let nodeid 1000000 share a track with "loss
cpu 0" and went past a u64 for nodeids from 2**58.

Timestamps are the trace's microseconds (the format's unit for ``ts``/``dur``).
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

STATE_EVENTS = ("start", "write_error", "pages_error", "end")


def _meta(name: str, pid: int, tid: int | None, value: str, sort: int | None = None
          ) -> list[dict[str, Any]]:
    ev: dict[str, Any] = {"ph": "M", "name": name, "pid": pid, "ts": 0, "args": {"name": value}}
    if tid is not None:
        ev["tid"] = tid
    out = [ev]
    if sort is not None and tid is not None:
        out.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid, "ts": 0,
                    "args": {"sort_index": sort}})
    return out


def attempts(events: pl.DataFrame) -> pl.DataFrame:
    """One row per attempt: nodeid, start_us, end_us (its error or end), outcome, cpu."""
    state = (
        events.lazy()
        .filter(pl.col("event").is_in(STATE_EVENTS))
        .sort("nodeid", "time_us", "cpu", "seq")
        .with_columns(
            pl.col("time_us").shift(-1).over("nodeid").alias("next_us"),
            pl.col("event").shift(-1).over("nodeid").alias("outcome"),
            pl.col("err").shift(-1).over("nodeid").alias("outcome_err"),
        )
        .filter(pl.col("event") == "start")
        # A start followed by another start lost its outcome (or was cut short).
        .with_columns(pl.when(pl.col("outcome") == "start").then(None)
                      .otherwise(pl.col("outcome")).alias("outcome"))
        .select("nodeid", pl.col("time_us").alias("start_us"), "next_us", "outcome",
                "outcome_err", "cpu")
    )
    return state.collect()


def _pack(intervals: list[tuple[int, int]]) -> list[int]:
    """Greedy interval partitioning: a lane per interval, overlapping ones apart."""
    lanes_end: list[int] = []
    out = []
    for start, end in intervals:
        for i, e in enumerate(lanes_end):
            if e <= start:
                lanes_end[i] = end
                out.append(i)
                break
        else:
            lanes_end.append(end)
            out.append(len(lanes_end) - 1)
    return out


def trace_events(events: pl.DataFrame, invalidations: pl.DataFrame, drops: pl.DataFrame,
                 name: str, pid: int = 1) -> list[dict[str, Any]]:
    """Trace events for one dump.  ``drops`` has cpu, after_us, before_us, at_least."""
    out: list[dict[str, Any]] = _meta("process_name", pid, None, f"ktrace {name}")
    trace_end = int(events["time_us"].max()) if events.height else 0  # type: ignore[arg-type]
    nodeids = sorted(int(n) for n in invalidations["nodeid"].drop_nulls().unique().to_list())
    track = {n: i for i, n in enumerate(nodeids, start=1)}  # nodeid -> tid
    for i, n in enumerate(nodeids):
        out += _meta("thread_name", pid, track[n], f"nodeid {n} (userspace {n - 1})", sort=i)

    for a in attempts(events.filter(pl.col("nodeid").is_in(nodeids))).iter_rows(named=True):
        end = a["next_us"] if a["next_us"] is not None else trace_end
        out.append({"ph": "X", "name": "invalidate", "cat": "invalidate", "pid": pid,
                    "tid": track[a["nodeid"]], "ts": a["start_us"],
                    "dur": max(end - a["start_us"], 0),
                    "args": {"cpu": a["cpu"], "outcome": a["outcome"] or "in_progress",
                             "err": a["outcome_err"]}})

    marks = events.filter(pl.col("nodeid").is_in(nodeids)
                          & pl.col("event").is_in(["write_error", "pages_error", "pending",
                                                   "waiting"]))
    for e in marks.iter_rows(named=True):
        args = {"cpu": e["cpu"]}
        if e["err"] is not None:
            args["err"] = e["err"]
        if e["fh"] is not None:
            args["fh"] = e["fh"]
        out.append({"ph": "i", "s": "t", "name": e["event"], "cat": "invalidate", "pid": pid,
                    "tid": track[e["nodeid"]], "ts": e["time_us"], "args": args})

    waits, next_tid = _waits(events, invalidations, nodeids, trace_end, pid, len(nodeids) + 1)
    out += waits
    out += _losses(drops, pid, next_tid, 2 * len(nodeids))
    return out


def _waits(events: pl.DataFrame, inv: pl.DataFrame, nodeids: list[int], trace_end: int,
           pid: int, first_tid: int) -> tuple[list[dict[str, Any]], int]:
    """Each blocked open: from its `waiting` record to the end of its episode,
    on tracks numbered from ``first_tid``; also the next free tid."""
    waits = (
        events.filter(pl.col("event") == "waiting").select("nodeid", "time_us", "cpu")
        .sort("time_us")
        .join_asof(inv.select("nodeid", "end_us").drop_nulls().sort("end_us"),
                   left_on="time_us", right_on="end_us", by="nodeid", strategy="forward",
                   check_sortedness=False)  # sorted within each nodeid, which is what counts
    )
    out: list[dict[str, Any]] = []
    tid = first_tid
    for k, n in enumerate(nodeids):
        rows = waits.filter(pl.col("nodeid") == n).sort("time_us").rows(named=True)
        spans = [(r["time_us"], r["end_us"] if r["end_us"] is not None else trace_end)
                 for r in rows]
        lanes = _pack(spans)
        lane_tid = {}
        for lane in sorted(set(lanes)):
            lane_tid[lane], tid = tid, tid + 1
            out += _meta("thread_name", pid, lane_tid[lane],
                         f"nodeid {n} blocked opens #{lane + 1}", sort=len(nodeids) + k)
        for r, (t0, t1), lane in zip(rows, spans, lanes, strict=True):
            out.append({"ph": "X", "name": "open blocked", "cat": "open", "pid": pid,
                        "tid": lane_tid[lane], "ts": t0, "dur": t1 - t0,
                        "args": {"cpu": r["cpu"], "ended": r["end_us"] is not None}})
    return out, tid


def _losses(drops: pl.DataFrame, pid: int, first_tid: int, first_sort: int
            ) -> list[dict[str, Any]]:
    """A "loss cpu N" track per CPU with drops (tids from ``first_tid``, below
    every other track): a slice per drop window."""
    out: list[dict[str, Any]] = []
    for k, cpu in enumerate(sorted(drops["cpu"].unique().to_list())):
        tid = first_tid + k
        out += _meta("thread_name", pid, tid, f"loss cpu {cpu}", sort=first_sort + k)
        for d in drops.filter(pl.col("cpu") == cpu).iter_rows(named=True):
            after, before = d["after_us"], d["before_us"]
            args = {"at_least": d["at_least"], "cpu": cpu}
            if after is None:
                t0, t1 = before, before
            else:
                # The CPU's clock can go back across a drop (after > before):
                # the window is still the span between the two records' times.
                t0, t1 = min(after, before), max(after, before)
                if after > before:
                    args["clock_went_back"] = True
            out.append({"ph": "X", "name": f">={d['at_least']} records lost", "cat": "loss",
                        "pid": pid, "tid": tid, "ts": t0, "dur": t1 - t0, "args": args})
    return out


def to_json(traces: list[list[dict[str, Any]]]) -> str:
    """The JSON document for one or more dumps."""
    evs = [e for t in traces for e in t]
    return json.dumps({"traceEvents": evs, "displayTimeUnit": "ms"}, separators=(",", ":"))
