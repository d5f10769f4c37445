"""Records -> events: every record classified through the message catalogue.

One stage, ``events(records) -> events``, a pure LazyFrame transformation.
The regular expressions, field types and nodeid numbering all come from
``formats/messages.py``; nothing about a message is restated here, so a
catalogue change cannot desynchronise the decoder from the emitter.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from .. import schema
from ..formats import layouts as L
from ..formats import messages as M

#: "<function>: <message>" split at the first ": ", exactly like messages.parse()
#: (which uses str.partition).  (?s): a message may contain newlines.
_SPLIT = r"(?s)^(.*?): (.*)$"

#: Catalogue fields that have a column in schema.EVENTS.
_EVENT_FIELDS = ("nodeid", "fh", "err")


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


def _field_expr(name: str, matched: Callable[[int], pl.Expr]) -> pl.Expr:
    """The typed value of catalogue field ``name`` from whichever message matched."""
    dtype = schema.EVENTS[name]
    expr: pl.Expr = pl.lit(None, dtype)
    for i in reversed(range(len(M.CATALOGUE))):  # built inside out: first message wins
        msg = M.CATALOGUE[i]
        field = next((f for f in msg.fields if f.name == name), None)
        if field is None or (name == "nodeid" and msg.nodeid_offset is None):
            continue
        v = _typed(pl.col(_match_col(i)).struct.field(name), field, dtype)
        if name == "nodeid":
            v = v + pl.lit(msg.nodeid_offset, dtype)
        expr = pl.when(matched(i)).then(v).otherwise(expr)
    return expr


def _match_col(i: int) -> str:
    return f"__m{i}"


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
    is_text = pl.col("type") == L.TYPE_TEXT
    is_iot = pl.col("type") == L.TYPE_IOTIMES
    split = pl.when(is_text).then(pl.col("text")).str.extract_groups(_SPLIT)
    lf = records.with_columns(split.alias("__split")).with_columns(
        pl.col("__split").struct.field("1").alias("__func"),
        pl.col("__split").struct.field("2").alias("__rest"),
    )
    # One struct of named groups per catalogue message, computed only on the
    # rows whose function matches (the others are null and cost nothing), so
    # the regex work is about one pattern per text record, not twelve.
    lf = lf.with_columns(
        pl.when(pl.col("__func") == msg.function).then(pl.col("__rest"))
        .str.extract_groups("(?s)" + M.pattern(msg)).alias(_match_col(i))
        for i, msg in enumerate(M.CATALOGUE)
    )

    def matched(i: int) -> pl.Expr:
        # All groups take part in every match, so the first is null iff no match.
        first = M.CATALOGUE[i].fields[0].name
        return pl.col(_match_col(i)).struct.field(first).is_not_null()

    event: pl.Expr = pl.when(is_iot).then(pl.lit("iotimes"))
    for i, msg in enumerate(M.CATALOGUE):  # catalogue order wins, as in messages.parse()
        event = event.when(matched(i)).then(pl.lit(msg.event))
    event = event.when(is_text).then(pl.lit("other")).otherwise(pl.lit("unknown"))

    values = {name: _field_expr(name, matched) for name in _EVENT_FIELDS}
    # iotimes carry the PCS file id, the kernel nodeid - 1 (format spec, section 3).
    values["nodeid"] = (pl.when(is_iot).then(pl.col("io_ino") + pl.lit(1, pl.UInt64))
                        .otherwise(values["nodeid"]))

    record_type = (
        pl.when(is_text).then(pl.lit("text")).when(is_iot).then(pl.lit("iotimes"))
        .otherwise(pl.lit("unknown"))
    )
    return lf.select(
        pl.col("time_us").cast(schema.EVENTS["time_us"]),
        pl.col("cpu").cast(schema.EVENTS["cpu"]),
        pl.col("seq").cast(schema.EVENTS["seq"]),
        record_type.alias("record_type"),
        event.alias("event"),
        pl.col("__func").alias("function"),
        *(values[n].cast(schema.EVENTS[n]).alias(n) for n in _EVENT_FIELDS),
        pl.col("ovfl").cast(schema.EVENTS["ovfl"]),
        pl.when(is_text).then(pl.col("text")).alias("text"),
    )
