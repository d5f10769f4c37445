"""The merged record stream as a virtually scrolled view.

Only the visible lines are formatted: ``render_line`` slices the Polars frame
for the row it is asked for (cached per visible window), so a dump of
millions of records scrolls as fast as a small one.  Filtering computes the
matching row indices once, vectorised; ``n`` / ``N`` jump between them.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from .. import render

_CURSOR = Style(reverse=True)
_MATCH = Style(color="yellow", bold=True)
_LOST = Style(color="red", bold=True)
_WINDOW = 256  # rows formatted at once around the viewport


def format_rows(df: pl.DataFrame) -> list[str]:
    """Display lines for a slice of records: the very lines ``ktrace decode`` prints."""
    return render.text_lines(df).to_list()


class EventsView(ScrollView, can_focus=True):
    """Scrollable, filterable view of a records frame (sorted by time)."""

    BINDINGS = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "move(-20)", "Page up", show=False),
        Binding("pagedown", "move(20)", "Page down", show=False),
        Binding("home", "jump_to(0)", "Top", show=False),
        Binding("end", "jump_to(-1)", "Bottom", show=False),
    ]

    cursor = reactive(0)

    class Moved(Message):
        """The cursor moved (the app shows where we are)."""

        def __init__(self, row: int) -> None:
            super().__init__()
            self.row = row

    def __init__(self, records: pl.DataFrame, **kw: object) -> None:
        super().__init__(**kw)
        self.records = records
        self.matches = np.zeros(0, np.int64)
        self.match_set: set[int] = set()
        self._cache_start = -1
        self._cache: list[str] = []
        self.virtual_size = Size(200, records.height)

    # --- data -----------------------------------------------------------------
    def set_records(self, records: pl.DataFrame) -> None:
        self.records = records
        self._cache_start = -1
        self.virtual_size = Size(200, records.height)
        self.cursor = 0
        self.refresh()

    def line(self, row: int) -> str:
        if not (self._cache_start <= row < self._cache_start + len(self._cache)):
            start = max(0, row - _WINDOW // 4)
            self._cache = format_rows(self.records.slice(start, _WINDOW))
            self._cache_start = start
        return self._cache[row - self._cache_start]

    def apply_filter(self, expr: pl.Expr | None) -> int:
        """Mark the rows matching ``expr``; returns the match count."""
        if expr is None:
            self.matches = np.zeros(0, np.int64)
        else:
            hit = self.records.select(expr.fill_null(False)).to_series()
            self.matches = np.flatnonzero(hit.to_numpy())
        self.match_set = set(self.matches[:100_000].tolist()) if len(self.matches) else set()
        self.refresh()
        return len(self.matches)

    # --- rendering --------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        row = self.scroll_offset.y + y
        if row >= self.records.height:
            return Strip.blank(self.size.width)
        text = self.line(row)[self.scroll_offset.x:]
        style = _CURSOR if row == self.cursor else (_MATCH if row in self.match_set else None)
        if style is None and self.records["ovfl"][row]:
            style = _LOST  # records were dropped just before this one
        return Strip([Segment(text.ljust(self.size.width)[: self.size.width], style)])

    # --- navigation --------------------------------------------------------------
    def watch_cursor(self, old: int, new: int) -> None:
        self.scroll_to_region_row(new)
        self.post_message(self.Moved(new))
        self.refresh()

    def scroll_to_region_row(self, row: int) -> None:
        top = self.scroll_offset.y
        h = max(self.size.height, 1)
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + h:
            self.scroll_to(y=row - h + 1, animate=False)

    def action_move(self, delta: int) -> None:
        if self.records.height:
            self.cursor = int(min(max(self.cursor + delta, 0), self.records.height - 1))

    def action_jump_to(self, row: int) -> None:
        if self.records.height:
            self.cursor = self.records.height - 1 if row < 0 else min(row, self.records.height - 1)

    def next_match(self, forward: bool = True) -> int | None:
        """Move to the next (or previous) match after the cursor; its index among matches."""
        if not len(self.matches):
            return None
        if forward:
            i = int(np.searchsorted(self.matches, self.cursor, side="right"))
            i = 0 if i >= len(self.matches) else i
        else:
            i = int(np.searchsorted(self.matches, self.cursor, side="left")) - 1
            i = len(self.matches) - 1 if i < 0 else i
        self.cursor = int(self.matches[i])
        return i

    def goto_time(self, time_us: int) -> None:
        """The first record at or after ``time_us``."""
        t = self.records["time_us"]
        self.cursor = int(min(t.search_sorted(time_us, side="left"), max(t.len() - 1, 0)))
