"""What one emulator response is made of (pure): its state, its objects, its words and chunks.

:class:`ActiveResponse` is the response being generated, :class:`AudioItemState` what the
server knows of an assistant item's audio (sent, played, truncated), and the functions here
build the ``realtime.response`` object, the assistant item and the usage, validate
``response.create`` parameters, and cut a reply's text into the pieces spoken in each audio
chunk. No I/O and no clock: the playout clock is read with a ``now_ms`` the caller passes.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import session_defaults as sd
from .items import ItemStore, build_item
from .session_defaults import SessionError

__all__ = [
    "NO_SPEECH_REPLY",
    "ActiveResponse",
    "AudioItemState",
    "Piece",
    "Rendered",
    "ScriptedReplies",
    "align_words",
    "assistant_item",
    "default_reply",
    "plan_chunks",
    "response_object",
    "text_until",
    "usage",
    "validate_response_params",
    "words_of",
]

Event = dict[str, Any]
NO_SPEECH_REPLY = "I heard something, but I could not make out the words."


def default_reply(transcript: str) -> str:
    """The emulator's answer when no ``replies`` were scripted: it quotes what it heard."""
    text = transcript.strip()
    return f'You said: "{text}".' if text else NO_SPEECH_REPLY


def words_of(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class Piece:
    """A part of the reply text and when its word is spoken (offset into the item's audio)."""

    offset_ms: float
    text: str


def align_words(text: str, words: Sequence[Any], total_ms: float) -> list[Piece]:
    """Cut ``text`` into consecutive pieces, one per spoken word, that concatenate to ``text``.

    ``words`` have ``text`` and ``offset_ms`` (TTS word timings). A word not found in the
    text (a number read out, say) gets no piece of its own; trailing punctuation goes with
    the last word. Without word timings the text's words are spread evenly over ``total_ms``.
    """
    pieces: list[Piece] = []
    low = text.lower()
    pos = 0
    for w in words:
        token = str(w.text).strip().lower()
        idx = low.find(token, pos) if token else -1
        if idx < 0:
            continue
        end = idx + len(token)
        pieces.append(Piece(float(w.offset_ms), text[pos:end]))
        pos = end
    if not pieces:
        tokens = re.findall(r"\s*\S+", text)
        step = total_ms / max(len(tokens), 1)
        return [Piece(i * step, tok) for i, tok in enumerate(tokens)] or ([Piece(0.0, text)] if text else [])
    if pos < len(text):
        last = pieces[-1]
        pieces[-1] = Piece(last.offset_ms, last.text + text[pos:])
    return pieces


def plan_chunks(offsets_ms: Iterable[float], chunk_count: int, chunk_ms: float) -> list[list[int]]:
    """Which of the (ascending) ``offsets_ms`` fall in each audio chunk; late ones go to the last chunk."""
    plan: list[list[int]] = [[] for _ in range(max(chunk_count, 1))]
    for i, off in enumerate(offsets_ms):
        plan[min(len(plan) - 1, max(0, int(off // chunk_ms)))].append(i)
    return plan


def text_until(pieces: Sequence[Piece], end_ms: float) -> str:
    """The transcript of the words that start before ``end_ms`` (what a listener heard)."""
    return "".join(p.text for p in pieces if p.offset_ms < end_ms).rstrip()


@dataclass(frozen=True)
class Rendered:
    """A reply spoken and cut into chunks in the output format (the result of a render job)."""

    chunks: list[bytes]
    chunk_samples: list[int]
    output_rate: int
    words: list[Any]
    total_ms: float


@dataclass
class AudioItemState:
    """What the server knows about an assistant item's audio (for truncation and auto_truncate)."""

    item_id: str
    output_rate: int
    bytes_per_sample: int
    pieces: list[Piece] = field(default_factory=list)
    sent_samples: int = 0
    playout_start_ms: float | None = None  # when the first delta went on the wire
    truncated_ms: float | None = None

    @property
    def sent_ms(self) -> float:
        return self.sent_samples * 1000.0 / self.output_rate

    def playout_ms(self, now_ms: float) -> float:
        """Where a listener who started playing at the first delta is now, within what was sent."""
        if self.playout_start_ms is None:
            return 0.0
        return max(0.0, min(now_ms - self.playout_start_ms, self.sent_ms))

    def playing(self, now_ms: float) -> bool:
        """Still being heard: sent audio left on the playout clock, and not truncated (playback stopped)."""
        if self.playout_start_ms is None or self.truncated_ms is not None:
            return False
        return now_ms - self.playout_start_ms < self.sent_ms


@dataclass
class ActiveResponse:
    """The response being generated (its plan is stepped by the responder)."""

    id: str
    item_id: str
    modalities: list[str]
    output_format: str
    params: Mapping[str, Any]
    conversation: str  # "auto" or "none"
    max_tokens: int | str
    audio: AudioItemState
    cancelled: bool = False
    cancel_reason: str | None = None
    item_opened: bool = False
    part_opened: bool = False
    text: str = ""
    sent_text: list[str] = field(default_factory=list)
    incomplete: bool = False
    timestamps: bool = False
    input_item_id: str | None = None
    previous_item_id: str | None = None
    #: What to say, decided before the reply began (the quote of a tool's output), if anything.
    planned_text: str | None = None
    #: The function_call items this response makes instead of speaking (see :mod:`.toolcalls`).
    calls: list[Event] = field(default_factory=list)
    calls_done: int = 0
    #: An approved (or approval-free) MCP call made before the message, and the message's output index.
    mcp_call: Event | None = None
    before: list[Event] = field(default_factory=list)
    message_index: int = 0

    @property
    def has_audio(self) -> bool:
        return "audio" in self.modalities

    def ids(self) -> Event:
        """The fields that place a content event: response, item, output and content index."""
        return {
            "response_id": self.id,
            "item_id": self.item_id,
            "output_index": self.message_index,
            "content_index": 0,
        }


def response_object(
    resp: ActiveResponse,
    session: Mapping[str, Any],
    conversation_id: str,
    status: str,
    details: Any,
    output: list[Event],
) -> Event:
    """The ``realtime.response`` of ``response.created`` / ``response.done``."""
    return {
        "id": resp.id,
        "object": "realtime.response",
        "status": status,
        "status_details": details,
        "output": output,
        "usage": None,
        "conversation_id": conversation_id if resp.conversation == "auto" else None,
        "voice": copy.deepcopy(session["voice"]),
        "modalities": list(resp.modalities),
        "output_audio_format": resp.output_format,
        "temperature": resp.params.get("temperature", session.get("temperature", 0.8)),
        "max_output_tokens": resp.max_tokens,
        "metadata": resp.params.get("metadata") or None,
    }


def assistant_item(resp: ActiveResponse, status: str, text: str | None) -> Event:
    """The response's assistant message item (no content part before one was opened)."""
    content: list[Event] = []
    if text is not None:
        content = [
            {"type": "audio", "transcript": text} if resp.has_audio else {"type": "text", "text": text}
        ]
    return {
        "id": resp.item_id,
        "object": "realtime.item",
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def usage(resp: ActiveResponse, session: Mapping[str, Any], items: ItemStore, text: str) -> Event:
    """Rough token counts: 1 per ~4 characters of text, 10 per second of input audio, 20 per second out."""
    text_in = math.ceil(len(session.get("instructions") or "") / 4)
    audio_in = 0
    for item in items.items():
        for part in item.get("content", []) if item.get("type") == "message" else []:
            if part.get("type") in ("input_text", "text"):
                text_in += math.ceil(len(part.get("text", "")) / 4)
            elif part.get("type") == "input_audio":
                audio_in += 20
    text_out = math.ceil(len(text) / 4)
    audio_out = math.ceil(resp.audio.sent_ms / 50) if resp.has_audio else 0
    inp, out = text_in + audio_in, text_out + audio_out
    return {
        "total_tokens": inp + out,
        "input_tokens": inp,
        "output_tokens": out,
        "input_token_details": {
            "cached_tokens": 0,
            "text_tokens": text_in,
            "audio_tokens": audio_in,
            "image_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
    }


def _check_pre_generated(pre: Any) -> str:
    parts = pre.get("content") if isinstance(pre, dict) else None
    if (
        not isinstance(parts, list)
        or len(parts) != 1
        or not isinstance(parts[0], dict)
        or parts[0].get("type") != "text"
        or not isinstance(parts[0].get("text"), str)
    ):
        raise SessionError(
            "invalid_value",
            "'response.pre_generated_assistant_message' must be an assistant message with exactly one text part",
            "response.pre_generated_assistant_message",
        )
    return str(parts[0]["text"])


def _check_scalars(params: Mapping[str, Any], out: dict[str, Any]) -> None:
    if "modalities" in params:
        out["modalities"] = sd.validate_modalities(params["modalities"], "response.modalities")
    if "output_audio_format" in params:
        out["output_audio_format"] = sd.validate_output_format(
            params["output_audio_format"], "response.output_audio_format"
        )
    for name in ("max_output_tokens", "max_response_output_tokens"):
        if name in params:
            out["max_output_tokens"] = sd.validate_max_tokens(params[name], f"response.{name}")
    if "metadata" in params:
        out["metadata"] = sd.validate_metadata(params["metadata"], "response.metadata")
    if "conversation" in params and params["conversation"] not in ("auto", "none"):
        raise SessionError(
            "invalid_value", "'response.conversation' must be auto or none", "response.conversation"
        )
    if "temperature" in params:
        t = params["temperature"]
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not 0.0 <= t <= 2.0:
            raise SessionError(
                "invalid_value", "'response.temperature' must be from 0 to 2", "response.temperature"
            )


def validate_response_params(
    params: Mapping[str, Any], *, new_id: Callable[[str], str], audio_format: tuple[str, int]
) -> dict[str, Any]:
    """``response.create``'s ``response`` checked (errors name ``response.<field>``), normalised."""
    out = dict(params)
    _check_scalars(params, out)
    for name in ("append_input_items", "input_items"):
        if name in params and not isinstance(params[name], list):
            raise SessionError(
                "invalid_value", f"'response.{name}' must be a list of items", f"response.{name}"
            )
    if "input_items" in params:
        out["input_items"] = [
            build_item(
                raw, f"response.input_items[{i}]", existing=None, new_id=new_id, audio_format=audio_format
            )[0]
            for i, raw in enumerate(params["input_items"])
        ]
    pre = params.get("pre_generated_assistant_message")
    if pre is not None:
        out["pre_generated_text"] = _check_pre_generated(pre)
    return out


class ScriptedReplies:
    """``replies=`` as a list, used in order per connection: texts, and scripted tool calls."""

    def __init__(self, replies: Any) -> None:
        self.replies = replies
        self.index = 0

    def _listed(self) -> bool:
        r = self.replies
        return isinstance(r, Sequence) and not isinstance(r, str) and self.index < len(r)

    def next_text(self) -> str | None:
        """The next scripted text (consumed), or None once the list is used up (or not a list)."""
        if not self._listed():
            return None
        self.index += 1
        return str(self.replies[self.index - 1])

    def next_calls(self) -> list[tuple[str, Mapping[str, Any]]]:
        """The next entry when it is a scripted call (consumed), else nothing."""
        if not self._listed():
            return []
        entry = self.replies[self.index]
        entries = [entry] if isinstance(entry, Mapping) else entry
        if isinstance(entries, str) or not isinstance(entries, Sequence):
            return []
        if not entries or not all(isinstance(e, Mapping) and isinstance(e.get("call"), str) for e in entries):
            return []
        self.index += 1
        out: list[tuple[str, Mapping[str, Any]]] = []
        for call in entries:
            arguments = call.get("arguments") or {}
            out.append((str(call["call"]), arguments if isinstance(arguments, Mapping) else {}))
        return out
