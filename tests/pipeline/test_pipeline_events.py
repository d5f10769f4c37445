"""Records -> events: the catalogue decides, the nodeid is normalised, nothing is lost."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pl_builders import Trace, iotimes, random_trace, text
from polars.testing import assert_frame_equal

from ktrace_decode import schema
from ktrace_decode.decode import decode
from ktrace_decode.formats import layouts as L
from ktrace_decode.formats import messages as M
from ktrace_decode.pipeline.events import catalogue_events, classified, events

SAMPLES = {
    "pending": dict(fh=123456789012, nodeid=77),
    "waiting": dict(nodeid=77),
    "start": dict(nodeid=77),
    "write_error": dict(nodeid=77, err=-11),
    "pages_error": dict(nodeid=77, err=-16),
    "end": dict(nodeid=77),
    "cs_latency": dict(csid=5, latency=10, cwnd=3, clamp=4),
    "cs_blacklist": dict(csid=5, by="me", err=-110),
    "cs_whitelist": dict(csid=5, by="me"),
    "cs_congestion": dict(csid=5),
    "cs_io_error": dict(xid_type=1, xid_origin=2, xid_val=3, err=-5, offender=9, ireq="00ab",
                        chunk=1, offset=2, size=3),
    "read_map": dict(map="0000000012ab", chunk=7, state=0x1f, flags=0x20, _w=4, _p=4,
                     cs_list="1,2,3", csid=5, is_seq=0),
}


def run(tr: Trace, tmp_path) -> pl.DataFrame:
    return events(decode(tr.write(tmp_path / "d")).records.lazy()).collect()


def test_every_catalogue_message_is_recognised_with_typed_fields(tmp_path):
    assert set(SAMPLES) == set(M.BY_EVENT)  # a new message needs a sample here
    tr = Trace()
    for i, (event, values) in enumerate(SAMPLES.items()):
        msg = M.BY_EVENT[event]
        tr.add_text(0, 100 + i, M.render(msg, **values))
    got = run(tr, tmp_path)
    assert got.schema == pl.Schema(schema.EVENTS)
    assert got["event"].to_list() == list(SAMPLES)
    assert got["function"].to_list() == [M.BY_EVENT[e].function for e in SAMPLES]
    # Every patch message printed 77: that is kernel nodeid 78 when the work
    # function prints it (nodeid - 1), and 77 from fuse_open / fuse_link_rw_file.
    want_nodeid = [77 + M.BY_EVENT[e].nodeid_offset if "nodeid" in v else None
                   for e, v in SAMPLES.items()]
    assert got["nodeid"].to_list() == want_nodeid
    assert got["fh"].to_list() == [v.get("fh") for v in SAMPLES.values()]
    assert got["err"].to_list() == [v.get("err") for v in SAMPLES.values()]
    assert got["record_type"].unique().to_list() == ["text"]


def test_the_same_inode_has_one_nodeid_whatever_function_printed_it(tmp_path):
    tr = Trace()
    for ev in ("waiting", "pending", "start", "write_error", "pages_error", "end"):
        tr.add_event(0, 10, ev, nodeid=4242)
    got = run(tr, tmp_path)
    assert got["nodeid"].unique().to_list() == [4242]
    # and the work function really printed 4241
    assert "[4241]" in got.filter(pl.col("event") == "start")["text"][0]


def test_other_unknown_and_iotimes(tmp_path):
    tr = Trace()
    tr.add_text(0, 1, "fuse_inval_files_work: invalidate_file on [12] starts now")  # not anchored
    tr.add_text(0, 2, "some_func: a: b: c")
    tr.add_text(0, 3, "no separator")
    tr.add_text(0, 4, "")
    tr.add(0, 5, iotimes(5, ino=41))
    tr.add(0, 6, L.build_record(9, 6, b"\x01\x02"))
    tr.add_text(0, 7, "fuse_open: waiting for invalidate_file on [99999999999999999999] to "
                      "complete")  # does not fit a u64: no nodeid rather than a wrong one
    got = run(tr, tmp_path)
    assert got.select("record_type", "event", "function", "nodeid").rows() == [
        ("text", "other", "fuse_inval_files_work", None),
        ("text", "other", "some_func", None),
        ("text", "other", None, None),
        ("text", "other", None, None),
        ("iotimes", "iotimes", None, 42),
        ("unknown", "unknown", None, None),
        ("text", "waiting", "fuse_open", None),
    ]
    assert got["text"].to_list()[:4] == ["fuse_inval_files_work: invalidate_file on [12] starts "
                                         "now", "some_func: a: b: c", "no separator", ""]
    assert got["text"][4] is None and got["text"][5] is None


def test_a_nodeid_that_would_pass_2_64_is_empty_not_wrapped(tmp_path):
    """The work function prints nodeid - 1: a printed 2**64 - 1 (any number
    of leading zeros) has no nodeid, and an iotimes record's ino 2**64 - 1
    neither, rather than nodeid 0, which would join another file's events."""
    top = 2**64 - 1
    tr = Trace()
    tr.add_text(0, 1, f"fuse_inval_files_work: invalidate_file on [{top}] starts")
    tr.add_text(0, 2, f"fuse_inval_files_work: invalidate_file on [000{top}] ends")
    tr.add_text(0, 3, f"fuse_inval_files_work: invalidate_file on [{top - 1}] ends")
    tr.add_text(0, 4, f"fuse_open: waiting for invalidate_file on [{top}] to complete")
    def iot(t: int, ino: int) -> bytes:
        hdr = dict(chunk=0, offset=0, size=4096, start_time=t - 1, local_delay=0, lat=1,
                   ino=ino, type=257)
        return L.build_record(L.TYPE_IOTIMES, t, L.iotimes_payload(
            hdr, [dict(csid=1, misc=0, ts_net=1, ts_io=1)]))

    tr.add(0, 5, iot(5, top))
    tr.add(0, 6, iot(6, top - 1))
    got = run(tr, tmp_path)
    assert got.select("event", "nodeid").rows() == [
        ("start", None), ("end", None), ("end", top), ("waiting", top),
        ("iotimes", None), ("iotimes", top)]
    dump = str(tmp_path / "d")
    from ktrace_decode.pipeline import tables

    recs = decode(dump).records.lazy()
    assert tables.iotimes(recs).collect()["nodeid"].to_list() == [None, top]
    cs = decode(dump).cs.lazy()
    assert tables.iotimes_cs(recs, cs).collect()["nodeid"].to_list() == [None, top]


def test_long_message_cut_at_nul_is_other_not_misparsed(tmp_path):
    body = text("cs_blacklist", csid=5, by="x" * 300, err=-5)
    rec = L.build_record(L.TYPE_TEXT, 9, body[:255].encode() + b"\0" + b"junk" * 20)
    tr = Trace()
    tr.add(0, 9, rec)
    got = run(tr, tmp_path)
    assert got.select("event", "function", "err").row(0) == ("other", "cs_blacklist", None)


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_the_catalogue_slow_path(seed, tmp_path):
    records = decode(random_trace(seed, n=300).write(tmp_path / "d")).records
    got = events(records.lazy()).collect()
    want = []
    for t in records["text"].to_list():
        parsed = M.parse(t) if t is not None else None
        if parsed is None:
            want.append((None, None, None))
            continue
        msg, f = parsed
        nodeid = f["nodeid"] + msg.nodeid_offset if msg.nodeid_offset is not None else None
        want.append((msg.event, nodeid, f.get("err")))
    is_cat = ~pl.col("event").is_in(["other", "iotimes", "unknown"])
    got_rows = got.select(pl.when(is_cat).then(pl.col(c)) for c in ("event", "nodeid", "err"))
    assert got_rows.rows() == want


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("names", [("start", "write_error", "pages_error", "end", "pending",
                                    "waiting"), ("waiting", "cs_latency"), ("cs_congestion", "end"),
                                   ("read_map",)])
def test_catalogue_events_are_the_events_of_those_names(seed, names, tmp_path):
    records = decode(random_trace(seed, n=300).write(tmp_path / "d")).records.lazy()
    columns = ("time_us", "event", "nodeid", "err", "function")
    want = events(records).filter(pl.col("event").is_in(names)).select(
        *columns).with_columns(pl.col("event").cast(pl.Enum(names)))
    got = catalogue_events(classified(records), names, columns).collect()
    assert got.height > 0 or names == ("read_map",)  # random traces print no read map
    assert_frame_equal(got, want.collect())


def test_catalogue_events_are_catalogue_events_only():
    with pytest.raises(ValueError, match=r"not catalogue events: \['iotimes', 'other'\]"):
        catalogue_events(classified(schema.empty(schema.RECORDS).lazy()),
                         ("start", "other", "iotimes"), ("event",))


def test_order_and_keys_follow_the_records(tmp_path):
    records = decode(random_trace(3).write(tmp_path / "d")).records
    got = events(records.lazy()).collect()
    assert_frame_equal(got.select("time_us", "cpu", "seq", "ovfl"),
                       records.select("time_us", "cpu", "seq", "ovfl"))


def test_empty_records_give_empty_events():
    got = events(schema.empty(schema.RECORDS).lazy()).collect()
    assert got.is_empty() and got.schema == pl.Schema(schema.EVENTS)


# --- the fast path (Polars' regex engine) against the slow path (Python's re) ----

_UINT64 = 1 << 64


def _records(texts: list[str]) -> pl.LazyFrame:
    """Text records as the decoder hands them on (only what events() reads is set)."""
    n = len(texts)
    cols = {"text": texts, "type": [L.TYPE_TEXT] * n, "time_us": list(range(n)),
            "cpu": [0] * n, "seq": list(range(n)), "ovfl": [0] * n}
    return pl.DataFrame({c: cols.get(c, [None] * n) for c in schema.RECORDS},
                        schema=schema.RECORDS).lazy()


def _value(field: M.Field) -> st.SearchStrategy:
    """Printed values of one conversion, out-of-range ones included."""
    if field.kind == "int":
        return st.integers(-(1 << 64), 1 << 64)
    if field.kind in ("uint", "hex"):
        return st.integers(0, _UINT64 + 5)
    if field.kind == "ptr":
        return st.sampled_from(["(null)", "(ptrval)", "00ab", "0x1f"])
    return st.text(st.sampled_from("ab ,:-[]1\n"), max_size=6)


@st.composite
def _near_catalogue_text(draw: st.DrawFn) -> str:
    msg = draw(st.sampled_from(M.CATALOGUE))
    values = {f.name: draw(_value(f)) for f in msg.fields}
    values.update({a: draw(st.integers(0, 3)) for a in msg.args if a not in values})  # '*'
    body = M.render(msg, **values)
    pos = draw(st.integers(0, len(body)))
    char = draw(st.sampled_from(["\n", " ", "x", "7", "-", "\u0663", ":", "]"]))
    how = draw(st.sampled_from(["as is", "append", "insert", "drop", "digit", "cut"]))
    if how == "append":
        return body + char
    if how == "insert":
        return body[:pos] + char + body[pos:]
    if how == "drop":
        return body[:pos] + body[pos + 1:]
    if how == "digit":  # a non-ASCII digit where an ASCII one was
        return body.replace("1", "\u0661", 1)
    if how == "cut":
        return body[:pos]
    return body


def _expected(t: str) -> tuple[str | None, int | None, int | None, int | None]:
    """(event, nodeid, fh, err) as the catalogue's slow path reads ``t``; a
    printed number that does not fit its column is null (non-strict casts)."""
    parsed = M.parse(t)
    if parsed is None:
        return "other", None, None, None
    msg, f = parsed
    nodeid = f.get("nodeid") if msg.nodeid_offset is not None else None
    if nodeid is not None:  # printed + offset in the kernel's u64 arithmetic
        nodeid = (nodeid + msg.nodeid_offset) % _UINT64 if 0 <= nodeid < _UINT64 else None
    fh = f.get("fh")
    fh = fh if fh is not None and 0 <= fh < _UINT64 else None
    err = f.get("err")
    err = err if err is not None and -(1 << 31) <= err < (1 << 31) else None
    return msg.event, nodeid, fh, err


@settings(max_examples=300, deadline=None)
@given(st.lists(_near_catalogue_text(), min_size=1, max_size=40))
def test_fast_path_classifies_near_misses_like_the_slow_path(texts):
    """Trailing newlines, cut or garbled numbers and non-ASCII digits: Polars'
    regexes and Python's ``re`` must agree on every one (both read the
    patterns from formats/messages.py, but the engines differ: ``$`` and
    ``\\d`` do not mean the same in both unless the patterns say so)."""
    got = events(_records(texts)).collect().select("event", "nodeid", "fh", "err").rows()
    assert got == [_expected(t) for t in texts]
