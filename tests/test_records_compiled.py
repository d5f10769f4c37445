"""The records table by compiled loops (records_compiled.py) is records_frame's, cell for cell.

The reference is :func:`ktrace_decode.records.records_frame` with
``merge=True`` (the numpy path) on the very same parts: whole dumps scanned
CPU by CPU, the batches of a streaming merge (parts cut by its horizon,
with explicit seq and time_backwards), CPUs whose clock goes back inside a
part and across parts, damaged dumps, odd texts and unknown types.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from helpers import iot_rec, text_rec
from ktrace_decode import decode as D
from ktrace_decode import records, records_compiled
from ktrace_decode.formats import layouts as L
from ktrace_decode.scan import compiled_walk
from ktrace_decode.sources import Dump, TraceSource, open_dump

pytestmark = pytest.mark.skipif(not records_compiled.available(), reason="numba is not installed")

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def _same(parts: list[D.Part]) -> None:
    got = records_compiled.frame(parts)
    assert got is not None
    assert_frame_equal(got, records.records_frame(parts, merge=True))


def _dump(*cpus: bytes) -> Dump:
    return Dump("mem", [TraceSource(c, f"trace{c}", np.frombuffer(data, np.uint8))
                        for c, data in enumerate(cpus)])


def _scanned(dump: Dump, chunk: int = 1 << 22, walk: bool = False) -> list[D.Part]:
    parts: list[D.Part] = []
    for src in dump.traces:
        gen = D.scan_parts(src, chunk=chunk, walk=compiled_walk() if walk else None)
        parts += list(gen)
    return parts


@pytest.mark.parametrize("sample", ["storm", "overflow", "quiet"])
@pytest.mark.parametrize("chunk", [1 << 22, 4096])
def test_every_sample_scanned_cpu_by_cpu(sample, chunk):
    _same(_scanned(open_dump(str(SAMPLES / sample)), chunk))


@pytest.mark.parametrize("sample", ["storm", "overflow"])
def test_the_batches_of_a_streaming_merge(sample):
    """Parts cut by the merge's horizon: subsets with their own seq and
    time_backwards, runs that do not chain."""
    stream = D.DumpStream(open_dump(str(SAMPLES / sample)), batch=97, chunk=2048)
    for parts in stream.parts():
        _same(parts)


def test_a_clock_going_back_inside_a_part_and_across_parts():
    a = [text_rec(t, f"f: a{t}") for t in (100, 105, 103, 103, 90, 110, 120)]  # back inside
    b = [text_rec(t, f"f: b{t}") for t in (100, 103, 103, 111)]
    c = [text_rec(t, f"f: c{t}") for t in (50, 60)]  # before everything: its own run
    parts = _scanned(_dump(b"".join(a), b"".join(b), b"".join(c)), chunk=40)
    assert len(records_compiled._runs(parts)[0]) > 3
    _same(parts)


def test_odd_texts_unknown_types_long_texts_and_iotimes():
    recs = [
        text_rec(10, "fuse_open: plain"),
        L.build_record(L.TYPE_TEXT, 11, b"fuse_open: cut\0here\0"),  # a NUL inside
        L.build_record(L.TYPE_TEXT, 12, b"fuse_open: \xff\xfe\0"),  # not UTF-8
        L.build_record(L.TYPE_TEXT, 13, b"fuse_open: \xed\xa0\x80\n\0"),  # a surrogate
        L.build_record(L.TYPE_TEXT, 14, "fuse_open: é\n".encode() + b"\0"),
        L.build_record(L.TYPE_TEXT, 15, b"f: " + b"x" * 300 + b"\0"),  # pdu > 256, NUL at the end
        L.build_record(L.TYPE_TEXT, 16, b"f: " + b"y" * 252 + b"\0junk\x00"),  # the bug
        L.build_record(L.TYPE_TEXT, 17, b"\0"), L.build_record(L.TYPE_TEXT, 18, b"\n\0"),
        L.build_record(L.TYPE_TEXT, 19, b"short\0"),  # inline in its view
        L.build_record(L.TYPE_TEXT, 20, b"exactly 12 b\0"), L.build_record(L.TYPE_TEXT, 21,
                                                                           b"exactly 13 by\0"),
        iot_rec(22, ino=2**64 - 1, n_cs=3, ovfl=65535),
        L.build_record(9, 23, b"\x01\x02\x03"),  # unknown: its payload kept
        text_rec(24, "f: last"),
    ]
    _same(_scanned(_dump(b"".join(recs), b"".join(recs[::-1]))))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_dumps(data):
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "robustness"))
    from rb_damage import damaged_dumps

    d, sources = data.draw(damaged_dumps())
    dump = _dump(bytes(d.data), sources[1].data)
    for chunk in (61, 1 << 22):
        for walk in (False, True):
            parts = _scanned(dump, chunk, walk)
            if parts:
                _same(parts)


def test_too_many_runs_is_left_to_numpy(monkeypatch):
    parts = _scanned(open_dump(str(SAMPLES / "storm")), chunk=1024)
    monkeypatch.setattr(records_compiled, "MAX_RUNS", 1)
    assert records_compiled.frame(parts) is None


def test_decode_takes_the_loops_for_a_big_dump(monkeypatch):
    """decode() of a dump of COMPILED_TABLE_BYTES or more: the same Decoded."""
    path = str(SAMPLES / "overflow")
    whole = D.decode(path)
    calls: list[int] = []
    frame = records_compiled.frame
    monkeypatch.setattr(records_compiled, "frame", lambda p: calls.append(1) or frame(p))
    monkeypatch.setattr(D, "COMPILED_TABLE_BYTES", 0)
    fast = D.decode(path)
    assert calls == [1]
    assert_frame_equal(fast.records, whole.records)
    assert_frame_equal(fast.cs, whole.cs)
    assert fast.cpus == whole.cpus


@pytest.mark.parametrize("sample", ["storm", "overflow"])
def test_the_merged_addresses_follow_the_tables_order(sample):
    """What the fused export loop walks: each merged record's address, cpu
    and seq, in records_frame's merged order."""
    dump = open_dump(str(SAMPLES / sample))
    base = {src.cpu: src.data.ctypes.data for src in dump.traces}
    batches = [_scanned(dump, 4096), *D.DumpStream(dump, batch=97, chunk=2048).parts()]
    for parts in batches:
        addr, cpu, seq = records_compiled.addresses(parts)
        want = records.records_frame(parts, merge=True, columns=["cpu", "seq", "offset"])
        assert cpu.tolist() == want["cpu"].to_list()
        assert seq.tolist() == want["seq"].to_list()
        assert (addr - np.array([base[c] for c in cpu.tolist()])).tolist() == \
            want["offset"].to_list()


def test_without_the_compiled_merge_the_fused_loop_takes_numpys(monkeypatch):
    from ktrace_decode.pipeline import fused, streamed

    parts = _scanned(open_dump(str(SAMPLES / "storm")), 1024)
    want = fused.events_of(parts, streamed.KEPT_EVENTS, streamed.KEPT_COLUMNS)
    monkeypatch.setattr(records_compiled, "MAX_RUNS", 0)
    assert records_compiled.addresses(parts) is None
    got = fused.events_of(parts, streamed.KEPT_EVENTS, streamed.KEPT_COLUMNS)
    assert got.csv.tobytes() == want.csv.tobytes()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_construct_slow_path_agrees_field_for_field(data):
    """One CPU, scanned with the compiled walk, written by the compiled
    loops: the construct decoder's table (slowpath.py, in file order, the
    merged table put back in seq order), damage and all."""
    import sys

    from ktrace_decode import slowpath

    sys.path.insert(0, str(Path(__file__).parent / "robustness"))
    from rb_damage import damaged_dumps

    d, _ = data.draw(damaged_dumps())
    raw = bytes(d.data)
    parts = _scanned(_dump(raw), 512, walk=True)
    slow, _, _ = slowpath.decode_bytes(raw)
    if not parts:
        assert slow.height == 0
        return
    assert_frame_equal(records_compiled.frame(parts).sort("seq"), slow)
