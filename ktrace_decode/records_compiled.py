"""The records table of a whole dump by compiled loops, for big dumps.

:func:`.records.records_frame` builds each column with numpy: the merged
order as destination positions, then one scatter per column and part,
with temporaries for the texts' views and the iotimes fields.  For a
10M-record dump that is ~4 CPU-s and ~1.6 GB of fresh memory for a 1.1 GB
table, and on a VM that hands freed memory back to its host fresh memory
is the dearest part (~1 ms per MB when the host has taken it back).
:func:`frame` merges the parts (runs of parts already in time order, see
:func:`_runs`) and writes every column of a range of the merged rows in
one compiled pass, straight from the mapped trace bytes into the final
arrays (``pipeline/_records_jit.py``), on two threads: the memory touched
is about the table itself.

The same table as :func:`.records.records_frame` with ``merge=True`` (a
test compares them on the samples, hypothesis-damaged dumps, CPUs whose
clock goes back, parts cut by a merge horizon, raw images); the few texts
the loop cannot hand over as they are (a NUL inside, invalid UTF-8) are
decoded in Python, as the numpy path does.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from . import schema
from .formats import layouts as L
from .records import (
    _VIEW_SHIFT,
    IO_FIELDS,
    Part,
    _nullable,
    _python_text,
    _view_buffers,
    arrow_series,
    validity_bits,
)

#: Runs of parts in time order a merge takes at most (else the numpy path,
#: whose sort does not care): the loop compares every run's head per row.
MAX_RUNS = 64
#: Threads writing the table (each a contiguous range of the merged rows).
THREADS = 2


def _jit() -> Any:
    from . import jit_loops

    return jit_loops.load("_records_jit")


def available() -> bool:
    """Can the loops run here (numba installed)?"""
    return _jit() is not None


@cache
def _layout() -> np.ndarray:
    from . import jit_loops

    jit = _jit()
    head = L.HEADER_DTYPE
    lay = np.zeros(jit.L_FIELDS, np.int64)
    for slot, name, width in ((jit.L_TYPE, "type", 2), (jit.L_PDU, "pdu_len", 2),
                              (jit.L_OVFL, "ovfl", 2), (jit.L_TIME, "time", 8)):
        lay[slot] = jit_loops.offset_of(head, name, width)
    lay[jit.L_CHUNK : jit.L_PAD1 + 1] = jit_loops.iotimes_offsets()
    lay[jit.L_HEADER], lay[jit.L_TEXT], lay[jit.L_IOTIMES] = (
        L.HEADER_SIZE, L.TYPE_TEXT, L.TYPE_IOTIMES)
    lay[jit.L_LOG_BUF], lay[jit.L_IOT_HEADER], lay[jit.L_CS_SIZE] = (
        L.KTRACE_LOG_BUF_SIZE, L.IOTIMES_HEADER_SIZE, L.IOTIMES_CS_SIZE)
    lay[jit.L_VIEW_SHIFT] = _VIEW_SHIFT
    return lay


def _sorted(t: np.ndarray) -> bool:
    return len(t) < 2 or not bool((t[1:] < t[:-1]).any())


def _runs(parts: Sequence[Part]) -> tuple[list[tuple[int, int]], list[bool]]:
    """Consecutive parts whose rows, one part after the other, are in time
    order: each merged as one run (first and last part); and whether each
    part is in time order.  A part whose times go back is a run of its own,
    walked in its time order (the numpy merge sorts it too)."""
    runs: list[tuple[int, int]] = []
    in_order: list[bool] = []
    prev_last: int | None = None  # last time of the previous part, if it can be continued
    for i, pt in enumerate(parts):
        t = pt.header()["time"]
        ok = _sorted(t)
        in_order.append(ok)
        if runs and ok and prev_last is not None and (not len(t) or int(t[0]) >= prev_last):
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
        if not ok:
            prev_last = None
        elif len(t):
            prev_last = int(t[-1])
    return runs, in_order


@dataclass
class _Parts:
    """The parts as the loops read them (:func:`_part_table`)."""

    table: np.ndarray  # int64 (parts, P_COLUMNS)
    first: np.ndarray  # int64: each run's first part
    last: np.ndarray  # int64: each run's last part
    keep: list[np.ndarray]  # the arrays the table points into
    buffers: list[pa.Buffer]  # the files as Arrow view buffers
    buf_of_cpu: dict[int, np.ndarray]

    def heads(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each run's head at the first merged row: (part, position, time)."""
        return (self.first.copy(), np.zeros(len(self.first), np.int64),
                np.zeros(len(self.first), np.uint64))


def _part_table(parts: Sequence[Part]) -> _Parts | None:
    """The parts' table and runs; None where the loops cannot merge them
    (too many runs, a buffer that is not contiguous, a CPU in two buffers)."""
    jit = _jit()
    runs, in_order = _runs(parts)
    if len(runs) > MAX_RUNS or not all(pt.buf.flags.c_contiguous for pt in parts):
        return None
    keep: list[np.ndarray] = []  # what the loops read by address
    table = np.zeros((len(parts), jit.P_COLUMNS), np.int64)
    buffers: list[pa.Buffer] = []
    first_buffer: dict[int, int] = {}
    buf_of_cpu: dict[int, np.ndarray] = {}
    for k, pt in enumerate(parts):
        if id(pt.buf) not in first_buffer:
            first_buffer[id(pt.buf)] = len(buffers)
            buffers += _view_buffers(pt.buf)
        if buf_of_cpu.setdefault(pt.cpu, pt.buf) is not pt.buf:
            return None  # one buffer per CPU: odd texts and payloads are found by (cpu, offset)
        row = table[k]
        row[jit.P_BUF] = pt.buf.ctypes.data
        starts = np.ascontiguousarray(pt.starts, np.int64)
        resynced = np.ascontiguousarray(pt.resynced, bool)
        keep += [starts, resynced]
        row[jit.P_STARTS], row[jit.P_RESYNCED] = starts.ctypes.data, resynced.ctypes.data
        if pt.seq is not None:
            seq = np.ascontiguousarray(pt.seq, np.uint32)
            keep.append(seq)
            row[jit.P_SEQ] = seq.ctypes.data
        row[jit.P_SEQ0] = pt.seq0
        if pt.backwards is not None:
            back = np.ascontiguousarray(pt.backwards, bool)
            keep.append(back)
            row[jit.P_BACK] = back.ctypes.data
        row[jit.P_PREV] = -1 if pt.prev_time is None else pt.prev_time
        row[jit.P_CPU], row[jit.P_LEN] = pt.cpu, len(pt)
        row[jit.P_VBUF] = first_buffer[id(pt.buf)]
        if not in_order[k]:
            perm = np.argsort(pt.header()["time"], kind="stable").astype(np.int64)
            keep.append(perm)
            row[jit.P_PERM] = perm.ctypes.data
    return _Parts(table, np.array([a for a, _ in runs], np.int64),
                  np.array([b for _, b in runs], np.int64), keep, buffers, buf_of_cpu)


def addresses(parts: Sequence[Part]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Each record of ``parts`` merged (the order of
    :func:`.records.records_frame` with ``merge=True``) as its address in
    memory (int64), its CPU (uint16) and seq (uint32); None where the
    loops cannot merge them."""
    jit = _jit()
    p = _part_table(parts) if jit is not None and parts else None
    if p is None:
        return None
    n = sum(len(pt) for pt in parts)
    addr, cpu, seq = np.empty(n, np.int64), np.empty(n, np.uint16), np.empty(n, np.uint32)
    jit.addresses(p.table, _layout(), p.first, p.last, *p.heads(), n, addr, cpu, seq)
    return addr, cpu, seq


def frame(parts: Sequence[Part]) -> pl.DataFrame | None:
    """The whole records table (schema.RECORDS) of ``parts`` merged, as
    :func:`.records.records_frame` makes it with ``merge=True``; None where
    the loops cannot make it (numba missing, see :func:`_part_table`): use
    that then."""
    jit = _jit()
    p = _part_table(parts) if jit is not None and parts else None
    if p is None:
        return None
    n = sum(len(pt) for pt in parts)
    cols = _columns(n)
    lay = _layout()
    bounds = [n * i // THREADS for i in range(THREADS + 1)]

    def work(i: int) -> None:
        part, pos, time = p.heads()
        if bounds[i]:
            jit.advance(p.table, lay, p.first, p.last, bounds[i], part, pos, time)
        jit.build(p.table, lay, p.first, p.last, part, pos, time, bounds[i], bounds[i + 1],
                  *cols.values())

    threads = [threading.Thread(target=work, args=(i,), name=f"ktrace-records-{i}")
               for i in range(1, THREADS)]
    for th in threads:
        th.start()
    work(0)
    for th in threads:
        th.join()
    return _assemble(cols, p.buffers, p.buf_of_cpu)


#: The arrays ``build`` writes, in its order.
_OUTPUTS = (("cpu", np.uint16), ("seq", np.uint32), ("offset", np.uint64),
            ("time_us", np.uint64), ("type", np.uint16), ("ovfl", np.uint16),
            ("pdu_len", np.uint16), ("views", "V16"), ("is_text", bool), ("odd", bool),
            *((name, L.IOTIMES_HEADER_DTYPE[field]) for name, field in IO_FIELDS),
            ("is_iot", bool), ("n_cs", np.uint16), ("long_text", bool), ("unknown_type", bool),
            ("resynced", bool), ("time_backwards", bool))


def _columns(n: int) -> dict[str, np.ndarray]:
    cols = {name: np.empty(n, dtype) for name, dtype in _OUTPUTS}
    cols["views"] = cols["views"].view(np.uint8).reshape(n, 16)
    return cols


def _assemble(cols: dict[str, np.ndarray], buffers: list[pa.Buffer],
              buf_of_cpu: dict[int, np.ndarray]) -> pl.DataFrame:
    n = len(cols["cpu"])
    out: dict[str, pl.Series] = {name: pl.Series(name, cols[name])
                                 for name in ("cpu", "seq", "offset", "time_us", "type", "ovfl",
                                              "pdu_len", "long_text", "unknown_type",
                                              "resynced", "time_backwards")}
    is_text, is_iot = cols["is_text"], cols["is_iot"]
    odd = np.flatnonzero(cols["odd"])
    views = cols["views"]
    if odd.size:
        views[odd] = 0  # an empty string until the row is decoded below
    text_arr = pa.Array.from_buffers(pa.string_view(), n,
                                     [validity_bits(is_text), pa.py_buffer(views), *buffers],
                                     null_count=int(n - np.count_nonzero(is_text)))
    text = arrow_series("text", text_arr)
    off, cpu, pdu = cols["offset"], cols["cpu"], cols["pdu_len"]

    def payload(r: int, length: int) -> bytes:
        a = int(off[r]) + L.HEADER_SIZE
        return buf_of_cpu[int(cpu[r])][a : a + length].tobytes()

    if odd.size:
        # The numpy path's rule for these (records._python_text): to the
        # first NUL, invalid UTF-8 replaced, one trailing newline off.
        long = L.KTRACE_LOG_BUF_SIZE
        fixed = [_python_text(payload(r, long - 1 if pdu[r] > long else max(int(pdu[r]) - 1, 0)))
                 for r in odd.tolist()]
        text = text.scatter(odd, pl.Series(fixed, dtype=pl.String))
    out["text"] = text
    valid, nulls = validity_bits(is_iot), int(n - np.count_nonzero(is_iot))
    for name, _ in IO_FIELDS:
        out[name] = _nullable(name, cols[name], valid, nulls)
    out["n_cs"] = _nullable("n_cs", cols["n_cs"], valid, nulls)
    payloads = pl.repeat(None, n, dtype=pl.Binary, eager=True).alias("payload")
    unknown = np.flatnonzero(cols["unknown_type"])
    if unknown.size:
        payloads = payloads.scatter(unknown, pl.Series(
            [payload(r, int(pdu[r])) for r in unknown.tolist()], dtype=pl.Binary))
    out["payload"] = payloads
    return schema.conform(pl.DataFrame([out[c] for c in schema.RECORDS]), schema.RECORDS)
