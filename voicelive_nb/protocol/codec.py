"""JSON text ⇄ event objects, for both directions of the Voice Live protocol.

Decoding never raises: a message that is not valid JSON, not an object, has no string
``type``, misses a required field or has a field of the wrong JSON type becomes a
:class:`~voicelive_nb.protocol.events.ProtocolWarning`; a well-formed object of an unknown
type becomes an :class:`~voicelive_nb.protocol.events.UnknownEvent`. Encoding raises
:class:`~voicelive_nb.errors.ProtocolError` for an event the peer could not decode.

Decoding is on the hot path (an audio chunk every 20–100 ms, each a few kilobytes of
base64), so an event whose keys are all known and set is built directly into its slots
(:func:`_build_plain`); anything unusual (unknown keys, explicit ``null``, a wrong field)
goes through the general builder, which gives the same result or says what is wrong.
Base64 audio is decoded only when ``ResponseAudioDelta.audio`` is read.
"""

from __future__ import annotations

import binascii
import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Final, Literal, overload

from ..errors import InvalidType, InvalidValue, ProtocolError
from .events import (
    CLIENT_EVENTS,
    EMPTY,
    SERVER_EVENT_ALIASES,
    SERVER_EVENTS,
    ClientEvent,
    Event,
    FieldSpec,
    ProtocolWarning,
    ServerEvent,
    UnknownEvent,
)

__all__ = [
    "decode_client_event",
    "decode_server_event",
    "encode_audio_append",
    "encode_event",
    "event_from_dict",
    "event_to_dict",
]

_MISSING: Final = object()
_NO_NULLS: Final[frozenset[str]] = frozenset()


def _reject_constant(name: str) -> Any:
    raise InvalidValue(f"{name} is not valid JSON")


#: Standard JSON only: NaN and Infinity are refused on the way in, as on the way out.
_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)


def _json_default(value: object) -> Any:
    if isinstance(value, Mapping):  # read-only mappings (MappingProxyType, EMPTY) as objects
        return dict(value)
    raise InvalidType(f"{type(value).__name__} is not JSON serializable")


_ENCODER: Final = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
)

# ---------------------------------------------------------------------------------- parsing


def _parse(data: str | bytes | bytearray | memoryview) -> Any:
    """The JSON value of ``data``, or a ProtocolWarning."""
    if isinstance(data, str):
        text = data
    else:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            return ProtocolWarning(f"message is not UTF-8: {exc}", data)
    try:
        return _DECODER.decode(text)
    except ValueError as exc:  # JSONDecodeError, or a NaN/Infinity constant
        return ProtocolWarning(f"message is not valid JSON: {exc}", data)
    except RecursionError:
        return ProtocolWarning("message is not valid JSON: nested too deeply", data)


def _check(cls: type[Event], obj: Mapping[str, Any]) -> str | None:
    """Why ``obj`` is not a valid ``cls`` wire object, or None."""
    for spec in cls.FIELDS:
        value = obj.get(spec.name, _MISSING)
        if value is _MISSING or value is None:
            if spec.required:
                what = "missing" if value is _MISSING else "null"
                return f"{cls.TYPE}: required field {spec.name!r} is {what}"
            if value is None and not spec.nullable:
                return f"{cls.TYPE}: field {spec.name!r} must be {spec.describe()}, got null"
            continue
        if spec.allowed is not None and type(value) not in spec.allowed:
            return f"{cls.TYPE}: field {spec.name!r} must be {spec.describe()}, got {_json_name(value)}"
    event_id = obj.get("event_id")
    if event_id is not None and type(event_id) is not str:
        return f"{cls.TYPE}: field 'event_id' must be string, got {_json_name(event_id)}"
    return None


_JSON_NAMES: Final[dict[type, str]] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    dict: "object",
    list: "array",
    type(None): "null",
}


def _json_name(value: object) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


def _build(
    obj: dict[str, Any], registry: Mapping[str, type[Event]], aliases: Mapping[str, type[Event]]
) -> Event:
    """The event for a decoded JSON value, never raising."""
    if type(obj) is not dict:
        return ProtocolWarning(f"message must be a JSON object, got {_json_name(obj)}", obj)
    wire_type = obj.get("type", _MISSING)
    if type(wire_type) is not str:
        if wire_type is _MISSING:
            return ProtocolWarning("message has no 'type' field", obj)
        return ProtocolWarning(f"message 'type' must be a string, got {_json_name(wire_type)}", obj)
    cls = registry.get(wire_type)
    if cls is None:
        cls = aliases.get(wire_type)
        if cls is None:
            event_id = obj.get("event_id")
            return UnknownEvent(wire_type, obj, event_id=event_id if type(event_id) is str else None)
        event = _build_plain(cls, obj)
        if event is None:
            event = _build_general(cls, obj)
        if type(event) is ProtocolWarning:
            return ProtocolWarning(event.message.replace(cls.TYPE, wire_type, 1), obj, wire_type=wire_type)
        _set(event, "_wire", wire_type)
        return event
    event = _build_plain(cls, obj)
    return event if event is not None else _build_general(cls, obj)


#: GA server event name → its canonical class (see ``events.SERVER_EVENT_ALIASES``).
_SERVER_ALIASES: Final[Mapping[str, type[Event]]] = {
    alias: SERVER_EVENTS[canonical] for alias, canonical in SERVER_EVENT_ALIASES.items()
}
_NO_ALIASES: Final[Mapping[str, type[Event]]] = {}


_new: Final = object.__new__
_set: Final = object.__setattr__


def _plan(
    cls: type[Event],
) -> tuple[tuple[tuple[str, frozenset[type] | None, bool], ...], tuple[tuple[str, Any], ...]]:
    fields = tuple((spec.name, spec.allowed, spec.required) for spec in cls.FIELDS)
    hidden = tuple((f.name, f.default) for f in dataclasses.fields(cls) if not f.init)
    return fields, hidden


_PLANS: Final = {cls: _plan(cls) for cls in (*SERVER_EVENTS.values(), *CLIENT_EVENTS.values())}


def _build_plain(cls: type[Event], obj: dict[str, Any]) -> Event | None:
    """The event, when every key of ``obj`` is known and non-null and every type is right; else None.

    Equal to what :func:`_build_general` builds for such objects, without the keyword-argument
    round trip (this is the path of nearly every message).
    """
    fields, hidden = _PLANS[cls]
    event = _new(cls)
    present = 1  # "type"
    get = obj.get
    for name, allowed, required in fields:
        value = get(name)
        if value is None:
            if required or name in obj:
                return None
            _set(event, name, None)
            continue
        if allowed is not None and type(value) not in allowed:
            return None
        _set(event, name, value)
        present += 1
    event_id = get("event_id")
    if event_id is not None:
        if type(event_id) is not str:
            return None
        present += 1
    if present != len(obj):
        return None
    _set(event, "event_id", event_id)
    _set(event, "extra", EMPTY)
    _set(event, "nulls", _NO_NULLS)
    for name, default in hidden:
        _set(event, name, default)
    return event


def _build_general(cls: type[Event], obj: dict[str, Any]) -> Event:
    """The event with ``extra`` and ``nulls`` filled in, or a ProtocolWarning."""
    kwargs: dict[str, Any] = {}
    nulls: list[str] = []
    for spec in cls.FIELDS:
        name = spec.name
        value = obj.get(name, _MISSING)
        if value is _MISSING:
            if spec.required:
                return _invalid(cls, obj)
        elif value is None:
            if not spec.nullable:
                return _invalid(cls, obj)
            nulls.append(name)
        elif spec.allowed is not None and type(value) not in spec.allowed:
            return _invalid(cls, obj)
        else:
            kwargs[name] = value
    if "event_id" in obj:
        event_id = obj["event_id"]
        if type(event_id) is str:
            kwargs["event_id"] = event_id
        elif event_id is None:
            nulls.append("event_id")
        else:
            return _invalid(cls, obj)
    known = {spec.name for spec in cls.FIELDS}
    extra = {k: v for k, v in obj.items() if k not in known and k != "type" and k != "event_id"}
    if extra:
        kwargs["extra"] = extra
    if nulls:
        kwargs["nulls"] = frozenset(nulls)
    return cls(**kwargs)


def _invalid(cls: type[Event], obj: dict[str, Any]) -> ProtocolWarning:
    reason = _check(cls, obj) or f"{cls.TYPE}: invalid fields"
    return ProtocolWarning(reason, obj, wire_type=cls.TYPE)


# ---------------------------------------------------------------------------------- public API


def decode_server_event(data: str | bytes | bytearray | memoryview) -> ServerEvent:
    """Decode one message received from the service. Never raises.

    Returns the specific event class, an :class:`UnknownEvent` for an unknown ``type``, or a
    :class:`ProtocolWarning` saying what is wrong with the message.
    """
    obj = _parse(data)
    if type(obj) is not dict:
        if type(obj) is ProtocolWarning:
            return obj
        return ProtocolWarning(f"message must be a JSON object, got {_json_name(obj)}", data)
    event = _build(obj, SERVER_EVENTS, _SERVER_ALIASES)
    assert isinstance(event, ServerEvent)
    return event


def decode_client_event(data: str | bytes | bytearray | memoryview) -> ClientEvent:
    """Decode one message sent by a client (for the emulator and tests). Never raises."""
    obj = _parse(data)
    if type(obj) is not dict:
        if type(obj) is ProtocolWarning:
            return obj
        return ProtocolWarning(f"message must be a JSON object, got {_json_name(obj)}", data)
    event = _build(obj, CLIENT_EVENTS, _NO_ALIASES)
    assert isinstance(event, ClientEvent)
    return event


@overload
def event_from_dict(data: object, *, client: Literal[False] = False) -> ServerEvent: ...
@overload
def event_from_dict(data: object, *, client: Literal[True]) -> ClientEvent: ...
def event_from_dict(data: object, *, client: bool = False) -> ServerEvent | ClientEvent:
    """The event for an already parsed JSON value (server direction unless ``client``). Never raises.

    The event keeps references to ``data``'s nested objects; don't mutate them afterwards.
    """
    if isinstance(data, Mapping) and type(data) is not dict:
        data = dict(data)
    registry: Mapping[str, type[Event]] = CLIENT_EVENTS if client else SERVER_EVENTS
    aliases = _NO_ALIASES if client else _SERVER_ALIASES
    event = _build(data, registry, aliases)  # type: ignore[arg-type]  # _build checks the type itself
    assert isinstance(event, ClientEvent if client else ServerEvent)
    return event


def event_to_dict(event: Event) -> dict[str, Any]:
    """The wire object of ``event`` (``event.to_dict()``)."""
    return event.to_dict()


def encode_event(event: Event) -> str:
    """Compact JSON text of ``event`` for one WebSocket text frame.

    Optional fields left at ``None`` are omitted unless named in ``event.nulls``; JSON
    ``null`` inside nested objects (``session.turn_detection: None``) is kept as given.

    Raises:
        ProtocolError: ``event`` is a :class:`ProtocolWarning`, misses a required field, has a
            field of the wrong type, or holds a value JSON cannot represent (NaN, bytes, …).
    """
    if isinstance(event, ProtocolWarning):
        raise ProtocolError(f"a protocol warning is a local note and cannot be sent: {event.message}")
    if not isinstance(event, UnknownEvent):
        problem = _check_event(event)
        if problem is not None:
            raise ProtocolError(f"cannot encode {problem}")
    try:
        return _ENCODER.encode(event.to_dict())
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"cannot encode {event.type}: {exc}") from exc


def _check_event(event: Event) -> str | None:
    cls = type(event)
    for spec in cls.FIELDS:
        value = getattr(event, spec.name)
        if value is None:
            if spec.required:
                return f"{cls.TYPE}: required field {spec.name!r} is missing"
            continue
        if not _matches(spec, value):
            return f"{cls.TYPE}: field {spec.name!r} must be {spec.describe()}, got {type(value).__name__}"
    if event.event_id is not None and not isinstance(event.event_id, str):
        return f"{cls.TYPE}: field 'event_id' must be string, got {type(event.event_id).__name__}"
    return None


def _matches(spec: FieldSpec, value: object) -> bool:
    allowed = spec.allowed
    if allowed is None or type(value) in allowed:
        return True
    # what callers may build with that encodes to the same JSON type
    if dict in allowed and isinstance(value, Mapping):
        return True
    return list in allowed and isinstance(value, (list, tuple))


_APPEND_HEAD: Final = '{"type":"input_audio_buffer.append",'


def encode_audio_append(pcm16: bytes | bytearray | memoryview, *, event_id: str | None = None) -> str:
    """The ``input_audio_buffer.append`` text for raw PCM16 audio, built without a JSON encoder.

    Gives the same text as ``encode_event(InputAudioBufferAppend.from_bytes(pcm16))``.

    Raises:
        ProtocolError: the audio has an odd number of bytes (PCM16 samples are 2 bytes).
    """
    size = pcm16.nbytes if isinstance(pcm16, memoryview) else len(pcm16)
    if size % 2:
        raise ProtocolError(f"pcm16 audio must have an even number of bytes, got {size}")
    b64 = binascii.b2a_base64(pcm16, newline=False).decode("ascii")
    if event_id is None:
        return _APPEND_HEAD + '"audio":"' + b64 + '"}'
    return _APPEND_HEAD + '"event_id":' + _ENCODER.encode(event_id) + ',"audio":"' + b64 + '"}'
