"""The ``ktrace`` command.  The only place where errors become messages and exit codes.

Exit codes (``errors.EXIT_*``): 0 ok; 1 input unusable (or output refused);
2 usage; 3 damage under --strict; 130 interrupted (Ctrl-C); 143 terminated
(SIGTERM).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence

from . import __version__, allocators
from .errors import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_USAGE, KtraceError, Terminated

DESCRIPTION = """\
Decode and analyse the fuse kio "pcs" ktrace: the per-CPU relay buffers under
/sys/kernel/debug/fuse/<conn>/trace0..N, including the invalidate_files
workqueue records (starts / ends / pending / waiting / errors) of the VZ10 patch.
"""

EPILOG = """\
typical incident:
  cp -r /sys/kernel/debug/fuse/42 /tmp/dump      # or tar it up
  ktrace analyze /tmp/dump                       # what happened, slowest first
  ktrace decode /tmp/dump --grep 'invalidate'    # the raw story
  ktrace export /tmp/dump --out /tmp/csv         # for spreadsheets
  ktrace tui /tmp/dump                           # browse it

exit codes: 0 ok, 1 input unusable, 2 usage error, 3 damage found (--strict),
130 interrupted (Ctrl-C), 143 terminated (SIGTERM).  Run 'ktrace COMMAND --help' for each command.
"""

#: (module, function) registering each subcommand; a command whose module
#: cannot be imported is left out rather than breaking the others.
COMMANDS = (
    ("ktrace_decode.decode_cli", "add_decode_parser"),
    ("ktrace_decode.pipeline.cli", "add_analyze_parser"),
    ("ktrace_decode.pipeline.cli", "add_export_parser"),
    ("ktrace_decode.tui.cli", "add_tui_parser"),
    ("ktrace_decode.emit.cli", "add_emit_parser"),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ktrace", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module, func in COMMANDS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name and module.startswith(e.name):
                continue
            raise
        getattr(mod, func)(sub)
    return parser


def _compiling() -> None:
    """Said once, on a terminal, when numba compiles a loop instead of
    loading it from its cache (the first big run after an install)."""
    if sys.stderr.isatty():
        sys.stderr.write("ktrace: note: compiling the fast loops for this machine "
                         "(once after an install; ~20 s)\n")
        sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    allocators.apply()  # before anything imports Polars (see the module)
    from . import jit_loops

    jit_loops.notice_compiling(_compiling)
    restore = _catch_sigterm()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return int(args.func(args) or 0)
    except KtraceError as e:
        sys.stderr.write(f"ktrace: error: {e}\n")
        return e.exit_code
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (Terminated)
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        sys.stderr.write(f"\nktrace: {what}\n")
        return getattr(e, "exit_code", EXIT_INTERRUPTED)
    except BrokenPipeError:
        return _broken_pipe()
    except MemoryError:
        sys.stderr.write("ktrace: error: out of memory\n")
        return EXIT_INPUT
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        sys.stderr.write(f"ktrace: error: {where}{e.strerror or e}\n")
        return EXIT_INPUT
    finally:
        restore()


def _catch_sigterm() -> Callable[[], None]:
    """Turn SIGTERM into :class:`Terminated` (so ``finally`` blocks run: an atomic
    write removes its temporary file) for the duration of :func:`main`."""

    def on_term(signum: int, frame: object) -> None:
        raise Terminated()

    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return lambda: None  # ignored (nohup) or handled by an embedding program
        prev = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, prev)


def _broken_pipe() -> int:
    # The reader went away (ktrace decode | head): stop quietly.  Point
    # stdout at /dev/null so the interpreter's final flush cannot fail.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0


def entry() -> None:
    """Console-script entry point (``ktrace`` and ``python -m ktrace_decode``)."""
    code = main()
    # Everything still alive is about to be thrown away with the process.  The
    # interpreter's exit otherwise runs full cyclic-GC passes over it (the
    # libraries' objects, numba's among them): 0.3-0.4 s after an export.
    # Frozen objects are skipped; the memory goes back to the system anyway.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry()
