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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .formats import layouts as L

#: time must be below this (us since boot); a garbage u64 almost never is.
TIME_LIMIT = 1 << 52
#: After a break, a resync candidate more than this much older than the last
#: good record is taken for stale data of an earlier lap, not for a record.
#: (Legit per-CPU races reorder by microseconds, not by a second.)
STALE_TOLERANCE_US = 1_000_000

_OFF = L.field_offsets(L.TraceHeader)
_IOT = L.field_offsets(L.IotimesHeader)
_H = L.HEADER_SIZE
_IOT_HDR = L.IOTIMES_HEADER_SIZE
_CS = L.IOTIMES_CS_SIZE
_MAGIC_LO, _MAGIC_HI = L.MAGIC & 0xFF, L.MAGIC >> 8

#: Candidates are processed in windows of this many bytes to bound memory.
WINDOW = 1 << 26


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


def find_magic(buf: np.ndarray, start: int = 0, end: int | None = None) -> np.ndarray:
    """Offsets of every ``9c f5`` pair wholly inside ``buf[start:end]`` (sorted, int64)."""
    end = len(buf) if end is None else end
    parts: list[np.ndarray] = []
    for w0 in range(start, end - 1, WINDOW):
        w1 = min(w0 + WINDOW, end - 1)  # candidate positions in [w0, w1)
        lo = buf[w0:w1]
        hi = buf[w0 + 1 : w1 + 1]
        hit = np.flatnonzero((lo == _MAGIC_LO) & (hi == _MAGIC_HI))
        if hit.size:
            parts.append(hit.astype(np.int64) + w0)
    if not parts:
        return np.zeros(0, np.int64)
    return np.concatenate(parts)


def _u16(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return buf[pos].astype(np.int64) | (buf[pos + 1].astype(np.int64) << 8)


def _rows(buf: np.ndarray, width: int) -> np.ndarray:
    """A zero-copy (len - width + 1, width) view: row i is buf[i:i+width]."""
    n = max(len(buf) - width + 1, 0)
    return np.lib.stride_tricks.as_strided(buf, shape=(n, width), strides=(1, 1), writeable=False)


def gather(buf: np.ndarray, pos: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Read a packed struct of ``dtype`` at every offset in ``pos`` (unaligned)."""
    if pos.size == 0:
        return np.zeros(0, dtype)
    rows = _rows(buf, dtype.itemsize)[pos]
    return np.ascontiguousarray(rows).view(dtype).reshape(-1)


@dataclass
class _Cands:
    pos: np.ndarray
    type: np.ndarray
    pdu: np.ndarray
    time: np.ndarray
    nxt: np.ndarray
    ok_sync: np.ndarray
    ok_resync: np.ndarray


def _candidates(buf: np.ndarray, start: int, end: int) -> _Cands:
    pos = find_magic(buf, start, end)
    pos = pos[pos + _H <= end]
    hdr = gather(buf, pos, L.HEADER_DTYPE)
    typ = hdr["type"].astype(np.int64)
    pdu = hdr["pdu_len"].astype(np.int64)
    tim = hdr["time"]
    nxt = pos + _H + pdu
    fits = nxt <= end
    time_ok = tim < TIME_LIMIT
    # Text: the byte before the end is the NUL, or byte 255 for the long-message bug.
    last = np.where(fits & (pdu > 0), nxt - 1, pos)
    b255 = np.where(fits & (pdu > L.KTRACE_LOG_BUF_SIZE), pos + _H + L.KTRACE_LOG_BUF_SIZE - 1, pos)
    is_text = typ == L.TYPE_TEXT
    text_ok = is_text & (pdu > 0) & (
        (buf[last] == 0) | ((pdu > L.KTRACE_LOG_BUF_SIZE) & (buf[b255] == 0))
    )
    is_iot = typ == L.TYPE_IOTIMES
    n_cs = (pdu - _IOT_HDR) // _CS
    iot_ok = is_iot & (pdu >= _IOT_HDR) & ((pdu - _IOT_HDR) % _CS == 0)
    cses_at = np.where(fits & iot_ok, pos + _H + _IOT["cses"], pos)
    iot_strict = iot_ok & (buf[cses_at].astype(np.int64) == n_cs)
    known_ok = fits & time_ok & (text_ok | iot_ok)
    ok_resync = fits & time_ok & (text_ok | iot_strict)
    # An unknown type is only believed in the chain, when what follows it is a
    # plausible known record or the end of the buffer.
    unknown = fits & time_ok & ~is_text & ~is_iot
    succ = np.searchsorted(pos, nxt)
    succ_c = np.minimum(succ, max(len(pos) - 1, 0))
    succ_ok = (nxt == end) | (
        (succ < len(pos)) & (pos[succ_c] == nxt) & known_ok[succ_c] if len(pos) else False
    )
    ok_sync = known_ok | (unknown & succ_ok)
    return _Cands(pos, typ, pdu, tim, nxt, ok_sync, ok_resync)


def scan_stream(buf: np.ndarray, start: int = 0, end: int | None = None,
                raw_subbuf: bool = False) -> ScanResult:
    """Decode ``buf[start:end]`` as records back to back.

    With ``raw_subbuf`` the region is one sub-buffer of a raw image: the bytes
    after the chain ends are padding (zeros or stale older records) unless a
    later plausible record is *newer* than the sub-buffer's first record,
    which means damage inside the sub-buffer and a resync.
    """
    end = len(buf) if end is None else end
    c = _candidates(buf, start, end)
    n = len(c.pos)
    # link[k]: candidate k+1 starts exactly where k ends and is acceptable.
    if n > 1:
        link = (c.nxt[:-1] == c.pos[1:]) & c.ok_sync[1:]
        breaks = np.flatnonzero(~link)
    else:
        breaks = np.zeros(0, np.int64)
    resync_idx = np.flatnonzero(c.ok_resync)

    runs: list[tuple[int, int]] = []
    resynced_at: list[int] = []
    skips: list[Skip] = []
    padding = stale = 0
    pos = start
    k = int(np.searchsorted(c.pos, pos))
    last_time: int | None = None
    first_time: int | None = None
    while pos < end:
        if k < n and c.pos[k] == pos and c.ok_sync[k]:
            b = int(np.searchsorted(breaks, k))
            j = int(breaks[b]) if b < len(breaks) else n - 1
            if first_time is None:
                first_time = int(c.time[k])
            if raw_subbuf:
                # Records of an earlier lap can chain on from the current lap
                # (same sizes, same start at offset 0): they are older than
                # the sub-buffer's first record.
                old = np.flatnonzero(c.time[k : j + 1] < first_time)
                if old.size:
                    j = k + int(old[0]) - 1
            if j >= k:
                runs.append((k, j + 1))
                last_time = int(c.time[j])
                pos = int(c.nxt[j])
                k = int(np.searchsorted(c.pos, pos))
                continue
        # The chain broke at pos: find the next plausible header after it.
        r = int(np.searchsorted(resync_idx, np.searchsorted(c.pos, pos + 1)))
        if raw_subbuf:
            floor = first_time
        else:
            floor = None if last_time is None else last_time - STALE_TOLERANCE_US
        while r < len(resync_idx) and floor is not None and int(c.time[resync_idx[r]]) < floor:
            r += 1
        if r >= len(resync_idx):
            seg = buf[pos:end]
            if raw_subbuf and (first_time is not None or not seg.any()):
                # Padding after the sub-buffer's last record (or an unused one).
                padding += end - pos
                stale += int(np.count_nonzero(seg))
            else:
                skips.extend(_tail_skips(buf, pos, end))
            break
        k = int(resync_idx[r])
        skips.append(Skip(pos, int(c.pos[k]), "garbage"))
        resynced_at.append(len(runs))
        pos = int(c.pos[k])

    if runs:
        starts = np.concatenate([c.pos[a:b] for a, b in runs])
        lens = np.array([b - a for a, b in runs])
        first_of_run = np.concatenate([[0], np.cumsum(lens)[:-1]])
        resynced = np.zeros(len(starts), bool)
        for ri in resynced_at:
            if ri < len(runs):
                resynced[first_of_run[ri]] = True
    else:
        starts = np.zeros(0, np.int64)
        resynced = np.zeros(0, bool)
    return ScanResult(starts, resynced, skips, len(resynced_at), padding, stale)


def _tail_skips(buf: np.ndarray, pos: int, end: int) -> list[Skip]:
    """The unusable end of a buffer: garbage, then perhaps one record cut off by the end."""
    # A cut-off record is a magic whose header or payload runs past the end.
    cut = None
    for m in find_magic(buf, pos, end).tolist() + ([end - 1] if buf[end - 1] == _MAGIC_LO else []):
        if m + _H > end or m + _H + int(buf[m + 4]) + (int(buf[m + 5]) << 8) > end:
            cut = m
            break
    if cut is None:
        return [Skip(pos, end, "garbage")]
    out = [Skip(pos, cut, "garbage")] if cut > pos else []
    return [*out, Skip(cut, end, "truncated")]
