"""The prometheus metrics file: every layout by size, exposition, errors."""

import json

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


# --- totals past a u64: a damaged file ---------------------------------------

DAMAGED = b"\xff" * 4032  # v3: every bucket 2**64 - 1, so every op's count is 47 of them
DAMAGE = ("metrics file damaged (v3-4032): the buckets of cs_read, cs_write, cs_sync, "
          "cs_write_hole, cs_write_zero, cs_fiemap, read, write, fsync, fallocate add up to "
          "more than 2**64 - 1 IOs (their counts, means and percentiles are unknown)")


def test_a_count_past_a_u64_is_unknown_not_a_crash():
    m = parse_metrics(DAMAGED)
    assert m.op("cs_read").count == 47 * (2**64 - 1) and m.op("cs_read").known_count is None
    assert m.damage() == DAMAGE
    # frame() raised polars ComputeError ("could not append value ... of type: i128")
    row = m.frame().filter(op="cs_read").row(0, named=True)
    assert row == {"op": "cs_read", "count": None, "sum_us": 2**64 - 1, "mean_us": None,
                   "p50_le_us": None, "p99_le_us": None}
    assert parse_metrics(build_metrics(_metrics("v3-4032"))).damage() is None


def test_a_count_of_exactly_2_64_minus_1_is_kept():
    lay = next(v for v in P.LAYOUTS if v.name == "v2-3840")
    buckets = [0] * P.N_BUCKETS
    buckets[0], buckets[1] = 2**64 - 2, 1
    ops = [OpStats(name, buckets if name == "cs_read" else [0] * P.N_BUCKETS, 0)
           for name in lay.ops]
    m = parse_metrics(build_metrics(Metrics("v2-3840", ops)))
    assert m.op("cs_read").known_count == 2**64 - 1 and m.damage() is None
    assert m.frame().filter(op="cs_read")["count"].to_list() == [2**64 - 1]


def test_a_v1_summed_latency_past_a_u64_is_unknown():
    # The oldest layout sums 47 u64 values into the latency total.
    data = bytearray(build_metrics(_metrics("v1-3008")))
    for b in range(P.N_BUCKETS):  # every value of op 0 ("read") at 2**64 - 1
        data[16 * b:16 * b + 8] = b"\xff" * 8
    m = parse_metrics(bytes(data))
    assert m.op("read").known_sum_us is None and m.op("read").known_count == 2
    assert m.damage() == ("metrics file damaged (v1-3008): the summed latency of read is more "
                          "than 2**64 - 1 us (unknown)")
    row = m.frame().filter(op="read").row(0, named=True)
    assert (row["count"], row["sum_us"], row["mean_us"], row["p50_le_us"]) == (2, None, None, 300)
    lines = exposition(m).splitlines()
    assert '# op="read": sum left out: more than 2**64 - 1 us (damaged metrics file)' in lines
    assert 'fuse_kio_latency_seconds_count{op="read"} 2' in lines
    assert not any(line.startswith('fuse_kio_latency_seconds_sum{op="read"}') for line in lines)


def test_exposition_leaves_out_an_op_whose_count_is_past_a_u64():
    lines = exposition(parse_metrics(DAMAGED), {"source": "d"}).splitlines()
    assert ('# op="cs_read",source="d" left out: its buckets add up to more than 2**64 - 1 '
            "(damaged metrics file)") in lines
    assert not any(line.startswith("fuse_kio_latency_seconds") for line in lines)
    # the counters are single u64s: still there
    assert 'fuse_kio_events_total{op="cs_read",source="d"} 18446744073709551615' in lines


@pytest.fixture
def damaged_dump(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "trace0").write_bytes(b"".join(iot_rec(5_000_000 + 10 * i) for i in range(3)))
    (d / "prometheus").write_bytes(DAMAGED)
    return d


def test_analyze_of_a_damaged_metrics_file_warns_and_shows_unknown_counts(damaged_dump, capsys):
    assert main(["analyze", str(damaged_dump)]) == 0
    out, err = capsys.readouterr()
    assert f"WARNING: {DAMAGE}\n" in out and err == ""
    assert "  cs_read               -         -        -        -\n" in out
    assert ("  cross-check: cs_read: the kernel's count is unknown (damaged metrics file), "
            "the trace holds 3\n") in out
    assert main(["analyze", str(damaged_dump), "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    # after the trace's own warning (no invalidate records in this dump)
    assert err.splitlines()[-1] == f"ktrace: warning: {DAMAGE}"
    assert doc["warnings"][-1] == DAMAGE
    assert doc["metrics"]["ops"][0] == {"op": "cs_read", "count": None, "sum_us": 2**64 - 1,
                                        "mean_us": None, "p50_le_us": None, "p99_le_us": None}
    assert doc["metrics"]["cross_check"][0] == {
        "op": "cs_read", "request": "read", "metrics_count": None, "trace_count": 3,
        "missing_from_trace": None, "extra_in_trace": None}


@pytest.mark.parametrize("fmt", ["csv", "parquet", "perfetto", "prometheus"])
def test_export_of_a_damaged_metrics_file(damaged_dump, tmp_path, capsys, fmt):
    assert main(["export", str(damaged_dump), "--out", str(tmp_path / "o"), "--format",
                 fmt]) == 0
    err = capsys.readouterr().err
    if fmt == "perfetto":  # the metrics are not in trace.json
        assert "Traceback" not in err and (tmp_path / "o" / "trace.json").exists()
        return
    where = f"{damaged_dump}: " if fmt == "prometheus" else ""
    assert f"ktrace: warning: {where}{DAMAGE}\n" in err
    if fmt == "prometheus":
        text = (tmp_path / "o" / "metrics.prom").read_text()
        assert "fuse_kio_latency_seconds_count" not in text and text.count(" left out: ") == 10


def test_a_label_value_is_escaped_as_the_format_wants():
    """A dump's path holding a backslash, a quote or a newline gives a valid
    label (exposition format 0.0.4), not a broken line."""
    text = exposition(parse_metrics(build_metrics(_metrics("v3-4032"))),
                      {"source": 'dumps\\a "b"\nc'})
    line = next(x for x in text.splitlines() if x.startswith("fuse_kio_latency_seconds_count"))
    assert 'source="dumps\\\\a \\"b\\"\\nc"}' in line
    assert all(x.startswith(("#", "fuse_kio_")) for x in text.splitlines())
