"""A plain-Python, record-by-record statement of the episode rules.

Deliberately written as the rules read (a loop, dictionaries, no Polars), so
that the vectorised pipeline is checked against something obviously right
rather than against itself.  The emitter's ground truth is a second,
independent oracle (tests/pipeline/test_pipeline_truth.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import polars as pl

from ktrace_decode import schema


@dataclass
class Ep:
    nodeid: int
    start_us: int | None = None
    start_cpu: int | None = None
    end_us: int | None = None
    end_cpu: int | None = None
    attempts: int = 0
    write_errors: int = 0
    pages_errors: int = 0
    last_err: int | None = None
    attached: list[tuple[str, int]] = field(default_factory=list)  # (event, t)


def episodes(events: list[dict], windows: list[tuple[int | None, int]]) -> pl.DataFrame:
    """events: dicts with time_us, cpu, seq, event, nodeid, err (any order).
    windows: (after_us or None, before_us)."""
    evs = sorted(events, key=lambda e: (e["time_us"], e["cpu"], e["seq"]))
    per: dict[int, list[Ep]] = {}
    for e in evs:
        if e["event"] not in ("start", "write_error", "pages_error", "end"):
            continue
        eps = per.setdefault(e["nodeid"], [])
        if not eps or eps[-1].end_us is not None:
            eps.append(Ep(e["nodeid"]))
            if e["event"] == "start":
                eps[-1].start_us, eps[-1].start_cpu = e["time_us"], e["cpu"]
        ep = eps[-1]
        if e["event"] == "start":
            ep.attempts += 1
        elif e["event"] == "end":
            ep.end_us, ep.end_cpu = e["time_us"], e["cpu"]
        else:
            ep.last_err = e["err"]
            if e["event"] == "write_error":
                ep.write_errors += 1
            else:
                ep.pages_errors += 1
    for e in evs:
        if e["event"] not in ("pending", "waiting"):
            continue
        eps = per.setdefault(e["nodeid"], [])
        t = e["time_us"]
        target = next((ep for ep in eps if ep.end_us is not None and ep.end_us >= t), None)
        if target is None:
            if eps and eps[-1].end_us is None:
                target = eps[-1]
            else:
                target = Ep(e["nodeid"])
                eps.append(target)
        target.attached.append((e["event"], t))
    rows = []
    for nodeid in sorted(per):
        for ep in per[nodeid]:
            rows.append(_row(ep, windows))
    return pl.DataFrame(rows, schema=schema.INVALIDATIONS, orient="row")


def _row(ep: Ep, windows: list[tuple[int | None, int]]) -> tuple:
    times = [t for _, t in ep.attached]
    seen = [x for x in [ep.start_us, *times] if x is not None]
    first_seen = min(seen) if seen else None
    waits = [t for ev, t in ep.attached if ev == "waiting"]
    max_wait = max(ep.end_us - t for t in waits) if waits and ep.end_us is not None else None
    if ep.end_us is None:
        status = "in_progress"
    elif ep.start_us is None:
        status = "no_start"
    else:
        status = "complete"
    lo = first_seen if first_seen is not None else (
        ep.start_us if ep.start_us is not None else -math.inf)
    hi = ep.end_us if ep.end_us is not None else math.inf
    lost = any((-math.inf if w0 is None else w0) <= hi and w1 >= lo for w0, w1 in windows)
    duration = ep.end_us - ep.start_us if None not in (ep.end_us, ep.start_us) else None
    return (ep.nodeid, ep.nodeid - 1, first_seen, ep.start_us, ep.end_us, duration, ep.attempts,
            ep.write_errors, ep.pages_errors, ep.last_err,
            sum(ev == "pending" for ev, _ in ep.attached), len(waits), max_wait,
            ep.start_cpu, ep.end_cpu, status, lost)
