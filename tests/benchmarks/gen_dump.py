"""Generate large valid ktrace dumps (and pure garbage) for the benchmarks.

    python tests/benchmarks/gen_dump.py OUT_DIR --records 10000000
    python tests/benchmarks/gen_dump.py OUT_DIR --bytes 104857600      # ~100 MiB of records
    python tests/benchmarks/gen_dump.py OUT_DIR --garbage 104857600    # random bytes in trace0

A valid dump is ``trace0..traceN`` in the stream layout (what ``cat traceN``
returns) plus ``metadata``, the CTF description from ``shared/bench``, so that
``babeltrace2 OUT_DIR`` reads the very same bytes.

How it stays fast (10M records in seconds): a pool of distinct records is
built once per CPU from the message catalogue (``formats/messages.py``
``render()``) and the construct-derived numpy dtypes; a block of a few
thousand of them in random order (85 % text / 15 % iotimes) is laid out once
and tiled with numpy; then the header times (increasing, a few us apart, the
CPUs interleaved) and the iotimes start times are written into every copy with
vectorised stores.  No Python loop runs per record.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

from ktrace_decode.formats import layouts as L
from ktrace_decode.formats import messages as M

#: The CTF description that lets babeltrace2 decode a dump directory (a copy
#: of shared/bench/ktrace.tsdl).
TSDL = Path(__file__).with_name("ktrace.tsdl")

TEXT_SHARE = 0.85
#: Records laid out once, then tiled.
BLOCK_RECORDS = 1 << 14
T0_US = 1_000_000_000  # ~17 min after boot

#: Relative frequency of the catalogue messages in the text records.
MIX = {
    "read_map": 20, "cs_latency": 35, "start": 8, "end": 8, "pending": 4, "waiting": 4,
    "cs_congestion": 11, "cs_io_error": 3, "write_error": 2, "pages_error": 2,
    "cs_whitelist": 1.5, "cs_blacklist": 1.5,
}


def _text_pool(rng: np.random.Generator, n: int) -> list[bytes]:
    """``n`` distinct text payloads (message + NUL) rendered from the catalogue."""
    events = list(MIX)
    p = np.array([MIX[e] for e in events], float)
    picks = rng.choice(len(events), size=n, p=p / p.sum())
    out = []
    for k in picks.tolist():
        msg = M.BY_EVENT[events[k]]
        nodeid = int(rng.integers(2, 1 << 22))
        csid = int(rng.integers(1025, 1100))
        values = {
            "fh": int(rng.integers(1, 1 << 16)), "nodeid": nodeid - (msg.nodeid_offset or 0),
            "err": -int(rng.choice([5, 11, 28, 110])), "csid": csid,
            "latency": int(rng.integers(100, 200_000)), "cwnd": int(rng.integers(4, 512)),
            "clamp": int(rng.integers(64, 1024)), "by": str(rng.choice(["timeout", "io_error"])),
            "xid_type": 1, "xid_origin": int(rng.integers(1, 1 << 40)),
            "xid_val": int(rng.integers(1, 1 << 32)), "offender": csid,
            "ireq": f"{int(rng.integers(0, 1 << 48)):016x}", "chunk": int(rng.integers(0, 1 << 30)),
            "offset": int(rng.integers(0, 1 << 26)), "size": int(rng.choice([4096, 65536])),
            "map": f"{int(rng.integers(0, 1 << 48)):016x}", "state": int(rng.integers(0, 64)),
            "flags": int(rng.integers(0, 1 << 12)), "_w": 14, "_p": 14,
            "cs_list": ",".join(str(c) for c in range(csid, csid + 3)),
            "is_seq": int(rng.integers(0, 2)),
        }
        out.append(L.text_payload(M.render(msg, **values)))
    return out


def _iotimes_pool(rng: np.random.Generator, n: int) -> list[bytes]:
    """``n`` iotimes payloads (56-byte header + 1..3 chunk-server entries, cses == n)."""
    out = []
    types = np.array(sorted(L.IOTIMES_REQUEST_TYPES))
    for _ in range(n):
        k = int(rng.integers(1, 4))
        hdr = np.zeros(1, L.IOTIMES_HEADER_DTYPE)
        hdr["chunk"] = int(rng.integers(0, 1 << 20)) << 26
        hdr["offset"] = hdr["chunk"] + (int(rng.integers(0, 1 << 14)) << 12)
        hdr["size"] = 4096 << int(rng.integers(0, 5))
        hdr["local_delay"] = int(rng.integers(0, 200))
        hdr["lat"] = int(rng.integers(50, 50_000))
        hdr["ino"] = int(rng.integers(1, 1 << 22))
        hdr["type"] = int(rng.choice(types))
        hdr["cses"] = k
        hdr["pad1"] = int(rng.integers(0, 1 << 16))
        cs = np.zeros(k, L.IOTIMES_CS_DTYPE)
        cs["csid"] = 1025 + rng.integers(0, 75, k)
        cs["misc"] = (np.uint64(1) << np.uint64(62)) | rng.integers(0, 1 << 40, k).astype(np.uint64)
        cs["ts_net"] = rng.integers(5, 5000, k)
        cs["ts_io"] = rng.integers(5, 5000, k)
        out.append(hdr.tobytes() + cs.tobytes())
    return out


def _put_u64(buf: np.ndarray, pos: np.ndarray, val: np.ndarray) -> None:
    """Store little-endian u64 ``val`` at (unaligned) byte offsets ``pos``."""
    v = val.astype(np.uint64)
    for j in range(8):
        buf[pos + j] = ((v >> np.uint64(8 * j)) & np.uint64(0xFF)).astype(np.uint8)


def _block(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One block of BLOCK_RECORDS records: (bytes, record offsets, iotimes mask)."""
    texts = _text_pool(rng, 512)
    iots = _iotimes_pool(rng, 128)
    is_iot = rng.random(BLOCK_RECORDS) >= TEXT_SHARE
    pick = np.where(is_iot, rng.integers(0, len(iots), BLOCK_RECORDS),
                    rng.integers(0, len(texts), BLOCK_RECORDS))
    payloads = [iots[k] if io else texts[k] for k, io in zip(pick.tolist(), is_iot.tolist(),
                                                             strict=True)]
    hdr = np.zeros(BLOCK_RECORDS, L.HEADER_DTYPE)
    hdr["magic"] = L.MAGIC
    hdr["type"] = np.where(is_iot, L.TYPE_IOTIMES, L.TYPE_TEXT)
    hdr["pdu_len"] = [len(p) for p in payloads]
    hb = hdr.tobytes()
    h = L.HEADER_SIZE
    blob = b"".join(hb[i * h:(i + 1) * h] + p for i, p in enumerate(payloads))
    sizes = h + hdr["pdu_len"].astype(np.int64)
    offs = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return np.frombuffer(blob, np.uint8), offs, is_iot


def gen_cpu(rng: np.random.Generator, n: int, t_start: np.ndarray) -> np.ndarray:
    """The stream of one CPU: ``n`` records at times ``t_start`` (len n, increasing)."""
    block, offs, is_iot = _block(rng)
    reps = -(-n // BLOCK_RECORDS)
    data = np.tile(block, reps)
    offs = (offs[None, :] + (np.arange(reps) * len(block))[:, None]).reshape(-1)[:n]
    is_iot = np.tile(is_iot, reps)[:n]
    end = int(offs[-1]) + L.HEADER_SIZE + int(
        data[offs[-1] + 4]) + (int(data[offs[-1] + 5]) << 8) if n else 0
    data = data[:end]
    _put_u64(data, offs + L.field_offsets(L.TraceHeader)["time"], t_start)
    # iotimes start_time = time - lat - local_delay, as the kernel computes it.
    io = offs[is_iot] + L.HEADER_SIZE
    iot = L.field_offsets(L.IotimesHeader)
    lat = data[io[:, None] + iot["lat"] + np.arange(4)].astype(np.uint64)
    dly = data[io[:, None] + iot["local_delay"] + np.arange(4)].astype(np.uint64)
    w = np.uint64(1) << (np.arange(4, dtype=np.uint64) * np.uint64(8))
    _put_u64(data, io + iot["start_time"], t_start[is_iot] - (lat @ w) - (dly @ w))
    return data


def write_dump(out: Path, records: int, cpus: int = 4, seed: int = 1) -> int:
    """Write ``records`` records over ``cpus`` trace files + metadata; returns bytes written."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("trace*"):
        old.unlink()
    rng = np.random.default_rng(seed)
    # One global clock: every record gets a time 0..7 us after the previous
    # one, then records are dealt to CPUs at random (the CPUs interleave).
    times = T0_US + np.cumsum(rng.integers(0, 8, records, dtype=np.int64))
    owner = rng.integers(0, cpus, records)
    total = 0
    for cpu in range(cpus):
        t = times[owner == cpu]
        data = gen_cpu(np.random.default_rng([seed, cpu]), len(t), t)
        data.tofile(out / f"trace{cpu}")
        total += data.size
    shutil.copyfile(TSDL, out / "metadata")
    return total


def avg_record_size(seed: int = 1) -> float:
    """Mean bytes per record of the generated mix (to size a dump in bytes)."""
    block, _, _ = _block(np.random.default_rng([seed, 0]))
    return block.size / BLOCK_RECORDS


def write_garbage(out: Path, size: int, seed: int = 2) -> None:
    """One ``trace0`` of ``size`` random bytes: no records, all damage."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("trace*"):
        old.unlink()
    np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tofile(out / "trace0")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="dump directory to (re)write")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--records", type=int, default=1_000_000, help="valid records in all")
    g.add_argument("--bytes", type=int, help="about this many bytes of valid records")
    g.add_argument("--garbage", type=int, metavar="BYTES", help="random bytes instead")
    ap.add_argument("--cpus", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    if a.garbage is not None:
        write_garbage(a.out, a.garbage, a.seed)
        print(f"{a.out}: {a.garbage} bytes of garbage")
        return 0
    n = a.records if a.bytes is None else int(a.bytes / avg_record_size(a.seed))
    size = write_dump(a.out, n, a.cpus, a.seed)
    print(f"{a.out}: {n} records, {size} bytes, {a.cpus} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
