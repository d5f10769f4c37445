"""Refuse to open a dump the TUI cannot hold in this machine's memory.

Unlike ``ktrace decode``, ``analyze`` and ``export``, which stream a dump in
bounded memory, the TUI decodes and analyses the whole dump at once: its
Events tab scrolls and filters every record.  On a storage node, running it
on a multi-GB continuous capture would push the node into swap or wake the
OOM killer, which may pick the storage services instead of us.  So the TUI
estimates its need first and says so in one line, before any screen.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..sources import Dump

#: Peak RSS per byte of trace files.  Measured: decode + analysis + the Events
#: view of the 10M-record benchmark dump (0.98 GB, 85 % text) peaked at
#: 4.2 GB; of a 1M-record one (98 MB), 0.6 GB.  Short records need more per
#: byte (about 5x for tui_bench.py's 42-byte ones): an estimate, not a bound.
BYTES_PER_DUMP_BYTE = 4.3
#: The interpreter, Polars and Textual before the first record.
BASELINE_BYTES = 200 << 20

MEMINFO = Path("/proc/meminfo")
#: Where this process's cgroup is named, and where cgroups are mounted: a
#: container's or a systemd slice's limit does not show in /proc/meminfo.
SELF_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")
_V2_FILES = ("memory.max", "memory.current")
_V1_FILES = ("memory.limit_in_bytes", "memory.usage_in_bytes")


def estimate(dump_bytes: int) -> int:
    """Bytes the TUI is expected to need for a dump of ``dump_bytes``."""
    return BASELINE_BYTES + int(dump_bytes * BYTES_PER_DUMP_BYTE)


def _meminfo_available(meminfo: Path) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # the kernel prints kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room(limit: Path, usage: Path) -> int | None:
    try:
        text = limit.read_text().strip()
        if text == "max":  # cgroup v2: no limit
            return None
        cap, used = int(text), int(usage.read_text().strip())
    except (OSError, ValueError):
        return None
    # cgroup v1 reports "no limit" as a huge number (a page-rounded 2^63).
    return None if cap >= 1 << 60 else max(cap - used, 0)


def _cgroup_levels(self_cgroup: Path, root: Path) -> list[tuple[Path, Path]]:
    """(limit, usage) files of this process's memory cgroup and of every
    ancestor: a limit anywhere above us binds us too."""
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        controllers, _, rel = line.partition(":")[2].partition(":")
        if controllers == "":  # cgroup v2: "0::/path"
            base, files = root, _V2_FILES
        elif "memory" in controllers.split(","):  # cgroup v1: "N:memory:/path"
            base, files = root / "memory", _V1_FILES
        else:
            continue
        d = base / rel.strip("/")
        while True:
            out.append((d / files[0], d / files[1]))
            if d == base:
                break
            d = d.parent
    return out


def available(meminfo: Path = MEMINFO, self_cgroup: Path = SELF_CGROUP,
              cgroup_root: Path = CGROUP_ROOT) -> int | None:
    """Bytes this process can still use: MemAvailable, or less when a cgroup
    limits us; None where neither can be read (then nothing is refused)."""
    figures = [_meminfo_available(meminfo),
               *(_cgroup_room(lim, use) for lim, use in _cgroup_levels(self_cgroup, cgroup_root))]
    known = [f for f in figures if f is not None]
    return min(known) if known else None


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def check(dump: Dump, room: int | None) -> None:
    """Raise InputError when ``dump`` would need more than ``room`` bytes."""
    size = sum(t.size for t in dump.traces)
    need = estimate(size)
    if room is not None and need > room:
        raise InputError(
            f"the TUI holds the whole dump in memory: about {_gb(need)} for these "
            f"{_gb(size)} of trace files, but only {_gb(room)} is available; "
            "`ktrace analyze` and `ktrace export` stream it in bounded memory "
            "(or pass --ignore-memory to open it anyway)", dump.path)
