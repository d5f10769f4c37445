"""Fuzzing the decoder with damaged valid dumps (hypothesis, bounded examples).

Valid per-CPU streams come from the reference emitter (and the hand builders);
then 1-4 damage operations hit them: flip a byte, cut a range out, cut the
tail, insert random garbage, insert a *fake record* (garbage that passes every
plausibility check), zero a run, overwrite a run with random bytes, duplicate
a range (a sub-buffer read twice), splice the other CPU's stream in.  Every
byte of the result knows where it came from (``rb_damage.Damaged``), so the
test knows which original records are still there intact (see
``Damaged.intact``).

What is claimed, precisely (stream layout):

``test_any_damage``, for any such damage:
  1. decoding raises nothing;
  2. the recovered records and the reported skips tile the buffer exactly:
     in offset order, with no gap and no overlap, from 0 to the end; so the
     skipped-byte count is the buffer size minus the recovered records' bytes;
  3. the output is deterministic and does not depend on the scan's chunk size;
  4. the fast path equals the construct slow path (records, cs entries, skips);
  5. every intact record is recovered at its offset with identical fields
     (header, text, iotimes header, chunk-server entries) -- unless (a) a
     recovered record that is *not* intact (a bogus header the damage made or
     left, which passed every plausibility check) overlaps it, or (b) it comes
     after skipped bytes and is more than STALE_TOLERANCE_US older than the
     earliest of the last RECENT_RECORDS records recovered before it -- and,
     when fewer than CONFIRMING_RECORDS (i.e. one) were recovered before it, a
     record recovered after it is not that old (it confirmed the floor) (the
     documented stale-data rule; the clean streams span < 0.5 s, so only
     damaged timestamps can trigger it, and one alone no longer can: not among
     other records, and not as the first record either).

``test_damage_without_header_bytes`` -- the same damage, then every ``9c f5``
that starts outside an intact record is broken (``scrub``: damaged bytes only),
so no bogus header exists.  Then, exactly:
  6. the recovered records are the intact occurrences, no more, no fewer;
  7. the skipped bytes are exactly the damaged bytes: inserted garbage plus
     every byte of every record the damage touched (buffer size minus the
     intact records' bytes), and the skips tile them;
  8. a record is flagged ``resynced`` iff skipped bytes come right before it.

``test_raw_images`` -- raw ring images (lapped or not) damaged in place (flip,
zero, overwrite, one sub-buffer copied over another): no exception; records +
skipped + padding bytes = image size; deterministic; fast = slow path; every
record of a sub-buffer the damage did not touch is recovered with identical
fields at its offset.
"""

from __future__ import annotations

import os

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from rb_damage import CS_FIELDS, FIELDS, Damaged, Source, damaged_dumps, emit

from helpers import decode_bytes
from ktrace_decode import slowpath
from ktrace_decode.decode import scan_parts
from ktrace_decode.formats import layouts as L
from ktrace_decode.records import cs_frame, records_frame
from ktrace_decode.scan import CONFIRMING_RECORDS, RECENT_RECORDS, STALE_TOLERANCE_US
from ktrace_decode.sources import TraceSource

#: Examples per property: bounded for CI; KTRACE_FUZZ_EXAMPLES=5000 for a long run.
EXAMPLES = int(os.environ.get("KTRACE_FUZZ_EXAMPLES", "120"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _chunked(data: bytes, chunk: int) -> tuple[pl.DataFrame, pl.DataFrame, list]:
    gen = scan_parts(TraceSource(0, "mem", np.frombuffer(data, np.uint8)), "stream",
                     chunk=chunk)
    parts = []
    while True:
        try:
            parts.append(next(gen))
        except StopIteration as stop:
            rep = stop.value
            break
    if not parts:
        return pl.DataFrame(), pl.DataFrame(), rep.skips
    return (records_frame(parts), pl.concat([cs_frame(p) for p in parts]), rep.skips)


def _spans(recs: pl.DataFrame) -> list[tuple[int, int]]:
    return [(o, o + L.HEADER_SIZE + p) for o, p in zip(recs["offset"].to_list(),
                                                        recs["pdu_len"].to_list(), strict=True)]


def _check_tiling(recs: pl.DataFrame, rep, n: int) -> None:
    pieces = sorted([(a, b, "record") for a, b in _spans(recs)]
                    + [(s.start, s.end, s.kind) for s in rep.skips])
    pos = 0
    for a, b, what in pieces:
        assert a == pos, f"gap or overlap at {pos}: next {what} starts at {a}"
        assert b > a
        pos = b
    assert pos == n
    assert rep.skipped_bytes == n - sum(b - a for a, b in _spans(recs))


def _same_fields(got: dict, want: dict) -> None:
    diff = {f: (got[f], want[f]) for f in FIELDS if got[f] != want[f]}
    assert not diff, f"fields differ (decoded, truth): {diff}"


def _cs_of(cs: pl.DataFrame, seq: int) -> list[tuple]:
    return cs.filter(pl.col("seq") == seq).sort("idx").select(CS_FIELDS).rows()


def _decode_and_check_generic(d: Damaged):
    data = bytes(d.data)
    recs, cs, rep = decode_bytes(data)  # 1. nothing raised
    _check_tiling(recs, rep, len(data))  # 2.
    again = decode_bytes(data)  # 3.
    assert_frame_equal(recs, again[0])
    assert_frame_equal(cs, again[1])
    assert rep.skips == again[2].skips
    small = _chunked(data, 61)
    if recs.height:
        assert_frame_equal(recs, small[0])
        assert_frame_equal(cs, small[1])
    assert rep.skips == small[2]
    slow, scs, sskips = slowpath.decode_bytes(data)  # 4.
    assert_frame_equal(recs, slow)
    assert_frame_equal(cs, scs)
    assert [(s.start, s.end, s.kind) for s in rep.skips] == [
        (s.start, s.end, s.kind) for s in sskips]
    return recs, cs, rep


@SETTINGS
@given(damaged_dumps())
def test_any_damage(case: tuple[Damaged, list[Source]]):
    d, sources = case
    recs, cs, _ = _decode_and_check_generic(d)
    intact = d.intact(sources)
    starts = {k for k, _, _, _ in intact}
    by_offset = {r["offset"]: r for r in recs.iter_rows(named=True)}
    spans = _spans(recs)
    for k, n, want, src in intact:  # 5.
        got = by_offset.get(k)
        if got is not None:
            _same_fields(got, want)
            assert _cs_of(cs, got["seq"]) == src.cs_of(want["seq"])
            continue
        bogus = [(a, b) for a, b in spans if a < k + n and k < b and a not in starts]
        before = recs.filter(pl.col("offset") < k).tail(RECENT_RECORDS)
        floor = (int(before["time_us"].min()) - STALE_TOLERANCE_US  # type: ignore[arg-type]
                 if before.height else None)
        stale = floor is not None and want["time_us"] < floor and (
            before.height >= CONFIRMING_RECORDS
            or recs.filter((pl.col("offset") > k) & (pl.col("time_us") >= floor)).height > 0)
        assert bogus or stale, (
            f"intact record at {k} ({n} bytes) lost; damage: {d.ops}")
        event("an intact record lost under a bogus record" if bogus else
              "an intact record lost to the stale rule")
    event(f"source: {sources[0].origin_kind}")
    event("some record recovered" if recs.height else "nothing recovered")
    for op in {o.split("(")[0] for o in d.ops}:
        event(f"op: {op}")


@SETTINGS
@given(damaged_dumps(scrub=True))
def test_damage_without_header_bytes(case: tuple[Damaged, list[Source]]):
    d, sources = case
    recs, cs, rep = _decode_and_check_generic(d)
    intact = d.intact(sources)
    assert recs["offset"].to_list() == [k for k, _, _, _ in intact], d.ops  # 6.
    for got, (_, _, want, src) in zip(recs.iter_rows(named=True), intact, strict=True):
        _same_fields(got, want)
        assert _cs_of(cs, got["seq"]) == src.cs_of(want["seq"])
    damaged_bytes = len(d) - sum(n for _, n, _, _ in intact)  # 7.
    assert rep.skipped_bytes == damaged_bytes
    spans = _spans(recs)  # 8.
    ends = [0, *(b for _, b in spans)][: len(spans)]
    assert recs["resynced"].to_list() == [a != e for (a, _), e in zip(spans, ends, strict=True)]


def test_the_oracle_sees_clean_streams_as_intact():
    """Sanity of the test machinery: no damage -> every record intact, nothing skipped."""
    from helpers import sample_stream

    data = b"".join(sample_stream(20))
    truth, cs, _ = slowpath.decode_bytes(data)
    src = Source(data, truth, cs, 0, "builders")
    d = Damaged.of(src)
    assert [k for k, _, _, _ in d.intact([src])] == truth["offset"].to_list()
    d.flip(20, 0x01)  # inside record 0's payload -> record 0 no longer intact
    assert [k for k, _, _, _ in d.intact([src])] == truth["offset"].to_list()[1:]


# --- raw ring images -------------------------------------------------------------

@st.composite
def damaged_raw(draw: st.DrawFn):
    size = draw(st.sampled_from([512, 1024, 2048]))
    sc_kw = dict(seed=draw(st.integers(0, 1 << 16)), cpus=1, layout="raw", subbuf_size=size,
                 n_subbufs=4, duration_ms=draw(st.sampled_from([10.0, 40.0, 120.0])),
                 reader_interval_ms=draw(st.sampled_from([0.0, 3.0])),
                 background_text_rate=800.0, invalidation_rate=300.0,
                 iotimes_rate=draw(st.sampled_from([0.0, 300.0])))
    from ktrace_decode.emit import Scenario

    res = emit(Scenario(**sc_kw))
    (cpu, img), = res.files.items()
    truth = res.records.filter(pl.col("cpu") == cpu)
    src = Source(img, truth, res.cs.filter(pl.col("cpu") == cpu))
    d = Damaged.of(src)
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "zero", "overwrite", "copy_subbuf"]))
        pos = draw(st.integers(0, len(img) - 1))
        if op == "flip":
            d.flip(pos, draw(st.integers(1, 255)))
        elif op == "zero":
            d.zero(pos, min(len(img), pos + draw(st.integers(1, 64))))
        elif op == "overwrite":
            d.overwrite(pos, draw(st.binary(min_size=1, max_size=64)))
        else:
            i, j = draw(st.integers(0, 3)), draw(st.integers(0, 3))
            d.overwrite(j * size, bytes(d.data[i * size:(i + 1) * size]), f"copy_subbuf{i}")
    return d, src, size


@pytest.mark.skipif(emit is None, reason="needs the emitter (ktrace_decode.emit)")
@settings(max_examples=max(EXAMPLES // 2, 1), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(damaged_raw())
def test_raw_images(case):
    d, src, size = case
    data = bytes(d.data)
    recs, cs, rep = decode_bytes(data, layout="raw", subbuf_size=size, n_subbufs=4)
    used = sum(b - a for a, b in _spans(recs))
    assert used + rep.skipped_bytes + rep.padding_bytes == len(data)
    again = decode_bytes(data, layout="raw", subbuf_size=size, n_subbufs=4)
    assert_frame_equal(recs, again[0])
    slow, scs, sskips = slowpath.decode_bytes(data, layout="raw", subbuf_size=size)
    assert_frame_equal(recs, slow)
    assert_frame_equal(cs, scs)
    assert [(s.start, s.end) for s in rep.skips] == [(s.start, s.end) for s in sskips]
    by_offset = {r["offset"]: r for r in recs.iter_rows(named=True)}
    for slot in range(4):
        a, b = slot * size, (slot + 1) * size
        if not (d.origin[a:b] == np.arange(a, b)).all():
            continue  # the damage touched this sub-buffer
        for want in src.truth.filter(pl.col("offset").is_between(a, b - 1)).iter_rows(
                named=True):
            got = by_offset.get(want["offset"])
            assert got is not None, f"record at {want['offset']} of untouched slot {slot} lost"
            _same_fields(got, want)
            assert _cs_of(cs, got["seq"]) == src.cs_of(want["seq"])
