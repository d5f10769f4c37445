"""Decode a dump: per-CPU scan, records tables, one merged stream, a damage report.

    decoded = decode("dump/")            # directory, traceN file, or .tar[.gz]
    decoded.records                      # polars DataFrame, schema.RECORDS
    decoded.cs                           # iotimes chunk-server entries, schema.CS
    decoded.cpus                         # per-CPU CpuReport (damage, drops, layout)

The merged order is (time_us, cpu, seq): the clock is the same on every CPU,
and seq keeps each CPU's own order where timestamps tie.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from . import schema
from .errors import InputError, UsageError
from .formats import layouts as L
from .records import cpu_frames
from .scan import ScanResult, Skip, scan_stream
from .sources import Dump, TraceSource, open_dump

LAYOUTS = ("auto", "stream", "raw")

Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass
class CpuReport:
    """What decoding one per-CPU file found, damage included."""

    cpu: int
    source: str
    layout: str
    size: int
    records: int = 0
    first_time_us: int | None = None
    last_time_us: int | None = None
    skips: list[Skip] = field(default_factory=list)
    resyncs: int = 0
    padding_bytes: int = 0
    stale_bytes: int = 0
    long_text: int = 0
    unknown_type: int = 0
    time_backwards: int = 0
    drop_events: int = 0  # records with ovfl > 0
    dropped_at_least: int = 0  # sum of ovfl (each is modulo 65536: "at least")
    subbuf_order: list[int] = field(default_factory=list)  # raw: ring slots in time order

    @property
    def skipped_bytes(self) -> int:
        return sum(s.end - s.start for s in self.skips)

    @property
    def truncated_tail(self) -> Skip | None:
        return next((s for s in self.skips if s.kind == "truncated"), None)

    @property
    def damaged(self) -> bool:
        return bool(self.skips or self.unknown_type or self.long_text)


@dataclass
class Decoded:
    """The decoded dump: records, chunk-server entries and the damage report."""

    path: str
    records: pl.DataFrame
    cs: pl.DataFrame
    cpus: list[CpuReport]
    prometheus: bytes | None = None

    @property
    def n_records(self) -> int:
        return self.records.height

    @property
    def span_us(self) -> tuple[int, int] | None:
        if self.records.is_empty():
            return None
        t = self.records["time_us"]
        return int(t.min()), int(t.max())  # type: ignore[arg-type]

    @property
    def skipped_bytes(self) -> int:
        return sum(c.skipped_bytes for c in self.cpus)

    @property
    def resyncs(self) -> int:
        return sum(c.resyncs for c in self.cpus)

    @property
    def dropped_at_least(self) -> int:
        return sum(c.dropped_at_least for c in self.cpus)

    @property
    def damaged(self) -> bool:
        """Anything a --strict run must fail on (drops are not damage: the kernel reported them)."""
        return any(c.damaged for c in self.cpus)

    def drop_windows(self) -> pl.DataFrame:
        """One row per record with ovfl > 0: at least ``ovfl`` records were lost on
        ``cpu`` between ``after_us`` (its previous record; null if none) and ``before_us``."""
        return drop_windows(self.records)

    def skips_frame(self) -> pl.DataFrame:
        """Every skipped byte range, per CPU and file."""
        rows = [(c.cpu, c.source, s.start, s.end, s.end - s.start, s.kind)
                for c in self.cpus for s in c.skips]
        return pl.DataFrame(rows, schema={"cpu": pl.UInt16, "source": pl.String,
                                          "start": pl.UInt64, "end": pl.UInt64,
                                          "bytes": pl.UInt64, "kind": pl.String},
                            orient="row")


def drop_windows(records: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Drop windows from a records table (see :meth:`Decoded.drop_windows`)."""
    lf = records.lazy() if isinstance(records, pl.DataFrame) else records
    return (
        lf.select("cpu", "seq", "time_us", "ovfl")
        .sort("cpu", "seq")
        .with_columns(pl.col("time_us").shift(1).over("cpu").alias("after_us"))
        .filter(pl.col("ovfl") > 0)
        .select("cpu", "seq", "after_us", pl.col("time_us").alias("before_us"),
                pl.col("ovfl").cast(pl.UInt32).alias("at_least"))
        .collect()
    )


def detect_layout(data: np.ndarray, subbuf_size: int, n_subbufs: int) -> str:
    """"raw" when the file is exactly n_subbufs x subbuf_size and every sub-buffer
    starts with a record header or zeros; else "stream"."""
    size = int(data.size)
    if size == 0 or size != subbuf_size * n_subbufs:
        return "stream"
    for i in range(n_subbufs):
        head = bytes(data[i * subbuf_size : i * subbuf_size + 2])
        if head not in (b"\x9c\xf5", b"\0\0"):
            return "stream"
    return "raw"


def _scan_raw(src: TraceSource, subbuf_size: int) -> tuple[ScanResult, list[int]]:
    if src.size % subbuf_size:
        raise InputError(
            f"raw image of {src.size} bytes is not a multiple of the sub-buffer size "
            f"{subbuf_size} (see --subbuf-size)", src.name)
    parts: list[tuple[int, int, ScanResult]] = []
    for slot in range(src.size // subbuf_size):
        r = scan_stream(src.data, slot * subbuf_size, (slot + 1) * subbuf_size, raw_subbuf=True)
        first = int(L.TraceHeader.parse(bytes(src.data[r.starts[0]:r.starts[0] + 16]))["time"]) \
            if len(r.starts) else -1
        parts.append((first, slot, r))
    used = sorted((p for p in parts if p[0] >= 0), key=lambda p: (p[0], p[1]))
    merged = ScanResult(
        starts=np.concatenate([p[2].starts for p in used]) if used else np.zeros(0, np.int64),
        resynced=np.concatenate([p[2].resynced for p in used]) if used else np.zeros(0, bool),
        skips=sorted((s for p in parts for s in p[2].skips), key=lambda s: s.start),
        resyncs=sum(p[2].resyncs for p in parts),
        padding_bytes=sum(p[2].padding_bytes for p in parts),
        stale_bytes=sum(p[2].stale_bytes for p in parts),
    )
    return merged, [p[1] for p in used]


def decode_source(src: TraceSource, layout: str = "auto",
                  subbuf_size: int = L.RELAY_SUBBUF_SIZE,
                  n_subbufs: int = L.RELAY_N_SUBBUFS,
                  ) -> tuple[pl.DataFrame, pl.DataFrame, CpuReport]:
    """Decode one per-CPU file: its records (seq order), cs entries and report."""
    lay = detect_layout(src.data, subbuf_size, n_subbufs) if layout == "auto" else layout
    order: list[int] = []
    if lay == "raw":
        res, order = _scan_raw(src, subbuf_size)
    else:
        res = scan_stream(src.data)
    recs, cs = cpu_frames(src.data, res.starts, res.resynced, src.cpu)
    rep = CpuReport(cpu=src.cpu, source=src.name, layout=lay, size=src.size,
                    records=recs.height, skips=res.skips, resyncs=res.resyncs,
                    padding_bytes=res.padding_bytes, stale_bytes=res.stale_bytes,
                    subbuf_order=order)
    if recs.height:
        st = recs.select(
            pl.col("time_us").min().alias("first"), pl.col("time_us").max().alias("last"),
            pl.col("long_text").sum().alias("long"), pl.col("unknown_type").sum().alias("unk"),
            pl.col("time_backwards").sum().alias("back"),
            (pl.col("ovfl") > 0).sum().alias("drops"), pl.col("ovfl").cast(pl.UInt64).sum(),
        ).row(0)
        (rep.first_time_us, rep.last_time_us, rep.long_text, rep.unknown_type,
         rep.time_backwards, rep.drop_events, rep.dropped_at_least) = (int(v) for v in st)
    return recs, cs, rep


def decode_dump(dump: Dump, layout: str = "auto", subbuf_size: int = L.RELAY_SUBBUF_SIZE,
                n_subbufs: int = L.RELAY_N_SUBBUFS, progress: Progress | None = None) -> Decoded:
    """Decode every CPU of an opened dump and merge them."""
    if layout not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r} (choose from {', '.join(LAYOUTS)})")
    if subbuf_size <= L.HEADER_SIZE or n_subbufs < 1:
        raise UsageError("--subbuf-size must exceed 16 bytes and --n-subbufs be at least 1")
    frames: list[pl.DataFrame] = []
    css: list[pl.DataFrame] = []
    reports: list[CpuReport] = []
    for i, src in enumerate(dump.traces):
        if progress:
            progress(src.name, i, len(dump.traces))
        recs, cs, rep = decode_source(src, layout, subbuf_size, n_subbufs)
        frames.append(recs)
        css.append(cs)
        reports.append(rep)
    if progress:
        progress("merge", len(dump.traces), len(dump.traces))
    records = pl.concat(frames).sort("time_us", "cpu", "seq") if frames else schema.empty(
        schema.RECORDS)
    cs_all = pl.concat(css) if css else schema.empty(schema.CS)
    return Decoded(dump.path, records, cs_all, reports, dump.prometheus)


def decode(path: str | Path, layout: str = "auto", subbuf_size: int = L.RELAY_SUBBUF_SIZE,
           n_subbufs: int = L.RELAY_N_SUBBUFS, progress: Progress | None = None) -> Decoded:
    """Open and decode a dump directory, a trace file or a tar archive."""
    return decode_dump(open_dump(path), layout, subbuf_size, n_subbufs, progress)


def require_records(decoded: Decoded) -> Decoded:
    """Raise InputError when nothing in the input is a ktrace record."""
    if decoded.n_records == 0:
        sizes = sum(c.size for c in decoded.cpus)
        if sizes == 0:
            raise InputError("every trace file is empty: no records", decoded.path)
        raise InputError(
            f"no ktrace records found in {sizes} bytes (not a ktrace dump?)", decoded.path)
    return decoded
