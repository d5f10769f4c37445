"""The storage underneath: IO latency per chunk server, and the prometheus metrics file.

Answers "is it the invalidation or the storage?" in ``ktrace analyze``, and
cross-checks the trace against the kernel's own counters: IOs the metrics
counted but the trace lacks were dropped (ovfl) or never traced.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from ..decode import Decoded
from ..errors import KtraceError
from ..iolatency import request_name
from ..metrics import parse_metrics

#: iotimes request -> the metrics op counting the same IOs (newer layouts, then v1).
_OP = {"read": "cs_read", "write": "cs_write", "sync": "cs_sync", "write_hole": "cs_write_hole",
       "write_zero": "cs_write_zero", "fiemap": "cs_fiemap"}
_OP_V1 = {"read": "read", "write": "write", "sync": "fsync"}


def slowest_io(iotimes: pl.DataFrame, top: int) -> pl.DataFrame:
    """The ``top`` IOs with the largest total latency (ties: earliest first, then
    merged order), in the columns the report shows.  Exact over batches too:
    the slowest of the batches' slowest.  An IO without a total (a garbled
    creation time) is never among them: its latency is unknown, not large."""
    total = iotimes["total_us"]
    if total.null_count():
        iotimes = iotimes.filter(total.is_not_null())
        total = iotimes["total_us"]
    if top > 0 and iotimes.height > top:
        # Only rows at least as slow as the top-th can make the cut: sort
        # those, not every row (a streamed export calls this per batch).
        values = total.to_numpy()
        cut = np.partition(values, values.size - top)[values.size - top]
        iotimes = iotimes.filter(pl.Series(values >= cut))
    return (iotimes.sort("total_us", "time_us", descending=[True, False], maintain_order=True)
            .head(top)
            .select("time_us", "cpu", "nodeid", "request", "size", "total_us", "lat_us"))


def io_counts(iotimes: pl.DataFrame) -> dict[str, int]:
    """iotimes records per request name.

    Counted per request type number, then named: a group_by on the name
    strings cost more than the rest of a streamed export's batch bookkeeping.
    """
    return io_counts_of(iotimes["type"].to_numpy())


def io_counts_of(types: np.ndarray) -> dict[str, int]:
    """:func:`io_counts` of the request type numbers ``types``."""
    codes, counts = np.unique(types, return_counts=True)
    out: dict[str, int] = {}
    for code, n in zip(codes.tolist(), counts.tolist(), strict=True):
        name = request_name(code)
        out[name] = out.get(name, 0) + n
    return out


def io_section(cs: pl.DataFrame, n_iotimes: int, slowest: pl.DataFrame,
               top: int) -> dict[str, Any]:
    """Per chunk server (busiest first) and the slowest IOs (:func:`slowest_io`)."""
    per_cs = cs.sort("count", "csid", descending=[True, False]).head(top * 2).to_dicts()
    return {"iotimes_records": n_iotimes, "per_cs": per_cs,
            "slowest_io": slowest_io(slowest, top).to_dicts()}


def metrics_section(decoded: Decoded, traced: dict[str, int]) -> dict[str, Any] | None:
    """The metrics file decoded, and its op counts against the trace's
    (``traced``: :func:`io_counts`); None if there is no metrics file."""
    if decoded.prometheus is None:
        return None
    try:
        m = parse_metrics(decoded.prometheus, f"{decoded.path}/prometheus")
    except KtraceError as e:
        return {"layout": None, "error": str(e), "ops": [], "cross_check": []}
    mapping = _OP_V1 if m.layout.startswith("v1") else _OP
    check = []
    for req, op in mapping.items():
        o = m.op(op)
        if o is None or (not o.count and not traced.get(req)):
            continue
        n = int(traced.get(req, 0))
        k = o.known_count  # None: past a u64, a damaged file (Metrics.damage)
        # Both ways, never negative: IOs the kernel counted that the trace
        # lacks (dropped or not traced), and IOs traced after the kernel's
        # count was taken (the metrics file read before the trace ended).
        check.append({"op": op, "request": req, "metrics_count": k, "trace_count": n,
                      "missing_from_trace": None if k is None else max(k - n, 0),
                      "extra_in_trace": None if k is None else max(n - k, 0)})
    ops = [r for r in m.frame().to_dicts() if r["count"] != 0]  # None (unknown) stays
    return {"layout": m.layout, "error": None, "ops": ops, "cross_check": check}


def render_sections(s: dict[str, Any]) -> list[str]:
    """Text lines of the IO and metrics sections of the analyze report."""
    out: list[str] = []
    io = s.get("io")
    if io and io["iotimes_records"]:
        out += ["", f"IO latency   {io['iotimes_records']:,} iotimes records; per chunk server "
                    "(busiest first, us):",
                f"  {'csid':>6} {'request':<10} {'count':>7} {'net p50':>8} {'net p99':>8} "
                f"{'io p50':>8} {'io p99':>8} {'io max':>8}"]
        for r in io["per_cs"]:
            out.append(f"  {r['csid']:>6} {r['request']:<10} {r['count']:>7} {r['net_p50_us']:>8} "
                       f"{r['net_p99_us']:>8} {r['io_p50_us']:>8} {r['io_p99_us']:>8} "
                       f"{r['io_max_us']:>8}")
        # slowest_io() keeps no IO without a total; a document from elsewhere
        # (an older --json, a library caller) might: never print "None us".
        known = [w for w in io["slowest_io"] if w.get("total_us") is not None]
        if known:
            w = known[0]
            out.append(f"  slowest IO: {w['total_us']} us ({w['request']}, nodeid {w['nodeid']}, "
                       f"cpu {w['cpu']})")
    m = s.get("metrics")
    if m:
        if m["error"]:
            out += ["", f"metrics      {m['error']}"]
            return out
        out += ["", f"metrics      prometheus file, layout {m['layout']}",
                f"  {'op':<14} {'count':>8} {'mean us':>9} {'p50 <=':>8} {'p99 <=':>8}"]
        for r in m["ops"]:
            mean = "-" if r["mean_us"] is None else f"{r['mean_us']:.0f}"
            count = "-" if r["count"] is None else r["count"]
            out.append(f"  {r['op']:<14} {count:>8} {mean:>9} "
                       f"{r['p50_le_us'] or '-':>8} {r['p99_le_us'] or '-':>8}")
        for c in m["cross_check"]:
            if c["metrics_count"] is None:
                out.append(f"  cross-check: {c['op']}: the kernel's count is unknown (damaged "
                           f"metrics file), the trace holds {c['trace_count']}")
            elif c["missing_from_trace"]:
                out.append(f"  cross-check: {c['op']}: the kernel counted {c['metrics_count']}, "
                           f"the trace holds {c['trace_count']} "
                           f"({c['missing_from_trace']} not in the trace: dropped or not traced)")
            elif c["extra_in_trace"]:
                out.append(f"  cross-check: {c['op']}: the kernel counted {c['metrics_count']}, "
                           f"the trace holds {c['trace_count']} ({c['extra_in_trace']} more than "
                           "the kernel counted: was the metrics file read before the trace "
                           "ended?)")
            else:
                out.append(f"  cross-check: {c['op']}: {c['trace_count']} in the trace and in "
                           "the metrics")
    return out
