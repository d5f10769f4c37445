"""Valid dumps, damage with provenance, and the oracle of what must survive it.

A :class:`Damaged` buffer carries, for every byte, where it came from: its
global position in the clean source streams (``origin``), or -1 when the
damage made it (inserted garbage, flipped / zeroed / overwritten bytes).  An
*intact occurrence* of an original record is a place where all of its bytes
sit in the damaged buffer contiguously and unmodified, whatever happened
around them; a record whose bytes appear twice (duplication) has two.

Clean streams come from the reference emitter (``ktrace_decode.emit``) when it
is installed, and from the hand builders of ``tests/helpers.py`` as well (or
only, without the emitter); their ground truth is the emitter's own record
table, or the construct slow path for the builders.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
from hypothesis import strategies as st

from helpers import iot_rec, text_rec
from ktrace_decode import slowpath
from ktrace_decode.formats import layouts as L
from ktrace_decode.scan import STALE_TOLERANCE_US

try:  # the emitter landed after these tests were first written
    from ktrace_decode.emit import Scenario, emit
except ImportError:  # pragma: no cover - depends on the tree
    emit = None  # type: ignore[assignment]

MAGIC = L.MAGIC.to_bytes(2, "little")
#: Global positions of the second CPU's bytes start here (splices mix two CPUs).
SOURCE_B = 1 << 40

#: Fields that identify a record independently of where the decoder found it
#: (offset, seq, resynced and time_backwards depend on the neighbourhood).
FIELDS = ["time_us", "type", "ovfl", "pdu_len", "text", "io_chunk", "io_offset", "io_size",
          "io_start_time", "io_local_delay", "io_lat", "io_ino", "io_type", "io_cses",
          "io_chid", "n_cs", "long_text", "unknown_type", "payload"]
CS_FIELDS = ["csid", "misc", "ts_net", "ts_io"]


@dataclass
class Source:
    """One clean per-CPU stream and its ground truth (records by offset, cs by seq)."""

    data: bytes
    truth: pl.DataFrame  # schema.RECORDS rows of this CPU, offset = position in data
    cs: pl.DataFrame  # schema.CS rows of this CPU
    base: int = 0  # global position of data[0]
    origin_kind: str = "emitter"

    def records(self) -> list[tuple[int, int, dict]]:
        """(global start, length, truth row) of every record."""
        out = []
        for row in self.truth.iter_rows(named=True):
            out.append((self.base + row["offset"], L.HEADER_SIZE + row["pdu_len"], row))
        return out

    def cs_of(self, seq: int) -> list[tuple]:
        rows = self.cs.filter(pl.col("seq") == seq).sort("idx")
        return rows.select(CS_FIELDS).rows()


@dataclass
class Damaged:
    """A byte buffer with per-byte provenance (see the module docstring)."""

    data: bytearray
    origin: np.ndarray  # int64
    ops: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, src: Source) -> Damaged:
        return cls(bytearray(src.data), np.arange(len(src.data), dtype=np.int64) + src.base)

    def __len__(self) -> int:
        return len(self.data)

    # --- the damage operations -------------------------------------------
    def flip(self, pos: int, mask: int) -> None:
        assert mask
        self.data[pos] ^= mask
        self.origin[pos] = -1
        self.ops.append(f"flip({pos}, {mask:#x})")

    def cut(self, a: int, b: int) -> None:
        del self.data[a:b]
        self.origin = np.delete(self.origin, np.s_[a:b])
        self.ops.append(f"cut({a}, {b})")

    def insert(self, pos: int, blob: bytes, what: str = "insert") -> None:
        self.data[pos:pos] = blob
        self.origin = np.insert(self.origin, pos, np.full(len(blob), -1, np.int64))
        self.ops.append(f"{what}({pos}, {blob.hex()})")

    def overwrite(self, pos: int, blob: bytes, what: str = "overwrite") -> None:
        blob = blob[: len(self.data) - pos]
        old = bytes(self.data[pos:pos + len(blob)])
        self.data[pos:pos + len(blob)] = blob
        changed = np.frombuffer(old, np.uint8) != np.frombuffer(blob, np.uint8)
        self.origin[pos:pos + len(blob)][changed] = -1
        self.ops.append(f"{what}({pos}, {blob.hex()})")

    def zero(self, a: int, b: int) -> None:
        self.overwrite(a, bytes(b - a), "zero")

    def duplicate(self, a: int, b: int, at: int) -> None:
        blob, org = bytes(self.data[a:b]), self.origin[a:b].copy()
        self.data[at:at] = blob
        self.origin = np.insert(self.origin, at, org)
        self.ops.append(f"duplicate({a}, {b}, at={at})")

    def splice(self, a: int, other: Source, b: int) -> None:
        """This buffer up to ``a``, then the other CPU's stream from ``b`` on."""
        self.data = self.data[:a] + bytearray(other.data[b:])
        self.origin = np.concatenate(
            [self.origin[:a], np.arange(b, len(other.data), dtype=np.int64) + other.base])
        self.ops.append(f"splice({a}, other from {b})")

    # --- the oracle -------------------------------------------------------
    def intact(self, sources: list[Source]) -> list[tuple[int, int, dict, Source]]:
        """(offset, length, truth row, source) of every intact occurrence, by offset."""
        out = []
        for src in sources:
            for g, n, row in src.records():
                for k in np.flatnonzero(self.origin == g).tolist():
                    seg = self.origin[k:k + n]
                    if len(seg) == n and (seg == np.arange(g, g + n)).all():
                        out.append((k, n, row, src))
        out.sort(key=lambda t: t[0])
        return out

    def scrub(self, sources: list[Source]) -> None:
        """Turn every ``9c f5`` that starts outside an intact record into ``00 f5``
        (only damaged bytes change, so the intact occurrences stay the same)."""
        inside = np.zeros(len(self.data), bool)
        for k, n, _, _ in self.intact(sources):
            inside[k:k + n] = True
        buf = np.frombuffer(bytes(self.data), np.uint8)
        hits = np.flatnonzero((buf[:-1] == MAGIC[0]) & (buf[1:] == MAGIC[1]))
        for k in hits.tolist():
            if not inside[k]:
                self.data[k] = 0
                self.origin[k] = -1
        if hits.size:
            self.ops.append("scrub")


# --- clean streams -------------------------------------------------------------

def _builder_stream(draw: st.DrawFn, t0: int, base: int) -> Source:
    """A stream from the hand builders: text (non-ASCII too) and iotimes, ovfl values."""
    n = draw(st.integers(1, 16))
    t = t0
    recs = []
    for _ in range(n):
        t += draw(st.integers(0, 20_000))
        if draw(st.integers(0, 3)) == 0:
            recs.append(iot_rec(t, ino=draw(st.integers(0, (1 << 64) - 1)),
                                n_cs=draw(st.integers(0, 3)), ovfl=draw(st.integers(0, 65535))))
        else:
            body = draw(st.text(st.characters(blacklist_characters="\0",
                                              blacklist_categories=("Cs",)), max_size=40))
            recs.append(text_rec(t, "fn: " + body, ovfl=draw(st.sampled_from([0, 0, 1, 65535]))))
    data = b"".join(recs)
    truth, cs, skips = slowpath.decode_bytes(data)
    assert not skips and truth.height == n
    return Source(data, truth, cs, base, "builders")


@st.composite
def cpu_pair(draw: st.DrawFn) -> tuple[Source, Source]:
    """Two clean per-CPU streams of one dump, all times within 0.5 s (< STALE_TOLERANCE_US)."""
    kinds = ["builders"] + (["emitter", "emitter"] if emit is not None else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "builders":
        t0 = draw(st.integers(0, 1 << 40))
        a, b = _builder_stream(draw, t0, 0), _builder_stream(draw, t0, SOURCE_B)
    else:
        sc = Scenario(seed=draw(st.integers(0, 1 << 16)), cpus=2,
                      duration_ms=draw(st.sampled_from([5.0, 20.0, 40.0])),
                      background_text_rate=draw(st.sampled_from([200.0, 800.0])),
                      iotimes_rate=draw(st.sampled_from([0.0, 300.0])),
                      long_message_rate=draw(st.sampled_from([0.0, 0.2])),
                      invalidation_rate=400.0)
        res = emit(sc, layout="stream")
        pair = []
        for cpu, base in zip(sorted(res.files)[:2], (0, SOURCE_B), strict=False):
            recs = res.records.filter(pl.col("cpu") == cpu).sort("seq")
            pair.append(Source(res.files[cpu], recs, res.cs.filter(pl.col("cpu") == cpu), base))
        a, b = pair
    for s in (a, b):
        if s.truth.height:
            span = s.truth["time_us"].max() - s.truth["time_us"].min()  # type: ignore[operator]
            assert span < STALE_TOLERANCE_US // 2
    return a, b


# --- damage --------------------------------------------------------------------

OPS = ("flip", "cut", "truncate", "insert", "insert_fake", "zero", "overwrite", "duplicate",
       "splice")


def fake_record(draw: st.DrawFn, t: int) -> bytes:
    """Garbage that passes every plausibility check: a text header and a NUL-ended payload."""
    body = draw(st.binary(min_size=0, max_size=80)).replace(b"\0", b"x")
    pdu = len(body) + 1
    hdr = MAGIC + L.TYPE_TEXT.to_bytes(2, "little") + pdu.to_bytes(2, "little") + bytes(2)
    return hdr + t.to_bytes(8, "little") + body + b"\0"


def apply_damage(draw: st.DrawFn, a: Source, b: Source, max_ops: int = 4,
                 ops: tuple[str, ...] = OPS) -> Damaged:
    d = Damaged.of(a)
    spliced = False
    t_mid = int(a.truth["time_us"].min()) if a.truth.height else 1000  # type: ignore[arg-type]
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(ops))
        n = len(d)
        if n == 0:
            d.insert(0, draw(st.binary(min_size=1, max_size=40)))
            continue
        pos = draw(st.integers(0, n - 1))
        if op == "flip":
            d.flip(pos, draw(st.integers(1, 255)))
        elif op == "cut":
            d.cut(pos, min(n, pos + draw(st.integers(1, 64))))
        elif op == "truncate":
            d.cut(pos, n)
        elif op == "insert":
            d.insert(draw(st.integers(0, n)), draw(st.binary(min_size=1, max_size=64)))
        elif op == "insert_fake":
            d.insert(draw(st.integers(0, n)), fake_record(draw, t_mid), "insert_fake")
        elif op == "zero":
            d.zero(pos, min(n, pos + draw(st.integers(1, 64))))
        elif op == "overwrite":
            d.overwrite(pos, draw(st.binary(min_size=1, max_size=64)))
        elif op == "duplicate":
            end = min(n, pos + draw(st.integers(1, 400)))
            d.duplicate(pos, end, draw(st.integers(0, n)))
        elif op == "splice" and not spliced and len(b.data):
            d.splice(pos, b, draw(st.integers(0, len(b.data) - 1)))
            spliced = True
    return d


@st.composite
def damaged_dumps(draw: st.DrawFn, scrub: bool = False,
                  ops: tuple[str, ...] = OPS) -> tuple[Damaged, list[Source]]:
    """A clean CPU stream (plus a second CPU for splices) with 1-4 damage operations."""
    a, b = draw(cpu_pair())
    d = apply_damage(draw, a, b, ops=ops)
    if scrub:
        d.scrub([a, b])
    return d, [a, b]
