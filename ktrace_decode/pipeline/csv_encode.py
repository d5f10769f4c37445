"""CSV bytes of a frame by one compiled loop instead of Polars' CSV writer.

The record-sized tables (events, iotimes, iotimes_cs: ~1.5 GB of CSV for a
10M-record dump) cost Polars' writer ~50 ms of CPU per 170k-record batch,
on threads of its own, plus a copy of every chunk into a Python bytes
object for the file.  Their columns are integers, booleans and strings, so
one numba loop (:mod:`._csv_encode_jit`) writes the same bytes in ~27 ms, on
the table worker that made the batch, reading every column where Arrow keeps
it (the texts stay where the decoder left them: string views over the trace).

The bytes are Polars' ``write_csv`` defaults, which are RFC 4180's: comma
separated, LF line ends, a null is an empty field, an empty string is
``""``, and a string holding a comma, a quote, CR or LF is quoted with its
quotes doubled.  ``tests/pipeline/test_csv_encode.py`` compares the two
writers byte for byte on the samples' tables and on hypothesis-generated
frames, and the 10M-record export's files were compared with ``cmp``.

:func:`encode` answers None for a frame with any other column type, and
:func:`worth_it` is False without numba: the caller then writes with Polars.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from .. import jit_loops
from . import bytematch


def field(value: str) -> bytes:
    """One string field as the loop writes it (for headers and constant columns)."""
    if value == "":
        return b'""'
    if any(c in value for c in ',"\r\n'):
        return b'"' + value.replace('"', '""').encode() + b'"'
    return value.encode()


def header(names: Sequence[str]) -> bytes:
    """The header line of a table with these column names."""
    return b",".join(field(n) for n in names) + b"\n"


def _jit() -> Any:
    return jit_loops.load("_csv_encode_jit")


def worth_it(rows: int) -> bool:
    """Write ``rows`` with the loop?  Like :func:`.bytematch.worth_it`: once
    numba is loaded (a big export's classification loads it), always; before,
    only for a frame big enough to pay for loading it (~0.4 s)."""
    if rows < bytematch.MIN_ROWS and "numba" not in sys.modules:
        return False
    return _jit() is not None


#: ``encode_rows``'s constant for a frame without one (numba wants an array).
_NO_CONST = np.zeros(1, np.uint8)


def _writable(t: pa.DataType) -> bool:
    return (pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_string_view(t)
            or pa.types.is_null(t))


def _describe(jit: Any, batch: pa.RecordBatch, lit: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, list[np.ndarray]]:
    """The loop's descriptor table of one record batch (with a constant
    first column holding ``lit``, if given), its strings' data buffers
    (addresses, sizes), a bound on its bytes, and arrays the descriptors
    point into (to be kept alive while the loop runs)."""
    n = batch.num_rows
    const = lit is not None
    cols = np.zeros((batch.num_columns + const, 7), np.int64)
    if const:
        cols[0, jit.KIND] = jit.CONST
    strings = [a for a in batch.columns if pa.types.is_string_view(a.type)]
    nbufs = max([len(a.buffers()) - 2 for a in strings] + [1])
    addrs = np.zeros((max(len(strings), 1), nbufs), np.int64)
    sizes = np.zeros_like(addrs)
    keep: list[np.ndarray] = []
    # Separators, line ends and the constant column, then every field at its
    # widest (a string quoted, each of its bytes a quote; an integer 20
    # digits and a sign).
    size = n * (cols.shape[0] + (len(lit) if lit is not None else 0))
    slot = 0
    for row, arr in zip(cols[const:], batch.columns, strict=True):
        t, bufs = arr.type, arr.buffers()
        if bufs[0] is not None and arr.null_count:
            row[jit.VALID], row[jit.VALID_BIT] = bufs[0].address, arr.offset
        if pa.types.is_null(t):
            row[jit.KIND] = jit.NULL
            keep.append(np.zeros(n // 8 + 1, np.uint8))  # every row null
            row[jit.VALID], row[jit.VALID_BIT] = keep[-1].ctypes.data, 0
        elif pa.types.is_string_view(t):
            row[jit.KIND], row[jit.SLOT] = jit.STR, slot
            row[jit.ADDR] = bufs[1].address + arr.offset * 16
            for b, buf in enumerate(bufs[2:]):
                addrs[slot, b], sizes[slot, b] = buf.address, buf.size
            lengths = np.frombuffer(bufs[1], np.int32)[arr.offset * 4:(arr.offset + n) * 4:4]
            size += 2 * int(lengths.sum(dtype=np.int64)) + 2 * n
            slot += 1
        elif pa.types.is_boolean(t):
            row[jit.KIND], row[jit.ADDR] = jit.BOOL, bufs[1].address
            row[jit.VALUE_BIT] = arr.offset
            size += 5 * n
        else:
            width = t.bit_width // 8
            row[jit.KIND] = jit.INT if pa.types.is_signed_integer(t) else jit.UINT
            row[jit.ADDR], row[jit.WIDTH] = bufs[1].address + arr.offset * width, width
            size += 21 * n
    return cols, addrs, sizes, size, keep


def encode(df: pl.DataFrame, with_header: bool = False,
           prefix: tuple[str, str] | None = None) -> np.ndarray | None:
    """``df`` as CSV bytes (a uint8 array), the header first if
    ``with_header``; ``prefix`` = (name, value) adds a first column holding
    ``value`` on every row.  None when numba is missing or a column's type
    is not one the loop writes: write ``df`` with Polars instead."""
    jit = _jit()
    if jit is None or df.width == 0:
        return None
    # The whole frame at once: ten times cheaper than column by column.
    table = df.to_arrow(compat_level=pl.CompatLevel.newest())
    if not all(_writable(f.type) for f in table.schema):
        return None
    head = np.frombuffer(header(([prefix[0]] if prefix else []) + df.columns)
                         if with_header else b"", np.uint8)
    lit = np.frombuffer(field(prefix[1]), np.uint8) if prefix else None
    batches = table.to_batches()
    parts = [_describe(jit, batch, lit) for batch in batches]
    out = np.empty(len(head) + sum(part[3] for part in parts), np.uint8)
    out[:len(head)] = head
    pos = len(head)
    # `table` and each part's arrays hold the memory the loop reads.
    for (cols, addrs, sizes, _, _arrays), batch in zip(parts, batches, strict=True):
        written = jit.encode_rows(cols, batch.num_rows, addrs, sizes,
                                  _NO_CONST if lit is None else lit, out.ctypes.data + pos)
        if written < 0:
            return None
        pos += written
    return out[:pos]
