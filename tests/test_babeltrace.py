"""Cross-check against an independent decoder: babeltrace2 on the very same bytes.

``tests/benchmarks/ktrace.tsdl`` (a copy of shared/bench/ktrace.tsdl) describes
the ktrace format in CTF: copied as ``metadata`` into a dump directory it lets
Debian's ``babeltrace2`` read the ``traceN`` files.  Record counts, timestamps,
text messages, iotimes fields and chunk-server entries must match our records
table.  Field for field through the ``bt2`` Python bindings when a Python
with them is installed (Debian: python3-bt2), else by parsing babeltrace2's
pretty text.  Skipped when babeltrace2 is not installed.

The CTF description cannot express what only our decoder handles (records
whose pdu_len runs past the NUL, i.e. the kernel's long-message bug;
unknown record types; damage; raw ring images): those inputs are not
compared here (the construct slow path is their oracle).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from benchmarks.gen_dump import TSDL, write_dump

from helpers import iot_rec, text_rec
from ktrace_decode.decode import decode
from ktrace_decode.formats import layouts as L

BABELTRACE = shutil.which("babeltrace2")
pytestmark = pytest.mark.skipif(BABELTRACE is None, reason="babeltrace2 is not installed")

SAMPLES = Path(__file__).resolve().parent.parent / "samples"

#: Run by a Python that has the bt2 bindings: one JSON object per event.
BT2_DUMP = r"""
import json, sys
import bt2

def value(f):
    if isinstance(f, bt2._StringFieldConst):
        return str(f)
    if isinstance(f, bt2._IntegerFieldConst):
        return int(f)
    if isinstance(f, bt2._StructureFieldConst):
        return {k: value(v) for k, v in f.items()}
    if isinstance(f, bt2._ArrayFieldConst):
        return [value(v) for v in f]
    raise TypeError(type(f))

for msg in bt2.TraceCollectionMessageIterator(sys.argv[1]):
    if type(msg) is bt2._EventMessageConst:
        ev = msg.event
        print(json.dumps({"stream": ev.stream.name, "t": msg.default_clock_snapshot.value,
                          "event": ev.name, "fields": value(ev.payload_field)}))
"""

IO_COLUMNS = {"chunk": "io_chunk", "offset": "io_offset", "size": "io_size",
              "start_time": "io_start_time", "local_delay": "io_local_delay", "lat": "io_lat",
              "ino": "io_ino", "type": "io_type", "cses": "io_cses", "pad1": "io_chid"}


def _bt2_python() -> str | None:
    for py in dict.fromkeys(["/usr/bin/python3", shutil.which("python3") or ""]):
        if py and Path(py).exists() and subprocess.run(
                [py, "-c", "import bt2"], capture_output=True).returncode == 0:
            return py
    return None


BT2_PYTHON = _bt2_python() if BABELTRACE else None


def _with_metadata(src: Path, dst: Path) -> Path:
    """A copy of the dump's trace files with the CTF metadata next to them."""
    dst.mkdir()
    for f in src.glob("trace*"):
        shutil.copyfile(f, dst / f.name)
    shutil.copyfile(TSDL, dst / "metadata")
    return dst


def _our_events(dump: Path) -> tuple[dict[int, list[dict]], pl.DataFrame]:
    """Our records per CPU (seq order) in babeltrace2's shape, and the cs table."""
    d = decode(dump)
    assert not d.damaged, "the cross-check wants clean dumps"
    cs = {key: grp.sort("idx") for key, grp in d.cs.group_by(["cpu", "seq"])}
    out: dict[int, list[dict]] = {}
    for r in d.records.sort("cpu", "seq").iter_rows(named=True):
        if r["type"] == L.TYPE_TEXT:
            fields = {"msg": r["text"]}
        else:
            fields = {k: r[c] for k, c in IO_COLUMNS.items()}
            ent = cs.get((r["cpu"], r["seq"]))
            fields["cs"] = [] if ent is None else ent.select(
                "csid", "misc", "ts_net", "ts_io").to_dicts()
        out.setdefault(r["cpu"], []).append(
            {"t": r["time_us"], "event": L.TYPE_NAMES[r["type"]], "fields": fields})
    return out, d.records


def _strip(ev: dict) -> dict:
    """Our text rule on babeltrace2's raw string: one trailing newline goes."""
    if ev["event"] == "text":
        ev["fields"]["msg"] = ev["fields"]["msg"].removesuffix("\n")
    else:
        ev["fields"].pop("pad", None)  # stale padding: not in our table
    return ev


def _cross_check_fields(dump: Path, tmp: Path) -> None:
    bt = _with_metadata(dump, tmp / "bt")
    lines = subprocess.run([BT2_PYTHON, "-c", BT2_DUMP, str(bt)], capture_output=True,
                           text=True, check=True).stdout.splitlines()
    theirs: dict[int, list[dict]] = {}
    for line in lines:
        ev = json.loads(line)
        cpu = int(re.fullmatch(r"trace(\d+)", Path(ev.pop("stream")).name).group(1))
        theirs.setdefault(cpu, []).append(_strip(ev))
    ours, _ = _our_events(dump)
    assert sorted(theirs) == sorted(ours)
    for cpu in ours:
        assert len(theirs[cpu]) == len(ours[cpu]), f"cpu {cpu}"
        assert theirs[cpu] == ours[cpu], f"cpu {cpu}"


_PAIR = re.compile(r"(\w+) = (\d+)")


def _cross_check_text(dump: Path, tmp: Path) -> None:
    """babeltrace2's pretty text (raw timestamps), compared as a multiset."""
    bt = _with_metadata(dump, tmp / "bt-text")
    out = subprocess.run([BABELTRACE, str(bt), "--clock-cycles", "--no-delta"],
                         capture_output=True, text=True, check=True).stdout
    theirs: Counter = Counter()
    for line in out.splitlines():
        m = re.match(r"\[(\d+)\] (\w+): \{ (.*) \}$", line)
        assert m, line
        t, event, body = int(m[1]), m[2], m[3]
        if event == "text":
            msg = body.removeprefix('msg = "').removesuffix('"')
            msg = msg.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
            theirs[(t, event, msg.removesuffix("\n"))] += 1
        else:
            pairs = _PAIR.findall(body)
            head = tuple((k, int(v)) for k, v in pairs[:11] if k != "pad")
            theirs[(t, event, head, tuple(int(v) for _, v in pairs[11:]))] += 1
    d = decode(dump)
    assert not d.damaged
    recs = d.records
    ours: Counter = Counter()
    text = recs.filter(pl.col("type") == L.TYPE_TEXT)
    ours.update(zip(text["time_us"], ["text"] * text.height, text["text"], strict=True))
    cs = {k: tuple(v for row in g.sort("idx").select("csid", "misc", "ts_net", "ts_io").rows()
                   for v in row) for k, g in d.cs.group_by(["cpu", "seq"])}
    iot = recs.filter(pl.col("type") == L.TYPE_IOTIMES)
    for r in iot.select("cpu", "seq", "time_us", *IO_COLUMNS.values()).iter_rows():
        head = tuple(zip(IO_COLUMNS, r[3:], strict=True))
        ours[(r[2], "iotimes", head, cs.get((r[0], r[1]), ()))] += 1
    assert sum(theirs.values()) == recs.height
    assert theirs == ours


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """A generated dump (3 CPUs, gaps in the numbering) plus hand-made edge cases:
    iotimes without entries, dropped-record counts, UTF-8 text, a trailing newline."""
    d = tmp_path_factory.mktemp("gen")
    write_dump(d, 3000, cpus=3, seed=9)
    (d / "trace2").rename(d / "trace7")
    extra = [text_rec(2_000_000_000, "f: caf\u00e9 \u2192 \u6f22\u5b57", ovfl=3),
             iot_rec(2_000_000_010, ino=2**63 + 5, n_cs=0, ovfl=65535),
             text_rec(2_000_000_020, "f: ends in a newline\n"),
             iot_rec(2_000_000_030, ino=1, n_cs=7)]
    with (d / "trace1").open("ab") as f:
        f.write(b"".join(extra))
    return d


@pytest.mark.skipif(BT2_PYTHON is None, reason="no Python with the bt2 bindings")
def test_fields_match_babeltrace2_on_a_generated_dump(generated, tmp_path):
    _cross_check_fields(generated, tmp_path)


def test_pretty_text_matches_on_a_generated_dump(generated, tmp_path):
    _cross_check_text(generated, tmp_path)


def test_pretty_text_matches_on_a_bigger_dump(tmp_path):
    d = tmp_path / "dump"
    write_dump(d, 40_000, cpus=4, seed=3)
    _cross_check_text(d, tmp_path)


def _ctf_readable(sample: Path) -> bool:
    """Stream layout and no record the CTF description cannot express."""
    d = decode(sample)
    return (bool(d.n_records) and all(c.layout == "stream" for c in d.cpus) and not d.damaged
            and bool(np.isin(d.records["type"].to_numpy(), list(L.KNOWN_TYPES)).all()))


@pytest.mark.skipif(BT2_PYTHON is None, reason="no Python with the bt2 bindings")
@pytest.mark.parametrize("name", ["quiet", "storm", "overflow"])
def test_fields_match_babeltrace2_on_emitted_samples(name, tmp_path):
    sample = SAMPLES / name
    if not any(sample.glob("trace*")):
        pytest.skip(f"samples/{name} is not there")
    if not _ctf_readable(sample):
        pytest.skip(f"samples/{name}: raw layout, long-text or other records CTF cannot "
                    "describe (babeltrace2 reads a string up to its NUL, not pdu_len)")
    _cross_check_fields(sample, tmp_path)
