"""From record offsets to the records table (schema.RECORDS).

All columns are computed with numpy over every record at once and handed to
Polars through Arrow without copying: numeric columns are the numpy arrays
themselves (a validity bitmap marks the rows of other types), and text is an
Arrow *view* array over the file bytes (the mmap): 16 bytes per record
pointing at its message, never a copy of the message; Polars checks it
(no NUL inside, valid UTF-8) on worker threads before it becomes a String
column.  Only rare records take a Python path: text that is not valid UTF-8
(decoded with replacement), text with a NUL before its end, and unknown
record types (payload kept raw).

One call builds the table of several CPUs, or of several batches of one, in
merged (time, cpu, seq) order: every column is written once, straight into
its output position (:func:`merged_positions`), never concatenated and then
permuted.  Columns nobody asked for are not computed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from . import schema
from .formats import layouts as L
from .scan import gather

_H = L.HEADER_SIZE
_IOT = L.IOTIMES_HEADER_SIZE
_CS = L.IOTIMES_CS_SIZE
_LONG = L.KTRACE_LOG_BUF_SIZE
#: Arrow view offsets are int32: a file is exposed as buffers of this many
#: bytes (each overlapping the next by more than one record).
_VIEW_SHIFT = 30
_VIEW_BUF = 1 << _VIEW_SHIFT
_VIEW_OVERLAP = 1 << 17
#: Rows validated as UTF-8 at once when a dump has text that is not.
_UTF8_BLOCK = 1 << 14

#: iotimes header fields -> records column.
IO_FIELDS = (("io_chunk", "chunk"), ("io_offset", "offset"), ("io_size", "size"),
             ("io_start_time", "start_time"), ("io_local_delay", "local_delay"),
             ("io_lat", "lat"), ("io_ino", "ino"), ("io_type", "type"),
             ("io_cses", "cses"), ("io_chid", "pad1"))


@dataclass
class Part:
    """Records of one CPU (a whole file or one batch of it), in buffer order."""

    buf: np.ndarray  # the file's bytes
    starts: np.ndarray  # int64 header offsets
    resynced: np.ndarray  # bool
    cpu: int
    hdr: np.ndarray | None = None  # HEADER_DTYPE rows (read here if None)
    seq0: int = 0  # seq of the first record
    prev_time: int | None = None  # time of the record before the first (for time_backwards)
    #: explicit per-record seq / time_backwards (a subset of a batch); else derived
    seq: np.ndarray | None = None
    backwards: np.ndarray | None = None

    def header(self) -> np.ndarray:
        if self.hdr is None:
            self.hdr = gather(self.buf, self.starts, L.HEADER_DTYPE)
        return self.hdr

    def __len__(self) -> int:
        return len(self.starts)

    def seqs(self) -> np.ndarray:
        if self.seq is not None:
            return self.seq
        return np.arange(self.seq0, self.seq0 + len(self), dtype=np.uint32)

    def time_backwards(self) -> np.ndarray:
        """Is each record earlier than the record before it on its CPU?"""
        if self.backwards is not None:
            return self.backwards
        t = self.header()["time"]
        out = np.zeros(len(t), bool)
        if len(t) > 1:
            np.less(t[1:], t[:-1], out=out[1:])
        if len(t) and self.prev_time is not None:
            out[0] = int(t[0]) < self.prev_time
        return out

    def subset(self, mask: np.ndarray) -> Part:
        """The records where ``mask`` (seq and time_backwards kept as they were)."""
        k = int(np.count_nonzero(mask))
        if k and mask[:k].all():  # a prefix (the usual case): views, no copies
            return self._slice(0, k)
        if k and mask[len(mask) - k :].all():
            return self._slice(len(mask) - k, len(mask))
        return Part(self.buf, self.starts[mask], self.resynced[mask], self.cpu,
                    self.header()[mask], seq=self.seqs()[mask],
                    backwards=self.time_backwards()[mask])

    def _slice(self, a: int, b: int) -> Part:
        t = self.header()["time"]
        return Part(self.buf, self.starts[a:b], self.resynced[a:b], self.cpu,
                    self.header()[a:b], self.seq0 + a if self.seq is None else 0,
                    (int(t[a - 1]) if a else self.prev_time) if self.backwards is None else None,
                    None if self.seq is None else self.seq[a:b],
                    None if self.backwards is None else self.backwards[a:b])


_POOL: ThreadPoolExecutor | None = None


def pool() -> ThreadPoolExecutor:
    """Worker threads for the decoder (numpy and Polars release the GIL)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1),
                                   thread_name_prefix="ktrace")
    return _POOL


def validity_bits(mask: np.ndarray) -> pa.Buffer:
    """An Arrow validity bitmap: bit i set where ``mask[i]``."""
    return pa.py_buffer(np.packbits(mask, bitorder="little"))


class _ArrowArray:
    """A pyarrow array offered to Polars through the Arrow C data interface
    only.  ``pl.from_arrow`` (and ``pl.Series`` of a ``pa.Array``) first import
    ``pyarrow.compute`` to coerce types these arrays never have: 40-90 ms of
    every process that decodes anything.  Zero-copy either way."""

    __slots__ = ("array",)

    def __init__(self, array: pa.Array) -> None:
        self.array = array

    def __arrow_c_array__(self, requested_schema: object | None = None) -> object:
        return self.array.__arrow_c_array__(requested_schema)


def arrow_series(name: str, array: pa.Array) -> pl.Series:
    """``array`` (built with ``pa.Array.from_buffers``) as a Polars Series, zero-copy."""
    return pl.Series(values=_ArrowArray(array)).alias(name)


def _text_views(buf: np.ndarray, p: np.ndarray, lens: np.ndarray, buf_index0: int
                ) -> np.ndarray:
    """Arrow views (n x 16 bytes) of buf[p[i] : p[i] + lens[i]] (buffers from buf_index0)."""
    n = len(p)
    v = np.zeros((n, 4), np.uint32)
    v[:, 0] = lens
    short = lens <= 12
    lng = np.flatnonzero(~short)
    if lng.size == n:
        lng = slice(None)  # type: ignore[assignment]
    pl_ = p[lng]
    v[lng, 1] = gather(buf, pl_, np.dtype("<u4"))
    v[lng, 2] = (pl_ >> _VIEW_SHIFT) + buf_index0
    v[lng, 3] = pl_ & (_VIEW_BUF - 1)
    sh = np.flatnonzero(short)
    if sh.size:
        # Short strings are inlined: up to 12 bytes after the length.
        ps, ls = p[sh], lens[sh]
        room = np.minimum(len(buf) - ps, 12)
        inl = np.zeros((sh.size, 12), np.uint8)
        col = np.arange(12)
        take = col[None, :] < np.minimum(ls, room)[:, None]
        r, c = np.nonzero(take)
        inl[r, c] = buf[ps[r] + c]
        v.view(np.uint8).reshape(n, 16)[sh, 4:] = inl
    return v


def _view_buffers(buf: np.ndarray) -> list[pa.Buffer]:
    out = []
    for b0 in range(0, max(len(buf), 1), _VIEW_BUF):
        out.append(pa.py_buffer(buf[b0 : b0 + _VIEW_BUF + _VIEW_OVERLAP]))
    return out


def _binary(views: np.ndarray, valid: np.ndarray, buffers: list[pa.Buffer]) -> pl.Series:
    n = len(views)
    arr = pa.Array.from_buffers(pa.binary_view(), n,
                                [validity_bits(valid), pa.py_buffer(views), *buffers],
                                null_count=int(n - np.count_nonzero(valid)))
    return arrow_series("text", arr)


def _python_text(raw: bytes) -> str:
    """The slow path's rule for one message: up to the first NUL, one trailing \\n stripped."""
    s = raw.decode("utf-8", "replace").split("\0", 1)[0]
    return s[:-1] if s.endswith("\n") else s


class Placement:
    """Where the rows of each part go in the output table (one pass per column).

    Columns are written straight into their output position (a scatter by
    :func:`merged_positions`, or by the inverse of ``order``), so no column is
    concatenated then permuted.
    """

    def __init__(self, parts: Sequence[Part], order: np.ndarray | None,
                 merge: bool = False) -> None:
        self.parts = parts
        sizes = [len(pt) for pt in parts]
        self.n = n = sum(sizes)
        offs = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.dst: list[slice | np.ndarray]
        if merge:
            dst = merged_positions(parts)
            if dst is not None:
                self.simple = len(parts) == 1 and isinstance(dst[0], slice)
                self.dst = dst
                return
            order = merge_order(parts)
        self.simple = order is None and len(parts) == 1
        if order is None:
            self.dst = [slice(int(offs[i]), int(offs[i + 1])) for i in range(len(parts))]
        else:
            inv = np.empty(n, np.int64)
            step = 1 << 20  # small temporaries: the allocator recycles them
            for k in range(0, n, step):
                inv[order[k : k + step]] = np.arange(k, min(k + step, n), dtype=np.int64)
            self.dst = [inv[offs[i] : offs[i + 1]] for i in range(len(parts))]

    def text_rows(self, i: int) -> np.ndarray:
        return np.flatnonzero(self.parts[i].header()["type"] == L.TYPE_TEXT)

    def iot_rows(self, i: int) -> np.ndarray:
        return np.flatnonzero(self.parts[i].header()["type"] == L.TYPE_IOTIMES)

    def at(self, i: int, rows: np.ndarray) -> np.ndarray:
        """Output positions of rows ``rows`` of part ``i``."""
        d = self.dst[i]
        return d.start + rows if isinstance(d, slice) else d[rows]

    def column(self, dtype: np.dtype | type, values: Callable[[Part], np.ndarray]) -> np.ndarray:
        """A full column from per-part values (every row)."""
        if self.simple:
            return np.ascontiguousarray(values(self.parts[0]), dtype)
        out = np.empty(self.n, dtype)
        for pt, d in zip(self.parts, self.dst, strict=True):
            out[d] = values(pt)
        return out

    def iotimes(self, out: dict[str, np.ndarray], fields: list[tuple[str, str]],
                share: range) -> None:
        """Write the iotimes header fields of parts ``share`` into the full columns ``out``
        (zero-initialised: rows of other types stay zero)."""
        dt = L.IOTIMES_HEADER_DTYPE
        for i in share:
            pt = self.parts[i]
            rows = self.iot_rows(i)
            if not len(rows):
                continue
            at = self.at(i, rows)
            iot = gather(pt.buf, pt.starts[rows] + _H, dt)
            for name, src in fields:
                out[name][at] = iot[src]


class _TextColumn:
    """The String text column: each text record's message, cut at the first NUL,
    one trailing newline stripped; null for other rows.

    Built in steps that run on worker threads: the views of each share of
    the parts (:meth:`fill`), then the checks of each share of the rows
    (:meth:`check`: no NUL inside, valid UTF-8, both done by Polars on a
    binary slice); then :meth:`series` hands the views over as a String
    array without a second validation.
    """

    def __init__(self, pla: Placement, valid: np.ndarray, nul_cut: bool = True) -> None:
        self.pla = pla
        self.valid = valid
        self.nul_cut = nul_cut
        self.views = np.zeros((pla.n, 4), np.uint32)
        self.buffers: list[pa.Buffer] = []
        self.first_buffer: dict[int, int] = {}
        for pt in pla.parts:
            if id(pt.buf) not in self.first_buffer:
                self.first_buffer[id(pt.buf)] = len(self.buffers)
                self.buffers += _view_buffers(pt.buf)
        self.binary: pl.Series | None = None

    def fill(self, share: range) -> None:
        """Views of the text rows of parts ``share``."""
        for i in share:
            pt = self.pla.parts[i]
            rows = self.pla.text_rows(i)
            if not len(rows):
                continue
            p, lens = _text_span(pt, rows)
            # One trailing newline off.  For an empty text p + lens - 1 is its
            # header's last byte (the top byte of the time, 0 below
            # scan.TIME_LIMIT, masked anyway), so every row is read: no index
            # of the non-empty ones to build, 2.5 -> 1.6 ms for 166k rows.
            lens -= (pt.buf[p + lens - 1] == ord("\n")) & (lens > 0)
            v = _text_views(pt.buf, p, lens, self.first_buffer[id(pt.buf)])
            self.views.view("V16").reshape(-1)[self.pla.at(i, rows)] = v.view("V16").reshape(-1)

    def check(self, rows: slice) -> bool:
        """Are the texts of ``rows`` free of NULs (unless not asked) and valid UTF-8?"""
        assert self.binary is not None
        part = self.binary.slice(rows.start, rows.stop - rows.start)
        try:
            text = part.cast(pl.String)
        except pl.exceptions.ComputeError:
            return False
        # On the validated strings: a literal search there is ~30 % cheaper
        # than the binary one (3.7 against 5.2 ms for a 166k-record batch).
        return not (self.nul_cut and text.str.contains("\x00", literal=True).any())

    def series(self, checked: bool) -> pl.Series:
        """The column; ``checked``: every share passed :meth:`check`."""
        if not checked:
            binary = _binary(self.views, self.valid, self.buffers)
            odd = binary.bin.contains(b"\x00").fill_null(False).to_numpy()
            return _repair(self.pla, self.valid, self.views, self.buffers, odd)
        n = len(self.views)
        arr = pa.Array.from_buffers(pa.string_view(), n,
                                    [validity_bits(self.valid), pa.py_buffer(self.views),
                                     *self.buffers],
                                    null_count=int(n - np.count_nonzero(self.valid)))
        return arrow_series("text", arr)


def _shares(n: int, k: int) -> list[range]:
    step = -(-n // k) if n else 1
    return [range(a, min(a + step, n)) for a in range(0, n, step)]


def _text_span(pt: Part, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(payload offset, text bytes before the NUL cut) of text rows ``rows`` of a part:
    pdu_len - 1, or 255 for the kernel's long-message bug."""
    pdu = pt.header()["pdu_len"][rows].astype(np.int64)
    return pt.starts[rows] + _H, np.where(pdu > _LONG, _LONG - 1, np.maximum(pdu - 1, 0))


def _repair(pl_: Placement, valid: np.ndarray, views: np.ndarray,
            buffers: list[pa.Buffer], odd: np.ndarray) -> pl.Series:
    """Text when some rows hold a NUL or invalid UTF-8: those rows are decoded in Python."""
    n = pl_.n
    # Which part and payload bytes every output row comes from (rare path).
    src = np.zeros(n, np.int64)
    p = np.zeros(n, np.int64)
    tlen = np.zeros(n, np.int64)
    for i, pt in enumerate(pl_.parts):
        rows = pl_.text_rows(i)
        at = pl_.at(i, rows)
        src[at] = i
        p[at], tlen[at] = _text_span(pt, rows)

    def raw(k: int) -> bytes:
        s = int(p[k])
        return pl_.parts[int(src[k])].buf[s : s + int(tlen[k])].tobytes()

    bad = odd.copy()
    views = views.copy()
    views[bad] = 0  # Polars validates null slots too: make them empty
    binary = _binary(views, valid & ~bad, buffers)
    # Find the invalid rows block by block (Polars validates each block).
    for b0 in range(0, n, _UTF8_BLOCK):
        try:
            binary.slice(b0, _UTF8_BLOCK).cast(pl.String)
            continue
        except pl.exceptions.ComputeError:
            pass
        blk = slice(b0, b0 + _UTF8_BLOCK)
        for k in (b0 + np.flatnonzero(valid[blk] & ~bad[blk])).tolist():
            if not raw(k).isascii():
                bad[k] = True
    views[bad] = 0
    text = _binary(views, valid & ~bad, buffers).cast(pl.String)
    idx = np.flatnonzero(bad)
    fixed = [_python_text(raw(k)) for k in idx.tolist()]
    return text.scatter(idx, pl.Series(fixed, dtype=pl.String))


def merge_order(parts: Sequence[Part]) -> np.ndarray | None:
    """The permutation of the parts' concatenation into (time_us, cpu, seq) order.

    Parts come in (cpu, seq) order, so one *stable* sort on time is enough
    (timsort: each CPU is an already sorted run, the sort merges the runs).
    None when the concatenation is already in order.
    """
    t = np.concatenate([p.header()["time"] for p in parts]) if len(parts) > 1 else (
        parts[0].header()["time"])
    if len(t) < 2 or not (t[1:] < t[:-1]).any():
        return None
    return np.argsort(t, kind="stable")


#: merged_positions tags each time with its part number in the low bits.
_PART_BITS = 12


def merged_positions(parts: Sequence[Part]) -> list[slice | np.ndarray] | None:
    """Where each row of each part goes in (time_us, cpu, seq) order.

    Equivalent to inverting :func:`merge_order`, with less work and memory:
    one stable sort of the *values* time << 12 | part (no index array; ties
    stay in part order, then row order), whose low bits then say which part
    every output row comes from; a radix argsort of those part numbers lists
    each part's output positions in increasing order, which are its rows'
    positions once the rows are in time order (a part whose times go back
    is put in time order by its own small argsort).  None when there are
    more parts than the tag can number (use merge_order then).
    """
    if len(parts) >= 1 << _PART_BITS:
        return None
    sizes = [len(pt) for pt in parts]
    offs = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    if all(_sorted(pt) for pt in parts) and all(
            int(parts[i].header()["time"][-1]) <= int(parts[i + 1].header()["time"][0])
            for i in range(len(parts) - 1) if sizes[i] and sizes[i + 1]):
        # Already in order (one CPU, or CPUs one after the other in time).
        return [slice(int(offs[i]), int(offs[i + 1])) for i in range(len(parts))]
    key = np.empty(int(offs[-1]), np.uint64)
    for i, pt in enumerate(parts):
        k = key[offs[i] : offs[i + 1]]
        np.left_shift(pt.header()["time"], np.uint64(_PART_BITS), out=k)
        k |= np.uint64(i)
    key.sort(kind="stable")
    part_of = (key & np.uint64((1 << _PART_BITS) - 1)).astype(np.uint16)
    del key
    grouped = np.argsort(part_of, kind="stable")  # 16-bit keys: a radix sort
    del part_of
    out: list[slice | np.ndarray] = []
    for i, pt in enumerate(parts):
        d = grouped[offs[i] : offs[i + 1]]
        if not _sorted(pt):
            rows = np.argsort(pt.header()["time"], kind="stable")
            back = np.empty_like(d)
            back[rows] = d
            d = back
        out.append(d)
    return out


def _sorted(pt: Part) -> bool:
    t = pt.header()["time"]
    return len(t) < 2 or not bool((t[1:] < t[:-1]).any())


def records_frame(parts: Sequence[Part], order: np.ndarray | None = None,
                  columns: Iterable[str] | None = None, merge: bool = False,
                  nul_cut: bool = True) -> pl.DataFrame:
    """The records table (schema.RECORDS) of ``parts`` concatenated, rows in ``order``.

    ``order`` permutes the concatenation; ``merge`` computes the merged order
    (:func:`merge_order`) here, so that its memory is given back as soon as
    it is used.  ``columns`` limits the table to the columns somebody asked
    for (the others are not computed).  ``nul_cut=False`` skips the search
    for NULs inside texts (the rare texts to cut there are then left whole):
    for a caller that finds them more cheaply itself (``render.text_block``).
    """
    want = list(schema.RECORDS) if columns is None else [c for c in schema.RECORDS
                                                          if c in set(columns)]
    pla = Placement(parts, order, merge and bool(parts))
    n = pla.n
    if n == 0:
        return schema.empty({c: schema.RECORDS[c] for c in want})
    cols: dict[str, pl.Series] = {}

    def put(name: str, values: np.ndarray) -> None:
        cols[name] = pl.Series(name, values)

    typ = pla.column(np.uint16, lambda pt: pt.header()["type"])
    is_text = typ == L.TYPE_TEXT
    is_iot = typ == L.TYPE_IOTIMES
    # Worker threads build the text column (views, then NUL and UTF-8 checks)
    # and the iotimes columns, each share of the parts on its own, while this
    # thread writes the other columns.
    ex = pool()
    shares = _shares(len(parts), ex._max_workers)
    text = _TextColumn(pla, is_text, nul_cut) if "text" in want else None
    filled = [ex.submit(text.fill, sh) for sh in shares] if text else []
    io_want = [(c, f) for c, f in IO_FIELDS if c in want]
    io_full = {name: np.zeros(n, L.IOTIMES_HEADER_DTYPE[src]) for name, src in io_want}
    io_done = [ex.submit(pla.iotimes, io_full, io_want, sh) for sh in shares] if io_want else []
    if "cpu" in want:
        put("cpu", pla.column(np.uint16, lambda pt: np.full(len(pt), pt.cpu, np.uint16)))
    if "seq" in want:
        put("seq", pla.column(np.uint32, Part.seqs))
    if "offset" in want:
        put("offset", pla.column(np.uint64, lambda pt: pt.starts))
    if "time_us" in want:
        put("time_us", pla.column(np.uint64, lambda pt: pt.header()["time"]))
    if "type" in want:
        put("type", typ)
    if "ovfl" in want:
        put("ovfl", pla.column(np.uint16, lambda pt: pt.header()["ovfl"]))
    pdu = pla.column(np.uint16, lambda pt: pt.header()["pdu_len"])
    if "pdu_len" in want:
        put("pdu_len", pdu)
    if "long_text" in want:
        put("long_text", is_text & (pdu > _LONG))
    if "unknown_type" in want:
        put("unknown_type", ~(is_text | is_iot))
    if "resynced" in want:
        put("resynced", pla.column(bool, lambda pt: pt.resynced))
    if "time_backwards" in want:
        put("time_backwards", pla.column(bool, Part.time_backwards))
    if "payload" in want:
        cols["payload"] = _payloads(pla)
    if io_want or "n_cs" in want:
        valid = validity_bits(is_iot)
        nulls = n - int(np.count_nonzero(is_iot))
        if "n_cs" in want:
            ncs = np.zeros(n, np.uint16)
            ncs[is_iot] = (pdu[is_iot] - _IOT) // _CS
            cols["n_cs"] = _nullable("n_cs", ncs, valid, nulls)
    if text is not None:
        for f in filled:
            f.result()
        text.binary = _binary(text.views, text.valid, text.buffers)
        rows = _shares(n, ex._max_workers + 1)
        checks = [ex.submit(text.check, slice(r.start, r.stop)) for r in rows[1:]]
        ok = text.check(slice(rows[0].start, rows[0].stop)) if rows else True
        cols["text"] = text.series(all([ok, *(c.result() for c in checks)]))
    for f in io_done:
        f.result()
    for name, full in io_full.items():
        cols[name] = _nullable(name, full, valid, nulls)
    return schema.conform(pl.DataFrame([cols[c] for c in want]),
                          {c: schema.RECORDS[c] for c in want})


def masked_series(name: str, values: np.ndarray, mask: np.ndarray) -> pl.Series:
    """``values`` as a Polars Series (zero-copy), null where ``mask`` is False."""
    return _nullable(name, values, validity_bits(mask), int(len(mask) - np.count_nonzero(mask)))


def _nullable(name: str, values: np.ndarray, valid: pa.Buffer, nulls: int) -> pl.Series:
    arr = pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values),
                                [valid, pa.py_buffer(values)], null_count=nulls)
    return arrow_series(name, arr)


def _payloads(pla: Placement) -> pl.Series:
    s = pl.repeat(None, pla.n, dtype=pl.Binary, eager=True).alias("payload")
    idx: list[np.ndarray] = []
    vals: list[bytes] = []
    for i, pt in enumerate(pla.parts):  # unknown types are rare: keep them raw
        hdr = pt.header()
        rows = np.flatnonzero((hdr["type"] != L.TYPE_TEXT) & (hdr["type"] != L.TYPE_IOTIMES))
        if not rows.size:
            continue
        idx.append(pla.at(i, rows))
        for k in rows.tolist():
            a = int(pt.starts[k]) + _H
            vals.append(pt.buf[a : a + int(hdr["pdu_len"][k])].tobytes())
    if not vals:
        return s
    return s.scatter(np.concatenate(idx), pl.Series(vals, dtype=pl.Binary))


def cs_frame(parts: Part | Sequence[Part]) -> pl.DataFrame:
    """The chunk-server entries (schema.CS) of the iotimes records of ``parts``
    in their order, which is (cpu, seq) (then idx) for every caller."""
    parts = [parts] if isinstance(parts, Part) else list(parts)
    ent, cpu, seq, idx = [], [], [], []
    for part in parts:
        hdr = part.header()
        rows = np.flatnonzero(hdr["type"] == L.TYPE_IOTIMES)
        counts = (hdr["pdu_len"][rows].astype(np.int64) - _IOT) // _CS
        total = int(counts.sum()) if counts.size else 0
        if total == 0:
            continue
        k = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        pos = np.repeat(part.starts[rows] + _H + _IOT, counts) + k * _CS
        ent.append(gather(part.buf, pos, L.IOTIMES_CS_DTYPE))
        cpu.append(np.full(total, part.cpu, np.uint16))
        seq.append(np.repeat(part.seqs()[rows], counts))
        idx.append(k.astype(np.uint8))
    if not ent:
        return schema.empty(schema.CS)
    e = np.concatenate(ent) if len(ent) > 1 else ent[0]
    del ent
    return pl.DataFrame({
        "cpu": np.concatenate(cpu), "seq": np.concatenate(seq), "idx": np.concatenate(idx),
        "csid": np.ascontiguousarray(e["csid"]), "misc": np.ascontiguousarray(e["misc"]),
        "ts_net": np.ascontiguousarray(e["ts_net"]), "ts_io": np.ascontiguousarray(e["ts_io"]),
    })


def cpu_frames(buf: np.ndarray, starts: np.ndarray, resynced: np.ndarray, cpu: int,
               hdr: np.ndarray | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The records (schema.RECORDS, in seq order) and cs entries (schema.CS) of one CPU."""
    part = Part(buf, starts, resynced, cpu, hdr)
    return records_frame([part]), cs_frame(part)
