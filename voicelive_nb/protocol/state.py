"""The pure state machine of one Voice Live session: :class:`SessionProtocol`.

Feed it every event received (:meth:`SessionProtocol.receive`) and every event sent
(:meth:`SessionProtocol.send`); read what it tracks from its properties. It does no I/O and
never reads a clock: what it cannot see on the wire (how much assistant audio was really
played) is told to it with :meth:`SessionProtocol.note_playback`.

Rule 1: every rule about how events change the session's state lives in this file and in the
books :class:`SessionProtocol` owns and feeds — the conversation (items and transcript,
:mod:`.conversation`), the responses and their audio (:mod:`.responses`) and the tool calls
and approvals (:mod:`.calls`). It stays the one interpreter: one :meth:`~SessionProtocol.receive`,
one dispatch table; the books never see an event it did not route to them.

Theory of operation
-------------------
* **Session.** ``session.created`` sets the effective session; each ``session.updated`` is
  merged into it key by key (the service sends the full session, but a partial one must not
  erase what we knew); a nested object is replaced whole and ``null`` is kept (it disables).
* **Both wire shapes.** GA-shaped events decode to the same classes (``conversation.item.added``
  is ``conversation.item.created``, ``response.output_audio.delta`` is ``response.audio.delta``…)
  and GA session objects are kept in the canonical flat shape (:func:`.wire.session_from_wire`),
  so every rule below holds for either. ``conversation.item.done`` places an item not seen yet
  and its content is final.
* **Bounded memory.** Unknown events, protocol warnings, errors and warnings keep the last
  :data:`KEEP_LAST` of each; :attr:`SessionProtocol.counts` counts them all.
* **Conversation.** Items are kept in conversation order. ``conversation.item.created``
  places its item right after ``previous_item_id``; ``null`` or ``"root"`` means at the start,
  an id we never saw means at the end. Deleted items leave the conversation (:attr:`items`)
  but keep their place in the transcript.
* **Responses.** ``response.created`` opens a response, ``response.output_item.added`` adds
  its output items, ``response.done`` closes it with its final status, status details and
  usage. More than one may be open (out-of-band responses); :attr:`active_response` is the
  latest.
* **Speech (VAD) segments** are on the session-wide input timeline in milliseconds:
  ``speech_started.audio_start_ms`` to ``speech_stopped.audio_end_ms``, marked committed by
  ``input_audio_buffer.committed`` for the same item.
* **Assistant audio** is counted per item in bytes and converted to milliseconds with the
  output format of its response (pcm16 24 kHz: 48 bytes/ms; 16 kHz: 32; 8 kHz: 16; G.711: 8).
* **Transcripts.** User text comes from ``input_audio_transcription`` delta/completed/failed,
  assistant text from ``audio_transcript`` and ``text`` delta/done, per content part.
  Streamed text wins; item contents (created, output_item.done, content_part.done) fill in
  what was not streamed, and final contents replace unfinished streams.
* **Barge-in.** ``speech_started`` is a barge-in when a response is active, or when the
  latest response since the previous ``speech_started`` produced audio that is not known to
  have been played completely (see :meth:`SessionProtocol.note_playback`). This is the one
  definition: the timeline and the lab read barge-ins, VAD segments and turns from here (the
  timeline tells its playback model through ``note_playback``).
* **Receive times.** ``receive(event, t)`` keeps ``t`` on the records it makes (VAD segment
  start and stop, barge-ins), so views can put them on a time axis without re-reading events.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final

from .calls import ApprovalRequest, FunctionCall, ToolCallBook
from .conversation import Conversation, ConversationItem, TranscriptEntry
from .events import (
    ClientEvent,
    ConversationItemCreate,
    ConversationItemCreated,
    ConversationItemDeleted,
    ConversationItemDone,
    ConversationItemInputAudioTranscriptionCompleted,
    ConversationItemInputAudioTranscriptionDelta,
    ConversationItemInputAudioTranscriptionFailed,
    ConversationItemRetrieved,
    ConversationItemTruncate,
    ConversationItemTruncated,
    Error,
    InputAudioBufferAppend,
    InputAudioBufferCommitted,
    InputAudioBufferSpeechStarted,
    InputAudioBufferSpeechStopped,
    McpApprovalResponse,
    ProtocolWarning,
    ResponseAudioDelta,
    ResponseAudioTranscriptDelta,
    ResponseAudioTranscriptDone,
    ResponseContentPartDone,
    ResponseCreate,
    ResponseCreated,
    ResponseDone,
    ResponseFunctionCallArgumentsDelta,
    ResponseFunctionCallArgumentsDone,
    ResponseOutputItemAdded,
    ResponseOutputItemDone,
    ResponseTextDelta,
    ResponseTextDone,
    ServerEvent,
    SessionCreated,
    SessionUpdated,
    UnknownEvent,
    Warning,
)
from .responses import AudioTally, ResponseBook, ResponseRecord, output_bytes_per_ms
from .wire import session_from_wire

__all__ = [
    "CONNECTING",
    "KEEP_LAST",
    "READY",
    "RESPONDING",
    "ApprovalRequest",
    "AudioTally",
    "BargeIn",
    "ConversationItem",
    "FunctionCall",
    "ResponseRecord",
    "SessionProtocol",
    "SessionState",
    "TranscriptEntry",
    "VadSegment",
    "input_bytes_per_ms",
    "output_bytes_per_ms",
]


class SessionState(enum.IntEnum):
    """Where the session is, as far as the events show."""

    CONNECTING = 0  #: no ``session.created`` yet
    READY = 1  #: connected, no response in progress
    RESPONDING = 2  #: at least one response in progress


CONNECTING: Final = SessionState.CONNECTING
READY: Final = SessionState.READY
RESPONDING: Final = SessionState.RESPONDING


def input_bytes_per_ms(session: Mapping[str, Any]) -> float:
    """Bytes per millisecond of input audio for a session (format, sampling rate, EC channels)."""
    fmt = session.get("input_audio_format") or "pcm16"
    if isinstance(fmt, str) and fmt.startswith("g711"):
        per_ms = 8.0
    else:
        rate = session.get("input_audio_sampling_rate")
        per_ms = (rate if isinstance(rate, int) and rate > 0 else 24000) * 2 / 1000
    ec = session.get("input_audio_echo_cancellation")
    if isinstance(ec, Mapping) and ec.get("channels") == 2:
        per_ms *= 2
    return per_ms


# ---------------------------------------------------------------------------------- records
# (the conversation's, the responses' and the tool calls' records live with their books and are
# re-exported here: ConversationItem, TranscriptEntry, ResponseRecord, AudioTally, FunctionCall,
# ApprovalRequest)


@dataclass(frozen=True, slots=True)
class VadSegment:
    """One stretch of detected speech on the session-wide input timeline."""

    item_id: str
    start_ms: int | None  #: None if ``speech_stopped`` came without a ``speech_started``
    end_ms: int | None = None  #: None while the user is still speaking
    committed: bool = False
    #: receive time of ``speech_started`` / ``speech_stopped`` (as given to :meth:`SessionProtocol.receive`)
    started_at: float | None = field(default=None, compare=False)
    stopped_at: float | None = field(default=None, compare=False)

    @property
    def duration_ms(self) -> int | None:
        if self.start_ms is None or self.end_ms is None:
            return None
        return self.end_ms - self.start_ms


@dataclass(frozen=True, slots=True)
class BargeIn:
    """The user started speaking over the assistant."""

    user_item_id: str
    audio_start_ms: int
    response_id: str  #: the response spoken over
    response_active: bool  #: it was still being generated
    assistant_item_id: str | None  #: its (last) item that carried audio
    received_audio_ms: float  #: audio received for that item
    played_audio_ms: float | None  #: audio played of it, if :meth:`SessionProtocol.note_playback` was told
    server_truncates: bool  #: ``turn_detection.auto_truncate``: the service truncates by itself
    received_at: float | None = field(default=None, compare=False)  #: receive time of the ``speech_started``


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


#: How many unknown events, protocol warnings, errors and warnings are kept (all are counted).
KEEP_LAST: Final = 200


# ---------------------------------------------------------------------------------- the state machine


class SessionProtocol:
    """Sans-I/O tracker of one Voice Live session (see the module docstring for the rules).

    The one interpreter of the events: it owns the session, the VAD segments, barge-ins and
    what was sent, and feeds three books it owns — the conversation (:class:`.Conversation`),
    the responses and their audio (:class:`.ResponseBook`) and the tool calls and approvals
    (:class:`.ToolCallBook`) — from its one dispatch table.
    """

    def __init__(self) -> None:
        self._session: dict[str, Any] = {}
        self._created = False
        self._conversation = Conversation()
        self._responses = ResponseBook()
        self._tool_calls = ToolCallBook()
        self._segments: list[VadSegment] = []
        # bounded: a misbehaving server must not grow memory without limit; counts are exact
        self._errors: deque[Error] = deque(maxlen=KEEP_LAST)
        self._warnings: deque[Warning] = deque(maxlen=KEEP_LAST)
        self._protocol_warnings: deque[ProtocolWarning] = deque(maxlen=KEEP_LAST)
        self._unknown: deque[UnknownEvent] = deque(maxlen=KEEP_LAST)
        self._counts = {"errors": 0, "warnings": 0, "protocol_warnings": 0, "unknown_events": 0}
        self._barge_ins: list[BargeIn] = []
        self._truncates_sent: dict[str, int] = {}
        self._input_bytes = 0
        self._received = 0
        self._now: float | None = None  # receive time of the event being taken in
        conversation, tool_calls = self._conversation, self._tool_calls
        self._on_receive: dict[type[ServerEvent], Callable[[Any], BargeIn | None]] = {
            SessionCreated: self._session_created,
            SessionUpdated: self._session_updated,
            InputAudioBufferSpeechStarted: self._speech_started,
            InputAudioBufferSpeechStopped: self._speech_stopped,
            InputAudioBufferCommitted: self._committed,
            ConversationItemCreated: conversation.item_created,
            ConversationItemDone: conversation.item_done,
            ConversationItemRetrieved: conversation.item_retrieved,
            ConversationItemTruncated: conversation.item_truncated,
            ConversationItemDeleted: conversation.item_deleted,
            ConversationItemInputAudioTranscriptionDelta: conversation.user_transcript_delta,
            ConversationItemInputAudioTranscriptionCompleted: conversation.user_transcript_completed,
            ConversationItemInputAudioTranscriptionFailed: conversation.user_transcript_failed,
            ResponseCreated: self._response_created,
            ResponseOutputItemAdded: self._output_item_added,
            ResponseOutputItemDone: self._output_item_done,
            ResponseContentPartDone: conversation.content_part_done,
            ResponseAudioDelta: self._audio_delta,
            ResponseAudioTranscriptDelta: conversation.assistant_delta,
            ResponseTextDelta: conversation.assistant_delta,
            ResponseAudioTranscriptDone: conversation.assistant_transcript_done,
            ResponseTextDone: conversation.assistant_text_done,
            ResponseFunctionCallArgumentsDelta: tool_calls.arguments_delta,
            ResponseFunctionCallArgumentsDone: tool_calls.arguments_done,
            ResponseDone: self._response_done,
            Error: self._error,
            Warning: self._warning,
        }

    # ------------------------------------------------------------------ inputs

    def receive(self, event: ServerEvent, t: float | None = None) -> BargeIn | None:
        """Take one event received from the service into account (``t``: its receive time, kept
        on the records it makes; the caller reads the clock, this class never does).

        Returns the :class:`BargeIn` when this event is the user speaking over the assistant,
        else None. Unknown events and protocol warnings are recorded, never rejected.
        """
        self._received += 1
        self._now = t
        handler = self._on_receive.get(type(event))
        if handler is not None:
            result = handler(event)
            self._tool_calls.note_item(event)
            return result
        if isinstance(event, ProtocolWarning):
            self._protocol_warnings.append(event)
            self._counts["protocol_warnings"] += 1
        elif isinstance(event, UnknownEvent):
            self._unknown.append(event)
            self._counts["unknown_events"] += 1
        return None

    def send(self, event: ClientEvent) -> None:
        """Take one event the client sent into account."""
        if isinstance(event, InputAudioBufferAppend):
            self._input_bytes += event.audio_size
        elif isinstance(event, ConversationItemTruncate):
            self._truncates_sent[event.item_id] = event.audio_end_ms
        elif isinstance(event, ResponseCreate):
            self._responses.requested(event.response)
        elif isinstance(event, ConversationItemCreate):
            self._tool_calls.item_sent(event.item)
        elif isinstance(event, McpApprovalResponse):
            self._tool_calls.answer(
                {"approval_request_id": event.approval_request_id, "approve": event.approve}
            )

    def note_playback(self, item_id: str, played_ms: float) -> None:
        """Record how much of an assistant item's audio was really played (never decreases)."""
        self._responses.note_playback(item_id, played_ms)

    # ------------------------------------------------------------------ helpers for callers

    def audio_ms(self, item_id: str) -> float:
        """Milliseconds of assistant audio received for ``item_id`` (0 if none)."""
        return self._responses.audio_ms(item_id)

    def truncate_event(
        self, item_id: str, played_ms: float, *, content_index: int = 0
    ) -> ConversationItemTruncate:
        """The ``conversation.item.truncate`` for ``item_id`` after ``played_ms`` of playback.

        ``audio_end_ms`` is clamped to ``[0, audio received]``, as the service rejects a
        truncation beyond the audio it sent.
        """
        received = int(self.audio_ms(item_id))
        end_ms = max(0, min(int(played_ms), received))
        return ConversationItemTruncate(item_id=item_id, content_index=content_index, audio_end_ms=end_ms)

    # ------------------------------------------------------------------ views

    @property
    def state(self) -> SessionState:
        if not self._created:
            return CONNECTING
        return RESPONDING if self._responses.any_active else READY

    @property
    def session(self) -> Mapping[str, Any]:
        """The effective session, read-only (empty before ``session.created``)."""
        return MappingProxyType(self._session)

    @property
    def session_id(self) -> str | None:
        return _str_or_none(self._session.get("id"))

    @property
    def expires_at(self) -> float | None:
        """When the service ends this connection (Unix seconds, the session's ``expires_at``), if it said."""
        value = self._session.get("expires_at")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
        return None

    @property
    def items(self) -> tuple[ConversationItem, ...]:
        """The conversation, in order, without deleted items."""
        return self._conversation.items

    def item(self, item_id: str) -> ConversationItem | None:
        """The item with this id (deleted ones included), or None."""
        return self._conversation.item(item_id)

    @property
    def active_response(self) -> ResponseRecord | None:
        """The latest response still in progress, or None."""
        return self._responses.active_response

    @property
    def active_responses(self) -> tuple[ResponseRecord, ...]:
        return self._responses.active_responses

    @property
    def responses(self) -> tuple[ResponseRecord, ...]:
        """Finished responses, in the order they finished."""
        return self._responses.responses

    @property
    def all_responses(self) -> tuple[ResponseRecord, ...]:
        """Every response so far, finished or in progress, in the order they began (receive times on each)."""
        return self._responses.all_responses

    @property
    def vad_segments(self) -> tuple[VadSegment, ...]:
        return tuple(self._segments)

    @property
    def user_speaking(self) -> bool:
        return bool(self._segments) and self._segments[-1].end_ms is None

    @property
    def assistant_audio(self) -> dict[str, AudioTally]:
        """Assistant audio received, per item id."""
        return self._responses.assistant_audio

    @property
    def played_ms(self) -> Mapping[str, float]:
        """What :meth:`note_playback` was told, per item id."""
        return self._responses.played_ms

    @property
    def input_audio_ms(self) -> float:
        """Milliseconds of input audio sent with ``input_audio_buffer.append``."""
        return self._input_bytes / input_bytes_per_ms(self._session)

    @property
    def transcript(self) -> list[TranscriptEntry]:
        """``(role, item_id, text, final)`` for every item with text, in conversation order."""
        return self._conversation.transcript

    @property
    def transcription_errors(self) -> Mapping[str, Mapping[str, Any]]:
        """The ``error`` of ``input_audio_transcription.failed``, per user item id."""
        return self._conversation.transcription_errors

    @property
    def function_calls(self) -> tuple[FunctionCall, ...]:
        return self._tool_calls.function_calls

    @property
    def pending_function_calls(self) -> tuple[FunctionCall, ...]:
        """Calls whose arguments are complete and whose output was not sent yet."""
        return self._tool_calls.pending_function_calls

    @property
    def approval_requests(self) -> tuple[ApprovalRequest, ...]:
        """Every ``mcp_approval_request`` seen, oldest first (answered or not)."""
        return self._tool_calls.approval_requests

    @property
    def pending_approvals(self) -> tuple[ApprovalRequest, ...]:
        """Approval requests not answered yet."""
        return self._tool_calls.pending_approvals

    @property
    def errors(self) -> tuple[Error, ...]:
        return tuple(self._errors)

    @property
    def warnings(self) -> tuple[Warning, ...]:
        return tuple(self._warnings)

    @property
    def protocol_warnings(self) -> tuple[ProtocolWarning, ...]:
        return tuple(self._protocol_warnings)

    @property
    def unknown_events(self) -> tuple[UnknownEvent, ...]:
        return tuple(self._unknown)

    @property
    def barge_ins(self) -> tuple[BargeIn, ...]:
        return tuple(self._barge_ins)

    @property
    def counts(self) -> Mapping[str, int]:
        """How many errors, warnings, protocol warnings and unknown events were received in all
        (the tuples above keep only the last :data:`KEEP_LAST` of each)."""
        return dict(self._counts)

    @property
    def truncates_sent(self) -> Mapping[str, int]:
        """``audio_end_ms`` of every ``conversation.item.truncate`` sent, per item id."""
        return dict(self._truncates_sent)

    @property
    def events_received(self) -> int:
        return self._received

    # ------------------------------------------------------------------ session

    def _session_created(self, event: SessionCreated) -> None:
        self._session = session_from_wire(event.session)  # canonical flat, whichever the shape
        self._created = True

    def _session_updated(self, event: SessionUpdated) -> None:
        self._session.update(session_from_wire(event.session))
        self._created = True

    def _output_format(self) -> str | None:
        """The session's ``output_audio_format`` (what a response that names none speaks in)."""
        return _str_or_none(self._session.get("output_audio_format"))

    # ------------------------------------------------------------------ input audio / VAD

    def _speech_started(self, event: InputAudioBufferSpeechStarted) -> BargeIn | None:
        self._segments.append(VadSegment(event.item_id, event.audio_start_ms, started_at=self._now))
        barge_in = self._barge_in(event)
        if barge_in is not None:
            self._barge_ins.append(barge_in)
        return barge_in

    def _barge_in(self, event: InputAudioBufferSpeechStarted) -> BargeIn | None:
        spoken_over = self._responses.spoken_over()
        if spoken_over is None:
            return None
        turn_detection = self._session.get("turn_detection")
        server_truncates = (
            isinstance(turn_detection, Mapping)
            and turn_detection.get("auto_truncate") is True
            and turn_detection.get("interrupt_response") is not False
        )
        return BargeIn(
            user_item_id=event.item_id,
            audio_start_ms=event.audio_start_ms,
            response_id=spoken_over.response_id,
            response_active=spoken_over.response_active,
            assistant_item_id=spoken_over.item_id,
            received_audio_ms=spoken_over.received_ms,
            played_audio_ms=spoken_over.played_ms,
            server_truncates=server_truncates,
            received_at=self._now,
        )

    def _segment_index(self, item_id: str) -> int | None:
        for index in range(len(self._segments) - 1, -1, -1):
            if self._segments[index].item_id == item_id:
                return index
        return None

    def _speech_stopped(self, event: InputAudioBufferSpeechStopped) -> None:
        index = self._segment_index(event.item_id)
        if index is None:
            self._segments.append(VadSegment(event.item_id, None, event.audio_end_ms, stopped_at=self._now))
        else:
            segment = self._segments[index]
            self._segments[index] = replace(segment, end_ms=event.audio_end_ms, stopped_at=self._now)

    def _committed(self, event: InputAudioBufferCommitted) -> None:
        index = self._segment_index(event.item_id)
        if index is not None:
            self._segments[index] = replace(self._segments[index], committed=True)

    # ------------------------------------------------------------------ responses (fed to the books)

    def _response_created(self, event: ResponseCreated) -> None:
        self._responses.created(event, self._now, self._output_format())

    def _output_item_added(self, event: ResponseOutputItemAdded) -> None:
        self._responses.output_item_added(event.response_id, event.item.get("id"))
        self._tool_calls.output_item_added(event)

    def _output_item_done(self, event: ResponseOutputItemDone) -> None:
        item_id = event.item.get("id")
        if not isinstance(item_id, str):
            return
        self._conversation.output_item_done(item_id, event.item)
        self._tool_calls.output_item_done(event.item)

    def _audio_delta(self, event: ResponseAudioDelta) -> None:
        self._responses.audio_delta(event, self._now, self._session)  # the hot path: no lookup per delta

    def _response_done(self, event: ResponseDone) -> None:
        if not isinstance(event.response.get("id"), str):
            return
        self._responses.done(event, self._now)
        output = event.response.get("output")
        if isinstance(output, list):
            for item in output:
                if isinstance(item, Mapping):
                    self._conversation.refresh(item)  # the final object of an item already placed

    # ------------------------------------------------------------------ errors

    def _error(self, event: Error) -> None:
        self._errors.append(event)
        self._counts["errors"] += 1

    def _warning(self, event: Warning) -> None:
        self._warnings.append(event)
        self._counts["warnings"] += 1
