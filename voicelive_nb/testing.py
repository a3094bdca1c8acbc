"""An in-memory emulator: a :class:`~voicelive_nb.session.Session` talks to the emulator's
:class:`~voicelive_nb.emulator.conversation.Conversation` in the same event loop, with no socket.

::

    async with memory_emulator(replies=["Hello there."]) as emu:
        async with Session(SessionConfig.manual(), connection=emu.connection()) as s:
            await s.create_response()
            done = await s.wait_for("response.done")

The shape is httpx's ``MockTransport``: :class:`MemoryEmulator` is a transport factory
(``ConnectionOptions(transport_factory=...)``) and :class:`MemoryTransport` a real implementation
of :class:`~voicelive_nb.transport.MessageTransport`, not a mock: frames pass as JSON text both
ways (the client's codec and the emulator's decoder both run), the handshake is checked as the
socket server checks it (401 for a wrong key, 400 for a missing model), each direction is a
bounded queue (a peer that stops reading blocks the sender, and ``send_timeout_s`` then gives up),
and closing either end closes the other with a code and reason (an abort with none, as a dropped
TCP connection). The session expires at ``session_max_s`` with ``session_expired`` and 1001.

What it leaves out, compared with :func:`~voicelive_nb.emulator.server.run_emulator`: TCP,
WebSocket framing and keepalive pings, fault injection (``Faults``), the connection-rate limit, and
the outbox's backlog: an event is handed to the client's queue as soon as the conversation sends
it, so a barge-in never finds unsent audio to discard (over a socket it sometimes does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import uuid
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

from websockets.datastructures import Headers

from .auth import redact_text
from .connection import ConnectionOptions
from .emulator.conversation import Conversation, ConversationOptions, EmulatorStats, Reply
from .emulator.endpoint import DEFAULT_MAX_MESSAGE_BYTES, HandshakeRejected, parse_connect_request
from .emulator.limits import MAX_CONNECTION_S, TOKENS_PER_MINUTE, TokenBudget, check_limit
from .emulator.options import check_pacing
from .emulator.wire_shapes import Edge, edge_for
from .errors import AuthenticationError, ConnectionClosed, InvalidType, InvalidValue, TransportError
from .transport import ConnectRequest, redact_url, wait_bounded

__all__ = [
    "MEMORY_ENDPOINT",
    "MEMORY_KEY",
    "MemoryConnection",
    "MemoryEmulator",
    "MemoryTransport",
    "memory_emulator",
]

log = logging.getLogger("voicelive_nb.testing")

#: The endpoint the in-memory emulator answers to (any endpoint works; this one says what it is, and
#: its loopback host keeps a NotebookSession's reconnects off the service's connection budget).
MEMORY_ENDPOINT = "ws://localhost/memory-emulator"
#: The key it expects by default.
MEMORY_KEY = "voicelive-nb-memory-emulator"
#: Frames each direction holds before the sender has to wait (the socket's buffers, in frames).
DEFAULT_CAPACITY = 256
_LOST = "connection lost without a close frame (network or server crash)"

End = tuple[int | None, str]


class _PipeClosed(Exception):
    """The pipe has ended (``end`` is the close code and reason; code None: dropped)."""

    def __init__(self, end: End) -> None:
        super().__init__(end)
        self.end = end


class _Pipe:
    """One direction of a connection: text frames in order, at most ``capacity`` waiting, then an end.

    Frames put before the end are still delivered (a close frame follows the data), unless the
    end drops them (an abort loses what was in flight).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.queued_bytes = 0
        self.end: End | None = None
        self._frames: deque[str] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    def ready(self) -> bool:
        """A put would not wait."""
        return self.end is None and len(self._frames) < self.capacity

    def put_nowait(self, text: str) -> None:
        self._frames.append(text)
        self.queued_bytes += len(text)
        self._readable.set()

    async def put(self, text: str) -> None:
        while self.end is None and len(self._frames) >= self.capacity:
            self._writable.clear()
            await self._writable.wait()
        if self.end is not None:
            raise _PipeClosed(self.end)
        self.put_nowait(text)

    async def get(self) -> str:
        while not self._frames:
            if self.end is not None:
                raise _PipeClosed(self.end)
            self._readable.clear()
            await self._readable.wait()
        text = self._frames.popleft()
        self.queued_bytes -= len(text)
        self._writable.set()
        return text

    def shut(self, end: End, *, drop: bool = False) -> None:
        """End the pipe (the first end wins); wake the reader and any waiting writer."""
        if self.end is None:
            self.end = end
        if drop:
            self._frames.clear()
            self.queued_bytes = 0
        self._readable.set()
        self._writable.set()


class MemoryTransport:
    """The client end of one in-memory connection (a :class:`~voicelive_nb.transport.MessageTransport`)."""

    def __init__(self, link: MemoryConnection, request: ConnectRequest) -> None:
        self._link = link
        self._url = request.url
        self.request_id = str(uuid.uuid4())
        self.send_timeout_s = request.send_timeout_s
        self.close_timeout_s = request.close_timeout_s
        #: Why this side gave up on the peer (``None`` while it has not).
        self.failure: str | None = None
        #: Whether :meth:`close` has started, and whether the connection was dropped.
        self.closing = False
        self.aborted = False

    @property
    def url(self) -> str:
        return redact_url(self._url)

    async def send(self, text: str) -> None:
        """Hand one text frame to the emulator; waits while its queue is full (at most ``send_timeout_s``)."""
        if not isinstance(text, str):
            raise InvalidType(f"a frame must be text (str), got {type(text).__name__}")
        if self.failure is not None:
            raise ConnectionClosed(None, self.failure)
        up = self._link.up
        if up.ready():
            up.put_nowait(text)
            return
        try:
            await wait_bounded(up.put(text), self.send_timeout_s)
        except asyncio.TimeoutError:
            self._give_up(
                f"the emulator stopped reading: a send was blocked for {self.send_timeout_s:g} s "
                "(its queue is full); the connection was dropped, reconnect to go on"
            )
            raise ConnectionClosed(None, self.failure or _LOST) from None
        except _PipeClosed as exc:
            raise self._closed(self._link.down.end or exc.end) from None

    async def recv(self) -> str:
        """The next frame from the emulator; after the end, :class:`ConnectionClosed` with its code."""
        try:
            return await self._link.down.get()
        except _PipeClosed as exc:
            raise self._closed(exc.end) from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close: the emulator reads what was sent, ends the conversation and answers with the same
        code; bounded by ``close_timeout_s`` (then dropped). Idempotent; never raises except the
        caller's own cancellation (after dropping the connection)."""
        self.closing = True
        self._link.up.shut((code, reason))
        try:
            await wait_bounded(self._link.wait_closed(), self.close_timeout_s)
        except asyncio.CancelledError:
            self.abort()
            raise
        except BaseException:  # timed out: closing must not raise
            self.abort()

    async def wait_closed(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until the emulator's end has finished; never raises."""
        with contextlib.suppress(Exception, asyncio.TimeoutError):
            await asyncio.wait_for(self._link.wait_closed(), timeout=timeout)

    def abort(self) -> None:
        """Drop the connection at once: no close code either way, frames in flight lost (idempotent)."""
        self.aborted = True
        self._link.drop()

    @property
    def connection_state(self) -> str:
        """``open``, ``closing`` (:meth:`close` started, the emulator's end not finished) or ``closed``."""
        if self._link.closed:
            return "closed"
        return "closing" if self.closing or self._link.down.end is not None else "open"

    def tasks(self) -> list[asyncio.Task[Any]]:
        """No background tasks of its own (no keepalive: nothing can go silent in memory)."""
        return []

    def buffered_bytes(self) -> int:
        """Characters sent but not yet taken by the emulator."""
        return self._link.up.queued_bytes

    @property
    def close_code(self) -> int | None:
        """The close code received (1006 when the connection was dropped), None while open."""
        end = self._link.down.end
        if end is None:
            return None
        return 1006 if end[0] is None else end[0]

    @property
    def close_reason(self) -> str | None:
        end = self._link.down.end
        return None if end is None else end[1]

    def _give_up(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
        self.abort()

    def _closed(self, end: End) -> ConnectionClosed:
        if self.failure is not None:
            return ConnectionClosed(None, self.failure)
        code, reason = end
        if code is None:
            return ConnectionClosed(None, _LOST)
        return ConnectionClosed(code, redact_text(reason))

    def __repr__(self) -> str:
        return f"<MemoryTransport {self.url}>"


class MemoryConnection:
    """One in-memory connection: the client's :attr:`transport`, the emulator's :attr:`conversation`.

    Implements the conversation's ``EventSink`` (events get an ``event_id``, are put in the
    connection's wire shape and sent as JSON text) and runs the emulator's side: ``session.created``,
    then each client frame through ``Conversation.handle_message``.
    """

    def __init__(
        self,
        request: ConnectRequest,
        *,
        edge: Edge,
        stats: EmulatorStats,
        capacity: int,
        max_message_bytes: int,
    ) -> None:
        self.up = _Pipe(capacity)  # client -> emulator
        self.down = _Pipe(capacity)  # emulator -> client
        self.edge = edge
        self.stats = stats
        self.max_message_bytes = max_message_bytes
        self.transport = MemoryTransport(self, request)
        self.conversation: Conversation | None = None
        self._prefix = secrets.token_hex(3)
        self._counter = 0
        self._task: asyncio.Task[None] | None = None
        self._expiry: asyncio.Task[None] | None = None

    # --- EventSink ------------------------------------------------------------------------------

    async def send(self, event: dict[str, Any], on_sent: Callable[[], None] | None = None) -> None:
        """Send one server event to the client (the conversation's sink)."""
        if self.down.end is not None:
            return
        self._counter += 1
        body = {k: v for k, v in event.items() if k not in ("type", "event_id")}
        full = {
            "type": event["type"],
            "event_id": event.get("event_id") or f"event_{self._prefix}{self._counter:05d}",
        }
        full.update(body)
        try:
            for wire_event in self.edge.server(full):
                await self.down.put(json.dumps(wire_event, separators=(",", ":"), ensure_ascii=False))
        except _PipeClosed:
            return
        self.stats.events_sent += 1
        if on_sent is not None:
            on_sent()

    async def discard(self, predicate: Callable[[dict[str, Any]], bool]) -> int:
        """Nothing is ever waiting to be sent here (each event goes to the client at once)."""
        return 0

    # --- the emulator's side --------------------------------------------------------------------

    def start(self, conversation: Conversation, session_max_s: float) -> None:
        self.conversation = conversation
        self._task = asyncio.get_running_loop().create_task(self._serve(conversation), name="memory-emulator")
        self._expiry = asyncio.get_running_loop().create_task(
            self._expire_later(conversation, session_max_s), name="memory-emulator-expiry"
        )

    async def _serve(self, conversation: Conversation) -> None:
        end: End = (1000, "")
        try:
            await conversation.start()
            while True:
                try:
                    text = await self.up.get()
                except _PipeClosed as exc:
                    end = exc.end
                    break
                if len(text) > self.max_message_bytes // 4 and len(text.encode()) > self.max_message_bytes:
                    end = (1009, f"frame exceeds limit of {self.max_message_bytes} bytes")
                    break
                await conversation.handle_message(self._canonical(text))
        except asyncio.CancelledError:
            end = (None, "")
            raise
        except Exception:
            log.exception("memory emulator connection failed")
            end = (1011, "emulator error")
        finally:
            self.up.shut(end, drop=True)
            await conversation.close()
            self.down.shut(end, drop=end[0] is None)
            if self._expiry is not None:
                self._expiry.cancel()
            self.stats.connections_open -= 1

    def _canonical(self, text: str) -> str:
        """The frame in the dated-version shape the conversation speaks (GA frames translated)."""
        if self.edge.shape == "preview":
            return text
        try:
            msg = json.loads(text)
        except ValueError:
            return text  # the conversation answers it with an error event
        return json.dumps(self.edge.client(msg), separators=(",", ":"), ensure_ascii=False)

    async def _expire_later(self, conversation: Conversation, delay_s: float) -> None:
        await asyncio.sleep(delay_s)  # the session's lifetime, not a synchronisation
        await conversation.expire()
        await self.close(1001, "session expired")

    # --- closing from the emulator's side ---------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._task is None or self._task.done()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """The emulator closes: frames already sent reach the client, then ``code`` and ``reason``;
        what the client sends from now on is refused (:class:`ConnectionClosed`)."""
        self.down.shut((code, reason))
        self.up.shut((code, reason), drop=True)
        await self.wait_closed()

    def drop(self) -> None:
        """Either side dropped the connection: no close code, frames in flight lost."""
        self.down.shut((None, ""), drop=True)
        self.up.shut((None, ""), drop=True)

    async def wait_closed(self) -> None:
        task = self._task
        if task is not None and task is not asyncio.current_task():
            await asyncio.wait([task])


class MemoryEmulator:
    """The emulator served in memory; call it with a :class:`~voicelive_nb.transport.ConnectRequest`
    (it is a transport factory) or use :meth:`connection` for ready options.

    Keywords as :func:`~voicelive_nb.emulator.server.run_emulator`'s (``api_key``, ``pace``,
    ``replies``, ``transcription``, ``chunk_ms``, ``lead_ms``, ``session_max_s``, ``streaming_asr``,
    ``tokens_per_minute``, ``max_message_bytes``); ``pace`` defaults to ``"fast"`` here, and
    ``capacity`` bounds each direction's queue (frames). TTS and ASR run on the loop's default executor.
    """

    def __init__(
        self,
        *,
        api_key: str | None = MEMORY_KEY,
        accept_any_bearer: bool = False,
        pace: Literal["realtime", "fast"] = "fast",
        replies: Reply = None,
        transcription: bool = True,
        chunk_ms: int = 100,
        lead_ms: int = 100,
        session_max_s: float = MAX_CONNECTION_S,
        streaming_asr: bool = True,
        tokens_per_minute: int = TOKENS_PER_MINUTE,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        check_pacing(pace, chunk_ms)
        if isinstance(capacity, bool) or not isinstance(capacity, int) or not 1 <= capacity <= 65536:
            raise InvalidValue(f"invalid capacity {capacity!r}; use 1 to 65536 frames")
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            raise InvalidValue("invalid api_key: use a non-empty string, or None to accept any connection")
        check_limit("session_max_s", session_max_s, integer=False)
        self.api_key = api_key
        self.accept_any_bearer = accept_any_bearer
        self.capacity = capacity
        self.max_message_bytes = max_message_bytes
        self.stats = EmulatorStats()
        self._options = ConversationOptions(
            pace=pace,
            replies=replies,
            transcription=transcription,
            chunk_ms=chunk_ms,
            lead_ms=lead_ms,
            session_max_s=session_max_s,
            stats=self.stats,
            streaming_asr=streaming_asr,
            tokens=TokenBudget(tokens_per_minute),
        )
        #: Every connection made so far (open or closed), oldest first.
        self.connections: list[MemoryConnection] = []

    @property
    def url(self) -> str:
        return MEMORY_ENDPOINT

    @property
    def open_connections(self) -> list[MemoryConnection]:
        return [c for c in self.connections if not c.closed]

    def connection(self, **changes: Any) -> ConnectionOptions:
        """:class:`~voicelive_nb.connection.ConnectionOptions` that connect here (``changes`` applied)."""
        base = ConnectionOptions(endpoint=MEMORY_ENDPOINT, api_key=self.api_key, transport_factory=self)
        return base.replace(**changes) if changes else base

    async def __call__(self, request: ConnectRequest) -> MemoryTransport:
        """Accept one connection (the transport factory): check the handshake, start a conversation."""
        parts = urlsplit(request.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            params = parse_connect_request(
                path, Headers(request.headers), api_key=self.api_key, accept_any_bearer=self.accept_any_bearer
            )
        except HandshakeRejected as exc:
            self.stats.handshakes_rejected += 1
            raise _refused(exc, request) from None
        self.stats.connections_total += 1
        self.stats.connections_open += 1
        link = MemoryConnection(
            request,
            edge=edge_for(params.api_version),
            stats=self.stats,
            capacity=self.capacity,
            max_message_bytes=self.max_message_bytes,
        )
        conversation = Conversation(
            link,
            model=params.model,
            api_version=params.api_version,
            features=params.features,
            agent=params.agent,
            options=self._options,
        )
        link.start(conversation, self._options.session_max_s)
        self.connections.append(link)
        return link.transport

    async def aclose(self) -> None:
        """Close every open connection with 1001 "going away" (as a server shutting down)."""
        for link in self.open_connections:
            await link.close(1001, "going away")

    async def __aenter__(self) -> MemoryEmulator:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<MemoryEmulator connections={len(self.open_connections)}/{len(self.connections)}>"


def memory_emulator(**kwargs: Any) -> MemoryEmulator:
    """A :class:`MemoryEmulator` (``async with memory_emulator() as emu: Session(connection=emu.connection())``)."""
    return MemoryEmulator(**kwargs)


def _refused(exc: HandshakeRejected, request: ConnectRequest) -> TransportError:
    """The handshake refusal as the WebSocket transport reports it."""
    shown = redact_url(request.url)
    if exc.status in (401, 403):
        return AuthenticationError(
            f"the in-memory emulator refused the connection with HTTP {exc.status} at {shown}: "
            f"{exc.message}; check the key",
            status=exc.status,
            credential_kind=request.credential_kind,
        )
    return TransportError(f"handshake with {shown} failed: HTTP {exc.status}: {exc.message}")
