"""Small builders shared by the tests (records by hand, through formats/)."""

from __future__ import annotations

import numpy as np

from ktrace_decode.decode import decode_source
from ktrace_decode.formats import layouts as L
from ktrace_decode.formats import messages as M
from ktrace_decode.sources import TraceSource


def text_rec(t: int, text: str, ovfl: int = 0) -> bytes:
    return L.build_record(L.TYPE_TEXT, t, L.text_payload(text), ovfl)


def iot_rec(t: int, ino: int = 7, n_cs: int = 1, ovfl: int = 0) -> bytes:
    hdr = dict(chunk=1 << 20, offset=(1 << 20) + 4096, size=4096, start_time=max(t - 50, 0),
               local_delay=3, lat=40, ino=ino, type=257)
    cs = [dict(csid=1000 + i, misc=(1 << 63) | i, ts_net=10 + i, ts_io=20 + i)
          for i in range(n_cs)]
    return L.build_record(L.TYPE_IOTIMES, t, L.iotimes_payload(hdr, cs), ovfl)


def start_rec(t: int, nodeid: int) -> bytes:
    msg = M.BY_EVENT["start"]
    return text_rec(t, M.render(msg, nodeid=nodeid - msg.nodeid_offset))


def sample_stream(n: int = 12, t0: int = 5_000_000) -> list[bytes]:
    """A mix of text and iotimes records, 10 us apart."""
    out = []
    for i in range(n):
        t = t0 + 10 * i
        out.append(iot_rec(t, ino=i, n_cs=i % 3) if i % 4 == 3 else start_rec(t, 100 + i))
    return out


def decode_bytes(data: bytes, layout: str = "stream", cpu: int = 0, **kw):
    """Fast-path decode of one buffer: (records, cs, report)."""
    return decode_source(TraceSource(cpu, "mem", np.frombuffer(data, np.uint8)), layout, **kw)
