"""The emulator under bad input, bad handshakes and injected faults (real sockets, raw JSON)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from typing import Any

import pytest
from waiting import wait_until_async as wait_until
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from voicelive_nb.emulator import Faults, HandshakeRejected, parse_connect_request, run_emulator

QUERY = "/voice-live/realtime?api-version=2026-07-15&model=gpt-realtime"


async def recv(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    event = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    assert event.get("event_id"), event
    return dict(event)


async def next_of(ws: ClientConnection, type_: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        event = await recv(ws, max(0.01, deadline - time.monotonic()))
        if event["type"] == type_:
            return event


async def closed(ws: ClientConnection, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Read until the connection ends; the events that came before."""
    events = []
    with contextlib.suppress(ConnectionClosed):
        while True:
            events.append(await recv(ws, timeout))
    return events


async def handshake_status(url: str, **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, **kwargs):
            pass
    return int(info.value.response.status_code)


def append_event(pcm: bytes) -> str:
    return json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})


# --- bad input ----------------------------------------------------------------------------------------

BAD_INPUTS: list[tuple[str | bytes, str, str | None]] = [
    ("{oops", "invalid_json", None),
    (b"\xff\xfe not json", "invalid_json", None),
    # nested deeper than the parser's recursion limit (#11: used to close 1000 with no error)
    ("[" * 100_000, "invalid_json", None),
    ('{"a":' * 50_000 + "1" + "}" * 50_000, "invalid_json", None),
    ("[1, 2, 3]", "invalid_event", None),
    ("42", "invalid_event", None),
    ('{"event_id": "e1"}', "missing_required_parameter", "type"),
    ('{"type": 5, "event_id": "e2"}', "invalid_value", "type"),
    ('{"type": "input_audio_buffer.explode", "event_id": "e3"}', "unknown_event_type", "type"),
    ('{"type": "session.avatar.connect", "client_sdp": "x"}', "not_supported", "type"),
    ('{"type": "input_audio_buffer.append", "event_id": "e4"}', "missing_required_parameter", "audio"),
    ('{"type": "input_audio_buffer.append", "audio": 12}', "invalid_value", "audio"),
    ('{"type": "input_audio_buffer.append", "audio": "***not base64***"}', "invalid_base64", "audio"),
    (append_event(b"\x01\x02\x03"), "invalid_audio_length", "audio"),
    ('{"type": "session.update"}', "missing_required_parameter", "session"),
    ('{"type": "session.update", "session": []}', "invalid_value", "session"),
    ('{"type": "conversation.item.create"}', "missing_required_parameter", "item"),
    ('{"type": "conversation.item.create", "item": {"type": "telepathy"}}', "invalid_value", "item.type"),
    ('{"type": "conversation.item.retrieve"}', "missing_required_parameter", "item_id"),
    ('{"type": "conversation.item.delete", "item_id": 7}', "invalid_value", "item_id"),
    ('{"type": "response.create", "response": "now"}', "invalid_value", "response"),
    (
        '{"type": "response.create", "response": {"modalities": ["smell"]}}',
        "invalid_value",
        "response.modalities",
    ),
]


async def test_every_bad_input_gets_an_error_and_the_connection_stays_usable() -> None:
    async with (
        run_emulator(pace="fast", replies=["Still fine."]) as emu,
        connect(emu.url + QUERY) as ws,
    ):
        await next_of(ws, "session.created")
        for frame, code, param in BAD_INPUTS:
            await ws.send(frame)
            event = await recv(ws)
            assert event["type"] == "error", (frame, event)
            err = event["error"]
            assert (err["code"], err["param"], err["type"]) == (code, param, "invalid_request_error"), frame
            assert err["message"]
            try:
                sent = json.loads(frame)
            except (ValueError, RecursionError):
                sent = None
            if isinstance(sent, dict) and isinstance(sent.get("event_id"), str):
                assert err["event_id"] == sent["event_id"]
        # usable: a good audio append is accepted silently, then a whole text response
        await ws.send(append_event(bytes(960)))
        await ws.send(json.dumps({"type": "response.create", "response": {"modalities": ["text"]}}))
        done = await next_of(ws, "response.done")
        assert done["response"]["status"] == "completed"
        assert done["response"]["output"][0]["content"][0]["text"] == "Still fine."
        assert emu.stats.errors_sent == len(BAD_INPUTS)


async def send_oversized(url: str, frame: str) -> int | None:
    """Send a frame the server must refuse; the close code the client saw."""
    ws = await connect(url + QUERY, max_size=None)
    try:
        await next_of(ws, "session.created")
        with contextlib.suppress(ConnectionClosed):
            await ws.send(frame)
        await asyncio.wait_for(ws.wait_closed(), 10)
        return ws.close_code
    finally:
        if ws.close_code is None:
            await ws.close()


async def test_frame_over_the_default_size_limit_closes_1009() -> None:
    big = '{"type":"input_audio_buffer.append","audio":"' + "A" * (16 * 1024 * 1024) + '"}'
    async with run_emulator(pace="fast") as emu:
        assert await send_oversized(emu.url, big) == 1009
        await wait_until(lambda: emu.connections == 0)


async def test_configured_size_limit_and_other_connections_unaffected() -> None:
    async with (
        run_emulator(pace="fast", replies=["Here."], max_message_bytes=64 * 1024) as emu,
        connect(emu.url + QUERY) as good,
    ):
        await next_of(good, "session.created")
        async with connect(emu.url + QUERY) as fine:
            await next_of(fine, "session.created")
            await fine.send(append_event(bytes(40 * 1024)))  # 54 KiB of JSON: under the limit
            await fine.send(json.dumps({"type": "input_audio_buffer.clear"}))
            await next_of(fine, "input_audio_buffer.cleared")
        assert await send_oversized(emu.url, append_event(bytes(60 * 1024))) == 1009  # 80 KiB: too big
        await good.send(json.dumps({"type": "session.update", "session": {"turn_detection": None}}))
        await next_of(good, "session.updated")
        await good.send(json.dumps({"type": "response.create"}))
        done = await next_of(good, "response.done")
        assert done["response"]["status"] == "completed"
        await wait_until(lambda: emu.connections == 1)
        assert emu.stats.connections_total == 3


async def test_no_server_message_exceeds_4_mib() -> None:
    """A 5 MiB instruction is accepted, but echoing it would break the SDK's 4 MiB receive limit."""
    async with run_emulator(pace="fast") as emu, connect(emu.url + QUERY, max_size=2**22) as ws:
        await next_of(ws, "session.created")
        huge = {"type": "session.update", "event_id": "big", "session": {"instructions": "x" * (5 * 2**20)}}
        await ws.send(json.dumps(huge))
        event = await recv(ws)  # the client's 4 MiB limit would close the connection if it were bigger
        assert event["type"] == "error" and event["error"]["code"] == "event_too_large"
        assert event["error"]["type"] == "server_error"
        await ws.send(json.dumps({"type": "session.update", "session": {"instructions": "short"}}))
        assert (await next_of(ws, "session.updated"))["session"]["instructions"] == "short"


async def test_a_failing_reply_function_fails_only_that_response() -> None:
    calls = 0

    def flaky(heard: str) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("reply backend down")
        return "Recovered."

    async with run_emulator(pace="fast", replies=flaky) as emu, connect(emu.url + QUERY) as ws:
        await next_of(ws, "session.created")
        await ws.send(json.dumps({"type": "session.update", "session": {"turn_detection": None}}))
        for expected in ("failed", "completed"):
            await ws.send(json.dumps({"type": "response.create"}))
            done = (await next_of(ws, "response.done"))["response"]
            assert done["status"] == expected
        assert done["output"][0]["content"][0]["transcript"] == "Recovered."


# --- handshake ----------------------------------------------------------------------------------------


async def test_handshake_paths_and_query() -> None:
    async with run_emulator(pace="fast") as emu:
        base = emu.url
        assert await handshake_status(base + "/openai/realtime?api-version=1&model=m") == 404
        assert await handshake_status(base + "/voice-live/realtime?model=gpt-realtime") == 400
        assert await handshake_status(base + "/voice-live/realtime?api-version=2026-07-15") == 400
        assert emu.stats.handshakes_rejected == 3 and emu.stats.connections_total == 0
        async with connect(
            base + "/any/prefix/voice-live/realtime?api-version=2025-10-01&model=gpt-4o"
        ) as ws:
            session = (await next_of(ws, "session.created"))["session"]
            assert session["model"] == "gpt-4o"
            assert session["turn_detection"]["prefix_padding_ms"] == 300  # the pre-2026-04-10 default
        agent = "/voice-live/realtime?api-version=2026-07-15&agent-name=helper&agent-project-name=proj"
        async with connect(base + agent, additional_headers={"api-key": "anything"}) as ws:
            session = (await next_of(ws, "session.created"))["session"]
            assert session["model"] is None and session["agent"]["name"] == "helper"


@pytest.mark.parametrize(
    ("query", "headers", "any_bearer", "accepted"),
    [
        ("", {}, False, False),
        ("", {"api-key": "wrong"}, False, False),
        ("", {"api-key": "s3cret"}, False, True),
        ("&api-key=s3cret", {}, False, True),
        ("&api-key=nope", {}, False, False),
        ("", {"Authorization": "Bearer s3cret"}, False, True),
        ("&Authorization=Bearer%20s3cret", {}, False, True),
        ("", {"Authorization": "Bearer some-entra-token"}, False, False),
        ("", {"Authorization": "Bearer some-entra-token"}, True, True),
        ("", {"Authorization": "Basic s3cret"}, True, False),
    ],
)
async def test_handshake_credentials(
    query: str, headers: dict[str, str], any_bearer: bool, accepted: bool
) -> None:
    async with run_emulator(pace="fast", api_key="s3cret", accept_any_bearer=any_bearer) as emu:
        url = emu.url + QUERY + query
        if accepted:
            async with connect(url, additional_headers=headers) as ws:
                assert (await recv(ws))["type"] == "session.created"
        else:
            assert await handshake_status(url, additional_headers=headers) == 401


def test_parse_connect_request_is_pure() -> None:
    params = parse_connect_request(
        "/x/voice-live/realtime/?api-version=v&model=m&features=client_ec_reference:true,other", {}
    )
    assert (params.api_version, params.model, params.features) == (
        "v",
        "m",
        ("client_ec_reference:true", "other"),
    )
    with pytest.raises(HandshakeRejected) as info:
        parse_connect_request("/voice-live/realtime?api-version=v&model=m", {"api-key": "x"}, api_key="y")
    assert info.value.status == 401 and "api-key" in info.value.message


# --- injected faults ----------------------------------------------------------------------------------


async def send_updates(ws: ClientConnection, n: int) -> None:
    for i in range(n):
        await ws.send(json.dumps({"type": "session.update", "session": {"instructions": f"update {i}"}}))


async def test_fault_drop_after_events_cuts_tcp_without_close_frame() -> None:
    async with (
        run_emulator(pace="fast", faults=Faults(drop_after_events=3)) as emu,
        connect(emu.url + QUERY) as ws,
    ):
        await send_updates(ws, 5)
        events = await closed(ws)
        assert [e["type"] for e in events] == ["session.created", "session.updated", "session.updated"]
        assert ws.close_code == 1006  # abnormal closure: no close frame came


async def test_fault_close_after_events_with_code_and_reason() -> None:
    faults = Faults(close_after_events=2, close_code=4000, close_reason="maintenance")
    async with run_emulator(pace="fast", faults=faults) as emu, connect(emu.url + QUERY) as ws:
        await send_updates(ws, 5)
        events = await closed(ws)
        assert len(events) == 2
        assert (ws.close_code, ws.close_reason) == (4000, "maintenance")


@pytest.mark.parametrize("kind", ["drop", "close"])
async def test_fault_after_seconds(kind: str) -> None:
    faults = Faults(drop_after_s=0.3) if kind == "drop" else Faults(close_after_s=0.3, close_code=4001)
    async with run_emulator(pace="fast", faults=faults) as emu:
        t0 = time.monotonic()
        async with connect(emu.url + QUERY) as ws:
            events = await closed(ws)
            elapsed = time.monotonic() - t0
        assert events[0]["type"] == "session.created"
        assert 0.25 <= elapsed < 5
        assert ws.close_code == (1006 if kind == "drop" else 4001)


async def test_fault_event_delay() -> None:
    async with (
        run_emulator(pace="fast", faults=Faults(event_delay_ms=150)) as emu,
        connect(emu.url + QUERY) as ws,
    ):
        await next_of(ws, "session.created")
        t0 = time.monotonic()
        await send_updates(ws, 3)
        instructions = [(await next_of(ws, "session.updated"))["session"]["instructions"] for _ in range(3)]
        assert instructions == ["update 0", "update 1", "update 2"]
        assert time.monotonic() - t0 >= 0.44


async def test_fault_session_expiry_sends_error_then_closes_1001() -> None:
    async with run_emulator(pace="fast", faults=Faults(session_expires_s=0.5)) as emu:
        t0 = time.time()
        async with connect(emu.url + QUERY) as ws:
            created = await recv(ws)
            assert t0 - 1 <= created["session"]["expires_at"] <= t0 + 1.5
            events = await closed(ws)
        assert [e["type"] for e in events] == ["error"]
        assert events[0]["error"]["code"] == "session_expired"
        assert (ws.close_code, ws.close_reason) == (1001, "session expired")
        assert 0.4 <= time.time() - t0 < 5
