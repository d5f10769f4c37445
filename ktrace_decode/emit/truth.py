"""Ground truth of an emitted dump, in the schemas of ``ktrace_decode.schema``.

``records``/``cs``/``events`` come from what the model *wrote* (never by parsing
its own bytes).  ``invalidations`` applies the episode rules (README,
"Invalidation episodes") to the surviving events with a deliberately plain
Python loop: it is the independent oracle for the vectorised Polars pipeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from .. import schema
from ..formats import layouts as L
from .relay import Written

STATE = ("start", "write_error", "pages_error", "end")


def record_rows(cpu: int, placed: list[tuple[int, Written]]) -> tuple[list[dict], list[dict]]:
    """Rows of schema.RECORDS and schema.CS for one CPU's surviving records, in seq order."""
    rows: list[dict[str, Any]] = []
    cs_rows: list[dict[str, Any]] = []
    prev: int | None = None
    for seq, (off, w) in enumerate(placed):
        m = w.meta
        typ = L.TYPE_TEXT if m["record_type"] == "text" else L.TYPE_IOTIMES
        pdu = len(w.data) - L.HEADER_SIZE
        row: dict[str, Any] = dict.fromkeys(schema.RECORDS)
        row.update(cpu=cpu, seq=seq, offset=off, time_us=w.time, type=typ, ovfl=w.ovfl,
                   pdu_len=pdu, long_text=bool(m.get("long_text", False)), unknown_type=False,
                   resynced=False, time_backwards=prev is not None and w.time < prev)
        prev = w.time
        if typ == L.TYPE_TEXT:
            row["text"] = m["text"]
        else:
            hdr = L.IotimesHeader.parse(w.data[L.HEADER_SIZE:L.HEADER_SIZE + 56])
            for k in ("chunk", "offset", "size", "start_time", "local_delay", "lat", "ino",
                      "type", "cses"):
                row["io_" + k] = hdr[k]
            row["io_chid"] = hdr.pad1
            row["n_cs"] = len(m["cs"])
            for i, e in enumerate(m["cs"]):
                cs_rows.append(dict(cpu=cpu, seq=seq, idx=i, **e))
        rows.append(row)
    return rows, cs_rows


def event_rows(records: list[dict], metas: dict[tuple[int, int], dict]) -> list[dict]:
    """schema.EVENTS rows in merged order, from the model's knowledge of each record."""
    out = []
    for r in sorted(records, key=lambda r: (r["time_us"], r["cpu"], r["seq"])):
        m = metas[(r["cpu"], r["seq"])]
        out.append(dict(time_us=r["time_us"], cpu=r["cpu"], seq=r["seq"],
                        record_type=m["record_type"], event=m["event"],
                        function=m.get("function"), nodeid=m.get("nodeid"), fh=m.get("fh"),
                        err=m.get("err"), ovfl=r["ovfl"], text=r["text"]))
    return out


@dataclass
class _Ep:
    nodeid: int
    start_us: int | None = None
    start_cpu: int | None = None
    end_us: int | None = None
    end_cpu: int | None = None
    attempts: int = 0
    write_errors: int = 0
    pages_errors: int = 0
    last_err: int | None = None
    pending: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)


def observable_episodes(events: list[dict], records: list[dict]) -> list[dict]:
    """The episode rules, applied to surviving events (one plain loop per rule)."""
    per_node: dict[int, list[_Ep]] = {}
    open_ep: dict[int, _Ep] = {}
    # Rule 1: state events open, count and close episodes.
    for e in events:
        if e["event"] not in STATE:
            continue
        n = e["nodeid"]
        ep = open_ep.get(n)
        if ep is None:
            ep = _Ep(n)
            per_node.setdefault(n, []).append(ep)
            open_ep[n] = ep
        if e["event"] == "start":
            ep.attempts += 1
            if ep.attempts == 1 and ep.start_us is None and ep.write_errors + ep.pages_errors == 0:
                ep.start_us, ep.start_cpu = e["time_us"], e["cpu"]
        elif e["event"] == "write_error":
            ep.write_errors += 1
            ep.last_err = e["err"]
        elif e["event"] == "pages_error":
            ep.pages_errors += 1
            ep.last_err = e["err"]
        else:
            ep.end_us, ep.end_cpu = e["time_us"], e["cpu"]
            del open_ep[n]
    # Rule 2: pending / waiting go to the earliest episode ending at or after them,
    # else to the still-open last one, else to a new open episode.
    for e in events:
        if e["event"] not in ("pending", "waiting"):
            continue
        n = e["nodeid"]
        eps = per_node.setdefault(n, [])
        target = next((ep for ep in eps if ep.end_us is not None and ep.end_us >= e["time_us"]),
                      None)
        if target is None:
            if eps and eps[-1].end_us is None:
                target = eps[-1]
            else:
                target = _Ep(n)
                eps.append(target)
        (target.pending if e["event"] == "pending" else target.waiting).append(e["time_us"])
    windows = drop_windows(records)
    rows = []
    for n in sorted(per_node):
        for ep in per_node[n]:
            seen = [t for t in [ep.start_us, *ep.pending, *ep.waiting] if t is not None]
            first = min(seen) if seen else None
            lo = first if first is not None else (ep.start_us if ep.start_us is not None
                                                  else -math.inf)
            hi = ep.end_us if ep.end_us is not None else math.inf
            rows.append(dict(
                nodeid=n, userspace_id=n - 1, first_seen_us=first, start_us=ep.start_us,
                end_us=ep.end_us,
                duration_us=(ep.end_us - ep.start_us if ep.end_us is not None
                             and ep.start_us is not None else None),
                attempts=ep.attempts, write_errors=ep.write_errors,
                pages_errors=ep.pages_errors, last_err=ep.last_err,
                pending_files=len(ep.pending), blocked_opens=len(ep.waiting),
                max_open_wait_us=(max(ep.end_us - t for t in ep.waiting)
                                  if ep.waiting and ep.end_us is not None else None),
                start_cpu=ep.start_cpu, end_cpu=ep.end_cpu,
                status=("in_progress" if ep.end_us is None else
                        "no_start" if ep.start_us is None else "complete"),
                lost_overlap=any(w0 <= hi and w1 >= lo for w0, w1 in windows),
            ))
    return rows


def drop_windows(records: list[dict]) -> list[tuple[float, int]]:
    """(previous record time or -inf, record time) for every record with ovfl > 0."""
    out = []
    by_cpu: dict[int, list[dict]] = {}
    for r in records:
        by_cpu.setdefault(r["cpu"], []).append(r)
    for rs in by_cpu.values():
        rs.sort(key=lambda r: r["seq"])
        for i, r in enumerate(rs):
            if r["ovfl"]:
                out.append((rs[i - 1]["time_us"] if i else -math.inf, r["time_us"]))
    return out


def frame(rows: list[dict], sch: dict[str, pl.DataType]) -> pl.DataFrame:
    """Rows as a frame of exactly the schema (empty frames keep their types)."""
    return pl.DataFrame(rows, schema=sch) if rows else schema.empty(sch)
