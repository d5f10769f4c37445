"""Bounded resources: decoding time is linear in the input, garbage costs bounded memory.

The time tests are size-scaled ratios, not absolute budgets (CI machines
differ): decoding 8x the bytes must take less than 20x the time (linear: ~8x;
quadratic: ~64x).  Each time is the best of a few runs.  Inputs: random
garbage, valid records, zeros, and adversarial patterns -- a *resync storm*
(one plausible record, one byte of garbage, again and again), a *pdu_len
storm* (plausible headers every 64 bytes whose pdu_len reaches 1000 bytes
ahead, so every record overlaps the next fifteen candidates), a buffer made
entirely of magic bytes, and a *stale storm* (see test_rb_decoder_findings).

Absolute numbers (4 GiB dumps, 100 MiB / 1 GiB of garbage) are measured on
demand by ``bench_resources.py`` next to this file; see its docstring.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from helpers import decode_bytes, sample_stream, text_rec
from ktrace_decode.decode import scan_parts
from ktrace_decode.formats import layouts as L
from ktrace_decode.sources import TraceSource

MiB = 1 << 20
#: time(8n) / time(n) must stay below this (linear ~8, quadratic ~64).
MAX_RATIO = 20


def _best(fn: Callable[[], object], reps: int = 3) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _fill(unit: bytes, n: int) -> bytes:
    return (unit * (n // len(unit) + 1))[:n]


def random_garbage(n: int) -> bytes:
    return np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()


def valid_records(n: int) -> bytes:
    block = b"".join(sample_stream(400))
    whole = n // len(block)
    return block * whole + bytes(n - whole * len(block))  # zeros pad the tail


def zeros(n: int) -> bytes:
    return bytes(n)


def resync_storm(n: int) -> bytes:
    return _fill(text_rec(5_000_000, "f: x") + b"\x01", n)


def pdu_len_storm(n: int) -> bytes:
    hdr = L.MAGIC.to_bytes(2, "little") + L.TYPE_TEXT.to_bytes(2, "little") + \
        (1000).to_bytes(2, "little") + bytes(2) + (5_000_000).to_bytes(8, "little")
    return _fill(hdr + bytes(48), n)


def all_magic(n: int) -> bytes:
    return _fill(b"\x9c\xf5", n)


CASES = [  # (name, make, small size)
    ("random garbage", random_garbage, 1 * MiB),
    ("valid records", valid_records, 1 * MiB),
    ("zeros", zeros, 1 * MiB),
    ("resync storm", resync_storm, MiB // 8),
    ("pdu_len storm", pdu_len_storm, MiB // 4),
    ("all magic bytes", all_magic, MiB // 8),
]


@pytest.mark.parametrize("make,small", [(m, s) for _, m, s in CASES], ids=[c[0] for c in CASES])
def test_decoding_time_is_linear(make, small):
    a, b = make(small), make(8 * small)
    decode_bytes(a)  # warm up (imports, caches)
    ta = _best(lambda: decode_bytes(a))
    tb = _best(lambda: decode_bytes(b))
    assert tb / max(ta, 1e-4) < MAX_RATIO, f"{ta:.4f}s -> {tb:.4f}s for 8x the bytes"


def peak_rss_of(fn: Callable[[], object]) -> int:
    """Bytes the peak resident set grew by while ``fn`` ran (Linux: VmHWM, reset by
    writing 5 to /proc/self/clear_refs; no allocation tracing, so no slowdown)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pytest.skip("needs /proc/self/clear_refs (Linux)")

    def status(key: str) -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        raise AssertionError(key)

    base = status("VmRSS")
    fn()
    return status("VmHWM") - base


def scan_all(data: bytes, chunk: int) -> Callable[[], None]:
    src = TraceSource(0, "mem", np.frombuffer(data, np.uint8))

    def run() -> None:
        for _ in scan_parts(src, "stream", chunk=chunk):
            pass
    return run


@pytest.mark.parametrize("make", [random_garbage, zeros], ids=["random garbage", "zeros"])
def test_scanning_garbage_takes_memory_bounded_by_the_chunk(make):
    """Garbage yields no records, so the scan's memory is per chunk: 4x the file, same peak."""
    chunk = 1 * MiB
    small_in, big_in = make(8 * MiB), make(32 * MiB)
    scan_all(small_in, chunk)()  # warm up
    small = peak_rss_of(scan_all(small_in, chunk))
    big = peak_rss_of(scan_all(big_in, chunk))
    assert big < 1.5 * small + 4 * MiB, (small, big)
    assert big < 40 * chunk
