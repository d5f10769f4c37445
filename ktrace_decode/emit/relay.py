"""A faithful model of one CPU's relay channel in no-overwrite mode + fuse_trace_prepare.

Mirrors ``kernel/relay.c`` (relay_reserve / relay_switch_subbuf / relay_buf_full)
and the pcs module's ``fuse_trace_prepare()``:

- a record never straddles sub-buffers: when it does not fit the rest of the
  current one, the rest is padding (left as it is: zeros on a fresh buffer,
  stale bytes of an earlier lap otherwise) and the next sub-buffer starts;
- when every sub-buffer holds unread data the switch fails, ``offset`` is set
  to ``subbuf_size + 1`` (so every later reserve retries the switch) and the
  record is dropped;
- drops are counted in a 64-bit per-CPU counter; a successful reserve writes
  ``counter & 0xffff`` into ``ovfl`` and resets the counter *only if that
  truncated value is non-zero* (the "saturate at 65535" branch fires only on
  64-bit wrap, i.e. never) — so 65536 drops show as 0 and keep counting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..formats import layouts as L

_MASK64 = (1 << 64) - 1


@dataclass
class Written:
    """A record that made it into the buffer, with what the model knows about it."""

    slot: int
    offset: int  # within the sub-buffer
    data: bytes
    time: int
    ovfl: int
    meta: dict[str, Any] = field(default_factory=dict)


class RelayBuffer:
    """One CPU: n_subbufs x subbuf_size bytes, no-overwrite."""

    def __init__(self, subbuf_size: int = L.RELAY_SUBBUF_SIZE,
                 n_subbufs: int = L.RELAY_N_SUBBUFS) -> None:
        self.size = subbuf_size
        self.n = n_subbufs
        self.mem = bytearray(subbuf_size * n_subbufs)
        self.produced = 0  # sub-buffers switched away from
        self.consumed = 0  # sub-buffers the reader has freed
        self.offset = 0  # write position in the current sub-buffer
        self.drop_counter = 0  # the kernel's per-CPU unsigned long
        self.dropped_total = 0
        self.accepted: list[Written] = []  # every record written, in order (the stream)
        self.lap: list[list[Written]] = [[] for _ in range(n_subbufs)]  # current lap per slot

    def _switch(self, length: int) -> bool:
        if length > self.size:
            # relay_switch_subbuf checks "toobig" before anything else: the record
            # is dropped and the current sub-buffer is neither padded nor left.
            return False
        if self.offset != self.size + 1:
            self.produced += 1
        slot = self.produced % self.n
        self.offset = 0
        if self.produced - self.consumed >= self.n:  # relay_buf_full: subbuf_start refuses
            self.offset = self.size + 1
            return False
        self.lap[slot] = []
        return True

    def write(self, type_: int, time: int, payload: bytes, meta: dict[str, Any]) -> bool:
        """fuse_trace_prepare + copy: True if written, False if dropped."""
        length = L.HEADER_SIZE + len(payload)
        if self.offset + length > self.size and not self._switch(length):
            self.drop_counter = (self.drop_counter + 1) & _MASK64
            self.dropped_total += 1
            return False
        ovfl = self.drop_counter & 0xFFFF
        if ovfl:
            self.drop_counter = 0
        data = L.build_record(type_, time, payload, ovfl)
        slot = self.produced % self.n
        pos = slot * self.size + self.offset
        self.mem[pos:pos + length] = data
        w = Written(slot, self.offset, data, time, ovfl, meta)
        self.offset += length
        self.accepted.append(w)
        self.lap[slot].append(w)
        return True

    def read_all(self) -> None:
        """A reader consumed every complete sub-buffer (they may be reused)."""
        self.consumed = self.produced

    # --- what a dump of this CPU looks like ---------------------------------
    def stream(self) -> tuple[bytes, list[tuple[int, Written]]]:
        """`cat traceN` over the whole run: every accepted record, padding skipped."""
        out = bytearray()
        placed = []
        for w in self.accepted:
            placed.append((len(out), w))
            out += w.data
        return bytes(out), placed

    def raw(self) -> tuple[bytes, list[tuple[int, Written]]]:
        """The ring's memory image and its records: each slot's current lap, slots by time."""
        laps = [(lap[0].time, slot, lap) for slot, lap in enumerate(self.lap) if lap]
        placed = [(slot * self.size + w.offset, w)
                  for _, slot, lap in sorted(laps, key=lambda x: (x[0], x[1])) for w in lap]
        return bytes(self.mem), placed
