"""Scenario: the workload the emitter replays, read from a TOML file.

Every key is optional; unknown keys are an error (a typo must not silently
fall back to a default).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..formats import layouts as L


@dataclass
class Scenario:
    """What to simulate.  Rates are per second of simulated time."""

    name: str = "scenario"
    seed: int = 1
    #: number of CPUs, or the list of CPU numbers (gaps allowed, like offline CPUs)
    cpus: int | list[int] = 2
    duration_ms: float = 200.0
    #: "stream" (what `cat traceN` returns) or "raw" (the ring's memory image)
    layout: str = "stream"
    subbuf_size: int = L.RELAY_SUBBUF_SIZE
    n_subbufs: int = L.RELAY_N_SUBBUFS
    #: kernel HZ: a retry is re-queued after one jiffy = 1e6 / hz us
    hz: int = 1000
    #: the trace clock at the start (us since boot)
    start_time_us: int = 5_000_000_000
    #: a reader drains every complete sub-buffer this often; 0 = nobody reads
    reader_interval_ms: float = 0.0
    #: how many inodes (kernel nodeids are drawn from 2..), or an explicit list
    nodeids: int | list[int] = 8
    #: NOTIFY_INVAL_FILES per second (each calls fuse_invalidate_files)
    invalidation_rate: float = 50.0
    #: dirty data written per second per inode, MB/s: drives write-and-wait time
    write_load: float = 20.0
    #: cached pages per inode: drives invalidate_inode_pages2 time
    cached_pages: int = 2000
    #: probability that one write-and-wait / page invalidation attempt fails
    write_error_rate: float = 0.0
    pages_error_rate: float = 0.0
    #: errnos drawn for failures (-5 = EIO: write-back EIO is silently accepted)
    write_errnos: list[int] = field(default_factory=lambda: [-28, -11, -5, -4])
    pages_errnos: list[int] = field(default_factory=lambda: [-16])
    #: after this time the connection is gone: errors are untraced, no retries
    disconnect_at_ms: float | None = None
    #: opens per second on random inodes (an open of an inode being invalidated waits)
    open_rate: float = 100.0
    #: probability that an invalidation races with an rw open that gets linked
    #: while the bit is set (-> `pending`, the file is poisoned)
    link_race_rate: float = 0.2
    #: other text messages per second (pcs messages and ones outside the catalogue)
    background_text_rate: float = 200.0
    #: iotimes records per second
    iotimes_rate: float = 200.0
    #: probability that a background text message is 256+ characters
    long_message_rate: float = 0.0
    #: chunk servers, and the median network / IO time of each (us)
    cs_count: int = 4
    cs_net_median_us: list[float] = field(default_factory=lambda: [150.0, 300.0, 600.0, 1200.0])
    cs_io_median_us: list[float] = field(default_factory=lambda: [400.0, 800.0, 1600.0, 3200.0])
    #: make the invalidation of this nodeid (index into nodeids) hang from stall_at_ms on
    stall: int | None = None
    stall_at_ms: float = 0.0

    @property
    def cpu_list(self) -> list[int]:
        return list(range(self.cpus)) if isinstance(self.cpus, int) else list(self.cpus)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scenario:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown scenario key(s): {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(known))})")
        sc = cls(**d)
        sc.validate()
        return sc

    def validate(self) -> None:
        if self.layout not in ("stream", "raw"):
            raise ValueError(f"layout must be 'stream' or 'raw', not {self.layout!r}")
        if not self.cpu_list or min(self.cpu_list) < 0:
            raise ValueError("cpus must be a positive count or a list of CPU numbers")
        if self.subbuf_size < 64 or self.n_subbufs < 1:
            raise ValueError("subbuf_size must be >= 64 and n_subbufs >= 1")
        if self.duration_ms <= 0 or self.hz <= 0:
            raise ValueError("duration_ms and hz must be positive")
        if isinstance(self.nodeids, list) and min(self.nodeids, default=2) < 2:
            raise ValueError("nodeids must be >= 2 (1 is FUSE_ROOT_ID)")
        if self.cs_count < 1 or len(self.cs_net_median_us) < self.cs_count \
                or len(self.cs_io_median_us) < self.cs_count:
            raise ValueError("cs_net_median_us / cs_io_median_us need cs_count entries")

    def to_toml(self) -> str:
        """The scenario as TOML (for the copy written next to a dump)."""
        lines = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            lines.append(f"{f.name} = {_toml(v)}")
        return "\n".join(lines) + "\n"


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return repr(v)


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario TOML file."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{p}: not valid TOML: {e}") from None
    return Scenario.from_dict(data)
