"""csv_encode writes the very bytes of Polars' write_csv.

Polars is the reference: every test compares the two writers' whole output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ktrace_decode.decode import decode
from ktrace_decode.pipeline import csv_encode
from ktrace_decode.pipeline.analysis import analyze_decoded

pytestmark = pytest.mark.skipif(csv_encode._jit() is None, reason="numba is not installed")

SAMPLES = Path(__file__).parents[2] / "samples"


def same(df: pl.DataFrame, prefix: tuple[str, str] | None = None) -> bytes:
    """Encode ``df`` (header and all) both ways, assert the bytes agree."""
    want = (df if prefix is None
            else df.select(pl.lit(prefix[1], pl.String).alias(prefix[0]), pl.all()))
    got = csv_encode.encode(df, with_header=True, prefix=prefix)
    assert got is not None
    assert bytes(got) == want.write_csv().encode()
    assert bytes(csv_encode.encode(df, prefix=prefix)) == want.write_csv(  # type: ignore[arg-type]
        include_header=False).encode()
    return bytes(got)


@pytest.mark.parametrize("sample", ["storm", "overflow", "quiet"])
def test_every_table_of_every_sample(sample: str) -> None:
    frames = analyze_decoded(decode(str(SAMPLES / sample))).frames()
    for df in frames.values():
        same(df)
        same(df, ("source", str(SAMPLES / sample)))


def test_what_needs_quotes() -> None:
    got = same(pl.DataFrame({"s": ["", None, "a,b", 'q"q', "n\nl", "c\rr", " sp ", "é€",
                                   '"', "x" * 12, "y" * 13, "a,b" * 6, 'z"' * 9]}))
    assert got.splitlines()[:3] == [b"s", b'""', b""]


_INTS = {pl.Int8: (-(2**7), 2**7 - 1), pl.Int16: (-(2**15), 2**15 - 1),
         pl.Int32: (-(2**31), 2**31 - 1), pl.Int64: (-(2**63), 2**63 - 1),
         pl.UInt8: (0, 2**8 - 1), pl.UInt16: (0, 2**16 - 1), pl.UInt32: (0, 2**32 - 1),
         pl.UInt64: (0, 2**64 - 1)}


def test_one_special_byte_anywhere_in_strings_of_every_length() -> None:
    """Short strings are scanned a word at a time, long ones 16 bytes at a
    time with an overlapping last chunk: each special byte, alone, at every
    position of every length up to 48."""
    texts = ["a" * n for n in range(49)]
    texts += [("a" * at) + c + ("a" * (n - at - 1))
              for c in (",", '"', "\n", "\r") for n in range(1, 49) for at in range(n)]
    same(pl.DataFrame({"s": texts}))


def test_integers_at_their_limits() -> None:
    same(pl.DataFrame({str(dtype): pl.Series([lo, hi, 0, 1, 9, 10, 99, 100, None, hi // 10,
                                              -1 if lo < 0 else 7], dtype=dtype)
                       for dtype, (lo, hi) in _INTS.items()}))


def test_every_power_of_ten_and_its_neighbours() -> None:
    values = sorted({v for k in range(20) for v in (10**k - 1, 10**k, 10**k + 1) if v < 2**64})
    same(pl.DataFrame({"u": pl.Series(values, dtype=pl.UInt64)}))
    same(pl.DataFrame({"i": pl.Series([-v for v in values if v < 2**63], dtype=pl.Int64)}))


def test_booleans_nulls_and_null_columns() -> None:
    same(pl.DataFrame({"b": [True, None, False], "n": pl.Series([None] * 3, dtype=pl.Null),
                       "s": pl.Series([None] * 3, dtype=pl.String)}))


def test_sliced_and_chunked_frames() -> None:
    df = pl.DataFrame({"i": list(range(50)), "b": [i % 3 == 0 for i in range(50)],
                       "s": [f"text {i}, more" if i % 2 else None for i in range(50)]})
    same(df.slice(13, 20))  # every column starts at an offset
    same(pl.concat([df.slice(3, 9), df.slice(30, 11), df], rechunk=False))


def test_types_it_does_not_write_are_left_to_polars() -> None:
    assert csv_encode.encode(pl.DataFrame({"f": [1.5]})) is None
    assert csv_encode.encode(pl.DataFrame({"l": [[1, 2]]})) is None
    assert csv_encode.encode(pl.DataFrame({"c": ["a"]}, schema={"c": pl.Categorical})) is None
    assert csv_encode.encode(pl.DataFrame()) is None


def test_a_view_outside_its_buffer_stops_the_loop() -> None:
    jit = csv_encode._jit()
    data = np.frombuffer(b"0123456789abcdefghij", np.uint8)
    views = np.zeros(16, np.uint8)
    views[:4] = np.frombuffer(np.int32(20).tobytes(), np.uint8)  # 20 bytes at offset 0
    cols = np.zeros((1, 7), np.int64)
    cols[0, jit.KIND], cols[0, jit.ADDR] = jit.STR, views.ctypes.data
    addrs = np.array([[data.ctypes.data]], np.int64)
    out = np.zeros(64, np.uint8)
    lit = np.zeros(1, np.uint8)
    for size, expect in ((20, 21), (19, -1)):  # the buffer holds the 20 bytes, or one less
        written = jit.encode_rows(cols, 1, addrs, np.array([[size]], np.int64), lit,
                                  out.ctypes.data)
        assert written == expect
    views[8:12] = np.frombuffer(np.int32(1).tobytes(), np.uint8)  # buffer 1 of 1
    assert jit.encode_rows(cols, 1, addrs, np.array([[20]], np.int64), lit, out.ctypes.data) == -1


_TEXT = st.text(alphabet=st.sampled_from(list('ab ,"\n\r\t;é€0')), max_size=40)


@st.composite
def frames(draw: st.DrawFn) -> pl.DataFrame:
    n = draw(st.integers(0, 30))
    cols: dict[str, pl.Series] = {}
    for k in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["int", "bool", "str", "null"]))
        nulls = st.none() if draw(st.booleans()) else st.nothing()
        if kind == "int":
            dtype = draw(st.sampled_from(list(_INTS)))
            lo, hi = _INTS[dtype]
            values = draw(st.lists(st.integers(lo, hi) | nulls, min_size=n, max_size=n))
            cols[f"c{k}"] = pl.Series(values, dtype=dtype)
        elif kind == "bool":
            values = draw(st.lists(st.booleans() | nulls, min_size=n, max_size=n))
            cols[f"c{k}"] = pl.Series(values, dtype=pl.Boolean)
        elif kind == "str":
            values = draw(st.lists(_TEXT | nulls, min_size=n, max_size=n))
            cols[f"c{k}"] = pl.Series(values, dtype=pl.String)
        else:
            cols[f"c{k}"] = pl.Series([None] * n, dtype=pl.Null)
    df = pl.DataFrame(cols)
    cut = draw(st.integers(0, n))
    return pl.concat([df.slice(0, cut), df.slice(cut)], rechunk=False) if n else df


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=frames(), prefix=st.none() | st.tuples(st.just("source"), _TEXT))
def test_random_frames(df: pl.DataFrame, prefix: tuple[str, str] | None) -> None:
    same(df, prefix)


def test_header_fields() -> None:
    assert csv_encode.header(["a", "b c", "d,e", 'f"g']) == b'a,b c,"d,e","f""g"\n'


def test_without_numba_polars_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_encode, "_jit", lambda: None)
    assert csv_encode.encode(pl.DataFrame({"a": [1]})) is None
    assert not csv_encode.worth_it(10**7)


def test_small_frames_do_not_load_numba() -> None:
    code = ("import sys; from ktrace_decode.pipeline import csv_encode as c; "
            "print(c.worth_it(100), 'numba' in sys.modules, c.worth_it(10**6))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False", "True"]
