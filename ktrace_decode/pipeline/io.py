"""The only module of the pipeline that touches files: export writing.

(Reading goes through the decoder: ``cli_common.load_input``.)

Everything goes through :class:`ktrace_decode.safe_output.OutputDir`: files
are written inside ``--out`` only (never through a symlink in it), atomically
(temporary file + rename, so Ctrl-C never leaves a half file), and an existing
file is replaced only with ``--force``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..safe_output import OutputDir

FORMATS = ("csv", "parquet")


def file_names(stems: Iterable[str], fmt: str) -> list[str]:
    return [f"{stem}.{fmt}" for stem in stems]


def open_out(out_dir: Path, names: list[str], force: bool) -> OutputDir:
    """Open (create) ``out_dir`` and refuse existing ``names`` unless ``force``.

    Called before any decoding, so a refusal costs nothing.
    """
    out = OutputDir(out_dir, force=force)
    try:
        out.check(names)
    except BaseException:
        out.close()
        raise
    return out
