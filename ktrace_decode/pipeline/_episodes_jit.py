"""The compiled loops of :func:`.episodes.compiled` (imported only when numba is wanted).

Kept apart, like :mod:`._bytematch_jit`, so that importing :mod:`.episodes`
never imports numba.  The rules are :mod:`.episodes`' (its module doc).
The events are first put in (nodeid, time_us, cpu, seq) order by a radix
sort that moves whole events (:func:`first_pass`, :func:`sort_events`);
then each nodeid's events are walked: its work-function events open, count
and close episodes, then its pending/waiting events are placed with a
pointer that only moves forward (both they and the closed episodes' end_us
are in time order).  :func:`count_episodes` bounds the episodes first (at
most one row more per nodeid), so that the caller allocates about their
rows; a bound of one row per event would cost ~200 MB at a 10M-record
export's peak.
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
#: Bits of the nodeid sorted per pass of :func:`sort_events` (2048 counters,
#: within the first-level cache).
RADIX_BITS = 11
# Bits of ``has``: which of an episode's nullable fields are set.
HAS_START, HAS_END, HAS_ERR, HAS_ATTACHED, HAS_WAIT = 1, 2, 4, 8, 16


@njit(cache=True, nogil=True, _nrt=False)
def first_pass(time_us, cpu, code, nodeid, err, err_valid, lo,  # type: ignore[no-untyped-def]
               a_time, a_cpu, a_code, a_nodeid, a_err, a_valid, counts):
    """The first pass of :func:`sort_events`: the events whose code is not
    NONE, stably sorted on the lowest RADIX_BITS of ``nodeid - lo``, into
    set ``a``.  The number of events.  (Its own call, so that the caller can
    let go of the input columns before the other passes.)"""
    mask = (1 << RADIX_BITS) - 1
    counts[:] = 0
    for i in range(len(code)):
        if code[i] != NONE:
            counts[(nodeid[i] - lo) & mask] += 1
    m = 0
    for d in range(mask + 1):
        c = counts[d]
        counts[d] = m
        m += c
    for i in range(len(code)):
        if code[i] != NONE:
            d = (nodeid[i] - lo) & mask
            j = counts[d]
            counts[d] = j + 1
            a_time[j], a_cpu[j], a_code[j] = time_us[i], cpu[i], code[i]
            a_nodeid[j], a_err[j], a_valid[j] = nodeid[i], err[i], err_valid[i]
    return m


@njit(cache=True, nogil=True, _nrt=False)
def sort_events(m, lo, passes,  # type: ignore[no-untyped-def]
                a_time, a_cpu, a_code, a_nodeid, a_err, a_valid,
                b_time, b_cpu, b_code, b_nodeid, b_err, b_valid, counts):
    """Passes 1 .. ``passes - 1`` of an LSD radix sort of the ``m`` events in
    set ``a`` (after :func:`first_pass`) on RADIX_BITS bits of ``nodeid - lo``
    each, moving whole events between sets ``a`` and ``b``.  0 if the
    result is in ``a``, else 1.

    Stable, so events in merged order come out in (nodeid, time_us, cpu,
    seq) order.  Every pass reads its input in sequence and writes 2048
    runs in sequence: sorting row numbers, then reading the columns through
    them, took a cache miss per column and event (130 against ~40 ms for
    2.3M events); Polars' sort of the frame took ~90 ms and a copy.
    """
    for p in range(1, passes):
        if p % 2 == 1:
            _radix_pass(m, p * RADIX_BITS, lo, counts, a_time, a_cpu, a_code, a_nodeid, a_err,
                        a_valid, b_time, b_cpu, b_code, b_nodeid, b_err, b_valid)
        else:
            _radix_pass(m, p * RADIX_BITS, lo, counts, b_time, b_cpu, b_code, b_nodeid, b_err,
                        b_valid, a_time, a_cpu, a_code, a_nodeid, a_err, a_valid)
    return (max(passes, 1) - 1) % 2


@njit(cache=True, nogil=True, _nrt=False)
def _radix_pass(m, shift, lo, counts, time_us, cpu, code, nodeid, err,  # type: ignore[no-untyped-def]
                err_valid, o_time, o_cpu, o_code, o_nodeid, o_err, o_valid):
    """One stable counting-sort pass of the first ``m`` events on digit
    ``(nodeid - lo) >> shift`` into the ``o_`` arrays."""
    mask = (1 << RADIX_BITS) - 1
    counts[:] = 0
    for i in range(m):
        counts[((nodeid[i] - lo) >> shift) & mask] += 1
    total = 0
    for d in range(mask + 1):
        c = counts[d]
        counts[d] = total
        total += c
    for i in range(m):
        d = ((nodeid[i] - lo) >> shift) & mask
        j = counts[d]
        counts[d] = j + 1
        o_time[j], o_cpu[j], o_code[j] = time_us[i], cpu[i], code[i]
        o_nodeid[j], o_err[j], o_valid[j] = nodeid[i], err[i], err_valid[i]


@njit(cache=True, nogil=True, _nrt=False)
def count_episodes(code, nodeid):  # type: ignore[no-untyped-def]
    """A bound on the rows :func:`fill_episodes` fills: the episodes the
    work-function events open, plus one per nodeid with pending/waiting
    events (its possible extra episode)."""
    total = 0
    a = 0
    while a < len(code):
        b = _group_end(nodeid, a)
        is_open = False
        attached = False
        for r in range(a, b):
            c = code[r]
            if c > END:
                attached = True
            elif not is_open:
                total += 1
                is_open = c != END
            elif c == END:
                is_open = False
        total += attached
        a = b
    return total


@njit(cache=True, nogil=True, _nrt=False)
def _group_end(nodeid, a):  # type: ignore[no-untyped-def]
    """The end of the run of equal nodeids that starts at row ``a``."""
    b = a + 1
    while b < len(nodeid) and nodeid[b] == nodeid[a]:
        b += 1
    return b


@njit(cache=True, nogil=True, _nrt=False)
def fill_episodes(time_us, cpu, code, nodeid, err, err_valid,  # type: ignore[no-untyped-def]
                  out_nodeid, start_us, start_cpu, end_us, end_cpu, attempts,
                  write_errors, pages_errors, last_err, pending, blocked,
                  attached_first, wait_first, has):
    """Fill one row per episode of the events (in (nodeid, time_us, cpu, seq)
    order, see :func:`sort_events`): episode order within each nodeid, nodeids in
    the events' order.  The number of rows filled."""
    k = 0
    a = 0
    while a < len(code):
        node = nodeid[a]
        b = _group_end(nodeid, a)
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
