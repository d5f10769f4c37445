"""The benchmark tools run the code they are asked to run.

``tests/benchmarks/ab.py`` compares two checkouts; ``run_copy.py`` makes
each run import every package of its own checkout (``PYTHONPATH`` alone
takes the mapped subpackages from the installed copy).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
RUN_COPY = ROOT / "tests" / "benchmarks" / "run_copy.py"


def test_run_copy_imports_every_package_from_the_checkout_it_is_given(tmp_path):
    copy = tmp_path / "copy"
    for d in ("ktrace_decode", "formats", "tui", "samples"):
        shutil.copytree(ROOT / d, copy / d, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy)
    (copy / "ktrace_decode" / "__init__.py").write_text('__version__ = "9.9-copy"\n')
    probe = subprocess.run([sys.executable, str(RUN_COPY), str(copy), "--probe"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    where = dict(line.split(" ", 1) for line in probe.splitlines())
    assert where == {"ktrace_decode": str(copy / "ktrace_decode"),
                     "ktrace_decode.formats": str(copy / "formats"),
                     "ktrace_decode.tui": str(copy / "tui"),
                     "ktrace_decode.samples": str(copy / "samples")}
    run = subprocess.run([sys.executable, str(RUN_COPY), str(copy), "--version"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert (run.returncode, run.stdout) == (0, "ktrace 9.9-copy\n")
