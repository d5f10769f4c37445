"""analyze numbers on an incident computed by hand, and the JSON schema."""

from __future__ import annotations

import time

import jsonschema
import pytest
from pl_builders import Trace
from pl_scenario import incident

from ktrace_decode.decode import decode
from ktrace_decode.pipeline import Selection, analyze_decoded
from ktrace_decode.pipeline.analyze_schema import ANALYZE_SCHEMA
from ktrace_decode.pipeline.events import record_type_counts
from ktrace_decode.pipeline.summary import MAX_BOOT_TIME_US, summarize, wall


@pytest.fixture(scope="module")
def decoded(tmp_path_factory):
    return decode(incident().write(tmp_path_factory.mktemp("inc") / "dump"))


@pytest.fixture(scope="module")
def analysis(decoded):
    return analyze_decoded(decoded)


def sub(analysis, decoded, **kw):
    s = summarize(decoded, analysis.events, analysis.invalidations, Selection(**kw),
                  record_type_counts(decoded.records["type"]))
    jsonschema.validate(s, ANALYZE_SCHEMA)
    return s


def test_whole_trace_numbers(analysis):
    s = analysis.summary
    jsonschema.validate(s, ANALYZE_SCHEMA)
    t = s["trace"]
    assert (t["first_us"], t["last_us"], t["span_us"]) == (999_900, 5_000_000, 4_000_100)
    assert (t["cpus"], t["records"], t["text_records"], t["invalidate_records"]) == (3, 22, 22, 19)
    assert (t["dropped_at_least"], t["drop_windows"], t["skipped_bytes"]) == (7, 1, 0)
    inv = s["invalidations"]
    assert inv == {"episodes": 5, "nodeids": 4, "complete": 3, "in_progress": 1, "no_start": 1,
                   "lost_overlap": 1,
                   "duration_us": {"count": 3, "p50": 1000, "p90": 5000, "p99": 5000,
                                   "max": 5000, "total": 6300}}
    assert [(e["nodeid"], e["duration_us"], e["attempts"]) for e in s["slowest"]] == [
        (20, 5000, 3), (10, 1000, 2), (20, 300, 1)]
    (stuck,) = s["in_progress"]
    assert (stuck["nodeid"], stuck["userspace_id"], stuck["open_for_at_least_us"],
            stuck["blocked_opens"], stuck["pending_files"]) == (40, 39, 1_000_000, 1, 2)
    assert s["retries"] == {"retries": 3, "episodes_with_retries": 2, "max_attempts": 3}
    assert s["errors"] == [{"kind": "pages", "err": -16, "name": "EBUSY", "count": 2},
                           {"kind": "write", "err": -11, "name": "EAGAIN", "count": 1}]
    assert s["blocked_opens"] == {"count": 2, "episodes": 2, "worst_wait_us": 1100,
                                  "worst_nodeid": 10}
    assert s["poisoned_files"] == {"count": 3, "distinct_files": 2, "nodeids": 2}
    assert len(s["warnings"]) == 1 and "at least 7 records were dropped" in s["warnings"][0]
    assert "episodes" not in s


def test_top_and_nodeid(analysis, decoded):
    s = sub(analysis, decoded, top=1, nodeid=20)
    assert s["invalidations"]["episodes"] == 2
    assert [e["duration_us"] for e in s["slowest"]] == [5000]
    assert [e["start_us"] for e in s["episodes"]] == [2_000_000, 3_000_000]
    assert s["errors"] == [{"kind": "pages", "err": -16, "name": "EBUSY", "count": 2}]
    assert s["poisoned_files"]["count"] == 0


def test_since_until_select_overlapping_episodes(analysis, decoded):
    late = sub(analysis, decoded, since_us=2_500_000)
    assert sorted(e["nodeid"] for e in late["slowest"] + late["in_progress"]) == [20, 40]
    assert late["invalidations"]["episodes"] == 2
    early = sub(analysis, decoded, until_us=1_200_000)
    # nodeid 10, and nodeid 30 whose beginning is unknown (it may overlap anything before its end)
    assert early["invalidations"]["episodes"] == 2
    assert early["invalidations"]["no_start"] == 1
    assert early["errors"] == [{"kind": "write", "err": -11, "name": "EAGAIN", "count": 1}]


def test_wall_clock(analysis, decoded, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        s = sub(analysis, decoded, boot_time_us=1_700_000_000_000_000, clock_source="--boot-time")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert s["trace"]["first_wall"] == "2023-11-14T22:13:20.999900+00:00"
    assert s["slowest"][0]["start_wall"] == "2023-11-14T22:13:23.000000+00:00"
    assert s["clock"] == {"source": "--boot-time", "boot_time_us": 1_700_000_000_000_000}


@pytest.mark.parametrize("boot_time_us", [253_402_300_800_000_000, 10**30, -10**30,
                                          -62_135_596_800_000_006])
def test_wall_is_none_for_a_date_out_of_range(boot_time_us):
    # Boot times that put the trace time 5 us just past 9999-12-31T23:59:59.999999
    # UTC or just before 0001-01-01, and far beyond.  They raised OverflowError
    # (timedelta, datetime +, astimezone); the command line refuses them, and a
    # library caller gets no wall time rather than an exception.
    assert wall(Selection(boot_time_us=boot_time_us), 5) is None
    assert wall(Selection(boot_time_us=MAX_BOOT_TIME_US), 2**52 - 1) is not None


def test_no_invalidate_records_warns(tmp_path):
    tr = Trace()
    tr.add_text(0, 10, "pcs_cs_deaccount: IO latency on CS1 is 5, cwnd 2, clamp 3")
    s = analyze_decoded(decode(tr.write(tmp_path / "d"))).summary
    jsonschema.validate(s, ANALYZE_SCHEMA)
    assert s["invalidations"]["episodes"] == 0
    assert s["invalidations"]["duration_us"]["p50"] is None
    assert any("LOG_TRACE" in w and "patch" in w for w in s["warnings"])


def test_schema_rejects_a_wrong_document(analysis):
    bad = dict(analysis.summary, invalidations={**analysis.summary["invalidations"],
                                                "episodes": "five"})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, ANALYZE_SCHEMA)


def test_nodeid_given_as_the_userspace_id_gets_a_hint(analysis, decoded):
    s = sub(analysis, decoded, nodeid=19)  # userspace id of kernel nodeid 20
    assert s["invalidations"]["episodes"] == 0
    assert s["warnings"][-1] == ("no invalidation episode of nodeid 19 in the selection; "
                                 "nodeid 20 has 2 (--nodeid takes the kernel nodeid, "
                                 "userspace id + 1)")
    assert sub(analysis, decoded, nodeid=500)["warnings"][-1] == (
        "no invalidation episode of nodeid 500 in the selection")
