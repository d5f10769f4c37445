"""Run every performance target of issue 5 side by side and print one table.

    python tests/benchmarks/run_all.py                      # 10M records, 3 rounds (~10 min)
    python tests/benchmarks/run_all.py --records 1000000 --repeat 1   # quick look (~1 min)

Dumps are generated once into --workdir (gen_dump.py: 85 % text / 15 %
iotimes, 4 CPUs, stream layout, CTF metadata for babeltrace2) and reused:
the big one (--records), a small one (records / 10, for linearity), 100 MiB
of random bytes and a valid dump of the same size.

Every command runs as its own process (wall time; peak RSS from GNU time
when installed, else wait4()), the commands of one round one after the
other, the rounds interleaved so that a noisy neighbour hurts every command
alike.  The table shows medians (and the best round: noise only ever slows a
run down, and it hurts our two-thread commands more than single-threaded
babeltrace2); the targets are checked on medians, the best-round ratio is
shown next to them.  Commands:

  bt-text      babeltrace2 DUMP > /dev/null                (skipped if not installed)
  bt-dummy     babeltrace2 DUMP -o dummy                   (decode only)
  naive-text   tests/benchmarks/naive.py DUMP --mode text > /dev/null
  naive-table  tests/benchmarks/naive.py DUMP --mode table
  decode       ktrace decode DUMP > /dev/null
  table        python -c 'ktrace_decode.decode.decode(DUMP)'   (decode to the records table)
  export       ktrace export DUMP --out DIR                (skipped if the command is missing)

DIR is removed before each export, outside the timed run: replacing the
previous round's 1.8 GB of files (--force) would add the kernel's work of
dropping them (0.25-0.65 s for the 1.28 GB events.csv alone, measured) to
the export's time.

The naive loop holds every record as Python objects (GBs for 10M records), so
it runs on the small dump (--naive-records to change) and is compared by
records/s; everything else runs on the big dump.  Then the targets are
checked: decode >= 3x bt-text; table >= 1.5x bt-dummy; export <= 2x table
and >= 8x naive-table; decode peak RSS <= 400 MB on every size; export peak
RSS <= dump size; small -> big <= 11x the time (big/small records = 10);
100 MiB of garbage <= 2x a valid dump of that size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
KTRACE = [PY, "-m", "ktrace_decode"]
TABLE = [PY, "-c", "import sys; from ktrace_decode.decode import decode; "
         "d = decode(sys.argv[1]); print(d.n_records, d.skipped_bytes)"]


@dataclass
class Dump:
    name: str
    path: Path
    records: int
    size: int


@dataclass
class Cmd:
    name: str
    dump: Dump
    argv: list[str]
    devnull: bool = True  # stdout to /dev/null
    fresh: Path | None = None  # removed before each run (not timed)
    walls: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)  # KiB
    codes: list[int] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def best(self) -> float:
        return min(self.walls)

    @property
    def peak_mb(self) -> float:
        return max(self.rss) / 1024

    @property
    def rate(self) -> float:
        return self.dump.records / self.wall


GNU_TIME = "/usr/bin/time"


def run(cmd: Cmd, scratch: Path) -> None:
    """One run: wall time and the peak RSS of the command's own process.

    The RSS comes from GNU time (-f %M) when installed: a child forked from
    this Python process would inherit its peak RSS (the kernel keeps the
    high-water mark across exec), GNU time's own children start small.
    """
    if cmd.fresh is not None:
        shutil.rmtree(cmd.fresh, ignore_errors=True)
    out = subprocess.DEVNULL if cmd.devnull else (scratch / f"{cmd.name}.out").open("wb")
    rss_file = scratch / "rss"
    argv = cmd.argv
    if os.access(GNU_TIME, os.X_OK):
        argv = [GNU_TIME, "-q", "-f", "%M", "-o", str(rss_file), *argv]
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if out is not subprocess.DEVNULL:
        out.close()
    code = os.waitstatus_to_exitcode(status)
    rss = ru.ru_maxrss
    if argv is not cmd.argv:
        text = rss_file.read_text().split()
        rss = int(text[-1]) if text else rss
    cmd.walls.append(wall)
    cmd.rss.append(rss)
    cmd.codes.append(code)


def ensure_dump(workdir: Path, name: str, records: int | None = None,
                nbytes: int | None = None, garbage: int | None = None) -> Dump:
    """Generate a dump once (in a child process: this one must stay small)."""
    d = workdir / name
    stamp = workdir / f"{name}.json"  # not inside: babeltrace2 reads every file there
    if not stamp.exists():
        t = time.perf_counter()
        gen = [PY, str(HERE / "gen_dump.py"), str(d)]
        if garbage is not None:
            gen += ["--garbage", str(garbage)]
        elif nbytes is not None:
            gen += ["--bytes", str(nbytes)]
        else:
            gen += ["--records", str(records)]
        said = subprocess.run(gen, check=True, capture_output=True, text=True).stdout
        count = 0 if garbage is not None else int(said.split(": ")[-1].split()[0])
        size = sum(f.stat().st_size for f in d.glob("trace*"))
        stamp.write_text(json.dumps({"records": count, "size": size}))
        print(f"generated {d}: {count:,} records, {size / 2**20:.0f} MiB in "
              f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
    meta = json.loads(stamp.read_text())
    return Dump(name, d, meta["records"], meta["size"])


def has_export() -> bool:
    p = subprocess.run([*KTRACE, "export", "--help"], capture_output=True)
    return p.returncode == 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split(
        "\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=10_000_000, help="big dump (default 10M)")
    ap.add_argument("--naive-records", type=int, help="dump for the naive loop "
                    "(default: the small one, records / 10)")
    ap.add_argument("--garbage-mib", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3, help="rounds (medians are reported)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/ktrace-bench"))
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    a = ap.parse_args(argv)
    a.workdir.mkdir(parents=True, exist_ok=True)
    scratch = a.workdir / "scratch"
    scratch.mkdir(exist_ok=True)

    big = ensure_dump(a.workdir, f"dump-{a.records}", a.records)
    small = ensure_dump(a.workdir, f"dump-{a.records // 10}", a.records // 10)
    nrec = a.naive_records or small.records
    naive_dump = ensure_dump(a.workdir, f"dump-{nrec}", nrec)
    gsize = a.garbage_mib << 20
    garbage = ensure_dump(a.workdir, f"garbage-{a.garbage_mib}MiB", garbage=gsize)
    same = ensure_dump(a.workdir, f"valid-{a.garbage_mib}MiB", nbytes=gsize)

    bt = shutil.which("babeltrace2")
    notes: list[str] = []
    cmds: list[Cmd] = []
    if bt:
        cmds += [Cmd("bt-text", big, [bt, str(big.path)]),
                 Cmd("bt-dummy", big, [bt, str(big.path), "-o", "dummy"])]
    else:
        notes.append("babeltrace2 not installed: its rows and ratios are skipped")
    naive = [PY, str(HERE / "naive.py"), str(naive_dump.path)]
    cmds += [Cmd("naive-text", naive_dump, [*naive, "--mode", "text"]),
             Cmd("naive-table", naive_dump, [*naive, "--mode", "table"])]
    for d in (big, small, same):
        cmds += [Cmd(f"decode {d.name}", d, [*KTRACE, "decode", str(d.path)]),
                 Cmd(f"table {d.name}", d, [*TABLE, str(d.path)])]
    cmds += [Cmd(f"decode {garbage.name}", garbage, [*KTRACE, "decode", str(garbage.path)]),
             Cmd(f"table {garbage.name}", garbage, [*TABLE, str(garbage.path)])]
    if has_export():
        for d in (big, small):
            out = scratch / f"export-{d.name}"
            cmds.append(Cmd(f"export {d.name}", d, [*KTRACE, "export", str(d.path), "--out",
                                                    str(out)], fresh=out))
    else:
        notes.append("`ktrace export` does not exist yet: export rows and ratios are skipped")

    for r in range(a.repeat):
        for c in cmds:
            run(c, scratch)
            print(f"round {r + 1}/{a.repeat} {c.name:<28} {c.walls[-1]:7.2f} s "
                  f"{c.rss[-1] / 1024:7.0f} MB exit {c.codes[-1]}", file=sys.stderr)

    by = {c.name: c for c in cmds}
    print(table(cmds, big))
    print()
    print(checks(by, big, small, garbage, same))
    for n in notes:
        print(f"\nnote: {n}")
    print(f"\n{a.repeat} round(s), medians; machine: {os.cpu_count()} CPUs; "
          f"python {sys.version.split()[0]}")
    if a.json:
        a.json.write_text(json.dumps({c.name: {"dump": c.dump.name, "records": c.dump.records,
                                               "bytes": c.dump.size, "walls": c.walls,
                                               "rss_kib": c.rss, "exit": c.codes}
                                      for c in cmds}, indent=1))
    return 0


def table(cmds: list[Cmd], big: Dump) -> str:
    rows = ["| command | dump | records | wall s median (best) | records/s | MB/s | "
            "peak RSS MB |", "|---|---|---:|---:|---:|---:|---:|"]
    for c in cmds:
        rate = f"{c.rate / 1e6:.2f} M" if c.dump.records else "-"
        rows.append(f"| {c.name.split()[0]} | {c.dump.name} ({c.dump.size / 2**20:.0f} MiB) | "
                    f"{c.dump.records:,} | {c.wall:.2f} ({c.best:.2f}) | {rate} | "
                    f"{c.dump.size / 2**20 / c.wall:.0f} | {c.peak_mb:.0f} |")
    return "\n".join(rows)


def checks(by: dict[str, Cmd], big: Dump, small: Dump, garbage: Dump, same: Dump) -> str:
    rows = ["| target | measured (medians) | best rounds | required | met |",
            "|---|---:|---:|---:|---|"]

    def add(what: str, value: float | None, req: str, ok: bool | None, fmt: str = "{:.2f}x",
            best: float | None = None) -> None:
        b = "" if best is None else fmt.format(best)
        if value is None:
            rows.append(f"| {what} | - | - | {req} | skipped |")
        else:
            rows.append(f"| {what} | {fmt.format(value)} | {b} | {req} | "
                        f"{'yes' if ok else 'NO'} |")

    dec, tab = by[f"decode {big.name}"], by[f"table {big.name}"]
    bt_text, bt_dummy = by.get("bt-text"), by.get("bt-dummy")
    v = bt_text.wall / dec.wall if bt_text else None
    add("ktrace decode vs babeltrace2 text (speed)", v, ">= 3x", v is not None and v >= 3,
        best=bt_text.best / dec.best if bt_text else None)
    v = bt_dummy.wall / tab.wall if bt_dummy else None
    add("decode-to-table vs babeltrace2 -o dummy (speed)", v, ">= 1.5x",
        v is not None and v >= 1.5, best=bt_dummy.best / tab.best if bt_dummy else None)
    exp = by.get(f"export {big.name}")
    v = exp.wall / tab.wall if exp else None
    add("export time / decode-to-table time", v, "<= 2x", v is not None and v <= 2,
        best=exp.best / tab.best if exp else None)
    nt = by["naive-table"]
    v = exp.rate / nt.rate if exp else None
    add("export vs naive loop to a table (records/s)", v, ">= 8x", v is not None and v >= 8,
        best=(exp.dump.records / exp.best) / (nt.dump.records / nt.best) if exp else None)
    v = dec.rate / by["naive-text"].rate
    add("ktrace decode vs naive loop to text (records/s)", v, "(info)", True)
    v = tab.rate / nt.rate
    add("decode-to-table vs naive loop to a table (records/s)", v, "(info)", True)
    for d in (big, small, same, garbage):
        c = by[f"decode {d.name}"]
        add(f"ktrace decode peak RSS, {d.name}", c.peak_mb, "<= 400 MB", c.peak_mb <= 400,
            "{:.0f} MB")
    if exp:
        add(f"export peak RSS / dump size, {big.name}", exp.peak_mb * 2**20 / big.size,
            "<= 1", exp.peak_mb * 2**20 <= big.size, "{:.2f}")
    k = big.records / small.records
    for name in ("decode", "table", "export"):
        b, s = by.get(f"{name} {big.name}"), by.get(f"{name} {small.name}")
        v = b.wall / s.wall if b and s else None
        add(f"{name}: time {big.name} / {small.name} ({k:.0f}x records)", v,
            f"<= {k * 1.1:.0f}x", v is not None and v <= k * 1.1)
    for name in ("table", "decode"):
        g, s = by[f"{name} {garbage.name}"], by[f"{name} {same.name}"]
        v = g.wall / s.wall
        add(f"{name}: {garbage.name} / valid dump of the same size", v, "<= 2x", v <= 2)
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
