"""The relay model: padding, no-overwrite drops and the kernel's ovfl arithmetic."""

from ktrace_decode.emit.relay import RelayBuffer
from ktrace_decode.formats import layouts as L


def _write(rb, t, n=20):
    return rb.write(L.TYPE_TEXT, t, b"x" * (n - 1) + b"\0", {"t": t})


def test_padding_when_a_record_does_not_fit():
    rb = RelayBuffer(subbuf_size=100, n_subbufs=4)
    assert all(_write(rb, t, 20) for t in range(3))  # 3 x 36 = 108 > 100: third starts slot 1
    assert [(w.slot, w.offset) for w in rb.accepted] == [(0, 0), (0, 36), (1, 0)]
    img, placed = rb.raw()
    assert len(img) == 400 and img[72:100] == bytes(28)  # padding left as it was (zeros)
    assert [off for off, _ in placed] == [0, 36, 100]


def test_no_overwrite_keeps_the_oldest_and_counts_drops():
    rb = RelayBuffer(subbuf_size=36, n_subbufs=2)  # one record per sub-buffer
    results = [_write(rb, t) for t in range(6)]
    assert results == [True, True, False, False, False, False]
    assert rb.dropped_total == 4 and rb.drop_counter == 4
    rb.read_all()
    assert _write(rb, 10)
    assert rb.accepted[-1].ovfl == 4 and rb.drop_counter == 0


def test_ovfl_is_16_bits_and_resets_only_when_nonzero():
    rb = RelayBuffer(subbuf_size=36, n_subbufs=1)
    rb.drop_counter = 65536  # exactly 2**16 drops: the truncated value is 0
    rb.offset = 0
    rb.produced = rb.consumed = 0
    assert _write(rb, 1)
    assert rb.accepted[-1].ovfl == 0 and rb.drop_counter == 65536  # not reset
    assert not _write(rb, 2)  # full: one more drop
    assert rb.drop_counter == 65537
    rb.read_all()
    assert _write(rb, 3)
    assert rb.accepted[-1].ovfl == 1 and rb.drop_counter == 0


def test_stale_bytes_stay_behind_a_shorter_lap():
    rb = RelayBuffer(subbuf_size=100, n_subbufs=2)
    assert _write(rb, 1, 30) and _write(rb, 2, 30)  # slot 0: 2 x 46 bytes
    assert _write(rb, 3, 60)  # does not fit: slot 1
    rb.read_all()  # slot 0 is free again
    assert _write(rb, 4, 60)  # slot 0 starts a new, shorter lap
    img, placed = rb.raw()
    assert [w.meta["t"] for _, w in placed] == [3, 4]  # slots ordered by time
    assert img[76:92] == rb.accepted[1].data[30:46]  # the old lap's bytes are still there
    data, placed = rb.stream()
    assert [w.meta["t"] for _, w in placed] == [1, 2, 3, 4] and len(data) == 46 * 2 + 76 * 2


def test_a_record_bigger_than_a_sub_buffer_is_dropped_without_a_switch():
    # kernel/relay.c: relay_switch_subbuf() checks "toobig" first, so the
    # current sub-buffer is neither padded nor left, and the drop is counted.
    rb = RelayBuffer(subbuf_size=100, n_subbufs=4)
    assert _write(rb, 1, 20)
    assert not _write(rb, 2, 200)  # 216 bytes > 100
    assert rb.produced == 0 and rb.offset == 36 and rb.dropped_total == 1
    assert _write(rb, 3, 20)
    assert [(w.slot, w.offset, w.ovfl) for w in rb.accepted] == [(0, 0, 0), (0, 36, 1)]
