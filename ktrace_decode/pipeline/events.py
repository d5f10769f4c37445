"""Records -> events: every record classified through the message catalogue.

One stage, ``events(records) -> events``, a pure LazyFrame transformation.
The regular expressions, field types and nodeid numbering all come from
``formats/messages.py``; nothing about a message is restated here, so a
catalogue change cannot desynchronise the decoder from the emitter.
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np
import polars as pl

from .. import schema
from ..formats import layouts as L
from ..formats import messages as M

#: Catalogue fields that have a column in schema.EVENTS.
_EVENT_FIELDS = ("nodeid", "fh", "err")

_GROUP = re.compile(r"\(\?P<(\w+)>")


def _one_group(pattern: str, name: str) -> str:
    """The catalogue pattern with only ``name`` left capturing.

    Every other named group becomes non-capturing: the regex engine then
    tracks one capture instead of up to nine, which is several times faster
    on the long pcs messages, and the accepted language is unchanged.
    """
    return _GROUP.sub(lambda m: m.group(0) if m.group(1) == name else "(?:", pattern)


def _typed(raw: pl.Expr, field: M.Field, dtype: pl.DataType) -> pl.Expr:
    """The printed text of a field as a value of its catalogue kind.

    Casts are non-strict: a number that does not fit (say a %d garbled by a
    long-message cut) becomes null instead of failing the whole dump.
    """
    if field.kind == "int":
        value = raw.cast(pl.Int64, strict=False)
    elif field.kind == "uint":
        value = raw.cast(pl.UInt64, strict=False)
    elif field.kind == "hex":
        value = raw.str.to_integer(base=16, strict=False)
    else:
        value = raw
    return value.cast(dtype, strict=False)


def _regex(msg: M.Message) -> str:
    # (?s): a %s argument may contain a newline; anchors stay whole-text.
    return "(?s)" + M.pattern(msg)


#: Event names by code: the catalogue's in order, then other, iotimes, unknown.
_EVENT_NAMES = pl.Series([m.event for m in M.CATALOGUE] + ["other", "iotimes", "unknown"])
#: record_type by record type number; any other number is "unknown".
_RECORD_TYPES = {L.TYPE_TEXT: "text", L.TYPE_IOTIMES: "iotimes"}
_RECORD_TYPE_NAMES = pl.Series([*_RECORD_TYPES.values(), "unknown"])

_MATCH = "__match"  # index in CATALOGUE of the message a text record is, else null


def _is(i: int) -> pl.Expr:
    return pl.col(_MATCH) == i


def _field_expr(name: str) -> pl.Expr:
    """The typed value of catalogue field ``name`` from whichever message matched."""
    dtype = schema.EVENTS[name]
    expr: pl.Expr = pl.lit(None, dtype)
    for i in reversed(range(len(M.CATALOGUE))):  # built inside out, like the match itself
        msg = M.CATALOGUE[i]
        field = next((f for f in msg.fields if f.name == name), None)
        if field is None or (name == "nodeid" and msg.nodeid_offset is None):
            continue
        # Extract only on the rows this message matched: the others cost nothing.
        raw = pl.when(_is(i)).then(pl.col("__rest")).str.extract(_one_group(_regex(msg), name), 1)
        v = _typed(raw, field, dtype)
        if name == "nodeid":
            v = v + pl.lit(msg.nodeid_offset, dtype)
        expr = pl.when(_is(i)).then(v).otherwise(expr)
    return expr


def events(records: pl.LazyFrame) -> pl.LazyFrame:
    """One row per record in schema.EVENTS, same order as ``records``.

    * text records: ``event`` is the catalogue event whose function and
      anchored pattern match, else ``other``; ``function`` is the prefix;
      ``nodeid`` is normalised to the kernel's FUSE nodeid (printed number +
      the message's ``nodeid_offset``), so the work function's "nodeid - 1"
      and fuse_open's raw nodeid land on the same key;
    * iotimes records: event ``iotimes``, nodeid = io_ino + 1 (the PCS file id
      is the kernel nodeid - 1, see the format spec);
    * any other type: event ``unknown``.
    """
    return from_matches(with_function(records), catalogue_match())


def with_function(records: pl.LazyFrame) -> pl.LazyFrame:
    """``records`` plus the text split at the first ``": "``: the function
    (``__func``) and the message after it (``__rest``)."""
    # "<function>: <message>" split at the first ": ", exactly like
    # messages.parse() (str.partition); no separator -> no function.
    # (records.text is null for every non-text record, see schema.RECORDS)
    split = pl.col("text").str.splitn(": ", 2)
    return records.with_columns(split.alias("__split")).with_columns(
        pl.when(pl.col("__split").struct.field("field_1").is_not_null())
        .then(pl.col("__split").struct.field("field_0")).alias("__func"),
        pl.col("__split").struct.field("field_1").alias("__rest"),
    )


@cache
def catalogue_match() -> pl.Expr:
    """The index in CATALOGUE of the message a text record is, else null.

    The first in catalogue order whose function and anchored pattern match
    (as messages.parse() decides).  A pattern test is a DFA scan that fails
    at the first differing byte, so testing every pattern against every row
    stays cheap; captures are taken later, once.
    """
    match: pl.Expr = pl.lit(None, pl.UInt8)
    for i in reversed(range(len(M.CATALOGUE))):
        msg = M.CATALOGUE[i]
        hit = (pl.col("__func") == msg.function) & pl.col("__rest").str.contains(_regex(msg))
        match = pl.when(hit).then(pl.lit(i, pl.UInt8)).otherwise(match)
    return match


def from_matches(lf: pl.LazyFrame, match: pl.Expr) -> pl.LazyFrame:
    """The EVENTS rows of :func:`with_function`'s frame, given ``match`` (a
    :func:`catalogue_match`: the message each row is, or null).  Kept apart
    so that the benchmarks can price the matching alone."""
    return lf.with_columns(match.alias(_MATCH)).select(_event_columns())


@cache
def _event_columns() -> tuple[pl.Expr, ...]:
    """The EVENTS columns from a :func:`with_function` frame with its match.

    Built once per process (cached, like :func:`catalogue_match`): the
    expressions depend on the catalogue only, and building them took ~1 ms of
    Python per call, on the main thread of a streamed export, for every batch.
    """
    is_text = pl.col("type") == L.TYPE_TEXT
    is_iot = pl.col("type") == L.TYPE_IOTIMES

    # Event and record type names by code: one gather from a short table
    # instead of a when/then chain that builds a string column per branch.
    other = len(M.CATALOGUE)
    code = (pl.when(is_iot).then(pl.lit(other + 1, pl.UInt32))
            .when(pl.col(_MATCH).is_not_null()).then(pl.col(_MATCH).cast(pl.UInt32))
            .when(is_text).then(pl.lit(other, pl.UInt32))
            .otherwise(pl.lit(other + 2, pl.UInt32)))
    event = pl.lit(_EVENT_NAMES).gather(code)
    kind = pl.lit(len(_RECORD_TYPES), pl.UInt32)  # "unknown"
    for i, number in reversed(list(enumerate(_RECORD_TYPES))):
        kind = pl.when(pl.col("type") == number).then(pl.lit(i, pl.UInt32)).otherwise(kind)
    record_type = pl.lit(_RECORD_TYPE_NAMES).gather(kind)

    values = {name: _field_expr(name) for name in _EVENT_FIELDS}
    # iotimes carry the PCS file id, the kernel nodeid - 1 (format spec, section 3).
    values["nodeid"] = (pl.when(is_iot).then(pl.col("io_ino") + pl.lit(1, pl.UInt64))
                        .otherwise(values["nodeid"]))

    return (
        pl.col("time_us").cast(schema.EVENTS["time_us"]),
        pl.col("cpu").cast(schema.EVENTS["cpu"]),
        pl.col("seq").cast(schema.EVENTS["seq"]),
        record_type.alias("record_type"),
        event.alias("event"),
        pl.col("__func").alias("function"),
        *(values[n].cast(schema.EVENTS[n]).alias(n) for n in _EVENT_FIELDS),
        pl.col("ovfl").cast(schema.EVENTS["ovfl"]),
        pl.col("text"),  # as is: no copy of the largest column
    )


def record_type_counts(types: pl.Series) -> dict[str, int]:
    """Records per ``record_type`` as :func:`events` names them, counted from
    the records' type numbers (no string group_by: a streamed export calls
    this for every batch)."""
    t = types.to_numpy()
    out = {name: int(np.count_nonzero(t == code)) for code, name in _RECORD_TYPES.items()}
    out["unknown"] = len(t) - sum(out.values())
    return out
