"""One reading of the event stream: the session state, the timeline, the lab and the figures agree.

The same recorded events (real Voice Live / OpenAI Realtime traffic, and a real emulator session)
are given to :class:`SessionProtocol`, to :class:`Timeline` and to the lab's turn extraction;
they must find the same VAD segments (items and audio milliseconds), the same turns and the same
barge-ins. The session figure must draw each VAD span as long as the state says it was, and that
length must be the speech in the audio plus the configured padding and silence window.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import real_traffic
from matplotlib.patches import Rectangle
from real_traffic import Trace

from voicelive_nb import SessionConfig
from voicelive_nb.analysis.timeline import Timeline
from voicelive_nb.audio.memory import ArraySource
from voicelive_nb.emulator.server import BackgroundEmulator, start_in_thread
from voicelive_nb.lab.replay import _extract_turns, boundary_mapping
from voicelive_nb.plots import plot_session
from voicelive_nb.protocol import SessionProtocol, decode_client_event, decode_server_event
from voicelive_nb.session import Session
from voicelive_nb.speech.tts import synthesize

LEAD_MS = 600
TAIL_MS = 1200


def interpret(
    timed: list[tuple[float, Any]], wire: list[dict[str, Any]] | None = None
) -> tuple[SessionProtocol, Timeline, list[Any]]:
    """The three readers over the same received events (``(receive time, event)``); the
    timeline gets the ``wire`` dicts instead when given (as it reads a recording)."""
    proto = SessionProtocol()
    timeline = Timeline()
    for index, (t, event) in enumerate(timed):
        proto.receive(event, t)
        timeline.add(t, event if wire is None else wire[index])
    mapping = boundary_mapping(proto.session, SessionConfig.server_vad())
    turns = _extract_turns(timed, mapping, None, 48.0, 1e9)
    return proto, timeline, turns


def assert_agree(proto: SessionProtocol, timeline: Timeline, turns: list[Any]) -> None:
    segments = [(s.item_id, s.start_ms, s.end_ms, s.committed) for s in proto.vad_segments]
    spans = [(s.item_id, s.start_ms, s.end_ms, s.committed) for s in timeline.vad_spans]
    assert spans == segments
    closed = [(s.item_id, s.start_ms, s.end_ms) for s in proto.vad_segments if s.start_ms is not None]
    assert [(t.item_id, t.audio_start_ms, t.audio_end_ms) for t in turns] == closed
    # one definition: the timeline's marks are its state's barge-ins, placed on the axis
    marks = [(b.user_item_id, b.response_id) for b in timeline.barge_ins]
    assert marks == [(b.user_item_id, b.response_id) for b in timeline.state.barge_ins]
    assert timeline.state.vad_segments == proto.vad_segments
    # a state told nothing about playback counts unplayed audio as still heard: it finds the
    # timeline's barge-ins (whose playback model may have finished a reply) and maybe more
    assert set(marks) <= {(b.user_item_id, b.response_id) for b in proto.barge_ins}
    # the playback the timeline models is the assistant audio the state counted (either wire shape)
    heard = {item_id for item_id in (a.item_id for a in timeline.audio_spans) if proto.audio_ms(item_id) > 0}
    assert {a.item_id for a in timeline.audio_spans} == heard
    assert heard == {i.id for i in proto.items if proto.audio_ms(i.id) > 0}
    # the response lane is a view over the state's records: same responses, same receive times
    records = {r.id: r for r in proto.all_responses}
    assert [s.response_id for s in timeline.response_spans] == list(records)
    for span in timeline.response_spans:
        record = records[span.response_id]
        assert record.created_at is not None
        assert span.start_s == pytest.approx(timeline.to_axis(record.created_at))
        assert (span.end_s is None) == (record.done_at is None)
        assert span.reason == record.reason


def test_response_records_keep_the_receive_times_of_their_events() -> None:
    """created / first audio / done are the times given with those events, never read from a clock."""
    events = [
        (1.0, {"type": "response.created", "response": {"id": "r1", "status": "in_progress", "output": []}}),
        (
            1.5,
            {
                "type": "response.output_item.added",
                "response_id": "r1",
                "output_index": 0,
                "item": {"id": "i1", "type": "message", "role": "assistant", "content": []},
            },
        ),
        (
            2.0,
            {
                "type": "response.audio.delta",
                "response_id": "r1",
                "item_id": "i1",
                "output_index": 0,
                "content_index": 0,
                "delta": "AAAA",
            },
        ),
        (
            2.5,
            {
                "type": "response.audio.delta",
                "response_id": "r1",
                "item_id": "i1",
                "output_index": 0,
                "content_index": 0,
                "delta": "AAAA",
            },
        ),
        (
            3.0,
            {
                "type": "response.done",
                "response": {
                    "id": "r1",
                    "status": "cancelled",
                    "status_details": {"type": "cancelled", "reason": "turn_detected"},
                    "output": [],
                },
            },
        ),
        (4.0, {"type": "response.done", "response": {"id": "r2", "status": "completed", "output": []}}),
        (5.0, {"type": "response.created", "response": {"id": "r3", "status": "in_progress", "output": []}}),
    ]
    proto = SessionProtocol()
    timeline = Timeline()
    for t, payload in events:
        proto.receive(decode_server_event(json.dumps(payload)), t)
        timeline.add(t, payload)
    r1, r2, r3 = proto.all_responses
    assert (r1.id, r1.created_at, r1.first_audio_at, r1.done_at) == ("r1", 1.0, 2.0, 3.0)
    assert r1.reason == "turn_detected"
    assert (r2.id, r2.created_at, r2.first_audio_at, r2.done_at) == ("r2", 4.0, None, 4.0)  # never announced
    assert (r3.id, r3.created_at, r3.done_at, r3.status) == ("r3", 5.0, None, "in_progress")
    assert [r.id for r in proto.responses] == ["r1", "r2"]
    spans = timeline.response_spans
    assert [(s.response_id, s.status, s.reason) for s in spans] == [
        ("r1", "cancelled", "turn_detected"),
        ("r2", "completed", None),
        ("r3", "in_progress", None),
    ]
    assert [s.end_s is None for s in spans] == [False, False, True]
    assert spans[0].end_s is not None and spans[0].end_s - spans[0].start_s == pytest.approx(2.0)


def timed_trace(trace: Trace) -> list[tuple[float, Any]]:
    """A trace's server events, decoded, 1 ms apart: a burst, as received (the traces keep no times)."""
    out: list[tuple[float, Any]] = []
    for direction, payload in trace.lines():
        if direction == "server":
            out.append((len(out) * 0.001, decode_server_event(json.dumps(payload))))
    return out


@pytest.mark.parametrize("trace", real_traffic.params())
def test_real_traffic_is_read_alike_by_state_timeline_and_lab(trace: Trace) -> None:
    timed = timed_trace(trace)
    proto, timeline, turns = interpret(timed, [p for d, p in trace.lines() if d == "server"])
    for direction, payload in trace.lines():
        if direction == "client":
            decode_client_event(json.dumps(payload))  # the trace is well formed both ways
    assert_agree(proto, timeline, turns)
    stops = sum(1 for _, e in timed if e.type == "input_audio_buffer.speech_stopped")
    assert len(proto.vad_segments) == stops


@pytest.fixture(scope="module")
def emulator() -> Iterator[BackgroundEmulator]:
    emu = start_in_thread(pace="fast")
    yield emu
    emu.stop()


def speech_ms(pcm: bytes, rate: int = 24000) -> tuple[float, float]:
    """Where the voiced audio of a clip begins and ends (ms; 10 ms frames above -40 dBFS)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    frame = rate // 100
    rms = np.sqrt(np.mean(samples[: len(samples) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    voiced = np.flatnonzero(rms > 0.01)
    return float(voiced[0] * 10), float((voiced[-1] + 1) * 10)


@pytest.fixture(scope="module")
def recorded(
    emulator: BackgroundEmulator, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Session, bytes]:
    """A recorded emulator session: about a second of speech, then its answer."""
    directory = tmp_path_factory.mktemp("rec") / "session"
    pcm = synthesize("Hello there.").pcm16

    async def run() -> Session:
        session = Session(
            SessionConfig.server_vad(), endpoint=emulator.url, api_key="k", dotenv=False, record=directory
        )
        async with session:
            session.stream(
                ArraySource(pcm, 24000, pace="realtime", lead_silence_ms=LEAD_MS, tail_silence_ms=TAIL_MS)
            )
            await session.wait_for("response.done", timeout=60)
        return session

    return directory, asyncio.run(run()), pcm


def test_an_emulator_session_is_read_alike_by_state_timeline_and_lab(
    recorded: tuple[Path, Session, bytes],
) -> None:
    _, session, _ = recorded
    timed = session.timed_events()
    proto, timeline, turns = interpret(timed)
    assert [s for s in proto.vad_segments] == list(session.state.vad_segments)
    assert_agree(proto, timeline, turns)
    assert len(turns) == 1 and turns[0].response_id == session.state.responses[0].id
    # the session's own state keeps the receive times it stamped on its history
    times = {id(event): t for t, event in timed}
    response = session.state.responses[0]
    created = next(e for _, e in timed if e.type == "response.created")
    done = next(e for _, e in timed if e.type == "response.done")
    first_audio = next(e for _, e in timed if e.type == "response.audio.delta")
    assert (response.created_at, response.first_audio_at, response.done_at) == (
        times[id(created)],
        times[id(first_audio)],
        times[id(done)],
    )
    segment = session.state.vad_segments[0]
    started = next(e for _, e in timed if e.type == "input_audio_buffer.speech_started")
    assert segment.started_at == times[id(started)]


def test_figure_vad_spans_are_as_long_as_the_state_and_the_speech(
    recorded: tuple[Path, Session, bytes],
) -> None:
    directory, session, pcm = recorded
    (segment,) = session.state.vad_segments
    assert segment.duration_ms is not None
    voiced_start, voiced_end = speech_ms(pcm)
    spoken_ms = voiced_end - voiced_start
    assert 500 < spoken_ms < 1500  # about a second of speech
    padding, silence = 400, 500  # SessionConfig.server_vad()
    # the service's span: the speech, the padding before it and the silence window after it
    assert segment.duration_ms == pytest.approx(padding + spoken_ms + silence, abs=250)
    assert segment.start_ms == pytest.approx(LEAD_MS + voiced_start - padding, abs=150)
    for source in (directory, session):
        fig = plot_session(source)
        widths = [
            patch.get_width()
            for ax in fig.axes
            for patch in ax.patches
            if isinstance(patch, Rectangle) and patch.get_gid() == "vad"
        ]
        assert widths == [pytest.approx(segment.duration_ms / 1000.0, abs=0.002)]
        shades = [
            p
            for ax in fig.axes
            for p in ax.patches
            if isinstance(p, Rectangle) and p.get_gid() == "vad-shade"
        ]
        assert [s.get_width() for s in shades] == [pytest.approx(segment.duration_ms / 1000.0, abs=0.002)]
