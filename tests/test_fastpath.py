"""The fast decoder's shortcuts change nothing: chunked scanning, the streaming
merge of ``ktrace decode`` and the fast text renderer agree with the plain
implementations (and the construct slow path) on generated dumps."""

import numpy as np
import polars as pl
import pytest
from benchmarks.gen_dump import gen_cpu, write_dump
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from helpers import decode_bytes, iot_rec, sample_stream, text_rec
from ktrace_decode import render, slowpath
from ktrace_decode.decode import DumpStream, decode
from ktrace_decode.formats import layouts as L
from ktrace_decode.scan import Scanner, scan_stream
from ktrace_decode.sources import open_dump


def _damaged(rng: np.random.Generator, n: int = 20) -> bytes:
    body = bytearray(b"".join(sample_stream(n)))
    for _ in range(3):
        p = int(rng.integers(0, len(body)))
        body[p:p + int(rng.integers(1, 9))] = rng.integers(
            0, 256, int(rng.integers(0, 40)), dtype=np.uint8).tobytes()
    return bytes(body)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(1, 300))
def test_scan_does_not_depend_on_the_chunk_size(seed, chunk):
    data = np.frombuffer(_damaged(np.random.default_rng(seed)), np.uint8)
    whole = scan_stream(data)
    sc = Scanner(data, chunk=chunk)
    parts = list(sc.chunks())
    starts = np.concatenate([p.starts for p in parts]) if parts else np.zeros(0, np.int64)
    resynced = np.concatenate([p.resynced for p in parts]) if parts else np.zeros(0, bool)
    assert starts.tolist() == whole.starts.tolist()
    assert resynced.tolist() == whole.resynced.tolist()
    assert sc.skips == whole.skips and sc.resyncs == whole.resyncs


def test_medium_generated_stream_agrees_with_construct_path():
    rng = np.random.default_rng(11)
    times = 5_000_000 + np.cumsum(rng.integers(0, 5, 20_000)).astype(np.uint64)
    clean = gen_cpu(rng, len(times), times)
    at = scan_stream(clean).starts
    data = bytearray(clean.tobytes())
    # a race and an unknown type at a record boundary, a little damage before
    b = int(at[500])
    data[b:b] = text_rec(int(times[0]) - 3, "f: late") + L.build_record(9, 6_000_000, b"??")
    data[int(at[40]) : int(at[40]) + 7] = b"\xee" * 7
    data = bytes(data)
    fast, fcs, rep = decode_bytes(data)
    slow, scs, skips = slowpath.decode_bytes(data)
    assert fast.height > 19_000 and rep.resyncs >= 1 and rep.unknown_type == 1
    assert_frame_equal(fast, slow)
    assert_frame_equal(fcs, scs)
    assert [(s.start, s.end, s.kind) for s in rep.skips] == [
        (s.start, s.end, s.kind) for s in skips]


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    d = tmp_path_factory.mktemp("gen")
    write_dump(d, 40_000, cpus=3, seed=5)
    # CPU 1 gets a record out of time order (a race) and a damaged stretch
    t1 = d / "trace1"
    raw = bytearray(t1.read_bytes())
    b = int(scan_stream(np.frombuffer(bytes(raw), np.uint8)).starts[30])
    raw[b:b] = text_rec(1_000_000_100, "race: late") + b"\x01" * 9
    t1.write_bytes(bytes(raw))
    return d


def test_streaming_merge_gives_the_table_order(dump):
    full = decode(dump).records
    stream = DumpStream(open_dump(dump), batch=1000, chunk=50_000)
    got = pl.concat(list(stream))
    assert_frame_equal(got, full)
    assert [c.records for c in stream.cpus] == [c.records for c in decode(dump).cpus]
    assert stream.decoded().skipped_bytes == 9


def test_streaming_merge_with_column_subset(dump):
    cols = ["cpu", "time_us", "text", "n_cs"]
    got = pl.concat(list(DumpStream(open_dump(dump), columns=cols, batch=5000)))
    assert_frame_equal(got, decode(dump).records.select(cols))


def test_pending_cap_bounds_a_stuck_clock(tmp_path, monkeypatch):
    import ktrace_decode.decode as D

    monkeypatch.setattr(D, "PENDING_CAP", 64)
    (tmp_path / "trace0").write_bytes(b"".join(text_rec(7, f"f: stuck {i}") for i in range(500)))
    (tmp_path / "trace1").write_bytes(b"".join(text_rec(5 + i, f"f: {i}") for i in range(500)))
    batches = list(DumpStream(open_dump(tmp_path), batch=16, chunk=256))
    assert sum(b.height for b in batches) == 1000
    assert max(b.height for b in batches) < 200


def _lines(df: pl.DataFrame) -> bytes:
    return "".join(line + "\n" for line in render.text_lines(df).to_list()).encode()


def test_fast_text_renderer_matches_the_reference(dump):
    df = decode(dump).records
    assert render.text_bytes(df) == _lines(df)


def test_fast_text_renderer_on_odd_rows():
    recs = [
        text_rec(5, "f: short"), text_rec(123_456_789_012, "f: far in time", ovfl=65535),
        text_rec(6, "f: caf\u00e9 \u2192", ovfl=9999), text_rec(7, "f: x", ovfl=10_000),
        iot_rec(8, ino=2**64 - 1, n_cs=0), L.build_record(77, 9, b"raw"),
        L.build_record(12345, 10, b""),
        L.build_record(L.TYPE_TEXT, 11, b"f: " + b"z" * 300 + b"\0" * 10),
        L.build_record(L.TYPE_TEXT, 12, b"f: bad \xff\xfe utf8\0"), text_rec(13, "f: line\n"),
    ]
    io = L.iotimes_payload(dict(chunk=1, offset=2, size=3, start_time=4, local_delay=5, lat=6,
                                ino=7, type=999), [])
    recs.append(L.build_record(L.TYPE_IOTIMES, 14, io))
    frames = [decode_bytes(b"".join(recs), cpu=c)[0] for c in (0, 7, 1000, 65535)]
    df = pl.concat(frames)
    assert render.text_bytes(df) == _lines(df)
    assert render.text_bytes(df.clear()) == b""


def test_line_bytes_copies_when_the_views_are_not_in_order():
    lines = pl.Series([f"line {i} of a column long enough\n" for i in range(1000)])
    for s in (lines, lines.reverse(), lines.gather(np.r_[5:1000, 0:5]), lines.slice(7, 300)):
        assert b"".join(bytes(b) for b in render._line_bytes(s)) == "".join(s).encode()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_text_repair_agrees_with_the_construct_path(seed):
    """Damaged input with NULs and invalid UTF-8 inside texts (the rows the
    fast path hands to Python)."""
    rng = np.random.default_rng(seed)
    recs = sample_stream(10)
    recs[3] = L.build_record(L.TYPE_TEXT, 5_000_031, b"f: a\0b\xff\0")
    recs[6] = text_rec(5_000_061, "f: caf\u00e9\n")
    body = bytearray(b"".join(recs))
    for _ in range(int(rng.integers(0, 3))):
        p = int(rng.integers(0, len(body)))
        body[p:p + int(rng.integers(1, 6))] = rng.integers(0, 256, int(rng.integers(0, 12)),
                                                            dtype=np.uint8).tobytes()
    data = bytes(body)
    slow, scs, _ = slowpath.decode_bytes(data)
    fast, fcs, _ = decode_bytes(data)
    assert_frame_equal(fast, slow)
    assert_frame_equal(fcs, scs)


def test_text_output_cuts_texts_at_a_nul_found_in_the_output(tmp_path):
    recs = [text_rec(5, "f: one"), L.build_record(L.TYPE_TEXT, 6, b"f: two\0hidden\n\0"),
            L.build_record(L.TYPE_TEXT, 7, b"f: three\n\0tail\0"), text_rec(8, "f: four\n")]
    (tmp_path / "trace0").write_bytes(b"".join(recs))
    want = _lines(decode(tmp_path).records)
    got = b"".join(bytes(b) for b in render.text_block(
        pl.concat(list(DumpStream(open_dump(tmp_path), nul_cut=False))), nul_cut=False))
    assert got == want and b"hidden" not in got and b"\0" not in got


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.integers(0, 40), max_size=30), min_size=1, max_size=5),
       st.integers(1, 7))
def test_merge_places_rows_in_time_cpu_seq_order(times_per_cpu, per_part):
    """Ties across CPUs, times going back inside a CPU, CPUs split into parts."""
    from ktrace_decode.records import Part, records_frame

    parts = []
    for cpu, times in enumerate(times_per_cpu):
        data = np.frombuffer(b"".join(text_rec(t, "f: x") for t in times), np.uint8)
        starts = scan_stream(data).starts
        for a in range(0, len(starts), per_part):
            parts.append(Part(data, starts[a:a + per_part], np.zeros(len(starts[a:a + per_part]),
                                                                      bool), cpu, seq0=a))
    cols = ["cpu", "seq", "time_us"]
    got = records_frame(parts, columns=cols, merge=True)
    want = records_frame(parts, columns=cols).sort("time_us", "cpu", "seq", maintain_order=True)
    assert_frame_equal(got, want)


def test_an_empty_text_stays_empty_and_one_trailing_newline_goes():
    t = 5_000_000
    data = b"".join([text_rec(t - 10, "a: b\n"), text_rec(t, ""), text_rec(t + 5, "\n"),
                     text_rec(t + 10, "c: d\n\n")])
    recs, _, _ = decode_bytes(data)
    assert recs["text"].to_list() == ["a: b", "", "", "c: d\n"]
