"""One hand-built incident whose every analyze number is known by hand."""

from __future__ import annotations

from pl_builders import Trace


def incident() -> Trace:
    tr = Trace()
    # nodeid 10: a waiter before the work starts, a write-back retry on another CPU.
    tr.add_event(0, 999_900, "waiting", 10)
    tr.add_event(0, 1_000_000, "start", 10)
    tr.add_event(0, 1_000_050, "pending", 10, fh=5)
    tr.add_event(0, 1_000_100, "write_error", 10, err=-11)
    tr.add_event(1, 1_000_200, "start", 10)
    tr.add_event(1, 1_001_000, "end", 10)
    # nodeid 30: only its end is in the trace.
    tr.add_event(1, 1_500_000, "end", 30)
    # nodeid 20: twice; the second time page invalidation fails twice.
    tr.add_event(0, 2_000_000, "start", 20)
    tr.add_event(1, 2_000_300, "end", 20)
    tr.add_event(0, 3_000_000, "start", 20)
    tr.add_event(0, 3_000_010, "pages_error", 20, err=-16)
    tr.add_event(0, 3_000_020, "start", 20)
    tr.add_event(0, 3_000_030, "pages_error", 20, err=-16)
    tr.add_event(0, 3_000_040, "start", 20)
    tr.add_event(0, 3_005_000, "end", 20)
    # nodeid 40: stuck; an open waits, a file is linked twice (same fh).
    tr.add_event(1, 4_000_000, "start", 40)
    tr.add_event(1, 4_100_000, "waiting", 40)
    tr.add_event(1, 4_200_000, "pending", 40, fh=9)
    tr.add_event(0, 4_200_001, "pending", 40, fh=9)
    # CPU 2: noise, then a record after 7 lost ones: the window meets nodeid 20's first episode.
    tr.add_text(2, 1_999_000, "pcs_foo: bar")
    tr.add_text(2, 2_000_100, "pcs_foo: baz", ovfl=7)
    tr.add_text(2, 5_000_000, "pcs_foo: last record")
    return tr
