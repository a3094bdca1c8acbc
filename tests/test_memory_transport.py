"""The in-memory emulator (voicelive_nb.testing): a real Session and the emulator's Conversation in one
event loop, no socket; compared with the socket emulator on 127.0.0.1 turn for turn."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from voicelive_nb import Session, SessionConfig
from voicelive_nb.audio.memory import ArraySource, BufferSink
from voicelive_nb.connection import ConnectionOptions
from voicelive_nb.emulator.server import run_emulator
from voicelive_nb.errors import AuthenticationError, ConnectionClosed, InvalidType, TransportError
from voicelive_nb.speech.tts import synthesize
from voicelive_nb.testing import MEMORY_KEY, MemoryTransport, memory_emulator
from voicelive_nb.transport import ConnectRequest, MessageTransport, Transport

KEY = "test-key-0123456789abcdef"
QUESTION = "What is the weather like today?"
#: Input transcription runs beside the response (its events land anywhere in the turn), so a
#: comparison of event order leaves them out and compares the transcript instead.
CONCURRENT = {
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
}


@pytest.fixture(scope="module")
def question() -> bytes:
    return synthesize(QUESTION, sample_rate=24000).pcm16


def _collapsed(types: list[str]) -> list[str]:
    """Event types in order, runs of one type counted once (the deltas of one part)."""
    return [t for i, t in enumerate(types) if t not in CONCURRENT and (i == 0 or t != types[i - 1])]


def _received_audio_bytes(session: Session) -> int:
    return sum(len(base64.b64decode(e.delta)) for e in session.events if e.type == "response.audio.delta")


async def _text_turn(opts: ConnectionOptions) -> dict[str, Any]:
    async with Session(SessionConfig.manual(), connection=opts, sink=BufferSink()) as s:
        seen: list[str] = []
        s.on("*", lambda e: seen.append(e.type))
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": QUESTION}]}
        await s.send({"type": "conversation.item.create", "item": item})
        await s.create_response()
        done = await s.wait_for("response.done", timeout=30)
    return {
        "types": seen,
        "status": done.response["status"],
        "transcript": [(t.role, t.text) for t in s.transcript],
        "audio_bytes": _received_audio_bytes(s),
        "closed": s.status,
    }


async def _audio_turn(opts: ConnectionOptions, pcm: bytes) -> dict[str, Any]:
    async with Session(SessionConfig.server_vad(), connection=opts, sink=BufferSink()) as s:
        seen: list[str] = []
        s.on("*", lambda e: seen.append(e.type))
        s.stream(ArraySource(pcm, 24000, pace="fast", tail_silence_ms=1200))
        done = await s.wait_for("response.done", timeout=30)
        await s.wait_for("conversation.item.input_audio_transcription.completed", timeout=15)
    return {
        "types": _collapsed(seen),
        "status": done.response["status"],
        "transcript": [(t.role, t.text) for t in s.transcript],
        "vad": [(v.start_ms, v.end_ms) for v in s.state.vad_segments],
        "audio_bytes": _received_audio_bytes(s),
        "closed": s.status,
    }


async def test_a_turn_gives_the_same_events_and_turns_in_memory_as_over_the_socket(question: bytes) -> None:
    options: dict[str, Any] = {"pace": "fast", "replies": ["Sunny all day."], "streaming_asr": False}
    async with run_emulator(api_key=KEY, **options) as emu, memory_emulator(api_key=KEY, **options) as mem:
        socket = ConnectionOptions(endpoint=emu.url, api_key=KEY)
        memory = mem.connection()
        text = [await _text_turn(socket), await _text_turn(memory)]
        audio = [await _audio_turn(socket, question), await _audio_turn(memory, question)]
    # the emulator's speech synthesis differs by a few samples from one rendering to the next
    for a, b in (text, audio):
        assert a.pop("audio_bytes") == pytest.approx(b.pop("audio_bytes"), abs=48)  # within 1 ms
    assert text[0] == text[1]
    assert text[1]["status"] == "completed" and text[1]["transcript"][-1] == ("assistant", "Sunny all day.")
    assert "response.audio.delta" in text[1]["types"]
    assert audio[0] == audio[1]
    assert audio[1]["transcript"][0][0] == "user" and audio[1]["transcript"][0][1]
    assert len(audio[1]["vad"]) == 1
    assert audio[1]["types"][:3] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
    ]
    assert mem.stats.connections_total == 2 and mem.stats.connections_open == 0
    assert text[1]["closed"] == audio[1]["closed"] == "closed"


async def test_the_ga_wire_shape_is_translated_both_ways() -> None:
    async with memory_emulator(replies=["Hi."]) as mem:
        async with Session(SessionConfig.manual(), connection=mem.connection(api_version="v1")) as s:
            assert s.wire_shape == "ga"
            await s.update(instructions="Be brief.")  # a GA session.update, understood by the emulator
            await s.create_response()
            done = await s.wait_for("response.done", timeout=30)
        (link,) = mem.connections
    assert done.response["status"] == "completed"
    assert link.conversation is not None and link.conversation.session["instructions"] == "Be brief."
    assert s.errors == []


async def test_closing_the_client_closes_the_emulators_end_with_the_code() -> None:
    async with memory_emulator() as mem:
        s = Session(SessionConfig.manual(), connection=mem.connection())
        await s.open()
        (link,) = mem.connections
        transport = s._transport
        assert isinstance(transport, MemoryTransport) and not link.closed
        await s.close()
        assert link.closed and link.conversation is not None and link.conversation.closed
        assert (transport.close_code, transport.close_reason) == (1000, "")
        assert s.status == "closed" and mem.stats.connections_open == 0


async def test_the_emulator_closing_fails_the_session_with_code_and_reason() -> None:
    async with memory_emulator() as mem:
        s = Session(SessionConfig.manual(), connection=mem.connection())
        await s.open()
        closed = asyncio.ensure_future(s.wait_closed())
        await mem.connections[0].close(1011, "maintenance")
        await asyncio.wait_for(closed, timeout=5)
        assert s.status == "failed: connection lost: 1011 server error: maintenance"
        assert isinstance(s.failure, ConnectionClosed) and s.failure.code == 1011
        transport = s._transport
        assert transport is not None
        with pytest.raises(ConnectionClosed, match="maintenance"):
            await transport.send('{"type":"response.create"}')
        await s.close()


async def test_abort_drops_both_ends_without_a_close_code() -> None:
    async with memory_emulator() as mem:
        s = Session(SessionConfig.manual(), connection=mem.connection())
        await s.open()
        link = mem.connections[0]
        transport = s._transport
        assert transport is not None
        s.abort()
        await asyncio.wait_for(link.wait_closed(), timeout=5)
        assert link.conversation is not None and link.conversation.closed
        assert transport.close_code == 1006
        with pytest.raises(ConnectionClosed) as info:
            await transport.recv()
        assert info.value.code is None and "without a close frame" in info.value.reason
        await s.close()
        assert s.background_tasks() == []


async def test_the_session_expires_with_session_expired_and_1001() -> None:
    async with memory_emulator(session_max_s=0.3) as mem:
        s = Session(SessionConfig.manual(), connection=mem.connection())
        await s.open()
        error = await s.wait_for("error", timeout=10)
        await asyncio.wait_for(s.wait_closed(), timeout=10)
        await s.close()
    assert error.error["code"] == "session_expired"
    assert s.status == "failed: connection lost: 1001 going away: session expired"


async def test_a_wrong_key_is_refused_at_the_handshake() -> None:
    async with memory_emulator(api_key=KEY) as mem:
        s = Session(SessionConfig.manual(), connection=mem.connection(api_key="wrong-key-0123456789"))
        with pytest.raises(AuthenticationError) as info:
            await s.open()
    assert info.value.status == 401
    assert s.status.startswith("failed: AuthenticationError:")
    assert "wrong-key-0123456789" not in s.status
    assert mem.stats.handshakes_rejected == 1 and mem.connections == []


async def test_a_failing_transport_factory_fails_the_connect_with_the_error_in_status() -> None:
    async def unreachable(request: ConnectRequest) -> MessageTransport:
        raise OSError(f"no route to the peer (headers {sorted(request.headers)})")

    s = Session(
        SessionConfig.manual(), endpoint="wss://x.example", api_key=KEY, transport_factory=unreachable
    )
    with pytest.raises(TransportError, match="no route to the peer"):
        await s.open()
    assert s.status.startswith("failed: TransportError: the transport factory ")
    assert "unreachable failed: OSError: no route to the peer" in s.status
    assert KEY not in s.status


async def test_a_factory_that_returns_no_transport_is_an_invalid_type() -> None:
    async def wrong(request: ConnectRequest) -> Any:
        return "not a transport"

    s = Session(SessionConfig.manual(), endpoint="wss://x.example", api_key=KEY, transport_factory=wrong)
    with pytest.raises(InvalidType, match="returned a str, which is not a transport"):
        await s.open()
    assert s.status.startswith("failed: InvalidType:")


async def test_a_factory_can_wrap_the_websocket_transport() -> None:
    """A factory is any async callable: here it counts the frames of a real WebSocket transport."""
    sent: list[str] = []

    class Counting:
        def __init__(self, inner: Transport) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        async def send(self, text: str) -> None:
            sent.append(text)
            await self.inner.send(text)

    async def counting(request: ConnectRequest) -> Any:
        from voicelive_nb.transport import connect_websocket

        return Counting(await connect_websocket(request))

    connect: Callable[[ConnectRequest], Awaitable[Any]] = counting
    async with run_emulator(api_key=KEY, pace="fast") as emu:
        async with Session(
            SessionConfig.manual(), endpoint=emu.url, api_key=KEY, transport_factory=connect
        ) as s:
            await s.create_response()
            await s.wait_for("response.done", timeout=30)
    assert [t for t in sent if '"session.update"' in t] and [t for t in sent if '"response.create"' in t]


async def test_the_request_and_the_transport_hide_the_key() -> None:
    request = ConnectRequest("ws://h/voice-live/realtime?api-key=" + KEY, {"api-key": KEY})
    assert KEY not in repr(request)
    async with memory_emulator(api_key=KEY) as mem:
        transport = await mem(
            ConnectRequest(mem.url + "/voice-live/realtime?api-version=v1&model=m", {"api-key": KEY})
        )
        assert isinstance(transport, MessageTransport)
        assert KEY not in repr(transport) + repr(mem) + repr(mem.connection())
        await transport.close()


async def test_a_peer_that_stops_reading_blocks_the_sender_until_send_timeout() -> None:
    """Bounded queues both ways: a client that never reads fills the emulator's queue, the emulator
    stops reading, the client's queue fills, and its send gives up after send_timeout_s."""
    async with memory_emulator(capacity=2) as mem:
        request = ConnectRequest(
            mem.url + "/voice-live/realtime?api-version=2026-07-15&model=gpt-realtime",
            {"api-key": MEMORY_KEY},
            send_timeout_s=0.2,
        )
        transport = await mem(request)
        with pytest.raises(ConnectionClosed, match="stopped reading: a send was blocked for 0.2 s"):
            for _ in range(100):  # never recv: each response.create makes more events than fit
                await transport.send('{"type":"response.create"}')
        assert transport.failure is not None and transport.aborted
        assert transport.close_code == 1006
        await asyncio.wait_for(mem.connections[0].wait_closed(), timeout=5)
