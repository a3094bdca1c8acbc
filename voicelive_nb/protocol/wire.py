"""The two wire shapes of the realtime protocol, and the translation between them. Pure.

Voice Live's dated API versions (``2025-…``, ``2026-…``) speak the **preview** shape: flat
session (``modalities``, ``input_audio_format: "pcm16"``, ``turn_detection``…) and event names
such as ``response.audio.delta``. Its label-based ``api-version=v1`` adopts the OpenAI Realtime
**GA** shape: ``session.type: "realtime"``, ``output_modalities``, ``audio.input`` /
``audio.output`` nesting with formats as ``{type: "audio/pcm", rate: 24000}``, and event names
such as ``response.output_audio.delta``.

Inside this package the preview shape is canonical: decoded events carry the canonical
``type`` (``event.wire_type`` keeps what was on the wire) and :class:`SessionProtocol` keeps the
session flat. This module converts at the edges:

* :func:`shape_for_api_version` picks the shape for a connection;
* :func:`canonical_type` maps any event name to its canonical name;
* :func:`session_to_wire` / :func:`session_from_wire` convert session objects
  (``session_from_wire`` accepts either shape, so it is safe on anything received);
* :func:`encode_client_event` writes a client event in a shape.

Lossless in the direction that matters: ``session_to_wire(session_from_wire(ga), "ga") == ga``
for every GA session object; what the flat shape cannot express (``audio.output.speed``, a
format with unusual keys) is kept under ``audio`` in the flat dict and put back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, cast

from ..errors import ConfigError, InvalidType, ProtocolError
from .events import SERVER_EVENT_ALIASES, ClientEvent, Event

__all__ = [
    "CLIENT_EVENT_RENAMES",
    "WIRE_SHAPES",
    "WireShape",
    "canonical_type",
    "client_event_to_wire",
    "encode_client_event",
    "format_from_wire",
    "format_to_wire",
    "ga_type",
    "is_ga_session",
    "session_from_wire",
    "session_to_wire",
    "shape_for_api_version",
]

from .session_wire import (  # re-exported: the session shapes live there (no event import, no cycle)
    WIRE_SHAPES,
    WireShape,
    format_from_wire,
    format_to_wire,
    is_ga_session,
    session_from_wire,
    session_to_wire,
)

#: canonical event name → GA event name (the inverse of ``SERVER_EVENT_ALIASES``)
_TO_GA: Final[dict[str, str]] = {canonical: ga for ga, canonical in SERVER_EVENT_ALIASES.items()}

#: Client event names are the same in both shapes (session.update, input_audio_buffer.append,
#: conversation.item.create, response.create, …); only their payloads differ.
CLIENT_EVENT_RENAMES: Final[Mapping[str, str]] = {}


def shape_for_api_version(api_version: str, override: str | None = None) -> WireShape:
    """The wire shape to speak: ``override`` when given, else from the ``api-version``.

    Dated versions (``2025-10-01``, ``2026-04-10``, ``…-preview``) speak the preview shape;
    ``v1`` (and other label versions such as ``v1-preview``) the GA shape.

    Raises:
        ConfigError: ``override`` is not ``"preview"`` or ``"ga"``.
    """
    if override is not None:
        if override not in WIRE_SHAPES:
            raise ConfigError("wire_shape", override, "preview or ga (or None to follow the api-version)")
        return cast(WireShape, override)
    version = (api_version or "").strip().lower()
    if version[:1].isdigit():
        return "preview"
    if version.startswith("v"):
        return "ga"
    return "preview"


def canonical_type(name: str) -> str:
    """The canonical (dated-version) name of an event name of either shape; others unchanged."""
    return SERVER_EVENT_ALIASES.get(name, name)


def ga_type(name: str) -> str:
    """The GA name of a canonical event name (``response.audio.delta`` → ``response.output_audio.delta``)."""
    return _TO_GA.get(name, name)


# ---------------------------------------------------------------------------------- client events

_ASSISTANT_PART_TO_GA: Final[Mapping[str, str]] = {"text": "output_text", "audio": "output_audio"}


def client_event_to_wire(event: Event | Mapping[str, Any], shape: str) -> dict[str, Any]:
    """The wire object of a client event in ``shape`` (a fresh dict).

    For GA: ``session.update`` carries :func:`session_to_wire` of its session;
    ``response.create`` has ``modalities`` → ``output_modalities`` and
    ``max_response_output_tokens`` → ``max_output_tokens`` (and its flat audio keys nested like a
    session's); an assistant message item created with ``text`` / ``audio`` content parts gets
    ``output_text`` / ``output_audio``. The preview shape is the event as it is.

    Raises:
        ConfigError: ``shape`` is not ``"preview"`` or ``"ga"``.
        ProtocolError: ``event`` is neither an event nor a mapping with a ``type``.
    """
    if shape not in WIRE_SHAPES:
        raise ConfigError("wire_shape", shape, "preview or ga")
    if isinstance(event, Event):
        obj = event.to_dict()
    elif isinstance(event, Mapping) and isinstance(event.get("type"), str):
        obj = dict(event)
    else:
        raise ProtocolError(f"cannot encode {type(event).__name__}: a client event or a dict with a 'type'")
    if shape == "preview":
        return obj
    kind = obj["type"]
    if kind == "session.update" and isinstance(obj.get("session"), Mapping):
        obj["session"] = session_to_wire(obj["session"], "ga")
    elif kind == "response.create" and isinstance(obj.get("response"), Mapping):
        obj["response"] = _response_params_to_ga(obj["response"])
    elif kind == "conversation.item.create" and isinstance(obj.get("item"), Mapping):
        obj["item"] = _item_to_ga(obj["item"])
    return obj


def _response_params_to_ga(response: Mapping[str, Any]) -> dict[str, Any]:
    converted = session_to_wire(response, "ga")
    converted.pop("type", None)  # response parameters have no session type
    if "input" in response:
        converted["input"] = [_item_to_ga(i) if isinstance(i, Mapping) else i for i in response["input"]]
    return converted


def _item_to_ga(item: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(item)
    content = item.get("content")
    if item.get("type") == "message" and item.get("role") == "assistant" and isinstance(content, list):
        out["content"] = [
            {**part, "type": _ASSISTANT_PART_TO_GA[part["type"]]}
            if isinstance(part, Mapping) and part.get("type") in _ASSISTANT_PART_TO_GA
            else part
            for part in content
        ]
    return out


def encode_client_event(event: ClientEvent | Event | Mapping[str, Any], shape: str) -> str:
    """Compact JSON text of a client event written in ``shape`` (see :func:`client_event_to_wire`).

    For the preview shape of an event object this is ``codec.encode_event(event)``; the GA
    translation is a few dict operations on top.

    Raises:
        ConfigError: ``shape`` is not ``"preview"`` or ``"ga"``.
        ProtocolError: the event cannot be encoded (see ``codec.encode_event``).
    """
    from .codec import encode_event  # codec does not import wire; a local import keeps it that way

    if shape == "preview" and isinstance(event, Event):
        return encode_event(event)
    if isinstance(event, Event):
        encode_event(event)  # the same checks as the preview shape
    obj = client_event_to_wire(event, shape)
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"cannot encode {obj.get('type')}: {exc}") from exc


def _default(value: object) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return list(value)
    raise InvalidType(f"{type(value).__name__} is not JSON serializable")
