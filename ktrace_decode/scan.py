"""Find the records in one trace buffer: the vectorised fast path.

The kernel writes records back to back (next = offset + 16 + pdu_len) with no
alignment, no CPU id and no sequence number.  A dump can hold garbage, zeros
of reserved-but-unfilled records, a cut-off tail, and (raw images) padding full
of stale records of an earlier lap.

Strategy, chosen so that Python never loops per record:

1. one vectorised pass finds every candidate header (the 2-byte magic at any
   offset, even or odd);
2. header fields and plausibility of every candidate are computed at once
   with numpy (:func:`_candidates`);
3. a walk follows the length chain *run by run*: consecutive candidates that
   chain into each other form a run that is accepted in one step; Python only
   steps where the chain breaks (a false magic inside a payload, or damage).

Plausibility (shared with the construct slow path in :mod:`.slowpath`):
magic; time below 2**52 us (~142 years: garbage times are huge); the record
fits the buffer; text ends in NUL (or has NUL at byte 255 when pdu_len > 256:
the kernel's long-message bug); iotimes is 56 + 24n bytes.  During a resync an
iotimes candidate must also have ``cses == n`` and an unknown type is never
accepted; in the chain an unknown type is kept (as raw) when the record after
it is plausible or it ends the buffer exactly.

Resync (also shared with :mod:`.slowpath`): where the chain breaks, the walk
resumes at the first plausible header after the break that is not *stale*.
In a stream, stale means more than ``STALE_TOLERANCE_US`` older than the
floor reference: the earliest of the last ``RECENT_RECORDS`` accepted records
(so one damaged time in the future among them changes nothing).  While fewer
than ``CONFIRMING_RECORDS`` (2) records have been accepted, the reference is a
single record whose time may itself be the damage (a bit flip in the first
record): it only counts if some candidate later in the buffer is not stale
against it.  If every candidate up to the end of the buffer is, that record is
the odd one out and the walk resumes at the first plausible header, with no
floor.  In a raw sub-buffer, stale means older than the sub-buffer's first
record (an earlier lap), with no exception: padding after the last record of
a sub-buffer is exactly "nothing newer up to the end".
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .formats import layouts as L

#: time must be below this (us since boot); a garbage u64 almost never is.
TIME_LIMIT = 1 << 52
#: After a break, a resync candidate more than this much older than the last
#: good record is taken for stale data of an earlier lap, not for a record.
#: (Legit per-CPU races reorder by microseconds, not by a second.)
STALE_TOLERANCE_US = 1_000_000
#: "The last good record" is the earliest of the last few accepted ones: one
#: damaged header with a time in the future must not make every intact record
#: after it look stale.
RECENT_RECORDS = 8
#: With fewer accepted records than this (i.e. one), the floor is only used if
#: a later candidate confirms it (is not stale against it); otherwise the lone
#: record's time is taken for the damage and the resync ignores the floor.
CONFIRMING_RECORDS = 2

_OFF = L.field_offsets(L.TraceHeader)
_IOT = L.field_offsets(L.IotimesHeader)
_H = L.HEADER_SIZE
_IOT_HDR = L.IOTIMES_HEADER_SIZE
_CS = L.IOTIMES_CS_SIZE
_MAGIC_LO, _MAGIC_HI = L.MAGIC & 0xFF, L.MAGIC >> 8

#: find_magic compares this many bytes at a time (the bool mask stays in cache).
WINDOW = 1 << 21
#: The scan walks the buffer in chunks of this many bytes, so its working
#: memory is bounded by the chunk, not by the file.
CHUNK = 1 << 23


@dataclass
class Skip:
    """A byte range that holds no intact record."""

    start: int
    end: int
    kind: str  # "garbage" | "truncated"


@dataclass
class ScanResult:
    """Records found in one buffer region, in buffer order."""

    starts: np.ndarray  # int64 offsets of accepted headers
    resynced: np.ndarray  # bool, record found by a resync after skipped bytes
    skips: list[Skip] = field(default_factory=list)
    resyncs: int = 0
    padding_bytes: int = 0  # raw layout only: bytes after the last record of a sub-buffer
    stale_bytes: int = 0  # non-zero padding bytes (stale records of an earlier lap)
    #: HEADER_DTYPE rows of the accepted records (already read by the scan), or None
    hdr: np.ndarray | None = None


def find_magic(buf: np.ndarray, start: int = 0, end: int | None = None) -> np.ndarray:
    """Offsets of every ``9c f5`` pair wholly inside ``buf[start:end]`` (sorted, int64)."""
    end = len(buf) if end is None else end
    parts: list[np.ndarray] = []
    for w0 in range(start, end - 1, WINDOW):
        w1 = min(w0 + WINDOW, end - 1)  # candidate positions in [w0, w1)
        # One compare for the first byte (rare outside headers), then the
        # second byte only at those few hits.
        hit = np.flatnonzero(buf[w0:w1] == _MAGIC_LO)
        if hit.size:
            hit += w0
            parts.append(hit[buf[hit + 1] == _MAGIC_HI])
    if not parts:
        return np.zeros(0, np.int64)
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _rows(buf: np.ndarray, width: int) -> np.ndarray:
    """A zero-copy (len - width + 1, width) view: row i is buf[i:i+width]."""
    n = max(len(buf) - width + 1, 0)
    return np.lib.stride_tricks.as_strided(buf, shape=(n, width), strides=(1, 1), writeable=False)


def gather(buf: np.ndarray, pos: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Read a packed struct of ``dtype`` at every offset in ``pos`` (unaligned)."""
    w = dtype.itemsize
    if pos.size == 0:
        return np.zeros(0, dtype)
    if not buf.flags.c_contiguous:
        return _rows(buf, w)[pos].view(dtype).reshape(-1)
    # Item i of this view is the ``w`` bytes at offset i: one copy per item.
    items = np.ndarray((max(len(buf) - w + 1, 0),), f"V{w}", buf, 0, (1,))
    return items[pos].view(dtype)


def _plausible(buf: np.ndarray, pos: np.ndarray, typ: np.ndarray, pdu: np.ndarray,
               tim: np.ndarray, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(known_ok, ok_resync, unknown_ok) of headers at ``pos`` (magic already checked).

    known_ok: a plausible text/iotimes record in the chain; ok_resync: also
    plausible as a resync point (iotimes ``cses == n``); unknown_ok: an unknown
    type that fits, to be believed only if its successor is plausible.
    """
    nxt = pos + _H + pdu
    fits = (nxt <= end) & (tim < TIME_LIMIT)
    is_text = typ == L.TYPE_TEXT
    is_iot = typ == L.TYPE_IOTIMES
    # Text: the byte before the end is the NUL, or byte 255 for the long-message bug.
    tx = np.flatnonzero(fits & is_text & (pdu > 0))
    text_ok = np.zeros(len(pos), bool)
    if tx.size:
        p, d = pos[tx], pdu[tx]
        ok = buf[p + _H + d - 1] == 0
        lng = np.flatnonzero(~ok & (d > L.KTRACE_LOG_BUF_SIZE))
        if lng.size:
            ok[lng] = buf[p[lng] + _H + L.KTRACE_LOG_BUF_SIZE - 1] == 0
        text_ok[tx] = ok
    body = pdu - _IOT_HDR
    iot_ok = fits & is_iot & (body >= 0) & (body % _CS == 0)
    iot_strict = iot_ok.copy()
    io = np.flatnonzero(iot_ok)
    if io.size:
        iot_strict[io] = buf[pos[io] + _H + _IOT["cses"]] == body[io] // _CS
    known_ok = text_ok | iot_ok
    return known_ok, text_ok | iot_strict, fits & ~is_text & ~is_iot


def _known_at(buf: np.ndarray, pos: np.ndarray, end: int) -> np.ndarray:
    """known_ok of whatever is at ``pos`` (any offsets; magic checked here)."""
    out = np.zeros(len(pos), bool)
    inb = np.flatnonzero(pos + _H <= end)
    if not inb.size:
        return out
    p = pos[inb]
    h = gather(buf, p, L.HEADER_DTYPE)
    mag = h["magic"] == L.MAGIC
    known, _, _ = _plausible(buf, p, h["type"].astype(np.int64), h["pdu_len"].astype(np.int64),
                             h["time"], end)
    out[inb] = mag & known
    return out


@dataclass
class _Cands:
    pos: np.ndarray
    hdr: np.ndarray
    time: np.ndarray
    nxt: np.ndarray
    ok_sync: np.ndarray
    ok_resync: np.ndarray


def _candidates(buf: np.ndarray, c0: int, c1: int, end: int) -> _Cands:
    """Every candidate header starting in [c0, c1); records may run on up to ``end``."""
    pos = find_magic(buf, c0, min(c1 + 1, end))
    pos = pos[pos + _H <= end]
    hdr = gather(buf, pos, L.HEADER_DTYPE)
    typ = hdr["type"].astype(np.int64)
    pdu = hdr["pdu_len"].astype(np.int64)
    tim = hdr["time"]
    nxt = pos + _H + pdu
    known_ok, ok_resync, unknown = _plausible(buf, pos, typ, pdu, tim, end)
    # An unknown type is only believed in the chain, when what follows it is a
    # plausible known record or the end of the buffer.
    ok_sync = known_ok
    unk = np.flatnonzero(unknown)
    if unk.size:
        ok_sync = known_ok.copy()
        ok_sync[unk] = (nxt[unk] == end) | _known_at(buf, nxt[unk], end)
    return _Cands(pos, hdr, tim, nxt, ok_sync, ok_resync)


#: A compiled walk along the chain: (buffer, from, stop before, end) -> the
#: starts and headers of the records it accepts (see :func:`compiled_walk`).
Walk = Callable[[np.ndarray, int, int, int], tuple[np.ndarray, np.ndarray]]


def compiled_walk() -> Walk | None:
    """The chain walk compiled (``pipeline/_scan_jit.py``), or None without numba.

    It accepts, from a record start on, exactly the records the vectorised
    scan would accept there, and stops where that would break the chain
    (tests/robustness/test_rb_scan_walk.py holds the two to it), so a scan with it gives
    the same result, reading each header instead of searching every byte
    for the magic.  Loading it loads numba (~0.3 s): for big inputs only.
    """
    from . import jit_loops

    jit = jit_loops.load("_scan_jit")
    if jit is None:
        return None
    head = L.HEADER_DTYPE
    rules = np.zeros(jit.R_FIELDS, np.int64)
    rules[jit.R_MAGIC] = L.MAGIC
    if jit_loops.offset_of(head, "magic", 2) != 0:
        raise RuntimeError("scan: the walk reads the magic at the record's start")
    rules[jit.R_TYPE_AT] = jit_loops.offset_of(head, "type", 2)
    rules[jit.R_PDU_AT] = jit_loops.offset_of(head, "pdu_len", 2)
    rules[jit.R_TIME_AT] = jit_loops.offset_of(head, "time", 8)
    rules[jit.R_HEADER] = _H
    rules[jit.R_TEXT], rules[jit.R_IOTIMES] = L.TYPE_TEXT, L.TYPE_IOTIMES
    rules[jit.R_IOT_HEADER], rules[jit.R_CS_SIZE] = _IOT_HDR, _CS
    rules[jit.R_LOG_BUF] = L.KTRACE_LOG_BUF_SIZE
    rules[jit.R_TIME_LIMIT] = TIME_LIMIT
    scratch: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def walk(buf: np.ndarray, pos: int, stop: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        cap = (stop - pos) // _H + 1  # every record takes at least a header
        starts, hdr = scratch.get(threading.get_ident(), (np.empty(0, np.int64), None))
        if len(starts) < cap or hdr is None:
            starts, hdr = np.empty(cap, np.int64), np.empty((cap, _H), np.uint8)
            scratch[threading.get_ident()] = starts, hdr
        n = jit.walk(buf.ctypes.data, pos, stop, end, rules, starts, hdr)
        # Copies of what was found: the scratch serves the next chunk.
        return starts[:n].copy(), hdr[:n].copy().reshape(-1).view(L.HEADER_DTYPE)

    return walk


class Scanner:
    """Walk ``buf[start:end]`` as records back to back, chunk by chunk.

    :meth:`chunks` yields one :class:`ScanResult` (starts, resynced, hdr) per
    chunk, in buffer order; once it is exhausted, ``skips``, ``resyncs``,
    ``padding_bytes`` and ``stale_bytes`` describe the whole region.  The
    result does not depend on the chunk size.

    With ``raw_subbuf`` the region is one sub-buffer of a raw image: the bytes
    after the chain ends are padding (zeros or stale older records) unless a
    later plausible record is *newer* than the sub-buffer's first record,
    which means damage inside the sub-buffer and a resync.
    """

    def __init__(self, buf: np.ndarray, start: int = 0, end: int | None = None,
                 raw_subbuf: bool = False, chunk: int = CHUNK, walk: Walk | None = None) -> None:
        self.buf = buf
        self.start = start
        self.end = len(buf) if end is None else end
        self.raw_subbuf = raw_subbuf
        self.chunk = max(chunk, 1)
        # The compiled walk follows an intact chain (streams; raw sub-buffers
        # have rules of their own about old laps); it reads by address.
        self.walk = walk if not raw_subbuf and buf.flags.c_contiguous else None
        self.skips: list[Skip] = []
        self.resyncs = 0
        self.padding_bytes = 0
        self.stale_bytes = 0

    def chunks(self) -> Iterator[ScanResult]:
        buf, end, raw = self.buf, self.end, self.raw_subbuf
        pos = self.start
        broke: int | None = None  # where the chain broke, while looking for a resync
        resync_next = False
        last_time: int | None = None
        recent: list[int] = []  # times of the last RECENT_RECORDS accepted records
        first_time: int | None = None
        floor_off = False  # for the one resync without a floor (see CONFIRMING_RECORDS)
        c0 = pos
        while c0 < end:
            c1 = min(c0 + self.chunk, end)
            walked: ScanResult | None = None
            if self.walk is not None and broke is None and pos < c1:
                # Along the chain first; the candidates only if it breaks.
                starts, hdr = self.walk(buf, pos, c1, end)
                if len(starts):
                    times = hdr["time"]
                    if first_time is None:
                        first_time = int(times[0])
                    recent = [*recent, *times[-RECENT_RECORDS:].tolist()][-RECENT_RECORDS:]
                    last_time = min(recent)
                    resynced = np.zeros(len(starts), bool)
                    resynced[0] = resync_next
                    resync_next = False
                    walked = ScanResult(starts, resynced, hdr=hdr)
                    pos = int(starts[-1]) + _H + int(hdr["pdu_len"][-1])
                if pos >= c1:
                    if walked is not None:
                        yield walked
                    c0 = pos
                    continue
            c = _candidates(buf, c0, c1, end)
            n = len(c.pos)
            # link[k]: candidate k+1 starts exactly where k ends and is acceptable.
            if n > 1:
                breaks = np.flatnonzero((c.nxt[:-1] != c.pos[1:]) | ~c.ok_sync[1:])
            else:
                breaks = np.zeros(0, np.int64)
            resync_idx = np.flatnonzero(c.ok_resync)
            runs: list[tuple[int, int, bool]] = []
            while True:
                if broke is None:
                    if pos >= c1:
                        break
                    k = int(np.searchsorted(c.pos, pos))
                    if k < n and c.pos[k] == pos and c.ok_sync[k]:
                        b = int(np.searchsorted(breaks, k))
                        j = int(breaks[b]) if b < len(breaks) else n - 1
                        if first_time is None:
                            first_time = int(c.time[k])
                        if raw:
                            # Records of an earlier lap can chain on from the
                            # current lap (same sizes, same start at offset 0):
                            # they are older than the sub-buffer's first record.
                            old = np.flatnonzero(c.time[k : j + 1] < first_time)
                            if old.size:
                                j = k + int(old[0]) - 1
                        if j >= k:
                            runs.append((k, j + 1, resync_next))
                            resync_next = False
                            recent = [*recent, *c.time[max(k, j + 1 - RECENT_RECORDS):j + 1]
                                      .tolist()][-RECENT_RECORDS:]
                            last_time = min(recent)
                            pos = int(c.nxt[j])
                            continue
                    broke = pos
                # The chain broke at ``broke``: find the next plausible header after it.
                r = int(np.searchsorted(resync_idx, np.searchsorted(c.pos, broke + 1)))
                if raw:
                    floor = first_time
                elif floor_off or last_time is None:
                    floor = None
                else:
                    floor = last_time - STALE_TOLERANCE_US
                if floor is not None:
                    r = _first_not_older(c.time, resync_idx, r, floor)
                if r >= len(resync_idx):
                    break  # not in this chunk: look on in the next one
                k = int(resync_idx[r])
                pos = int(c.pos[k])
                self.skips.append(Skip(broke, pos, "garbage"))
                self.resyncs += 1
                resync_next = True
                broke = None
                floor_off = False
            if runs and walked is not None:
                yield _concat([walked, _result(c, runs)])
            elif runs or walked is not None:
                yield _result(c, runs) if runs else walked  # type: ignore[misc]
            c0 = c1 if broke is not None else max(pos, c1)
            if (c0 >= end and broke is not None and not raw and not floor_off
                    and last_time is not None and len(recent) < CONFIRMING_RECORDS):
                # The floor rejected every candidate up to the end of the buffer
                # and only one record set it: its time is the damaged one.  Look
                # again from the break, without a floor (nothing after the break
                # has been yielded yet).
                floor_off = True
                c0 = broke
        if broke is not None:
            seg = buf[broke:end]
            if raw and (first_time is not None or not seg.any()):
                # Padding after the sub-buffer's last record (or an unused one).
                self.padding_bytes += end - broke
                self.stale_bytes += int(np.count_nonzero(seg))
            else:
                self.skips.extend(_tail_skips(buf, broke, end))

    def result(self) -> ScanResult:
        """Scan everything and return one ScanResult."""
        parts = list(self.chunks())
        res = _concat(parts)
        res.skips, res.resyncs = self.skips, self.resyncs
        res.padding_bytes, res.stale_bytes = self.padding_bytes, self.stale_bytes
        return res


def _first_not_older(time: np.ndarray, idx: np.ndarray, r: int, floor: int) -> int:
    """The first r' >= r with time[idx[r']] >= floor (len(idx) if none).

    Looks ahead in doubling windows, so a resync costs O(distance to the hit),
    not O(candidates left in the chunk) (a storm of stale records would make
    the latter quadratic)."""
    w = 8
    while r < len(idx):
        ok = np.flatnonzero(time[idx[r : r + w]] >= floor)
        if ok.size:
            return r + int(ok[0])
        r += w
        w *= 2
    return len(idx)


def _result(c: _Cands, runs: list[tuple[int, int, bool]]) -> ScanResult:
    if len(runs) == 1:
        a, b, rs = runs[0]
        resynced = np.zeros(b - a, bool)
        resynced[0] = rs
        return ScanResult(c.pos[a:b], resynced, hdr=c.hdr[a:b])
    idx = np.concatenate([np.arange(a, b) for a, b, _ in runs])
    lens = np.array([b - a for a, b, _ in runs])
    first = np.concatenate([[0], np.cumsum(lens)[:-1]])
    resynced = np.zeros(len(idx), bool)
    resynced[first] = [rs for _, _, rs in runs]
    return ScanResult(c.pos[idx], resynced, hdr=c.hdr[idx])


def _concat(parts: list[ScanResult]) -> ScanResult:
    if not parts:
        return ScanResult(np.zeros(0, np.int64), np.zeros(0, bool),
                          hdr=np.zeros(0, L.HEADER_DTYPE))
    if len(parts) == 1:
        return ScanResult(parts[0].starts, parts[0].resynced, hdr=parts[0].hdr)
    return ScanResult(np.concatenate([p.starts for p in parts]),
                      np.concatenate([p.resynced for p in parts]),
                      hdr=np.concatenate([p.hdr for p in parts]))


def scan_stream(buf: np.ndarray, start: int = 0, end: int | None = None,
                raw_subbuf: bool = False, chunk: int = CHUNK) -> ScanResult:
    """Decode ``buf[start:end]`` as records back to back (see :class:`Scanner`)."""
    return Scanner(buf, start, end, raw_subbuf, chunk).result()


def _tail_skips(buf: np.ndarray, pos: int, end: int) -> list[Skip]:
    """The unusable end of a buffer: garbage, then perhaps one record cut off by the end."""
    # A cut-off record is a magic whose header or payload runs past the end;
    # pdu_len is 16 bits, so it starts in the last 16 + 65535 bytes.
    lo = max(pos, end - _H - 0xFFFF)
    cut = None
    for m in find_magic(buf, lo, end).tolist() + ([end - 1] if buf[end - 1] == _MAGIC_LO else []):
        if m + _H > end or m + _H + int(buf[m + 4]) + (int(buf[m + 5]) << 8) > end:
            cut = m
            break
    if cut is None:
        return [Skip(pos, end, "garbage")]
    out = [Skip(pos, cut, "garbage")] if cut > pos else []
    return [*out, Skip(cut, end, "truncated")]
