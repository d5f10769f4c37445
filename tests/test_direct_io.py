"""direct_io: files written around the page cache hold exactly the bytes given."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ktrace_decode import direct_io
from ktrace_decode.direct_io import BLOCK, DirectFile, direct_file
from ktrace_decode.safe_output import OutputDir


def _open(path: Path, staging: int = 2 * BLOCK) -> DirectFile:
    """A DirectFile on a new file: O_DIRECT where the file system takes it,
    else on the plain descriptor (the same code, minus the flag)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    return direct_file(fd, staging) or DirectFile(fd, staging)


def _direct_or_skip(path: Path) -> DirectFile:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    f = direct_file(fd)
    if f is None:
        os.close(fd)
        pytest.skip("this file system does not take O_DIRECT")
    return f


@settings(max_examples=60, deadline=None)
@given(chunks=st.lists(st.binary(max_size=3 * BLOCK + 5), max_size=12),
       blocks=st.integers(1, 3),
       after=st.lists(st.sampled_from(["", "flush", "release"]), max_size=12))
def test_bytes_written_are_the_bytes_given(tmp_path_factory: pytest.TempPathFactory,
                                           chunks: list[bytes], blocks: int,
                                           after: list[str]) -> None:
    path = tmp_path_factory.mktemp("direct") / "out"
    with _open(path, blocks * BLOCK) as f:
        for i, chunk in enumerate(chunks):
            assert f.write(chunk) == len(chunk)
            if i < len(after) and after[i] == "flush":
                f.flush()
            elif i < len(after) and after[i] == "release":
                f.release()
                assert f._map is None and f._used < BLOCK  # unmapped, a partial block kept
    assert path.read_bytes() == b"".join(chunks)


def test_the_descriptor_really_is_direct_and_the_tail_goes_buffered(tmp_path: Path) -> None:
    f = _direct_or_skip(tmp_path / "out")
    assert fcntl.fcntl(f.fd, fcntl.F_GETFL) & os.O_DIRECT
    data = np.random.default_rng(1).integers(0, 256, 5 * BLOCK + 123, np.uint8)
    f.write(data)  # any buffer, not only bytes
    f.flush()
    assert os.fstat(f.fd).st_size == 5 * BLOCK  # whole blocks only, so far
    f.finish()
    assert not fcntl.fcntl(f.fd, fcntl.F_GETFL) & os.O_DIRECT
    f.close()
    assert (tmp_path / "out").read_bytes() == data.tobytes()


def test_a_device_wanting_a_larger_alignment_falls_back_to_the_page_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.write
    calls: list[bool] = []

    def einval_while_direct(fd: int, data: memoryview) -> int:
        direct = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)
        calls.append(direct)
        if direct:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data)

    f = _direct_or_skip(tmp_path / "out")
    monkeypatch.setattr(direct_io.os, "write", einval_while_direct)
    payload = bytes(range(256)) * 100
    with f:
        f.write(payload)
        f.write(payload)
    assert (tmp_path / "out").read_bytes() == payload * 2
    assert calls[0] is True and not any(calls[1:])


def test_other_write_errors_are_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(fd: int, data: memoryview) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    f = DirectFile(os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT), BLOCK)
    monkeypatch.setattr(direct_io.os, "write", no_space)
    with pytest.raises(OSError, match="No space"), f:
        f.write(b"x" * (2 * BLOCK))
    assert f.closed


def test_a_short_write_off_the_block_grid_is_finished_buffered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.write
    first = [True]

    def short_once(fd: int, data: memoryview) -> int:
        if first[0]:
            first[0] = False
            return real(fd, data[:100])
        return real(fd, data)

    # On a plain descriptor: an O_DIRECT write of 100 bytes would be refused.
    f = DirectFile(os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT), BLOCK)
    monkeypatch.setattr(direct_io.os, "write", short_once)
    payload = np.random.default_rng(2).integers(0, 256, 3 * BLOCK + 7, np.uint8).tobytes()
    with f:
        f.write(payload)
        assert not f._direct  # the rest went through the page cache
    assert (tmp_path / "out").read_bytes() == payload


def test_staging_must_be_whole_blocks() -> None:
    with pytest.raises(ValueError, match="multiple of 4096"):
        DirectFile(-1, BLOCK + 1)


def test_it_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KTRACE_NO_DIRECT_IO", "1")
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        assert direct_file(fd) is None
        assert not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT
    finally:
        os.close(fd)


def test_a_file_system_refusing_the_flag_gets_the_page_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = fcntl.fcntl

    def refuse_direct(fd: int, cmd: int, arg: int = 0) -> int:
        if cmd == fcntl.F_SETFL and arg & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, cmd, arg)

    monkeypatch.setattr(direct_io.fcntl, "fcntl", refuse_direct)
    payload = b"a,b\n" * 3000
    with OutputDir(tmp_path / "out") as out, out.open("t.csv", direct=True) as f:
        assert not isinstance(f, DirectFile)
        f.write(payload)
    assert (tmp_path / "out" / "t.csv").read_bytes() == payload


def test_output_dir_publishes_a_direct_file_whole(tmp_path: Path) -> None:
    payload = b"a,b\n" + b"1,2\n" * 5000
    with OutputDir(tmp_path / "out") as out, out.open("t.csv", direct=True) as f:
        f.write(payload[:10])
        f.write(payload[10:])
    assert (tmp_path / "out" / "t.csv").read_bytes() == payload
    assert os.listdir(tmp_path / "out") == ["t.csv"]


def test_output_dir_discards_a_failed_direct_file(tmp_path: Path) -> None:
    with (OutputDir(tmp_path / "out") as out, pytest.raises(RuntimeError, match="boom"),
          out.open("t.csv", direct=True) as f):
        f.write(b"x" * (3 * BLOCK))
        raise RuntimeError("boom")
    assert os.listdir(tmp_path / "out") == []
