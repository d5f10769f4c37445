"""Where the trace bytes come from: a dump directory, one file, or a tar archive.

Files are memory-mapped (zero copy; the OS pages them in as the scan touches
them).  Archive members are read into memory without ever touching the disk,
after safety checks (no absolute paths, ``..``, links, devices; bounded sizes).
"""

from __future__ import annotations

import mmap
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ArchiveError, InputError

TRACE_NAME = re.compile(r"^trace(\d+)$")
PROMETHEUS_NAME = "prometheus"

#: Largest archive member we read (a trace file is 2 MiB per CPU in the
#: kernel; continuous captures get bigger, but not this big).
MAX_MEMBER_BYTES = 4 << 30
#: Total bytes we decompress from one archive: stops decompression bombs.
MAX_ARCHIVE_BYTES = 16 << 30


@dataclass
class TraceSource:
    """One per-CPU trace buffer."""

    cpu: int
    name: str  # display name: path, or archive!member
    data: np.ndarray  # uint8 view of the bytes (mmap-backed for files)

    @property
    def size(self) -> int:
        return int(self.data.size)


@dataclass
class Dump:
    """Everything found at one input path."""

    path: str
    traces: list[TraceSource]
    prometheus: bytes | None = None


def _map_file(path: Path) -> np.ndarray:
    size = path.stat().st_size
    if size == 0:
        return np.zeros(0, np.uint8)
    with path.open("rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return np.frombuffer(mm, np.uint8)


def open_dump(path: str | Path) -> Dump:
    """Find the trace buffers at ``path`` (directory, trace file, or .tar/.tar.gz)."""
    p = Path(path)
    if not p.exists():
        raise InputError("no such file or directory", path)
    if p.is_dir():
        return _open_dir(p)
    if not p.is_file():
        raise InputError("not a regular file or directory", path)
    if _is_tar(p):
        return _open_tar(p)
    m = TRACE_NAME.match(p.name)
    cpu = int(m.group(1)) if m else 0
    try:
        data = _map_file(p)
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path) from None
    return Dump(str(p), [TraceSource(cpu, str(p), data)])


def _open_dir(p: Path) -> Dump:
    try:
        entries = sorted(p.iterdir())
    except OSError as e:
        raise InputError(f"cannot list directory: {e.strerror}", p) from None
    traces: list[TraceSource] = []
    prom: bytes | None = None
    for e in entries:
        m = TRACE_NAME.match(e.name)
        try:
            if m and e.is_file():
                traces.append(TraceSource(int(m.group(1)), str(e), _map_file(e)))
            elif e.name == PROMETHEUS_NAME and e.is_file():
                prom = e.read_bytes()
        except OSError as err:
            raise InputError(f"cannot read: {err.strerror}", e) from None
    if not traces:
        raise InputError("no trace files (trace0..traceN) in this directory", p)
    traces.sort(key=lambda t: t.cpu)
    return Dump(str(p), traces, prom)


def _is_tar(p: Path) -> bool:
    name = p.name.lower()
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2")):
        return True
    try:
        return tarfile.is_tarfile(p)
    except OSError:
        return False


def _check_member(m: tarfile.TarInfo, where: str) -> None:
    name = m.name
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise ArchiveError(f"member {name!r} has an absolute path: refused", where)
    if ".." in Path(name).parts:
        raise ArchiveError(f"member {name!r} escapes the archive with '..': refused", where)
    if m.issym() or m.islnk():
        raise ArchiveError(f"member {name!r} is a link: refused", where)
    if m.isdev() or m.isfifo():
        raise ArchiveError(f"member {name!r} is a device or fifo: refused", where)
    if m.size > MAX_MEMBER_BYTES:
        raise ArchiveError(
            f"member {name!r} claims {m.size} bytes, over the {MAX_MEMBER_BYTES} limit", where)


def _open_tar(p: Path) -> Dump:
    where = str(p)
    traces: list[TraceSource] = []
    prom: bytes | None = None
    dirs: set[str] = set()
    total = 0
    try:
        with tarfile.open(p, mode="r:*") as tf:
            for m in tf:
                _check_member(m, where)
                if not m.isfile():
                    continue
                base = Path(m.name).name
                tm = TRACE_NAME.match(base)
                if not tm and base != PROMETHEUS_NAME:
                    continue
                f = tf.extractfile(m)
                if f is None:
                    continue
                # Read at most the declared size + 1: a lying header cannot
                # make us read without bound.
                blob = f.read(min(m.size, MAX_MEMBER_BYTES) + 1)
                total += len(blob)
                if total > MAX_ARCHIVE_BYTES:
                    raise ArchiveError(
                        f"more than {MAX_ARCHIVE_BYTES} bytes of trace data: refused "
                        "(decompression bomb?)", where)
                if tm:
                    dirs.add(str(Path(m.name).parent))
                    traces.append(TraceSource(int(tm.group(1)), f"{where}!{m.name}",
                                              np.frombuffer(blob, np.uint8)))
                else:
                    prom = blob
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise ArchiveError(f"unreadable archive: {e}", where) from None
    if not traces:
        raise InputError("no trace files (trace0..traceN) in this archive", where)
    if len(dirs) > 1:
        raise InputError(
            f"trace files in several directories ({', '.join(sorted(dirs))}): "
            "extract one dump or pack one directory", where)
    cpus = [t.cpu for t in traces]
    if len(set(cpus)) != len(cpus):
        raise InputError("the same traceN appears twice in the archive", where)
    traces.sort(key=lambda t: t.cpu)
    return Dump(where, traces, prom)
