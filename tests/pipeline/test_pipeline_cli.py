"""ktrace analyze / export through the real entry point: exit codes, stdout, stderr, files."""

from __future__ import annotations

import json
import time

import jsonschema
import polars as pl
import pytest
from pl_builders import Trace
from pl_scenario import incident
from polars.testing import assert_frame_equal

from ktrace_decode import schema
from ktrace_decode.cli import main
from ktrace_decode.formats import layouts as L
from ktrace_decode.pipeline.analyze_schema import ANALYZE_SCHEMA
from ktrace_decode.pipeline.export import SCHEMAS
from ktrace_decode.pipeline.storage import render_sections

FILES = [f"{stem}.csv" for stem in SCHEMAS]


@pytest.fixture
def dump(tmp_path):
    return str(incident().write(tmp_path / "dump"))


def test_analyze_report(dump, capsys):
    assert main(["analyze", dump]) == 0
    out, err = capsys.readouterr()
    assert "5 episodes on 4 nodeids: 3 complete, 1 in progress, 1 without a start" in out
    assert "p50 1.000 ms   p90 5.000 ms   p99 5.000 ms   max 5.000 ms   total 6.300 ms" in out
    assert "STILL IN PROGRESS" in out
    assert "WARNING: at least 7 records were dropped" in out
    assert "worst wait 1.100 ms (nodeid 10)" in out
    lines = out.splitlines()
    head = lines.index("slowest 3") + 1
    # right-aligned columns: every value ends where its header ends
    header, *rows = lines[head:head + 4]
    for name in ("nodeid", "duration", "attempts", "status"):
        edge = header.index(name) + len(name)
        assert all(r[edge - 1] != " " and r[edge:edge + 1] in ("", " ") for r in rows), name
    assert err == ""


def test_analyze_json_is_valid_and_warns_on_stderr(dump, capsys):
    assert main(["analyze", dump, "--json", "--top", "1", "--nodeid", "20"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    jsonschema.validate(doc, ANALYZE_SCHEMA)
    assert doc["selection"] == {"nodeid": 20, "since_us": None, "until_us": None, "top": 1}
    assert len(doc["slowest"]) == 1 and len(doc["episodes"]) == 2
    assert "ktrace: warning: at least 7 records were dropped" in err


def test_analyze_without_invalidate_records(tmp_path, capsys):
    tr = Trace()
    tr.add_text(0, 10, "pcs_foo: nothing about invalidations")
    assert main(["analyze", str(tr.write(tmp_path / "d"))]) == 0
    out = capsys.readouterr().out
    assert "WARNING: no invalidate_files records at all" in out
    assert "LOG_TRACE" in out


@pytest.mark.parametrize("argv, code, text", [
    (["--since", "5", "--until", "4"], 2, "--since 5 is after --until 4"),
    (["--since", "yesterday"], 2, "not a time"),
    # out of range: crashed with OverflowError or Polars "integer too large"
    (["--since", "inf"], 2, "--since: time out of range: 'inf' (the trace clock counts "
                            "microseconds since boot: 0 to 9223372036854775807us)"),
    (["--since", "1e400"], 2, "--since: time out of range: '1e400'"),
    (["--until", "1e300"], 2, "--until: time out of range: '1e300'"),
    (["--until", "-1"], 2, "--until: time out of range: '-1'"),
    (["--nodeid", "1" + "0" * 40], 2, "argument --nodeid: not a nodeid: '1" + "0" * 40
                                      + "' (nodeids are 0 to 18446744073709551615)"),
    (["--nodeid", str(2**64)], 2, "not a nodeid"),
    (["--boot-time", "soon"], 2, "--boot-time takes seconds since 1970"),
    (["--top", "-1"], 2, "must not be negative"),
    # crashed in Polars' head(): "int too big to convert"
    (["--top", "99999999999999999999"], 2, "argument --top: too large: '99999999999999999999' "
                                           "(at most 4294967295; any N above the number of "
                                           "episodes lists them all)"),
    (["--top", "4294967296"], 2, "argument --top: too large"),
    (["--boot-time", "1", "--wall-clock"], 2, "not allowed with"),
    # wall times past the year 9999: OverflowError in timedelta / datetime
    (["--boot-time", "253402300799"], 2,
     "ktrace: error: --boot-time: out of range: '253402300799' (at most 248898614772 seconds "
     "since 1970, so that every trace time, below 2**52 us, is a date before the year 10000)"),
    (["--boot-time", "1e15"], 2, "--boot-time: out of range: '1e15'"),
    (["--boot-time", "248898614773"], 2, "--boot-time: out of range"),
])
def test_analyze_usage_errors(dump, capsys, argv, code, text):
    try:
        rc = main(["analyze", dump, *argv])
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    assert rc == code
    err = capsys.readouterr().err
    assert text in err and "Traceback" not in err


def test_analyze_takes_the_largest_time_and_nodeid(dump, capsys):
    assert main(["analyze", dump, "--json", "--until", "9223372036854775807us",
                 "--nodeid", str(2**64 - 1)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["selection"] == {"nodeid": 2**64 - 1, "since_us": None,
                                "until_us": 2**63 - 1, "top": 10}
    assert doc["invalidations"]["episodes"] == 0


def test_analyze_top_at_its_largest_lists_every_episode(dump, capsys):
    assert main(["analyze", dump, "--json", "--top", "4294967295"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["selection"]["top"] == 4294967295
    assert len(doc["slowest"]) == doc["invalidations"]["duration_us"]["count"] == 3


def _io(t: int, start: int, size: int) -> bytes:
    hdr = dict(chunk=0, offset=0, size=size, start_time=start, local_delay=3, lat=40, ino=7,
               type=257)
    return L.build_record(L.TYPE_IOTIMES, t, L.iotimes_payload(
        hdr, [dict(csid=1000, misc=0, ts_net=10, ts_io=20)]))


def test_an_io_without_a_total_is_never_the_slowest(tmp_path, capsys):
    # A creation time of 2**63 (or 2**60) us is garbled: total_us is null. The
    # report said "slowest IO: None us" for it, sorted last but still kept.
    d = tmp_path / "d"
    d.mkdir()
    (d / "trace0").write_bytes(_io(1000, 2**63, 1) + _io(2000, 2**60, 2) + _io(3000, 2950, 3))
    assert main(["analyze", str(d)]) == 0
    out = capsys.readouterr().out
    assert "  slowest IO: 50 us (read, nodeid 8, cpu 0)" in out and "None" not in out
    assert main(["analyze", str(d), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(w["time_us"], w["total_us"]) for w in doc["io"]["slowest_io"]] == [(3000, 50)]
    (d / "trace0").write_bytes(_io(1000, 2**63, 1))
    assert main(["analyze", str(d)]) == 0
    out = capsys.readouterr().out
    assert "slowest IO" not in out and "None" not in out and "1 iotimes records" in out


def test_the_report_never_prints_an_unknown_io_total():
    io = {"iotimes_records": 1, "per_cs": [], "slowest_io": [
        {"time_us": 1, "cpu": 0, "nodeid": 8, "request": "read", "size": 1, "total_us": None,
         "lat_us": 40}]}
    lines = render_sections({"io": io})
    assert lines[1].startswith("IO latency   1 iotimes records") and "None" not in "".join(lines)


def test_analyze_unusable_input(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "missing")]) == 1
    assert capsys.readouterr().err.startswith("ktrace: error: ")
    (tmp_path / "trace0").write_bytes(b"hello, not a trace" * 10)
    assert main(["analyze", str(tmp_path / "trace0")]) == 1


def test_analyze_strict_fails_on_damage_after_the_report(tmp_path, capsys):
    d = incident().write(tmp_path / "dump")
    (d / "trace1").write_bytes((d / "trace1").read_bytes() + b"\x9c\xf5\x01")
    assert main(["analyze", str(d), "--strict"]) == 3
    out, err = capsys.readouterr()
    assert "invalidations" in out and "damage found" in err


def test_export_writes_every_file_and_refuses_to_overwrite(dump, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["export", dump, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # no temporary files left
    err = capsys.readouterr().err
    assert "wrote 7 files" in err and "invalidations.csv" in err and "cs.csv" in err
    inv = pl.read_csv(out / "invalidations.csv", schema=schema.INVALIDATIONS)
    assert inv.height == 5
    before = (out / "events.csv").read_bytes()
    (out / "events.csv").write_bytes(b"mine")
    assert main(["export", dump, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "would overwrite" in err and "--force" in err
    assert (out / "events.csv").read_bytes() == b"mine"
    assert main(["export", dump, "--out", str(out), "--force"]) == 0
    assert (out / "events.csv").read_bytes() == before


def test_export_refuses_a_file_as_out_dir(dump, tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["export", dump, "--out", str(tmp_path / "f")]) == 1
    assert "not a directory" in capsys.readouterr().err


def test_export_many_dumps_adds_source(tmp_path, capsys):
    a = str(incident().write(tmp_path / "a"))
    tr = Trace()
    tr.add_event(0, 7, "start", 3)
    b = str(tr.write(tmp_path / "b"))
    assert main(["export", a, b, "--out", str(tmp_path / "o")]) == 0
    inv = pl.read_csv(tmp_path / "o" / "invalidations.csv",
                      schema={"source": pl.String, **schema.INVALIDATIONS})
    assert inv.group_by("source", maintain_order=True).len().rows() == [(a, 5), (b, 1)]
    ev = pl.read_csv(tmp_path / "o" / "events.csv", infer_schema=False)
    assert ev.columns[0] == "source"


def test_export_parquet_round_trip(dump, tmp_path):
    from ktrace_decode.decode import decode
    from ktrace_decode.pipeline import analyze_decoded

    assert main(["export", dump, "--out", str(tmp_path / "pq"), "--format", "parquet"]) == 0
    a = analyze_decoded(decode(dump))
    for stem, df in a.frames().items():
        back = pl.read_parquet(tmp_path / "pq" / f"{stem}.parquet")
        assert back.schema == pl.Schema(SCHEMAS[stem])
        assert_frame_equal(back, df)


def test_csv_round_trip_keeps_every_value(dump, tmp_path):
    from ktrace_decode.decode import decode
    from ktrace_decode.pipeline import analyze_decoded

    assert main(["export", dump, "--out", str(tmp_path / "c")]) == 0
    a = analyze_decoded(decode(dump))
    for stem, df in a.frames().items():
        back = pl.read_csv(tmp_path / "c" / f"{stem}.csv", schema=SCHEMAS[stem])
        assert_frame_equal(back, df)


def test_wall_clock_uses_this_machines_boot_time(dump, capsys):
    import time

    assert main(["analyze", dump, "--json", "--wall-clock"]) == 0
    doc = json.loads(capsys.readouterr().out)
    boot = time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)
    assert doc["clock"]["source"] == "--wall-clock"
    assert abs(doc["clock"]["boot_time_us"] / 1e6 - boot) < 5
    assert doc["trace"]["first_wall"] and doc["slowest"][0]["end_wall"]


def test_the_latest_boot_time_gives_dates_in_the_year_9857(dump, capsys, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert main(["analyze", dump, "--json", "--boot-time", "248898614772"]) == 0
    finally:
        monkeypatch.undo()
        time.tzset()
    doc = json.loads(capsys.readouterr().out)
    assert doc["clock"]["boot_time_us"] == 248_898_614_772_000_000
    assert doc["trace"]["first_wall"] == "9857-04-14T00:06:12.999900+00:00"


def test_boot_time_appears_on_the_screen(dump, capsys):
    assert main(["analyze", dump, "--boot-time", "1700000000"]) == 0
    out = capsys.readouterr().out
    assert "wall      2023-11-1" in out and "(boot time: --boot-time)" in out
