"""The compiled loop of :mod:`.fused` (imported only when numba is wanted).

Kept apart, like :mod:`._bytematch_jit`, so that importing :mod:`.fused`
never imports numba.  One function body once numba has inlined its helpers
(the text classification of :mod:`._bytematch_jit`, the CSV fields of
:mod:`._csv_encode_jit`: the same code those loops run), no reference
counting (``_nrt=False``), and the GIL released: the table workers run it
side by side.

It walks a batch's records in merged order, straight from the trace bytes
(each record's address, CPU and seq given), and for each one writes its
``events.csv`` row and, for the patch's events, a row of the kept arrays.
What a record's text is, and whether a batch can be written this way, is
:mod:`.fused`'s documentation.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._bytematch_jit import classify_text, take_fields
from ._csv_encode_jit import _COMMA, _LF, _put_uint, put_flagged, put_int, put_key
from ._csv_encode_jit import string_bits as text_bits
from ._jit_memory import bytes_at, copy_bytes, load2, load4, load8

#: The sources this loop is compiled from besides this file, and a hash of
#: their bytes (sha256, in this order).  numba's on-disk cache checks only
#: this file's content, so an edit there must change this hash, or a stale
#: loop would be loaded; tests/pipeline/test_jit_sources.py fails until it does.
BUILT_FROM = ('_bytematch_jit.py', '_csv_encode_jit.py', '_jit_memory.py')
BUILT_FROM_SHA256 = "46d74e58a533b8a1"

#: Why a batch cannot be written by the loop (``res[FAIL]``); :mod:`.fused`
#: then takes the general path for the whole batch.
OK, NUL_IN_TEXT, NOT_UTF8, DEFERRED, NO_ROOM = 0, 1, 2, 3, 4
#: ``res``: bytes written, kept rows, the failure, the row that failed,
#: iotimes records and their chunk-server entries copied.
WRITTEN, KEPT, FAIL, FAILED_ROW, IOTIMES_ROWS, ENTRIES, RESULTS = range(7)
#: ``hdr``: where the loop reads a record's fields, from the record's
#: start (given by :mod:`.fused` from the layout declarations).
(H_TYPE, H_PDU, H_OVFL, H_TIME, H_INO, H_SIZE, H_TEXT_MAX, H_TYPE_TEXT, H_TYPE_IOTIMES,
 H_IOT_SIZE, H_CS_SIZE, H_FIELDS) = range(12)
#: Record kinds: the rows of ``names`` (their record_type fields).
TEXT, IOTIMES, UNKNOWN = range(3)

_U64_MAX = np.uint64(2**64 - 1)


# --- what a text holds -----------------------------------------------------------
# text_bits (_csv_encode_jit.string_bits): 1 a comma, LF or CR, 2 a quote (the
# CSV field is quoted), 4 a NUL (the text is not whole: the general path cuts
# it), 8 a byte >= 0x80 (the UTF-8 is validated).

@njit(cache=True, nogil=True, _nrt=False, inline="always")
def utf8_ok(src, n):  # type: ignore[no-untyped-def]
    """Are the n bytes at ``src`` valid UTF-8 (what Polars' String cast
    accepts: no overlong forms, no surrogates, nothing above U+10FFFF)?"""
    s = bytes_at(src)
    i = 0
    while i < n:
        c = s[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            need, lo, hi = 1, 0x80, 0xBF
        elif 0xE0 <= c <= 0xEF:
            need = 2
            lo = 0xA0 if c == 0xE0 else 0x80  # overlong below U+0800
            hi = 0x9F if c == 0xED else 0xBF  # surrogates U+D800..U+DFFF
        elif 0xF0 <= c <= 0xF4:
            need = 3
            lo = 0x90 if c == 0xF0 else 0x80  # overlong below U+10000
            hi = 0x8F if c == 0xF4 else 0xBF  # above U+10FFFF
        else:
            return False
        if i + need >= n:  # cut off by the end
            return False
        b = s[i + 1]
        if b < lo or b > hi:
            return False
        for q in range(2, need + 1):
            if s[i + q] < 0x80 or s[i + q] > 0xBF:
                return False
        i += need + 1
    return True


# --- the rows -----------------------------------------------------------------------

@njit(cache=True, nogil=True, _nrt=False)
def event_rows(n, addrs, cpus, seqs, hdr,  # type: ignore[no-untyped-def]
               pool, funcs, spans, ops, adjust, lo, hi, tmp,
               name_pool, events, names, lit, out_addr, out_cap, row_fixed, keep,
               row_values, row_present,
               k_time, k_cpu, k_seq, k_rank, k_values, k_present,
               io_hdr, io_time, io_cpu, io_seq, io_pdu, cs_raw, cs_rec, cs_idx, res):
    """The events rows of the n records at ``addrs`` (with ``cpus``,
    ``seqs``), in that order.

    ``hdr``: the fields' offsets from a record's start, the text limit and
    the type numbers (H_* above).  ``pool`` ... ``tmp``: the byte programs
    (:class:`.bytematch.Programs`).  ``events[code]``, ``names[kind]``:
    (offset, length) in ``name_pool`` of an event's or a record type's CSV
    field; codes are the catalogue's, then other, iotimes, unknown.
    ``lit``: a first field on every row (none if empty).

    Rows go to ``out_addr`` (0: none written, only the kept events), which
    has ``out_cap`` bytes; a row takes at most ``row_fixed`` bytes and four
    per byte of its text.  A record whose code has ``keep[code] >= 0`` goes
    to row ``res[KEPT]`` of the ``k_*`` arrays (its event as that number).
    An iotimes record's header bytes go to ``io_hdr`` (with its time, cpu,
    seq and pdu_len), its chunk-server entries' bytes to ``cs_raw`` (with
    their record's row in those and their index).

    Stops at the first record the general path must decode (``res[FAIL]``,
    ``res[FAILED_ROW]``).
    """
    out = bytes_at(out_addr)
    write = out_addr != 0
    n_cat = funcs.shape[0]
    names_base = name_pool.ctypes.data
    n_slots = tmp.shape[0]
    res[FAIL] = OK
    p = 0
    kept = 0
    n_io = 0
    n_cs = 0
    io_size = hdr[H_IOT_SIZE]
    cs_size = hdr[H_CS_SIZE]
    io_base = io_hdr.ctypes.data
    cs_base = cs_raw.ctypes.data
    for i in range(n):
        a = addrs[i]
        typ = load2(a + hdr[H_TYPE])
        pdu = np.int64(load2(a + hdr[H_PDU]))
        if typ == hdr[H_TYPE_TEXT]:
            kind = TEXT
        elif typ == hdr[H_TYPE_IOTIMES]:
            kind = IOTIMES
        else:
            kind = UNKNOWN
        code = n_cat + 2  # unknown
        t = 0
        ln = 0
        bits = 0
        k = -1
        if kind == TEXT:
            # Its message: the payload to the kernel's NUL, or its first 255
            # bytes for the long-message bug; one trailing newline off.
            t = a + hdr[H_SIZE]
            ln = hdr[H_TEXT_MAX] - 1 if pdu > hdr[H_TEXT_MAX] else max(pdu - 1, 0)
            if ln > 0 and bytes_at(t)[ln - 1] == _LF:
                ln -= 1
            bits = text_bits(t, ln)
            if bits & 4:
                res[FAIL], res[FAILED_ROW] = NUL_IN_TEXT, i
                break
            if bits & 8 and not utf8_ok(t, ln):
                res[FAIL], res[FAILED_ROW] = NOT_UTF8, i
                break
            k, m, result = classify_text(t, ln, pool, funcs, spans, ops, tmp)
            if result == 2:
                res[FAIL], res[FAILED_ROW] = DEFERRED, i
                break
            code = m if result == 1 else n_cat  # else: other
        elif kind == IOTIMES:
            code = n_cat + 1
            # (the scan accepts only iotimes of io_size + k * cs_size bytes)
            entries = max(pdu - io_size, 0) // cs_size
            if n_io >= len(io_time) or n_cs + entries > len(cs_rec):
                res[FAIL], res[FAILED_ROW] = NO_ROOM, i  # the caller's count is wrong
                break
            copy_bytes(io_base + n_io * io_size, a + hdr[H_SIZE], io_size)
            io_time[n_io] = load8(a + hdr[H_TIME])
            io_cpu[n_io] = cpus[i]
            io_seq[n_io] = seqs[i]
            io_pdu[n_io] = pdu
            copy_bytes(cs_base + n_cs * cs_size, a + hdr[H_SIZE] + io_size, entries * cs_size)
            for e in range(entries):
                cs_rec[n_cs] = n_io
                cs_idx[n_cs] = e
                n_cs += 1
            n_io += 1
        if code < n_cat:
            # The fields the message printed, adjusted, in range (else absent).
            for s in range(n_slots):
                row_present[s, 0] = False
                row_values[s, 0] = 0
            take_fields(code, spans, ops, adjust, lo, hi, tmp, row_values, row_present, 0)
            if keep[code] >= 0:
                k_time[kept] = load8(a + hdr[H_TIME])
                k_cpu[kept] = cpus[i]
                k_seq[kept] = seqs[i]
                k_rank[kept] = keep[code]
                for s in range(n_slots):
                    k_values[s, kept] = row_values[s, 0]
                    k_present[s, kept] = row_present[s, 0]
                kept += 1
        if not write:
            continue
        if p + row_fixed + 4 * ln > out_cap:
            res[FAIL], res[FAILED_ROW] = NO_ROOM, i  # the caller's bound is wrong
            break
        # time_us, cpu, seq, record_type, event
        p = put_key(out, out_addr, p, lit, load8(a + hdr[H_TIME]), cpus[i], seqs[i])
        copy_bytes(out_addr + p, names_base + names[kind, 0], names[kind, 1])
        p += names[kind, 1]
        out[p] = _COMMA
        p += 1
        copy_bytes(out_addr + p, names_base + events[code, 0], events[code, 1])
        p += events[code, 1]
        out[p] = _COMMA
        p += 1
        # function, nodeid, fh, err
        if k >= 0:
            # The function is a prefix of the text: it can only need quotes
            # if the text does.
            p = put_flagged(out, out_addr, p, t, k, text_bits(t, k) & 3 if bits & 3 else 0)
        out[p] = _COMMA
        p += 1
        # (slot 0 is the nodeid: fused._catalogue checks it)
        if code < n_cat:
            for s in range(n_slots):
                if s:
                    out[p] = _COMMA
                    p += 1
                if row_present[s, 0]:
                    p = put_int(out, p, row_values[s, 0])
        else:
            if kind == IOTIMES:
                p = _put_nodeid(out, p, load8(a + hdr[H_INO]))
            for _ in range(n_slots - 1):
                out[p] = _COMMA
                p += 1
        out[p] = _COMMA
        # ovfl, text
        p = _put_uint(out, p + 1, load2(a + hdr[H_OVFL]))
        out[p] = _COMMA
        p += 1
        if kind == TEXT:
            p = put_flagged(out, out_addr, p, t, ln, bits & 3)
        out[p] = _LF
        p += 1
    res[WRITTEN] = p
    res[KEPT] = kept
    res[IOTIMES_ROWS] = n_io
    res[ENTRIES] = n_cs
    return 0


# --- iotimes.csv and iotimes_cs.csv, from what event_rows copied aside ----------------
#: ``io``: where the rows read the fields of an iotimes header and of a
#: chunk-server entry, the sizes of both, the positions of the ``misc`` flag
#: bits and the mask of its time, the time limit (given by :mod:`.fused`
#: from the layout declarations; IO_CHUNK ... IO_PAD1 in the order of
#: jit_loops.IOTIMES_FIELDS).
(IO_CHUNK, IO_OFFSET, IO_SIZE, IO_START, IO_DELAY, IO_LAT, IO_INO, IO_TYPE, IO_CSES, IO_PAD1,
 IO_HEADER, CS_SIZE, CS_CSID, CS_MISC, CS_NET, CS_IO, MISC_CACHED, MISC_SEQUENTIAL, MISC_SYNC,
 MISC_TIME, TIME_LIMIT, IO_FIELDS) = range(22)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _sep(out, p, c):  # type: ignore[no-untyped-def]
    out[p] = c
    return p + 1


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _put_nodeid(out, p, ino):  # type: ignore[no-untyped-def]
    """ino + 1, the kernel nodeid of an iotimes record's PCS file id (nothing
    for an ino of 2**64 - 1, which has none: events.ino_nodeid)."""
    return _put_uint(out, p, ino + np.uint64(1)) if ino != _U64_MAX else p


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _put_bool(out, p, v):  # type: ignore[no-untyped-def]
    if v:
        out[p], out[p + 1], out[p + 2], out[p + 3] = 116, 114, 117, 101  # true
        return p + 4
    out[p], out[p + 1], out[p + 2] = 102, 97, 108  # fal
    out[p + 3], out[p + 4] = 115, 101  # se
    return p + 5


@njit(cache=True, nogil=True, _nrt=False)
def iotimes_rows(n, raw, time, cpu, seq, pdu, io, req_codes, req_pool, req_at,  # type: ignore[no-untyped-def]
                 lit, out_addr, out_cap):
    """The iotimes.csv rows of the n records copied aside by event_rows
    (``raw``: their headers; ``time``, ``cpu``, ``seq``, ``pdu``); the bytes
    written, or -1 if ``out_cap`` would not do.  A request type among
    ``req_codes`` is written as its name (``req_at``: offset and length in
    ``req_pool``), any other as ``type<N>``; total_us only for a creation
    time below the limit."""
    out = bytes_at(out_addr)
    base = raw.ctypes.data
    size = io[IO_HEADER]
    n_lit = len(lit)
    p = 0
    for i in range(n):
        if p + n_lit + 400 > out_cap:  # 17 fields of at most 21 bytes, a name
            return -1
        a = base + i * size
        p = put_key(out, out_addr, p, lit, time[i], cpu[i], seq[i])
        ino = load8(a + io[IO_INO])
        p = _sep(out, _put_nodeid(out, p, ino), _COMMA)
        p = _sep(out, _put_uint(out, p, ino), _COMMA)
        typ = load2(a + io[IO_TYPE])
        k = 0
        while k < len(req_codes) and np.uint64(req_codes[k]) != typ:
            k += 1
        if k < len(req_codes):
            copy_bytes(out_addr + p, req_pool.ctypes.data + req_at[k, 0], req_at[k, 1])
            p += req_at[k, 1]
        else:
            out[p], out[p + 1], out[p + 2], out[p + 3] = 116, 121, 112, 101  # type
            p = _put_uint(out, p + 4, typ)
        p = _sep(out, p, _COMMA)
        p = _sep(out, _put_uint(out, p, typ), _COMMA)
        for f in (IO_CHUNK, IO_OFFSET, IO_SIZE, IO_START):
            p = _sep(out, _put_uint(out, p, load8(a + io[f])), _COMMA)
        p = _sep(out, _put_uint(out, p, load4(a + io[IO_DELAY])), _COMMA)
        p = _sep(out, _put_uint(out, p, load4(a + io[IO_LAT])), _COMMA)
        start = load8(a + io[IO_START])
        if start < np.uint64(io[TIME_LIMIT]):
            p = put_int(out, p, np.int64(time[i]) - np.int64(start))
        p = _sep(out, p, _COMMA)
        p = _sep(out, _put_uint(out, p, np.uint64(bytes_at(a + io[IO_CSES])[0])), _COMMA)
        p = _sep(out, _put_uint(out, p, load4(a + io[IO_PAD1])), _COMMA)
        p = _sep(out, _put_uint(out, p, np.uint64((pdu[i] - size) // io[CS_SIZE])), _LF)
    return p


@njit(cache=True, nogil=True, _nrt=False)
def entry_rows(n, raw, rec, idx, io_raw, time, cpu, seq, io,  # type: ignore[no-untyped-def]
               lit, out_addr, out_cap):
    """The iotimes_cs.csv rows of the n chunk-server entries copied aside
    by event_rows (``raw``, their record's row ``rec`` in ``io_raw`` and
    ``time``, ``cpu``, ``seq``; their index ``idx``); the bytes written, or
    -1 if ``out_cap`` would not do."""
    out = bytes_at(out_addr)
    base = raw.ctypes.data
    io_base = io_raw.ctypes.data
    size = io[CS_SIZE]
    n_lit = len(lit)
    mask = np.uint64(io[MISC_TIME])
    p = 0
    for e in range(n):
        if p + n_lit + 300 > out_cap:  # 13 fields of at most 21 bytes
            return -1
        a = base + e * size
        r = rec[e]
        p = put_key(out, out_addr, p, lit, time[r], cpu[r], seq[r])
        ino = load8(io_base + r * io[IO_HEADER] + io[IO_INO])
        p = _sep(out, _put_nodeid(out, p, ino), _COMMA)
        p = _sep(out, _put_uint(out, p, np.uint64(idx[e])), _COMMA)
        p = _sep(out, _put_uint(out, p, load8(a + io[CS_CSID])), _COMMA)
        misc = load8(a + io[CS_MISC])
        p = _sep(out, _put_uint(out, p, misc), _COMMA)
        for bit in (MISC_CACHED, MISC_SEQUENTIAL, MISC_SYNC):
            p = _sep(out, _put_bool(out, p, (misc >> np.uint64(io[bit])) & np.uint64(1)), _COMMA)
        p = _sep(out, _put_uint(out, p, misc & mask), _COMMA)
        p = _sep(out, _put_uint(out, p, load4(a + io[CS_NET])), _COMMA)
        p = _sep(out, _put_uint(out, p, load4(a + io[CS_IO])), _LF)
    return p
