"""safe_output: inside the directory only, no overwrite without force, atomic, excel-safe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from ktrace_decode import safe_output
from ktrace_decode.errors import OutputError
from ktrace_decode.safe_output import OutputDir, excel_safe, excel_safe_frame


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


def test_writes_files_and_creates_the_directory(tmp_path):
    out = tmp_path / "a" / "b"
    with OutputDir(out) as o:
        o.write_bytes("x.bin", b"\x00\x01")
        o.write_text("y.txt", "héllo")
    assert (out / "x.bin").read_bytes() == b"\x00\x01"
    assert (out / "y.txt").read_text() == "héllo"
    mode = (out / "x.bin").stat().st_mode & 0o777
    assert mode == 0o666 & ~_umask()  # a normal file, not mkstemp's 0600
    assert _leftovers(out) == []


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_existing_files_are_refused_without_force(tmp_path):
    (tmp_path / "x.csv").write_text("old")
    with OutputDir(tmp_path) as o:
        with pytest.raises(OutputError, match=r"would overwrite x\.csv; use --force"):
            o.check(["x.csv", "y.csv"])
        with pytest.raises(OutputError, match="exists; use --force"):
            o.write_text("x.csv", "new")
        o.check(["y.csv"])
    assert (tmp_path / "x.csv").read_text() == "old" and _leftovers(tmp_path) == []
    with OutputDir(tmp_path, force=True) as o:
        o.check(["x.csv"])
        o.write_text("x.csv", "new")
    assert (tmp_path / "x.csv").read_text() == "new"


def test_a_symlink_inside_is_never_followed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.csv").symlink_to(outside)
    (out / "dangling.csv").symlink_to(tmp_path / "would-be-created")
    with OutputDir(out) as o:
        with pytest.raises(OutputError, match=r"would overwrite x\.csv, dangling\.csv"):
            o.check(["x.csv", "dangling.csv"])
        with pytest.raises(OutputError):
            o.write_text("x.csv", "evil")
        with pytest.raises(OutputError):
            o.write_text("dangling.csv", "evil")
    with OutputDir(out, force=True) as o:  # force replaces the link itself
        o.write_text("x.csv", "new")
        o.write_text("dangling.csv", "new")
    assert outside.read_text() == "precious"
    assert not (tmp_path / "would-be-created").exists()
    assert not (out / "x.csv").is_symlink() and (out / "x.csv").read_text() == "new"
    assert not (out / "dangling.csv").is_symlink()


@pytest.mark.parametrize("name", ["../x.csv", "a/b.csv", "/etc/passwd", "", ".", "..", "a\0b"])
def test_only_plain_names(tmp_path, name):
    with OutputDir(tmp_path) as o, pytest.raises(OutputError, match="not a plain file name"):
        o.write_text(name, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_out_is_a_file_or_cannot_be_created(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="exists and is not a directory"):
        OutputDir(tmp_path / "f")
    with pytest.raises(OutputError, match="cannot create the directory"):
        OutputDir(tmp_path / "f" / "sub")
    with pytest.raises(OutputError, match="no such directory"):
        OutputDir(tmp_path / "missing", create=False)


def test_out_given_as_a_symlink_to_a_directory_is_followed(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with OutputDir(tmp_path / "link") as o:
        o.write_text("x.csv", "ok")
    assert (real / "x.csv").read_text() == "ok"


def test_a_directory_swapped_for_a_symlink_after_mkdir_is_refused(tmp_path, monkeypatch):
    target = tmp_path / "elsewhere"
    target.mkdir()
    out = tmp_path / "out"
    real_mkdir = os.mkdir

    def racing_mkdir(path, *a, **k):
        real_mkdir(path, *a, **k)
        os.rmdir(path)
        os.symlink(target, path)  # an attacker wins the race

    monkeypatch.setattr(safe_output.os, "mkdir", racing_mkdir)
    with pytest.raises(OutputError, match="replaced by a symbolic link"):
        OutputDir(out)


def test_replacing_a_directory_is_refused(tmp_path):
    (tmp_path / "x.csv").mkdir()
    with OutputDir(tmp_path, force=True) as o:
        with pytest.raises(OutputError, match="is a directory"):
            o.check(["x.csv"])
        with pytest.raises(OutputError, match="is a directory"):
            o.write_text("x.csv", "new")
    assert _leftovers(tmp_path) == []


def test_an_error_while_writing_leaves_the_old_file_and_no_temp(tmp_path):
    (tmp_path / "x.csv").write_text("old")
    with OutputDir(tmp_path, force=True) as o:
        with pytest.raises(RuntimeError), o.open("x.csv") as f:
            f.write(b"half")
            raise RuntimeError("boom")
        with pytest.raises(RuntimeError), o.open("new.csv") as f:
            f.write(b"half")
            raise RuntimeError("boom")
    assert (tmp_path / "x.csv").read_text() == "old"
    assert not (tmp_path / "new.csv").exists() and _leftovers(tmp_path) == []


def test_a_file_that_appears_while_writing_is_not_overwritten(tmp_path):
    with (OutputDir(tmp_path) as o, pytest.raises(OutputError, match="appeared while writing"),
          o.open("x.csv") as f):
        f.write(b"mine")
        (tmp_path / "x.csv").write_text("theirs")
    assert (tmp_path / "x.csv").read_text() == "theirs" and _leftovers(tmp_path) == []


CHILD = textwrap.dedent("""
    import sys, time
    from ktrace_decode.cli import _catch_sigterm
    from ktrace_decode.safe_output import OutputDir
    _catch_sigterm()
    with OutputDir(sys.argv[1], force=True) as o, o.open("big.csv") as f:
        for i in range(10_000):
            f.write(b"x" * 65536)
            if i == 3:
                print("writing", flush=True)
            time.sleep(0.001)
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_write_leaves_no_half_file(tmp_path, sig):
    (tmp_path / "big.csv").write_text("old complete content")
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        assert p.stdout is not None and p.stdout.readline() == b"writing\n"
        p.send_signal(sig)
        p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode != 0
    assert (tmp_path / "big.csv").read_text() == "old complete content"
    assert _leftovers(tmp_path) == []


# --- excel_safe --------------------------------------------------------------------

def test_excel_safe_neutralises_formula_cells_only():
    df = pl.DataFrame({
        "text": ["=1+2", "+x", "-EIO", "@SUM(A1)", "\tx", "\rx", "fuse_open: x", "a=b",
                 None, "'=x", ""],
        "n": list(range(-5, 6)),
    })
    got = excel_safe_frame(df)
    assert got["text"].to_list() == ["'=1+2", "'+x", "'-EIO", "'@SUM(A1)", "'\tx", "'\rx",
                                     "fuse_open: x", "a=b", None, "'=x", ""]
    assert_frame_equal(got.select("n"), df.select("n"))  # numbers are left alone
    assert_frame_equal(excel_safe_frame(got), got)  # idempotent


def test_excel_safe_as_an_expression():
    df = pl.DataFrame({"a": ["=x", "y"], "b": ["-1", "@z"], "n": [1, 2]})
    assert df.with_columns(excel_safe()).rows() == [("'=x", "'-1", 1), ("y", "'@z", 2)]
    assert df.with_columns(excel_safe(pl.col("a"))).rows() == [("'=x", "-1", 1), ("y", "@z", 2)]
    assert_frame_equal(excel_safe_frame(df.select("n")), df.select("n"))


def test_write_frame_csv_and_parquet(tmp_path):
    df = pl.DataFrame({"text": ["=HYPERLINK(\"x\")", "ok"], "n": [-1, 2]})
    with OutputDir(tmp_path) as o:
        o.write_frame("plain.csv", df)
        o.write_frame("safe.csv", df, excel_safe=True)
        o.write_frame("t.parquet", df, fmt="parquet", excel_safe=True)
        with pytest.raises(ValueError):
            o.write_frame("t.xls", df, fmt="xls")
    assert pl.read_csv(tmp_path / "plain.csv")["text"][0] == "=HYPERLINK(\"x\")"
    assert pl.read_csv(tmp_path / "safe.csv")["text"].to_list() == ["'=HYPERLINK(\"x\")", "ok"]
    assert_frame_equal(pl.read_parquet(tmp_path / "t.parquet"), df)  # parquet is data: untouched
    assert _leftovers(tmp_path) == []


# --- listing, remove, subdir (used by `ktrace emit`) ------------------------

def test_listing_names_links_without_following_them(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.csv").write_text("x")
    os.symlink(tmp_path / "nowhere", tmp_path / "out" / "a.csv")
    with OutputDir(tmp_path / "out") as out:
        assert out.listing() == ["a.csv", "b.csv"]


def test_remove_deletes_a_link_not_its_target(tmp_path):
    target = tmp_path / "precious"
    target.write_text("keep me")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    os.symlink(target, out_dir / "trace9")
    (out_dir / "trace8").write_text("old")
    with OutputDir(out_dir) as out:
        out.remove("trace9")
        out.remove("trace8")
        out.remove("never-there")  # gone already: fine
    assert sorted(os.listdir(out_dir)) == [] and target.read_text() == "keep me"


def test_remove_refuses_a_directory_and_a_path(tmp_path):
    (tmp_path / "out" / "sub").mkdir(parents=True)
    with OutputDir(tmp_path / "out") as out:
        with pytest.raises(OutputError, match="sub: is a directory: cannot remove it"):
            out.remove("sub")
        with pytest.raises(OutputError):
            out.remove("../x")
    assert (tmp_path / "out" / "sub").is_dir()


def test_subdir_is_created_and_written_atomically(tmp_path):
    with OutputDir(tmp_path / "out", force=True) as out, out.subdir("truth") as truth:
        truth.write_text("a.csv", "1\n")
        truth.write_text("a.csv", "2\n")  # force is inherited: replaced
        assert truth.path == tmp_path / "out" / "truth"
    assert (tmp_path / "out" / "truth" / "a.csv").read_text() == "2\n"


def test_subdir_that_is_a_symlink_is_refused_not_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").mkdir()
    os.symlink(elsewhere, tmp_path / "out" / "truth")
    with (OutputDir(tmp_path / "out", force=True) as out,
          pytest.raises(OutputError, match="truth: is a symbolic link: refused")):
        out.subdir("truth")
    assert list(elsewhere.iterdir()) == []


def test_subdir_over_a_file_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "truth").write_text("a file")
    with (OutputDir(tmp_path / "out") as out,
          pytest.raises(OutputError, match="truth: exists and is not a directory")):
        out.subdir("truth")
