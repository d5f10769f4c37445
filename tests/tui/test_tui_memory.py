"""``ktrace tui`` refuses, in one line, a dump it could not hold in memory."""

from __future__ import annotations

import pytest

from ktrace_decode.cli import main
from ktrace_decode.samples import sample_path
from ktrace_decode.sources import open_dump
from ktrace_decode.tui import app as tui_app
from ktrace_decode.tui import memory_guard as G

STORM = sample_path("storm")
STORM_BYTES = sum(t.size for t in open_dump(STORM).traces)


@pytest.fixture
def opened(monkeypatch):
    """Stands in for the Textual app: records what it was given instead of running."""
    seen = []

    class FakeApp:
        def __init__(self, decoded):
            self.decoded = decoded

        def run(self):
            seen.append(self.decoded)

    monkeypatch.setattr(tui_app, "create_app", lambda decoded: FakeApp(decoded))
    return seen


def _room(monkeypatch, n):
    monkeypatch.setattr(G, "available", lambda: n)


def test_a_dump_bigger_than_the_room_is_refused_in_one_line(monkeypatch, capsys, opened):
    _room(monkeypatch, G.estimate(STORM_BYTES) - 1)
    code = main(["tui", str(STORM)])
    err = capsys.readouterr().err
    assert code == 1 and opened == []
    assert err.startswith(f"ktrace: error: {STORM}: the TUI holds the whole dump in memory")
    assert err.count("\n") == 1
    assert "`ktrace analyze` and `ktrace export` stream it" in err
    assert "--ignore-memory" in err


def test_just_enough_room_opens_it(monkeypatch, capsys, opened):
    _room(monkeypatch, G.estimate(STORM_BYTES))
    assert main(["tui", str(STORM)]) == 0
    assert [d.n_records for d in opened] == [604]  # the storm sample, decoded


def test_ignore_memory_opens_it_anyway(monkeypatch, opened):
    _room(monkeypatch, 0)
    assert main(["tui", str(STORM), "--ignore-memory"]) == 0
    assert len(opened) == 1


def test_unknown_room_refuses_nothing(monkeypatch, opened):
    _room(monkeypatch, None)
    assert main(["tui", str(STORM)]) == 0 and len(opened) == 1


def test_estimate_scales_with_the_trace_bytes():
    assert G.estimate(0) == G.BASELINE_BYTES
    # The measurement behind the factor: the 10M-record benchmark dump (0.98 GB)
    # peaked at 4.2 GB in decode + analysis + the Events view.
    assert 4.2e9 <= G.estimate(984_600_929) <= 4.6e9


MEMINFO = "MemTotal:       32000000 kB\nMemFree:  1000 kB\nMemAvailable:    2000000 kB\n"


def _files(tmp_path, limit=None, usage="0"):
    (tmp_path / "meminfo").write_text(MEMINFO)
    if limit is not None:
        (tmp_path / "limit").write_text(limit + "\n")
        (tmp_path / "usage").write_text(usage + "\n")
    return tmp_path / "meminfo", ((tmp_path / "limit", tmp_path / "usage"),)


@pytest.mark.parametrize(("limit", "usage", "want"), [
    (None, "0", 2_048_000_000),  # no cgroup files: MemAvailable (kB)
    ("max", "5", 2_048_000_000),  # cgroup v2 without a limit
    (str(9223372036854771712), "5", 2_048_000_000),  # cgroup v1 without a limit
    ("1000000000", "250000000", 750_000_000),  # a container's limit, less what it uses
    ("1000000000", "1200000000", 0),  # already over its limit
    ("garbage", "0", 2_048_000_000),  # unreadable figures are ignored
])
def test_available_is_the_smallest_known_room(tmp_path, limit, usage, want):
    meminfo, cgroups = _files(tmp_path, limit, usage)
    assert G.available(meminfo, cgroups) == want


def test_available_is_none_when_nothing_can_be_read(tmp_path):
    assert G.available(tmp_path / "no-meminfo", ((tmp_path / "x", tmp_path / "y"),)) is None
