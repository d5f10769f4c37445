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

Everything is vectorised: an episode number per nodeid is a running count of
opening events, pending/waiting are placed with an as-of join on end_us, and
the overlap test is one more as-of join against a suffix minimum.
"""

from __future__ import annotations

import polars as pl

from .. import schema

ORDER = ("time_us", "cpu", "seq")
STATE_EVENTS = ("start", "write_error", "pages_error", "end")
ERROR_EVENTS = ("write_error", "pages_error")
ATTACHED_EVENTS = ("pending", "waiting")

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1
_EP = pl.UInt32  # episode number within a nodeid, 1-based


def _first_if(event: str, col: str) -> pl.Expr:
    """Inside an episode group: ``col`` of its first event if that event is ``event``."""
    return pl.when(pl.col("event").first() == event).then(pl.col(col).first())


def _last_if(event: str, col: str) -> pl.Expr:
    return pl.when(pl.col("event").last() == event).then(pl.col(col).last())


def state_episodes(events: pl.LazyFrame) -> pl.LazyFrame:
    """Rule 1: episodes from the work function's events, one row per (nodeid, ep)."""
    state = (
        events.filter(pl.col("event").is_in(STATE_EVENTS) & pl.col("nodeid").is_not_null())
        .select(*ORDER, "event", "nodeid", "err")
        .sort(*ORDER)
        # An event opens an episode if it is the nodeid's first, or follows an end.
        .with_columns(
            (pl.col("event").shift(1).over("nodeid").fill_null("end") == "end")
            .cast(_EP).cum_sum().over("nodeid").cast(_EP).alias("ep")
        )
    )
    is_err = pl.col("event").is_in(ERROR_EVENTS)
    return state.group_by("nodeid", "ep").agg(
        _first_if("start", "time_us").alias("start_us"),
        _first_if("start", "cpu").alias("start_cpu"),
        _last_if("end", "time_us").alias("end_us"),
        _last_if("end", "cpu").alias("end_cpu"),
        (pl.col("event") == "start").sum().cast(pl.UInt32).alias("attempts"),
        (pl.col("event") == "write_error").sum().cast(pl.UInt32).alias("write_errors"),
        (pl.col("event") == "pages_error").sum().cast(pl.UInt32).alias("pages_errors"),
        pl.col("err").filter(is_err).last().alias("last_err"),
    )


def attach(events: pl.LazyFrame, eps: pl.LazyFrame) -> pl.LazyFrame:
    """Rule 2: the episode number of every pending/waiting event (nodeid, ep, event, time_us)."""
    pw = (
        events.filter(pl.col("event").is_in(ATTACHED_EVENTS) & pl.col("nodeid").is_not_null())
        .select(*ORDER, "event", "nodeid")
        .sort(*ORDER)
    )
    # Episodes of a nodeid are disjoint and in time order, so end_us never
    # decreases with ep; among equal end_us the earliest episode must win,
    # which is what keeping the first (nodeid, end_us) does.
    closed = (
        eps.filter(pl.col("end_us").is_not_null())
        .select("nodeid", "end_us", pl.col("ep").alias("closed_ep"))
        .sort("nodeid", "end_us", "closed_ep")
        .unique(subset=["nodeid", "end_us"], keep="first", maintain_order=True)
        .sort("end_us")
    )
    last = (
        eps.sort("nodeid", "ep")
        .group_by("nodeid")
        .agg(pl.col("ep").last().alias("last_ep"),
             pl.col("end_us").last().is_null().alias("last_open"))
    )
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
    eps = state_episodes(events)
    pw = attach(events, eps)
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
