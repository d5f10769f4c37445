"""``ktrace decode``: dumped buffers -> one merged, readable stream."""

from __future__ import annotations

import argparse
import gc
import queue
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, TextIO, TypeVar

import polars as pl

from . import render, schema
from .cli_common import add_input_args, check_strict, parse_time
from .decode import Decoded, DumpStream, require_records
from .errors import UsageError
from .formats import layouts as L
from .sources import open_dump

EPILOG = """\
output columns (text format):
  CPU  seconds.micros  type  lost-marker  message
  '>=N lost' means at least N records were dropped on that CPU just before this
  one (the kernel's ovfl counter is kept modulo 65536).

examples:
  ktrace decode /sys/kernel/debug/fuse/42 | less
  ktrace decode dump.tar.gz --grep 'invalidate_file' --cpu 0,2
  ktrace decode dump/ --since 5.2 --until 5.9 --format jsonl > slice.jsonl
  ktrace decode ring.img --layout raw --subbuf-size 524288

A summary (records per CPU, time span, dropped, skipped bytes, resyncs) goes to
stderr; -q silences it.  It lists the first %d skipped ranges (file offsets) and
counts the rest in one line; --all-warnings lists every one.
"""

T = TypeVar("T")

#: Skipped ranges listed one per line in the stderr summary; the rest are
#: counted in one line (a resync storm has millions of them).  --all-warnings
#: lists every one.
MAX_SKIP_WARNINGS = 20

TYPES = {"text": L.TYPE_TEXT, "iotimes": L.TYPE_IOTIMES}


def add_decode_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "decode", help="decode dumped buffers into one merged stream (text, JSON lines, CSV)",
        description="Decode every per-CPU buffer of a dump and print one merged stream, "
                    "ordered by (time, cpu, per-CPU sequence), like blkparse.",
        epilog=EPILOG % MAX_SKIP_WARNINGS, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_args(p)
    f = p.add_argument_group("filters")
    f.add_argument("--cpu", metavar="LIST", help="only these CPUs, e.g. 0,2,5")
    f.add_argument("--since", metavar="TIME", help="from this time (seconds, or Nus)")
    f.add_argument("--until", metavar="TIME", help="up to and including this time")
    f.add_argument("--grep", metavar="REGEX", help="only text records matching REGEX")
    f.add_argument("--type", choices=(*TYPES, "unknown"), action="append",
                   help="only records of this type (repeatable)")
    p.add_argument("--format", choices=("text", "jsonl", "csv"), default="text",
                   help="output format (default: %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    p.add_argument("--all-warnings", action="store_true",
                   help="list every skipped range in the summary (default: the first "
                        f"{MAX_SKIP_WARNINGS}, then one line counting the rest)")
    p.set_defaults(func=run_decode)
    return p


def _cpus(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--cpu takes numbers like 0,2,5, not {text!r}") from None


def select(df: pl.DataFrame, args: argparse.Namespace) -> pl.DataFrame:
    """Apply the command-line filters."""
    conds: list[pl.Expr] = []
    if args.cpu:
        conds.append(pl.col("cpu").is_in(_cpus(args.cpu)))
    if args.since:
        conds.append(pl.col("time_us") >= parse_time(args.since, "--since"))
    if args.until:
        conds.append(pl.col("time_us") <= parse_time(args.until, "--until"))
    if args.type:
        known = [TYPES[t] for t in args.type if t in TYPES]
        c = pl.col("type").is_in(known)
        if "unknown" in args.type:
            c = c | pl.col("unknown_type")
        conds.append(c)
    if args.grep:
        conds.append(pl.col("text").str.contains(args.grep).fill_null(False))
    return df.filter(*conds) if conds else df


#: Columns the text format and the filters read (the others are not computed).
TEXT_COLUMNS = ["cpu", "time_us", "type", "ovfl", "pdu_len", "text", "io_offset", "io_size",
                "io_local_delay", "io_lat", "io_ino", "io_type", "n_cs", "long_text",
                "unknown_type"]


def _out(out: TextIO) -> BinaryIO | None:
    """The binary stream under ``out`` (to write bytes without a str round trip)."""
    buf = getattr(out, "buffer", None)
    return buf if buf is not None and hasattr(buf, "write") else None


class RecordWriter:
    """Write records batch by batch (bounded memory, early exit on a closed pipe)."""

    def __init__(self, fmt: str, out: TextIO, nul_cut: bool = True) -> None:
        self.fmt = fmt
        self.nul_cut = nul_cut  # False: texts may still hold a NUL (see render.text_block)
        self.out = out
        self.raw = _out(out)
        self.batches = 0

    def write(self, df: pl.DataFrame) -> None:
        for part in render.batches(df):
            if self.fmt == "text":
                blocks = render.text_block(part, self.nul_cut)
                if self.raw is not None:
                    self.out.flush()
                    for block in blocks:
                        self.raw.write(block)
                else:
                    self.out.write(b"".join(bytes(b) for b in blocks).decode("utf-8"))
            elif self.fmt == "jsonl":
                self.out.write(render.jsonl_text(part))
            else:
                self.out.write(render.csv_text(part, header=self.batches == 0))
            self.batches += 1

    def close(self, df_empty: pl.DataFrame) -> None:
        """End the output (a CSV with no rows still gets its header)."""
        if self.batches == 0 and self.fmt == "csv":
            self.out.write(render.csv_text(df_empty, header=True))


def write_records(df: pl.DataFrame, fmt: str, out: TextIO) -> None:
    """Write a whole records table (see :class:`RecordWriter`)."""
    w = RecordWriter(fmt, out)
    w.write(df)
    w.close(df.clear())


_DONE = object()
#: Batches decoded ahead of the one being written.
PREFETCH = 1


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` in a background thread, up to ``depth`` items ahead.

    Exceptions are raised in the consumer; when the consumer stops early
    (a closed pipe), the producer stops at its next item.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def run() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((_DONE, None))
        except BaseException as e:  # handed to the consumer
            q.put((_DONE, e))

    th = threading.Thread(target=run, name="ktrace-decode", daemon=True)
    th.start()
    try:
        while True:
            item, err = q.get()
            if item is _DONE:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stop.set()


def _sec(us: int | None) -> str:
    return "-" if us is None else f"{us // 1_000_000}.{us % 1_000_000:06d}"


def summary(decoded: Decoded, shown: int,
            max_skip_warnings: int | None = MAX_SKIP_WARNINGS) -> str:
    """The stderr summary: per-CPU counts, span, drops and damage.

    One warning line per skipped range, for the first ``max_skip_warnings``
    ranges (in CPU order; ``None``: all of them), then one line counting the
    ranges and bytes not listed.  The per-CPU table is always complete, and the
    other warnings and notes (at most four per CPU) are never cut.
    """
    n, span = decoded.n_records, decoded.span_us
    lines = []
    head = f"{n:,} records from {len(decoded.cpus)} CPU file(s)"
    if span:
        head += f", {_sec(span[0])} .. {_sec(span[1])} ({(span[1] - span[0]) / 1e6:.6f} s)"
    if shown != n:
        head += f"; {shown:,} shown"
    lines.append(head)
    lines.append(f"  {'cpu':>4} {'layout':<6} {'records':>10} {'first':>17} {'last':>17} "
                 f"{'lost>=':>8} {'skipped':>9} {'resyncs':>7}")
    for c in decoded.cpus:
        lines.append(f"  {c.cpu:>4} {c.layout:<6} {c.records:>10,} {_sec(c.first_time_us):>17} "
                     f"{_sec(c.last_time_us):>17} {c.dropped_at_least:>8,} "
                     f"{c.skipped_bytes:>9,} {c.resyncs:>7}")
    budget = max_skip_warnings
    more_ranges = more_bytes = 0
    more_cpus: list[int] = []
    for c in decoded.cpus:
        listed = len(c.skips) if budget is None else min(budget, len(c.skips))
        for s in c.skips[:listed]:
            what = "truncated record" if s.kind == "truncated" else "unreadable bytes"
            lines.append(f"  warning: cpu {c.cpu}: {s.end - s.start} {what} skipped at "
                         f"offset {s.start} of {c.source}")
        if budget is not None:
            budget -= listed
            if listed < len(c.skips):
                more_ranges += len(c.skips) - listed
                more_bytes += sum(s.end - s.start for s in c.skips[listed:])
                more_cpus.append(c.cpu)
        if c.drop_events:
            lines.append(f"  warning: cpu {c.cpu}: at least {c.dropped_at_least} records "
                         f"dropped by the relay in {c.drop_events} window(s) (buffer full)")
        for k, what in ((c.unknown_type, "records of unknown type kept raw"),
                        (c.long_text, "long messages cut at their NUL (kernel bug: "
                                      "bytes after it are unrelated memory)"),
                        (c.time_backwards, "records earlier than their predecessor")):
            if k:
                lines.append(f"  note: cpu {c.cpu}: {k} {what}")
    if more_ranges:
        where = (f"cpu {more_cpus[0]}" if len(more_cpus) == 1
                 else f"{len(more_cpus)} CPUs")
        lines.append(f"  warning: {more_ranges:,} more skipped range(s) ({more_bytes:,} bytes, "
                     f"{where}) not listed; --all-warnings lists every one")
    return "\n".join(lines) + "\n"


def run_decode(args: argparse.Namespace) -> int:
    # Everything imported so far lives until exit: keep the cyclic GC from
    # walking it again and again while batches come and go.
    gc.freeze()
    if args.grep:
        try:
            pl.select(pl.lit("").str.contains(args.grep))
        except pl.exceptions.PolarsError as e:
            raise UsageError(f"--grep: bad regular expression: {str(e).splitlines()[0]}") from None
    # Checked now, not first in the decode thread's first batch: a bad time
    # fails before any decoding, and also for a dump with no records.
    for option, value in (("--since", args.since), ("--until", args.until)):
        if value:
            parse_time(value, option)
    # Plain text output finds NULs inside texts itself, in the output bytes
    # (one memchr), instead of in every text; --grep needs the cut texts.
    nul_cut = args.format != "text" or bool(args.grep)
    stream = DumpStream(open_dump(args.path), layout=args.layout, subbuf_size=args.subbuf_size,
                        n_subbufs=args.n_subbufs,
                        columns=TEXT_COLUMNS if args.format == "text" else None,
                        release_lag=PREFETCH + 1, nul_cut=nul_cut)
    writer = RecordWriter(args.format, sys.stdout, nul_cut)
    shown = 0
    empty: pl.DataFrame | None = None
    # Decoding (numpy, Polars: both release the GIL) runs one batch ahead of
    # the formatting and writing, on the other core.
    batches = prefetch((select(batch, args) for batch in stream), PREFETCH)
    try:
        for df in batches:
            shown += df.height
            writer.write(df)
            if empty is None:
                empty = df.clear()
    finally:
        batches.close()  # now, so that a Ctrl-C meanwhile propagates (not "ignored")
    decoded = stream.decoded()
    require_records(decoded)
    writer.close(empty if empty is not None else schema.empty(schema.RECORDS))
    sys.stdout.flush()
    if not args.quiet:
        sys.stderr.write(summary(decoded, shown,
                                 None if args.all_warnings else MAX_SKIP_WARNINGS))
    check_strict(args, decoded)
    return 0
