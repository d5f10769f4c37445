"""Start-up cost: only ``ktrace tui`` imports Textual (about 0.5 s of every command otherwise),
and only a Parquet export imports ``pyarrow.parquet`` (50 ms); nothing imports
``pyarrow.compute`` (40-90 ms), which ``pl.from_arrow`` would pull in; numba
(0.3 s, and its compiled loop) is loaded only for batches big enough to pay
for it, never for the samples.

``ktrace`` imports ``ktrace_decode.tui.cli`` to register the ``tui`` command;
the package ``ktrace_decode.tui`` must therefore not import its app eagerly.
Each check runs in a fresh interpreter, because the test process itself has
usually imported Textual already.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STORM = str(ROOT / "samples" / "storm")

# Runs the real ``ktrace`` entry point with the given arguments, then reports on
# stderr which heavy modules were imported (stdout is the command's own output).
PROBE = """\
import sys
from ktrace_decode.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
heavy = ",".join(m for m in ("textual", "pyarrow.compute", "pyarrow.parquet", "numba")
                if m in sys.modules)
sys.stderr.write(f"\\nPROBE code={code} heavy={heavy}\\n")
"""


def _probe(*argv: str, cwd: Path) -> tuple[int, set[str]]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                          timeout=120, cwd=cwd)
    last = proc.stderr.splitlines()[-1]
    assert last.startswith("PROBE "), proc.stderr
    fields = dict(kv.split("=") for kv in last.split()[1:])
    return int(fields["code"]), set(filter(None, fields["heavy"].split(",")))


@pytest.mark.parametrize("argv", [
    ["decode", STORM, "-q"],
    ["analyze", STORM],
    ["export", STORM, "--out", "out"],
    ["emit", "--help"],
    ["--help"],
    ["tui", "--help"],  # the tui command's own help needs no Textual either
], ids=lambda a: " ".join(x if x != STORM else "storm" for x in a))
def test_non_tui_commands_import_no_heavy_module(argv, tmp_path):
    code, heavy = _probe(*argv, cwd=tmp_path)
    assert code == 0
    assert heavy == set()


def test_a_parquet_export_imports_pyarrow_parquet_when_it_writes(tmp_path):
    code, heavy = _probe("export", STORM, "--out", "out", "--format", "parquet", cwd=tmp_path)
    assert code == 0
    assert heavy == {"pyarrow.parquet"}
    assert (tmp_path / "out" / "events.parquet").stat().st_size > 0


def test_the_tui_package_still_exports_the_app():
    proc = subprocess.run(
        [sys.executable, "-c",
         "import sys, ktrace_decode.tui as t\n"
         "assert 'textual' not in sys.modules\n"
         "from ktrace_decode.tui import KtraceApp, create_app\n"
         "from ktrace_decode.tui.app import KtraceApp as A\n"
         "assert KtraceApp is A and callable(create_app) and 'textual' in sys.modules\n"
         "try:\n"
         "    t.no_such_name\n"
         "except AttributeError:\n"
         "    print('ok')\n"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
