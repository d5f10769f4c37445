"""Golden files: the export CSVs and the analyze screen of one sample, byte for byte.

A change here is a change of the documented export format (or of the screen):
regenerate with ``KTRACE_UPDATE_GOLDEN=1 pytest tests/pipeline/test_pipeline_golden.py``
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pl_builders import iotimes
from pl_scenario import incident

from ktrace_decode.cli import main
from ktrace_decode.pipeline.export import SCHEMAS

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("KTRACE_UPDATE_GOLDEN") == "1"


def sample(where: Path) -> Path:
    """The incident, plus iotimes with chunk-server entries and a damaged stretch."""
    tr = incident()
    tr.add(1, 4_300_000, iotimes(4_300_000, ino=39, n_cs=2, type_=259))
    tr.add(0, 4_400_000, iotimes(4_400_000, ino=9, n_cs=1, type_=257))
    d = tr.write(where / "dump")
    cut = sum(len(r) for r in tr.records[1][:2])  # between two records of CPU 1
    t1 = (d / "trace1").read_bytes()
    (d / "trace1").write_bytes(t1[:cut] + b"\xee" * 5 + t1[cut:])
    return d


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden")
    sample(root)
    cwd = os.getcwd()
    os.chdir(root)  # relative paths, so file names in the outputs are stable
    try:
        assert main(["export", "dump", "--out", "out"]) == 0
        import contextlib
        import io

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(["analyze", "dump"]) == 0
        (root / "out" / "analyze.txt").write_text(buf.getvalue())
    finally:
        os.chdir(cwd)
    return root / "out"


@pytest.mark.parametrize("name", [*(f"{s}.csv" for s in SCHEMAS), "analyze.txt"])
def test_golden(outputs, name):
    got = (outputs / name).read_bytes()
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        (GOLDEN / name).write_bytes(got)
    assert got == (GOLDEN / name).read_bytes()
