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
import pyarrow as pa

from .. import records, schema
from ..formats import layouts as L
from ..formats import messages as M
from . import bytematch

#: Catalogue fields that have a column in schema.EVENTS.
EVENT_FIELDS = ("nodeid", "fh", "err")

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
RECORD_TYPES = {L.TYPE_TEXT: "text", L.TYPE_IOTIMES: "iotimes"}
_RECORD_TYPE_NAMES = pl.Series([*RECORD_TYPES.values(), "unknown"])


def event_names() -> list[str]:
    """Every ``event`` by code: the catalogue's events in order, then other,
    iotimes, unknown (the :mod:`.fused` loop numbers them the same way)."""
    return _EVENT_NAMES.to_list()


def record_type_names() -> list[str]:
    """Every ``record_type``: those of RECORD_TYPES in order, then unknown."""
    return _RECORD_TYPE_NAMES.to_list()


#: The largest kernel nodeid (UInt64).
_NODEID_MAX = (1 << 64) - 1


def ino_nodeid(ino: pl.Expr) -> pl.Expr:
    """The kernel nodeid of an iotimes record's PCS file id: ``ino + 1``
    (format spec, section 3), null for an id of 2**64 - 1, which has none
    (a garbled field; ``+ 1`` would wrap to nodeid 0)."""
    return pl.when(ino < pl.lit(_NODEID_MAX, pl.UInt64)).then(ino + pl.lit(1, pl.UInt64))


_MATCH = "__match"  # index in CATALOGUE of the message a text record is, else null


def _is(i: int) -> pl.Expr:
    return pl.col(_MATCH) == i


def _field_expr(name: str) -> pl.Expr:
    """The typed value of catalogue field ``name`` from whichever message matched."""
    dtype = schema.EVENTS[name]
    expr: pl.Expr = pl.lit(None, dtype)
    for i in reversed(range(len(M.CATALOGUE))):  # built inside out, like the match itself
        msg = M.CATALOGUE[i]
        if not _gives(msg, name):
            continue
        field = next(f for f in msg.fields if f.name == name)
        # Extract only on the rows this message matched: the others cost nothing.
        raw = pl.when(_is(i)).then(pl.col("__rest")).str.extract(_one_group(_regex(msg), name), 1)
        v = _typed(raw, field, dtype)
        if name == "nodeid" and msg.nodeid_offset:
            # printed + offset, null where it would pass 2**64 - 1 (a wrap to
            # a small nodeid would join another file's events)
            v = (pl.when(v <= pl.lit(_NODEID_MAX - msg.nodeid_offset, dtype))
                 .then(v + pl.lit(msg.nodeid_offset, dtype)))
        expr = pl.when(_is(i)).then(v).otherwise(expr)
    return expr


def events(records: pl.LazyFrame) -> pl.LazyFrame:
    """One row per record in schema.EVENTS, same order as ``records``.

    * text records: ``event`` is the catalogue event whose function and
      anchored pattern match, else ``other``; ``function`` is the prefix;
      ``nodeid`` is normalised to the kernel's FUSE nodeid (printed number +
      the message's ``nodeid_offset``), so the work function's "nodeid - 1"
      and fuse_open's raw nodeid land on the same key;
    * iotimes records: event ``iotimes``, nodeid = io_ino + 1 (:func:`ino_nodeid`; the PCS file id
      is the kernel nodeid - 1, see the format spec);
    * any other type: event ``unknown``.

    The texts are classified by :func:`classify` (one column in, one struct
    out, run when the plan is collected).
    """
    return from_classified(classified(records))


def classified(records: pl.LazyFrame) -> pl.LazyFrame:
    """``records`` with the CLASSIFIED columns: what :func:`from_classified`
    and :func:`catalogue_events` read.  Plans built on one such frame and
    collected together classify the texts once (a common subplan)."""
    return records.with_columns(
        pl.col("text").map_batches(classify, return_dtype=CLASSIFIED).alias(_CLASS)
    ).unnest(_CLASS)


def catalogue_events(lf: pl.LazyFrame, names: tuple[str, ...],
                     columns: tuple[str, ...]) -> pl.LazyFrame:
    """The rows of ``from_classified(lf)`` whose event is one of ``names``
    (catalogue events), with only ``columns`` (of schema.EVENTS), ``event``
    as ``pl.Enum(names)``.

    Filtered on the catalogue index before any name is built: no string is
    made, hashed or compared for the rows dropped (a streamed export keeps
    the patch's events of every batch this way).
    """
    unknown = set(names) - {m.event for m in M.CATALOGUE}
    if unknown:
        raise ValueError(f"not catalogue events: {sorted(unknown)}")
    codes = [i for i, m in enumerate(M.CATALOGUE) if m.event in names]
    rank = [names.index(M.CATALOGUE[i].event) for i in codes]
    event = pl.lit(pl.Series(names, dtype=pl.Enum(names))).gather(
        pl.col(_MATCH).replace_strict(codes, rank, return_dtype=pl.UInt32))
    same = {e.meta.output_name(): e for e in _event_columns()}
    return lf.filter(pl.col(_MATCH).is_in(codes)).select(
        event.alias(c) if c == "event" else same[c] for c in columns)


#: What :func:`classify` gives for each text: the catalogue index of its
#: message (null: none), its function (null: no ": "), and the typed values
#: of the event fields the message prints, nodeid normalised.
CLASSIFIED = pl.Struct({_MATCH: pl.UInt8(), "__func": pl.String(),
                        **{f"__{n}": schema.EVENTS[n] for n in EVENT_FIELDS}})
_CLASS = "__classified"


def classify(text: pl.Series) -> pl.Series:
    """The CLASSIFIED struct of every text (null texts have no match and no
    function).  Big columns go through the compiled byte programs of
    :mod:`.bytematch` when numba is installed, others through the regexes;
    the two agree row for row (tests/pipeline/test_bytematch.py)."""
    if bytematch.worth_it(text.len()):
        return classify_bytes(text)
    return classify_regex(text)


def classify_regex(text: pl.Series) -> pl.Series:
    """:func:`classify` with the catalogue's regexes (Polars expressions)."""
    lf = with_function(pl.DataFrame({"text": text.cast(pl.String)}).lazy())
    return lf.with_columns(catalogue_match().alias(_MATCH)).select(
        pl.struct(pl.col(_MATCH), pl.col("__func"),
                  *(_field_expr(n).alias(f"__{n}") for n in EVENT_FIELDS))
    ).collect().to_series().alias(text.name)


def classify_bytes(text: pl.Series) -> pl.Series:
    """:func:`classify` with the byte programs (needs numba); rows they leave
    undecided are classified with the regexes."""
    arr = text.cast(pl.String).to_arrow(compat_level=pl.CompatLevel.newest())
    if isinstance(arr, pa.ChunkedArray):  # views concatenated, never the text
        arr = pa.concat_arrays(arr.chunks)
    if not pa.types.is_string_view(arr.type):  # not Polars' own layout: no bytes to walk
        return classify_regex(text)
    m = bytematch.match(arr, programs())
    code = m.code
    # Numbered and range-checked by the loop (see programs): only a cast left.
    cols = {name: (m.values[slot].astype(_NUMPY[schema.EVENTS[name]]), m.present[slot])
            for slot, name in enumerate(EVENT_FIELDS)}
    deferred = np.flatnonzero(m.defer)
    if deferred.size:
        slow = classify_regex(text.gather(deferred)).struct.unnest()
        code[deferred] = slow[_MATCH].cast(pl.Int16).fill_null(-1).to_numpy()
        for name, (v, ok) in cols.items():
            col = slow[f"__{name}"]
            ok[deferred] = col.is_not_null().to_numpy()
            v[deferred] = col.fill_null(0).to_numpy()
    fields = [
        records.masked_series(_MATCH, code.astype(np.uint8), code >= 0),
        records.arrow_series("__func", bytematch.func_array(arr, m)),
        *(records.masked_series(f"__{n}", v, ok) for n, (v, ok) in cols.items()),
    ]
    return pl.struct(fields, eager=True).alias(text.name)


_NUMPY = {pl.UInt64(): np.uint64, pl.Int32(): np.int32, pl.Int64(): np.int64,
          pl.UInt32(): np.uint32}


def numpy_dtype(name: str) -> type:
    """The numpy type of event column ``name`` (one of EVENT_FIELDS)."""
    return _NUMPY[schema.EVENTS[name]]


def _extracted() -> dict[int, tuple[str, ...]]:
    """The event fields each message gives (as :func:`_field_expr` takes them)."""
    return {i: tuple(n for n in EVENT_FIELDS if _gives(msg, n))
            for i, msg in enumerate(M.CATALOGUE)}


def _gives(msg: M.Message, name: str) -> bool:
    """Does ``msg`` give event column ``name`` (the nodeid only with its numbering)?"""
    return (any(f.name == name for f in msg.fields)
            and not (name == "nodeid" and msg.nodeid_offset is None))


@cache
def programs() -> bytematch.Programs:
    """The byte programs, with each field numbered and range-checked as
    :func:`_field_expr` does it: the nodeid plus its message's offset, and
    a value outside its column's type absent (a non-strict cast's null)."""
    ranges = {}
    for name in EVENT_FIELDS:
        info = np.iinfo(_NUMPY[schema.EVENTS[name]])
        ranges[name] = (int(info.min), int(info.max))
    adjust = {i: {"nodeid": m.nodeid_offset} for i, m in enumerate(M.CATALOGUE)
              if m.nodeid_offset}
    return bytematch.compile_catalogue(
        M.CATALOGUE, {n: i for i, n in enumerate(EVENT_FIELDS)}, _extracted(), adjust, ranges)


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


def from_classified(lf: pl.LazyFrame) -> pl.LazyFrame:
    """The EVENTS rows of a records frame with the CLASSIFIED columns."""
    return lf.select(_event_columns())


@cache
def _event_columns() -> tuple[pl.Expr, ...]:
    """The EVENTS columns from a records frame with the CLASSIFIED columns.

    Built once per process (cached): the expressions depend on the catalogue
    only, and building them took ~1 ms of Python per call, on the main
    thread of a streamed export, for every batch.
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
    kind = pl.lit(len(RECORD_TYPES), pl.UInt32)  # "unknown"
    for i, number in reversed(list(enumerate(RECORD_TYPES))):
        kind = pl.when(pl.col("type") == number).then(pl.lit(i, pl.UInt32)).otherwise(kind)
    record_type = pl.lit(_RECORD_TYPE_NAMES).gather(kind)

    values = {name: pl.col(f"__{name}") for name in EVENT_FIELDS}
    # iotimes carry the PCS file id, the kernel nodeid - 1 (format spec, section 3).
    values["nodeid"] = (pl.when(is_iot).then(ino_nodeid(pl.col("io_ino")))
                        .otherwise(values["nodeid"]))

    return (
        pl.col("time_us").cast(schema.EVENTS["time_us"]),
        pl.col("cpu").cast(schema.EVENTS["cpu"]),
        pl.col("seq").cast(schema.EVENTS["seq"]),
        record_type.alias("record_type"),
        event.alias("event"),
        pl.col("__func").alias("function"),
        *(values[n].cast(schema.EVENTS[n]).alias(n) for n in EVENT_FIELDS),
        pl.col("ovfl").cast(schema.EVENTS["ovfl"]),
        pl.col("text"),  # as is: no copy of the largest column
    )


def record_type_counts(types: pl.Series | np.ndarray) -> dict[str, int]:
    """Records per ``record_type`` as :func:`events` names them, counted from
    the records' type numbers (no string group_by: a streamed export calls
    this for every batch)."""
    t = types.to_numpy() if isinstance(types, pl.Series) else types
    out = {name: int(np.count_nonzero(t == code)) for code, name in RECORD_TYPES.items()}
    out["unknown"] = len(t) - sum(out.values())
    return out
