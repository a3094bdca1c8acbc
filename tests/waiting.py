"""Waiting for a condition with a deadline: the one poll loop the tests share.

For state that no event announces (a device callback count, a widget trait set from another
thread, a decoder handed back on a worker thread). It returns as soon as the condition holds,
so it is not a sleep used as synchronisation; where an event exists, tests wait for the event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

__all__ = ["wait_until", "wait_until_async"]


def wait_until(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    what: str = "the condition",
    *,
    interval: float = 0.01,
) -> None:
    """Poll ``condition`` every ``interval`` s until it is true; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


async def wait_until_async(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    what: str = "the condition",
    *,
    interval: float = 0.01,
) -> None:
    """:func:`wait_until` for a coroutine: the event loop runs while it waits."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)
