"""TUI benchmark: launch to first screen, and filter latency, on a big dump.

    python tests/benchmarks/tui_bench.py --records 10000000

Builds fixed-size text records with numpy (every 7th a match), then measures
(1) decode + analyse + first screen shown, (2) one filter over the whole
stream, (3) jumping to the last record.  Prints seconds and records/s.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from ktrace_decode.formats import layouts as L
from ktrace_decode.tui import create_app


def make_dump(d: Path, n: int) -> None:
    plain = L.build_record(L.TYPE_TEXT, 0, L.text_payload("fn: ordinary line 0000000"))
    needle = L.build_record(L.TYPE_TEXT, 0, L.text_payload("fn: needle in line 000000"))
    size = len(plain)
    rows = np.frombuffer(plain * n, np.uint8).reshape(n, size).copy()
    rows[::7] = np.frombuffer(needle, np.uint8)
    times = (5_000_000_000 + np.arange(n, dtype=np.uint64) * 3).astype("<u8")
    rows[:, 8:16] = times.view(np.uint8).reshape(n, 8)
    d.mkdir(parents=True, exist_ok=True)
    (d / "trace0").write_bytes(rows.tobytes())


async def measure(d: Path, n: int) -> None:
    t0 = time.perf_counter()
    app = create_app(d)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        t_first = time.perf_counter()
        await pilot.press("slash")
        app.query_one("#filter").value = "needle"  # typing speed is not what we measure
        t1 = time.perf_counter()
        await pilot.press("enter")
        await pilot.pause()
        t2 = time.perf_counter()
        await pilot.press("end")
        await pilot.pause()
        t3 = time.perf_counter()
        status = str(app.query_one("#events-status").render())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"records                     {n:,}")
    print(f"launch to first screen      {t_first - t0:8.2f} s  "
          f"({n / (t_first - t0) / 1e6:.2f} M records/s)")
    print(f"filter 'needle'             {t2 - t1:8.2f} s  ({status})")
    print(f"jump to the last record     {t3 - t2:8.3f} s")
    print(f"peak RSS                    {rss:8.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=10_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "dump"
        make_dump(d, args.records)
        asyncio.run(measure(d, args.records))


if __name__ == "__main__":
    main()
