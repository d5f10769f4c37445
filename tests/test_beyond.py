"""Beyond the invalidate path: Perfetto export, IO latency per CS, metrics, old vs new path."""

import dataclasses
import json
import math
from pathlib import Path

import jsonschema
import polars as pl
from test_perfetto import TRACE_SCHEMA

from ktrace_decode.cli import main
from ktrace_decode.decode import decode
from ktrace_decode.emit import Scenario, emit
from ktrace_decode.emit.compare import compare
from ktrace_decode.pipeline import analyze_decoded
from ktrace_decode.samples import sample_path

GOLDEN = Path(__file__).parent / "golden"


def test_perfetto_export_of_the_storm_sample_matches_its_golden_file(tmp_path, capsys):
    """To regenerate the golden file after a deliberate change, from the
    repository root: ``ktrace export samples/storm --out DIR --format perfetto``
    and copy ``DIR/trace.json`` to ``tests/golden/storm-perfetto.json``."""
    assert main(["export", str(sample_path("storm")), "--out", str(tmp_path),
                 "--format", "perfetto"]) == 0
    doc = json.loads((tmp_path / "trace.json").read_text())
    jsonschema.validate(doc, TRACE_SCHEMA)
    golden = json.loads((GOLDEN / "storm-perfetto.json").read_text())
    # the process name carries the path as given; the rest must match exactly
    doc["traceEvents"][0]["args"]["name"] = golden["traceEvents"][0]["args"]["name"]
    assert doc == golden
    inv = pl.read_csv(sample_path("storm") / "truth" / "invalidations.csv")
    attempts = [e for e in doc["traceEvents"] if e["ph"] == "X" and e["name"] == "invalidate"]
    assert len(attempts) == inv["attempts"].sum()


def test_prometheus_export_and_cross_check(tmp_path, capsys):
    assert main(["export", str(sample_path("quiet")), "--out", str(tmp_path),
                 "--format", "prometheus"]) == 0
    text = (tmp_path / "metrics.prom").read_text()
    assert "# TYPE fuse_kio_latency_seconds histogram" in text
    a = analyze_decoded(decode(sample_path("quiet")))
    reads = a.iotimes.filter(request="read").height
    assert f'fuse_kio_latency_seconds_count{{op="cs_read"}} {reads}' in text
    # nothing was dropped in the quiet sample: trace and metrics agree exactly
    assert all(c["missing_from_trace"] == 0 for c in a.summary["metrics"]["cross_check"])
    o = analyze_decoded(decode(sample_path("overflow")))
    missing = {c["op"]: c["missing_from_trace"] for c in o.summary["metrics"]["cross_check"]}
    assert missing["cs_read"] > 0  # records lost to overflow show up here


def test_per_cs_latency_follows_the_emitted_distributions():
    sc = Scenario(name="io", seed=3, cpus=2, duration_ms=2000, iotimes_rate=3000,
                  invalidation_rate=0, open_rate=0, background_text_rate=0,
                  cs_net_median_us=[100.0, 400.0, 1600.0, 3200.0],
                  cs_io_median_us=[300.0, 900.0, 2700.0, 8100.0])
    res = emit(sc)
    recs, cs = res.records, res.cs
    from ktrace_decode import iolatency

    per = iolatency.per_cs(recs.lazy(), cs.lazy()).collect()
    allreq = (cs.join(recs.select("cpu", "seq"), on=["cpu", "seq"])
              .group_by("csid").agg(pl.col("ts_net").median(), pl.col("ts_io").median())
              .sort("csid"))
    for k, row in enumerate(allreq.iter_rows(named=True)):
        # lognormal medians within 10 % over ~1500 samples per server
        assert math.isclose(row["ts_net"], sc.cs_net_median_us[k], rel_tol=0.1)
        assert math.isclose(row["ts_io"], sc.cs_io_median_us[k], rel_tol=0.1)
    assert per.filter(csid=1003)["io_p50_us"].min() > per.filter(csid=1000)["io_p50_us"].max()


def test_old_path_blocks_the_event_loop_and_new_path_does_not():
    sc = Scenario(name="cmp", seed=2, duration_ms=500, invalidation_rate=100, write_load=200,
                  cached_pages=20000)
    old, new = compare(sc)
    assert old.path == "old" and new.path == "new"
    assert old.blocked_total_us > 0 and old.blocked_max_us > 1000
    assert new.blocked_total_us == 0 and new.blocked_max_us == 0
    assert new.invalidations > 0 and new.inval_max_us > 0
    res = emit(dataclasses.replace(sc), path="old")
    assert res.events.filter(pl.col("event").is_in(["start", "end", "waiting"])).is_empty()


def test_compare_cli(capsys):
    code = main(["emit", str(sample_path("quiet") / "scenario.toml"), "--compare"])
    out = capsys.readouterr().out
    assert code == 0 and out.splitlines()[0].startswith("path")
    assert out.splitlines()[1].startswith("old") and out.splitlines()[2].startswith("new")
