"""The compiled loop of :mod:`.bytematch` (imported only when numba is wanted).

Kept apart so that importing :mod:`.bytematch` never imports numba; the
opcodes and tables are described there.

One function body, no calls and no reference counting (``_nrt=False``):
numba passes arrays to a helper it does not inline as structs, with a
reference count update for each, which made a first version with a helper
per step four times slower.  The programs are run by a small backtracking
loop (the only backtracking point is the one lazy ``%s``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .bytematch import HEXL, HEXU, INT, LIT, MAX_DIGITS, PTR, STR, UINT


@njit(cache=True, nogil=True, _nrt=False)
def match_rows(views, valid, data, which, pool, funcs, spans, ops,  # type: ignore[no-untyped-def]
               code, func_len, values, present, defer, func_views, tmp):
    """Match the rows whose text lies in ``data``: buffer number ``which`` of
    the views, or the views themselves (inline texts) for ``which`` -1."""
    for i in range(len(valid)):
        if not valid[i]:
            continue
        b = i * 16
        n = (np.int64(views[b]) | (np.int64(views[b + 1]) << 8)
             | (np.int64(views[b + 2]) << 16) | (np.int64(views[b + 3]) << 24))
        if n <= 12:
            if which >= 0:
                continue
            s = b + 4
        else:
            bi = (np.int64(views[b + 8]) | (np.int64(views[b + 9]) << 8)
                  | (np.int64(views[b + 10]) << 16) | (np.int64(views[b + 11]) << 24))
            if bi != which:
                continue
            s = (np.int64(views[b + 12]) | (np.int64(views[b + 13]) << 8)
                 | (np.int64(views[b + 14]) << 16) | (np.int64(views[b + 15]) << 24))
        end = s + n
        # The function: the text before the first ": " (str.splitn, str.partition).
        k = -1
        for j in range(s, end - 1):
            if data[j] == 58 and data[j + 1] == 32:
                k = j - s
                break
        if k < 0:
            continue
        func_len[i] = k
        func_views[i, 0] = k & 0xFF
        func_views[i, 1] = (k >> 8) & 0xFF
        func_views[i, 2] = (k >> 16) & 0xFF
        func_views[i, 3] = (k >> 24) & 0xFF
        if k <= 12:
            for j in range(k):
                func_views[i, 4 + j] = data[s + j]
        else:  # the same start as the text: its prefix, buffer and offset
            for j in range(4, 16):
                func_views[i, j] = views[b + j]
        for m in range(funcs.shape[0]):
            if funcs[m, 1] != k:
                continue
            fo = funcs[m, 0]
            same = True
            for j in range(k):
                if data[s + j] != pool[fo + j]:
                    same = False
                    break
            if not same:
                continue
            result = _run(data, s + k + 2, end, ops, spans[m, 0], spans[m, 1], pool, tmp)
            if result == 2:
                defer[i] = True
            elif result == 1:
                code[i] = m
                for q in range(spans[m, 0], spans[m, 1]):
                    slot = ops[q, 3]
                    if slot >= 0:
                        values[i, slot] = tmp[slot]
                        present[i, slot] = True
            if result != 0:
                break
    return 0


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _run(data, pos, end, ops, st, stop, pool, tmp):  # type: ignore[no-untyped-def]
    """Does the program ops[st:stop] match data[pos:end] whole?  1 yes, 0 no,
    2 defer to the regexes."""
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
                if pos + ln > end:
                    fail = True
                else:
                    for j in range(ln):
                        if data[pos + j] != pool[a + j]:
                            fail = True
                            break
                    pos += ln
            elif op in (INT, UINT):
                p = pos
                neg = False
                if op == INT and p < end and data[p] == 45:  # '-'
                    neg = True
                    p += 1
                digits = p
                v = 0
                while p < end and 48 <= data[p] <= 57:
                    if p - digits < MAX_DIGITS:
                        v = v * 10 + (np.int64(data[p]) - 48)
                    p += 1
                slot = ops[st, 3]
                if p == digits:
                    fail = True
                elif slot >= 0:
                    if p - digits > MAX_DIGITS:
                        return 2  # an overflow is for Polars' cast to decide
                    tmp[slot] = -v if neg else v
                pos = p
            elif op == PTR and pos < end and data[pos] == 40:  # '(': (null) or (ptrval)
                a = ops[st, 1]  # "(null)(ptrval)" in the pool
                ln = 6 if pos + 6 <= end else 0
                for j in range(ln):
                    if data[pos + j] != pool[a + j]:
                        ln = 0
                        break
                if ln == 0 and pos + 8 <= end:
                    ln = 8
                    for j in range(8):
                        if data[pos + j] != pool[a + 6 + j]:
                            ln = 0
                            break
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
