"""The baseline: a plain ``struct.unpack_from`` loop in Python, one record at a time.

    python tests/benchmarks/naive.py DUMP --mode text  > /dev/null   # lines, merged by time
    python tests/benchmarks/naive.py DUMP --mode table               # a Polars records table

What an engineer would write in an afternoon: read each ``traceN`` whole,
walk the length chain with ``struct``, stop a CPU at its first bad header (no
resync), merge the CPUs by (time, cpu, seq).  ``table`` builds the same
columns as ``ktrace_decode.decode`` (Python lists, then one DataFrame); ``text``
prints the same lines as ``ktrace decode``.  It is the yardstick for the
"8x the naive loop" target, not a decoder to use.
"""

from __future__ import annotations

import argparse
import heapq
import re
import struct
import sys
from pathlib import Path

HDR = struct.Struct("<HHHHQ")
IOT = struct.Struct("<QQQQIIQHBBI")
MAGIC = 0xF59C
IO_NAMES = {257: "read", 259: "write", 263: "sync", 265: "write_sync", 269: "write_zero",
            271: "write_hole", 275: "fiemap", 277: "write_al"}
NONE10 = (None,) * 10
COLUMNS = ["cpu", "seq", "offset", "time_us", "type", "ovfl", "pdu_len", "text", "io_chunk",
           "io_offset", "io_size", "io_start_time", "io_local_delay", "io_lat", "io_ino",
           "io_type", "io_cses", "io_chid", "n_cs"]


def traces(dump: Path) -> list[tuple[int, bytes]]:
    files = [(int(m.group(1)), p) for p in dump.iterdir()
             if (m := re.fullmatch(r"trace(\d+)", p.name))]
    return [(cpu, p.read_bytes()) for cpu, p in sorted(files)]


def decode_cpu(cpu: int, data: bytes, as_text: bool) -> list[tuple]:
    """The records of one CPU in order: (time, cpu, seq, line) for text output,
    else the COLUMNS as lists."""
    out: list[tuple] = []
    cols: dict[str, list] = {c: [] for c in COLUMNS}
    adds = [cols[c].append for c in COLUMNS[:8]]
    io_adds = [cols[c].append for c in COLUMNS[8:18]]
    add_ncs = cols["n_cs"].append
    append, unpack, unpack_iot = out.append, HDR.unpack_from, IOT.unpack_from
    pos, seq, end = 0, 0, len(data)
    while pos + 16 <= end:
        magic, typ, pdu, ovfl, t = unpack(data, pos)
        if magic != MAGIC or pos + 16 + pdu > end:
            break  # no resync: the naive loop stops at the first bad header
        text = iot = None
        n_cs = 0
        if typ == 1:
            raw = data[pos + 16 : pos + 16 + (255 if pdu > 256 else pdu - 1)]
            text = raw.decode("utf-8", "replace").split("\0", 1)[0].removesuffix("\n")
        elif typ == 2:
            chunk, off, size, st, local, lat, ino, io_type, cses, _pad, chid = unpack_iot(
                data, pos + 16)
            iot = (chunk, off, size, st, local, lat, ino, io_type, cses, chid)
            n_cs = (pdu - 56) // 24
        if as_text:
            append((t, cpu, seq, line(t, cpu, typ, ovfl, pdu, text, iot, n_cs)))
        else:
            for add, v in zip(adds, (cpu, seq, pos, t, typ, ovfl, pdu, text), strict=True):
                add(v)
            for add, v in zip(io_adds, iot or NONE10, strict=True):
                add(v)
            add_ncs(n_cs if iot else None)
        seq += 1
        pos += 16 + pdu
    return out if as_text else cols  # type: ignore[return-value]


def line(t: int, cpu: int, typ: int, ovfl: int, pdu: int, text: str | None,
         iot: tuple | None, n_cs: int) -> str:
    name = "text" if typ == 1 else "iotimes" if typ == 2 else f"type{typ}"
    lost = f">={ovfl} lost" if ovfl else ""
    if typ == 1:
        msg = text
    elif typ == 2:
        _chunk, off, size, _st, local, lat, ino, io_type = iot[:8]  # type: ignore[index]
        msg = (f"ino={ino} {IO_NAMES.get(io_type, io_type)} off={off} size={size} lat={lat}us "
               f"local={local}us cs={n_cs}")
    else:
        msg = f"<{pdu} payload bytes>"
    flag = " [long: cut at NUL]" if typ == 1 and pdu > 256 else ""
    return (f"{cpu:>3} {t // 1_000_000:>5}.{t % 1_000_000:06d} {name:<7} {lost:<11} "
            f"{msg}{flag}\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dump", type=Path)
    ap.add_argument("--mode", choices=("text", "table"), default="text")
    a = ap.parse_args(argv)
    as_text = a.mode == "text"
    per_cpu = [decode_cpu(cpu, data, as_text) for cpu, data in traces(a.dump)]
    if as_text:
        merged = heapq.merge(*per_cpu)  # tuples sort by (time, cpu, seq)
        sys.stdout.writelines(r[3] for r in merged)
        return 0
    import polars as pl

    frames = [pl.DataFrame(cols) for cols in per_cpu]
    df = pl.concat(frames).sort("time_us", "cpu", "seq")
    print(f"{df.height} records", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
