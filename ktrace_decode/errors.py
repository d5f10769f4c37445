"""The one error hierarchy.  Library code raises these; only the CLI
(:func:`ktrace_decode.cli.main`) turns them into a message on stderr and an
exit code.  Library modules never call ``sys.exit`` nor write to stderr
(``tests/robustness/test_rb_errors.py`` checks it).

=====  =========================================================  ==================
code   meaning                                                    raised as
=====  =========================================================  ==================
0      ok                                                         -
1      input unusable: missing, unreadable, not a dump, empty,    InputError,
       refused archive; or an output refused / not writable       ArchiveError,
                                                                  OutputError
2      usage: bad options or arguments                            UsageError, argparse
3      ``--strict`` and the input had damage                      DamageError
130    interrupted (Ctrl-C, SIGINT)                               KeyboardInterrupt
143    terminated (SIGTERM)                                       Terminated
=====  =========================================================  ==================

Every message is one line: ``ktrace: error: <file>[ at offset N]: <what>``.
"""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_INPUT = 1  # input unusable (missing, not a dump, hostile archive, ...)
EXIT_USAGE = 2  # bad command line (argparse uses 2 as well)
EXIT_DAMAGE = 3  # --strict and the input had damage
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT
EXIT_TERMINATED = 143  # SIGTERM: 128 + SIGTERM

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """``text`` with control characters (newlines included) escaped as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class KtraceError(Exception):
    """Base of every error this tool reports to the user."""

    exit_code = EXIT_INPUT

    def __init__(self, message: str, path: object | None = None, offset: int | None = None):
        self.path = path
        self.offset = offset
        self.message = message
        where = ""
        if path is not None:
            where = f"{path}"
            if offset is not None:
                where += f" at offset {offset}"
            where += ": "
        super().__init__(one_line(where + message))


class InputError(KtraceError):
    """The input cannot be read as a ktrace dump at all."""


class ArchiveError(InputError):
    """A tar archive is unreadable or refused for safety."""


class UsageError(KtraceError):
    """Arguments that make no sense together."""

    exit_code = EXIT_USAGE


class OutputError(KtraceError):
    """Refusing or failing to write an output."""


class DamageError(KtraceError):
    """``--strict``: the input decoded, but with damage."""

    exit_code = EXIT_DAMAGE


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised by the CLI's handler so that cleanup code runs (like Ctrl-C)."""

    exit_code = EXIT_TERMINATED
