"""The reference emitter: replay the patched kernel path, write byte-exact buffers + truth.

    sc = load_scenario("samples/storm/scenario.toml")
    res = emit(sc, Path("out"))          # trace<cpu> files, prometheus, truth/*.csv
    res.records, res.events, res.invalidations   # ground truth frames (schema.py)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from .. import schema
from ..errors import OutputError
from ..formats import prometheus as P
from ..metrics import Metrics, OpStats, build_metrics
from ..safe_output import OutputDir
from ..sources import TRACE_NAME
from .model import IoStat, Model, TrueEpisode, simulate
from .scenario import Scenario, load_scenario
from .truth import event_rows, frame, observable_episodes, record_rows

__all__ = ["EmitResult", "Scenario", "TrueEpisode", "emit", "load_scenario"]

TRUTH_FILES = ("records", "cs", "events", "invalidations")


@dataclass
class EmitResult:
    """Files and ground truth of one emitted dump."""

    scenario: Scenario
    layout: str
    files: dict[int, bytes]
    prometheus: bytes
    records: pl.DataFrame
    cs: pl.DataFrame
    events: pl.DataFrame
    invalidations: pl.DataFrame
    true_episodes: list[TrueEpisode] = field(default_factory=list)
    dropped: dict[int, int] = field(default_factory=dict)
    loop_blocks: list[tuple[int, float]] = field(default_factory=list)


def _metrics(ios: list[IoStat]) -> bytes:
    lay = P.BY_SIZE[4032]
    hist = {op: [0] * P.N_BUCKETS for op in lay.ops}
    sums = dict.fromkeys(lay.ops, 0)
    counters = {op: [0, 0] for op in lay.counters}
    for io in ios:
        if io.op in hist:
            hist[io.op][P.bucket_of(io.latency_us)] += 1
            sums[io.op] += io.latency_us
        if io.op in counters:
            counters[io.op][0] += 1
            counters[io.op][1] += io.size
    m = Metrics(lay.name, [OpStats(op, hist[op], sums[op]) for op in lay.ops],
                {k: (v[0], v[1]) for k, v in counters.items()})
    return build_metrics(m)


def emit(sc: Scenario, out_dir: Path | None = None, layout: str | None = None,
         force: bool = False, path: str = "new") -> EmitResult:
    """Simulate ``sc`` and return (and, with ``out_dir``, write) the dump and its truth.

    ``path="old"`` replays the pre-patch kernel: the event loop does the
    invalidation itself and nothing about it is traced.
    """
    lay = layout or sc.layout
    if lay not in ("stream", "raw"):
        raise ValueError(f"layout must be 'stream' or 'raw', not {lay!r}")
    model: Model = simulate(sc, path=path)
    files: dict[int, bytes] = {}
    rows: list[dict] = []
    cs_rows: list[dict] = []
    metas: dict[tuple[int, int], dict] = {}
    for cpu, relay in sorted(model.relay.items()):
        data, placed = relay.raw() if lay == "raw" else relay.stream()
        files[cpu] = data
        r, c = record_rows(cpu, placed)
        rows += r
        cs_rows += c
        for seq, (_, w) in enumerate(placed):
            metas[(cpu, seq)] = w.meta
    ev = event_rows(rows, metas)
    inv = observable_episodes(ev, rows)
    res = EmitResult(
        scenario=sc, layout=lay, files=files, prometheus=_metrics(model.ios),
        records=frame(rows, schema.RECORDS).sort("time_us", "cpu", "seq"),
        cs=frame(cs_rows, schema.CS), events=frame(ev, schema.EVENTS),
        invalidations=frame(inv, schema.INVALIDATIONS), true_episodes=model.episodes,
        dropped={c: r.dropped_total for c, r in model.relay.items()},
        loop_blocks=model.loop_blocks,
    )
    if out_dir is not None:
        write(res, Path(out_dir), force)
    return res


def write(res: EmitResult, out: Path, force: bool = False) -> None:
    """Write the dump directory: trace<cpu>, prometheus, scenario.toml, truth/*.csv.

    Through :class:`OutputDir`, like the exports: every file atomic, no write
    through a symlink inside ``out``.  A directory with anything in it is
    refused without ``force``; with it, the files are replaced and the trace
    files of CPUs the new dump does not have are removed (left behind, they
    would be decoded as part of it).
    """
    with OutputDir(out, force=force) as d:
        present = d.listing()
        if present and not force:
            raise OutputError("not empty (use --force to replace its dump)", out)
        traces = {f"trace{cpu}": data for cpu, data in res.files.items()}
        for name, data in traces.items():
            d.write_bytes(name, data)
        d.write_bytes("prometheus", res.prometheus)
        sc = res.scenario
        text = sc.to_toml()
        if res.layout != sc.layout:
            text = text.replace(f'layout = "{sc.layout}"', f'layout = "{res.layout}"')
        d.write_text("scenario.toml", text)
        with d.subdir("truth") as truth:
            for name in TRUTH_FILES:
                df: pl.DataFrame = getattr(res, name)
                if name == "records":
                    df = df.with_columns(pl.col("payload").bin.encode("hex"))
                truth.write_frame(f"{name}.csv", df)
        for name in present:
            if TRACE_NAME.match(name) and name not in traces:
                d.remove(name)
