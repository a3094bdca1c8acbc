"""The WebSocket edge: URL building, the handshake, and text frames in and out.

Only this module imports ``websockets``. Its errors become this package's own:
:class:`~voicelive_nb.errors.AuthenticationError` for a 401/403 handshake,
:class:`~voicelive_nb.errors.ConnectTimeout`, :class:`~voicelive_nb.errors.ConnectionClosed`
with the close code and reason, and :class:`~voicelive_nb.errors.TransportError` otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.utils
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.version import version as websockets_version

from ._version import __version__
from .auth import install_log_redaction, redact_text, register_secret
from .errors import (
    AuthenticationError,
    ConnectionClosed,
    ConnectTimeout,
    HandshakeRefused,
    InvalidType,
    TransportError,
    VoiceLiveError,
)

REALTIME_PATH = "/voice-live/realtime"
USER_AGENT = f"voicelive_nb/{__version__} websockets/{websockets_version}"
#: Largest message accepted from the service (audio deltas are ~100 ms; this is generous).
MAX_MESSAGE_BYTES = 16 * 2**20

_AGENT_KEYS = {
    "agent_name": "agent-name",
    "project_name": "agent-project-name",
    "agent_version": "agent-version",
    "conversation_id": "conversation-id",
    "authentication_identity_client_id": "agent-authentication-identity-client-id",
    "foundry_resource_override": "foundry-resource-override",
}


def build_url(
    endpoint: str,
    *,
    api_version: str,
    model: str | None = None,
    agent: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
) -> str:
    """The realtime URL as the service's SDK builds it.

    ``https`` → ``wss`` and ``http`` → ``ws`` (``ws``/``wss`` kept), the endpoint path with
    its trailing ``/`` removed plus ``/voice-live/realtime``, then ``api-version``,
    ``model`` or the agent parameters, then ``query`` (which overrides), then parameters
    already in the endpoint only where not set yet.
    """
    try:
        parts = urlsplit(endpoint.strip())
    except ValueError as exc:
        raise TransportError(f"endpoint is not a valid URL ({exc}): {redact_url(endpoint)!r}") from None
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise TransportError(
            f"endpoint must start with https://, http://, wss:// or ws://, got {redact_url(endpoint)!r}"
        )
    if not parts.netloc:
        raise TransportError(f"endpoint has no host: {redact_url(endpoint)!r}")
    path = parts.path.rstrip("/") + REALTIME_PATH
    params: dict[str, str] = {"api-version": api_version}
    if model is not None:
        params["model"] = model
    for key, value in (agent or {}).items():
        params[_AGENT_KEYS.get(key, key)] = value
    params.update(query or {})
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        params.setdefault(key, value)
    return urlunsplit((scheme, parts.netloc, path, urlencode(params), ""))


#: Query parameters that ``api-version=v1`` (GA) takes as handshake headers instead.
_QUERY_HEADERS = {
    "api-key": "api-key",
    "api_key": "api-key",
    "apikey": "api-key",
    "authorization": "Authorization",
    "features": "VoiceLive-Features",
}


def query_to_headers(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its credential and feature query parameters, and those as headers.

    For ``api-version=v1`` credentials go only in headers (``api-key`` / ``Authorization``) and
    preview features (``features=client_ec_reference:true``) in the ``VoiceLive-Features``
    header. Other parameters stay in the URL in their order. Never raises for a URL that
    :func:`build_url` produced.
    """
    parts = urlsplit(url)
    kept: list[tuple[str, str]] = []
    headers: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        header = _QUERY_HEADERS.get(key.lower())
        if header is None:
            kept.append((key, value))
        elif header == "VoiceLive-Features" and header in headers:
            headers[header] += "," + value
        else:
            headers.setdefault(header, value)
            if header != "VoiceLive-Features":
                register_secret(value)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept), parts.fragment)), headers


_SECRET_QUERY_KEYS = frozenset(
    {
        "api-key",
        "api_key",
        "apikey",
        "key",
        "authorization",
        "access_token",
        "token",
        "sig",
        "code",
        "password",
    }
)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds (a fraction accepted too) or an
    HTTP-date, counted from ``now`` (epoch seconds; a date in the past is 0). None when absent or
    unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT
            when = when.replace(tzinfo=datetime.timezone.utc)
        return max(0.0, when.timestamp() - now)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def redact_url(url: str) -> str:
    """The URL with every credential masked: ``user:password@``, secret query parameters
    (``api-key``, ``Authorization``, ``access_token``, ``token``, ``sig``…), the fragment, and
    any live secret value (:func:`~voicelive_nb.auth.register_secret`). Never raises."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = "***@" + netloc.rsplit("@", 1)[1]
        pairs = [
            (k, "***" if k.lower() in _SECRET_QUERY_KEYS or "token" in k.lower() else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        query = urlencode(pairs, safe="*")
        shown = urlunsplit((parts.scheme, netloc, parts.path, query, "***" if parts.fragment else ""))
    except ValueError:  # not a URL at all (a bad IPv6 literal...): mask what looks secret
        shown = url
    return redact_text(shown)


class _RedactingWebsocketsLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The ``logger=`` given to websockets: frames and handshake lines with credentials masked.

    websockets elides long frames in its log lines, which could cut a secret in two so that no
    mask matches; here each frame's whole text is masked first and only then shortened.
    """

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        shown = tuple(_frame_text(a) if isinstance(a, Frame) else a for a in args)
        self.logger.log(level, msg, *shown, **kwargs)


def _frame_text(frame: Frame) -> str:
    try:
        data = bytes(frame.data)
        if frame.opcode is Opcode.CLOSE and len(data) >= 2:
            text = f"{int.from_bytes(data[:2], 'big')} {data[2:].decode('utf-8', 'replace')}"
        else:
            text = data.decode("utf-8", "replace")
        text = redact_text(text)
        if len(text) > 75:
            text = text[:48] + "..." + text[-24:]
        return f"{frame.opcode.name} {text!r} [{len(data)} bytes]"
    except Exception:
        return f"{getattr(frame.opcode, 'name', '?')} [frame]"


_WEBSOCKETS_LOG = _RedactingWebsocketsLog(logging.getLogger("websockets.client"), {})


T = TypeVar("T")


def _drop_connection(ws: ClientConnection) -> None:
    """Abort a connection that was made just as its caller was cancelled (nobody will close it)."""
    transport = getattr(ws, "transport", None)
    if transport is not None:
        transport.abort()


async def wait_bounded(
    awaitable: Awaitable[T], timeout: float | None, *, on_lost: Callable[[T], object] | None = None
) -> T:
    """``asyncio.wait_for`` that never loses the caller's cancellation.

    Python 3.11's ``wait_for`` returns the result when the awaited operation finishes in the same
    loop iteration as the caller is cancelled, and the ``CancelledError`` is lost (fixed in 3.12).
    A cancelled sweep worker then went on and finished its replay (the pump's last send, the
    session.update barrier, the handshake and the close were each such a wait). Here the caller's
    cancellation always propagates (the operation is cancelled and awaited first); a timeout
    cancels the operation and raises ``asyncio.TimeoutError``. ``on_lost`` is given a result that
    arrived with the cancellation and so is never returned (e.g. to drop a connection just made).
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
        if on_lost is not None and not task.cancelled() and task.exception() is None:
            on_lost(task.result())
        raise
    if not done:
        task.cancel()
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is None:
            return task.result()  # finished while being cancelled: the result is not lost either
        raise asyncio.TimeoutError
    return task.result()


class Transport:
    """One open WebSocket to the service (text frames of JSON), with deadlines on everything.

    - ``send`` blocked longer than ``send_timeout_s`` (the peer stopped reading and the TCP
      buffers are full) gives up on the connection: the TCP transport is aborted and this and
      every later ``send``/``recv`` raise :class:`ConnectionClosed` whose reason says so
      (also in :attr:`failure`).
    - A keepalive ping every ``ping_interval_s``; a ping that cannot be written within
      ``send_timeout_s``, or whose pong does not come within ``ping_timeout_s``, gives up the
      same way. A silent peer that answers pings is fine.
    - ``close`` returns within ``close_timeout_s`` (then aborts the TCP connection) and, when
      the caller is cancelled, aborts and lets the cancellation through.
    """

    def __init__(
        self,
        connection: ClientConnection,
        url: str,
        request_id: str,
        *,
        send_timeout_s: float | None = 10.0,
        ping_interval_s: float | None = 20.0,
        ping_timeout_s: float = 20.0,
        close_timeout_s: float = 3.0,
    ) -> None:
        self._ws = connection
        self._url = url
        self.request_id = request_id
        self.send_timeout_s = send_timeout_s
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.close_timeout_s = close_timeout_s
        #: Why this side gave up on the peer (``None`` while it has not).
        self.failure: str | None = None
        #: Keepalive pings answered so far.
        self.pongs = 0
        #: Whether :meth:`close` has started, and whether the TCP connection was dropped.
        self.closing = False
        self.aborted = False
        self._keepalive: asyncio.Task[None] | None = None
        if ping_interval_s is not None:
            self._keepalive = asyncio.get_running_loop().create_task(
                self._keep_alive(ping_interval_s), name="voicelive-keepalive"
            )

    @property
    def url(self) -> str:
        """The URL, credentials masked."""
        return redact_url(self._url)

    @classmethod
    async def connect(
        cls,
        url: str,
        headers: Mapping[str, str],
        *,
        connect_timeout_s: float = 10.0,
        credential_kind: str = "none",
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        send_timeout_s: float | None = 10.0,
        ping_interval_s: float | None = 20.0,
        ping_timeout_s: float = 20.0,
        close_timeout_s: float = 3.0,
    ) -> Transport:
        """Open the connection; translate handshake failures into this package's errors."""
        request_id = str(uuid.uuid4())
        all_headers = {**headers, "x-ms-client-request-id": request_id}
        for value in headers.values():  # the bearer token / key, wherever it might be logged
            register_secret(value.split(" ", 1)[1] if value.lower().startswith("bearer ") else value)
        parts = urlsplit(url)
        if parts.password:
            register_secret(parts.password)
            register_secret(f"{parts.username}:{parts.password}")
        for key, value in parse_qsl(parts.query):
            if key.lower() in _SECRET_QUERY_KEYS or "token" in key.lower():
                register_secret(value)
        install_log_redaction()
        shown = redact_url(url)
        try:
            ws = await wait_bounded(
                connect(
                    url,
                    additional_headers=all_headers,
                    user_agent_header=USER_AGENT,
                    compression=None,
                    max_size=max_message_bytes,
                    open_timeout=None,
                    proxy=None,
                    ping_interval=None,  # our own keepalive, which has a deadline on writing the ping
                    ping_timeout=None,
                    close_timeout=close_timeout_s,
                    logger=_WEBSOCKETS_LOG,
                ),
                timeout=connect_timeout_s,
                on_lost=_drop_connection,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body.decode("utf-8", "replace").strip()[:300] if exc.response.body else ""
            body = redact_text(body)
            if status in (401, 403):
                tried = {
                    "api-key": "an API key (api-key header)",
                    "entra-token": "a Microsoft Entra ID token (Authorization: Bearer)",
                }.get(credential_kind, "no credential")
                raise AuthenticationError(
                    f"the service refused the connection with HTTP {status} using {tried} at {shown}"
                    + (f": {body}" if body else "")
                    + "; check the key or the token's role assignment",
                    status=status,
                    credential_kind=credential_kind,
                ) from None
            wait_s = parse_retry_after(exc.response.headers.get("Retry-After"), time.time())
            raise HandshakeRefused(
                f"handshake with {shown} failed: HTTP {status}"
                + (f": {body}" if body else "")
                + (f" (the service asks to retry after {wait_s:g} s)" if wait_s is not None else ""),
                status=status,
                retry_after_s=wait_s,
            ) from None
        except asyncio.TimeoutError:
            raise ConnectTimeout(
                f"no answer from {shown} within {connect_timeout_s:g} s; check the endpoint and network"
            ) from None
        except InvalidHandshake as exc:
            raise TransportError(f"handshake with {shown} failed: {redact_text(str(exc))}") from None
        except OSError as exc:
            raise TransportError(
                f"cannot connect to {shown}: {redact_text(str(exc.strerror or exc))}"
            ) from None
        return cls(
            ws,
            url,
            request_id,
            send_timeout_s=send_timeout_s,
            ping_interval_s=ping_interval_s,
            ping_timeout_s=ping_timeout_s,
            close_timeout_s=close_timeout_s,
        )

    async def send(self, text: str) -> None:
        """Send one text frame; a closed connection raises :class:`ConnectionClosed`."""
        if self.failure is not None:
            raise ConnectionClosed(None, self.failure)
        try:
            await wait_bounded(self._ws.send(text), self.send_timeout_s)
        except asyncio.TimeoutError:
            self._give_up(
                f"the service stopped reading: a send was blocked for {self.send_timeout_s:g} s "
                "(its receive buffer is full); the connection was dropped, reconnect to go on"
            )
            raise ConnectionClosed(None, self.failure or "") from None
        except WsConnectionClosed as exc:
            raise self._closed(exc) from None

    async def recv(self) -> str | bytes:
        """The next message; a closed connection raises :class:`ConnectionClosed`."""
        try:
            return await self._ws.recv()
        except WsConnectionClosed as exc:
            raise self._closed(exc) from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close politely, within ``close_timeout_s``, else drop the TCP connection (idempotent).

        Never raises, except the caller's own cancellation (after aborting the connection).
        """
        self._stop_keepalive()
        self.closing = True
        try:
            await wait_bounded(self._ws.close(code, reason), self.close_timeout_s)
        except asyncio.CancelledError:
            self.abort()
            raise
        except BaseException:  # timed out, or the peer is already gone: closing must not raise
            self.abort()

    @property
    def connection_state(self) -> str:
        """``connecting``, ``open``, ``closing`` or ``closed`` (websockets' state of the socket)."""
        state = getattr(self._ws, "state", None)
        return str(getattr(state, "name", "CLOSED")).lower()

    def tasks(self) -> list[asyncio.Task[Any]]:
        """This connection's background tasks still running (keepalive pings, websockets' own)."""
        found = [self._keepalive, getattr(self._ws, "keepalive_task", None)]
        return [t for t in found if isinstance(t, asyncio.Task) and not t.done()]

    async def wait_closed(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until the TCP connection is closed; never raises."""
        wait = getattr(self._ws, "wait_closed", None)
        if wait is not None:
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                await asyncio.wait_for(wait(), timeout=timeout)

    def abort(self) -> None:
        """Drop the TCP connection at once (no close handshake; idempotent)."""
        self._stop_keepalive()
        transport = getattr(self._ws, "transport", None)
        if transport is not None:
            # also when already closing: a graceful close may be stuck behind a full buffer
            transport.abort()
            self.aborted = True

    def buffered_bytes(self) -> int:
        """Bytes written but not yet taken by the operating system (grows when the peer stops reading)."""
        transport = getattr(self._ws, "transport", None)
        return int(transport.get_write_buffer_size()) if transport is not None else 0

    def _give_up(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
        self.abort()

    def _stop_keepalive(self) -> None:
        task, self._keepalive = self._keepalive, None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    async def _keep_alive(self, interval: float) -> None:
        try:
            while True:
                await asyncio.sleep(interval)  # the keepalive period, not a synchronisation
                try:
                    pong = await asyncio.wait_for(self._ws.ping(), self.send_timeout_s)
                except asyncio.TimeoutError:
                    self._give_up(
                        f"the service stopped reading: a keepalive ping could not be sent for "
                        f"{self.send_timeout_s:g} s; the connection was dropped, reconnect to go on"
                    )
                    return
                try:
                    await asyncio.wait_for(pong, self.ping_timeout_s)
                    self.pongs += 1
                except asyncio.TimeoutError:
                    self._give_up(
                        f"the service stopped answering: no pong within {self.ping_timeout_s:g} s "
                        "of a keepalive ping; the connection was dropped, reconnect to go on"
                    )
                    return
        except asyncio.CancelledError:
            raise
        except Exception:  # closed meanwhile: the reader reports that
            return

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    @property
    def close_reason(self) -> str | None:
        return self._ws.close_reason

    def _closed(self, exc: WsConnectionClosed) -> ConnectionClosed:
        if self.failure is not None:
            return ConnectionClosed(None, self.failure)
        frame = exc.rcvd or exc.sent
        if frame is None:
            return ConnectionClosed(None, "connection lost without a close frame (network or server crash)")
        return ConnectionClosed(frame.code, redact_text(frame.reason))

    def __repr__(self) -> str:
        try:
            return f"<Transport {self.url}>"
        except Exception:
            return "<Transport>"


# --- the interface a session needs of its connection, and the factory that opens one ---------------


@dataclass(frozen=True)
class ConnectRequest:
    """Everything a transport factory needs to open one connection (the handshake's inputs).

    ``headers`` carry the credential, so they are left out of the repr (and the URL is masked).
    """

    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    connect_timeout_s: float = 10.0
    credential_kind: str = "none"
    max_message_bytes: int = MAX_MESSAGE_BYTES
    send_timeout_s: float | None = 10.0
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float = 20.0
    close_timeout_s: float = 3.0

    def __repr__(self) -> str:
        return f"ConnectRequest({redact_url(self.url)!r}, headers=[{', '.join(sorted(self.headers))}])"


@runtime_checkable
class MessageTransport(Protocol):
    """What :class:`~voicelive_nb.session.Session` uses of its connection: text frames in and out,
    a bounded close, an abort, and a few facts for supervisors. :class:`Transport` (websockets)
    is one; :class:`voicelive_nb.testing.MemoryTransport` (an in-memory emulator) is another.

    ``recv``/``send`` on a closed connection raise :class:`~voicelive_nb.errors.ConnectionClosed`
    with the close code and reason; ``failure`` says why this side gave up, if it did.
    """

    @property
    def failure(self) -> str | None: ...

    @property
    def close_code(self) -> int | None: ...

    @property
    def close_reason(self) -> str | None: ...

    async def send(self, text: str) -> None: ...

    async def recv(self) -> str | bytes: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...

    async def wait_closed(self, timeout: float) -> None: ...

    @property
    def connection_state(self) -> str:
        """``connecting``, ``open``, ``closing`` or ``closed``."""
        ...

    def abort(self) -> None: ...

    def tasks(self) -> list[asyncio.Task[Any]]: ...

    def buffered_bytes(self) -> int: ...


#: Opens one connection: given the request, an open transport (or a VoiceLiveError).
TransportFactory = Callable[[ConnectRequest], Awaitable[MessageTransport]]


async def connect_websocket(request: ConnectRequest) -> Transport:
    """The default transport factory: a WebSocket to ``request.url`` (see :meth:`Transport.connect`)."""
    return await Transport.connect(
        request.url,
        request.headers,
        connect_timeout_s=request.connect_timeout_s,
        credential_kind=request.credential_kind,
        max_message_bytes=request.max_message_bytes,
        send_timeout_s=request.send_timeout_s,
        ping_interval_s=request.ping_interval_s,
        ping_timeout_s=request.ping_timeout_s,
        close_timeout_s=request.close_timeout_s,
    )


#: Typed so that mypy checks that :class:`Transport` satisfies :class:`MessageTransport`.
DEFAULT_TRANSPORT_FACTORY: TransportFactory = connect_websocket


async def open_transport(factory: TransportFactory | None, request: ConnectRequest) -> MessageTransport:
    """Open a connection with ``factory`` (the WebSocket one when None).

    A factory's own failure that is not already one of this package's errors becomes a
    :class:`~voicelive_nb.errors.TransportError` naming the factory (its text masked); a result
    that is not a transport is an :class:`~voicelive_nb.errors.InvalidType`. Cancellation passes.
    """
    if factory is None:
        return await connect_websocket(request)
    name = getattr(factory, "__qualname__", None) or type(factory).__name__
    try:
        transport = await factory(request)
    except VoiceLiveError:
        raise
    except Exception as exc:
        text = redact_text(str(exc))
        raise TransportError(
            f"the transport factory {name} failed: {type(exc).__name__}" + (f": {text}" if text else "")
        ) from exc
    if not isinstance(transport, MessageTransport):
        raise InvalidType(
            f"the transport factory {name} returned a {type(transport).__name__}, which is not a transport "
            "(it needs send, recv, close, wait_closed, abort, tasks, buffered_bytes, failure, close_code)"
        )
    return transport


def describe_close(code: int | None, reason: str | None) -> str:
    """Human text for a close code, e.g. ``1009 message too big``."""
    names: dict[int | None, str] = {
        None: "no close frame",
        1000: "normal closure",
        1001: "going away",
        1006: "abnormal closure",
        1008: "policy violation",
        1009: "message too big",
        1011: "server error",
    }
    text = names.get(code, f"code {code}")
    label = f"{code} {text}" if code is not None else text
    return f"{label}: {reason}" if reason else label


__all__ = [
    "DEFAULT_TRANSPORT_FACTORY",
    "MAX_MESSAGE_BYTES",
    "REALTIME_PATH",
    "ConnectRequest",
    "MessageTransport",
    "Transport",
    "TransportFactory",
    "build_url",
    "connect_websocket",
    "describe_close",
    "open_transport",
    "parse_retry_after",
    "redact_url",
    "wait_bounded",
]
