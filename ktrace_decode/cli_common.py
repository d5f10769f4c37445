"""Options and helpers shared by every command that reads a dump."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .decode import LAYOUTS, Decoded, decode_dump, require_records
from .errors import DamageError, UsageError
from .formats import layouts as L
from .sources import Dump, open_dump

INPUT_HELP = (
    "a dump directory (trace0..traceN, optional prometheus), one trace file, "
    "or a .tar/.tar.gz of a dump directory"
)


def add_input_args(parser: argparse.ArgumentParser, many: bool = False) -> None:
    """PATH (or PATH... with ``many``) and the layout/strictness options."""
    if many:
        parser.add_argument("paths", nargs="+", metavar="PATH", help=INPUT_HELP)
    else:
        parser.add_argument("path", metavar="PATH", help=INPUT_HELP)
    g = parser.add_argument_group("input layout")
    g.add_argument("--layout", choices=LAYOUTS, default="auto",
                   help="stream = what `cat traceN` returns; raw = an mmap/crash-dump image of "
                        "the ring (n_subbufs x subbuf_size bytes); auto decides per file "
                        "(default: %(default)s)")
    g.add_argument("--subbuf-size", type=_positive, default=L.RELAY_SUBBUF_SIZE, metavar="BYTES",
                   help="relay sub-buffer size of raw images (default: %(default)s)")
    g.add_argument("--n-subbufs", type=_positive, default=L.RELAY_N_SUBBUFS, metavar="N",
                   help="sub-buffers per CPU in raw images (default: %(default)s)")
    g.add_argument("--strict", action="store_true",
                   help="exit 3 if any damage was found (skipped bytes, truncated or unknown "
                        "records, long-text records); for scripts")


def _positive(text: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return v


def _progress(what: str, done: int, total: int) -> None:
    if what == "merge":
        msg = f"merging {total} CPU{'s' if total != 1 else ''}"
    else:
        msg = f"decoding {Path(what).name} ({done + 1}/{total})"
    sys.stderr.write(f"\r\x1b[K{msg}")
    sys.stderr.flush()


def load_input(args: argparse.Namespace, dump: str | Dump) -> Decoded:
    """Decode a dump (a path, or a dump already opened) with the command
    line's layout options, with progress on a terminal."""
    show = sys.stderr.isatty()
    if not isinstance(dump, Dump):
        dump = open_dump(dump)
    decoded = decode_dump(dump, layout=args.layout, subbuf_size=args.subbuf_size,
                          n_subbufs=args.n_subbufs, progress=_progress if show else None)
    if show:
        sys.stderr.write("\r\x1b[K")
    return require_records(decoded)


def check_strict(args: argparse.Namespace, decoded: Decoded) -> None:
    """With --strict, turn damage into a failure (after the output was written)."""
    if getattr(args, "strict", False) and decoded.damaged:
        raise DamageError(
            f"damage found: {decoded.skipped_bytes} bytes skipped, {decoded.resyncs} resyncs, "
            f"{sum(c.unknown_type for c in decoded.cpus)} unknown and "
            f"{sum(c.long_text for c in decoded.cpus)} long-text records", decoded.path)


#: The latest time an option may name, in microseconds: the trace clock is a
#: u64, but durations and the analysis's time arithmetic are i64 (Polars), so
#: a bound must stay below 2**63 (about 292,000 years of uptime: no real trace
#: is near it, and anything above is a typo or ``inf``).
MAX_TIME_US = 2**63 - 1


def parse_time(text: str, option: str | None = None) -> int:
    """A time on the trace clock: seconds (``5.0012``) or microseconds (``5001200us``),
    from 0 to :data:`MAX_TIME_US`; ``option`` (like ``--since``) names it in errors."""
    where = f"{option}: " if option else ""
    t = text.strip()
    us: int | None
    try:
        us = (int(t[:-2]) if t.endswith("us")
              else round(float(t.removesuffix("s")) * 1_000_000))
    except ValueError:
        raise UsageError(f"{where}not a time: {text!r} (seconds like 5.0012, "
                         "or 5001200us)") from None
    except OverflowError:  # round(inf): "inf", "1e400"
        us = None
    if us is None or not 0 <= us <= MAX_TIME_US:
        raise UsageError(f"{where}time out of range: {text!r} (the trace clock counts "
                         f"microseconds since boot: 0 to {MAX_TIME_US}us)")
    return us
