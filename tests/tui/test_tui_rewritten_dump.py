"""``ktrace tui`` survives its dump being rewritten while it is open.

A mapped trace file that is truncated under a reader kills it with SIGBUS at
the next touch of a lost page (no Python code can catch that); the TUI runs
for hours, and engineers re-dump into the same directory.  So the TUI reads
the files into memory (``sources.in_memory``).  Each run is a subprocess: the
failure being guarded against is the death of the process.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys

import pytest

from ktrace_decode.decode import decode
from ktrace_decode.samples import sample_path

STORM = sample_path("storm")

# The real ``ktrace tui`` command line, with an app that truncates every trace
# file of the dump and then reads every decoded text (what scrolling the
# Events view does).  argv: DUMP [mapped]; "mapped" keeps the files mapped.
SCRIPT = """\
import os, sys
from ktrace_decode.cli import main
from ktrace_decode.tui import app, cli

dump = sys.argv[1]
if sys.argv[2:] == ["mapped"]:
    cli.in_memory = lambda d: d

class App:
    def __init__(self, decoded):
        self.decoded = decoded

    def run(self):
        for name in os.listdir(dump):
            if name.startswith("trace"):
                os.truncate(os.path.join(dump, name), 0)
        texts = [t for t in self.decoded.records["text"].to_list() if t is not None]
        print(len(texts), sum(len(t) for t in texts))

app.create_app = lambda decoded: App(decoded)
sys.exit(main(["tui", dump, "--ignore-memory"]))
"""


def _run(tmp_path, *extra: str) -> subprocess.CompletedProcess[str]:
    dump = tmp_path / "dump"
    shutil.copytree(STORM, dump)
    return subprocess.run([sys.executable, "-c", SCRIPT, str(dump), *extra],
                          capture_output=True, text=True, timeout=120)


def test_truncating_the_open_dump_does_not_kill_the_tui(tmp_path):
    texts = [t for t in decode(STORM).records["text"].to_list() if t is not None]
    proc = _run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(len(texts)), str(sum(len(t) for t in texts))]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux mapping semantics")
def test_the_hazard_is_real_with_mapped_files(tmp_path):
    # Without in_memory the same run dies of SIGBUS: what the first test guards against.
    proc = _run(tmp_path, "mapped")
    assert proc.returncode == -signal.SIGBUS, (proc.returncode, proc.stderr[-500:])
