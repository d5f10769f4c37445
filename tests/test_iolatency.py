"""IO latency per chunk server and per inode, from iotimes records."""

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from helpers import decode_bytes
from ktrace_decode import iolatency
from ktrace_decode.formats import layouts as L


def _rec(t, ino, typ, size, start, cs):
    hdr = dict(chunk=0, offset=4096, size=size, start_time=start, local_delay=5, lat=t - start - 5,
               ino=ino, type=typ)
    return L.build_record(L.TYPE_IOTIMES, t, L.iotimes_payload(
        hdr, [dict(csid=c, misc=0, ts_net=net, ts_io=io) for c, net, io in cs]))


def _frames():
    data = b"".join(
        _rec(10_000 + 100 * i, 7, 257, 4096, 10_000 + 100 * i - (i + 1) * 10,
             [(1, 10 * (i + 1), 100 * (i + 1)), (2, 1, 2)])
        for i in range(10)
    ) + _rec(20_000, 8, 259, 8192, 15_000, [(2, 50, 500)])
    recs, cs, _ = decode_bytes(data)
    return recs.lazy(), cs.lazy()


def test_per_cs_percentiles():
    recs, cs = _frames()
    df = iolatency.per_cs(recs, cs).collect()
    row = df.filter(csid=1, request="read").row(0, named=True)
    assert row["count"] == 10 and row["as_replier"] == 10
    # "nearest" quantiles: index round(q * (n - 1)), so p50 of 10..100 is 60
    assert (row["net_p50_us"], row["net_p90_us"], row["net_max_us"]) == (60, 90, 100)
    assert (row["io_p50_us"], row["io_max_us"]) == (600, 1000)
    w = df.filter(csid=2, request="write").row(0, named=True)
    assert (w["count"], w["net_max_us"], w["io_max_us"]) == (1, 50, 500)


def test_a_garbled_creation_time_has_no_total_and_is_not_the_slowest(tmp_path, capsys):
    """A start_time the trace clock cannot have (2**52 us or more, the scan's
    test of a record time) has no total: null, not minus billions of years
    (nor, from 2**63 on, a failed cast that stopped export and analyze); and
    an IO without a total is never among the slowest."""
    from ktrace_decode.cli import main

    def rec(t: int, start: int) -> bytes:
        hdr = dict(chunk=0, offset=0, size=4096, start_time=start, local_delay=5, lat=9,
                   ino=7, type=257)
        cs = [dict(csid=1, misc=0, ts_net=2, ts_io=3)]
        return L.build_record(L.TYPE_IOTIMES, t, L.iotimes_payload(hdr, cs))

    data = (rec(10_000, 2**64 - 1) + rec(10_100, 2**63) + rec(10_150, 2**52)
            + rec(10_200, 10_000) + rec(10_300, 10_400))  # created after its record: -100
    recs, _, _ = decode_bytes(data)
    io = iolatency.iotimes(recs.lazy()).collect()
    assert io["total_us"].to_list() == [None, None, None, 200, -100]
    assert iolatency.slowest(recs.lazy(), 9).collect()["total_us"].to_list() == [200, -100]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "trace0").write_bytes(data)
    assert main(["export", str(tmp_path / "d"), "--out", str(tmp_path / "out")]) == 0
    lines = (tmp_path / "out" / "iotimes.csv").read_text().splitlines()
    assert [line.split(",")[13] for line in lines] == ["total_us", "", "", "", "200", "-100"]
    assert main(["analyze", str(tmp_path / "d"), "--json"]) == 0
    assert '"total_us": 200' in capsys.readouterr().out


def test_per_ino_and_slowest():
    recs, _ = _frames()
    ino = iolatency.per_ino(recs).collect()
    r = ino.filter(ino=7).row(0, named=True)
    assert (r["request"], r["count"], r["bytes"], r["lat_max_us"]) == ("read", 10, 40960, 100)
    slow = iolatency.slowest(recs, 2).collect()
    assert slow["total_us"].to_list() == [5000, 100]
    assert slow.row(0, named=True)["request"] == "write"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(
    # Nearby chunk-server ids (the 16-bit sort), and ids far apart (the group_by).
    st.one_of(st.integers(1, 4), st.sampled_from([0, 2**40, 2**64 - 1])),
    st.sampled_from([257, 259, 263, 999, 65535]),
    st.integers(0, 3), st.integers(0, 2**32 - 1), st.integers(0, 50)), max_size=120))
def test_per_cs_of_equals_polars_quantiles(rows):
    """The numpy per-server table equals a Polars group_by with the same
    "nearest" quantiles, ties and group sizes of every kind included."""
    entries = pl.DataFrame(rows, orient="row", schema={
        "csid": pl.UInt64, "io_type": pl.UInt16, "idx": pl.UInt8, "ts_net": pl.UInt32,
        "ts_io": pl.UInt32})
    want = (entries.with_columns(iolatency._REQ).group_by("csid", "request")
            .agg(pl.len().cast(pl.UInt64).alias("count"),
                 (pl.col("idx") == 0).sum().cast(pl.UInt64).alias("as_replier"),
                 *iolatency._pcts("ts_net", "net"), *iolatency._pcts("ts_io", "io"))
            .sort("csid", "request"))
    got = iolatency.per_cs_of(entries)
    assert got.schema == pl.Schema(iolatency.PER_CS)
    assert_frame_equal(got, want.select(got.columns), check_dtypes=True)
    if rows:
        assert got["request"].to_list().count("type999") == len(
            {c for c, t, *_ in rows if t == 999})
