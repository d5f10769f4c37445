"""Binary layouts of a ktrace dump, declared once with construct.

Every byte-level fact the decoder, the emitter and the docs use comes from
here.  The fast decoder does not parse with construct (it is ~50x too slow per
record); it reads the same fields through numpy structured dtypes that are
*derived* from these declarations by :func:`numpy_dtype`, so a field moved here
moves everywhere.

Sources: ``fs/fuse/kio/pcs/fuse_ktrace_prot.h`` (record header, iotimes) and
``kernel/relay.c`` (sub-buffer semantics), as summarised in
``shared/spec/ktrace-format.md`` sections 2-4.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from construct import (
    Const,
    Construct,
    FixedSized,
    FormatField,
    GreedyBytes,
    GreedyRange,
    Int8ul,
    Int16ul,
    Int32ul,
    Int64ul,
    Renamed,
    Struct,
    Subconstruct,
    Switch,
    this,
)

#: ``FUSE_TRACE_MAGIC``: the first two bytes of every record (``9c f5`` on disk).
MAGIC = 0xF59C
#: Record types defined by the kernel today.
TYPE_TEXT = 1
TYPE_IOTIMES = 2
KNOWN_TYPES = (TYPE_TEXT, TYPE_IOTIMES)
TYPE_NAMES = {TYPE_TEXT: "text", TYPE_IOTIMES: "iotimes"}

#: ``KTRACE_LOG_BUF_SIZE``: the per-CPU vsnprintf buffer.  A message of this
#: length or more is truncated to 255 chars + NUL, but the kernel still copies
#: ``len + 1`` bytes (the untruncated length), so ``pdu_len`` > 256 means the
#: bytes after the first NUL are unrelated kernel memory.
KTRACE_LOG_BUF_SIZE = 256

#: relay channel geometry used by the pcs module (per CPU).
RELAY_SUBBUF_SIZE = 524288
RELAY_N_SUBBUFS = 4

#: ``ovfl`` is the 16-bit truncation of a 64-bit per-CPU drop counter.
OVFL_MODULUS = 1 << 16

# --- struct fuse_trace_hdr (16 bytes, packed, little-endian) -----------------
TraceHeader = Struct(
    "magic" / Const(MAGIC, Int16ul),
    "type" / Int16ul,
    "pdu_len" / Int16ul,
    "ovfl" / Int16ul,
    "time" / Int64ul,  # ktime_get() in microseconds, same clock on every CPU
)

# --- type 1: text --------------------------------------------------------------
#: ``"<function>: <message>"`` then NUL; pdu_len = strlen + 1 (see the
#: long-message note above for pdu_len > 256).
TextPayload = Struct("raw" / GreedyBytes)

# --- type 2: struct fuse_tr_iotimes_hdr (56 bytes) + n x fuse_tr_iotimes_cs ---
IotimesHeader = Struct(
    "chunk" / Int64ul,  # byte offset of the chunk in the file
    "offset" / Int64ul,  # absolute file offset (0 for sync)
    "size" / Int64ul,  # bytes (0 for sync)
    "start_time" / Int64ul,  # request creation, us, same clock as the header
    "local_delay" / Int32ul,  # us from creation to send
    "lat" / Int32ul,  # us from send to the trace time
    "ino" / Int64ul,  # PCS file id (kernel nodeid - 1, inferred)
    "type" / Int16ul,  # chunk-server response type, see IOTIMES_REQUEST_TYPES
    "cses" / Int8ul,  # number of entries (== n in every producer seen)
    "pad" / Int8ul,  # may hold stale bytes
    "pad1" / Int32ul,  # newer code stores a map id here (inferred)
)

IotimesCs = Struct(
    "csid" / Int64ul,
    "misc" / Int64ul,  # bit 63 cached, 62 sequential, 60 sync; low 52 bits a timestamp
    "ts_net" / Int32ul,  # us in the network
    "ts_io" / Int32ul,  # us in local IO on that chunk server
)

#: The entry count follows pdu_len, not ``cses``: n = (pdu_len - 56) / 24.
IotimesPayload = Struct(
    "hdr" / IotimesHeader,
    "cs" / GreedyRange(IotimesCs),
)

#: One whole record.  The payload is cut to exactly pdu_len bytes, so an
#: unknown type keeps its raw bytes and a short iotimes payload cannot read
#: into the next record.
Record = Struct(
    "header" / TraceHeader,
    "payload"
    / FixedSized(
        this.header.pdu_len,
        Switch(
            this.header.type,
            {TYPE_TEXT: TextPayload, TYPE_IOTIMES: IotimesPayload},
            default=GreedyBytes,
        ),
    ),
)

HEADER_SIZE = TraceHeader.sizeof()
IOTIMES_HEADER_SIZE = IotimesHeader.sizeof()
IOTIMES_CS_SIZE = IotimesCs.sizeof()

#: iotimes ``type``: the chunk-server response type (pcs_cs_prot.h PCS_CS_*_RESP).
IOTIMES_REQUEST_TYPES: dict[int, str] = {
    257: "read",
    259: "write",
    263: "sync",
    265: "write_sync",
    269: "write_zero",
    271: "write_hole",
    275: "fiemap",
    277: "write_al",
}

#: Flag bits of ``fuse_tr_iotimes_cs.misc``; the low 52 bits are a timestamp.
CS_MISC_CACHED = 1 << 63
CS_MISC_SEQUENTIAL = 1 << 62
CS_MISC_SYNC = 1 << 60
CS_MISC_TIME_MASK = (1 << 52) - 1


def _leaf(sub: Construct) -> Construct:
    """Strip naming/const wrappers down to the FormatField underneath."""
    while isinstance(sub, (Renamed, Const, Subconstruct)) and not isinstance(sub, FormatField):
        sub = sub.subcon
    return sub


def numpy_dtype(struct: Struct, prefix: str = "") -> np.dtype:
    """A packed numpy structured dtype with the same fields as a flat construct Struct.

    Used by the fast decoder so it reads exactly the declared layout.  Only
    fixed-width little-endian integers are allowed (that is all the kernel uses);
    anything else raises, so a layout change cannot silently desynchronise the
    two decoders.
    """
    names: list[str] = []
    formats: list[str] = []
    offsets: list[int] = []
    pos = 0
    for sub in struct.subcons:
        leaf = _leaf(sub)
        if not isinstance(leaf, FormatField) or leaf.fmtstr[0] != "<":
            raise TypeError(f"field {sub.name!r} is not a little-endian integer")
        np_fmt = "<" + {"B": "u1", "H": "u2", "I": "u4", "L": "u4", "Q": "u8"}[leaf.fmtstr[1]]
        names.append(prefix + sub.name)
        formats.append(np_fmt)
        offsets.append(pos)
        pos += leaf.sizeof()
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": pos})


HEADER_DTYPE = numpy_dtype(TraceHeader)
IOTIMES_HEADER_DTYPE = numpy_dtype(IotimesHeader)
IOTIMES_CS_DTYPE = numpy_dtype(IotimesCs)


def field_offsets(struct: Struct) -> dict[str, int]:
    """Byte offset of every field of a flat Struct (derived, for the vectorised scan)."""
    dt = numpy_dtype(struct)
    return {name: dt.fields[name][1] for name in dt.names}


def build_record(type_: int, time: int, payload: bytes, ovfl: int = 0) -> bytes:
    """Header + payload bytes of one record (checked by construct)."""
    return TraceHeader.build(
        {"type": type_, "pdu_len": len(payload), "ovfl": ovfl, "time": time}
    ) + payload


def text_payload(message: str | bytes) -> bytes:
    """Payload of a text record as the kernel writes it for a short message."""
    raw = message.encode("utf-8", "surrogateescape") if isinstance(message, str) else message
    return raw + b"\0"


def iotimes_payload(hdr: dict[str, Any], cs: list[dict[str, Any]]) -> bytes:
    """Payload of an iotimes record (``cses`` defaults to ``len(cs)``)."""
    hdr = {"pad": 0, "pad1": 0, **hdr}
    hdr.setdefault("cses", len(cs))
    return IotimesPayload.build({"hdr": hdr, "cs": cs})


__all__ = [
    "HEADER_DTYPE",
    "HEADER_SIZE",
    "IOTIMES_CS_DTYPE",
    "IOTIMES_CS_SIZE",
    "IOTIMES_HEADER_DTYPE",
    "IOTIMES_HEADER_SIZE",
    "IOTIMES_REQUEST_TYPES",
    "KNOWN_TYPES",
    "KTRACE_LOG_BUF_SIZE",
    "MAGIC",
    "OVFL_MODULUS",
    "RELAY_N_SUBBUFS",
    "RELAY_SUBBUF_SIZE",
    "TYPE_IOTIMES",
    "TYPE_NAMES",
    "TYPE_TEXT",
    "IotimesCs",
    "IotimesHeader",
    "IotimesPayload",
    "Record",
    "TextPayload",
    "TraceHeader",
    "build_record",
    "field_offsets",
    "iotimes_payload",
    "numpy_dtype",
    "text_payload",
]
