"""The emulator's two wire shapes, translated at its edge (pure: dicts in, dicts out).

The conversation speaks one *canonical* shape: Voice Live's dated api-versions
(``2025-10-01`` … ``2026-07-15``: ``response.audio.delta``, ``conversation.item.created``,
a flat session with ``modalities`` / ``input_audio_format`` / ``turn_detection``). It also
emits the ``conversation.item.done`` events that only GA sends, marked with
:data:`~.conversation.GA_ONLY`. An :class:`Edge` per connection renders every canonical server
event for the wire and turns every client event into the canonical shape:

* :class:`PreviewEdge` (dated versions): drops the GA-only events, nothing else changes.
* :class:`GaEdge` (``api-version=v1``, the OpenAI Realtime GA shape that Voice Live's
  label-based ``v1`` adopts): ``response.output_audio.delta``, ``response.output_audio_transcript.*``,
  ``response.output_text.*``, ``conversation.item.added`` + ``conversation.item.done``; sessions with
  ``type: "realtime"``, ``output_modalities``, ``audio.input.{format, noise_reduction, transcription,
  turn_detection}``, ``audio.output.{format, voice, speed}``; items without ``object``, assistant
  content as ``output_audio`` / ``output_text``; responses with ``output_modalities`` and
  ``audio.output``. Client ``session.update``, ``response.create`` and ``conversation.item.create`` in
  the GA shape are accepted (the canonical shape is accepted too: liberal in what we accept).

This is the emulator's own rendering, written from the recorded GA traffic; it shares nothing
with the client's translation (``protocol/wire.py``), so a bug in one cannot hide the other's.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["GA_API_VERSIONS", "Edge", "GaEdge", "PreviewEdge", "edge_for", "is_ga"]

Event = dict[str, Any]
#: Label-based api-versions that speak the GA shape.
GA_API_VERSIONS = ("v1",)
_GA_ONLY = "_ga_only"

_GA_SERVER_NAMES = {
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "response.audio_timestamp.delta": "response.output_audio_timestamp.delta",
    "response.audio_timestamp.done": "response.output_audio_timestamp.done",
    "conversation.item.created": "conversation.item.added",
}
_ITEM_EVENTS = (
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.retrieved",
    "response.output_item.added",
    "response.output_item.done",
)
# canonical format name -> (GA format type, rate)
_FORMATS = {
    "pcm16": ("audio/pcm", 24000),
    "pcm16_16000hz": ("audio/pcm", 16000),
    "pcm16_8000hz": ("audio/pcm", 8000),
    "g711_ulaw": ("audio/pcmu", None),
    "g711_alaw": ("audio/pcma", None),
}


def is_ga(api_version: str | None) -> bool:
    """True for the label-based api-versions that use the GA shape (``v1``)."""
    return isinstance(api_version, str) and api_version.strip().lower() in GA_API_VERSIONS


class Edge:
    """Translate one connection's traffic between the wire and the canonical shape."""

    shape = "preview"

    def server(self, event: Event) -> list[Event]:
        """The wire events for one canonical server event (possibly none)."""
        if event.pop(_GA_ONLY, False):
            return []
        return [event]

    def client(self, msg: Any) -> Any:
        """The canonical form of one decoded client event (anything not understood is passed on)."""
        return msg


class PreviewEdge(Edge):
    """Dated api-versions: the canonical shape itself, minus the GA-only events."""


# --- GA rendering ----------------------------------------------------------------------------------


def _format_to_ga(name: Any, rate: Any = None) -> Any:
    if name is None:
        name = "pcm16"
    if name not in _FORMATS:
        return name
    ftype, frate = _FORMATS[name]
    if ftype != "audio/pcm":
        return {"type": ftype}
    return {"type": ftype, "rate": int(rate) if rate else frate}


def _format_from_ga(fmt: Any, *, output: bool) -> tuple[Any, int | None]:
    """``(canonical format name, input rate)``; unknown values pass through verbatim (validated later)."""
    if isinstance(fmt, str):
        return fmt, None
    if not isinstance(fmt, dict):
        return fmt, None
    ftype, rate = fmt.get("type"), fmt.get("rate")
    if ftype == "audio/pcmu":
        return "g711_ulaw", None
    if ftype == "audio/pcma":
        return "g711_alaw", None
    if ftype == "audio/pcm":
        if not output:
            return "pcm16", rate if isinstance(rate, int) else None
        return {None: "pcm16", 24000: "pcm16", 16000: "pcm16_16000hz", 8000: "pcm16_8000hz"}.get(
            rate, rate
        ), None
    return ftype, None


def _voice_to_ga(voice: Any) -> Any:
    if isinstance(voice, dict) and voice.get("type") == "openai" and set(voice) <= {"type", "name"}:
        return voice.get("name")
    return copy.deepcopy(voice)


def _voice_from_ga(voice: Any) -> Any:
    if isinstance(voice, str):
        return {"type": "openai", "name": voice}
    return voice


def _turn_detection_to_ga(td: Any) -> Any:
    if not isinstance(td, dict):
        return td
    if td.get("type") == "server_vad":
        out = {
            k: td.get(k)
            for k in (
                "type",
                "threshold",
                "prefix_padding_ms",
                "silence_duration_ms",
                "idle_timeout_ms",
                "create_response",
                "interrupt_response",
            )
        }
        for key in ("speech_duration_ms", "end_of_utterance_detection", "appended_text_after_truncation"):
            if td.get(key) is not None:
                out[key] = copy.deepcopy(td[key])
        if td.get("auto_truncate"):
            out["auto_truncate"] = True
        return out
    if td.get("type") == "semantic_vad":
        keys = ("type", "eagerness", "create_response", "interrupt_response")
        return {k: td.get(k) for k in keys}
    return {k: copy.deepcopy(v) for k, v in td.items() if v is not None}


def _transcription_to_ga(tr: Any) -> Any:
    if not isinstance(tr, dict):
        return tr
    out = {"model": tr.get("model"), "language": tr.get("language"), "prompt": tr.get("prompt")}
    out.update({k: copy.deepcopy(v) for k, v in tr.items() if k not in out and v is not None})
    return out


def _content_to_ga(part: Any) -> Any:
    if not isinstance(part, dict):
        return part
    part = dict(part)
    ptype = part.get("type")
    if ptype == "audio":
        part["type"] = "output_audio"
        part.pop("audio", None)
    elif ptype == "text":
        part["type"] = "output_text"
    elif ptype == "input_audio" and part.get("audio") is None:
        part.pop("audio", None)
    return part


def _content_from_ga(part: Any) -> Any:
    if not isinstance(part, dict):
        return part
    ptype = part.get("type")
    if ptype == "output_audio":
        return {**part, "type": "audio"}
    if ptype == "output_text":
        return {**part, "type": "text"}
    return part


def _item_to_ga(item: Any) -> Any:
    if not isinstance(item, dict):
        return item
    out = {k: v for k, v in item.items() if k != "object"}
    if isinstance(out.get("content"), list):
        out["content"] = [_content_to_ga(p) for p in out["content"]]
    return out


def _item_from_ga(item: Any) -> Any:
    if not isinstance(item, dict) or not isinstance(item.get("content"), list):
        return item
    return {**item, "content": [_content_from_ga(p) for p in item["content"]]}


class GaEdge(Edge):
    """``api-version=v1``: the OpenAI Realtime GA shape.

    GA-only session settings the canonical model has no place for (``audio.output.speed``,
    ``tracing``, ``prompt``) are kept here and reported back as they were set.
    """

    shape = "ga"

    def __init__(self) -> None:
        self.extra: dict[str, Any] = {"speed": 1.0, "tracing": None, "prompt": None}

    # server -> wire

    def server(self, event: Event) -> list[Event]:
        event.pop(_GA_ONLY, None)
        etype = event.get("type")
        out = dict(event)
        if isinstance(etype, str):
            out["type"] = _GA_SERVER_NAMES.get(etype, etype)
        if etype in ("session.created", "session.updated") and isinstance(out.get("session"), dict):
            out["session"] = self.session_to_ga(out["session"])
        elif out["type"] in _ITEM_EVENTS and "item" in out:
            out["item"] = _item_to_ga(out["item"])
        elif etype in ("response.created", "response.done") and isinstance(out.get("response"), dict):
            out["response"] = self.response_to_ga(out["response"])
        return [out]

    def session_to_ga(self, s: dict[str, Any]) -> dict[str, Any]:
        """A canonical session in the GA shape (key order as the live GA service reports it)."""
        ga: dict[str, Any] = {
            "type": "realtime",
            "object": s.get("object", "realtime.session"),
            "id": s.get("id"),
            "model": s.get("model"),
            "output_modalities": copy.deepcopy(s.get("modalities")),
            "instructions": s.get("instructions"),
            "tools": copy.deepcopy(s.get("tools")),
            "tool_choice": copy.deepcopy(s.get("tool_choice")),
            "max_output_tokens": s.get("max_response_output_tokens"),
            "tracing": copy.deepcopy(self.extra["tracing"]),
            "truncation": copy.deepcopy(s.get("truncation_strategy") or "auto"),
            "prompt": copy.deepcopy(self.extra["prompt"]),
            "expires_at": s.get("expires_at"),
            "audio": {
                "input": {
                    "format": _format_to_ga(s.get("input_audio_format"), s.get("input_audio_sampling_rate")),
                    "transcription": _transcription_to_ga(s.get("input_audio_transcription")),
                    "noise_reduction": copy.deepcopy(s.get("input_audio_noise_reduction")),
                    "turn_detection": _turn_detection_to_ga(s.get("turn_detection")),
                },
                "output": {
                    "format": _format_to_ga(s.get("output_audio_format")),
                    "voice": _voice_to_ga(s.get("voice")),
                    "speed": self.extra["speed"],
                },
            },
            "include": copy.deepcopy(s.get("include")),
        }
        if s.get("input_audio_echo_cancellation") is not None:
            ga["audio"]["input"]["echo_cancellation"] = copy.deepcopy(s["input_audio_echo_cancellation"])
        # Voice Live extensions and settings a client made: reported, under their own names
        for key in ("temperature", "parallel_tool_calls", "metadata", "interim_response", "reasoning_effort",
                    "output_audio_timestamp_types", "animation", "avatar", "agent"):  # fmt: skip
            if s.get(key) is not None:
                ga[key] = copy.deepcopy(s[key])
        return ga

    def response_to_ga(self, r: dict[str, Any]) -> dict[str, Any]:
        out = {
            "object": r.get("object", "realtime.response"),
            "id": r.get("id"),
            "status": r.get("status"),
            "status_details": copy.deepcopy(r.get("status_details")),
            "output": [_item_to_ga(i) for i in r.get("output") or []],
            "conversation_id": r.get("conversation_id"),
            "output_modalities": copy.deepcopy(r.get("modalities")),
            "max_output_tokens": r.get("max_output_tokens"),
            "audio": {
                "output": {
                    "format": _format_to_ga(r.get("output_audio_format")),
                    "voice": _voice_to_ga(r.get("voice")),
                }
            },
            "usage": copy.deepcopy(r.get("usage")),
            "metadata": copy.deepcopy(r.get("metadata")),
        }
        return out

    # wire -> canonical

    def client(self, msg: Any) -> Any:
        if not isinstance(msg, dict):
            return msg
        etype = msg.get("type")
        if etype == "session.update" and isinstance(msg.get("session"), dict):
            return {**msg, "session": self.session_from_ga(msg["session"])}
        if etype == "response.create" and isinstance(msg.get("response"), dict):
            return {**msg, "response": self.response_params_from_ga(msg["response"])}
        if etype == "conversation.item.create" and "item" in msg:
            return {**msg, "item": _item_from_ga(msg["item"])}
        return msg

    def session_from_ga(self, ga: dict[str, Any]) -> dict[str, Any]:
        """A GA ``session.update`` session as a canonical one (canonical keys pass through)."""
        s = {k: v for k, v in ga.items() if k not in ("type", "audio", "output_modalities", "truncation")}
        for key in ("tracing", "prompt"):
            if key in s:
                self.extra[key] = copy.deepcopy(s.pop(key))
        if "output_modalities" in ga:
            s["modalities"] = ga["output_modalities"]
        if "truncation" in ga:
            s["truncation_strategy"] = ga["truncation"]
        audio = ga.get("audio")
        if isinstance(audio, dict):
            raw_in, raw_out = audio.get("input"), audio.get("output")
            a_in: dict[str, Any] = raw_in if isinstance(raw_in, dict) else {}
            a_out: dict[str, Any] = raw_out if isinstance(raw_out, dict) else {}
            if "format" in a_in:
                fmt, rate = _format_from_ga(a_in["format"], output=False)
                s["input_audio_format"] = fmt
                if rate is not None:
                    s["input_audio_sampling_rate"] = rate
            for ga_key, key in (
                ("transcription", "input_audio_transcription"),
                ("noise_reduction", "input_audio_noise_reduction"),
                ("turn_detection", "turn_detection"),
                ("echo_cancellation", "input_audio_echo_cancellation"),
            ):
                if ga_key in a_in:
                    s[key] = a_in[ga_key]
            if "format" in a_out:
                s["output_audio_format"] = _format_from_ga(a_out["format"], output=True)[0]
            if "voice" in a_out:
                s["voice"] = _voice_from_ga(a_out["voice"])
            if "speed" in a_out:
                self.extra["speed"] = a_out["speed"]
        return s

    @staticmethod
    def response_params_from_ga(r: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in r.items() if k not in ("output_modalities", "audio")}
        if "output_modalities" in r:
            out["modalities"] = r["output_modalities"]
        audio = r.get("audio")
        if isinstance(audio, dict) and isinstance(audio.get("output"), dict):
            a_out = audio["output"]
            if "format" in a_out:
                out["output_audio_format"] = _format_from_ga(a_out["format"], output=True)[0]
            if "voice" in a_out:
                out["voice"] = _voice_from_ga(a_out["voice"])
        if isinstance(out.get("input_items"), list):
            out["input_items"] = [_item_from_ga(i) for i in out["input_items"]]
        return out


def edge_for(api_version: str | None) -> Edge:
    """The edge for a connection's ``api-version``."""
    return GaEdge() if is_ga(api_version) else PreviewEdge()
