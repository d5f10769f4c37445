"""The only module of the pipeline that touches files: export writing.

(Reading goes through the decoder: ``cli_common.load_input``.)

Writes are atomic per file: the table goes to a temporary file in the output
directory, then ``os.replace`` renames it over the target, so a reader (or a
crash, or Ctrl-C) never sees a half-written CSV.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

import polars as pl

from ..errors import OutputError

FORMATS = ("csv", "parquet")


def target_paths(out_dir: Path, stems: Iterable[str], fmt: str) -> list[Path]:
    return [out_dir / f"{stem}.{fmt}" for stem in stems]


def prepare_out_dir(out_dir: Path, targets: list[Path], force: bool) -> None:
    """Create ``out_dir`` if needed; refuse existing targets unless ``force``."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError("exists and is not a directory", out_dir)
    existing = [p.name for p in targets if p.exists()]
    if existing and not force:
        raise OutputError(
            f"would overwrite {', '.join(existing)}; use --force to replace them", out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the directory: {e.strerror or e}", out_dir) from None


def _atomic(path: Path, fill: Callable[[BinaryIO], None]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_table(df: pl.DataFrame, path: Path, fmt: str) -> None:
    """Write ``df`` to ``path`` as CSV or Parquet, atomically."""
    # CSV: nulls are empty cells, booleans true/false, no float formatting
    # involved (every column is an integer, boolean or string).
    _atomic(path, df.write_csv if fmt == "csv" else df.write_parquet)


def write_text(text: str, path: Path) -> None:
    """Write one text file (trace.json, metrics.prom) atomically."""
    _atomic(path, lambda f: f.write(text.encode()))
