"""A cancelled sweep worker must stop, not finish its replay: the root was Python 3.11's
``asyncio.wait_for``, which returns the result (and loses the caller's ``CancelledError``) when
the awaited operation finishes in the same loop iteration as the cancellation. The transport's
sends, handshake and close and the session's shutdown steps now wait with
:func:`voicelive_nb.transport.wait_bounded`, which always lets the cancellation through.

Both tests cancel at every loop iteration of the window (0..7 ``sleep(0)`` after the start), so
the race is hit deterministically rather than by chance."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from voicelive_nb.emulator import run_emulator
from voicelive_nb.protocol.config import SessionConfig
from voicelive_nb.session import Session
from voicelive_nb.transport import wait_bounded


async def _outcomes(start: Callable[[], Awaitable[Any]], spins: int = 8) -> list[bool | None]:
    """For k = 0..spins-1: start, let k loop iterations pass, cancel. True: it returned normally
    although cancelled while still running (the bug); False: cancelled; None: done before."""
    found: list[bool | None] = []
    for k in range(spins):
        task = asyncio.ensure_future(start())
        for _ in range(k):
            await asyncio.sleep(0)  # one loop iteration: moves the cancel through the window
        if task.done():
            found.append(None)
            continue
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            found.append(False)
        else:
            found.append(True)
    return found


async def test_wait_bounded_never_loses_a_cancellation_when_the_operation_just_finished() -> None:
    lost: list[str] = []

    async def finishing_at_once() -> str:
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(fut.set_result, "done")
        return await wait_bounded(fut, 5, on_lost=lost.append)

    outcomes = await _outcomes(finishing_at_once)
    assert True not in outcomes, outcomes
    assert False in outcomes  # the cancel did land while the wait was running
    # a result that came with the cancellation is handed to on_lost (a connection is dropped there)
    assert lost and set(lost) == {"done"}
    # the result comes back when not cancelled, a timeout cancels the operation and raises
    assert await wait_bounded(asyncio.sleep(0, "x"), 5) == "x"
    slow = asyncio.ensure_future(asyncio.sleep(30))
    with pytest.raises(asyncio.TimeoutError):
        await wait_bounded(slow, 0.05)
    assert slow.cancelled()


async def test_a_cancelled_send_on_a_live_session_is_cancelled_not_completed() -> None:
    async with run_emulator(pace="fast") as emu:
        async with Session(
            SessionConfig.server_vad(), endpoint=emu.url, api_key="k", emulator=False, dotenv=False
        ) as session:
            outcomes = await _outcomes(lambda: session.send({"type": "input_audio_buffer.clear"}))
            assert True not in outcomes, outcomes  # with asyncio.wait_for on 3.11: [False, True, True, ...]
            assert False in outcomes
            assert session.status == "connected"
