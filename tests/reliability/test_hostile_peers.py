"""Misbehaving peers on 127.0.0.1: each is reported within a bound, and close() returns promptly.

Every scenario is a real server (websockets, or raw TCP below it) that does one bad thing; the
Session must end up with a status that names what happened, in bounded time, and never hang.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from hostile_peers import (
    aborts,
    closes,
    never_answers,
    peer,
    relay_peer,
    sends,
    silent,
    stalls,
    tcp_peer,
)

from voicelive_nb import Session, SessionConfig
from voicelive_nb.audio.memory import ArraySource, BufferSink
from voicelive_nb.errors import ConnectionClosed, ConnectTimeout, VoiceLiveError, WaitTimeout
from voicelive_nb.transport import MAX_MESSAGE_BYTES

#: Reported within this many seconds of the bad thing (the timeouts below are far shorter).
REPORT_BOUND_S = 5.0
#: close() returns within this many seconds even when the peer does not cooperate.
CLOSE_BOUND_S = 2.0
FAST = {"send_timeout_s": 0.5, "ping_interval_s": 0.3, "ping_timeout_s": 0.5, "close_timeout_s": 0.5}


def session(url: str, **options: Any) -> Session:
    return Session(SessionConfig.manual(), endpoint=url, api_key="k", dotenv=False, **{**FAST, **options})


async def failed_within(s: Session, bound: float = REPORT_BOUND_S) -> float:
    """Seconds until the session's status becomes ``failed: ...`` (a wait on the failure itself)."""
    start = time.monotonic()
    with pytest.raises(VoiceLiveError) as info:
        await s.wait_for("never.sent", timeout=bound)
    assert not isinstance(info.value, WaitTimeout), f"not reported within {bound} s: {s.status}"
    assert s.status.startswith("failed: "), s.status
    return time.monotonic() - start


async def closes_promptly(s: Session) -> None:
    start = time.monotonic()
    await s.close()
    assert time.monotonic() - start < CLOSE_BOUND_S


@pytest.mark.parametrize(
    ("code", "phrase"),
    [
        (1000, "1000 normal closure"),
        (1001, "1001 going away"),
        (1008, "1008 policy violation"),
        (1011, "1011 server error"),
        (4000, "4000 code 4000"),
        (3000, "3000 code 3000"),
    ],
)
async def test_each_close_code_is_reported_with_its_meaning(code: int, phrase: str) -> None:
    async with peer(closes(code, "bye")) as p:
        s = session(p.url)
        await s.open()
        await failed_within(s)
        assert s.status == f"failed: connection lost: {phrase}: bye"
        assert isinstance(s.failure, ConnectionClosed) and s.failure.code == code
        await closes_promptly(s)


async def test_abrupt_tcp_close_is_reported_as_no_close_frame() -> None:
    async with peer(aborts) as p:
        s = session(p.url)
        await s.open()
        await failed_within(s)
        assert "no close frame" in s.status
        await closes_promptly(s)


async def test_garbage_and_binary_frames_are_counted_and_the_session_goes_on() -> None:
    frames = ["not json", "[1,2]", "{", '{"type": 7}', b"\x00\xffbinary", b'{"type":"fuzz.marker"}']
    async with peer(sends(*frames)) as p:
        s = session(p.url)
        await s.open()
        await s.wait_for("fuzz.marker", timeout=5)  # a binary frame of JSON is still read
        assert s.status == "connected"
        assert s.protocol_warnings == 5
        await closes_promptly(s)


async def test_oversize_frame_is_reported_as_message_too_big() -> None:
    big = json.dumps({"type": "response.text.delta", "delta": "x" * (MAX_MESSAGE_BYTES + 1)})
    async with peer(sends(big)) as p:
        s = session(p.url)
        await s.open()
        await failed_within(s)
        assert s.status.startswith("failed: connection lost: 1009 message too big"), s.status
        await closes_promptly(s)


async def test_a_silent_peer_that_answers_pings_is_fine() -> None:
    async with peer(silent) as p:
        s = session(p.url)
        await s.open()
        transport = s._transport
        assert transport is not None
        deadline = time.monotonic() + 5
        while transport.pongs < 3:  # three keepalive rounds answered: well past ping_timeout_s
            assert time.monotonic() < deadline, "keepalive pings were not answered"
            await asyncio.sleep(0.05)
        assert s.status == "connected"
        await closes_promptly(s)


async def test_a_peer_that_stops_answering_pings_is_detected() -> None:
    async with peer(stalls) as p:
        s = session(p.url)
        await s.open()
        took = await failed_within(s)
        assert "stopped answering" in s.status and "pong" in s.status, s.status
        assert took < FAST["ping_interval_s"] + FAST["ping_timeout_s"] + 1.0
        await closes_promptly(s)


async def test_a_peer_that_stops_reading_fails_the_session_and_close_returns() -> None:
    noise = bytes(range(256)) * 400  # 100 KB per pass, looped: far more than TCP buffers hold
    async with peer(stalls) as p:
        s = session(p.url, ping_interval_s=60.0)  # only the send deadline can notice
        await s.open()
        s.stream(ArraySource(noise * 50, 24000, pace="fast"))  # type: ignore[arg-type]
        await failed_within(s)
        assert "the service stopped reading" in s.status, s.status
        assert "blocked for 0.5 s" in s.status
        await closes_promptly(s)


async def test_close_is_bounded_against_a_stalled_peer_even_while_sending() -> None:
    noise = bytes(200_000)
    async with peer(stalls) as p:
        s = session(p.url, ping_interval_s=60.0, send_timeout_s=30.0)  # nothing notices before close
        await s.open()
        s.stream(ArraySource(noise * 100, 24000, pace="fast"))  # type: ignore[arg-type]
        transport = s._transport
        assert transport is not None
        deadline = time.monotonic() + 10
        while transport.buffered_bytes() < 16_000:  # the socket's buffers are full: sends now block
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        start = time.monotonic()
        await s.close()
        assert time.monotonic() - start < FAST["close_timeout_s"] + 1.0


async def test_closing_a_session_is_cancellable_and_the_cancellation_is_not_swallowed() -> None:
    async with peer(stalls) as p:
        s = session(p.url, ping_interval_s=60.0, send_timeout_s=30.0, close_timeout_s=30.0)
        await s.open()
        s.stream(ArraySource(bytes(200_000) * 100, 24000, pace="fast"))  # type: ignore[arg-type]
        transport = s._transport
        assert transport is not None
        deadline = time.monotonic() + 10
        while transport.buffered_bytes() < 16_000:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        closing = asyncio.ensure_future(s.close())
        deadline = time.monotonic() + 5
        while not transport.closing:  # close() is now stuck in the closing handshake
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        closing.cancel()
        start = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await closing
        assert time.monotonic() - start < 1.0
        assert transport.aborted


async def test_a_peer_that_never_answers_the_handshake_is_a_connect_timeout() -> None:
    async with tcp_peer(never_answers) as url:
        s = session(url, connect_timeout_s=0.5)
        start = time.monotonic()
        with pytest.raises(ConnectTimeout, match="within 0.5 s"):
            await s.open()
        assert time.monotonic() - start < 2.0
        assert s.status.startswith("failed: ConnectTimeout")
        await closes_promptly(s)


async def test_a_peer_that_never_sends_session_created_is_a_setup_timeout() -> None:
    async with peer(silent, do_prelude=False) as p:
        s = session(p.url, setup_timeout_s=0.5)
        with pytest.raises(WaitTimeout, match=r"no session\.created within 0\.5 s"):
            await s.open()
        await closes_promptly(s)


async def test_relay_peer_keeps_the_session_connected_after_any_bad_audio() -> None:
    async with relay_peer() as p:
        sink = BufferSink()
        s = session(p.url, sink=sink)
        await s.open()
        for delta in ("!!!", "AA==", "A", "\u00e9\u00e9\u00e9\u00e9"):
            p.queue.put_nowait(
                json.dumps(
                    {
                        "type": "response.audio.delta",
                        "event_id": "a",
                        "response_id": "r",
                        "item_id": "i",
                        "output_index": 0,
                        "content_index": 0,
                        "delta": delta,
                    }
                )
            )
        p.queue.put_nowait('{"type":"fuzz.marker"}')
        await s.wait_for("fuzz.marker", timeout=5)
        assert s.status == "connected"
        assert (
            s.protocol_warnings == 3
        )  # "A" and "\u00e9..." are not base64, "AA==" is one byte ("!!!" is empty)
        assert sink.audio == b""
        await closes_promptly(s)
