"""Decode a dump: per-CPU scan, records tables, one merged stream, a damage report.

    decoded = decode("dump/")            # directory, traceN file, or .tar[.gz]
    decoded.records                      # polars DataFrame, schema.RECORDS
    decoded.cs                           # iotimes chunk-server entries, schema.CS
    decoded.cpus                         # per-CPU CpuReport (damage, drops, layout)

The merged order is (time_us, cpu, seq): the clock is the same on every CPU,
and seq keeps each CPU's own order where timestamps tie.

Speed: the CPUs are scanned in parallel (numpy and Polars release the GIL),
the table is written in merged order in one pass per column (records.py).
``ktrace decode`` does not build the table: :class:`DumpStream` merges the
CPUs batch by batch in bounded memory.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import mmap
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from . import records_compiled, schema
from .errors import InputError, UsageError
from .formats import layouts as L
from .records import Part, cs_frame, pool, records_frame
from .scan import CHUNK, Scanner, ScanResult, Skip, Walk, compiled_walk, scan_stream
from .sources import Dump, TraceSource, mapping_of, open_dump

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

    # Counts and span come from the per-CPU reports, which the scan fills for
    # every record: the same numbers for a whole decode and for a stream's
    # record-less :meth:`DumpStream.decoded`.
    @property
    def n_records(self) -> int:
        return sum(c.records for c in self.cpus)

    @property
    def span_us(self) -> tuple[int, int] | None:
        firsts = [c.first_time_us for c in self.cpus if c.first_time_us is not None]
        lasts = [c.last_time_us for c in self.cpus if c.last_time_us is not None]
        return (min(firsts), max(lasts)) if firsts else None

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

    def files_frame(self) -> pl.DataFrame:
        """Which file each CPU was read from (cpu, file)."""
        return pl.DataFrame({"cpu": [c.cpu for c in self.cpus],
                             "file": [c.source for c in self.cpus]},
                            schema={"cpu": pl.UInt16, "file": pl.String})

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
        first = int(r.hdr["time"][0]) if len(r.starts) else -1  # type: ignore[index]
        parts.append((first, slot, r))
    used = sorted((p for p in parts if p[0] >= 0), key=lambda p: (p[0], p[1]))
    merged = ScanResult(
        starts=np.concatenate([p[2].starts for p in used]) if used else np.zeros(0, np.int64),
        resynced=np.concatenate([p[2].resynced for p in used]) if used else np.zeros(0, bool),
        hdr=np.concatenate([p[2].hdr for p in used]) if used else np.zeros(0, L.HEADER_DTYPE),
        skips=sorted((s for p in parts for s in p[2].skips), key=lambda s: s.start),
        resyncs=sum(p[2].resyncs for p in parts),
        padding_bytes=sum(p[2].padding_bytes for p in parts),
        stale_bytes=sum(p[2].stale_bytes for p in parts),
    )
    return merged, [p[1] for p in used]


def _layout(src: TraceSource, layout: str, subbuf_size: int, n_subbufs: int) -> str:
    return detect_layout(src.data, subbuf_size, n_subbufs) if layout == "auto" else layout


def _report(src: TraceSource, lay: str, res: ScanResult, order: list[int]) -> CpuReport:
    return CpuReport(cpu=src.cpu, source=src.name, layout=lay, size=src.size,
                     skips=res.skips, resyncs=res.resyncs, padding_bytes=res.padding_bytes,
                     stale_bytes=res.stale_bytes, subbuf_order=order)


def _count(rep: CpuReport, part: Part) -> None:
    """Add one batch of records to the report (counts, span, flags, drops)."""
    n = len(part)
    if not n:
        return
    hdr = part.header()
    t, typ, pdu, ovfl = hdr["time"], hdr["type"], hdr["pdu_len"], hdr["ovfl"]
    rep.records += n
    lo, hi = int(t.min()), int(t.max())
    rep.first_time_us = lo if rep.first_time_us is None else min(rep.first_time_us, lo)
    rep.last_time_us = hi if rep.last_time_us is None else max(rep.last_time_us, hi)
    is_text = typ == L.TYPE_TEXT
    rep.long_text += int(np.count_nonzero(is_text & (pdu > L.KTRACE_LOG_BUF_SIZE)))
    rep.unknown_type += int(np.count_nonzero(~is_text & (typ != L.TYPE_IOTIMES)))
    rep.time_backwards += int(np.count_nonzero(part.time_backwards()))
    drops = ovfl[ovfl > 0]
    rep.drop_events += len(drops)
    rep.dropped_at_least += int(drops.sum(dtype=np.uint64))


def scan_parts(src: TraceSource, layout: str = "auto",
               subbuf_size: int = L.RELAY_SUBBUF_SIZE, n_subbufs: int = L.RELAY_N_SUBBUFS,
               chunk: int = CHUNK, walk: Walk | None = None) -> Generator[Part, None, CpuReport]:
    """Find the records of one per-CPU file, batch by batch (at most ``chunk`` bytes
    of stream each); the generator's return value is the file's report.
    ``walk``: the compiled chain walk (:func:`.scan.compiled_walk`), if wanted."""
    lay = _layout(src, layout, subbuf_size, n_subbufs)
    if lay == "raw":
        res, order = _scan_raw(src, subbuf_size)
        rep = _report(src, lay, res, order)
        part = Part(src.data, res.starts, res.resynced, src.cpu, res.hdr)
        _count(rep, part)
        if len(part):
            yield part
        return rep
    sc = Scanner(src.data, chunk=chunk, walk=walk)
    rep = CpuReport(cpu=src.cpu, source=src.name, layout=lay, size=src.size)
    prev: int | None = None
    for res in sc.chunks():
        part = Part(src.data, res.starts, res.resynced, src.cpu, res.hdr, rep.records, prev)
        _count(rep, part)
        prev = int(part.header()["time"][-1])
        yield part
    rep.skips, rep.resyncs = sc.skips, sc.resyncs
    return rep


def scan_source(src: TraceSource, layout: str = "auto",
                subbuf_size: int = L.RELAY_SUBBUF_SIZE,
                n_subbufs: int = L.RELAY_N_SUBBUFS,
                walk: Walk | None = None) -> tuple[list[Part], CpuReport]:
    """Find every record of one per-CPU file: (its batches, its report)."""
    gen = scan_parts(src, layout, subbuf_size, n_subbufs, walk=walk)
    parts: list[Part] = []
    while True:
        try:
            parts.append(next(gen))
        except StopIteration as stop:
            return parts, stop.value


def decode_source(src: TraceSource, layout: str = "auto",
                  subbuf_size: int = L.RELAY_SUBBUF_SIZE,
                  n_subbufs: int = L.RELAY_N_SUBBUFS,
                  ) -> tuple[pl.DataFrame, pl.DataFrame, CpuReport]:
    """Decode one per-CPU file: its records (seq order), cs entries and report."""
    parts, rep = scan_source(src, layout, subbuf_size, n_subbufs)
    if not parts:
        return schema.empty(schema.RECORDS), schema.empty(schema.CS), rep
    return records_frame(parts), cs_frame(parts), rep


def _check_options(layout: str, subbuf_size: int, n_subbufs: int) -> None:
    if layout not in LAYOUTS:
        raise UsageError(f"unknown layout {layout!r} (choose from {', '.join(LAYOUTS)})")
    if subbuf_size <= L.HEADER_SIZE or n_subbufs < 1:
        raise UsageError("--subbuf-size must exceed 16 bytes and --n-subbufs be at least 1")


@contextlib.contextmanager
def _small_pages() -> Iterator[None]:
    """numpy asks for transparent huge pages for arrays of 4 MiB and more; where
    fresh memory is expensive (a VM whose host takes freed memory back) each
    2 MiB fault is slow: a 10M-record table took ~1 s more system time with
    them (median of 5, side by side).  Restored afterwards."""
    setter = getattr(getattr(np, "_core", None), "multiarray", None)
    setter = getattr(setter, "_set_madvise_hugepage", None)
    if setter is None:
        yield
        return
    previous = setter(False)
    try:
        yield
    finally:
        setter(previous)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """No cyclic GC passes while decoding (they walked every object of the
    process, ~4% of a 10M-record decode; decoding makes no cycles)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def decode_dump(dump: Dump, layout: str = "auto", subbuf_size: int = L.RELAY_SUBBUF_SIZE,
                n_subbufs: int = L.RELAY_N_SUBBUFS, progress: Progress | None = None) -> Decoded:
    """Decode every CPU of an opened dump and merge them."""
    with _small_pages(), _no_gc():
        return _decode_dump(dump, layout, subbuf_size, n_subbufs, progress)


def _decode_dump(dump: Dump, layout: str, subbuf_size: int, n_subbufs: int,
                 progress: Progress | None) -> Decoded:
    _check_options(layout, subbuf_size, n_subbufs)
    parts: list[Part] = []
    reports: list[CpuReport] = []
    # A big dump is worth loading numba for (~0.3 s): the scan then follows
    # the chain compiled, and the table is written by compiled loops.
    compiled = big_dump(dump, COMPILED_TABLE_BYTES) and records_compiled.available()
    walk = compiled_walk() if compiled else None
    # CPUs are scanned in parallel (numpy and the walk release the GIL).
    scans = [pool().submit(scan_source, src, layout, subbuf_size, n_subbufs, walk)
             for src in dump.traces]
    for i, (src, fut) in enumerate(zip(dump.traces, scans, strict=True)):
        if progress:
            progress(src.name, i, len(dump.traces))
        cpu_parts, rep = fut.result()
        parts += cpu_parts
        reports.append(rep)
    if progress:
        progress("merge", len(dump.traces), len(dump.traces))
    if parts:
        records, cs_all = merged_frames(parts, compiled=compiled)
    else:
        records, cs_all = schema.empty(schema.RECORDS), schema.empty(schema.CS)
    return Decoded(dump.path, records, cs_all, reports, dump.prometheus)


def merged_frames(parts: list[Part], columns: list[str] | None = None,
                  nul_cut: bool = True, compiled: bool = False
                  ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The merged records table of ``parts`` and their chunk-server entries.

    The entries are read on a worker while this thread merges (the merge
    itself is one thread's work).  ``compiled``: every column wanted, by
    the compiled loops where they can (:mod:`.records_compiled`).
    """
    cs = pool().submit(cs_frame, parts)
    records = None
    if compiled and columns is None and nul_cut:
        records = records_compiled.frame(parts)
    if records is None:
        records = records_frame(parts, columns=columns, merge=True, nul_cut=nul_cut)
    return records, cs.result()


#: Trace bytes from which a streamed export or analyze scans with the
#: compiled walk: numba is loaded for its batches from about there anyway.
COMPILED_BYTES = 8 << 20
#: Trace bytes from which decode() loads numba (~0.3 s) for its scan and
#: table: below, the numpy table is as quick (measured: 0.46 against 0.73 s
#: for 94 MiB, 2.3 against 1.7 s for 939 MiB; they meet at ~300 MiB).
COMPILED_TABLE_BYTES = 256 << 20


def big_dump(dump: Dump, threshold: int | None = None) -> bool:
    """Has ``dump`` at least ``threshold`` trace bytes (:data:`COMPILED_BYTES`)?"""
    limit = COMPILED_BYTES if threshold is None else threshold
    return sum(src.size for src in dump.traces) >= limit


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


#: Records per batch of the streaming decoder (bounded memory, recycled buffers).
STREAM_BATCH = 1 << 17
#: Bytes of one file scanned per step by the streaming decoder.
STREAM_CHUNK = 1 << 22
#: The streaming merge waits this long (trace time) behind the slowest CPU
#: before it prints a record, so records that a CPU wrote slightly out of
#: time order (the per-CPU races of section 2) still come out sorted.
MERGE_SLACK_US = 10_000
#: Pending records above which the streaming merge prints the oldest anyway
#: (a CPU whose clock stands still must not make memory grow without bound).
PENDING_CAP = 8 * STREAM_BATCH


class DumpStream:
    """Decode a dump as a stream of merged batches, in bounded memory (``ktrace decode``).

        stream = DumpStream(open_dump(path))
        for batch in stream:        # records (schema.RECORDS columns), merged order
            ...
        stream.cpus                 # per-CPU reports, complete once iterated

    Every CPU is scanned chunk by chunk; a k-way merge prints the records of
    all CPUs that are older than the slowest CPU's progress (minus
    ``MERGE_SLACK_US``), sorted by (time, cpu, seq).  This is exactly the order
    of :func:`decode` unless a CPU's records go back in time by more than the
    slack (or the pending cap forces them out): such a record is printed where
    its CPU wrote it.  Pages of mapped files that were printed are given back.
    """

    def __init__(self, dump: Dump, layout: str = "auto",
                 subbuf_size: int = L.RELAY_SUBBUF_SIZE, n_subbufs: int = L.RELAY_N_SUBBUFS,
                 columns: list[str] | None = None, batch: int = STREAM_BATCH,
                 chunk: int = STREAM_CHUNK, release_lag: int = 0, nul_cut: bool = True,
                 walk: Walk | None = None) -> None:
        _check_options(layout, subbuf_size, n_subbufs)
        self.dump = dump
        self.columns = columns
        self.nul_cut = nul_cut  # see records_frame
        self.batch = batch
        self._gens = [scan_parts(src, layout, subbuf_size, n_subbufs, chunk, walk)
                      for src in dump.traces]
        self.cpus: list[CpuReport] = [CpuReport(src.cpu, src.name, layout, src.size)
                                      for src in dump.traces]
        self._maps = [mapping_of(src.data) for src in dump.traces]
        self._released = [0] * len(dump.traces)
        self._frontier: dict[int, int] = {}  # cpu -> start of its latest printed record
        # Pages are given back only once the consumer is done with the batch
        # that used them: ``release_lag`` batches later (it may run behind).
        self._lows: collections.deque[list[int | None]] = collections.deque()
        self._lag = release_lag

    @property
    def n_records(self) -> int:
        return sum(c.records for c in self.cpus)

    def decoded(self) -> Decoded:
        """The reports as a :class:`Decoded` without records (for --strict and summaries)."""
        return Decoded(self.dump.path, schema.empty(schema.RECORDS), schema.empty(schema.CS),
                       self.cpus, self.dump.prometheus)

    def __iter__(self) -> Iterator[pl.DataFrame]:
        for out in self._merged_parts():
            yield records_frame(out, columns=self.columns, merge=True, nul_cut=self.nul_cut)

    def with_cs(self) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
        """Like iterating, but each batch comes with its chunk-server entries
        (schema.CS, in cpu, seq order), read on a worker while the batch merges."""
        for out in self._merged_parts():
            yield self.frames(out)

    def parts(self) -> Iterator[list[Part]]:
        """The batches before their tables are built: each one's parts, in
        merge order; :meth:`frames` makes what :meth:`with_cs` gives of them.
        Split so that a consumer can build the tables of several batches at
        once, on threads of its own (the scan and merge stay one thread's)."""
        return self._merged_parts()

    def frames(self, parts: list[Part]) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The records and chunk-server entries of one batch of :meth:`parts`."""
        return merged_frames(parts, self.columns, self.nul_cut)

    def _merged_parts(self) -> Iterator[list[Part]]:
        k = len(self._gens)
        pending: list[list[Part]] = [[] for _ in range(k)]
        hi: list[int] = [-1] * k  # latest time read so far, per CPU
        live = set(range(k))

        def read(c: int) -> None:
            try:
                part = next(self._gens[c])
            except StopIteration as stop:
                live.discard(c)
                self.cpus[c] = stop.value
                return
            pending[c].append(part)
            hi[c] = max(hi[c], int(part.header()["time"].max()))

        for c in range(k):
            read(c)
        while True:
            count = sum(len(p) for ps in pending for p in ps)
            if live and count < self.batch:
                read(min(live, key=hi.__getitem__))
                continue
            if not count and not live:
                return
            horizon = min(hi[c] for c in live) - MERGE_SLACK_US if live else None
            if live and count < PENDING_CAP and self._older(pending, horizon) < self.batch // 2:
                read(min(live, key=hi.__getitem__))  # too few to print yet: read on
                continue
            inclusive = False
            if live and count >= PENDING_CAP:
                t = np.concatenate([p.header()["time"] for ps in pending for p in ps])
                kth = count - PENDING_CAP // 2
                horizon, inclusive = int(np.partition(t, kth)[kth]), True
            out = self._take(pending, horizon, inclusive)
            if not out:
                read(min(live, key=hi.__getitem__))
                continue
            for p in out:
                self._frontier[p.cpu] = max(self._frontier.get(p.cpu, 0), int(p.starts[-1]))
            yield out
            del out
            self._release(pending)

    @staticmethod
    def _older(pending: list[list[Part]], horizon: int | None) -> int:
        return sum(int(np.count_nonzero(p.header()["time"] < horizon)) if horizon is not None
                   else len(p) for ps in pending for p in ps)

    @staticmethod
    def _take(pending: list[list[Part]], horizon: int | None, inclusive: bool) -> list[Part]:
        """Remove and return every pending record older than ``horizon`` (all if None)."""
        out: list[Part] = []
        for ps in pending:
            keep: list[Part] = []
            for p in ps:
                if horizon is None:
                    out.append(p)
                    continue
                t = p.header()["time"]
                old = t <= horizon if inclusive else t < horizon
                n_old = int(np.count_nonzero(old))
                if n_old == len(p):
                    out.append(p)
                elif n_old == 0:
                    keep.append(p)
                else:
                    out.append(p.subset(old))
                    keep.append(p.subset(~old))
            ps[:] = keep
        return out

    def release_all(self) -> None:
        """Give back every mapped page of the dump (once its records are all
        consumed: a page read again later is only read from the file again)."""
        for c, mm in enumerate(self._maps):
            if mm is not None and len(mm) > self._released[c]:
                mm.madvise(mmap.MADV_DONTNEED, self._released[c], len(mm) - self._released[c])
                self._released[c] = len(mm)

    def _release(self, pending: list[list[Part]]) -> None:
        """Give back the mapped pages below every CPU's oldest pending record
        (as it was ``release_lag`` batches ago)."""
        lows: list[int | None] = []
        for c, ps in enumerate(pending):
            cpu = self.dump.traces[c].cpu
            if self._maps[c] is None or cpu not in self._frontier:
                lows.append(None)
                continue
            lows.append(min([self._frontier[cpu], *(int(p.starts[0]) for p in ps if len(p))]))
        self._lows.append(lows)
        if len(self._lows) <= self._lag:
            return
        for c, low in enumerate(self._lows.popleft()):
            mm = self._maps[c]
            if mm is None or low is None:
                continue
            low -= low % mmap.PAGESIZE
            if low - self._released[c] >= 1 << 20:
                mm.madvise(mmap.MADV_DONTNEED, self._released[c], low - self._released[c])
                self._released[c] = low
