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
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
import uuid
import warnings
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .audio.base import AudioSink, AudioSource
from .engine import Engine, get_engine
from .errors import (
    AudioDeviceUnavailable,
    AuthenticationError,
    ConfigError,
    ConnectionClosed,
    TransportError,
    VoiceLiveError,
    WaitTimeout,
)
from .protocol.config import SessionConfig
from .protocol.state import TranscriptEntry
from .rollover import (
    PUBLISHED_MAX_CONNECTION_S,
    ConnectionBudget,
    check_budget,
    history_items,
    process_budget,
    reseed_plan,
    rollover_due,
)
from .session import ConnectionSummary, Session, summarize_options, updated_config
from .tools import Tool, ToolCall, as_tool, tool_calls_table

log = logging.getLogger("voicelive_nb.notebook")

T = TypeVar("T")

#: How often the background pump refreshes derived state (mute, UI listeners): ≤ 20 Hz.
PUMP_INTERVAL_S = 0.05
#: After the polite close ran out of time: how long the aborted connection's tasks get to end.
ABORT_GRACE_S = 2.0
#: Default bound of the in-memory speaker used when there is no speaker (60 s at 24 kHz).
SPEAKER_MEMORY_BYTES = 60 * 24000 * 2


#: Appended to a reply in :attr:`NotebookSession.transcript` when a lost connection cut it off.
INCOMPLETE_NOTE = "[incomplete: the connection was lost]"


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
        endpoint: str | None = None,
        api_key: str | None = None,
        credential: Any = None,
        model: str | None = None,
        api_version: str | None = None,
        wire_shape: str | None = None,
        record: str | Path | None = None,
        half_duplex: bool = False,
        emulator: bool | str = "auto",
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
        connect_timeout_s: float = 10.0,
        setup_timeout_s: float = 15.0,
        speaker_memory_bytes: int | None = SPEAKER_MEMORY_BYTES,
        tools: Sequence[Callable[..., Any] | Tool] = (),
        engine: Engine | None = None,
        dotenv: bool = True,
    ) -> None:
        if config is None:
            config = SessionConfig.server_vad()
        elif isinstance(config, Mapping):
            config = SessionConfig.from_dict(dict(config))
        if isinstance(max_reconnects, bool) or not isinstance(max_reconnects, int) or max_reconnects < 0:
            raise ConfigError("max_reconnects", max_reconnects, "0 or more consecutive failed reconnects")
        _check_seconds("reconnect_delay_s", reconnect_delay_s, allow_zero=True)
        _check_seconds("reconnect_max_delay_s", reconnect_max_delay_s, allow_zero=True)
        _check_seconds("reconnect_healthy_s", reconnect_healthy_s, allow_zero=True)
        if reconnect_max_delay_s < reconnect_delay_s:
            raise ConfigError(
                "reconnect_max_delay_s",
                reconnect_max_delay_s,
                f"at least reconnect_delay_s ({reconnect_delay_s:g} s)",
            )
        _check_seconds("connect_timeout_s", connect_timeout_s)
        _check_seconds("setup_timeout_s", setup_timeout_s)
        _check_seconds("rollover_margin_s", rollover_margin_s)
        check_budget(reseed_max_chars, reseed_max_items)
        if rollover is not None and not isinstance(rollover, bool):
            raise ConfigError("rollover", rollover, "True, False, or None (on when auto_reconnect=True)")
        if connection_budget is not None and not isinstance(connection_budget, ConnectionBudget):
            raise ConfigError(
                "connection_budget", connection_budget, "a voicelive_nb.rollover.ConnectionBudget"
            )
        if speaker_memory_bytes is not None and (
            isinstance(speaker_memory_bytes, bool)
            or not isinstance(speaker_memory_bytes, int)
            or speaker_memory_bytes <= 0
        ):
            raise ConfigError(
                "speaker_memory_bytes",
                speaker_memory_bytes,
                "a positive number of bytes, or None for no bound",
            )
        self.config: SessionConfig = config
        self._tools: dict[str, Tool] = {t.name: t for t in (as_tool(fn) for fn in tools)}
        self._tool_calls: list[ToolCall] = []
        self._tool_listeners: list[Callable[[ToolCall], None]] = []
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
        self._budget: ConnectionBudget | None = connection_budget
        self.connect_timeout_s = connect_timeout_s
        self.setup_timeout_s = setup_timeout_s
        self.speaker_memory_bytes = speaker_memory_bytes
        self.record = record
        self._session_kwargs: dict[str, Any] = {
            "endpoint": endpoint,
            "api_key": api_key,
            "credential": credential,
            "model": model,
            "api_version": api_version,
            "wire_shape": wire_shape,
            "emulator": emulator,
            "emulator_options": emulator_options,
            "dotenv": dotenv,
        }
        self._engine = engine
        self._session: Session | None = None
        self._future: concurrent.futures.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._stopping: concurrent.futures.Future[str] | None = None
        self._ready: concurrent.futures.Future[None] = _done(None)
        self._status = "idle"
        self._error: BaseException | None = None
        self.mic: AudioSource | None = None
        self.speaker: AudioSink | None = None
        self.audio_notes: list[str] = []
        #: Reconnects over the whole lifetime (informational: the budget counts consecutive failures).
        self.reconnects = 0
        #: Consecutive failed reconnect attempts right now (back to 0 after a healthy connection).
        self.reconnect_failures = 0
        #: What the last :meth:`stop` left running (empty when it stopped cleanly).
        self.left_running: list[str] = []
        #: Proactive rollovers so far, and one dict per rollover or reconnect (figures, see :attr:`handovers`).
        self.rollovers = 0
        self.handovers: list[dict[str, Any]] = []
        #: Item ids of assistant replies cut off by a lost connection (marked incomplete in :attr:`transcript`).
        self.incomplete_items: list[str] = []
        self._history: list[dict[str, Any]] = []
        self._seeded: set[str] = set()
        self._past_transcript: list[TranscriptEntry] = []
        self._past_events: deque[tuple[float, Any]] = deque(maxlen=20_000)
        self._hub: _MicHub | None = None
        self._feed: _MicFeed | None = None
        self._recording: _SharedRecording | None = None
        self._no_rollover: Session | None = None
        self._closers: set[asyncio.Task[None]] = set()
        self._wake_event: asyncio.Event | None = None
        self._old_seeded: set[str] = set()
        #: Sends from cells under way, per connection (a rollover waits for them: they are not in ``_sent`` yet).
        self._inflight: dict[Session, int] = {}
        self._handlers: list[tuple[str, Callable[[Any], Any]]] = []
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
        self._error = None
        self.left_running = []
        self.reconnect_failures = 0
        self._ready = concurrent.futures.Future()
        self._open_audio()
        self._status = "connecting"
        self._future = self.engine.submit(self._main(self._ready))
        self._future.add_done_callback(self._finished)

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
            self._close_audio()
            return _done(self.status)
        self._stopping = self.engine.submit(self._stop_on_engine(future, timeout))
        return self._stopping

    async def _stop_on_engine(self, future: concurrent.futures.Future[None], timeout: float) -> str:
        """On the engine: ask the main task to end, then abort what did not, then report."""
        task = self._task
        session = self._session
        if self._stop is not None:
            self._stop.set()
        if task is not None and not task.done() and self._status == "connecting":
            task.cancel()  # still connecting: nothing to close politely, give up the attempt
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=timeout)
        if task is not None and not task.done():
            log.warning("the voice session did not close within %g s; aborting its connection", timeout)
            if session is not None:
                _abort_connection(session)
            await asyncio.wait({task}, timeout=ABORT_GRACE_S / 2)
            if not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=ABORT_GRACE_S / 2)
        await self._settle(session)
        left = _still_running(task, session)
        await self._aclose_audio()
        if left:
            return self._incomplete(left)
        self.left_running = []
        if not self._status.startswith("failed"):
            self._status = "stopped"
        return self._status

    async def _settle(self, session: Session | None) -> None:
        """Let an aborted socket and cancelled tasks report themselves finished (bounded)."""
        if session is None:
            return
        pending = session.background_tasks()
        if pending:
            await asyncio.wait(pending, timeout=0.5)
        if session._transport is not None:
            await session._transport.wait_closed(0.5)

    def _incomplete(self, left: list[str]) -> str:
        self.left_running = list(left)
        self._status = f"stop incomplete: still running: {', '.join(left)}"
        log.warning("voice session %s", self._status)
        return self._status

    def _finished(self, future: concurrent.futures.Future[None]) -> None:
        if not self._ready.done():  # never leave a waiter hanging
            self._ready.set_exception(
                self._error
                or VoiceLiveError(f"the session ended before it connected (status: {self._status})")
            )
        if future.cancelled():
            if not self._status.startswith(("failed", "stop incomplete")):
                self._status = "stopped"
            return
        exc = future.exception()
        if exc is not None:
            self._error = exc
            self._status = f"failed: {type(exc).__name__}: {exc}"
            log.error("voice session failed: %s", exc)

    async def _main(self, ready: concurrent.futures.Future[None]) -> None:
        self._task = asyncio.current_task()
        stop = self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        connected_once = False
        self._reset_timeline()
        stereo = getattr(self.config, "client_echo_reference", False) is True
        self._hub = (
            _MicHub(self.mic, self.config.input_sample_rate, stereo=stereo) if self.mic is not None else None
        )
        self._recording = self._open_recording()
        session: Session | None = None
        try:
            while True:
                if session is None:
                    if connected_once and not await self._wait_for_budget():
                        self._status = "stopped"
                        return
                    session = self._new_session()
                    self._session = session
                    if not connected_once:
                        self._budget = self._budget_for(session)
                        if self._budget is not None:
                            self._budget.record()  # a start() counts, but is never held back
                    try:
                        await session.open()
                        self._seeded = await self._seed(session)
                    except Exception as exc:
                        retry = connected_once and _retryable(exc) and not stop.is_set()
                        if not retry:
                            self._error = exc
                            self._status = session.status
                            _settle_future(ready, exc)
                            if connected_once and isinstance(exc, AuthenticationError):
                                self._status = (
                                    f"failed: the credential was refused on reconnect ({_reason(exc)}); "
                                    "not retrying — check the key or sign in again, then start() again"
                                )
                                log.error("voice session %s", self._status)
                                return
                            raise
                        with contextlib.suppress(Exception):
                            await session.close()
                        session = None
                        if not await self._retry_or_give_up(self._status_of_failure(exc), exc):
                            return
                        continue
                    self._attach_mic(session)
                connected_at = loop.time()
                connected_once = True
                self._status = "connected"
                _settle_future(ready, None)
                pump = loop.create_task(self._pump(session))
                stop_wait = loop.create_task(stop.wait())
                waits: set[asyncio.Future[Any]] = {stop_wait}
                roll: asyncio.Task[bool] | None = None
                if self.rollover and session is not self._no_rollover:
                    roll = loop.create_task(self._rollover_moment(session))
                    waits.add(roll)
                closed = loop.create_task(session.wait_closed())
                waits.add(closed)
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    pump.cancel()
                    stop_wait.cancel()
                    closed.cancel()
                    if roll is not None and not roll.done():
                        roll.cancel()
                if (
                    roll is not None
                    and roll.done()
                    and not roll.cancelled()
                    and roll.exception() is None
                    and roll.result()
                    and not stop.is_set()
                    and session.failure is None
                ):
                    nxt = await self._roll_over(session)
                    if nxt is not None:
                        session = nxt
                        self.reconnect_failures = 0
                    continue
                failure = session.failure
                lost = isinstance(failure, ConnectionClosed) and not stop.is_set()
                if not lost or not self.auto_reconnect:
                    await session.close()
                    self._status = "stopped" if failure is None else session.status
                    return
                self._mark_cut_off(session)
                feed = await self._detach_mic(session)
                await session.close()
                self._retire(
                    session,
                    reason=session.status.removeprefix("failed: "),
                    last_old=feed.last_sent_at if feed is not None else None,
                )
                if loop.time() - connected_at >= self.reconnect_healthy_s:
                    self.reconnect_failures = 0  # it was healthy: a fresh budget
                status = session.status
                session = None
                if not await self._retry_or_give_up(status, failure):
                    return
        finally:
            for closer in tuple(self._closers):
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(closer, 5)
            if self._hub is not None:
                await self._hub.aclose()
            if self._recording is not None:
                self._recording.finish()
            self._notify()

    @staticmethod
    def _status_of_failure(exc: BaseException) -> str:
        return f"failed: {_reason(exc)}"

    async def _retry_or_give_up(self, status: str, exc: BaseException | None) -> bool:
        """Count one more consecutive failure; back off and return True to try again."""
        assert self._stop is not None
        self.reconnect_failures += 1
        reason = status.removeprefix("failed: ")
        if self.reconnect_failures > self.max_reconnects:
            self._status = (
                f"failed: {reason} (gave up after {self.max_reconnects} consecutive failed reconnects)"
            )
            self._error = exc
            log.error("voice session: %s", self._status)
            return False
        self.reconnects += 1
        self._status = f"reconnecting ({self.reconnect_failures}/{self.max_reconnects}): {reason}"
        log.warning("voice session %s", self._status)
        self._notify()
        delay = min(self.reconnect_delay_s * 2 ** (self.reconnect_failures - 1), self.reconnect_max_delay_s)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=delay)
        if self._stop.is_set():
            self._status = "stopped"
            return False
        return True

    async def _wait_for_budget(self) -> bool:
        """Hold a new connection back until the process-wide budget has room; False when stopped."""
        assert self._stop is not None
        budget = self._budget
        if budget is None:
            return not self._stop.is_set()
        before = self._status

        def waiting(delay: float) -> None:
            self._status = (
                f"waiting {delay:.1f} s for the connection budget "
                f"({budget.limit} new connections per {budget.window_s:g} s)"
            )
            log.warning("voice session %s", self._status)
            self._notify()

        ok = await budget.acquire(self._stop, waiting)
        if ok:
            self._status = before
        return ok

    def _budget_for(self, session: Session) -> ConnectionBudget | None:
        if self.connection_budget is not None:
            return self.connection_budget
        host = urlsplit(session.settings.endpoint or "").hostname or ""
        if session.use_emulator or is_loopback_host(host):
            return None
        return process_budget()

    # ------------------------------------------------------------------ rollover and re-seeding

    def deadline(self) -> float | None:
        """When the current connection ends (Unix seconds): its ``expires_at``, else 60 min after it connected."""
        session = self._session
        if session is None:
            return None
        expires = session.expires_at
        if expires is not None:
            return expires
        started = getattr(session, "_vlnb_connected_unix", None)
        return None if started is None else started + PUBLISHED_MAX_CONNECTION_S

    @property
    def expires_in_s(self) -> float | None:
        """Seconds until the current connection expires (None when not connected or not known)."""
        deadline = self.deadline()
        return None if deadline is None or not self.running else deadline - time.time()

    async def _rollover_moment(self, session: Session) -> bool:
        """Return True at the moment to roll over (quiet, inside the margin; at the latest near the deadline)."""
        margin = self.rollover_margin_s
        while True:
            deadline = self.deadline() if self._session is session else None
            if deadline is None:
                await asyncio.sleep(0.5)
                continue
            now = time.time()
            if rollover_due(now, deadline, margin, quiet=self._quiet(session)):
                return True
            far = deadline - margin - now
            if far > 0.05:
                await asyncio.sleep(min(far, 1.0))
            else:  # inside the margin: look again on every event (a turn's end is the quiet moment)
                await self._next_event(0.05)

    async def _next_event(self, timeout: float) -> None:
        wake = self._wake
        wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout)

    async def _until_quiet(self, session: Session) -> None:
        """Until ``session`` is quiet, its connection is gone, or its deadline is 0.1 s away."""
        while session.failure is None and not self._quiet(session):
            expires = session.expires_at
            if expires is None or time.time() >= expires - 0.1:
                return
            await self._next_event(0.02)

    @property
    def _wake(self) -> asyncio.Event:
        """Set on every event received (engine loop): the rollover looks for its quiet moment then."""
        if self._wake_event is None:
            self._wake_event = asyncio.Event()
        return self._wake_event

    def _woken(self, _event: Any) -> None:
        if self._wake_event is not None:
            self._wake_event.set()

    def _quiet(self, session: Session) -> bool:
        """No response running or asked for, no tool call open, the user not speaking, nothing playing."""
        state = session.state
        return (
            state.active_response is None
            and not state.user_speaking
            and not state.pending_function_calls
            and not _sink_busy(self.speaker)
            and not self._inflight.get(session)
            and not getattr(session.source, "playing", False)  # a speak() is under way
            and not _response_requested(session)
            and all(entry.final for entry in state.transcript[-4:])
        )

    async def _carry_over(self, old: Session, nxt: Session) -> set[str]:
        """Seed ``nxt`` with the conversation and switch to it at a quiet moment of ``old``.

        Whatever ``old`` is given meanwhile (a cell's turn) is let finish and carried too. The
        last look at ``old`` and the switch happen together, synchronously — in the handler of
        the event that made ``old`` quiet, before any waiting cell hears of that event — so a
        cell's next turn can only go to ``nxt``. Returns the old connection's seeded ids.
        """
        carried = self._collect(old)
        seeded = await self._seed(nxt, extra=carried)
        while True:
            late = await self._switch_when_quiet(old, nxt, carried, seeded)
            if late is None:
                return self._old_seeded
            for item in late:
                await nxt.send({"type": "conversation.item.create", "item": item})
                seeded.add(item["id"])
            carried.extend(late)
            await nxt.wait_for(
                "conversation.item.created", timeout=self.setup_timeout_s, predicate=_item_is(late[-1]["id"])
            )

    async def _switch_when_quiet(
        self, old: Session, nxt: Session, carried: list[dict[str, Any]], seeded: set[str]
    ) -> list[dict[str, Any]] | None:
        """Switch to ``nxt`` once ``old`` is quiet (None), or return what ``old`` added that ``nxt`` lacks."""
        outcome: asyncio.Future[list[dict[str, Any]] | None] = asyncio.get_running_loop().create_future()

        def look(_event: Any = None) -> None:
            if outcome.done():
                return
            expires = old.expires_at
            forced = old.failure is not None or expires is None or time.time() >= expires - 0.1
            quiet = self._quiet(old)
            if not quiet and not forced:
                return
            known = {item["id"] for item in carried}
            late = [item for item in self._collect(old) if item["id"] not in known]
            if late:
                outcome.set_result(late)
                return
            self._retire(old, reason="rollover", collected=carried)
            self.handovers[-1]["forced"] = not quiet  # the deadline came before a quiet moment
            self._old_seeded, self._seeded = self._seeded, seeded
            self._session = nxt  # from here on, cells talk to the new connection
            outcome.set_result(None)

        old.on("*", look)
        try:
            look()
            while not outcome.done():
                await asyncio.wait({outcome}, timeout=0.02)
                look()
        finally:
            old.off("*", look)
        return outcome.result()

    async def _roll_over(self, old: Session) -> Session | None:
        """Open the next connection, re-seed it, move the microphone over, close the old one."""
        started = time.monotonic()
        if not await self._wait_for_budget():
            return None
        nxt = self._new_session()
        try:
            await nxt.open()
            old_seeded = await self._carry_over(old, nxt)
        except Exception as exc:
            log.warning("rolling over to a new connection failed (%s); staying on this one", _reason(exc))
            self._session = old
            self._no_rollover = old
            with contextlib.suppress(Exception):
                await nxt.close()
            return None
        if old.failure is not None:
            log.info("the old connection ended during the rollover")
        feed = await self._detach_mic(old)
        self.handovers[-1]["last_old_frame"] = feed.last_sent_at if feed is not None else None
        self._attach_mic(nxt)
        self.rollovers += 1
        self.handovers[-1].update(kind="rollover", prepare_ms=round((time.monotonic() - started) * 1000, 1))
        known = {item["id"] for item in self._history}
        closer = asyncio.get_running_loop().create_task(self._close_old(old, nxt, old_seeded, known))
        self._closers.add(closer)
        closer.add_done_callback(self._closers.discard)
        return nxt

    async def _close_old(self, old: Session, nxt: Session, old_seeded: set[str], known: set[str]) -> None:
        """Close a rolled-over connection; a reply the deadline forced over may finish first and is carried."""
        await self._until_quiet(old)
        self._refresh_past(old, old_seeded)
        late = [item for item in self._collect(old, old_seeded) if item["id"] not in known]
        if late:
            self._history.extend(late)
            if self._session is nxt and nxt.failure is None:
                for item in late:
                    self._seeded.add(item["id"])
                    with contextlib.suppress(Exception):
                        await nxt.send({"type": "conversation.item.create", "item": item})
        await old.close()
        self._past_events.extend(old.timed_events())

    def _refresh_past(self, old: Session, old_seeded: set[str]) -> None:
        """Bring the archived lines of ``old`` up to date (text that arrived after the switch)."""
        past = self._past_transcript
        where = {entry.item_id: index for index, entry in enumerate(past)}
        fresh = [e for e in old.state.transcript if e.item_id not in old_seeded]
        at = max((where[e.item_id] for e in fresh if e.item_id in where), default=len(past) - 1) + 1
        for entry in fresh:
            if entry.item_id in where:
                if not past[where[entry.item_id]].text.endswith(INCOMPLETE_NOTE):
                    past[where[entry.item_id]] = entry
            else:
                past.insert(at, entry)
                at += 1

    def _collect(self, session: Session, seeded: set[str] | None = None) -> list[dict[str, Any]]:
        """The items a connection added to the conversation (not the ones it was seeded with)."""
        state = session.state
        texts = {e.item_id: e.text for e in state.transcript}
        items = history_items(state.items, texts, skip_ids=self._seeded if seeded is None else seeded)
        for item in items:
            if "id" not in item:
                item["id"] = f"vlnb{uuid.uuid4().hex[:24]}"
        return items

    async def _seed(self, session: Session, extra: Sequence[dict[str, Any]] = ()) -> set[str]:
        """Send the conversation so far to a fresh connection, bounded by the budget; the ids sent."""
        history = [*self._history, *extra]
        seeded: set[str] = set()
        if not self.reseed or not history:
            return seeded
        plan = reseed_plan(history, max_chars=self.reseed_max_chars, max_items=self.reseed_max_items)
        events = plan.events()
        for event in events:
            if "id" not in event["item"]:
                event["item"]["id"] = f"vlnbnote{uuid.uuid4().hex[:20]}"
            seeded.add(event["item"]["id"])
        for event in events:
            await session.send(event)
        if events:
            last = events[-1]["item"]["id"]
            await session.wait_for(
                "conversation.item.created",
                timeout=self.setup_timeout_s,
                predicate=lambda e: isinstance(e.item, Mapping) and e.item.get("id") == last,
            )
        if plan.dropped:
            log.info(
                "re-seeded %d items; %d older ones omitted for the budget", len(events) - 1, plan.dropped
            )
        return seeded

    def _retire(
        self,
        old: Session,
        *,
        reason: str,
        collected: list[dict[str, Any]] | None = None,
        last_old: float | None = None,
    ) -> None:
        """Move what a finished connection said into the history and the timeline."""
        items = self._collect(old) if collected is None else collected
        self._history.extend(items)
        bound = 4 * (self.reseed_max_items or 100)
        if len(self._history) > bound:  # the budget keeps only the newest anyway
            del self._history[: len(self._history) - bound]
        cut = set(self.incomplete_items)
        shown: set[str] = set()
        for entry in old.state.transcript:
            if entry.item_id in self._seeded:
                continue
            if entry.item_id in cut:
                entry = entry._replace(text=f"{entry.text} {INCOMPLETE_NOTE}".lstrip(), final=False)
            shown.add(entry.item_id)
            self._past_transcript.append(entry)
        for item_id in self.incomplete_items:  # cut off before any of its text arrived
            item = old.state.item(item_id)
            if item_id not in shown and item is not None and item.type == "message":
                self._past_transcript.append(TranscriptEntry("assistant", item_id, INCOMPLETE_NOTE, False))
        if old.failure is not None:  # a lost connection is closed already: keep its events now
            self._past_events.extend(old.timed_events())
        self.handovers.append(
            {
                "kind": "reconnect",
                "reason": reason,
                "at": time.time(),
                "carried_items": len(self._history),
                "last_old_frame": last_old,
            }
        )
        if self._recording is not None:
            self._recording.recorder.note("rollover", reason=reason, items=len(self._history))

    def _mark_cut_off(self, session: Session) -> None:
        """A reply still running when the connection was lost is incomplete, not silently dropped."""
        for response in session.state.active_responses:
            self.incomplete_items.extend(response.output_item_ids)

    def _attach_mic(self, session: Session) -> None:
        if self._hub is None:
            return
        feed = self._feed = _MicFeed(self._hub)
        session.input_taps.append(feed.confirm)
        session.stream(feed)
        if self.handovers and "first_new_frame" not in self.handovers[-1]:
            self.handovers[-1]["first_new_frame"] = None
            feed.on_first = self._first_frame

    def _first_frame(self, at: float) -> None:
        handover = self.handovers[-1]
        handover["first_new_frame"] = at
        last = handover.get("last_old_frame")
        if last is not None:
            handover["gap_ms"] = round((at - last) * 1000, 1)

    async def _detach_mic(self, session: Session) -> _MicFeed | None:
        """Stop feeding ``session``; a frame it took but did not send goes back to the front."""
        feed, self._feed = self._feed, None
        if feed is None:
            return None
        feed.close()  # the audio task ends after the frame it is sending, if any
        pump = session._pump
        if pump is not None and not pump.done():
            await asyncio.wait({pump}, timeout=1.0)
            if not pump.done():  # a send that hangs: that frame is not known to have gone out
                pump.cancel()
                await asyncio.wait({pump}, timeout=1.0)
        feed.give_back()
        return feed

    def _reset_timeline(self) -> None:
        self._history = []
        self._seeded = set()
        self._past_transcript = []
        self._past_events.clear()
        self.incomplete_items = []
        self._no_rollover = None

    def _open_recording(self) -> _SharedRecording | None:
        if self.record is None:
            return None
        from .recording import Recorder

        recorder = Recorder(
            Path(self.record),
            input_sample_rate=self.config.input_sample_rate,
            output_sample_rate=self.config.output_sample_rate,
        )
        return _SharedRecording(recorder)

    def _new_session(self) -> Session:
        session = Session(
            self.config,
            source=None,
            sink=self.speaker,
            close_audio=False,
            tools=list(self._tools.values()),
            **self._session_options(),
        )
        if self._recording is not None:
            session._recorder = self._recording  # one recording across connections
        session.tool_listeners.append(self._on_tool_call)
        session.on("session.created", lambda _e: setattr(session, "_vlnb_connected_unix", time.time()))
        session.on("*", self._woken)
        answered: dict[str, float] = {}
        session._vlnb_answered = answered  # type: ignore[attr-defined]
        session._vlnb_asked = {}  # type: ignore[attr-defined]
        for answer in _ANSWERED_BY.values():
            session.on(answer, lambda e: answered.__setitem__(e.type, time.monotonic()))
        for event_type, handler in self._handlers:
            session.on(event_type, handler)
        return session

    def _session_options(self) -> dict[str, Any]:
        return {
            **self._session_kwargs,
            "connect_timeout_s": self.connect_timeout_s,
            "setup_timeout_s": self.setup_timeout_s,
        }

    async def _pump(self, session: Session) -> None:
        """≤ 20 Hz: half-duplex muting and UI listeners; never the audio path itself."""
        while True:
            if self.half_duplex and self.mic is not None and hasattr(self.mic, "muted"):
                speaking = session.state.active_response is not None or _sink_busy(self.speaker)
                self.mic.muted = speaking
            self._notify()
            await asyncio.sleep(PUMP_INTERVAL_S)

    def _notify(self) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(self)
            except Exception:
                log.exception("session listener failed")

    def add_listener(self, listener: Callable[[NotebookSession], None]) -> None:
        """Call ``listener(self)`` on the engine thread at ≤ 20 Hz while running (for UIs)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[NotebookSession], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    # ------------------------------------------------------------------ audio devices

    def _open_audio(self) -> None:
        self.audio_notes = []
        self.mic = self._resolve(self.mic_spec, "input")  # type: ignore[assignment]
        self.speaker = self._resolve(self.speaker_spec, "output")  # type: ignore[assignment]
        attach = getattr(self.mic, "attach_reference", None)
        if getattr(self.config, "client_echo_reference", False) is True and callable(attach):
            from .audio.device import SpeakerSink

            if isinstance(self.speaker, SpeakerSink):  # the echo reference is what it plays
                attach(self.speaker)

    def _resolve(self, spec: Any, kind: str) -> AudioSource | AudioSink | None:
        if spec is False or spec is None:
            return None if kind == "input" else _memory_sink(self.speaker_memory_bytes)
        if not isinstance(spec, (str, int)):  # a source or sink object (bool is an int)
            return spec  # type: ignore[no-any-return]
        from .audio import device

        ok, reason = device.audio_available()
        device_spec = None if spec in (True, "auto") else spec
        if not ok:
            if spec == "auto":
                self.audio_notes.append(f"no {kind} device: {reason}")
                return None if kind == "input" else _memory_sink(self.speaker_memory_bytes)
            raise AudioDeviceUnavailable(
                f"{'microphone' if kind == 'input' else 'speaker'} not available: {reason}"
            )
        try:
            if kind == "input":
                microphone = device.MicrophoneSource(device_spec, max_queue_s=10.0)
                microphone.persistent = True  # buffers (bounded) while reconnecting
                mic: AudioSource = microphone
                return mic
            speaker: AudioSink = device.SpeakerSink(device_spec)
            return speaker
        except AudioDeviceUnavailable as exc:
            if spec == "auto":
                self.audio_notes.append(str(exc))
                return None if kind == "input" else _memory_sink(self.speaker_memory_bytes)
            raise

    def _close_audio(self) -> None:
        mic, speaker = self.mic, self.speaker
        if mic is not None:
            with contextlib.suppress(Exception):
                self.engine.run(mic.aclose(), timeout=5)
        if speaker is not None:
            with contextlib.suppress(Exception):
                speaker.close()

    async def _aclose_audio(self) -> None:
        mic, speaker = self.mic, self.speaker
        if mic is not None:
            try:
                await asyncio.wait_for(mic.aclose(), timeout=5)
            except Exception as exc:
                log.warning("closing the microphone failed: %s", exc)
        if speaker is not None:
            try:
                speaker.close()
            except Exception as exc:
                log.warning("closing the speaker failed: %s", exc)

    # ------------------------------------------------------------------ talking to the session

    def _live(self) -> Session:
        if self._session is None or not self.running:
            raise VoiceLiveError(f"the session is not running (status: {self.status}); call start() first")
        return self._session

    async def _on_current(self, call: Callable[[Session], Any], asks: str | None = None) -> Any:
        """Run ``call(session)`` on the connection that is current when it runs (on the engine loop),
        so that nothing sent from a cell lands on a connection that a rollover just retired."""
        session = self._live()
        if asks is not None:  # the service answers with ``asks``: until then the moment is not quiet
            getattr(session, "_vlnb_asked", {})[asks] = time.monotonic()
        self._inflight[session] = self._inflight.get(session, 0) + 1
        try:
            return await call(session)
        finally:
            left = self._inflight.pop(session, 1) - 1
            if left > 0:
                self._inflight[session] = left

    def _run(self, coro: Any, timeout: float) -> Any:
        return self.engine.run(coro, timeout=timeout)

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
        session = self._live()
        future = self.engine.submit(session.wait_for(event_type, timeout, predicate))
        try:
            return future.result(timeout + 5)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise WaitTimeout(self._timeout_message(event_type, timeout, session)) from None
        except WaitTimeout:
            raise WaitTimeout(self._timeout_message(event_type, timeout, session)) from None

    async def wait_for_async(
        self, event_type: str, timeout: float = 30.0, predicate: Callable[[Any], bool] | None = None
    ) -> Any:
        session = self._live()
        try:
            return await self.engine.run_async(session.wait_for(event_type, timeout, predicate))
        except WaitTimeout:
            raise WaitTimeout(self._timeout_message(event_type, timeout, session)) from None

    def _timeout_message(self, event_type: str, timeout: float, session: Session) -> str:
        text = f"no {event_type} within {timeout:g} s (status: {self.status})"
        note = self._input_note(session)
        return f"{text}; {note}" if note else text

    def _input_note(self, session: Session) -> str:
        """Why no user audio may be reaching the service, or '' when it is."""
        source = session.source
        if source is None:
            why = "mic=False" if self.mic_spec in (False, None) else "no input device"
            return (
                f"the microphone is off ({why}), so no audio is being sent: "
                "use speak(wav), or commit() / create_response() to get a reply"
            )
        if session.source_done.is_set():
            return "the audio source has ended, so no audio is being sent: use speak(wav) to send more"
        from_mic = source is self.mic or isinstance(source, (_ThenResume, _MicFeed))
        if getattr(self.mic, "muted", False) and from_mic:
            return "the microphone is muted" + (" (half duplex)" if self.half_duplex else "")
        return ""

    def send(self, event: Any, timeout: float = 10.0) -> None:
        self._live()
        kind = event.get("type") if isinstance(event, Mapping) else getattr(event, "type", None)
        asks = _ANSWERED_BY.get(kind) if isinstance(kind, str) else None
        self._run(self._on_current(lambda s: s.send(event), asks), timeout)

    def commit(self) -> None:
        self.send({"type": "input_audio_buffer.commit"})

    def create_response(self, **response: Any) -> None:
        self._live()
        self._run(self._on_current(lambda s: s.create_response(**response), "response.created"), 10)

    def cancel_response(self) -> None:
        self.send({"type": "response.cancel"})

    def approve(self, approval_request_id: str, approve: bool = True, reason: str | None = None) -> None:
        """Answer an MCP approval request (``Session.approve``); ``approve=False`` denies it."""
        self._live()
        self._run(
            self._on_current(
                lambda s: s.approve(approval_request_id, approve, reason), "conversation.item.created"
            ),
            10,
        )

    def speak(
        self, audio: str | Path | AudioSource, *, pace: str = "realtime", tail_silence_ms: int = 1500
    ) -> None:
        """Play a WAV file (or any source) into the session as the user's voice.

        Replaces the microphone stream while it plays; useful without audio devices.
        """
        session = self._live()
        if isinstance(audio, (str, Path)):
            from .audio.wav import WavSource

            source: AudioSource = WavSource(audio, pace=pace, tail_silence_ms=tail_silence_ms)  # type: ignore[arg-type]
        else:
            source = audio
        self.engine.call_soon(session.stream, _ThenResume(source, self._feed or self.mic))

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
        self._tools[registered.name] = registered
        session = self._session
        if session is not None and self.running:
            future = self.engine.submit(session.add_tools(registered))
            future.add_done_callback(_log_tool_update)
        return fn

    def add_tools(self, *fns: Callable[..., Any] | Tool, timeout: float = 15.0) -> None:
        """Register several tools; on a running session, wait until the service confirms the new list."""
        added = [as_tool(fn) for fn in fns]
        for t in added:
            self._tools[t.name] = t
        session = self._session
        if session is not None and self.running:
            self._run(session.add_tools(*added), timeout)

    @property
    def tools(self) -> list[Tool]:
        """The registered tools."""
        return list(self._tools.values())

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Every call the model made of a registered tool, across reconnects, oldest first."""
        return list(self._tool_calls)

    def tool_table(self) -> Any:
        """The tool calls as a pandas DataFrame (name, arguments, status, output, duration first)."""
        return tool_calls_table(self._tool_calls)

    def add_tool_listener(self, listener: Callable[[ToolCall], None]) -> None:
        """``listener(call)`` on every change of a tool call (engine thread; keep it cheap)."""
        self._tool_listeners.append(listener)

    def _on_tool_call(self, call: ToolCall) -> None:
        if not any(known is call for known in self._tool_calls):
            self._tool_calls.append(call)
        for listener in tuple(self._tool_listeners):
            try:
                listener(call)
            except Exception:
                log.exception("tool listener failed")

    def on(self, event_type: str, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Call ``handler(event)`` (on the engine thread) for each ``event_type`` event, also after reconnects."""
        self._handlers.append((event_type, handler))
        if self._session is not None:
            self.engine.call_soon(self._session.on, event_type, handler)
        return handler

    # ------------------------------------------------------------------ views (safe from any thread)

    @property
    def status(self) -> str:
        session = self._session
        if self._status == "connected" and session is not None and session.status != "connected":
            return session.status
        return self._status

    def connection_summary(self) -> ConnectionSummary:
        """Where the session connects and how, without secrets: from the live session once there is
        one, else from the options it was built with (the same settings and emulator rule as ``Session``)."""
        live = self._session
        if live is not None:
            return live.connection_summary()
        return summarize_options(self._session_kwargs)

    @property
    def session(self) -> Session | None:
        """The live :class:`Session` (owned by the engine thread: read, don't drive it)."""
        return self._session

    @property
    def error(self) -> BaseException | None:
        session = self._session
        return self._error or (session.failure if session is not None else None)

    def _snapshot(self, read: Callable[[Session], T], default: T) -> T:
        session = self._session
        if session is None:
            return default
        for _ in range(10):
            try:
                return read(session)
            except RuntimeError:  # mutated by the engine thread while copying: try again
                continue
        if self.running:

            async def snap() -> T:
                return read(session)

            return self.engine.run(snap(), timeout=5)
        return read(session)

    @property
    def events(self) -> list[Any]:
        """Every event received, across reconnects and rollovers (one timeline, oldest first)."""
        return [event for _, event in self.timed_events]

    @property
    def timed_events(self) -> list[tuple[float, Any]]:
        """``(time.monotonic(), event)`` across connections, in time order."""
        current: list[tuple[float, Any]] = self._snapshot(lambda s: s.timed_events(), [])
        past = list(self._past_events)
        if not past:
            return current
        seen = {id(e) for _, e in past}
        merged = past + [pair for pair in current if id(pair[1]) not in seen]
        merged.sort(key=lambda pair: pair[0])
        return merged

    @property
    def transcript(self) -> list[Any]:
        """The conversation across connections (a reply cut off by a lost connection says so)."""
        seeded = self._seeded
        current: list[TranscriptEntry] = self._snapshot(lambda s: list(s.state.transcript), [])
        return list(self._past_transcript) + [e for e in current if e.item_id not in seeded]

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


def _log_tool_update(future: concurrent.futures.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("sending the new tool list failed: %s", future.exception())


class _ThenResume:
    """Play ``first`` to the end, then go back to the microphone (if there is one)."""

    def __init__(self, first: AudioSource, then: AudioSource | None) -> None:
        self.first = first
        self.then = then
        self.playing = True  #: still in ``first`` (a rollover waits for it to end)

    async def frames(self, sample_rate: int, frame_ms: int = 20) -> AsyncIterator[bytes]:
        try:
            async for frame in self.first.frames(sample_rate, frame_ms):
                yield frame
        finally:
            self.playing = False
        await self.first.aclose()
        if self.then is not None:
            async for frame in self.then.frames(sample_rate, frame_ms):
                yield frame

    async def aclose(self) -> None:
        await self.first.aclose()  # the microphone belongs to the NotebookSession


def _memory_sink(max_bytes: int | None) -> AudioSink:
    from .audio.memory import BufferSink

    return BufferSink(max_bytes=max_bytes)


def _check_seconds(name: str, value: Any, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    if not ok or value < 0 or (value == 0 and not allow_zero) or value == float("inf"):
        raise ConfigError(name, value, f"a finite number of seconds {'≥ 0' if allow_zero else '> 0'}")


def _retryable(exc: BaseException) -> bool:
    """A reconnect attempt that failed like this may succeed later (network, service busy, slow setup)."""
    if isinstance(exc, AuthenticationError):
        # every attempt already fetched a fresh token: a refusal will not go away by itself
        return False
    return isinstance(exc, (TransportError, WaitTimeout))


def _settle_future(future: concurrent.futures.Future[None], exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)


def _abort_connection(session: Session) -> None:
    """Last resort when a polite close hangs: drop the TCP connection and cancel the session's tasks."""
    session.abort()


def _still_running(task: asyncio.Task[Any] | None, session: Session | None) -> list[str]:
    """What of a session is still alive: its tasks, the keepalive, the socket."""
    left: list[str] = []
    if task is not None and not task.done():
        left.append("the session task")
    if session is None:
        return left
    for name, t in (("reader", session._reader), ("audio", session._pump)):
        if t is not None and not t.done():
            left.append(f"the {name} task")
    background = sum(1 for t in tuple(session._tasks) if not t.done())
    if background:
        left.append(f"{background} background task{'s' if background > 1 else ''}")
    ws = getattr(getattr(session, "_transport", None), "_ws", None)
    if ws is not None:
        keepalive = getattr(ws, "keepalive_task", None)
        if keepalive is not None and not keepalive.done():
            left.append("the keepalive task")
        state = getattr(ws, "state", None)
        if state is not None and getattr(state, "name", "CLOSED") != "CLOSED":
            left.append(f"the connection ({state.name.lower()})")
    return left


def _item_is(item_id: str) -> Callable[[Any], bool]:
    return lambda e: isinstance(e.item, Mapping) and e.item.get("id") == item_id


#: A client event that the service answers with an event of its own before the conversation has it.
_ANSWERED_BY = {
    "response.create": "response.created",
    "conversation.item.create": "conversation.item.created",
}


def _response_requested(session: Session, within_s: float = 10.0) -> bool:
    """A cell's ``response.create`` or ``conversation.item.create`` has not been answered yet."""
    asked: dict[str, float] = getattr(session, "_vlnb_asked", {})
    answered: dict[str, float] = getattr(session, "_vlnb_answered", {})
    now = time.monotonic()
    return any(answered.get(kind, -1.0) < at and now - at < within_s for kind, at in asked.items())


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address: the emulator or a local peer, not the service's budget."""
    import ipaddress

    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _sink_busy(sink: AudioSink | None) -> bool:
    queued = getattr(sink, "queued_ms", None)
    try:
        return bool(queued is not None and queued() > 0)
    except Exception:
        return False


def _done(value: Any) -> concurrent.futures.Future[Any]:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    future.set_result(value)
    return future


class _MicHub:
    """Reads the microphone once, for every connection in turn: what no connection took yet waits here.

    Bounded (``max_frames``, the oldest dropped and counted in :attr:`dropped`).
    """

    def __init__(
        self,
        source: AudioSource,
        sample_rate: int,
        frame_ms: int = 20,
        max_frames: int = 1500,
        *,
        stereo: bool = False,
    ) -> None:
        self.source = source
        #: (mic, reference) frames for client-reference echo cancellation
        self.stereo = stereo
        self.frames: deque[bytes] = deque()
        self.max_frames = max_frames
        self.dropped = 0
        self.ended = False
        self.wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(
            self._read(sample_rate, frame_ms), name="voicelive-mic"
        )

    async def _read(self, sample_rate: int, frame_ms: int) -> None:
        try:
            read = self.source.reference_frames if self.stereo else self.source.frames  # type: ignore[attr-defined]
            async for frame in read(sample_rate, frame_ms):
                self.frames.append(frame)
                if len(self.frames) > self.max_frames:
                    self.frames.popleft()
                    self.dropped += 1
                self.wake.set()
        except Exception as exc:
            log.warning("the microphone stopped: %s", _reason(exc))
        finally:
            self.ended = True
            self.wake.set()

    async def aclose(self) -> None:
        if not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=2)


class _MicFeed:
    """One connection's view of the :class:`_MicHub`: the frames it takes, confirmed once sent."""

    def __init__(self, hub: _MicHub) -> None:
        self.hub = hub
        self.closed = False
        self.pending: bytes | None = None
        self.sent = 0
        self.last_sent_at: float | None = None
        self.on_first: Callable[[float], None] | None = None

    async def frames(self, sample_rate: int, frame_ms: int = 20) -> AsyncIterator[bytes]:
        hub = self.hub
        self.give_back()  # a frame of an interrupted stream (speak()) goes first
        while not self.closed:
            if not hub.frames:
                if hub.ended:
                    return
                hub.wake.clear()
                await hub.wake.wait()
                continue
            frame = hub.frames.popleft()
            self.pending = frame
            yield frame

    @property
    def reference_available(self) -> bool:
        """The hub reads (mic, reference) frames when the session has client echo reference."""
        return self.hub.stereo

    def reference_frames(self, sample_rate: int, frame_ms: int = 20) -> AsyncIterator[bytes]:
        return self.frames(sample_rate, frame_ms)

    def confirm(self, pcm16: bytes) -> None:
        """Input tap: the frame went out on this connection."""
        if pcm16 is self.pending:
            self.pending = None
            self.sent += 1
            self.last_sent_at = time.monotonic()
            if self.on_first is not None:
                first, self.on_first = self.on_first, None
                first(self.last_sent_at)

    def give_back(self) -> None:
        if self.pending is not None:
            self.hub.frames.appendleft(self.pending)
            self.pending = None

    def close(self) -> None:
        self.closed = True
        self.hub.wake.set()

    async def aclose(self) -> None:
        """The microphone belongs to the NotebookSession."""


class _SharedRecording:
    """One :class:`~voicelive_nb.recording.Recorder` for every connection of a NotebookSession.

    A connection's ``close`` only notes that it closed; :meth:`finish` closes the files.
    """

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder

    def record_sent(self, event: Mapping[str, Any]) -> None:
        self.recorder.record_sent(event)

    def record_received(self, event: Mapping[str, Any]) -> None:
        self.recorder.record_received(event)

    def note(self, kind: str, **fields: Any) -> None:
        self.recorder.note(kind, **fields)

    def close(self) -> None:
        self.recorder.note("connection.closed")

    def finish(self) -> None:
        with contextlib.suppress(Exception):
            self.recorder.close()


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
