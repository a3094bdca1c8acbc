"""The replay server: recorded live traffic and Session recordings served back to a real Session."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest
import real_traffic as rt
from websockets.asyncio.client import connect

from voicelive_nb import Session, SessionConfig
from voicelive_nb.audio.memory import BufferSink
from voicelive_nb.emulator import load_recording_trace, run_emulator
from voicelive_nb.emulator.replay import ReplayError, ReplayScript, ReplayServer

AUDIO_DELTAS = ("response.audio.delta", "response.output_audio.delta")
TIMEOUT = 15.0


def recorded_audio_per_item(trace: rt.Trace) -> dict[str, bytes]:
    """The trace's audio deltas concatenated per item, as a Session plays them.

    The cassettes behind the shared traces cut every audio delta to 44 base64 characters
    (33 bytes): an odd byte count is not PCM16, and a Session skips such a delta with a
    ProtocolWarning. So only even-length deltas count; the exact bytes of whole audio are
    checked by the recording round trip below.
    """
    out: dict[str, bytearray] = {}
    for p in trace.server():
        if p["type"] in AUDIO_DELTAS:
            pcm = base64.b64decode(p["delta"])
            if len(pcm) % 2 == 0:
                out.setdefault(p["item_id"], bytearray()).extend(pcm)
    return {k: bytes(v) for k, v in out.items() if v}


def client_events_with_anchors(
    lines: list[tuple[str, dict[str, Any]]],
) -> list[tuple[tuple[str, int] | None, dict[str, Any]]]:
    """The client events after the first ``session.update``, each with the server event recorded
    just before it (its type and how many of that type had come by then), if any."""
    out: list[tuple[tuple[str, int] | None, dict[str, Any]]] = []
    seen_update = False
    counts: dict[str, int] = {}
    previous: tuple[str, dict[str, Any]] | None = None
    for direction, payload in lines:
        if direction == "server":
            counts[payload["type"]] = counts.get(payload["type"], 0) + 1
        elif not seen_update and payload["type"] == "session.update":
            seen_update = True
        else:
            anchor = None
            if previous is not None and previous[0] == "server":
                anchor = (previous[1]["type"], counts[previous[1]["type"]])
            out.append((anchor, payload))
        previous = (direction, payload)
    return out


class Seen:
    """How many server events of each wire type a Session received (woken on every event)."""

    def __init__(self, session: Session) -> None:
        self.counts: dict[str, int] = {}
        self.changed = asyncio.Event()
        for _, event in session.timed_events():
            self(event)
        session.on("*", self)

    def __call__(self, event: Any) -> None:
        for name in {event.type, getattr(event, "wire_type", None) or event.type}:
            self.counts[name] = self.counts.get(name, 0) + 1
        self.changed.set()

    async def until(self, etype: str, count: int) -> None:
        async def wait() -> None:
            while self.counts.get(etype, 0) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), TIMEOUT)


async def drive(session: Session, lines: list[tuple[str, dict[str, Any]]]) -> None:
    """Send the recorded client events, each once the server event recorded before it arrived."""
    seen = Seen(session)
    for anchor, payload in client_events_with_anchors(lines):
        if anchor is not None and anchor[0] != "rate_limits.updated":
            await seen.until(*anchor)
        await session.send(payload)


def session_config(trace: rt.Trace) -> SessionConfig:
    update = next(p for p in trace.client() if p["type"] == "session.update")
    return SessionConfig.from_dict(update["session"])


@pytest.mark.parametrize("trace", rt.params())
async def test_every_trace_replays_to_a_real_session(trace: rt.Trace) -> None:
    server_types = [p["type"] for p in trace.server()]
    if "session.created" not in server_types:
        pytest.skip("recorded over a WebRTC sideband: no session.created, a WebSocket client cannot set up")
    config = session_config(trace)
    dones = [p["response"]["status"] for p in trace.server() if p["type"] == "response.done"]
    sink = BufferSink()
    api_version = "v1" if trace.shape == "ga" else "2025-10-01"
    async with (
        run_emulator(replay=trace.lines()) as replay,
        Session(
            config,
            endpoint=replay.url,
            api_key="replay-key",
            api_version=api_version,
            model="gpt-realtime",
            sink=sink,
            dotenv=False,
        ) as session,
    ):
        await drive(session, trace.lines())  # a tool call is answered with what the trace recorded
        if "response.function_call_arguments.done" in server_types:
            call = await session.wait_for("response.function_call_arguments.done", timeout=TIMEOUT)
            assert getattr(call, "name", None) == "get_weather"
        got = [await session.wait_for("response.done", timeout=TIMEOUT) for _ in dones]
        assert [d.response["status"] for d in got] == dones
        assert session.errors == []
        want = recorded_audio_per_item(trace)
        assert {k: bytes(v) for k, v in sink.items.items() if v} == want
        if trace.lines()[-1][0] == "server":  # trailing client events may still be in flight
            assert replay.scripts[0].finished


async def test_replay_is_liberal_about_frame_sizes_and_extra_events() -> None:
    """The recorded answers come at the same audio position with other frame sizes and extra events."""
    trace = [
        ("server", {"type": "session.created", "session": {"id": "s"}}),
        ("client", {"type": "session.update", "session": {"instructions": "a"}}),
        ("server", {"type": "session.updated", "session": {"id": "s"}}),
        ("client", {"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(4800)).decode()}),
        ("client", {"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(4800)).decode()}),
        ("server", {"type": "input_audio_buffer.speech_started"}),
        ("client", {"type": "response.create"}),
        ("server", {"type": "response.done"}),
    ]
    script = ReplayScript(trace)
    assert [e["type"] for e in script.opening()] == ["session.created"]
    assert script.answer({"type": "session.update", "session": {"other": 1}})[0]["type"] == "session.updated"
    small = {"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(960)).decode()}
    released = [script.answer(small) for _ in range(10)]
    assert [len(r) for r in released] == [0] * 9 + [1]  # at byte 9600, as recorded
    assert script.answer({"type": "conversation.item.retrieve"}) == []  # extra: no answer
    assert script.answer(small) == []
    assert script.answer({"type": "response.create"}) == [{"type": "response.done"}]
    assert script.finished and script.extra == 1


async def test_replay_never_crashes_on_client_input() -> None:
    trace = [("server", {"type": "session.created", "session": {}}), ("client", {"type": "response.create"})]
    async with ReplayServer(trace) as replay, connect(replay.url + "/voice-live/realtime") as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"
        for frame in ("[" * 100_000, "not json", "[1, 2]", b"\xff\xfe", '{"type": 7}'):
            await ws.send(frame)
            if frame != '{"type": 7}':
                event = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert event["type"] == "error"
        await ws.send(json.dumps({"type": "response.create"}))
        await ws.ping()  # still connected


def test_replay_refuses_what_it_cannot_replay(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="cannot read recording"):
        load_recording_trace(tmp_path)
    with pytest.raises(ReplayError, match="direction"):
        ReplayServer([("sideways", {})])
    with pytest.raises(ReplayError, match="empty"):
        ReplayServer([])


async def test_a_recording_replays_with_the_same_events_and_audio(tmp_path: Path) -> None:
    record = tmp_path / "rec"
    config = SessionConfig.from_dict({"modalities": ["text", "audio"], "turn_detection": None})
    text_turn = [
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        },
        {"type": "response.create"},
    ]
    first_sink = BufferSink()
    async with (
        run_emulator(pace="fast", replies=["Hello from the emulator."]) as emu,
        Session(config, endpoint=emu.url, api_key="k", sink=first_sink, record=record, dotenv=False) as first,
    ):
        for event in text_turn:
            await first.send(event)
        await first.wait_for("response.done", timeout=TIMEOUT)
        await asyncio.sleep(0.05)  # let trailing events of the turn reach the recording
    first_types = [e.type for e in first.events]
    assert first_sink.audio

    trace = load_recording_trace(record)
    assert [p["type"] for d, p in trace if d == "server"] == first_types
    second_sink = BufferSink()
    async with (
        run_emulator(replay=record) as replay,
        Session(config, endpoint=replay.url, api_key="k", sink=second_sink, dotenv=False) as second,
    ):
        for event in text_turn:
            await second.send(event)
        await second.wait_for("response.done", timeout=TIMEOUT)
        assert [e.type for e in second.events] == first_types
    assert second_sink.audio == first_sink.audio


def test_cli_replay_prints_the_url(tmp_path: Path) -> None:
    import subprocess
    import sys

    record = tmp_path / "rec"
    record.mkdir()
    (record / "events.jsonl").write_text(
        json.dumps(
            {
                "t_mono": 0,
                "t_wall": "",
                "dir": "received",
                "type": "session.created",
                "event": {"type": "session.created"},
            }
        )
        + "\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicelive_nb.cli", "replay", str(record), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ws://127.0.0.1:")
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
