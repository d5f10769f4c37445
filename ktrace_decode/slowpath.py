"""The checked slow path: decode with construct, one record and one byte at a time.

This is the reference the fast path (:mod:`.scan` + :mod:`.records`) is tested
against, field for field.  It implements the same plausibility and resync
rules (documented in :mod:`.scan`) in the most direct way possible, so that a
shortcut taken by the vectorised code shows up as a disagreement.  It is ~100x
slower; never use it on big dumps.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from construct import ConstructError, Container

from . import schema
from .formats import layouts as L
from .scan import CONFIRMING_RECORDS, RECENT_RECORDS, STALE_TOLERANCE_US, TIME_LIMIT, Skip

_H = L.HEADER_SIZE


def _parse(data: bytes, pos: int, end: int) -> Any | None:
    if end - pos < _H:
        return None
    try:
        hdr = L.TraceHeader.parse(data[pos:pos + _H])
    except ConstructError:
        return None
    if pos + _H + hdr.pdu_len > end:
        return None
    try:
        return L.Record.parse(data[pos:pos + _H + hdr.pdu_len])
    except ConstructError:
        # e.g. an iotimes payload shorter than its 56-byte header
        return Container(header=hdr, payload=None)


def _known_ok(rec: Any, resync: bool) -> bool:
    h = rec.header
    if h.time >= TIME_LIMIT:
        return False
    if h.type == L.TYPE_TEXT:
        raw = rec.payload.raw
        return h.pdu_len > 0 and (raw[-1] == 0 or (h.pdu_len > L.KTRACE_LOG_BUF_SIZE
                                                   and raw[L.KTRACE_LOG_BUF_SIZE - 1] == 0))
    if h.type == L.TYPE_IOTIMES:
        if rec.payload is None:
            return False
        body = h.pdu_len - L.IOTIMES_HEADER_SIZE
        if body < 0 or body % L.IOTIMES_CS_SIZE:
            return False
        return not resync or rec.payload.hdr.cses == body // L.IOTIMES_CS_SIZE
    return False


def _acceptable(data: bytes, pos: int, end: int, resync: bool) -> Any | None:
    rec = _parse(data, pos, end)
    if rec is None:
        return None
    if rec.header.type in L.KNOWN_TYPES:
        return rec if _known_ok(rec, resync) else None
    if resync or rec.header.time >= TIME_LIMIT:
        return None
    nxt = pos + _H + rec.header.pdu_len
    if nxt == end:
        return rec
    succ = _parse(data, nxt, end)
    return rec if succ is not None and succ.header.type in L.KNOWN_TYPES and _known_ok(
        succ, False) else None


def walk(data: bytes, start: int, end: int, raw_subbuf: bool = False
         ) -> tuple[list[tuple[int, Any, bool]], list[Skip], int, int]:
    """Records (offset, parsed, resynced), skips, padding bytes, stale bytes."""
    out: list[tuple[int, Any, bool]] = []
    skips: list[Skip] = []
    padding = stale = 0
    pos = start
    first: int | None = None
    last: int | None = None
    recent: list[int] = []
    resynced = False
    while pos < end:
        rec = _acceptable(data, pos, end, False)
        if rec is not None and (not raw_subbuf or first is None or rec.header.time >= first):
            out.append((pos, rec, resynced))
            resynced = False
            first = rec.header.time if first is None else first
            recent = [*recent, rec.header.time][-RECENT_RECORDS:]
            last = min(recent)
            pos += _H + rec.header.pdu_len
            continue
        floor = first if raw_subbuf else (None if last is None else last - STALE_TOLERANCE_US)
        q = _resync(data, pos, end, floor)
        if q >= end and not raw_subbuf and floor is not None and len(recent) < CONFIRMING_RECORDS:
            # A floor set by one record only counts if a later candidate
            # confirms it; none did: that record's time was the damaged one.
            q = _resync(data, pos, end, None)
        if q >= end:
            seg = data[pos:end]
            if raw_subbuf and (first is not None or not any(seg)):
                padding += end - pos
                stale += sum(1 for b in seg if b)
            else:
                skips.extend(_tail(data, pos, end))
            break
        skips.append(Skip(pos, q, "garbage"))
        resynced = True
        pos = q
    return out, skips, padding, stale


def _resync(data: bytes, pos: int, end: int, floor: int | None) -> int:
    """The first plausible resync header after ``pos`` not older than ``floor`` (or ``end``)."""
    q = pos + 1
    while q < end:
        cand = _acceptable(data, q, end, True)
        if cand is not None and (floor is None or cand.header.time >= floor):
            return q
        q += 1
    return end


def _tail(data: bytes, pos: int, end: int) -> list[Skip]:
    magic = L.MAGIC.to_bytes(2, "little")
    for m in range(pos, end):
        is_magic = data[m:m + 2] == magic or (m == end - 1 and data[m] == magic[0])
        if is_magic and (m + _H > end
                         or m + _H + int.from_bytes(data[m + 4:m + 6], "little") > end):
            return ([Skip(pos, m, "garbage")] if m > pos else []) + [Skip(m, end, "truncated")]
    return [Skip(pos, end, "garbage")]


def _text(rec: Any) -> str:
    pdu = rec.header.pdu_len
    n = L.KTRACE_LOG_BUF_SIZE - 1 if pdu > L.KTRACE_LOG_BUF_SIZE else pdu - 1
    s = rec.payload.raw[:n].decode("utf-8", "replace").split("\0", 1)[0]
    return s[:-1] if s.endswith("\n") else s


def decode_bytes(data: bytes, cpu: int = 0, layout: str = "stream",
                 subbuf_size: int = L.RELAY_SUBBUF_SIZE
                 ) -> tuple[pl.DataFrame, pl.DataFrame, list[Skip]]:
    """Records (schema.RECORDS, seq order), cs entries and skips of one file."""
    if layout == "raw":
        parts = []
        skips: list[Skip] = []
        for slot in range(len(data) // subbuf_size):
            recs, sk, _, _ = walk(data, slot * subbuf_size, (slot + 1) * subbuf_size, True)
            skips += sk
            if recs:
                parts.append((recs[0][1].header.time, slot, recs))
        found = [r for _, _, recs in sorted(parts, key=lambda p: (p[0], p[1])) for r in recs]
    else:
        found, skips, _, _ = walk(data, 0, len(data))
    rows: list[dict[str, Any]] = []
    cs_rows: list[dict[str, Any]] = []
    prev_time: int | None = None
    for seq, (off, rec, resynced) in enumerate(found):
        h = rec.header
        row: dict[str, Any] = {
            "cpu": cpu, "seq": seq, "offset": off, "time_us": h.time, "type": h.type,
            "ovfl": h.ovfl, "pdu_len": h.pdu_len, "text": None,
            "long_text": h.type == L.TYPE_TEXT and h.pdu_len > L.KTRACE_LOG_BUF_SIZE,
            "unknown_type": h.type not in L.KNOWN_TYPES, "resynced": resynced,
            "time_backwards": prev_time is not None and h.time < prev_time, "payload": None,
            "n_cs": None,
        }
        prev_time = h.time
        for name in ("chunk", "offset", "size", "start_time", "local_delay", "lat", "ino",
                     "type", "cses"):
            row["io_" + name] = None
        row["io_chid"] = None
        if h.type == L.TYPE_TEXT:
            row["text"] = _text(rec)
        elif h.type == L.TYPE_IOTIMES:
            io = rec.payload.hdr
            for name in ("chunk", "offset", "size", "start_time", "local_delay", "lat", "ino",
                         "type", "cses"):
                row["io_" + name] = io[name]
            row["io_chid"] = io.pad1
            row["n_cs"] = len(rec.payload.cs)
            for i, e in enumerate(rec.payload.cs):
                cs_rows.append({"cpu": cpu, "seq": seq, "idx": i, "csid": e.csid,
                                "misc": e.misc, "ts_net": e.ts_net, "ts_io": e.ts_io})
        else:
            row["payload"] = rec.payload
        rows.append(row)
    recs_df = pl.DataFrame(rows, schema=schema.RECORDS) if rows else schema.empty(schema.RECORDS)
    cs_df = pl.DataFrame(cs_rows, schema=schema.CS) if cs_rows else schema.empty(schema.CS)
    return recs_df, cs_df, skips
