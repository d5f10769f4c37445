"""Catalogue messages as byte programs, run by one compiled loop (numba).

The regular expressions of :mod:`.events` define what a message is; matching
ten million texts against them costs most of an export's CPU (a Polars
``str.contains`` per message and row, then a capture per field).  This module
is the fast path for big batches: each message's format (its
``formats.messages.segments`` cut, the same cut the regex is built from)
becomes a short program of literal compares and character-class runs, and a
numba loop runs, per text, only the programs of its function.

It decides exactly what the regexes decide, by construction and by test:

* a class run (``%d``, ``%llu``, ``%x``, ``%p``) followed by a literal whose
  first byte is outside the class must stop where the class stops, so a
  greedy run is the only way the anchored regex can match;
* a ``%s`` (``.*?``) is lazy: its end is tried from the shortest, and the
  first end after which the rest matches wins, which is the split the regex
  engine's leftmost-first, lazy semantics choose (captures after it agree);
* anything else -- two conversions with nothing between, a literal after a
  run starting with a byte of its class, two ``%s``, ``%c``, a hex or text
  field an event column wants -- makes the message's program ``DEFER``.

Rows the loop cannot decide exactly (a deferring program, or a number of
more than 18 digits, whose overflow rules belong to Polars' cast) are
flagged, and :mod:`.events` classifies them with the regexes.
``tests/pipeline/test_bytematch.py`` checks both paths agree on every sample
and on hypothesis-generated texts.

numba is imported only when a batch is large enough to pay for it (its
import and the loading of the cached machine code take ~0.4 s; the first
run after an install also compiles, a few seconds, cached beside this file).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from .. import jit_loops, records
from ..formats import messages as M

# Opcodes.  A program is rows of (opcode, a, b, slot).
LIT = 0  # bytes pool[a : a + b]
INT = 1  # -?[0-9]+
UINT = 2  # [0-9]+
HEXL = 3  # [0-9a-f]+
HEXU = 4  # [0-9A-F]+
PTR = 5  # [0-9a-fx]+ | (null) | (ptrval); pool[a : a + 14] is "(null)(ptrval)"
STR = 6  # .*? (lazy, any byte: the text is valid UTF-8, see the module doc)
DEFER = 7  # this message is left to the regexes

#: printf conversion letter -> opcode (formats.messages._CONV lists the letters).
_OPCODE = {"d": INT, "i": INT, "u": UINT, "x": HEXL, "X": HEXU, "p": PTR, "s": STR}
_DIGITS = frozenset(b"0123456789")
#: What %p prints for NULL and for a pointer it hides (the loop reads them from the pool).
_PTR_WORDS = b"(null)(ptrval)"
#: The bytes each class run consumes after its first (a following literal
#: must not start with one of them, or the run's end is not forced).
_RUN = {INT: _DIGITS, UINT: _DIGITS, HEXL: _DIGITS | frozenset(b"abcdef"),
        HEXU: _DIGITS | frozenset(b"ABCDEF"), PTR: _DIGITS | frozenset(b"abcdefx")}
#: Digits a number may have for the loop to parse it: below 10**18 it fits
#: an int64 with its sign and its nodeid offset; longer ones go to Polars.
MAX_DIGITS = 18
#: Text rows in a batch from which numba pays for itself (see the module doc).
MIN_ROWS = int(os.environ.get("KTRACE_BYTEMATCH_MIN_ROWS", 50_000))


class Unsupported(ValueError):
    """A format the byte programs cannot decide exactly (its message defers)."""


@dataclass(frozen=True)
class Programs:
    """The catalogue compiled: numpy tables the loop reads."""

    pool: np.ndarray  # uint8: function names and literals
    funcs: np.ndarray  # int32 (n_msg, 2): function name offset and length in pool
    spans: np.ndarray  # int32 (n_msg, 2): first and end row of each program in ops
    ops: np.ndarray  # int32 (n_ops, 4): opcode, a, b, slot (-1: not extracted)
    n_slots: int
    deferred: tuple[str, ...]  # events whose message defers, with the reason
    adjust: np.ndarray  # int64 (n_msg, n_slots): added to what message m printed in a slot
    lo: np.ndarray  # int64 (n_slots): the least value a slot keeps (others: absent)
    hi: np.ndarray  # int64 (n_slots): the greatest


def program(msg: M.Message, slots: dict[str, int]) -> list[tuple[int, bytes, int]]:
    """``msg``'s program as (opcode, literal, slot) steps; raises Unsupported.

    ``slots`` maps the field names to extract to their output slot; they
    must be decimal (``int``/``uint``) fields.
    """
    fields = iter(msg.fields)
    steps: list[tuple[int, bytes, int]] = []
    for literal, conv in M.segments(msg):
        if literal:
            steps.append((LIT, literal.encode(), -1))
        if conv is None:
            break
        field = next(fields)
        if conv not in _OPCODE:
            raise Unsupported(f"conversion %{conv}")
        slot = slots.get(field.name, -1)
        if slot >= 0 and field.kind not in ("int", "uint"):
            raise Unsupported(f"field {field.name} is {field.kind}, not decimal")
        op = _OPCODE[conv]
        steps.append((op, _PTR_WORDS if op == PTR else b"", slot))
    _check(steps)
    return steps


def _check(steps: list[tuple[int, bytes, int]]) -> None:
    """Raise Unsupported unless greedy runs and one lazy %s decide like the regex."""
    if sum(op == STR for op, _, _ in steps) > 1:
        raise Unsupported("more than one %s")
    for i, (op, _, _) in enumerate(steps):
        if op == LIT:
            continue
        nxt = steps[i + 1] if i + 1 < len(steps) else None
        if nxt is None:
            continue  # at the end: the run must reach the end of the text
        if nxt[0] != LIT:
            raise Unsupported("two conversions with nothing between")
        first = nxt[1][0]
        if op == STR and first >= 0x80:
            # The split must land between characters: an ASCII byte is never
            # inside a UTF-8 sequence, so every split tried is a boundary.
            raise Unsupported("%s followed by a non-ASCII byte")
        if op != STR and first in _RUN[op]:
            raise Unsupported("a literal after a run starts with a byte of its class")


def compile_catalogue(catalogue: tuple[M.Message, ...], slots: dict[str, int],
                      extracted: dict[int, tuple[str, ...]],
                      adjust: dict[int, dict[str, int]] | None = None,
                      ranges: dict[str, tuple[int, int]] | None = None) -> Programs:
    """The tables for ``catalogue``; ``extracted[i]`` names the fields
    message ``i`` gives its event columns (their slots from ``slots``).

    A field's value is what the message printed plus ``adjust[i][field]``
    (a nodeid numbering, say), kept only within ``ranges[field]`` (the
    column type's range: a value outside it is absent, as a non-strict cast
    makes it null).
    """
    pool = bytearray()
    funcs, spans, ops, deferred = [], [], [], []

    def put(b: bytes) -> int:
        pool.extend(b)
        return len(pool) - len(b)

    for i, msg in enumerate(catalogue):
        name = msg.function.encode()
        funcs.append((put(name), len(name)))
        wanted = {f: slots[f] for f in extracted.get(i, ())}
        try:
            steps = program(msg, wanted)
        except Unsupported as e:
            steps = [(DEFER, b"", -1)]
            deferred.append(f"{msg.event}: {e}")
        first = len(ops)
        for op, literal, slot in steps:
            ops.append((op, put(literal) if literal else 0, len(literal), slot))
        spans.append((first, len(ops)))
    n_slots = max(len(slots), 1)
    add = np.zeros((max(len(catalogue), 1), n_slots), np.int64)
    for i, fields in (adjust or {}).items():
        for f, delta in fields.items():
            add[i, slots[f]] = delta
    lo = np.full(n_slots, -(2**63), np.int64)
    hi = np.full(n_slots, 2**63 - 1, np.int64)
    for f, (a, b) in (ranges or {}).items():
        lo[slots[f]], hi[slots[f]] = max(a, -(2**63)), min(b, 2**63 - 1)
    return Programs(np.frombuffer(bytes(pool) or b"\0", np.uint8).copy(),
                    np.array(funcs, np.int32).reshape(-1, 2),
                    np.array(spans, np.int32).reshape(-1, 2),
                    np.array(ops, np.int32).reshape(-1, 4), len(slots), tuple(deferred),
                    add, lo, hi)


@dataclass
class Matched:
    """The loop's answer for each row of a text array."""

    code: np.ndarray  # int16: index in the catalogue, -1 for none
    func_len: np.ndarray  # int32: bytes before the first ": ", -1 for none (or null text)
    values: np.ndarray  # int64 (n_slots, n): each slot's values, 0 where absent
    present: np.ndarray  # bool (n_slots, n): the matched message printed this field (in range)
    defer: np.ndarray  # bool: decide this row with the regexes
    func_views: np.ndarray  # uint8 (n, 16): Arrow views of the function prefixes


def available() -> bool:
    """Is numba importable here (else every batch takes the regexes)?"""
    return _kernel() is not None


def worth_it(rows: int) -> bool:
    """Take the byte programs for ``rows`` texts?  Once numba is loaded, for
    any batch (a streamed dump's batches vary in size); before, only for one
    big enough to pay for loading it."""
    if rows < MIN_ROWS and f"{__package__}._bytematch_jit" not in sys.modules:
        return False
    return available()


def _kernel() -> Any:
    loops = jit_loops.load("_bytematch_jit")
    return None if loops is None else loops.match_rows


def match(text: pa.Array, progs: Programs) -> Matched:
    """Run the programs over a ``string_view`` array (Polars' own layout,
    reached without a copy); null rows have no function and no match."""
    kernel = _kernel()
    if kernel is None:
        raise RuntimeError("numba is not available")
    n = len(text)
    validity, views_buf, *data = text.buffers()
    if validity is None:
        valid = np.ones(n, bool)
    else:
        bits = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")
        valid = bits[text.offset : text.offset + n].view(bool)
    slots = max(progs.n_slots, 1)
    out = Matched(np.full(n, -1, np.int16), np.full(n, -1, np.int32),
                  np.zeros((slots, n), np.int64), np.zeros((slots, n), bool),
                  np.zeros(n, bool), np.zeros((n, 16), np.uint8))
    # One pass over the rows, reading the views and the text bytes where
    # Arrow keeps them (``text`` holds the buffers while the loop runs).
    addrs = np.array([b.address for b in data], np.int64)
    sizes = np.array([b.size for b in data], np.int64)
    if n:
        kernel(n, views_buf.address + text.offset * 16, valid, addrs, sizes, progs.pool,
               progs.funcs, progs.spans, progs.ops, progs.adjust, progs.lo, progs.hi,
               out.code, out.func_len, out.values, out.present, out.defer, out.func_views,
               np.zeros(slots, np.int64))
    return out


def func_array(text: pa.Array, m: Matched) -> pa.Array:
    """The function prefixes as a ``string_view`` array over ``text``'s bytes."""
    _, _, *data = text.buffers()
    has = m.func_len >= 0
    return pa.Array.from_buffers(
        pa.string_view(), len(text),
        [records.validity_bits(has), pa.py_buffer(m.func_views), *data],
        null_count=int(len(has) - np.count_nonzero(has)))
