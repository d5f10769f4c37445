"""Exit codes and messages of the real command, run as a subprocess.

Every unusable input gives exit 1 and exactly one line on stderr naming the
file (``ktrace: error: <path>: <what>``), never a traceback; damage is exit 0
with warnings, or exit 3 under ``--strict``; Ctrl-C is exit 130 and SIGTERM
143, each with one line and no traceback.
"""

from __future__ import annotations

import gzip
import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import sample_stream, text_rec

TRACE = b"".join(sample_stream(30))
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")


def ktrace(*args: str, preexec: Callable[[], None] | None = None, timeout: float = 120,
           cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ktrace_decode", *args], capture_output=True,
                          text=True, timeout=timeout, preexec_fn=preexec, cwd=cwd)


def _one_line_error(proc: subprocess.CompletedProcess, code: int, *words: str) -> str:
    err = proc.stderr
    assert proc.returncode == code, (proc.returncode, err)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ktrace: error: "), err
    for w in words:
        assert w in lines[0], err
    return lines[0]


def _tar(path: Path, members: list[tuple[str, bytes | None, bytes]]) -> Path:
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w") as tf:
        for name, kind, data in members:
            ti = tarfile.TarInfo(name)
            if kind is None:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                ti.type, ti.linkname = kind, "/etc/passwd"
                tf.addfile(ti)
    path.write_bytes(bio.getvalue())
    return path


# (id, how to make it under tmp -> path, words the message must contain)
BAD_INPUTS: list[tuple[str, Callable[[Path], Path], list[str]]] = [
    ("missing path", lambda t: t / "nope", ["no such file or directory"]),
    ("empty directory", lambda t: _mkdir(t / "empty"), ["no trace files"]),
    ("directory without traceN files",
     lambda t: _files(t / "other", {"notes.txt": b"x", "trace": b"", "traceX": b""}),
     ["no trace files"]),
    ("directory of empty trace files",
     lambda t: _files(t / "zeros", {"trace0": b"", "trace1": b"", "prometheus": b""}),
     ["every trace file is empty"]),
    ("text file", lambda t: _write(t / "notes.txt", b"hello, world\n" * 50),
     ["no ktrace records found in 650 bytes"]),
    ("PNG image", lambda t: _write(t / "pic.png", PNG), ["no ktrace records found"]),
    ("file of zeros", lambda t: _write(t / "trace0", bytes(1 << 16)),
     ["no ktrace records found"]),
    ("random bytes", lambda t: _write(t / "trace0", os.urandom(1 << 20)),
     ["no ktrace records found"]),
    ("FIFO given directly", lambda t: _fifo(t / "pipe"), ["a FIFO"]),
    ("FIFO named trace0 in a dump directory",
     lambda t: _fifo(_files(t / "d", {"trace1": TRACE}) / "trace0").parent,
     ["trace0: a FIFO, not a trace file"]),
    ("character device", lambda t: Path("/dev/null"), ["a device"]),
    ("symlink loop", lambda t: _loop(t / "loop"), ["cannot access"]),
    ("CPU number out of range", lambda t: _files(t / "d", {"trace70000": TRACE}),
     ["CPU number out of range"]),
    ("two files for one CPU", lambda t: _files(t / "d", {"trace1": TRACE, "trace01": TRACE}),
     ["both CPU 1"]),
    ("archive with a symlink member",
     lambda t: _tar(t / "x.tar", [("d/trace0", None, TRACE), ("d/trace1", tarfile.SYMTYPE, b"")]),
     ["'d/trace1' is a symbolic link: refused"]),
    ("archive with an absolute path",
     lambda t: _tar(t / "x.tar", [("/d/trace0", None, TRACE)]), ["absolute path"]),
    ("archive with '..'", lambda t: _tar(t / "x.tar", [("d/../../trace0", None, TRACE)]),
     ["escapes the archive"]),
    ("corrupt .tar.gz", lambda t: _write(t / "x.tar.gz", gzip.compress(TRACE)[:40] + b"\0" * 40),
     ["unreadable archive"]),
    ("gzip that is not a tar", lambda t: _write(t / "trace.gz", gzip.compress(TRACE)),
     ["gz-compressed file, not a tar archive"]),
    ("raw layout that does not fit", lambda t: _write(t / "trace0", TRACE),
     ["not a multiple of the sub-buffer size"]),
]


def _mkdir(p: Path) -> Path:
    p.mkdir()
    return p


def _write(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


def _files(d: Path, files: dict[str, bytes]) -> Path:
    d.mkdir()
    for name, data in files.items():
        (d / name).write_bytes(data)
    return d


def _fifo(p: Path) -> Path:
    os.mkfifo(p)
    return p


def _loop(p: Path) -> Path:
    p.symlink_to(p.name)
    return p


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """Every BAD_INPUTS case made and run once, a few at a time (start-up dominates)."""

    def run(case: tuple[str, Callable[[Path], Path], list[str]]):
        ident, make, _ = case
        path = make(tmp_path_factory.mktemp("bad"))
        extra = ["--layout", "raw"] if ident.startswith("raw layout") else []
        return ident, (path, ktrace("decode", str(path), *extra, timeout=60))

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(pool.map(run, BAD_INPUTS))


@pytest.mark.parametrize("ident,words", [(i, w) for i, _, w in BAD_INPUTS],
                         ids=[i for i, _, _ in BAD_INPUTS])
def test_unusable_input_is_one_line_and_exit_1(bad_runs, ident, words):
    path, proc = bad_runs[ident]
    line = _one_line_error(proc, 1, *words)
    assert str(path) in line
    assert proc.stdout == ""


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable files (see the next test)")
def test_unreadable_file_and_directory(tmp_path):
    f = tmp_path / "trace0"
    f.write_bytes(TRACE)
    f.chmod(0)
    d = tmp_path / "locked"
    d.mkdir()
    (d / "trace0").write_bytes(TRACE)
    d.chmod(0)
    try:
        _one_line_error(ktrace("decode", str(f)), 1, f"{f}: cannot read: Permission denied")
        _one_line_error(ktrace("decode", str(d)), 1,
                        f"{d}: cannot list directory: Permission denied")
    finally:
        d.chmod(0o755)


def test_unreadable_file_and_directory_in_process(tmp_path, monkeypatch, capsys):
    """The same as root: the kernel's EACCES simulated where sources.py opens and lists."""
    from ktrace_decode import cli, sources

    f = tmp_path / "trace0"
    f.write_bytes(TRACE)
    d = tmp_path / "locked"
    d.mkdir()
    real_open, real_iterdir = os.open, Path.iterdir

    def deny_open(path, *a, **k):
        if Path(path) == f:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)

    def deny_list(self):
        if self == d:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(sources.os, "open", deny_open)
    monkeypatch.setattr(Path, "iterdir", deny_list)
    for path, msg in ((f, f"{f}: cannot read: Permission denied"),
                      (d, f"{d}: cannot list directory: Permission denied")):
        assert cli.main(["decode", str(path)]) == 1
        assert capsys.readouterr().err == f"ktrace: error: {msg}\n"


@pytest.fixture
def damaged(tmp_path) -> Path:
    d = tmp_path / "dump"
    d.mkdir()
    recs = sample_stream(12)
    (d / "trace0").write_bytes(b"".join(recs[:5]) + b"\xee" * 9 + b"".join(recs[5:]))
    (d / "trace1").write_bytes(text_rec(5_000_001, "f: other cpu"))
    return d


def test_damage_is_exit_0_with_warnings_and_exit_3_under_strict(damaged):
    proc = ktrace("decode", str(damaged))
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 13
    assert "9 unreadable bytes skipped at offset" in proc.stderr
    proc = ktrace("decode", str(damaged), "--strict")
    assert proc.returncode == 3 and len(proc.stdout.splitlines()) == 13  # output still written
    last = proc.stderr.splitlines()[-1]
    assert last.startswith(f"ktrace: error: {damaged}: damage found: 9 bytes skipped")
    assert "Traceback" not in proc.stderr


def test_strict_on_a_clean_dump_is_exit_0(tmp_path):
    p = tmp_path / "trace0"
    p.write_bytes(TRACE)
    assert ktrace("decode", str(p), "--strict", "-q").returncode == 0


USAGE = [["decode"], ["decode", "x", "--layout", "bogus"], ["decode", "x", "--subbuf-size", "0"],
         ["decode", "x", "--since", "yesterday"], ["no-such-command"], []]


def test_usage_errors_are_exit_2(tmp_path):
    (tmp_path / "x").write_bytes(TRACE)
    with ThreadPoolExecutor(max_workers=3) as pool:
        procs = list(pool.map(lambda a: ktrace(*a, cwd=tmp_path), USAGE))
    for args, proc in zip(USAGE, procs, strict=True):
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        if args:  # (no command at all prints the whole help)
            assert proc.stderr.splitlines()[-1].startswith("ktrace"), args


def _big_dump(tmp_path: Path, mib: int = 48) -> Path:
    """A dump that takes the decoder a few seconds to print."""
    block = b"".join(sample_stream(400))
    p = tmp_path / "trace0"
    p.write_bytes(block * ((mib << 20) // len(block)))
    return p


@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"),
                                           (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_and_sigterm_stop_cleanly(tmp_path, sig, code, word):
    big = _big_dump(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "ktrace_decode", "decode", str(big)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline()  # it is printing records
        proc.send_signal(sig)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert time.monotonic() - t0 < 10
    text = err.decode()
    assert proc.returncode == code, text
    assert "Traceback" not in text
    assert text.strip().splitlines()[-1] == f"ktrace: {word}"


def test_output_is_byte_identical_across_runs(damaged):
    """Same input, different hash seeds and thread counts: the same bytes out."""
    outs = []
    for seed, threads in (("1", "1"), ("2", "2")):
        env = {**os.environ, "PYTHONHASHSEED": seed, "POLARS_MAX_THREADS": threads}
        proc = subprocess.run([sys.executable, "-m", "ktrace_decode", "decode", str(damaged),
                               "--format", "jsonl"], capture_output=True, env=env, timeout=60)
        assert proc.returncode == 0
        outs.append((proc.stdout, proc.stderr))
    assert outs[0] == outs[1] and outs[0][0]


@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"),
                                           (signal.SIGTERM, 143, "terminated")])
def test_interrupted_streamed_export_leaves_nothing(tmp_path, sig, code, word):
    """Export streams into temporary files: stopped midway, it removes them all."""
    big = _big_dump(tmp_path, mib=96)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "ktrace_decode", "export", str(big),
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        # Started writing: its temporary events file has grown past one batch.
        while not any(p.stat().st_size > 1 << 20 for p in out.glob(".events.csv.*.tmp")):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    text = err.decode()
    assert proc.returncode == code, text
    assert "Traceback" not in text
    assert text.strip().splitlines()[-1] == f"ktrace: {word}"
    assert sorted(p.name for p in out.iterdir()) == []
