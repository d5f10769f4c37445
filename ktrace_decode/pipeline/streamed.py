"""``ktrace export`` and ``ktrace analyze`` in one pass over each dump, in bounded memory.

Batches of merged records (:class:`ktrace_decode.decode.DumpStream`) go
through the very stages ``analyze`` uses (:func:`.events.events`,
:func:`.tables.iotimes`, :func:`.tables.iotimes_cs`), and the record-sized
tables are appended to their files as the batches come.  A dump leaves
behind only what the end-of-dump tables need:

* the patch's events (start/end/errors/pending/waiting): episodes, nodes and
  the analyze document;
* the chunk-server entries' latencies (``cs``), per-request IO counts and
  each batch's slowest IOs (the document's IO and metrics sections);
* a few *edge* records per batch: those next to a seq gap or a drop, which
  give every drop window its ``after_us``, and those next to a byte gap,
  which give every skipped range its time window (``loss``).

So memory is one batch plus those (a few % of the records), and the mapped
trace pages are given back as the stream passes them.

Row order is the streaming merge's, the order ``ktrace decode`` prints: the
same as ``decode()``'s global sort unless a CPU's clock goes back by more
than the merge slack (see ``DumpStream``), where the record stays where its
CPU wrote it.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import polars as pl

from .. import allocators, iolatency, scan, schema
from .. import decode as D
from ..decode_cli import prefetch
from ..direct_io import DirectFile
from ..formats import layouts as L
from ..safe_output import OutputDir, excel_safe_frame
from ..sources import open_dump
from . import csv_encode, fused, storage, tables
from .buffers import BufferPool
from .episodes import ATTACHED_EVENTS, STATE_EVENTS, compiled, episodes
from .events import catalogue_events, classified, from_classified, record_type_counts
from .summary import Selection, summarize

if TYPE_CHECKING:
    import pyarrow.parquet as pq

#: Events the end-of-dump tables read (all of the patch's: formats.messages.PATCH_EVENTS).
KEPT_EVENTS = (*STATE_EVENTS, *ATTACHED_EVENTS)
#: Their columns that episodes and the summary use.
KEPT_COLUMNS = ("time_us", "cpu", "seq", "event", "nodeid", "fh", "err")
#: The record-sized tables' columns (their part of export.SCHEMAS, which
#: imports this module).
RECORD_SIZED = {"events": schema.EVENTS, "iotimes": tables.IOTIMES,
                "iotimes_cs": tables.IOTIMES_CS}
#: The record columns the stages read (payload and the flag columns are not built).
RECORD_COLUMNS = [c for c in schema.RECORDS
                  if c not in ("payload", "long_text", "unknown_type", "resynced",
                               "time_backwards")]
#: Patch events per slice of nodeids when the episodes are built (bounds its
#: memory: the export's peak is there).  2**18 against 2**19: 65 MB less at
#: the peak of a 10M-record export, 0.07 s more.
EPISODE_ROWS = 1 << 18
#: Records per batch: ``ktrace decode``'s, so that both print records in the
#: same order (the merge's horizon depends on the batch size).
EXPORT_BATCH = D.STREAM_BATCH
#: Bytes of each trace file scanned at a time (tests make it small to get many batches).
EXPORT_CHUNK = D.STREAM_CHUNK
#: Batches whose tables are computed at once, on threads of their own.  One
#: batch's tables leave both cores idle ~15 % of the time (the classification
#: holds one thread while the rest of the plan is short); two overlap.
TABLE_WORKERS = 2
#: Batches that may still read the trace bytes when the decoder makes a new
#: one: the prefetched one, TABLE_WORKERS + 1 in ``dump``'s queue (the
#: oldest being stored) and the one being written.  Pages are given back
#: only behind those; pages given back too early are read again, and stay.
RELEASE_LAG = 4 + TABLE_WORKERS


@dataclass(frozen=True)
class CsvBytes:
    """One batch of a table already written as CSV (:mod:`.csv_encode`), no header."""

    data: np.ndarray  # uint8
    columns: tuple[str, ...]
    rows: int
    #: Called once the bytes are written (the buffer may then be reused).
    written: Callable[[], None] | None = None


def _encoded(df: pl.DataFrame, source: str | None) -> pl.DataFrame | CsvBytes:
    """``df`` as CsvBytes (with the ``source`` column first, if given), or
    ``df`` itself where the encoder is not worth it or cannot write it
    (Polars will)."""
    if not csv_encode.worth_it(df.height):
        return df
    data = csv_encode.encode(df, prefix=("source", source) if source is not None else None)
    if data is None:
        return df
    names = ("source", *df.columns) if source is not None else tuple(df.columns)
    return CsvBytes(data, names, df.height)


class TableWriter:
    """Appends batches of one table to an open file (CSV or Parquet).

    CSV: the bytes of one ``write_csv`` of all the batches stacked (the header
    goes out once, also for a table with no rows), whether a batch comes as
    a frame or as CsvBytes.  Parquet: the same rows, one row group per batch.
    """

    def __init__(self, f: BinaryIO, fmt: str, columns: dict[str, pl.DataType],
                 excel_safe: bool) -> None:
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"unknown format {fmt!r}")
        self.f, self.fmt, self.excel_safe = f, fmt, excel_safe
        self.empty = pl.DataFrame(schema=columns)
        self.rows = 0
        self._started = False
        self._parquet: pq.ParquetWriter | None = None

    def write(self, df: pl.DataFrame | CsvBytes) -> None:
        if isinstance(df, CsvBytes):
            if df.rows:
                if not self._started:
                    self.f.write(csv_encode.header(df.columns))
                self.f.write(memoryview(df.data))
                self._started = True
                self.rows += df.rows
            if df.written is not None:
                df.written()  # the file has its own copy of the bytes now
            return
        if df.is_empty():
            return
        if self.fmt == "csv":
            (excel_safe_frame(df) if self.excel_safe else df).write_csv(
                self.f, include_header=not self._started)
        else:
            table = df.to_arrow()
            if self._parquet is None:
                # Imported here: 50 ms that only a Parquet export needs.
                import pyarrow.parquet as pq

                self._parquet = pq.ParquetWriter(self.f, table.schema)
            self._parquet.write_table(table)
        self._started = True
        self.rows += df.height

    def sync(self) -> None:
        """Push what is written so far to the disk (the final close then has
        little left to flush), and unmap a direct file's staging buffer
        (8 MiB each, at the export's peak otherwise)."""
        self.f.flush()
        os.fsync(self.f.fileno())
        if isinstance(self.f, DirectFile):
            self.f.release()

    def abandon(self) -> None:
        """The export failed and its file will be discarded: let go of the
        Parquet writer now (closed later by the garbage collector, it would
        write to a closed file and print an ignored exception)."""
        if self._parquet is not None:
            with contextlib.suppress(Exception):
                self._parquet.close()
            self._parquet = None

    def close(self) -> None:
        if not self._started:
            if self.fmt == "csv":
                self.empty.write_csv(self.f)
            else:
                self.empty.write_parquet(self.f)
        if self._parquet is not None:
            self._parquet.close()


#: A batch's records as numpy columns (what the edge tables read of them).
Columns = Mapping[str, np.ndarray]


def _columns_of(batch: pl.DataFrame | Columns) -> Columns:
    if isinstance(batch, pl.DataFrame):
        return {c: batch[c].to_numpy() for c in ("cpu", "seq", "offset", "time_us", "ovfl",
                                                 "pdu_len")}
    return batch


def _cpu_order(cpu: np.ndarray) -> np.ndarray | None:
    """Row positions by CPU, stable (both edge tables start from it); None
    when the rows are in CPU order already (the parts of a fused batch)."""
    if len(cpu) < 2 or not bool((cpu[1:] < cpu[:-1]).any()):
        return None
    return np.argsort(cpu, kind="stable")


def _per_cpu(cols: Columns, key: str) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Row positions of the rows sorted by (cpu, ``key``) (None: as they
    are), and the cpu and ``key`` columns in that order.

    A batch is in merged time order, so within a CPU it is almost always in
    seq and offset order already: one stable sort on the CPU number, then
    ``key`` only checked (and sorted only where it is not).
    """
    cpu, k = cols["cpu"], cols[key]
    order = _cpu_order(cpu)
    ks, cs = (k, cpu) if order is None else (k[order], cpu[order])
    if np.any((ks[1:] < ks[:-1]) & (cs[1:] == cs[:-1])):
        order = np.lexsort((k, cpu))
        ks, cs = k[order], cpu[order]
    return order, cs, ks


def _keep(cols: Columns, order: np.ndarray | None, keep: np.ndarray,
          columns: tuple[str, ...]) -> pl.DataFrame:
    rows = np.flatnonzero(keep) if order is None else order[keep]
    return pl.DataFrame({c: cols[c][rows] for c in columns},
                        schema={c: schema.RECORDS[c] for c in columns})


def _seq_edges(batch: pl.DataFrame | Columns) -> pl.DataFrame:
    """The rows drop windows need: every record with ovfl > 0 and every record
    whose successor on its CPU (by seq) is not the next one in this batch or
    has ovfl > 0.  Whatever batch the predecessor of a drop lands in, it is
    kept, so :func:`decode.drop_windows` of the kept rows is exact."""
    cols = _columns_of(batch)
    order, cpu, seq = _per_cpu(cols, "seq")
    seq = seq.astype(np.int64)
    ovfl = cols["ovfl"]
    drop = (ovfl if order is None else ovfl[order]) > 0
    keep = drop.copy()
    # The last row of each CPU run, or one whose next row breaks the seq chain or is a drop.
    keep[:-1] |= (cpu[1:] != cpu[:-1]) | (seq[1:] != seq[:-1] + 1) | drop[1:]
    keep[-1:] = True
    return _keep(cols, order, keep, ("cpu", "seq", "time_us", "ovfl"))


def _offset_edges(batch: pl.DataFrame | Columns) -> pl.DataFrame:
    """The rows :func:`tables.loss` needs: records with a byte gap (or the batch's
    end) right before or after them on their CPU.  A skipped range lies in
    such a gap, so its neighbours are always kept."""
    cols = _columns_of(batch)
    order, cpu, off = _per_cpu(cols, "offset")
    pdu = cols["pdu_len"]
    end = off + (L.HEADER_SIZE + (pdu if order is None else pdu[order]).astype(np.uint64))
    brk = (cpu[1:] != cpu[:-1]) | (off[1:] != end[:-1])  # between row i and i + 1
    keep = np.ones(len(cpu), bool)
    if len(cpu) > 1:
        keep[1:-1] = brk[1:] | brk[:-1]
        keep[0], keep[-1] = True, True
    return _keep(cols, order, keep, ("cpu", "offset", "pdu_len", "time_us"))


@dataclass
class _BatchTables:
    """What one batch gives the files and the end tables (made on a table worker)."""

    kept_events: pl.DataFrame
    n_iotimes: int
    io_counts: dict[str, int]
    slowest: pl.DataFrame
    entries: pl.DataFrame
    files: dict[str, pl.DataFrame | CsvBytes]
    kinds: dict[str, int]
    seq_edges: pl.DataFrame
    offset_edges: pl.DataFrame


@dataclass
class _Kept:
    """What one dump leaves for its end-of-dump tables."""

    events: list[pl.DataFrame] = field(default_factory=list)
    entries: list[pl.DataFrame] = field(default_factory=list)
    seq_edges: list[pl.DataFrame] = field(default_factory=list)
    offset_edges: list[pl.DataFrame] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    io_counts: Counter[str] = field(default_factory=Counter)
    n_iotimes: int = 0
    slowest: list[pl.DataFrame] = field(default_factory=list)  # each batch's slowest IOs


def _stack(frames: list[pl.DataFrame]) -> pl.DataFrame:
    # Every batch adds one frame to each list, and a dump without records
    # stops before its end tables (require_records): never empty.
    return pl.concat(frames, rechunk=False)


def _episodes(ev: pl.DataFrame, windows: pl.DataFrame) -> pl.DataFrame:
    """The episodes of the kept events: by the compiled loop (numba is loaded
    by then), else by :func:`.episodes.episodes` run on slices of the
    nodeids, EPISODE_ROWS events at a time: its sorts and window functions
    need several copies of their input, and a nodeid's episodes depend on
    its own events only."""
    fast = compiled(ev, windows)
    if fast is not None:
        return fast
    k = -(-ev.height // EPISODE_ROWS)
    if k <= 1:
        return episodes(ev.lazy(), windows.lazy()).collect()
    parts = (ev.with_columns((pl.col("nodeid") % k).alias("__slice"))
             .partition_by("__slice", include_key=False, maintain_order=True))
    out = [episodes(p.lazy(), windows.lazy()).collect() for p in parts]
    # Each nodeid's episodes come from one slice, already in episode order.
    return pl.concat(out).sort("nodeid", maintain_order=True)


@dataclass
class DumpResult:
    path: str
    decoded: D.Decoded
    summary: dict[str, Any]


class StreamExport:
    """Write the export tables of one or many dumps, each streamed once; with
    ``out`` None, write nothing and only summarise (``ktrace analyze``).

    With several dumps every table gets a leading ``source`` column (the dump
    as named on the command line) and the dumps' rows follow one another.
    """

    def __init__(self, out: OutputDir | None, fmt: str = "csv",
                 stems: dict[str, dict[str, pl.DataType]] | None = None,
                 sources: Sequence[str] = (), excel_safe: bool = False,
                 sel: Selection | None = None) -> None:
        self.out, self.fmt, self.stems = out, fmt, stems or {}
        self.sel = sel or Selection()
        self.multi = len(sources) > 1
        self.excel_safe = excel_safe
        # The record-sized tables are made CSV by the table workers, in
        # parallel, instead of by Polars' writer (see csv_encode).
        self.encode = out is not None and fmt == "csv" and not excel_safe
        # One worker writes (Polars releases the GIL) while the next batch is
        # decoded and classified; writes stay in submission order.
        self._io = ThreadPoolExecutor(1, thread_name_prefix="ktrace-write")
        self._pending: list[Future[None]] = []
        self.writers: dict[str, TableWriter] = {}
        self._stack = ExitStack()
        # The events rows' buffers, back from the writer for later batches.
        self._buffers = BufferPool()

    def __enter__(self) -> StreamExport:
        if self.out is None:
            return self
        for stem, cols in self.stems.items():
            cols = {"source": pl.String(), **cols} if self.multi else cols
            # CSV around the page cache (see direct_io); Parquet's writer
            # wants a file it can seek in.
            f = self._stack.enter_context(self.out.open(f"{stem}.{self.fmt}",
                                                        direct=self.fmt == "csv"))
            self.writers[stem] = TableWriter(f, self.fmt, cols, self.excel_safe)
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        closed = False
        try:
            self._drain()
            if exc_type is None:
                for w in self.writers.values():
                    w.close()
                closed = True
        finally:
            if not closed:  # failed (here or in the export): the files are discarded
                for w in self.writers.values():
                    w.abandon()
            self._io.shutdown(wait=True, cancel_futures=True)
            self._stack.__exit__(exc_type, *rest)  # type: ignore[arg-type]

    def _drain(self) -> None:
        pending, self._pending = self._pending, []
        for fut in pending:
            fut.result()

    def _write(self, source: str, frames: dict[str, pl.DataFrame | CsvBytes]) -> None:
        """Queue the frames for writing once the previous batch's writes are done
        (so at most one batch waits in memory)."""
        self._drain()
        if self.out is None:
            return
        for stem, df in frames.items():
            if self.multi and isinstance(df, pl.DataFrame):
                df = df.select(pl.lit(source, pl.String).alias("source"), pl.all())
            self._pending.append(self._io.submit(self.writers[stem].write, df))

    def dump(self, path: str, args: Any, progress: Callable[[int], None] | None = None
             ) -> DumpResult:
        """Stream one dump into the files; its decoded reports and its ``analyze``
        document (the same as :func:`.analysis.analyze_decoded`'s)."""
        dump = open_dump(path)
        # A big dump loads numba for its batches anyway (fused, bytematch):
        # its scan then follows the chain compiled too.
        big = D.big_dump(dump)
        stream = D.DumpStream(dump, layout=args.layout, subbuf_size=args.subbuf_size,
                              n_subbufs=args.n_subbufs, columns=RECORD_COLUMNS,
                              batch=EXPORT_BATCH, chunk=EXPORT_CHUNK,
                              release_lag=RELEASE_LAG,
                              walk=scan.compiled_walk() if big else None)
        kept = _Kept()
        # The next batch is scanned and merged (numpy: the GIL is released)
        # on another thread, while the table workers build the records of the
        # ones before it and their tables.  The records were built on the
        # scanning thread before: it then took as long as the whole stream,
        # and the table workers waited for it.
        batches = prefetch(stream.parts(), 1)
        work = ThreadPoolExecutor(TABLE_WORKERS, thread_name_prefix="ktrace-tables")
        try:
            # Tables are computed TABLE_WORKERS batches ahead and stored in
            # batch order (the files' rows, the kept frames).
            ahead: deque[Future[Any]] = deque()

            def store_oldest() -> None:
                self._store(path, ahead.popleft(), kept)
                if progress:
                    progress(stream.n_records)

            for parts in batches:
                ahead.append(work.submit(self._batch, path, stream, parts))
                if len(ahead) > TABLE_WORKERS:
                    store_oldest()
            while ahead:
                store_oldest()
        finally:
            work.shutdown(wait=True, cancel_futures=True)
            # Closed here, not when the garbage collector gets to it: a Ctrl-C
            # arriving while it stops its thread then propagates like any other
            # instead of being printed as an ignored exception.
            batches.close()
        decoded = stream.decoded()
        D.require_records(decoded)
        self._drain()  # the record-sized tables of this dump are out: its end tables follow
        self._buffers.clear()
        # Nothing reads the trace bytes any more: their pages make room for
        # the end tables (the export's peak memory is there).
        stream.release_all()
        allocators.give_back()
        # Their bytes (nearly all of the export's) go to the disk on the writer
        # thread while this one computes the end tables: the files' final
        # fsync, before they are renamed into place, then finds little to do.
        for w in self.writers.values():
            if w.rows:
                self._pending.append(self._io.submit(w.sync))
        return self._finish(path, decoded, kept)

    def _batch(self, path: str, stream: D.DumpStream, parts: list[D.Part]) -> _BatchTables:
        """One batch's tables (on a table worker): its events by the
        compiled loop where it can write them (:mod:`.fused`), else from
        its records table."""
        n = sum(len(pt) for pt in parts)
        if (self.out is None or self.encode) and fused.worth_it(n):
            done = self._fused(path, parts)
            if done is not None:
                return done
        batch, cs = stream.frames(parts)
        return self._general(path, batch, cs)

    def _fused(self, path: str, parts: list[D.Part]) -> _BatchTables | None:
        """:meth:`_batch` with the events and the iotimes rows written by
        :mod:`.fused`'s loops; None if it refuses the batch."""
        source = path if self.multi else None
        got = fused.events_of(parts, KEPT_EVENTS, KEPT_COLUMNS, csv=self.out is not None,
                              source=source, take=self._buffers.take)
        if isinstance(got, fused.Refused):
            return None
        io = got.iotimes
        files: dict[str, pl.DataFrame | CsvBytes] = {}
        if got.csv is not None and got.buffer is not None:
            def names(stem: str) -> tuple[str, ...]:
                cols = tuple(RECORD_SIZED[stem])
                return ("source", *cols) if source is not None else cols

            files = {"events": CsvBytes(got.csv, names("events"), got.rows,
                                        partial(self._buffers.give, got.buffer)),
                     "iotimes": CsvBytes(io.iotimes_csv(), names("iotimes"), len(io)),
                     "iotimes_cs": CsvBytes(io.entries_csv(), names("iotimes_cs"),
                                            len(io.cs_rec))}
        return self._tables(got.kept, len(io), io.request_counts(),
                            io.slowest(self.sel.top), io.entries(), files,
                            fused.bookkeeping_columns(parts))

    def _general(self, path: str, batch: pl.DataFrame, cs: pl.DataFrame) -> _BatchTables:
        """:meth:`_batch` from the batch's records table."""
        recs, cs_lf = batch.lazy(), cs.lazy()
        cl = classified(recs)
        # The entries joined with their records once, for both of their tables.
        joined = tables.cs_joined(recs, cs_lf)
        # Kept narrow for the end tables: event names as categories (1-4
        # bytes instead of a 16-byte string view per row), picked by message
        # code (no event name hashed).  In the same collect_all as the
        # events, which classifies once (common subplan).
        plans = [from_classified(cl), catalogue_events(cl, KEPT_EVENTS, KEPT_COLUMNS),
                 tables.iotimes(recs), iolatency.cs_entries_of(joined)]
        if self.out is not None:
            plans.append(tables.iotimes_cs_of(joined))
        # The in-memory engine: on these small frames "auto" picks plans that
        # cost ~10 % more CPU (measured per batch, 64 against 57 ms).
        ev, kept_ev, iot, ent, *iot_cs = pl.collect_all(plans, engine="in-memory")
        files: dict[str, pl.DataFrame | CsvBytes] = {}
        if self.out is not None:
            files = {"events": ev, "iotimes": iot, "iotimes_cs": iot_cs[0]}
            if self.encode:
                source = path if self.multi else None
                files = {stem: _encoded(df, source) for stem, df in files.items()}
        return self._tables(kept_ev, iot.height, storage.io_counts(iot),
                            storage.slowest_io(iot, self.sel.top), ent, files, batch)

    @staticmethod
    def _tables(kept_ev: pl.DataFrame, n_iotimes: int, io_counts: dict[str, int],
                slowest: pl.DataFrame, entries: pl.DataFrame,
                files: dict[str, pl.DataFrame | CsvBytes],
                batch: pl.DataFrame | Columns) -> _BatchTables:
        """One batch's :class:`_BatchTables`; its record counts and edge rows
        from ``batch`` (its records, the bookkeeping columns and ``type`` at
        least, in any row order)."""
        cols = _columns_of(batch)
        types = batch["type"].to_numpy() if isinstance(batch, pl.DataFrame) else batch["type"]
        return _BatchTables(kept_ev, n_iotimes, io_counts, slowest, entries, files,
                            record_type_counts(types), _seq_edges(cols), _offset_edges(cols))

    def _store(self, path: str, done: Future[_BatchTables], kept: _Kept) -> None:
        """Write one batch's tables and keep what the end tables need."""
        t = done.result()
        self._write(path, t.files)
        kept.n_iotimes += t.n_iotimes
        kept.io_counts.update(t.io_counts)
        kept.slowest.append(t.slowest)
        kept.kinds.update(t.kinds)
        kept.events.append(t.kept_events)
        kept.entries.append(t.entries)
        kept.seq_edges.append(t.seq_edges)
        kept.offset_edges.append(t.offset_edges)

    def _finish(self, path: str, decoded: D.Decoded, kept: _Kept) -> DumpResult:
        ev = _stack(kept.events)
        windows = D.drop_windows(_stack(kept.seq_edges))
        # The cs percentiles (numpy) beside the episodes (a compiled loop
        # that releases the GIL), the nodes, loss and the summary: the end
        # takes about the longer of the two.  Both are light on memory now;
        # the export's peak stays in the stream.
        with ThreadPoolExecutor(1, thread_name_prefix="ktrace-cs") as side:
            cs_done = side.submit(tables.cs_latency_of, _stack(kept.entries))
            del kept.entries[:]
            inv = _episodes(ev, windows)
            nodes, loss = pl.collect_all([
                tables.nodes(inv.lazy()),
                tables.loss(_stack(kept.offset_edges).lazy(), windows.lazy(),
                            decoded.skips_frame().lazy(),
                            decoded.files_frame().lazy()),
            ])
            summary = summarize(decoded, ev, inv, self.sel, dict(kept.kinds))
            cs = cs_done.result()
        self._write(path, {"invalidations": inv, "nodes": nodes, "cs": cs, "loss": loss})
        summary["io"] = storage.io_section(cs, kept.n_iotimes, _stack(kept.slowest),
                                           self.sel.top)
        summary["metrics"] = storage.metrics_section(decoded, dict(kept.io_counts))
        return DumpResult(path, decoded, summary)


def export_streamed(out: OutputDir, fmt: str, stems: dict[str, dict[str, pl.DataType]],
                    args: Any, excel_safe: bool = False,
                    progress: Callable[[str, int], None] | None = None,
                    ) -> tuple[list[DumpResult], dict[str, int]]:
    """Export every dump of ``args.paths``; the per-dump results and rows per file.

    ``progress(path, records so far)`` is called after every batch."""
    results = []
    with StreamExport(out, fmt, stems, args.paths, excel_safe) as ex:
        for path in args.paths:
            each = (lambda n, p=path: progress(p, n)) if progress else None
            results.append(ex.dump(path, args, each))
        writers = ex.writers
    return results, {f"{stem}.{fmt}": w.rows for stem, w in writers.items()}


def analyze_streamed(path: str, args: Any, sel: Selection,
                     progress: Callable[[str, int], None] | None = None) -> DumpResult:
    """``ktrace analyze`` of one dump in one streamed pass (bounded memory)."""
    with StreamExport(None, sel=sel) as ex:
        return ex.dump(path, args, (lambda n: progress(path, n)) if progress else None)
