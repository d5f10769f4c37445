"""Measure a change: interleaved runs of one command on two versions of the code.

    python tests/benchmarks/ab.py HEAD~3                 # export of the 10M dump, 6 pairs
    python tests/benchmarks/ab.py main --pairs 10 -- export DUMP --out {out}
    python tests/benchmarks/ab.py HEAD~1 --new /path/to/other/checkout

The *base* is a git revision, checked out into a temporary worktree; the
*new* side is this checkout's working tree (or ``--new``).  Each side runs
``ktrace ARGS`` from its own copy through ``run_copy.py``, from a scratch
directory.  ``PYTHONPATH`` is not enough: Python puts the current directory
first on the import path, so a run started inside a checkout imports that
checkout (sessions 8-9 compared the working tree with itself that way), and
an editable install maps ``ktrace_decode.formats`` and ``.tui`` to its own
checkout.  Before timing, each side says where each of its packages comes
from, and the run stops unless every one is inside its copy.

One untimed run per side first (numba compiles each copy's loops into its
own cache), then pairs, the order alternating from pair to pair so that a
machine slowing down hurts both sides alike.  Printed per run: wall time,
CPU time (user + system, from the kernel's rusage) and peak RSS; then the
medians and the median of the per-pair differences.  On a shared VM whose
speed drifts by tens of percent over minutes, only the paired numbers mean
much; and CPU time counts the work even where the wall clock hides it.

The default ARGS export the 10M-record dump of run_all.py's --workdir (it
is generated if missing) into a directory removed before every run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PY = sys.executable
OUT = "{out}"  # replaced in ARGS by a scratch directory, removed before each run


RUN_COPY = HERE / "run_copy.py"


def imported_from(copy: Path, cwd: Path) -> list[Path]:
    """The directory of each package a run from ``copy`` imports."""
    said = subprocess.run([PY, str(RUN_COPY), str(copy), "--probe"], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout
    return [Path(line.split(" ", 1)[1]) for line in said.splitlines()]


def run(copy: Path, args: list[str], cwd: Path, out: Path) -> tuple[float, float, int, int]:
    """(wall s, cpu s, peak RSS KiB, exit code) of one run.  (The child's peak
    RSS starts at this process's, inherited through fork: ≈ 30 MB here, far
    below any export's; run_all.py uses GNU time for its small commands.)"""
    shutil.rmtree(out, ignore_errors=True)
    argv = [PY, str(RUN_COPY), str(copy), *(str(out) if a == OUT else a for a in args)]
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, os.waitstatus_to_exitcode(status)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split(
        "\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", help="git revision of the base side")
    ap.add_argument("--new", type=Path, default=REPO, help="the new side's checkout "
                    "(default: this one, its working tree)")
    ap.add_argument("--pairs", type=int, default=6, help="runs of each side (default: 6)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ktrace-bench",
                    help="run_all.py's dumps (default: %(default)s)")
    argv = sys.argv[1:] if argv is None else argv
    # Everything after "--" is ktrace's ({OUT}: a fresh scratch directory).
    cut = argv.index("--") if "--" in argv else len(argv)
    a = ap.parse_args(argv[:cut])
    a.args = argv[cut + 1:]
    if a.pairs < 1:
        ap.error("--pairs must be at least 1")
    if not a.args:
        sys.path.insert(0, str(HERE))
        from run_all import ensure_dump  # generates the dump if missing

        a.workdir.mkdir(parents=True, exist_ok=True)
        dump = ensure_dump(a.workdir, "dump-10000000", 10_000_000)
        a.args = ["export", str(dump.path), "--out", OUT]

    scratch = Path(tempfile.mkdtemp(prefix="ktrace-ab-"))
    base = scratch / "base"
    try:
        made = subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach",
                               "--quiet", str(base), a.base], capture_output=True, text=True)
        if made.returncode:
            print(f"ab: cannot check out {a.base!r}: {made.stderr.strip()}", file=sys.stderr)
            return 2
        sides = {"base": base, "new": a.new.resolve()}
        for name, copy in sides.items():
            got = imported_from(copy, scratch)
            stray = [d for d in got if not d.is_relative_to(copy)]
            if not got or stray:
                print(f"ab: the {name} side imports {stray or 'nothing'} from outside {copy}",
                      file=sys.stderr)
                return 1
            print(f"{name}: {a.base if name == 'base' else 'working tree'} ({copy})")
            code = run(copy, a.args, scratch, scratch / "out")[3]  # warm-up, untimed
            if code:
                print(f"ab: the {name} side exits {code}", file=sys.stderr)
                return 1
        results: dict[str, list[tuple[float, float, int, int]]] = {"base": [], "new": []}
        for i in range(a.pairs):
            for name in (("base", "new") if i % 2 == 0 else ("new", "base")):
                r = run(sides[name], a.args, scratch, scratch / "out")
                results[name].append(r)
                print(f"pair {i + 1} {name:4s} {r[0]:6.2f} s wall {r[1]:6.2f} s cpu "
                      f"{r[2] / 1024:6.0f} MB exit {r[3]}", flush=True)
        print()
        for name, rs in results.items():
            print(f"{name:4s} median {statistics.median(r[0] for r in rs):6.2f} s wall "
                  f"{statistics.median(r[1] for r in rs):6.2f} s cpu, "
                  f"peak {max(r[2] for r in rs) / 1024:.0f} MB")
        for k, what in ((0, "wall"), (1, "cpu")):
            d = statistics.median(n[k] - b[k]
                                  for b, n in zip(results["base"], results["new"], strict=True))
            ref = statistics.median(r[k] for r in results["base"])
            print(f"new - base, median of the pairs: {d:+.2f} s {what} ({d / ref:+.1%})")
        return 0
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)],
                       capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
