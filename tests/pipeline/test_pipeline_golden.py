"""Golden files: the export CSVs and the analyze screen of two samples, byte for byte.

* ``incident``: hand-built (tests/pipeline/pl_scenario.py) with a drop window
  and a damaged stretch, every number checked by hand in test_pipeline_summary;
* ``storm``: the emitter's "storm" sample, generated once and frozen in
  ``golden/storm-dump/`` (so a change of the emitter's model cannot move it).

A change here is a change of the documented export format (or of the screen):
regenerate with ``KTRACE_UPDATE_GOLDEN=1 pytest tests/pipeline/test_pipeline_golden.py``
and review the diff.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path

import pytest
from pl_builders import iotimes
from pl_scenario import incident

from ktrace_decode.cli import main
from ktrace_decode.pipeline.export import SCHEMAS

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("KTRACE_UPDATE_GOLDEN") == "1"
NAMES = [*(f"{s}.csv" for s in SCHEMAS), "analyze.txt"]


def incident_dump(where: Path) -> Path:
    """The incident, plus iotimes with chunk-server entries and a damaged stretch."""
    tr = incident()
    tr.add(1, 4_300_000, iotimes(4_300_000, ino=39, n_cs=2, type_=259))
    tr.add(0, 4_400_000, iotimes(4_400_000, ino=9, n_cs=1, type_=257))
    d = tr.write(where / "dump")
    cut = sum(len(r) for r in tr.records[1][:2])  # between two records of CPU 1
    t1 = (d / "trace1").read_bytes()
    (d / "trace1").write_bytes(t1[:cut] + b"\xee" * 5 + t1[cut:])
    return d


def storm_dump(where: Path) -> Path:
    return Path(shutil.copytree(GOLDEN / "storm-dump", where / "dump"))


def produce(root: Path) -> Path:
    """export + analyze of ``root/dump``, run from ``root`` so paths in the outputs
    are the stable relative 'dump/...'."""
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["export", "dump", "--out", "out"]) == 0
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(["analyze", "dump"]) == 0
        (root / "out" / "analyze.txt").write_text(buf.getvalue())
    finally:
        os.chdir(cwd)
    return root / "out"


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    out = {}
    for sample, make in (("incident", incident_dump), ("storm", storm_dump)):
        root = tmp_path_factory.mktemp(sample)
        make(root)
        out[sample] = produce(root)
    return out


@pytest.mark.parametrize("sample", ["incident", "storm"])
@pytest.mark.parametrize("name", NAMES)
def test_golden(outputs, sample, name):
    got = (outputs[sample] / name).read_bytes()
    want = GOLDEN / sample / name
    if UPDATE:
        want.parent.mkdir(exist_ok=True)
        want.write_bytes(got)
    assert got == want.read_bytes()
