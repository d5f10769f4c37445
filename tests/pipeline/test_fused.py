"""The fused loop (pipeline/fused.py) writes the general path's events, byte for byte.

The reference for a batch is the general path itself: its records table
(``merged_frames``), ``events()`` written by Polars' own ``write_csv``, and
``catalogue_events`` for the kept rows.  Every batch the loop accepts must
give exactly those; a batch it refuses must hold a record of the kind it
names, at the row it names.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pl_builders import random_trace
from pl_texts import catalogue_text
from polars.testing import assert_frame_equal

from ktrace_decode import decode as D
from ktrace_decode import iolatency
from ktrace_decode.errors import InputError
from ktrace_decode.formats import layouts as L
from ktrace_decode.pipeline import bytematch, fused, storage, streamed, tables
from ktrace_decode.pipeline import events as E
from ktrace_decode.pipeline.export import SCHEMAS
from ktrace_decode.safe_output import OutputDir
from ktrace_decode.sources import Dump, TraceSource, open_dump

pytestmark = pytest.mark.skipif(not fused.worth_it(10**9), reason="numba is not installed")

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
KEEP, COLUMNS = streamed.KEPT_EVENTS, streamed.KEPT_COLUMNS


def _general(parts: list[D.Part], source: str | None
             ) -> tuple[bytes, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The general path's events.csv rows, kept events, records and
    chunk-server entries of a batch."""
    batch, cs = D.merged_frames(parts, streamed.RECORD_COLUMNS)
    cl = E.classified(batch.lazy())
    ev = E.from_classified(cl).collect()
    if source is not None:
        ev = ev.select(pl.lit(source, pl.String).alias("source"), pl.all())
    kept = E.catalogue_events(cl, KEEP, COLUMNS).collect()
    return ev.write_csv(include_header=False).encode(), kept, batch, cs


def _raw_text(parts: list[D.Part], cpu: int, offset: int) -> bytes:
    """What the records table reads as the text of the record at ``offset``:
    its payload to the NUL (255 bytes for the long-message bug), one
    trailing newline off, before any cut at an inner NUL."""
    part = next(p for p in parts if p.cpu == cpu)
    pdu = int(part.buf[offset + 4]) | int(part.buf[offset + 5]) << 8
    n = L.KTRACE_LOG_BUF_SIZE - 1 if pdu > L.KTRACE_LOG_BUF_SIZE else max(pdu - 1, 0)
    raw = part.buf[offset + L.HEADER_SIZE : offset + L.HEADER_SIZE + n].tobytes()
    return raw[:-1] if raw.endswith(b"\n") else raw


def _refusal_of(parts: list[D.Part], batch: pl.DataFrame, row: int) -> str | None:
    """Why the general path's record ``row`` cannot be written by the loop, if it cannot."""
    if batch["type"][row] != L.TYPE_TEXT:
        return None
    raw = _raw_text(parts, batch["cpu"][row], batch["offset"][row])
    if b"\0" in raw:
        return "nul in text"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not utf-8"
    arr = pl.Series([raw.decode()]).to_arrow(compat_level=pl.CompatLevel.newest())
    return "deferred" if bytematch.match(arr, E.programs()).defer[0] else None


def _check_batch(parts: list[D.Part], source: str | None = None) -> fused.FusedEvents | None:
    got = fused.events_of(parts, KEEP, COLUMNS, source=source)
    csv, kept, batch, cs = _general(parts, source)
    if isinstance(got, fused.Refused):
        # The row named, and no row before it, is one the loop cannot write.
        assert _refusal_of(parts, batch, got.row) == got.reason
        assert all(_refusal_of(parts, batch, r) is None for r in range(got.row))
        return None
    assert all(_refusal_of(parts, batch, r) is None for r in range(batch.height))
    assert got.rows == batch.height
    assert got.csv is not None and got.csv.tobytes() == csv
    assert_frame_equal(got.kept, kept)
    _check_iotimes(got.iotimes, batch, cs, source)
    # Without rows asked for, the same kept events.
    bare = fused.events_of(parts, KEEP, COLUMNS, csv=False)
    assert isinstance(bare, fused.FusedEvents) and bare.csv is None
    assert_frame_equal(bare.kept, kept)
    return got


def _check_iotimes(io: fused.IotimesRows, batch: pl.DataFrame, cs: pl.DataFrame,
                   source: str | None) -> None:
    """What the loop copied aside gives the general path's iotimes tables:
    iotimes.csv and iotimes_cs.csv byte for byte (Polars' write_csv), the
    entries for cs.csv, the request counts and the slowest IOs."""
    recs, cs_lf = batch.lazy(), cs.lazy()
    iot = tables.iotimes(recs).collect()
    iot_cs = tables.iotimes_cs(recs, cs_lf).collect()
    if source is not None:
        iot, iot_cs = (df.select(pl.lit(source, pl.String).alias("source"), pl.all())
                       for df in (iot, iot_cs))
    assert io.iotimes_csv().tobytes() == iot.write_csv(include_header=False).encode()
    assert io.entries_csv().tobytes() == iot_cs.write_csv(include_header=False).encode()
    ent = iolatency.cs_entries(recs, cs_lf).collect()
    assert_frame_equal(io.entries().sort("csid", "io_type", "idx", "ts_net", "ts_io"),
                       ent.sort("csid", "io_type", "idx", "ts_net", "ts_io"))
    iot = tables.iotimes(recs).collect()
    assert io.request_counts() == storage.io_counts(iot)
    for top in (0, 1, 3, 10**6):
        assert_frame_equal(io.slowest(top), storage.slowest_io(iot, top))


def _batches(dump: Dump, batch: int, chunk: int = D.STREAM_CHUNK) -> list[list[D.Part]]:
    return list(D.DumpStream(dump, batch=batch, chunk=chunk).parts())


@pytest.mark.parametrize("sample", ["storm", "overflow", "quiet"])
@pytest.mark.parametrize("batch", [1 << 17, 333, 7])
@pytest.mark.parametrize("source", [None, "dumps/a, \"b\""])
def test_every_batch_of_every_sample(sample, batch, source):
    written = 0
    for parts in _batches(open_dump(str(SAMPLES / sample)), batch):
        got = _check_batch(parts, source)
        assert got is not None  # the samples are all clean text
        written += got.rows
    assert written == D.decode(str(SAMPLES / sample)).n_records


# --- generated dumps: any text, any bytes, any record type -------------------------

_FUNCTIONS = ["fuse_inval_files_work", "fuse_open", "pcs_cs_deaccount", "f", ""]


@st.composite
def _text_payload(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["catalogue", "catalogue", "unicode", "bytes", "long", "quotes",
                                 "function"]))
    if kind == "catalogue":
        body = draw(catalogue_text()).encode()
    elif kind == "unicode":
        body = (draw(st.sampled_from(_FUNCTIONS)) + ": " + draw(st.text(max_size=40))).encode()
    elif kind == "quotes":
        body = (draw(st.sampled_from(_FUNCTIONS)) + draw(st.sampled_from([": ", ":", ""]))
                + draw(st.text(',"\r\n ab\x00é', max_size=30))).encode()
    elif kind == "function":  # one that needs quotes, or not, in a text that may not
        body = (draw(st.text(',"\r\n ab', min_size=0, max_size=6)) + ": "
                + draw(st.text('ab ,"', max_size=10))).encode()
    elif kind == "bytes":
        body = draw(st.binary(max_size=40))
    else:  # the kernel's long-message bug: 255 bytes, a NUL, then unrelated memory
        head = draw(catalogue_text()).encode()
        body = (head * (256 // max(len(head), 1) + 1))[:255]
        tail = draw(st.binary(min_size=1, max_size=30))
        return body + b"\0" + tail
    if draw(st.booleans()):
        body += b"\n"
    return body + b"\0"


@st.composite
def _record(draw: st.DrawFn, t: int) -> bytes:
    kind = draw(st.sampled_from(["text", "text", "text", "iotimes", "unknown"]))
    ovfl = draw(st.sampled_from([0, 0, 0, 1, 65535]))
    if kind == "text":
        return L.build_record(L.TYPE_TEXT, t, draw(_text_payload()), ovfl)
    if kind == "iotimes":
        u64 = st.integers(0, 2**64 - 1)
        hdr = dict(chunk=draw(u64), offset=draw(u64), size=draw(u64),
                   start_time=draw(st.sampled_from([0, t - 1, t + 1, 2**52 - 1, 2**52, 2**63,
                                                    2**64 - 1]) | st.integers(0, 2**64 - 1)),
                   local_delay=draw(st.integers(0, 2**32 - 1)),
                   lat=draw(st.integers(0, 2**32 - 1)),
                   ino=draw(st.sampled_from([0, 5, 2**63, 2**64 - 2, 2**64 - 1])),
                   type=draw(st.sampled_from([257, 259, 1, 65535])),
                   pad1=draw(st.integers(0, 2**32 - 1)))
        cs = [dict(csid=draw(u64), misc=draw(u64), ts_net=draw(st.integers(0, 2**32 - 1)),
                   ts_io=0) for _ in range(draw(st.integers(0, 3)))]
        return L.build_record(L.TYPE_IOTIMES, t, L.iotimes_payload(hdr, cs), ovfl)
    # An unknown type (kept raw when a plausible record or the end follows it).
    typ = draw(st.sampled_from([0, 3, 0x7FFF, 0xFFFF]))
    return L.build_record(typ, t, draw(st.binary(max_size=20)), ovfl)


@st.composite
def _dump(draw: st.DrawFn) -> Dump:
    traces = []
    for cpu in range(draw(st.integers(1, 3))):
        t = 1_000_000
        recs = []
        for _ in range(draw(st.integers(0, 25))):
            # Mostly forward, sometimes a tie or a step back (time_backwards).
            t = max(t + draw(st.sampled_from([0, 1, 3, 50, -2])), 0)
            recs.append(draw(_record(t)))
        traces.append(TraceSource(cpu, f"trace{cpu}", np.frombuffer(b"".join(recs), np.uint8)))
    return Dump("mem", traces)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dump=_dump(), batch=st.sampled_from([1, 5, 40, 1 << 17]),
       source=st.sampled_from([None, "x,y"]))
def test_generated_dumps(dump, batch, source):
    for parts in _batches(dump, batch, chunk=512):
        _check_batch(parts, source)


def _one_text(payload: bytes) -> list[D.Part]:
    recs = [L.build_record(L.TYPE_TEXT, 10, L.text_payload("fuse_open: before")),
            L.build_record(L.TYPE_TEXT, 11, payload),
            L.build_record(L.TYPE_TEXT, 12, L.text_payload("fuse_open: after"))]
    dump = Dump("mem", [TraceSource(0, "trace0", np.frombuffer(b"".join(recs), np.uint8))])
    (parts,) = _batches(dump, 1 << 17)
    return parts


@pytest.mark.parametrize(("payload", "reason"), [
    (b"fuse_open: a\0b\0", "nul in text"),
    (b"fuse_open: \xff\xfe\0", "not utf-8"),
    (b"fuse_open: \xed\xa0\x80\0", "not utf-8"),  # a surrogate
    (b"fuse_open: \xe2\x82\0", "not utf-8"),  # cut short by the end
    (b"fuse_inval_files_work: invalidate_file on [1234567890123456789] starts\0", "deferred"),
])
def test_what_the_loop_refuses(payload, reason):
    got = fused.events_of(_one_text(payload), KEEP, COLUMNS)
    assert got == fused.Refused(reason, 1)


@pytest.mark.parametrize("payload", [
    "fuse_open: é ü 日本 \U0001f600".encode() + b"\0",
    b"fuse_open: " + b"\xf4\x8f\xbf\xbf" + b"\0",  # U+10FFFF, the last code point
    b"\n\0", b"\0", b":\0", b": \0",
    b'a,b: x\0', b'a"b: x,y\0', b"a\rb: c\0", b'ab: "quoted"\0', b'a: b: "c"\0',
])
def test_valid_utf8_and_near_empty_texts_are_written(payload):
    _check_batch(_one_text(payload))


# --- whole exports: the loop on, or off -------------------------------------------

def _args(*paths: str) -> argparse.Namespace:
    return argparse.Namespace(paths=list(paths), layout="auto", subbuf_size=L.RELAY_SUBBUF_SIZE,
                              n_subbufs=L.RELAY_N_SUBBUFS)


def _export_csv(out: Path, paths: list[str], loop: bool, monkeypatch: pytest.MonkeyPatch,
                batch: int = 50, chunk: int = D.STREAM_CHUNK) -> dict[str, bytes]:
    monkeypatch.setattr(fused, "worth_it", lambda rows: loop)
    monkeypatch.setattr(streamed, "EXPORT_BATCH", batch)
    monkeypatch.setattr(streamed, "EXPORT_CHUNK", chunk)
    calls: list[int] = []
    events_of = fused.events_of
    monkeypatch.setattr(fused, "events_of", lambda *a, **k: calls.append(1) or events_of(*a, **k))
    with OutputDir(out) as od:
        results, _ = streamed.export_streamed(od, "csv", SCHEMAS, _args(*paths))
    assert bool(calls) == loop
    summaries = [r.summary for r in results]
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())} | {"summary": repr(summaries)}


@pytest.mark.parametrize("paths", [["storm"], ["overflow"], ["quiet", "storm"]])
def test_exports_with_and_without_the_loop_are_identical(paths, tmp_path, monkeypatch):
    dumps = [str(SAMPLES / p) for p in paths]
    on = _export_csv(tmp_path / "on", dumps, True, monkeypatch)
    off = _export_csv(tmp_path / "off", dumps, False, monkeypatch)
    assert on == off


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 40))
def test_exports_of_random_traces_are_identical(tmp_path_factory, seed, batch):
    dump = str(random_trace(seed).write(tmp_path_factory.mktemp("d") / "dump"))
    with pytest.MonkeyPatch.context() as mp:
        on = _export_csv(tmp_path_factory.mktemp("on"), [dump], True, mp, batch)
        off = _export_csv(tmp_path_factory.mktemp("off"), [dump], False, mp, batch)
    assert on == off


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dump=_dump(), batch=st.sampled_from([3, 40]))
def test_exports_of_generated_dumps_are_identical(tmp_path_factory, dump, batch):
    """Any text, any bytes, extreme iotimes fields: the whole export (and its
    summary) is the same with the loop or without it, and never fails."""
    where = tmp_path_factory.mktemp("d")
    for t in dump.traces:
        (where / t.name).write_bytes(t.data.tobytes())

    def export(loop: bool) -> dict[str, bytes] | str:
        with pytest.MonkeyPatch.context() as mp:
            try:
                return _export_csv(tmp_path_factory.mktemp("out"), [str(where)], loop, mp,
                                   batch, 512)
            except InputError as e:  # no record at all: said the same way
                return str(e)

    assert export(True) == export(False)


def test_a_refused_batch_is_written_by_the_general_path(tmp_path, monkeypatch):
    """One record with a NUL inside its text, one not UTF-8: their batches
    go the general way, the others the loop's, and the files are the same."""
    # 100 ms apart: the merge's slack (10 ms) holds back few records.
    recs = [L.build_record(L.TYPE_TEXT, 100_000 * i, L.text_payload(f"fuse_open: m{i}"))
            for i in range(30)]
    recs[7] = L.build_record(L.TYPE_TEXT, 700_000, b"fuse_open: cut\0here\0")
    recs[21] = L.build_record(L.TYPE_TEXT, 2_100_000, b"fuse_open: \xc3\x28\0")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "trace0").write_bytes(b"".join(recs))
    dump = str(tmp_path / "d")
    refused: list[fused.Refused] = []
    events_of = fused.events_of

    def watched(*a, **k):
        got = events_of(*a, **k)
        if isinstance(got, fused.Refused):
            refused.append(got)
        return got

    monkeypatch.setattr(fused, "events_of", watched)
    # Small reads: batches of a few records each.
    on = _export_csv(tmp_path / "on", [dump], True, monkeypatch, batch=4, chunk=128)
    assert [r.reason for r in refused] == ["nul in text", "not utf-8"]
    off = _export_csv(tmp_path / "off", [dump], False, monkeypatch, batch=4, chunk=128)
    assert on == off
    assert b'fuse_open: cut\n' in on["events.csv"]
    assert "fuse_open: \ufffd(".encode() in on["events.csv"]


def test_a_wrong_bound_is_refused_not_written_past(monkeypatch):
    """The loop checks the room left before every row: a caller's bound
    that is too small stops it (the general path then writes the batch)."""
    parts = _one_text(b"fuse_open: " + b"x" * 200 + b"\0")
    monkeypatch.setattr(fused, "_ROW_BYTES", -100)
    got = fused.events_of(parts, KEEP, COLUMNS)
    assert isinstance(got, fused.Refused) and got.reason == "no room"
