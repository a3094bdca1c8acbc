"""The pure state machine of one Voice Live session: :class:`SessionProtocol`.

Feed it every event received (:meth:`SessionProtocol.receive`) and every event sent
(:meth:`SessionProtocol.send`); read what it tracks from its properties. It does no I/O and
never reads a clock: what it cannot see on the wire (how much assistant audio was really
played) is told to it with :meth:`SessionProtocol.note_playback`.

Rule 1: every rule about how events change the session's state lives in this file.

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
from typing import Any, Final, NamedTuple

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
from .wire import format_from_wire, session_from_wire

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

_OUTPUT_BYTES_PER_MS: Final[dict[str, int]] = {
    "pcm16": 48,
    "pcm16_16000hz": 32,
    "pcm16_8000hz": 16,
    "pcm16-16000hz": 32,  # legacy spelling the SDK still maps
    "pcm16-8000hz": 16,
    "g711_ulaw": 8,
    "g711_alaw": 8,
}


def output_bytes_per_ms(output_audio_format: str | None) -> int:
    """Bytes per millisecond of assistant audio in ``output_audio_format`` (unknown: pcm16 24 kHz)."""
    return _OUTPUT_BYTES_PER_MS.get(output_audio_format or "pcm16", 48)


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
class ConversationItem:
    """An item of the conversation as last reported by the service."""

    id: str
    type: str | None
    role: str | None
    status: str | None
    previous_item_id: str | None
    data: Mapping[str, Any]  #: the item object itself
    truncated_audio_end_ms: int | None = None  #: set by ``conversation.item.truncated``
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class ResponseRecord:
    """A response: in progress (``status == "in_progress"``) or finished."""

    id: str
    status: str
    status_details: Mapping[str, Any] | None
    output_item_ids: tuple[str, ...]
    usage: Mapping[str, Any] | None
    data: Mapping[str, Any]  #: the last response object received

    @property
    def reason(self) -> str | None:
        """``status_details.reason`` (``turn_detected``, ``client_cancelled``, ``max_output_tokens``…)."""
        details = self.status_details
        reason = details.get("reason") if details else None
        return reason if isinstance(reason, str) else None


@dataclass(frozen=True, slots=True)
class AudioTally:
    """Assistant audio received for one item."""

    item_id: str
    response_id: str
    bytes: int
    bytes_per_ms: int

    @property
    def ms(self) -> float:
        return self.bytes / self.bytes_per_ms


class TranscriptEntry(NamedTuple):
    """One line of the transcript: ``(role, item_id, text, final)``."""

    role: str
    item_id: str
    text: str
    final: bool


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A function call requested by the model, and whether its output was sent back."""

    call_id: str
    name: str
    item_id: str
    response_id: str | None
    arguments: str
    done: bool
    output_sent: bool


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """An ``mcp_approval_request`` item: a server-side (MCP) tool call waiting for the user's answer.

    ``approve`` is None until an ``mcp_approval_response`` for it was sent (or reported by the
    service), then what it said.
    """

    id: str  #: the item id, which the answer names as ``approval_request_id``
    server_label: str
    name: str
    arguments: str
    response_id: str | None
    data: Mapping[str, Any]  #: the item as last received, verbatim
    approve: bool | None = None
    reason: str | None = None

    @property
    def pending(self) -> bool:
        return self.approve is None


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


# ---------------------------------------------------------------------------------- mutable internals


class _Text:
    __slots__ = ("done", "parts", "role")

    def __init__(self, role: str) -> None:
        self.role = role
        self.parts: dict[int, str] = {}
        self.done: set[int] = set()

    @property
    def text(self) -> str:
        return "".join(self.parts[i] for i in sorted(self.parts))

    @property
    def final(self) -> bool:
        return bool(self.parts) and self.done.issuperset(self.parts)


class _Response:
    __slots__ = ("bytes_per_ms", "data", "id", "output")

    def __init__(self, response_id: str, data: Mapping[str, Any], bytes_per_ms: int) -> None:
        self.id = response_id
        self.data = data
        self.output: list[str] = []
        self.bytes_per_ms = bytes_per_ms

    def record(self) -> ResponseRecord:
        data = self.data
        status = data.get("status")
        return ResponseRecord(
            id=self.id,
            status=status if isinstance(status, str) else "in_progress",
            status_details=_mapping_or_none(data.get("status_details")),
            output_item_ids=tuple(self.output),
            usage=_mapping_or_none(data.get("usage")),
            data=data,
        )


class _Audio:
    __slots__ = ("bytes", "bytes_per_ms", "response_id")

    def __init__(self, response_id: str, bytes_per_ms: int) -> None:
        self.response_id = response_id
        self.bytes = 0
        self.bytes_per_ms = bytes_per_ms


def _mapping_or_none(value: object) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


_PART_TEXT_KEYS: Final = {
    "input_text": "text",
    "text": "text",
    "output_text": "text",  # GA shape
    "input_audio": "transcript",
    "audio": "transcript",
    "output_audio": "transcript",  # GA shape
}

#: How many unknown events, protocol warnings, errors and warnings are kept (all are counted).
KEEP_LAST: Final = 200


def _response_output_format(response: Mapping[str, Any]) -> str | None:
    """The output audio format a response object names, in either shape (None if it names none)."""
    fmt = response.get("output_audio_format")
    if isinstance(fmt, str):
        return fmt
    audio = response.get("audio")
    output = audio.get("output") if isinstance(audio, Mapping) else None
    parsed = format_from_wire(output.get("format"), output=True) if isinstance(output, Mapping) else None
    return parsed[0] if parsed is not None else None


# ---------------------------------------------------------------------------------- the state machine


class SessionProtocol:
    """Sans-I/O tracker of one Voice Live session (see the module docstring for the rules)."""

    def __init__(self) -> None:
        self._session: dict[str, Any] = {}
        self._created = False
        #: every item id placed so far, in conversation order (deleted ones included)
        self._order: list[str] = []
        self._items: dict[str, ConversationItem] = {}
        self._active: dict[str, _Response] = {}
        self._finished: list[ResponseRecord] = []
        #: the latest response created since the last speech_started
        self._last_response: _Response | None = None
        self._pending_output_format: str | None = None
        self._segments: list[VadSegment] = []
        self._audio: dict[str, _Audio] = {}
        self._played: dict[str, float] = {}
        self._texts: dict[str, _Text] = {}
        self._transcription_errors: dict[str, Mapping[str, Any]] = {}
        self._calls: dict[str, FunctionCall] = {}
        self._approvals: dict[str, ApprovalRequest] = {}
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
        self._on_receive: dict[type[ServerEvent], Callable[[Any], BargeIn | None]] = {
            SessionCreated: self._session_created,
            SessionUpdated: self._session_updated,
            InputAudioBufferSpeechStarted: self._speech_started,
            InputAudioBufferSpeechStopped: self._speech_stopped,
            InputAudioBufferCommitted: self._committed,
            ConversationItemCreated: self._item_created,
            ConversationItemDone: self._item_done,
            ConversationItemRetrieved: self._item_retrieved,
            ConversationItemTruncated: self._item_truncated,
            ConversationItemDeleted: self._item_deleted,
            ConversationItemInputAudioTranscriptionDelta: self._user_transcript_delta,
            ConversationItemInputAudioTranscriptionCompleted: self._user_transcript_completed,
            ConversationItemInputAudioTranscriptionFailed: self._user_transcript_failed,
            ResponseCreated: self._response_created,
            ResponseOutputItemAdded: self._output_item_added,
            ResponseOutputItemDone: self._output_item_done,
            ResponseContentPartDone: self._content_part_done,
            ResponseAudioDelta: self._audio_delta,
            ResponseAudioTranscriptDelta: self._assistant_delta,
            ResponseTextDelta: self._assistant_delta,
            ResponseAudioTranscriptDone: self._assistant_transcript_done,
            ResponseTextDone: self._assistant_text_done,
            ResponseFunctionCallArgumentsDelta: self._call_arguments_delta,
            ResponseFunctionCallArgumentsDone: self._call_arguments_done,
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
            self._note_mcp_item(event)
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
            self._pending_output_format = _response_output_format(event.response) if event.response else None
        elif isinstance(event, ConversationItemCreate):
            item = event.item
            call_id = item.get("call_id")
            if item.get("type") == "function_call_output" and isinstance(call_id, str):
                call = self._calls.get(call_id)
                if call is not None:
                    self._calls[call_id] = replace(call, output_sent=True)
            elif item.get("type") == "mcp_approval_response":
                self._answer_approval(item)
        elif isinstance(event, McpApprovalResponse):
            self._answer_approval(
                {"approval_request_id": event.approval_request_id, "approve": event.approve}
            )

    def _note_mcp_item(self, event: ServerEvent) -> None:
        """Record ``mcp_approval_request`` items (and answers the service reports) of any item event."""
        item = getattr(event, "item", None)
        if not isinstance(item, Mapping):
            return
        itype = item.get("type")
        if itype == "mcp_approval_response":
            self._answer_approval(item)
            return
        item_id = item.get("id")
        if itype != "mcp_approval_request" or not isinstance(item_id, str):
            return
        old = self._approvals.get(item_id)
        arguments = item.get("arguments")
        if not isinstance(arguments, str):
            arguments = "" if arguments is None else str(arguments)
        self._approvals[item_id] = ApprovalRequest(
            id=item_id,
            server_label=_str_or_none(item.get("server_label")) or "",
            name=_str_or_none(item.get("name")) or "",
            arguments=arguments,
            response_id=_str_or_none(getattr(event, "response_id", None))
            or (old.response_id if old is not None else None),
            data=item,
            approve=old.approve if old is not None else None,
            reason=old.reason if old is not None else None,
        )

    def _answer_approval(self, item: Mapping[str, Any]) -> None:
        request_id = item.get("approval_request_id")
        approve = item.get("approve")
        old = self._approvals.get(request_id) if isinstance(request_id, str) else None
        if old is not None and isinstance(approve, bool):
            self._approvals[old.id] = replace(old, approve=approve, reason=_str_or_none(item.get("reason")))

    def note_playback(self, item_id: str, played_ms: float) -> None:
        """Record how much of an assistant item's audio was really played (never decreases)."""
        if played_ms > self._played.get(item_id, -1.0):
            self._played[item_id] = played_ms

    # ------------------------------------------------------------------ helpers for callers

    def audio_ms(self, item_id: str) -> float:
        """Milliseconds of assistant audio received for ``item_id`` (0 if none)."""
        tally = self._audio.get(item_id)
        return tally.bytes / tally.bytes_per_ms if tally is not None else 0.0

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
        return RESPONDING if self._active else READY

    @property
    def session(self) -> Mapping[str, Any]:
        """The effective session, read-only (empty before ``session.created``)."""
        return MappingProxyType(self._session)

    @property
    def session_id(self) -> str | None:
        return _str_or_none(self._session.get("id"))

    @property
    def items(self) -> tuple[ConversationItem, ...]:
        """The conversation, in order, without deleted items."""
        return tuple(
            item for i in self._order if (item := self._items.get(i)) is not None and not item.deleted
        )

    def item(self, item_id: str) -> ConversationItem | None:
        """The item with this id (deleted ones included), or None."""
        return self._items.get(item_id)

    @property
    def active_response(self) -> ResponseRecord | None:
        """The latest response still in progress, or None."""
        if not self._active:
            return None
        return next(reversed(self._active.values())).record()

    @property
    def active_responses(self) -> tuple[ResponseRecord, ...]:
        return tuple(r.record() for r in self._active.values())

    @property
    def responses(self) -> tuple[ResponseRecord, ...]:
        """Finished responses, in the order they finished."""
        return tuple(self._finished)

    @property
    def vad_segments(self) -> tuple[VadSegment, ...]:
        return tuple(self._segments)

    @property
    def user_speaking(self) -> bool:
        return bool(self._segments) and self._segments[-1].end_ms is None

    @property
    def assistant_audio(self) -> dict[str, AudioTally]:
        """Assistant audio received, per item id."""
        return {
            item_id: AudioTally(item_id, a.response_id, a.bytes, a.bytes_per_ms)
            for item_id, a in self._audio.items()
        }

    @property
    def played_ms(self) -> Mapping[str, float]:
        """What :meth:`note_playback` was told, per item id."""
        return dict(self._played)

    @property
    def input_audio_ms(self) -> float:
        """Milliseconds of input audio sent with ``input_audio_buffer.append``."""
        return self._input_bytes / input_bytes_per_ms(self._session)

    @property
    def transcript(self) -> list[TranscriptEntry]:
        """``(role, item_id, text, final)`` for every item with text, in conversation order."""
        entries = []
        for item_id in self._order:
            text = self._texts.get(item_id)
            if text is not None:
                entries.append(TranscriptEntry(text.role, item_id, text.text, text.final))
        return entries

    @property
    def transcription_errors(self) -> Mapping[str, Mapping[str, Any]]:
        """The ``error`` of ``input_audio_transcription.failed``, per user item id."""
        return dict(self._transcription_errors)

    @property
    def function_calls(self) -> tuple[FunctionCall, ...]:
        return tuple(self._calls.values())

    @property
    def pending_function_calls(self) -> tuple[FunctionCall, ...]:
        """Calls whose arguments are complete and whose output was not sent yet."""
        return tuple(c for c in self._calls.values() if c.done and not c.output_sent)

    @property
    def approval_requests(self) -> tuple[ApprovalRequest, ...]:
        """Every ``mcp_approval_request`` seen, oldest first (answered or not)."""
        return tuple(self._approvals.values())

    @property
    def pending_approvals(self) -> tuple[ApprovalRequest, ...]:
        """Approval requests not answered yet."""
        return tuple(a for a in self._approvals.values() if a.approve is None)

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

    # ------------------------------------------------------------------ input audio / VAD

    def _speech_started(self, event: InputAudioBufferSpeechStarted) -> BargeIn | None:
        self._segments.append(VadSegment(event.item_id, event.audio_start_ms, started_at=self._now))
        barge_in = self._barge_in(event)
        self._last_response = None
        if barge_in is not None:
            self._barge_ins.append(barge_in)
        return barge_in

    def _barge_in(self, event: InputAudioBufferSpeechStarted) -> BargeIn | None:
        active = next(reversed(self._active.values())) if self._active else None
        response = active or self._last_response
        if response is None:
            return None
        item_id = next((i for i in reversed(response.output) if i in self._audio), None)
        received = self.audio_ms(item_id) if item_id is not None else 0.0
        played = self._played.get(item_id) if item_id is not None else None
        if active is None and (received <= 0 or (played is not None and played >= received)):
            return None  # nothing left to hear
        turn_detection = self._session.get("turn_detection")
        server_truncates = (
            isinstance(turn_detection, Mapping)
            and turn_detection.get("auto_truncate") is True
            and turn_detection.get("interrupt_response") is not False
        )
        return BargeIn(
            user_item_id=event.item_id,
            audio_start_ms=event.audio_start_ms,
            response_id=response.id,
            response_active=active is not None,
            assistant_item_id=item_id,
            received_audio_ms=received,
            played_audio_ms=played,
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

    # ------------------------------------------------------------------ conversation

    def _place(self, item_id: str, previous_item_id: str | None) -> None:
        if item_id in self._order:
            self._order.remove(item_id)
        if previous_item_id is None or previous_item_id == "root":
            self._order.insert(0, item_id)
        elif previous_item_id in self._order:
            self._order.insert(self._order.index(previous_item_id) + 1, item_id)
        else:
            self._order.append(item_id)

    def _remember_item(self, item: Mapping[str, Any]) -> str | None:
        """Store the item object under its id (keeping what only events told: place, truncation)."""
        item_id = item.get("id")
        if not isinstance(item_id, str):
            return None
        old = self._items.get(item_id)
        self._items[item_id] = ConversationItem(
            id=item_id,
            type=_str_or_none(item.get("type")),
            role=_str_or_none(item.get("role")),
            status=_str_or_none(item.get("status")),
            previous_item_id=old.previous_item_id if old is not None else None,
            data=item,
            truncated_audio_end_ms=old.truncated_audio_end_ms if old is not None else None,
            deleted=old.deleted if old is not None else False,
        )
        return item_id

    def _item_created(self, event: ConversationItemCreated) -> None:
        item_id = self._remember_item(event.item)
        if item_id is None:
            return
        self._items[item_id] = replace(self._items[item_id], previous_item_id=event.previous_item_id)
        self._place(item_id, event.previous_item_id)
        self._absorb_content(item_id, event.item, authoritative=False)

    def _item_done(self, event: ConversationItemDone) -> None:
        """Like ``created`` for an item not seen yet; its content is final."""
        item_id = self._remember_item(event.item)
        if item_id is None:
            return
        if item_id not in self._order:
            self._items[item_id] = replace(self._items[item_id], previous_item_id=event.previous_item_id)
            self._place(item_id, event.previous_item_id)
        self._absorb_content(item_id, event.item, authoritative=True)

    def _item_retrieved(self, event: ConversationItemRetrieved) -> None:
        if event.item is None:
            return
        item_id = event.item.get("id")
        if isinstance(item_id, str) and item_id in self._items:
            self._remember_item(event.item)
            self._absorb_content(item_id, event.item, authoritative=True)

    def _item_truncated(self, event: ConversationItemTruncated) -> None:
        item = self._items.get(event.item_id)
        if item is not None:
            self._items[event.item_id] = replace(item, truncated_audio_end_ms=event.audio_end_ms)

    def _item_deleted(self, event: ConversationItemDeleted) -> None:
        item = self._items.get(event.item_id)
        if item is not None:
            self._items[event.item_id] = replace(item, deleted=True)

    # ------------------------------------------------------------------ transcripts

    def _text(self, item_id: str, role: str) -> _Text:
        text = self._texts.get(item_id)
        if text is None:
            item = self._items.get(item_id)
            text = self._texts[item_id] = _Text(item.role if item is not None and item.role else role)
            if item_id not in self._order:
                self._order.append(item_id)
        return text

    def _absorb_content(self, item_id: str, item: Mapping[str, Any], *, authoritative: bool) -> None:
        """Take the text of a message item's content parts (see the module docstring)."""
        content = item.get("content")
        if item.get("type") != "message" or not isinstance(content, list):
            return
        final = item.get("status") != "in_progress"
        role = _str_or_none(item.get("role")) or "assistant"
        for index, part in enumerate(content):
            if isinstance(part, Mapping):
                self._absorb_part(item_id, role, index, part, final=final, authoritative=authoritative)

    def _absorb_part(
        self,
        item_id: str,
        role: str,
        index: int,
        part: Mapping[str, Any],
        *,
        final: bool,
        authoritative: bool,
    ) -> None:
        part_type = part.get("type")
        key = _PART_TEXT_KEYS.get(part_type) if isinstance(part_type, str) else None
        value = part.get(key) if key is not None else None
        if not isinstance(value, str) or not value:
            return
        existing = self._texts.get(item_id)
        # a finished part never changes; an unfinished stream gives way only to final content
        if (
            existing is not None
            and index in existing.parts
            and (index in existing.done or not (authoritative and final))
        ):
            return
        text = self._text(item_id, role)
        text.parts[index] = value
        if final:
            text.done.add(index)

    def _user_transcript_delta(self, event: ConversationItemInputAudioTranscriptionDelta) -> None:
        if event.delta:
            text = self._text(event.item_id, "user")
            index = event.content_index or 0
            text.parts[index] = text.parts.get(index, "") + event.delta

    def _user_transcript_completed(self, event: ConversationItemInputAudioTranscriptionCompleted) -> None:
        text = self._text(event.item_id, "user")
        text.parts[event.content_index] = event.transcript
        text.done.add(event.content_index)

    def _user_transcript_failed(self, event: ConversationItemInputAudioTranscriptionFailed) -> None:
        self._transcription_errors[event.item_id] = event.error
        text = self._text(event.item_id, "user")
        text.parts.setdefault(event.content_index, "")
        text.done.add(event.content_index)

    def _assistant_delta(self, event: ResponseAudioTranscriptDelta | ResponseTextDelta) -> None:
        text = self._text(event.item_id, "assistant")
        text.parts[event.content_index] = text.parts.get(event.content_index, "") + event.delta

    def _assistant_transcript_done(self, event: ResponseAudioTranscriptDone) -> None:
        text = self._text(event.item_id, "assistant")
        text.parts[event.content_index] = event.transcript
        text.done.add(event.content_index)

    def _assistant_text_done(self, event: ResponseTextDone) -> None:
        text = self._text(event.item_id, "assistant")
        text.parts[event.content_index] = event.text
        text.done.add(event.content_index)

    def _content_part_done(self, event: ResponseContentPartDone) -> None:
        self._absorb_part(
            event.item_id, "assistant", event.content_index, event.part, final=True, authoritative=True
        )

    # ------------------------------------------------------------------ responses

    def _response_created(self, event: ResponseCreated) -> None:
        response_id = event.response.get("id")
        if not isinstance(response_id, str):
            return
        fmt = _response_output_format(event.response)
        if fmt is None:
            fmt = self._pending_output_format or _str_or_none(self._session.get("output_audio_format"))
        self._pending_output_format = None
        response = _Response(response_id, event.response, output_bytes_per_ms(fmt))
        self._active[response_id] = response
        self._last_response = response

    def _output_item_added(self, event: ResponseOutputItemAdded) -> None:
        item_id = event.item.get("id")
        response = self._active.get(event.response_id)
        if isinstance(item_id, str) and response is not None and item_id not in response.output:
            response.output.append(item_id)
        call_id = event.item.get("call_id")
        if (
            event.item.get("type") == "function_call"
            and isinstance(call_id, str)
            and isinstance(item_id, str)
        ):
            self._calls[call_id] = FunctionCall(
                call_id=call_id,
                name=_str_or_none(event.item.get("name")) or "",
                item_id=item_id,
                response_id=event.response_id,
                arguments=_str_or_none(event.item.get("arguments")) or "",
                done=False,
                output_sent=False,
            )

    def _output_item_done(self, event: ResponseOutputItemDone) -> None:
        item_id = event.item.get("id")
        if not isinstance(item_id, str):
            return
        if item_id in self._items:
            self._remember_item(event.item)
        self._absorb_content(item_id, event.item, authoritative=True)
        call_id = event.item.get("call_id")
        call = self._calls.get(call_id) if isinstance(call_id, str) else None
        if call is not None and not call.done:
            arguments = _str_or_none(event.item.get("arguments"))
            self._calls[call.call_id] = replace(
                call, arguments=arguments if arguments is not None else call.arguments, done=True
            )

    def _audio_delta(self, event: ResponseAudioDelta) -> None:
        tally = self._audio.get(event.item_id)
        if tally is None:
            response = self._active.get(event.response_id)
            per_ms = (
                response.bytes_per_ms
                if response is not None
                else output_bytes_per_ms(_str_or_none(self._session.get("output_audio_format")))
            )
            tally = self._audio[event.item_id] = _Audio(event.response_id, per_ms)
            if response is not None and event.item_id not in response.output:
                response.output.append(event.item_id)
        tally.bytes += event.audio_size

    def _call_arguments_delta(self, event: ResponseFunctionCallArgumentsDelta) -> None:
        call = self._calls.get(event.call_id)
        if call is None:
            call = FunctionCall(event.call_id, "", event.item_id, event.response_id, "", False, False)
        self._calls[event.call_id] = replace(call, arguments=call.arguments + event.delta)

    def _call_arguments_done(self, event: ResponseFunctionCallArgumentsDone) -> None:
        call = self._calls.get(event.call_id)
        if call is None:
            call = FunctionCall(event.call_id, event.name, event.item_id, event.response_id, "", False, False)
        self._calls[event.call_id] = replace(call, name=event.name, arguments=event.arguments, done=True)

    def _response_done(self, event: ResponseDone) -> None:
        response_id = event.response.get("id")
        if not isinstance(response_id, str):
            return
        response = self._active.pop(response_id, None)
        if response is None:
            response = _Response(response_id, event.response, output_bytes_per_ms(None))
        response.data = event.response
        output = event.response.get("output")
        if isinstance(output, list):
            for item in output:
                item_id = item.get("id") if isinstance(item, Mapping) else None
                if isinstance(item_id, str):
                    if item_id not in response.output:
                        response.output.append(item_id)
                    if item_id in self._items:
                        self._remember_item(item)
        self._finished.append(response.record())

    # ------------------------------------------------------------------ errors

    def _error(self, event: Error) -> None:
        self._errors.append(event)
        self._counts["errors"] += 1

    def _warning(self, event: Warning) -> None:
        self._warnings.append(event)
        self._counts["warnings"] += 1
