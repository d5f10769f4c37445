"""A batch's ``events.csv`` rows straight from the trace bytes, in one compiled loop.

The general path of a streamed export builds each batch's records table
(Arrow columns: the texts' views, the iotimes fields), classifies the
texts (:mod:`.bytematch`), selects the events table with Polars and writes
it as CSV (:mod:`.csv_encode`): about 80 ms of CPU for a 170k-record
batch, most of an export's work.  Yet an events row is a function of its
record's header and text alone.  So, for a batch it can write exactly,
:func:`events_of` walks the records in merged order, straight from the
mapped trace bytes, and writes each one's row with the code those loops
run (numba inlines it: :mod:`._fused_jit`): the header fields, the text
cut and validated as the records table does it, classified by the byte
programs, written with Polars' quoting.  The patch's events (what the end
tables keep) come out of the same pass.

What the loop cannot write exactly sends the whole batch back to the
general path (:class:`Refused`):

* a text with a NUL before its end: the records table cuts it there;
* a text that is not valid UTF-8: the records table decodes it in Python,
  with replacement characters;
* a text whose message program defers to the regular expressions (a
  number of more than 18 digits, see :mod:`.bytematch`).

The same pass copies the iotimes records' header and chunk-server bytes
aside, in merged order (:class:`IotimesRows`): two small loops write the
``iotimes.csv`` and ``iotimes_cs.csv`` rows from those, and numpy makes
the batch's IO counts, slowest IOs and chunk-server entries.  The
bookkeeping (record counts, edge rows) reads the batch's headers unmerged
(:func:`bookkeeping_columns`).

``tests/pipeline/test_fused.py`` compares the bytes of the three files,
the kept events, the entries, the counts and the slowest IOs with the
general path's on every sample, on hypothesis-generated batches (any
text, any bytes, any record type, extreme iotimes fields) and for each
reason to refuse, and whole exports with the loops on and off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import polars as pl

from .. import jit_loops, records, records_compiled, schema
from ..formats import layouts as L
from ..formats import messages as M
from ..iolatency import request_name
from ..records import Part
from ..scan import TIME_LIMIT
from . import bytematch, csv_encode, storage
from . import events as E

#: The most bytes an events row takes besides its function and text (each
#: at most twice its length plus two quotes): time 20 digits, cpu 5, seq 10,
#: nodeid and fh 20, err 11, ovfl 5, the separators and line end 12.
_ROW_BYTES = 20 + 5 + 10 + 20 + 20 + 11 + 5 + 12 + 4


def _jit() -> Any:
    return jit_loops.load("_fused_jit")


def worth_it(rows: int) -> bool:
    """Write a batch of ``rows`` records with the loop?  When the byte
    programs would classify it (:func:`.bytematch.worth_it`: numba is
    loaded, or the batch pays for loading it) and the loop loads."""
    return bytematch.worth_it(rows) and _jit() is not None


@dataclass(frozen=True)
class _Catalogue:
    """What the loop reads besides the records (built once)."""

    pool: np.ndarray  # uint8: the event and record type names as CSV fields
    events: np.ndarray  # int64 (codes, 2): offset and length of each event's field
    names: np.ndarray  # int64 (3, 2): the record types' (text, iotimes, unknown)
    hdr: np.ndarray  # int64: _fused_jit.H_* offsets and limits
    longest: int  # bytes of the longest event or record type field


@cache
def _catalogue() -> _Catalogue:
    jit = _jit()
    # Event codes as events.py numbers them: the catalogue's, then other,
    # iotimes, unknown; record types text, iotimes, then unknown.
    event_names = E.event_names()
    kinds = E.record_type_names()
    numbered = {L.TYPE_TEXT: kinds[jit.TEXT], L.TYPE_IOTIMES: kinds[jit.IOTIMES]}
    if numbered != E.RECORD_TYPES:
        raise RuntimeError("fused: record type numbering differs from events.py")
    if tuple(E.EVENT_FIELDS) != tuple(c for c in schema.EVENTS if c in E.EVENT_FIELDS) \
            or E.EVENT_FIELDS[0] != "nodeid":
        raise RuntimeError("fused: the loop writes the slots in EVENTS order, nodeid first")
    pool = bytearray()
    spans = []
    for name in (*event_names, *kinds):
        field = csv_encode.field(name)
        spans.append((len(pool), len(field)))
        pool.extend(field)
    n_ev = len(event_names)
    head = L.HEADER_DTYPE
    hdr = np.zeros(jit.H_FIELDS, np.int64)
    hdr[jit.H_TYPE] = jit_loops.offset_of(head, "type", 2)
    hdr[jit.H_PDU] = jit_loops.offset_of(head, "pdu_len", 2)
    hdr[jit.H_OVFL] = jit_loops.offset_of(head, "ovfl", 2)
    hdr[jit.H_TIME] = jit_loops.offset_of(head, "time", 8)
    hdr[jit.H_INO] = L.HEADER_SIZE + jit_loops.offset_of(L.IOTIMES_HEADER_DTYPE, "ino", 8)
    hdr[jit.H_SIZE] = L.HEADER_SIZE
    hdr[jit.H_TEXT_MAX] = L.KTRACE_LOG_BUF_SIZE
    hdr[jit.H_TYPE_TEXT] = L.TYPE_TEXT
    hdr[jit.H_TYPE_IOTIMES] = L.TYPE_IOTIMES
    hdr[jit.H_IOT_SIZE] = L.IOTIMES_HEADER_SIZE
    hdr[jit.H_CS_SIZE] = L.IOTIMES_CS_SIZE
    return _Catalogue(np.frombuffer(bytes(pool), np.uint8).copy(),
                      np.array(spans[:n_ev], np.int64).reshape(-1, 2),
                      np.array(spans[n_ev:], np.int64).reshape(-1, 2), hdr,
                      max(length for _, length in spans))


@dataclass(frozen=True)
class FusedEvents:
    """One batch's events: its ``events.csv`` rows and its kept events."""

    csv: np.ndarray | None  # uint8, no header (None: not asked for)
    kept: pl.DataFrame  # the kept events' rows, as events.catalogue_events gives them
    rows: int
    iotimes: IotimesRows  # the iotimes records and their chunk-server entries
    buffer: np.ndarray | None = None  # the whole buffer ``csv`` is the start of


@dataclass(frozen=True)
class Refused:
    """The batch holds a record the loop cannot write exactly."""

    reason: str  # "nul in text" | "not utf-8" | "deferred" ("no room": a bug)
    row: int  # its position in merged order


_REASONS = {1: "nul in text", 2: "not utf-8", 3: "deferred", 4: "no room"}


def events_of(parts: Sequence[Part], keep: tuple[str, ...], columns: tuple[str, ...],
              csv: bool = True, source: str | None = None,
              take: Callable[[int], np.ndarray] | None = None) -> FusedEvents | Refused:
    """The events of ``parts`` merged (as :func:`.records.records_frame`
    with ``merge=True`` orders them): CSV rows (a leading ``source`` field
    on each, if given; none if not ``csv``) and the rows of the catalogue
    events ``keep`` with ``columns``, as :func:`.events.catalogue_events`
    gives them (``event`` an Enum of ``keep``).  ``take(size)`` gives the
    buffer the rows are written into (``FusedEvents.buffer``; a new one by
    default)."""
    jit = _jit()
    if jit is None:
        raise RuntimeError("numba is not available")
    cat = _catalogue()
    progs = E.programs()
    # Each record by its address: the loop reads it where the dump is mapped.
    merged = records_compiled.addresses(parts)
    if merged is None:  # parts the compiled merge does not take: numpy's
        pla = records.Placement(parts, None, merge=bool(parts))
        merged = (pla.column(np.int64, lambda pt: pt.starts + pt.buf.ctypes.data),
                  pla.column(np.uint16, lambda pt: np.full(len(pt), pt.cpu, np.uint16)),
                  pla.column(np.uint32, Part.seqs))
    addrs, cpus, seqs = merged
    n = len(addrs)
    lit = np.frombuffer(csv_encode.field(source), np.uint8) if source is not None else (
        np.zeros(0, np.uint8))
    text = n_io = n_cs = 0
    for pt in parts:
        h = pt.header()
        is_text = h["type"] == L.TYPE_TEXT
        text += int(np.minimum(h["pdu_len"][is_text], L.KTRACE_LOG_BUF_SIZE)
                    .sum(dtype=np.int64))
        pdu = h["pdu_len"][h["type"] == L.TYPE_IOTIMES].astype(np.int64)
        n_io += len(pdu)
        n_cs += int(np.maximum(pdu - L.IOTIMES_HEADER_SIZE, 0).sum()) // L.IOTIMES_CS_SIZE
    # Each text (and its function, a prefix of it) at most doubled, plus quotes.
    row_fixed = _ROW_BYTES + 2 * cat.longest + len(lit) + 1
    size = n * row_fixed + 4 * text
    out = (take(size) if take is not None else np.empty(size, np.uint8)) if csv else None
    io = IotimesRows(np.empty(n_io * L.IOTIMES_HEADER_SIZE, np.uint8), np.empty(n_io, np.uint64),
                     np.empty(n_io, np.uint16), np.empty(n_io, np.uint32),
                     np.empty(n_io, np.uint16), np.empty(n_cs * L.IOTIMES_CS_SIZE, np.uint8),
                     np.empty(n_cs, np.int64), np.empty(n_cs, np.uint8), lit)
    ranks = np.full(max(len(M.CATALOGUE), 1), -1, np.int16)
    for code, msg in enumerate(M.CATALOGUE):
        if msg.event in keep:
            ranks[code] = keep.index(msg.event)
    slots = max(progs.n_slots, 1)
    k_time, k_cpu = np.empty(n, np.uint64), np.empty(n, np.uint16)
    k_seq, k_rank = np.empty(n, np.uint32), np.empty(n, np.uint8)
    k_values, k_present = np.empty((slots, n), np.int64), np.empty((slots, n), bool)
    res = np.zeros(jit.RESULTS, np.int64)
    jit.event_rows(n, addrs, cpus, seqs, cat.hdr,
                   progs.pool, progs.funcs, progs.spans, progs.ops, progs.adjust,
                   progs.lo, progs.hi, np.zeros(slots, np.int64),
                   cat.pool, cat.events, cat.names, lit, 0 if out is None else out.ctypes.data,
                   0 if out is None else len(out), row_fixed, ranks,
                   np.zeros((slots, 1), np.int64), np.zeros((slots, 1), bool),
                   k_time, k_cpu, k_seq, k_rank, k_values, k_present, *io.arrays(), res)
    if res[jit.FAIL] != jit.OK:
        return Refused(_REASONS[int(res[jit.FAIL])], int(res[jit.FAILED_ROW]))
    m = int(res[jit.KEPT])
    # Copies of the kept rows: the arrays are sized for every record.
    given: dict[str, pl.Series] = {
        "time_us": pl.Series("time_us", k_time[:m].copy()),
        "cpu": pl.Series("cpu", k_cpu[:m].copy()),
        "seq": pl.Series("seq", k_seq[:m].copy()),
        "event": pl.Series("event", keep, pl.Enum(keep)).gather(k_rank[:m].astype(np.uint32)),
    }
    for slot, name in enumerate(E.EVENT_FIELDS):
        values = k_values[slot, :m].astype(E.numpy_dtype(name))
        given[name] = records.masked_series(name, values, k_present[slot, :m].copy())
    kept = pl.DataFrame([given[c].alias(c) for c in columns])
    assert res[jit.IOTIMES_ROWS] == n_io and res[jit.ENTRIES] == n_cs
    return FusedEvents(None if out is None else out[: int(res[jit.WRITTEN])], kept, n,
                       io, out)


@cache
def _io_layout() -> np.ndarray:
    """Where :func:`._fused_jit.iotimes_rows` and ``entry_rows`` read each field."""
    jit = _jit()
    cs = L.IOTIMES_CS_DTYPE
    out = np.zeros(jit.IO_FIELDS, np.int64)
    out[jit.IO_CHUNK : jit.IO_PAD1 + 1] = jit_loops.iotimes_offsets()
    for slot, name, width in ((jit.CS_CSID, "csid", 8), (jit.CS_MISC, "misc", 8),
                              (jit.CS_NET, "ts_net", 4), (jit.CS_IO, "ts_io", 4)):
        out[slot] = jit_loops.offset_of(cs, name, width)
    out[jit.IO_HEADER], out[jit.CS_SIZE] = L.IOTIMES_HEADER_SIZE, L.IOTIMES_CS_SIZE
    for slot, bit in ((jit.MISC_CACHED, L.CS_MISC_CACHED),
                      (jit.MISC_SEQUENTIAL, L.CS_MISC_SEQUENTIAL), (jit.MISC_SYNC, L.CS_MISC_SYNC)):
        if bit & (bit - 1):
            raise RuntimeError("fused: a misc flag is one bit")
        out[slot] = bit.bit_length() - 1
    out[jit.MISC_TIME], out[jit.TIME_LIMIT] = L.CS_MISC_TIME_MASK, TIME_LIMIT
    return out


@cache
def _requests() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The request types with a name: their numbers, and their names as CSV
    fields (a pool and each one's offset and length)."""
    codes = sorted(L.IOTIMES_REQUEST_TYPES)
    pool, at = bytearray(), []
    for code in codes:
        field = csv_encode.field(request_name(code))
        at.append((len(pool), len(field)))
        pool.extend(field)
    return (np.array(codes, np.int64), np.frombuffer(bytes(pool), np.uint8).copy(),
            np.array(at, np.int64).reshape(-1, 2))


@dataclass(frozen=True)
class IotimesRows:
    """A batch's iotimes records, as the loop copied them aside in merged
    order: their header bytes with their time, cpu, seq and pdu_len, and
    their chunk-server entries' bytes with their record's row here and
    their index.  What the streamed export needs of them:
    :meth:`iotimes_csv`, :meth:`entries_csv` (the rows of iotimes.csv and
    iotimes_cs.csv), :meth:`entries` (for cs.csv), :meth:`request_counts`
    and :meth:`slowest` (for the summary): the values of
    :func:`.tables.iotimes` and :func:`.tables.iotimes_cs` (a test compares
    them cell for cell)."""

    raw: np.ndarray  # uint8: IOTIMES_HEADER_SIZE bytes a record
    time: np.ndarray  # uint64
    cpu: np.ndarray  # uint16
    seq: np.ndarray  # uint32
    pdu: np.ndarray  # uint16
    cs_raw: np.ndarray  # uint8: IOTIMES_CS_SIZE bytes an entry
    cs_rec: np.ndarray  # int64: the entry's record (a row of the arrays above)
    cs_idx: np.ndarray  # uint8
    lit: np.ndarray  # uint8: the CSV field written first on every row (empty: none)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The arrays :func:`._fused_jit.event_rows` fills."""
        return (self.raw, self.time, self.cpu, self.seq, self.pdu, self.cs_raw, self.cs_rec,
                self.cs_idx)

    def __len__(self) -> int:
        return len(self.time)

    def header(self) -> np.ndarray:
        return self.raw.view(L.IOTIMES_HEADER_DTYPE)

    def iotimes_csv(self) -> np.ndarray:
        """iotimes.csv's rows (no header)."""
        jit = _jit()
        codes, pool, at = _requests()
        longest = max((int(n) for _, n in at), default=0)
        out = np.empty(len(self) * (400 + len(self.lit) + longest), np.uint8)
        n = jit.iotimes_rows(len(self), self.raw, self.time, self.cpu, self.seq, self.pdu,
                             _io_layout(), codes, pool, at, self.lit, out.ctypes.data, len(out))
        assert n >= 0, "iotimes_rows: the bound is wrong"
        return out[:n]

    def entries_csv(self) -> np.ndarray:
        """iotimes_cs.csv's rows (no header)."""
        jit = _jit()
        m = len(self.cs_rec)
        out = np.empty(m * (300 + len(self.lit)), np.uint8)
        n = jit.entry_rows(m, self.cs_raw, self.cs_rec, self.cs_idx, self.raw, self.time,
                           self.cpu, self.seq, _io_layout(), self.lit, out.ctypes.data, len(out))
        assert n >= 0, "entry_rows: the bound is wrong"
        return out[:n]

    def entries(self) -> pl.DataFrame:
        """The entries as :func:`.iolatency.cs_entries_of` gives them."""
        e = self.cs_raw.view(L.IOTIMES_CS_DTYPE)
        return pl.DataFrame({
            "csid": np.ascontiguousarray(e["csid"]),
            "io_type": self.header()["type"][self.cs_rec],
            "idx": self.cs_idx,
            "ts_net": np.ascontiguousarray(e["ts_net"]),
            "ts_io": np.ascontiguousarray(e["ts_io"]),
        })

    def request_counts(self) -> dict[str, int]:
        """Records per request name (:func:`.storage.io_counts`)."""
        return storage.io_counts_of(self.header()["type"])

    def slowest(self, top: int) -> pl.DataFrame:
        """:func:`.storage.slowest_io` of these records (the ``top`` largest
        totals, ties earliest first, then in merged order), in numpy: a
        Polars sort of the few candidates cost more than the rest."""
        io = self.header()
        start = io["start_time"]
        has = start < TIME_LIMIT
        total = np.where(has, self.time.astype(np.int64) - np.where(has, start, 0)
                         .astype(np.int64), 0)
        rows = np.flatnonzero(has) if top > 0 else np.zeros(0, np.intp)
        if len(rows) > top:
            values = total[rows]
            cut = np.partition(values, values.size - top)[values.size - top]
            rows = rows[values >= cut]
        # lexsort is stable; its last key comes first: total descending, then time.
        rows = rows[np.lexsort((self.time[rows], -total[rows]))][:top]
        ino = io["ino"][rows]
        nodeid = records.masked_series("nodeid", ino + np.uint64(1), ino != np.uint64(2**64 - 1))
        return pl.DataFrame([
            pl.Series("time_us", self.time[rows]), pl.Series("cpu", self.cpu[rows]), nodeid,
            pl.Series("request", [request_name(int(t)) for t in io["type"][rows]], pl.String),
            pl.Series("size", io["size"][rows]), pl.Series("total_us", total[rows]),
            pl.Series("lat_us", io["lat"][rows]),
        ])


def bookkeeping_columns(parts: Sequence[Part]) -> dict[str, np.ndarray]:
    """The columns of ``parts`` the streamed export's bookkeeping reads
    (record types, drop windows, byte gaps), not merged: in part order,
    which is CPU by CPU in seq order, and what is counted and kept from
    them does not depend on the row order."""
    heads = [pt.header() for pt in parts]

    def cat(values: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(values).astype(dtype, copy=False) if values else np.zeros(0, dtype)

    return {
        "cpu": cat([np.full(len(pt), pt.cpu, np.uint16) for pt in parts], np.uint16),
        "seq": cat([pt.seqs() for pt in parts], np.uint32),
        "offset": cat([pt.starts for pt in parts], np.uint64),
        "time_us": cat([h["time"] for h in heads], np.uint64),
        "type": cat([h["type"] for h in heads], np.uint16),
        "ovfl": cat([h["ovfl"] for h in heads], np.uint16),
        "pdu_len": cat([h["pdu_len"] for h in heads], np.uint16),
    }
