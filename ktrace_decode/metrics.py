"""Decode the ``prometheus`` metrics file and render it as Prometheus text exposition.

The layouts are declared in :mod:`ktrace_decode.formats.prometheus`; the file
size picks the layout.  Latency histograms use the kernel's bucketing
(``bucket_of``); we expose them as cumulative Prometheus histograms with ``le``
set to each bucket's upper bound in seconds.

Every counter of the file is a u64, and so is any real total: an op's count
(the sum of its 47 buckets) or the oldest layout's summed latency above
2**64 - 1 would take more than 2**64 IOs, so the file is damaged there.  Such
a total is unknown (None in :meth:`Metrics.frame`, left out of the
exposition), and :meth:`Metrics.damage` says so in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl
from construct import ConstructError

from .errors import InputError
from .formats import prometheus as P

#: The largest value of a kernel counter (they are all u64).
U64_MAX = 2**64 - 1


@dataclass
class OpStats:
    """One operation's latency histogram (bucket counts) and totals."""

    op: str
    buckets: list[int]  # count per kernel bucket (47)
    sum_us: int | None  # total latency (None in the oldest layout)

    @property
    def count(self) -> int:
        """The sum of the buckets, as it is (see :attr:`known_count`)."""
        return sum(self.buckets)

    @property
    def known_count(self) -> int | None:
        """:attr:`count`, or None above 2**64 - 1: no kernel counts that many IOs."""
        n = self.count
        return n if n <= U64_MAX else None

    @property
    def known_sum_us(self) -> int | None:
        """:attr:`sum_us`, or None when unknown or above 2**64 - 1 (the
        oldest layout's sum of 47 values)."""
        return self.sum_us if self.sum_us is not None and self.sum_us <= U64_MAX else None


@dataclass
class Metrics:
    """A decoded metrics snapshot (summed over CPUs by the kernel)."""

    layout: str
    ops: list[OpStats]
    counters: dict[str, tuple[int, int]] = field(default_factory=dict)  # op -> (events, total)

    def op(self, name: str) -> OpStats | None:
        return next((o for o in self.ops if o.op == name), None)

    def damage(self) -> str | None:
        """One line naming the ops whose count or summed latency is past a
        u64 (a damaged file: those totals are unknown); None if there are none."""
        counts = [o.op for o in self.ops if o.known_count is None]
        sums = [o.op for o in self.ops if o.sum_us is not None and o.known_sum_us is None]
        if not counts and not sums:
            return None
        parts = []
        if counts:
            parts.append(f"the buckets of {', '.join(counts)} add up to more than 2**64 - 1 "
                         "IOs (their counts, means and percentiles are unknown)")
        if sums:
            parts.append(f"the summed latency of {', '.join(sums)} is more than 2**64 - 1 us "
                         "(unknown)")
        return f"metrics file damaged ({self.layout}): {'; '.join(parts)}"

    def frame(self) -> pl.DataFrame:
        """One row per op: count, sum, mean and bucket-estimated p50/p99 (us);
        a count or sum past a u64 is null, and so is what is derived from it
        (see :meth:`damage`): buckets that are not all right give no percentile."""
        rows = []
        for o in self.ops:
            n, total = o.known_count, o.known_sum_us
            rows.append({
                "op": o.op, "count": n, "sum_us": total,
                "mean_us": total / n if total is not None and n else None,
                "p50_le_us": _quantile_bound(o.buckets, 0.5) if n is not None else None,
                "p99_le_us": _quantile_bound(o.buckets, 0.99) if n is not None else None,
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
    """Prometheus text exposition format (version 0.0.4).

    An op whose count is past a u64 (see :meth:`Metrics.damage`) is left out,
    with a comment saying so: as in ``analyze``, its count is unknown, and so
    is everything derived from its buckets.  A sum past a u64 (the oldest
    layout) leaves out the sum only."""
    base = "".join(f',{k}="{_label_value(v)}"' for k, v in (labels or {}).items())
    out = ["# HELP fuse_kio_latency_seconds Latency of fuse kio operations (kernel histogram).",
           "# TYPE fuse_kio_latency_seconds histogram"]
    for o in m.ops:
        if o.known_count is None:
            out.append(f'# op="{o.op}"{base} left out: its buckets add up to more than '
                       "2**64 - 1 (damaged metrics file)")
            continue
        run = 0
        for i, n in enumerate(o.buckets):
            run += n
            hi = P.bucket_bounds(i)[1]
            le = "+Inf" if hi is None else _fmt_seconds(hi)
            out.append(f'fuse_kio_latency_seconds_bucket{{op="{o.op}"{base},le="{le}"}} {run}')
        if o.known_sum_us is not None:
            out.append(f'fuse_kio_latency_seconds_sum{{op="{o.op}"{base}}} '
                       f"{_fmt_seconds(o.known_sum_us)}")
        elif o.sum_us is not None:
            out.append(f'# op="{o.op}"{base}: sum left out: more than 2**64 - 1 us '
                       "(damaged metrics file)")
        out.append(f'fuse_kio_latency_seconds_count{{op="{o.op}"{base}}} {o.count}')
    if m.counters:
        out += ["# HELP fuse_kio_events_total Events counted by the kernel per op.",
                "# TYPE fuse_kio_events_total counter"]
        out += [f'fuse_kio_events_total{{op="{k}"{base}}} {v[0]}' for k, v in m.counters.items()]
        out += ["# HELP fuse_kio_value_total Summed value per op (bytes or us).",
                "# TYPE fuse_kio_value_total counter"]
        out += [f'fuse_kio_value_total{{op="{k}"{base}}} {v[1]}' for k, v in m.counters.items()]
    return "\n".join(out) + "\n"


def _label_value(value: str) -> str:
    """A label value as the exposition format writes it: backslash, double
    quote and line feed escaped (a dump's path may hold any of them)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fmt_seconds(us: int) -> str:
    return f"{us / 1e6:.6f}".rstrip("0").rstrip(".") if us else "0"
