"""Property tests (hypothesis) for the parsers."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from helpers import decode_bytes, iot_rec, text_rec
from ktrace_decode import slowpath
from ktrace_decode.formats import layouts as L

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def records(draw):
    """A valid stream: text (incl. non-ASCII) and iotimes records, increasing time."""
    n = draw(st.integers(0, 25))
    t = draw(st.integers(0, 1 << 40))
    out = []
    for _ in range(n):
        t += draw(st.integers(0, 10_000))
        if draw(st.booleans()):
            out.append(iot_rec(t, ino=draw(st.integers(0, 1 << 63)), n_cs=draw(st.integers(0, 4)),
                               ovfl=draw(st.integers(0, 65535))))
        else:
            body = draw(st.text(alphabet=st.characters(blacklist_characters="\0",
                                                       blacklist_categories=("Cs",)),
                                max_size=60))
            out.append(text_rec(t, "fn: " + body, ovfl=draw(st.integers(0, 3))))
    return out


@SETTINGS
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise(data):
    recs, _cs, rep = decode_bytes(data)
    accounted = sum(int(r) for r in recs["pdu_len"]) + 16 * recs.height + rep.skipped_bytes
    assert accounted == len(data)  # every byte is a record or counted as skipped


@SETTINGS
@given(st.binary(max_size=4096), st.sampled_from([256, 512, 1024]))
def test_arbitrary_bytes_never_raise_as_raw(data, size):
    data = (data + bytes(size))[: size * max(1, len(data) // size)]
    decode_bytes(data, layout="raw", subbuf_size=size, n_subbufs=len(data) // size)


def _no_header(b: bytes) -> bool:
    return b"\x9c\xf5" not in b and not b.endswith(b"\x9c")


@SETTINGS
@given(records(), st.lists(st.tuples(st.integers(0, 30), st.binary(min_size=1, max_size=80)
                                     .filter(_no_header)), max_size=4))
def test_garbage_between_records_never_loses_a_record(recs, inserts):
    where = {min(i, len(recs)): g for i, g in inserts}
    data = b"".join(where.get(i, b"") + r for i, r in enumerate(recs)) + where.get(len(recs), b"")
    got, _, rep = decode_bytes(data)
    clean, _, _ = decode_bytes(b"".join(recs))
    assert got.height == len(recs)
    assert_frame_equal(got.drop("offset", "resynced"), clean.drop("offset", "resynced"))
    assert rep.skipped_bytes == sum(len(g) for g in where.values())


@SETTINGS
@given(records(), st.data())
def test_fast_path_agrees_with_construct_path(recs, data):
    blob = bytearray(b"".join(recs))
    for _ in range(data.draw(st.integers(0, 3))):
        if not blob:
            break
        p = data.draw(st.integers(0, len(blob) - 1))
        blob[p:p + data.draw(st.integers(0, 8))] = data.draw(st.binary(max_size=12))
    fast, fcs, rep = decode_bytes(bytes(blob))
    slow, scs, skips = slowpath.decode_bytes(bytes(blob))
    assert_frame_equal(fast, slow)
    assert_frame_equal(fcs, scs)
    assert [(s.start, s.end) for s in rep.skips] == [(s.start, s.end) for s in skips]


def test_decoding_is_deterministic():
    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    data = data[:1000] + b"".join(text_rec(i, "f: x") for i in range(50)) + data[1000:]
    a = decode_bytes(data)
    b = decode_bytes(data)
    assert_frame_equal(a[0], b[0]) and a[2].skips == b[2].skips
    assert a[0].height >= 50
    assert L.MAGIC == 0xF59C
