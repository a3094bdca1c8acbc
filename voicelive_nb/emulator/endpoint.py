"""The emulator's WebSocket endpoint: handshake, one outbox per connection, fault injection.

:class:`EmulatorServer` (started by :func:`~.server.run_emulator`) serves ``ws://HOST:PORT/<any prefix>/voice-live/realtime``
like Azure AI Voice Live. The HTTP handshake is checked before the upgrade (404 for another
path, 401 for a missing or wrong key/token, 400 for missing ``api-version`` / ``model``);
each accepted connection gets its own :class:`~.conversation.Conversation` and nothing is
shared between connections but read-only models and the executor that runs TTS and ASR.

Every server event goes through the connection's :class:`Outbox`: one writer task adds the
``event_id``, serialises, applies the injected delay, notes when audio is really on the wire
(the playout clock of auto-truncation starts there) and applies the drop/close faults.

Session expiry: at ``expires_at`` (60 minutes, ``max_connection_s``, or ``Faults.session_expires_s``) the
server sends an ``error`` with code ``session_expired`` and then closes with **1001**
("going away", as OpenAI Realtime does at its session cap; Voice Live documents no code).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import json
import logging
import math
import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from ..errors import InvalidValue, StateError
from ..hosts import is_loopback_host
from .conversation import Conversation, ConversationOptions, EmulatorStats, Event, Reply, error_event, new_id
from .limits import (
    MAX_CONNECTION_S,
    TOKENS_PER_MINUTE,
    ConnectionRate,
    TokenBudget,
    capacity_refusal,
    check_limit,
)
from .options import check_pacing
from .wire_shapes import Edge, PreviewEdge, edge_for, is_ga

__all__ = [
    "ConnectParams",
    "EmulatorServer",
    "Faults",
    "HandshakeRejected",
    "Outbox",
    "parse_connect_request",
]

logger = logging.getLogger("voicelive_nb.emulator")

ROUTE = "/voice-live/realtime"
#: Biggest client frame accepted (larger → close 1009); Voice Live allows 15 MiB of audio per append.
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Every server message stays below the SDK client's 4 MiB receive limit.
MAX_SERVER_MESSAGE_BYTES = 4 * 1024 * 1024 - 1024


@dataclass(frozen=True)
class Faults:
    """Misbehaviour to inject, for testing clients. All off by default.

    * ``drop_after_events`` / ``drop_after_s``: abort the TCP connection (no close frame)
      after that many server events were sent / that many seconds after the handshake.
    * ``close_after_events`` / ``close_after_s``: close cleanly with ``close_code`` and
      ``close_reason`` instead.
    * ``event_delay_ms``: hold every server event this long before sending it.
    * ``session_expires_s``: the session expires this soon (``expires_at`` says so too):
      ``error`` ``session_expired``, then close 1001.
    """

    drop_after_events: int | None = None
    drop_after_s: float | None = None
    close_after_events: int | None = None
    close_after_s: float | None = None
    close_code: int = 1011
    close_reason: str = "emulator fault"
    event_delay_ms: float = 0.0
    session_expires_s: float | None = None


# --- handshake (pure) ------------------------------------------------------------------------------


class HandshakeRejected(Exception):
    """The opening handshake is refused with this HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ConnectParams:
    """What the handshake request asked for."""

    api_version: str
    model: str | None
    agent: dict[str, Any] | None = None
    features: tuple[str, ...] = ()


def _credential_ok(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def parse_connect_request(
    path: str,
    headers: Headers | Mapping[str, str],
    *,
    api_key: str | None = None,
    accept_any_bearer: bool = False,
) -> ConnectParams:
    """Check a handshake request; raise :class:`HandshakeRejected` (404, 401 or 400) when it is refused."""
    url = urlsplit(path)
    route = url.path.rstrip("/")
    if not route.endswith(ROUTE):
        raise HandshakeRejected(404, f"not found: {url.path!r}; the emulator serves <any prefix>{ROUTE}")
    query = parse_qs(url.query, keep_blank_values=True)

    def q(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    if is_ga(q("api-version")) and any(
        q(name) for name in ("api-key", "Authorization", "authorization", "access_token")
    ):
        raise HandshakeRejected(
            401,
            "unauthorized: api-version=v1 takes credentials only from headers, not the query string; "
            "send the api-key header or Authorization: Bearer <token>",
        )
    if api_key is not None:
        key = headers.get("api-key") or q("api-key")
        authorization = headers.get("Authorization") or q("Authorization") or q("authorization")
        token: str | None = None
        if authorization is not None:
            scheme, _, rest = authorization.strip().partition(" ")
            if scheme.lower() == "bearer" and rest.strip():
                token = rest.strip()
        ok = _credential_ok(key, api_key) or (
            token is not None and (accept_any_bearer or _credential_ok(token, api_key))
        )
        if not ok:
            what = "wrong" if (key or token) else "missing"
            raise HandshakeRejected(
                401,
                f"unauthorized: {what} credential; send the api-key header (or query parameter) "
                "or Authorization: Bearer <token>",
            )
    api_version = q("api-version")
    if not api_version:
        raise HandshakeRejected(400, "missing query parameter 'api-version' (e.g. api-version=2026-07-15)")
    model = q("model")
    agent_name, agent_project = q("agent-name"), q("agent-project-name")
    agent: dict[str, Any] | None = None
    if not model:
        if not (agent_name and agent_project):
            raise HandshakeRejected(
                400,
                "missing query parameter 'model' (e.g. model=gpt-realtime), "
                "or 'agent-name' and 'agent-project-name' for an agent",
            )
        agent = {
            "type": "agent",
            "name": agent_name,
            "description": None,
            "agent_id": agent_name,
            "thread_id": new_id("thread"),
        }
        model = None
    # dated api-versions name preview features in the query, v1 in the VoiceLive-Features header
    named = ",".join(x for x in (q("features"), headers.get("VoiceLive-Features")) if x)
    features = tuple(f.strip() for f in named.split(",") if f.strip())
    return ConnectParams(api_version=api_version, model=model, agent=agent, features=features)


# --- the outbox -------------------------------------------------------------------------------------


class _Queued:
    __slots__ = ("dropped", "event", "on_sent")

    def __init__(self, event: Event, on_sent: Callable[[], None] | None) -> None:
        self.event = event
        self.on_sent = on_sent
        self.dropped = False


class Outbox:
    """The one writer of a connection (implements :class:`~.conversation.EventSink`)."""

    def __init__(
        self,
        ws: ServerConnection,
        stats: EmulatorStats,
        faults: Faults,
        *,
        maxsize: int = 256,
        edge: Edge | None = None,
    ) -> None:
        self.ws = ws
        self.edge = edge or PreviewEdge()
        self.stats = stats
        self.faults = faults
        self.maxsize = maxsize
        self.sent = 0
        self.closed = False
        self._queue: deque[_Queued] = deque()
        self._cond = asyncio.Condition()
        self._inflight: _Queued | None = None
        self._sending = False
        self._prefix = secrets.token_hex(3)
        self._counter = 0

    async def send(self, event: Event, on_sent: Callable[[], None] | None = None) -> None:
        if self.closed:
            return
        self._counter += 1
        body = {k: v for k, v in event.items() if k not in ("type", "event_id")}
        full = {
            "type": event["type"],
            "event_id": event.get("event_id") or f"event_{self._prefix}{self._counter:05d}",
        }
        full.update(body)
        async with self._cond:
            await self._cond.wait_for(lambda: len(self._queue) < self.maxsize or self.closed)
            if self.closed:
                return
            self._queue.append(_Queued(full, on_sent))
            self._cond.notify_all()

    async def discard(self, predicate: Callable[[Event], bool]) -> int:
        async with self._cond:
            before = len(self._queue)
            self._queue = deque(q for q in self._queue if not predicate(q.event))
            count = before - len(self._queue)
            inflight = self._inflight
            if (
                inflight is not None
                and not self._sending
                and not inflight.dropped
                and predicate(inflight.event)
            ):
                inflight.dropped = True
                count += 1
            self._cond.notify_all()
            await self._cond.wait_for(lambda: not self._sending)
        return count

    async def flush(self) -> None:
        """Wait until everything queued so far is sent (or the connection is gone)."""
        async with self._cond:
            await self._cond.wait_for(lambda: self.closed or (not self._queue and self._inflight is None))

    async def close(self) -> None:
        async with self._cond:
            self.closed = True
            self._queue.clear()
            self._cond.notify_all()

    def _encode(self, event: Event) -> str:
        text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        if len(text) > MAX_SERVER_MESSAGE_BYTES // 4 and len(text.encode()) > MAX_SERVER_MESSAGE_BYTES:
            logger.error(
                "emulator: a %s event of %d bytes was replaced by an error", event.get("type"), len(text)
            )
            replacement = error_event(
                "event_too_large",
                f"the server event '{event.get('type')}' would exceed 4 MiB and was not sent",
                error_type="server_error",
            )
            replacement["event_id"] = event.get("event_id")
            text = json.dumps(replacement, separators=(",", ":"))
        return text

    async def run(self) -> None:
        """The writer loop (one task per connection)."""
        delay = self.faults.event_delay_ms / 1000.0
        try:
            while True:
                async with self._cond:
                    await self._cond.wait_for(lambda: bool(self._queue) or self.closed)
                    if self.closed:
                        return
                    item = self._queue.popleft()
                    self._inflight = item
                    self._cond.notify_all()
                if delay > 0:
                    await asyncio.sleep(delay)
                async with self._cond:
                    if item.dropped:
                        self._inflight = None
                        self._cond.notify_all()
                        continue
                    self._sending = True
                try:
                    # committed to the wire from here on (a discard no longer drops it): it counts
                    # as sent now, so a cancelled response's transcript includes it
                    if item.on_sent is not None:
                        item.on_sent()
                    # the canonical event in the connection's wire shape (0, 1 or more frames)
                    for wire_event in self.edge.server(dict(item.event)):
                        await self.ws.send(self._encode(wire_event))
                    self.sent += 1
                    self.stats.events_sent += 1
                finally:
                    async with self._cond:
                        self._sending = False
                        self._inflight = None
                        self._cond.notify_all()
                f = self.faults
                if f.drop_after_events is not None and self.sent >= f.drop_after_events:
                    logger.info("emulator fault: dropping the connection after %d events", self.sent)
                    self.abort()
                    return
                if f.close_after_events is not None and self.sent >= f.close_after_events:
                    logger.info("emulator fault: closing with %d after %d events", f.close_code, self.sent)
                    await self.close()
                    await self.ws.close(f.close_code, f.close_reason)
                    return
        except ConnectionClosed:
            pass
        finally:
            await self.close()

    def abort(self) -> None:
        """Cut the TCP connection without a close frame."""
        self.closed = True
        transport = self.ws.transport
        if transport is not None:
            transport.abort()


# --- the server ---------------------------------------------------------------------------------------


@dataclass
class _ConnState:
    conversation: Conversation
    outbox: Outbox
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


class EmulatorServer:
    """A local Voice Live service. Use ``async with`` (or :meth:`start` / :meth:`stop`).

    ``max_sessions``: with that many connections open, a new one is refused before the upgrade
    with HTTP 503 and ``Retry-After: 1`` (default: no limit), so an overloaded emulator says so
    at once instead of answering every session late.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        accept_any_bearer: bool = False,
        pace: Literal["realtime", "fast"] = "realtime",
        replies: Reply = None,
        faults: Faults | None = None,
        transcription: bool = True,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        session_max_s: float | None = None,
        allow_remote: bool = False,
        chunk_ms: int = 100,
        lead_ms: int = 100,
        threads: int | None = None,
        streaming_asr: bool = True,
        max_connection_s: float = MAX_CONNECTION_S,
        max_connections_per_minute: int | None = None,
        tokens_per_minute: int = TOKENS_PER_MINUTE,
        max_sessions: int | None = None,
    ) -> None:
        check_pacing(pace, chunk_ms)
        if max_sessions is not None:
            check_limit("max_sessions", max_sessions, integer=True)
        if not is_loopback_host(host):
            if not allow_remote:
                raise InvalidValue(
                    f"refusing to listen on {host!r}: the emulator binds loopback only unless allow_remote=True"
                )
            if not api_key:
                raise InvalidValue(f"listening on {host!r} needs an api_key so that strangers cannot use it")
        check_limit("max_connection_s", max_connection_s, integer=False)
        if session_max_s is not None:  # the older name of max_connection_s
            check_limit("session_max_s", session_max_s, integer=False)
            max_connection_s = session_max_s
        # None: not enforced (tests, sweeps and notebooks open many connections); the standalone
        # emulator (python -m voicelive_nb.emulator) enforces the published 30 per minute
        self.rate = ConnectionRate(max_connections_per_minute) if max_connections_per_minute else None
        self.tokens = TokenBudget(tokens_per_minute)
        self.host = host
        self.port = port
        self.api_key = api_key
        self.accept_any_bearer = accept_any_bearer
        self.pace = pace
        self.faults = faults or Faults()
        self.max_message_bytes = max_message_bytes
        self.stats = EmulatorStats()
        self._threads = threads or max(4, 2 * (os.cpu_count() or 2))
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        session_s = (
            self.faults.session_expires_s if self.faults.session_expires_s is not None else max_connection_s
        )
        self._options = ConversationOptions(
            pace=pace,
            replies=replies,
            transcription=transcription,
            chunk_ms=chunk_ms,
            lead_ms=lead_ms,
            session_max_s=session_s,
            stats=self.stats,
            streaming_asr=streaming_asr,
            tokens=self.tokens,
        )
        self._server: Server | None = None
        self._conns: dict[ServerConnection, _ConnState] = {}
        #: open connections past which a new one gets HTTP 503 (None: no limit)
        self.max_sessions = max_sessions
        self._admitted: set[ServerConnection] = set()  # handshakes let through, until their handler ends

    # --- properties -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``ws://HOST:PORT`` (the SDK and our client append ``/voice-live/realtime`` themselves)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    @property
    def connections(self) -> int:
        """Connections open right now."""
        return self.stats.connections_open

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            raise StateError("the emulator is already running")
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self._threads, thread_name_prefix="voicelive-emulator"
        )
        self._options.executor = self._executor
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            max_size=self.max_message_bytes,
            compression=None,
            logger=logging.getLogger("voicelive_nb.emulator.websockets"),
        )
        sockets = list(self._server.sockets)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        logger.info("emulator listening on %s", self.url)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> EmulatorServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- handshake ------------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        try:
            parse_connect_request(
                request.path, request.headers, api_key=self.api_key, accept_any_bearer=self.accept_any_bearer
            )
        except HandshakeRejected as exc:
            self.stats.handshakes_rejected += 1
            return connection.respond(exc.status, exc.message + "\n")
        decision = self.rate.admit(time.monotonic()) if self.rate is not None else None
        if decision is not None and self.rate is not None and not decision.allowed:
            self.stats.handshakes_rejected += 1
            response = connection.respond(429, self.rate.refusal_message(decision) + "\n")
            response.headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after_s)))
            return response
        if self.max_sessions is not None:
            # a handshake let through that never reached its handler (the client went away) is closed
            self._admitted = {c for c in self._admitted if c.state is not State.CLOSED}
            if len(self._admitted) >= self.max_sessions:
                self.stats.handshakes_rejected += 1
                response = connection.respond(503, capacity_refusal(self.max_sessions) + "\n")
                response.headers["Retry-After"] = "1"
                return response
            self._admitted.add(connection)
        return None

    # --- one connection -----------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        params = parse_connect_request(
            ws.request.path,
            ws.request.headers,
            api_key=self.api_key,
            accept_any_bearer=self.accept_any_bearer,
        )
        self.stats.connections_total += 1
        self.stats.connections_open += 1
        edge = edge_for(params.api_version)
        outbox = Outbox(ws, self.stats, self.faults, edge=edge)
        conversation = Conversation(
            outbox,
            model=params.model,
            api_version=params.api_version,
            features=params.features,
            agent=params.agent,
            options=self._options,
        )
        state = _ConnState(conversation, outbox)
        self._conns[ws] = state
        writer = asyncio.create_task(outbox.run(), name="emulator writer")
        state.tasks.append(writer)
        f = self.faults
        if f.drop_after_s is not None:
            state.tasks.append(asyncio.create_task(self._later(f.drop_after_s, outbox.abort)))
        if f.close_after_s is not None:
            state.tasks.append(
                asyncio.create_task(
                    self._close_later(ws, outbox, f.close_after_s, f.close_code, f.close_reason)
                )
            )
        state.tasks.append(asyncio.create_task(self._expire_later(ws, state, self._options.session_max_s)))
        try:
            await conversation.start()
            async for message in ws:
                msg = await conversation.parse_message(message)
                if msg is not None:
                    await conversation.handle_event(edge.client(msg))
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("emulator connection failed")
        finally:
            await conversation.close()
            await outbox.close()
            for task in state.tasks:
                task.cancel()
            for task in state.tasks:
                with contextlib.suppress(BaseException):
                    await task
            self._conns.pop(ws, None)
            self._admitted.discard(ws)
            self.stats.connections_open -= 1

    @staticmethod
    async def _later(delay_s: float, action: Callable[[], None]) -> None:
        await asyncio.sleep(delay_s)
        action()

    @staticmethod
    async def _close_later(
        ws: ServerConnection, outbox: Outbox, delay_s: float, code: int, reason: str
    ) -> None:
        await asyncio.sleep(delay_s)
        await outbox.close()
        await ws.close(code, reason)

    @staticmethod
    async def _expire_later(ws: ServerConnection, state: _ConnState, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        await state.conversation.expire()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(state.outbox.flush(), 5.0)
        await state.outbox.close()
        await ws.close(1001, "session expired")
