"""Golden bytes and the single source of truth in formats/."""

from pathlib import Path

import numpy as np
import pytest

from helpers import decode_bytes
from ktrace_decode.formats import layouts as L
from ktrace_decode.formats import messages as M
from ktrace_decode.formats import prometheus as P

# One text record, annotated byte by byte.
TEXT_RECORD = (
    b"\x9c\xf5"  # magic 0xf59c, little-endian
    b"\x01\x00"  # type 1 = text
    b"\x3b\x00"  # pdu_len 59 = strlen(message) + NUL
    b"\x02\x00"  # ovfl 2: two records dropped on this CPU just before
    b"\x40\x4b\x4c\x00\x00\x00\x00\x00"  # time 5000000 us
    b"fuse_open: waiting for invalidate_file on [42] to complete\x00"
)

# One iotimes record with one chunk-server entry, annotated field by field.
IOTIMES_RECORD = (
    b"\x9c\xf5"  # magic
    b"\x02\x00"  # type 2 = iotimes
    b"\x50\x00"  # pdu_len 80 = 56 + 1 x 24
    b"\x00\x00"  # ovfl 0
    b"\xbb\x4b\x4c\x00\x00\x00\x00\x00"  # time 5000123 us
    b"\x00\x00\x10\x00\x00\x00\x00\x00"  # chunk 0x100000
    b"\x00\x10\x10\x00\x00\x00\x00\x00"  # offset 0x101000
    b"\x00\x10\x00\x00\x00\x00\x00\x00"  # size 4096
    b"\x58\x47\x4c\x00\x00\x00\x00\x00"  # start_time 4999000 us
    b"\x0a\x00\x00\x00"  # local_delay 10 us
    b"\x61\x04\x00\x00"  # lat 1121 us
    b"\x29\x00\x00\x00\x00\x00\x00\x00"  # ino 41 (= kernel nodeid 42 - 1)
    b"\x01\x01"  # type 257 = read
    b"\x01"  # cses 1
    b"\x00"  # pad
    b"\x07\x00\x00\x00"  # pad1 / chid 7
    b"\xe9\x03\x00\x00\x00\x00\x00\x00"  # cs[0].csid 1001
    b"\x05\x00\x00\x00\x00\x00\x00\x80"  # cs[0].misc: bit 63 cached, timestamp 5
    b"\xc8\x00\x00\x00"  # cs[0].ts_net 200 us
    b"\x84\x03\x00\x00"  # cs[0].ts_io 900 us
)


def test_text_record_parses_and_builds_back():
    rec = L.Record.parse(TEXT_RECORD)
    assert rec.header.magic == 0xF59C
    assert (rec.header.type, rec.header.pdu_len, rec.header.ovfl, rec.header.time) == (
        1, 59, 2, 5_000_000)
    assert rec.payload.raw == b"fuse_open: waiting for invalidate_file on [42] to complete\0"
    msg = M.BY_EVENT["waiting"]
    text = M.render(msg, nodeid=42)
    assert L.build_record(L.TYPE_TEXT, 5_000_000, L.text_payload(text), ovfl=2) == TEXT_RECORD


def test_iotimes_record_parses_and_builds_back():
    rec = L.Record.parse(IOTIMES_RECORD)
    io = rec.payload.hdr
    assert (io.chunk, io.offset, io.size, io.start_time) == (0x100000, 0x101000, 4096, 4_999_000)
    assert (io.local_delay, io.lat, io.ino, io.type, io.cses, io.pad1) == (10, 1121, 41, 257, 1, 7)
    assert L.IOTIMES_REQUEST_TYPES[io.type] == "read"
    (cs,) = rec.payload.cs
    assert (cs.csid, cs.ts_net, cs.ts_io) == (1001, 200, 900)
    assert cs.misc & L.CS_MISC_CACHED and cs.misc & L.CS_MISC_TIME_MASK == 5
    built = L.build_record(L.TYPE_IOTIMES, 5_000_123, L.iotimes_payload(
        dict(chunk=0x100000, offset=0x101000, size=4096, start_time=4_999_000, local_delay=10,
             lat=1121, ino=41, type=257, pad1=7),
        [dict(csid=1001, misc=(1 << 63) | 5, ts_net=200, ts_io=900)]))
    assert built == IOTIMES_RECORD


def test_fast_decoder_reads_the_golden_records():
    recs, cs, rep = decode_bytes(TEXT_RECORD + IOTIMES_RECORD)
    assert recs["text"].to_list() == [
        "fuse_open: waiting for invalidate_file on [42] to complete", None]
    assert recs["ovfl"].to_list() == [2, 0]
    assert recs["offset"].to_list() == [0, len(TEXT_RECORD)]
    row = recs.row(1, named=True)
    assert (row["io_ino"], row["io_lat"], row["io_chid"], row["n_cs"]) == (41, 1121, 7, 1)
    assert cs.row(0, named=True) == dict(cpu=0, seq=1, idx=0, csid=1001, misc=(1 << 63) | 5,
                                         ts_net=200, ts_io=900)
    assert rep.skips == []


@pytest.mark.parametrize("struct", [L.TraceHeader, L.IotimesHeader, L.IotimesCs])
def test_numpy_dtypes_are_derived_from_construct(struct):
    dt = L.numpy_dtype(struct)
    assert dt.itemsize == struct.sizeof()
    blob = bytes(range(dt.itemsize))
    fields = np.frombuffer(blob, dt)[0]
    parsed = struct.parse(blob) if struct is not L.TraceHeader else None
    if parsed is not None:
        for name in dt.names:
            assert int(fields[name]) == parsed[name]


def test_sizes_match_the_spec():
    assert (L.HEADER_SIZE, L.IOTIMES_HEADER_SIZE, L.IOTIMES_CS_SIZE) == (16, 56, 24)
    assert sorted(P.BY_SIZE) == [3008, 3840, 4032]


@pytest.mark.parametrize("msg", M.CATALOGUE, ids=lambda m: m.event)
def test_every_message_renders_and_parses_back(msg):
    values = {}
    for f in msg.fields:
        values[f.name] = {"int": -17, "uint": 42, "hex": 0xAB, "ptr": "00000000c0ffee00",
                          "str": "cs#1"}[f.kind]
    for a in msg.args:
        values.setdefault(a, 4)  # '*' width / precision arguments
    text = M.render(msg, **values)
    assert text.startswith(msg.function + ": ")
    parsed = M.parse(text)
    assert parsed is not None and parsed[0] is msg
    for f in msg.fields:
        if f.kind != "str":  # %*.*s pads/cuts strings by design
            assert parsed[1][f.name] == values[f.name]


def test_numbering_quirk_is_declared_once():
    # The work function prints nodeid - FUSE_ROOT_ID, fuse_open/link print the raw nodeid.
    assert {m.event: m.nodeid_offset for m in M.CATALOGUE if m.origin == "patch"} == {
        "pending": 0, "waiting": 0, "start": 1, "write_error": 1, "pages_error": 1, "end": 1}
    assert M.render(M.BY_EVENT["start"], nodeid=41) == (
        "fuse_inval_files_work: invalidate_file on [41] starts")


def test_readme_message_table_is_generated_from_the_catalogue():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert M.catalogue_markdown() in readme


@pytest.mark.parametrize(("lat", "bucket"), [(0, 0), (99, 0), (999, 9), (1000, 10), (9999, 18),
                                             (10_000, 19), (99_999, 27), (100_000, 28),
                                             (999_999, 36), (1_000_000, 37), (9_999_999, 45),
                                             (10_000_000, 46), (10**9, 46)])
def test_prometheus_buckets(lat, bucket):
    assert P.bucket_of(lat) == bucket


def test_readme_export_schema_is_generated_from_the_code():
    from ktrace_decode.pipeline.export_doc import markdown

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert markdown().strip() in readme
