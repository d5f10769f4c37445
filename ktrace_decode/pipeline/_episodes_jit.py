"""The compiled loop of :func:`.episodes.episodes_of` (imported only when numba is wanted).

Kept apart, like :mod:`._bytematch_jit`, so that importing :mod:`.episodes`
never imports numba.  The rules are :mod:`.episodes`' (its module doc);
here they are one walk over the patch's events in (nodeid, time_us, cpu,
seq) order, a nodeid at a time: its work-function events open, count and
close episodes, then its pending/waiting events are placed with a pointer
that only moves forward (both they and the closed episodes' end_us are in
time order).  Two passes: the first bounds the episodes (at most one row
more per nodeid), so that the caller allocates about their rows; a bound of
one row per event would cost ~200 MB at a 10M-record export's peak.
"""

from __future__ import annotations

from numba import njit

#: The sources this loop is compiled from besides this file, and a hash of
#: their bytes (sha256, in this order).  numba's on-disk cache checks only
#: this file's content, so an edit there must change this hash, or a stale
#: loop would be loaded; tests/pipeline/test_jit_sources.py fails until it does.
BUILT_FROM = ()
BUILT_FROM_SHA256 = "e3b0c44298fc1c14"

# Event codes: positions in episodes.PATCH_ORDER (start, write_error,
# pages_error, end, pending, waiting); literals here, checked by a test.
# NONE: any other event, or one without a nodeid (not in the order).
START, WRITE_ERROR, PAGES_ERROR, END, PENDING, WAITING, NONE = 0, 1, 2, 3, 4, 5, 255
#: Bits of the nodeid sorted per pass of :func:`nodeid_order` (2048 counters,
#: within the first-level cache).
RADIX_BITS = 11
# Bits of ``has``: which of an episode's nullable fields are set.
HAS_START, HAS_END, HAS_ERR, HAS_ATTACHED, HAS_WAIT = 1, 2, 4, 8, 16


@njit(cache=True, nogil=True, _nrt=False)
def nodeid_order(code, nodeid, lo, passes, order, tmp, counts):  # type: ignore[no-untyped-def]
    """The rows whose code is not NONE, stably sorted by nodeid: an LSD radix
    sort, ``passes`` of RADIX_BITS bits of ``nodeid - lo``, ping-ponging
    between ``order`` and ``tmp``.  Returns (rows, 0 if the result is in
    ``order`` else 1).  Stable, so events in merged order come out in
    (nodeid, time_us, cpu, seq) order -- what Polars' sort took ~90 ms for
    (2.3M events), with a copy of the columns."""
    m = 0
    for i in range(len(code)):
        if code[i] != NONE:
            order[m] = i
            m += 1
    src, dst = order, tmp
    mask = (1 << RADIX_BITS) - 1
    for p in range(passes):
        shift = p * RADIX_BITS
        counts[:] = 0
        for i in range(m):
            counts[((nodeid[src[i]] - lo) >> shift) & mask] += 1
        total = 0
        for d in range(mask + 1):
            c = counts[d]
            counts[d] = total
            total += c
        for i in range(m):
            r = src[i]
            d = ((nodeid[r] - lo) >> shift) & mask
            dst[counts[d]] = r
            counts[d] += 1
        src, dst = dst, src
    return m, passes % 2


@njit(cache=True, nogil=True, _nrt=False)
def gather(order, time_us, cpu, code, nodeid, err, err_valid,  # type: ignore[no-untyped-def]
           s_time, s_cpu, s_code, s_nodeid, s_err, s_err_valid):
    """The events' columns in ``order``: read once at random here, where the
    two passes over them read them in sequence (85 -> ~10 ms for 2.3M
    events, reading through ``order`` in each pass)."""
    for i in range(len(order)):
        r = order[i]
        s_time[i], s_cpu[i], s_code[i] = time_us[r], cpu[r], code[r]
        s_nodeid[i], s_err[i], s_err_valid[i] = nodeid[r], err[r], err_valid[r]


@njit(cache=True, nogil=True, _nrt=False)
def count_episodes(code, nodeid):  # type: ignore[no-untyped-def]
    """A bound on the rows :func:`fill_episodes` fills: the episodes the
    work-function events open, plus one per nodeid with pending/waiting
    events (its possible extra episode)."""
    n = len(code)
    total = 0
    a = 0
    while a < n:
        node = nodeid[a]
        is_open = False
        attached = False
        b = a
        while b < n and nodeid[b] == node:
            c = code[b]
            if c > END:
                attached = True
            elif not is_open:
                total += 1
                is_open = c != END
            elif c == END:
                is_open = False
            b += 1
        total += attached
        a = b
    return total


@njit(cache=True, nogil=True, _nrt=False)
def fill_episodes(time_us, cpu, code, nodeid, err, err_valid,  # type: ignore[no-untyped-def]
                  out_nodeid, start_us, start_cpu, end_us, end_cpu, attempts,
                  write_errors, pages_errors, last_err, pending, blocked,
                  attached_first, wait_first, has):
    """Fill one row per episode of the events (in (nodeid, time_us, cpu, seq)
    order, see :func:`gather`): episode order within each nodeid, nodeids in
    the events' order.  The number of rows filled."""
    n = len(code)
    k = 0
    a = 0
    while a < n:
        node = nodeid[a]
        b = a
        while b < n and nodeid[b] == node:
            b += 1
        first = k  # the nodeid's episodes are rows first .. k - 1
        is_open = False
        for r in range(a, b):
            c = code[r]
            if c > END:
                continue
            if not is_open:
                out_nodeid[k] = node
                has[k] = 0
                attempts[k] = write_errors[k] = pages_errors[k] = 0
                pending[k] = blocked[k] = 0
                if c == START:
                    start_us[k], start_cpu[k] = time_us[r], cpu[r]
                    has[k] |= HAS_START
                k += 1
                is_open = True
            e = k - 1
            if c == START:
                attempts[e] += 1
            elif c == END:
                end_us[e], end_cpu[e] = time_us[r], cpu[r]
                has[e] |= HAS_END
                is_open = False
            else:
                if c == WRITE_ERROR:
                    write_errors[e] += 1
                else:
                    pages_errors[e] += 1
                if err_valid[r]:
                    last_err[e] = err[r]
                    has[e] |= HAS_ERR
                else:
                    has[e] &= ~HAS_ERR
        # Each pending/waiting event goes to the earliest episode with
        # end_us >= t; else to the last one if still open; else to one extra
        # episode shared by all such events of the nodeid.
        p = first
        extra = -1
        for r in range(a, b):
            c = code[r]
            if c <= END:
                continue
            t = time_us[r]
            while p < k and not (has[p] & HAS_END and end_us[p] >= t):
                p += 1
            if p < k:
                e = p
            elif k > first and not has[k - 1] & HAS_END:
                e = k - 1
            else:
                if extra < 0:
                    extra = k
                    out_nodeid[k] = node
                    has[k] = 0
                    attempts[k] = write_errors[k] = pages_errors[k] = 0
                    pending[k] = blocked[k] = 0
                    k += 1
                e = extra
            if not has[e] & HAS_ATTACHED or t < attached_first[e]:
                attached_first[e] = t
                has[e] |= HAS_ATTACHED
            if c == PENDING:
                pending[e] += 1
            else:
                blocked[e] += 1
                if not has[e] & HAS_WAIT or t < wait_first[e]:
                    wait_first[e] = t
                    has[e] |= HAS_WAIT
        a = b
    return k
