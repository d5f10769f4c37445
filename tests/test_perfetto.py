"""Perfetto / Chrome Trace Event export: format rules, tracks, values."""

import itertools
import json

import jsonschema
import polars as pl

from ktrace_decode import perfetto, schema
from ktrace_decode.cli import main
from ktrace_decode.formats import layouts as L

# The parts of the Trace Event Format we emit, as a JSON schema.
TRACE_SCHEMA = {
    "type": "object",
    "required": ["traceEvents"],
    "properties": {"traceEvents": {"type": "array", "items": {
        "type": "object",
        "required": ["ph", "ts", "pid", "name"],
        "properties": {
            "ph": {"enum": ["X", "i", "M"]},
            "ts": {"type": "integer", "minimum": 0},
            "dur": {"type": "integer", "minimum": 0},
            "pid": {"type": "integer"}, "tid": {"type": "integer"},
            "s": {"enum": ["g", "p", "t"]},
            "args": {"type": "object"},
        },
        "allOf": [
            {"if": {"properties": {"ph": {"const": "X"}}}, "then": {"required": ["dur", "tid"]}},
            {"if": {"properties": {"ph": {"const": "i"}}}, "then": {"required": ["s", "tid"]}},
        ],
    }}},
}


def _events(rows):
    cols = list(schema.EVENTS)
    full = [dict.fromkeys(cols) | r for r in rows]
    for i, r in enumerate(full):
        r.setdefault("seq", i)
        r["seq"] = r["seq"] if r["seq"] is not None else i
        r["record_type"] = "text"
    return pl.DataFrame(full, schema=schema.EVENTS)


EVENTS = _events([
    dict(time_us=100, cpu=0, event="waiting", nodeid=42),
    dict(time_us=110, cpu=1, event="start", nodeid=42),
    dict(time_us=150, cpu=1, event="write_error", nodeid=42, err=-11),
    dict(time_us=160, cpu=0, event="waiting", nodeid=42),
    dict(time_us=1160, cpu=2, event="start", nodeid=42),
    dict(time_us=1170, cpu=3, event="pending", nodeid=42, fh=9),
    dict(time_us=1300, cpu=2, event="end", nodeid=42),
    dict(time_us=1400, cpu=0, event="other", text="x: y"),
])
INV = pl.DataFrame([dict(nodeid=42, end_us=1300)]).with_columns(
    pl.col("nodeid").cast(pl.UInt64), pl.col("end_us").cast(pl.UInt64))
DROPS = pl.DataFrame({"cpu": [1], "after_us": [200], "before_us": [900], "at_least": [5]},
                     schema={"cpu": pl.UInt16, "after_us": pl.UInt64, "before_us": pl.UInt64,
                             "at_least": pl.UInt32})


def test_attempts_and_instants():
    evs = perfetto.trace_events(EVENTS, INV, DROPS, "dump")
    doc = json.loads(perfetto.to_json([evs]))
    jsonschema.validate(doc, TRACE_SCHEMA)
    xs = [e for e in doc["traceEvents"] if e["ph"] == "X" and e["name"] == "invalidate"]
    assert [(e["ts"], e["dur"], e["args"]["outcome"]) for e in xs] == [
        (110, 40, "write_error"), (1160, 140, "end")]
    inst = [(e["name"], e["ts"]) for e in doc["traceEvents"] if e["ph"] == "i"]
    assert sorted(inst) == [("pending", 1170), ("waiting", 100), ("waiting", 160),
                            ("write_error", 150)]


def test_overlapping_waits_get_their_own_tracks():
    evs = perfetto.trace_events(EVENTS, INV, DROPS, "dump")
    waits = [e for e in evs if e["ph"] == "X" and e["name"] == "open blocked"]
    assert sorted((e["ts"], e["dur"]) for e in waits) == [(100, 1200), (160, 1140)]
    assert len({e["tid"] for e in waits}) == 2  # they overlap: two tracks
    by_tid: dict[int, list] = {}
    for e in evs:
        if e["ph"] == "X":
            by_tid.setdefault(e["tid"], []).append((e["ts"], e["ts"] + e["dur"]))
    for spans in by_tid.values():
        spans.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_loss_track_and_names():
    evs = perfetto.trace_events(EVENTS, INV, DROPS, "dump")
    loss = [e for e in evs if e.get("cat") == "loss"]
    assert [(e["ts"], e["dur"], e["name"]) for e in loss] == [(200, 700, ">=5 records lost")]
    names = {e["args"]["name"] for e in evs if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {"nodeid 42 (userspace 41)", "loss cpu 1", "nodeid 42 blocked opens #1",
            "nodeid 42 blocked opens #2"} <= names


def _drops(rows):
    return pl.DataFrame(rows, schema={"cpu": pl.UInt16, "after_us": pl.UInt64,
                                      "before_us": pl.UInt64, "at_least": pl.UInt32},
                        orient="row")


def test_a_loss_slice_never_has_a_negative_duration():
    # CPU 1's clock went back across the drop: the record before it says
    # 5000, the one after 1000. The slice had dur -4000.
    drops = _drops([(1, 5000, 1000, 7), (1, 6000, 6500, 2), (2, None, 300, 1)])
    evs = perfetto.trace_events(EVENTS, INV, drops, "dump")
    jsonschema.validate(json.loads(perfetto.to_json([evs])), TRACE_SCHEMA)
    loss = [(e["ts"], e["dur"], e["args"]) for e in evs if e.get("cat") == "loss"]
    assert loss == [
        (1000, 4000, {"at_least": 7, "cpu": 1, "clock_went_back": True}),
        (6000, 500, {"at_least": 2, "cpu": 1}),
        (300, 0, {"at_least": 1, "cpu": 2}),  # nothing before it on that CPU
    ]


def test_export_of_a_drop_across_a_backwards_clock(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    (d / "trace0").write_bytes(L.build_record(1, 5000, L.text_payload("fuse_open: a"))
                               + L.build_record(1, 1000, L.text_payload("fuse_open: b"), ovfl=7))
    assert main(["export", str(d), "--out", str(tmp_path / "o"), "--format", "perfetto"]) == 0
    doc = json.loads((tmp_path / "o" / "trace.json").read_text())
    jsonschema.validate(doc, TRACE_SCHEMA)
    (loss,) = [e for e in doc["traceEvents"] if e.get("cat") == "loss"]
    assert (loss["ts"], loss["dur"]) == (1000, 4000)


BIG = 2**60  # nodeid * 64 went past a u64 from 2**58


def _many_tracks():
    evs = _events([
        dict(time_us=100, cpu=0, event="waiting", nodeid=42),
        dict(time_us=110, cpu=1, event="start", nodeid=42),
        dict(time_us=160, cpu=0, event="waiting", nodeid=42),
        dict(time_us=200, cpu=0, event="start", nodeid=1_000_000),
        dict(time_us=210, cpu=0, event="waiting", nodeid=1_000_000),
        dict(time_us=250, cpu=0, event="end", nodeid=1_000_000),
        dict(time_us=300, cpu=1, event="start", nodeid=BIG),
        dict(time_us=350, cpu=1, event="pending", nodeid=BIG, fh=3),
        dict(time_us=1300, cpu=2, event="end", nodeid=42),
        dict(time_us=1400, cpu=1, event="end", nodeid=BIG),
    ])
    inv = pl.DataFrame({"nodeid": [42, 1_000_000, BIG], "end_us": [1300, 250, 1400]},
                       schema={"nodeid": pl.UInt64, "end_us": pl.UInt64})
    return perfetto.trace_events(evs, inv, _drops([(0, 150, 180, 3), (1, 400, 500, 1)]), "d")


def test_track_ids_are_small_sequential_and_never_shared():
    # Before: nodeid 1000000's track was tid 1000000, which is also "loss cpu
    # 0" (1_000_000 + cpu); waits of nodeid 2**60 had tid 2_000_000 + 2**66.
    evs = _many_tracks()
    names = {e["tid"]: e["args"]["name"] for e in evs
             if e["ph"] == "M" and e["name"] == "thread_name"}
    assert names == {
        1: "nodeid 42 (userspace 41)", 2: "nodeid 1000000 (userspace 999999)",
        3: f"nodeid {BIG} (userspace {BIG - 1})",
        4: "nodeid 42 blocked opens #1", 5: "nodeid 42 blocked opens #2",
        6: "nodeid 1000000 blocked opens #1",
        7: "loss cpu 0", 8: "loss cpu 1",
    }
    on = {}
    for e in evs:
        if e["ph"] != "M":
            on.setdefault(names[e["tid"]], []).append((e["name"], e["ts"]))
    assert on["nodeid 1000000 (userspace 999999)"] == [("invalidate", 200), ("waiting", 210)]
    assert on["loss cpu 0"] == [(">=3 records lost", 150)]
    assert on[f"nodeid {BIG} (userspace {BIG - 1})"] == [("invalidate", 300), ("pending", 350)]
    sort = {e["tid"]: e["args"]["sort_index"] for e in evs
            if e["ph"] == "M" and e["name"] == "thread_sort_index"}
    assert sort == {1: 0, 2: 1, 3: 2, 4: 3, 5: 3, 6: 4, 7: 6, 8: 7}
    assert perfetto.to_json([evs]) == perfetto.to_json([_many_tracks()])  # deterministic
