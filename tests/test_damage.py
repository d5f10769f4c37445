"""Damage is data: every intact record recovered, every skipped byte counted."""

import numpy as np
import pytest
from polars.testing import assert_frame_equal

from helpers import decode_bytes, iot_rec, sample_stream, start_rec, text_rec
from ktrace_decode import slowpath
from ktrace_decode.formats import layouts as L

RECS = sample_stream(12)
BLOB = b"".join(RECS)
BOUNDS = np.cumsum([0] + [len(r) for r in RECS])


def test_clean_stream_has_no_damage():
    recs, _, rep = decode_bytes(BLOB)
    assert recs.height == 12 and rep.skips == [] and rep.resyncs == 0
    assert recs["offset"].to_list() == BOUNDS[:-1].tolist()


@pytest.mark.parametrize("cut", range(1, len(BLOB)))
def test_truncation_at_every_offset(cut):
    recs, _, rep = decode_bytes(BLOB[:cut])
    whole = int(np.searchsorted(BOUNDS, cut, side="right")) - 1  # records wholly before cut
    assert recs.height == whole
    tail = cut - BOUNDS[whole]
    if tail:
        (skip,) = rep.skips
        assert (skip.start, skip.end, skip.kind) == (BOUNDS[whole], cut, "truncated")
        assert rep.truncated_tail is skip
    else:
        assert rep.skips == []


@pytest.mark.parametrize("where", [0, 3, 7, 11, 12])
@pytest.mark.parametrize("garbage", [b"\x01", b"x" * 37, bytes(range(1, 200)), b"\0" * 64,
                                     b"\x9c", b"\x9c\xf5\x09\x00"])
def test_inserted_garbage_is_skipped_exactly(where, garbage):
    data = BLOB[:BOUNDS[where]] + garbage + BLOB[BOUNDS[where]:]
    recs, _, rep = decode_bytes(data)
    clean, _, _ = decode_bytes(BLOB)
    assert recs.height == 12
    assert recs["text"].to_list() == clean["text"].to_list()
    assert rep.skipped_bytes == len(garbage)
    assert rep.skips[0].start == BOUNDS[where]
    if where < 12:
        assert rep.resyncs == 1
        assert recs["resynced"].to_list() == [i == where for i in range(12)]


def test_zeroed_unfilled_record_in_a_stream():
    # A record reserved but not filled is copied as zeros: skip exactly its bytes.
    hole = len(RECS[5])
    data = BLOB[:BOUNDS[5]] + b"\0" * hole + BLOB[BOUNDS[6]:]
    recs, _, rep = decode_bytes(data)
    assert recs.height == 11 and rep.skipped_bytes == hole and rep.resyncs == 1


def test_unknown_type_is_kept_raw():
    odd = L.build_record(9, 5_000_055, b"\x01\x02\x03")
    data = BLOB[:BOUNDS[6]] + odd + BLOB[BOUNDS[6]:]
    recs, _, rep = decode_bytes(data)
    assert recs.height == 13 and rep.unknown_type == 1 and rep.skips == []
    row = recs.filter(recs["unknown_type"]).row(0, named=True)
    assert (row["type"], row["payload"], row["text"]) == (9, b"\x01\x02\x03", None)


def test_long_text_record_is_cut_at_the_nul_and_flagged():
    long_msg = "fuse_inval_files_work: " + "y" * 400
    kernel_buf = long_msg.encode()[:255] + b"\0"
    payload = kernel_buf + bytes(range(1, 121)) + b"\xff" * 48
    assert len(payload) == len(long_msg) + 1  # the kernel copies len + 1 bytes
    data = RECS[0] + L.build_record(L.TYPE_TEXT, 5_000_001, payload) + RECS[1]
    recs, _, rep = decode_bytes(data)
    assert recs.height == 3 and rep.long_text == 1 and rep.skips == []
    row = recs.row(1, named=True)
    assert row["long_text"] and row["text"] == long_msg[:255] and row["pdu_len"] == 424


def test_empty_cpu_file():
    recs, cs, rep = decode_bytes(b"")
    assert recs.height == 0 and cs.height == 0 and rep.skips == [] and rep.records == 0


def test_time_going_backwards_is_flagged():
    data = text_rec(100, "a: x") + text_rec(90, "a: y") + text_rec(95, "a: z")
    recs, _, rep = decode_bytes(data)
    assert recs["time_backwards"].to_list() == [False, True, False] and rep.time_backwards == 1


def test_trailing_newline_is_stripped():
    recs, _, _ = decode_bytes(text_rec(100, "f: line\n"))
    assert recs["text"].to_list() == ["f: line"]


def test_non_utf8_text_is_decoded_with_replacement():
    data = L.build_record(L.TYPE_TEXT, 100, b"f: caf\xe9 \xc3\xa9\0")
    recs, _, _ = decode_bytes(data)
    assert recs["text"].to_list() == ["f: caf\ufffd \u00e9"]


def _raw_image(subbufs: list[list[bytes]], size: int, stale: bytes = b"") -> bytes:
    out = bytearray()
    for recs in subbufs:
        body = b"".join(recs)
        pad = (stale * (size // max(len(stale), 1) + 1))[: size - len(body)] if stale else bytes(
            size - len(body))
        out += body + pad
    return bytes(out)


def test_raw_layout_orders_subbuffers_by_time_and_ignores_padding():
    size = 1024
    lap_new = [start_rec(2_000 + i, 10 + i) for i in range(5)]
    lap_old = [start_rec(3_000 + i, 20 + i) for i in range(5)]
    img = _raw_image([lap_old, lap_new, [], []], size)
    recs, _, rep = decode_bytes(img, layout="raw", subbuf_size=size, n_subbufs=4)
    assert recs["time_us"].to_list() == [2000, 2001, 2002, 2003, 2004,
                                         3000, 3001, 3002, 3003, 3004]
    assert rep.subbuf_order == [1, 0] and rep.skips == []
    assert rep.padding_bytes == 4 * size - sum(map(len, lap_new + lap_old))


def test_raw_layout_drops_stale_records_of_an_earlier_lap():
    size = 1024
    # The same record sizes as the current lap: the stale chain continues seamlessly.
    stale_lap = b"".join(start_rec(1_000 + i, 50 + i) for i in range(40))
    current = b"".join(start_rec(9_000 + i, 60 + i) for i in range(4))
    sub0 = (current + stale_lap[len(current):])[:size]
    sub0 += bytes(size - len(sub0))
    img = sub0 + bytes(size)
    recs, _, rep = decode_bytes(img, layout="raw", subbuf_size=size, n_subbufs=2)
    assert recs["time_us"].to_list() == [9000, 9001, 9002, 9003]
    assert rep.skips == [] and rep.stale_bytes > 0


def test_raw_layout_resyncs_inside_a_subbuffer_on_newer_records():
    size = 2048
    good = [start_rec(9_000 + i, 60 + i) for i in range(6)]
    body = b"".join(good[:3]) + b"\xee" * 21 + b"".join(good[3:])
    img = body + bytes(size - len(body))
    recs, _, rep = decode_bytes(img, layout="raw", subbuf_size=size, n_subbufs=1)
    assert recs.height == 6 and rep.skipped_bytes == 21 and rep.resyncs == 1


def test_auto_layout_detects_raw_images():
    size = 4096
    img = _raw_image([[start_rec(5 + i, 3) for i in range(3)], [], [], []], size)
    _, _, rep = decode_bytes(img, layout="auto", subbuf_size=size, n_subbufs=4)
    assert rep.layout == "raw"
    _, _, rep = decode_bytes(img[:-1], layout="auto", subbuf_size=size, n_subbufs=4)
    assert rep.layout == "stream"


def test_false_magic_inside_a_payload_is_not_a_record():
    # An iotimes payload holding the magic bytes must not split the chain.
    rec = iot_rec(5_000_100, ino=0xF59C_F59C_F59C)
    data = RECS[0] + rec + RECS[1]
    recs, _, rep = decode_bytes(data)
    assert recs.height == 3 and rep.skips == [] and recs["io_ino"][1] == 0xF59C_F59C_F59C


@pytest.mark.parametrize("layout", ["stream", "raw"])
def test_fast_and_slow_paths_agree_on_damaged_input(layout):
    size = 2048
    rng = np.random.default_rng(7)
    for _ in range(30):
        body = bytearray(b"".join(sample_stream(14)))
        for _ in range(3):
            p = int(rng.integers(0, len(body)))
            body[p:p + int(rng.integers(1, 9))] = rng.integers(0, 256, int(rng.integers(0, 30)),
                                                                dtype=np.uint8).tobytes()
        data = bytes(body)
        if layout == "raw":
            data = (data[:size] + bytes(size))[:size] * 2
        fast, fcs, rep = decode_bytes(data, layout=layout, subbuf_size=size,
                                      n_subbufs=len(data) // size or 1)
        slow, scs, skips = slowpath.decode_bytes(data, layout=layout, subbuf_size=size)
        assert_frame_equal(fast, slow)
        assert_frame_equal(fcs, scs)
        assert [(s.start, s.end, s.kind) for s in rep.skips] == [
            (s.start, s.end, s.kind) for s in skips]


def _fast_equals_slow(data: bytes, **kw):
    fast, fcs, rep = decode_bytes(data, **kw)
    slow, scs, skips = slowpath.decode_bytes(data, **{k: v for k, v in kw.items()
                                                      if k in ("layout", "subbuf_size")})
    assert_frame_equal(fast, slow)
    assert_frame_equal(fcs, scs)
    assert [(s.start, s.end, s.kind) for s in rep.skips] == [
        (s.start, s.end, s.kind) for s in skips]
    return fast, rep


STALE = b"".join(text_rec(5_000_000 + i, "f: stale") for i in range(9))  # 5 s before GOOD


def _good(i: int) -> bytes:
    return text_rec(10_000_000 + i, f"f: good {i}")


@pytest.mark.parametrize(("data", "texts", "skipped", "resyncs"), [
    # One record, then damage: its floor holds because a later candidate
    # (good 1) is not stale against it; the stale records are skipped.
    (_good(0) + b"\x01" + STALE + _good(1), ["f: good 0", "f: good 1"], 1 + len(STALE), 1),
    # Two records set the floor: stale records up to the end stay skipped (as
    # the garbage tail: no resync).
    (_good(0) + _good(1) + b"\x01" + STALE, ["f: good 0", "f: good 1"], 1 + len(STALE), 0),
    # One record and nothing after the damage that is not stale against it: the
    # lone record's time is taken for the damage, everything after is kept.
    (_good(0) + b"\x01" + STALE, ["f: good 0"] + ["f: stale"] * 9, 1, 1),
], ids=["one record, confirmed", "two records", "one record, unconfirmed"])
def test_stale_floor_of_a_stream(data, texts, skipped, resyncs):
    recs, rep = _fast_equals_slow(data)
    assert recs["text"].to_list() == texts
    assert rep.skipped_bytes == skipped and rep.resyncs == resyncs


def test_raw_subbuffer_with_one_record_keeps_its_stale_lap_as_padding():
    # The stream exception for a lone record does not apply to raw images: after
    # the sub-buffer's only record, older records are an earlier lap.
    size = 1024
    sub = _good(0) + b"\x01" + STALE
    img = sub + bytes(size - len(sub))
    recs, rep = _fast_equals_slow(img, layout="raw", subbuf_size=size, n_subbufs=1)
    assert recs["text"].to_list() == ["f: good 0"]
    assert rep.skips == [] and rep.stale_bytes > 0
