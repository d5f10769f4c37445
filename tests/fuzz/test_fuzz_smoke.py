"""The fuzz target in the test suite: corpus replay (always) and a short atheris run."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import fuzz_targets  # noqa: E402

CORPUS = HERE / "corpus"


@pytest.mark.parametrize("path", sorted(CORPUS.iterdir()), ids=lambda p: p.name)
def test_corpus_replays_clean(path):
    """Seeds and every crash ever found (saved here as regressions) pass the checks."""
    fuzz_targets.one_input(path.read_bytes())


def test_seeds_are_in_the_corpus():
    for name, blob in fuzz_targets.seeds().items():
        assert (CORPUS / f"seed-{name}").read_bytes() == blob


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                    reason="atheris not installed (pip install atheris; Linux x86_64 wheels)")
def test_atheris_smoke_run(tmp_path):
    """A few hundred coverage-guided inputs from the corpus: no crash, exit 0."""
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    proc = subprocess.run(
        [sys.executable, str(HERE / "fuzz_decode.py"), str(corpus), "-runs=400", "-seed=1",
         "-max_total_time=30", f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"],
        capture_output=True, text=True, timeout=240)
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash", "leak",
                                                                              "timeout")))
    assert proc.returncode == 0 and not crashes, proc.stderr[-4000:]
    assert "Done" in proc.stderr
