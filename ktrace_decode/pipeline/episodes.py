"""Events -> invalidation episodes (one row per episode of a nodeid, schema.INVALIDATIONS).

The rules (the emitter implements the same ones in plain Python; the two must
agree cell by cell):

1. Per kernel nodeid, its start / write_error / pages_error / end events in
   merged order (time_us, cpu, seq).  With no episode open, any of them opens
   one; a start counts an attempt, and gives start_us/start_cpu only if it is
   the opening event (a retry's start is not the beginning of the episode);
   errors count and set last_err; end sets end_us/end_cpu and closes it.
2. Each pending / waiting event at time t goes to the earliest episode of its
   nodeid with end_us >= t; else to the nodeid's last episode if it is still
   open; else to one new episode (no start, no end) shared by all such events
   of that nodeid.
3. first_seen_us = min(start_us, pending/waiting times); duration = end - start;
   max_open_wait_us = max(end_us - t) over its waiting events.
4. status: no end -> in_progress; no start -> no_start; else complete.
5. lost_overlap: a drop window (w0, w1) overlaps [lo, hi] (lo = first_seen,
   else start, else -inf; hi = end, else +inf) iff w0 <= hi and w1 >= lo.

Everything is vectorised, over one frame of the patch's events sorted by
(nodeid, time_us, cpu, seq): an episode's events are then consecutive rows,
so an episode opens where the nodeid changes or the previous row is an end,
and its fields are read at its opening and closing rows (running counts,
gathers) instead of through window functions and group-bys.  Pending/waiting
events are placed with an as-of join on end_us by nodeid, and the overlap
test is one more as-of join against a suffix minimum.

:func:`compiled` gives the same frame from collected events by a compiled
loop (:mod:`._episodes_jit`): a big export's end waits for its episodes.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import polars as pl

from .. import jit_loops, schema

ORDER = ("time_us", "cpu", "seq")
STATE_EVENTS = ("start", "write_error", "pages_error", "end")
ERROR_EVENTS = ("write_error", "pages_error")
ATTACHED_EVENTS = ("pending", "waiting")
#: The patch's events, numbered in this order by the compiled loop (_episodes_jit).
PATCH_ORDER = (*STATE_EVENTS, *ATTACHED_EVENTS)
#: Patch events from which :func:`compiled` loads numba if nothing has yet
#: (its load, ~0.3 s, costs more than the plan on fewer).
COMPILED_MIN_ROWS = 200_000

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1
_EP = pl.UInt32  # episode number within a nodeid, 1-based


def _in_order() -> pl.Expr:
    """Are the rows in (time_us, cpu, seq) order?"""
    t, c, q = pl.col("time_us"), pl.col("cpu"), pl.col("seq")
    nt, nc, nq = t.shift(-1), c.shift(-1), q.shift(-1)
    return ((t < nt) | ((t == nt) & ((c < nc) | ((c == nc) & (q <= nq))))).fill_null(True).all()


def _node_order(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` sorted by (nodeid, time_us, cpu, seq).

    Events arrive in merged time order (a streamed export's, or decode()'s
    global sort), so a stable sort on the nodeid alone gives that order, at
    a fifth of the cost of the four-key sort, which stays for any other input.
    """
    if df.select(_in_order()).item():
        return df.sort("nodeid", maintain_order=True)
    return df.sort("nodeid", *ORDER)


def patch_events(events: pl.LazyFrame) -> pl.LazyFrame:
    """The events the episodes are built from, with a nodeid, sorted by
    (nodeid, time_us, cpu, seq)."""
    return (events.filter(pl.col("event").is_in((*STATE_EVENTS, *ATTACHED_EVENTS))
                          & pl.col("nodeid").is_not_null())
            .select(*ORDER, "event", "nodeid", "err")
            .map_batches(_node_order).cache())


def state_episodes(patch: pl.LazyFrame) -> pl.LazyFrame:
    """Rule 1: episodes from the work function's events (of :func:`patch_events`),
    one row per (nodeid, ep), in that order."""
    ev = pl.col("event")
    node_first = (pl.col("nodeid") != pl.col("nodeid").shift(1)).fill_null(True)
    state = patch.filter(ev.is_in(STATE_EVENTS)).with_row_index("__i").with_columns(
        node_first.alias("__first"),
        # An event opens an episode if it is the nodeid's first, or follows an end.
        (node_first | (ev.shift(1) == "end").fill_null(True)).alias("__open"),
    )
    opens = pl.col("__open")
    g = opens.cast(_EP).cum_sum()  # episodes opened so far, over all nodeids
    state = state.with_columns(
        (g - pl.when(pl.col("__first")).then(g).forward_fill() + 1).cast(_EP).alias("ep"),
        # The row of the episode's opening event, and of its latest error.
        pl.when(opens).then(pl.col("__i")).forward_fill().alias("__at"),
        pl.when(ev.is_in(ERROR_EVENTS)).then(pl.col("__i")).forward_fill().alias("__err_at"),
    )
    at, err_at = pl.col("__at"), pl.col("__err_at")

    def count(name: str) -> pl.Expr:
        # Events of ``name`` up to this row, minus those before the opening row.
        hit = (ev == name).cast(pl.UInt32)
        return hit.cum_sum() - (hit.cum_sum() - hit).gather(at)

    starts = ev.gather(at) == "start"
    ends = ev == "end"
    return state.with_columns(
        pl.when(starts).then(pl.col("time_us").gather(at)).alias("start_us"),
        pl.when(starts).then(pl.col("cpu").gather(at)).alias("start_cpu"),
        pl.when(ends).then(pl.col("time_us")).alias("end_us"),
        pl.when(ends).then(pl.col("cpu")).alias("end_cpu"),
        count("start").alias("attempts"),
        count("write_error").alias("write_errors"),
        count("pages_error").alias("pages_errors"),
        pl.when(err_at >= at).then(pl.col("err").gather(err_at)).alias("last_err"),
        # The episode's last row: the next row opens another one (or there is none).
        opens.shift(-1).fill_null(True).alias("__close"),
    ).filter(pl.col("__close")).select(
        "nodeid", "ep", "start_us", "start_cpu", "end_us", "end_cpu", "attempts",
        "write_errors", "pages_errors", "last_err")


def attach(patch: pl.LazyFrame, eps: pl.LazyFrame) -> pl.LazyFrame:
    """Rule 2: the episode number of every pending/waiting event (nodeid, ep,
    event, time_us), from :func:`patch_events` and :func:`state_episodes`."""
    pw = patch.filter(pl.col("event").is_in(ATTACHED_EVENTS)).select(*ORDER, "event", "nodeid")
    nid, end = pl.col("nodeid"), pl.col("end_us")
    # Episodes of a nodeid are disjoint and in time order, so end_us never
    # decreases with ep; among equal end_us the earliest episode must win,
    # which is what keeping the first (nodeid, end_us) does.
    closed = (
        eps.filter(end.is_not_null())
        .filter(((nid != nid.shift(1)) | (end != end.shift(1))).fill_null(True))
        .select("nodeid", "end_us", pl.col("ep").alias("closed_ep"))
    )
    last = eps.filter((nid != nid.shift(-1)).fill_null(True)).select(
        "nodeid", pl.col("ep").alias("last_ep"), end.is_null().alias("last_open"))
    # Both sides are sorted by nodeid, then time: the as-of join needs its
    # keys sorted within each nodeid only.
    return (
        pw.join_asof(closed, left_on="time_us", right_on="end_us", by="nodeid",
                     strategy="forward", check_sortedness=False, coalesce=False)
        .join(last, on="nodeid", how="left")
        .select(
            "nodeid", "event", "time_us",
            pl.coalesce(
                "closed_ep",
                pl.when(pl.col("last_open")).then(pl.col("last_ep")),
                # A new episode after the nodeid's last one, shared by all the
                # nodeid's unmatched events (they all get the same number).
                pl.col("last_ep").fill_null(0) + 1,
            ).cast(_EP).alias("ep"),
        )
    )


def lost_overlap(eps: pl.LazyFrame, windows: pl.LazyFrame) -> pl.LazyFrame:
    """Rule 5: adds ``lost_overlap`` to episodes that have first_seen_us/start_us/end_us.

    Some window overlaps [lo, hi] iff, among the windows with w1 >= lo, the
    smallest w0 is <= hi.  Windows sorted by w1 with a suffix minimum of w0
    answer that with one forward as-of join on lo.
    """
    wins = (
        windows.select(
            pl.col("before_us").cast(pl.Int64).alias("w1"),
            pl.col("after_us").cast(pl.Int64).fill_null(_I64_MIN).alias("w0"),
        )
        # One row per w1, so a forward as-of join cannot land in the middle of ties.
        .group_by("w1").agg(pl.col("w0").min())
        .sort("w1")
        .with_columns(pl.col("w0").cum_min(reverse=True).alias("min_w0"))
        .select("w1", "min_w0")
    )
    lo = pl.coalesce("first_seen_us", "start_us").cast(pl.Int64).fill_null(_I64_MIN)
    hi = pl.col("end_us").cast(pl.Int64).fill_null(_I64_MAX)
    return (
        eps.with_columns(lo.alias("__lo"), hi.alias("__hi"))
        .sort("__lo")
        .join_asof(wins, left_on="__lo", right_on="w1", strategy="forward",
                   check_sortedness=False)
        .with_columns((pl.col("min_w0") <= pl.col("__hi")).fill_null(False).alias("lost_overlap"))
        .drop("__lo", "__hi", "w1", "min_w0")
    )


def episodes(events: pl.LazyFrame, windows: pl.LazyFrame) -> pl.LazyFrame:
    """Events (schema.EVENTS) + drop windows (decode.drop_windows) -> schema.INVALIDATIONS,
    sorted by (nodeid, episode order)."""
    patch = patch_events(events)
    eps = state_episodes(patch)
    pw = attach(patch, eps)
    waiting_t = pl.col("time_us").filter(pl.col("event") == "waiting")
    pw_agg = pw.group_by("nodeid", "ep").agg(
        pl.col("time_us").min().alias("pw_first_us"),
        (pl.col("event") == "pending").sum().cast(pl.UInt32).alias("pending_files"),
        (pl.col("event") == "waiting").sum().cast(pl.UInt32).alias("blocked_opens"),
        waiting_t.min().alias("first_wait_us"),
    )
    counts = ("attempts", "write_errors", "pages_errors", "pending_files", "blocked_opens")
    end = pl.col("end_us").cast(pl.Int64)
    full = (
        eps.join(pw_agg, on=["nodeid", "ep"], how="full", coalesce=True)
        .with_columns(
            *(pl.col(c).fill_null(0) for c in counts),
            pl.min_horizontal("start_us", "pw_first_us").alias("first_seen_us"),
            (end - pl.col("start_us").cast(pl.Int64)).alias("duration_us"),
            # max(end - t) over waiting events is end - (earliest waiting t).
            (end - pl.col("first_wait_us").cast(pl.Int64)).alias("max_open_wait_us"),
            pl.when(pl.col("end_us").is_null()).then(pl.lit("in_progress"))
            .when(pl.col("start_us").is_null()).then(pl.lit("no_start"))
            .otherwise(pl.lit("complete")).alias("status"),
            pl.when(pl.col("nodeid") >= 1).then(pl.col("nodeid") - 1).alias("userspace_id"),
        )
    )
    return (
        lost_overlap(full, windows)
        .sort("nodeid", "ep")
        .select([pl.col(n).cast(t) for n, t in schema.INVALIDATIONS.items()])
    )


def _loop() -> Any:
    return jit_loops.load("_episodes_jit")


def compiled(events: pl.DataFrame, windows: pl.DataFrame) -> pl.DataFrame | None:
    """:func:`episodes` of collected events and windows, by a compiled loop
    (:mod:`._episodes_jit`); None where numba is missing, or not loaded and
    the events too few to pay for loading it (use :func:`episodes`).

    The same frame (a test compares them, and both with a plain-Python
    statement of the rules).  Why a second path: a big export's end waits
    for its episodes, and the plan's sorts, joins and window functions took
    0.57 s of a 10M-record export's (in slices, to bound its memory); this
    is a radix sort of the events on their nodeid and two passes over them.
    """
    if ((events.height < COMPILED_MIN_ROWS and "numba" not in sys.modules)
            or _loop() is None):
        return None
    jit = _loop()
    if not _kept(events.schema["event"]):
        # A whole events frame (analyze_decoded's): only the patch's events
        # are copied out of it below, not every record's.
        events = events.filter(pl.col("event").is_in(PATCH_ORDER))
    if not events.select(_in_order()).item():
        # Rarely (a CPU's clock going back): merged order first, so that the
        # stable sort on the nodeid below gives (nodeid, time_us, cpu, seq).
        events = events.sort(*ORDER)
    code = events.select(_codes(events.schema["event"], jit.NONE)).to_series().to_numpy()
    nodeid = events["nodeid"].fill_null(0).to_numpy()
    present = nodeid[code != jit.NONE]
    lo = int(present.min()) if len(present) else 0
    passes = -(-(int(present.max()) - lo).bit_length() // jit.RADIX_BITS) if len(present) else 0
    m = len(present)
    del present
    err = events["err"]
    columns = (events["time_us"].to_numpy(), events["cpu"].to_numpy(), code, nodeid,
               err.fill_null(0).to_numpy(), err.is_not_null().to_numpy())
    del code, nodeid, err
    counts = np.empty(1 << jit.RADIX_BITS, np.int64)
    sets = [tuple(np.empty(m, c.dtype) for c in columns)]
    jit.first_pass(*columns, np.uint64(lo), *sets[0], counts)
    del columns  # (~55 MB for a 10M-record export's 2.3M events)
    if passes > 1:
        sets.append(tuple(np.empty(m, a.dtype) for a in sets[0]))
    ordered = sets[jit.sort_events(m, np.uint64(lo), passes, *sets[0], *sets[-1], counts)]
    del sets
    rows = jit.count_episodes(ordered[2], ordered[3])
    out = {name: np.empty(rows, dtype) for name, dtype in _LOOP_COLUMNS.items()}
    k = jit.fill_episodes(*ordered, *out.values())
    del ordered
    return _episode_frame({name: a[:k] for name, a in out.items()}, windows, jit)


def _kept(event: pl.DataType) -> bool:
    """Is ``event`` an Enum of PATCH_ORDER (a streamed export's kept events)?"""
    return isinstance(event, pl.Enum) and tuple(event.categories.to_list()) == PATCH_ORDER


def _codes(event: pl.DataType, none: int) -> pl.Expr:
    """The loop's event code of every row (UInt8): the position in
    PATCH_ORDER, ``none`` for other events and rows without a nodeid."""
    if _kept(event):
        code = pl.col("event").to_physical().cast(pl.UInt8)
    else:
        code = pl.col("event").cast(pl.String).replace_strict(
            {name: i for i, name in enumerate(PATCH_ORDER)}, default=none,
            return_dtype=pl.UInt8)
    return (pl.when(pl.col("nodeid").is_not_null() & pl.col("event").is_not_null())
            .then(code).otherwise(pl.lit(none, pl.UInt8)).alias("code"))


#: The loop's output arrays, in fill_episodes' argument order.
_LOOP_COLUMNS: dict[str, Any] = {
    "nodeid": np.uint64, "start_us": np.uint64, "start_cpu": np.uint16,
    "end_us": np.uint64, "end_cpu": np.uint16, "attempts": np.uint32,
    "write_errors": np.uint32, "pages_errors": np.uint32, "last_err": np.int32,
    "pending_files": np.uint32, "blocked_opens": np.uint32,
    "attached_first": np.uint64, "wait_first": np.uint64, "has": np.uint8,
}


def _episode_frame(out: dict[str, np.ndarray], windows: pl.DataFrame, jit: Any
                   ) -> pl.DataFrame:
    """schema.INVALIDATIONS from the loop's rows (rules 3-5)."""
    has = out.pop("has")
    bit = {name: (has & getattr(jit, name)) != 0
           for name in ("HAS_START", "HAS_END", "HAS_ERR", "HAS_ATTACHED", "HAS_WAIT")}
    start, end = out["start_us"], out["end_us"]
    att, hs, he = out.pop("attached_first"), bit["HAS_START"], bit["HAS_END"]
    seen = bit["HAS_START"] | bit["HAS_ATTACHED"]
    first_seen = np.where(hs & bit["HAS_ATTACHED"], np.minimum(start, att),
                          np.where(hs, start, att))
    end64 = end.astype(np.int64)
    nodeid = out["nodeid"]
    values: dict[str, tuple[np.ndarray, np.ndarray | None]] = {
        **{name: (a, None) for name, a in out.items()},
        "userspace_id": (nodeid - 1, nodeid >= 1),
        "first_seen_us": (first_seen, seen),
        "duration_us": (end64 - start.astype(np.int64), hs & he),
        "max_open_wait_us": (end64 - out["wait_first"].astype(np.int64),
                             he & bit["HAS_WAIT"]),
        "lost_overlap": (_lost_overlap(np.where(seen, first_seen.astype(np.int64), _I64_MIN),
                                       np.where(he, end64, _I64_MAX), windows), None),
    }
    for name, valid in (("start_us", hs), ("start_cpu", hs), ("end_us", he), ("end_cpu", he),
                        ("last_err", bit["HAS_ERR"])):
        values[name] = (values[name][0], valid)
    del values["wait_first"]
    # status: no end -> in_progress; no start -> no_start; else complete.
    status = pl.Series("status", schema.STATUSES).gather(np.where(~he, 1, np.where(~hs, 2, 0)))
    frame = pl.DataFrame(
        [status]
        + [pl.Series(name, a) for name, (a, _) in values.items()]
        + [pl.Series(f"__valid_{name}", v) for name, (_, v) in values.items() if v is not None])

    def column(name: str) -> pl.Expr:
        valid = values[name][1] if name in values else None
        return pl.col(name) if valid is None else (
            pl.when(pl.col(f"__valid_{name}")).then(pl.col(name)).alias(name))

    return frame.select(column(name).cast(dtype) for name, dtype in schema.INVALIDATIONS.items())


def _lost_overlap(lo: np.ndarray, hi: np.ndarray, windows: pl.DataFrame) -> np.ndarray:
    """Rule 5 for each [lo, hi] (Int64, open ends as the type's limits), as in
    :func:`lost_overlap`: among the windows with w1 >= lo, the smallest w0 is
    <= hi."""
    w = (windows.filter(pl.col("before_us").is_not_null())
         .select(pl.col("before_us").cast(pl.Int64).alias("w1"),
                 pl.col("after_us").cast(pl.Int64).fill_null(_I64_MIN).alias("w0"))
         .sort("w1"))
    lost = np.zeros(len(lo), bool)
    if w.is_empty():
        return lost
    w1 = w["w1"].to_numpy()
    min_w0 = np.minimum.accumulate(w["w0"].to_numpy()[::-1])[::-1]
    i = np.searchsorted(w1, lo, side="left")
    inside = i < len(w1)
    lost[inside] = min_w0[i[inside]] <= hi[inside]
    return lost
