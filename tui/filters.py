"""The line filter of the Events screen: free text/regex plus ``key=value`` terms.

    invalidate            text matches the regex (case-sensitive)
    event=waiting         the event (classified by the pipeline)
    cpu=2                 the CPU
    nodeid=42             the kernel nodeid (normalised: printed nodeid-1 counts too)

Terms combine with AND.  Returns a Polars expression over a frame holding the
records columns plus ``event`` and ``nodeid`` from the events table.
"""

from __future__ import annotations

import shlex

import polars as pl

KEYS = ("event", "cpu", "nodeid")


class FilterError(ValueError):
    """A filter the user must fix."""


def parse_filter(text: str) -> pl.Expr | None:
    """The expression for ``text`` (None for an empty filter)."""
    try:
        words = shlex.split(text)
    except ValueError as e:
        raise FilterError(str(e)) from None
    conds: list[pl.Expr] = []
    free: list[str] = []
    for w in words:
        key, sep, value = w.partition("=")
        if sep and key in KEYS:
            if key == "event":
                conds.append(pl.col("event") == value)
            else:
                try:
                    conds.append(pl.col(key) == int(value))
                except ValueError:
                    raise FilterError(f"{key}= takes a number, not {value!r}") from None
        else:
            free.append(w)
    if free:
        pattern = " ".join(free)
        try:
            pl.select(pl.lit("").str.contains(pattern))
        except pl.exceptions.PolarsError:
            raise FilterError(f"bad regular expression: {pattern!r}") from None
        conds.append(pl.col("text").str.contains(pattern))
    if not conds:
        return None
    expr = conds[0]
    for c in conds[1:]:
        expr = expr & c
    return expr
