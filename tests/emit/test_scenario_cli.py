"""Scenario validation and the ``ktrace emit`` command: every bad key is one line, never a
traceback; --help explains every key; the dump directory is reproducible from its copy."""

import dataclasses
import os
import shutil

import pytest

from ktrace_decode.cli import main
from ktrace_decode.emit import Scenario, emit, load_scenario
from ktrace_decode.emit.scenario import KEY_HELP

SMALL = 'duration_ms = 60\ncpus = [0, 3]\nnodeids = [2, 9]\ninvalidation_rate = 200\n'


def test_every_key_is_explained_in_help(capsys):
    assert set(KEY_HELP) == {f.name for f in dataclasses.fields(Scenario)}
    with pytest.raises(SystemExit) as e:
        main(["emit", "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # undo the wrapping
    for key, text in KEY_HELP.items():
        assert f"{key} {' '.join(text.split())[:30]}" in out, key


@pytest.mark.parametrize(("body", "expect"), [
    ("stall = 9\nnodeids = 4", "stall must be in 0..3, not 9"),
    ('cpus = "two"', "cpus must be a CPU count or a list of CPU numbers"),
    ("cpus = [0, 0]", "cpus lists a value twice"),
    ("write_error_rate = 0.5\nwrite_errnos = []", "write_errnos must not be empty"),
    ("write_errnos = [5]", "write_errnos: 5 is outside -4095..-1"),
    ("invalidation_rate = -3", "invalidation_rate must be >= 0"),
    ("link_race_rate = 1.5", "link_race_rate must be >= 0 and <= 1.0"),
    ("nodeids = 0", "nodeids must be in 1..199998"),
    ("nodeids = [1, 5]", "nodeids: 1 is outside"),
    ("seed = 1.5", "seed must be an integer"),
    ("duration_ms = nan", "duration_ms must be a number"),
    ("cs_count = 9", "cs_net_median_us needs one median per chunk server"),
    ('layout = "mmap"', "layout must be one of 'stream', 'raw'"),
    ("bogus = 1", "unknown scenario key(s): bogus"),
    ("cpus = [", "not valid TOML"),
])
def test_a_bad_scenario_is_one_clear_line(tmp_path, capsys, body, expect):
    (tmp_path / "s.toml").write_text(body + "\n")
    rc = main(["emit", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 1 and expect in err and "Traceback" not in err
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_constructing_a_bad_scenario_raises_value_error():
    with pytest.raises(ValueError, match="stall"):
        Scenario(nodeids=[2, 3], stall=2)
    with pytest.raises(ValueError, match="pages_error_rate"):
        dataclasses.replace(Scenario(), pages_error_rate=-0.1)


def test_cli_writes_refuses_and_reproduces(tmp_path, capsys):
    (tmp_path / "s.toml").write_text(SMALL)
    out = tmp_path / "dump"
    args = ["emit", str(tmp_path / "s.toml"), "--out", str(out), "--layout", "raw",
            "--seed", "7"]
    assert main(args) == 0
    summary = capsys.readouterr().err
    assert summary.count("\n") == 1 and "cpu0:" in summary and "cpu3:" in summary
    assert {p.name for p in out.iterdir()} == {"trace0", "trace3", "prometheus",
                                              "scenario.toml", "truth"}
    # the copy carries the overrides and re-emits the same bytes
    again = load_scenario(out / "scenario.toml")
    assert (again.seed, again.layout) == (7, "raw")
    res = emit(again)
    assert {c: (out / f"trace{c}").read_bytes() for c in (0, 3)} == res.files
    # a non-empty directory is refused without --force, replaced with it
    before = (out / "trace0").read_bytes()
    assert main([*args[:-2], "--seed", "8"]) != 0
    assert "--force" in capsys.readouterr().err
    assert (out / "trace0").read_bytes() == before
    assert main([*args[:-2], "--seed", "8", "--force"]) == 0
    assert (out / "trace0").read_bytes() != before


def _emit(tmp_path, out, body=SMALL, *extra):
    (tmp_path / "s.toml").write_text(body)
    return main(["emit", str(tmp_path / "s.toml"), "--out", str(out), *extra])


def test_force_removes_the_trace_files_of_cpus_the_new_dump_lacks(tmp_path, capsys):
    out = tmp_path / "dump"
    assert _emit(tmp_path, out, SMALL.replace("cpus = [0, 3]", "cpus = [0, 1, 2, 3]")) == 0
    (out / "notes.txt").write_text("mine")
    assert _emit(tmp_path, out, SMALL, "--force") == 0
    # trace1 and trace2 would otherwise be decoded as part of the new dump
    assert {p.name for p in out.iterdir()} == {"trace0", "trace3", "prometheus",
                                              "scenario.toml", "truth", "notes.txt"}
    assert {p.name for p in (out / "truth").iterdir()} == {
        "records.csv", "cs.csv", "events.csv", "invalidations.csv"}


def test_emit_never_writes_through_a_symlink_in_out(tmp_path, capsys):
    out, elsewhere = tmp_path / "dump", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "victim").write_text("keep me")
    assert _emit(tmp_path, out) == 0
    capsys.readouterr()
    # a link in place of a trace file is replaced, its target untouched
    (out / "trace0").unlink()
    os.symlink(elsewhere / "victim", out / "trace0")
    assert _emit(tmp_path, out, SMALL, "--force") == 0
    assert not (out / "trace0").is_symlink() and (elsewhere / "victim").read_text() == "keep me"
    # a link in place of truth/ is refused in one line, nothing written through it
    shutil.rmtree(out / "truth")
    os.symlink(elsewhere, out / "truth")
    capsys.readouterr()
    assert _emit(tmp_path, out, SMALL, "--force") == 1
    err = capsys.readouterr().err
    assert err == f"ktrace: error: {out / 'truth'}: is a symbolic link: refused\n"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["victim"]
