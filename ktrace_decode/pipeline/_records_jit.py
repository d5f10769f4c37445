"""The compiled loops of :mod:`ktrace_decode.records_compiled` (imported only with numba).

Kept apart, like the other loops, so that importing the decoder never
imports numba.  :func:`advance` and :func:`build` merge the parts of a
dump (runs of parts already in time order) and write every column of the
records table for a range of the merged rows, straight from the mapped
trace bytes into the final arrays: no temporaries, so the memory a whole
table touches is about the table itself.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._csv_encode_jit import string_bits as text_bits
from ._fused_jit import utf8_ok
from ._jit_memory import bytes_at, copy4, copy_bytes, load2, load4, load8

#: The sources this loop is compiled from besides this file, and a hash of
#: their bytes (sha256, in this order).  numba's on-disk cache checks only
#: this file's content, so an edit there must change this hash, or a stale
#: loop would be loaded; tests/pipeline/test_jit_sources.py fails until it does.
BUILT_FROM = ('_csv_encode_jit.py', '_fused_jit.py', '_jit_memory.py')
BUILT_FROM_SHA256 = "f1dcd252a88da059"

#: ``parts`` columns: one row per part (records.Part), in the parts' order.
(P_BUF, P_STARTS, P_RESYNCED, P_SEQ, P_SEQ0, P_BACK, P_PREV, P_CPU, P_LEN, P_VBUF,
 P_PERM, P_COLUMNS) = range(12)
#: ``lay``: where the loop reads a record's fields (from the layout declarations;
#: L_CHUNK ... L_PAD1 in the order of jit_loops.IOTIMES_FIELDS).
(L_TYPE, L_PDU, L_OVFL, L_TIME, L_HEADER, L_TEXT, L_IOTIMES, L_LOG_BUF, L_IOT_HEADER,
 L_CS_SIZE, L_CHUNK, L_OFFSET, L_SIZE, L_START, L_DELAY, L_LAT, L_INO, L_IOTYPE, L_CSES,
 L_PAD1, L_VIEW_SHIFT, L_FIELDS) = range(22)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _row(parts, k, pos):  # type: ignore[no-untyped-def]
    """Row of part ``k`` at merge position ``pos`` (its time order)."""
    perm = parts[k, P_PERM]
    return np.int64(load8(perm + 8 * pos)) if perm else pos


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _time(parts, lay, k, j):  # type: ignore[no-untyped-def]
    start = np.int64(load8(parts[k, P_STARTS] + 8 * j))
    return load8(parts[k, P_BUF] + start + lay[L_TIME])


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _settle(parts, lay, last, part, pos, time, r):  # type: ignore[no-untyped-def]
    """Move run ``r`` past its exhausted parts; its head's time (or done)."""
    while part[r] <= last[r] and pos[r] >= parts[part[r], P_LEN]:
        part[r] += 1
        pos[r] = 0
    if part[r] <= last[r]:
        time[r] = _time(parts, lay, part[r], _row(parts, part[r], pos[r]))


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _pick(last, part, time):  # type: ignore[no-untyped-def]
    """The run whose head comes first: least time, then least part."""
    best = -1
    for r in range(len(last)):
        if part[r] > last[r]:
            continue
        if best < 0 or time[r] < time[best] or (time[r] == time[best] and part[r] < part[best]):
            best = r
    return best


@njit(cache=True, nogil=True, _nrt=False)
def advance(parts, lay, first, last, steps, part, pos, time):  # type: ignore[no-untyped-def]
    """Merge ``steps`` rows without writing them: ``part``/``pos`` (one per
    run ``first[r]``..``last[r]``) are left at the next row's heads.  Starts
    from the heads given; ``time``: room for the heads' times."""
    for r in range(len(first)):
        _settle(parts, lay, last, part, pos, time, r)
    for _ in range(steps):
        r = _pick(last, part, time)
        pos[r] += 1
        _settle(parts, lay, last, part, pos, time, r)


@njit(cache=True, nogil=True, _nrt=False)
def addresses(parts, lay, first, last, part, pos, time, n, addr, cpu, seq):  # type: ignore[no-untyped-def]
    """The n merged rows (from the heads given) as each record's address,
    CPU and seq: what the fused loop of a streamed export walks."""
    for r in range(len(first)):
        _settle(parts, lay, last, part, pos, time, r)
    for out in range(n):
        r = _pick(last, part, time)
        k = part[r]
        j = _row(parts, k, pos[r])
        pos[r] += 1
        _settle(parts, lay, last, part, pos, time, r)
        addr[out] = parts[k, P_BUF] + np.int64(load8(parts[k, P_STARTS] + 8 * j))
        cpu[out] = parts[k, P_CPU]
        seqs = parts[k, P_SEQ]
        seq[out] = np.int64(load4(seqs + 4 * j)) if seqs else parts[k, P_SEQ0] + j


@njit(cache=True, nogil=True, _nrt=False)
def build(parts, lay, first, last, part, pos, time, lo, hi,  # type: ignore[no-untyped-def]
          cpu, seq, offset, time_us, typ, ovfl, pdu_len, views, is_text, odd,
          io_chunk, io_offset, io_size, io_start, io_delay, io_lat, io_ino, io_type, io_cses,
          io_chid, is_iot, n_cs, long_text, unknown, resynced, backwards):
    """Write rows ``lo``..``hi`` of the merged table, the runs' heads at row
    ``lo`` given (:func:`advance`).  ``odd``: a text the loop cannot hand
    over as it is (a NUL inside, not UTF-8): the caller decodes it."""
    for r in range(len(first)):
        _settle(parts, lay, last, part, pos, time, r)
    h = lay[L_HEADER]
    vbase = views.ctypes.data
    for out in range(lo, hi):
        r = _pick(last, part, time)
        k = part[r]
        j = _row(parts, k, pos[r])
        pos[r] += 1
        _settle(parts, lay, last, part, pos, time, r)
        buf = parts[k, P_BUF]
        start = np.int64(load8(parts[k, P_STARTS] + 8 * j))
        a = buf + start
        t = load8(a + lay[L_TIME])
        kind = np.int64(load2(a + lay[L_TYPE]))
        pdu = np.int64(load2(a + lay[L_PDU]))
        cpu[out] = parts[k, P_CPU]
        seqs = parts[k, P_SEQ]
        seq[out] = np.int64(load4(seqs + 4 * j)) if seqs else parts[k, P_SEQ0] + j
        offset[out] = start
        time_us[out] = t
        typ[out] = kind
        ovfl[out] = load2(a + lay[L_OVFL])
        pdu_len[out] = pdu
        resynced[out] = bytes_at(parts[k, P_RESYNCED])[j] != 0
        back = parts[k, P_BACK]
        if back:
            backwards[out] = bytes_at(back)[j] != 0
        elif j > 0:
            backwards[out] = t < _time(parts, lay, k, j - 1)
        else:
            prev = parts[k, P_PREV]
            backwards[out] = prev >= 0 and t < np.uint64(prev)
        text = kind == lay[L_TEXT]
        iot = kind == lay[L_IOTIMES]
        is_text[out] = text
        is_iot[out] = iot
        long_text[out] = text and pdu > lay[L_LOG_BUF]
        unknown[out] = not text and not iot
        v = vbase + 16 * out
        odd[out] = False
        if text:
            # The message to the kernel's NUL (255 bytes for the long-message
            # bug), one trailing newline off: records._text_views' view of it.
            p = start + h
            ln = lay[L_LOG_BUF] - 1 if pdu > lay[L_LOG_BUF] else max(pdu - 1, 0)
            if ln > 0 and bytes_at(buf + p)[ln - 1] == 10:
                ln -= 1
            bits = text_bits(buf + p, ln)
            odd[out] = (bits & 4) != 0 or ((bits & 8) != 0 and not utf8_ok(buf + p, ln))
            vb = bytes_at(v)
            for q in range(16):
                vb[q] = 0
            vb[0] = ln & 0xFF
            if ln <= 12:
                copy_bytes(v + 4, buf + p, ln)
            else:
                copy4(v + 4, buf + p)
                shift = lay[L_VIEW_SHIFT]
                b = parts[k, P_VBUF] + (p >> shift)
                o = p & ((1 << shift) - 1)
                for q in range(4):
                    vb[8 + q] = (b >> (8 * q)) & 0xFF
                    vb[12 + q] = (o >> (8 * q)) & 0xFF
        else:
            vb = bytes_at(v)
            for q in range(16):
                vb[q] = 0
        if iot:
            io = a + h
            io_chunk[out] = load8(io + lay[L_CHUNK])
            io_offset[out] = load8(io + lay[L_OFFSET])
            io_size[out] = load8(io + lay[L_SIZE])
            io_start[out] = load8(io + lay[L_START])
            io_delay[out] = load4(io + lay[L_DELAY])
            io_lat[out] = load4(io + lay[L_LAT])
            io_ino[out] = load8(io + lay[L_INO])
            io_type[out] = load2(io + lay[L_IOTYPE])
            io_cses[out] = bytes_at(io + lay[L_CSES])[0]
            io_chid[out] = load4(io + lay[L_PAD1])
            n_cs[out] = (pdu - lay[L_IOT_HEADER]) // lay[L_CS_SIZE]
        else:
            io_chunk[out] = 0
            io_offset[out] = 0
            io_size[out] = 0
            io_start[out] = 0
            io_delay[out] = 0
            io_lat[out] = 0
            io_ino[out] = 0
            io_type[out] = 0
            io_cses[out] = 0
            io_chid[out] = 0
            n_cs[out] = 0
