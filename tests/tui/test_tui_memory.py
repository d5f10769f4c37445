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
FROM_MEMINFO = 2_048_000_000  # MemAvailable is in kB


def _tree(tmp_path, self_cgroup: str, files: dict[str, str]):
    """A fake /proc/meminfo, /proc/self/cgroup and cgroup mount under tmp_path."""
    (tmp_path / "meminfo").write_text(MEMINFO)
    (tmp_path / "self").write_text(self_cgroup)
    root = tmp_path / "cg"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text + "\n")
    return G.available(tmp_path / "meminfo", tmp_path / "self", root)


V2 = "0::/system.slice/x.service\n"
V1 = "9:name=systemd:/\n4:memory:/box/one\n3:cpuset:/\n"


@pytest.mark.parametrize(("self_cgroup", "files", "want"), [
    (V2, {}, FROM_MEMINFO),  # no cgroup files: MemAvailable
    (V2, {"system.slice/x.service/memory.max": "max",
          "system.slice/x.service/memory.current": "5"}, FROM_MEMINFO),  # v2, no limit
    (V2, {"system.slice/x.service/memory.max": "1000000000",
          "system.slice/x.service/memory.current": "250000000"}, 750_000_000),  # own limit
    (V2, {"system.slice/memory.max": "600000000",  # a parent slice's limit binds too
          "system.slice/memory.current": "100000000",
          "system.slice/x.service/memory.max": "1000000000",
          "system.slice/x.service/memory.current": "50000000"}, 500_000_000),
    (V2, {"system.slice/x.service/memory.max": "1000000000",
          "system.slice/x.service/memory.current": "1200000000"}, 0),  # over its limit
    (V2, {"system.slice/x.service/memory.max": "garbage",
          "system.slice/x.service/memory.current": "0"}, FROM_MEMINFO),  # unreadable: ignored
    (V1, {"memory/box/one/memory.limit_in_bytes": "1000000000",
          "memory/box/one/memory.usage_in_bytes": "300000000"}, 700_000_000),
    (V1, {"memory/box/one/memory.limit_in_bytes": str(9223372036854771712),  # v1 "no limit"
          "memory/box/one/memory.usage_in_bytes": "300000000"}, FROM_MEMINFO),
    ("0::/\n", {"memory.max": "900000000", "memory.current": "0"}, 900_000_000),  # container
])
def test_available_is_the_smallest_room_of_meminfo_and_every_cgroup_level(
        tmp_path, self_cgroup, files, want):
    assert _tree(tmp_path, self_cgroup, files) == want


def test_available_is_none_when_nothing_can_be_read(tmp_path):
    assert G.available(tmp_path / "no-meminfo", tmp_path / "no-self", tmp_path) is None
