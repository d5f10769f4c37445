"""``ktrace analyze`` and ``ktrace export``: argument parsing and output only.

User errors are raised as KtraceError subclasses; ktrace_decode.cli turns
them into one line on stderr and an exit code.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from ..cli_common import add_input_args, check_strict, load_input, parse_time
from ..errors import UsageError
from . import export as export_mod
from .io import FORMATS
from .report import render
from .streamed import analyze_streamed, export_streamed
from .summary import MAX_BOOT_TIME_US, Selection

ANALYZE_EPILOG = """\
times: --since/--until take seconds on the trace clock (5.0012) or microseconds
(5001200us), as printed by 'ktrace decode'; they select the episodes that overlap
the window (and count errors inside it).  --nodeid takes the kernel FUSE nodeid,
which is the number the work function prints + 1 (it prints nodeid - 1 to match
userspace; fuse_open and fuse_link_rw_file print the kernel nodeid itself).

wall clock: record times are ktime_get() microseconds since boot.  --boot-time
EPOCH (seconds since 1970, the wall-clock time of that boot, e.g. from
'date -d "$(uptime -s)" +%s') adds local wall-clock times; --wall-clock uses
this machine's boot time, right only when the dump was taken here since the
last boot (and without a suspend in between).

examples:
  ktrace analyze /tmp/dump
  ktrace analyze dump.tar.gz --top 20 --since 120.5 --until 130
  ktrace analyze /tmp/dump --nodeid 4242 --wall-clock
  ktrace analyze /tmp/dump --json | jq '.in_progress'
"""

EXPORT_EPILOG = """\
files (one each, schemas in the README): events, invalidations, nodes,
iotimes, iotimes_cs, loss (.csv or .parquet).  With several dumps the rows are
stacked and a first column 'source' names the dump each row comes from.
Existing files are never replaced without --force; each file is written to a
temporary name and renamed, so readers never see half a file.

examples:
  ktrace export /tmp/dump --out /tmp/csv
  ktrace export node1.tar.gz node2.tar.gz --out /tmp/all --format parquet
"""


def _whole(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return v


#: The largest --top: far above any episode count (a 10M-record dump has
#: ~600k), while Polars' head() and the IO section's 2 x top stay in range.
MAX_TOP = 2**32 - 1


def _count(text: str) -> int:
    v = _whole(text)
    if v > MAX_TOP:
        raise argparse.ArgumentTypeError(
            f"too large: {text!r} (at most {MAX_TOP}; any N above the number of episodes "
            "lists them all)")
    return v


#: Kernel FUSE nodeids are u64 (the nodeid columns are UInt64).
MAX_NODEID = 2**64 - 1


def _nodeid(text: str) -> int:
    v = _whole(text)
    if v > MAX_NODEID:
        raise argparse.ArgumentTypeError(f"not a nodeid: {text!r} (nodeids are 0 to "
                                         f"{MAX_NODEID})")
    return v


def add_analyze_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "analyze", help="the first screen of an incident: invalidations, slowest, stuck, errors",
        description="Summarise a dump: trace span, CPUs, records, drops; invalidation episodes "
                    "(count, in progress, without a start, duration percentiles), the slowest, "
                    "retries and errors by code, blocked opens and poisoned files.",
        epilog=ANALYZE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_args(p)
    p.add_argument("--json", action="store_true",
                   help="print one JSON document instead of the report")
    p.add_argument("--top", type=_count, default=10, metavar="N",
                   help="how many of the slowest episodes to list (default: %(default)s)")
    p.add_argument("--nodeid", type=_nodeid, metavar="N",
                   help="only this kernel FUSE nodeid (userspace id + 1); lists all its episodes")
    p.add_argument("--since", metavar="TIME", help="episodes that end at or after TIME")
    p.add_argument("--until", metavar="TIME", help="episodes seen at or before TIME")
    clock = p.add_mutually_exclusive_group()
    clock.add_argument("--boot-time", metavar="EPOCH",
                       help="wall-clock time of the traced machine's boot, in seconds since "
                            "1970: adds wall-clock times")
    clock.add_argument("--wall-clock", action="store_true",
                       help="wall-clock times from this machine's boot time")
    p.set_defaults(func=run_analyze)
    return p


def add_export_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export", help="write events, invalidations, nodes, iotimes, loss as CSV or Parquet",
        description="Export the pipeline tables of one or more dumps for spreadsheets and "
                    "scripts.",
        epilog=EXPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_input_args(p, many=True)
    p.add_argument("--out", required=True, metavar="DIR", type=Path,
                   help="output directory (created if missing)")
    p.add_argument("--format", choices=(*FORMATS, *export_mod.SINGLE_FILE), default="csv",
                   help="csv/parquet: one file per table (default: %(default)s); perfetto: "
                        "trace.json (Chrome Trace Event JSON for ui.perfetto.dev or "
                        "chrome://tracing); prometheus: metrics.prom (the dump's prometheus "
                        "file as Prometheus text exposition)")
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.add_argument("--excel-safe", action="store_true",
                   help="CSV: prefix text cells starting with = + - @ with ' so a spreadsheet "
                        "does not run them as formulas")
    p.set_defaults(func=run_export)
    return p


def boot_time_us(args: argparse.Namespace) -> tuple[int | None, str]:
    """(wall-clock microseconds of monotonic zero, where it came from)."""
    if getattr(args, "wall_clock", False):
        now = time.time_ns() // 1000
        return now - time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000, "--wall-clock"
    if getattr(args, "boot_time", None) is not None:
        try:
            epoch = float(args.boot_time)
        except ValueError:
            epoch = math.nan
        if not math.isfinite(epoch) or epoch < 0:
            raise UsageError(f"--boot-time takes seconds since 1970 (like 1767225600.25), "
                             f"not {args.boot_time!r}")
        boot = round(epoch * 1_000_000)
        if boot > MAX_BOOT_TIME_US:  # its wall times would be past the year 9999
            raise UsageError(f"--boot-time: out of range: {args.boot_time!r} (at most "
                             f"{MAX_BOOT_TIME_US // 1_000_000} seconds since 1970, so that "
                             "every trace time, below 2**52 us, is a date before the year "
                             "10000)")
        return boot, "--boot-time"
    return None, "none"


def selection(args: argparse.Namespace) -> Selection:
    since = parse_time(args.since, "--since") if args.since else None
    until = parse_time(args.until, "--until") if args.until else None
    if since is not None and until is not None and since > until:
        raise UsageError(f"--since {args.since} is after --until {args.until}")
    boot, source = boot_time_us(args)
    return Selection(top=args.top, nodeid=args.nodeid, since_us=since, until_us=until,
                     boot_time_us=boot, clock_source=source)


class _Progress:
    """"exporting trace: n records" on a terminal, a few times a second at most."""

    def __init__(self, verb: str) -> None:
        self.verb, self.enabled, self.last = verb, sys.stderr.isatty(), 0.0

    def __call__(self, path: str, n: int) -> None:
        now = time.monotonic()
        if self.enabled and now - self.last > 0.25:
            self.last = now
            sys.stderr.write(f"\r\x1b[K{self.verb} {Path(path).name}: {n:,} records")
            sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\x1b[K")


def run_analyze(args: argparse.Namespace) -> int:
    sel = selection(args)  # bad options fail before a long decode
    progress = _Progress("analyzing")
    try:
        result = analyze_streamed(args.path, args, sel, progress)
    finally:
        progress.done()
    summary, decoded = result.summary, result.decoded
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        # A script reading stdout should still see these on its terminal.
        for w in summary["warnings"]:
            sys.stderr.write(f"ktrace: warning: {w}\n")
    else:
        sys.stdout.write(render(summary))
    sys.stdout.flush()
    check_strict(args, decoded)
    return 0


def run_export(args: argparse.Namespace) -> int:
    if args.format in export_mod.SINGLE_FILE:
        return _run_single_file_export(args)
    progress = _Progress("exporting")
    with export_mod.prepare(args.out, args.format, args.force) as out:  # refuse before decoding
        try:
            results, rows = export_streamed(out, args.format, export_mod.SCHEMAS, args,
                                            excel_safe=args.excel_safe, progress=progress)
        finally:
            progress.done()
    sys.stderr.write(f"wrote {len(rows)} files to {args.out}:\n")
    for name, n in rows.items():
        sys.stderr.write(f"  {name:<22} {n:>12,} rows\n")
    for r in results:
        for warning in r.summary["warnings"]:
            where = f"{r.path}: " if len(results) > 1 else ""
            sys.stderr.write(f"ktrace: warning: {where}{warning}\n")
    for r in results:
        check_strict(args, r.decoded)
    return 0


def _run_single_file_export(args: argparse.Namespace) -> int:
    """--format perfetto | prometheus: one file for all the dumps."""
    name = export_mod.SINGLE_FILE[args.format]
    with export_mod.prepare_single(args.out, args.format, args.force) as out:
        dumps = [(path, load_input(args, path)) for path in args.paths]
        text = export_mod.single_file_text(args.format, dumps)
        out.write_text(name, text)
    sys.stderr.write(f"wrote {Path(args.out) / name} ({len(text):,} bytes)\n")
    for warning in export_mod.single_file_warnings(args.format, dumps):
        sys.stderr.write(f"ktrace: warning: {warning}\n")
    for _, decoded in dumps:
        check_strict(args, decoded)
    return 0
