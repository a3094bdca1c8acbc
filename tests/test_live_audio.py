"""End to end through real PortAudio devices: the PulseAudio virtual microphone and speaker.

A question is spoken into the virtual mic, the emulator answers, the reply comes out of the
virtual speaker; talking over the reply silences it and truncates at what was really played.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from virtual_audio import SpeakerTap, VirtualAudio
from waiting import wait_until

from voicelive_nb import SessionConfig
from voicelive_nb.audio.wav import write_wav
from voicelive_nb.emulator.server import BackgroundEmulator, start_in_thread
from voicelive_nb.notebook_session import NotebookSession
from voicelive_nb.speech.tts import synthesize

RATE = 24000
pytestmark = pytest.mark.usefixtures("quiet_gc")  # real-time playback: see the fixture


def loud_ms(pcm: bytes, rate: int = RATE, block_ms: int = 20, threshold_dbfs: float = -45.0) -> float:
    """Milliseconds of 20 ms blocks louder than ``threshold_dbfs``."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    n = rate * block_ms // 1000
    blocks = x[: len(x) // n * n].reshape(-1, n)
    rms = np.sqrt(np.mean(blocks**2, axis=1) + 1e-12)
    return float(np.sum(20 * np.log10(rms) > threshold_dbfs) * block_ms)


@pytest.fixture(scope="module")
def question(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("live") / "question.wav"
    write_wav(
        path, b"\0\0" * 4800 + synthesize("What is the weather like today?").pcm16 + b"\0\0" * 24000, RATE
    )
    return path


@pytest.fixture
def emulator_fast() -> BackgroundEmulator:
    long_reply = "Here is a rather long answer, so that there is plenty of time to talk over it. " * 3
    emu = start_in_thread(pace="fast", replies=["It is sunny today.", long_reply])
    yield emu  # type: ignore[misc]
    emu.stop()


def capture(tap: SpeakerTap) -> bytes:
    data, _ = tap.audio()
    return data


def test_question_through_the_mic_is_answered_through_the_speaker(
    virtual_audio: VirtualAudio, question: Path
) -> None:
    # the real service generates faster than real time; the emulator's "fast" pace does the same
    emu = start_in_thread(
        pace="fast", replies=["It is sunny today, with a light breeze from the west and no rain."]
    )
    tap = virtual_audio.tap()
    s = NotebookSession(SessionConfig.server_vad(), endpoint=emu.url, api_key="k", dotenv=False)
    try:
        s.start(wait=True)
        assert type(s.mic).__name__ == "MicrophoneSource"
        assert type(s.speaker).__name__ == "SpeakerSink"
        before = len(capture(tap))
        virtual_audio.speak(question)  # real time, through the virtual mic
        done = s.wait_for("response.done", timeout=30)
        assert done.response["status"] == "completed"
        speaker = s.speaker
        # a cell doing 2 s of pure-Python work (holding the GIL in turns) while the reply plays
        t_end = time.monotonic() + 2.0
        spins = 0
        while time.monotonic() < t_end:
            spins += 1
        wait_until(
            lambda: speaker.queued_ms() == 0 and not speaker.playing, 15, "the reply to finish playing"
        )  # type: ignore[union-attr]
        received_ms = sum(t.ms for t in s.state.assistant_audio.values())
        item = next(iter(s.state.assistant_audio))
        played_ms = speaker.played_ms(item)  # type: ignore[union-attr]
    finally:
        s.stop()
        tap.close()
        emu.stop()
    assert played_ms == pytest.approx(received_ms, abs=25)
    heard = loud_ms(capture(tap)[before * 1 :])
    # eSpeak's reply has pauses between words: most of it, not all of it, is above the gate
    assert 0.5 * received_ms <= heard <= received_ms + 100
    assert s.speaker.underruns == 0  # type: ignore[union-attr]
    assert s.mic.overruns == 0  # type: ignore[union-attr]


def test_barge_in_through_real_devices(
    virtual_audio: VirtualAudio, question: Path, emulator_fast: BackgroundEmulator
) -> None:
    tap = virtual_audio.tap()
    s = NotebookSession(SessionConfig.server_vad(), endpoint=emulator_fast.url, api_key="k", dotenv=False)
    try:
        s.start(wait=True)
        virtual_audio.speak(question)
        short = s.wait_for("response.done", timeout=30)  # the short first answer
        virtual_audio.speak(question)
        first_delta = s.wait_for(  # the long answer starts
            "response.audio.delta", timeout=30, predicate=lambda e: e.response_id != short.response["id"]
        )
        speaker = s.speaker
        item = first_delta.item_id
        wait_until(lambda: speaker.played_ms(item) > 1500, 15, "1.5 s of the long reply to play")  # type: ignore[union-attr]
        t_talk = time.monotonic()
        virtual_audio.speak(question, wait=False)  # the user talks over the reply
        truncated = s.wait_for(
            "conversation.item.truncated", timeout=20, predicate=lambda e: e.item_id == item
        )
        t_silent_check = time.monotonic()
        cut = next(c for c in s.session.truncations if c["item_id"] == item)  # type: ignore[union-attr]
        done = s.wait_for("response.done", timeout=10)
        # keep the speaker running while the capture covers a second after the flush
        wait_until(lambda: tap.chunks[-1][0] > t_silent_check + 1.2, 10, "the capture after the flush")
    finally:
        s.stop()
        tap.close()
    # the service generated the whole reply ahead of playback (as the real one does), so it
    # completed; what the user did not hear is cut by the client's truncate
    assert done.response["status"] in ("completed", "cancelled")
    assert cut["item_id"] == item
    assert truncated.audio_end_ms == cut["audio_end_ms"]
    assert cut["audio_end_ms"] <= cut["received_ms"]
    assert cut["received_ms"] - cut["audio_end_ms"] > 500, "unplayed audio was dropped, not played"
    assert t_silent_check - t_talk < 5
    # from the capture: between the flush (plus the output latency) and the next reply's first
    # audio, the speaker is silent — no stale audio of the interrupted reply
    events = s.session.timed_events()  # type: ignore[union-attr]
    t_started = next(t for t, e in events if e.type == "input_audio_buffer.speech_started" and t > t_talk)
    t_next = next(
        (t for t, e in events if e.type == "response.audio.delta" and t > t_started and e.item_id != item),
        t_started + 3.0,
    )
    data, marks = tap.audio()
    latency = s.speaker.latency_s + 0.2  # type: ignore[union-attr]
    window = [i for i, t in marks if t_started + latency < t < t_next + 0.2]
    assert len(window) > 2, "no capture in the window after the flush"
    quiet = data[window[0] * 2 : window[-1] * 2]
    assert loud_ms(quiet) <= 60, "the speaker kept playing the interrupted reply"


def test_speak_plays_a_wav_then_the_microphone_resumes(virtual_audio: VirtualAudio, question: Path) -> None:
    emu = start_in_thread(pace="fast")
    s = NotebookSession(
        SessionConfig.server_vad(), endpoint=emu.url, api_key="k", speaker=False, dotenv=False
    )
    try:
        s.start(wait=True)
        mic = s.mic
        assert mic is not None
        s.speak(question, pace="fast")
        s.wait_for("response.done", timeout=30)  # the WAV was heard and answered
        after_wav = mic.frames_yielded  # type: ignore[attr-defined]
        wait_until(lambda: mic.frames_yielded > after_wav + 25, 5, "the microphone to stream again")  # type: ignore[attr-defined]
        assert s.session is not None
        sent = s.session.frames_sent
        wait_until(
            lambda: s.session is not None and s.session.frames_sent > sent + 25, 5, "mic frames on the wire"
        )
    finally:
        s.stop()
        emu.stop()
