"""The prometheus metrics file: every layout by size, exposition, errors."""

import pytest

from helpers import iot_rec
from ktrace_decode.cli import main
from ktrace_decode.decode import decode
from ktrace_decode.errors import InputError
from ktrace_decode.formats import prometheus as P
from ktrace_decode.metrics import Metrics, OpStats, build_metrics, exposition, parse_metrics
from ktrace_decode.pipeline import analyze_decoded


def _metrics(layout: str) -> Metrics:
    lay = next(v for v in P.LAYOUTS if v.name == layout)
    ops = []
    for i, name in enumerate(lay.ops):
        buckets = [0] * P.N_BUCKETS
        buckets[P.bucket_of(250)] += i + 1  # i+1 ops of 250 us
        buckets[P.bucket_of(12_000)] += 1  # one op of 12 ms
        ops.append(OpStats(name, buckets, 250 * (i + 1) + 12_000))
    counters = {n: (k + 1, 1000 * (k + 1)) for k, n in enumerate(lay.counters)}
    return Metrics(layout, ops, counters)


@pytest.mark.parametrize("layout", [v.name for v in P.LAYOUTS])
def test_round_trip_every_layout(layout):
    m = _metrics(layout)
    data = build_metrics(m)
    assert len(data) == next(v.size for v in P.LAYOUTS if v.name == layout)
    back = parse_metrics(data)
    assert back.layout == layout
    assert [(o.op, o.count, o.sum_us) for o in back.ops] == [
        (o.op, o.count, o.sum_us) for o in m.ops]
    assert back.counters == m.counters


def test_v2_values():
    back = parse_metrics(build_metrics(_metrics("v2-3840")))
    read = back.op("read")
    assert read.count == 8 and read.sum_us == 250 * 7 + 12_000  # "read" is op 6
    row = back.frame().filter(op="read").row(0, named=True)
    assert row["p50_le_us"] == 300 and row["p99_le_us"] == 20_000


def test_exposition_is_cumulative_and_labelled():
    text = exposition(parse_metrics(build_metrics(_metrics("v3-4032"))), {"conn": "42"})
    lines = text.splitlines()
    assert "# TYPE fuse_kio_latency_seconds histogram" in lines
    assert 'fuse_kio_latency_seconds_bucket{op="cs_read",conn="42",le="0.0003"} 1' in lines
    assert 'fuse_kio_latency_seconds_bucket{op="cs_read",conn="42",le="+Inf"} 2' in lines
    assert 'fuse_kio_latency_seconds_count{op="cs_read",conn="42"} 2' in lines
    assert 'fuse_kio_latency_seconds_sum{op="cs_read",conn="42"} 0.01225' in lines
    assert 'fuse_kio_events_total{op="unaligned_read",conn="42"} 12' in lines


def test_unknown_size_is_one_clear_error():
    with pytest.raises(InputError, match="matches no known layout"):
        parse_metrics(b"\0" * 100, "dump/prometheus")


def _counted(layout: str, counts: dict[str, int]) -> bytes:
    """A metrics file whose ops counted these many IOs (of 250 us each)."""
    lay = next(v for v in P.LAYOUTS if v.name == layout)
    ops = []
    for name in lay.ops:
        buckets = [0] * P.N_BUCKETS
        buckets[P.bucket_of(250)] = counts.get(name, 0)
        ops.append(OpStats(name, buckets, 250 * counts.get(name, 0)))
    return build_metrics(Metrics(layout, ops))


def test_cross_check_when_the_trace_holds_more_ios_than_the_kernel_counted(tmp_path, capsys):
    # 5 reads traced, 0 writes; the kernel counted 2 reads (its file read
    # earlier) and 4 writes. The reads' line said "(-3 not in the trace)".
    d = tmp_path / "d"
    d.mkdir()
    (d / "trace0").write_bytes(b"".join(iot_rec(5_000_000 + 10 * i) for i in range(5)))
    (d / "prometheus").write_bytes(_counted("v2-3840", {"cs_read": 2, "cs_write": 4}))
    check = analyze_decoded(decode(d)).summary["metrics"]["cross_check"]
    assert check == [
        {"op": "cs_read", "request": "read", "metrics_count": 2, "trace_count": 5,
         "missing_from_trace": 0, "extra_in_trace": 3},
        {"op": "cs_write", "request": "write", "metrics_count": 4, "trace_count": 0,
         "missing_from_trace": 4, "extra_in_trace": 0}]
    assert main(["analyze", str(d)]) == 0
    out = capsys.readouterr().out
    assert ("  cross-check: cs_read: the kernel counted 2, the trace holds 5 (3 more than the "
            "kernel counted: was the metrics file read before the trace ended?)") in out
    assert ("  cross-check: cs_write: the kernel counted 4, the trace holds 0 (4 not in the "
            "trace: dropped or not traced)") in out
    assert "(-3 " not in out
