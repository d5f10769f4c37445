"""The streamed export (pipeline/streamed.py) against the whole-table pipeline
(analysis.analyze_decoded on decode()): every table cell by cell, in order,
whatever the batch size, plus the edge-row selection as a property."""

from __future__ import annotations

import argparse
import gc
import itertools
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pl_builders import Trace, iotimes, random_trace
from polars.testing import assert_frame_equal

from ktrace_decode import decode as D
from ktrace_decode.cli import main
from ktrace_decode.formats import layouts as L
from ktrace_decode.pipeline import csv_encode, streamed, tables
from ktrace_decode.pipeline.analysis import analyze_decoded
from ktrace_decode.pipeline.export import SCHEMAS
from ktrace_decode.pipeline.summary import Selection
from ktrace_decode.safe_output import OutputDir
from ktrace_decode.sources import open_dump

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _args(*paths: str) -> argparse.Namespace:
    return argparse.Namespace(paths=list(paths), layout="auto", subbuf_size=L.RELAY_SUBBUF_SIZE,
                              n_subbufs=L.RELAY_N_SUBBUFS)


def _export(out_dir: Path, *paths: str, fmt: str = "parquet") -> tuple[list, dict[str, int]]:
    with OutputDir(out_dir) as out:
        return streamed.export_streamed(out, fmt, SCHEMAS, _args(*paths))


def _check_equal(out_dir: Path, dump: str, rows: dict[str, int], summary: dict) -> None:
    whole = analyze_decoded(D.decode(dump))
    for stem, df in whole.frames().items():
        got = pl.read_parquet(out_dir / f"{stem}.parquet")
        assert_frame_equal(got, df, check_dtypes=True)
        assert rows[f"{stem}.parquet"] == df.height
    assert summary == whole.summary


@pytest.mark.parametrize("sample", ["storm", "overflow", "quiet"])
@pytest.mark.parametrize(("batch", "episode_rows"), [(1 << 17, 1 << 19), (997, 1 << 19),
                                                     (61, 300)])
def test_streamed_equals_whole(sample, batch, episode_rows, tmp_path, monkeypatch):
    """Tiny batches and sliced episodes change nothing: overflow has drops,
    skipped bytes and lost overlaps whose edges fall across batches."""
    monkeypatch.setattr(streamed, "EXPORT_BATCH", batch)
    monkeypatch.setattr(streamed, "EPISODE_ROWS", episode_rows)
    dump = str(SAMPLES / sample)
    results, rows = _export(tmp_path, dump)
    _check_equal(tmp_path, dump, rows, results[0].summary)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 40))
def test_streamed_equals_whole_on_random_traces(tmp_path_factory, seed, batch):
    dump = random_trace(seed).write(tmp_path_factory.mktemp("d") / "dump")
    out = tmp_path_factory.mktemp("out")
    old = streamed.EXPORT_BATCH, streamed.EPISODE_ROWS
    streamed.EXPORT_BATCH, streamed.EPISODE_ROWS = batch, 7
    try:
        results, rows = _export(out, str(dump))
    finally:
        streamed.EXPORT_BATCH, streamed.EPISODE_ROWS = old
    _check_equal(out, str(dump), rows, results[0].summary)


@pytest.mark.parametrize("sample", ["storm", "overflow"])
@pytest.mark.parametrize("sel", [
    Selection(), Selection(top=1), Selection(nodeid=20), Selection(top=3, since_us=10_000_000,
                                                                  until_us=20_000_000),
    Selection(boot_time_us=1_700_000_000_000_000, clock_source="--boot-time"),
])
def test_streamed_analyze_equals_whole(sample, sel, monkeypatch):
    """``ktrace analyze`` streams too: the same document, batches of 50 records."""
    monkeypatch.setattr(streamed, "EXPORT_BATCH", 50)
    dump = str(SAMPLES / sample)
    got = streamed.analyze_streamed(dump, _args(dump), sel).summary
    assert got == analyze_decoded(D.decode(dump), sel).summary
    assert got["io"]["slowest_io"] and got["io"]["per_cs"]


def test_csv_and_parquet_hold_the_same_rows(tmp_path):
    dump = str(SAMPLES / "overflow")
    _export(tmp_path / "p", dump)
    _export(tmp_path / "c", dump, fmt="csv")
    for stem, cols in SCHEMAS.items():
        csv = pl.read_csv(tmp_path / "c" / f"{stem}.csv", schema=cols)
        assert_frame_equal(csv, pl.read_parquet(tmp_path / "p" / f"{stem}.parquet"))


def test_a_cpu_going_back_in_time_keeps_its_place(tmp_path, capsys):
    """Export writes the rows in the order ``ktrace decode`` prints them (the
    same streaming merge and batches: beyond the merge slack a record may stay
    where its CPU wrote it), and they are decode()'s rows."""
    tr = Trace()
    for i in range(40):
        tr.add_text(0, 1_000_000 + 1000 * i, f"pcs_a: {i}")
        tr.add_text(1, 1_000_500 + 1000 * i, f"pcs_b: {i}")
    tr.add_text(0, 1_041_000 - 2 * D.MERGE_SLACK_US, "pcs_a: late")
    dump = str(tr.write(tmp_path / "dump"))
    assert main(["export", dump, "--out", str(tmp_path / "out")]) == 0
    got = pl.read_csv(tmp_path / "out" / "events.csv")["text"].to_list()
    assert sorted(got) == sorted(analyze_decoded(D.decode(dump)).events["text"].to_list())
    capsys.readouterr()
    assert main(["decode", dump, "--format", "csv", "--quiet"]) == 0
    printed = pl.read_csv(capsys.readouterr().out.encode())["text"].to_list()
    assert got == printed


def test_several_dumps_are_stacked_with_their_source(tmp_path):
    a, b = str(SAMPLES / "quiet"), str(SAMPLES / "overflow")
    _, rows = _export(tmp_path, a, b)
    inv = pl.read_parquet(tmp_path / "invalidations.parquet")
    assert inv.columns[0] == "source"
    assert inv["source"].unique(maintain_order=True).to_list() == [a, b]
    for path in (a, b):
        whole = analyze_decoded(D.decode(path)).invalidations
        assert_frame_equal(inv.filter(pl.col("source") == path).drop("source"), whole)
    assert rows["events.parquet"] == sum(D.decode(p).n_records for p in (a, b))


def test_the_stream_gives_back_what_it_read(tmp_path):
    """Empty dump: no files are left behind and the error is the decoder's."""
    (tmp_path / "dump").mkdir()
    (tmp_path / "dump" / "trace0").write_bytes(b"\0" * 4096)
    assert main(["export", str(tmp_path / "dump"), "--out", str(tmp_path / "out")]) != 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


# --- the edge rows, as a property -------------------------------------------

@st.composite
def _cpu_records(draw):
    """Records of a few CPUs: unique (cpu, seq) with gaps, offsets with byte gaps,
    drops; and the skipped ranges (inside the byte gaps, as the decoder finds them)."""
    rows, skips = [], []
    for cpu in range(draw(st.integers(1, 3))):
        seq = off = 0
        for _ in range(draw(st.integers(0, 25))):
            seq += draw(st.integers(1, 3))
            gap = draw(st.sampled_from([0, 0, 0, 5, 40]))
            if gap:
                skips.append((cpu, "src", off, off + gap, gap, "garbage"))
            off += gap
            pdu = draw(st.integers(8, 30))
            rows.append((cpu, seq, off, draw(st.integers(0, 10_000)),
                         draw(st.sampled_from([0, 0, 0, 2])), pdu))
            off += L.HEADER_SIZE + pdu
    return rows, skips


@settings(max_examples=200, deadline=None)
@given(data=_cpu_records(), cuts=st.lists(st.integers(0, 80), max_size=6), seed=st.integers(0, 99))
def test_edge_rows_give_the_same_windows_and_loss(data, cuts, seed):
    rows, skips = data
    recs = pl.DataFrame(rows, orient="row", schema={
        "cpu": pl.UInt16, "seq": pl.UInt32, "offset": pl.UInt64, "time_us": pl.UInt64,
        "ovfl": pl.UInt16, "pdu_len": pl.UInt16})
    # Batches of any rows in any order (the stream's batches are time slices).
    recs = recs.sample(fraction=1.0, shuffle=True, seed=seed) if recs.height else recs
    bounds = sorted({0, recs.height, *(c for c in cuts if c < recs.height)})
    batches = [recs[a:b] for a, b in itertools.pairwise(bounds)]
    seq_e = pl.concat([streamed._seq_edges(b) for b in batches]) if batches else recs
    off_e = pl.concat([streamed._offset_edges(b) for b in batches]) if batches else recs
    assert_frame_equal(D.drop_windows(seq_e), D.drop_windows(recs))
    sk = pl.DataFrame(skips, orient="row", schema={
        "cpu": pl.UInt16, "source": pl.String, "start": pl.UInt64, "end": pl.UInt64,
        "bytes": pl.UInt64, "kind": pl.String})
    files = pl.LazyFrame({"cpu": [0, 1, 2], "file": ["a", "b", "c"]},
                         schema={"cpu": pl.UInt16, "file": pl.String})
    windows = D.drop_windows(recs).lazy()

    def loss(r: pl.DataFrame) -> pl.DataFrame:
        return tables.loss(r.lazy(), windows, sk.lazy(), files).collect()

    assert_frame_equal(loss(off_e), loss(recs))
    assert np.all(np.isin(off_e["offset"].to_numpy(), recs["offset"].to_numpy()))


def test_stream_reads_cs_entries_with_each_batch():
    dump = open_dump(str(SAMPLES / "storm"))
    stream = D.DumpStream(dump, batch=500)
    got = [cs for _, cs in stream.with_cs()]
    whole = D.decode(str(SAMPLES / "storm")).cs
    assert_frame_equal(pl.concat(got).sort("cpu", "seq", "idx"), whole.sort("cpu", "seq", "idx"))


def test_progress_on_a_terminal(tmp_path, capsys, monkeypatch):
    """On a terminal export shows its progress on one rewritten line, then clears it."""
    monkeypatch.setattr(streamed, "EXPORT_BATCH", 100)
    monkeypatch.setattr(type(__import__("sys").stderr), "isatty", lambda self: True,
                        raising=False)
    assert main(["export", str(SAMPLES / "storm"), "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "\r\x1b[Kexporting storm: " in err
    assert err.split("wrote 7 files")[0].endswith("\r\x1b[K")


def test_the_kept_events_are_the_patch_events():
    """Episodes and the summary read only these: every patch event must be kept."""
    from ktrace_decode.formats import messages as M
    assert sorted(streamed.KEPT_EVENTS) == sorted(M.PATCH_EVENTS)


@pytest.mark.parametrize("encoder", [False, True])
def test_csv_from_small_batches_is_byte_identical(encoder, tmp_path, monkeypatch):
    """Appending batches writes the very bytes of one write_csv of the whole
    table, whether Polars or the compiled loop (csv_encode) writes them."""
    if encoder and not csv_encode.worth_it(10**9):
        pytest.skip("numba is not installed")
    monkeypatch.setattr(csv_encode, "worth_it", lambda rows: encoder)
    monkeypatch.setattr(streamed, "EXPORT_BATCH", 7)
    dump = str(SAMPLES / "overflow")
    _export(tmp_path, dump, fmt="csv")
    for stem, df in analyze_decoded(D.decode(dump)).frames().items():
        assert (tmp_path / f"{stem}.csv").read_bytes() == df.write_csv().encode(), stem


@pytest.mark.parametrize("encoder", [False, True])
def test_csv_of_several_dumps_is_byte_identical(encoder, tmp_path, monkeypatch):
    """Each dump's rows, with its source column first, as write_csv writes them."""
    if encoder and not csv_encode.worth_it(10**9):
        pytest.skip("numba is not installed")
    monkeypatch.setattr(csv_encode, "worth_it", lambda rows: encoder)
    monkeypatch.setattr(streamed, "EXPORT_BATCH", 61)
    dumps = [str(SAMPLES / "quiet"), str(SAMPLES / "storm")]
    _export(tmp_path, *dumps, fmt="csv")
    wholes = [analyze_decoded(D.decode(d)).frames() for d in dumps]
    for stem in wholes[0]:
        want = pl.concat([w[stem].select(pl.lit(d, pl.String).alias("source"), pl.all())
                          for d, w in zip(dumps, wholes, strict=True)])
        assert (tmp_path / f"{stem}.csv").read_bytes() == want.write_csv().encode(), stem


@pytest.mark.parametrize("workers", [1, 3])
def test_batch_tables_are_stored_in_batch_order_whichever_finishes_first(
        workers, tmp_path, monkeypatch):
    """The table workers finish out of order (here the earlier batches are made
    slower): rows and kept frames still follow the batches."""
    import time

    monkeypatch.setattr(streamed, "EXPORT_BATCH", 40)
    monkeypatch.setattr(streamed, "EXPORT_CHUNK", 2048)  # many small batches
    monkeypatch.setattr(streamed, "TABLE_WORKERS", workers)
    delays = itertools.cycle([0.03, 0.015, 0.0])
    compute = streamed.StreamExport._batch
    calls = itertools.count()

    def slow(self, path, stream, parts):
        next(calls)
        time.sleep(next(delays))
        return compute(self, path, stream, parts)

    monkeypatch.setattr(streamed.StreamExport, "_batch", slow)
    dump = str(SAMPLES / "storm")
    results, rows = _export(tmp_path, dump)
    assert next(calls) > 10
    _check_equal(tmp_path, dump, rows, results[0].summary)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_failing_batch_stops_the_export_and_its_workers(fmt, tmp_path, monkeypatch):
    monkeypatch.setattr(streamed, "EXPORT_BATCH", 30)
    monkeypatch.setattr(streamed, "EXPORT_CHUNK", 2048)
    calls = itertools.count()
    compute = streamed.StreamExport._batch

    def failing(self, path, stream, parts):
        if next(calls) == 3:
            raise RuntimeError("batch 3")
        return compute(self, path, stream, parts)

    monkeypatch.setattr(streamed.StreamExport, "_batch", failing)
    ignored: list = []  # e.g. a Parquet writer closing itself on a closed file
    monkeypatch.setattr(sys, "unraisablehook", ignored.append)
    with pytest.raises(RuntimeError, match="batch 3"):
        _export(tmp_path, str(SAMPLES / "storm"), fmt=fmt)
    gc.collect()
    assert ignored == []
    assert list(tmp_path.iterdir()) == []  # no file published, no temporary left
    # Workers were shut down: the batches queued behind the failure never ran.
    assert next(calls) <= 4 + streamed.TABLE_WORKERS


def test_release_all_gives_back_the_mapping_and_the_bytes_stay_readable():
    dump = open_dump(str(SAMPLES / "storm"))
    stream = D.DumpStream(dump, batch=500, release_lag=2)
    batches = list(stream)
    stream.release_all()
    maps = [m for m in stream._maps if m is not None]
    assert maps and all(stream._released[c] == len(m)
                        for c, m in enumerate(stream._maps) if m is not None)
    # Given-back pages of a file mapping are read from the file again.
    whole = D.decode(str(SAMPLES / "storm")).records
    assert pl.concat(batches)["text"].sort().equals(whole["text"].sort())


def _iotimes_with_ties(tmp_path: Path, late: bool) -> str:
    """iotimes records on three CPUs that share their times (and, if
    ``late``, a CPU whose clock goes back by more than the merge slack)."""
    tr = Trace()
    for i in range(30):
        for cpu in (2, 0, 1):
            t = 1_000_000 + 5000 * (i // 3)  # 50 ms: beyond the merge slack
            tr.add(cpu, t, iotimes(t, ino=10 * cpu + i, n_cs=1 + (i + cpu) % 3))
    if late:
        t = 1_045_000 - 2 * D.MERGE_SLACK_US
        tr.add(1, t, iotimes(t, ino=99, n_cs=3))
    return str(tr.write(tmp_path / "dump"))


def _is_sorted(df: pl.DataFrame, *by: str) -> bool:
    return df.select(*by).equals(df.select(*by).sort(*by, maintain_order=True))


@pytest.mark.parametrize("batch", [1 << 17, 7])
def test_cs_entries_come_in_cpu_seq_idx_order(tmp_path, batch):
    """tables.iotimes_cs joins the entries to their records keeping the
    entries' order and then sorts by time only: it needs the entries of
    decode() and of every streamed batch in (cpu, seq, idx) order."""
    dump = _iotimes_with_ties(tmp_path, late=True)
    whole = D.decode(dump).cs
    assert whole.height > 60 and _is_sorted(whole, "cpu", "seq", "idx")
    stream = D.DumpStream(open_dump(dump), batch=batch, chunk=1024 if batch == 7 else 1 << 20)
    got = [cs for _, cs in stream.with_cs()]
    assert len(got) > (3 if batch == 7 else 0)
    assert all(_is_sorted(cs, "cpu", "seq", "idx") for cs in got)


def test_iotimes_cs_rows_by_time_cpu_seq_idx(tmp_path, monkeypatch):
    dump = _iotimes_with_ties(tmp_path, late=False)
    whole = analyze_decoded(D.decode(dump)).iotimes_cs
    assert _is_sorted(whole, "time_us", "cpu", "seq", "idx")
    assert whole.select("time_us", "cpu", "seq", "idx").n_unique() == whole.height
    monkeypatch.setattr(streamed, "EXPORT_BATCH", 7)
    monkeypatch.setattr(streamed, "EXPORT_CHUNK", 1024)
    _export(tmp_path / "out", dump)
    assert_frame_equal(pl.read_parquet(tmp_path / "out" / "iotimes_cs.parquet"), whole)
