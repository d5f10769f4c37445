"""A 1M-record dump: the filter count is right and the end of the stream is reachable."""

import numpy as np

from ktrace_decode.decode import decode
from ktrace_decode.formats import layouts as L
from ktrace_decode.tui import create_app

N = 1_000_000


def _dump(tmp_path):
    """1M fixed-size text records, every 7th one a 'needle', built with numpy."""
    plain = L.build_record(L.TYPE_TEXT, 0, L.text_payload("fn: ordinary line 0000000"))
    needle = L.build_record(L.TYPE_TEXT, 0, L.text_payload("fn: needle in line 000000"))
    assert len(plain) == len(needle)
    size = len(plain)
    rows = np.frombuffer(plain * N, np.uint8).reshape(N, size).copy()
    rows[::7] = np.frombuffer(needle, np.uint8)
    times = (5_000_000_000 + np.arange(N, dtype=np.uint64) * 3).astype("<u8")
    rows[:, 8:16] = times.view(np.uint8).reshape(N, 8)
    d = tmp_path / "big"
    d.mkdir()
    (d / "trace0").write_bytes(rows.tobytes())
    return d


async def test_filter_and_scroll_to_the_end_on_a_million_records(tmp_path):
    decoded = decode(_dump(tmp_path))
    assert decoded.n_records == N
    app = create_app(decoded=decoded)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("slash", *"needle", "enter")
        await pilot.pause()
        expected = (N + 6) // 7
        assert str(app.query_one("#events-status").render()) == f"{expected:,} matches"
        view = app.query_one("#events-view")
        await pilot.press("end")
        await pilot.pause()
        assert view.cursor == N - 1
        last_line = view.line(N - 1)
        assert (N - 1) % 7 == 0 and last_line.endswith("fn: needle in line 000000")
        assert f"{(5_000_000_000 + 3 * (N - 1)) % 1_000_000:06d}" in last_line
        assert view.scroll_offset.y >= N - view.size.height
        await pilot.press("N")  # previous match before the last record (itself a needle)
        assert view.cursor == N - 1 - 7
