"""The compiled chain walk of :class:`ktrace_decode.scan.Scanner` (imported only with numba).

Kept apart, like the other loops, so that importing the scanner never
imports numba.  It follows the length chain from a record start, record
by record, as long as each record is one the vectorised scan would accept
there (:func:`ktrace_decode.scan._candidates`' ``ok_sync``): the magic, the
header and the payload inside the buffer, a time below the limit, and

* text: a NUL as its last byte, or at byte 255 of a longer payload (the
  kernel's long-message bug);
* iotimes: a payload of the header plus whole chunk-server entries;
* any other type: the buffer's end right after it, or a plausible text or
  iotimes record there.

At the first record it would not accept it stops, and the vectorised scan
takes over from there (resynchronisation is its business).  An intact
stream is thus read header by header, instead of every byte being
searched for the magic first.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._jit_memory import bytes_at, copy8, load2, load8

#: The sources this loop is compiled from besides this file, and a hash of
#: their bytes (sha256, in this order).  numba's on-disk cache checks only
#: this file's content, so an edit there must change this hash, or a stale
#: loop would be loaded; tests/pipeline/test_jit_sources.py fails until it does.
BUILT_FROM = ('_jit_memory.py',)
BUILT_FROM_SHA256 = "97f2ac1e23ba676d"

#: ``rules``: the layout facts the walk checks (given by the scanner from
#: the layout declarations).
(R_MAGIC, R_TYPE_AT, R_PDU_AT, R_TIME_AT, R_HEADER, R_TEXT, R_IOTIMES, R_IOT_HEADER,
 R_CS_SIZE, R_LOG_BUF, R_TIME_LIMIT, R_FIELDS) = range(12)


@njit(cache=True, nogil=True, _nrt=False, inline="always")
def _known(base, p, end, rules):  # type: ignore[no-untyped-def]
    """0: no plausible record at offset ``p`` of the buffer at address
    ``base``; 1: a text or iotimes one; 2: one of another type that fits
    (believed only with a plausible successor)."""
    h = rules[R_HEADER]
    if p + h > end or load2(base + p) != np.uint64(rules[R_MAGIC]):
        return 0
    pdu = np.int64(load2(base + p + rules[R_PDU_AT]))
    nxt = p + h + pdu
    if nxt > end or load8(base + p + rules[R_TIME_AT]) >= np.uint64(rules[R_TIME_LIMIT]):
        return 0
    typ = np.int64(load2(base + p + rules[R_TYPE_AT]))
    data = bytes_at(base)
    if typ == rules[R_TEXT]:
        if pdu == 0:
            return 0
        if data[nxt - 1] == 0:
            return 1
        log = rules[R_LOG_BUF]
        return 1 if pdu > log and data[p + h + log - 1] == 0 else 0
    if typ == rules[R_IOTIMES]:
        body = pdu - rules[R_IOT_HEADER]
        return 1 if body >= 0 and body % rules[R_CS_SIZE] == 0 else 0
    return 2


@njit(cache=True, nogil=True, _nrt=False)
def walk(base, pos, stop, end, rules, starts, hdr):  # type: ignore[no-untyped-def]
    """Follow the chain from offset ``pos`` of the buffer at address
    ``base`` over the records that start before ``stop`` (running on up to
    ``end`` at most): their starts and their header bytes go to ``starts``
    and ``hdr`` (rows of the header's size).  The number of records
    accepted; the position after the last one is its start plus its length."""
    h = rules[R_HEADER]
    data = bytes_at(base)
    out = hdr.ctypes.data
    n = 0
    while pos < stop and n < len(starts):
        ok = _known(base, pos, end, rules)
        if ok == 0:
            break
        nxt = pos + h + np.int64(load2(base + pos + rules[R_PDU_AT]))
        if ok == 2 and nxt != end and _known(base, nxt, end, rules) != 1:
            break
        starts[n] = pos
        if h == 16:  # the header's size today: two words
            copy8(out + 16 * n, base + pos)
            copy8(out + 16 * n + 8, base + pos + 8)
        else:
            for k in range(h):
                hdr[n, k] = data[pos + k]
        n += 1
        pos = nxt
    return n
