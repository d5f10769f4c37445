"""``ktrace decode``: dumped buffers -> one merged, readable stream."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

import polars as pl

from . import render
from .cli_common import add_input_args, check_strict, load_input, parse_time
from .decode import Decoded
from .errors import UsageError
from .formats import layouts as L

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
stderr; -q silences it.
"""

TYPES = {"text": L.TYPE_TEXT, "iotimes": L.TYPE_IOTIMES}


def add_decode_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "decode", help="decode dumped buffers into one merged stream (text, JSON lines, CSV)",
        description="Decode every per-CPU buffer of a dump and print one merged stream, "
                    "ordered by (time, cpu, per-CPU sequence), like blkparse.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
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
        conds.append(pl.col("time_us") >= parse_time(args.since))
    if args.until:
        conds.append(pl.col("time_us") <= parse_time(args.until))
    if args.type:
        known = [TYPES[t] for t in args.type if t in TYPES]
        c = pl.col("type").is_in(known)
        if "unknown" in args.type:
            c = c | pl.col("unknown_type")
        conds.append(c)
    if args.grep:
        try:
            pl.select(pl.lit("").str.contains(args.grep))
        except pl.exceptions.PolarsError as e:
            raise UsageError(f"--grep: bad regular expression: {str(e).splitlines()[0]}") from None
        conds.append(pl.col("text").str.contains(args.grep).fill_null(False))
    return df.filter(*conds) if conds else df


def write_records(df: pl.DataFrame, fmt: str, out: TextIO) -> None:
    """Write records batch by batch (bounded memory, early exit on a closed pipe)."""
    for i, part in enumerate(render.batches(df)):
        if fmt == "text":
            lines = render.text_lines(part)
            out.write("\n".join(lines.to_list()))
            out.write("\n")
        elif fmt == "jsonl":
            out.write(render.jsonl_text(part))
        else:
            out.write(render.csv_text(part, header=i == 0))
    if df.height == 0 and fmt == "csv":
        out.write(render.csv_text(df, header=True))


def _sec(us: int | None) -> str:
    return "-" if us is None else f"{us // 1_000_000}.{us % 1_000_000:06d}"


def summary(decoded: Decoded, shown: int) -> str:
    """The stderr summary: per-CPU counts, span, drops and damage."""
    span = decoded.span_us
    lines = []
    head = f"{decoded.n_records:,} records from {len(decoded.cpus)} CPU file(s)"
    if span:
        head += f", {_sec(span[0])} .. {_sec(span[1])} ({(span[1] - span[0]) / 1e6:.6f} s)"
    if shown != decoded.n_records:
        head += f"; {shown:,} shown"
    lines.append(head)
    lines.append(f"  {'cpu':>4} {'layout':<6} {'records':>10} {'first':>17} {'last':>17} "
                 f"{'lost>=':>8} {'skipped':>9} {'resyncs':>7}")
    for c in decoded.cpus:
        lines.append(f"  {c.cpu:>4} {c.layout:<6} {c.records:>10,} {_sec(c.first_time_us):>17} "
                     f"{_sec(c.last_time_us):>17} {c.dropped_at_least:>8,} "
                     f"{c.skipped_bytes:>9,} {c.resyncs:>7}")
    for c in decoded.cpus:
        for s in c.skips:
            what = "truncated record" if s.kind == "truncated" else "unreadable bytes"
            lines.append(f"  warning: cpu {c.cpu}: {s.end - s.start} {what} skipped at "
                         f"offset {s.start} of {c.source}")
        if c.drop_events:
            lines.append(f"  warning: cpu {c.cpu}: at least {c.dropped_at_least} records "
                         f"dropped by the relay in {c.drop_events} window(s) (buffer full)")
        for n, what in ((c.unknown_type, "records of unknown type kept raw"),
                        (c.long_text, "long messages cut at their NUL (kernel bug: "
                                      "bytes after it are unrelated memory)"),
                        (c.time_backwards, "records earlier than their predecessor")):
            if n:
                lines.append(f"  note: cpu {c.cpu}: {n} {what}")
    return "\n".join(lines) + "\n"


def run_decode(args: argparse.Namespace) -> int:
    decoded = load_input(args)
    df = select(decoded.records, args)
    write_records(df, args.format, sys.stdout)
    sys.stdout.flush()
    if not args.quiet:
        sys.stderr.write(summary(decoded, df.height))
    check_strict(args, decoded)
    return 0
