"""The emulator's conversation book (pure): items in order, request items validated into stored ones.

:class:`ItemStore` keeps the conversation; :func:`build_item` turns a client's
``conversation.item.create`` item (or a ``response.input_items`` entry) into the stored item,
raising :class:`~.session_defaults.SessionError` naming the field that is wrong. No I/O, no
clock: ids come from the ``new_id`` function the caller passes in.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import NotFound
from .session_defaults import SessionError

__all__ = [
    "GA_ONLY",
    "ItemStore",
    "build_item",
    "check_audio_length",
    "decode_audio_field",
    "decode_input",
    "item_done",
    "json_object",
    "latest_approval",
    "latest_outputs",
    "public_item",
    "require_str",
]

Event = dict[str, Any]
#: Marks a canonical event that only the GA shape (api-version v1) sends; the edge strips it.
GA_ONLY = "_ga_only"


class ItemStore:
    """The conversation: items in order, addressed by id (pure)."""

    def __init__(self) -> None:
        self._items: list[Event] = []

    def __contains__(self, item_id: object) -> bool:
        return any(i["id"] == item_id for i in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[Event]:
        return list(self._items)

    def get(self, item_id: str) -> Event | None:
        return next((i for i in self._items if i["id"] == item_id), None)

    def last_id(self) -> str | None:
        return self._items[-1]["id"] if self._items else None

    def insert(self, item: Event, previous_item_id: str | None = None) -> str | None:
        """Insert after ``previous_item_id`` (``None`` appends, ``"root"`` inserts first).

        Returns the id of the item now before it (``None`` at the start). Raises ``NotFound``
        when ``previous_item_id`` is unknown.
        """
        if previous_item_id is None:
            before = self.last_id()
            self._items.append(item)
            return before
        if previous_item_id == "root":
            self._items.insert(0, item)
            return None
        for idx, existing in enumerate(self._items):
            if existing["id"] == previous_item_id:
                self._items.insert(idx + 1, item)
                return previous_item_id
        raise NotFound(previous_item_id)

    def delete(self, item_id: str) -> bool:
        for idx, existing in enumerate(self._items):
            if existing["id"] == item_id:
                del self._items[idx]
                return True
        return False

    def set_transcript(self, item_id: str, part_type: str, text: str) -> None:
        """Set the ``transcript`` of the item's parts of ``part_type`` (an item deleted since: nothing)."""
        item = self.get(item_id)
        for part in item.get("content", []) if item is not None else []:
            if part.get("type") == part_type:
                part["transcript"] = text


def public_item(item: Mapping[str, Any]) -> Event:
    """A deep copy of a stored item for an event."""
    return copy.deepcopy(dict(item))


def item_done(previous_item_id: str | None, item: Event, *, ga_only: bool = False) -> Event:
    """A ``conversation.item.done`` (sent by the live service after a committed audio item, and by
    GA after every item); ``ga_only`` ones are dropped by the dated-version edge."""
    event: Event = {
        "type": "conversation.item.done",
        "previous_item_id": previous_item_id,
        "item": copy.deepcopy(item),
    }
    if ga_only:
        event[GA_ONLY] = True
    return event


def latest_outputs(items: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The ``(tool name, output)`` of the function_call_output items that end the conversation.

    Only outputs answering a function_call item of the conversation count (an output with no
    known call is not a tool round), so a response after them quotes them.
    """
    names = {i.get("call_id"): str(i.get("name", "")) for i in items if i.get("type") == "function_call"}
    outputs: list[tuple[str, str]] = []
    for item in reversed(items):
        if item.get("type") != "function_call_output":
            break
        if item.get("call_id") in names:
            outputs.append((names[item.get("call_id")], str(item.get("output", ""))))
    return outputs[::-1]


def latest_approval(items: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any], bool] | None:
    """The ``mcp_approval_request`` answered by the ``mcp_approval_response`` ending the conversation."""
    if not items or items[-1].get("type") != "mcp_approval_response":
        return None
    wanted = items[-1].get("approval_request_id")
    for item in items:
        if item.get("type") == "mcp_approval_request" and item.get("id") == wanted:
            return item, bool(items[-1].get("approve"))
    return None


def json_object(text: Any) -> dict[str, Any]:
    """``text`` parsed as a JSON object; ``{}`` for anything else."""
    try:
        value = json.loads(text) if isinstance(text, str) and text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def require_str(msg: Mapping[str, Any], key: str, param: str | None = None) -> str:
    """``msg[key]`` as a non-empty string, or the ``SessionError`` naming ``param``."""
    p = param or key
    if key not in msg or msg[key] is None:
        raise SessionError("missing_required_parameter", f"missing required parameter '{p}'", p)
    value = msg[key]
    if not isinstance(value, str) or not value:
        raise SessionError("invalid_value", f"'{p}' must be a non-empty string", p)
    return value


# --- input audio in requests ------------------------------------------------------------------------


def decode_audio_field(value: Any, param: str) -> bytes:
    """A base64 audio field's bytes (``invalid_base64`` / ``invalid_value`` naming ``param``)."""
    if not isinstance(value, str):
        raise SessionError("invalid_value", f"'{param}' must be a base64 string", param)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SessionError("invalid_base64", f"'{param}' is not valid base64: {exc}", param) from None


def check_audio_length(raw: bytes, fmt: str, channels: int, param: str) -> None:
    """PCM16 audio must be whole frames (2 bytes mono, 4 bytes stereo mic + reference)."""
    if fmt != "pcm16":
        return
    frame = 2 * channels
    if len(raw) % frame:
        what = (
            "stereo (mic + reference) PCM16 frames of 4 bytes" if frame == 4 else "PCM16 samples of 2 bytes"
        )
        raise SessionError(
            "invalid_audio_length",
            f"'{param}' has {len(raw)} bytes, which is not a whole number of {what}",
            param,
        )


def decode_input(raw: bytes, fmt: str, channels: int) -> bytes:
    """Client input audio → mono PCM16 at the session's input rate."""
    from ..audio.format import alaw_decode, ulaw_decode

    if fmt == "g711_ulaw":
        return ulaw_decode(raw)
    if fmt == "g711_alaw":
        return alaw_decode(raw)
    if channels == 2:
        return np.frombuffer(raw, dtype="<i2")[0::2].astype("<i2").tobytes()
    return raw


# --- request items -----------------------------------------------------------------------------------

_ALLOWED_PARTS = {"system": ("input_text",), "user": ("input_text", "input_audio", "input_image")}


def _message_part(part: Any, p: str, role: str, audio_format: tuple[str, int]) -> tuple[Event, bytes | None]:
    """One content part of a message item, and the mono audio of an ``input_audio`` part."""
    allowed = _ALLOWED_PARTS.get(role, ("text",))
    if not isinstance(part, dict):
        raise SessionError("invalid_value", f"'{p}' must be an object", p)
    ptype = part.get("type")
    if ptype not in allowed:
        hint = " (assistant audio cannot be created; use a text part)" if ptype == "audio" else ""
        raise SessionError(
            "invalid_value",
            f"'{p}.type' {ptype!r} is not allowed for role {role}; use {', '.join(allowed)}{hint}",
            f"{p}.type",
        )
    if ptype in ("input_text", "text"):
        text = part.get("text")
        if not isinstance(text, str):
            raise SessionError("invalid_value", f"'{p}.text' must be a string", f"{p}.text")
        return {"type": ptype, "text": text}, None
    if ptype == "input_audio":
        fmt, channels = audio_format
        raw_audio = decode_audio_field(part.get("audio"), f"{p}.audio")
        check_audio_length(raw_audio, fmt, channels, f"{p}.audio")
        audio = decode_input(raw_audio, fmt, channels)
        return {"type": "input_audio", "audio": None, "transcript": part.get("transcript")}, audio
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        raise SessionError("invalid_value", f"'{p}.image_url' must be a string", f"{p}.image_url")
    return {"type": "input_image", "image_url": url, "detail": part.get("detail", "auto")}, None


def _message_fields(
    raw: Mapping[str, Any], param: str, audio_format: tuple[str, int]
) -> tuple[Event, bytes | None]:
    role = require_str(raw, "role", f"{param}.role")
    if role not in ("system", "user", "assistant"):
        raise SessionError(
            "invalid_value", f"'{param}.role' must be system, user or assistant", f"{param}.role"
        )
    content = raw.get("content")
    if not isinstance(content, list) or not content:
        raise SessionError(
            "invalid_value", f"'{param}.content' must be a non-empty list of parts", f"{param}.content"
        )
    parts: list[Event] = []
    audio: bytes | None = None
    for i, part in enumerate(content):
        built, part_audio = _message_part(part, f"{param}.content[{i}]", role, audio_format)
        parts.append(built)
        audio = part_audio if part_audio is not None else audio
    return {"role": role, "status": "completed", "content": parts}, audio


def _other_fields(raw: Mapping[str, Any], itype: str, param: str) -> Event:
    if itype == "function_call":
        return {
            "name": require_str(raw, "name", f"{param}.name"),
            "call_id": require_str(raw, "call_id", f"{param}.call_id"),
            "arguments": raw.get("arguments", ""),
            "status": "completed",
        }
    if itype == "function_call_output":
        output = raw.get("output", "")
        if not isinstance(output, str):
            raise SessionError("invalid_value", f"'{param}.output' must be a string", f"{param}.output")
        return {"call_id": require_str(raw, "call_id", f"{param}.call_id"), "output": output}
    if itype == "mcp_approval_response":
        approve = raw.get("approve")
        if not isinstance(approve, bool):
            raise SessionError(
                "invalid_value", f"'{param}.approve' must be true or false", f"{param}.approve"
            )
        request_id = require_str(raw, "approval_request_id", f"{param}.approval_request_id")
        return {"approval_request_id": request_id, "approve": approve}
    raise SessionError(
        "invalid_value",
        f"'{param}.type' {itype!r} must be message, function_call, function_call_output or mcp_approval_response",
        f"{param}.type",
    )


def build_item(
    raw: Any,
    param: str,
    *,
    existing: Callable[[str], bool] | None,
    new_id: Callable[[str], str],
    audio_format: tuple[str, int],
) -> tuple[Event, bytes | None]:
    """Validate a request item: the stored item and the mono input audio it carries (if any).

    ``existing`` tells whether an id is taken (``None``: ids may repeat, as in
    ``response.input_items``); ``audio_format`` is the session's ``(input format, channels)``.
    """
    if not isinstance(raw, dict):
        raise SessionError("invalid_value", f"'{param}' must be an object", param)
    itype = require_str(raw, "type", f"{param}.type")
    item_id = raw.get("id") or new_id("item")
    if not isinstance(item_id, str):
        raise SessionError("invalid_value", f"'{param}.id' must be a string", f"{param}.id")
    if existing is not None and (existing(item_id) or item_id == "root"):
        raise SessionError("duplicate_item_id", f"an item with id '{item_id}' already exists", f"{param}.id")
    base: Event = {"id": item_id, "object": "realtime.item", "type": itype}
    if itype == "message":
        fields, audio = _message_fields(raw, param, audio_format)
        base.update(fields)
        return base, audio
    base.update(_other_fields(raw, itype, param))
    return base, None
