"""The terminal screen of ``ktrace analyze``, rendered from the summary dict only.

Plain ASCII, aligned columns, units on every number: meant to be read at 3 a.m.
over ssh, pasted into a ticket, or diffed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .storage import render_sections


def human_us(us: int | None) -> str:
    """A duration with a readable unit: 850 us, 12.345 ms, 3.200000 s."""
    if us is None:
        return "-"
    if abs(us) < 1000:
        return f"{us} us"
    if abs(us) < 1_000_000:
        return f"{us / 1000:.3f} ms"
    return f"{us / 1_000_000:.6f} s"


def seconds(us: int | None) -> str:
    """A time on the trace clock as seconds.micros (like ``ktrace decode``)."""
    return "-" if us is None else f"{us // 1_000_000}.{us % 1_000_000:06d}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> list[str]:
    """Right-aligned columns (the first one left-aligned only if it is text)."""
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return [indent + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in cells]


def _n(v: int) -> str:
    return f"{v:,}"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _when(ep: dict[str, Any], key: str) -> str:
    wall = ep.get(key.replace("_us", "_wall"))
    return wall if wall else seconds(ep[key])


def render(s: dict[str, Any]) -> str:
    """The whole report."""
    t = s["trace"]
    inv = s["invalidations"]
    out: list[str] = []
    add = out.append
    add(f"ktrace analyze  {t['path']}")
    if t["first_us"] is not None:
        add(f"  trace     {seconds(t['first_us'])} .. {seconds(t['last_us'])} s on the trace "
            f"clock ({human_us(t['span_us'])})")
        if t["first_wall"]:
            add(f"  wall      {t['first_wall']} .. {t['last_wall']}  "
                f"(boot time: {s['clock']['source']})")
    add(f"  records   {_n(t['records'])} on {_plural(t['cpus'], 'CPU')}: {_n(t['text_records'])} "
        f"text, {_n(t['iotimes_records'])} iotimes, {_n(t['unknown_records'])} unknown; "
        f"{_n(t['invalidate_records'])} about invalidations")
    if t["dropped_at_least"] or t["skipped_bytes"]:
        add(f"  lost      >= {_n(t['dropped_at_least'])} records dropped in "
            f"{_plural(t['drop_windows'], 'window')}, {_n(t['skipped_bytes'])} bytes skipped, "
            f"{_plural(t['resyncs'], 'resync')}")
    else:
        add("  lost      nothing: no records dropped, no bytes skipped")
    sel = s["selection"]
    picked = [f"nodeid {sel['nodeid']}" if sel["nodeid"] is not None else "",
              f"since {seconds(sel['since_us'])} s" if sel["since_us"] is not None else "",
              f"until {seconds(sel['until_us'])} s" if sel["until_us"] is not None else ""]
    if any(picked):
        add(f"  selected  {', '.join(p for p in picked if p)} (episodes overlapping it)")
    for w in s["warnings"]:
        add(f"WARNING: {w}")
    add("")
    d = inv["duration_us"]
    add(f"invalidations  {_plural(inv['episodes'], 'episode')} on "
        f"{_plural(inv['nodeids'], 'nodeid')}: {_n(inv['complete'])} complete, "
        f"{_n(inv['in_progress'])} in progress, {_n(inv['no_start'])} without a start; "
        f"{_n(inv['lost_overlap'])} overlap lost records")
    if d["count"]:
        add(f"  duration     p50 {human_us(d['p50'])}   p90 {human_us(d['p90'])}   "
            f"p99 {human_us(d['p99'])}   max {human_us(d['max'])}   total {human_us(d['total'])}"
            f"   (over {_plural(d['count'], 'episode')} with a start and an end)")
    if s["in_progress"]:
        add("")
        add(f"STILL IN PROGRESS at the end of the trace ({len(s['in_progress'])}): opens of "
            "these files block until the invalidation ends")
        out.extend(table(
            ["nodeid", "userspace", "first seen", "open for >=", "attempts", "errors",
             "last err", "blocked opens", "poisoned"],
            [(e["nodeid"], e["userspace_id"], _when(e, "first_seen_us"),
              human_us(e["open_for_at_least_us"]), e["attempts"],
              e["write_errors"] + e["pages_errors"], _err(e), e["blocked_opens"],
              e["pending_files"]) for e in s["in_progress"]]))
    if s["slowest"]:
        add("")
        add(f"slowest {len(s['slowest'])}")
        out.extend(_episodes(s["slowest"]))
    if "episodes" in s:
        add("")
        add(f"every episode of nodeid {sel['nodeid']}")
        out.extend(_episodes(s["episodes"]) if s["episodes"] else ["  (none)"])
    r = s["retries"]
    add("")
    add(f"retries        {_n(r['retries'])} in {_plural(r['episodes_with_retries'], 'episode')}"
        f"; most attempts on one episode: {r['max_attempts'] if r['max_attempts'] else 0}")
    if s["errors"]:
        add("errors by code")
        out.extend(table(["kind", "err", "name", "count"],
                         [(e["kind"], e["err"], e["name"], _n(e["count"])) for e in s["errors"]]))
    else:
        add("errors         none traced")
    b = s["blocked_opens"]
    worst = (f"; worst wait {human_us(b['worst_wait_us'])} (nodeid {b['worst_nodeid']})"
             if b["worst_wait_us"] is not None else "")
    add(f"blocked opens  {_n(b['count'])} in {_plural(b['episodes'], 'episode')}{worst}")
    p = s["poisoned_files"]
    add(f"poisoned files {_n(p['count'])} ({_n(p['distinct_files'])} distinct on "
        f"{_plural(p['nodeids'], 'nodeid')}): their reads and writes fail with -EIO")
    out += render_sections(s)
    return "\n".join(out) + "\n"


def _err(e: dict[str, Any]) -> str:
    if e["last_err"] is None:
        return "-"
    return f"{e['last_err']} {e['last_err_name']}" if e["last_err_name"] else str(e["last_err"])


def _episodes(eps: list[dict[str, Any]]) -> list[str]:
    return table(
        ["nodeid", "userspace", "start", "end", "duration", "attempts", "w.err", "p.err",
         "last err", "blocked", "worst wait", "poisoned", "status", "lost?"],
        [(e["nodeid"], e["userspace_id"], _when(e, "start_us"), _when(e, "end_us"),
          human_us(e["duration_us"]),
          e["attempts"], e["write_errors"], e["pages_errors"], _err(e), e["blocked_opens"],
          human_us(e["max_open_wait_us"]), e["pending_files"], e["status"],
          "yes" if e["lost_overlap"] else "") for e in eps])
