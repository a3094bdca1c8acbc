"""Typed, immutable events of the Voice Live realtime protocol.

One class per wire ``type``, named mechanically: the CamelCase of the wire type
(``input_audio_buffer.speech_started`` → :class:`InputAudioBufferSpeechStarted`). Each class
has a class-level ``TYPE`` (the wire string), an instance property ``type`` (the same), an
optional ``event_id``, and its wire fields under their wire names. Nested objects (session,
item, response, part, error) stay plain JSON objects typed as read-only ``Mapping``; the
session configuration model lives in :mod:`voicelive_nb.protocol.config`.

Every event is lossless: keys this package does not model are kept in ``extra``, and the
optional fields that came as an explicit JSON ``null`` are named in ``nulls``, so
``event.to_dict()`` gives back exactly the object that was decoded. Use ``nulls`` to send an
explicit ``null`` yourself; an optional field left at ``None`` is otherwise omitted.

Two classes are not wire events: :class:`UnknownEvent` (a well-formed event of a type this
package does not know) and :class:`ProtocolWarning` (a message that could not be turned into
an event: bad JSON, not an object, no ``type``, a missing required field or a field of the
wrong type). Decoding never raises; see :mod:`voicelive_nb.protocol.codec`.

Class names follow the rule even for ``error`` and ``warning``; because ``Warning`` is also a
builtin, the package re-exports those two as :data:`ErrorEvent` and :data:`WarningEvent`.

Don't subclass the concrete event classes: the decoder relies on the field tables built at
import time from the classes below.
"""

from __future__ import annotations

import binascii
import dataclasses
import types
from collections.abc import Iterator, Mapping, Sequence
from copy import copy as _copy
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, TypeVar, Union, get_args, get_origin, get_type_hints

from ..errors import InvalidType, NotFound, ProtocolError

__all__ = [
    "CLIENT_EVENTS",
    "EMPTY",
    "PROTOCOL_WARNING_TYPE",
    "SERVER_EVENTS",
    "SERVER_EVENT_ALIASES",
    "ClientEvent",
    "ConversationItemCreate",
    "ConversationItemCreated",
    "ConversationItemDelete",
    "ConversationItemDeleted",
    "ConversationItemDone",
    "ConversationItemInputAudioTranscriptionCompleted",
    "ConversationItemInputAudioTranscriptionDelta",
    "ConversationItemInputAudioTranscriptionFailed",
    "ConversationItemRetrieve",
    "ConversationItemRetrieved",
    "ConversationItemTruncate",
    "ConversationItemTruncated",
    "Error",
    "ErrorEvent",
    "Event",
    "FieldSpec",
    "InputAudioBufferAppend",
    "InputAudioBufferClear",
    "InputAudioBufferCleared",
    "InputAudioBufferCommit",
    "InputAudioBufferCommitted",
    "InputAudioBufferSpeechStarted",
    "InputAudioBufferSpeechStopped",
    "InputAudioBufferTimeoutTriggered",
    "InputAudioClear",
    "InputAudioTurnAppend",
    "InputAudioTurnCancel",
    "InputAudioTurnEnd",
    "InputAudioTurnStart",
    "InputTextDelta",
    "InputTextDone",
    "McpApprovalResponse",
    "McpListToolsCompleted",
    "McpListToolsFailed",
    "McpListToolsInProgress",
    "OutputAudioBufferClear",
    "OutputAudioBufferCleared",
    "OutputAudioBufferStarted",
    "OutputAudioBufferStopped",
    "ProtocolWarning",
    "RateLimitsUpdated",
    "ResponseAnimationBlendshapesDelta",
    "ResponseAnimationBlendshapesDone",
    "ResponseAnimationVisemeDelta",
    "ResponseAnimationVisemeDone",
    "ResponseAudioDelta",
    "ResponseAudioDone",
    "ResponseAudioTimestampDelta",
    "ResponseAudioTimestampDone",
    "ResponseAudioTranscriptAnnotationAdded",
    "ResponseAudioTranscriptDelta",
    "ResponseAudioTranscriptDone",
    "ResponseCancel",
    "ResponseContentPartAdded",
    "ResponseContentPartDone",
    "ResponseCreate",
    "ResponseCreated",
    "ResponseDone",
    "ResponseFileSearchCallCompleted",
    "ResponseFileSearchCallInProgress",
    "ResponseFileSearchCallSearching",
    "ResponseFoundryAgentCallArgumentsDelta",
    "ResponseFoundryAgentCallArgumentsDone",
    "ResponseFoundryAgentCallCompleted",
    "ResponseFoundryAgentCallFailed",
    "ResponseFoundryAgentCallInProgress",
    "ResponseFunctionCallArgumentsDelta",
    "ResponseFunctionCallArgumentsDone",
    "ResponseInvocationDelta",
    "ResponseMcpCallArgumentsDelta",
    "ResponseMcpCallArgumentsDone",
    "ResponseMcpCallCompleted",
    "ResponseMcpCallFailed",
    "ResponseMcpCallInProgress",
    "ResponseOutputItemAdded",
    "ResponseOutputItemDone",
    "ResponseTextDelta",
    "ResponseTextDone",
    "ResponseVideoDelta",
    "ResponseWebSearchCallCompleted",
    "ResponseWebSearchCallInProgress",
    "ResponseWebSearchCallSearching",
    "ServerEvent",
    "SessionAvatarConnect",
    "SessionAvatarConnecting",
    "SessionAvatarSwitchToIdle",
    "SessionAvatarSwitchToSpeaking",
    "SessionCreated",
    "SessionUpdate",
    "SessionUpdated",
    "TranscriptionSessionUpdate",
    "UnknownEvent",
    "Warning",
    "WarningEvent",
    "b64_decoded_size",
    "decode_b64_audio",
    "wire_type_to_class_name",
]


class _EmptyMapping(Mapping[str, Any]):
    """An immutable, hashable empty mapping (a valid dataclass default, unlike ``{}``)."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        raise NotFound(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "EMPTY"


#: The shared empty mapping used as the default of ``extra``.
EMPTY: Final[Mapping[str, Any]] = _EmptyMapping()

#: The ``type`` string of :class:`ProtocolWarning` (never sent on the wire).
PROTOCOL_WARNING_TYPE: Final = "voicelive_nb.protocol_warning"

_NO_NULLS: Final[frozenset[str]] = frozenset()
_E = TypeVar("_E", bound="Event")


def wire_type_to_class_name(wire_type: str) -> str:
    """``"response.audio.delta"`` → ``"ResponseAudioDelta"`` (the naming rule of this module)."""
    return "".join(word[:1].upper() + word[1:] for part in wire_type.split(".") for word in part.split("_"))


def b64_decoded_size(b64: str) -> int:
    """Number of bytes ``b64`` decodes to, without decoding (no whitespace expected)."""
    n = len(b64)
    pad = 2 if b64.endswith("==") else 1 if b64.endswith("=") else 0
    return n * 3 // 4 - pad


def decode_b64_audio(b64: str) -> bytes:
    """Decode base64 audio; accepts the URL-safe alphabet and missing padding.

    Raises:
        ProtocolError: the text is not base64.
    """
    if "-" in b64 or "_" in b64:
        b64 = b64.translate(_URLSAFE_TO_STANDARD)
    try:
        data = b64.encode("ascii")  # binascii is faster on bytes than on str
    except UnicodeEncodeError as exc:
        raise ProtocolError(f"invalid base64 audio ({len(b64)} characters): {exc}") from exc
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        pass
    try:
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4))
    except binascii.Error as exc:
        raise ProtocolError(f"invalid base64 audio ({len(b64)} characters): {exc}") from exc


_URLSAFE_TO_STANDARD: Final = str.maketrans("-_", "+/")


_REPR_MAX: Final = 300
_REPR_DEPTH: Final = 6


def _safe(value: object, depth: int = 0) -> str:
    """A bounded repr of a JSON-like value: never raises, truncates long strings and deep nesting."""
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:24]
        shown = repr(text.encode("utf-8", "backslashreplace").decode("utf-8"))
        return shown if len(value) <= 60 else f"{shown}…({len(value)} chars)"
    if depth >= _REPR_DEPTH and isinstance(value, (Mapping, list, tuple)):
        return "{…}" if isinstance(value, Mapping) else "[…]"
    if isinstance(value, Mapping):
        items = []
        for i, (k, v) in enumerate(value.items()):
            if i >= 8:
                items.append(f"…+{len(value) - 8}")
                break
            items.append(f"{_safe(k, depth + 1)}: {_safe(v, depth + 1)}")
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple)):
        shown_items = [_safe(v, depth + 1) for v in value[:8]]
        if len(value) > 8:
            shown_items.append(f"…+{len(value) - 8}")
        return "[" + ", ".join(shown_items) + "]"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def _short(value: object) -> str:
    """``repr`` for event reprs: bounded in length and depth, never raising."""
    try:
        text = _safe(value)
    except Exception as exc:  # a hostile __repr__, RecursionError, …
        return f"<{type(value).__name__}: repr failed ({type(exc).__name__})>"
    return text if len(text) <= _REPR_MAX else text[:_REPR_MAX] + "…"


class FieldSpec:
    """How one wire field is checked: its name, the JSON types allowed, whether required."""

    __slots__ = ("allowed", "name", "nullable", "required")

    def __init__(self, name: str, allowed: frozenset[type] | None, required: bool, nullable: bool) -> None:
        self.name = name
        #: Python types the decoded JSON value may have (``None`` = anything).
        self.allowed = allowed
        #: The key must be present and not ``null``.
        self.required = required
        #: ``null`` is accepted (only for optional fields).
        self.nullable = nullable

    def describe(self) -> str:
        if self.allowed is None:
            return "any JSON value"
        return " or ".join(sorted(_JSON_NAMES[t] for t in self.allowed))

    def __repr__(self) -> str:
        flag = "required" if self.required else "optional"
        return f"FieldSpec({self.name!r}, {self.describe()}, {flag})"


_JSON_NAMES: Final[dict[type, str]] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    dict: "object",
    list: "array",
}


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Event:
    """Base of every event. Not instantiated directly."""

    TYPE: ClassVar[str] = ""
    #: The wire fields of the class, in declaration order (built at import time).
    FIELDS: ClassVar[tuple[FieldSpec, ...]] = ()

    event_id: str | None = None
    #: Wire keys this class does not model, kept so that ``to_dict()`` is lossless.
    extra: Mapping[str, Any] = EMPTY
    #: Names of optional fields to write as an explicit JSON ``null``.
    nulls: frozenset[str] = _NO_NULLS
    #: The name that was on the wire when it differs from ``TYPE`` (a GA alias), else None.
    _wire: str | None = field(default=None, init=False, compare=False)

    @property
    def type(self) -> str:
        """The canonical type of this event (the dated-version name, e.g. ``response.audio.delta``)."""
        return self.TYPE

    @property
    def wire_type(self) -> str:
        """The ``type`` as it was (or will be) on the wire: ``response.output_audio.delta`` for a
        GA-shaped audio delta, else the same as :attr:`type`."""
        return self._wire or self.TYPE

    def with_wire_type(self: _E, wire_type: str) -> _E:
        """A copy of this event written with ``wire_type`` on the wire (an alias of the same
        concept, e.g. ``response.output_audio.delta``; ``type`` stays canonical)."""
        copy = _copy(self)
        object.__setattr__(copy, "_wire", None if wire_type == self.TYPE else wire_type)
        return copy

    def to_dict(self) -> dict[str, Any]:
        """The wire object: ``type``, ``event_id`` if set, the fields that are set, then ``extra``."""
        out: dict[str, Any] = {"type": self._wire or self.TYPE}
        nulls = self.nulls
        if self.event_id is not None or (nulls and "event_id" in nulls):
            out["event_id"] = self.event_id
        for spec in self.FIELDS:
            name = spec.name
            value = getattr(self, name)
            if value is None and name not in nulls:
                continue
            out[name] = value
        if self.extra:
            out.update(self.extra)
        return out

    def __repr__(self) -> str:
        try:
            parts = []
            if self._wire is not None:
                parts.append(f"wire_type={self._wire!r}")
            if self.event_id is not None:
                parts.append(f"event_id={_short(self.event_id)}")
            parts.extend(f"{spec.name}={_short(getattr(self, spec.name, None))}" for spec in self.FIELDS)
            if self.extra:
                parts.append(f"extra={_short(self.extra)}")
            if self.nulls:
                parts.append(f"nulls={_short(sorted(self.nulls))}")
            return f"{type(self).__name__}({', '.join(parts)})"
        except Exception as exc:  # repr must never raise, whatever a server sent
            return f"<{type(self).__name__} (repr failed: {type(exc).__name__})>"


class ServerEvent(Event):
    """Base of the events the service sends (plus :class:`UnknownEvent`, :class:`ProtocolWarning`)."""

    __slots__ = ()


class ClientEvent(Event):
    """Base of the events the client sends (plus :class:`UnknownEvent`, :class:`ProtocolWarning`)."""

    __slots__ = ()


# --------------------------------------------------------------------------- special events


@dataclass(frozen=True, slots=True, init=False, repr=False)
class UnknownEvent(ServerEvent, ClientEvent):
    """A JSON object with a ``type`` this package does not know; ``raw`` is the whole object."""

    TYPE: ClassVar[str] = ""

    type: str  # a field here, a property on the known events
    raw: Mapping[str, Any]

    def __init__(self, type: str, raw: Mapping[str, Any], *, event_id: str | None = None) -> None:
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "raw", raw)
        object.__setattr__(self, "event_id", event_id)
        object.__setattr__(self, "extra", EMPTY)
        object.__setattr__(self, "nulls", _NO_NULLS)
        object.__setattr__(self, "_wire", None)

    @property
    def wire_type(self) -> str:
        return self.type

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)

    def __repr__(self) -> str:
        return f"UnknownEvent(type={_short(self.type)}, raw={_short(self.raw)})"


@dataclass(frozen=True, slots=True, init=False, repr=False)
class ProtocolWarning(ServerEvent, ClientEvent):
    """A received message that is not a valid event; never sent.

    ``raw`` is what could be recovered: the text (or bytes) when it was not a JSON object,
    else the decoded JSON object. ``wire_type`` is the ``type`` it claimed, when it had one.
    """

    TYPE: ClassVar[str] = PROTOCOL_WARNING_TYPE

    message: str
    raw: object
    wire_type: str | None = None  # type: ignore[assignment]  # None: it claimed no type

    def __init__(self, message: str, raw: object, *, wire_type: str | None = None) -> None:
        object.__setattr__(self, "message", message)
        object.__setattr__(self, "raw", raw)
        object.__setattr__(self, "wire_type", wire_type)
        object.__setattr__(self, "event_id", None)
        object.__setattr__(self, "extra", EMPTY)
        object.__setattr__(self, "nulls", _NO_NULLS)
        object.__setattr__(self, "_wire", None)

    def to_dict(self) -> dict[str, Any]:
        raw = self.raw
        if isinstance(raw, (bytes, bytearray, memoryview)):
            raw = bytes(raw).decode("utf-8", "replace")
        return {
            "type": PROTOCOL_WARNING_TYPE,
            "message": self.message,
            "wire_type": self.wire_type,
            "raw": raw,
        }

    def __repr__(self) -> str:
        return f"ProtocolWarning({_short(self.message)}, raw={_short(self.raw)})"


# --------------------------------------------------------------------------- shared field groups


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class _OutputItemEvent(ServerEvent):
    response_id: str
    item_id: str
    output_index: int


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class _ContentEvent(ServerEvent):
    response_id: str
    item_id: str
    output_index: int
    content_index: int


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class _SearchCallEvent(ServerEvent):
    response_id: str
    item_id: str
    output_index: int
    sequence_number: int


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class _ToolItemEvent(ServerEvent):
    item_id: str
    output_index: int


# --------------------------------------------------------------------------- server: session, errors


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Error(ServerEvent):
    """``error``: ``error`` is ``{type, code?, message, param?, event_id?}``; the socket stays open."""

    TYPE: ClassVar[str] = "error"
    error: Mapping[str, Any]

    @property
    def message(self) -> str:
        return str(self.error.get("message", ""))

    @property
    def code(self) -> str | None:
        code = self.error.get("code")
        return code if isinstance(code, str) else None


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Warning(ServerEvent):  # the naming rule; the package re-exports it as WarningEvent
    """``warning``: a non-fatal notice, ``warning`` is ``{message, code?, param?}``."""

    TYPE: ClassVar[str] = "warning"
    warning: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SessionCreated(ServerEvent):
    """``session.created``: the first event after connecting, with the full session."""

    TYPE: ClassVar[str] = "session.created"
    session: Mapping[str, Any]

    def __repr__(self) -> str:
        return _session_repr(self.TYPE, self.session)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SessionUpdated(ServerEvent):
    """``session.updated``: the effective session after a ``session.update``."""

    TYPE: ClassVar[str] = "session.updated"
    session: Mapping[str, Any]

    def __repr__(self) -> str:
        return _session_repr(self.TYPE, self.session)


def _session_repr(kind: str, session: object) -> str:
    """``<session.updated voice=alloy turn_detection=server_vad(0.5, 300/500 ms) modalities=[text, audio]>``.

    Short whatever the session holds (either wire shape); never raises. The whole session is
    in ``.session``.
    """
    try:
        from .session_wire import is_ga_session, session_from_wire  # imports no event class: no cycle

        if not isinstance(session, Mapping):
            return f"<{kind} session={_short(session)}>"
        flat = session_from_wire(session) if is_ga_session(session) else session
        parts = []
        voice = flat.get("voice")
        if isinstance(voice, Mapping):
            voice = voice.get("name", voice.get("type"))
        if voice is not None:
            parts.append(f"voice={_clip(voice)}")
        td = flat.get("turn_detection", "unset")
        if isinstance(td, Mapping):
            knobs = [_clip(td[k]) for k in ("threshold",) if td.get(k) is not None]
            ms = [td.get(k) for k in ("prefix_padding_ms", "silence_duration_ms")]
            if any(m is not None for m in ms):
                knobs.append("/".join("?" if m is None else _clip(m) for m in ms) + " ms")
            parts.append(f"turn_detection={_clip(td.get('type'))}({', '.join(knobs)})")
        elif td != "unset":
            parts.append(f"turn_detection={_clip(td)}")
        modalities = flat.get("modalities")
        if isinstance(modalities, (list, tuple)):
            parts.append(f"modalities=[{', '.join(_clip(m) for m in modalities[:6])}]")
        tools = flat.get("tools")
        if isinstance(tools, (list, tuple)) and tools:
            parts.append(f"tools={len(tools)}")
        return f"<{kind} {' '.join(parts)}>" if parts else f"<{kind}>"
    except Exception as exc:  # a repr must never raise, whatever a server sent
        return f"<{kind} (repr failed: {type(exc).__name__})>"


def _clip(value: object, limit: int = 40) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SessionAvatarConnecting(ServerEvent):
    TYPE: ClassVar[str] = "session.avatar.connecting"
    server_sdp: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SessionAvatarSwitchToSpeaking(ServerEvent):
    TYPE: ClassVar[str] = "session.avatar.switch_to_speaking"
    turn_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SessionAvatarSwitchToIdle(ServerEvent):
    TYPE: ClassVar[str] = "session.avatar.switch_to_idle"
    turn_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class RateLimitsUpdated(ServerEvent):
    """``rate_limits.updated``: ``[{name, limit, remaining, reset_seconds}]`` (documented, not in the SDK)."""

    TYPE: ClassVar[str] = "rate_limits.updated"
    rate_limits: Sequence[Any]


# --------------------------------------------------------------------------- server: input audio buffer


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class InputAudioBufferSpeechStarted(ServerEvent):
    """Speech detected at ``audio_start_ms`` of the session-wide input timeline."""

    TYPE: ClassVar[str] = "input_audio_buffer.speech_started"
    audio_start_ms: int
    item_id: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class InputAudioBufferSpeechStopped(ServerEvent):
    TYPE: ClassVar[str] = "input_audio_buffer.speech_stopped"
    audio_end_ms: int
    item_id: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class InputAudioBufferCommitted(ServerEvent):
    TYPE: ClassVar[str] = "input_audio_buffer.committed"
    previous_item_id: str | None = None
    item_id: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class InputAudioBufferCleared(ServerEvent):
    TYPE: ClassVar[str] = "input_audio_buffer.cleared"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class InputAudioBufferTimeoutTriggered(ServerEvent):
    """``turn_detection.idle_timeout_ms`` passed with no speech (OpenAI GA ``server_vad``)."""

    TYPE: ClassVar[str] = "input_audio_buffer.timeout_triggered"
    audio_start_ms: int | None = None
    audio_end_ms: int | None = None
    item_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class OutputAudioBufferCleared(ServerEvent):
    TYPE: ClassVar[str] = "output_audio_buffer.cleared"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class OutputAudioBufferStarted(ServerEvent):
    """The server began playing a response's audio (WebRTC / server-side playout)."""

    TYPE: ClassVar[str] = "output_audio_buffer.started"
    response_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class OutputAudioBufferStopped(ServerEvent):
    """The server's playout of a response's audio ended."""

    TYPE: ClassVar[str] = "output_audio_buffer.stopped"
    response_id: str | None = None


# --------------------------------------------------------------------------- server: conversation


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ConversationItemCreated(ServerEvent):
    """An item joined the conversation after ``previous_item_id`` (``None``: at the start)."""

    TYPE: ClassVar[str] = "conversation.item.created"
    previous_item_id: str | None = None
    item: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ConversationItemDone(ServerEvent):
    """An item is complete (sent by the live service, and by the GA shape after ``.added``)."""

    TYPE: ClassVar[str] = "conversation.item.done"
    previous_item_id: str | None = None
    item: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ConversationItemRetrieved(ServerEvent):
    TYPE: ClassVar[str] = "conversation.item.retrieved"
    item: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ConversationItemTruncated(ServerEvent):
    TYPE: ClassVar[str] = "conversation.item.truncated"
    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ConversationItemDeleted(ServerEvent):
    TYPE: ClassVar[str] = "conversation.item.deleted"
    item_id: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ConversationItemInputAudioTranscriptionDelta(ServerEvent):
    TYPE: ClassVar[str] = "conversation.item.input_audio_transcription.delta"
    item_id: str
    content_index: int | None = None
    delta: str | None = None
    logprobs: Sequence[Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ConversationItemInputAudioTranscriptionCompleted(ServerEvent):
    TYPE: ClassVar[str] = "conversation.item.input_audio_transcription.completed"
    item_id: str
    content_index: int
    transcript: str
    logprobs: Sequence[Any] | None = None
    phrases: Sequence[Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ConversationItemInputAudioTranscriptionFailed(ServerEvent):
    TYPE: ClassVar[str] = "conversation.item.input_audio_transcription.failed"
    item_id: str
    content_index: int
    error: Mapping[str, Any]


# --------------------------------------------------------------------------- server: responses


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseCreated(ServerEvent):
    TYPE: ClassVar[str] = "response.created"
    response: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseDone(ServerEvent):
    """The final response (``status`` completed, cancelled, failed or incomplete); always sent."""

    TYPE: ClassVar[str] = "response.done"
    response: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseOutputItemAdded(ServerEvent):
    TYPE: ClassVar[str] = "response.output_item.added"
    response_id: str
    output_index: int
    item: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseOutputItemDone(ServerEvent):
    TYPE: ClassVar[str] = "response.output_item.done"
    response_id: str
    output_index: int
    item: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseContentPartAdded(_ContentEvent):
    TYPE: ClassVar[str] = "response.content_part.added"
    part: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseContentPartDone(_ContentEvent):
    TYPE: ClassVar[str] = "response.content_part.done"
    part: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseTextDelta(_ContentEvent):
    TYPE: ClassVar[str] = "response.text.delta"
    delta: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseTextDone(_ContentEvent):
    TYPE: ClassVar[str] = "response.text.done"
    text: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseAudioTranscriptDelta(_ContentEvent):
    TYPE: ClassVar[str] = "response.audio_transcript.delta"
    delta: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseAudioTranscriptDone(_ContentEvent):
    TYPE: ClassVar[str] = "response.audio_transcript.done"
    transcript: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseAudioTranscriptAnnotationAdded(_ContentEvent):
    TYPE: ClassVar[str] = "response.audio_transcript.annotation.added"
    annotation_index: int
    annotation: Any


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseAudioDelta(_ContentEvent):
    """A chunk of assistant audio; ``delta`` is base64 in the output format, ``audio`` the bytes."""

    TYPE: ClassVar[str] = "response.audio.delta"
    delta: str
    _audio: bytes | None = field(default=None, init=False, compare=False)

    @property
    def audio(self) -> bytes:
        """The decoded audio (decoded on first access, then cached).

        Raises:
            ProtocolError: ``delta`` is not base64.
        """
        audio = self._audio
        if audio is None:
            audio = decode_b64_audio(self.delta)
            object.__setattr__(self, "_audio", audio)
        return audio

    @property
    def audio_size(self) -> int:
        """Number of audio bytes in this chunk, computed without decoding."""
        audio = self._audio
        return len(audio) if audio is not None else b64_decoded_size(self.delta)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseAudioDone(_ContentEvent):
    TYPE: ClassVar[str] = "response.audio.done"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseAudioTimestampDelta(_ContentEvent):
    """Word timing of the assistant audio (Azure voices with ``output_audio_timestamp_types``)."""

    TYPE: ClassVar[str] = "response.audio_timestamp.delta"
    audio_offset_ms: int
    audio_duration_ms: int
    text: str
    timestamp_type: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseAudioTimestampDone(_ContentEvent):
    TYPE: ClassVar[str] = "response.audio_timestamp.done"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseAnimationVisemeDelta(_ContentEvent):
    TYPE: ClassVar[str] = "response.animation_viseme.delta"
    audio_offset_ms: int
    viseme_id: int


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseAnimationVisemeDone(_ContentEvent):
    TYPE: ClassVar[str] = "response.animation_viseme.done"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseAnimationBlendshapesDelta(_ContentEvent):
    """``frames`` is a list of float lists, or a string; ``frame_index`` is the first frame's index."""

    TYPE: ClassVar[str] = "response.animation_blendshapes.delta"
    frame_index: int
    frames: Sequence[Any] | str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseAnimationBlendshapesDone(_OutputItemEvent):
    TYPE: ClassVar[str] = "response.animation_blendshapes.done"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseVideoDelta(ServerEvent):
    """One base64 video frame (avatar over WebSocket)."""

    TYPE: ClassVar[str] = "response.video.delta"
    output_index: int
    codec: str
    delta: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseInvocationDelta(ServerEvent):
    """A raw object from a hosted agent."""

    TYPE: ClassVar[str] = "response.invocation.delta"
    delta: Mapping[str, Any]


# --------------------------------------------------------------------------- server: tools


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseFunctionCallArgumentsDelta(_OutputItemEvent):
    TYPE: ClassVar[str] = "response.function_call_arguments.delta"
    call_id: str
    delta: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseFunctionCallArgumentsDone(_OutputItemEvent):
    TYPE: ClassVar[str] = "response.function_call_arguments.done"
    call_id: str
    arguments: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class McpListToolsInProgress(ServerEvent):
    TYPE: ClassVar[str] = "mcp_list_tools.in_progress"
    item_id: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class McpListToolsCompleted(ServerEvent):
    TYPE: ClassVar[str] = "mcp_list_tools.completed"
    item_id: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class McpListToolsFailed(ServerEvent):
    TYPE: ClassVar[str] = "mcp_list_tools.failed"
    item_id: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseMcpCallArgumentsDelta(_OutputItemEvent):
    TYPE: ClassVar[str] = "response.mcp_call_arguments.delta"
    delta: str
    obfuscation: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseMcpCallArgumentsDone(_OutputItemEvent):
    TYPE: ClassVar[str] = "response.mcp_call_arguments.done"
    arguments: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseMcpCallInProgress(_ToolItemEvent):
    TYPE: ClassVar[str] = "response.mcp_call.in_progress"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseMcpCallCompleted(_ToolItemEvent):
    TYPE: ClassVar[str] = "response.mcp_call.completed"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseMcpCallFailed(_ToolItemEvent):
    TYPE: ClassVar[str] = "response.mcp_call.failed"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseWebSearchCallSearching(_SearchCallEvent):
    TYPE: ClassVar[str] = "response.web_search_call.searching"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseWebSearchCallInProgress(_SearchCallEvent):
    TYPE: ClassVar[str] = "response.web_search_call.in_progress"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseWebSearchCallCompleted(_SearchCallEvent):
    TYPE: ClassVar[str] = "response.web_search_call.completed"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseFileSearchCallSearching(_SearchCallEvent):
    TYPE: ClassVar[str] = "response.file_search_call.searching"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseFileSearchCallInProgress(_SearchCallEvent):
    TYPE: ClassVar[str] = "response.file_search_call.in_progress"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseFileSearchCallCompleted(_SearchCallEvent):
    TYPE: ClassVar[str] = "response.file_search_call.completed"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseFoundryAgentCallArgumentsDelta(_OutputItemEvent):
    """Documented (REF0410/REF0715); the SDK dropped its class in 1.2.0b4."""

    TYPE: ClassVar[str] = "response.foundry_agent_call_arguments.delta"
    delta: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseFoundryAgentCallArgumentsDone(_OutputItemEvent):
    TYPE: ClassVar[str] = "response.foundry_agent_call_arguments.done"
    arguments: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseFoundryAgentCallInProgress(_ToolItemEvent):
    TYPE: ClassVar[str] = "response.foundry_agent_call.in_progress"
    agent_response_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseFoundryAgentCallCompleted(_ToolItemEvent):
    TYPE: ClassVar[str] = "response.foundry_agent_call.completed"
    agent_response_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseFoundryAgentCallFailed(_ToolItemEvent):
    TYPE: ClassVar[str] = "response.foundry_agent_call.failed"
    agent_response_id: str | None = None


# --------------------------------------------------------------------------- client events


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SessionUpdate(ClientEvent):
    """Change the session; only the keys given change, a JSON ``null`` inside ``session`` disables."""

    TYPE: ClassVar[str] = "session.update"
    session: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class InputAudioBufferAppend(ClientEvent):
    """Append base64 audio to the input buffer (see ``codec.encode_audio_append`` for the fast path)."""

    TYPE: ClassVar[str] = "input_audio_buffer.append"
    audio: str

    @classmethod
    def from_bytes(
        cls, audio: bytes | bytearray | memoryview, *, event_id: str | None = None
    ) -> InputAudioBufferAppend:
        """Build the event from raw audio bytes in the session's input format."""
        return cls(audio=binascii.b2a_base64(audio, newline=False).decode("ascii"), event_id=event_id)

    @property
    def audio_bytes(self) -> bytes:
        """The decoded audio. Raises :class:`ProtocolError` if ``audio`` is not base64."""
        return decode_b64_audio(self.audio)

    @property
    def audio_size(self) -> int:
        """Number of audio bytes, computed without decoding."""
        return b64_decoded_size(self.audio)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class InputAudioBufferCommit(ClientEvent):
    TYPE: ClassVar[str] = "input_audio_buffer.commit"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class InputAudioBufferClear(ClientEvent):
    TYPE: ClassVar[str] = "input_audio_buffer.clear"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class InputTextDelta(ClientEvent):
    """Stream user text into item ``id``."""

    TYPE: ClassVar[str] = "input_text.delta"
    id: str
    delta: str
    content_index: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class InputTextDone(ClientEvent):
    TYPE: ClassVar[str] = "input_text.done"
    id: str
    content_index: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ConversationItemCreate(ClientEvent):
    """Add ``item``; ``previous_item_id`` omitted = append, ``"root"`` = at the start."""

    TYPE: ClassVar[str] = "conversation.item.create"
    previous_item_id: str | None = None
    item: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ConversationItemRetrieve(ClientEvent):
    TYPE: ClassVar[str] = "conversation.item.retrieve"
    item_id: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ConversationItemTruncate(ClientEvent):
    """Cut assistant audio after ``audio_end_ms`` (what was really played)."""

    TYPE: ClassVar[str] = "conversation.item.truncate"
    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ConversationItemDelete(ClientEvent):
    TYPE: ClassVar[str] = "conversation.item.delete"
    item_id: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseCreate(ClientEvent):
    TYPE: ClassVar[str] = "response.create"
    response: Mapping[str, Any] | None = None
    additional_instructions: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ResponseCancel(ClientEvent):
    TYPE: ClassVar[str] = "response.cancel"
    response_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class OutputAudioBufferClear(ClientEvent):
    """Avatar mode only: drop the server-side playout buffer."""

    TYPE: ClassVar[str] = "output_audio_buffer.clear"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SessionAvatarConnect(ClientEvent):
    TYPE: ClassVar[str] = "session.avatar.connect"
    client_sdp: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class InputAudioTurnStart(ClientEvent):
    """SDK-enum only, undocumented."""

    TYPE: ClassVar[str] = "input_audio.turn.start"
    turn_id: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class InputAudioTurnAppend(ClientEvent):
    """SDK-enum only, undocumented."""

    TYPE: ClassVar[str] = "input_audio.turn.append"
    turn_id: str
    audio: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class InputAudioTurnEnd(ClientEvent):
    """SDK-enum only, undocumented."""

    TYPE: ClassVar[str] = "input_audio.turn.end"
    turn_id: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class InputAudioTurnCancel(ClientEvent):
    """SDK-enum only, undocumented."""

    TYPE: ClassVar[str] = "input_audio.turn.cancel"
    turn_id: str


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class InputAudioClear(ClientEvent):
    """SDK-enum only, undocumented."""

    TYPE: ClassVar[str] = "input_audio.clear"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class McpApprovalResponse(ClientEvent):
    """SDK-enum value only (no SDK class); the documented way is an ``mcp_approval_response`` item."""

    TYPE: ClassVar[str] = "mcp_approval_response"
    approval_request_id: str
    approve: bool


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class TranscriptionSessionUpdate(ClientEvent):
    """Sent by the SDK's ``transcription_session`` helper; not in any Voice Live reference."""

    TYPE: ClassVar[str] = "transcription_session.update"
    session: Mapping[str, Any]


#: The builtin-safe names of ``error`` and ``warning``.
ErrorEvent = Error
WarningEvent = Warning


# --------------------------------------------------------------------------- field tables and registries


_SCALARS: Final[dict[type, frozenset[type]]] = {
    str: frozenset({str}),
    int: frozenset({int}),  # a JSON true/false decodes to bool, which is not accepted here
    bool: frozenset({bool}),
    float: frozenset({int, float}),
}


def _allowed_types(annotation: object) -> tuple[frozenset[type] | None, bool]:
    """The JSON value types an annotation accepts, and whether it accepts ``None``."""
    if annotation is Any:
        return None, True
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        allowed: set[type] = set()
        nullable = False
        for arg in get_args(annotation):
            if arg is type(None):
                nullable = True
                continue
            sub, _ = _allowed_types(arg)
            if sub is None:
                return None, True
            allowed |= sub
        return frozenset(allowed), nullable
    base = origin if origin is not None else annotation
    if isinstance(base, type) and base in _SCALARS:
        return _SCALARS[base], False
    if base is Mapping or base is dict:
        return frozenset({dict}), False
    if base is Sequence or base is list:
        return frozenset({list}), False
    raise InvalidType(f"no JSON type for annotation {annotation!r}")


def _build_fields(cls: type[Event]) -> tuple[FieldSpec, ...]:
    hints = get_type_hints(cls)
    base_names = {"event_id", "extra", "nulls"}
    specs = []
    for f in dataclasses.fields(cls):
        if f.name in base_names or f.name.startswith("_"):
            continue
        allowed, nullable = _allowed_types(hints[f.name])
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        specs.append(FieldSpec(f.name, allowed, required, nullable and not required))
    return tuple(specs)


def _collect(base: type[Event]) -> dict[str, Any]:
    registry: dict[str, Any] = {}
    for obj in list(globals().values()):
        concrete = (
            isinstance(obj, type) and issubclass(obj, base) and obj.TYPE and not obj.__name__.startswith("_")
        )
        if concrete and obj is not ProtocolWarning:
            obj.FIELDS = _build_fields(obj)
            registry[obj.TYPE] = obj
    return dict(sorted(registry.items()))


#: Wire type → class, for every server event of the reference.
SERVER_EVENTS: Final[dict[str, type[ServerEvent]]] = _collect(ServerEvent)
#: Wire type → class, for every client event of the reference (including SDK-enum-only ones).
CLIENT_EVENTS: Final[dict[str, type[ClientEvent]]] = _collect(ClientEvent)

#: GA (OpenAI Realtime GA / Voice Live ``api-version=v1``) server event names → the canonical
#: (dated-version) name of the same concept. Decoding accepts both; ``event.type`` is canonical
#: and ``event.wire_type`` is what was on the wire.
SERVER_EVENT_ALIASES: Final[dict[str, str]] = {
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "conversation.item.added": "conversation.item.created",
}
