"""Episodes against a plain-Python statement of the rules, on adversarial traces.

Every test runs both ways of computing them: the Polars plan
(:func:`episodes`) and the compiled loop (:func:`compiled`).
"""

from __future__ import annotations

import random

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pl_builders import Trace, random_trace
from pl_oracle import episodes as oracle
from polars.testing import assert_frame_equal

from ktrace_decode import schema
from ktrace_decode.decode import decode, drop_windows
from ktrace_decode.pipeline.episodes import compiled, episodes
from ktrace_decode.pipeline.events import events

PATHS = ["plan", "compiled"]


@pytest.fixture(params=PATHS)
def path(request) -> str:
    return request.param


def run(ev: pl.DataFrame, windows: pl.DataFrame, path: str) -> pl.DataFrame:
    """The episodes of collected events and windows, computed the ``path`` way."""
    if path == "plan":
        return episodes(ev.lazy(), windows.lazy()).collect()
    pytest.importorskip("numba")  # loaded: compiled() runs the loop on any size
    got = compiled(ev, windows)
    assert got is not None
    return got


def pipeline(tr: Trace, tmp_path, path: str) -> pl.DataFrame:
    records = decode(tr.write(tmp_path / "dump")).records
    return run(events(records.lazy()).collect(), drop_windows(records), path)


@pytest.mark.parametrize("seed", range(40))
def test_random_traces_match_the_rules(seed, tmp_path, path):
    tr = random_trace(seed, n=60 + seed * 5, spread=200 + 40 * seed)
    assert_frame_equal(pipeline(tr, tmp_path, path), oracle(tr.events, tr.windows()))


def test_retries_across_cpus_and_the_numbering_quirk(tmp_path, path):
    tr = Trace()
    # kernel nodeid 10: the work function prints 9, fuse_open prints 10.
    tr.add_event(0, 100, "waiting", 10)
    tr.add_event(1, 200, "start", 10)
    tr.add_event(1, 250, "write_error", 10, err=-11)
    tr.add_event(2, 300, "start", 10)
    tr.add_event(2, 350, "pages_error", 10, err=-16)
    tr.add_event(0, 400, "start", 10)
    tr.add_event(3, 500, "end", 10)
    got = pipeline(tr, tmp_path, path)
    assert got.select("nodeid", "userspace_id", "first_seen_us", "start_us", "end_us",
                      "duration_us", "attempts", "write_errors", "pages_errors", "last_err",
                      "blocked_opens", "max_open_wait_us", "start_cpu", "end_cpu",
                      "status").row(0) == (10, 9, 100, 200, 500, 300, 3, 1, 1, -16, 1, 400, 1, 3,
                                           "complete")


def test_no_start_in_progress_and_orphans(tmp_path, path):
    tr = Trace()
    tr.add_event(0, 100, "write_error", 5, err=-28)  # opens an episode without a start
    tr.add_event(0, 150, "start", 5)  # a retry: counts, but is not the episode's start
    tr.add_event(0, 200, "end", 5)
    tr.add_event(1, 210, "pending", 5, fh=3)  # after every end: a new, open episode
    tr.add_event(1, 220, "waiting", 5)  # joins it
    tr.add_event(0, 300, "start", 6)  # never ends
    tr.add_event(1, 400, "waiting", 6)  # joins the open one
    got = pipeline(tr, tmp_path, path).select(
        "nodeid", "first_seen_us", "start_us", "end_us", "duration_us", "attempts",
        "pending_files", "blocked_opens", "max_open_wait_us", "status")
    assert got.rows() == [
        (5, None, None, 200, None, 1, 0, 0, None, "no_start"),
        (5, 210, None, None, None, 0, 1, 1, None, "in_progress"),
        (6, 300, 300, None, None, 1, 0, 1, None, "in_progress"),
    ]


def test_attached_event_at_the_same_time_as_an_end_joins_that_episode(tmp_path, path):
    tr = Trace()
    tr.add_event(0, 100, "start", 5)
    tr.add_event(0, 200, "end", 5)
    tr.add_event(1, 200, "waiting", 5)  # end_us >= t holds with equality
    tr.add_event(0, 200, "start", 5)  # same microsecond, next episode
    tr.add_event(0, 200, "end", 5)
    got = pipeline(tr, tmp_path, path)
    assert got["blocked_opens"].to_list() == [1, 0]
    assert got["max_open_wait_us"].to_list() == [0, None]


def test_lost_overlap_uses_the_window_before_a_dropped_record(tmp_path, path):
    tr = Trace()
    tr.add_event(0, 100, "start", 5)
    tr.add_event(0, 200, "end", 5)
    tr.add_event(0, 300, "start", 6)
    tr.add_event(0, 400, "end", 6)
    tr.add_text(1, 150, "x: noise")
    tr.add_text(1, 250, "x: noise", ovfl=4)  # lost between 150 and 250: overlaps nodeid 5 only
    tr.add_text(2, 450, "x: first record of cpu 2", ovfl=1)  # window (-inf, 450]: overlaps both
    got = pipeline(tr, tmp_path, path)
    assert got["lost_overlap"].to_list() == [True, True]
    tr.records[2].clear(), tr.rows[2].clear()
    got = pipeline(tr, tmp_path / "b", path)
    assert got["lost_overlap"].to_list() == [True, False]


def test_no_patch_events_gives_an_empty_table_with_the_schema(tmp_path, path):
    tr = Trace()
    tr.add_text(0, 5, "pcs_foo: bar")
    got = pipeline(tr, tmp_path, path)
    assert got.is_empty() and got.schema == pl.Schema(schema.INVALIDATIONS)


@pytest.mark.parametrize("seed", range(6))
def test_raw_ring_images_give_the_same_episodes(seed, tmp_path, path):
    # Distinct times within a CPU: the ring's slot order is recovered from times.
    tr = random_trace(100 + seed, n=150, spread=100_000)
    raw = tr.write_raw(tmp_path / "raw", subbuf=512, rotate=seed + 1)
    dec = decode(raw, layout="raw", subbuf_size=512)
    assert {c.layout for c in dec.cpus} == {"raw"} and not dec.damaged
    got = run(events(dec.records.lazy()).collect(), drop_windows(dec.records), path)
    assert_frame_equal(got, oracle(tr.events, tr.windows()))


@pytest.mark.parametrize("seed", range(8))
def test_events_in_any_row_order_give_the_same_episodes(seed, tmp_path, path):
    # Events normally arrive in merged time order and are only stably sorted
    # by nodeid; shuffled rows must take the full (nodeid, time, cpu, seq) sort.
    tr = random_trace(200 + seed, n=120, spread=300)
    records = decode(tr.write(tmp_path / "dump")).records
    ev = events(records.lazy()).collect()
    windows = drop_windows(records)
    shuffled = ev.sample(fraction=1.0, shuffle=True, seed=seed)
    assert not shuffled.equals(ev)
    want = oracle(tr.events, tr.windows())
    assert_frame_equal(run(ev, windows, path), want)
    assert_frame_equal(run(shuffled, windows, path), want)


def test_an_error_without_a_readable_code_is_the_episodes_last_error(path):
    # last_err is the err of the latest error event, null included: an earlier
    # error's code must not show through a later one that printed none.
    ev = pl.DataFrame(
        {"time_us": [1, 2, 3, 4], "cpu": [0, 0, 0, 0], "seq": [0, 1, 2, 3],
         "event": ["start", "write_error", "pages_error", "end"],
         "nodeid": [7, 7, 7, 7], "fh": [None] * 4, "err": [None, -5, None, None]},
        schema={k: schema.EVENTS[k] for k in ("time_us", "cpu", "seq", "event", "nodeid",
                                               "fh", "err")})
    windows = pl.DataFrame(schema={"cpu": pl.UInt16, "after_us": pl.UInt64,
                                   "before_us": pl.UInt64, "at_least": pl.UInt64})
    got = run(ev, windows, path)
    assert got.select("attempts", "write_errors", "pages_errors", "last_err").rows() == [
        (1, 1, 1, None)]


def test_the_loops_event_codes_are_the_patch_order():
    jit = pytest.importorskip("ktrace_decode.pipeline._episodes_jit")
    from ktrace_decode.pipeline.episodes import PATCH_ORDER
    codes = [jit.START, jit.WRITE_ERROR, jit.PAGES_ERROR, jit.END, jit.PENDING, jit.WAITING]
    assert [PATCH_ORDER[c] for c in codes] == [
        "start", "write_error", "pages_error", "end", "pending", "waiting"]


_EVENT_NAMES = ["start", "write_error", "pages_error", "end", "pending", "waiting",
                "iotimes", "other"]


@st.composite
def event_frames(draw) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Events as the pipeline makes them (any row order, ties in time and
    cpu, null nodeids and errs, other events) and drop windows."""
    n = draw(st.integers(0, 60))
    nodeids = draw(st.lists(st.one_of(st.none(), st.integers(0, 2**64 - 1)), min_size=1,
                            max_size=5))
    rows = draw(st.lists(st.tuples(
        st.integers(0, 40), st.integers(0, 3), st.sampled_from(_EVENT_NAMES),
        st.sampled_from(nodeids), st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1))),
        min_size=n, max_size=n))
    if draw(st.booleans()):  # merged order, as the pipeline gives them
        rows.sort(key=lambda r: (r[0], r[1]))
    ev = pl.DataFrame(
        {"time_us": [r[0] for r in rows], "cpu": [r[1] for r in rows],
         "seq": list(range(len(rows))), "event": [r[2] for r in rows],
         "nodeid": [r[3] for r in rows], "fh": [None] * len(rows), "err": [r[4] for r in rows]},
        schema={k: schema.EVENTS[k] for k in ("time_us", "cpu", "seq", "event", "nodeid",
                                               "fh", "err")})
    wins = draw(st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 40)),
                                   st.integers(0, 40)), max_size=4))
    windows = pl.DataFrame({"cpu": [0] * len(wins), "after_us": [w[0] for w in wins],
                            "before_us": [w[1] for w in wins], "at_least": [1] * len(wins)},
                           schema={"cpu": pl.UInt16, "after_us": pl.UInt64,
                                   "before_us": pl.UInt64, "at_least": pl.UInt64})
    return ev, windows


@settings(max_examples=300, deadline=None)
@given(event_frames())
def test_the_compiled_loop_gives_the_plans_episodes(frames):
    ev, windows = frames
    assert_frame_equal(run(ev, windows, "compiled"), run(ev, windows, "plan"))


def test_kept_events_as_an_enum_give_the_same_episodes(tmp_path):
    # A streamed export keeps its events with an Enum of the patch's names.
    from ktrace_decode.pipeline.streamed import KEPT_COLUMNS, KEPT_EVENTS
    tr = random_trace(7, n=300, spread=500)
    records = decode(tr.write(tmp_path / "dump")).records
    ev = events(records.lazy()).collect()
    kept = ev.filter(pl.col("event").is_in(KEPT_EVENTS)).select(
        *KEPT_COLUMNS[:3], pl.col("event").cast(pl.Enum(KEPT_EVENTS)), *KEPT_COLUMNS[4:])
    want = oracle(tr.events, tr.windows())
    assert_frame_equal(run(kept, drop_windows(records), "compiled"), want)


def test_without_numba_loaded_small_inputs_take_the_plan(monkeypatch):
    import sys

    ev = pl.DataFrame(schema={k: schema.EVENTS[k] for k in ("time_us", "cpu", "seq", "event",
                                                             "nodeid", "fh", "err")})
    windows = pl.DataFrame(schema={"cpu": pl.UInt16, "after_us": pl.UInt64,
                                   "before_us": pl.UInt64, "at_least": pl.UInt64})
    monkeypatch.delitem(sys.modules, "numba", raising=False)
    assert compiled(ev, windows) is None


@pytest.mark.parametrize("spread", [0, 2**11 - 1, 2**11, 2**22 + 5, 2**33, 2**64 - 1])
def test_every_number_of_sort_passes_gives_the_plans_episodes(spread):
    # The loop radix-sorts 11 bits of the nodeid range per pass: from one
    # nodeid (no pass beyond the first) to the whole 64 bits (six passes).
    rnd = random.Random(spread)
    nodeids = sorted({spread, 0, *(rnd.randint(0, spread) for _ in range(30))})
    n = 3000
    ev = pl.DataFrame(
        {"time_us": sorted(rnd.randrange(10**6) for _ in range(n)),
         "cpu": [rnd.randrange(4) for _ in range(n)], "seq": list(range(n)),
         "event": [rnd.choice(_EVENT_NAMES[:6]) for _ in range(n)],
         "nodeid": [rnd.choice(nodeids) for _ in range(n)], "fh": [None] * n,
         "err": [rnd.choice([None, -5, -11]) for _ in range(n)]},
        schema={k: schema.EVENTS[k] for k in ("time_us", "cpu", "seq", "event", "nodeid",
                                               "fh", "err")})
    windows = pl.DataFrame({"cpu": [0], "after_us": [400_000], "before_us": [400_100],
                            "at_least": [1]},
                           schema={"cpu": pl.UInt16, "after_us": pl.UInt64,
                                   "before_us": pl.UInt64, "at_least": pl.UInt64})
    got = run(ev, windows, "compiled")
    assert got.height > 10
    assert_frame_equal(got, run(ev, windows, "plan"))
