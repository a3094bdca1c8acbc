"""Session objects in the two wire shapes (preview flat, GA nested) and audio format names. Pure.

Split from :mod:`.wire` so that :mod:`.events` (whose session reprs flatten a GA session) can
use it without an import cycle: this module imports no event class. :mod:`.wire` re-exports
everything here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, get_args

from ..errors import ConfigError

__all__ = [
    "WIRE_SHAPES",
    "WireShape",
    "format_from_wire",
    "format_to_wire",
    "is_ga_session",
    "session_from_wire",
    "session_to_wire",
]

WireShape = Literal["preview", "ga"]
WIRE_SHAPES: Final[tuple[str, ...]] = get_args(WireShape)

# ---------------------------------------------------------------------------------- formats

_PCM: Final = "audio/pcm"
_G711_TO_GA: Final[Mapping[str, str]] = {"g711_ulaw": "audio/pcmu", "g711_alaw": "audio/pcma"}
_G711_FROM_GA: Final[Mapping[str, str]] = {v: k for k, v in _G711_TO_GA.items()}
_OUTPUT_PCM_RATES: Final[Mapping[int, str]] = {24000: "pcm16", 16000: "pcm16_16000hz", 8000: "pcm16_8000hz"}
_OUTPUT_PCM_NAMES: Final[Mapping[str, int]] = {
    "pcm16": 24000,
    "pcm16_16000hz": 16000,
    "pcm16_8000hz": 8000,
    "pcm16-16000hz": 16000,
    "pcm16-8000hz": 8000,
}


def format_from_wire(fmt: object, *, output: bool) -> tuple[str, int | None] | None:
    """``{type: "audio/pcm", rate: 24000}`` → ``("pcm16", 24000)``; G.711 → ``("g711_ulaw", None)``.

    For output, the rate is folded into the name (``pcm16_16000hz``) and returned as None.
    None when ``fmt`` is not exactly one of these forms (it is then kept verbatim by callers).
    """
    if not isinstance(fmt, Mapping):
        return None
    kind = fmt.get("type")
    if kind == _PCM and set(fmt) <= {"type", "rate"}:
        rate = fmt.get("rate")
        if not isinstance(rate, int) or isinstance(rate, bool):
            return None
        if output:
            name = _OUTPUT_PCM_RATES.get(rate)
            return (name, None) if name is not None else None
        return ("pcm16", rate)
    if isinstance(kind, str) and kind in _G711_FROM_GA and set(fmt) == {"type"}:
        return (_G711_FROM_GA[kind], None)
    return None


def format_to_wire(name: object, rate: object = None) -> dict[str, Any] | None:
    """``"pcm16"`` (+ input ``rate``) → ``{type: "audio/pcm", rate}``; None for an unknown name."""
    if not isinstance(name, str):
        return None
    if name in _G711_TO_GA:
        return {"type": _G711_TO_GA[name]}
    if name == "pcm16":
        pcm_rate = rate if isinstance(rate, int) and not isinstance(rate, bool) else 24000
        return {"type": _PCM, "rate": pcm_rate}
    if name in _OUTPUT_PCM_NAMES:
        return {"type": _PCM, "rate": _OUTPUT_PCM_NAMES[name]}
    return None


# ---------------------------------------------------------------------------------- sessions

_GA_ONLY_KEYS: Final = ("output_modalities", "audio")


def is_ga_session(session: Mapping[str, Any]) -> bool:
    """True when ``session`` is in the GA shape (``type: "realtime"``, ``audio`` nesting, …)."""
    return (
        session.get("type") in ("realtime", "transcription")
        or isinstance(session.get("audio"), Mapping)
        or "output_modalities" in session
    )


def session_from_wire(session: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical flat session for a session object of either shape. Never raises.

    A preview session comes back as a plain copy. For a GA session: ``output_modalities`` →
    ``modalities``, ``max_output_tokens`` → ``max_response_output_tokens``,
    ``audio.input.{format, noise_reduction, transcription, turn_detection}`` →
    ``input_audio_format`` + ``input_audio_sampling_rate``, ``input_audio_noise_reduction``,
    ``input_audio_transcription``, ``turn_detection``; ``audio.output.{format, voice}`` →
    ``output_audio_format``, ``voice``; ``type: "realtime"`` is dropped. Whatever has no flat
    name (``audio.output.speed``, a format that is not one of the standard ones) stays under
    ``audio``; every other key is kept as it is.
    """
    if not isinstance(session, Mapping):
        return {}
    if not is_ga_session(session):
        return dict(session)
    out: dict[str, Any] = {}
    leftover: dict[str, Any] = {}
    for key, value in session.items():
        if key == "type":
            if value != "realtime":
                out["type"] = value
        elif key == "output_modalities":
            out["modalities"] = value
        elif key == "max_output_tokens" and "max_response_output_tokens" not in session:
            out["max_response_output_tokens"] = value
        elif key == "audio":
            if isinstance(value, Mapping):
                _audio_from_wire(value, out, leftover)
                if not value:
                    out["audio"] = {}
            else:
                leftover["__value__"] = value
        else:
            out[key] = value
    if "__value__" in leftover:
        out["audio"] = leftover["__value__"]
    elif leftover:
        out["audio"] = leftover
    return out


_INPUT_KEYS: Final[Mapping[str, str]] = {
    "noise_reduction": "input_audio_noise_reduction",
    "transcription": "input_audio_transcription",
    "turn_detection": "turn_detection",
}


def _audio_from_wire(audio: Mapping[str, Any], out: dict[str, Any], leftover: dict[str, Any]) -> None:
    for direction, node in audio.items():
        if direction not in ("input", "output") or not isinstance(node, Mapping):
            leftover[direction] = node
            continue
        rest: dict[str, Any] = {}
        for key, value in node.items():
            if key == "format":
                parsed = format_from_wire(value, output=direction == "output")
                if parsed is None:
                    rest[key] = value
                elif direction == "input":
                    out["input_audio_format"] = parsed[0]
                    if parsed[1] is not None:
                        out["input_audio_sampling_rate"] = parsed[1]
                else:
                    out["output_audio_format"] = parsed[0]
            elif direction == "input" and key in _INPUT_KEYS:
                out[_INPUT_KEYS[key]] = value
            elif direction == "output" and key == "voice":
                out["voice"] = value
            else:
                rest[key] = value
        if rest or not node:
            leftover[direction] = rest


def session_to_wire(session: Mapping[str, Any], shape: str) -> dict[str, Any]:
    """The canonical flat ``session`` written in ``shape`` (a fresh dict).

    ``"preview"``: a plain copy. ``"ga"``: the inverse of :func:`session_from_wire`, plus two
    translations GA needs: ``modalities`` ``["text", "audio"]`` becomes ``output_modalities``
    ``["audio"]`` (in GA audio output always carries its transcript, and the two may not be
    combined), and a ``{type: "openai", name}`` voice becomes the bare name. Keys with no GA
    counterpart (Azure extras such as ``input_audio_echo_cancellation``) stay at the top level.

    Raises:
        ConfigError: ``shape`` is not ``"preview"`` or ``"ga"``.
    """
    if shape not in WIRE_SHAPES:
        raise ConfigError("wire_shape", shape, "preview or ga")
    if shape == "preview":
        return dict(session)
    out: dict[str, Any] = {"type": session.get("type", "realtime")}
    audio_in: dict[str, Any] = {}
    audio_out: dict[str, Any] = {}
    leftover = session.get("audio")
    extra_audio: dict[str, Any] = {}
    if isinstance(leftover, Mapping):
        for direction, node in leftover.items():
            if direction == "input" and isinstance(node, Mapping):
                audio_in.update(node)
            elif direction == "output" and isinstance(node, Mapping):
                audio_out.update(node)
            else:
                extra_audio[direction] = node
    elif leftover is not None:
        extra_audio = {"__value__": leftover}
    has_audio = isinstance(leftover, Mapping)
    for key, value in session.items():
        if key in ("type", "audio"):
            continue
        if key == "modalities":
            out["output_modalities"] = _ga_modalities(value)
        elif key == "max_response_output_tokens":
            out["max_output_tokens"] = value
        elif key == "input_audio_format":
            fmt = format_to_wire(value, session.get("input_audio_sampling_rate"))
            audio_in["format"] = fmt if fmt is not None else value
            has_audio = True
        elif key == "input_audio_sampling_rate":
            if "input_audio_format" not in session:
                audio_in["format"] = {"type": _PCM, "rate": value}
                has_audio = True
        elif key == "output_audio_format":
            fmt = format_to_wire(value)
            audio_out["format"] = fmt if fmt is not None else value  # unknown names and null as given
            has_audio = True
        elif key in _INPUT_KEYS.values():
            audio_in[_GA_INPUT_NAMES[key]] = value
            has_audio = True
        elif key == "voice":
            audio_out["voice"] = _ga_voice(value)
            has_audio = True
        else:
            out[key] = value
    if "__value__" in extra_audio:
        out["audio"] = extra_audio["__value__"]
    elif has_audio or extra_audio:
        audio: dict[str, Any] = dict(extra_audio)
        if audio_in or (isinstance(leftover, Mapping) and "input" in leftover):
            audio["input"] = audio_in
        if audio_out or (isinstance(leftover, Mapping) and "output" in leftover):
            audio["output"] = audio_out
        out["audio"] = audio
    return out


_GA_INPUT_NAMES: Final[Mapping[str, str]] = {v: k for k, v in _INPUT_KEYS.items()}


def _ga_modalities(value: Any) -> Any:
    if isinstance(value, (list, tuple)) and "audio" in value and "text" in value:
        rest = [m for m in value if m != "text"]
        return rest
    return list(value) if isinstance(value, tuple) else value


def _ga_voice(value: Any) -> Any:
    if isinstance(value, Mapping) and value.get("type") == "openai" and set(value) == {"type", "name"}:
        return value["name"]
    return value
