"""Transport: URL building as the service builds it, and the handshake against real local servers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from voicelive_nb.errors import AuthenticationError, ConnectionClosed, ConnectTimeout, TransportError
from voicelive_nb.transport import Transport, build_url, describe_close, parse_retry_after, redact_url

V = "2026-07-15"


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        (
            "https://res.services.ai.azure.com",
            "wss://res.services.ai.azure.com/voice-live/realtime?api-version=2026-07-15&model=gpt-realtime",
        ),
        (
            "https://res.services.ai.azure.com/",
            "wss://res.services.ai.azure.com/voice-live/realtime?api-version=2026-07-15&model=gpt-realtime",
        ),
        (
            "http://127.0.0.1:8765",
            "ws://127.0.0.1:8765/voice-live/realtime?api-version=2026-07-15&model=gpt-realtime",
        ),
        (
            "ws://127.0.0.1:1/prefix/",
            "ws://127.0.0.1:1/prefix/voice-live/realtime?api-version=2026-07-15&model=gpt-realtime",
        ),
        (
            "wss://h/openai/realtime",
            "wss://h/openai/realtime/voice-live/realtime?api-version=2026-07-15&model=gpt-realtime",
        ),
    ],
)
def test_build_url_scheme_and_path(endpoint: str, expected: str) -> None:
    assert build_url(endpoint, api_version=V, model="gpt-realtime") == expected


def test_build_url_query_precedence() -> None:
    url = build_url(
        "https://h/?api-version=2020-01-01&features=x&extra=1",
        api_version=V,
        model="gpt-4o",
        query={"features": "client_ec_reference:true"},
    )
    # the endpoint's own api-version is ignored (as the SDK does); query= overrides; other params kept
    assert url == (
        "wss://h/voice-live/realtime?api-version=2026-07-15&model=gpt-4o"
        "&features=client_ec_reference%3Atrue&extra=1"
    )


def test_build_url_agent_mode_has_no_model() -> None:
    url = build_url(
        "https://h",
        api_version=V,
        agent={"agent_name": "helper", "project_name": "proj", "agent_version": "3"},
    )
    assert (
        url
        == "wss://h/voice-live/realtime?api-version=2026-07-15&agent-name=helper&agent-project-name=proj&agent-version=3"
    )


@pytest.mark.parametrize("bad", ["ftp://h", "h.example.com", "https://"])
def test_build_url_rejects_bad_endpoints(bad: str) -> None:
    with pytest.raises(TransportError, match="endpoint"):
        build_url(bad, api_version=V, model="m")


def test_redact_url_masks_secrets() -> None:
    url = "wss://h/voice-live/realtime?api-version=1&api-key=SECRET123&Authorization=Bearer+tok"
    shown = redact_url(url)
    assert "SECRET123" not in shown and "tok" not in shown
    assert "api-version=1" in shown


def test_describe_close() -> None:
    assert describe_close(1009, "") == "1009 message too big"
    assert describe_close(None, None) == "no close frame"
    assert describe_close(4000, "bye") == "4000 code 4000: bye"


class _Server:
    """A real websockets server on 127.0.0.1:0 with a scripted handshake answer."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.body = b""
        self.requests: list[Request] = []
        self.after_open: Any = None

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.requests.append(request)
        if self.status is not None:
            return connection.respond(HTTPStatus(self.status), self.body.decode())
        return None

    async def handler(self, connection: ServerConnection) -> None:
        if self.after_open is not None:
            await self.after_open(connection)
        else:
            async for message in connection:
                await connection.send(message)


@contextlib.asynccontextmanager
async def local_server() -> AsyncIterator[tuple[_Server, str]]:
    s = _Server()
    async with serve(s.handler, "127.0.0.1", 0, process_request=s.process_request) as server:
        port = server.sockets[0].getsockname()[1]
        yield s, f"ws://127.0.0.1:{port}/voice-live/realtime?api-version={V}&model=m"


async def test_connect_sends_headers_and_echoes() -> None:
    async with local_server() as (server, url):
        t = await Transport.connect(url, {"api-key": "k1"}, credential_kind="api-key")
        await t.send('{"type":"ping"}')
        assert await t.recv() == '{"type":"ping"}'
        await t.close()
    headers = server.requests[0].headers
    assert headers["api-key"] == "k1"
    assert headers["x-ms-client-request-id"] == t.request_id
    assert headers["User-Agent"].startswith("voicelive_nb/")
    assert "permessage-deflate" not in headers.get("Sec-WebSocket-Extensions", "")


@pytest.mark.parametrize(
    ("status", "kind", "phrase"), [(401, "api-key", "API key"), (403, "entra-token", "Entra ID token")]
)
async def test_auth_failure_names_the_credential(status: int, kind: str, phrase: str) -> None:
    async with local_server() as (server, url):
        server.status = status
        server.body = b"bad key"
        with pytest.raises(AuthenticationError) as info:
            await Transport.connect(url + "&api-key=SECRETQ", {}, credential_kind=kind)
    err = info.value
    assert err.status == status and err.credential_kind == kind
    assert phrase in str(err) and str(status) in str(err)
    assert "SECRETQ" not in str(err)


async def test_other_http_status_is_transport_error() -> None:
    async with local_server() as (server, url):
        server.status = 404
        with pytest.raises(TransportError, match="HTTP 404") as info:
            await Transport.connect(url, {})
    assert not isinstance(info.value, AuthenticationError)


async def test_refused_connection() -> None:
    # bind a port, then close it: nothing listens there any more
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    with pytest.raises(TransportError, match="cannot connect"):
        await Transport.connect(f"ws://127.0.0.1:{port}/voice-live/realtime", {})


async def test_connect_timeout() -> None:
    writers = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)  # accept TCP, never answer the HTTP upgrade

    srv = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ConnectTimeout, match="within 0.3 s"):
            await Transport.connect(f"ws://127.0.0.1:{port}/voice-live/realtime", {}, connect_timeout_s=0.3)
    finally:
        for w in writers:
            w.close()
        srv.close()
        await srv.wait_closed()


async def test_server_close_becomes_connection_closed_with_code_and_reason() -> None:
    async with local_server() as (server, url):

        async def close_soon(connection: ServerConnection) -> None:
            await connection.close(4001, "session_expired")

        server.after_open = close_soon
        t = await Transport.connect(url, {})
        with pytest.raises(ConnectionClosed) as info:
            await t.recv()
        assert info.value.code == 4001 and info.value.reason == "session_expired"
        with pytest.raises(ConnectionClosed):
            await t.send("{}")
        await t.close()


def test_redact_url_masks_userinfo_fragment_and_token_parameters() -> None:
    shown = redact_url("wss://user:pa55word@host.example/p?api-key=K1&access_token=T1&sig=S1&x=1#frag-T2")
    for secret in ("pa55word", "user:", "K1", "T1", "S1", "frag-T2"):
        assert secret not in shown
    assert shown.startswith("wss://***@host.example/p?") and "x=1" in shown
    assert redact_url("http://[::1") == "http://[::1"  # not a URL: returned, never raises


async def test_close_is_bounded_when_the_peer_stops_reading() -> None:
    async with local_server() as (server, url):

        async def stall(connection: ServerConnection) -> None:
            connection.transport.pause_reading()
            await connection.wait_closed()

        server.after_open = stall
        t = await Transport.connect(url, {}, close_timeout_s=0.3, ping_interval_s=None, send_timeout_s=0.3)
        with pytest.raises(ConnectionClosed, match="stopped reading"):
            for _ in range(10_000):  # fills the socket buffers, then one send blocks past the deadline
                await t.send("x" * 10_000)
        assert t.failure is not None and "blocked for 0.3 s" in t.failure
        start = asyncio.get_running_loop().time()
        await t.close()
        assert asyncio.get_running_loop().time() - start < 1.0


# --- api-version=v1: credentials and preview features only in headers ----------------------------


def test_query_to_headers_moves_credentials_and_features_only() -> None:
    from voicelive_nb.transport import query_to_headers

    url = build_url(
        "https://r.example/?api-key=k3y-0123456789abc&features=client_ec_reference:true",
        api_version="v1",
        model="gpt-realtime",
        query={"Authorization": "Bearer tok-0123456789abcdef", "deployment-id": "x"},
    )
    clean, headers = query_to_headers(url)
    assert headers == {
        "api-key": "k3y-0123456789abc",
        "Authorization": "Bearer tok-0123456789abcdef",
        "VoiceLive-Features": "client_ec_reference:true",
    }
    assert clean == "wss://r.example/voice-live/realtime?api-version=v1&model=gpt-realtime&deployment-id=x"
    assert query_to_headers(clean) == (clean, {})  # nothing to move: unchanged


@contextlib.asynccontextmanager
async def handshake_recorder() -> AsyncIterator[tuple[str, list[Request]]]:
    """A loopback realtime peer that keeps each handshake request and behaves minimally."""
    import json

    requests: list[Request] = []

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        requests.append(request)
        return None

    async def handler(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "session.created", "event_id": "e0", "session": {"id": "s"}}))
        async for raw in ws:
            event = json.loads(raw)
            if event["type"] == "session.update":
                await ws.send(json.dumps({"type": "session.updated", "session": event["session"]}))

    async with serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", requests


@pytest.mark.parametrize("version", ["2026-07-15", "v1"])
async def test_v1_sends_the_endpoints_credential_and_features_as_headers(version: str) -> None:
    from voicelive_nb import Session

    key = "url-key-0123456789abcdef"
    async with handshake_recorder() as (base, requests):
        endpoint = f"{base}/?api-key={key}&features=client_ec_reference:true"
        async with Session(endpoint=endpoint, api_version=version, dotenv=False) as s:
            assert s.status == "connected"
            assert key not in (s.url or "")
    (request,) = requests
    if version == "v1":
        assert "api-key" not in request.path and "features" not in request.path
        assert request.headers["api-key"] == key
        assert request.headers["VoiceLive-Features"] == "client_ec_reference:true"
    else:  # dated versions: the URL as given
        assert f"api-key={key}" in request.path and "features=client_ec_reference" in request.path


async def test_v1_against_the_emulator_with_the_key_in_the_endpoint() -> None:
    """The emulator refuses credentials in the query for v1; moved to the header, it lets us in."""
    from voicelive_nb import Session
    from voicelive_nb.emulator.server import run_emulator

    key = "emu-key-0123456789abcdef"
    async with run_emulator(api_key=key, pace="fast") as emu:
        endpoint = f"{emu.url}?api-key={key}"
        async with Session(endpoint=endpoint, api_version="v1", dotenv=False) as s:
            assert s.status == "connected" and s.wire_shape == "ga"
            assert s.effective_session()["turn_detection"]["type"] == "server_vad"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("5", 5.0),
        (" 1.5 ", 1.5),  # a fraction: liberal in what we accept
        ("0", 0.0),
        ("Fri, 04 Dec 2026 20:00:30 GMT", 30.0),  # an HTTP-date, 30 s after "now"
        ("Fri, 04 Dec 2026 19:59:00 GMT", 0.0),  # already past
        (None, None),
        ("", None),
        ("soon", None),
        ("-3", None),
        ("nan", None),
    ],
)
def test_retry_after_reads_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    now = datetime.datetime(2026, 12, 4, 20, 0, 0, tzinfo=datetime.timezone.utc).timestamp()
    assert parse_retry_after(header, now) == seconds
