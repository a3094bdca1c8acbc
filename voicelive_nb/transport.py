"""The WebSocket edge: URL building, the handshake, and text frames in and out.

Only this module imports ``websockets``. Its errors become this package's own:
:class:`~voicelive_nb.errors.AuthenticationError` for a 401/403 handshake,
:class:`~voicelive_nb.errors.ConnectTimeout`, :class:`~voicelive_nb.errors.ConnectionClosed`
with the close code and reason, and :class:`~voicelive_nb.errors.TransportError` otherwise.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.version import version as websockets_version

from ._version import __version__
from .errors import AuthenticationError, ConnectionClosed, ConnectTimeout, TransportError

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
    parts = urlsplit(endpoint.strip())
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise TransportError(f"endpoint must start with https://, http://, wss:// or ws://, got {endpoint!r}")
    if not parts.netloc:
        raise TransportError(f"endpoint has no host: {endpoint!r}")
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


def redact_url(url: str) -> str:
    """The URL with secret query parameters (``api-key``, ``Authorization``) masked."""
    parts = urlsplit(url)
    pairs = [
        (k, "***" if k.lower() in ("api-key", "authorization", "access_token") else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(pairs), ""))


class Transport:
    """One open WebSocket to the service (text frames of JSON)."""

    def __init__(self, connection: ClientConnection, url: str, request_id: str) -> None:
        self._ws = connection
        self.url = url
        self.request_id = request_id

    @classmethod
    async def connect(
        cls,
        url: str,
        headers: Mapping[str, str],
        *,
        connect_timeout_s: float = 10.0,
        credential_kind: str = "none",
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> Transport:
        """Open the connection; translate handshake failures into this package's errors."""
        request_id = str(uuid.uuid4())
        all_headers = {**headers, "x-ms-client-request-id": request_id}
        shown = redact_url(url)
        try:
            ws = await asyncio.wait_for(
                connect(
                    url,
                    additional_headers=all_headers,
                    user_agent_header=USER_AGENT,
                    compression=None,
                    max_size=max_message_bytes,
                    open_timeout=None,
                    proxy=None,
                    ping_interval=20,
                    ping_timeout=20,
                    close_timeout=5,
                ),
                timeout=connect_timeout_s,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body.decode("utf-8", "replace").strip()[:300] if exc.response.body else ""
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
            raise TransportError(
                f"handshake with {shown} failed: HTTP {status}" + (f": {body}" if body else "")
            ) from None
        except asyncio.TimeoutError:
            raise ConnectTimeout(
                f"no answer from {shown} within {connect_timeout_s:g} s; check the endpoint and network"
            ) from None
        except InvalidHandshake as exc:
            raise TransportError(f"handshake with {shown} failed: {exc}") from None
        except OSError as exc:
            raise TransportError(f"cannot connect to {shown}: {exc.strerror or exc}") from None
        return cls(ws, url, request_id)

    async def send(self, text: str) -> None:
        """Send one text frame; a closed connection raises :class:`ConnectionClosed`."""
        try:
            await self._ws.send(text)
        except WsConnectionClosed as exc:
            raise self._closed(exc) from None

    async def recv(self) -> str | bytes:
        """The next message; a closed connection raises :class:`ConnectionClosed`."""
        try:
            return await self._ws.recv()
        except WsConnectionClosed as exc:
            raise self._closed(exc) from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close politely (idempotent)."""
        try:
            await self._ws.close(code, reason)
        except Exception:  # the peer may already be gone; closing must not raise
            pass

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    @property
    def close_reason(self) -> str | None:
        return self._ws.close_reason

    @staticmethod
    def _closed(exc: WsConnectionClosed) -> ConnectionClosed:
        frame = exc.rcvd or exc.sent
        if frame is None:
            return ConnectionClosed(None, "connection lost without a close frame (network or server crash)")
        return ConnectionClosed(frame.code, frame.reason)

    def __repr__(self) -> str:
        return f"<Transport {redact_url(self.url)}>"


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


__all__ = ["MAX_MESSAGE_BYTES", "REALTIME_PATH", "Transport", "build_url", "describe_close", "redact_url"]
