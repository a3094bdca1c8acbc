"""Client-reference echo cancellation in the browser audio path (issue #17).

The page's playback node (``BrowserSpeaker``) is the second input of the microphone's capture
worklet in one AudioContext, so each chunk is (mic, what was played) sample by sample.

Headless part: stereo chunks delivered through the widget's real comm entry point become stereo
frames (and mono ``frames()`` take channel 0), a page that could not tap the speaker gives a
silent channel 1, another rate is resampled per channel, and ``attach_reference`` refuses what
is not a ``BrowserSpeaker``.

Browser part (slow): JupyterLab + Debian's Chromium, a fake microphone playing a 700 Hz tone.
(1) The kernel writes a known noise burst to the speaker while the kernel reads
``reference_frames``: channel 1 holds the burst bit-exact (±2 LSB), at the sample the page's
own playback report says it started, and silence elsewhere; channel 0 is the tone.
(2) A NotebookSession with client echo reference on the built-in emulator: what reaches the
emulator is 2-channel (20 ms = 1,920 bytes, the emulator counts the same input time), and
channel 1 of what was sent holds the reply the page played.
"""

from __future__ import annotations

import ast
import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_browser_audio import (
    CHROMIUM,
    EXECUTE,
    READY,
    RUN_ALL,
    deliver,
    kernel_eval,
    wait_kernel,
    wait_until,
)

from voicelive_nb.audio.browser import BrowserMicrophone, BrowserSpeaker
from voicelive_nb.engine import get_engine
from voicelive_nb.errors import AudioError, ConfigError, VoiceLiveError

RATE = 24000
#: Measured: 0.0 ms in every run (the tap and the microphone are read in the same render
#: quantum, so the offset is exactly zero samples). The bound leaves one render quantum
#: (128 frames, 5.3 ms) for a browser that schedules the two nodes a quantum apart; a shift of
#: the reference by even 10 ms fails it.
ALIGNMENT_BOUND_MS = 128 * 1000 / RATE
FAKE_MIC_HZ = 700


class StereoCollector:
    """Iterates ``mic.reference_frames()`` (or ``frames()``) on the engine thread."""

    def __init__(self, mic: BrowserMicrophone, *, stereo: bool = True) -> None:
        self.frames: list[bytes] = []
        self.mic = mic
        read = mic.reference_frames if stereo else mic.frames

        async def run() -> None:
            async for frame in read(RATE, 20):
                self.frames.append(frame)

        self.future = get_engine().submit(run())
        wait_until(lambda: mic._loop is not None)

    def close(self) -> None:
        get_engine().run(self.mic.aclose())
        self.future.result(5)


def stereo_msg(seq: int, rate: int = RATE, channels: int = 2, frame: int = 0) -> dict[str, Any]:
    return {
        "type": "pcm",
        "stream": 1,
        "seq": seq,
        "t": 0,
        "rate": rate,
        "channels": channels,
        "frame": frame,
    }


def noise(samples: int, seed: int, scale: float = 8000) -> np.ndarray:
    return (np.random.default_rng(seed).uniform(-1, 1, samples) * scale).astype("<i2")


def pair(mic: np.ndarray, ref: np.ndarray) -> bytes:
    out = np.empty(2 * mic.size, "<i2")
    out[0::2], out[1::2] = mic, ref
    return out.tobytes()


# ----------------------------------------------------------------------------- headless


def test_stereo_chunks_become_stereo_frames_and_mono_takes_the_mic() -> None:
    sp = BrowserSpeaker()
    mic = BrowserMicrophone(chunk_ms=20)
    with pytest.raises(AudioError, match="no echo reference"):
        mic.reference_frames(RATE, 20)
    assert not mic.reference_available and "attach_reference" in (mic.reference_problem or "")
    mic.attach_reference(sp)
    assert mic.reference_available and mic.reference is sp
    assert mic.reference_speaker == sp.widget._vlnb_id  # what the page looks the speaker up by

    m, r = noise(4800, 1), noise(4800, 2)  # 200 ms
    got = StereoCollector(mic)
    for k in range(10):
        part = slice(k * 480, (k + 1) * 480)
        deliver(mic, stereo_msg(k, frame=1000 + k * 480), [pair(m[part], r[part])])
    wait_until(lambda: len(got.frames) == 10)
    assert all(len(f) == 480 * 4 for f in got.frames)  # 20 ms, 4 bytes a sample pair
    both = np.frombuffer(b"".join(got.frames), "<i2").reshape(-1, 2)
    assert np.array_equal(both[:, 0], m) and np.array_equal(both[:, 1], r)  # channel 0 the mic
    assert list(mic.frame_anchors) == [(0, 1000, RATE)]  # sample 0 is context frame 1000
    got.close()

    mono = StereoCollector(mic, stereo=False)  # a session without client reference: the mic only
    deliver(mic, stereo_msg(0), [pair(m[:480], r[:480])])
    wait_until(lambda: len(mono.frames) == 1)
    assert mono.frames[0] == m[:480].tobytes()
    mono.close()

    # the page could not tap the speaker (mono chunks): channel 1 is silence, counted
    mic.reference_state = "missing: the speaker is not playing"
    assert mic.reference_problem == "missing: the speaker is not playing"
    got = StereoCollector(mic)
    deliver(mic, stereo_msg(0, channels=1), [m[:960].tobytes()])
    wait_until(lambda: len(got.frames) == 2)
    both = np.frombuffer(b"".join(got.frames), "<i2").reshape(-1, 2)
    assert np.array_equal(both[:, 0], m[:960]) and not both[:, 1].any()
    assert mic.reference_missing_chunks == 1
    got.close()
    mic.attach_reference(None)
    assert not mic.reference_available and mic.reference_speaker == ""
    mic.close()
    sp.widget.close()


def test_a_page_at_another_rate_is_resampled_per_channel() -> None:
    sp = BrowserSpeaker()
    mic = BrowserMicrophone()
    mic.attach_reference(sp)
    got = StereoCollector(mic)
    t = np.arange(2400) / 48000
    m = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2")
    r = (np.sin(2 * np.pi * 1500 * t) * 8000).astype("<i2")
    for seq in range(40):  # 2 s at 48 kHz in 50 ms chunks
        deliver(mic, stereo_msg(seq, rate=48000), [pair(m, r)])
    wait_until(lambda: len(got.frames) >= 95)
    got.close()
    both = np.frombuffer(b"".join(got.frames), "<i2").reshape(-1, 2).astype(float)
    assert 95 * 480 <= both.shape[0] <= 100 * 480
    for channel, hz in ((0, 440), (1, 1500)):
        x = both[2400:, channel]
        peak = np.argmax(np.abs(np.fft.rfft(x))) * RATE / x.size
        assert abs(peak - hz) < 5, (channel, peak)
    mic.close()
    sp.widget.close()


def test_attach_reference_accepts_only_a_browser_speaker() -> None:
    from voicelive_nb.audio.memory import BufferSink

    mic = BrowserMicrophone()
    with pytest.raises(ConfigError, match="reference.*BrowserSpeaker") as info:
        mic.attach_reference(BufferSink())  # type: ignore[arg-type]
    assert isinstance(info.value, VoiceLiveError) and info.value.field == "reference"
    closed = BrowserSpeaker()
    closed.widget.close()
    with pytest.raises(ConfigError, match="not closed"):
        mic.attach_reference(closed)
    assert not mic.reference_available
    mic.close()


def test_the_speaker_keeps_the_pages_burst_starts() -> None:
    sp = BrowserSpeaker()
    deliver(sp.widget, {"type": "started", "epoch": 0, "played": 0, "frame": 4096, "rate": RATE})
    deliver(sp.widget, {"type": "started", "epoch": 0, "frame": "x"})  # malformed: ignored
    assert list(sp.starts) == [{"epoch": 0, "played": 0, "frame": 4096, "rate": RATE}]
    assert sp.reports == 0  # a start is not a position report
    sp.widget.close()


# ----------------------------------------------------------------------------- real browser (slow)

CELLS = [
    f"""\
import json
import numpy as np
from voicelive_nb.audio.browser import BrowserMicrophone, BrowserSpeaker
from voicelive_nb.engine import get_engine

RATE = {RATE}
mic = BrowserMicrophone(echo_cancellation=False, noise_suppression=False, auto_gain_control=False, chunk_ms=20)
sp = BrowserSpeaker()
mic.attach_reference(sp)
sp.open(RATE)
BURST = (np.random.default_rng(17).uniform(-0.3, 0.3, RATE * 300 // 1000) * 32767).astype("<i2")
got = []

async def collect():
    async for f in mic.reference_frames(RATE, 20):
        got.append(f)

collector = get_engine().submit(collect())
display(mic, sp)""",
    """\
def lag_of(signal, pattern):
    n = len(signal) + len(pattern)
    corr = np.fft.irfft(np.fft.rfft(signal, n) * np.conj(np.fft.rfft(pattern, n)), n)
    corr = corr[: len(signal) - len(pattern) + 1]  # lags where the whole pattern fits
    lag = int(np.argmax(corr))
    seg = signal[lag : lag + len(pattern)]
    norm = float(np.dot(seg, pattern) / (np.linalg.norm(seg) * np.linalg.norm(pattern) + 1e-9))
    return lag, norm

def peak_hz(x):
    return float(np.argmax(np.abs(np.fft.rfft(x))) * RATE / len(x))

def analyze():
    both = np.frombuffer(b"".join(got), "<i2").reshape(-1, 2).astype(float)
    ch0, ch1 = both[:, 0], both[:, 1]
    b = BURST.astype(float)
    lag, norm = lag_of(ch1, b)
    starts = list(sp.starts)
    start = starts[-1]
    anchors = [a for a in mic.frame_anchors if a[0] <= lag]
    sample, frame, rate = anchors[-1]
    expected = sample + (start["frame"] - frame) * RATE // rate
    outside = np.concatenate([ch1[:lag], ch1[lag + len(b):]])
    mic_lag, mic_norm = lag_of(ch0, b)
    return json.dumps({
        "samples": int(len(ch1)), "lag": lag, "expected": int(expected), "norm": norm,
        "alignment_ms": (lag - expected) * 1000 / RATE, "starts": len(starts),
        "max_diff": float(np.max(np.abs(ch1[lag : lag + len(b)] - b))) if lag + len(b) <= len(ch1) else None,
        "outside_max": float(np.max(np.abs(outside))) if outside.size else 0.0,
        "mic_rms": float(np.sqrt(np.mean(ch0 ** 2))), "mic_hz": peak_hz(ch0[-RATE // 2:]),
        "mic_vs_burst": mic_norm, "ref_missing": mic.reference_missing_chunks,
        "anchors": len(mic.frame_anchors),
    })""",
]

SESSION_CELL = """\
from voicelive_nb.emulator.server import start_in_thread
from voicelive_nb.notebook_session import NotebookSession
from voicelive_nb.protocol.config import SessionConfig
from voicelive_nb.audio.wav import read_wav

get_engine().run(mic.aclose()); collector.result(5)
mic.attach_reference(None)  # the session attaches its speaker itself (NotebookSession._open_audio)
emu = start_in_thread(pace="fast", transcription=False)
stats = emu.server.stats
s = NotebookSession(SessionConfig.manual().with_client_echo_reference(), mic=mic, speaker=sp,
                    endpoint=emu.url, api_key="k", record=REC, dotenv=False)
s.start(wait=True)
s.create_response()
s.wait_for("response.done", timeout=60)
wire = {"attached": mic.reference is sp, "url_flag": "client_ec_reference" in (s.session.url or ""),
        "ec": s.session.effective_session()["input_audio_echo_cancellation"]}
"""

SESSION_REPORT = """\
def session_report():
    live = s.session
    wire.update(bytes_sent=live.bytes_sent, frames_sent=live.frames_sent, emulator_ms=stats.input_audio_ms)
    s.stop()
    emu.stop()
    sent, _ = read_wav(REC + "/mic.wav")
    reply, _ = read_wav(REC + "/assistant.wav")
    both = np.frombuffer(sent, "<i2")[: len(sent) // 4 * 2].reshape(-1, 2).astype(float)
    r = np.frombuffer(reply, "<i2").astype(float)
    # 100 ms windows of the reply, each found in channel 1 (an underrun shifts what follows)
    windows = [lag_of(both[:, 1], r[k : k + RATE // 10]) for k in range(0, len(r) - RATE // 10, RATE // 4)]
    norms = sorted(norm for _lag, norm in windows)
    wire.update(ref_norm=norms[len(norms) // 2], ref_norm_min=norms[0], underruns=sp.underruns, ref_rms=float(np.sqrt(np.mean(both[:, 1] ** 2))),
                mic_hz=peak_hz(both[-RATE // 2:, 0]), reply_ms=len(r) * 1000 // RATE)
    return json.dumps(wire)
"""


def make_tone_wav(path: Path) -> None:
    """The fake microphone: a steady 700 Hz tone (48 kHz, what Chromium's fake capture reads)."""
    from voicelive_nb.audio.wav import write_wav

    t = np.arange(48000 * 20) / 48000
    write_wav(path, (np.sin(2 * np.pi * FAKE_MIC_HZ * t) * 6000).astype("<i2").tobytes(), 48000)


@contextlib.contextmanager
def lab_with(cells: list[str]) -> Iterator[tuple[Any, str, Path]]:
    import nbformat
    from jupyter_lab import jupyter_lab

    root = Path(tempfile.mkdtemp(prefix="vlnb-browser-ref-"))
    try:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, root / "echo_reference.ipynb")
        make_tone_wav(root / "fake_mic.wav")
        with jupyter_lab(root) as server:
            yield server, "echo_reference.ipynb", root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(page: Any, code: str) -> None:
    result = page.evaluate(EXECUTE, code)
    assert result == "ok", result


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Debian's chromium at {CHROMIUM}")
def test_the_page_interleaves_what_it_played_with_the_mic_and_the_emulator_gets_both() -> None:
    pytest.importorskip("playwright")
    from jupyter_lab import chromium, console_problems

    with lab_with(CELLS) as (server, name, root):
        fake = [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={root / 'fake_mic.wav'}",
        ]
        with chromium(extra_args=fake) as context:
            page = context.new_page()
            problems = console_problems(page)
            page.goto(server.lab_url(name))
            page.wait_for_function(READY, arg=name, timeout=60_000)
            page.evaluate(RUN_ALL)
            wait_kernel(page, "mic._iterating", "True", 60)
            page.locator(".vlnb-mic-button").click()  # the user gesture (starts the speaker too)
            page.wait_for_selector('.vlnb-mic-status[data-state="capturing"]', timeout=15_000)
            page.wait_for_selector('.vlnb-speaker-status[data-state="running"]', timeout=10_000)
            page.wait_for_selector('.vlnb-mic-status[data-reference="tapped"]', timeout=10_000)
            assert "echo reference: the speaker" in page.locator(".vlnb-mic-status").inner_text()
            wait_kernel(page, "mic.reference_state", "'tapped'")
            wait_kernel(page, "len(got) >= 25", "True", 10)  # half a second of capture first

            # (1) a known burst through the page's speaker
            run(page, "sp.write('burst', BURST.tobytes()); sp.end_of_item('burst')")
            wait_kernel(page, "sp.played_ms('burst')", "300", 10)
            at = int(kernel_eval(page, "len(got)"))
            wait_kernel(page, f"len(got) >= {at + 25}", "True", 10)  # and half a second after it
            report = json.loads(ast.literal_eval(kernel_eval(page, "analyze()")))
            print("alignment:", json.dumps(report))
            assert report["starts"] == 1 and report["ref_missing"] == 0 and report["anchors"] == 1
            assert abs(report["alignment_ms"]) <= ALIGNMENT_BOUND_MS, report
            assert report["norm"] > 0.999 and report["max_diff"] is not None and report["max_diff"] <= 2, (
                report
            )
            assert report["outside_max"] <= 1, report  # nothing plays: channel 1 is silence
            assert report["mic_rms"] > 1000 and abs(report["mic_hz"] - FAKE_MIC_HZ) < 10, report
            assert abs(report["mic_vs_burst"]) < 0.2, report  # channel 0 is the mic, not the playback

            # (2) a session with client echo reference on the emulator
            run(page, f"REC = {str(root / 'rec')!r}\n" + SESSION_CELL)
            run(page, SESSION_REPORT)
            wait_kernel(page, "sp.chunks_sent > 0 and sp.queued_ms() == 0", "True", 30)  # the reply played
            at = int(kernel_eval(page, "s.session.frames_sent"))
            wait_kernel(page, f"s.session.frames_sent >= {at + 10}", "True", 10)
            wire = json.loads(ast.literal_eval(kernel_eval(page, "session_report()", 30)))
            print("session:", json.dumps(wire))
            # NotebookSession._open_audio attached the speaker (needs /tmp/patches/browser_ref-notebook_session.diff)
            assert wire["attached"], "the session did not take its BrowserSpeaker as the echo reference"
            assert (
                wire["url_flag"]
                and wire["ec"]["reference_source"] == "client"
                and wire["ec"]["channels"] == 2
            )
            assert wire["frames_sent"] > 10 and wire["bytes_sent"] == wire["frames_sent"] * 1920, wire
            # the emulator read 20 ms from every 1,920 bytes: 2 channels (a few frames may be in flight)
            # frames in flight between the two reads: 6 seen under load; a mono stream would be off by half
            assert abs(wire["emulator_ms"] * 96 - wire["bytes_sent"]) <= 10 * 1920, wire
            assert wire["reply_ms"] > 500 and wire["ref_norm"] > 0.95, wire  # channel 1 = the reply played
            assert abs(wire["mic_hz"] - FAKE_MIC_HZ) < 10, wire
            assert not problems.errors, problems.errors
