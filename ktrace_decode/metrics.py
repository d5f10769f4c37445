"""Decode the ``prometheus`` metrics file and render it as Prometheus text exposition.

The layouts are declared in :mod:`ktrace_decode.formats.prometheus`; the file
size picks the layout.  Latency histograms use the kernel's bucketing
(``bucket_of``); we expose them as cumulative Prometheus histograms with ``le``
set to each bucket's upper bound in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl
from construct import ConstructError

from .errors import InputError
from .formats import prometheus as P


@dataclass
class OpStats:
    """One operation's latency histogram (bucket counts) and totals."""

    op: str
    buckets: list[int]  # count per kernel bucket (47)
    sum_us: int | None  # total latency (None in the oldest layout)

    @property
    def count(self) -> int:
        return sum(self.buckets)


@dataclass
class Metrics:
    """A decoded metrics snapshot (summed over CPUs by the kernel)."""

    layout: str
    ops: list[OpStats]
    counters: dict[str, tuple[int, int]] = field(default_factory=dict)  # op -> (events, total)

    def op(self, name: str) -> OpStats | None:
        return next((o for o in self.ops if o.op == name), None)

    def frame(self) -> pl.DataFrame:
        """One row per op: count, sum, mean and bucket-estimated p50/p99 (us)."""
        rows = []
        for o in self.ops:
            rows.append({
                "op": o.op, "count": o.count, "sum_us": o.sum_us,
                "mean_us": (o.sum_us / o.count) if o.sum_us is not None and o.count else None,
                "p50_le_us": _quantile_bound(o.buckets, 0.5),
                "p99_le_us": _quantile_bound(o.buckets, 0.99),
            })
        return pl.DataFrame(rows, schema={"op": pl.String, "count": pl.UInt64,
                                          "sum_us": pl.UInt64, "mean_us": pl.Float64,
                                          "p50_le_us": pl.UInt64, "p99_le_us": pl.UInt64})


def _quantile_bound(buckets: list[int], q: float) -> int | None:
    """Upper bound (us) of the bucket holding quantile q; None when empty or open-ended."""
    total = sum(buckets)
    if not total:
        return None
    need = q * total
    run = 0
    for i, c in enumerate(buckets):
        run += c
        if run >= need:
            return P.bucket_bounds(i)[1]
    return None


def parse_metrics(data: bytes, where: str = "prometheus") -> Metrics:
    """Decode a metrics file; the layout is chosen by its size."""
    lay = P.BY_SIZE.get(len(data))
    if lay is None:
        known = ", ".join(f"{s} ({v.name})" for s, v in sorted(P.BY_SIZE.items()))
        raise InputError(f"metrics file of {len(data)} bytes matches no known layout "
                         f"(known sizes: {known})", where)
    try:
        c = lay.struct.parse(data)
    except ConstructError as e:  # cannot happen for the right size, but never a traceback
        raise InputError(f"unreadable metrics file: {e}", where) from None
    ops: list[OpStats] = []
    if lay.name.startswith("v1"):
        # Oldest layout: {value, count} per bucket; value is the summed latency.
        for name, hist in zip(lay.ops, c.ops, strict=True):
            ops.append(OpStats(name, [b.count for b in hist], sum(b.value for b in hist)))
    else:
        for name, hist in zip(lay.ops, c.ops, strict=True):
            ops.append(OpStats(name, list(hist.buckets), hist.sum))
    counters = {}
    if lay.counters:
        counters = {name: (k.events, k.val_total)
                    for name, k in zip(lay.counters, c.counters, strict=True)}
    return Metrics(lay.name, ops, counters)


def build_metrics(m: Metrics) -> bytes:
    """The file bytes for ``m`` (used by the emitter and the tests)."""
    lay = next(v for v in P.LAYOUTS if v.name == m.layout)
    if lay.name.startswith("v1"):
        obj = {"ops": [[{"value": 0, "count": n} for n in o.buckets] for o in m.ops]}
        for o, hist in zip(m.ops, obj["ops"], strict=True):
            hist[0]["value"] = o.sum_us or 0
    else:
        obj = {"ops": [{"buckets": o.buckets, "sum": o.sum_us or 0} for o in m.ops]}
        if lay.counters:
            obj["counters"] = [{"events": m.counters.get(n, (0, 0))[0],
                                "val_total": m.counters.get(n, (0, 0))[1]} for n in lay.counters]
    return lay.struct.build(obj)


def exposition(m: Metrics, labels: dict[str, str] | None = None) -> str:
    """Prometheus text exposition format (version 0.0.4)."""
    base = "".join(f',{k}="{v}"' for k, v in (labels or {}).items())
    out = ["# HELP fuse_kio_latency_seconds Latency of fuse kio operations (kernel histogram).",
           "# TYPE fuse_kio_latency_seconds histogram"]
    for o in m.ops:
        run = 0
        for i, n in enumerate(o.buckets):
            run += n
            hi = P.bucket_bounds(i)[1]
            le = "+Inf" if hi is None else _fmt_seconds(hi)
            out.append(f'fuse_kio_latency_seconds_bucket{{op="{o.op}"{base},le="{le}"}} {run}')
        if o.sum_us is not None:
            out.append(f'fuse_kio_latency_seconds_sum{{op="{o.op}"{base}}} '
                       f"{_fmt_seconds(o.sum_us)}")
        out.append(f'fuse_kio_latency_seconds_count{{op="{o.op}"{base}}} {o.count}')
    if m.counters:
        out += ["# HELP fuse_kio_events_total Events counted by the kernel per op.",
                "# TYPE fuse_kio_events_total counter"]
        out += [f'fuse_kio_events_total{{op="{k}"{base}}} {v[0]}' for k, v in m.counters.items()]
        out += ["# HELP fuse_kio_value_total Summed value per op (bytes or us).",
                "# TYPE fuse_kio_value_total counter"]
        out += [f'fuse_kio_value_total{{op="{k}"{base}}} {v[1]}' for k, v in m.counters.items()]
    return "\n".join(out) + "\n"


def _fmt_seconds(us: int) -> str:
    return f"{us / 1e6:.6f}".rstrip("0").rstrip(".") if us else "0"
