"""On-demand measurement of decoding time and memory (not part of the test suite).

    python tests/robustness/bench_resources.py PATH [PATH...] [--mode api|cli|both]

For each PATH (a dump directory, trace file or archive) a child process
decodes it while this process samples the child's ``/proc/<pid>/status``
every 20 ms.  Reported per run:

- ``wall``: seconds;
- ``anon``: peak anonymous memory (``RssAnon``): what decoding allocates --
  numpy arrays, the records table, Python objects.  This is the ceiling that
  matters: it cannot be paged out without swap;
- ``rss``: peak resident set (``VmHWM``), which also counts the pages of the
  memory-mapped input that the kernel happened to keep resident (file-backed,
  reclaimable: the kernel drops them under pressure);
- ``MiB/s``: input bytes per second.

Modes: ``api`` = ``ktrace_decode.decode.decode(path)`` (the whole records
table in memory, what ``analyze``/``export`` build on); ``cli`` = ``ktrace
decode PATH --format text -q > /dev/null`` (streaming output).

Inputs for it: ``tests/benchmarks/gen_dump.py OUT --bytes N`` (valid records)
or ``--garbage N``; ``--make-garbage N OUT`` here writes N random bytes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

CHILD_API = """
import sys
from ktrace_decode.decode import decode
d = decode(sys.argv[1])
print(d.n_records, d.skipped_bytes, file=sys.stderr)
"""


def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                    out[k] = int(v.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def measure(path: str, mode: str) -> dict[str, float]:
    if mode == "api":
        cmd = [sys.executable, "-c", CHILD_API, path]
    else:
        cmd = [sys.executable, "-m", "ktrace_decode", "decode", path, "--format", "text", "-q"]
    size = _size(Path(path))
    t0 = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as p:
        anon = hwm = 0
        while p.poll() is None:
            st = _status(p.pid)
            anon = max(anon, st.get("RssAnon", 0))
            hwm = max(hwm, st.get("VmHWM", 0))
            time.sleep(0.02)
        err = p.stderr.read().decode() if p.stderr else ""
    wall = time.perf_counter() - t0
    if p.returncode not in (0, 1):
        raise SystemExit(f"{cmd}: exit {p.returncode}: {err}")
    return {"bytes": size, "wall": wall, "anon": anon, "rss": hwm,
            "mib_s": size / wall / 2**20, "rc": p.returncode}


def _size(p: Path) -> int:
    if p.is_dir():
        return sum(f.stat().st_size for f in p.iterdir() if f.name.startswith("trace"))
    return p.stat().st_size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*")
    ap.add_argument("--mode", choices=("api", "cli", "both"), default="both")
    ap.add_argument("--make-garbage", nargs=2, metavar=("BYTES", "OUT"))
    args = ap.parse_args()
    if args.make_garbage:
        n, out = int(args.make_garbage[0]), Path(args.make_garbage[1])
        with out.open("wb") as f:
            for _ in range(0, n, 1 << 24):
                f.write(os.urandom(min(1 << 24, n - f.tell())))
        return 0
    modes = ("api", "cli") if args.mode == "both" else (args.mode,)
    print(f"{'input':<40} {'mode':<4} {'MiB':>8} {'wall s':>8} {'MiB/s':>7} "
          f"{'anon MiB':>9} {'rss MiB':>8} {'anon/in':>7}")
    for path in args.paths:
        for mode in modes:
            r = measure(path, mode)
            print(f"{path[-40:]:<40} {mode:<4} {r['bytes'] / 2**20:>8.0f} {r['wall']:>8.2f} "
                  f"{r['mib_s']:>7.0f} {r['anon'] / 2**20:>9.0f} {r['rss'] / 2**20:>8.0f} "
                  f"{r['anon'] / max(r['bytes'], 1):>7.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
