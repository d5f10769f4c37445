"""The per-batch bookkeeping of a streamed export (counts, slowest IOs) against
the plain Polars formulations it replaced for speed."""

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from ktrace_decode.formats import layouts as L
from ktrace_decode.pipeline import storage
from ktrace_decode.pipeline.events import events, record_type_counts

# known request types and a few the catalogue does not name
_TYPES = st.sampled_from([*L.IOTIMES_REQUEST_TYPES, 0, 7, 65535])


def _iotimes(rows):
    """An iotimes table (the columns slowest_io and io_counts read)."""
    types = [t for t, _, _ in rows]
    return pl.DataFrame({
        "time_us": pl.Series([ts for _, ts, _ in rows], dtype=pl.UInt64),
        "cpu": pl.Series([i % 3 for i in range(len(rows))], dtype=pl.UInt16),
        "nodeid": pl.Series(range(len(rows)), dtype=pl.UInt64),
        "type": pl.Series(types, dtype=pl.UInt16),
        "size": pl.Series([4096] * len(rows), dtype=pl.UInt64),
        "total_us": pl.Series([tot for _, _, tot in rows], dtype=pl.Int64),
        "lat_us": pl.Series([1] * len(rows), dtype=pl.UInt32),
    }).with_columns(
        pl.col("type").replace_strict(dict(L.IOTIMES_REQUEST_TYPES),
                                      default=pl.format("type{}", pl.col("type")),
                                      return_dtype=pl.String).alias("request"))


# small value ranges: many ties in total_us and time_us; None: no total (a
# garbled creation time)
_ROWS = st.lists(st.tuples(_TYPES, st.integers(0, 5), st.none() | st.integers(-3, 6)),
                 max_size=40)


@settings(max_examples=200, deadline=None)
@given(rows=_ROWS, top=st.integers(0, 45))
def test_slowest_io_is_the_head_of_the_full_sort(rows, top):
    df = _iotimes(rows)
    # an IO without a total is never among the slowest (it was kept, last)
    want = (df.filter(pl.col("total_us").is_not_null())
            .sort("total_us", "time_us", descending=[True, False], maintain_order=True)
            .head(top).select("time_us", "cpu", "nodeid", "request", "size", "total_us",
                              "lat_us"))
    assert_frame_equal(storage.slowest_io(df, top), want)


@settings(max_examples=200, deadline=None)
@given(rows=_ROWS)
def test_io_counts_per_request_name(rows):
    df = _iotimes(rows)
    want = {k: n for k, n in df.group_by("request").len().iter_rows()}
    assert storage.io_counts(df) == want
    if rows:
        assert sum(storage.io_counts(df).values()) == len(rows)


@settings(max_examples=100, deadline=None)
@given(types=st.lists(st.sampled_from([L.TYPE_TEXT, L.TYPE_IOTIMES, 0, 3, 9]), max_size=30))
def test_record_type_counts_as_events_names_them(types):
    n = len(types)
    records = pl.DataFrame({
        "time_us": pl.Series(range(n), dtype=pl.UInt64),
        "cpu": pl.Series([0] * n, dtype=pl.UInt16),
        "seq": pl.Series(range(n), dtype=pl.UInt32),
        "type": pl.Series(types, dtype=pl.UInt16),
        "ovfl": pl.Series([0] * n, dtype=pl.UInt16),
        "text": pl.Series(["f: x" if t == L.TYPE_TEXT else None for t in types],
                          dtype=pl.String),
        "io_ino": pl.Series([5 if t == L.TYPE_IOTIMES else None for t in types],
                            dtype=pl.UInt64),
    })
    ev = events(records.lazy()).collect()
    want = {k: n for k, n in ev.group_by("record_type").len().iter_rows()}
    got = record_type_counts(records["type"])
    assert {k: v for k, v in got.items() if v} == want
    assert sum(got.values()) == n
