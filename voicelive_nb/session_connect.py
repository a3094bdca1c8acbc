"""How a :class:`~voicelive_nb.session.Session` reaches the service, and how it lets go.

:class:`Connector` owns the way in: the built-in emulator it may start, the realtime URL (the
client echo reference feature added, credentials moved to headers for ``api-version=v1``), the
credential and its headers, and the transport opened with them. It keeps what connecting
found (the URL, the emulator's URL, the credential); the session keeps the transport.

:class:`Cleanup` runs the session's closing steps, each bounded by ``close_timeout_s``, so a
hanging step cannot hang ``close()``; a caller's cancellation is remembered and re-raised by
the session at the end, after every step had its fast path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .auth import (
    ApiKeyCredential,
    Credential,
    HeaderCredential,
    Secret,
    install_log_redaction,
    make_credential,
    register_secret,
    secrets_in,
)
from .connection import ConnectionOptions
from .errors import TransportError
from .protocol.config import CLIENT_EC_FEATURE
from .session_audio import client_ec
from .session_events import reason
from .transport import (
    ConnectRequest,
    MessageTransport,
    build_url,
    open_transport,
    query_to_headers,
    wait_bounded,
)

log = logging.getLogger("voicelive_nb.session")

#: The key the emulator is started with when a session starts it itself.
EMULATOR_KEY = "voicelive-nb-emulator"
#: The session's timeouts a connection request carries (the session's attributes of these names).
TIMEOUTS = ("connect_timeout_s", "send_timeout_s", "ping_interval_s", "ping_timeout_s", "close_timeout_s")


class Connector:
    """The way from a session's settings to an open transport (see the module doc)."""

    def __init__(self, options: ConnectionOptions) -> None:
        self.options = options
        #: The realtime URL connected to (unmasked: show it with ``redact_url``).
        self.url: str | None = None
        #: The built-in emulator's URL, when the session started one.
        self.emulator_url: str | None = None
        self.credential: Credential | None = None

    async def open(
        self,
        stack: contextlib.AsyncExitStack,
        settings: Any,
        config: Any,
        *,
        use_emulator: bool,
        wire_shape: str,
        timeouts: Mapping[str, Any],
    ) -> MessageTransport:
        """Start the emulator if asked, build the URL and credential, open the transport.

        What must be undone (the emulator, the credential) is pushed onto ``stack``.
        """
        endpoint = settings.endpoint
        if use_emulator:
            endpoint = await self._start_emulator(stack)
        elif endpoint is None:
            raise TransportError(
                "no endpoint configured: pass endpoint=..., set AZURE_VOICE_LIVE_ENDPOINT (environment or .env), "
                "or use emulator='auto' to run the built-in emulator"
            )
        url = build_url(
            endpoint,
            api_version=settings.api_version,
            model=settings.model,
            agent=settings.agent,
            query=connect_query(self.options.query, client_ec(config)),
        )
        moved: dict[str, str] = {}
        bare, in_query = query_to_headers(url)
        if wire_shape == "ga":  # v1: credentials and preview features only in headers
            url, moved = bare, in_query
        self.url = url
        credential = self._credential(settings.api_key, in_query, bool(moved))
        stack.push_async_callback(credential.aclose)
        for secret in secrets_in(config.to_dict()):
            register_secret(secret)
        install_log_redaction()  # after the credential's library (azure.*) is imported
        headers = {**moved, **await credential.headers()}
        request = ConnectRequest(url, headers, credential_kind=credential.kind, **timeouts)
        return await open_transport(self.options.transport_factory, request)

    async def _start_emulator(self, stack: contextlib.AsyncExitStack) -> str:
        from .emulator.server import run_emulator

        options = {"api_key": EMULATOR_KEY, **self.options.emulator_options}
        emu = await stack.enter_async_context(run_emulator(**options))
        self.emulator_url = emu.url
        self.credential = ApiKeyCredential(options["api_key"] or EMULATOR_KEY)
        log.info("started the built-in emulator at %s", emu.url)
        return str(emu.url)

    def _credential(
        self, api_key: str | Secret | None, in_query: Mapping[str, str], as_headers: bool
    ) -> Credential:
        """The emulator's key, the endpoint's own credential, or the one configured."""
        if self.credential is None:
            url_auth = {k: v for k, v in in_query.items() if k in ("api-key", "Authorization")}
            if url_auth and api_key is None and self.options.credential is None:
                # the endpoint carries the credential: as headers for v1, left in the URL otherwise
                kind = "api-key" if "api-key" in url_auth else "entra-token"
                self.credential = HeaderCredential(url_auth if as_headers else {}, kind=kind)
            else:
                self.credential = make_credential(api_key=api_key, credential=self.options.credential)
        return self.credential


def connect_query(query: Mapping[str, str], with_client_ec: bool) -> dict[str, str]:
    """The extra query parameters: the caller's, plus the client echo reference feature."""
    query = dict(query)
    if with_client_ec:
        features = [f.strip() for f in query.get("features", "").split(",") if f.strip()]
        if CLIENT_EC_FEATURE not in features:
            features.append(CLIENT_EC_FEATURE)
        query["features"] = ",".join(features)
    return query


class Cleanup:
    """One closing of a session: steps bounded by ``bound`` seconds, a cancellation remembered.

    Once :attr:`cancelled`, the session takes each later step's fast path (the TCP connection
    dropped rather than closed politely), so cleanup still happens.
    """

    def __init__(self, bound: float) -> None:
        self.bound = bound
        self.cancelled = False

    async def run(self, step: Callable[[], Awaitable[Any]], what: str, *, extra_s: float = 0.0) -> None:
        """Await ``step()`` for at most the bound; a failure is logged as ``what failed``."""
        try:
            await wait_bounded(step(), self.bound + extra_s)
        except asyncio.CancelledError:
            self.cancelled = True
        except Exception as exc:
            log.warning("%s failed: %s", what, reason(exc))

    async def guard(self, step: Callable[[], Awaitable[Any]]) -> None:
        """Await a step that bounds itself and never fails; only a cancellation is caught."""
        try:
            await step()
        except asyncio.CancelledError:
            self.cancelled = True

    def call(self, step: Callable[[], Any], what: str) -> None:
        """Run a synchronous step; a failure is logged as ``what failed``."""
        try:
            step()
        except Exception as exc:
            log.warning("%s failed: %s", what, reason(exc))

    async def finish(self, tasks: list[asyncio.Task[Any]]) -> None:
        """Wait (bounded) for ``tasks`` to end; a cancellation of this wait is remembered."""
        if not tasks:
            return
        try:
            await asyncio.wait(tasks, timeout=self.bound)
        except asyncio.CancelledError:
            self.cancelled = True
