"""``ktrace export``: the pipeline tables of one or many dumps as CSV or Parquet
files (written by :mod:`.streamed`, one pass per dump), or as one Perfetto /
Prometheus file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from .. import metrics, perfetto, schema
from ..decode import Decoded
from ..errors import InputError
from ..safe_output import OutputDir
from . import io, tables
from .analysis import analyze_decoded

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


def prepare(out_dir: Path, fmt: str, force: bool) -> OutputDir:
    """Check (before any decoding) that the outputs may be written; the open directory."""
    return io.open_out(out_dir, io.file_names(SCHEMAS, fmt), force)


#: Formats that write one file for all the dumps, and its name.
SINGLE_FILE = {"perfetto": "trace.json", "prometheus": "metrics.prom"}


def prepare_single(out_dir: Path, fmt: str, force: bool) -> OutputDir:
    """Check (before decoding) that the single output file may be written."""
    return io.open_out(out_dir, [SINGLE_FILE[fmt]], force)


def single_file_warnings(fmt: str, dumps: Sequence[tuple[str, Decoded]]) -> list[str]:
    """What the reader of a single-file export must know: for prometheus, the
    metrics files with totals past a u64 (left out of metrics.prom)."""
    if fmt != "prometheus":
        return []
    out = []
    for path, decoded in dumps:
        if decoded.prometheus is not None:
            damage = metrics.parse_metrics(decoded.prometheus, path).damage()
            if damage:
                out.append(f"{path}: {damage}")
    return out


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
