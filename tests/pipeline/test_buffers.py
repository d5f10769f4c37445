"""The buffers reused from batch to batch (pipeline/buffers.py) and their way back."""

from __future__ import annotations

import io
import threading

import numpy as np
import polars as pl

from ktrace_decode.pipeline import streamed
from ktrace_decode.pipeline.buffers import BufferPool


def test_a_buffer_given_back_is_taken_again_if_big_enough():
    pool = BufferPool(keep=2)
    a = pool.take(1000)
    assert len(a) >= 1000
    pool.give(a)
    assert pool.take(900) is a  # its pages are in place already
    pool.give(a)
    b = pool.take(len(a) + 1)  # too small: a new one, a is kept
    assert b is not a and len(b) > len(a) and len(pool) == 1


def test_the_smallest_that_fits_and_at_most_keep():
    pool = BufferPool(keep=2)
    bufs = [np.empty(n, np.uint8) for n in (100, 300, 200)]
    for b in bufs:
        pool.give(b)
    assert len(pool) == 2  # the third is let go
    assert pool.take(150) is bufs[1]  # kept: 100 and 300; the only one that fits
    pool.give(bufs[0])  # already kept: not twice
    assert len(pool) == 1
    pool.clear()
    assert len(pool) == 0


def test_workers_and_a_writer_at_once():
    pool = BufferPool(keep=4)
    seen: list[np.ndarray] = []

    def work() -> None:
        for _ in range(200):
            b = pool.take(64)
            b[:] = 1
            seen.append(b)
            pool.give(b)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(pool) <= 4
    assert len({id(b) for b in seen}) <= 4 + 4  # reused, not one per take


def test_the_writer_gives_the_bytes_back_once_written():
    out = io.BytesIO()
    w = streamed.TableWriter(out, "csv", {"a": pl.Int64()}, excel_safe=False)
    given: list[bytes] = []
    data = np.frombuffer(b"1\n2\n", np.uint8)
    w.write(streamed.CsvBytes(data, ("a",), 2, lambda: given.append(out.getvalue())))
    assert given == [b"a\n1\n2\n"]  # called after the bytes were in the file
    w.write(streamed.CsvBytes(data[:0], ("a",), 0, lambda: given.append(b"empty")))
    assert given[-1] == b"empty" and out.getvalue() == b"a\n1\n2\n"
