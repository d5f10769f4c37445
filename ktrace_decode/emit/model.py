"""Discrete-event replay of the patched kernel path (VZ10 fuse_invalidate_files workqueue).

Actors, in simulated microseconds:

- userspace's NOTIFY_INVAL_FILES -> ``fuse_invalidate_files()`` (not traced):
  coalesces when the inode's INVAL_FILES bit is set; else sets the bit,
  poisons the inode's open rw files, puts the inode on the connection list
  and queues the work (delay 0);
- the work item (one per connection, single-threaded): takes the whole list;
  per inode: *start*; write-and-wait; an error other than -EIO while the
  connection was up when the run began -> *write error*, retry list; revoke
  readpages, invalidate pages; error while connected -> *pages error*, retry
  list; else clear the bit, wake waiters, *end*.  The retry list is re-queued
  after one jiffy, with no retry limit; each run picks a CPU;
- ``fuse_open`` on an inode whose bit is set: *waiting*, blocked until *end*;
- ``fuse_link_rw_file`` of a file linked while the bit is set: *pending*;
- background: other text messages (catalogue and not), iotimes records;
- a reader draining complete sub-buffers every ``reader_interval_ms``.

Records go through the catalogue (``messages.render``), so the numbering quirk
(work function prints nodeid - 1; open/link print the raw nodeid) comes from
one declaration.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from ..formats import layouts as L
from ..formats import messages as M
from .relay import RelayBuffer
from .scenario import Scenario

EIO = -5
INF = math.inf

Process = Generator[float, None, None]  # yields a delay in us


@dataclass
class TrueEpisode:
    """What really happened to one invalidation (including what the trace lost)."""

    nodeid: int
    requested_us: int
    starts: list[int] = field(default_factory=list)
    start_cpus: list[int] = field(default_factory=list)
    write_errors: list[int] = field(default_factory=list)
    pages_errors: list[int] = field(default_factory=list)
    end_us: int | None = None
    end_cpu: int | None = None
    pending: list[int] = field(default_factory=list)  # times
    waits: list[int] = field(default_factory=list)  # times the opens began to wait


@dataclass
class Inode:
    nodeid: int
    bit: bool = False
    episode: TrueEpisode | None = None


@dataclass
class IoStat:
    """One performed IO, for the prometheus file (traced or not)."""

    op: str
    latency_us: int
    size: int


class Model:
    """One run of a scenario."""

    def __init__(self, sc: Scenario, path: str = "new") -> None:
        if path not in ("new", "old"):
            raise ValueError(f"path must be 'new' or 'old', not {path!r}")
        self.sc = sc
        self.path = path
        #: (time, us) the userspace event loop spent inside fuse_invalidate_files()
        self.loop_blocks: list[tuple[int, float]] = []
        self.rng = random.Random(sc.seed)
        self.cpus = sc.cpu_list
        self.relay = {c: RelayBuffer(sc.subbuf_size, sc.n_subbufs) for c in self.cpus}
        self.t0 = sc.start_time_us
        self.t_end = self.t0 + int(sc.duration_ms * 1000)
        self.now = self.t0
        self._heap: list[tuple[float, int, Process]] = []
        self._seq = itertools.count()
        if isinstance(sc.nodeids, list):
            ids = list(sc.nodeids)
        else:
            ids = sorted(self.rng.sample(range(2, 200_000), sc.nodeids))
        self.inodes = {n: Inode(n) for n in ids}
        self.nodeids = ids
        self.inval_list: list[Inode] = []
        self.work_queued = False
        self.work_running = False
        self.episodes: list[TrueEpisode] = []
        self.fh = itertools.count(0x1000)
        self.ios: list[IoStat] = []
        self.stalled = sc.stall is not None and ids[sc.stall] if sc.stall is not None else None

    # --- infrastructure ---------------------------------------------------
    def spawn(self, proc: Process, delay: float = 0.0) -> None:
        heapq.heappush(self._heap, (self.now + delay, next(self._seq), proc))

    def run(self) -> None:
        for gen in (self._notifier(), self._opener(), self._background(), self._iotimes()):
            self.spawn(gen)
        if self.sc.reader_interval_ms > 0:
            self.spawn(self._reader())
        while self._heap:
            t, _, proc = heapq.heappop(self._heap)
            if t > self.t_end:
                break
            self.now = int(t)
            try:
                delay = next(proc)
            except StopIteration:
                continue
            if delay != INF:
                heapq.heappush(self._heap, (t + max(delay, 0.0), next(self._seq), proc))

    def connected(self) -> bool:
        d = self.sc.disconnect_at_ms
        return d is None or self.now < self.t0 + d * 1000

    def emit_text(self, cpu: int, event: str, meta: dict[str, Any] | None = None,
                  **values: Any) -> None:
        msg = M.BY_EVENT[event]
        text = M.render(msg, **values)
        info = {"record_type": "text", "event": event, "function": msg.function, "text": text}
        if "nodeid" in values and msg.nodeid_offset is not None:
            info["nodeid"] = values["nodeid"] + msg.nodeid_offset
        for k in ("fh", "err"):
            if k in values and any(f.name == k for f in msg.fields):
                info[k] = values[k]
        info.update(meta or {})
        self.relay[cpu].write(L.TYPE_TEXT, self.now, L.text_payload(text), info)

    def _exp(self, rate: float) -> float:
        return INF if rate <= 0 else self.rng.expovariate(rate) * 1e6

    # --- userspace: NOTIFY_INVAL_FILES ------------------------------------
    def _notifier(self) -> Process:
        while True:
            yield self._exp(self.sc.invalidation_rate)
            nodeid = self.rng.choice(self.nodeids)
            if self.path == "old":
                # Before the patch the event loop itself wrote back and invalidated:
                # it is blocked for the whole time, and the next request waits.
                busy = self._write_time() + self._pages_time()
                self.loop_blocks.append((self.now, busy))
                yield busy
            else:
                self.loop_blocks.append((self.now, 0.0))  # returns at once (not modelled)
                self.invalidate_files(nodeid)

    def invalidate_files(self, nodeid: int) -> None:
        ino = self.inodes[nodeid]
        if ino.bit:
            return  # an invalidation is already pending: duplicates coalesce (untraced)
        ino.bit = True
        ino.episode = TrueEpisode(nodeid, self.now)
        self.episodes.append(ino.episode)
        if self.rng.random() < self.sc.link_race_rate:
            # an rw open that passed fuse_open's check just before gets linked now
            self.spawn(self._link(ino), self.rng.uniform(1, 40))
        self.inval_list.append(ino)
        self.queue_work(0.0)

    def queue_work(self, delay: float) -> None:
        if self.work_queued:
            return  # queue_delayed_work on a pending work is a no-op
        self.work_queued = True
        self.spawn(self._work(), delay + self.rng.uniform(2, 30))

    def _link(self, ino: Inode) -> Process:
        yield 0.0
        if ino.bit and ino.episode is not None:
            fh = next(self.fh)
            ino.episode.pending.append(self.now)
            self.emit_text(self.rng.choice(self.cpus), "pending", fh=fh, nodeid=ino.nodeid)

    # --- fuse_open -----------------------------------------------------------
    def _opener(self) -> Process:
        while True:
            yield self._exp(self.sc.open_rate)
            ino = self.inodes[self.rng.choice(self.nodeids)]
            if ino.bit and ino.episode is not None:
                ino.episode.waits.append(self.now)
                self.emit_text(self.rng.choice(self.cpus), "waiting", nodeid=ino.nodeid)

    # --- the work item ---------------------------------------------------------
    def _work(self) -> Process:
        yield 0.0
        if self.work_running:
            # still running: the queued instance runs right after (workqueue semantics)
            self.work_queued = False
            self.queue_work(50.0)
            return
        self.work_queued = False
        self.work_running = True
        cpu = self.rng.choice(self.cpus)
        to_retry = self.connected()
        todo, self.inval_list = self.inval_list, []
        failed: list[Inode] = []
        for ino in todo:
            ep = ino.episode
            assert ep is not None
            shown = ino.nodeid - M.FUSE_ROOT_ID
            ep.starts.append(self.now)
            ep.start_cpus.append(cpu)
            self.emit_text(cpu, "start", nodeid=shown)
            if self.stalled == ino.nodeid and self.now >= self.t0 + self.sc.stall_at_ms * 1000:
                yield INF  # write-back never completes: the work (and everything behind it) hangs
            yield self._write_time()
            if self.rng.random() < self.sc.write_error_rate:
                err = self.rng.choice(self.sc.write_errnos)
                if err != EIO and to_retry:
                    ep.write_errors.append(self.now)
                    self.emit_text(cpu, "write_error", nodeid=shown, err=err)
                    failed.append(ino)
                    continue
            yield self._pages_time()
            if self.rng.random() < self.sc.pages_error_rate:
                err = self.rng.choice(self.sc.pages_errnos)
                if to_retry:
                    ep.pages_errors.append(self.now)
                    self.emit_text(cpu, "pages_error", nodeid=shown, err=err)
                    failed.append(ino)
                    continue
            ino.bit = False  # clear_bit + wake_up_bit: blocked opens proceed now
            ep.end_us = self.now
            ep.end_cpu = cpu
            ino.episode = None
            self.emit_text(cpu, "end", nodeid=shown)
            yield self.rng.uniform(1, 5)
        self.work_running = False
        if failed:
            self.inval_list = failed + self.inval_list
            self.queue_work(1e6 / self.sc.hz)  # retried after one jiffy
        elif self.inval_list:
            self.queue_work(0.0)

    def _write_time(self) -> float:
        # dirty data accumulated since the last write-back, at write_load MB/s
        dirty_mb = self.sc.write_load * self.rng.uniform(0.005, 0.05)
        return 20 + dirty_mb / 400 * 1e6 * self.rng.uniform(0.5, 1.5)  # ~400 MB/s disk

    def _pages_time(self) -> float:
        return 5 + self.sc.cached_pages * self.rng.uniform(0.05, 0.2)  # ~0.1 us per page

    # --- background -------------------------------------------------------------
    _OTHER = ("fuse_dev_do_read: request %d queued", "pcs_map_queue_resolve: map %d resolved",
              "kpcs_req_send: sending request %d")

    def _background(self) -> Process:
        while True:
            yield self._exp(self.sc.background_text_rate)
            cpu = self.rng.choice(self.cpus)
            r = self.rng.random()
            csid = 1000 + self.rng.randrange(self.sc.cs_count)
            if self.rng.random() < self.sc.long_message_rate:
                self._long_message(cpu)
            elif r < 0.3:
                self.emit_text(cpu, "cs_latency", csid=csid, latency=self.rng.randrange(50, 9000),
                               cwnd=self.rng.randrange(8, 256), clamp=self.rng.randrange(0, 64))
            elif r < 0.5:
                self.emit_text(cpu, "read_map", map=f"{self.rng.getrandbits(64):016x}",
                               chunk=self.rng.randrange(1 << 30), state=self.rng.randrange(16),
                               flags=self.rng.randrange(1 << 20), _w=3, _p=3, cs_list="1,2",
                               csid=csid, is_seq=self.rng.randrange(2))
            elif r < 0.55:
                self.emit_text(cpu, "cs_congestion", csid=csid)
            elif r < 0.6:
                self.emit_text(cpu, "cs_io_error", xid_type=1, xid_origin=csid,
                               xid_val=self.rng.randrange(1 << 32), err=-110, offender=csid,
                               ireq=f"{self.rng.getrandbits(64):016x}",
                               chunk=self.rng.randrange(1 << 30), offset=0, size=4096)
            else:
                text = self.rng.choice(self._OTHER) % self.rng.randrange(1 << 20)
                func = text.split(":", 1)[0]
                self.relay[cpu].write(L.TYPE_TEXT, self.now, L.text_payload(text),
                                      {"record_type": "text", "event": "other", "function": func,
                                       "text": text})

    def _long_message(self, cpu: int) -> None:
        text = "pcs_cs_dump: " + " ".join(f"cs{i}={self.rng.randrange(10**6)}" for i in range(40))
        raw = text.encode()
        # vsnprintf into a 256-byte buffer, then a copy of len + 1 bytes: the tail is
        # whatever follows the buffer in kernel memory.
        junk = bytes(self.rng.randrange(256) for _ in range(len(raw) + 1 - L.KTRACE_LOG_BUF_SIZE))
        payload = raw[:L.KTRACE_LOG_BUF_SIZE - 1] + b"\0" + junk
        shown = text[:L.KTRACE_LOG_BUF_SIZE - 1]
        self.relay[cpu].write(L.TYPE_TEXT, self.now, payload,
                              {"record_type": "text", "event": "other", "function": "pcs_cs_dump",
                               "text": shown, "long_text": True})

    def _iotimes(self) -> Process:
        ops = ((257, "read", "cs_read", 0.6), (259, "write", "cs_write", 0.3),
               (263, "fsync", "cs_sync", 0.1))
        while True:
            yield self._exp(self.sc.iotimes_rate)
            typ, op, cs_op, _ = self.rng.choices(ops, weights=[o[3] for o in ops])[0]
            nodeid = self.rng.choice(self.nodeids)
            chain = self.rng.sample(range(self.sc.cs_count), self.rng.randint(1, min(3,
                                                                            self.sc.cs_count)))
            entries = []
            for k in chain:
                net = int(self.rng.lognormvariate(math.log(self.sc.cs_net_median_us[k]), 0.5))
                io = int(self.rng.lognormvariate(math.log(self.sc.cs_io_median_us[k]), 0.5))
                entries.append(dict(csid=1000 + k, misc=self.now & L.CS_MISC_TIME_MASK,
                                    ts_net=net, ts_io=io))
            lat = entries[0]["ts_net"] + entries[0]["ts_io"] + self.rng.randrange(5, 50)
            local = self.rng.randrange(1, 30)
            size = 0 if typ == 263 else 4096 * self.rng.randint(1, 32)
            chunk = self.rng.randrange(64) << 26
            hdr = dict(chunk=chunk, offset=0 if typ == 263 else chunk + 4096 * self.rng.randrange(
                1024), size=size, start_time=self.now - lat - local, local_delay=local, lat=lat,
                ino=nodeid - 1, type=typ, pad1=self.rng.randrange(1 << 16))
            cpu = self.rng.choice(self.cpus)
            self.ios.append(IoStat(cs_op, lat + local, size))
            self.ios.append(IoStat(op, lat + local, size))
            self.relay[cpu].write(L.TYPE_IOTIMES, self.now, L.iotimes_payload(hdr, entries),
                                  {"record_type": "iotimes", "event": "iotimes",
                                   "nodeid": nodeid, "cs": entries})

    def _reader(self) -> Process:
        while True:
            yield self.sc.reader_interval_ms * 1000
            for r in self.relay.values():
                r.read_all()


def simulate(sc: Scenario, hook: Callable[[Model], None] | None = None,
             path: str = "new") -> Model:
    """Run a scenario to its end (``path="old"``: the pre-patch kernel)."""
    m = Model(sc, path)
    if hook:
        hook(m)
    m.run()
    return m
