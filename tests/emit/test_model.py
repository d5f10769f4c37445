"""The emitter's model of the patched kernel path."""

import dataclasses
import itertools
import re

import polars as pl
from polars.testing import assert_frame_equal

from ktrace_decode.emit import Scenario, emit
from ktrace_decode.emit.model import simulate
from ktrace_decode.formats import layouts as L

BASE = Scenario(name="t", seed=5, cpus=[0, 1, 3], duration_ms=300, nodeids=[10, 20, 30],
                invalidation_rate=100, open_rate=200, background_text_rate=100,
                iotimes_rate=100)


def test_same_seed_same_bytes_other_seed_other_bytes():
    a, b = emit(BASE), emit(BASE)
    assert a.files == b.files and a.prometheus == b.prometheus
    c = emit(dataclasses.replace(BASE, seed=6))
    assert c.files != a.files


def test_numbering_quirk_in_the_bytes():
    res = emit(BASE)
    texts = [L.Record.parse(res.files[cpu][off:])["payload"]["raw"].rstrip(b"\0").decode()
             for cpu, off in res.records.filter(pl.col("type") == 1).select("cpu", "offset")
             .rows()]
    starts = {int(m) for t in texts for m in re.findall(r"invalidate_file on \[(\d+)\] starts", t)}
    waits = {int(m) for t in texts for m in re.findall(r"waiting for invalidate_file on \[(\d+)\]",
                                                       t)}
    assert starts <= {9, 19, 29} and starts  # work function: nodeid - FUSE_ROOT_ID
    assert waits <= {10, 20, 30} and waits  # fuse_open: the raw nodeid
    assert all(t.startswith(("fuse_inval_files_work: ", "fuse_open: ", "fuse_link_rw_file: ",
                             "pcs_", "cs_", "handle_congestion: ", "fuse_dev_do_read: ",
                             "kpcs_req_send: ")) for t in texts)


def test_retries_after_one_jiffy_and_eio_is_silent():
    # One inode: further notifications coalesce, so only the retry re-queues the work.
    sc = dataclasses.replace(BASE, nodeids=[10], write_error_rate=0.5, write_errnos=[-11, -5],
                             hz=250, pages_error_rate=0.0)
    m = simulate(sc)
    gaps = []
    for ep in m.episodes:
        for err_t in ep.write_errors:
            nxt = [s for s in ep.starts if s > err_t]
            if nxt:
                gaps.append(nxt[0] - err_t)
    assert gaps and min(gaps) >= 4000  # one jiffy at HZ=250
    res = emit(sc)
    errs = res.events.filter(pl.col("event") == "write_error")["err"].unique().to_list()
    assert errs == [-11]  # -EIO from write-back is not traced


def test_coalescing_one_episode_while_the_bit_is_set():
    sc = dataclasses.replace(BASE, nodeids=[10], invalidation_rate=2000, write_load=2000)
    m = simulate(sc)
    # every episode ends before the next of the same inode begins
    eps = [e for e in m.episodes if e.end_us is not None]
    assert all(a.end_us <= b.requested_us for a, b in itertools.pairwise(eps))


def test_disconnect_stops_tracing_errors():
    sc = dataclasses.replace(BASE, write_error_rate=0.6, write_errnos=[-11],
                             disconnect_at_ms=100)
    res = emit(sc)
    errs = res.events.filter(pl.col("event") == "write_error")
    assert errs.height and errs["time_us"].max() < sc.start_time_us + 100_000 + 50_000


def test_stall_leaves_an_episode_in_progress():
    sc = dataclasses.replace(BASE, stall=0, stall_at_ms=100)
    res = emit(sc)
    assert "in_progress" in res.invalidations["status"].to_list()


def test_long_messages_follow_the_kernel_bug():
    res = emit(dataclasses.replace(BASE, long_message_rate=0.5))
    long = res.records.filter(pl.col("long_text"))
    assert long.height and (long["pdu_len"] > 256).all()
    assert (long["text"].str.len_chars() == 255).all()


def test_observable_episodes_equal_the_true_ones_without_drops():
    res = emit(dataclasses.replace(BASE, write_error_rate=0.3, pages_error_rate=0.2))
    assert sum(res.dropped.values()) == 0
    true = [(e.nodeid, e.starts[0] if e.starts else None, e.end_us, len(e.starts),
             len(e.write_errors), len(e.pages_errors), len(e.waits), len(e.pending))
            for e in res.true_episodes if e.starts or e.waits or e.pending]
    seen = res.invalidations.select("nodeid", "start_us", "end_us", "attempts", "write_errors",
                                    "pages_errors", "blocked_opens", "pending_files").rows()
    assert sorted(seen, key=lambda r: (r[0], r[1] or 0)) == sorted(
        true, key=lambda r: (r[0], r[1] or 0))


def test_raw_image_size_and_truth_layout():
    res = emit(dataclasses.replace(BASE, subbuf_size=4096, n_subbufs=4), layout="raw")
    assert all(len(b) == 4 * 4096 for b in res.files.values())
    assert_frame_equal(res.records, res.records.sort("time_us", "cpu", "seq"))
