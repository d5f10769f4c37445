"""The wheel's package list must match the tree, so no subpackage is silently
dropped; the console script is cli.entry and exits with the command's code."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> tuple[set[str], dict[str, str]]:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return set(cfg["packages"]), cfg["package-dir"]


def test_every_package_directory_is_declared():
    packages, package_dir = _declared()
    found = set()
    for top_name, top_dir in package_dir.items():
        base = ROOT / top_dir
        for init in base.rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(base).parts
            found.add(".".join((top_name, *rel)))
    # Nested mappings (ktrace_decode.formats -> formats/) are found from their own entry.
    assert found == packages


def test_one_import_namespace():
    packages, package_dir = _declared()
    assert all(p == "ktrace_decode" or p.startswith("ktrace_decode.") for p in packages)
    assert package_dir["ktrace_decode.formats"] == "formats"
    assert package_dir["ktrace_decode.tui"] == "tui"
    import ktrace_decode.formats.layouts as layouts

    assert Path(layouts.__file__).resolve().parent == ROOT / "formats"


def test_the_console_script_runs_cli_entry():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"ktrace": "ktrace_decode.cli:entry"}


@pytest.mark.parametrize(("argv", "code", "err"), [
    (["analyze", "samples/quiet", "--json"], 0, ""),
    (["decode", "no/such/dump"], 1, "ktrace: error: no/such/dump"),
    (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
])
def test_entry_exits_with_the_commands_code(argv, code, err):
    """entry() (the console script, ``python -m ktrace_decode``) freezes the GC
    before exiting: the exit code and output must be main()'s."""
    proc = subprocess.run([sys.executable, "-m", "ktrace_decode", *argv], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == code
    assert err in proc.stderr and "Traceback" not in proc.stderr
    if code == 0:
        assert json.loads(proc.stdout)["schema"] == "ktrace-analyze/1"
