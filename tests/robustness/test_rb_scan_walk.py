"""The compiled chain walk (scan.compiled_walk) changes nothing a scan finds.

A scan with the walk must give what the vectorised scan gives, chunk for
chunk: the records (starts, headers, resynced flags) and the whole damage
report, on damaged dumps of every kind, on arbitrary bytes, and around the
rules the walk restates (unknown types, the long-message bug, the time
limit, a record cut by the buffer's end).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rb_damage import damaged_dumps

from helpers import iot_rec, text_rec
from ktrace_decode.formats import layouts as L
from ktrace_decode.scan import TIME_LIMIT, Scanner, compiled_walk

WALK = compiled_walk()
pytestmark = pytest.mark.skipif(WALK is None, reason="numba is not installed")


def _scan(data: bytes, chunk: int, walk: bool) -> tuple[list, list, tuple]:
    sc = Scanner(np.frombuffer(data, np.uint8), chunk=chunk, walk=WALK if walk else None)
    parts = [(p.starts.tolist(), p.resynced.tolist(), p.hdr.tobytes()) for p in sc.chunks()]
    return parts, sc.skips, (sc.resyncs, sc.padding_bytes, sc.stale_bytes)


def _same(data: bytes, chunks: tuple[int, ...] = (1, 7, 61, 4096, 1 << 23)) -> None:
    for chunk in chunks:
        assert _scan(data, chunk, True) == _scan(data, chunk, False), chunk


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_dumps())
def test_damaged_dumps(case):
    d, _ = case
    _same(bytes(d.data), (7, 61, 4096, 1 << 23))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data):
    _same(data)


def _rec(typ: int, t: int, payload: bytes) -> bytes:
    return L.build_record(typ, t, payload)


@pytest.mark.parametrize("data", [
    # unknown types: believed before a plausible record or at the end, not before garbage
    _rec(7, 10, b"xy") + text_rec(11, "f: a"),
    text_rec(10, "f: a") + _rec(7, 11, b"xy"),
    _rec(7, 10, b"xy") + _rec(7, 11, b"zz") + text_rec(12, "f: a"),
    text_rec(10, "f: a") + _rec(7, 11, b"xy") + b"\x01\x02",
    # the long-message bug: a NUL at byte 255 only
    _rec(1, 10, b"f: " + b"a" * 252 + b"\0" + b"junk") + text_rec(11, "f: b"),
    _rec(1, 10, b"f: " + b"a" * 300 + b"\0") + text_rec(11, "f: b"),  # NUL at the end
    _rec(1, 10, b"f: " + b"a" * 300 + b"x") + text_rec(11, "f: b"),  # no NUL: garbage
    # empty text payload, iotimes of a wrong size, a time at the limit
    _rec(1, 10, b"") + text_rec(11, "f: b"),
    _rec(2, 10, b"\0" * 57) + text_rec(11, "f: b"),
    iot_rec(10, n_cs=2) + _rec(1, TIME_LIMIT, b"f: x\0") + text_rec(12, "f: b"),
    iot_rec(10, n_cs=2) + _rec(1, TIME_LIMIT - 1, b"f: x\0") + text_rec(12, "f: b"),
    # a record cut by the end, a header cut by the end
    text_rec(10, "f: a") + text_rec(11, "f: b")[:-1],
    text_rec(10, "f: a") + text_rec(11, "f: b")[:9],
    # a stale record after a break (older than the floor)
    text_rec(5_000_000, "f: a") + b"\xff" * 5 + text_rec(1, "f: old") + text_rec(5_000_001, "f: c"),
])
def test_the_rules_the_walk_restates(data):
    _same(data)


def test_a_clean_stream_is_walked_not_searched(monkeypatch):
    """With the walk, an intact stream never asks for the candidates."""
    from ktrace_decode import scan

    data = (b"".join(text_rec(10 + i, f"f: {i}") for i in range(50)) + iot_rec(99, n_cs=3)
            + _rec(1, 100, b"f: " + b"a" * 252 + b"\0" + b"junk")  # the long-message bug
            + _rec(7, 101, b"xy") + text_rec(102, "f: z")  # an unknown type, believed
            + _rec(9, 103, b"at the end"))
    calls: list[int] = []
    monkeypatch.setattr(scan, "_candidates", lambda *a: calls.append(1))
    parts, skips, _ = _scan(data, 256, True)
    assert calls == [] and skips == [] and sum(len(p[0]) for p in parts) == 55
