"""The background tasks of a :class:`~voicelive_nb.session.Session`, and what their failures mean.

:class:`Background` keeps every task the session starts besides the reader and the pump (a
truncate, a tool-list update, what an async handler returns) until it is done, so none is
garbage-collected mid-flight and :meth:`Session.close` can cancel them. Nothing fails
silently: a critical task's failure goes to :class:`Health` (which decides whether the session
failed), a handler's failure is recorded in ``errors`` and logged.

:class:`Health` is the session's status and its one failure: a lost connection (with the
transport's reason when it gave up on the peer), a reader that crashed, a critical background
task that failed. Each is logged, noted in the recording, and raised by every waiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .auth import redact_text
from .errors import ConnectionClosed
from .session_events import reason
from .transport import describe_close

log = logging.getLogger("voicelive_nb.session")


class Background:
    """The session's background tasks; ``failed(task, exc)`` hears of a critical one failing."""

    def __init__(
        self, failed: Callable[[asyncio.Task[Any], BaseException], None], errors: list[BaseException]
    ) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self._failed = failed
        self._errors = errors

    def spawn(self, awaitable: Awaitable[Any], *, critical: bool = True) -> None:
        """Run ``awaitable`` in the background; a failure is kept and logged, never lost.

        A failing critical task (sending audio, a truncate) fails the session; a failing
        async handler is only recorded in ``errors``.
        """

        async def run() -> Any:
            return await awaitable

        task = asyncio.get_running_loop().create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.critical_done if critical else self._handler_done)

    def critical_done(self, task: asyncio.Task[Any]) -> None:
        """The done callback of a task whose failure matters to the session (the pump too)."""
        self.tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._failed(task, exc)

    def _handler_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            self._errors.append(exc)
            log.error("async handler failed: %s", reason(exc))


class Health:
    """``status`` (credentials masked), the session's ``failure`` and whether it is ``closing``.

    ``fail_waiters(exc)`` raises ``exc`` in every pending wait; ``recorder()`` is the
    session's recording (or None); ``errors`` keeps the failures of background tasks.
    """

    def __init__(
        self,
        fail_waiters: Callable[[BaseException], None],
        recorder: Callable[[], Any],
        errors: list[BaseException],
    ) -> None:
        self._status = "idle"
        self.failure: BaseException | None = None
        self.closing = False
        self._fail_waiters = fail_waiters
        self._recorder = recorder
        self._errors = errors

    @property
    def status(self) -> str:
        return self._status

    @status.setter
    def status(self, value: str) -> None:
        self._status = redact_text(str(value))

    def lost(self, exc: ConnectionClosed, given_up: str | None) -> None:
        """The connection is gone: closed by the peer, or given up on by the transport (``given_up``)."""
        if self.failure is not None:
            return
        self.failure = exc
        what = given_up or f"connection lost: {describe_close(exc.code, exc.reason)}"
        self.status = f"failed: {what}"
        log.warning("voice live %s", what)
        recorder = self._recorder()
        if recorder is not None:
            with contextlib.suppress(Exception):
                recorder.note("connection_lost", code=exc.code, reason=given_up or exc.reason)
        self._fail_waiters(exc)

    def crashed(self, exc: BaseException) -> None:
        """The reader itself failed: a bug, never silent."""
        self.failure = exc
        self.status = f"failed: {reason(exc)}"
        log.exception("voice live reader failed", exc_info=exc)
        self._fail_waiters(exc)

    def task_failed(self, task: asyncio.Task[Any], exc: BaseException, given_up: str | None) -> None:
        """A critical background task failed: a lost connection, or the session's failure."""
        if isinstance(exc, ConnectionClosed):
            if not (self.closing or self.failure is not None):
                self.lost(exc, given_up)
            return
        self._errors.append(exc)
        if self.failure is None:
            self.failure = exc
            self.status = f"failed: {reason(exc)}"
        log.error("background task %s failed: %s", task.get_name(), reason(exc))
        self._fail_waiters(exc)
