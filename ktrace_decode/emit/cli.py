"""``ktrace emit``: write a reference dump (and its ground truth) from a scenario."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import textwrap
from pathlib import Path

from ..errors import InputError, UsageError
from . import emit
from .compare import compare, render
from .scenario import KEY_HELP, Scenario, _toml, load_scenario


def _keys_help() -> str:
    doc = []
    for f in dataclasses.fields(Scenario):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        wrapped = textwrap.wrap(KEY_HELP[f.name], 54)
        doc.append(f"  {f.name:<22} {wrapped[0]}")
        doc += [f"  {'':<22} {line}" for line in wrapped[1:]]
        doc.append(f"  {'':<22} (default {_toml(default) if default is not None else 'unset'})")
    return "\n".join(doc)


EPILOG = f"""\
The emitter replays the patched kernel path (fuse_invalidate_files() -> the
workqueue item -> fuse_open / fuse_link_rw_file) as a discrete-event model,
writes the very records the patch emits through a model of the per-CPU relay
buffers (no-overwrite, padding, drops counted into ovfl like the kernel), and
writes the ground truth next to them:

  DIR/trace<cpu>        one per CPU (stream or raw layout)
  DIR/prometheus        the metrics file (4032-byte layout) of the IO performed
  DIR/scenario.toml     the scenario, for reproduction
  DIR/truth/*.csv       records, cs, events, invalidations (the export's columns)

The same scenario and seed always give the same bytes.

scenario keys (TOML, all optional):
{_keys_help()}

examples:
  ktrace emit samples/storm/scenario.toml --out /tmp/storm
  ktrace emit samples/storm/scenario.toml --out /tmp/ring --layout raw --seed 7
  ktrace emit samples/storm/scenario.toml --compare
"""


def add_emit_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("emit", help="write a reference dump + ground truth from a scenario",
                       description="Replay the patched kernel code path and write byte-exact "
                                   "ktrace buffers with their ground truth.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", metavar="SCENARIO.toml", help="the workload to replay")
    p.add_argument("--out", metavar="DIR", help="dump directory to write")
    p.add_argument("--layout", choices=("stream", "raw"),
                   help="override the scenario's layout")
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument("--path", choices=("new", "old"), default="new",
                   help="new = the VZ10 workqueue patch (default); old = the pre-patch kernel, "
                        "where the event loop invalidates inline and nothing is traced")
    p.add_argument("--compare", action="store_true",
                   help="run old and new path on the same workload and report how long the "
                        "userspace event loop is blocked in each (writes nothing)")
    p.add_argument("--force", action="store_true", help="replace a dump already in --out")
    p.set_defaults(func=run_emit)
    return p


def run_emit(args: argparse.Namespace) -> int:
    try:
        sc = load_scenario(args.scenario)
    except FileNotFoundError:
        raise InputError("no such scenario file", args.scenario) from None
    except ValueError as e:
        raise InputError(str(e), args.scenario) from None
    if args.seed is not None:
        sc = dataclasses.replace(sc, seed=args.seed)
    if args.compare:
        sys.stdout.write(render(compare(sc), sc.duration_ms))
        return 0
    if not args.out:
        raise UsageError("--out DIR is required (or use --compare)")
    res = emit(sc, Path(args.out), layout=args.layout, force=args.force, path=args.path)
    per_cpu = ", ".join(f"cpu{c}: {n}" for c, n in sorted(
        res.records.group_by("cpu").len().rows()))
    lost = sum(res.dropped.values())
    sys.stderr.write(f"ktrace emit: {res.records.height} records ({per_cpu}) in {res.layout} "
                     f"layout, {lost} dropped by the relay, {res.invalidations.height} "
                     f"invalidation episodes -> {args.out}\n")
    return 0
