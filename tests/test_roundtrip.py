"""Round trip: decoding the emitter's bytes gives exactly its ground truth."""

import dataclasses

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ktrace_decode import schema
from ktrace_decode.decode import decode
from ktrace_decode.emit import Scenario, emit, load_scenario
from ktrace_decode.samples import sample_names, sample_path

SAMPLES = sample_names()


def test_the_three_samples_are_bundled():
    assert SAMPLES == ["overflow", "quiet", "storm"]


def _truth(name: str, table: str) -> pl.DataFrame:
    sch = dict(getattr(schema, table.upper()))
    if table == "records":
        sch["payload"] = pl.String()  # written as hex
    df = pl.read_csv(sample_path(name) / "truth" / f"{table}.csv", schema=sch)
    if table == "records":
        df = df.with_columns(pl.col("payload").str.decode("hex"))
    return df


@pytest.mark.parametrize("name", SAMPLES)
def test_samples_decode_to_their_truth_files(name):
    sc = load_scenario(sample_path(name) / "scenario.toml")
    d = decode(sample_path(name), subbuf_size=sc.subbuf_size, n_subbufs=sc.n_subbufs)
    assert_frame_equal(d.records, _truth(name, "records"))
    assert_frame_equal(d.cs.sort("cpu", "seq", "idx"),
                       _truth(name, "cs").sort("cpu", "seq", "idx"))
    assert d.skipped_bytes == 0 and d.resyncs == 0


@pytest.mark.parametrize("name", SAMPLES)
def test_samples_are_reproducible_from_their_scenario(name):
    sc = load_scenario(sample_path(name) / "scenario.toml")
    res = emit(sc)
    for cpu, data in res.files.items():
        assert (sample_path(name) / f"trace{cpu}").read_bytes() == data


SCENARIOS = [
    Scenario(name="busy", cpus=[0, 2, 3], duration_ms=300, invalidation_rate=150,
             write_error_rate=0.2, pages_error_rate=0.1, long_message_rate=0.02),
    Scenario(name="overflow", cpus=2, duration_ms=500, subbuf_size=4096, n_subbufs=4,
             reader_interval_ms=60, background_text_rate=3000, iotimes_rate=1000,
             invalidation_rate=200, write_error_rate=0.2, open_rate=400),
    Scenario(name="stall", cpus=3, duration_ms=300, stall=1, stall_at_ms=150,
             disconnect_at_ms=250, write_error_rate=0.3, invalidation_rate=120),
]


@pytest.mark.parametrize("layout", ["stream", "raw"])
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("base", SCENARIOS, ids=lambda s: s.name)
def test_round_trip_over_seeds(tmp_path, base, seed, layout):
    sc = dataclasses.replace(base, seed=seed)
    res = emit(sc, tmp_path / "d", layout=layout)
    d = decode(tmp_path / "d", layout=layout, subbuf_size=sc.subbuf_size,
               n_subbufs=sc.n_subbufs)
    assert_frame_equal(d.records, res.records)
    assert_frame_equal(d.cs.sort("cpu", "seq", "idx"), res.cs.sort("cpu", "seq", "idx"))
    assert d.skipped_bytes == 0
