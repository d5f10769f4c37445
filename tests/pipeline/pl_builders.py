"""Hand-built dumps for the pipeline tests (records through formats/, files on disk)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from ktrace_decode.formats import layouts as L
from ktrace_decode.formats import messages as M

PATCH = ("start", "write_error", "pages_error", "end", "pending", "waiting")


def text(event: str, nodeid: int = 0, **values: int | str) -> str:
    """The kernel's text for a catalogue event about kernel ``nodeid``."""
    msg = M.BY_EVENT[event]
    if msg.nodeid_offset is not None:
        values["nodeid"] = nodeid - msg.nodeid_offset
    return M.render(msg, **values)


@dataclass
class Trace:
    """Records per CPU in file order, plus what each one is (for the oracle)."""

    records: dict[int, list[bytes]] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)  # patch events, oracle input
    rows: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # cpu -> (time, ovfl)

    def add(self, cpu: int, t: int, rec: bytes, ovfl: int = 0, event: dict | None = None) -> None:
        recs = self.records.setdefault(cpu, [])
        if event is not None:
            self.events.append({**event, "time_us": t, "cpu": cpu, "seq": len(recs)})
        recs.append(rec)
        self.rows.setdefault(cpu, []).append((t, ovfl))

    def add_text(self, cpu: int, t: int, msg: str, ovfl: int = 0,
                 event: dict | None = None) -> None:
        self.add(cpu, t, L.build_record(L.TYPE_TEXT, t, L.text_payload(msg), ovfl), ovfl, event)

    def add_event(self, cpu: int, t: int, event: str, nodeid: int, err: int | None = None,
                  fh: int = 7, ovfl: int = 0) -> None:
        vals: dict[str, int | str] = {}
        if event in ("write_error", "pages_error"):
            vals["err"] = err if err is not None else -11
        if event == "pending":
            vals["fh"] = fh
        self.add_text(cpu, t, text(event, nodeid, **vals), ovfl,
                      {"event": event, "nodeid": nodeid, "err": vals.get("err"),
                       "fh": vals.get("fh")})

    def windows(self) -> list[tuple[int | None, int]]:
        """Drop windows as the rules define them, from file order."""
        out = []
        for rows in self.rows.values():
            for i, (t, ovfl) in enumerate(rows):
                if ovfl:
                    out.append((rows[i - 1][0] if i else None, t))
        return out

    def write_raw(self, out: Path, subbuf: int, rotate: int = 1) -> Path:
        """Each CPU as a raw ring image: records packed into ``subbuf``-byte
        sub-buffers (zero padding, no straddling), the slots rotated so that
        ring order is not time order."""
        out.mkdir(parents=True, exist_ok=True)
        for cpu, recs in self.records.items():
            slots: list[bytes] = [b""]
            for r in recs:
                assert len(r) <= subbuf
                if len(slots[-1]) + len(r) > subbuf:
                    slots.append(b"")
                slots[-1] += r
            slots = [s.ljust(subbuf, b"\0") for s in slots]
            k = rotate % len(slots)
            (out / f"trace{cpu}").write_bytes(b"".join(slots[k:] + slots[:k]))
        return out

    def write(self, out: Path) -> Path:
        out.mkdir(parents=True, exist_ok=True)
        for cpu, recs in self.records.items():
            (out / f"trace{cpu}").write_bytes(b"".join(recs))
        return out


def iotimes(t: int, ino: int, n_cs: int = 2, type_: int = 259, ovfl: int = 0) -> bytes:
    hdr = dict(chunk=1 << 20, offset=(1 << 20) + 4096 * ino, size=4096,
               start_time=max(t - 120, 0), local_delay=7, lat=95, ino=ino, type=type_,
               pad1=ino % 5)
    cs = [dict(csid=1000 + i, misc=(1 << 63) | (1 << 60) | (i + 12345), ts_net=10 + i,
               ts_io=30 + i) for i in range(n_cs)]
    return L.build_record(L.TYPE_IOTIMES, t, L.iotimes_payload(hdr, cs), ovfl)


def random_trace(seed: int, n: int = 120, cpus: int = 3, nodeids: int = 5,
                 spread: int = 400) -> Trace:
    """An adversarial mix: patch events in any order on any CPU, ties in time,
    drops, noise messages and iotimes.  Times within a CPU are non-decreasing
    (so merged order is well defined), but collide across CPUs."""
    rnd = random.Random(seed)
    raw = []
    for _ in range(n):
        cpu = rnd.randrange(cpus)
        t = 1_000_000 + rnd.randrange(spread)
        kind = rnd.choices(["patch", "noise", "iot"], [8, 1, 1])[0]
        raw.append((cpu, t, kind, rnd.random()))
    raw.sort(key=lambda r: (r[0], r[1]))
    tr = Trace()
    for cpu, t, kind, u in raw:
        ovfl = rnd.choice([1, 3, 70000 % 65536]) if rnd.random() < 0.04 else 0
        if kind == "patch":
            ev = rnd.choices(PATCH, [5, 1, 1, 4, 2, 2])[0]
            tr.add_event(cpu, t, ev, rnd.randrange(1, nodeids + 1),
                         err=rnd.choice([-11, -16, -5, -28]), fh=int(u * 1000), ovfl=ovfl)
        elif kind == "noise":
            tr.add_text(cpu, t, rnd.choice([
                text("cs_congestion", csid=42),
                "fuse_inval_files_work: something new on [3]",
                "pcs_foo: unrelated",
                "no prefix at all",
            ]), ovfl)
        else:
            tr.add(cpu, t, iotimes(t, rnd.randrange(0, nodeids + 1), ovfl=ovfl), ovfl)
    return tr
