"""One run of a :class:`~voicelive_nb.notebook_session.NotebookSession` on the engine loop.

:class:`ConnectionRunner` is the driver between ``start()`` and the end of the run: it opens the
first connection, re-seeds and attaches the microphone to each new one, reconnects a lost one
after a bounded exponential back-off (``max_reconnects`` consecutive failures; a healthy
connection resets the count), holds new connections back for the connection budget, hands the
proactive rollover to its :class:`~voicelive_nb.notebook_rollover.RolloverDriver`, and keeps the
run's status and error. :meth:`ConnectionRunner.stop` ends it — politely for ``timeout`` s, then
by aborting the socket and cancelling the task — and says what, if anything, still runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from .errors import (
    AuthenticationError,
    ConfigError,
    ConnectionClosed,
    HandshakeRefused,
    TransportError,
    VoiceLiveError,
    WaitTimeout,
)
from .hosts import is_loopback_host
from .notebook_rollover import RolloverDriver, RolloverSettings
from .protocol.config import SessionConfig
from .rollover import ConnectionBudget, check_budget, process_budget

if TYPE_CHECKING:
    from .notebook_archive import ConversationArchive
    from .notebook_audio import SessionAudio
    from .session import Session

log = logging.getLogger("voicelive_nb.notebook")

#: How often the background pump refreshes derived state (mute, UI listeners): ≤ 20 Hz.
PUMP_INTERVAL_S = 0.05
#: After the polite close ran out of time: how long the aborted connection's tasks get to end.
ABORT_GRACE_S = 2.0


class RunHost(RolloverSettings, Protocol):
    """The notebook session's settings and counters a run reads and updates (public attributes)."""

    config: SessionConfig
    record: Any
    half_duplex: bool
    auto_reconnect: bool
    max_reconnects: int
    reconnect_delay_s: float
    reconnect_max_delay_s: float
    reconnect_healthy_s: float
    rollover: bool
    connection_budget: ConnectionBudget | None
    reconnects: int
    reconnect_failures: int
    rollovers: int


class ConnectionRunner:
    """The engine-side run of a notebook session: connections, reconnects, rollovers, and its status.

    ``new_session`` makes a configured, not yet opened connection; ``current`` / ``switch`` read
    and set the connection cells talk to; ``notify`` tells the UI listeners. The run's state
    (:attr:`status`, :attr:`error`, the task and its stop event) lives here; the settings stay
    on the host, so changing them between runs takes effect.
    """

    def __init__(
        self,
        host: RunHost,
        archive: ConversationArchive,
        audio: SessionAudio,
        *,
        new_session: Callable[[], Session],
        current: Callable[[], Session | None],
        switch: Callable[[Session], None],
        notify: Callable[[], None],
    ) -> None:
        self.host = host
        self.archive = archive
        self.audio = audio
        self._new_session = new_session
        self._current = current
        self._switch = switch
        self._notify = notify
        self.status = "idle"
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None
        self.stop_event: asyncio.Event | None = None
        self.budget: ConnectionBudget | None = host.connection_budget
        #: The move to a fresh connection before the current one expires.
        self.rollover_driver = RolloverDriver(
            host, archive, audio, current=current, switch=switch, open_next=self.open_next
        )

    async def run(self, ready: concurrent.futures.Future[None]) -> None:
        """The run, until stopped or given up; ``ready`` is settled once connected (or failed to)."""
        self.task = asyncio.current_task()
        stop = self.stop_event = asyncio.Event()
        loop = asyncio.get_running_loop()
        connected_once = False
        self.archive.reset(
            self.host.record, self.host.config.input_sample_rate, self.host.config.output_sample_rate
        )
        self.rollover_driver.reset()
        stereo = getattr(self.host.config, "client_echo_reference", False) is True
        self.audio.start(self.host.config.input_sample_rate, stereo=stereo)
        session: Session | None = None
        try:
            while True:
                if session is None:
                    if connected_once and not await self.wait_for_budget():
                        self.status = "stopped"
                        return
                    session = self._new_session()
                    self._switch(session)
                    if not connected_once:
                        self.budget = self.budget_for(session)
                        if self.budget is not None:
                            self.budget.record()  # a start() counts, but is never held back
                    try:
                        await session.open()
                        self.archive.seeded = await self.rollover_driver.seed(session)
                    except Exception as exc:
                        retry = connected_once and _retryable(exc) and not stop.is_set()
                        if not retry:
                            self.error = exc
                            self.status = session.status
                            _settle_future(ready, exc)
                            if connected_once and isinstance(exc, AuthenticationError):
                                self.status = (
                                    f"failed: the credential was refused on reconnect ({reason_of(exc)}); "
                                    "not retrying — check the key or sign in again, then start() again"
                                )
                                log.error("voice session %s", self.status)
                                return
                            raise
                        with contextlib.suppress(Exception):
                            await session.close()
                        session = None
                        if not await self.retry_or_give_up(_status_of_failure(exc), exc):
                            return
                        continue
                    self.audio.attach(session, self.archive.handovers)
                connected_at = loop.time()
                connected_once = True
                self.status = "connected"
                _settle_future(ready, None)
                pump = loop.create_task(self._pump(session))
                stop_wait = loop.create_task(stop.wait())
                waits: set[asyncio.Future[Any]] = {stop_wait}
                roll: asyncio.Task[bool] | None = None
                if self.host.rollover and session is not self.rollover_driver.no_rollover:
                    roll = loop.create_task(self.rollover_driver.moment(session))
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
                    nxt = await self.rollover_driver.roll_over(session)
                    if nxt is not None:
                        self.host.rollovers += 1
                        session = nxt
                        self.host.reconnect_failures = 0
                    continue
                failure = session.failure
                lost = isinstance(failure, ConnectionClosed) and not stop.is_set()
                if not lost or not self.host.auto_reconnect:
                    await session.close()
                    self.status = "stopped" if failure is None else session.status
                    return
                self.archive.mark_cut_off(session)
                feed = await self.audio.detach(session)
                await session.close()
                self.archive.retire(
                    session,
                    reason=session.status.removeprefix("failed: "),
                    max_items=self.host.reseed_max_items,
                    last_old=feed.last_sent_at if feed is not None else None,
                )
                if loop.time() - connected_at >= self.host.reconnect_healthy_s:
                    self.host.reconnect_failures = 0  # it was healthy: a fresh budget
                status = session.status
                session = None
                if not await self.retry_or_give_up(status, failure):
                    return
        finally:
            await self.rollover_driver.wait_closers()
            await self.audio.finish()
            self.archive.finish()
            self._notify()

    def finished(
        self, future: concurrent.futures.Future[None], ready: concurrent.futures.Future[None]
    ) -> None:
        """Done callback of the run's future: the final status, and no waiter on ``ready`` left hanging."""
        if not ready.done():  # never leave a waiter hanging
            ready.set_exception(
                self.error or VoiceLiveError(f"the session ended before it connected (status: {self.status})")
            )
        if future.cancelled():
            if not self.status.startswith(("failed", "stop incomplete")):
                self.status = "stopped"
        else:
            exc = future.exception()
            if exc is not None:
                self.error = exc
                self.status = f"failed: {type(exc).__name__}: {exc}"
                log.error("voice session failed: %s", exc)
        self._notify()  # the run has ended: listeners see ``running`` False and the final status

    async def retry_or_give_up(self, status: str, exc: BaseException | None) -> bool:
        """Count one more consecutive failure; back off and return True to try again."""
        assert self.stop_event is not None
        self.host.reconnect_failures += 1
        reason = status.removeprefix("failed: ")
        if self.host.reconnect_failures > self.host.max_reconnects:
            self.status = (
                f"failed: {reason} (gave up after {self.host.max_reconnects} consecutive failed reconnects)"
            )
            self.error = exc
            log.error("voice session: %s", self.status)
            return False
        self.host.reconnects += 1
        self.status = f"reconnecting ({self.host.reconnect_failures}/{self.host.max_reconnects}): {reason}"
        log.warning("voice session %s", self.status)
        self._notify()
        delay = reconnect_delay(
            self.host.reconnect_failures, self.host.reconnect_delay_s, self.host.reconnect_max_delay_s, exc
        )
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stop_event.wait(), timeout=delay)
        if self.stop_event.is_set():
            self.status = "stopped"
            return False
        return True

    async def wait_for_budget(self) -> bool:
        """Hold a new connection back until the process-wide budget has room; False when stopped."""
        assert self.stop_event is not None
        budget = self.budget
        if budget is None:
            return not self.stop_event.is_set()
        before = self.status

        def waiting(delay: float) -> None:
            self.status = (
                f"waiting {delay:.1f} s for the connection budget "
                f"({budget.limit} new connections per {budget.window_s:g} s)"
            )
            log.warning("voice session %s", self.status)
            self._notify()

        ok = await budget.acquire(self.stop_event, waiting)
        if ok:
            self.status = before
        return ok

    def budget_for(self, session: Session) -> ConnectionBudget | None:
        if self.host.connection_budget is not None:
            return self.host.connection_budget
        host = urlsplit(session.settings.endpoint or "").hostname or ""
        if session.use_emulator or is_loopback_host(host):
            return None
        return process_budget()

    async def open_next(self) -> Session | None:
        """The next connection, once the budget has room (None: stopped while waiting)."""
        if not await self.wait_for_budget():
            return None
        return self._new_session()

    async def _pump(self, session: Session) -> None:
        """≤ 20 Hz: half-duplex muting and UI listeners; never the audio path itself."""
        while True:
            if self.host.half_duplex:
                self.audio.mute_while_speaking(session.state.active_response is not None)
            self._notify()
            await asyncio.sleep(PUMP_INTERVAL_S)

    async def stop(self, timeout: float) -> list[str]:
        """Ask the run to end; abort its connection and cancel it when it does not; what still runs."""
        task = self.task
        session = self._current()
        if self.stop_event is not None:
            self.stop_event.set()
        if task is not None and not task.done() and self.status == "connecting":
            task.cancel()  # still connecting: nothing to close politely, give up the attempt
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=timeout)
        if task is not None and not task.done():
            log.warning("the voice session did not close within %g s; aborting its connection", timeout)
            if session is not None:
                session.abort()
            await asyncio.wait({task}, timeout=ABORT_GRACE_S / 2)
            if not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=ABORT_GRACE_S / 2)
        await self._settle(session)
        return _still_running(task, session)

    async def _settle(self, session: Session | None) -> None:
        """Let an aborted socket and cancelled tasks report themselves finished (bounded)."""
        if session is not None:
            await session.settle(0.5)


def _status_of_failure(exc: BaseException) -> str:
    return f"failed: {reason_of(exc)}"


def reconnect_delay(failures: int, base_s: float, max_s: float, exc: BaseException | None) -> float:
    """The wait before reconnect attempt ``failures`` (1, 2, ...): ``base_s`` doubled per failure up to
    ``max_s``, but never shorter than a refusal's ``Retry-After`` (retrying sooner is refused again)."""
    delay = min(base_s * 2.0 ** (failures - 1), max_s)
    asked = exc.retry_after_s if isinstance(exc, HandshakeRefused) else None
    return max(delay, asked) if asked is not None else delay


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


def _still_running(task: asyncio.Task[Any] | None, session: Session | None) -> list[str]:
    """What of a session is still alive: its task, and what the session says of itself."""
    left = ["the session task"] if task is not None and not task.done() else []
    return left + (session.still_running() if session is not None else [])


def check_reconnect_options(
    max_reconnects: Any,
    delay_s: Any,
    max_delay_s: Any,
    healthy_s: Any,
    connect_timeout_s: Any,
    setup_timeout_s: Any,
) -> None:
    """The reconnect keywords and timeouts of a NotebookSession, else a ConfigError naming the first bad one."""
    if isinstance(max_reconnects, bool) or not isinstance(max_reconnects, int) or max_reconnects < 0:
        raise ConfigError("max_reconnects", max_reconnects, "0 or more consecutive failed reconnects")
    check_seconds("reconnect_delay_s", delay_s, allow_zero=True)
    check_seconds("reconnect_max_delay_s", max_delay_s, allow_zero=True)
    check_seconds("reconnect_healthy_s", healthy_s, allow_zero=True)
    if max_delay_s < delay_s:
        raise ConfigError("reconnect_max_delay_s", max_delay_s, f"at least reconnect_delay_s ({delay_s:g} s)")
    for name, seconds in (("connect_timeout_s", connect_timeout_s), ("setup_timeout_s", setup_timeout_s)):
        if seconds is not None:
            check_seconds(name, seconds)


def check_rollover_options(
    rollover: Any,
    margin_s: Any,
    reseed_max_chars: Any,
    reseed_max_items: Any,
    connection_budget: Any,
) -> None:
    """The rollover keywords of a NotebookSession, else a ConfigError naming the first bad one."""
    check_seconds("rollover_margin_s", margin_s)
    check_budget(reseed_max_chars, reseed_max_items)
    if rollover is not None and not isinstance(rollover, bool):
        raise ConfigError("rollover", rollover, "True, False, or None (on when auto_reconnect=True)")
    if connection_budget is not None and not isinstance(connection_budget, ConnectionBudget):
        raise ConfigError("connection_budget", connection_budget, "a voicelive_nb.rollover.ConnectionBudget")


def check_seconds(name: str, value: Any, *, allow_zero: bool = False) -> None:
    """``value`` is a finite number of seconds (> 0, or ≥ 0 with ``allow_zero``), else a ConfigError."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    if not ok or value < 0 or (value == 0 and not allow_zero) or value == float("inf"):
        raise ConfigError(name, value, f"a finite number of seconds {'≥ 0' if allow_zero else '> 0'}")


def reason_of(exc: BaseException) -> str:
    """``Type: message`` (or the type alone) for statuses and logs."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
