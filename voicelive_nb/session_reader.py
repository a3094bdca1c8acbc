"""The reader of a :class:`~voicelive_nb.session.Session`: its task and the intake of every message.

:class:`Reader` owns the task that receives from the transport and what happens to each
message, in order: decode, count what cannot be used (:class:`ProtocolWarnings`), record,
feed the state machine and the playback, keep in the history, hand to the tool loop, the
handlers and the waiters. How the connection ends is not its business: it reports a lost
connection or its own crash to the session, which owns the status and the failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConnectionClosed, ProtocolError
from .protocol.codec import decode_server_event, event_to_dict
from .protocol.events import ProtocolWarning
from .protocol.state import SessionProtocol
from .session_audio import Playback
from .session_events import EventLog, Handlers, reason
from .tools import ToolRunner
from .transport import MessageTransport

log = logging.getLogger("voicelive_nb.session")

#: How many distinct kinds of protocol warning are logged (each once); later kinds are only counted.
MAX_WARNING_KINDS = 64


class ProtocolWarnings:
    """The messages a session could not use: counted, the latest kept, each kind logged once."""

    def __init__(self) -> None:
        self.count = 0
        self.last: str | None = None
        self._kinds: set[str] = set()

    def warn(self, message: str, exc: BaseException | None = None) -> None:
        """Count a message the reader could not use; log each kind of problem once."""
        self.count += 1
        self.last = message
        kind = message.split(":", 1)[0] if exc is None else f"{message[:40]}{type(exc).__name__}"
        if kind not in self._kinds and len(self._kinds) < MAX_WARNING_KINDS:
            self._kinds.add(kind)
            log.warning("%s (skipped; the session goes on; further ones are only counted)", message)


@dataclass
class Intake:
    """Where the reader hands each event: the parts of the session that consume received events."""

    state: SessionProtocol
    received: EventLog
    handlers: Handlers
    playback: Playback
    tools: ToolRunner
    #: The ``error`` events received (the session's public ``errors`` list).
    errors: list[Any]
    #: The recorder, asked per message (it is attached when the session connects).
    recorder: Callable[[], Any]
    #: Called with the state machine's barge-in decision.
    barge_in: Callable[[Any], None]


class Reader:
    """The reader task and the intake of every received message (see the module doc)."""

    def __init__(self, intake: Intake, warnings: ProtocolWarnings) -> None:
        self.intake = intake
        self.warnings = warnings
        self.task: asyncio.Task[None] | None = None
        #: The first ``session.created`` that could not be decoded, if one came.
        self.malformed_created: ProtocolWarning | None = None

    def check_created(self) -> None:
        """After waiting for ``session.created``: raise the clear error for a malformed one, if
        one came and no decodable ``session.created`` followed it."""
        malformed = self.malformed_created
        if malformed is not None and not any(
            e.type == "session.created" for _, e in self.intake.received.timed
        ):
            raise malformed_created_error(malformed)

    def start(
        self,
        transport: MessageTransport,
        closing: Callable[[], bool],
        lost: Callable[[ConnectionClosed], None],
        crashed: Callable[[BaseException], None],
    ) -> asyncio.Task[None]:
        """Start reading ``transport``; ``lost`` / ``crashed`` report how reading ended."""
        loop = asyncio.get_running_loop()
        self.task = loop.create_task(self._loop(transport, closing, lost, crashed), name="voicelive-reader")
        return self.task

    async def _loop(
        self,
        transport: MessageTransport,
        closing: Callable[[], bool],
        lost: Callable[[ConnectionClosed], None],
        crashed: Callable[[BaseException], None],
    ) -> None:
        try:
            while True:
                raw = await transport.recv()
                try:
                    self.handle(raw)
                except Exception as exc:  # nothing a peer sends may end the conversation
                    self.warnings.warn(f"a received message could not be handled: {reason(exc)}", exc)
        except ConnectionClosed as exc:
            if closing():
                return
            lost(exc)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug here must never be silent
            crashed(exc)

    def handle(self, raw: str | bytes) -> None:
        """One received message, through every consumer in order."""
        now = time.monotonic()
        event = decode_server_event(raw)
        etype = event.type
        if isinstance(event, ProtocolWarning):
            self._malformed(event)
        self._record(event)
        parts = self.intake
        heard = parts.playback.played_now() if etype == "input_audio_buffer.speech_started" else None
        if heard is not None:  # what was really heard, before the state machine decides about barge-in
            parts.state.note_playback(*heard)
        barge_in = parts.state.receive(event, now)
        size = len(raw) + self._consume(etype, event)
        parts.received.keep(now, event, size)
        if barge_in is not None:
            parts.barge_in(barge_in)
        try:
            parts.tools.handle(event)
        except Exception as exc:  # a tool-loop bug must not stop the reader
            self.warnings.warn(f"the tool loop failed on a {short_type(etype)}: {reason(exc)}", exc)
        parts.handlers.dispatch(etype, event)
        parts.received.wake(etype, event)

    def _malformed(self, event: ProtocolWarning) -> None:
        self.warnings.warn(f"a received message is not a valid event: {event.message}")
        if event.wire_type == "session.created" and self.malformed_created is None:
            self.malformed_created = event
            error = malformed_created_error(event)
            self.intake.received.fail_waiters(error, only_type="session.created")

    def _record(self, event: Any) -> None:
        recorder = self.intake.recorder()
        if recorder is None:
            return
        try:
            recorder.record_received(event_to_dict(event))
        except Exception as exc:
            self.warnings.warn(
                f"a received {short_type(event.type)} could not be recorded: {reason(exc)}", exc
            )

    def _consume(self, etype: str, event: Any) -> int:
        """The audio and error side of an event; the bytes of decoded audio it now holds."""
        parts = self.intake
        if etype == "response.audio.delta":
            return parts.playback.play(event)
        if etype == "response.audio.done" and parts.playback.sink is not None:
            parts.playback.end_of_item(event)
        elif etype in ("session.created", "session.updated"):
            parts.playback.use_format(parts.state.session)
        elif etype == "error":
            parts.errors.append(event)
            log.warning("voice live error event: %s", getattr(event, "error", event))
        return 0


def short_type(etype: object) -> str:
    """An event type fit for a log line (a peer may send anything as a type)."""
    text = etype if isinstance(etype, str) else repr(etype)
    return text if len(text) <= 60 else text[:57] + "..."


def malformed_created_error(event: ProtocolWarning) -> ProtocolError:
    """What setup raises when the ``session.created`` could not be read."""
    return ProtocolError(
        f"a session.created arrived but was malformed: {event.message}; the service (or a proxy) "
        "sent something this client cannot read: check the endpoint and api-version"
    )


def timeout_message(
    event_type: str, timeout: float, status: str, malformed: ProtocolWarning | None, streaming: bool
) -> str:
    """Why a wait for ``event_type`` timed out, in words a user can act on."""
    if malformed is not None and event_type == "session.created":
        return str(malformed_created_error(malformed))
    text = f"no {event_type} within {timeout:g} s (status: {status})"
    if not streaming:
        text += (
            "; no audio source is streaming (the microphone/source is off), so the service hears "
            "nothing: start one with stream(source) or send a response.create"
        )
    return text
