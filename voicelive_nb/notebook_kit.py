"""What every connection of a :class:`~voicelive_nb.notebook_session.NotebookSession` is built with.

A notebook session opens many connections (reconnects, rollovers); each must get the same
registered tools and ``on()`` handlers, report its tool calls into one record, write to the one
recording, wake the rollover on every event, and note when the service answered a cell's
request. :class:`ConnectionKit` owns those and builds each new
:class:`~voicelive_nb.session.Session` from them.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from .audio.base import AudioSink
from .connection import ConnectionOptions
from .notebook_rollover import ANSWERED_BY, notes
from .protocol.config import SessionConfig
from .session import Session
from .tools import Tool, ToolCall

log = logging.getLogger("voicelive_nb.notebook")


class ConnectionKit:
    """The registered tools and their calls, the ``on()`` handlers, and the builder of each connection."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self.tools: dict[str, Tool] = {t.name: t for t in tools}
        #: Every call the model made of a registered tool, across connections, oldest first.
        self.tool_calls: list[ToolCall] = []
        self.tool_listeners: list[Callable[[ToolCall], None]] = []
        #: ``(event_type, handler)`` of :meth:`NotebookSession.on`, given to every connection.
        self.handlers: list[tuple[str, Callable[[Any], Any]]] = []

    def register(self, *tools: Tool) -> None:
        for t in tools:
            self.tools[t.name] = t

    def build(
        self,
        config: SessionConfig,
        speaker: AudioSink | None,
        connection: ConnectionOptions,
        recording: Any,
        woken: Callable[[Any], None],
    ) -> Session:
        """A new, not yet opened connection: no source of its own (the microphone is attached later)."""
        session = Session(
            config,
            source=None,
            sink=speaker,
            close_audio=False,
            tools=list(self.tools.values()),
            connection=connection,
            record=recording,  # one recording across connections (or None)
        )
        session.tool_listeners.append(self.on_tool_call)
        noted = notes(session)
        session.on("session.created", lambda _e: setattr(noted, "connected_unix", time.time()))
        session.on("*", woken)
        for answer in ANSWERED_BY.values():
            session.on(answer, lambda e: noted.answered.__setitem__(e.type, time.monotonic()))
        for event_type, handler in self.handlers:
            session.on(event_type, handler)
        return session

    def on_tool_call(self, call: ToolCall) -> None:
        """Tool listener of every connection: record the call once, tell the listeners of each change."""
        if not any(known is call for known in self.tool_calls):
            self.tool_calls.append(call)
        for listener in tuple(self.tool_listeners):
            try:
                listener(call)
            except Exception:
                log.exception("tool listener failed")


def log_tool_update(future: concurrent.futures.Future[Any]) -> None:
    """Done callback of a live tool-list update sent without waiting."""
    if not future.cancelled() and future.exception() is not None:
        log.error("sending the new tool list failed: %s", future.exception())
