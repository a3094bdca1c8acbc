"""What a :class:`~voicelive_nb.session.Session` sends, in its connection's wire shape.

:class:`Outbox` is the one way out of a session. A client event (an event object or a wire
dict) is written in the connection's shape: a ``session.update`` given in the GA shape is made
flat first, and the whole event is then encoded for a ``ga`` connection. What went over the
wire is kept with its send time (``Session.sent_events``), told to the client's state machine
(which keeps its own books of what was asked) and recorded. Input audio goes out as
``input_audio_buffer.append`` frames, counted by the session's audio feed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .errors import VoiceLiveError
from .protocol.codec import decode_client_event, encode_audio_append, event_to_dict
from .protocol.state import SessionProtocol
from .protocol.wire import encode_client_event, is_ga_session, session_from_wire
from .session_audio import AudioFeed
from .transport import MessageTransport


class RecordingTarget(Protocol):
    """Where a session records: a :class:`~voicelive_nb.recording.Recorder`, or one shared by
    several connections (``close`` is called when the session closes)."""

    def record_sent(self, event: Mapping[str, Any]) -> None: ...

    def record_received(self, event: Mapping[str, Any]) -> None: ...

    def note(self, kind: str, **fields: Any) -> None: ...

    def close(self) -> None: ...


class Outbox:
    """The session's sending side; ``transport`` is set once connected (None before)."""

    def __init__(
        self,
        state: SessionProtocol,
        feed: AudioFeed,
        wire_shape: str,
        max_events: int,
        recorder: Callable[[], RecordingTarget | None],
        status: Callable[[], str],
    ) -> None:
        self.transport: MessageTransport | None = None
        #: ``(time.monotonic() at sending, wire dict)`` of the events sent (not the audio frames).
        self.sent: deque[tuple[float, dict[str, Any]]] = deque(maxlen=max_events)
        self._state = state
        self._feed = feed
        self._shape = wire_shape
        self._recorder = recorder
        self._status = status

    def _open(self) -> MessageTransport:
        if self.transport is None:
            raise VoiceLiveError(f"session is not connected (status: {self._status()})")
        return self.transport

    async def send(self, event: Any) -> None:
        """Send a client event (an event object or a wire dict) in the connection's shape."""
        transport = self._open()
        wire = dict(event) if isinstance(event, Mapping) else event_to_dict(event)
        session = wire.get("session")
        if wire.get("type") == "session.update" and isinstance(session, Mapping) and is_ga_session(session):
            wire["session"] = session_from_wire(session)  # either shape in, the connection's shape out
        canonical = json.dumps(wire, separators=(",", ":"))
        text = canonical if self._shape == "preview" else encode_client_event(wire, self._shape)
        await transport.send(text)
        sent = wire if text is canonical else json.loads(text)
        self.sent.append((time.monotonic(), sent))
        with contextlib.suppress(Exception):  # the books are a view: an odd event is still sent
            self._state.send(decode_client_event(canonical))
        recorder = self._recorder()
        if recorder is not None:
            recorder.record_sent(sent)

    async def append_audio(self, pcm16: bytes, with_reference: bool) -> None:
        """Append one block of PCM16 audio (two channels when ``with_reference``) to the input buffer."""
        await self._open().send(encode_audio_append(pcm16))
        self._feed.sent(pcm16, with_reference)
        recorder = self._recorder()
        if recorder is not None:
            recorder.record_sent(
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm16).decode("ascii")}
            )


def close_recording(recorder: RecordingTarget, status: str) -> None:
    """A session's last note (its status) and the recording's close."""
    recorder.note("closed", status=status)
    recorder.close()
