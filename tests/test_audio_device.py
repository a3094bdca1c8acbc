"""MicrophoneSource / SpeakerSink on real PortAudio devices: the virtual mic and speaker of the
``virtual_audio`` fixture (a private PulseAudio, see tests/virtual_audio.py).

No mocks: the mic hears what the virtual mic speaks, the speaker's output is recorded from the
null sink's monitor. Waits are for conditions with timeouts, never fixed sleeps; the one
``time.sleep`` below is the blocking call under test.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from virtual_audio import SpeakerTap, VirtualAudio
from waiting import wait_until

from voicelive_nb.audio import device
from voicelive_nb.audio.base import AudioSink, AudioSource
from voicelive_nb.audio.device import MicrophoneSource, SpeakerSink
from voicelive_nb.audio.format import resample
from voicelive_nb.audio.wav import read_wav, write_wav
from voicelive_nb.errors import AudioDeviceUnavailable, AudioError
from voicelive_nb.speech.tts import synthesize

RATE = 24000
pytestmark = pytest.mark.usefixtures("virtual_audio", "quiet_gc")


# --- helpers ---------------------------------------------------------------------------------


def tone(freq: float, seconds: float, rate: int = RATE, amplitude: float = 0.3) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)


def best_ncc(captured: np.ndarray, ref: np.ndarray) -> tuple[float, int]:
    """Max over lags of the normalised cross-correlation of ``ref`` inside ``captured``."""
    n = len(captured) + len(ref)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(captured, size) * np.conj(np.fft.rfft(ref, size)), size)
    lag = int(np.argmax(corr[: len(captured) - len(ref) + 1]))
    seg = captured[lag : lag + len(ref)]
    return float(seg @ ref / (np.linalg.norm(seg) * np.linalg.norm(ref) + 1e-12)), lag


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


def capture_since(va: VirtualAudio, start_frame: int) -> np.ndarray:
    pcm, rate = read_wav(va.capture_path)  # reads to EOF: the header is filled in only at stop
    assert rate == RATE
    return samples(pcm)[start_frame:]


def tap_audio(tap: SpeakerTap) -> tuple[np.ndarray, list[tuple[int, float]]]:
    pcm, marks = tap.audio()
    return samples(pcm), marks


def arrival(marks: list[tuple[int, float]], index: int) -> float:
    """When sample ``index`` of the tap arrived (the chunk holding it)."""
    for end, t in marks:
        if end > index:
            return t
    raise AssertionError(f"sample {index} not in the tap yet")


async def take(it: AsyncIterator[bytes], n: int) -> list[bytes]:
    return [await it.__anext__() for _ in range(n)]


def counts() -> tuple[int, int]:
    return len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd"))


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    speech = synthesize("Testing one two three, the quick brown fox.", RATE)
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    pcm = bytes(6000) + speech.pcm16 + bytes(6000)  # 125 ms of silence around it
    write_wav(path, pcm, RATE)
    return path, pcm


# --- devices ---------------------------------------------------------------------------------


def test_virtual_devices_are_listed_and_found() -> None:
    ok, reason = device.audio_available()
    assert ok, reason
    devices = device.list_devices()
    names = [d.name for d in devices]
    assert "pulse" in names and "default" in names
    default_in = device.find_device(None, "input")
    assert [d.index for d in devices if d.is_default_input] == [default_in]
    pulse = names.index("pulse")
    assert device.find_device("PULSE", "output") == devices[pulse].index
    assert device.find_device(devices[pulse].index, "input") == devices[pulse].index
    with pytest.raises(AudioDeviceUnavailable, match="ambiguous"):
        device.find_device("e", "output")  # in both 'pulse' and 'default'


def test_unknown_device_lists_the_available_names() -> None:
    with pytest.raises(
        AudioDeviceUnavailable, match=r"no input device matches 'no-such-mic'.*'pulse'.*'default'"
    ):
        device.find_device("no-such-mic", "input")
    with pytest.raises(AudioDeviceUnavailable, match=r"microphone not available: .*'default'"):
        MicrophoneSource("no-such-mic")
    with pytest.raises(
        AudioDeviceUnavailable, match=r"speaker not available: no output device with index 99"
    ):
        SpeakerSink(99)


def test_rescan_refuses_while_a_stream_is_open() -> None:
    device.rescan()  # nothing open: PortAudio re-initialised, devices still there
    assert device.audio_available()[0]
    sink = SpeakerSink()
    sink.open(RATE)
    try:
        with pytest.raises(AudioError, match="close them first"):
            device.rescan()
    finally:
        sink.close()
    device.rescan()


def test_protocols() -> None:
    assert isinstance(MicrophoneSource(), AudioSource)
    sink = SpeakerSink()
    assert isinstance(sink, AudioSink)
    sink.close()
    sink.close()  # idempotent
    with pytest.raises(AudioError, match="closed"):
        sink.open(RATE)


NO_SOUNDDEVICE = """
import sys
import voicelive_nb.audio.device as d
assert "sounddevice" not in sys.modules, "imported sounddevice eagerly"
{hide}
print(d.audio_available())
for make in (d.MicrophoneSource, d.SpeakerSink):
    try:
        make()
    except d.AudioDeviceUnavailable as exc:
        print(type(exc).__name__, exc)
"""
HIDE_PACKAGE = "sys.modules['sounddevice'] = None"
HIDE_LIBRARY = """
class NoPortAudio:  # what sounddevice raises when libportaudio2 is missing
    def find_spec(self, name, path=None, target=None):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
sys.meta_path.insert(0, NoPortAudio())
"""


@pytest.mark.parametrize(
    ("hide", "hint"),
    [(HIDE_PACKAGE, "pip install 'voicelive_nb[audio]'"), (HIDE_LIBRARY, "apt-get install libportaudio2")],
    ids=["no-sounddevice", "no-portaudio"],
)
def test_missing_sounddevice_or_portaudio_says_what_to_install(hide: str, hint: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", NO_SOUNDDEVICE.format(hide=hide)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("(False, ") and hint in lines[0]
    mic, speaker = lines[1:]
    assert mic.startswith("AudioDeviceUnavailable microphone not available: ") and hint in mic
    assert "WavSource" in mic
    assert speaker.startswith("AudioDeviceUnavailable speaker not available: ") and hint in speaker


def test_no_sound_server_says_what_to_do(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "PULSE_COOKIE")}
    env.update(PULSE_SERVER=f"unix:{tmp_path}/none", HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", NO_SOUNDDEVICE.format(hide="")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    available, mic, speaker = out.stdout.splitlines()
    assert available.startswith("(False, 'no audio devices found")
    assert mic == (
        "AudioDeviceUnavailable microphone not available: no input device found (PortAudio sees no devices); "
        "start a sound server (PulseAudio/PipeWire) or use WavSource / the browser microphone"
    )
    assert speaker.startswith("AudioDeviceUnavailable speaker not available: no output device found")


# --- microphone ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device_rate", "session_rate"),
    [(None, 24000), (None, 16000), (48000, 16000)],
    ids=["24k", "16k", "48k-16k"],
)
async def test_mic_hears_what_the_virtual_mic_speaks(
    virtual_audio: VirtualAudio, speech_wav: tuple[Path, bytes], device_rate: int | None, session_rate: int
) -> None:
    path, pcm = speech_wav
    mic = MicrophoneSource(sample_rate=device_rate)
    frame_bytes = session_rate * 20 // 1000 * 2
    got: list[bytes] = []

    async def collect() -> None:
        it = mic.frames(session_rate)
        got.extend(await take(it, 1))  # the stream runs
        speaker = virtual_audio.speak(path, wait=False)
        async for frame in it:
            got.append(frame)
            if speaker.poll() is not None:
                break
        assert speaker.returncode == 0
        got.extend(await take(it, 15))  # 300 ms more: what was still in flight

    await asyncio.wait_for(collect(), 30)
    await mic.aclose()
    await mic.aclose()  # idempotent
    assert mic.device_rate == (device_rate or session_rate)
    assert {len(f) for f in got} == {frame_bytes}
    assert mic.overruns == 0 and mic.input_overflows == 0
    ref = samples(resample(pcm, RATE, session_rate))
    ncc, _ = best_ncc(samples(b"".join(got)), ref)
    assert ncc >= 0.9, f"mic recording does not match the spoken WAV: NCC {ncc:.3f}"


async def test_mic_muted_yields_silence_of_the_same_size(virtual_audio: VirtualAudio, tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    write_wav(path, tone(440, 0.6), RATE)
    mic = MicrophoneSource()
    mic.muted = True
    try:
        it = mic.frames(RATE, 10)
        await take(it, 1)
        speaker = virtual_audio.speak(path, wait=False)
        loudest = -np.inf
        frames: list[bytes] = []
        async for frame in it:
            frames.append(frame)
            loudest = max(loudest, mic.level_dbfs)
            if speaker.poll() is not None:
                break
    finally:
        await mic.aclose()
    assert {len(f) for f in frames} == {RATE * 10 // 1000 * 2}
    assert not any(any(f) for f in frames)  # all zeros
    assert loudest > -20  # the meter still shows the real input (a 0.3 sine is -13.5 dBFS)


async def test_mic_loses_nothing_while_the_loop_is_blocked() -> None:
    mic = MicrophoneSource(max_queue_s=3.0)
    try:
        it = mic.frames(RATE)
        await take(it, 1)
        first_block_time, first_blocks = mic.block_time, mic.blocks
        time.sleep(2.0)  # noqa: ASYNC251 -- the call under test: blocks this thread and its event loop
        blocked_at = time.monotonic()
        # drain what piled up while blocked, then a few live frames
        await asyncio.wait_for(take(it, 1), 5)
        while mic.queued:
            await it.__anext__()
        await asyncio.wait_for(take(it, 3), 5)
        yielded, queued, blocks = mic.frames_yielded, mic.queued, mic.blocks
    finally:
        await mic.aclose()
    assert mic.overruns == 0 and mic.input_overflows == 0
    assert yielded + queued == blocks, "every block became exactly one frame"
    assert mic.blocks - first_blocks >= 100, "2 s of blocks arrived while the loop was blocked"
    # frames received == audio elapsed between the first and the last callback, within one
    # block plus how late a callback may run without PortAudio flagging an overflow (its buffer)
    audio_s = (mic.blocks - first_blocks) * 0.020
    wall_s = mic.block_time - first_block_time
    assert abs(audio_s - wall_s) <= 0.020 + mic.latency_s, (audio_s, wall_s)
    assert mic.block_time > blocked_at


async def test_persistent_mic_keeps_capturing_between_streams(virtual_audio: VirtualAudio) -> None:
    """A reconnecting session closes its frames() iterator; a persistent mic buffers meanwhile."""
    mic = MicrophoneSource(max_queue_s=3.0)
    mic.persistent = True
    try:
        first = mic.frames(RATE)
        await take(first, 2)
        await first.aclose()  # type: ignore[attr-defined]  # the session's pump ends (connection lost)
        blocks_at_gap = mic.blocks
        deadline = time.monotonic() + 5
        while mic.queued < 10:  # audio keeps arriving while nobody iterates
            assert time.monotonic() < deadline, "the stream stopped capturing between iterators"
            await asyncio.sleep(0.02)
        second = mic.frames(RATE)  # the reconnected session
        await asyncio.wait_for(take(second, 10), 5)
        assert mic.frames_yielded >= 12
        assert mic.overruns == 0
        assert mic.blocks > blocks_at_gap
        await second.aclose()  # type: ignore[attr-defined]
    finally:
        await mic.aclose()
    assert mic.closed


async def test_mic_queue_is_bounded_and_drops_the_oldest() -> None:
    mic = MicrophoneSource(max_queue_s=0.2)  # 10 blocks
    try:
        it = mic.frames(RATE)
        await take(it, 1)
        time.sleep(0.6)  # noqa: ASYNC251 -- the call under test: the consumer falls 30 blocks behind
        await asyncio.wait_for(take(it, 1), 5)
        assert mic.queued <= 10
        assert mic.overruns >= 15
        newest = mic.block_time
        assert time.monotonic() - newest < 0.25, "what is left is the most recent audio"
        yielded, queued, blocks = mic.frames_yielded, mic.queued, mic.blocks
    finally:
        await mic.aclose()
    assert yielded + queued + mic.overruns == blocks


# --- speaker ---------------------------------------------------------------------------------


@pytest.mark.parametrize("device_rate", [None, 48000], ids=["24k", "48k"])
def test_speaker_plays_what_is_written(virtual_audio: VirtualAudio, device_rate: int | None) -> None:
    sink = SpeakerSink(sample_rate=device_rate)
    sink.open(RATE)
    try:
        start = virtual_audio.capture_frames()
        audio = tone(1000, 1.0)
        # the producer keeps ahead of the device, as the service does (a full garbage collection of
        # this long test process's heap between two deltas would be the test's own pause: quiet_gc)
        for i in range(0, len(audio), 4800):  # 100 ms deltas, as the service sends them
            sink.write("item1", audio[i : i + 4800])
        sink.end_of_item("item1")
        wait_until(
            lambda: sink.played_ms("item1") >= 999 and sink.queued_ms() == 0, 5, "the tone to be played"
        )
        assert abs(sink.played_ms("item1") - 1000) <= 1
        need = start + int(RATE * (1.0 + 2 * sink.latency_s + 0.3))
        wait_until(lambda: virtual_audio.capture_frames() >= need, 5, "the capture to pass the tone")
        counters = (sink.underruns, sink.output_underflows, sink.overruns, sink.callbacks)
    finally:
        sink.close()
    assert counters[:3] == (0, 0, 0), f"underruns, underflows, overruns, callbacks: {counters}"
    x = capture_since(virtual_audio, start)
    loud = np.flatnonzero(np.abs(x) > 1000)
    assert len(loud), "nothing was captured from the speaker"
    span = x[loud[0] : loud[-1] + 1]
    assert abs(len(span) / RATE - 1.0) < 0.02, f"captured {len(span) / RATE:.3f} s of tone"
    assert abs(peak_hz(span, RATE) - 1000) < 5


@pytest.mark.parametrize("device_rate", [None, 48000], ids=["session-rate", "48k"])
def test_audio_written_right_after_open_plays_in_real_time(device_rate: int | None) -> None:
    # a new output stream first takes its whole buffer at once (PulseAudio: 20 blocks, 400 ms, in a
    # few ms); audio written then was pulled out faster than real time, the ring ran dry a moment
    # later and the first reply of a session had a gap (an underrun) ~100 ms in
    sink = SpeakerSink(sample_rate=device_rate)
    sink.open(RATE)
    try:
        sink.write("first", tone(1000, 1.0))
        written = time.monotonic()
        wait_until(lambda: sink.played_ms("first") >= 300, 5, "300 ms of the reply to be played")
        took = time.monotonic() - written
        sink.end_of_item("first")
        wait_until(lambda: sink.queued_ms() == 0, 5, "the reply to finish")
    finally:
        sink.close()
    # paced by the device: at most one ALSA period (80 ms here) ahead of real time, not 400 ms
    assert took >= 0.3 - 0.15, f"300 ms of audio went to the device in {took * 1000:.0f} ms"
    assert sink.underruns == 0


def test_speaker_plays_a_short_reply_at_its_end() -> None:
    sink = SpeakerSink(jitter_ms=60)
    sink.open(RATE)
    try:
        sink.write("short", tone(1000, 0.04))
        assert not sink.playing and sink.queued_ms() == 40  # below the jitter target: waits
        sink.end_of_item("short")  # no more audio is coming: play it
        wait_until(lambda: sink.played_ms("short") == 40, 5, "the short reply to play")
        assert sink.underruns == 0
    finally:
        sink.close()


def test_barge_in_clear_silences_within_one_block_plus_latency(virtual_audio: VirtualAudio) -> None:
    tap = virtual_audio.tap()
    sink = SpeakerSink()
    sink.open(RATE)
    try:
        wait_until(lambda: sink.callbacks >= 5 and tap.frames > 0, 5, "the stream and the tap to run")
        audio = tone(1000, 4.0)
        t_write = time.monotonic()
        for i in range(0, len(audio), 4800):
            sink.write("reply", audio[i : i + 4800])
        wait_until(lambda: sink.played_ms("reply") >= 1000, 5, "a second of the reply to play")
        t_clear = time.monotonic()
        played = sink.played_ms("reply")
        sink.clear()
        latency = sink.output_latency_s
        assert latency is not None
        wait_until(lambda: tap.chunks[-1][0] > t_clear + latency + 0.3, 5, "the tap to pass the clear")
        assert sink.played_ms("reply") <= played + 20  # at most the one block being copied at the clear
        assert sink.underruns == 0 and sink.output_underflows == 0
    finally:
        sink.close()
        tap.close()
    x, marks = tap_audio(tap)
    heard = np.flatnonzero(x)
    start, end = heard[0], heard[-1] + 1
    heard_ms = (end - start) * 1000 / RATE
    silent_after_s = arrival(marks, end) - t_clear
    onset_s = arrival(marks, start) - t_write
    wall_ms = (t_clear - t_write) * 1000
    print(
        f"\nbarge-in: silence {silent_after_s * 1000:.0f} ms after clear, onset {onset_s * 1000:.0f} ms after write"
        f" (latency_s {sink.latency_s}, "
        f"PortAudio reports {latency * 1000:.0f} ms); played_ms {played} vs heard {heard_ms:.0f} ms, "
        f"wall {wall_ms:.0f} ms"
    )
    assert played <= 4000
    # what played_ms said is what the speaker really played (+ the block in flight at the clear)
    assert played - 1 <= heard_ms <= played + 20 + 1  # (the tone starts with a 0 sample)
    # clear() acts at the next callback: after it, silence reaches the tap as fast as the first
    # tone sample did after the first write (the same pipeline: PortAudio's buffer, which it
    # rounds up from latency_s to whole blocks, the null sink, the tap), within one block
    assert silent_after_s - onset_s <= 0.020 + 0.040  # one block + drift of the pipeline, tap jitter
    # and that pipeline is the configured buffer (the server holds 30-70 ms more than PortAudio
    # reports), not the 30 s playout ring
    assert silent_after_s <= 2 * latency
    assert abs(played - wall_ms) <= latency * 1000 + 2 * 20 + sink.jitter_ms


async def test_mic_aclose_from_another_loop_ends_the_iterator() -> None:
    """The engine-thread pattern: frames() runs on a background loop, aclose() comes from elsewhere."""
    mic = MicrophoneSource()
    got: list[bytes] = []

    async def consume() -> None:
        async for frame in mic.frames(RATE):
            got.append(frame)

    engine = threading.Thread(target=asyncio.run, args=(consume(),), name="engine")
    engine.start()
    wait_until(lambda: len(got) >= 3, 5, "frames on the engine thread")
    await mic.aclose()
    engine.join(5)
    assert not engine.is_alive(), "the frames() iterator did not end"
    assert mic.closed and repr(mic).endswith("closed)")


# --- resources -------------------------------------------------------------------------------


async def test_open_close_cycles_leave_no_threads_or_fds() -> None:
    async def mic_cycle() -> None:
        mic = MicrophoneSource()
        await asyncio.wait_for(take(mic.frames(RATE), 1), 5)
        await mic.aclose()

    def speaker_cycle() -> None:
        sink = SpeakerSink()
        sink.open(RATE)
        sink.write("x", bytes(960))
        sink.close()

    await mic_cycle()  # first use loads libraries and config files: not a leak
    speaker_cycle()
    baseline = counts()
    for _ in range(50):
        await mic_cycle()
        speaker_cycle()
    assert counts() == baseline, f"threads, fds: {counts()} after 50 cycles, {baseline} before"
