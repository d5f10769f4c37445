"""Errors are typed: library code raises KtraceError; only CLI modules talk to the user.

A static check over the package: outside the command-line modules (``cli.py``,
``cli_common.py``, ``decode_cli.py``, ``__main__.py``, and code under
``if __name__ == "__main__":``) nothing calls ``sys.exit``/``exit``/``quit``/
``os._exit``, raises ``SystemExit``, prints, or writes to ``sys.stderr`` /
``sys.stdout``.  The TUI (a full-screen program) is out of scope.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ktrace_decode import errors

ROOT = Path(__file__).resolve().parents[2]
CLI_FILES = {"cli.py", "cli_common.py", "decode_cli.py", "__main__.py"}
LIBRARY = sorted(p for base in ("ktrace_decode", "formats") for p in (ROOT / base).rglob("*.py")
                 if p.name not in CLI_FILES and "__pycache__" not in p.parts)


def _main_guard(node: ast.AST) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def _offences(tree: ast.AST) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if _main_guard(node):
            return
        if isinstance(node, ast.Call):
            f = ast.unparse(node.func)
            if f in ("sys.exit", "exit", "quit", "os._exit", "print", "sys.stderr.write",
                     "sys.stdout.write"):
                out.append((node.lineno, f))
        if isinstance(node, ast.Raise) and node.exc is not None and \
                ast.unparse(node.exc).startswith("SystemExit"):
            out.append((node.lineno, "raise SystemExit"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_modules_never_exit_nor_print(path):
    offences = _offences(ast.parse(path.read_text(), str(path)))
    assert not offences, f"{path.relative_to(ROOT)}: {offences}"


def test_the_exit_code_table():
    assert (errors.EXIT_OK, errors.EXIT_INPUT, errors.EXIT_USAGE, errors.EXIT_DAMAGE,
            errors.EXIT_INTERRUPTED, errors.EXIT_TERMINATED) == (0, 1, 2, 3, 130, 143)
    for cls, code in ((errors.InputError, 1), (errors.ArchiveError, 1), (errors.OutputError, 1),
                      (errors.UsageError, 2), (errors.DamageError, 3)):
        assert issubclass(cls, errors.KtraceError) and cls("x").exit_code == code
    assert issubclass(errors.Terminated, KeyboardInterrupt)


def test_messages_are_one_line_and_name_file_and_offset():
    e = errors.InputError("bad\nthing\r", "dir/trace\n0", offset=17)
    assert str(e) == "dir/trace\\x0a0 at offset 17: bad\\x0athing\\x0d"
    assert (e.path, e.offset, e.message) == ("dir/trace\n0", 17, "bad\nthing\r")
