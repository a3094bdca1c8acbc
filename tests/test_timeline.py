"""The pure timeline model and meters: recorded event streams, synthetic clocks, a real emulator session."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voicelive_nb import SessionConfig
from voicelive_nb.analysis.meters import FLOOR_DBFS, AudioHistory, EnvelopeBuffer, envelope, place_segments
from voicelive_nb.analysis.timeline import Timeline, format_clock, unpack
from voicelive_nb.audio.memory import ArraySource
from voicelive_nb.emulator.server import BackgroundEmulator, start_in_thread
from voicelive_nb.recording import Recorder
from voicelive_nb.session import Session
from voicelive_nb.speech.tts import synthesize

DATA = Path(__file__).parent / "data"
T0 = 1000.0  # the monotonic time the synthetic input starts


def lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


def stream_input(tl: Timeline, seconds: float, start: float = T0, block_ms: int = 20) -> None:
    """Real-time input: block k (20 ms, 960 bytes) is sent when its audio has been captured."""
    for k in range(round(seconds * 1000 / block_ms)):
        tl.input_audio(start + (k + 1) * block_ms / 1000, block_ms * 48)


def replay(
    tl: Timeline, records: list[dict[str, Any]], at: dict[str, float], step: float = 0.005
) -> dict[int, float]:
    """Feed a recorded turn with synthetic receive times: ``at[event_id]`` (seconds after T0), else
    ``step`` after the previous event. Returns the receive time of every line."""
    times: dict[int, float] = {}
    t = T0
    for i, record in enumerate(records):
        event = record["event"]
        t = T0 + at[event["event_id"]] if event.get("event_id") in at else t + step
        times[i] = t
        if record["from"] == "server":
            tl.add(t, event)
        else:
            tl.sent(t, event)
    return times


def event_index(records: list[dict[str, Any]], event_id: str) -> int:
    return next(i for i, r in enumerate(records) if r["event"].get("event_id") == event_id)


# ---------------------------------------------------------------------------------- meters


def test_envelope_buffer_known_signal_gives_known_min_max_per_bucket() -> None:
    env = EnvelopeBuffer(sample_rate=1000, window_s=1.0, points=10)  # 100 samples per bucket
    assert env.samples_per_bucket == 100
    buckets = [np.linspace(-100 * k, 200 * k, 100).astype(np.int16) for k in range(10)]
    signal = np.concatenate(buckets)
    for i in range(0, len(signal), 37):  # blocks that do not line up with buckets
        env.push(signal[i : i + 37].tobytes())
    snap = env.snapshot()
    assert snap.shape == (2, 10)
    assert snap.dtype == np.float32
    expected_min = np.array([b.min() for b in buckets], np.float32) / np.float32(32768)
    expected_max = np.array([b.max() for b in buckets], np.float32) / np.float32(32768)
    np.testing.assert_array_equal(snap[0], expected_min)
    np.testing.assert_array_equal(snap[1], expected_max)
    one = EnvelopeBuffer(1000, 1.0, 10)
    one.push(signal)  # the same audio in one block: the same envelope
    np.testing.assert_array_equal(one.snapshot(), snap)


def test_envelope_buffer_window_rolls_oldest_to_newest() -> None:
    env = EnvelopeBuffer(1000, 1.0, 10)
    for k in range(15):
        env.push(np.full(100, 1000 * k, np.int16))
    snap = env.snapshot()
    np.testing.assert_array_equal(snap[1] * 32768, np.arange(5, 15) * 1000.0)
    env.push(np.full(2500, -7, np.int16))  # more than a window at once: only the newest counts
    np.testing.assert_array_equal(env.snapshot()[0] * 32768, np.full(10, -7.0))
    assert env.buckets_written == 15 + 10


def test_envelope_buffer_partial_bucket_and_silence() -> None:
    env = EnvelopeBuffer(1000, 1.0, 10)
    env.push(np.full(150, 3000, np.int16))  # 1.5 buckets: the half waits
    assert env.buckets_written == 1
    added = env.push_silence(10)  # aligned: completes the partial bucket
    assert added == 50
    assert env.buckets_written == 2
    snap = env.snapshot()
    assert snap[1, -1] == pytest.approx(3000 / 32768)  # the closed partial bucket keeps its max
    assert snap[0, -1] == 0.0  # ... and the silence's min
    assert env.push_silence(30, align=False) == 30
    assert env.buckets_written == 2


def test_levels() -> None:
    rate = 24000
    t = np.arange(rate) / rate
    sine = (np.sin(2 * np.pi * 1000 * t) * 32767).astype(np.int16)
    env = EnvelopeBuffer(rate)
    env.push(sine)
    assert env.level_dbfs(0.1) == pytest.approx(-3.01, abs=0.05)
    assert env.peak_dbfs(0.1) == pytest.approx(0.0, abs=0.01)
    env.push_silence(rate)
    assert env.level_dbfs(0.1) == FLOOR_DBFS
    assert env.peak_dbfs(0.1) == FLOOR_DBFS


def test_envelope_and_place_segments() -> None:
    x = np.array([0, 5, -5, 10, 20, -30, 1, 2], np.int16)
    env = envelope(x, 4)
    np.testing.assert_array_equal(env[0] * 32768, [0, -5, -30, 1])
    np.testing.assert_array_equal(env[1] * 32768, [5, 10, 20, 2])
    placed = place_segments([(0.5, np.ones(10, np.int16)), (-0.2, np.full(5, 2, np.int16))], 10, 2.0)
    assert len(placed) == 20
    assert placed[:3].tolist() == [2, 2, 2]
    assert placed[5:15].tolist() == [1] * 10
    assert placed[15:].tolist() == [0] * 5


def test_audio_history_is_bounded() -> None:
    history = AudioHistory(max_s=1.0, sample_rate=1000, output_sample_rate=1000)
    for _ in range(15):
        history.push_input(bytes(200))  # 100 ms each
    assert len(history.input_pcm()) == 2000
    assert history.input_offset_ms == pytest.approx(500.0)
    assert history.input_ms == pytest.approx(1500.0)
    for item in ("a", "b", "c"):
        history.push_output(item, bytes(1000))  # 500 ms each
    assert list(history.output_items()) == ["b", "c"]


# ---------------------------------------------------------------------------------- recorded turns


def test_full_turn_spans_latency_and_mapping() -> None:
    records = lines("turn_full.jsonl")
    tl = Timeline()
    stream_input(tl, 6.0)
    # VAD events arrive 50 ms after the audio they describe; the reply's first audio at 3.40 s
    times = replay(tl, records, {"event_003": 1.23, "event_004": 3.07, "event_013": 3.40})
    assert tl.mode == "realtime"
    assert tl.origin() == pytest.approx(T0)
    [vad] = tl.vad_spans
    assert (vad.item_id, vad.start_s, vad.end_s, vad.committed) == ("item_U1", 1.18, 3.02, True)
    [resp] = tl.response_spans
    created = times[event_index(records, "event_008")] - T0
    done = times[len(records) - 1] - T0
    assert (resp.response_id, resp.status, resp.reason) == ("resp_R1", "completed", None)
    assert resp.start_s == pytest.approx(created)
    assert resp.end_s == pytest.approx(done)
    assert vad.end_s is not None and resp.start_s > vad.end_s  # one axis: the reply comes after the speech
    [lat] = tl.latencies
    assert lat.ms == pytest.approx((3.40 - 3.07) * 1000)
    assert lat.start_s == pytest.approx(3.07)
    assert lat.end_s == pytest.approx(3.40)
    [audio] = tl.audio_spans
    assert audio.received_ms == pytest.approx(2 * 4800 / 48)  # two 100 ms deltas
    assert audio.start_s == pytest.approx(3.40)
    assert audio.end_s == audio.played_end_s == pytest.approx(3.60)
    assert tl.barge_ins == []
    assert [c.item_id for c in tl.commits] == ["item_U1"]


def test_barge_in_turn() -> None:
    records = lines("turn_barge_in.jsonl")
    tl = Timeline()
    stream_input(tl, 7.0)
    # 16 deltas of 100 ms arrive at 3.5 s: playback 3.5 → 5.1 s; the user cuts in, heard at 4.6 s
    times = replay(tl, records, {"event_003": 1.23, "event_004": 3.07, "event_013": 3.5, "event_029": 4.6})
    vad = tl.vad_spans
    assert [(v.item_id, v.start_s, v.end_s) for v in vad] == [("item_U1", 1.18, 3.02), ("item_U2", 4.3, 5.6)]
    [barge] = tl.barge_ins
    assert barge.t_s == pytest.approx(4.6)
    assert (barge.user_item_id, barge.response_id) == ("item_U2", "resp_R1")
    assert barge.audio_start_s == pytest.approx(4.3)
    [resp] = tl.response_spans
    assert (resp.status, resp.reason) == ("cancelled", "turn_detected")
    assert resp.end_s == pytest.approx(times[event_index(records, "event_034")] - T0)
    [audio] = tl.audio_spans
    assert audio.start_s == pytest.approx(3.5)
    assert audio.end_s == pytest.approx(5.1)
    assert audio.played_end_s == pytest.approx(4.6)  # flushed at the barge-in (truncate said 1.2 s: later)
    [lat] = tl.latencies  # only the first turn was answered
    assert lat.user_item_id == "item_U1"
    assert tl.summary()["cancelled"] == 1


def test_truncation_earlier_than_the_barge_in_receipt_wins() -> None:
    records = lines("turn_barge_in.jsonl")
    tl = Timeline()
    stream_input(tl, 7.0)
    replay(tl, records, {"event_003": 1.23, "event_004": 3.07, "event_013": 3.5, "event_029": 4.9})
    [audio] = tl.audio_spans
    assert audio.played_end_s == pytest.approx(3.5 + 1.2)  # conversation.item.truncated audio_end_ms


def test_function_call_latency_runs_to_the_first_audio() -> None:
    records = lines("turn_function_call.jsonl")
    tl = Timeline()
    stream_input(tl, 4.0)
    replay(tl, records, {"event_002": 0.65, "event_003": 2.45})
    [lat] = tl.latencies
    [first, second] = tl.response_spans
    assert lat.response_id == second.response_id  # the first response only called a tool
    assert first.end_s is not None and lat.end_s > second.start_s > first.end_s


def test_pack_round_trip_and_open_spans() -> None:
    tl = Timeline()
    stream_input(tl, 1.0)
    tl.add(T0 + 0.5, {"type": "input_audio_buffer.speech_started", "audio_start_ms": 300, "item_id": "u"})
    tl.add(T0 + 0.6, {"type": "response.created", "response": {"id": "r"}})
    arrays = tl.to_arrays()
    assert arrays["vad"].shape == (1, 2)
    assert arrays["vad"][0, 0] == pytest.approx(0.3)
    assert math.isnan(arrays["vad"][0, 1])  # still speaking
    assert math.isnan(arrays["responses"][0, 1])
    assert arrays["responses"][0, 2] == 0  # in progress
    data = tl.pack()
    assert len(data) % 4 == 0
    back = unpack(data)
    for lane, array in arrays.items():
        np.testing.assert_array_equal(back[lane], array)
    with pytest.raises(ValueError):
        unpack(b"\0" * 8)
    tl.add(T0 + 0.7, {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 600, "item_id": "u"})
    assert len(tl.to_arrays(since_s=0.59)["vad"]) == 1
    assert len(tl.to_arrays(since_s=0.61)["vad"]) == 0  # ended before the window: left out
    assert len(tl.to_arrays(since_s=0.61)["responses"]) == 1  # still open: kept


# ---------------------------------------------------------------------------------- the axis mapping


def test_a_pause_in_the_input_starts_a_new_run() -> None:
    tl = Timeline()
    stream_input(tl, 2.0)  # 0 → 2 s
    stream_input(tl, 1.0, start=T0 + 5.0)  # nothing sent for 3 s, then 1 s more (speak() again)
    runs = tl.input_runs()
    assert [(round(s, 3), a0, a1) for s, a0, a1 in runs] == [(0.0, 0.0, 2000.0), (5.0, 2000.0, 3000.0)]
    assert tl.audio_to_axis(2500) == pytest.approx(5.5)  # audio after the pause sits where it was sent
    assert tl.mode == "realtime"


def test_speech_resumed_after_a_pause_is_one_span_on_its_own_run() -> None:
    """speak() twice with the mic off: the second span's prefix padding reaches back into the
    first run's audio; the span must still sit (whole, at its true length) in the second run."""
    tl = Timeline()
    stream_input(tl, 3.0)  # run 1: 0 -> 3 s
    tl.add(T0 + 0.7, {"type": "input_audio_buffer.speech_started", "audio_start_ms": 200, "item_id": "a"})
    tl.add(T0 + 2.0, {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 1900, "item_id": "a"})
    stream_input(tl, 3.0, start=T0 + 10.0)  # run 2: sent from 10 s on, audio ms 3000 -> 6000
    # speech from audio 3300 ms; 400 ms prefix padding puts the reported start at 2900 (run 1's tail)
    tl.add(T0 + 10.4, {"type": "input_audio_buffer.speech_started", "audio_start_ms": 2900, "item_id": "b"})
    open_b = tl.vad_spans[1]
    assert open_b.end_s is None
    assert open_b.start_s == pytest.approx(9.9)  # open: on the run streaming when it was heard
    tl.add(T0 + 11.9, {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 4300, "item_id": "b"})
    first, second = tl.vad_spans
    assert (first.start_s, first.end_s) == (pytest.approx(0.2), pytest.approx(1.9))
    assert second.start_s is not None and second.end_s is not None
    assert second.end_s - second.start_s == pytest.approx(1.4)  # 4300 - 2900 ms, not the pause too
    assert second.start_s == pytest.approx(9.9)
    assert second.end_s == pytest.approx(11.3)
    assert tl.to_arrays()["vad"][1].tolist() == pytest.approx([9.9, 11.3])
    # a barge-in by that speech is drawn where the speech is, too
    tl.add(T0 + 10.0, {"type": "response.created", "response": {"id": "r"}})
    tl.add(T0 + 12.5, {"type": "input_audio_buffer.speech_started", "audio_start_ms": 4500, "item_id": "c"})
    tl.add(T0 + 12.6, {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 5200, "item_id": "c"})
    [barge] = tl.barge_ins
    assert barge.audio_start_s == pytest.approx(11.5)


def test_a_span_ending_at_a_run_boundary_stays_in_the_earlier_run() -> None:
    tl = Timeline()
    stream_input(tl, 2.0)
    stream_input(tl, 1.0, start=T0 + 6.0)
    tl.add(T0 + 1.0, {"type": "input_audio_buffer.speech_started", "audio_start_ms": 1500, "item_id": "a"})
    tl.add(T0 + 6.1, {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 2000, "item_id": "a"})
    [span] = tl.vad_spans
    assert (span.start_s, span.end_s) == (pytest.approx(1.5), pytest.approx(2.0))


def test_a_session_longer_than_a_minute() -> None:
    """Three turns over 150 s of real-time input, with pauses: every span at its true place."""
    tl = Timeline()
    stream_input(tl, 70.0)  # one long run, 0 -> 70 s
    turns = [(5_000, 7_000), (64_000, 66_500)]
    for i, (a, b) in enumerate(turns):
        tl.add(
            T0 + a / 1000 + 0.3,
            {"type": "input_audio_buffer.speech_started", "audio_start_ms": a, "item_id": f"u{i}"},
        )
        tl.add(
            T0 + b / 1000 + 0.3,
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": b, "item_id": f"u{i}"},
        )
    stream_input(tl, 10.0, start=T0 + 140.0)  # resumed after a 70 s pause: audio 70 000 -> 80 000 ms
    tl.add(
        T0 + 142.5, {"type": "input_audio_buffer.speech_started", "audio_start_ms": 69_800, "item_id": "u2"}
    )
    tl.add(T0 + 145.0, {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 74_000, "item_id": "u2"})
    spans = [(round(s.start_s or 0, 3), round(s.end_s or 0, 3)) for s in tl.vad_spans]
    assert spans == [(5.0, 7.0), (64.0, 66.5), (139.8, 144.0)]
    assert tl.end_s == pytest.approx(150.0)
    assert tl.summary()["duration_s"] == pytest.approx(150.0)


@pytest.mark.parametrize(
    ("seconds", "decimals", "text"),
    [
        (0.0, 1, "0.0"),
        (42.46, 1, "42.5"),
        (59.96, 1, "1:00.0"),  # rounds up into the next minute, not "0:60.0"
        (65.0, 1, "1:05.0"),
        (125.4, 0, "2:05"),
        (3723.0, 0, "1:02:03"),
        (-0.4, 1, "-0.4"),
    ],
)
def test_format_clock(seconds: float, decimals: int, text: str) -> None:
    assert format_clock(seconds, decimals) == text


def test_a_stall_caught_up_in_a_burst_stays_one_run() -> None:
    tl = Timeline()
    stream_input(tl, 2.0)
    for k in range(40):  # 0.8 s of audio held back by a busy sender, then sent at once
        tl.input_audio(T0 + 2.8 + k * 0.0005, 960)
    stream_input(tl, 1.0, start=T0 + 2.8)
    assert len(tl.input_runs()) == 1
    assert tl.audio_to_axis(3500) == pytest.approx(3.5)
    assert tl.mode == "realtime"


def test_fast_input_falls_back_to_audio_time_for_vad() -> None:
    tl = Timeline()
    for k in range(300):  # 6 s of audio sent in 0.3 s
        tl.input_audio(T0 + k * 0.001, 960)
    tl.add(T0 + 0.2, {"type": "input_audio_buffer.speech_started", "audio_start_ms": 2000, "item_id": "u"})
    tl.add(T0 + 0.25, {"type": "response.created", "response": {"id": "r"}})
    assert tl.mode == "fast-input"
    assert "faster than real time" in tl.mapping_note
    assert tl.vad_spans[0].start_s == pytest.approx(2.0)  # audio time
    assert tl.response_spans[0].start_s == pytest.approx(0.25)  # wall time since the first block


def test_without_input_times_the_origin_is_estimated() -> None:
    records = lines("turn_full.jsonl")
    tl = Timeline()
    replay(tl, records, {"event_002": 0.01, "event_003": 1.23, "event_004": 3.07})
    assert tl.mode == "estimated"
    # the tightest bound: speech_started received 50 ms after its audio
    assert tl.origin() == pytest.approx(T0 + 0.05)
    assert tl.vad_spans[0].start_s == pytest.approx(1.18)
    end_s = tl.vad_spans[0].end_s
    assert end_s is not None and tl.response_spans[0].start_s >= end_s


# ---------------------------------------------------------------------------------- a real session


@pytest.fixture(scope="module")
def emulator() -> Iterator[BackgroundEmulator]:
    emu = start_in_thread(pace="fast")
    yield emu
    emu.stop()


def speech_bounds(pcm: bytes, lead_s: float) -> tuple[float, float]:
    x = np.abs(np.frombuffer(pcm, np.int16).astype(np.int32))
    loud = np.flatnonzero(x > 0.02 * 32768)
    return lead_s + loud[0] / 24000, lead_s + loud[-1] / 24000


def test_real_emulator_session(emulator: BackgroundEmulator, tmp_path: Path) -> None:
    pcm = synthesize("What is the weather like today?").pcm16
    blocks: list[tuple[float, int]] = []

    async def run() -> Session:
        source = ArraySource(pcm, 24000, pace="realtime", lead_silence_ms=500, tail_silence_ms=1200)
        session = Session(
            SessionConfig.server_vad(),
            endpoint=emulator.url,
            api_key="k",
            dotenv=False,
            record=tmp_path / "rec",
        )
        session.input_taps.append(lambda block: blocks.append((time.monotonic(), len(block))))
        async with session:
            session.stream(source)
            await session.wait_for("response.done", timeout=30)
        return session

    session = asyncio.run(run())
    tl = Timeline.from_timed_events(session.timed_events(), input_blocks=blocks)
    assert tl.mode == "realtime"
    speech_start, speech_end = speech_bounds(pcm, 0.5)
    [vad] = tl.vad_spans
    assert vad.start_s is not None and vad.end_s is not None
    assert vad.start_s <= speech_start + 0.15
    assert vad.end_s >= speech_end - 0.15
    [resp] = tl.response_spans
    assert resp.status == "completed"
    assert resp.end_s is not None and resp.end_s > resp.start_s >= vad.end_s - 0.05
    [lat] = tl.latencies
    assert 0 < lat.ms < 10_000
    [audio] = tl.audio_spans
    assert audio.start_s >= resp.start_s
    # the recording of the same session lands on the same axis
    from_rec = Timeline.from_recording(Recorder.load(tmp_path / "rec"))
    assert from_rec.mode == "realtime"
    assert [(v.start_s, v.end_s) for v in from_rec.vad_spans] == [(vad.start_s, vad.end_s)]
    [rec_resp] = from_rec.response_spans
    assert rec_resp.start_s == pytest.approx(resp.start_s, abs=0.03)
    assert from_rec.latencies[0].ms == pytest.approx(lat.ms, abs=20)
