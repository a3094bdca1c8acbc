"""RingBuffer / PlayoutTracker / PlayoutBuffer (pure core) and BufferSink (in-memory sink)."""

from __future__ import annotations

import tracemalloc
from collections import Counter, deque
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicelive_nb.audio.base import AudioSink
from voicelive_nb.audio.buffers import PlayoutBuffer, PlayoutTracker, RingBuffer
from voicelive_nb.audio.memory import BufferSink
from voicelive_nb.errors import AudioError, ConfigError

# --- RingBuffer ---------------------------------------------------------------------------------


def test_ring_write_read_wraps_around_and_pads_with_silence() -> None:
    ring = RingBuffer(8)
    assert ring.write(np.arange(1, 7, dtype=np.int16)) == 6
    out = np.full(4, -1, dtype=np.int16)
    assert ring.read_into(out) == 4
    assert out.tolist() == [1, 2, 3, 4]
    assert ring.write(np.arange(7, 13, dtype=np.int16)) == 6  # wraps: positions 6,7,0,1,2,3
    assert ring.available == 8
    out = np.full(10, -1, dtype=np.int16)
    assert ring.read_into(out) == 8
    assert out.tolist() == [5, 6, 7, 8, 9, 10, 11, 12, 0, 0]
    assert ring.available == 0


def test_ring_overrun_keeps_the_oldest_and_counts_the_rest() -> None:
    ring = RingBuffer(5)
    assert ring.write(np.arange(1, 4, dtype=np.int16)) == 3
    assert ring.write(np.arange(4, 8, dtype=np.int16)) == 2
    assert (ring.overruns, ring.overrun_frames, ring.free) == (1, 2, 0)
    out = np.zeros(5, dtype=np.int16)
    ring.read_into(out)
    assert out.tolist() == [1, 2, 3, 4, 5]


def test_ring_underrun_is_counted_only_while_playing() -> None:
    ring = RingBuffer(100)
    out = np.zeros(10, dtype=np.int16)
    assert ring.read_into(out) == 0  # idle speaker: silence, not an underrun
    assert ring.read_into(out) == 0
    assert ring.underruns == 0
    ring.write(np.ones(15, dtype=np.int16))
    assert ring.read_into(out) == 10
    assert ring.playing
    assert ring.read_into(out[:0]) == 0  # an empty read changes nothing
    assert ring.playing
    assert ring.read_into(out) == 5  # ran dry mid-block while playing
    assert (ring.underruns, ring.underrun_frames) == (1, 5)
    assert out.tolist() == [1] * 5 + [0] * 5
    assert ring.read_into(out) == 0  # still dry: the same starvation, not a new one
    assert ring.underruns == 1
    ring.write(np.ones(20, dtype=np.int16))
    ring.read_into(out)
    assert ring.clear() == 10  # barge-in: the next short read is not an underrun
    assert ring.read_into(out) == 0
    assert out.tolist() == [0] * 10
    assert ring.underruns == 1
    assert (ring.clears, ring.frames_cleared) == (1, 10)


def test_ring_fills_every_channel_of_a_2d_output() -> None:
    ring = RingBuffer(16)
    ring.write(np.array([1, 2, 3], dtype=np.int16))
    out = np.full((4, 2), 9, dtype=np.int16)
    assert ring.read_into(out) == 3
    assert out.tolist() == [[1, 1], [2, 2], [3, 3], [0, 0]]


def test_ring_float_dtype_and_dtype_mismatch() -> None:
    ring = RingBuffer(4, dtype=np.float32)
    ring.write(np.array([0.5, -0.5], dtype=np.float32))
    out = np.zeros(3, dtype=np.float32)
    assert ring.read_into(out) == 2
    assert out.tolist() == [0.5, -0.5, 0.0]
    with pytest.raises(AudioError, match="dtype"):
        ring.read_into(np.zeros(3, dtype=np.int16))
    with pytest.raises(ConfigError):
        RingBuffer(0)
    with pytest.raises(AudioError, match="1-D"):
        ring.write(np.zeros((2, 2), dtype=np.float32))


# --- PlayoutTracker -----------------------------------------------------------------------------


def test_tracker_credits_partial_reads_across_items_and_survives_clear() -> None:
    tracker = PlayoutTracker(24000)
    tracker.add("A", 2400)  # 100 ms
    tracker.add("A", 2400)  # merged with the previous segment
    tracker.add("B", 4800)
    assert tracker.current_item == "A"
    tracker.consume(1000)
    tracker.consume(4000)  # finishes A (4800) and takes 200 of B
    assert tracker.played_frames("A") == 4800
    assert tracker.played_frames("B") == 200
    assert tracker.current_item == "B"
    assert tracker.played_ms("A") == 200
    assert tracker.played_ms("B") == 8  # 200 frames = 8.33 ms, rounded down: never more than played
    assert tracker.clear() == 4600
    assert tracker.current_item is None
    assert tracker.played_frames("B") == 200
    assert tracker.received_frames("B") == 4800
    with pytest.raises(AudioError, match="cannot consume"):
        tracker.consume(1)
    assert tracker.item_ids() == ["A", "B"]
    tracker.forget("A")
    assert tracker.played_frames("A") == 0


# --- property test: PlayoutBuffer against a plain-list model ------------------------------------

ITEMS = ("item_a", "item_b", "item_c")
ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.sampled_from(ITEMS), st.integers(0, 40)),
        st.tuples(st.just("read"), st.integers(1, 30), st.booleans()),
        st.tuples(st.just("clear")),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(capacity=st.integers(1, 64), operations=ops)
def test_playout_buffer_matches_a_model(capacity: int, operations: list[tuple[Any, ...]]) -> None:
    buf = PlayoutBuffer(1000, capacity)  # 1 frame = 1 ms, so played_ms == played frames
    queue: deque[tuple[str, int]] = deque()  # model: (item, sample value) not yet played
    played: Counter[str] = Counter()
    next_value = 1
    overrun_frames = underruns = 0
    playing = False
    for op in operations:
        if op[0] == "write":
            _, item, n = op
            values = np.arange(next_value, next_value + n, dtype=np.int64) % 30000
            next_value += n
            accepted = min(n, capacity - len(queue))
            assert buf.write(item, values.astype(np.int16)) == accepted
            overrun_frames += n - accepted
            queue.extend((item, int(v)) for v in values[:accepted])
        elif op[0] == "read":
            _, n, stereo = op
            out = np.full((n, 2) if stereo else n, -7, dtype=np.int16)
            k = min(n, len(queue))
            expected = [queue.popleft() for _ in range(k)]
            assert buf.read_into(out) == k
            got = out[:, 0] if stereo else out
            assert got[:k].tolist() == [v for _, v in expected]
            assert not got[k:].any()  # the rest is silence
            if stereo:
                assert (out[:, 0] == out[:, 1]).all()
            for item, _ in expected:
                played[item] += 1
            if k < n and playing:
                underruns += 1
            playing = k == n
        else:
            assert buf.clear() == len(queue)
            queue.clear()
            playing = False
        assert buf.available == len(queue)
        for item in ITEMS:
            assert buf.played_frames(item) == played[item]
            assert buf.played_ms(item) == played[item]
            assert buf.tracker.queued_frames(item) == sum(1 for i, _ in queue if i == item)
        assert buf.current_item == (queue[0][0] if queue else None)
    assert buf.ring.overrun_frames == overrun_frames
    assert buf.ring.underruns == underruns
    assert buf.ring.frames_read == sum(played.values())


@settings(max_examples=100, deadline=None)
@given(
    writes=st.lists(st.tuples(st.sampled_from(ITEMS), st.integers(1, 5000)), min_size=1, max_size=20),
    reads=st.lists(st.integers(1, 3000), max_size=40),
    clear_after=st.integers(0, 40),
)
def test_tracker_played_ms_never_exceeds_received(
    writes: list[tuple[str, int]], reads: list[int], clear_after: int
) -> None:
    rate = 24000
    tracker = PlayoutTracker(rate)
    for item, frames in writes:
        tracker.add(item, frames)
    for i, n in enumerate(reads):
        if i == clear_after:
            tracker.clear()
        tracker.consume(min(n, tracker.queued_frames()))
    for item, _ in writes:
        played = tracker.played_frames(item)
        assert played <= tracker.received_frames(item)
        assert tracker.played_ms(item) == played * 1000 // rate
        assert tracker.played_ms(item) <= tracker.received_frames(item) * 1000 // rate


# --- no allocation in the hot path ----------------------------------------------------------------


def test_read_into_and_write_do_not_allocate() -> None:
    block = 4800  # 200 ms at 24 kHz: any copy of a block would show up as >= 9,600 bytes
    buf = PlayoutBuffer(24000, 4 * block)
    src = (np.arange(block) % 1000).astype(np.int16)
    out = np.zeros(block, dtype=np.int16)
    out2 = np.zeros((block, 2), dtype=np.int16)

    def cycle(n: int) -> None:
        for _ in range(n):
            buf.write("item", src)
            buf.write("item", src[: block // 3])
            buf.read_into(out)
            buf.read_into(out2)
            buf.read_into(out[: block // 2])

    cycle(50)  # warm up (first-use caches, dict entries)
    tracemalloc.start()
    try:
        cycle(1)
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        cycle(2000)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 512, f"memory grew by {after - before} bytes"
    assert peak - before < 2048, f"peak {peak - before} bytes above baseline: an array was allocated"
    assert buf.ring.frames_read > 0


# --- BufferSink ---------------------------------------------------------------------------------


def test_buffer_sink_collects_per_item_and_plays_instantly() -> None:
    sink = BufferSink()
    assert isinstance(sink, AudioSink)
    sink.open(24000)
    sink.write("A", b"\x01\x00" * 2400)
    sink.write("B", b"\x02\x00" * 480)
    sink.write("A", b"\x03\x00" * 240)
    assert sink.audio == b"\x01\x00" * 2400 + b"\x02\x00" * 480 + b"\x03\x00" * 240
    assert bytes(sink.items["A"]) == b"\x01\x00" * 2400 + b"\x03\x00" * 240
    assert sink.played_ms("A") == 110
    assert sink.played_ms("B") == 20
    assert sink.played_ms("unknown") == 0
    sink.clear()
    sink.clear()
    assert sink.clears == 2
    assert sink.flushes[0].dropped_ms == 0
    assert sink.flushes[0].total_bytes == len(sink.audio)
    with pytest.raises(AudioError, match="even"):
        sink.write("A", b"\x00")
    sink.close()
    with pytest.raises(AudioError, match="closed"):
        sink.write("A", b"\x00\x00")


def test_buffer_sink_write_before_open_is_an_error() -> None:
    with pytest.raises(AudioError, match="open"):
        BufferSink().write("A", b"\x00\x00")


class FakeClock:
    """A settable clock (seconds) for the realtime model."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_realtime_buffer_sink_models_playout_and_barge_in() -> None:
    clock = FakeClock()
    sink = BufferSink(realtime=True, clock=clock)
    sink.open(24000)
    sink.write("A", bytes(2 * 24000))  # 1 s arrives at once (generation is faster than real time)
    clock.now += 0.3
    assert sink.played_ms("A") == 300
    assert sink.queued_ms() == 700
    sink.clear()  # barge-in at 300 ms
    flush = sink.flushes[-1]
    assert (flush.item_id, flush.played_ms, flush.dropped_ms) == ("A", 300, 700)
    clock.now += 5
    assert sink.played_ms("A") == 300  # frozen: nothing more of A was heard
    assert sink.items["A"] == bytearray(2 * 24000)  # what was received is still kept


def test_realtime_buffer_sink_plays_items_back_to_back() -> None:
    clock = FakeClock()
    sink = BufferSink(realtime=True, clock=clock)
    sink.open(24000)
    sink.write("A", bytes(2 * 12000))  # 500 ms
    sink.write("B", bytes(2 * 12000))  # queued behind A
    clock.now += 0.7
    assert sink.played_ms("A") == 500
    assert sink.played_ms("B") == 200
    clock.now += 10
    assert sink.played_ms("B") == 500  # never more than received


def test_realtime_buffer_sink_restarts_the_clock_after_running_dry() -> None:
    clock = FakeClock()
    sink = BufferSink(realtime=True, clock=clock)
    sink.open(24000)
    sink.write("A", bytes(2 * 2400))  # 100 ms
    clock.now += 0.5  # A finished 400 ms ago; the speaker is idle
    assert sink.played_ms("A") == 100
    sink.write("B", bytes(2 * 24000))
    clock.now += 0.05
    assert sink.played_ms("B") == 50  # B started when it arrived, not when A ended
    # a single item: played = min(received, elapsed since its first write)
    clock.now += 0.25
    sink.write("B", bytes(2 * 240))
    assert sink.played_ms("B") == 300
