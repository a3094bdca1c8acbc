"""The end-to-end Session scenarios in both wire shapes, against the emulator over real sockets.

``api-version=2026-07-15`` speaks the preview shape (flat session, ``response.audio.delta``);
``api-version=v1`` the GA shape (``session.type: "realtime"``, ``audio.input/.output``,
``response.output_audio.delta``). The same scenario must behave the same in both: the same
events by canonical type, the same assistant audio, truncation at what was played. Each test
also checks that the wire really was in the shape asked for (what was sent, what was received).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from voicelive_nb import Session, SessionConfig
from voicelive_nb.audio.memory import ArraySource, BufferSink
from voicelive_nb.emulator.server import run_emulator
from voicelive_nb.protocol.wire import ga_type
from voicelive_nb.speech.tts import synthesize

KEY = "wire-shape-key-0123456789"
VERSIONS = ("2026-07-15", "v1")
SHAPE = {"2026-07-15": "preview", "v1": "ga"}
REPLY = "It is sunny and warm today, with a light breeze."


@pytest.fixture(scope="module")
def question() -> bytes:
    return synthesize("What is the weather like today?", sample_rate=24000).pcm16


def speech(pcm: bytes, *, pace: str = "fast", tail_ms: int = 1200) -> ArraySource:
    return ArraySource(pcm, 24000, pace=pace, tail_silence_ms=tail_ms)  # type: ignore[arg-type]


def session(emu: Any, version: str, config: SessionConfig | None = None, **kwargs: Any) -> Session:
    return Session(
        config or SessionConfig.server_vad(),
        endpoint=emu.url,
        api_key=KEY,
        api_version=version,
        dotenv=False,
        **kwargs,
    )


def assert_spoke(s: Session, version: str) -> None:
    """What went over the socket was in the shape of ``version``, both ways."""
    shape = SHAPE[version]
    assert s.wire_shape == shape
    updates = [w for _, w in s.sent_events() if w["type"] == "session.update"]
    assert updates, "no session.update was sent"
    for wire in updates:
        if shape == "ga":
            assert wire["session"]["type"] == "realtime"
            assert "modalities" not in wire["session"] and "turn_detection" not in wire["session"]
        else:
            assert "type" not in wire["session"] and "audio" not in wire["session"]
    deltas = [e for e in s.events if e.type == "response.audio.delta"]
    for e in deltas:  # canonical type everywhere, the wire name kept
        assert e.wire_type == ("response.output_audio.delta" if shape == "ga" else "response.audio.delta")


# ------------------------------------------------------------------ a whole turn


async def whole_turn(version: str, question: bytes) -> dict[str, Any]:
    sink = BufferSink()
    seen: list[str] = []
    async with (
        run_emulator(api_key=KEY, pace="fast", replies=[REPLY]) as emu,
        session(emu, version, sink=sink) as s,
    ):
        s.on("*", lambda e: seen.append(e.type))
        # a GA name and a canonical name reach the same handler list and the same waiter
        ga_deltas: list[Any] = []
        s.on(ga_type("response.audio.delta"), ga_deltas.append)
        s.stream(speech(question))
        done = await s.wait_for("response.done", timeout=30)
        first_delta = await s.wait_for("response.output_audio.delta", timeout=1)
        await s.wait_for("conversation.item.input_audio_transcription.completed", timeout=15)
    assert_spoke(s, version)
    assert first_delta.type == "response.audio.delta"
    assert ga_deltas and all(e.type == "response.audio.delta" for e in ga_deltas)
    assistant_ms = sum(t.ms for t in s.state.assistant_audio.values())
    return {
        "status": done.response["status"],
        "order": seen,
        "audio": len(sink.audio),
        "assistant_ms": assistant_ms,
        "deltas": len(ga_deltas),
        "transcript": [(t.role, t.text) for t in s.transcript if t.text],
        "vad": len(s.state.vad_segments),
    }


TURN_ORDER = [
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "response.created",
    "response.output_item.added",
    "response.content_part.added",
    "response.audio.delta",
    "response.audio.done",
    "response.audio_transcript.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.done",
]


@pytest.mark.parametrize("version", VERSIONS)
async def test_whole_voice_turn(version: str, question: bytes) -> None:
    got = await whole_turn(version, question)
    assert got["status"] == "completed"
    positions = [got["order"].index(t) for t in TURN_ORDER]
    assert positions == sorted(positions)
    assert got["audio"] > 0 and got["audio"] == pytest.approx(got["assistant_ms"] * 48, abs=2)
    assert got["deltas"] == got["order"].count("response.audio.delta")
    assert {role for role, _ in got["transcript"]} == {"user", "assistant"}
    assert got["vad"] == 1


def runs(types: Any) -> list[str]:
    """Event types with consecutive repeats collapsed (``delta, delta, done`` → ``delta, done``)."""
    out: list[str] = []
    for t in types:
        if not out or out[-1] != t:
            out.append(t)
    return out


async def test_a_turn_is_the_same_in_both_shapes(question: bytes) -> None:
    preview, ga = [await whole_turn(v, question) for v in VERSIONS]
    # the same conversation: the same canonical events of the turn, the same audio, the same words
    # (eSpeak NG's speech for the reply varies from call to call in either shape: 142,480-142,528
    # bytes, and now and then a mode 9 ms longer, 142,938-142,964, measured over 150 calls after
    # other texts; so lengths are compared to 0.5 %, well under one 100 ms chunk (3.4 %), and the
    # count of audio deltas by one when it crosses a chunk: runs are compared)
    turn = set(TURN_ORDER)
    assert runs(t for t in preview["order"] if t in turn) == runs(t for t in ga["order"] if t in turn)
    assert ga["audio"] > 0
    assert preview["audio"] == pytest.approx(ga["audio"], rel=5e-3)
    assert abs(preview["deltas"] - ga["deltas"]) <= 1
    # the assistant says the same; the emulator's speech recogniser hears the user's words
    # where its VAD cut them, which varies with timing ("… like to do" / "… like to do it")
    assert [x for x in preview["transcript"] if x[0] == "assistant"] == [
        x for x in ga["transcript"] if x[0] == "assistant"
    ]
    assert all(any(x[0] == "user" and x[1] for x in got["transcript"]) for got in (preview, ga))
    assert preview["assistant_ms"] == pytest.approx(ga["assistant_ms"], rel=5e-3)  # the audio's length


# ------------------------------------------------------------------ barge-in


@pytest.mark.parametrize("version", VERSIONS)
async def test_barge_in_truncates_at_what_was_played(version: str, question: bytes) -> None:
    sink = BufferSink(realtime=True, clock=asyncio.get_running_loop().time)
    reply = "This is a long answer that keeps going on and on so that there is time to interrupt it. " * 3
    async with run_emulator(api_key=KEY, pace="realtime", replies=[reply]) as emu:
        async with session(emu, version, sink=sink) as s:
            s.stream(speech(question, pace="realtime", tail_ms=800))
            first = await s.wait_for("response.audio.delta", timeout=30)
            await s.wait_for(
                "response.audio.delta", timeout=10, predicate=lambda e: sink.played_ms(first.item_id) > 600
            )
            s.stream(speech(question, pace="realtime", tail_ms=1500))  # the user talks over the reply
            truncated = await s.wait_for("conversation.item.truncated", timeout=15)
            done = await s.wait_for("response.done", timeout=10)
    assert_spoke(s, version)
    assert done.response["status"] == "cancelled"
    (cut,) = s.truncations
    assert sink.clears >= 1 and sink.flushes[0].item_id == first.item_id
    assert cut["audio_end_ms"] == int(sink.flushes[0].played_ms)
    assert 600 <= cut["audio_end_ms"] <= cut["received_ms"]
    assert truncated.audio_end_ms == cut["audio_end_ms"]
    truncates = [w for _, w in s.sent_events() if w["type"] == "conversation.item.truncate"]
    assert [w["audio_end_ms"] for w in truncates] == [cut["audio_end_ms"]]


@pytest.mark.parametrize("version", VERSIONS)
async def test_auto_truncate_leaves_truncation_to_the_server(version: str, question: bytes) -> None:
    sink = BufferSink(realtime=True, clock=asyncio.get_running_loop().time)
    config = SessionConfig.server_vad().with_changes({"turn_detection.auto_truncate": True})
    reply = "A long reply that goes on for quite a while so that it can be interrupted. " * 3
    async with run_emulator(api_key=KEY, pace="realtime", replies=[reply]) as emu:
        async with session(emu, version, config, sink=sink) as s:
            s.stream(speech(question, pace="realtime", tail_ms=800))
            await s.wait_for("response.audio.delta", timeout=30)
            s.stream(speech(question, pace="realtime", tail_ms=1500))
            truncated = await s.wait_for("conversation.item.truncated", timeout=20)
    assert_spoke(s, version)
    assert s.truncations == []  # the client sent none
    assert not [w for _, w in s.sent_events() if w["type"] == "conversation.item.truncate"]
    assert sink.clears >= 1  # but still silenced the speaker at once
    assert truncated.audio_end_ms > 0
    if SHAPE[version] == "ga":  # and the GA session said so in its own words
        (update,) = [w for _, w in s.sent_events() if w["type"] == "session.update"]
        assert update["session"]["audio"]["input"]["turn_detection"]["auto_truncate"] is True


# ------------------------------------------------------------------ manual turns, text, live updates


@pytest.mark.parametrize("version", VERSIONS)
async def test_manual_commit_and_response(version: str, question: bytes) -> None:
    sink = BufferSink()
    async with run_emulator(api_key=KEY, pace="fast", replies=["Sunny."]) as emu:
        async with session(emu, version, SessionConfig.manual(), sink=sink) as s:
            s.stream(speech(question, tail_ms=200))
            await asyncio.wait_for(s.source_done.wait(), timeout=15)
            await s.commit()
            committed = await s.wait_for("input_audio_buffer.committed", timeout=10)
            await s.create_response()
            done = await s.wait_for("response.done", timeout=20)
    assert_spoke(s, version)
    assert committed.item_id
    assert done.response["status"] == "completed"
    assert not s.state.vad_segments  # no server VAD: the client decided the turn
    assert len(sink.audio) > 0
    assert [t.text for t in s.transcript if t.role == "assistant"] == ["Sunny."]


@pytest.mark.parametrize("version", VERSIONS)
async def test_text_only_response(version: str) -> None:
    async with run_emulator(api_key=KEY, pace="fast", replies=["Just text."]) as emu:
        async with session(emu, version, SessionConfig.manual()) as s:
            await s.create_response(modalities=["text"])
            done = await s.wait_for("response.done", timeout=20)
            text_done = await s.wait_for("response.output_text.done", timeout=1)
    sent = [w for _, w in s.sent_events() if w["type"] == "response.create"]
    if SHAPE[version] == "ga":
        assert sent[-1]["response"] == {"output_modalities": ["text"]}
        assert text_done.wire_type == "response.output_text.done"
    else:
        assert sent[-1]["response"] == {"modalities": ["text"]}
        assert text_done.wire_type == "response.text.done"
    assert text_done.type == "response.text.done" and text_done.text == "Just text."
    assert done.response["status"] == "completed"
    assert not [e for e in s.events if e.type == "response.audio.delta"]


@pytest.mark.parametrize("version", VERSIONS)
async def test_update_live(version: str) -> None:
    async with run_emulator(api_key=KEY, pace="fast") as emu:
        async with session(emu, version) as s:
            updated = await s.update(
                {"turn_detection": {"type": "server_vad", "threshold": 0.7, "silence_duration_ms": 350}},
                instructions="Be brief.",
            )
            effective = s.effective_session()
    assert_spoke(s, version)
    # the canonical flat session, whichever shape was on the wire
    assert updated.session["instructions"] == "Be brief."
    assert effective["instructions"] == "Be brief."
    assert effective["turn_detection"]["threshold"] == 0.7
    assert effective["turn_detection"]["silence_duration_ms"] == 350
    assert "audio" not in effective or "turn_detection" not in effective.get("audio", {})
    last = [w for _, w in s.sent_events() if w["type"] == "session.update"][-1]["session"]
    if SHAPE[version] == "ga":
        assert last["audio"]["input"]["turn_detection"]["threshold"] == 0.7
        assert last["instructions"] == "Be brief."
    else:
        assert last["turn_detection"]["threshold"] == 0.7


# ------------------------------------------------------------------ record → replay (the real CLI)


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_recording_replays_through_the_cli_to_a_second_session(
    version: str, question: bytes, tmp_path: Any
) -> None:
    """What a user does with an Azure problem: record it, replay it offline with ``voicelive-nb replay``."""
    import sys

    record = tmp_path / "rec"
    first_sink = BufferSink()
    async with run_emulator(api_key=KEY, pace="fast", replies=[REPLY]) as emu:
        async with session(emu, version, sink=first_sink, record=record) as first:
            first.stream(speech(question))
            await first.wait_for("response.done", timeout=30)
            await first.wait_for("conversation.item.input_audio_transcription.completed", timeout=15)
    assert KEY not in "".join(p.read_text(errors="replace") for p in record.glob("*.jsonl"))

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voicelive_nb.cli",
        "replay",
        str(record),
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=30)).decode()
        url = line.split()[0]
        assert url.startswith("ws://127.0.0.1:"), line
        second_sink = BufferSink()
        async with Session(
            SessionConfig.server_vad(),
            endpoint=url,
            api_key="anything",
            api_version=version,
            sink=second_sink,
            dotenv=False,
        ) as second:
            second.stream(speech(question))
            await second.wait_for("response.done", timeout=30)
            await second.wait_for("conversation.item.input_audio_transcription.completed", timeout=15)
    finally:
        if proc.returncode is None:
            proc.terminate()
        assert await asyncio.wait_for(proc.wait(), timeout=10) in (0, -15)
    # the same turns: responses, transcript, VAD segments and the assistant's audio
    assert [e.response["status"] for e in second.events if e.type == "response.done"] == [
        e.response["status"] for e in first.events if e.type == "response.done"
    ]
    assert [(t.role, t.text) for t in second.transcript] == [(t.role, t.text) for t in first.transcript]
    assert len(second.state.vad_segments) == len(first.state.vad_segments) == 1
    assert second_sink.audio == first_sink.audio and len(first_sink.audio) > 0
