"""``Session``: one live Voice Live conversation over asyncio, headless.

::

    async with Session(SessionConfig.server_vad(), endpoint=url, api_key=key,
                       source=WavSource("question.wav"), sink=WavSink("reply.wav")) as s:
        done = await s.wait_for("response.done", timeout=30)

On entry the session connects, waits for ``session.created``, sends the configuration
as one ``session.update`` and waits for ``session.updated``. Microphone-like audio from
``source`` is streamed in 20 ms frames; the assistant's audio goes to ``sink``; every event
is fed to a pure :class:`~voicelive_nb.protocol.state.SessionProtocol`, to ``on(type)``
handlers and to waiters, and optionally to a :class:`~voicelive_nb.recording.Recorder`.

Barge-in: when the service reports ``input_audio_buffer.speech_started`` while assistant
audio is unplayed or a response is running, the sink is flushed at once and
``conversation.item.truncate`` is sent with what was actually played of that item, clamped
to what was received — unless the service truncates by itself (``auto_truncate``).

Nothing in the background fails silently: a reader or streaming failure sets
:attr:`Session.status` to ``failed: <reason>``, is logged, and is raised by every pending
and later :meth:`Session.wait_for`.

Nothing the peer sends ends the session: a message that is not a valid event, an audio delta
that is not base64 or has an odd byte count, any text (lone surrogates included) and any
nesting depth becomes a counted :class:`~voicelive_nb.protocol.events.ProtocolWarning`
(:attr:`Session.protocol_warnings`, logged once per kind) and the reader goes on.
Nothing the peer does hangs it: a send blocked longer than ``send_timeout_s`` (the peer
stopped reading), or a keepalive ping unanswered for ``ping_timeout_s``, fails the session
with a reason that says so; :meth:`Session.close` returns within about ``close_timeout_s``
and lets a caller's cancellation through.

Secrets: the API key, bearer token, MCP header values and URL credentials are masked in every
log record of ``voicelive_nb.*``, ``websockets.*`` and ``azure.*``, in reprs, status text,
error messages and recordings.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audio.base import AudioSink, AudioSource
from .auth import (
    ApiKeyCredential,
    Credential,
    HeaderCredential,
    Secret,
    install_log_redaction,
    load_settings,
    make_credential,
    redact_text,
    register_secret,
    secrets_in,
)
from .errors import (
    ConfigError,
    ConnectionClosed,
    ProtocolError,
    ServerError,
    TransportError,
    VoiceLiveError,
    WaitTimeout,
)
from .protocol.codec import decode_server_event, encode_audio_append, event_to_dict
from .protocol.config import (
    CLIENT_EC_FEATURE,
    SERVER_ONLY_KEYS,
    SessionConfig,
    client_echo_reference_problem,
    config_warnings,
)
from .protocol.events import ProtocolWarning, ResponseAudioDelta
from .protocol.state import SessionProtocol
from .protocol.wire import (
    canonical_type,
    encode_client_event,
    is_ga_session,
    session_from_wire,
    shape_for_api_version,
)
from .tools import Tool, ToolCall, ToolRunner
from .transport import Transport, build_url, describe_close, query_to_headers, redact_url, wait_bounded

log = logging.getLogger("voicelive_nb.session")

Handler = Callable[[Any], Any]

#: The key the emulator is started with when a session starts it itself.
EMULATOR_KEY = "voicelive-nb-emulator"
#: Default byte budget of the event history (:attr:`Session.events`).
MAX_EVENT_BYTES = 24 * 2**20
#: How many distinct kinds of protocol warning are logged (each once); later kinds are only counted.
_MAX_WARNING_KINDS = 64


class _Waiter:
    __slots__ = ("future", "predicate", "type")

    def __init__(
        self, type_: str, predicate: Callable[[Any], bool] | None, future: asyncio.Future[Any]
    ) -> None:
        self.type = type_
        self.predicate = predicate
        self.future = future


class Session:
    """A live conversation with Voice Live (or the built-in emulator)."""

    def __init__(
        self,
        config: SessionConfig | Mapping[str, Any] | None = None,
        *,
        endpoint: str | None = None,
        api_key: str | Secret | None = None,
        credential: Any = None,
        model: str | None = None,
        api_version: str | None = None,
        wire_shape: str | None = None,
        agent: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        source: AudioSource | None = None,
        sink: AudioSink | None = None,
        record: str | Path | None = None,
        frame_ms: int = 20,
        connect_timeout_s: float = 10.0,
        setup_timeout_s: float = 15.0,
        emulator: bool | str = False,
        emulator_options: Mapping[str, Any] | None = None,
        barge_in: bool = True,
        close_audio: bool = True,
        max_events: int = 20_000,
        max_event_bytes: int = MAX_EVENT_BYTES,
        send_timeout_s: float = 10.0,
        ping_interval_s: float = 20.0,
        ping_timeout_s: float = 20.0,
        close_timeout_s: float = 3.0,
        tools: Sequence[Callable[..., Any] | Tool] = (),
        dotenv: bool = True,
    ) -> None:
        """See the module doc. The limits:

        ``max_events`` / ``max_event_bytes``: the event history (:attr:`events`, what
        :meth:`wait_for` looks back into) keeps at most this many events and about this many
        bytes (an event counts its wire size; a played audio delta also its decoded PCM), the
        oldest dropped first. Default 20,000 events and 24 MB (~4 minutes of 24 kHz reply audio).
        ``send_timeout_s``: a send blocked this long means the peer stopped reading; the session
        fails with that reason. ``ping_interval_s`` / ``ping_timeout_s``: keepalive pings, and how
        long a pong may take before the peer is declared gone. ``close_timeout_s``: the bound on
        the closing handshake in :meth:`close`, after which the TCP connection is dropped.
        """
        if config is None:
            config = SessionConfig.server_vad()
        elif isinstance(config, Mapping):
            config = SessionConfig.from_dict(dict(config))
        if not 10 <= frame_ms <= 200:
            raise ConfigError("frame_ms", frame_ms, "10 to 200 (milliseconds of audio per append)")
        if emulator not in (True, False, "auto"):
            raise ConfigError("emulator", emulator, "True, False or 'auto'")
        if not isinstance(max_events, int) or max_events < 1:
            raise ConfigError("max_events", max_events, "an integer of at least 1")
        if not isinstance(max_event_bytes, int) or max_event_bytes < 1:
            raise ConfigError("max_event_bytes", max_event_bytes, "an integer of at least 1 (bytes)")
        for name, value, low in (
            ("send_timeout_s", send_timeout_s, 0.01),
            ("ping_interval_s", ping_interval_s, 0.01),
            ("ping_timeout_s", ping_timeout_s, 0.01),
            ("close_timeout_s", close_timeout_s, 0.0),
            ("connect_timeout_s", connect_timeout_s, 0.01),
            ("setup_timeout_s", setup_timeout_s, 0.01),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= 3600:
                raise ConfigError(name, value, f"{low:g} to 3600 (seconds)")
        self.config: SessionConfig = config
        self.settings = load_settings(
            endpoint=endpoint,
            api_key=api_key,
            model=model,
            api_version=api_version,
            agent=agent,
            dotenv=dotenv,
        )
        if _client_ec(config):
            problem = client_echo_reference_problem(self.settings.api_version)
            if problem is not None:
                raise ConfigError("api_version", self.settings.api_version, problem)
        #: ``"preview"`` (dated api-versions) or ``"ga"`` (``api-version=v1``, or ``wire_shape=``).
        self.wire_shape: str = shape_for_api_version(self.settings.api_version, wire_shape)
        #: Model-aware advice about the configuration (logged at WARNING when it opens or updates).
        self.config_warnings: list[str] = []
        self._credential_arg = credential
        self._query = dict(query or {})
        self.source = source
        self.sink = sink
        self.record_dir = Path(record) if record is not None else None
        self.frame_ms = frame_ms
        self.connect_timeout_s = connect_timeout_s
        self.setup_timeout_s = setup_timeout_s
        self.use_emulator = wants_emulator(emulator, self.settings)
        self._emulator_options = dict(emulator_options or {})
        self.barge_in = barge_in
        self.close_audio = close_audio
        self.max_events = max_events
        self.max_event_bytes = max_event_bytes
        self.send_timeout_s = float(send_timeout_s)
        self.ping_interval_s = float(ping_interval_s)
        self.ping_timeout_s = float(ping_timeout_s)
        self.close_timeout_s = float(close_timeout_s)
        register_secret(self.settings.api_key)

        self.state = SessionProtocol()
        #: The Python functions the model may call, and the calls it made (:mod:`voicelive_nb.tools`).
        self.tools = ToolRunner(
            self._send_tool_event,
            tools,
            parallel=getattr(config, "parallel_tool_calls", True) is not False,
            on_change=self._tool_changed,
        )
        #: ``fn(call)`` for every change of a tool call (engine thread; keep it cheap).
        self.tool_listeners: list[Callable[[ToolCall], None]] = []
        self._status = "idle"
        self.emulator_url: str | None = None
        self._url: str | None = None
        #: Messages the reader could not use (not an event, a bad audio delta...): counted, skipped.
        self.protocol_warnings = 0
        #: What the latest of them was.
        self.last_protocol_warning: str | None = None
        self._warning_kinds: set[str] = set()
        self._malformed_created: ProtocolWarning | None = None
        self.errors: list[Any] = []
        self.handler_errors: list[BaseException] = []
        self.truncations: list[dict[str, Any]] = []
        self.bytes_sent = 0
        self.frames_sent = 0
        #: ``fn(pcm16)`` for every block of input audio sent (engine thread; keep it cheap).
        self.input_taps: list[Callable[[bytes], None]] = []
        #: ``fn(item_id, pcm16)`` for every block of assistant audio received (engine thread).
        self.output_taps: list[Callable[[str, bytes], None]] = []

        self._events: deque[tuple[float, Any]] = deque()
        self._event_sizes: deque[int] = deque()
        self._event_bytes = 0
        self._sent: deque[tuple[float, dict[str, Any]]] = deque(maxlen=max_events)
        self._event_count = 0
        self._cursors: dict[str, int] = {}
        self._handlers: dict[str, list[Handler]] = {}
        self._waiters: list[_Waiter] = []
        self._failure: BaseException | None = None
        self._closing = False
        self._close_started = False
        self._stack: contextlib.AsyncExitStack | None = None
        self._transport: Transport | None = None
        self._credential: Credential | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._recorder: Any = None
        self._playing_item: str | None = None
        self._output_format = "pcm16"
        self._sink_open = False
        self.source_done = asyncio.Event()

    @property
    def status(self) -> str:
        """``idle``, ``connecting``, ``connected``, ``closed`` or ``failed: <reason>`` (credentials masked)."""
        return self._status

    @status.setter
    def status(self, value: str) -> None:
        self._status = redact_text(str(value))

    @property
    def url(self) -> str | None:
        """The realtime URL connected to, credentials masked."""
        return redact_url(self._url) if self._url else None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Session:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect, configure, and start streaming the source (if any)."""
        if self.status not in ("idle",):
            raise VoiceLiveError(f"session cannot be opened again (status: {self.status})")
        if self.source is not None:
            self._check_reference_source(self.source)
        self.status = "connecting"
        self._stack = contextlib.AsyncExitStack()
        try:
            await self._connect()
            await self._configure()
        except BaseException as exc:
            self.status = f"failed: {_reason(exc)}"
            await self._shutdown()
            raise
        self.status = "connected"
        if self.source is not None:
            self.stream(self.source)

    async def _connect(self) -> None:
        assert self._stack is not None
        endpoint = self.settings.endpoint
        if self.use_emulator:
            from .emulator.server import run_emulator

            options = {"api_key": EMULATOR_KEY, **self._emulator_options}
            emu = await self._stack.enter_async_context(run_emulator(**options))
            self.emulator_url = endpoint = emu.url
            self._credential = ApiKeyCredential(options["api_key"] or EMULATOR_KEY)
            log.info("started the built-in emulator at %s", emu.url)
        elif endpoint is None:
            raise TransportError(
                "no endpoint configured: pass endpoint=..., set AZURE_VOICE_LIVE_ENDPOINT (environment or .env), "
                "or use emulator='auto' to run the built-in emulator"
            )
        url = build_url(
            endpoint,
            api_version=self.settings.api_version,
            model=self.settings.model,
            agent=self.settings.agent,
            query=self._connect_query(),
        )
        moved: dict[str, str] = {}
        bare, in_query = query_to_headers(url)
        if self.wire_shape == "ga":  # v1: credentials and preview features only in headers
            url, moved = bare, in_query
        self._url = url
        url_auth = {k: v for k, v in in_query.items() if k in ("api-key", "Authorization")}
        if self._credential is None:
            if url_auth and self.settings.api_key is None and self._credential_arg is None:
                # the endpoint carries the credential: as headers for v1, left in the URL otherwise
                self._credential = HeaderCredential(url_auth if moved else {}, kind=_auth_kind(url_auth))
            else:
                self._credential = make_credential(
                    api_key=self.settings.api_key, credential=self._credential_arg
                )
        self._stack.push_async_callback(self._credential.aclose)
        for secret in secrets_in(self.config.to_dict()):
            register_secret(secret)
        install_log_redaction()  # after the credential's library (azure.*) is imported
        headers = {**moved, **await self._credential.headers()}
        self._transport = await Transport.connect(
            self._url,
            headers,
            connect_timeout_s=self.connect_timeout_s,
            credential_kind=self._credential.kind,
            send_timeout_s=self.send_timeout_s,
            ping_interval_s=self.ping_interval_s,
            ping_timeout_s=self.ping_timeout_s,
            close_timeout_s=self.close_timeout_s,
        )
        if self.record_dir is not None:
            from .recording import Recorder

            self._recorder = Recorder(
                self.record_dir,
                input_sample_rate=self.config.input_sample_rate,
                output_sample_rate=self.config.output_sample_rate,
            )
            self._recorder.note("connected", url=self.url)
        self._reader = asyncio.get_running_loop().create_task(self._read_loop(), name="voicelive-reader")

    def _connect_query(self) -> dict[str, str]:
        """The extra query parameters: the caller's, plus the client echo reference feature."""
        query = dict(self._query)
        if _client_ec(self.config):
            features = [f.strip() for f in query.get("features", "").split(",") if f.strip()]
            if CLIENT_EC_FEATURE not in features:
                features.append(CLIENT_EC_FEATURE)
            query["features"] = ",".join(features)
        return query

    def _check_reference_source(self, source: AudioSource) -> None:
        """With client-reference echo cancellation the source must give stereo (mic, reference)."""
        if not _client_ec(self.config):
            return
        if not getattr(source, "reference_available", False) or not callable(
            getattr(source, "reference_frames", None)
        ):
            why = getattr(source, "reference_problem", None)
            raise ConfigError(
                "input_audio_echo_cancellation.reference_source",
                "client",
                f"a source that gives the echo reference ({type(source).__name__} "
                f"{why or 'cannot'}): MicrophoneSource(reference=speaker) with a SpeakerSink, or an "
                "EchoRoom; or use server echo cancellation",
            )

    async def _configure(self) -> None:
        try:
            await self.wait_for("session.created", timeout=self.setup_timeout_s)
        except WaitTimeout:
            if self._malformed_created is None:
                raise
        if self._malformed_created is not None and not any(
            e.type == "session.created" for _, e in self._events
        ):
            raise _malformed_created_error(self._malformed_created)
        self.config = self._with_tools(self.config)
        self._check_config()
        wire = self.config.to_dict()
        if wire:
            await self._send_update(wire)

    def _check_config(self) -> None:
        """Keep (and log at WARNING, each once) the model-aware advice about :attr:`config`;
        note at DEBUG which server-only keys of a server's session are not sent back."""
        try:
            found = config_warnings(self.config, self.settings.model)
        except Exception as exc:  # advice must never stop a session
            found = []
            log.debug("config_warnings failed: %s", _reason(exc))
        for text in found:
            if text not in self.config_warnings:
                log.warning("session configuration: %s", text)
        self.config_warnings = found
        server_only = getattr(self.config, "server_only", None)
        dropped = sorted(server_only()) if callable(server_only) else []
        if dropped:
            log.debug("not sending the server-only session keys %s", ", ".join(dropped))

    async def _send_update(self, wire: Mapping[str, Any]) -> Any:
        if "model" in wire:  # chosen when connecting (the URL's model=); the service refuses a change
            log.debug(
                "not sending model=%r in session.update: the model is the URL's (%s)",
                wire["model"],
                self.settings.model,
            )
            wire = {k: v for k, v in wire.items() if k != "model"}
        for secret in secrets_in(wire):
            register_secret(secret)
        before = len(self.errors)
        await self.send({"type": "session.update", "session": dict(wire)})
        event = await self.wait_for(
            "session.updated",
            timeout=self.setup_timeout_s,
            fail_on_error=True,
            errors_before=before,
        )
        return event

    async def close(self) -> None:
        """Stop streaming, close the connection, finish files (idempotent; also after :meth:`abort`)."""
        if self._close_started:
            return
        self._close_started = self._closing = True
        await self._shutdown()
        if not self.status.startswith("failed"):
            self.status = "closed"

    def connection_summary(self) -> ConnectionSummary:
        """Where this session connects and how, without secrets (see :class:`ConnectionSummary`)."""
        return connection_summary(
            self.settings,
            emulator=self.use_emulator,
            emulator_url=self.emulator_url,
            credential=self._credential_arg,
        )

    async def wait_closed(self) -> None:
        """Return once the connection has ended: the server closed it, it was lost, or :meth:`close` ran.

        Public so that a supervisor (``NotebookSession``) can race the end of the connection
        against its own stop signal without reading the session's private reader task. Does not
        close anything itself and never raises the reader's failure (``status`` tells it).
        """
        reader = self._reader
        if reader is None:
            return
        await asyncio.wait([reader])

    def abort(self) -> None:
        """Drop the TCP connection now (no closing handshake) and cancel the session's tasks.

        Synchronous and idempotent, for when a polite :meth:`close` hangs or there is no time
        for one; call :meth:`close` afterwards to finish the files and the audio.
        """
        self._closing = True
        if self._transport is not None:
            with contextlib.suppress(Exception):
                self._transport.abort()
        for task in (self._reader, self._pump, *tuple(self._tasks)):
            if task is not None and not task.done():
                task.cancel()

    def background_tasks(self) -> list[asyncio.Task[Any]]:
        """The session's own tasks still running: the reader, the audio pump, background sends,
        and the connection's keepalive."""
        tasks = [t for t in (self._reader, self._pump, *tuple(self._tasks)) if t is not None]
        if self._transport is not None:
            tasks.extend(self._transport.tasks())
        return [t for t in tasks if not t.done()]

    async def _shutdown(self) -> None:
        """Stop everything, each step bounded; a caller's cancellation is re-raised at the end.

        When cancelled, the remaining steps take their fast path (the TCP connection is
        dropped rather than closed politely), so cleanup still happens.
        """
        cancelled = False
        bound = max(self.close_timeout_s, 0.1)
        try:
            await wait_bounded(self.tools.aclose(), bound)
        except asyncio.CancelledError:
            cancelled = True
        except Exception as exc:
            log.warning("stopping the tool calls failed: %s", _reason(exc))
        tasks = [t for t in (self._pump, *self._tasks) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            try:
                await asyncio.wait(tasks, timeout=bound)
            except asyncio.CancelledError:
                cancelled = True
        self._closing = True
        if self._transport is not None:
            if cancelled:
                self._transport.abort()
            else:
                try:
                    await self._transport.close()  # bounded by close_timeout_s, never raises
                except asyncio.CancelledError:
                    cancelled = True
        if self._reader is not None and not self._reader.done():
            if not cancelled:
                try:
                    await asyncio.wait([self._reader], timeout=bound)
                except asyncio.CancelledError:
                    cancelled = True
            if not self._reader.done():
                self._reader.cancel()
        if self.source is not None and self.close_audio:
            try:
                await wait_bounded(self.source.aclose(), bound)
            except asyncio.CancelledError:
                cancelled = True
            except Exception as exc:
                log.warning("closing the audio source failed: %s", _reason(exc))
        if self.sink is not None and self._sink_open and self.close_audio:
            try:
                self.sink.close()
            except Exception as exc:
                log.warning("closing the audio sink failed: %s", _reason(exc))
        if self._recorder is not None:
            try:
                self._recorder.note("closed", status=self.status)
                self._recorder.close()
            except Exception as exc:
                log.warning("closing the recording failed: %s", _reason(exc))
        if self._stack is not None:
            stack, self._stack = self._stack, None
            try:
                await wait_bounded(stack.aclose(), bound + 5)
            except asyncio.CancelledError:
                cancelled = True
            except Exception as exc:
                log.warning("closing the credential/emulator failed: %s", _reason(exc))
        self._fail_waiters(self._failure or ConnectionClosed(1000, "session closed"))
        if cancelled:
            raise asyncio.CancelledError

    # ------------------------------------------------------------------ sending

    async def send(self, event: Any) -> None:
        """Send a client event (an event object or a wire dict)."""
        if self._transport is None:
            raise VoiceLiveError(f"session is not connected (status: {self.status})")
        wire = dict(event) if isinstance(event, Mapping) else event_to_dict(event)
        session = wire.get("session")
        if wire.get("type") == "session.update" and isinstance(session, Mapping) and is_ga_session(session):
            wire["session"] = session_from_wire(session)  # either shape in, the connection's shape out
        canonical = json.dumps(wire, separators=(",", ":"))
        text = canonical if self.wire_shape == "preview" else encode_client_event(wire, self.wire_shape)
        await self._transport.send(text)
        sent = wire if text is canonical else json.loads(text)
        self._sent.append((time.monotonic(), sent))
        with contextlib.suppress(Exception):
            from .protocol.codec import decode_client_event

            self.state.send(decode_client_event(canonical))
        if self._recorder is not None:
            self._recorder.record_sent(sent)

    async def append_audio(self, pcm16: bytes) -> None:
        """Append one block of PCM16 audio to the input buffer."""
        if self._transport is None:
            raise VoiceLiveError(f"session is not connected (status: {self.status})")
        await self._transport.send(encode_audio_append(pcm16))
        self.bytes_sent += len(pcm16)
        self.frames_sent += 1
        if self.input_taps:
            mono = _channel0(pcm16) if _client_ec(self.config) else pcm16
            for tap in self.input_taps:
                _call_tap(tap, mono)
        if self._recorder is not None:
            self._recorder.record_sent(
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm16).decode("ascii")}
            )

    async def update(self, config: SessionConfig | Mapping[str, Any] | None = None, **changes: Any) -> Any:
        """Change the live configuration with ``session.update``; returns ``session.updated``.

        Pass a whole :class:`SessionConfig`, a partial wire dict, or keyword changes
        (``update(instructions="Be brief")``). Only what differs is sent.
        """
        new = updated_config(self.config, config, changes)
        if _client_ec(new) != _client_ec(self.config) and self._transport is not None:
            raise ConfigError(
                "input_audio_echo_cancellation.reference_source",
                "client" if _client_ec(new) else "server",
                "the reference source chosen when the session opened (it is fixed for the session)",
            )
        delta = self.config.diff(new)
        self.config = new
        self._check_config()
        if not delta:
            return None
        return await self._send_update(delta)

    # ------------------------------------------------------------------ tools

    def tool(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout_s: float | None = 30.0,
    ) -> Any:
        """Register a Python function as a tool (usable as ``@session.tool`` or ``@session.tool(timeout_s=5)``).

        On a connected session the new tool list is sent with ``session.update`` in the
        background (a failure fails nothing but is logged and kept in :attr:`handler_errors`);
        use :meth:`add_tools` to wait for the service's confirmation.
        """
        from .tools import as_tool

        if fn is None:
            return lambda f: self.tool(f, name=name, description=description, timeout_s=timeout_s)
        registered = as_tool(fn, name=name, description=description, timeout_s=timeout_s)
        self.tools.add(registered)
        if self._transport is not None and not self._closing and self._status == "connected":
            self._spawn(self._sync_tools(), critical=False)
        return fn

    async def add_tools(self, *fns: Callable[..., Any] | Tool) -> Any:
        """Register tools and, when connected, send the new tool list; returns ``session.updated`` (or None)."""
        self.tools.add(*fns)
        if self._transport is None or self._closing:
            return None
        return await self._sync_tools()

    async def _sync_tools(self) -> Any:
        new = self._with_tools(self.config)
        delta = self.config.diff(new)
        self.config = new
        return await self._send_update(delta) if delta else None

    def _with_tools(self, config: SessionConfig) -> SessionConfig:
        """``config`` with the registered functions in its ``tools`` (a function of the same name replaced)."""
        defined = self.tools.definitions()
        if not defined:
            return config
        names = {d["name"] for d in defined}
        current = config.tools if isinstance(config.tools, (list, tuple)) else ()
        kept = [
            t
            for t in current
            if getattr(t, "name", None) not in names or getattr(t, "type", "") != "function"
        ]
        return config.replace(tools=[*kept, *defined])

    async def _send_tool_event(self, event: dict[str, Any]) -> None:
        await self.send(event)

    def _tool_changed(self, call: ToolCall) -> None:
        for listener in tuple(self.tool_listeners):
            try:
                listener(call)
            except Exception:
                log.exception("tool listener %r failed", listener)

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Every call the model made of a registered tool, oldest first."""
        return list(self.tools.calls)

    async def commit(self) -> None:
        await self.send({"type": "input_audio_buffer.commit"})

    async def clear_input(self) -> None:
        await self.send({"type": "input_audio_buffer.clear"})

    async def create_response(self, **response: Any) -> None:
        event: dict[str, Any] = {"type": "response.create"}
        if response:
            event["response"] = response
        await self.send(event)

    async def cancel_response(self) -> None:
        await self.send({"type": "response.cancel"})

    async def approve(
        self, approval_request_id: str, approve: bool = True, reason: str | None = None
    ) -> None:
        """Answer an MCP ``mcp_approval_request`` (see ``state.pending_approvals``): sends an
        ``mcp_approval_response`` item with ``conversation.item.create``, the way Voice Live takes it."""
        if not isinstance(approval_request_id, str) or not approval_request_id:
            raise ConfigError(
                "approval_request_id", approval_request_id, "the id of an mcp_approval_request item"
            )
        if not isinstance(approve, bool):
            raise ConfigError("approve", approve, "True or False")
        if reason is not None and not isinstance(reason, str):
            raise ConfigError("reason", reason, "a string or None")
        item: dict[str, Any] = {
            "type": "mcp_approval_response",
            "approval_request_id": approval_request_id,
            "approve": approve,
        }
        if reason is not None:
            item["reason"] = reason
        await self.send({"type": "conversation.item.create", "item": item})

    def stream(self, source: AudioSource) -> asyncio.Task[None]:
        """Start streaming ``source`` in the background (replaces a running stream)."""
        self._check_reference_source(source)
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
        self.source = source
        self.source_done.clear()
        self._pump = asyncio.get_running_loop().create_task(self._pump_audio(source), name="voicelive-audio")
        self._pump.add_done_callback(self._background_done)
        return self._pump

    async def _pump_audio(self, source: AudioSource) -> None:
        try:
            rate = self.config.input_sample_rate
            if _client_ec(self.config):
                frames = source.reference_frames(rate, self.frame_ms)  # type: ignore[attr-defined]
            else:
                frames = source.frames(rate, self.frame_ms)
            async for frame in frames:
                await self.append_audio(frame)
        finally:
            self.source_done.set()

    # ------------------------------------------------------------------ receiving

    async def _read_loop(self) -> None:
        assert self._transport is not None
        try:
            while True:
                raw = await self._transport.recv()
                try:
                    self._handle(raw)
                except Exception as exc:  # nothing a peer sends may end the conversation
                    self._warn(f"a received message could not be handled: {_reason(exc)}", exc)
        except ConnectionClosed as exc:
            if self._closing:
                return
            self._lost(exc)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug here must never be silent
            self._failure = exc
            self.status = f"failed: {_reason(exc)}"
            log.exception("voice live reader failed")
            self._fail_waiters(exc)

    def _lost(self, exc: ConnectionClosed) -> None:
        """The connection is gone (closed by the peer, or given up on by the transport)."""
        if self._failure is not None:
            return
        self._failure = exc
        given_up = self._transport.failure if self._transport is not None else None
        what = given_up or f"connection lost: {describe_close(exc.code, exc.reason)}"
        self.status = f"failed: {what}"
        log.warning("voice live %s", what)
        if self._recorder is not None:
            with contextlib.suppress(Exception):
                self._recorder.note("connection_lost", code=exc.code, reason=given_up or exc.reason)
        self._fail_waiters(exc)

    def _warn(self, message: str, exc: BaseException | None = None) -> None:
        """Count a message the reader could not use; log each kind of problem once."""
        self.protocol_warnings += 1
        self.last_protocol_warning = message
        kind = message.split(":", 1)[0] if exc is None else f"{message[:40]}{type(exc).__name__}"
        if kind not in self._warning_kinds and len(self._warning_kinds) < _MAX_WARNING_KINDS:
            self._warning_kinds.add(kind)
            log.warning("%s (skipped; the session goes on; further ones are only counted)", message)

    def _handle(self, raw: str | bytes) -> None:
        now = time.monotonic()
        event = decode_server_event(raw)
        etype = event.type
        size = len(raw)
        if isinstance(event, ProtocolWarning):
            self._warn(f"a received message is not a valid event: {event.message}")
            if event.wire_type == "session.created" and self._malformed_created is None:
                self._malformed_created = event
                self._fail_setup_waiters(_malformed_created_error(event))
        if self._recorder is not None:
            try:
                self._recorder.record_received(event_to_dict(event))
            except Exception as exc:
                self._warn(f"a received {_short_type(etype)} could not be recorded: {_reason(exc)}", exc)
        if etype == "input_audio_buffer.speech_started" and self.sink is not None and self._playing_item:
            # what was really heard, before the state machine decides about barge-in
            self.state.note_playback(self._playing_item, self.sink.played_ms(self._playing_item))
        barge_in = self.state.receive(event)
        if etype == "response.audio.delta":
            size += self._play(event)
        elif etype == "response.audio.done" and self.sink is not None:
            end_of_item = getattr(self.sink, "end_of_item", None)
            if end_of_item is not None:  # play the tail even if it is shorter than the jitter target
                end_of_item(getattr(event, "item_id", ""))
        elif etype in ("session.created", "session.updated"):
            fmt = self.state.session.get("output_audio_format")
            self._output_format = fmt if isinstance(fmt, str) else "pcm16"
        elif etype == "error":
            self.errors.append(event)
            log.warning("voice live error event: %s", getattr(event, "error", event))
        self._keep(now, event, size)
        if barge_in is not None and self.barge_in:
            self._on_barge_in(barge_in)
        try:
            self.tools.handle(event)
        except Exception as exc:  # a tool-loop bug must not stop the reader
            self._warn(f"the tool loop failed on a {_short_type(etype)}: {_reason(exc)}", exc)
        self._dispatch(etype, event)
        self._wake(etype, event)

    def _keep(self, now: float, event: Any, size: int) -> None:
        """Add to the history; drop the oldest beyond ``max_events`` or ``max_event_bytes``."""
        self._events.append((now, event))
        self._event_sizes.append(size)
        self._event_bytes += size
        self._event_count += 1
        while len(self._events) > 1 and (
            len(self._events) > self.max_events or self._event_bytes > self.max_event_bytes
        ):
            self._events.popleft()
            self._event_bytes -= self._event_sizes.popleft()

    def _play(self, event: Any) -> int:
        """Hand an audio delta to the taps and the sink; the bytes of PCM now held by the event."""
        if self.sink is None and not self.output_taps:
            return 0
        if not isinstance(event, ResponseAudioDelta):
            return 0
        try:
            audio = event.audio
            pcm = _to_pcm16(audio, self._output_format)
        except VoiceLiveError as exc:
            self._warn(f"an audio delta was not valid base64: {exc}")
            return 0
        if len(pcm) % 2:  # the sinks rightly refuse half a sample; the peer must not make them
            self._warn(f"an audio delta had an odd number of bytes ({len(pcm)}), so it is not pcm16")
            return len(audio)
        for tap in self.output_taps:
            _call_tap(tap, event.item_id, pcm)
        if self.sink is None:
            return len(audio)
        if not self._sink_open:
            self.sink.open(self.config.output_sample_rate)
            self._sink_open = True
        self._playing_item = event.item_id
        self.sink.write(event.item_id, pcm)
        return len(audio)

    def _on_barge_in(self, barge_in: Any) -> None:
        """Silence the speaker at once, then tell the service what was really heard."""
        item = barge_in.assistant_item_id
        if self.sink is None or item is None:
            return
        played_ms = self.sink.played_ms(item)
        self.sink.clear()
        self._playing_item = None
        if self._recorder is not None:
            self._recorder.note(
                "playback_flushed", item_id=item, played_ms=played_ms, received_ms=barge_in.received_audio_ms
            )
        if barge_in.server_truncates:
            return  # auto_truncate: the service truncates by itself
        truncate = self.state.truncate_event(item, played_ms)
        self.truncations.append(
            {
                "item_id": item,
                "audio_end_ms": truncate.audio_end_ms,
                "received_ms": barge_in.received_audio_ms,
                "played_ms": played_ms,
            }
        )
        self._spawn(self.send(truncate))

    def _dispatch(self, etype: str, event: Any) -> None:
        for key in (etype, "*"):
            for handler in tuple(self._handlers.get(key, ())):
                try:
                    result = handler(event)
                    if inspect.isawaitable(result):
                        self._spawn(result, critical=False)
                except Exception as exc:
                    self.handler_errors.append(exc)
                    log.exception("handler for %s failed", etype)

    def _spawn(self, awaitable: Awaitable[Any], *, critical: bool = True) -> None:
        """Run ``awaitable`` in the background; a failure is kept and logged, never lost.

        A failing critical task (sending audio, a truncate) fails the session; a failing
        async handler is only recorded in :attr:`handler_errors`.
        """

        async def run() -> Any:
            return await awaitable

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._background_done if critical else self._handler_done)

    def _handler_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            self.handler_errors.append(exc)
            log.error("async handler failed: %s", _reason(exc))

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if isinstance(exc, ConnectionClosed) and (self._closing or self._failure is not None):
            return
        if isinstance(exc, ConnectionClosed):
            self._lost(exc)
            return
        self.handler_errors.append(exc)
        if self._failure is None:
            self._failure = exc
            self.status = f"failed: {_reason(exc)}"
        log.error("background task %s failed: %s", task.get_name(), _reason(exc))
        self._fail_waiters(exc)

    # ------------------------------------------------------------------ handlers and waiting

    def on(self, event_type: str, handler: Handler | None = None) -> Any:
        """Call ``handler(event)`` for every event of ``event_type`` (``"*"`` for all).

        Usable as a decorator: ``@s.on("response.done")``. Async handlers are scheduled
        as tasks; a failing handler is logged and kept in :attr:`handler_errors`. Event names of
        either wire shape are accepted (``response.output_audio.delta`` is ``response.audio.delta``).
        """
        if handler is None:
            return lambda fn: self.on(event_type, fn)
        self._handlers.setdefault(canonical_type(event_type), []).append(handler)
        return handler

    def off(self, event_type: str, handler: Handler) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._handlers[canonical_type(event_type)].remove(handler)

    async def wait_for(
        self,
        event_type: str,
        timeout: float = 30.0,
        predicate: Callable[[Any], bool] | None = None,
        *,
        fail_on_error: bool = False,
        errors_before: int | None = None,
    ) -> Any:
        """The next not-yet-returned event of ``event_type`` (optionally matching ``predicate``).

        Each type has a cursor: calling ``wait_for("response.done")`` twice returns the
        first and then the second ``response.done``, even if both arrived before the call.
        Raises :class:`~voicelive_nb.errors.WaitTimeout` after ``timeout`` seconds, and the
        connection's failure if it closes first. With ``fail_on_error``, an ``error`` event
        arriving meanwhile raises :class:`~voicelive_nb.errors.ServerError`.
        """
        event_type = canonical_type(event_type)  # GA names wait for the same events
        found = self._scan(event_type, predicate)
        if found is not None:
            return found
        if self._failure is not None:
            raise self._failure
        if self._transport is None or self._closing:
            raise VoiceLiveError(f"session is not connected (status: {self.status})")
        loop = asyncio.get_running_loop()
        waiter = _Waiter(event_type, predicate, loop.create_future())
        self._waiters.append(waiter)
        error_waiter: _Waiter | None = None
        if fail_on_error:
            if errors_before is not None and len(self.errors) > errors_before:
                self._waiters.remove(waiter)
                raise _server_error(self.errors[errors_before])
            error_waiter = _Waiter("error", None, loop.create_future())
            self._waiters.append(error_waiter)
        futures = [waiter.future] + ([error_waiter.future] if error_waiter else [])
        try:
            done, _ = await asyncio.wait(futures, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in (waiter, error_waiter):
                if w is not None and w in self._waiters:
                    self._waiters.remove(w)
            for f in futures:
                if not f.done():
                    f.cancel()
        if not done:
            raise WaitTimeout(self._timeout_message(event_type, timeout))
        if waiter.future in done:
            return waiter.future.result()
        assert error_waiter is not None
        err = error_waiter.future.result()
        raise _server_error(err)

    def _timeout_message(self, event_type: str, timeout: float) -> str:
        text = f"no {event_type} within {timeout:g} s (status: {self.status})"
        if self._malformed_created is not None and event_type == "session.created":
            return str(_malformed_created_error(self._malformed_created))
        if self._pump is None or self._pump.done():
            text += (
                "; no audio source is streaming (the microphone/source is off), so the service hears "
                "nothing: start one with stream(source) or send a response.create"
            )
        return text

    def _fail_setup_waiters(self, exc: BaseException) -> None:
        for waiter in tuple(self._waiters):
            if waiter.type == "session.created" and not waiter.future.done():
                waiter.future.set_exception(exc)
                waiter.future.exception()

    def _scan(self, event_type: str, predicate: Callable[[Any], bool] | None) -> Any:
        start = self._cursors.get(event_type, 0)
        first = self._event_count - len(self._events)
        for offset, (_, event) in enumerate(self._events):
            index = first + offset
            if index < start or event.type != event_type:
                continue
            if predicate is None or predicate(event):
                self._cursors[event_type] = index + 1
                return event
        return None

    def _wake(self, etype: str, event: Any) -> None:
        for waiter in tuple(self._waiters):
            if waiter.type != etype or waiter.future.done():
                continue
            if waiter.predicate is not None and not waiter.predicate(event):
                continue
            # every waiter for this type gets it (a cell and the panel may both be waiting)
            waiter.future.set_result(event)
            if etype != "error":
                self._cursors[etype] = self._event_count

    def _fail_waiters(self, exc: BaseException) -> None:
        for waiter in tuple(self._waiters):
            if not waiter.future.done():
                waiter.future.set_exception(exc)
                waiter.future.exception()  # mark retrieved: the waiter may already be gone

    # ------------------------------------------------------------------ views

    @property
    def expires_at(self) -> float | None:
        """When the service ends this connection (Unix seconds, the session's ``expires_at``), if it said."""
        value = self.state.session.get("expires_at")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
        return None

    @property
    def expires_in_s(self) -> float | None:
        """Seconds until :attr:`expires_at` (negative once past), None when not known."""
        expires = self.expires_at
        return None if expires is None else expires - time.time()

    def effective_session(self) -> dict[str, Any]:
        """The session as the service last reported it (else as configured)."""
        session = self.state.session
        return dict(session) if session else self.config.to_dict()

    @property
    def events(self) -> list[Any]:
        """Events received so far (the most recent ``max_events``)."""
        return [event for _, event in self._events]

    def timed_events(self) -> list[tuple[float, Any]]:
        """``(time.monotonic() at receipt, event)`` pairs."""
        return list(self._events)

    def sent_events(self) -> list[tuple[float, dict[str, Any]]]:
        """``(time.monotonic() at sending, wire dict)`` of the client events sent with :meth:`send`
        (not the ``input_audio_buffer.append`` frames of streamed audio)."""
        return list(self._sent)

    @property
    def transcript(self) -> list[Any]:
        return list(self.state.transcript)

    @property
    def failure(self) -> BaseException | None:
        return self._failure

    def __repr__(self) -> str:
        try:
            where = "emulator" if self.use_emulator else redact_url(self.settings.endpoint or "no endpoint")
            warnings = f" protocol_warnings={self.protocol_warnings}" if self.protocol_warnings else ""
            return redact_text(f"<Session {self.status} {where} events={self._event_count}{warnings}>")
        except Exception:  # a repr must never raise
            return f"<Session at {id(self):#x}>"


@dataclass(frozen=True)
class ConnectionSummary:
    """Where a session connects and how, with no secret in it: what a panel shows.

    ``auth`` is ``"emulator"``, ``"api-key"`` (``key`` is then its masked form), ``"token credential"``
    (``credential_type`` names the class) or ``"entra-id"`` (DefaultAzureCredential).
    """

    endpoint: str
    auth: str
    model: str
    api_version: str
    emulator: bool
    emulator_url: str | None = None
    key: str | None = None
    credential_type: str | None = None
    #: The api key as a :class:`Secret` (whose repr is masked), so a view can scrub it from text it shows.
    secret: Secret | None = field(default=None, repr=False, compare=False)


def wants_emulator(mode: object, settings: Any) -> bool:
    """The one "use the built-in emulator?" rule: asked for, or ``"auto"`` with no service configured."""
    return mode is True or (mode == "auto" and not settings.configured)


def connection_summary(
    settings: Any, *, emulator: bool, emulator_url: str | None = None, credential: object = None
) -> ConnectionSummary:
    """Summarise ``settings`` for display: the endpoint redacted, the key masked, never the secret."""
    if emulator:
        auth, key, ctype = "emulator", None, None
    elif settings.api_key is not None:
        auth, key, ctype = "api-key", settings.api_key.masked(), None
    elif credential is not None:
        auth, key, ctype = "token credential", None, type(credential).__name__
    else:
        auth, key, ctype = "entra-id", None, None
    return ConnectionSummary(
        endpoint=redact_url(emulator_url or settings.endpoint or ""),
        auth=auth,
        model=str(settings.model or settings.agent or ""),
        api_version=str(settings.api_version),
        emulator=emulator,
        emulator_url=emulator_url,
        key=key,
        credential_type=ctype,
        secret=settings.api_key,
    )


def summarize_options(options: Mapping[str, Any]) -> ConnectionSummary:
    """The summary a :class:`Session` built from these keywords would give, before it exists
    (same settings loading and emulator rule, no connection made)."""
    settings = load_settings(
        endpoint=options.get("endpoint"),
        api_key=options.get("api_key"),
        model=options.get("model"),
        api_version=options.get("api_version"),
        dotenv=options.get("dotenv", True),
    )
    emulator = wants_emulator(options.get("emulator", "auto"), settings)
    return connection_summary(settings, emulator=emulator, credential=options.get("credential"))


def updated_config(
    current: SessionConfig, config: SessionConfig | Mapping[str, Any] | None, changes: Mapping[str, Any]
) -> SessionConfig:
    """``current`` changed by a whole config, a partial wire dict (session.update rules) and/or fields."""
    if isinstance(config, SessionConfig):
        new = config
    elif isinstance(config, Mapping):
        new = current.merge_update(writable_update(config))
    else:
        new = current
    return new.replace(**changes) if changes else new


def writable_update(update: Mapping[str, Any]) -> dict[str, Any]:
    """A ``session.update`` payload from a partial dict or a whole session a server sent.

    A GA-shaped session is made flat; a server's session object (it has ``id``, ``object`` or
    ``expires_at``) loses those read-only keys and ``model`` (fixed at connect), with a debug
    note naming them, so re-applying a real ``session.updated`` sends only what can change.
    """
    flat = dict(session_from_wire(update)) if is_ga_session(update) else dict(update)
    if any(key in flat for key in SERVER_ONLY_KEYS):
        dropped = [key for key in (*SERVER_ONLY_KEYS, "model") if key in flat]
        for key in dropped:
            del flat[key]
        log.debug("not sending the server-only session keys %s", ", ".join(dropped))
    return flat


def _auth_kind(headers: Mapping[str, str]) -> str:
    return "api-key" if "api-key" in headers else "entra-token"


def _call_tap(tap: Callable[..., None], *args: Any) -> None:
    try:
        tap(*args)
    except Exception:  # a broken meter must not stop the audio
        log.exception("audio tap %r failed", tap)


def _client_ec(config: Any) -> bool:
    """Whether ``config`` sends the echo reference (any config-like object; a plain one does not)."""
    return getattr(config, "client_echo_reference", False) is True


def _channel0(stereo: bytes) -> bytes:
    """The microphone channel of interleaved (mic, reference) PCM16: what meters and views show."""
    return memoryview(stereo[: len(stereo) // 4 * 4]).cast("H")[0::2].tobytes()


def _to_pcm16(audio: bytes, fmt: str) -> bytes:
    if fmt == "g711_ulaw":
        from .audio.format import ulaw_decode

        return ulaw_decode(audio)
    if fmt == "g711_alaw":
        from .audio.format import alaw_decode

        return alaw_decode(audio)
    return audio


def _server_error(event: Any) -> ServerError:
    err = getattr(event, "error", None) or {}
    return ServerError(
        str(err.get("message", "error event")),
        code=err.get("code"),
        param=err.get("param"),
        error_type=err.get("type"),
        event_id=err.get("event_id"),
    )


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _short_type(etype: object) -> str:
    text = etype if isinstance(etype, str) else repr(etype)
    return text if len(text) <= 60 else text[:57] + "..."


def _malformed_created_error(event: ProtocolWarning) -> ProtocolError:
    return ProtocolError(
        f"a session.created arrived but was malformed: {event.message}; the service (or a proxy) "
        "sent something this client cannot read: check the endpoint and api-version"
    )
