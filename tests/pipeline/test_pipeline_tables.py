"""nodes, iotimes, iotimes_cs and loss: values, units and schemas."""

from __future__ import annotations

import polars as pl
import pytest
from pl_builders import Trace, iotimes, random_trace

from ktrace_decode.decode import decode
from ktrace_decode.formats import layouts as L
from ktrace_decode.pipeline import tables
from ktrace_decode.pipeline.analysis import analyze_decoded


def analyze(tr: Trace, tmp_path):
    return analyze_decoded(decode(tr.write(tmp_path / "d")))


@pytest.mark.parametrize("seed", range(5))
def test_nodes_are_the_sums_of_their_episodes(seed, tmp_path):
    a = analyze(random_trace(seed, n=250), tmp_path)
    assert a.nodes.schema == pl.Schema(tables.NODES)
    for row in a.nodes.iter_rows(named=True):
        eps = a.invalidations.filter(pl.col("nodeid") == row["nodeid"]).to_dicts()
        durs = [e["duration_us"] for e in eps if e["duration_us"] is not None]
        assert row["episodes"] == len(eps)
        assert row["complete"] + row["in_progress"] + row["no_start"] == len(eps)
        assert row["attempts"] == sum(e["attempts"] for e in eps)
        assert row["retries"] == sum(e["attempts"] - (e["start_us"] is not None) for e in eps)
        assert row["total_duration_us"] == (sum(durs) if durs else None)
        assert row["max_duration_us"] == (max(durs) if durs else None)
        assert row["poisoned_files"] == sum(e["pending_files"] for e in eps)
        assert row["blocked_opens"] == sum(e["blocked_opens"] for e in eps)
        assert row["lost_overlap"] == any(e["lost_overlap"] for e in eps)
    assert a.nodes["nodeid"].to_list() == sorted(set(a.invalidations["nodeid"]))


def test_iotimes_rows_and_chunk_server_entries(tmp_path):
    tr = Trace()
    tr.add(1, 5000, iotimes(5000, ino=41, n_cs=3, type_=257))
    tr.add(0, 6000, iotimes(6000, ino=7, n_cs=0, type_=4242))
    a = analyze(tr, tmp_path)
    assert a.iotimes.schema == pl.Schema(tables.IOTIMES)
    assert a.iotimes.select("time_us", "cpu", "nodeid", "ino", "request", "type", "offset",
                            "start_time_us", "total_us", "chid", "n_cs").rows() == [
        (5000, 1, 42, 41, "read", 257, (1 << 20) + 4096 * 41, 4880, 120, 1, 3),
        (6000, 0, 8, 7, "type4242", 4242, (1 << 20) + 4096 * 7, 5880, 120, 2, 0),
    ]
    cs = a.iotimes_cs
    assert cs.schema == pl.Schema(tables.IOTIMES_CS)
    assert cs.select("time_us", "nodeid", "idx", "csid", "cached", "sequential", "sync",
                     "misc_time", "ts_net_us", "ts_io_us").rows() == [
        (5000, 42, i, 1000 + i, True, False, True, 12345 + i, 10 + i, 30 + i) for i in range(3)]


def test_loss_places_drops_and_skipped_bytes_in_time(tmp_path):
    tr = Trace()
    tr.add_text(0, 100, "a: one")
    tr.add_text(0, 200, "a: two", ovfl=5)
    tr.add_text(0, 300, "a: three")
    tr.add_text(1, 150, "b: first", ovfl=2)
    d = tr.write(tmp_path / "d")
    blob = (d / "trace0").read_bytes()
    second = len(tr.records[0][0]) + len(tr.records[0][1])
    # garbage between the 2nd and 3rd record, and a truncated 4th at the end
    extra = L.build_record(L.TYPE_TEXT, 400, L.text_payload("a: four"))
    (d / "trace0").write_bytes(blob[:second] + b"\x01" * 13 + blob[second:] + extra[:9])
    a = analyze_decoded(decode(d))
    assert a.loss.schema == pl.Schema(tables.LOSS)
    end3 = len(blob) + 13
    assert a.loss.select("cpu", "kind", "after_us", "before_us", "records_at_least",
                         "start_offset", "end_offset", "bytes").rows() == [
        (0, "dropped", 100, 200, 5, None, None, None),
        (0, "garbage", 200, 300, None, second, second + 13, 13),
        (0, "truncated", 300, None, None, end3, end3 + 9, 9),
        (1, "dropped", None, 150, 2, None, None, None),
    ]
    assert a.loss["file"].to_list() == [str(d / "trace0")] * 3 + [str(d / "trace1")]


def test_every_exported_column_is_documented():
    from ktrace_decode.pipeline.export import SCHEMAS
    from ktrace_decode.pipeline.export_doc import DOCS, markdown

    assert DOCS.keys() == SCHEMAS.keys()
    for stem, schema in SCHEMAS.items():
        assert list(DOCS[stem][1]) == list(schema), stem
    assert markdown().count("| `") == sum(len(s) for s in SCHEMAS.values())


def test_loss_rows_that_tie_keep_their_order(tmp_path):
    """Drop windows with the same CPU and times come in (cpu, seq) order,
    the same every run (neither the join with the file names nor the sort
    kept an order for ties before).  The first record's window has no
    record before it: after_us null, sorted last."""

    (tmp_path / "d").mkdir()
    recs = [L.build_record(L.TYPE_TEXT, 7, L.text_payload(f"fuse_open: r{i}"), ovfl=i + 1)
            for i in range(8)]
    (tmp_path / "d" / "trace0").write_bytes(b"".join(recs))
    d = decode(str(tmp_path / "d"))
    for _ in range(20):
        got = tables.loss(d.records.lazy(), d.drop_windows().lazy(), d.skips_frame().lazy(),
                          d.files_frame().lazy()).collect()
        assert got["records_at_least"].to_list() == [*range(2, 9), 1]
