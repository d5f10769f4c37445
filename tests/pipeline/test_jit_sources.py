"""The compiled loops' recorded sources match the files they are built from.

numba's on-disk cache (``cache=True``) is keyed by the content of the
function's own file.  The loops also compile code from other modules (the
memory intrinsics, the opcode numbers), so each loop module records a hash
of those files: editing one of them without updating the hash would let a
machine that already has a cache load the old loop.  This test names the
new hash to paste.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
from pathlib import Path

import pytest

PIPELINE = Path(__file__).parents[2] / "ktrace_decode" / "pipeline"
#: Every compiled loop module.
LOOPS = sorted(p.stem for p in PIPELINE.glob("_*_jit.py"))


@pytest.mark.parametrize("module", LOOPS)
def test_a_loop_records_the_hash_of_the_sources_it_is_built_from(module):
    text = (PIPELINE / f"{module}.py").read_text()
    # The two constants, read from the source (importing it needs numba).
    consts = {name.strip(): ast.literal_eval(value) for name, value in
              (line.split("=", 1) for line in text.splitlines()
               if line.startswith(("BUILT_FROM =", "BUILT_FROM_SHA256 =")))}
    digest = hashlib.sha256()
    for name in consts["BUILT_FROM"]:
        digest.update((PIPELINE / name).read_bytes())
    assert consts["BUILT_FROM_SHA256"] == digest.hexdigest()[:16], (
        f"{module}.py: set BUILT_FROM_SHA256 = \"{digest.hexdigest()[:16]}\"")


@pytest.mark.parametrize("module", LOOPS)
def test_the_recorded_sources_are_every_module_a_loop_imports(module):
    pytest.importorskip("numba")
    mod = importlib.import_module(f"ktrace_decode.pipeline.{module}")
    text = (PIPELINE / f"{module}.py").read_text()
    local = {line.split()[1].lstrip(".") + ".py" for line in text.splitlines()
             if line.startswith("from .")}
    assert set(mod.BUILT_FROM) == local


def test_a_loop_that_cannot_be_imported_is_none(monkeypatch):
    import sys

    from ktrace_decode import jit_loops

    # numba missing: importing a loop module raises ImportError.
    monkeypatch.setitem(sys.modules, "numba", None)
    monkeypatch.delitem(sys.modules, "ktrace_decode.pipeline._episodes_jit", raising=False)
    jit_loops.load.cache_clear()
    try:
        assert jit_loops.load("_episodes_jit") is None
    finally:
        jit_loops.load.cache_clear()


def test_a_loop_module_is_loaded_once():
    pytest.importorskip("numba")
    from ktrace_decode import jit_loops

    first = jit_loops.load("_csv_encode_jit")
    assert first is not None and first.__name__ == "ktrace_decode.pipeline._csv_encode_jit"
    assert jit_loops.load("_csv_encode_jit") is first


def test_a_compile_is_told_once(monkeypatch):
    """numba's compile events reach notice_compiling's callback, once per
    process: the command line says it compiles instead of seeming to hang."""
    numba = pytest.importorskip("numba")
    from ktrace_decode import jit_loops

    assert jit_loops.load("_csv_encode_jit") is not None  # listening from here
    said: list[int] = []
    monkeypatch.setattr(jit_loops, "_said", __import__("threading").Event())
    monkeypatch.setattr(jit_loops, "_notice", None)
    jit_loops.notice_compiling(lambda: said.append(1))

    @numba.njit
    def one(x):  # type: ignore[no-untyped-def]
        return x + 1

    @numba.njit
    def two(x):  # type: ignore[no-untyped-def]
        return x + 2

    assert one(1) + two(1) == 5
    assert said == [1]


def test_the_command_line_tells_a_terminal_only(monkeypatch, capsys):
    from ktrace_decode import cli

    monkeypatch.setattr(type(__import__("sys").stderr), "isatty", lambda self: False,
                        raising=False)
    cli._compiling()
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(type(__import__("sys").stderr), "isatty", lambda self: True,
                        raising=False)
    cli._compiling()
    assert capsys.readouterr().err.startswith("ktrace: note: compiling the fast loops")
