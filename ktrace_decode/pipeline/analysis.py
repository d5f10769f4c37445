"""The library entry: a decoded dump -> every pipeline table + the analyze summary.

Used by ``ktrace analyze`` / ``ktrace export`` and by the TUI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from .. import iolatency
from ..decode import Decoded
from . import storage, tables
from .episodes import compiled, episodes
from .events import events, record_type_counts
from .summary import Selection, summarize


@dataclass
class Analysis:
    """Every table of one dump, collected, plus the ``analyze --json`` document."""

    events: pl.DataFrame  # schema.EVENTS
    invalidations: pl.DataFrame  # schema.INVALIDATIONS
    nodes: pl.DataFrame  # tables.NODES
    iotimes: pl.DataFrame  # tables.IOTIMES
    iotimes_cs: pl.DataFrame  # tables.IOTIMES_CS
    loss: pl.DataFrame  # tables.LOSS
    summary: dict[str, Any]
    cs: pl.DataFrame  # tables.CS_LATENCY

    def frames(self) -> dict[str, pl.DataFrame]:
        """The exported tables by file stem, in export order."""
        return {"events": self.events, "invalidations": self.invalidations,
                "nodes": self.nodes, "iotimes": self.iotimes, "iotimes_cs": self.iotimes_cs,
                "cs": self.cs, "loss": self.loss}


def analyze_decoded(decoded: Decoded, selection: Selection | None = None) -> Analysis:
    """Run the whole pipeline on a decoded dump.

    Two collects: the record-sized tables first (one pass over the records,
    Polars runs the independent plans in parallel), then the episode tables
    from the collected events, so the regex classification runs once.
    """
    records = decoded.records.lazy()
    drops = decoded.drop_windows()
    windows = drops.lazy()
    joined = tables.cs_joined(records, decoded.cs.lazy())  # one join for both cs tables
    ev, iot, iot_cs, entries, loss = pl.collect_all([
        events(records),
        tables.iotimes(records),
        tables.iotimes_cs_of(joined),
        iolatency.cs_entries_of(joined),
        tables.loss(records, windows, decoded.skips_frame().lazy(),
                    decoded.files_frame().lazy()),
    ])
    cs = tables.cs_latency_of(entries)
    inv = compiled(ev, drops)
    if inv is None:
        inv = episodes(ev.lazy(), windows).collect()
    nodes = tables.nodes(inv.lazy()).collect()
    sel = selection or Selection()
    summary = summarize(decoded, ev, inv, sel, record_type_counts(decoded.records["type"]))
    summary["io"] = storage.io_section(cs, iot.height, iot, sel.top)
    summary["metrics"] = storage.metrics_section(decoded, storage.io_counts(iot))
    return Analysis(ev, inv, nodes, iot, iot_cs, loss, summary, cs)
