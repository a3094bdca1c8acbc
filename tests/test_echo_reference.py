"""Client-reference echo cancellation without devices: the reference ring (pure), the config
switch, and a Session through an in-memory echoing room against the emulator.

The room (:class:`~voicelive_nb.audio.memory.EchoRoom`) plays the session's replies back into
its microphone 50 ms late and 12 dB down, on the microphone's sample clock, so the whole
conversation runs as fast as the machine allows. The microphone itself hears nothing but
silence: every ``speech_started`` is the assistant interrupting itself.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from voicelive_nb.audio.buffers import ReferenceRing, interleave
from voicelive_nb.audio.memory import ArraySource, EchoRoom, SilenceSource
from voicelive_nb.errors import AudioError, ConfigError
from voicelive_nb.protocol.config import (
    EchoCancellation,
    SessionConfig,
    client_echo_reference_problem,
)
from voicelive_nb.session import Session

RATE = 24000
FIRST = "the weather in seattle is cloudy with a chance of rain later this afternoon"
SECOND = "tomorrow it will be sunny and warm, a good day for a walk in the park"
#: The emulator's Speex canceller adapts on the first reply's first words (tests/test_emulator_enhance.py):
#: a false start may come from that first second or so, as from any real canceller converging.
CONVERGED_MS = 2000


def noise(n: int, seed: int = 0, scale: float = 3000.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * scale).astype(np.int16)


def lag_ms(ch0: np.ndarray, ch1: np.ndarray, max_ms: int = 200) -> float:
    """Where ``ch1`` best matches inside ``ch0`` (positive: ``ch0`` is later), in ms."""
    a, b = ch0.astype(np.float64), ch1.astype(np.float64)
    m = RATE * max_ms // 1000
    best, at = -np.inf, 0
    for lag in range(-m, m + 1, 12):  # 0.5 ms steps: enough to tell 50 from 90 ms
        x = a[max(lag, 0) : len(a) + min(lag, 0)]
        y = b[max(-lag, 0) : len(b) - max(lag, 0)]
        score = float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-9))
        if score > best:
            best, at = score, lag
    return at * 1000 / RATE


# --- the reference ring (pure core) -----------------------------------------------------------------


def test_ring_reads_back_what_played_at_the_capture_time() -> None:
    ring = ReferenceRing(RATE, RATE)  # 1 s
    x = noise(RATE // 2)
    block = RATE // 50
    for i in range(0, len(x), block):  # 20 ms callbacks, DAC time 100 ms ahead of the stream clock
        ring.write(x[i : i + block], 10.0 + i / RATE)
    out = np.zeros(RATE // 10, dtype=np.int16)
    assert ring.read_into(out, 10.1) == len(out)  # the capture of 10.1 s heard samples 2400..
    assert np.array_equal(out, x[2400:4800])
    # jittered times (±2 ms) still read contiguous samples: none repeated, none lost
    got = []
    for k, jitter in enumerate((0.002, -0.0015, 0.001, -0.002)):
        part = np.zeros(480, dtype=np.int16)
        ring.read_into(part, 10.2 + k * 0.02 + jitter)
        got.append(part)
    assert np.array_equal(np.concatenate(got), x[4800 : 4800 + 4 * 480])  # each snapped to the last end
    assert ring.read_resyncs == 0
    ring.read_into(part, 10.0)  # a real jump back is followed, and counted
    assert ring.read_resyncs == 1 and np.array_equal(part, x[:480])


def test_ring_silence_where_nothing_played_and_resyncs_on_a_jump() -> None:
    ring = ReferenceRing(RATE, RATE // 2, snap_frames=48)
    ring.contiguous = False  # output blocks placed by their times (the default follows the sample count)
    out = np.zeros(480, dtype=np.int16)
    assert ring.read_into(out, 5.0) == 0 and not out.any()  # nothing written yet
    ring.write(np.full(480, 7, dtype=np.int16), 5.0)
    ring.write(np.full(480, 9, dtype=np.int16), 5.1)  # 80 ms gap: a resync, the gap is silence
    assert ring.resyncs == 1
    whole = np.zeros(RATE // 10 + 480, dtype=np.int16)
    assert ring.read_at(whole, ring.position(5.0)) == len(whole)  # the gap is known silence
    assert (whole[:480] == 7).all() and not whole[480:2400].any() and (whole[2400:] == 9).all()
    # older than the capacity: gone (silence), the newest half-second still there
    for k in range(40):
        ring.write(np.full(480, 1, dtype=np.int16), 5.12 + k * 0.02)
    assert ring.read_at(out, ring.position(5.0)) == 0
    assert ring.read_at(out, ring.position(5.5)) == 480 and (out == 1).all()


def test_ring_places_output_by_sample_count_until_an_underflow() -> None:
    ring = ReferenceRing(RATE, RATE)
    ring.write(np.full(480, 1, dtype=np.int16), 2.0)
    ring.write(np.full(480, 2, dtype=np.int16), 2.02 + 0.006)  # 6 ms late: taken as contiguous
    assert ring.resyncs == 0 and ring.span == (48000, 48960)
    ring.restart_output()  # the device underflowed: its next time is believed
    ring.write(np.full(480, 3, dtype=np.int16), 2.1)
    assert ring.resyncs == 1
    out = np.zeros(2880, dtype=np.int16)
    ring.read_at(out, 48000)
    assert (out[:480] == 1).all() and (out[480:960] == 2).all() and not out[960:2400].any()
    assert (out[2400:] == 3).all()


def test_ring_wraps_and_takes_channel_zero_of_a_device_block() -> None:
    ring = ReferenceRing(RATE, 1000)
    x = noise(3000, seed=3)
    for i in range(0, 3000, 240):
        part = x[i : i + 240]
        two = np.stack([part, np.zeros_like(part)], axis=1)  # (frames, channels)
        ring.write(two, 1.0 + i / RATE)
    out = np.zeros(600, dtype=np.int16)
    assert ring.read_at(out, ring.position(1.0) + 2400) == 600
    assert np.array_equal(out, x[2400:3000])
    assert ring.span == (ring.position(1.0) + 2000, ring.position(1.0) + 3000)


def test_interleave_puts_the_mic_first() -> None:
    mic, ref = np.array([1, 2], dtype=np.int16), np.array([-1, -2], dtype=np.int16)
    assert np.frombuffer(interleave(mic, ref), "<i2").tolist() == [1, -1, 2, -2]
    with pytest.raises(AudioError):
        interleave(mic, ref[:1])


# --- the config switch ------------------------------------------------------------------------------


def test_the_switch_sets_the_client_reference_pair() -> None:
    config = SessionConfig.server_vad().with_client_echo_reference()
    assert config.to_dict()["input_audio_echo_cancellation"] == {
        "type": "server_echo_cancellation",
        "reference_source": "client",
        "channels": 2,
    }
    assert config.client_echo_reference and config.input_channels == 2
    assert config.input_bytes_per_ms == 96  # 24 kHz x 2 bytes x 2 channels
    back = config.with_client_echo_reference(False)
    assert not back.client_echo_reference and back.input_channels == 1
    with pytest.raises(ConfigError, match="input_audio_echo_cancellation"):
        EchoCancellation(reference_source="client", channels=1)


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        ("2026-07-15", True),
        ("v1", True),
        ("2026-09-01-preview", True),
        ("2026-04-10", False),
        ("2026-06-01-preview", False),
        ("2025-10-01", False),
    ],
)
def test_api_versions_without_client_reference_are_refused(version: str, ok: bool) -> None:
    assert (client_echo_reference_problem(version) is None) is ok
    config = SessionConfig.server_vad().with_client_echo_reference()
    if ok:
        Session(config, emulator=True, api_version=version, dotenv=False)
    else:
        with pytest.raises(ConfigError, match="api_version.*2026-07-15"):
            Session(config, emulator=True, api_version=version, dotenv=False)


async def test_a_source_without_a_reference_is_refused_before_connecting() -> None:
    config = SessionConfig.server_vad().with_client_echo_reference()
    s = Session(config, emulator=True, source=SilenceSource(100), dotenv=False)
    with pytest.raises(ConfigError, match="SilenceSource.*reference"):
        await s.open()
    assert s.emulator_url is None  # refused before the emulator was even started


# --- a session through the echoing room --------------------------------------------------------------


def test_the_room_echoes_late_and_the_reference_is_what_played() -> None:
    async def run(shift_ms: float) -> tuple[np.ndarray, np.ndarray]:
        room = EchoRoom(SilenceSource(600, pace="fast"), delay_ms=50, gain_db=-6, reference_shift_ms=shift_ms)
        room.speaker.open(RATE)
        room.speaker.write("a", noise(RATE // 2, seed=5).tobytes())
        data = b"".join([f async for f in room.reference_frames(RATE, 20)])
        both = np.frombuffer(data, "<i2")
        return both[0::2], both[1::2]

    ch0, ch1 = asyncio.run(run(0))
    assert abs(lag_ms(ch0, ch1) - 50) <= 1
    ch0, ch1 = asyncio.run(run(40))  # a late reference: the echo is only 10 ms behind it
    assert abs(lag_ms(ch0, ch1) - 10) <= 1


async def test_the_room_mixes_the_user_and_the_echo_in_channel_zero() -> None:
    user = noise(RATE // 5, seed=9, scale=1000)
    room = EchoRoom(ArraySource(user, RATE), delay_ms=0, gain_db=-120)
    frames = [f async for f in room.frames(RATE, 20)]
    assert np.array_equal(np.frombuffer(b"".join(frames), "<i2"), user)  # no speaker: just the user


async def _false_starts(config: SessionConfig, replies: int) -> tuple[list[int], int, EchoRoom]:
    """``replies`` assistant replies through the room with a silent user; the speech_started
    times (each one a false barge-in) and the flushes of the speaker."""
    room = EchoRoom(SilenceSource(None, pace="fast"), delay_ms=50, gain_db=-12)
    options: dict[str, Any] = {"pace": "fast", "transcription": False, "replies": [FIRST, SECOND] * replies}
    starts: list[int] = []
    async with Session(config, emulator=True, emulator_options=options, source=room, sink=room.speaker) as s:
        s.on("input_audio_buffer.speech_started", lambda e: starts.append(e.audio_start_ms))
        for _ in range(replies):
            await s.create_response()
            await s.wait_for("response.done", timeout=60)
            await room.wait_until(lambda r: r.speaker.queued_ms() == 0)  # played on the mic's clock
            await room.wait_samples(RATE)  # and a second of room after it
        await s.update(instructions="barrier")  # every start the audio caused has arrived
        if config.client_echo_reference:
            assert s.url is not None and "client_ec_reference%3Atrue" in s.url
            ec = s.effective_session()["input_audio_echo_cancellation"]
            assert ec["reference_source"] == "client" and ec["channels"] == 2
    return starts, room.speaker.clears, room


async def test_client_reference_stops_the_assistant_interrupting_itself() -> None:
    base = SessionConfig.server_vad(create_response=False)
    plain, plain_clears, _ = await _false_starts(base.replace(input_audio_echo_cancellation=None), 3)
    client, client_clears, room = await _false_starts(base.with_client_echo_reference(), 3)
    print(
        f"false barge-ins over 3 replies: no EC {len(plain)} {plain}, client reference {len(client)} {client}"
    )
    assert len(plain) >= 2 and plain_clears >= 2  # the replies interrupt themselves
    # the canceller converges on the first reply's first words; after that, nothing
    first_ms = min(room.speaker.started_at.values()) * 1000 // RATE
    print(f"the first reply began playing at {first_ms} ms of the mic timeline")
    assert [t for t in client if t > first_ms + CONVERGED_MS] == [], (client, first_ms)
    assert client_clears <= 1
    assert len(room.played) > 2 * 6 * RATE  # the replies really played (not cut off)
