"""The engine: one background thread with its own asyncio loop that runs every live session.

Why a thread and not the kernel's loop (measured in ipykernel 7.4, see design.md): a cell
that blocks (``time.sleep(1)``, a slow pandas call) starves tasks on the kernel's loop —
audio would stutter — while a dedicated thread keeps running and its widget updates are
delivered. ``nest_asyncio`` is not needed and not used.

Code on other threads (cells, widget callbacks) never touches the loop directly: it posts
coroutines with :meth:`Engine.submit` (non-blocking, returns a concurrent future) or
:meth:`Engine.run` (blocking, with a timeout), or awaits them with :meth:`Engine.run_async`
from a cell's own loop.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from .errors import VoiceLiveError, WaitTimeout

log = logging.getLogger("voicelive_nb.engine")

T = TypeVar("T")

_lock = threading.Lock()
_engine: Engine | None = None


class Engine:
    """A daemon thread running an asyncio event loop until :meth:`stop`."""

    def __init__(self, name: str = "voicelive-engine") -> None:
        self.name = name
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise VoiceLiveError("the voicelive engine thread did not start")

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(self._exception_handler)
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()

    @staticmethod
    def _exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # never silent: anything unhandled on the engine loop is logged with its traceback
        exc = context.get("exception")
        log.error("unhandled error on the voicelive engine: %s", context.get("message"), exc_info=exc)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and self._loop is not None and self._loop.is_running()

    def in_engine_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the engine loop; returns at once."""
        if not self.running:
            coro.close()
            raise VoiceLiveError("the voicelive engine is stopped")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Run ``coro`` on the engine and wait for its result (from any thread but the engine's)."""
        if self.in_engine_thread():
            coro.close()
            raise VoiceLiveError("Engine.run() called from the engine thread; await the coroutine instead")
        future = self.submit(coro)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise WaitTimeout(f"the operation did not finish within {timeout:g} s") from None

    async def run_async(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` running on the engine from another event loop (e.g. a notebook cell)."""
        return await asyncio.wrap_future(self.submit(coro))

    def call_soon(self, callback: Any, *args: Any) -> None:
        """Call ``callback(*args)`` on the engine thread (thread-safe)."""
        self.loop.call_soon_threadsafe(callback, *args)

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel what runs on the engine, stop its loop and join its thread (idempotent)."""
        if self._thread.is_alive() and self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Engine {self.name} {state}>"


def get_engine() -> Engine:
    """The process-wide engine, started on first use (and again after a stop)."""
    global _engine
    with _lock:
        if _engine is None or not _engine.running:
            _engine = Engine()
        return _engine


def stop_engine(timeout: float = 10.0) -> None:
    """Stop the process-wide engine if it runs (also done at interpreter exit)."""
    global _engine
    with _lock:
        engine, _engine = _engine, None
    if engine is not None:
        engine.stop(timeout)


atexit.register(stop_engine)
