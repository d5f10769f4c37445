"""``ktrace export``: the pipeline tables of one or many dumps as CSV or Parquet files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from .. import metrics, perfetto, schema
from ..decode import Decoded
from ..errors import InputError
from ..safe_output import OutputDir
from . import io, tables
from .analysis import Analysis, analyze_decoded

#: Exported tables by file stem, with their schemas (the documented format).
SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "events": schema.EVENTS,
    "invalidations": schema.INVALIDATIONS,
    "nodes": tables.NODES,
    "iotimes": tables.IOTIMES,
    "iotimes_cs": tables.IOTIMES_CS,
    "cs": tables.CS_LATENCY,
    "loss": tables.LOSS,
}


@dataclass
class Written:
    path: Path
    rows: int


def combine(analyses: Sequence[tuple[str, Analysis]]) -> dict[str, pl.DataFrame]:
    """The tables to write.  One dump: as they are.  Several: stacked, with a
    leading ``source`` column naming the dump (as given on the command line)."""
    if len(analyses) == 1:
        return analyses[0][1].frames()
    out: dict[str, pl.DataFrame] = {}
    for stem in SCHEMAS:
        parts = [a.frames()[stem].select(pl.lit(src, pl.String).alias("source"), pl.all())
                 for src, a in analyses]
        out[stem] = pl.concat(parts)
    return out


def prepare(out_dir: Path, fmt: str, force: bool) -> OutputDir:
    """Check (before any decoding) that the outputs may be written; the open directory."""
    return io.open_out(out_dir, io.file_names(SCHEMAS, fmt), force)


def export(analyses: Sequence[tuple[str, Analysis]], out: OutputDir, fmt: str,
           excel_safe: bool = False) -> list[Written]:
    """Write every table (one file each, atomically) into the prepared directory."""
    frames = combine(analyses)
    written = []
    for name, df in zip(io.file_names(SCHEMAS, fmt), frames.values(), strict=True):
        out.write_frame(name, df, fmt, excel_safe=excel_safe)
        written.append(Written(out.path / name, df.height))
    return written


#: Formats that write one file for all the dumps, and its name.
SINGLE_FILE = {"perfetto": "trace.json", "prometheus": "metrics.prom"}


def prepare_single(out_dir: Path, fmt: str, force: bool) -> OutputDir:
    """Check (before decoding) that the single output file may be written."""
    return io.open_out(out_dir, [SINGLE_FILE[fmt]], force)


def single_file_text(fmt: str, dumps: Sequence[tuple[str, Decoded]]) -> str:
    """trace.json (one Perfetto process per dump) or metrics.prom (a source label per dump)."""
    if fmt == "perfetto":
        traces = []
        for pid, (path, decoded) in enumerate(dumps, start=1):
            a = analyze_decoded(decoded)
            traces.append(perfetto.trace_events(a.events, a.invalidations,
                                                decoded.drop_windows(), path, pid=pid))
        return perfetto.to_json(traces)
    parts = []
    for path, decoded in dumps:
        if decoded.prometheus is None:
            raise InputError("no prometheus file next to the trace files", path)
        labels = {"source": path} if len(dumps) > 1 else None
        parts.append(metrics.exposition(metrics.parse_metrics(decoded.prometheus, path),
                                        labels))
    return "".join(parts)
