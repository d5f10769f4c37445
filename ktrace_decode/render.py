"""Turn records into lines: text (like blkparse), JSON lines, CSV.

Formatting is vectorised on batches of rows, so ``ktrace decode`` never
formats a record in a Python loop and its memory is bounded by the batch size,
not by the dump.  The text format has two implementations that must agree
byte for byte (a test checks): :func:`text_lines`, plain Polars expressions
(the reference), and :func:`text_block`, the fast one: the fixed-width
prefix of every line (CPU, time, type, loss marker) is written by numpy into
one byte matrix through digit look-up tables, the iotimes messages are
formatted only for iotimes rows, and Polars concatenates prefix and message
straight into the output bytes.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from functools import cache

import numpy as np
import polars as pl
import pyarrow as pa

from .formats import layouts as L
from .records import arrow_series

BATCH_ROWS = 200_000

_TYPE_NAME = (
    pl.when(pl.col("type") == L.TYPE_TEXT).then(pl.lit("text"))
    .when(pl.col("type") == L.TYPE_IOTIMES).then(pl.lit("iotimes"))
    .otherwise(pl.format("type{}", pl.col("type")))
)
_IO_NAME = pl.col("io_type").replace_strict(
    {k: v for k, v in L.IOTIMES_REQUEST_TYPES.items()}, default=pl.col("io_type").cast(pl.String),
    return_dtype=pl.String)


def _seconds(col: str) -> pl.Expr:
    return pl.format("{}.{}", (pl.col(col) // 1_000_000).cast(pl.String).str.pad_start(5),
                     (pl.col(col) % 1_000_000).cast(pl.String).str.zfill(6))


def _prefix() -> pl.Expr:
    """What a text line holds before the message: CPU, s.us, type, lost-before marker."""
    lost = (
        pl.when(pl.col("ovfl") > 0).then(pl.format(">={} lost", pl.col("ovfl")))
        .otherwise(pl.lit(""))
    )
    return pl.format("{} {} {} {} ",
                     pl.col("cpu").cast(pl.String).str.pad_start(3), _seconds("time_us"),
                     _TYPE_NAME.str.pad_end(7), lost.str.pad_end(11))


def text_lines(df: pl.DataFrame) -> pl.Series:
    """One line per record: CPU, s.us, type, lost-before marker, message."""
    iot = pl.format(
        "ino={} {} off={} size={} lat={}us local={}us cs={}",
        pl.col("io_ino"), _IO_NAME, pl.col("io_offset"), pl.col("io_size"), pl.col("io_lat"),
        pl.col("io_local_delay"), pl.col("n_cs"))
    msg = (
        pl.when(pl.col("type") == L.TYPE_TEXT).then(pl.col("text"))
        .when(pl.col("type") == L.TYPE_IOTIMES).then(iot)
        .otherwise(pl.format("<{} payload bytes>", pl.col("pdu_len")))
    )
    flags = (
        pl.when(pl.col("long_text")).then(pl.lit(" [long: cut at NUL]")).otherwise(pl.lit(""))
    )
    return df.select(pl.format("{}{}{}", _prefix(), msg, flags)).to_series()


_LONG_FLAG = " [long: cut at NUL]"


def _iot_messages(sub: pl.DataFrame) -> pl.Series:
    """The message of iotimes rows (all of ``sub`` is iotimes)."""
    names = _io_names().gather(sub["io_type"])
    return sub.select(pl.format(
        "ino={} {} off={} size={} lat={}us local={}us cs={}",
        pl.col("io_ino"), pl.lit(names), pl.col("io_offset"), pl.col("io_size"), pl.col("io_lat"),
        pl.col("io_local_delay"), pl.col("n_cs"))).to_series()


@cache
def _io_names() -> pl.Series:
    """io_type -> its name (or the number), for every u16 (a gather, not a replace)."""
    return pl.Series([L.IOTIMES_REQUEST_TYPES.get(i, str(i)) for i in range(1 << 16)],
                     dtype=pl.String)


def _digits(n: int, width: int, blank_leading: bool) -> np.ndarray:
    """Decimal strings of 0..n-1, ``width`` bytes each (void dtype), right-aligned
    with leading zeros, or with leading blanks (the last digit always shown)."""
    v = np.arange(n, dtype=np.int64)
    pw = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    out = ((v[:, None] // pw) % 10 + ord("0")).astype(np.uint8)
    if blank_leading:
        out[(v[:, None] < pw) & (pw > 1)] = ord(" ")
    return np.ascontiguousarray(out).view(f"V{width}").ravel()


def _join(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Every hi[i] + lo[j] (i major): a table of len(hi) * len(lo) strings."""
    a, b = hi.itemsize, lo.itemsize
    out = np.empty((len(hi), len(lo), a + b), np.uint8)
    out[:, :, :a] = hi.view(np.uint8).reshape(len(hi), 1, a)
    out[:, :, a:] = lo.view(np.uint8).reshape(1, len(lo), b)
    return out.view(f"V{a + b}").ravel()


def _strings(strings: list[str]) -> np.ndarray:
    width = len(strings[0])
    return np.frombuffer("".join(strings).encode(), f"V{width}")


@cache
def _luts() -> dict[str, np.ndarray]:
    """Look-up tables: number -> its fixed-width text, as numpy void scalars."""
    return {
        "cpu": _digits(1000, 3, True),  # "  7"
        # "    5", "00010": 100000 and 1000000 entries, built from small tables
        "sec": np.concatenate([_digits(1000, 5, True),
                               _join(_digits(100, 2, True)[1:], _digits(1000, 3, False))]),
        "us": _join(_digits(1000, 3, False), _digits(1000, 3, False)),
        "iotimes": _strings(["iotimes"]),
        "lost": _strings([" " * 11] + [f">={i} lost".ljust(11) for i in range(1, 10000)]),
    }


#: The fixed-width prefix "CCC SSSSS.UUUUUU TTTTTTT LLLLLLLLLLL " (37 bytes).
_PREFIX = 37
_PREFIX_DTYPE = np.dtype({"names": ["cpu", "sec", "us", "type", "lost"],
                          "formats": ["V3", "V5", "V6", "V7", "V11"],
                          "offsets": [0, 4, 10, 17, 25], "itemsize": _PREFIX})
_TEMPLATE = np.frombuffer(b" " * 9 + b"." + b" " * 7 + b"text   " + b" " * 13, f"V{_PREFIX}")


def _prefix_matrix(cpu: np.ndarray, t: np.ndarray, typ: np.ndarray, ovfl: np.ndarray
                   ) -> np.ndarray:
    """The (n, 37) prefix bytes of rows that fit the fixed widths (cpu < 1000,
    time < 100000 s, known type, ovfl < 10000)."""
    lut = _luts()
    n = len(cpu)
    out = np.empty(n, _PREFIX_DTYPE)
    out.view(f"V{_PREFIX}")[:] = _TEMPLATE
    out["cpu"] = lut["cpu"][cpu]
    sec = t // 1_000_000
    out["sec"] = lut["sec"][sec]
    out["us"] = lut["us"][t - sec * 1_000_000]
    iot = np.flatnonzero(typ == L.TYPE_IOTIMES)  # the template says "text"
    if iot.size:
        out["type"][iot] = lut["iotimes"][0]
    lost = np.flatnonzero(ovfl)
    if lost.size:
        out["lost"][lost] = lut["lost"][ovfl[lost]]
    return out.view(np.uint8).reshape(n, _PREFIX)


def text_block(df: pl.DataFrame, nul_cut: bool = True) -> list[pa.Buffer]:
    """The text lines of ``df`` (each ending in a newline) as blocks of bytes to
    write one after the other (Arrow buffers, not copies).

    Together byte for byte ``"".join(line + "\n" for line in text_lines(df))``.
    ``nul_cut=False``: the texts of ``df`` may still hold a NUL (records_frame
    with nul_cut=False); a NUL in the output (found by one memchr) means some
    text must be cut there, and those rows are fixed then.
    """
    n = df.height
    if n == 0:
        return []
    if not nul_cut:
        out = text_block(df, True)
        if not any(_has_nul(b) for b in out):
            return out
        return text_block(df.with_columns(_cut_at_nul(df["text"])), True)
    cpu = df["cpu"].to_numpy()
    t = df["time_us"].to_numpy()
    typ = df["type"].to_numpy()
    ovfl = df["ovfl"].to_numpy()
    known = (typ == L.TYPE_TEXT) | (typ == L.TYPE_IOTIMES)
    fits = known & (cpu < 1000) & (t < 100_000 * 1_000_000) & (ovfl < 10_000)
    if fits.all():
        mat = _prefix_matrix(cpu, t, typ, ovfl)
    else:
        mat = _prefix_matrix(np.where(fits, cpu, 0), np.where(fits, t, 0),
                             np.where(fits, typ, 0), np.where(fits, ovfl, 0))
    views = np.zeros((n, 4), np.uint32)
    views[:, 0] = _PREFIX
    views[:, 1] = mat[:, :4].copy().view("<u4").ravel()
    views[:, 3] = np.arange(n, dtype=np.uint32) * _PREFIX
    arr = pa.Array.from_buffers(pa.binary_view(), n,
                                [None, pa.py_buffer(views), pa.py_buffer(mat)])
    prefix = arrow_series("p", arr).cast(pl.String)
    odd = np.flatnonzero(~fits)
    if odd.size:  # rare: wide CPU/time/loss values, unknown types (reference formatter)
        prefix = prefix.scatter(odd, _prefix_strings(df[odd]))
    msg = df["text"]
    iot = np.flatnonzero(typ == L.TYPE_IOTIMES)
    if iot.size:
        msg = msg.scatter(iot, _iot_messages(df[iot]))
    unk = np.flatnonzero(~known)
    if unk.size:
        msg = msg.scatter(unk, df[unk].select(
            pl.format("<{} payload bytes>", pl.col("pdu_len"))).to_series())
    lng = np.flatnonzero(df["long_text"].to_numpy())
    if lng.size:
        msg = msg.scatter(lng, msg.gather(lng) + _LONG_FLAG)
    lines = pl.select(pl.concat_str([pl.lit(prefix), pl.lit(msg), pl.lit("\n")])).to_series()
    return _line_bytes(lines)


def _cut_at_nul(text: pl.Series) -> pl.Series:
    """Texts cut at their first NUL, then one trailing newline stripped (the
    decoder's rule, for texts that were left whole)."""
    return pl.DataFrame({"text": text}).select(
        pl.when(pl.col("text").str.contains("\x00", literal=True))
        .then(pl.col("text").str.split("\x00").list.first().str.strip_suffix("\n"))
        .otherwise(pl.col("text"))).to_series()


try:
    _memchr = ctypes.CDLL(None).memchr
    _memchr.restype = ctypes.c_void_p
    _memchr.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)
except (OSError, AttributeError):  # no C library to ask: numpy
    _memchr = None


def _has_nul(buf: pa.Buffer) -> bool:
    if _memchr is not None:
        return bool(buf.size) and _memchr(buf.address, 0, buf.size) is not None
    return bool((np.frombuffer(buf, np.uint8) == 0).any())


def _line_bytes(lines: pl.Series) -> list[pa.Buffer]:
    """The bytes of ``lines`` back to back, without copying them when possible.

    Polars writes the strings of a fresh column one after the other into its
    data buffers; when the views say so (checked here), those buffers *are*
    the output.  Otherwise the column is copied into one contiguous buffer.
    """
    n = len(lines)
    arr = lines.to_arrow(compat_level=pl.CompatLevel.newest())
    bufs = arr.buffers()
    if isinstance(arr, pa.StringViewArray) and bufs[0] is None and len(bufs) > 2 and n:
        v = np.frombuffer(bufs[1], np.uint32, 4 * n, 16 * arr.offset).reshape(n, 4)
        ln, bi, off = v[:, 0], v[:, 2], v[:, 3]  # offsets < 2**31: u32 sums cannot wrap
        new = np.flatnonzero(bi[1:] != bi[:-1]) + 1  # rows that start a new buffer
        cont = off[1:] == off[:-1] + ln[:-1]
        cont[new - 1] = True
        if ((ln > 12).all() and cont.all()  # nothing inlined, back to back in each buffer
                and (off[new] == 0).all() and (bi[new] == bi[new - 1] + 1).all()):
            out = []
            for a, b in zip([0, *new.tolist()], [*new.tolist(), n], strict=True):
                out.append(bufs[2 + int(bi[a])][int(off[a]) : int(off[b - 1]) + int(ln[b - 1])])
            return out
    large = lines.to_arrow(compat_level=pl.CompatLevel.oldest())
    offsets = np.frombuffer(large.buffers()[1], np.int64, n + 1, large.offset * 8)
    return [large.buffers()[2][int(offsets[0]) : int(offsets[-1])]]


def text_bytes(df: pl.DataFrame) -> bytes:
    """:func:`text_block` joined into one bytes object (for tests and small outputs)."""
    return b"".join(bytes(b) for b in text_block(df))


def _prefix_strings(df: pl.DataFrame) -> pl.Series:
    """The prefix (everything before the message) by the reference expressions."""
    return df.select(_prefix()).to_series()


def batches(df: pl.DataFrame, rows: int = BATCH_ROWS) -> Iterator[pl.DataFrame]:
    """Zero-copy slices of ``df``."""
    for off in range(0, df.height, rows):
        yield df.slice(off, rows)


def _portable(df: pl.DataFrame) -> pl.DataFrame:
    # Raw payloads of unknown-type records as hex: JSON and CSV cannot hold bytes.
    return df.with_columns(pl.col("payload").bin.encode("hex"))


def jsonl_text(df: pl.DataFrame) -> str:
    """One JSON object per record."""
    return _portable(df).write_ndjson()


def csv_text(df: pl.DataFrame, header: bool) -> str:
    """The batch as CSV (payload as hex)."""
    return _portable(df).write_csv(include_header=header)
