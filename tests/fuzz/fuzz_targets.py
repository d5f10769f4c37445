"""What the coverage-guided fuzzer checks, for any input bytes (no atheris needed here).

:func:`one_input` is the libFuzzer entry point (``fuzz_decode.py`` runs it
under atheris); the test suite also replays the corpus through it.  The first
byte picks the target, the rest is its input:

- ``0, 1`` -> one per-CPU file in the *stream* layout: decoding never raises;
  records and skips tile the buffer exactly; inputs up to 4 KiB are also
  decoded by the construct slow path, which must agree field for field
  (records, chunk-server entries, skips); a second decode with a tiny scan
  chunk gives the same result;
- ``2`` -> a *raw* ring image, sub-buffer size from the next byte
  (64..16384): never raises; records + skipped + padding = size; fast = slow;
- ``3`` -> an *archive* (tar / tar.gz / ...): :func:`open_dump` and decoding
  raise nothing but :class:`KtraceError` (with small limits, so bombs are cheap).

Any other exception or a failed assertion is a crash (libFuzzer saves the input).
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from ktrace_decode import slowpath
from ktrace_decode.decode import decode_dump, decode_source, scan_parts
from ktrace_decode.errors import KtraceError
from ktrace_decode.formats import layouts as L
from ktrace_decode.records import records_frame
from ktrace_decode.sources import Limits, TraceSource, open_dump

SLOW_MAX = 4096
LIMITS = Limits(max_member_bytes=1 << 20, max_trace_bytes=4 << 20, max_stream_bytes=8 << 20,
                max_members=1000, max_header_bytes=1 << 16)
_TMP = Path(tempfile.gettempdir()) / f"ktrace-fuzz-{os.getpid()}"


def _src(data: bytes) -> TraceSource:
    return TraceSource(0, "fuzz", np.frombuffer(data, np.uint8))


def _stream(data: bytes) -> None:
    recs, cs, rep = decode_source(_src(data), "stream")
    pos = 0
    pieces = sorted([(int(o), int(o) + L.HEADER_SIZE + int(p), "record")
                     for o, p in zip(recs["offset"], recs["pdu_len"], strict=True)]
                    + [(s.start, s.end, s.kind) for s in rep.skips])
    for a, b, _ in pieces:
        assert a == pos and b > a, (pos, pieces)
        pos = b
    assert pos == len(data)
    parts = list(scan_parts(_src(data), "stream", chunk=37))
    if parts:
        assert records_frame(parts).equals(recs)
    if len(data) <= SLOW_MAX:
        slow, scs, skips = slowpath.decode_bytes(data)
        assert recs.equals(slow), "fast and slow paths disagree on records"
        assert cs.equals(scs), "fast and slow paths disagree on cs entries"
        assert [(s.start, s.end, s.kind) for s in rep.skips] == [
            (s.start, s.end, s.kind) for s in skips]


def _raw(data: bytes) -> None:
    if not data:
        return
    size = 64 << (data[0] % 9)  # 64 .. 16384
    img = data[1:]
    n = max(1, len(img) // size)
    img = (img + bytes(size))[: n * size]
    recs, cs, rep = decode_source(_src(img), "raw", subbuf_size=size, n_subbufs=n)
    used = int((recs["pdu_len"].cast(int) + L.HEADER_SIZE).sum()) if recs.height else 0
    assert used + rep.skipped_bytes + rep.padding_bytes == len(img)
    if len(img) <= 4 * SLOW_MAX:
        slow, scs, skips = slowpath.decode_bytes(img, layout="raw", subbuf_size=size)
        assert recs.equals(slow) and cs.equals(scs)
        assert [(s.start, s.end) for s in rep.skips] == [(s.start, s.end) for s in skips]


def _archive(data: bytes) -> None:
    _TMP.mkdir(exist_ok=True)
    p = _TMP / "input.tar"
    p.write_bytes(data)
    try:
        decode_dump(open_dump(p, LIMITS))
    except KtraceError as e:
        assert "\n" not in str(e)


def one_input(data: bytes) -> None:
    if not data:
        return
    sel, body = data[0] % 4, data[1:]
    if sel in (0, 1):
        _stream(body)
    elif sel == 2:
        _raw(body)
    else:
        _archive(body)


def seeds() -> dict[str, bytes]:
    """Starting inputs: valid streams, a raw image, archives (the first byte picks)."""
    recs = [L.build_record(L.TYPE_TEXT, 5_000_000 + i, L.text_payload(f"fuse_open: rec {i}"))
            for i in range(6)]
    iot = L.build_record(L.TYPE_IOTIMES, 5_000_100, L.iotimes_payload(
        dict(chunk=1, offset=2, size=4096, start_time=4_999_000, local_delay=3, lat=40, ino=7,
             type=257), [dict(csid=1025, misc=1 << 63, ts_net=10, ts_io=20)]))
    stream = b"".join(recs[:3]) + iot + b"".join(recs[3:])
    raw = (stream[:200] + bytes(56)) + (stream[200:] + bytes(256))[:256]
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w") as tf:
        for name, blob in (("dump/trace0", stream), ("dump/trace1", b"".join(recs[:2])),
                           ("dump/prometheus", bytes(64))):
            ti = tarfile.TarInfo(name)
            ti.size = len(blob)
            tf.addfile(ti, io.BytesIO(blob))
    tar = bio.getvalue()
    bio = io.BytesIO()
    with gzip.GzipFile(fileobj=bio, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tf:
        ti = tarfile.TarInfo("d/trace0")
        ti.size = len(stream)
        tf.addfile(ti, io.BytesIO(stream))
    return {"stream": b"\x00" + stream, "stream-damaged": b"\x01" + stream[:50] + b"\xee" * 7
            + stream[50:-9], "raw": b"\x02\x02" + raw, "tar": b"\x03" + tar,
            "tar-gz": b"\x03" + bio.getvalue()}
