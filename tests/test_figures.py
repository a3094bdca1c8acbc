"""Session figures from a real recording and from a NotebookSession, rendered headless (Agg)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure

from voicelive_nb import SessionConfig
from voicelive_nb.audio.memory import ArraySource
from voicelive_nb.audio.wav import write_wav
from voicelive_nb.emulator.server import BackgroundEmulator, start_in_thread
from voicelive_nb.notebook_session import NotebookSession
from voicelive_nb.plots import SessionFigure, plot_session, plot_vad
from voicelive_nb.protocol.state import VadSegment
from voicelive_nb.recording import Recorder
from voicelive_nb.session import Session
from voicelive_nb.speech.tts import synthesize

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def emulator() -> Iterator[BackgroundEmulator]:
    emu = start_in_thread(pace="fast")
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def recorded(emulator: BackgroundEmulator, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Session]:
    """A recording made by a real session: two questions, two answers."""
    directory = tmp_path_factory.mktemp("rec") / "session"
    pcm = synthesize("What is the weather like?").pcm16

    async def run() -> Session:
        session = Session(
            SessionConfig.server_vad(), endpoint=emulator.url, api_key="k", dotenv=False, record=directory
        )
        async with session:
            for _ in range(2):
                session.stream(
                    ArraySource(pcm, 24000, pace="realtime", lead_silence_ms=300, tail_silence_ms=1000)
                )
                await session.wait_for("response.done", timeout=30)
        return session

    return directory, asyncio.run(run())


def by_gid(fig: Figure, gid: str) -> list[Any]:
    return [a for ax in fig.axes for a in (*ax.patches, *ax.lines, *ax.texts) if a.get_gid() == gid]


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def same_picture(a: bytes, b: bytes) -> bool:
    """Two PNGs show the same figure: identical bytes, or the same size with at most 0.1 % of the
    pixels different. Under load, two renders of one figure have differed in ~150 of 550,000
    pixels along the dense waveform line (cause not found); a wrong figure differs in far more.
    Compared here, not with ``==`` on the bytes: pytest's diff of two 60 kB byte strings took
    over 100 s, so a mismatch looked like a hang."""
    if a == b:
        return True
    from matplotlib.image import imread

    x, y = imread(io.BytesIO(a)), imread(io.BytesIO(b))
    if x.shape != y.shape:
        return False
    differing = int((np.abs(x - y).sum(axis=-1) > 0).sum())
    return differing <= 0.001 * x.shape[0] * x.shape[1]


def test_figure_from_a_recording_directory(recorded: tuple[Path, Session]) -> None:
    directory, session = recorded
    fig = plot_session(directory)
    assert isinstance(fig, SessionFigure)
    assert len(fig.axes) == 2  # waveform on top, timeline below
    assert len(by_gid(fig, "waveform-mic")) == 1
    assert len(by_gid(fig, "waveform-assistant")) == 1
    mic_line = by_gid(fig, "waveform-mic")[0]
    assert np.ptp(mic_line.get_ydata()) > 0.5  # real audio, not a flat line
    segments = session.state.vad_segments
    assert len(segments) == 2
    assert len(by_gid(fig, "vad")) == len(segments)
    assert len(by_gid(fig, "response")) == len(session.state.responses) == 2
    assert len(by_gid(fig, "latency-label")) == 2
    title = fig.get_suptitle()
    assert "2 VAD segments" in title and "2 responses" in title and "recording session" in title
    data = png(fig)
    assert data.startswith(PNG_MAGIC)
    assert same_picture(fig._repr_png_(), data)  # shows inline in Jupyter without pyplot
    assert same_picture(png(plot_session(directory)), data)  # deterministic
    assert repr(fig) == "<SessionFigure size 1100x500 with 2 Axes>"


def test_figure_from_a_loaded_recording_and_into_given_axes(recorded: tuple[Path, Session]) -> None:
    directory, _ = recorded
    recording = Recorder.load(directory)
    fig = plot_session(recording, show_waveform=False)
    assert len(fig.axes) == 1
    assert not by_gid(fig, "waveform-mic")
    assert len(by_gid(fig, "vad")) == 2
    host = Figure()
    ax = host.subplots()
    assert plot_session(recording, ax=ax) is host
    assert len(by_gid(host, "response")) == 2
    assert png(host).startswith(PNG_MAGIC)


def test_figure_from_a_session_prefers_its_recording(recorded: tuple[Path, Session]) -> None:
    _, session = recorded
    fig = plot_session(session)
    assert len(by_gid(fig, "waveform-assistant")) == 1
    assert "recording" in fig.get_suptitle()


def test_figure_from_a_notebook_session_after_stop(emulator: BackgroundEmulator, tmp_path: Path) -> None:
    wav = tmp_path / "q.wav"
    write_wav(wav, synthesize("Tell me a joke.").pcm16, 24000)
    ns = NotebookSession(
        SessionConfig.server_vad(), endpoint=emulator.url, api_key="k", mic=False, speaker=False, dotenv=False
    )
    with pytest.raises(ValueError, match="not been started"):
        plot_session(ns)
    ns.start(wait=True)
    try:
        ns.speak(wav)
        ns.wait_for("response.done", timeout=30)
    finally:
        ns.stop()
    fig = plot_session(ns)  # nothing recorded, no live view: events only
    assert len(fig.axes) == 1
    title = fig.get_suptitle()
    assert "no audio recorded" in title and "estimated" in title
    assert len(by_gid(fig, "vad")) == len(ns.state.vad_segments) == 1
    assert len(by_gid(fig, "response")) == len(ns.state.responses) == 1
    assert png(fig).startswith(PNG_MAGIC)


def test_plot_vad_against_truth_with_audio() -> None:
    rate = 16000
    audio = np.zeros(3 * rate, np.float32)
    audio[rate // 2 : rate] = 0.5
    detected = [VadSegment("a", 450, 1050), VadSegment("b", 2000, None)]
    fig = plot_vad(detected, truth=[(500, 1000)], audio=audio, sample_rate=rate)
    assert len(fig.axes) == 2
    assert len(by_gid(fig, "vad")) == 2
    assert len(by_gid(fig, "truth")) == 1
    title = fig.axes[-1].get_title()
    assert "2 detected, 1 true" in title and "100% of true speech detected" in title
    assert png(fig).startswith(PNG_MAGIC)
    only = plot_vad([(100, 200)])
    assert len(only.axes) == 1 and only.axes[0].get_title() == "1 detected"


def test_figure_from_a_notebook_session_with_a_collecting_monitor(
    emulator: BackgroundEmulator, tmp_path: Path
) -> None:
    from voicelive_nb.widgets.live import SessionMonitor

    wav = tmp_path / "q.wav"
    write_wav(wav, synthesize("Good morning.").pcm16, 24000)
    ns = NotebookSession(
        SessionConfig.server_vad(), endpoint=emulator.url, api_key="k", mic=False, speaker=False, dotenv=False
    )
    monitor = SessionMonitor(history_s=60).attach(ns)  # taps only: input times and bounded audio
    ns.start(wait=True)
    try:
        ns.speak(wav)
        ns.wait_for("response.done", timeout=30)
    finally:
        ns.stop()
        monitor.detach()
    fig = plot_session(ns)
    assert "live taps" in fig.get_suptitle()
    assert "estimated" not in fig.get_suptitle()  # input times were seen: one real axis
    assert len(fig.axes) == 2
    mic = by_gid(fig, "waveform-mic")[0]
    assistant = by_gid(fig, "waveform-assistant")[0]
    assert np.ptp(mic.get_ydata()) > 0.5 and np.ptp(assistant.get_ydata()) > 0.5
    assert len(by_gid(fig, "vad")) == len(ns.state.vad_segments) == 1
    assert png(fig).startswith(PNG_MAGIC)


def legend_labels(fig: Figure) -> list[str]:
    return [text.get_text() for legend in fig.legends for text in legend.get_texts()]


def test_an_empty_figure_has_no_legend_for_what_is_not_drawn() -> None:
    from voicelive_nb.analysis.timeline import Timeline

    fig = plot_session(Timeline())
    assert legend_labels(fig) == []
    assert len(by_gid(fig, "empty-note")) == 1
    assert png(fig).startswith(PNG_MAGIC)


def test_resumed_speech_over_more_than_a_minute_is_drawn_where_it_happened() -> None:
    """Two turns, a 70 s pause, a third turn whose padding reaches into the first run: every VAD
    rectangle has the width the service reported, the axis reads m:ss, the legend lists what is drawn."""
    from voicelive_nb.analysis.timeline import Timeline

    tl = Timeline()
    t0 = 100.0

    def stream(seconds: float, start: float) -> None:
        for k in range(round(seconds * 50)):
            tl.input_audio(start + (k + 1) * 0.02, 960)

    def turn(item: str, start_ms: int, end_ms: int, t_start: float, t_stop: float) -> None:
        tl.add(
            t_start,
            {"type": "input_audio_buffer.speech_started", "audio_start_ms": start_ms, "item_id": item},
        )
        tl.add(t_stop, {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": end_ms, "item_id": item})

    stream(70.0, t0)
    turn("u1", 5_000, 7_000, t0 + 5.3, t0 + 7.3)
    tl.add(t0 + 7.5, {"type": "response.created", "response": {"id": "r1"}})
    tl.add(t0 + 8.0, {"type": "response.done", "response": {"id": "r1", "status": "completed"}})
    stream(10.0, t0 + 140.0)
    turn("u2", 69_800, 74_000, t0 + 142.5, t0 + 145.0)
    fig = plot_session(tl)
    rects = sorted((r.get_x(), r.get_width()) for r in by_gid(fig, "vad"))
    assert [(round(x, 3), round(w, 3)) for x, w in rects] == [(5.0, 2.0), (139.8, 4.2)]
    fig.canvas.draw()
    ax = fig.axes[-1]
    ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert "1:00" in ticks and "2:00" in ticks, ticks
    assert "m:ss" in ax.get_xlabel()
    assert legend_labels(fig) == ["VAD speech", "response"]  # no barge-in, latency, audio, cancelled
