"""``ktrace tui``: an incident browser for a dump whose event loop stalled.

One app factory (:func:`create_app`) serves the CLI and the tests.  The dump is
decoded and analysed in a worker thread with a progress bar; the screens only
read the pipeline's frames (``pipeline.analyze_decoded``), never bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import (
    DataTable,
    Footer,
    Header,
    Input,
    Label,
    ProgressBar,
    Static,
    TabbedContent,
    TabPane,
)

from ..decode import Decoded, decode_dump, require_records
from ..pipeline import Analysis, analyze_decoded
from ..sources import in_memory, open_dump
from .events_view import EventsView, format_rows
from .filters import FilterError, parse_filter

TABS = ("overview", "episodes", "events", "io", "health")
SLOW_US = 100_000  # episodes slower than this are highlighted


def _us(v: Any) -> str:
    if v is None:
        return "-"
    v = int(v)
    if abs(v) >= 1_000_000:
        return f"{v / 1e6:.3f} s"
    if abs(v) >= 1000:
        return f"{v / 1000:.1f} ms"
    return f"{v} us"


def _sec(v: Any) -> str:
    return "-" if v is None else f"{int(v) // 1_000_000}.{int(v) % 1_000_000:06d}"


def histogram(durations: list[int], width: int = 40) -> list[str]:
    """A text histogram of durations in log-spaced bins."""
    if not durations:
        return ["(no complete episode)"]
    edges = [0, 1_000, 10_000, 100_000, 1_000_000, 10_000_000]
    labels = ["<1 ms", "1-10 ms", "10-100 ms", "0.1-1 s", "1-10 s", ">=10 s"]
    counts = [0] * len(labels)
    for d in durations:
        i = sum(1 for e in edges[1:] if d >= e)
        counts[i] += 1
    top = max(counts)
    return [f"{lab:>10} {'█' * max(1 if c else 0, round(c / top * width)):<{width}} {c}"
            for lab, c in zip(labels, counts, strict=True)]


class HelpScreen(ModalScreen[None]):
    """Keys, generated from the bindings in force."""

    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "Close")]

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        text = "\n".join(f"  {k:<12} {d}" for k, d in self.rows)
        with Vertical(id="help"):
            yield Static("[b]ktrace tui — keys[/b]\n\n" + text + "\n\n  (esc closes)")


class PromptScreen(ModalScreen[str | None]):
    """Ask one line (go to time)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Label(self.question)
            yield Input(id="answer")

    @on(Input.Submitted)
    def done(self, ev: Input.Submitted) -> None:
        self.dismiss(ev.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class EpisodeScreen(Screen[None]):
    """Every record of one nodeid around one episode, relative to its start."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]
    MARGIN_US = 5_000

    def __init__(self, analysis: Analysis, episode: dict[str, Any], records: pl.DataFrame):
        super().__init__()
        self.analysis = analysis
        self.ep = episode
        self.records = records

    def rows(self) -> list[tuple[str, ...]]:
        ep = self.ep
        t0 = ep["start_us"] if ep["start_us"] is not None else ep["first_seen_us"]
        lo = ep["first_seen_us"] if ep["first_seen_us"] is not None else ep["start_us"]
        hi = ep["end_us"]
        ev = self.analysis.events.with_row_index("row")
        sel = ev.filter(pl.col("nodeid") == ep["nodeid"])
        if lo is not None:
            sel = sel.filter(pl.col("time_us") >= lo - self.MARGIN_US)
        if hi is not None:
            sel = sel.filter(pl.col("time_us") <= hi + self.MARGIN_US)
        out = []
        for r in sel.iter_rows(named=True):
            rel = "" if t0 is None else f"{(r['time_us'] - t0) / 1000:+.3f} ms"
            mark = {"write_error": "RETRY", "pages_error": "RETRY", "waiting": "BLOCKED",
                    "pending": "POISONED", "end": "END", "start": "START"}.get(r["event"], "")
            note = ""
            if r["event"] == "waiting" and hi is not None:
                note = f"waited {_us(hi - r['time_us'])}"
            elif r["err"] is not None:
                note = f"err={r['err']}"
            text = r["text"] or f"iotimes ino={r['nodeid'] - 1 if r['nodeid'] else '-'}"
            out.append((rel, str(r["cpu"]), r["event"], mark, note, text))
        return out

    def compose(self) -> ComposeResult:
        ep = self.ep
        yield Header()
        head = (f"[b]nodeid {ep['nodeid']}[/b] (userspace {ep['userspace_id']})  "
                f"status [b]{ep['status']}[/b]  duration {_us(ep['duration_us'])}  "
                f"attempts {ep['attempts']}  write errors {ep['write_errors']}  "
                f"page errors {ep['pages_errors']}  pending files {ep['pending_files']}  "
                f"blocked opens {ep['blocked_opens']} (worst wait "
                f"{_us(ep['max_open_wait_us'])})")
        if ep["lost_overlap"]:
            head += "\n[red]records were dropped during this episode: counts may be incomplete[/]"
        yield Static(head, id="ep-head")
        table: DataTable[str] = DataTable(id="ep-records", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static(self._losses(), id="ep-loss")
        yield Footer()

    def _losses(self) -> str:
        lo = self.ep["first_seen_us"] or self.ep["start_us"] or 0
        hi = self.ep["end_us"] or (1 << 62)
        loss = self.analysis.loss.filter(pl.col("kind") == "dropped")
        hits = loss.filter((pl.col("after_us").fill_null(0) <= hi) & (pl.col("before_us") >= lo))
        if hits.is_empty():
            return "loss windows overlapping: none"
        return "loss windows overlapping: " + "; ".join(
            f"cpu {r['cpu']}: >={r['records_at_least']} lost between {_sec(r['after_us'])} "
            f"and {_sec(r['before_us'])}" for r in hits.iter_rows(named=True))

    def on_mount(self) -> None:
        t = self.query_one("#ep-records", DataTable)
        t.add_columns("t - start", "cpu", "event", "mark", "note", "record")
        for row in self.rows():
            t.add_row(*row)


class KtraceApp(App[None]):
    """The incident browser."""

    TITLE = "ktrace"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("tab", "next_tab", "Next screen", priority=True),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("n", "match(True)", "Next match"),
        Binding("N", "match(False)", "Prev match", key_display="N"),
        Binding("g", "goto_time", "Go to time"),
        Binding("escape", "back", "Back", show=False),
    ]

    def __init__(self, path: str | Path | None = None, decoded: Decoded | None = None,
                 **decode_options: Any) -> None:
        super().__init__()
        self.path = str(path) if path is not None else None
        self.decoded = decoded
        self.decode_options = decode_options
        self.analysis: Analysis | None = None
        self.view_frame: pl.DataFrame | None = None
        self.episode_rows: list[dict[str, Any]] = []

    # --- layout -------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="loading"):
            yield Label("decoding…", id="loading-label")
            yield ProgressBar(total=100, show_eta=False, id="progress")
        with TabbedContent(id="tabs"):
            with TabPane("Overview", id="overview"):
                yield VerticalScroll(Static(id="overview-text"))
            with TabPane("Episodes", id="episodes"):
                yield DataTable(id="episodes-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Events", id="events"):
                yield Input(placeholder="filter: regex, event=waiting, cpu=2, nodeid=42",
                            id="filter")
                yield Label("", id="events-status")
                yield EventsView(pl.DataFrame(), id="events-view")
            with TabPane("IO", id="io"):
                yield Static(id="io-text")
                yield DataTable(id="io-table", zebra_stripes=True)
            with TabPane("Health", id="health"):
                yield VerticalScroll(Static(id="health-text"),
                                     DataTable(id="health-table", zebra_stripes=True))
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#tabs").display = False
        self.load()

    # --- loading in a worker --------------------------------------------------------
    def _progress(self, what: str, done: int, total: int) -> None:
        self.call_from_thread(self._set_progress, f"decoding {Path(what).name}",
                              int(done / max(total, 1) * 80))

    def _set_progress(self, label: str, pct: int) -> None:
        self.query_one("#loading-label", Label).update(label)
        self.query_one("#progress", ProgressBar).update(progress=pct)

    @work(thread=True, exclusive=True)
    def load(self) -> None:
        decoded = self.decoded
        if decoded is None:
            # Read, not mapped: see sources.in_memory (a rewritten dump must
            # not kill a TUI that has it open).
            decoded = require_records(decode_dump(in_memory(open_dump(self.path)),
                                                  progress=self._progress,
                                                  **self.decode_options))
        self.call_from_thread(self._set_progress, "analysing", 85)
        analysis = analyze_decoded(decoded)
        self.call_from_thread(self.loaded, decoded, analysis)

    def loaded(self, decoded: Decoded, analysis: Analysis) -> None:
        self.decoded = decoded
        self.analysis = analysis
        self.sub_title = Path(decoded.path).name  # the name, not where it was copied to
        self.view_frame = decoded.records.with_columns(
            analysis.events["event"], analysis.events["nodeid"])
        self.query_one("#overview-text", Static).update(self.overview_text())
        self._fill_episodes()
        self.query_one("#events-view", EventsView).set_records(self.view_frame)
        self._fill_health()
        self._fill_io()
        self.query_one("#loading").display = False
        self.query_one("#tabs").display = True

    # --- overview ---------------------------------------------------------------------
    def overview_text(self) -> str:
        assert self.analysis is not None and self.decoded is not None
        s = self.analysis.summary
        tr, inv = s["trace"], s["invalidations"]
        lines = [
            f"[b]{Path(tr['path']).name}[/b]",
            f"span      {_sec(tr['first_us'])} .. {_sec(tr['last_us'])} ({_us(tr['span_us'])})",
            f"records   {tr['records']:,} on {tr['cpus']} CPUs "
            f"({tr['invalidate_records']:,} about invalidations)",
        ]
        if tr["dropped_at_least"] or tr["skipped_bytes"]:
            lines.append(f"[b red]lost      >= {tr['dropped_at_least']:,} records dropped, "
                         f"{tr['skipped_bytes']:,} bytes skipped, {tr['resyncs']} resyncs[/]")
        else:
            lines.append("[green]lost      nothing: no drops, no skipped bytes[/]")
        if not tr["invalidate_records"]:
            lines.append("[b yellow]no invalidate_file records at all: ktrace level below "
                         "LOG_TRACE, or a kernel without the patch?[/]")
        d = inv["duration_us"]
        lines += [
            "",
            f"[b]invalidations[/b]  {inv['episodes']} episodes on {inv['nodeids']} nodeids: "
            f"{inv['complete']} complete, "
            + (f"[b red]{inv['in_progress']} in progress[/], " if inv["in_progress"]
               else "0 in progress, ")
            + f"{inv['no_start']} without a start",
            f"duration  p50 {_us(d['p50'])}  p90 {_us(d['p90'])}  p99 {_us(d['p99'])}  "
            f"max {_us(d['max'])}  total {_us(d['total'])}",
            "",
            *histogram(self.analysis.invalidations["duration_us"].drop_nulls().to_list()),
            "",
            "[b]slowest[/b]",
            f"  {'nodeid':>8} {'duration':>10} {'attempts':>8} {'errors':>6} {'blocked':>7}",
        ]
        for e in s["slowest"][:10]:
            lines.append(f"  {e['nodeid']:>8} {_us(e['duration_us']):>10} {e['attempts']:>8} "
                         f"{e['write_errors'] + e['pages_errors']:>6} {e['blocked_opens']:>7}")
        blocked = self.analysis.invalidations["blocked_opens"].sum()
        worst = self.analysis.invalidations["max_open_wait_us"].max()
        poisoned = self.analysis.invalidations["pending_files"].sum()
        lines += ["", f"[b]blocked opens[/b]  {blocked}, worst wait {_us(worst)}",
                  f"[b]poisoned files[/b] {poisoned} (their reads and writes fail with -EIO)"]
        return "\n".join(lines)

    # --- episodes ---------------------------------------------------------------------
    _SORT_COLUMNS = {"nodeid": "nodeid", "start": "start_us", "duration": "duration_us",
                     "attempts": "attempts", "errors": "write_errors", "pending": "pending_files",
                     "blocked": "blocked_opens", "status": "status", "lost": "lost_overlap"}
    # Fixed widths: auto-sizing while the pane is still hidden gives racy layouts.
    _WIDTHS = (8, 17, 10, 8, 6, 7, 7, 11, 4)

    def _fill_episodes(self, inv: pl.DataFrame | None = None) -> None:
        assert self.analysis is not None
        if inv is None:
            inv = self.analysis.invalidations.sort("start_us", "first_seen_us", nulls_last=True)
        t = self.query_one("#episodes-table", DataTable)
        t.clear(columns=True)
        for label, width in zip(self._SORT_COLUMNS, self._WIDTHS, strict=True):
            t.add_column(label, width=width)
        self.episode_rows = inv.to_dicts()
        for i, e in enumerate(self.episode_rows):
            status = e["status"]
            if status == "in_progress":
                status = "[b red]in_progress[/]"
            dur = _us(e["duration_us"])
            if e["duration_us"] is not None and e["duration_us"] >= SLOW_US:
                dur = f"[b yellow]{dur}[/]"
            t.add_row(str(e["nodeid"]), _sec(e["start_us"]), dur, str(e["attempts"]),
                      str(e["write_errors"] + e["pages_errors"]), str(e["pending_files"]),
                      str(e["blocked_opens"]), status, "yes" if e["lost_overlap"] else "",
                      key=str(i))

    @on(DataTable.RowSelected, "#episodes-table")
    def open_episode(self, ev: DataTable.RowSelected) -> None:
        assert self.analysis is not None and self.decoded is not None
        ep = self.episode_rows[int(ev.row_key.value or 0)]
        self.push_screen(EpisodeScreen(self.analysis, ep, self.decoded.records))

    @on(DataTable.HeaderSelected, "#episodes-table")
    def sort_episodes(self, ev: DataTable.HeaderSelected) -> None:
        """Click a header to sort by it; click again to reverse."""
        assert self.analysis is not None
        key = str(ev.label)
        descending = getattr(self, "_sorted_by", None) == key
        self._sorted_by = None if descending else key
        # The errors column shows write + page errors: sort by the same sum.
        by = (pl.col("write_errors") + pl.col("pages_errors") if key == "errors"
              else pl.col(self._SORT_COLUMNS[key]))
        self._fill_episodes(self.analysis.invalidations.sort(
            by, descending=descending, nulls_last=True))

    # --- io ----------------------------------------------------------------------------
    def _fill_io(self) -> None:
        """Is it the invalidation or the storage underneath? Per chunk server latency."""
        assert self.analysis is not None
        io = self.analysis.summary.get("io") or {}
        slow = io.get("slowest_io") or []
        head = [f"[b]IO latency[/b]: {io.get('iotimes_records', 0):,} iotimes records; "
                "per chunk server and request (us), busiest first"]
        if slow:
            w = slow[0]
            head.append(f"slowest IO: {_us(w['total_us'])} ({w['request']}, nodeid "
                        f"{w['nodeid']}, cpu {w['cpu']}, at {_sec(w['time_us'])})")
        self.query_one("#io-text", Static).update("\n".join(head))
        t = self.query_one("#io-table", DataTable)
        t.clear(columns=True)
        cols = ("csid", "request", "count", "net_p50_us", "net_p99_us", "io_p50_us",
                "io_p99_us", "io_max_us")
        for c in cols:
            t.add_column(c.removesuffix("_us").replace("_", " "), width=max(8, len(c) - 3))
        for r in self.analysis.cs.sort("count", "csid", descending=[True, False]).iter_rows(
                named=True):
            t.add_row(*(str(r[c]) for c in cols))

    # --- health -------------------------------------------------------------------------
    def _fill_health(self) -> None:
        assert self.decoded is not None and self.analysis is not None
        d = self.decoded
        t = self.query_one("#health-table", DataTable)
        t.clear(columns=True)
        t.add_columns("cpu", "layout", "records", "first", "last", "lost >=", "drop windows",
                      "skipped bytes", "resyncs", "backwards", "long text", "unknown")
        for c in d.cpus:
            t.add_row(str(c.cpu), c.layout, f"{c.records:,}", _sec(c.first_time_us),
                      _sec(c.last_time_us), str(c.dropped_at_least), str(c.drop_events),
                      str(c.skipped_bytes), str(c.resyncs), str(c.time_backwards),
                      str(c.long_text), str(c.unknown_type))
        lines = ["[b]per-CPU health[/b] (files, drops, damage)"]
        loss = self.analysis.loss
        for r in loss.iter_rows(named=True):
            if r["kind"] == "dropped":
                lines.append(f"  cpu {r['cpu']}: >={r['records_at_least']} records dropped "
                             f"between {_sec(r['after_us'])} and {_sec(r['before_us'])}")
            else:
                lines.append(f"  cpu {r['cpu']}: {r['kind']} {r['bytes']} bytes at offset "
                             f"{r['start_offset']} of {r['file']}")
        if len(lines) == 1:
            lines.append("  nothing lost: no drops, no skipped bytes")
        self.query_one("#health-text", Static).update("\n".join(lines))

    # --- actions -------------------------------------------------------------------------
    _FOCUS = {"episodes": "#episodes-table", "events": "#events-view", "io": "#io-table",
              "health": "#health-table"}

    @on(TabbedContent.TabActivated)
    def focus_pane(self, ev: TabbedContent.TabActivated) -> None:
        """Keys act on the screen you see: focus its table or stream."""
        target = self._FOCUS.get(ev.pane.id or "")
        # '/' activates the events tab *and* focuses the filter: keep the filter.
        if target and not isinstance(self.focused, Input):
            self.query_one(target).focus()

    def action_next_tab(self) -> None:
        tabs = self.query_one("#tabs", TabbedContent)
        if isinstance(self.screen, EpisodeScreen | HelpScreen | PromptScreen):
            return
        i = TABS.index(tabs.active) if tabs.active in TABS else 0
        tabs.active = TABS[(i + 1) % len(TABS)]

    def action_help(self) -> None:
        rows = [(b.key_display or b.key, b.description) for b in self.BINDINGS]
        rows += [("enter", "open the selected episode"), ("up/down/pgup/pgdn", "move"),
                 ("home/end", "first / last record"), ("mouse", "click tabs, rows, headers")]
        self.push_screen(HelpScreen(rows))

    def action_filter(self) -> None:
        self.query_one("#tabs", TabbedContent).active = "events"
        self.query_one("#filter", Input).focus()

    @on(Input.Submitted, "#filter")
    def run_filter(self, ev: Input.Submitted) -> None:
        view = self.query_one("#events-view", EventsView)
        status = self.query_one("#events-status", Label)
        try:
            expr = parse_filter(ev.value)
        except FilterError as e:
            status.update(f"[red]filter: {e}[/]")
            return
        n = view.apply_filter(expr)
        status.update(f"{n:,} matches" if expr is not None else "")
        view.focus()
        if n:
            view.next_match(True)

    def action_match(self, forward: bool) -> None:
        view = self.query_one("#events-view", EventsView)
        i = view.next_match(forward)
        if i is not None:
            self.query_one("#events-status", Label).update(
                f"match {i + 1:,} of {len(view.matches):,}")

    def action_goto_time(self) -> None:
        def go(answer: str | None) -> None:
            if not answer:
                return
            from ..cli_common import parse_time

            try:
                t = parse_time(answer)
            except Exception as e:  # UsageError: show it, do not crash the UI
                self.notify(str(e), severity="error")
                return
            self.query_one("#tabs", TabbedContent).active = "events"
            view = self.query_one("#events-view", EventsView)
            view.goto_time(t)
            view.focus()

        self.push_screen(PromptScreen("go to time (seconds like 5.0012, or Nus):"), go)

    def action_back(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()
        else:
            self.query_one("#events-view", EventsView).focus()


def create_app(path: str | Path | None = None, decoded: Decoded | None = None,
               **decode_options: Any) -> KtraceApp:
    """The app for a dump path (decoded in a worker) or an already decoded dump."""
    return KtraceApp(path, decoded, **decode_options)


__all__ = ["KtraceApp", "create_app", "format_rows"]
