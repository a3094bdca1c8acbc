"""Starting an emulator: :func:`run_emulator` (one process, ``workers=N`` processes, or a replay),
:class:`BackgroundEmulator` and :func:`start_in_thread` (on a thread of its own).

The server itself (handshake, outbox, faults, expiry) is :mod:`.endpoint`, re-exported here;
the split keeps the import graph acyclic: :mod:`.workers` builds on the endpoint, and this
module builds on both.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Literal, overload

from ..errors import StateError
from .conversation import Reply
from .endpoint import ConnectParams, EmulatorServer, Faults, HandshakeRejected, parse_connect_request
from .replay import ReplayServer, TraceSource

__all__ = [
    "BackgroundEmulator",
    "ConnectParams",
    "EmulatorServer",
    "Faults",
    "HandshakeRejected",
    "parse_connect_request",
    "run_emulator",
    "start_in_thread",
]


@overload
def run_emulator(
    host: str = ...,
    port: int = ...,
    *,
    api_key: str | None = ...,
    pace: Literal["realtime", "fast"] = ...,
    replies: Reply = ...,
    faults: Faults | None = ...,
    transcription: bool = ...,
    replay: None = ...,
    **kwargs: Any,
) -> EmulatorServer: ...


@overload
def run_emulator(
    host: str = ...,
    port: int = ...,
    *,
    api_key: str | None = ...,
    pace: Literal["realtime", "fast"] = ...,
    replies: Reply = ...,
    faults: Faults | None = ...,
    transcription: bool = ...,
    replay: TraceSource,
    **kwargs: Any,
) -> ReplayServer: ...


def run_emulator(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    api_key: str | None = None,
    pace: Literal["realtime", "fast"] = "realtime",
    replies: Reply = None,
    faults: Faults | None = None,
    transcription: bool = True,
    replay: TraceSource | None = None,
    **kwargs: Any,
) -> EmulatorServer | ReplayServer:
    """An emulator to use with ``async with run_emulator(...) as emu: ... emu.url``.

    ``replies`` is a list of texts said in order (then the default), or a function of the
    user's transcript returning the reply text (may be async); by default the emulator
    answers ``You said: "<what it heard>".`` Other keyword arguments go to :class:`EmulatorServer`.

    ``workers=N`` serves connections from N worker processes behind this one address
    (:class:`~.workers.WorkerPool`, same ``url`` / ``start`` / ``stop``; options must be picklable).

    ``replay=`` a trace (a list of ``(direction, payload)``) or a ``Session(record=DIR)``
    directory serves that recorded traffic instead (:class:`~.replay.ReplayServer`; the
    other options do not apply to it).
    """
    if replay is not None:
        return ReplayServer(replay, host, port)
    workers = kwargs.pop("workers", None)
    if workers is not None:
        from .workers import WorkerPool

        return WorkerPool(  # type: ignore[return-value]
            workers,
            host,
            port,
            api_key=api_key,
            pace=pace,
            replies=replies,
            faults=faults,
            transcription=transcription,
            **kwargs,
        )
    return EmulatorServer(
        host,
        port,
        api_key=api_key,
        pace=pace,
        replies=replies,
        faults=faults,
        transcription=transcription,
        **kwargs,
    )


class BackgroundEmulator:
    """An emulator running on its own thread and event loop (for scripts and notebooks)."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._loop = asyncio.new_event_loop()
        self._server: Any = None  # an EmulatorServer, or a WorkerPool with workers=N
        self._thread = threading.Thread(target=self._loop.run_forever, name="voicelive-emulator", daemon=True)

    def start(self) -> BackgroundEmulator:
        self._thread.start()

        async def _start() -> Any:
            kwargs = dict(self._kwargs)
            if kwargs.get("workers") is not None:
                from .workers import WorkerPool

                server: Any = WorkerPool(kwargs.pop("workers"), **kwargs)
            else:
                kwargs.pop("workers", None)
                server = EmulatorServer(**kwargs)
            await server.start()
            return server

        timeout = 30 if self._kwargs.get("workers") is None else 180
        self._server = asyncio.run_coroutine_threadsafe(_start(), self._loop).result(timeout=timeout)
        return self

    @property
    def server(self) -> Any:
        """The :class:`EmulatorServer` (or :class:`~.workers.WorkerPool` with ``workers=N``)."""
        if self._server is None:
            raise StateError("the emulator is not running; call start()")
        return self._server

    @property
    def url(self) -> str:
        return str(self.server.url)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and its thread (idempotent)."""
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop).result(timeout=timeout)
            self._server = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        if not self._loop.is_closed() and not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> BackgroundEmulator:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_thread(**kwargs: Any) -> BackgroundEmulator:
    """Start an emulator on a background thread; ``.url``, ``.stop()`` (also a context manager)."""
    return BackgroundEmulator(**kwargs).start()
