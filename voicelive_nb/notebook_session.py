"""``NotebookSession``: a live session for notebook cells — sync, non-blocking, on the engine thread.

::

    s = NotebookSession()          # Azure if AZURE_VOICE_LIVE_ENDPOINT is set, else the built-in emulator
    s.start()                      # returns at once; the session runs on the engine thread
    s.status                       # 'connecting' → 'connected'
    s.update(instructions="Be brief.")   # live session.update (validated here, sent there)
    s.wait_for("response.done", timeout=30)
    s.stop()                       # bounded, idempotent; returns once nothing of it runs any more
    s.stop(wait=False)             # the same in the background: a concurrent.futures.Future

Microphone and speaker: ``mic="auto"`` / ``speaker="auto"`` use the default sounddevice
devices when there are any and otherwise run without them (``speak(wav)`` then plays a WAV
file as the user, and replies are kept in memory). A device name or index picks a device;
``mic=False`` turns the microphone off. ``half_duplex=True`` mutes the microphone while the
assistant speaks (laptop speakers without a headset).

Stopping: :meth:`NotebookSession.stop` closes the connection politely for ``timeout``
seconds; a peer that does not answer (it stopped reading, the network is gone) then has its
socket aborted and the session's tasks cancelled. ``stop`` returns once the connection and
every task of it are gone; if something still runs after that, :attr:`NotebookSession.status`
says what (``stop incomplete: still running: ...``), :attr:`NotebookSession.left_running`
lists it, and a :class:`StopIncompleteWarning` is issued.

Reconnecting (``auto_reconnect=True``): a lost connection is reopened with the same
configuration after a bounded exponential back-off (``reconnect_delay_s``, doubling up to
``reconnect_max_delay_s``); the status reads ``reconnecting (2/5): <reason>``.
``max_reconnects`` bounds *consecutive* failed attempts: a connection that reached
``session.updated`` and stayed up for ``reconnect_healthy_s`` resets the count, so a healthy
session outlives the service's per-connection time limit for as long as it runs.

Rollover (``rollover=True``, the default when ``auto_reconnect=True``): a connection ends at
its ``expires_at`` (:attr:`NotebookSession.expires_in_s`). Within ``rollover_margin_s`` of it,
at a quiet moment (no response running or asked for, no tool call open, the user not
speaking; at the latest a quarter of the margin before the deadline), the next connection is
opened with a fresh credential, configured and **re-seeded**: the conversation so far as
``conversation.item.create`` items (user and assistant messages as text, an assistant audio
item as the text of its transcript, tool calls and their outputs), the newest that fit
``reseed_max_chars`` / ``reseed_max_items``, the oldest replaced by one note
(``[earlier conversation omitted]``). Then, in one step with no ``await`` in it, cells start
talking to the new connection, the microphone moves over (one reader of the microphone hands
each frame to exactly one connection; what arrives during the switch waits, so nothing is
lost or sent twice) and the old connection is closed. A lost connection (drop, 1001/1011,
``session_expired``) is re-seeded the same way after the back-off; a reply it cut off is marked
``[incomplete: the connection was lost]`` in :attr:`NotebookSession.transcript`. New
connections of reconnects and rollovers wait for ``connection_budget`` (by default the
process-wide 30 per minute of :func:`voicelive_nb.rollover.process_budget` for a service
endpoint; none for the emulator or another loopback peer). A credential refused on reconnect
(401/403) stops the retries and says so. :attr:`events` and :attr:`transcript` span every
connection; ``record=DIR`` stays one recording with a ``rollover`` note per switch.
:attr:`NotebookSession.handovers` has one dict per switch (``gap_ms``: last mic frame on the
old connection → first on the new one; ``prepare_ms``; ``forced``).

Memory: without a speaker, replies go to an in-memory
:class:`~voicelive_nb.audio.memory.BufferSink` bounded to ``speaker_memory_bytes`` (default
2,880,000 bytes: the last 60 s at 24 kHz; ``None`` for no bound), so a long session stays
bounded.

Every blocking call has a timeout and an awaitable twin (``await s.wait_for_async(...)``)
for cells that ``await``. Handlers given to :meth:`on` run on the engine thread.

The class is the cell-facing owner of a few collaborators, each with one job:
:class:`~voicelive_nb.notebook_audio.SessionAudio` (the devices and the one reader of the
microphone), :class:`~voicelive_nb.notebook_archive.ConversationArchive` (the conversation,
transcript, events and recording across connections),
:class:`~voicelive_nb.notebook_run.ConnectionRunner` (the run on the engine: reconnects, the
connection budget, the stop; it owns the :class:`~voicelive_nb.notebook_rollover.RolloverDriver`),
:class:`~voicelive_nb.notebook_calls.CellCalls` (a cell's calls on the current connection) and
:class:`~voicelive_nb.notebook_kit.ConnectionKit` (the tools and handlers every connection gets).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .audio.base import AudioSink, AudioSource
from .connection import ConnectionOptions, ConnectionSummary, fold_connection
from .engine import Engine, get_engine
from .errors import (
    WaitTimeout,
)
from .hosts import is_loopback_host as is_loopback_host
from .notebook_archive import INCOMPLETE_NOTE as INCOMPLETE_NOTE  # re-exported: imported from here
from .notebook_archive import ConversationArchive
from .notebook_audio import SessionAudio, check_memory_bytes
from .notebook_calls import CellCalls
from .notebook_kit import ConnectionKit, log_tool_update
from .notebook_run import ABORT_GRACE_S as ABORT_GRACE_S  # re-exported: imported from here
from .notebook_run import PUMP_INTERVAL_S as PUMP_INTERVAL_S
from .notebook_run import ConnectionRunner, check_reconnect_options, check_rollover_options
from .protocol.config import SessionConfig
from .protocol.state import TranscriptEntry
from .rollover import ConnectionBudget
from .session import Session, updated_config
from .tools import Tool, ToolCall, as_tool, tool_calls_table
from .transport import TransportFactory

log = logging.getLogger("voicelive_nb.notebook")

#: Default bound of the in-memory speaker used when there is no speaker (60 s at 24 kHz).
SPEAKER_MEMORY_BYTES = 60 * 24000 * 2


class StopIncompleteWarning(RuntimeWarning):
    """``NotebookSession.stop()`` returned while part of the session was still running."""


class NotebookSession:
    """A :class:`~voicelive_nb.session.Session` driven from cells and widgets."""

    def __init__(
        self,
        config: SessionConfig | Mapping[str, Any] | None = None,
        *,
        mic: bool | str | int | AudioSource = "auto",
        speaker: bool | str | int | AudioSink = "auto",
        connection: ConnectionOptions | None = None,
        endpoint: str | None = None,
        api_key: str | None = None,
        credential: Any = None,
        model: str | None = None,
        api_version: str | None = None,
        wire_shape: str | None = None,
        record: str | Path | None = None,
        half_duplex: bool = False,
        emulator: bool | str | None = None,
        emulator_options: Mapping[str, Any] | None = None,
        auto_reconnect: bool = False,
        max_reconnects: int = 5,
        reconnect_delay_s: float = 0.5,
        reconnect_max_delay_s: float = 10.0,
        reconnect_healthy_s: float = 10.0,
        rollover: bool | None = None,
        rollover_margin_s: float = 120.0,
        reseed: bool = True,
        reseed_max_chars: int | None = 20_000,
        reseed_max_items: int | None = 100,
        connection_budget: ConnectionBudget | None = None,
        connect_timeout_s: float | None = None,
        setup_timeout_s: float | None = None,
        speaker_memory_bytes: int | None = SPEAKER_MEMORY_BYTES,
        tools: Sequence[Callable[..., Any] | Tool] = (),
        engine: Engine | None = None,
        dotenv: bool | None = None,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        """``connection=`` a :class:`~voicelive_nb.connection.ConnectionOptions` used for every
        connection (reconnects and rollovers too), or the flat keywords ``endpoint`` … ``emulator_options``,
        ``connect_timeout_s``, ``setup_timeout_s``, ``dotenv`` and ``transport_factory``, folded into
        one with :meth:`~voicelive_nb.connection.ConnectionOptions.from_env` (here ``emulator``
        defaults to ``"auto"``). Passing both is a :class:`~voicelive_nb.errors.ConfigError`."""
        if config is None:
            config = SessionConfig.server_vad()
        elif isinstance(config, Mapping):
            config = SessionConfig.from_dict(dict(config))
        check_reconnect_options(
            max_reconnects,
            reconnect_delay_s,
            reconnect_max_delay_s,
            reconnect_healthy_s,
            connect_timeout_s,
            setup_timeout_s,
        )
        #: Where and how every connection of this session is made (immutable; :meth:`connection_summary`).
        self.connection: ConnectionOptions = fold_connection(
            connection,
            dotenv=dotenv,
            defaults={"emulator": "auto"},
            endpoint=endpoint,
            api_key=api_key,
            credential=credential,
            model=model,
            api_version=api_version,
            wire_shape=wire_shape,
            emulator=emulator,
            emulator_options=emulator_options,
            connect_timeout_s=connect_timeout_s,
            setup_timeout_s=setup_timeout_s,
            transport_factory=transport_factory,
        )
        check_rollover_options(
            rollover, rollover_margin_s, reseed_max_chars, reseed_max_items, connection_budget
        )
        check_memory_bytes(speaker_memory_bytes)
        self.config: SessionConfig = config
        #: The tools, their calls and the on() handlers every connection is built with.
        self._kit = ConnectionKit(as_tool(fn) for fn in tools)
        self.mic_spec = mic
        self.speaker_spec = speaker
        self.half_duplex = half_duplex
        self.auto_reconnect = auto_reconnect
        self.max_reconnects = max_reconnects
        self.reconnect_delay_s = reconnect_delay_s
        self.reconnect_max_delay_s = reconnect_max_delay_s
        self.reconnect_healthy_s = reconnect_healthy_s
        #: Roll over to a fresh connection before ``expires_at`` (default: when ``auto_reconnect``).
        self.rollover = auto_reconnect if rollover is None else rollover
        self.rollover_margin_s = float(rollover_margin_s)
        #: Carry the conversation over to each new connection (``conversation.item.create``).
        self.reseed = reseed
        self.reseed_max_chars = reseed_max_chars
        self.reseed_max_items = reseed_max_items
        #: New connections of reconnects and rollovers wait for a slot here. None: the one the process
        #: shares (30 per minute) for a service endpoint, none for the emulator or another loopback peer.
        self.connection_budget = connection_budget
        self.connect_timeout_s = self.connection.connect_timeout_s
        self.setup_timeout_s = self.connection.setup_timeout_s
        self.speaker_memory_bytes = speaker_memory_bytes
        self.record = record
        self._engine = engine
        self._session: Session | None = None
        self._future: concurrent.futures.Future[None] | None = None
        self._stopping: concurrent.futures.Future[str] | None = None
        self._ready: concurrent.futures.Future[None] = _done(None)
        #: The microphone and speaker, and the one reader of the microphone for every connection.
        self._audio = SessionAudio()
        #: Reconnects over the whole lifetime (informational: the budget counts consecutive failures).
        self.reconnects = 0
        #: Consecutive failed reconnect attempts right now (back to 0 after a healthy connection).
        self.reconnect_failures = 0
        #: What the last :meth:`stop` left running (empty when it stopped cleanly).
        self.left_running: list[str] = []
        #: Proactive rollovers so far (one dict per rollover or reconnect: :attr:`handovers`).
        self.rollovers = 0
        #: The conversation, transcript, events and recording across the connections of a run.
        self._archive = ConversationArchive()
        #: The run on the engine loop: connections, reconnects, rollovers, status.
        self._runner = ConnectionRunner(
            self,
            self._archive,
            self._audio,
            new_session=self._new_session,
            current=lambda: self._session,
            switch=self._switch_to,
            notify=self._notify,
        )
        #: A cell's calls on the current connection (the engine runs them).
        self._calls = CellCalls(self, self._runner.rollover_driver, self._audio)
        self._listeners: list[Callable[[NotebookSession], None]] = []

    # ------------------------------------------------------------------ lifecycle

    @property
    def engine(self) -> Engine:
        if self._engine is None or not self._engine.running:
            self._engine = get_engine()
        return self._engine

    @property
    def running(self) -> bool:
        return self._future is not None and not self._future.done()

    def start(self, *, wait: bool = False, timeout: float = 30.0) -> NotebookSession:
        """Start in the background and return at once (``wait=True``: until connected).

        Starting a running session does nothing. A microphone or speaker that was asked
        for by name and is missing raises :class:`AudioDeviceUnavailable` here. With
        ``wait=True`` a session not connected within ``timeout`` seconds is stopped and
        :class:`WaitTimeout` raised; a failure to connect is raised as it is.
        """
        if self.running:
            if wait:
                self._await_ready(self._ready, timeout)
            return self
        self._begin()
        if wait:
            self._await_ready(self._ready, timeout)
        return self

    def _begin(self) -> None:
        self._runner.error = None
        self.left_running = []
        self.reconnect_failures = 0
        self._ready = concurrent.futures.Future()
        self._audio.open(
            self.mic_spec,
            self.speaker_spec,
            self.speaker_memory_bytes,
            getattr(self.config, "client_echo_reference", False) is True,
        )
        self._runner.status = "connecting"
        self._future = self.engine.submit(self._runner.run(self._ready))
        self._future.add_done_callback(lambda f: self._runner.finished(f, self._ready))

    def _await_ready(self, ready: concurrent.futures.Future[None], timeout: float) -> None:
        try:
            ready.result(timeout)
        except concurrent.futures.TimeoutError:
            raise self._not_connected(timeout) from None

    def _not_connected(self, timeout: float) -> WaitTimeout:
        status = self.status
        self.stop(wait=False)
        return WaitTimeout(
            f"not connected within {timeout:g} s (status: {status}); the attempt was stopped — "
            "check the endpoint, or start again with a longer timeout"
        )

    async def start_async(self, timeout: float = 30.0) -> NotebookSession:
        """Awaitable :meth:`start`: returns once connected, at most ``timeout`` s (else :class:`WaitTimeout`)."""
        if not self.running:
            self._begin()
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self._ready)), timeout)
        except asyncio.TimeoutError:
            raise self._not_connected(timeout) from None
        return self

    def stop(self, timeout: float = 10.0, *, wait: bool = True) -> Any:
        """Stop streaming and close the connection (idempotent).

        The connection is closed politely for up to ``timeout`` s; then its socket is
        aborted and its tasks cancelled (up to :data:`ABORT_GRACE_S` more). Blocks until
        done and returns the final status; with ``wait=False`` returns at once a
        :class:`concurrent.futures.Future` of it. If something is still running at the
        end, the status says what and a :class:`StopIncompleteWarning` is issued.
        """
        future = self._begin_stop(timeout)
        if not wait:
            return future
        try:
            status = future.result(timeout + ABORT_GRACE_S + 5)
        except concurrent.futures.TimeoutError:
            status = self._incomplete(["the engine did not answer"])
        if self.left_running:
            warnings.warn(status, StopIncompleteWarning, stacklevel=2)
        return status

    async def stop_async(self, timeout: float = 10.0) -> str:
        """Awaitable :meth:`stop`; returns the final status."""
        status: str = await asyncio.wrap_future(self._begin_stop(timeout))
        return status

    def _begin_stop(self, timeout: float) -> concurrent.futures.Future[str]:
        stopping = self._stopping
        if stopping is not None and not stopping.done():
            return stopping  # a stop is under way: everyone waits for the same one
        future = self._future
        if future is None or future.done():
            self._audio.close(self.engine)
            return _done(self.status)
        self._stopping = self.engine.submit(self._stop_on_engine(future, timeout))
        return self._stopping

    async def _stop_on_engine(self, future: concurrent.futures.Future[None], timeout: float) -> str:
        """On the engine: end the run (politely, then by force), close the devices, then report."""
        left = await self._runner.stop(timeout)
        await self._audio.aclose()
        if left:
            return self._incomplete(left)
        self.left_running = []
        if not self._runner.status.startswith("failed"):
            self._runner.status = "stopped"
        return self._runner.status

    def _incomplete(self, left: list[str]) -> str:
        self.left_running = list(left)
        self._runner.status = f"stop incomplete: still running: {', '.join(left)}"
        log.warning("voice session %s", self._runner.status)
        return self._runner.status

    # ------------------------------------------------------------------ rollover and re-seeding

    def deadline(self) -> float | None:
        """When the current connection ends (Unix seconds): its ``expires_at``, else 60 min after it connected."""
        return self._runner.rollover_driver.deadline(self._session)

    @property
    def expires_in_s(self) -> float | None:
        """Seconds until the current connection expires (None when not connected or not known)."""
        deadline = self.deadline()
        return None if deadline is None or not self.running else deadline - time.time()

    def _budget_for(self, session: Session) -> ConnectionBudget | None:
        return self._runner.budget_for(session)

    def _switch_to(self, session: Session) -> None:
        """From here on, cells talk to ``session`` (the rollover's switch, synchronous)."""
        self._session = session

    def _new_session(self) -> Session:
        woken = self._runner.rollover_driver.woken
        return self._kit.build(
            self.config, self.speaker, self._session_connection(), self._archive.recording, woken
        )

    def _session_connection(self) -> ConnectionOptions:
        """:attr:`connection`, with the timeouts as they are now (the attributes may have been changed)."""
        opts = self.connection
        if (opts.connect_timeout_s, opts.setup_timeout_s) != (self.connect_timeout_s, self.setup_timeout_s):
            opts = opts.replace(
                connect_timeout_s=self.connect_timeout_s, setup_timeout_s=self.setup_timeout_s
            )
        return opts

    def _notify(self) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(self)
            except Exception:
                log.exception("session listener failed")

    def add_listener(self, listener: Callable[[NotebookSession], None]) -> None:
        """Call ``listener(self)`` on the engine thread at ≤ 20 Hz while running (for UIs), and once
        more when the run has ended (``running`` is then False and ``status`` final)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[NotebookSession], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    # ------------------------------------------------------------------ talking to the session

    def update(
        self,
        config: SessionConfig | Mapping[str, Any] | None = None,
        *,
        wait: bool = True,
        timeout: float = 15.0,
        **changes: Any,
    ) -> Any:
        """Change the configuration; live with ``session.update`` when running.

        The new configuration is validated here first (a bad value raises
        :class:`~voicelive_nb.errors.ConfigError` naming the field). With ``wait=True``
        returns the ``session.updated`` event; otherwise a future of it.
        """
        new = updated_config(self.config, config, changes)
        self.config = new
        if not self.running or self._session is None:
            return None
        future = self.engine.submit(self._session.update(new))
        if not wait:
            return future
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise WaitTimeout(f"no session.updated within {timeout:g} s") from None

    async def update_async(
        self, config: SessionConfig | Mapping[str, Any] | None = None, **changes: Any
    ) -> Any:
        return await asyncio.wrap_future(self.update(config, wait=False, **changes) or _done(None))

    def wait_for(
        self, event_type: str, timeout: float = 30.0, predicate: Callable[[Any], bool] | None = None
    ) -> Any:
        """Block until the next ``event_type`` (see :meth:`Session.wait_for`), at most ``timeout`` s.

        On a timeout the :class:`WaitTimeout` names the event type and the timeout, and says
        when no audio is going up (the microphone is off or muted, the source has ended).
        """
        return self._calls.wait_for(event_type, timeout, predicate)

    async def wait_for_async(
        self, event_type: str, timeout: float = 30.0, predicate: Callable[[Any], bool] | None = None
    ) -> Any:
        return await self._calls.wait_for_async(event_type, timeout, predicate)

    def send(self, event: Any, timeout: float = 10.0, *, wait: bool = True) -> Any:
        """Send one client event on the current connection. ``wait=False``: return at once a
        :class:`concurrent.futures.Future` that is done when it was sent (for widget callbacks,
        which must not block the kernel)."""
        return self._calls.send(event, timeout, wait)

    def commit(self, *, wait: bool = True) -> Any:
        return self.send({"type": "input_audio_buffer.commit"}, wait=wait)

    def create_response(self, *, wait: bool = True, **response: Any) -> Any:
        return self._calls.post(lambda s: s.create_response(**response), "response.created", 10, wait)

    def end_turn(self, *, wait: bool = True, **response: Any) -> Any:
        """The user's turn is over (push-to-talk released, turn detection off): commit the input
        buffer and ask for a response, in that order on one connection."""
        return self._calls.end_turn(response, wait)

    def cancel_response(self, *, wait: bool = True) -> Any:
        return self.send({"type": "response.cancel"}, wait=wait)

    def approve(
        self, approval_request_id: str, approve: bool = True, reason: str | None = None, *, wait: bool = True
    ) -> Any:
        """Answer an MCP approval request (``Session.approve``); ``approve=False`` denies it."""
        answer = lambda s: s.approve(approval_request_id, approve, reason)  # noqa: E731
        return self._calls.post(answer, "conversation.item.created", 10, wait)

    def speak(
        self, audio: str | Path | AudioSource, *, pace: str = "realtime", tail_silence_ms: int = 1500
    ) -> None:
        """Play a WAV file (or any source) into the session as the user's voice.

        Replaces the microphone stream while it plays; useful without audio devices.
        """
        self._calls.speak(audio, pace, tail_silence_ms)

    # ------------------------------------------------------------------ tools

    def tool(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout_s: float | None = 30.0,
    ) -> Any:
        """Register a Python function the voice agent may call (``@session.tool`` or ``@session.tool(timeout_s=5)``).

        The name, description and JSON schema come from the function (see :mod:`voicelive_nb.tools`);
        a running session gets the new tool list at once (``session.update``), later
        connections get it from the start. Returns ``fn`` unchanged.
        """
        if fn is None:
            return lambda f: self.tool(f, name=name, description=description, timeout_s=timeout_s)
        registered = as_tool(fn, name=name, description=description, timeout_s=timeout_s)
        self._kit.register(registered)
        session = self._session
        if session is not None and self.running:
            future = self.engine.submit(session.add_tools(registered))
            future.add_done_callback(log_tool_update)
        return fn

    def add_tools(self, *fns: Callable[..., Any] | Tool, timeout: float = 15.0) -> None:
        """Register several tools; on a running session, wait until the service confirms the new list."""
        added = [as_tool(fn) for fn in fns]
        self._kit.register(*added)
        session = self._session
        if session is not None and self.running:
            self._calls.run(session.add_tools(*added), timeout)

    @property
    def tools(self) -> list[Tool]:
        """The registered tools."""
        return list(self._kit.tools.values())

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Every call the model made of a registered tool, across reconnects, oldest first."""
        return list(self._kit.tool_calls)

    def tool_table(self) -> Any:
        """The tool calls as a pandas DataFrame (name, arguments, status, output, duration first)."""
        return tool_calls_table(self._kit.tool_calls)

    def add_tool_listener(self, listener: Callable[[ToolCall], None]) -> None:
        """``listener(call)`` on every change of a tool call (engine thread; keep it cheap)."""
        self._kit.tool_listeners.append(listener)

    def on(self, event_type: str, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Call ``handler(event)`` (on the engine thread) for each ``event_type`` event, also after reconnects."""
        self._kit.handlers.append((event_type, handler))
        if self._session is not None:
            self.engine.call_soon(self._session.on, event_type, handler)
        return handler

    # ------------------------------------------------------------------ views (safe from any thread)

    @property
    def status(self) -> str:
        session = self._session
        if self._runner.status == "connected" and session is not None and session.status != "connected":
            return session.status
        return self._runner.status

    def connection_summary(self) -> ConnectionSummary:
        """Where the session connects and how, without secrets: from the live session once there is
        one, else from the options it was built with (the same settings and emulator rule as ``Session``)."""
        live = self._session
        if live is not None:
            return live.connection_summary()
        return self.connection.summary()

    @property
    def mic(self) -> AudioSource | None:
        """The microphone of the current run (None: none)."""
        return self._audio.mic

    @property
    def speaker(self) -> AudioSink | None:
        """The speaker of the current run (without one: an in-memory sink)."""
        return self._audio.speaker

    @property
    def audio_notes(self) -> list[str]:
        """Why a ``"auto"`` device is missing (one line each)."""
        return self._audio.notes

    @property
    def handovers(self) -> list[dict[str, Any]]:
        """One dict per rollover or reconnect (``gap_ms``: last mic frame on the old connection → first on
        the new one; ``prepare_ms``; ``forced``)."""
        return self._archive.handovers

    @property
    def incomplete_items(self) -> list[str]:
        """Item ids of assistant replies cut off by a lost connection (marked incomplete in :attr:`transcript`)."""
        return self._archive.incomplete_items

    @property
    def session(self) -> Session | None:
        """The live :class:`Session` (owned by the engine thread: read, don't drive it)."""
        return self._session

    @property
    def error(self) -> BaseException | None:
        session = self._session
        return self._runner.error or (session.failure if session is not None else None)

    @property
    def events(self) -> list[Any]:
        """Every event received, across reconnects and rollovers (one timeline, oldest first)."""
        return [event for _, event in self.timed_events]

    @property
    def timed_events(self) -> list[tuple[float, Any]]:
        """``(time.monotonic(), event)`` across connections, in time order."""
        return self._archive.timed_events(self._calls.snapshot(lambda s: s.timed_events(), []))

    @property
    def transcript(self) -> list[Any]:
        """The conversation across connections (a reply cut off by a lost connection says so)."""
        current: list[TranscriptEntry] = self._calls.snapshot(lambda s: list(s.state.transcript), [])
        return list(self._archive.transcript(current))

    @property
    def state(self) -> Any:
        session = self._session
        return session.state if session is not None else None

    def __repr__(self) -> str:
        return f"<NotebookSession {self.status}>"

    def __enter__(self) -> NotebookSession:
        return self.start(wait=True)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _done(value: Any) -> concurrent.futures.Future[Any]:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    future.set_result(value)
    return future
