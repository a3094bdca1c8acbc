"""One connection of a :class:`~voicelive_nb.session.Session`: up, alive, and down again.

:class:`Link` opens the connection with the :class:`~.session_connect.Connector` (emulator,
URL, credential, transport; what must be undone goes on its exit stack), starts the recording
when the session has a directory for one, and starts the reader. While it lives it can say
which of its parts are still running (the reader, the audio pump, background sends, the
keepalive, the socket) and drop the connection at once (:meth:`abort`). Taking it down is two
bounded steps around the session's own audio: :meth:`hang_up` (stop the pump and background
tasks, close or drop the socket, let the reader finish) and :meth:`release` (the recording,
then the credential and the emulator).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .connection import ConnectionOptions
from .errors import ConnectionClosed
from .session_audio import AudioFeed
from .session_connect import Cleanup, Connector
from .session_reader import Reader
from .session_send import Outbox, RecordingTarget, close_recording
from .session_tasks import Background, Health
from .transport import MessageTransport, redact_url


class Link:
    """The session's connection and the tasks that live with it (see the module doc)."""

    def __init__(
        self,
        options: ConnectionOptions,
        outbox: Outbox,
        reader: Reader,
        feed: AudioFeed,
        background: Background,
        health: Health,
        recorder: RecordingTarget | None,
    ) -> None:
        #: The way in: emulator, URL, credential (:class:`~.session_connect.Connector`).
        self.connector = Connector(options)
        #: Where the session records (None: nowhere); set by :meth:`open` for a directory.
        self.recorder = recorder
        self._stack: contextlib.AsyncExitStack | None = None
        self._outbox = outbox
        self._reader = reader
        self._feed = feed
        self._background = background
        self._health = health

    @property
    def transport(self) -> MessageTransport | None:
        """The connection (None before connecting)."""
        return self._outbox.transport

    async def open(
        self,
        settings: Any,
        config: Any,
        *,
        use_emulator: bool,
        wire_shape: str,
        timeouts: Mapping[str, Any],
        record_dir: Path | None,
        lost: Callable[[ConnectionClosed], None],
    ) -> None:
        """Connect, start the recording (``record_dir``) and the reader."""
        self._stack = contextlib.AsyncExitStack()
        transport = await self.connector.open(
            self._stack, settings, config, use_emulator=use_emulator, wire_shape=wire_shape, timeouts=timeouts
        )
        self._outbox.transport = transport
        if record_dir is not None:
            from .recording import Recorder

            self.recorder = Recorder(
                record_dir,
                input_sample_rate=config.input_sample_rate,
                output_sample_rate=config.output_sample_rate,
            )
            url = self.connector.url
            self.recorder.note("connected", url=redact_url(url) if url else None)
        self._reader.start(transport, lambda: self._health.closing, lost, self._health.crashed)

    def given_up(self) -> str | None:
        """Why the transport gave up on the peer, if it did."""
        transport = self.transport
        return transport.failure if transport is not None else None

    def _tasks(self) -> list[asyncio.Task[Any] | None]:
        return [self._reader.task, self._feed.pump, *tuple(self._background.tasks)]

    def abort(self) -> None:
        """Drop the connection now and cancel the tasks (synchronous, idempotent)."""
        self._health.closing = True
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.abort()
        for task in self._tasks():
            if task is not None and not task.done():
                task.cancel()

    def running_tasks(self) -> list[asyncio.Task[Any]]:
        """The reader, the pump, background sends and the keepalive, those still running."""
        tasks = [t for t in self._tasks() if t is not None]
        if self.transport is not None:
            tasks.extend(self.transport.tasks())
        return [t for t in tasks if not t.done()]

    def still_running(self) -> list[str]:
        """What is still alive, in words; empty once everything is down."""
        left = [
            f"the {name} task"
            for name, task in (("reader", self._reader.task), ("audio", self._feed.pump))
            if task is not None and not task.done()
        ]
        background = sum(1 for t in tuple(self._background.tasks) if not t.done())
        if background:
            left.append(f"{background} background task{'s' if background > 1 else ''}")
        transport = self.transport
        if transport is not None:
            if any(not t.done() for t in transport.tasks()):
                left.append("the keepalive task")
            if transport.connection_state != "closed":
                left.append(f"the connection ({transport.connection_state})")
        return left

    async def settle(self, timeout: float) -> None:
        """Let an aborted socket and cancelled tasks report themselves finished (bounded, never raises)."""
        pending = self.running_tasks()
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        if self.transport is not None:
            await self.transport.wait_closed(timeout)

    async def wait_closed(self) -> None:
        """Return once the reader has ended (the connection closed, was lost, or was closed)."""
        if self._reader.task is not None:
            await asyncio.wait([self._reader.task])

    async def hang_up(self, steps: Cleanup) -> None:
        """Stop the pump and background tasks, close (or, once cancelled, drop) the socket, end the reader."""
        tasks = [t for t in (self._feed.pump, *self._background.tasks) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        await steps.finish(tasks)
        self._health.closing = True
        if self.transport is not None:
            if steps.cancelled:
                self.transport.abort()
            else:
                await steps.guard(self.transport.close)  # bounded by close_timeout_s, never raises
        reader = self._reader.task
        if reader is not None and not reader.done():
            if not steps.cancelled:
                await steps.finish([reader])
            if not reader.done():
                reader.cancel()

    async def release(self, steps: Cleanup, status: str) -> None:
        """Close the recording (its last note: ``status``), then the credential and the emulator."""
        recorder = self.recorder
        if recorder is not None:
            steps.call(lambda: close_recording(recorder, status), "closing the recording")
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await steps.run(stack.aclose, "closing the credential/emulator", extra_s=5)
