"""The message catalogue: every text trace message we understand, as data.

Each entry carries the kernel's printf format exactly as in the source (the
``"%s: "`` + ``__func__`` prefix that the trace macros add is *not* part of
``fmt``; :func:`render` and :func:`pattern` add it), the argument names in
order, and which nodeid numbering the message prints.  The decoder builds its
regular expressions from here, the emitter renders text from here, and the
README table is generated from here (``python -m ktrace_decode.formats``).

Nodeid numbering (read the patch closely): ``fuse_inval_files_work`` prints
``get_node_id() - FUSE_ROOT_ID`` to match userspace, while ``fuse_open`` and
``fuse_link_rw_file`` print the raw kernel nodeid.  ``nodeid_offset`` is what
must be *added* to the printed number to get the kernel's FUSE nodeid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

#: FUSE_ROOT_ID: the work function subtracts it from every nodeid it prints.
FUSE_ROOT_ID = 1

_PRINTF = re.compile(r"%(?P<flags>[-+ #0]*)(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d+))?"
                     r"(?P<length>hh|h|ll|l|z|j|t)?(?P<conv>[diuxXpsc%])")

#: conversion -> (regex for what it prints, field kind).  [0-9], not \d: the
#: kernel prints ASCII digits, and \d is Unicode-aware in both engines, so a
#: non-ASCII digit would match and then parse in Python but not in Polars.
_CONV: dict[str, tuple[str, str]] = {
    "d": (r"-?[0-9]+", "int"),
    "i": (r"-?[0-9]+", "int"),
    "u": (r"[0-9]+", "uint"),
    "x": (r"[0-9a-f]+", "hex"),
    "X": (r"[0-9A-F]+", "hex"),
    "p": (r"[0-9a-fx]+|\(null\)|\(ptrval\)", "ptr"),
    "s": (r".*?", "str"),
    "c": (r".", "str"),
}


@dataclass(frozen=True)
class Field:
    """One printed argument of a message."""

    name: str
    kind: str  # int | uint | hex | ptr | str
    conversion: str  # the printf conversion as written, e.g. "%llu"


@dataclass(frozen=True)
class Message:
    """One trace message the kernel can emit."""

    event: str
    function: str
    fmt: str
    args: tuple[str, ...]  # names of the printf arguments, in order
    summary: str
    origin: str = "pcs"  # "patch" for the VZ10 invalidate_files patch
    nodeid_offset: int | None = None  # printed + offset = kernel nodeid

    @property
    def fields(self) -> tuple[Field, ...]:
        """The printed fields (``*`` width/precision arguments are not printed)."""
        return _fields(self)

    @property
    def numbering(self) -> str:
        """Human name of the nodeid numbering this message prints."""
        if self.nodeid_offset is None:
            return "-"
        return "kernel nodeid" if self.nodeid_offset == 0 else "kernel nodeid - 1"


@cache
def _fields(msg: Message) -> tuple[Field, ...]:
    out: list[Field] = []
    args = iter(msg.args)
    for m in _PRINTF.finditer(msg.fmt):
        if m["conv"] == "%":
            continue
        # '*' width/precision consume an argument each, but print nothing.
        for part in (m["width"], m["prec"]):
            if part == "*":
                next(args)
        name = next(args)
        out.append(Field(name, _CONV[m["conv"]][1], m.group(0)))
    rest = list(args)
    if rest:
        raise ValueError(f"{msg.event}: more argument names than conversions: {rest}")
    return tuple(out)


# --- the catalogue ----------------------------------------------------------
_W = "fuse_inval_files_work"

CATALOGUE: tuple[Message, ...] = (
    # VZ10 patch: fs/fuse/file.c
    Message("pending", "fuse_link_rw_file",
            "fuse_file[%llu] --> invalidate_file on [%llu] pending", ("fh", "nodeid"),
            "a file opened during an invalidation was linked; its reads/writes now fail -EIO",
            origin="patch", nodeid_offset=0),
    Message("waiting", "fuse_open",
            "waiting for invalidate_file on [%llu] to complete", ("nodeid",),
            "an open blocks until the inode's INVAL_FILES bit clears (its end is the episode end)",
            origin="patch", nodeid_offset=0),
    # VZ10 patch: fs/fuse/inode.c, the work item
    Message("start", _W, "invalidate_file on [%llu] starts", ("nodeid",),
            "the work item begins one attempt on an inode (every retry prints it again)",
            origin="patch", nodeid_offset=FUSE_ROOT_ID),
    Message("write_error", _W, "filemap_write_and_wait() on [%llu] returns err=%d",
            ("nodeid", "err"),
            "write-back failed (not -EIO, still connected): retried after one jiffy",
            origin="patch", nodeid_offset=FUSE_ROOT_ID),
    Message("pages_error", _W, "invalidate_inode_pages2() on [%llu] returns err=%d",
            ("nodeid", "err"),
            "page invalidation failed while connected: retried after one jiffy",
            origin="patch", nodeid_offset=FUSE_ROOT_ID),
    Message("end", _W, "invalidate_file on [%llu] ends", ("nodeid",),
            "bit cleared, waiters woken: the invalidation of the inode is complete",
            origin="patch", nodeid_offset=FUSE_ROOT_ID),
    # existing pcs messages (fs/fuse/kio/pcs/), common in the same buffers
    Message("cs_latency", "pcs_cs_deaccount", "IO latency on CS%llu is %u, cwnd %u, clamp %u",
            ("csid", "latency", "cwnd", "clamp"), "congestion window update of a chunk server"),
    Message("cs_blacklist", "cs_blacklist", "Blacklisting CS%llu by %s, err=%d",
            ("csid", "by", "err"), "a chunk server is blacklisted"),
    Message("cs_whitelist", "cs_whitelist", "Whitelisting CS%llu by %s", ("csid", "by"),
            "a chunk server is whitelisted again"),
    Message("cs_congestion", "handle_congestion",
            "Received congestion notification from CS%llu", ("csid",),
            "a chunk server reported congestion"),
    Message("cs_io_error", "cs_response_done",
            "[%u.%llu:%llu] IO error %d %lu, ireq:%p : %llu:%u+%u",
            ("xid_type", "xid_origin", "xid_val", "err", "offender", "ireq", "chunk",
             "offset", "size"),
            "an IO request to a chunk server failed"),
    Message("read_map", "pcs_cslist_submit_read",
            "Selected read map (%p) 0x%lld s:%x[%08llx]/%*.*s to CS%llu; is_seq=%d",
            ("map", "chunk", "state", "flags", "_w", "_p", "cs_list", "csid", "is_seq"),
            "a read was routed to a chunk server (0x before a decimal number is the kernel's)"),
)

BY_EVENT: dict[str, Message] = {m.event: m for m in CATALOGUE}
#: The events the invalidation analysis is built from.
PATCH_EVENTS: tuple[str, ...] = tuple(m.event for m in CATALOGUE if m.origin == "patch")


def render(msg: Message, **values: Any) -> str:
    """The text the kernel writes for ``msg`` (with the ``"%s: "`` function prefix).

    ``%p`` values are passed preformatted (the kernel hashes pointers).
    """
    args: list[Any] = []
    for name in msg.args:
        args.append(values[name])
    py_fmt = _PRINTF.sub(_py_conversion, msg.fmt)
    return f"{msg.function}: " + (py_fmt % tuple(args))


def _py_conversion(m: re.Match[str]) -> str:
    conv = {"u": "d", "i": "d", "p": "s"}.get(m["conv"], m["conv"])
    width = m["width"] or ""
    prec = "." + m["prec"] if m["prec"] else ""
    return f"%{m['flags']}{width}{prec}{conv}"


@cache
def segments(msg: Message) -> tuple[tuple[str, str | None], ...]:
    """The format cut at its printed conversions: ``(literal, conversion)``
    pairs in order, the conversion being its letter (a key of the regex
    table), and a last pair ``(literal, None)`` for the text after the last
    one.  ``%%`` is part of the literal it prints.

    The regex of :func:`pattern` and the byte programs of
    ``pipeline/bytematch.py`` are both built from this one cut.
    """
    out: list[tuple[str, str | None]] = []
    literal, pos = "", 0
    for m in _PRINTF.finditer(msg.fmt):
        literal += msg.fmt[pos:m.start()]
        pos = m.end()
        if m["conv"] == "%":
            literal += "%"
            continue
        out.append((literal, m["conv"]))
        literal = ""
    out.append((literal + msg.fmt[pos:], None))
    return tuple(out)


@cache
def pattern(msg: Message) -> str:
    """An anchored regex (Python and Rust/Polars syntax) for the text after ``"function: "``.

    Named groups carry the printed fields.  Python must apply it with
    ``re.fullmatch``: its ``$`` also matches before a final newline, Rust's
    only at the very end.
    """
    names = iter(f.name for f in msg.fields)
    out = [_escape(literal) + (f"(?P<{next(names)}>{_CONV[conv][0]})" if conv else "")
           for literal, conv in segments(msg)]
    return "^" + "".join(out) + "$"


def _escape(literal: str) -> str:
    # re.escape() also escapes spaces, which Rust's regex (Polars) rejects.
    return "".join("\\" + c if c in _META else c for c in literal)


_META = frozenset("\\.+*?()|[]{}^$#&-~")


def parse(text: str) -> tuple[Message, dict[str, Any]] | None:
    """Classify one full message text (slow path, for tests and tools).

    Returns the catalogue entry and its typed fields, or None.
    """
    func, sep, rest = text.partition(": ")
    if not sep:
        return None
    for msg in CATALOGUE:
        if msg.function != func:
            continue
        m = re.fullmatch(pattern(msg), rest, re.S)  # not re.match: see pattern()
        if m:
            return msg, {f.name: _typed(f, m[f.name]) for f in msg.fields}
    return None


def _typed(field: Field, raw: str) -> Any:
    if field.kind in ("int", "uint"):
        return int(raw)
    if field.kind == "hex":
        return int(raw, 16)
    return raw


def catalogue_markdown() -> str:
    """The README's message table, generated from the catalogue."""
    rows = ["| event | function | format | nodeid printed | meaning |",
            "|---|---|---|---|---|"]
    for m in CATALOGUE:
        fmt = m.fmt.replace("|", "\\|")
        rows.append(f"| `{m.event}` | `{m.function}` | `{fmt}` | {m.numbering} | {m.summary} |")
    return "\n".join(rows)
