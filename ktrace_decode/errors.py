"""The one error hierarchy.  Library code raises these; only the CLI turns them
into a message on stderr and an exit code (see ``EXIT_*``)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_INPUT = 1  # input unusable (missing, not a dump, hostile archive, ...)
EXIT_USAGE = 2  # bad command line (argparse uses 2 as well)
EXIT_DAMAGE = 3  # --strict and the input had damage
EXIT_INTERRUPTED = 130  # Ctrl-C


class KtraceError(Exception):
    """Base of every error this tool reports to the user."""

    exit_code = EXIT_INPUT

    def __init__(self, message: str, path: object | None = None, offset: int | None = None):
        self.path = path
        self.offset = offset
        where = ""
        if path is not None:
            where = f"{path}"
            if offset is not None:
                where += f" at offset {offset}"
            where += ": "
        super().__init__(where + message)


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
