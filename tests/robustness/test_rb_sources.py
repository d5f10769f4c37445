"""Inputs that are files and directories: mapped, bounded, never blocking."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np
import pytest

from helpers import sample_stream
from ktrace_decode import sources
from ktrace_decode.errors import InputError
from ktrace_decode.sources import Limits, open_dump

TRACE = b"".join(sample_stream(20))


def test_regular_files_are_memory_mapped(tmp_path):
    p = tmp_path / "trace3"
    p.write_bytes(TRACE)
    (src,) = open_dump(p).traces
    assert src.cpu == 3 and bytes(src.data) == TRACE
    assert isinstance(src.data.base.obj, mmap.mmap)  # zero copy, paged in on demand


def _size_zero(monkeypatch, target: Path) -> None:
    """Make ``target`` look like a debugfs relay file: st_size 0, content on read()."""
    real = os.fstat

    def fstat(fd):
        st = real(fd)
        if os.path.samestat(st, os.stat(target)):
            return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid,
                                   st.st_gid, 0, st.st_atime, st.st_mtime, st.st_ctime))
        return st

    monkeypatch.setattr(sources.os, "fstat", fstat)


def test_a_size_zero_pseudo_file_is_read(tmp_path, monkeypatch):
    d = tmp_path / "42"
    d.mkdir()
    (d / "trace0").write_bytes(TRACE)
    _size_zero(monkeypatch, d / "trace0")
    (src,) = open_dump(d).traces
    assert bytes(src.data) == TRACE


def test_a_size_zero_pseudo_file_is_read_up_to_the_limit(tmp_path, monkeypatch):
    p = tmp_path / "trace0"
    p.write_bytes(TRACE)
    _size_zero(monkeypatch, p)
    with pytest.raises(InputError, match="more than 100 bytes: refused"):
        open_dump(p, Limits(max_member_bytes=100))


def test_without_mmap_the_file_is_read(tmp_path, monkeypatch):
    p = tmp_path / "trace0"
    p.write_bytes(TRACE)

    def no_mmap(*a, **k):
        raise OSError(19, "No such device")

    monkeypatch.setattr(sources.mmap, "mmap", no_mmap)
    assert bytes(open_dump(p).traces[0].data) == TRACE


def test_a_link_to_a_device_in_a_dump_is_refused_not_read_forever(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "trace0").write_bytes(TRACE)
    (d / "trace1").symlink_to("/dev/zero")
    with pytest.raises(InputError, match="trace1: a device, not a trace file"):
        open_dump(d)


def test_a_fifo_named_prometheus_is_refused_not_waited_on(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "trace0").write_bytes(TRACE)
    os.mkfifo(d / "prometheus")
    with pytest.raises(InputError, match="prometheus: a FIFO, not a prometheus snapshot"):
        open_dump(d)


def test_an_oversized_prometheus_is_refused(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "trace0").write_bytes(TRACE)
    (d / "prometheus").write_bytes(bytes(5000))
    with pytest.raises(InputError, match="prometheus: more than 4096 bytes"):
        open_dump(d, Limits(max_prometheus_bytes=4096))


@pytest.mark.parametrize("name,cpu", [("trace0", 0), ("trace65535", 65535), ("trace007", 7)])
def test_cpu_numbers(tmp_path, name, cpu):
    p = tmp_path / name
    p.write_bytes(TRACE)
    assert open_dump(p).traces[0].cpu == cpu


@pytest.mark.parametrize("name", ["trace65536", "trace" + "9" * 40])
def test_cpu_numbers_out_of_range(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(TRACE)
    with pytest.raises(InputError, match="CPU number out of range"):
        open_dump(p)


@pytest.mark.parametrize("name", ["trace\u0663", "trace\uff11", "trace0\n", "trace1\n"])
def test_only_ascii_digits_ending_the_name_make_a_trace_file(tmp_path, name):
    # str.isdigit-style digits (Arabic-Indic 3, fullwidth 1) and a trailing
    # newline once made a CPU number: in a directory such names are not trace
    # files (skipped like any other file), alone they are an unnamed file (CPU 0).
    d = tmp_path / "d"
    d.mkdir()
    (d / "trace5").write_bytes(TRACE)
    (d / name).write_bytes(TRACE)
    assert [t.cpu for t in open_dump(d).traces] == [5]
    assert sources.TRACE_NAME.match(name) is None
    assert open_dump(d / name).traces[0].cpu == 0


def test_gaps_in_cpu_numbers_are_fine_and_sorted(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    for c in (7, 0, 12):
        (d / f"trace{c}").write_bytes(TRACE)
    assert [t.cpu for t in open_dump(d).traces] == [0, 7, 12]


def test_an_unnamed_file_is_cpu_0(tmp_path):
    p = tmp_path / "capture.bin"
    p.write_bytes(TRACE)
    (src,) = open_dump(p).traces
    assert src.cpu == 0 and np.array_equal(src.data, np.frombuffer(TRACE, np.uint8))


# --- in_memory: what a long-lived reader (the TUI) holds --------------------

def _dump_dir(tmp_path: Path) -> Path:
    d = tmp_path / "dump"
    d.mkdir()
    for cpu in (0, 1):
        (d / f"trace{cpu}").write_bytes(TRACE)
    (d / "prometheus").write_bytes(b"fuse_x 1\n")
    return d


def test_in_memory_reads_every_mapped_file_into_memory(tmp_path):
    mapped = open_dump(_dump_dir(tmp_path))
    held = sources.in_memory(mapped)
    assert [(t.cpu, t.name, bytes(t.data)) for t in held.traces] == \
        [(t.cpu, t.name, TRACE) for t in mapped.traces]
    assert all(sources.mapping_of(t.data) is None for t in held.traces)
    assert all(sources.mapping_of(t.data) is not None for t in mapped.traces)
    assert held.prometheus == b"fuse_x 1\n" and held.path == mapped.path


def test_in_memory_keeps_what_was_already_in_memory(tmp_path, monkeypatch):
    p = tmp_path / "trace0"
    p.write_bytes(TRACE)
    dump = open_dump(p)
    read = sources.in_memory(dump)
    monkeypatch.setattr(sources, "_read_whole", lambda *a: pytest.fail("read twice"))
    again = sources.in_memory(read)
    assert again.traces[0].data is read.traces[0].data


def test_in_memory_of_a_file_that_shrank_gives_the_bytes_left(tmp_path):
    d = _dump_dir(tmp_path)
    mapped = open_dump(d)
    os.truncate(d / "trace1", 100)
    held = sources.in_memory(mapped)
    assert bytes(held.traces[1].data) == TRACE[:100]


def test_in_memory_of_a_file_gone_is_one_input_error(tmp_path):
    d = _dump_dir(tmp_path)
    mapped = open_dump(d)
    (d / "trace1").unlink()
    with pytest.raises(InputError, match="trace1: cannot read: No such file"):
        sources.in_memory(mapped)
