"""The compiled loop of :mod:`.bytematch` (imported only when numba is wanted).

Kept apart so that importing :mod:`.bytematch` never imports numba; the
opcodes and tables are described there.

One function body, no calls and no reference counting (``_nrt=False``):
numba passes arrays to a helper it does not inline as structs, with a
reference count update for each, which made a first version with a helper
per step four times slower.  So the helpers (:func:`classify_text`,
:func:`take_fields`, :func:`_run`) are inlined by numba (``inline="always"``)
into this loop and into :mod:`._fused_jit`'s, which classifies the same way.
The programs are run by a small backtracking loop (the only backtracking
point is the one lazy ``%s``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._jit_memory import (
    bytes_at,
    copy4,
    copy8,
    copy_bytes,
    count_trailing_zeros,
    find_pair16,
    int32_at,
    load8,
    same_bytes,
)
from .bytematch import HEXL, HEXU, INT, LIT, MAX_DIGITS, PTR, STR, UINT

#: The sources this loop is compiled from besides this file, and a hash of
#: their bytes (sha256, in this order).  numba's on-disk cache checks only
#: this file's content, so an edit there must change this hash, or a stale
#: loop would be loaded; tests/pipeline/test_jit_sources.py fails until it does.
BUILT_FROM = ('_jit_memory.py', 'bytematch.py')
BUILT_FROM_SHA256 = "9c95e0e2c7671599"


@njit(cache=True, nogil=True, _nrt=False)
def match_rows(n, views, valid, addrs, sizes, pool, funcs, spans, ops,  # type: ignore[no-untyped-def]
               adjust, lo, hi, code, func_len, values, present, defer, func_views, tmp):
    """Match the n texts whose Arrow views are at address ``views``: null
    where ``valid`` is False; a text of more than 12 bytes lies in data
    buffer ``addrs[b]`` of ``sizes[b]`` bytes.  A view pointing outside its
    buffer is left unmatched (no function), never read.  A field's value
    is adjusted and range-checked here (see ``compile_catalogue``)."""
    nbufs = len(addrs)
    fv_base = func_views.ctypes.data
    for i in range(n):
        if not valid[i]:
            continue
        view = views + i * 16
        ln = np.int64(int32_at(view)[0])
        if ln <= 12:
            t = view + 4
        else:
            bi = np.int64(int32_at(view)[2])
            off = np.int64(int32_at(view)[3])
            if bi < 0 or bi >= nbufs or off < 0 or off + ln > sizes[bi]:
                continue
            t = addrs[bi] + off
        if ln < 0:
            continue
        k, m, result = classify_text(t, ln, pool, funcs, spans, ops, tmp)
        if k < 0:
            continue
        func_len[i] = k
        fv = fv_base + i * 16
        int32_at(fv)[0] = np.int32(k)
        if k <= 12:
            copy_bytes(fv + 4, t, k)
        else:  # the same start as the text: its prefix, buffer and offset
            copy8(fv + 4, view + 4)
            copy4(fv + 12, view + 12)
        if result == 2:
            defer[i] = True
        elif result == 1:
            code[i] = m
            take_fields(m, spans, ops, adjust, lo, hi, tmp, values, present, i)
    return 0


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def classify_text(t, ln, pool, funcs, spans, ops, tmp):  # type: ignore[no-untyped-def]
    """The text of ``ln`` bytes at address ``t`` against the programs:
    (bytes of its function, -1 without a ": "; the message tried last, -1
    if none; 0 no match, 1 a match, 2 defer to the regexes).  On a match
    ``tmp`` holds the fields the message printed, by slot."""
    pool_base = pool.ctypes.data
    # The function: the text before the first ": " (str.splitn, str.partition).
    k = -1
    j = 0
    while j + 17 <= ln:  # 16 places at a time, reading only inside the text
        hit = find_pair16(t + j, 58, 32)
        if hit < 16:
            k = j + hit
            break
        j += 16
    if k < 0:
        data = bytes_at(t)
        for q in range(j, ln - 1):
            if data[q] == 58 and data[q + 1] == 32:
                k = q
                break
    if k < 0:
        return -1, -1, 0
    for m in range(funcs.shape[0]):
        if funcs[m, 1] != k or not same_bytes(t, pool_base + funcs[m, 0], k):
            continue
        result = _run(t, k + 2, ln, ops, spans[m, 0], spans[m, 1], pool, tmp)
        if result != 0:
            return k, m, result
    return k, -1, 0


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def take_fields(m, spans, ops, adjust, lo, hi, tmp, values, present, i):  # type: ignore[no-untyped-def]
    """Put the fields message ``m`` matched (in ``tmp``) in column ``i`` of
    ``values``/``present``: adjusted, and only within their slot's range."""
    for q in range(spans[m, 0], spans[m, 1]):
        slot = ops[q, 3]
        if slot >= 0:
            v = tmp[slot] + adjust[m, slot]  # |tmp| < 10**18: no overflow
            if lo[slot] <= v <= hi[slot]:
                values[slot, i] = v
                present[slot, i] = True


_ZEROS = np.uint64(0x3030303030303030)
_TENS = np.uint64(0x7676767676767676)  # 0x80 - 10 in every byte
_HIGHS = np.uint64(0x8080808080808080)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def digit_run(base, p, end):  # type: ignore[no-untyped-def]
    """The end of the run of ASCII digits at offset ``p`` of the text at
    ``base`` (``end`` at most): eight bytes at a time where they are all
    inside the text.  Per byte of ``w ^ "00000000"``, a digit is below 10:
    adding 0x76 leaves its top bit clear, and a byte with its top bit set
    already is flagged by the OR; a carry only ever runs into later bytes,
    so the first flagged byte is the first non-digit."""
    while p + 8 <= end:
        x = load8(base + p) ^ _ZEROS
        flags = ((x + _TENS) | x) & _HIGHS
        if flags:
            return p + (count_trailing_zeros(flags) >> 3)
        p += 8
    data = bytes_at(base)
    while p < end and 48 <= data[p] <= 57:
        p += 1
    return p


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _run(base, pos, end, ops, st, stop, pool, tmp):  # type: ignore[no-untyped-def]
    """Does the program ops[st:stop] match the text at address ``base``,
    bytes pos to end, whole?  1 yes, 0 no, 2 defer to the regexes."""
    data = bytes_at(base)
    pool_base = pool.ctypes.data
    lazy = -1  # the %s step, once reached
    trial = 0  # where the text after the %s is being tried
    first = -1  # the byte that must follow the %s (its next literal's first), if any
    while True:
        fail = False
        if st == stop:
            if pos == end:
                return 1
            fail = True
        else:
            op = ops[st, 0]
            if op == LIT:
                a = ops[st, 1]
                ln = ops[st, 2]
                if pos + ln > end or not same_bytes(base + pos, pool_base + a, ln):
                    fail = True
                pos += ln
            elif op in (INT, UINT):
                p = pos
                neg = False
                if op == INT and p < end and data[p] == 45:  # '-'
                    neg = True
                    p += 1
                digits = p
                p = digit_run(base, p, end)
                slot = ops[st, 3]
                if p == digits:
                    fail = True
                elif slot >= 0:
                    if p - digits > MAX_DIGITS:
                        return 2  # an overflow is for Polars' cast to decide
                    v = 0
                    for q in range(digits, p):
                        v = v * 10 + (np.int64(data[q]) - 48)
                    tmp[slot] = -v if neg else v
                pos = p
            elif op == PTR and pos < end and data[pos] == 40:  # '(': (null) or (ptrval)
                a = ops[st, 1]  # "(null)(ptrval)" in the pool
                ln = 0
                if pos + 6 <= end and same_bytes(base + pos, pool_base + a, 6):
                    ln = 6
                elif pos + 8 <= end and same_bytes(base + pos, pool_base + a + 6, 8):
                    ln = 8
                if ln == 0:
                    fail = True
                pos += ln
            elif op in (HEXL, HEXU, PTR):
                p = pos
                while p < end:
                    c = data[p]
                    if not (48 <= c <= 57 or (op == HEXU and 65 <= c <= 70)
                            or (op != HEXU and 97 <= c <= 102) or (op == PTR and c == 120)):
                        break
                    p += 1
                if p == pos:
                    fail = True
                pos = p
            elif op == STR:
                if st + 1 == stop:
                    return 1  # a %s at the end takes the rest, whatever it is
                lazy = st
                trial = pos
                if ops[st + 1, 0] == LIT:
                    first = pool[ops[st + 1, 1]]
                st += 1
                continue
            else:
                return 2  # DEFER, or an opcode this loop does not know
        if not fail:
            st += 1
            continue
        # Failed: the lazy %s, if reached, takes one byte more (to the next
        # place its following literal could start), and the rest is retried.
        if lazy < 0:
            return 0
        trial += 1
        while first >= 0 and trial < end and data[trial] != first:
            trial += 1
        if trial > end or (first >= 0 and trial == end):
            return 0
        pos = trial
        st = lazy + 1
