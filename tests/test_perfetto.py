"""Perfetto / Chrome Trace Event export: format rules, tracks, values."""

import itertools
import json

import jsonschema
import polars as pl

from ktrace_decode import perfetto, schema

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
