"""The compiled loop of :mod:`.csv_encode` (imported only when numba is wanted).

Kept apart, like :mod:`._bytematch_jit`, so that importing :mod:`.csv_encode`
never imports numba.  One function body without reference counting
(``_nrt=False``) that releases the GIL: the table workers run it side by side.

The rows are written in order, field after field, into one buffer the caller
made large enough, so every value is read once and the output is written
front to back.  Every column is read where Arrow keeps it, through integer
addresses (:mod:`._jit_memory`): integers of any width, validity and boolean
bitmaps, string views and the data buffers they point into.  Numpy arrays
would mean a copy of each column into one table (numba cannot index a list
of arrays of different types cheaply), ~4 ms of a 170k-row batch's ~15.

The addresses come from live pyarrow buffers that the caller keeps
referenced; a string view that points outside its buffer stops the loop
(-1) instead of reading there.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ._jit_memory import bytes_at, copy_bytes, int32_at, load2, load4, load8

#: The sources this loop is compiled from besides this file, and a hash of
#: their bytes (sha256, in this order).  numba's on-disk cache checks only
#: this file's content, so an edit there must change this hash, or a stale
#: loop would be loaded; tests/pipeline/test_jit_sources.py fails until it does.
BUILT_FROM = ('_jit_memory.py',)
BUILT_FROM_SHA256 = "97f2ac1e23ba676d"


#: Column kinds.
UINT, INT, BOOL, STR, CONST, NULL = range(6)
#: Columns of the descriptor table ``encode_rows`` reads (one row per column).
KIND, ADDR, WIDTH, SLOT, VALID, VALID_BIT, VALUE_BIT = range(7)

#: 10**k for k = 0..19.
_POW10 = np.array([10**k for k in range(20)], np.uint64)
#: "00" "01" ... "99": two digits per division.
_PAIRS = np.frombuffer(b"".join(b"%02d" % k for k in range(100)), np.uint8).copy()
_COMMA, _LF, _CR, _QUOTE = 44, 10, 13, 34


# --- what a string holds -------------------------------------------------------
# Bits: 1 a comma, LF or CR (the CSV field is quoted), 2 a quote (quoted, the
# quotes doubled), 4 a NUL, 8 a byte >= 0x80 (the fused loop's tests of a
# text: :mod:`._fused_jit`).  Strings of 16 bytes and more are read 16
# bytes at a time as a vector, shorter ones as one or two words.

@intrinsic
def _bits16(typingctx, addr):  # type: ignore[no-untyped-def]
    """The bits of the 16 bytes at ``addr``: one vector load, six compares."""
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        vt = ir.VectorType(ir.IntType(8), 16)
        v = builder.load(builder.inttoptr(args[0], vt.as_pointer()), align=1)
        i64 = ir.IntType(64)

        def anywhere(mask, bit: int):  # type: ignore[no-untyped-def]
            found = builder.icmp_unsigned("!=", builder.bitcast(mask, ir.IntType(16)),
                                          ir.Constant(ir.IntType(16), 0))
            return builder.shl(builder.zext(found, i64), ir.Constant(i64, bit))

        def eq(c: int):  # type: ignore[no-untyped-def]
            return builder.icmp_unsigned("==", v, ir.Constant(vt, [c] * 16))

        special = builder.or_(builder.or_(eq(_COMMA), eq(_LF)), eq(_CR))
        high = builder.icmp_signed("<", v, ir.Constant(vt, [0] * 16))
        out = builder.or_(anywhere(special, 0), anywhere(eq(_QUOTE), 1))
        return builder.or_(out, builder.or_(anywhere(eq(0), 2), anywhere(high, 3)))

    return types.int64(types.int64), codegen


_ONES = np.uint64(0x0101010101010101)
_HIGH = np.uint64(0x8080808080808080)
#: Each byte looked for, in every byte of a word.
_W_COMMA, _W_LF, _W_CR, _W_QUOTE = (np.uint64(c * 0x0101010101010101)
                                    for c in (_COMMA, _LF, _CR, _QUOTE))


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _zero_byte(w):  # type: ignore[no-untyped-def]
    """Non-zero iff a byte of ``w`` is 0 (exact as a truth value)."""
    return (w - _ONES) & ~w & _HIGH


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _word_bits(w):  # type: ignore[no-untyped-def]
    special = _zero_byte(w ^ _W_COMMA) | _zero_byte(w ^ _W_LF) | _zero_byte(w ^ _W_CR)
    return ((1 if special else 0) | (2 if _zero_byte(w ^ _W_QUOTE) else 0)
            | (4 if _zero_byte(w) else 0) | (8 if w & _HIGH else 0))


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def string_bits(src, n):  # type: ignore[no-untyped-def]
    """The bits of the n bytes at ``src``, read only inside them (16-byte
    chunks and 8-byte words overlap at the end rather than read past it)."""
    if n >= 16:
        f = 0
        j = 0
        while j + 16 < n:
            f |= _bits16(src + j)
            j += 16
        return f | _bits16(src + n - 16)
    if n >= 8:
        return _word_bits(load8(src)) | _word_bits(load8(src + n - 8))
    s = bytes_at(src)
    f = 0
    for j in range(n):
        c = s[j]
        f |= ((1 if c in (_COMMA, _LF, _CR) else 0) | (2 if c == _QUOTE else 0)
              | (4 if c == 0 else 0) | (8 if c >= 0x80 else 0))
    return f


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _flags(src, n):  # type: ignore[no-untyped-def]
    """What makes the n bytes at ``src`` need quotes (:func:`put_flagged`)."""
    return string_bits(src, n) & 3


# --- integers ---------------------------------------------------------------------

@intrinsic
def _clz(typingctx, v):  # type: ignore[no-untyped-def]
    """Leading zero bits of a uint64 (64 for 0)."""
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.ctlz(args[0], ir.Constant(ir.IntType(1), 0))

    return types.int64(types.uint64), codegen


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _pair(out, e, r):  # type: ignore[no-untyped-def]
    """Write 0 <= r < 100 as two digits at e, e + 1."""
    out[e] = _PAIRS[2 * r]
    out[e + 1] = _PAIRS[2 * r + 1]


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _put_uint(out, p, v):  # type: ignore[no-untyped-def]
    """Write uint64 ``v`` in decimal at ``p``; the position after it.

    Digits counted from the bit length, then written from the end in
    blocks of eight (two independent four-digit halves in 32-bit
    arithmetic) and pairs: short chains of divisions by constants."""
    t = ((64 - _clz(v | np.uint64(1))) * 1233) >> 12  # floor(log10(2**bits))
    d = max(t + (v >= _POW10[t]), 1)
    e = p + d
    block = np.uint64(100_000_000)
    while v >= block:
        q = v // block
        r = np.uint32(v - q * block)
        v = q
        hi = r // np.uint32(10_000)
        lo = r - hi * np.uint32(10_000)
        e -= 8
        _pair(out, e, np.int64(hi // np.uint32(100)))
        _pair(out, e + 2, np.int64(hi % np.uint32(100)))
        _pair(out, e + 4, np.int64(lo // np.uint32(100)))
        _pair(out, e + 6, np.int64(lo % np.uint32(100)))
    w = np.uint32(v)
    while w >= np.uint32(100):
        q = w // np.uint32(100)
        e -= 2
        _pair(out, e, np.int64(w - q * np.uint32(100)))
        w = q
    if w >= np.uint32(10):
        _pair(out, e - 2, np.int64(w))
    else:
        out[e - 1] = np.uint8(np.uint32(48) + w)
    return p + d


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _int_at(addr, width, signed):  # type: ignore[no-untyped-def]
    """The ``width``-byte integer at ``addr`` as int64 (uint64 bits if unsigned)."""
    if width == 8:
        return np.int64(load8(addr))
    if width == 4:
        u = load4(addr)
    elif width == 2:
        u = load2(addr)
    else:
        u = np.uint64(bytes_at(addr)[0])
    if signed:
        shift = np.uint64(64 - 8 * width)
        return np.int64(u << shift) >> np.int64(shift)
    return np.int64(u)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _bit(addr, i):  # type: ignore[no-untyped-def]
    """Bit i of the (Arrow, least significant bit first) bitmap at ``addr``."""
    return (bytes_at(addr)[i >> 3] >> (i & 7)) & 1


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def put_str(out, out_addr, p, src, ln):  # type: ignore[no-untyped-def]
    """Write the ``ln`` bytes at ``src`` as a CSV string field at ``out[p]``
    (``out`` is ``bytes_at(out_addr)``); the position after it.  ``""`` for
    the empty string (an empty field would be a null); quoted if it holds a
    comma, quote, CR or LF, its quotes doubled."""
    return put_flagged(out, out_addr, p, src, ln, _flags(src, ln) if ln else 0)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def put_flagged(out, out_addr, p, src, ln, flags):  # type: ignore[no-untyped-def]
    """:func:`put_str` with the string's flags (as :func:`_flags` gives them)
    already known."""
    if ln == 0:
        out[p] = _QUOTE
        out[p + 1] = _QUOTE
        return p + 2
    if flags & 2:
        data = bytes_at(src)
        out[p] = _QUOTE
        p += 1
        for j in range(ln):
            c = data[j]
            out[p] = c
            p += 1
            if c == _QUOTE:
                out[p] = _QUOTE
                p += 1
        out[p] = _QUOTE
        return p + 1
    if flags:
        out[p] = _QUOTE
        copy_bytes(out_addr + p + 1, src, ln)
        out[p + 1 + ln] = _QUOTE
        return p + ln + 2
    copy_bytes(out_addr + p, src, ln)
    return p + ln


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def put_int(out, p, v):  # type: ignore[no-untyped-def]
    """Write int64 ``v`` in decimal at ``out[p]``; the position after it."""
    if v < 0:
        out[p] = 45  # '-'
        # -(v + 1) + 1: the magnitude, also of the most negative int64
        return _put_uint(out, p + 1, np.uint64(-(v + 1)) + np.uint64(1))
    return _put_uint(out, p, np.uint64(v))


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def put_key(out, out_addr, p, lit, time, cpu, seq):  # type: ignore[no-untyped-def]
    """A row's start in the record-sized tables: the constant first field
    ``lit`` (none if empty), then time_us, cpu and seq, each with its comma."""
    n_lit = len(lit)
    if n_lit:
        copy_bytes(out_addr + p, lit.ctypes.data, n_lit)
        out[p + n_lit] = _COMMA
        p += n_lit + 1
    p = _put_uint(out, p, np.uint64(time))
    out[p] = _COMMA
    p = _put_uint(out, p + 1, np.uint64(cpu))
    out[p] = _COMMA
    p = _put_uint(out, p + 1, np.uint64(seq))
    out[p] = _COMMA
    return p + 1


# --- the rows ------------------------------------------------------------------------

@njit(cache=True, nogil=True, _nrt=False)
def encode_rows(cols, n, addrs, sizes, lit, out_addr):  # type: ignore[no-untyped-def]
    """Write n rows at ``out_addr``; the number of bytes written, or -1 for
    a string view pointing outside its buffer.

    ``cols`` has a row per column (KIND ... VALUE_BIT above): its kind, the
    address of its values (integers of WIDTH bytes, a bitmap for BOOL, the
    views for STR), its VALID bitmap (0: no nulls) and the bit offset of
    row 0 in it, the bit offset of row 0 in a BOOL's values; a STR column's
    data buffers are ``addrs[SLOT]`` with ``sizes[SLOT]`` bytes.  CONST
    writes the bytes of ``lit`` on every row.

    The bytes are RFC 4180's, as Polars' ``write_csv`` writes them: a null
    is an empty field, an empty string ``""``, a string holding a comma,
    quote, CR or LF is quoted with its quotes doubled.
    """
    out = bytes_at(out_addr)  # stores through a pointer: no negative-index fix-up
    ncols = cols.shape[0]
    nbufs = addrs.shape[1]
    p = 0
    for i in range(n):
        for k in range(ncols):
            kind = cols[k, KIND]
            if cols[k, VALID] != 0 and not _bit(cols[k, VALID], cols[k, VALID_BIT] + i):
                pass  # a null: the empty field
            elif kind in (UINT, INT):
                width = cols[k, WIDTH]
                v = _int_at(cols[k, ADDR] + i * width, width, kind == INT)
                p = put_int(out, p, v) if kind == INT else _put_uint(out, p, np.uint64(v))
            elif kind == STR:
                view = cols[k, ADDR] + i * 16
                ln = np.int64(int32_at(view)[0])
                if ln <= 12:  # inline in the view
                    src = view + 4
                else:
                    b = np.int64(int32_at(view)[2])
                    off = np.int64(int32_at(view)[3])
                    s = cols[k, SLOT]
                    if b < 0 or b >= nbufs or off < 0 or off + ln > sizes[s, b]:
                        return -1
                    src = addrs[s, b] + off
                if ln < 0:
                    return -1
                p = put_str(out, out_addr, p, src, ln)
            elif kind == BOOL:
                if _bit(cols[k, ADDR], cols[k, VALUE_BIT] + i):
                    out[p], out[p + 1], out[p + 2], out[p + 3] = 116, 114, 117, 101  # true
                    p += 4
                else:
                    out[p], out[p + 1], out[p + 2] = 102, 97, 108  # fal
                    out[p + 3], out[p + 4] = 115, 101  # se
                    p += 5
            elif kind == CONST:
                copy_bytes(out_addr + p, lit.ctypes.data, len(lit))
                p += len(lit)
            out[p] = _LF if k == ncols - 1 else _COMMA
            p += 1
    return p
