"""The byte programs (numba) decide exactly what the catalogue's regexes decide.

``events.classify_regex`` is the reference: every test compares the two
paths' whole output (match, function, nodeid, fh, err) row for row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pl_texts import catalogue_text
from polars.testing import assert_series_equal

from ktrace_decode.decode import decode
from ktrace_decode.formats import messages as M
from ktrace_decode.pipeline import bytematch
from ktrace_decode.pipeline import events as E

pytestmark = pytest.mark.skipif(not bytematch.available(), reason="numba is not installed")

SAMPLES = Path(__file__).parents[2] / "samples"


def same(texts: list[str | None] | pl.Series) -> pl.Series:
    """Classify with both paths, assert they agree, return the answer."""
    s = texts if isinstance(texts, pl.Series) else pl.Series("text", texts, pl.String)
    want = E.classify_regex(s)
    got = E.classify_bytes(s)
    assert_series_equal(got, want)
    return got


def test_every_message_of_the_catalogue_with_its_fields():
    texts = [
        "fuse_link_rw_file: fuse_file[12] --> invalidate_file on [77] pending",
        "fuse_open: waiting for invalidate_file on [77] to complete",
        "fuse_inval_files_work: invalidate_file on [76] starts",
        "fuse_inval_files_work: filemap_write_and_wait() on [76] returns err=-11",
        "fuse_inval_files_work: invalidate_inode_pages2() on [76] returns err=-16",
        "fuse_inval_files_work: invalidate_file on [76] ends",
        "pcs_cs_deaccount: IO latency on CS1 is 2, cwnd 3, clamp 4",
        "cs_blacklist: Blacklisting CS5 by me, err=x, err=-110",
        "cs_whitelist: Whitelisting CS5 by a, b",
        "handle_congestion: Received congestion notification from CS5",
        "cs_response_done: [1.2:3] IO error -5 9, ireq:(ptrval) : 1:2+3",
        "pcs_cslist_submit_read: Selected read map ((null)) 0x-7 s:1f[00000020]/1 to CS2 to CS5;"
        " is_seq=0",
    ]
    got = same(texts).struct.unnest()
    assert got["__match"].to_list() == list(range(len(M.CATALOGUE)))
    assert got["__func"].to_list() == [t.split(": ", 1)[0] for t in texts]
    assert got["__nodeid"].to_list()[:6] == [77, 77, 77, 77, 77, 77]
    assert got["__fh"].to_list()[0] == 12
    assert got["__err"].to_list() == [None] * 3 + [-11, -16] + [None] * 2 + [-110] + [None] * 2 \
        + [-5, None]


def test_near_misses_nulls_short_texts_and_long_numbers():
    got = same([
        None, "", "x", ": ", "f: ", "fuse_open", "fuse_open:waiting",
        "fuse_inval_files_work: invalidate_file on [76] starts ",  # trailing space
        "fuse_inval_files_work: invalidate_file on [76] starts\n",  # Rust's $: the very end
        "fuse_inval_files_work: invalidate_file on [] starts",
        "fuse_inval_files_work: invalidate_file on [-1] starts",  # %llu has no sign
        "fuse_inval_files_work: invalidate_file on [0007] starts",
        "fuse_inval_files_work: invalidate_file on [123456789012345678] starts",  # 18 digits
        "fuse_inval_files_work: invalidate_file on [1234567890123456789] starts",  # 19: deferred
        "fuse_inval_files_work: invalidate_file on [99999999999999999999] starts",  # > u64
        "fuse_inval_files_work: filemap_write_and_wait() on [1] returns err=-2147483649",
        "fuse_inval_files_work: filemap_write_and_wait() on [1] returns err=-0",
        "pcs_cs_deaccount: IO latency on CS99999999999999999999999 is 1, cwnd 2, clamp 3",
        "cs_response_done: [1.2:3] IO error -5 9, ireq:(nul) : 1:2+3",
        "cs_response_done: [1.2:3] IO error -5 9, ireq:xx : 1:2+3",
        "pcs_cs_deaccount: IO latency on CS１ is 1, cwnd 2, clamp 3",  # a non-ASCII digit
        "cs_blacklist: Blacklisting CS5 by \n, err=1\n, err=2",
        "handle_congestion: Received congestion notification from CS",
        # The Int32 column's edges, inside and just outside (23-26).
        *(f"fuse_inval_files_work: filemap_write_and_wait() on [1] returns err={e}"
          for e in (2147483647, 2147483648, -2147483648, 99999999999)),
    ]).struct.unnest()
    assert got["__match"][0] is None and got["__func"][0] is None
    assert got["__func"][4] == "f"
    assert got["__nodeid"].to_list()[11:15] == [8, 123456789012345679, 1234567890123456790, None]
    assert got["__err"][15] is None  # out of Int32: null, as the non-strict cast makes it
    assert got["__match"][20] is None
    assert got["__err"].to_list()[23:] == [2147483647, None, -2147483648, None]
    assert got["__match"].to_list()[23:] == [3] * 4  # matched, the value absent


def test_a_column_in_several_chunks_and_a_slice_of_one():
    a = pl.Series("text", ["fuse_inval_files_work: invalidate_file on [5] ends"] * 3)
    b = pl.Series("text", [None, "cs_whitelist: Whitelisting CS5 by x"])
    chunked = a.append(b)
    assert chunked.n_chunks() == 2
    got = same(chunked).struct.unnest()
    assert got["__match"].to_list() == [5, 5, 5, None, 8]
    assert same(chunked.rechunk().slice(2, 3)).struct.unnest()["__match"].to_list() == \
        [5, None, 8]


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.iterdir() if p.is_dir()))
def test_every_sample(sample):
    texts = decode(str(SAMPLES / sample)).records["text"]
    got = same(texts).struct.unnest()
    assert got["__match"].null_count() < len(got)  # the samples are mostly catalogue text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(catalogue_text(), st.text(max_size=40), st.none()), max_size=30))
def test_generated_texts(texts):
    same(texts)


_LAZY = [m for m in M.CATALOGUE if any(conv == "s" for _, conv in M.segments(m))]


@st.composite
def lazy_text(draw: st.DrawFn) -> str:
    """A message with a %s, every other value valid, the %s made of the
    bytes of the literal after it: the lazy split has near misses to get wrong."""
    msg = draw(st.sampled_from(_LAZY))
    cut = M.segments(msg)
    after = "".join(lit for lit, _ in cut[[c for _, c in cut].index("s") + 1:])
    valid = {"d": st.integers(-99, 99).map(str), "i": st.integers(-99, 99).map(str),
             "u": st.integers(0, 99).map(str), "x": st.just("1f"), "X": st.just("1F"),
             "p": st.just("ab"), "s": st.text(after + "5x", max_size=16)}
    out = [msg.function, ": "]
    for literal, conv in cut:
        out.append(literal)
        if conv is not None:
            out.append(draw(valid[conv]))
    return "".join(out)


@settings(max_examples=150, deadline=None)
@given(st.lists(lazy_text(), min_size=1, max_size=20))
def test_lazy_strings(texts):
    assert same(texts).struct.field("__match").null_count() == 0  # all valid


def test_unsupported_formats_defer_to_the_regexes():
    def fmt(f: str, *args: str, function: str = "f") -> M.Message:
        return M.Message("x", function, f, args, "")

    for msg in (fmt("a%d%db", "p", "q"), fmt("%x%s", "p", "q"), fmt("%xab", "p"),
                fmt("%s, %s", "p", "q"), fmt("%c", "p"), fmt("%s\u00e9", "p"),
                fmt("%d1", "p"), fmt("%s", "nodeid")):
        with pytest.raises(bytematch.Unsupported):
            bytematch.program(msg, {"nodeid": 0})
    ok = fmt("[%d] %s.", "nodeid", "name")
    # A deferring message defers every text of its function (it comes first in
    # catalogue order, so a later message of that function cannot be decided).
    progs = bytematch.compile_catalogue(
        (fmt("a%d%db", "p", "q", function="g"), ok), {"nodeid": 0}, {1: ("nodeid",)})
    assert progs.deferred == ("x: two conversions with nothing between",)
    arr = pl.Series(["g: a12b", "f: [-3] x.y.", "f: [4]", "g: zz"]).to_arrow(
        compat_level=pl.CompatLevel.newest())
    m = bytematch.match(arr, progs)
    assert m.defer.tolist() == [True, False, False, True]
    assert m.code.tolist() == [-1, 1, -1, -1]
    assert m.values[0, 1] == -3 and m.present[:, 1].tolist() == [True]


def test_big_batches_take_the_byte_programs(monkeypatch):
    calls = []
    monkeypatch.setattr(E, "classify_bytes", lambda s: calls.append(s.len()) or
                        E.classify_regex(s))
    monkeypatch.setattr(bytematch, "MIN_ROWS", 4)
    E.classify(pl.Series(["a: b"] * 4))
    assert calls == [4]


def test_without_numba_every_batch_takes_the_regexes(monkeypatch):
    monkeypatch.setattr(bytematch, "_kernel", lambda: None)
    monkeypatch.setattr(bytematch, "MIN_ROWS", 1)
    assert not bytematch.worth_it(10**9)
    got = E.classify(pl.Series(["fuse_inval_files_work: invalidate_file on [1] ends"]))
    assert got.struct.field("__match").to_list() == [5]


def test_function_views_point_into_the_text():
    s = pl.Series(["pcs_cslist_submit_read: x", "short: y", "no separator"])
    m = bytematch.match(s.to_arrow(compat_level=pl.CompatLevel.newest()), E.programs())
    assert m.func_len.tolist() == [22, 5, -1]
    assert np.all(m.func_views[2] == 0)


def test_the_first_separator_at_every_place_of_long_and_short_texts():
    # The search reads 16 places at a time while 17 bytes remain, then byte
    # by byte: a ": " on either side of every chunk edge, decoys (":" alone,
    # ":" at the very end, " :"), and texts too short for a whole chunk.
    texts = []
    for n in range(0, 50):
        for p in range(n - 1):
            t = "ab:c" * 13
            texts.append(t[:p] + ": " + t[p:][: max(n - p - 2, 0)])
        texts.append(("x :" * 20)[:n])
        texts.append(("y" * n)[:max(n - 1, 0)] + ":")
    m = bytematch.match(pl.Series(texts).to_arrow(compat_level=pl.CompatLevel.newest()),
                        E.programs())
    assert m.func_len.tolist() == [t.find(": ") for t in texts]
    same(texts)


def test_a_view_outside_its_buffer_is_left_unmatched():
    import pyarrow as pa

    good = pl.Series(["fuse_inval_files_work: invalidate_file on [7] ends"] * 3)
    arr = good.to_arrow(compat_level=pl.CompatLevel.newest())
    validity, views, *data = arr.buffers()
    v = np.frombuffer(views, np.int32).reshape(-1, 4).copy()
    v[1, 3] = data[0].size  # offset past the end of the data buffer
    v[2, 2] = len(data)  # a buffer that does not exist
    bad = pa.Array.from_buffers(pa.string_view(), 3, [validity, pa.py_buffer(v), *data])
    m = bytematch.match(bad, E.programs())
    assert m.code.tolist() == [5, -1, -1]
    assert m.func_len.tolist() == [21, -1, -1]
