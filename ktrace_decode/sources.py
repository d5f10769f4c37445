"""Where the trace bytes come from: a dump directory, one file, or a tar archive.

Files are memory-mapped (zero copy; the OS pages them in as the scan touches
them), so decoding a big file never copies it into Python objects.  A regular
file that reports size 0 but has content (the live relay files under
``/sys/kernel/debug/fuse/<conn>/``: reading them consumes them, like ``cat``)
is read once, up to :attr:`Limits.max_member_bytes`.

Archives (``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``, ``.tar.xz``) are read
in memory, never extracted, in one sequential pass with every member checked
*before* its data is read.  Refused, with a one-line message naming the
archive and the member:

- absolute paths (``/x``, ``C:x``), ``..`` components;
- symbolic and hard links, devices, FIFOs;
- a member that claims more than ``max_member_bytes``, a ``prometheus`` member
  over ``max_prometheus_bytes``, more than ``max_members`` members;
- decompression bombs: more than ``max_trace_bytes`` of trace data in total
  (what ends up in memory), or more than ``max_stream_bytes`` decompressed in
  total (what the decompressor is allowed to produce, skipped members, headers
  and padding included, so it also bounds the time spent).

The limits are a :class:`Limits` value (``DEFAULT_LIMITS``); pass another to
:func:`open_dump` to change them (the tests use tiny ones).  An archive over
the limits can still be decoded: extract it and decode the directory, which
is memory-mapped and has no size limit.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import mmap
import os
import re
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import ArchiveError, InputError, KtraceError

#: ``traceN`` with ASCII digits only and nothing after them: ``\d`` would take
#: any Unicode digit (``trace\u0663`` as CPU 3) and ``$`` a trailing newline.
TRACE_NAME = re.compile(r"\Atrace([0-9]+)\Z")
PROMETHEUS_NAME = "prometheus"
#: CPU numbers are stored as UInt16 (schema.RECORDS "cpu").
MAX_CPU = 0xFFFF

GiB = 1 << 30


@dataclass(frozen=True)
class Limits:
    """Resource limits for reading inputs (bytes unless said otherwise)."""

    #: One trace file read into memory (an archive member, or a size-0 file
    #: such as a live relay file).  The kernel keeps 2 MiB per CPU.
    max_member_bytes: int = 4 * GiB
    #: Sum of the trace and prometheus members of one archive (held in memory).
    max_trace_bytes: int = 4 * GiB
    #: Everything decompressed from one archive, skipped members included.
    max_stream_bytes: int = 16 * GiB
    #: Members of one archive (each costs a TarInfo in memory).
    max_members: int = 100_000
    #: The prometheus snapshot is 3008..4032 bytes in every known layout.
    max_prometheus_bytes: int = 1 << 20
    #: Tar headers (pax records, GNU long names) before one member: tarfile
    #: holds a pax header in memory whole, so a huge one is a bomb too.
    max_header_bytes: int = 1 << 20


DEFAULT_LIMITS = Limits()

# Backwards-compatible names for the two main limits.
MAX_MEMBER_BYTES = DEFAULT_LIMITS.max_member_bytes
MAX_ARCHIVE_BYTES = DEFAULT_LIMITS.max_trace_bytes


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


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _read_bounded(f: BinaryIO, limit: int, path: object) -> bytes:
    """Read ``f`` to its end, refusing more than ``limit`` bytes."""
    out = bytearray()
    while True:
        block = f.read(min(1 << 20, limit + 1 - len(out)))
        if not block:
            return bytes(out)
        out += block
        if len(out) > limit:
            raise InputError(f"more than {limit} bytes: refused (over the size limit)", path)


def _open_regular(path: Path, what: str = "a trace file") -> BinaryIO:
    """Open ``path`` for reading if it is a regular file (a FIFO must not block us)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InputError(f"{_kind(mode)}, not {what}", path)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _map_file(path: Path, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """The bytes of a regular file, memory-mapped (read, bounded, if it reports size 0)."""
    with _open_regular(path) as f:
        st = os.fstat(f.fileno())
        if st.st_size == 0:
            # Empty, or a pseudo-file (debugfs relay, procfs) whose size is unknown.
            data = _read_bounded(f, limits.max_member_bytes, path)
            return np.frombuffer(data, np.uint8) if data else np.zeros(0, np.uint8)
        try:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            # A filesystem without mmap: read it (bounded) instead.
            return np.frombuffer(_read_bounded(f, limits.max_member_bytes, path), np.uint8)
    return np.frombuffer(mm, np.uint8)


def mapping_of(data: np.ndarray) -> mmap.mmap | None:
    """The file mapping behind ``data`` (a :class:`TraceSource`'s), if it has one."""
    base = data.base
    if isinstance(base, memoryview):
        base = base.obj
    return base if isinstance(base, mmap.mmap) else None


def _read_whole(path: Path, size: int) -> np.ndarray:
    """Up to ``size`` bytes of ``path`` with read(): fewer if it shrank meanwhile."""
    out = np.empty(size, np.uint8)
    view = memoryview(out)
    done = 0
    with _open_regular(path) as f:
        while done < size:
            n = f.readinto(view[done:])
            if not n:
                break
            done += n
    return out[:done]


def in_memory(dump: Dump) -> Dump:
    """``dump`` with every memory-mapped trace file read into memory instead.

    For a long-lived reader (``ktrace tui``): a mapped file that is truncated
    while it is open (a new dump written over the same directory) kills the
    process with SIGBUS at the next touch of a page past the new end, which
    no Python code can catch.  Read with read(), a shrunk file just gives
    fewer bytes.  Files are read again by name, never through the mapping.
    """
    traces = []
    for t in dump.traces:
        data = t.data
        if mapping_of(data) is not None:
            try:
                data = _read_whole(Path(t.name), t.size)
            except OSError as e:
                raise InputError(f"cannot read: {e.strerror or e}", t.name) from None
        traces.append(TraceSource(t.cpu, t.name, data))
    return Dump(dump.path, traces, dump.prometheus)


def _cpu_of(name: str, where: object) -> int | None:
    """The CPU number of a ``traceN`` name (None for other names)."""
    m = TRACE_NAME.match(name)
    if not m:
        return None
    digits = m.group(1)
    if len(digits) > 6 or int(digits) > MAX_CPU:
        raise InputError(f"{_short(name)}: CPU number out of range (0..{MAX_CPU})", where)
    return int(digits)


def _short(name: str, n: int = 120) -> str:
    """A name for a one-line message: repr-escaped, at most about ``n`` characters."""
    r = repr(name)
    return r if len(r) <= n else r[: n - 5] + "...'"


def open_dump(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> Dump:
    """Find the trace buffers at ``path`` (directory, trace file, or .tar/.tar.gz)."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputError("no such file or directory", path) from None
    except OSError as e:
        raise InputError(f"cannot access: {e.strerror or e}", path) from None
    if stat.S_ISDIR(st.st_mode):
        return _open_dir(p, limits)
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{_kind(st.st_mode)}: expected a dump directory, a trace file "
                         "or a .tar/.tar.gz archive", path)
    cpu = _cpu_of(p.name, path)
    if cpu is None:
        if _is_tar(p):
            return _open_tar(p, limits)
        comp = _sniff_file(p)
        if comp:
            raise InputError(f"a {comp}-compressed file, not a tar archive: decompress it "
                             "and decode the result", path)
    try:
        data = _map_file(p, limits)
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", path) from None
    return Dump(str(p), [TraceSource(cpu or 0, str(p), data)])


def _open_dir(p: Path, limits: Limits) -> Dump:
    try:
        entries = sorted(p.iterdir())
    except OSError as e:
        raise InputError(f"cannot list directory: {e.strerror or e}", p) from None
    traces: list[TraceSource] = []
    prom: bytes | None = None
    seen: dict[int, str] = {}
    for e in entries:
        cpu = _cpu_of(e.name, p)
        if cpu is None and e.name != PROMETHEUS_NAME:
            continue
        try:
            if cpu is not None:
                if cpu in seen:
                    raise InputError(f"{seen[cpu]} and {e.name} are both CPU {cpu}", p)
                seen[cpu] = e.name
                traces.append(TraceSource(cpu, str(e), _map_file(e, limits)))
            else:
                with _open_regular(e, "a prometheus snapshot") as f:
                    prom = _read_bounded(f, limits.max_prometheus_bytes, e)
        except OSError as err:
            raise InputError(f"cannot read: {err.strerror or err}", e) from None
    if not traces:
        raise InputError("no trace files (trace0..traceN) in this directory", p)
    traces.sort(key=lambda t: t.cpu)
    return Dump(str(p), traces, prom)


# --- archives ---------------------------------------------------------------

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2")


_DECOMPRESS = {
    "gz": lambda f: gzip.GzipFile(fileobj=f, mode="rb"),
    "bz2": lambda f: bz2.BZ2File(f, mode="rb"),
    "xz": lambda f: lzma.LZMAFile(f, mode="rb"),  # noqa: SIM115 (closed by the ExitStack)
}


def _sniff(head: bytes) -> str | None:
    """Compression of a file from its first bytes: gz, bz2, xz, or None."""
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return None


def _sniff_file(p: Path) -> str | None:
    try:
        with _open_regular(p) as f:
            return _sniff(f.read(6))
    except (OSError, KtraceError):
        return None


def _is_tar(p: Path) -> bool:
    if p.name.lower().endswith(_TAR_SUFFIXES):
        return True
    try:
        with _open_regular(p) as f:
            head = f.read(512)
            comp = _sniff(head)
            if comp is None:  # plain tar: "ustar" magic at 257 (or a valid v7 header)
                return len(head) == 512 and tarfile.is_tarfile(io.BytesIO(head + bytes(512)))
        return tarfile.is_tarfile(p)
    except (OSError, KtraceError, tarfile.TarError, EOFError, ValueError, zlib.error,
            lzma.LZMAError):
        return False


class _Budget(io.RawIOBase):
    """The decompressed tar stream, with two limits checked as it is read.

    ``limit``: bytes in total (decompression bombs, time spent).  ``allowance``:
    the stream offset up to which reading is expected -- the end of the current
    member's data plus room for the next member's headers -- so that a huge pax
    header (which tarfile reads into memory whole) is stopped early.
    """

    #: Read-ahead of the buffers between this stream and tarfile.
    SLACK = 1 << 16

    def __init__(self, inner: BinaryIO, limits: Limits, where: str) -> None:
        self.inner, self.limits, self.where = inner, limits, where
        self.count = 0
        self.allowance = limits.max_header_bytes + self.SLACK

    def expect(self, m: tarfile.TarInfo) -> None:
        """``m`` was just read: allow its data, then the headers of the next member."""
        end = m.offset_data + -(-m.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
        self.allowance = end + self.limits.max_header_bytes + self.SLACK

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(len(b))
        self.count += len(data)
        if self.count > self.limits.max_stream_bytes:
            raise ArchiveError(
                f"more than {self.limits.max_stream_bytes} bytes after decompression: refused "
                "(decompression bomb?); extract it and decode the directory instead", self.where)
        if self.count > self.allowance:
            raise ArchiveError(
                f"tar headers of more than {self.limits.max_header_bytes} bytes near offset "
                f"{self.count - len(data)} of the decompressed stream: refused", self.where)
        b[: len(data)] = data
        return len(data)


def _check_member(m: tarfile.TarInfo, where: str, limits: Limits = DEFAULT_LIMITS) -> None:
    name = m.name
    shown = _short(name)
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise ArchiveError(f"member {shown} has an absolute path: refused", where)
    if ".." in re.split(r"[/\\]", name):
        raise ArchiveError(f"member {shown} escapes the archive with '..': refused", where)
    if m.issym():
        raise ArchiveError(f"member {shown} is a symbolic link: refused", where)
    if m.islnk():
        raise ArchiveError(f"member {shown} is a hard link: refused", where)
    if m.isdev():
        raise ArchiveError(f"member {shown} is a device or FIFO: refused", where)
    if m.size < 0 or m.size > limits.max_member_bytes:
        raise ArchiveError(f"member {shown} claims {m.size} bytes, over the "
                           f"{limits.max_member_bytes}-byte limit: refused", where)


def _open_tar(p: Path, limits: Limits = DEFAULT_LIMITS) -> Dump:
    where = str(p)
    try:
        raw = _open_regular(p, "an archive")
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", where) from None
    comp = None
    with contextlib.ExitStack() as stack:
        stack.enter_context(raw)
        try:
            comp = _sniff(raw.read(6))
            raw.seek(0)
            inner: BinaryIO = raw
            if comp in _DECOMPRESS:
                inner = stack.enter_context(_DECOMPRESS[comp](raw))
            budget = _Budget(inner, limits, where)
            with tarfile.open(fileobj=io.BufferedReader(budget), mode="r|") as tf:
                return _read_members(tf, budget, where, limits)
        except KtraceError:
            raise
        except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error,
                lzma.LZMAError) as e:
            what = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ArchiveError(f"unreadable archive ({comp or 'tar'}): {what}", where) from None


def _read_members(tf: tarfile.TarFile, budget: _Budget, where: str, limits: Limits) -> Dump:
    traces: list[TraceSource] = []
    prom: bytes | None = None
    dirs: set[str] = set()
    seen: dict[int, str] = {}
    total = 0
    for count, m in enumerate(tf, 1):
        if count > limits.max_members:
            raise ArchiveError(f"more than {limits.max_members} members: refused", where)
        _check_member(m, where, limits)
        budget.expect(m)
        tf.members.clear()  # stream mode: do not keep every TarInfo
        if not m.isfile():
            continue
        base = m.name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
        cpu = _cpu_of(base, f"{where}!{m.name}")
        if cpu is None and base != PROMETHEUS_NAME:
            continue
        if cpu is None and m.size > limits.max_prometheus_bytes:
            raise ArchiveError(f"member {_short(m.name)} claims {m.size} bytes, too big for "
                               "a prometheus snapshot: refused", where)
        if total + m.size > limits.max_trace_bytes:
            raise ArchiveError(
                f"more than {limits.max_trace_bytes} bytes of trace data: refused "
                "(decompression bomb?); extract it and decode the directory instead", where)
        f = tf.extractfile(m)
        if f is None:
            continue
        blob = f.read(m.size)
        if len(blob) != m.size:
            raise ArchiveError(f"member {_short(m.name)} is cut short ({len(blob)} of "
                               f"{m.size} bytes)", where)
        total += len(blob)
        if cpu is None:
            prom = blob
            continue
        if cpu in seen:
            raise InputError(f"{_short(seen[cpu])} and {_short(m.name)} are both CPU {cpu} "
                             "(the same traceN twice?)", where)
        seen[cpu] = m.name
        dirs.add(m.name.replace("\\", "/").rpartition("/")[0] or ".")
        traces.append(TraceSource(cpu, f"{where}!{m.name}", np.frombuffer(blob, np.uint8)))
    if not traces:
        raise InputError("no trace files (trace0..traceN) in this archive", where)
    if len(dirs) > 1:
        raise InputError(
            f"trace files in several directories ({', '.join(sorted(dirs))}): "
            "extract one dump or pack one directory", where)
    traces.sort(key=lambda t: t.cpu)
    return Dump(where, traces, prom)
