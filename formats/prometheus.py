"""The ``prometheus`` metrics file next to the trace files (spec section 6).

A binary snapshot of u64 little-endian counters summed over CPUs.  Three
layouts exist; the file size tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from construct import Array, Construct, Int64ul, Struct

N_BUCKETS = 47

#: Upper bounds (exclusive, in us) of each bucket's range, derived from the
#: kernel's bucketing; the last bucket is open-ended.
def bucket_of(latency_us: int) -> int:
    """The histogram bucket the kernel puts a latency of ``latency_us`` into."""
    lat = latency_us
    if lat < 1000:
        return lat // 100
    if lat < 10_000:
        return 9 + lat // 1000
    if lat < 100_000:
        return 18 + lat // 10_000
    if lat < 1_000_000:
        return 27 + lat // 100_000
    if lat < 10_000_000:
        return 36 + lat // 1_000_000
    return 46


def bucket_bounds(bucket: int) -> tuple[int, int | None]:
    """[lo, hi) in us of a bucket (hi None for the last one)."""
    lo = next(v for v in _EDGES if bucket_of(v) == bucket)
    nxt = [v for v in _EDGES if bucket_of(v) == bucket + 1]
    return lo, (nxt[0] if nxt else None)


# Every edge where the bucket can change: multiples of the step of each decade.
_STEPS = (100, 1000, 10_000, 100_000, 1_000_000)
_EDGES = sorted({0} | {s * k for s in _STEPS for k in range(1, 11)})

_Bucket = Struct("value" / Int64ul, "count" / Int64ul)
_OpHist = Struct("buckets" / Array(N_BUCKETS, Int64ul), "sum" / Int64ul)
_Counter = Struct("events" / Int64ul, "val_total" / Int64ul)

#: 3008 bytes, oldest: 4 ops x 47 buckets of {value, count}.
PrometheusV1 = Struct("ops" / Array(4, Array(N_BUCKETS, _Bucket)))
#: 3840 bytes: 10 ops x {buckets[47], sum}.
PrometheusV2 = Struct("ops" / Array(10, _OpHist))
#: 4032 bytes, newest: the 3840-byte block then 12 counters.
PrometheusV3 = Struct("ops" / Array(10, _OpHist), "counters" / Array(12, _Counter))

OPS_V1 = ("read", "write", "fsync", "fallocate")
OPS_V2 = ("cs_read", "cs_write", "cs_sync", "cs_write_hole", "cs_write_zero", "cs_fiemap",
          "read", "write", "fsync", "fallocate")
COUNTERS_V3 = (*OPS_V2, "unaligned_write", "unaligned_read")


@dataclass(frozen=True)
class PrometheusLayout:
    """One known layout of the metrics file."""

    name: str
    struct: Construct
    ops: tuple[str, ...]
    counters: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return self.struct.sizeof()


LAYOUTS: tuple[PrometheusLayout, ...] = (
    PrometheusLayout("v1-3008", PrometheusV1, OPS_V1),
    PrometheusLayout("v2-3840", PrometheusV2, OPS_V2),
    PrometheusLayout("v3-4032", PrometheusV3, OPS_V2, COUNTERS_V3),
)
BY_SIZE: dict[int, PrometheusLayout] = {lay.size: lay for lay in LAYOUTS}
