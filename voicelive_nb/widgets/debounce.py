"""``Debouncer``: one delivery per burst of edits, after a quiet interval, without a thread where
a loop is running.

In a Jupyter kernel a widget callback runs on the kernel's thread inside its running asyncio
loop: there the delay is ``loop.call_later`` on that loop, so the delivery runs on the kernel's
thread like any other widget callback and no thread is started. Only where the calling thread
runs no loop (plain Python, headless tests) does a ``threading.Timer`` (a daemon thread named
``voicelive-form-debounce``) wait instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["THREAD_NAME", "Debouncer"]

T = TypeVar("T")

THREAD_NAME = "voicelive-form-debounce"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Debouncer(Generic[T]):
    """Holds the latest value of a burst and hands it to ``deliver`` after ``delay_s`` of quiet.

    Each :meth:`schedule` replaces the waiting value and restarts the wait; :meth:`cancel` drops
    it; :meth:`take` drops the wait and returns the value (to deliver it now). A generation
    counter makes a wait that was replaced or cancelled deliver nothing, even if its callback
    already runs. ``deliver`` is called without the debouncer's lock held. Any thread."""

    def __init__(self, deliver: Callable[[T], Any]) -> None:
        self._deliver = deliver
        self._lock = threading.Lock()
        self._value: T | None = None
        self._generation = 0
        self._timer: threading.Timer | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pending(self) -> bool:
        """True while a value waits for its delivery."""
        return self._value is not None

    def schedule(self, value: T, delay_s: float) -> None:
        """Deliver ``value`` after ``delay_s`` unless another value, a cancel or a take comes first."""
        loop = _running_loop()
        with self._lock:
            self._cancel_locked()
            self._value = value
            generation = self._generation
            if loop is not None:  # the kernel's thread: its loop, no thread
                self._loop = loop
                self._handle = loop.call_later(delay_s, self._fire, generation)
                return
            timer = threading.Timer(delay_s, self._fire, args=(generation,))
            timer.daemon = True
            timer.name = THREAD_NAME
            self._timer = timer
            timer.start()

    def cancel(self) -> None:
        """Drop the waiting value (nothing is delivered)."""
        with self._lock:
            self._cancel_locked()

    def take(self) -> T | None:
        """Drop the wait and return its value (``None`` if nothing waited)."""
        with self._lock:
            value = self._value
            self._cancel_locked()
            return value

    def _cancel_locked(self) -> None:
        self._generation += 1
        self._value = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._handle is not None:
            handle, loop = self._handle, self._loop
            self._handle = self._loop = None
            if loop is _running_loop():
                handle.cancel()
            elif loop is not None:  # a handle is cancelled on its own loop's thread
                try:
                    loop.call_soon_threadsafe(handle.cancel)
                except RuntimeError:  # that loop is closed: the handle never runs
                    pass

    def _fire(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation or self._value is None:
                return
            value = self._value
            self._value = None
            self._timer = None
            self._handle = self._loop = None
        self._deliver(value)
