"""`ktrace decode`: output lines, filters, formats, summary, exit codes."""

import json
import subprocess
import sys

import polars as pl
import pytest

from helpers import iot_rec, start_rec, text_rec
from ktrace_decode.cli import main
from ktrace_decode.formats import layouts as L


@pytest.fixture
def dump(tmp_path):
    d = tmp_path / "dump"
    d.mkdir()
    (d / "trace0").write_bytes(
        start_rec(5_000_010, 42) + iot_rec(5_000_030, ino=41, n_cs=2) + text_rec(5_000_050,
                                                                                  "f: zz", ovfl=7))
    (d / "trace3").write_bytes(text_rec(5_000_020, "pcs_x: hello") + b"JUNK"
                               + text_rec(5_000_040, "pcs_y: bye"))
    return d


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_text_lines_in_merged_order(dump, capsys):
    code, out, err = run(capsys, "decode", str(dump))
    assert code == 0
    lines = out.splitlines()
    assert lines == [
        "  0     5.000010 text                "
        "fuse_inval_files_work: invalidate_file on [41] starts",
        "  3     5.000020 text                pcs_x: hello",
        "  0     5.000030 iotimes             ino=41 read off=1052672 size=4096 lat=40us local=3us "
        "cs=2",
        "  3     5.000040 text                pcs_y: bye",
        "  0     5.000050 text    >=7 lost    f: zz",
    ]
    assert "5 records from 2 CPU file(s), 5.000010 .. 5.000050" in err
    assert "cpu 3: 4 unreadable bytes skipped at offset" in err
    assert "cpu 0: at least 7 records dropped" in err


def test_filters(dump, capsys):
    _, out, _ = run(capsys, "decode", str(dump), "--cpu", "3", "-q")
    assert [line.split()[-1] for line in out.splitlines()] == ["hello", "bye"]
    _, out, _ = run(capsys, "decode", str(dump), "--since", "5.00003", "--until", "5000040us",
                    "-q")
    assert len(out.splitlines()) == 2
    _, out, _ = run(capsys, "decode", str(dump), "--grep", r"\[41\]", "-q")
    assert len(out.splitlines()) == 1 and "starts" in out
    _, out, _ = run(capsys, "decode", str(dump), "--type", "iotimes", "-q")
    assert len(out.splitlines()) == 1 and "ino=41" in out


def test_jsonl_and_csv(dump, capsys):
    _, out, _ = run(capsys, "decode", str(dump), "--format", "jsonl", "-q")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["time_us"] for r in rows] == [5_000_010, 5_000_020, 5_000_030, 5_000_040, 5_000_050]
    assert rows[2]["io_ino"] == 41 and rows[2]["n_cs"] == 2 and rows[4]["ovfl"] == 7
    _, out, _ = run(capsys, "decode", str(dump), "--format", "csv", "-q")
    df = pl.read_csv(out.encode())
    assert df.height == 5 and df["cpu"].to_list() == [0, 3, 0, 3, 0]


def test_strict_turns_damage_into_exit_3(dump, capsys):
    code, out, err = run(capsys, "decode", str(dump), "--strict")
    assert code == 3 and out  # output is still written
    assert err.strip().splitlines()[-1].startswith("ktrace: error: ")
    assert "4 bytes skipped" in err


@pytest.mark.parametrize(("setup", "message"), [
    (lambda p: None, "no such file or directory"),
    (lambda p: p.mkdir(), "no trace files"),
    (lambda p: p.write_text("hello, this is text\n" * 20), "no ktrace records found"),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8),
     "no ktrace records found"),
])
def test_unusable_input_is_one_line_and_exit_1(tmp_path, capsys, setup, message):
    p = tmp_path / "input"
    setup(p)
    code, out, err = run(capsys, "decode", str(p))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_bad_regex_is_a_usage_error(dump, capsys):
    code, _, err = run(capsys, "decode", str(dump), "--grep", "(")
    assert code == 2 and err.startswith("ktrace: error: --grep: bad regular expression")


RANGE = "(the trace clock counts microseconds since boot: 0 to 9223372036854775807us)"


@pytest.mark.parametrize(("option", "value"), [
    ("--since", "inf"), ("--since", "1e400"), ("--until", "1e300"), ("--until", "-inf"),
    ("--since", "-5"), ("--until", "9223372036854775808us"), ("--since", "9223372036854.775808"),
])
def test_times_outside_the_trace_clock_are_usage_errors(dump, capsys, option, value):
    # They crashed: OverflowError in round(inf), or a Polars literal too large.
    code, out, err = run(capsys, "decode", str(dump), f"{option}={value}")
    assert code == 2 and out == ""
    assert err == f"ktrace: error: {option}: time out of range: {value!r} {RANGE}\n"


def test_the_last_time_of_the_trace_clock_is_a_valid_bound(dump, capsys):
    code, out, _ = run(capsys, "decode", str(dump), "-q", "--since", "5.00005",
                       "--until", "9223372036854775807us")
    assert code == 0 and out.splitlines() == ["  0     5.000050 text    >=7 lost    f: zz"]
    code, out, _ = run(capsys, "decode", str(dump), "-q", "--since", "0", "--until", "0")
    assert code == 0 and out == ""


def test_piped_into_head_exits_quietly(tmp_path):
    d = tmp_path / "big"
    d.mkdir()
    (d / "trace0").write_bytes(b"".join(text_rec(i, f"f: line {i}") for i in range(60_000)))
    proc = subprocess.run(
        f"{sys.executable} -m ktrace_decode decode {d} | head -n 2", shell=True,
        capture_output=True, text=True, timeout=120)
    assert proc.stdout.splitlines()[1].endswith("f: line 1")
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_raw_layout_options(tmp_path, capsys):
    size = 4096
    sub = start_rec(7_000_000, 5) + start_rec(7_000_001, 6)
    img = (sub + bytes(size - len(sub))) + bytes(size)
    f = tmp_path / "trace2"
    f.write_bytes(img)
    code, out, err = run(capsys, "decode", str(f), "--subbuf-size", str(size), "--n-subbufs",
                         "2")
    assert code == 0 and len(out.splitlines()) == 2 and " raw " in err
    code, _, err = run(capsys, "decode", str(f), "--layout", "raw", "--subbuf-size", "3000")
    assert code == 1 and "not a multiple of the sub-buffer size 3000" in err
    assert L.HEADER_SIZE == 16


def test_skip_warnings_are_capped_across_cpus_and_the_rest_counted(tmp_path, capsys):
    """The first MAX_SKIP_WARNINGS (20) skipped ranges, in CPU order, one line
    each; the rest in one line; other warnings (drops) are never cut; the table
    stays exact; --all-warnings lists all 27."""
    from ktrace_decode.decode_cli import MAX_SKIP_WARNINGS

    assert MAX_SKIP_WARNINGS == 20
    d = tmp_path / "dump"
    d.mkdir()
    # Each CPU: records 20 bytes apart in time, each followed by `garbage`.
    for cpu, n, garbage in ((0, 15, b"\x01"), (1, 10, b"\x01\x02\x03"), (2, 2, b"\x01" * 4)):
        (d / f"trace{cpu}").write_bytes(b"".join(
            text_rec(5_000_000 + 20 * i, "f: x", ovfl=3 if (cpu, i) == (1, 9) else 0) + garbage
            for i in range(n)))
    code, out, err = run(capsys, "decode", str(d))
    assert code == 0 and len(out.splitlines()) == 27
    lines = err.splitlines()
    assert lines[2:5] == [
        "     0 stream         15          5.000000          5.000280        0        15      14",
        "     1 stream         10          5.000000          5.000180        3        30       9",
        "     2 stream          2          5.000000          5.000020        0         8       1",
    ]
    listed = [ln for ln in lines if "skipped at offset" in ln]
    assert [ln.split(":")[1] for ln in listed] == [" cpu 0"] * 15 + [" cpu 1"] * 5
    assert lines[5:] == [
        *listed,
        "  warning: cpu 1: at least 3 records dropped by the relay in 1 window(s) (buffer full)",
        "  warning: 7 more skipped range(s) (23 bytes, 2 CPUs) not listed; "
        "--all-warnings lists every one",
    ]
    code, _, err = run(capsys, "decode", str(d), "--all-warnings")
    assert code == 0 and sum("skipped at offset" in ln for ln in err.splitlines()) == 27
    assert "not listed" not in err
