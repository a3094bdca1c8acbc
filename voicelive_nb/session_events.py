"""The received events of a :class:`~voicelive_nb.session.Session`: history, cursors, waiters, handlers.

Two small collaborators the session owns and delegates to:

* :class:`EventLog` keeps the bounded history (``max_events`` / ``max_event_bytes``), the
  per-type cursors that make ``wait_for`` return each event once, and the waiters parked on a
  type. It knows nothing of the connection: the session checks "connected?" before waiting.
* :class:`Handlers` holds the ``on(type)`` callbacks and runs them, so that one failing
  handler is recorded and never reaches the reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import ServerError, WaitTimeout
from .protocol.wire import canonical_type

log = logging.getLogger("voicelive_nb.session")

Handler = Callable[[Any], Any]


class Waiter:
    """One pending ``wait_for``: the type it waits for, its filter, and the future it completes."""

    __slots__ = ("future", "predicate", "type")

    def __init__(
        self, type_: str, predicate: Callable[[Any], bool] | None, future: asyncio.Future[Any]
    ) -> None:
        self.type = type_
        self.predicate = predicate
        self.future = future


class EventLog:
    """The events a session received (bounded), the cursor of each type, and who waits for what."""

    def __init__(self, max_events: int, max_event_bytes: int) -> None:
        self.max_events = max_events
        self.max_event_bytes = max_event_bytes
        self.timed: deque[tuple[float, Any]] = deque()
        self._sizes: deque[int] = deque()
        self._bytes = 0
        #: How many events were ever kept (dropped ones included): the index of the next one.
        self.count = 0
        self._cursors: dict[str, int] = {}
        self.waiters: list[Waiter] = []

    def keep(self, now: float, event: Any, size: int) -> None:
        """Add to the history; drop the oldest beyond ``max_events`` or ``max_event_bytes``."""
        self.timed.append((now, event))
        self._sizes.append(size)
        self._bytes += size
        self.count += 1
        while len(self.timed) > 1 and (
            len(self.timed) > self.max_events or self._bytes > self.max_event_bytes
        ):
            self.timed.popleft()
            self._bytes -= self._sizes.popleft()

    def scan(self, event_type: str, predicate: Callable[[Any], bool] | None) -> Any:
        """The first kept event of ``event_type`` past its cursor (moving the cursor), or None."""
        start = self._cursors.get(event_type, 0)
        first = self.count - len(self.timed)
        for offset, (_, event) in enumerate(self.timed):
            index = first + offset
            if index < start or event.type != event_type:
                continue
            if predicate is None or predicate(event):
                self._cursors[event_type] = index + 1
                return event
        return None

    def wake(self, etype: str, event: Any) -> None:
        """Hand ``event`` to every waiter for its type whose filter it passes."""
        for waiter in tuple(self.waiters):
            if waiter.type != etype or waiter.future.done():
                continue
            if waiter.predicate is not None and not waiter.predicate(event):
                continue
            # every waiter for this type gets it (a cell and the panel may both be waiting)
            waiter.future.set_result(event)
            if etype != "error":
                self._cursors[etype] = self.count

    def fail_waiters(self, exc: BaseException, only_type: str | None = None) -> None:
        """Raise ``exc`` in every pending waiter (of ``only_type``, if given)."""
        for waiter in tuple(self.waiters):
            if only_type is not None and waiter.type != only_type:
                continue
            if not waiter.future.done():
                waiter.future.set_exception(exc)
                waiter.future.exception()  # mark retrieved: the waiter may already be gone

    async def wait(
        self,
        event_type: str,
        timeout: float,
        predicate: Callable[[Any], bool] | None,
        *,
        fail_on_error: bool,
        describe_timeout: Callable[[str, float], str],
    ) -> Any:
        """Park until the next ``event_type`` arrives (or an ``error`` with ``fail_on_error``).

        The caller has already scanned the history; this only waits for what comes next.
        """
        loop = asyncio.get_running_loop()
        waiter = Waiter(event_type, predicate, loop.create_future())
        error_waiter = Waiter("error", None, loop.create_future()) if fail_on_error else None
        parked = [w for w in (waiter, error_waiter) if w is not None]
        self.waiters.extend(parked)
        futures = [w.future for w in parked]
        try:
            done, _ = await asyncio.wait(futures, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in parked:
                if w in self.waiters:
                    self.waiters.remove(w)
            for f in futures:
                if not f.done():
                    f.cancel()
        if not done:
            raise WaitTimeout(describe_timeout(event_type, timeout))
        if waiter.future in done:
            return waiter.future.result()
        assert error_waiter is not None
        raise server_error(error_waiter.future.result())


class Handlers:
    """The ``on(type)`` callbacks of a session; a failing one is logged and kept, never raised.

    ``spawn`` runs what an async handler returns as a background task of the session.
    """

    def __init__(self, spawn: Callable[[Awaitable[Any]], None], errors: list[BaseException]) -> None:
        self._by_type: dict[str, list[Handler]] = {}
        self._spawn = spawn
        self._errors = errors

    def add(self, event_type: str, handler: Handler) -> None:
        self._by_type.setdefault(canonical_type(event_type), []).append(handler)

    def remove(self, event_type: str, handler: Handler) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._by_type[canonical_type(event_type)].remove(handler)

    def dispatch(self, etype: str, event: Any) -> None:
        """Call the handlers of ``etype``, then those of ``"*"``."""
        for key in (etype, "*"):
            for handler in tuple(self._by_type.get(key, ())):
                try:
                    result = handler(event)
                    if inspect.isawaitable(result):
                        self._spawn(result)
                except Exception as exc:
                    self._errors.append(exc)
                    log.exception("handler for %s failed", etype)


def server_error(event: Any) -> ServerError:
    """The :class:`ServerError` an ``error`` event stands for."""
    err = getattr(event, "error", None) or {}
    return ServerError(
        str(err.get("message", "error event")),
        code=err.get("code"),
        param=err.get("param"),
        error_type=err.get("type"),
        event_id=err.get("event_id"),
    )


def reason(exc: BaseException) -> str:
    """``Type: message`` (just ``Type`` when the message is empty), for statuses and logs."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
