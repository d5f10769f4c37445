"""ktrace export writes through safe_output: --excel-safe, links, no overwrite."""

import os

import polars as pl

from helpers import start_rec, text_rec
from ktrace_decode.cli import main


def _dump(tmp_path):
    d = tmp_path / "dump"
    d.mkdir()
    (d / "trace0").write_bytes(start_rec(5_000_000, 42) + text_rec(5_000_010, "=cmd: |calc'!A0")
                               + text_rec(5_000_020, "-x: y"))
    return d


def test_excel_safe_neutralises_formula_cells(tmp_path, capsys):
    d = _dump(tmp_path)
    assert main(["export", str(d), "--out", str(tmp_path / "plain")]) == 0
    assert main(["export", str(d), "--out", str(tmp_path / "safe"), "--excel-safe"]) == 0
    plain = pl.read_csv(tmp_path / "plain" / "events.csv")["text"].to_list()
    safe = pl.read_csv(tmp_path / "safe" / "events.csv")["text"].to_list()
    assert plain[1] == "=cmd: |calc'!A0" and plain[2] == "-x: y"
    assert safe[1] == "'=cmd: |calc'!A0" and safe[2] == "'-x: y"
    assert safe[0] == plain[0]


def test_export_never_writes_through_a_symlink_in_out(tmp_path, capsys):
    d = _dump(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.symlink(victim, out / "events.csv")
    assert main(["export", str(d), "--out", str(out)]) == 1
    assert "events.csv" in capsys.readouterr().err
    assert main(["export", str(d), "--out", str(out), "--force"]) == 0
    assert victim.read_text() == "keep me"  # the link was replaced, its target untouched
    assert not (out / "events.csv").is_symlink()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
