"""``Session``: one live Voice Live conversation over asyncio, headless.

::

    async with Session(SessionConfig.server_vad(), endpoint=url, api_key=key,
                       source=WavSource("question.wav"), sink=WavSink("reply.wav")) as s:
        done = await s.wait_for("response.done", timeout=30)

Where and how to connect is one :class:`~voicelive_nb.connection.ConnectionOptions`
(``Session(config, connection=ConnectionOptions.from_env())``; the flat keywords above are folded
into one, :attr:`Session.connection`); its ``transport_factory`` replaces the WebSocket, e.g. with
:func:`voicelive_nb.testing.memory_emulator` (no socket).

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
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from .audio.base import AudioSink, AudioSource
from .auth import Secret, redact_text, register_secret
from .connection import ConnectionOptions as ConnectionOptions
from .connection import ConnectionSummary as ConnectionSummary  # re-exported: its home was here
from .connection import connection_summary as connection_summary
from .connection import fold_connection
from .connection import wants_emulator as wants_emulator
from .errors import ConnectionClosed, VoiceLiveError, WaitTimeout
from .protocol.config import SessionConfig
from .protocol.state import SessionProtocol
from .protocol.wire import canonical_type, shape_for_api_version
from .session_audio import AudioFeed, BargeIns, Playback, client_ec, source_frames
from .session_connect import EMULATOR_KEY as EMULATOR_KEY
from .session_connect import TIMEOUTS, Cleanup
from .session_events import EventLog, Handler, Handlers, reason, server_error
from .session_link import Link
from .session_reader import Intake, ProtocolWarnings, Reader, timeout_message
from .session_send import Outbox, RecordingTarget
from .session_setup import (
    LiveConfig,
    approval_item,
    check_api_version,
    check_limits,
    check_reference_source,
    session_config,
)
from .session_setup import updated_config as updated_config  # re-exported: its home was here
from .session_setup import writable_update as writable_update
from .session_tasks import Background, Health
from .tools import Tool, ToolCall, ToolRunner
from .transport import MessageTransport, TransportFactory, redact_url

log = logging.getLogger("voicelive_nb.session")

#: Default byte budget of the event history (:attr:`Session.events`).
MAX_EVENT_BYTES = 24 * 2**20


class Session:
    """A live conversation with Voice Live (or the built-in emulator)."""

    def __init__(
        self,
        config: SessionConfig | Mapping[str, Any] | None = None,
        *,
        connection: ConnectionOptions | None = None,
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
        record: str | Path | RecordingTarget | None = None,
        frame_ms: int = 20,
        connect_timeout_s: float | None = None,
        setup_timeout_s: float | None = None,
        emulator: bool | str | None = None,
        emulator_options: Mapping[str, Any] | None = None,
        barge_in: bool = True,
        close_audio: bool = True,
        max_events: int = 20_000,
        max_event_bytes: int = MAX_EVENT_BYTES,
        send_timeout_s: float | None = None,
        ping_interval_s: float | None = None,
        ping_timeout_s: float | None = None,
        close_timeout_s: float | None = None,
        tools: Sequence[Callable[..., Any] | Tool] = (),
        dotenv: bool | None = None,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        """See the module doc. Where and how to connect is one :class:`ConnectionOptions`
        (``connection=``); the flat keywords ``endpoint`` … ``close_timeout_s``, ``dotenv`` and
        ``transport_factory`` are folded into one with :meth:`ConnectionOptions.from_env`
        (:attr:`connection`), and passing both is a :class:`~voicelive_nb.errors.ConfigError`.
        The timeouts are documented there. The limits:

        ``max_events`` / ``max_event_bytes``: the event history (:attr:`events`, what
        :meth:`wait_for` looks back into) keeps at most this many events and about this many
        bytes (an event counts its wire size; a played audio delta also its decoded PCM), the
        oldest dropped first. Default 20,000 events and 24 MB (~4 minutes of 24 kHz reply audio).

        ``record``: a directory for a new :class:`~voicelive_nb.recording.Recorder`, or a recording
        to go on writing to (one shared by several connections; its ``close`` is called at the end).
        """
        config = session_config(config)
        check_limits(frame_ms=frame_ms, max_events=max_events, max_event_bytes=max_event_bytes)
        #: Where and how this session connects (:class:`ConnectionOptions`, immutable).
        self.connection: ConnectionOptions = fold_connection(
            connection,
            dotenv=dotenv,
            endpoint=endpoint,
            api_key=api_key,
            credential=credential,
            model=model,
            api_version=api_version,
            wire_shape=wire_shape,
            agent=agent,
            query=query,
            emulator=emulator,
            emulator_options=emulator_options,
            connect_timeout_s=connect_timeout_s,
            setup_timeout_s=setup_timeout_s,
            send_timeout_s=send_timeout_s,
            ping_interval_s=ping_interval_s,
            ping_timeout_s=ping_timeout_s,
            close_timeout_s=close_timeout_s,
            transport_factory=transport_factory,
        )
        opts = self.connection
        self.settings = opts.settings()
        check_api_version(config, self.settings.api_version)
        #: ``"preview"`` (dated api-versions) or ``"ga"`` (``api-version=v1``, or ``wire_shape=``).
        self.wire_shape: str = shape_for_api_version(self.settings.api_version, opts.wire_shape)
        self.source = source
        self.record_dir = Path(record) if isinstance(record, (str, Path)) else None
        recorder = None if isinstance(record, (str, Path)) else record  # a recording shared, or none
        self.frame_ms = frame_ms
        self.connect_timeout_s = float(opts.connect_timeout_s)
        self.setup_timeout_s = float(opts.setup_timeout_s)
        self.use_emulator = opts.uses_emulator
        self.barge_in = barge_in
        self.close_audio = close_audio
        self.send_timeout_s = float(opts.send_timeout_s)
        self.ping_interval_s = float(opts.ping_interval_s)
        self.ping_timeout_s = float(opts.ping_timeout_s)
        self.close_timeout_s = float(opts.close_timeout_s)
        register_secret(self.settings.api_key)

        self.state = SessionProtocol()
        #: The Python functions the model may call, and the calls it made (:mod:`voicelive_nb.tools`).
        self.tools = ToolRunner(
            self.send,
            tools,
            parallel=getattr(config, "parallel_tool_calls", True) is not False,
            on_change=self._tool_changed,
        )
        #: ``fn(call)`` for every change of a tool call (engine thread; keep it cheap).
        self.tool_listeners: list[Callable[[ToolCall], None]] = []
        #: Messages the reader could not use (not an event, a bad audio delta...): counted, skipped.
        self._warnings = ProtocolWarnings()
        self.errors: list[Any] = []
        self.handler_errors: list[BaseException] = []
        #: The received events: history, cursors and waiters (:class:`~.session_events.EventLog`).
        self._received = EventLog(max_events, max_event_bytes)
        #: Status, the one failure, closing (:class:`~.session_tasks.Health`).
        self._health = Health(self._received.fail_waiters, lambda: self._recorder, self.handler_errors)
        #: The source side: the pump task, what was sent, the input taps (:class:`~.session_audio.AudioFeed`).
        self._feed = AudioFeed()
        #: The way out: events in the connection's shape, audio frames (:class:`~.session_send.Outbox`).
        self._outbox = Outbox(
            self.state, self._feed, self.wire_shape, max_events, lambda: self._recorder, lambda: self.status
        )
        #: The configuration and its updates (:class:`~.session_setup.LiveConfig`).
        updated = partial(self.wait_for, "session.updated", timeout=self.setup_timeout_s, fail_on_error=True)
        self._live = LiveConfig(config, self.settings.model, self.tools, self.send, updated, self.errors)
        self._playback = Playback(sink, self._warnings.warn, lambda: self.config.output_sample_rate)
        #: Silence, note, truncate when the user talks over the assistant (:class:`~.session_audio.BargeIns`).
        self._barge_ins = BargeIns(
            self._playback,
            self.state,
            lambda: self._recorder,
            lambda event: self._background.spawn(self.send(event)),
        )
        self._handlers = Handlers(
            lambda result: self._background.spawn(result, critical=False), self.handler_errors
        )
        self._close_started = False
        #: Truncates, tool updates, async handlers (:class:`~.session_tasks.Background`).
        self._background = Background(
            lambda task, exc: self._health.task_failed(task, exc, self._link.given_up()), self.handler_errors
        )
        intake = Intake(
            self.state,
            self._received,
            self._handlers,
            self._playback,
            self.tools,
            self.errors,
            lambda: self._recorder,
            self._on_barge_in,
        )
        self._intake = Reader(intake, self._warnings)
        #: The connection, its tasks, its recording; up and down (:class:`~.session_link.Link`).
        self._link = Link(
            opts, self._outbox, self._intake, self._feed, self._background, self._health, recorder
        )

    @property
    def status(self) -> str:
        """``idle``, ``connecting``, ``connected``, ``closed`` or ``failed: <reason>`` (credentials masked)."""
        return self._health.status

    @property
    def config(self) -> SessionConfig:
        """The configuration as sent (or to be sent when the session opens)."""
        return self._live.config

    @config.setter
    def config(self, value: SessionConfig) -> None:
        self._live.config = value

    @property
    def config_warnings(self) -> list[str]:
        """Model-aware advice about the configuration (logged at WARNING when it opens or updates)."""
        return self._live.warnings

    @property
    def _transport(self) -> MessageTransport | None:
        """The connection (None before connecting)."""
        return self._outbox.transport

    @property
    def _recorder(self) -> RecordingTarget | None:
        return self._link.recorder

    @property
    def max_events(self) -> int:
        """How many events the history keeps at most (see ``__init__``)."""
        return self._received.max_events

    @max_events.setter
    def max_events(self, value: int) -> None:
        self._received.max_events = value

    @property
    def max_event_bytes(self) -> int:
        """About how many bytes the history keeps at most (see ``__init__``)."""
        return self._received.max_event_bytes

    @max_event_bytes.setter
    def max_event_bytes(self, value: int) -> None:
        self._received.max_event_bytes = value

    @property
    def source_done(self) -> asyncio.Event:
        """Set when the source streamed last has ended."""
        return self._feed.done

    @property
    def input_taps(self) -> list[Callable[[bytes], None]]:
        """``fn(pcm16)`` for every block of input audio sent (engine thread; keep it cheap)."""
        return self._feed.taps

    @property
    def bytes_sent(self) -> int:
        """Bytes of input audio sent with :meth:`append_audio`."""
        return self._feed.bytes_sent

    @property
    def frames_sent(self) -> int:
        """Blocks of input audio sent with :meth:`append_audio`."""
        return self._feed.frames_sent

    @property
    def truncations(self) -> list[dict[str, Any]]:
        """The truncates sent on barge-in: item, ``audio_end_ms``, ms received and ms played."""
        return self._barge_ins.truncations

    @property
    def sink(self) -> AudioSink | None:
        """Where the assistant's audio is played (None: nowhere)."""
        return self._playback.sink

    @sink.setter
    def sink(self, value: AudioSink | None) -> None:
        self._playback.sink = value

    @property
    def output_taps(self) -> list[Callable[[str, bytes], None]]:
        """``fn(item_id, pcm16)`` for every block of assistant audio received (engine thread)."""
        return self._playback.taps

    @property
    def protocol_warnings(self) -> int:
        """How many messages the reader could not use (not an event, a bad audio delta...)."""
        return self._warnings.count

    @property
    def last_protocol_warning(self) -> str | None:
        """What the latest of them was."""
        return self._warnings.last

    @property
    def url(self) -> str | None:
        """The realtime URL connected to, credentials masked."""
        url = self._link.connector.url
        return redact_url(url) if url else None

    @property
    def emulator_url(self) -> str | None:
        """The built-in emulator's URL, when this session started one."""
        return self._link.connector.emulator_url

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
            check_reference_source(self.config, self.source)
        self._health.status = "connecting"
        try:
            await self._link.open(
                self.settings,
                self.config,
                use_emulator=self.use_emulator,
                wire_shape=self.wire_shape,
                timeouts={name: getattr(self, name) for name in TIMEOUTS},
                record_dir=self.record_dir,
                lost=lambda exc: self._health.lost(exc, self._link.given_up()),
            )
            await self._configure()
        except BaseException as exc:
            self._health.status = f"failed: {reason(exc)}"
            await self._shutdown()
            raise
        self._health.status = "connected"
        if self.source is not None:
            self.stream(self.source)

    async def _configure(self) -> None:
        try:
            await self.wait_for("session.created", timeout=self.setup_timeout_s)
        except WaitTimeout:
            if self._intake.malformed_created is None:
                raise
        self._intake.check_created()
        await self._live.open()

    async def close(self) -> None:
        """Stop streaming, close the connection, finish files (idempotent; also after :meth:`abort`)."""
        if self._close_started:
            return
        self._close_started = self._health.closing = True
        await self._shutdown()
        if not self.status.startswith("failed"):
            self._health.status = "closed"

    def connection_summary(self) -> ConnectionSummary:
        """Where this session connects and how, without secrets (see :class:`ConnectionSummary`)."""
        return connection_summary(
            self.settings,
            emulator=self.use_emulator,
            emulator_url=self.emulator_url,
            credential=self.connection.credential,
        )

    async def wait_closed(self) -> None:
        """Return once the connection has ended: the server closed it, it was lost, or :meth:`close` ran.

        Public so that a supervisor (``NotebookSession``) can race the end of the connection
        against its own stop signal without reading the session's private reader task. Does not
        close anything itself and never raises the reader's failure (``status`` tells it).
        """
        await self._link.wait_closed()

    def abort(self) -> None:
        """Drop the TCP connection now (no closing handshake) and cancel the session's tasks.

        Synchronous and idempotent, for when a polite :meth:`close` hangs or there is no time
        for one; call :meth:`close` afterwards to finish the files and the audio.
        """
        self._link.abort()

    def background_tasks(self) -> list[asyncio.Task[Any]]:
        """The session's own tasks still running: the reader, the audio pump, background sends,
        and the connection's keepalive."""
        return self._link.running_tasks()

    def still_running(self) -> list[str]:
        """What of this session is still alive, in words ("the reader task", "the connection
        (closing)"...); empty once everything is down. For a supervisor's report."""
        return self._link.still_running()

    async def settle(self, timeout: float = 0.5) -> None:
        """Let an aborted socket and cancelled tasks report themselves finished (each wait at most
        ``timeout`` s; never raises)."""
        await self._link.settle(timeout)

    async def end_stream(self, timeout: float = 1.0) -> bool:
        """Wait for the running stream to end once its source has ended (closed, run out); if a
        send hangs, cancel it after ``timeout`` s. True when it ended by itself (or none ran)."""
        return await self._feed.end(timeout)

    async def _shutdown(self) -> None:
        """Stop everything, each step bounded; a caller's cancellation is re-raised at the end.

        When cancelled, the remaining steps take their fast path (the TCP connection is
        dropped rather than closed politely), so cleanup still happens.
        """
        steps = Cleanup(max(self.close_timeout_s, 0.1))
        await steps.run(self.tools.aclose, "stopping the tool calls")
        await self._link.hang_up(steps)
        source = self.source
        if source is not None and self.close_audio:
            await steps.run(lambda: source.aclose(), "closing the audio source")
        if self.close_audio:
            steps.call(self._playback.close, "closing the audio sink")
        await self._link.release(steps, self.status)
        self._received.fail_waiters(self._health.failure or ConnectionClosed(1000, "session closed"))
        if steps.cancelled:
            raise asyncio.CancelledError

    # ------------------------------------------------------------------ sending

    async def send(self, event: Any) -> None:
        """Send a client event (an event object or a wire dict)."""
        await self._outbox.send(event)

    async def append_audio(self, pcm16: bytes) -> None:
        """Append one block of PCM16 audio to the input buffer."""
        await self._outbox.append_audio(pcm16, client_ec(self.config))

    async def update(self, config: SessionConfig | Mapping[str, Any] | None = None, **changes: Any) -> Any:
        """Change the live configuration with ``session.update``; returns ``session.updated``.

        Pass a whole :class:`SessionConfig`, a partial wire dict, or keyword changes
        (``update(instructions="Be brief")``). Only what differs is sent.
        """
        return await self._live.update(config, changes, connected=self._transport is not None)

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
        if self._transport is not None and not self._health.closing and self.status == "connected":
            self._background.spawn(self._live.sync_tools(), critical=False)
        return fn

    async def add_tools(self, *fns: Callable[..., Any] | Tool) -> Any:
        """Register tools and, when connected, send the new tool list; returns ``session.updated`` (or None)."""
        self.tools.add(*fns)
        if self._transport is None or self._health.closing:
            return None
        return await self._live.sync_tools()

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
        item = approval_item(approval_request_id, approve, reason)
        await self.send({"type": "conversation.item.create", "item": item})

    def stream(self, source: AudioSource) -> asyncio.Task[None]:
        """Start streaming ``source`` in the background (replaces a running stream)."""
        check_reference_source(self.config, source)
        self.source = source
        # the frames are asked for when the pump starts, at the config of that moment
        return self._feed.start(
            lambda: source_frames(source, self.config, self.frame_ms),
            self.append_audio,
            self._background.critical_done,
        )

    # ------------------------------------------------------------------ receiving

    def _on_barge_in(self, barge_in: Any) -> None:
        """Silence the speaker at once, then tell the service what was really heard."""
        if self.barge_in:
            self._barge_ins.respond(barge_in)

    # ------------------------------------------------------------------ handlers and waiting

    def on(self, event_type: str, handler: Handler | None = None) -> Any:
        """Call ``handler(event)`` for every event of ``event_type`` (``"*"`` for all).

        Usable as a decorator: ``@s.on("response.done")``. Async handlers are scheduled
        as tasks; a failing handler is logged and kept in :attr:`handler_errors`. Event names of
        either wire shape are accepted (``response.output_audio.delta`` is ``response.audio.delta``).
        """
        if handler is None:
            return lambda fn: self.on(event_type, fn)
        self._handlers.add(event_type, handler)
        return handler

    def off(self, event_type: str, handler: Handler) -> None:
        self._handlers.remove(event_type, handler)

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
        found = self._received.scan(event_type, predicate)
        if found is not None:
            return found
        if self._health.failure is not None:
            raise self._health.failure
        if self._transport is None or self._health.closing:
            raise VoiceLiveError(f"session is not connected (status: {self.status})")
        if fail_on_error and errors_before is not None and len(self.errors) > errors_before:
            raise server_error(self.errors[errors_before])
        wait = self._received.wait
        return await wait(
            event_type,
            timeout,
            predicate,
            fail_on_error=fail_on_error,
            describe_timeout=self._timeout_message,
        )

    def _timeout_message(self, event_type: str, timeout: float) -> str:
        created = self._intake.malformed_created
        return timeout_message(event_type, timeout, self.status, created, self._feed.streaming)

    # ------------------------------------------------------------------ views

    @property
    def expires_at(self) -> float | None:
        """When the service ends this connection (Unix seconds, the session's ``expires_at``), if it said."""
        return self.state.expires_at

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
        return [event for _, event in self._received.timed]

    def timed_events(self) -> list[tuple[float, Any]]:
        """``(time.monotonic() at receipt, event)`` pairs."""
        return list(self._received.timed)

    def sent_events(self) -> list[tuple[float, dict[str, Any]]]:
        """``(time.monotonic() at sending, wire dict)`` of the client events sent with :meth:`send`
        (not the ``input_audio_buffer.append`` frames of streamed audio)."""
        return list(self._outbox.sent)

    @property
    def transcript(self) -> list[Any]:
        return list(self.state.transcript)

    @property
    def failure(self) -> BaseException | None:
        return self._health.failure

    def __repr__(self) -> str:
        try:
            where = "emulator" if self.use_emulator else redact_url(self.settings.endpoint or "no endpoint")
            warnings = f" protocol_warnings={self.protocol_warnings}" if self.protocol_warnings else ""
            return redact_text(f"<Session {self.status} {where} events={self._received.count}{warnings}>")
        except Exception:  # a repr must never raise
            return f"<Session at {id(self):#x}>"


def summarize_options(options: Mapping[str, Any]) -> ConnectionSummary:
    """The summary a :class:`Session` built from these keywords would give, before it exists
    (same settings loading and emulator rule, no connection made)."""
    fields = {k: options.get(k) for k in ("endpoint", "api_key", "model", "api_version", "credential")}
    fields["emulator"] = options.get("emulator", "auto")
    given = {k: v for k, v in fields.items() if v is not None}
    return ConnectionOptions.from_env(dotenv=options.get("dotenv", True), **given).summary()
