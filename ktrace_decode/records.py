"""From record offsets to the records table (schema.RECORDS) of one CPU.

All columns are computed with numpy over every record at once; text is
gathered into one contiguous Arrow buffer with a mask, never sliced per record
in Python.  Only rare records take a Python path: non-ASCII text (decoded with
replacement) and unknown record types (payload kept raw).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from . import schema
from .formats import layouts as L
from .scan import gather

_H = L.HEADER_SIZE
_IOT = L.IOTIMES_HEADER_SIZE
_CS = L.IOTIMES_CS_SIZE
_LONG = L.KTRACE_LOG_BUF_SIZE
#: Text bytes gathered per batch, to bound the transient mask memory.
_TEXT_BATCH = 1 << 26


def text_lengths(buf: np.ndarray, starts: np.ndarray, pdu: np.ndarray) -> np.ndarray:
    """Bytes of message text per text record (before the first-NUL cut).

    pdu_len - 1 (the NUL), or 255 for the kernel's long-message bug.
    """
    lens = np.where(pdu > _LONG, _LONG - 1, np.maximum(pdu - 1, 0))
    return lens.astype(np.int64)


def _gather_text(buf: np.ndarray, pstart: np.ndarray, lens: np.ndarray) -> pl.Series:
    """A String series of buf[pstart[i] : pstart[i] + lens[i]] for every i."""
    n = len(pstart)
    if n == 0:
        return pl.Series("text", [], dtype=pl.String)
    chunks: list[pl.Series] = []
    cum = np.cumsum(lens)
    i = 0
    while i < n:
        # A batch is a run of records whose text adds up to about _TEXT_BATCH.
        j = int(np.searchsorted(cum, (cum[i - 1] if i else 0) + _TEXT_BATCH, side="right"))
        j = max(j, i + 1)
        chunks.append(_gather_batch(buf, pstart[i:j], lens[i:j]))
        i = j
    return pl.concat(chunks) if len(chunks) > 1 else chunks[0]


def _gather_batch(buf: np.ndarray, pstart: np.ndarray, lens: np.ndarray) -> pl.Series:
    lo = int(pstart.min())
    hi = int((pstart + lens).max())
    # +1 at each start, -1 at each end; the running sum marks text bytes.
    # (Texts never overlap, so the sum is 0 or 1 and int8 cannot overflow.)
    mark = np.zeros(hi - lo + 1, np.int8)
    # Starts are distinct and ends are distinct, so plain fancy += is exact.
    mark[pstart - lo] += 1
    mark[pstart + lens - lo] -= 1
    mask = np.cumsum(mark[:-1], dtype=np.int8).view(bool)
    data = buf[lo:hi][mask]
    offsets = np.zeros(len(lens) + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    # Only records with a byte >= 0x80 can be invalid UTF-8; find them vectorised.
    high = data >= 0x80
    non_ascii = np.zeros(len(lens), bool)
    if high.any():
        per_rec = np.add.reduceat(high.astype(np.int64), np.minimum(offsets[:-1], len(data) - 1))
        non_ascii = (per_rec > 0) & (lens > 0)
    ascii_data = data
    if non_ascii.any():
        ascii_data = data.copy()
        ascii_data[high] = ord("?")  # placeholder, replaced below
    arr = pa.LargeStringArray.from_buffers(
        len(lens), pa.py_buffer(offsets), pa.py_buffer(ascii_data))
    s = pl.Series("text", pl.from_arrow(arr), dtype=pl.String)
    if non_ascii.any():
        idx = np.flatnonzero(non_ascii)
        vals = [bytes(data[offsets[k]:offsets[k + 1]]).decode("utf-8", "replace") for k in idx]
        s = s.scatter(idx, pl.Series(vals, dtype=pl.String))
    return s


def cpu_frames(buf: np.ndarray, starts: np.ndarray, resynced: np.ndarray,
               cpu: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The records (schema.RECORDS, in seq order) and cs entries (schema.CS) of one CPU."""
    n = len(starts)
    hdr = gather(buf, starts, L.HEADER_DTYPE)
    typ = hdr["type"]
    pdu = hdr["pdu_len"].astype(np.int64)
    time = hdr["time"]
    is_text = typ == L.TYPE_TEXT
    is_iot = typ == L.TYPE_IOTIMES
    unknown = ~(is_text | is_iot)

    lens = np.where(is_text, text_lengths(buf, starts, pdu), 0)
    text = _gather_text(buf, starts + _H, lens)
    # Cut at the first NUL (only odd records have one) and strip one trailing \n.
    text = (
        pl.DataFrame({"t": text})
        .select(
            pl.when(pl.col("t").str.contains("\x00", literal=True))
            .then(pl.col("t").str.split("\x00").list.first())
            .otherwise(pl.col("t"))
            .str.strip_suffix("\n")
        )
        .to_series()
    )

    iot_pos = starts[is_iot] + _H
    iot = gather(buf, iot_pos, L.IOTIMES_HEADER_DTYPE)
    n_cs = np.where(is_iot, (pdu - _IOT) // _CS, 0)

    backwards = np.zeros(n, bool)
    if n > 1:
        backwards[1:] = time[1:] < time[:-1]

    cols: dict[str, object] = {
        "cpu": np.full(n, cpu, np.uint16),
        "seq": np.arange(n, dtype=np.uint32),
        "offset": starts.astype(np.uint64),
        "time_us": time,
        "type": typ,
        "ovfl": hdr["ovfl"],
        "pdu_len": hdr["pdu_len"],
    }
    df = pl.DataFrame(cols)
    df = df.with_columns(pl.Series("text", text).set(pl.Series(~is_text), None))
    for name, src in (("io_chunk", "chunk"), ("io_offset", "offset"), ("io_size", "size"),
                      ("io_start_time", "start_time"), ("io_local_delay", "local_delay"),
                      ("io_lat", "lat"), ("io_ino", "ino"), ("io_type", "type"),
                      ("io_cses", "cses"), ("io_chid", "pad1")):
        full = np.zeros(n, iot.dtype[src])
        full[is_iot] = iot[src]
        df = df.with_columns(pl.Series(name, full).set(pl.Series(~is_iot), None))
    df = df.with_columns(
        pl.Series("n_cs", n_cs.astype(np.uint16)).set(pl.Series(~is_iot), None),
        pl.Series("long_text", is_text & (pdu > _LONG)),
        pl.Series("unknown_type", unknown),
        pl.Series("resynced", resynced.astype(bool)),
        pl.Series("time_backwards", backwards),
        _payloads(buf, starts, pdu, unknown),
    )

    cs = _cs_frame(buf, iot_pos, n_cs[is_iot], np.flatnonzero(is_iot), cpu)
    return schema.conform(df, schema.RECORDS), cs


def _payloads(buf: np.ndarray, starts: np.ndarray, pdu: np.ndarray,
              unknown: np.ndarray) -> pl.Series:
    vals: list[bytes | None] = [None] * len(starts)
    for k in np.flatnonzero(unknown):  # unknown types are rare: keep them raw
        s = int(starts[k]) + _H
        vals[k] = bytes(buf[s : s + int(pdu[k])])
    return pl.Series("payload", vals, dtype=pl.Binary)


def _cs_frame(buf: np.ndarray, iot_pos: np.ndarray, counts: np.ndarray,
              seqs: np.ndarray, cpu: int) -> pl.DataFrame:
    total = int(counts.sum()) if counts.size else 0
    if total == 0:
        return schema.empty(schema.CS)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    idx = np.arange(total) - first
    pos = np.repeat(iot_pos + _IOT, counts) + idx * _CS
    ent = gather(buf, pos, L.IOTIMES_CS_DTYPE)
    return pl.DataFrame({
        "cpu": np.full(total, cpu, np.uint16),
        "seq": np.repeat(seqs, counts).astype(np.uint32),
        "idx": idx.astype(np.uint8),
        "csid": ent["csid"],
        "misc": ent["misc"],
        "ts_net": ent["ts_net"],
        "ts_io": ent["ts_io"],
    })
