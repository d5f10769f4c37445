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

    def __post_init__(self) -> None:
        # Scenario(**kw) and dataclasses.replace() are checked too: a bad value must
        # be one clear line here, not a traceback from deep inside the model.
        self.validate()

    def validate(self) -> None:
        """Raise ValueError (one line naming the key) unless every key has a usable value."""
        _one_of("layout", self.layout, ("stream", "raw"))
        _str("name", self.name)
        _int("seed", self.seed)
        if isinstance(self.cpus, (list, tuple)):
            _int_list("cpus", self.cpus, 0, 65535, nonempty=True)
        elif _is_int(self.cpus):
            _int("cpus", self.cpus, 1, 65536)
        else:
            raise ValueError(f"cpus must be a CPU count or a list of CPU numbers, "
                             f"not {self.cpus!r}")
        _num("duration_ms", self.duration_ms, 0, strict=True)
        _int("subbuf_size", self.subbuf_size, 64, 1 << 32)
        _int("n_subbufs", self.n_subbufs, 1, 1 << 16)
        _num("hz", self.hz, 0, strict=True)
        _int("start_time_us", self.start_time_us, 0, 1 << 62)
        _num("reader_interval_ms", self.reader_interval_ms, 0)
        if isinstance(self.nodeids, (list, tuple)):
            # 1 is FUSE_ROOT_ID; the work function prints nodeid - 1
            _int_list("nodeids", self.nodeids, 2, (1 << 64) - 1, nonempty=True)
        elif _is_int(self.nodeids):
            _int("nodeids", self.nodeids, 1, _NODEID_POOL)
        else:
            raise ValueError(f"nodeids must be a count or a list of kernel nodeids, "
                             f"not {self.nodeids!r}")
        for key in ("invalidation_rate", "write_load", "open_rate", "background_text_rate",
                    "iotimes_rate"):
            _num(key, getattr(self, key), 0)
        _int("cached_pages", self.cached_pages, 0, 1 << 40)
        for key in ("write_error_rate", "pages_error_rate", "link_race_rate",
                    "long_message_rate"):
            _num(key, getattr(self, key), 0, hi=1.0)
        # negative errnos, as the kernel returns them (MAX_ERRNO is 4095)
        _int_list("write_errnos", self.write_errnos, -4095, -1,
                  nonempty=self.write_error_rate > 0)
        _int_list("pages_errnos", self.pages_errnos, -4095, -1,
                  nonempty=self.pages_error_rate > 0)
        if self.disconnect_at_ms is not None:
            _num("disconnect_at_ms", self.disconnect_at_ms, 0)
        _int("cs_count", self.cs_count, 1, 1 << 16)
        for key in ("cs_net_median_us", "cs_io_median_us"):
            values = getattr(self, key)
            if not isinstance(values, (list, tuple)) or len(values) < self.cs_count:
                raise ValueError(f"{key} needs one median per chunk server "
                                 f"(cs_count = {self.cs_count})")
            for v in values:
                _num(key, v, 0, strict=True)
        n_nodeids = self.nodeids if isinstance(self.nodeids, int) else len(self.nodeids)
        if self.stall is not None:
            _int("stall", self.stall, 0, n_nodeids - 1)
        _num("stall_at_ms", self.stall_at_ms, 0)

    def to_toml(self) -> str:
        """The scenario as TOML (for the copy written next to a dump)."""
        lines = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            lines.append(f"{f.name} = {_toml(v)}")
        return "\n".join(lines) + "\n"



#: What each key does, for ``ktrace emit --help`` (tests check every field has one).
KEY_HELP: dict[str, str] = {
    "name": "a label for the scenario (copied into DIR/scenario.toml)",
    "seed": "random seed: the same scenario and seed always give the same bytes",
    "cpus": "CPU count (trace0..N-1) or a list of CPU numbers, gaps allowed: [0, 1, 5]",
    "duration_ms": "simulated time; the dump is taken at the end, whatever is in flight "
                   "stays in progress",
    "layout": '"stream" (what cat traceN returns: records back to back) or "raw" (the '
              "ring's memory image, n_subbufs x subbuf_size bytes per CPU)",
    "subbuf_size": "relay sub-buffer size in bytes (the kernel uses 524288)",
    "n_subbufs": "relay sub-buffers per CPU (the kernel uses 4)",
    "hz": "kernel HZ: a failed invalidation is retried one jiffy (1e6/hz us) later",
    "start_time_us": "trace clock at the start, us since boot",
    "reader_interval_ms": "a reader frees every complete sub-buffer this often; 0 = nobody "
                          "reads, so the buffer keeps the oldest data and drops the rest",
    "nodeids": "how many inodes (kernel nodeids drawn from 2..199999), or an explicit list "
               "of kernel nodeids >= 2",
    "invalidation_rate": "NOTIFY_INVAL_FILES per second on random nodeids; one whose "
                         "invalidation is still pending coalesces silently",
    "write_load": "dirty data in MB/s: write-and-wait flushes 5-50 ms of it at ~400 MB/s",
    "cached_pages": "page-cache pages per inode: invalidate_inode_pages2 takes "
                    "0.05-0.2 us per page",
    "write_error_rate": "probability that one write-and-wait fails (errno from "
                        "write_errnos); -5 (EIO) goes on untraced, others trace a "
                        "write error and retry",
    "pages_error_rate": "probability that one invalidate_inode_pages2 fails (errno from "
                        "pages_errnos): a pages error and a retry",
    "write_errnos": "negative errnos write-and-wait failures are drawn from",
    "pages_errnos": "negative errnos page-invalidation failures are drawn from",
    "disconnect_at_ms": "the connection goes away at this time: a work run that starts "
                        "later traces no errors and retries nothing (the flow goes on)",
    "open_rate": "opens per second on random nodeids; an open of an inode being "
                 "invalidated prints waiting",
    "link_race_rate": "probability per invalidation that an rw open in flight is linked "
                      "1-40 us after the bit is set: pending, with a fresh fh",
    "background_text_rate": "other text records per second: pcs messages from the "
                            "catalogue and messages outside it (event 'other')",
    "iotimes_rate": "iotimes records per second (read/write/sync via 1-3 chunk servers); "
                    "their IO also feeds DIR/prometheus",
    "long_message_rate": "probability that a background message is >= 256 chars: the "
                         "kernel keeps 255 chars + NUL and copies unrelated bytes after it",
    "cs_count": "chunk servers (csid 1000..), each with its own latency medians",
    "cs_net_median_us": "per chunk server: median network time (lognormal, sigma 0.5)",
    "cs_io_median_us": "per chunk server: median local IO time (lognormal, sigma 0.5)",
    "stall": "index into the nodeids whose invalidation hangs in write-back from "
             "stall_at_ms on; the one work item blocks, so later invalidations never start",
    "stall_at_ms": "when the stall begins",
}


#: nodeids drawn from a count come from range(2, 200_000) (model.py)
_NODEID_POOL = 199_998


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _str(key: str, v: Any) -> None:
    if not isinstance(v, str):
        raise ValueError(f"{key} must be a string, not {v!r}")


def _one_of(key: str, v: Any, choices: tuple[str, ...]) -> None:
    if v not in choices:
        raise ValueError(f"{key} must be one of {', '.join(map(repr, choices))}, not {v!r}")


def _int(key: str, v: Any, lo: int | None = None, hi: int | None = None) -> None:
    if not _is_int(v):
        raise ValueError(f"{key} must be an integer, not {v!r}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{key} must be in {lo}..{hi}, not {v}")


def _num(key: str, v: Any, lo: float, hi: float | None = None, strict: bool = False) -> None:
    if not (_is_int(v) or isinstance(v, float)) or v != v:  # v != v: NaN
        raise ValueError(f"{key} must be a number, not {v!r}")
    if v < lo or (strict and v == lo) or (hi is not None and v > hi) or v == float("inf"):
        bound = f"> {lo}" if strict else f">= {lo}"
        raise ValueError(f"{key} must be {bound}" + (f" and <= {hi}" if hi is not None else "")
                         + f", not {v}")


def _int_list(key: str, v: Any, lo: int, hi: int, nonempty: bool) -> None:
    if not isinstance(v, (list, tuple)) or not all(_is_int(x) for x in v):
        raise ValueError(f"{key} must be a list of integers, not {v!r}")
    if nonempty and not v:
        raise ValueError(f"{key} must not be empty")
    bad = [x for x in v if not lo <= x <= hi]
    if bad:
        raise ValueError(f"{key}: {bad[0]} is outside {lo}..{hi}")
    if key in ("cpus", "nodeids") and len(set(v)) != len(v):
        raise ValueError(f"{key} lists a value twice")

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
