"""Session defaults and ``session.update`` validation/merge for the emulator (pure, on dicts).

Nothing here does I/O or reads a clock: the caller passes ``now_s`` and the facts about the
connection (was audio appended? was audio produced?). The rules follow the Voice Live
reference (``shared/reference/voice-live-protocol.md`` §3.4–3.6, §8.3):

* the merge is **shallow**: a top-level key that is present replaces the current value
  whole (a nested object is not merged key by key), an explicit ``null`` disables the
  feature, an absent key keeps the current value;
* ``turn_detection`` objects are completed with the defaults of their ``type``, so the
  session reported back is always the full effective configuration;
* both token-limit names (``max_response_output_tokens`` / ``max_output_tokens``), both
  end-of-utterance shapes (``{model, threshold_level, timeout_ms}`` and the legacy
  ``{model, threshold, timeout}`` in seconds) and both spellings of the interim-response
  names (``interim_response`` / ``interim-response``, ``static_interim_response`` /
  ``static-interim-response``) are accepted and reported in the canonical form;
* an invalid value raises :class:`SessionError` with ``code`` (``invalid_value``,
  ``unknown_parameter``, ``cannot_update_voice``, …) and ``param``
  (``session.turn_detection.threshold``); the update is then not applied at all.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidValue
from ..hosts import is_loopback_host as is_loopback_host
from ..protocol import vocabulary

__all__ = [
    "DEFAULT_SESSION_MAX_S",
    "INPUT_FORMATS",
    "OPENAI_VOICES",
    "OUTPUT_FORMATS",
    "SEMANTIC_VAD_SILENCE_MS",
    "TURN_DETECTION_TYPES",
    "SessionError",
    "VadConfig",
    "apply_session_update",
    "default_turn_detection",
    "is_loopback_host",
    "new_session",
    "output_sample_rate",
    "vad_config",
]

#: Voice Live reports ``expires_at`` 30 minutes after connect (Azure OpenAI Realtime's cap).
DEFAULT_SESSION_MAX_S = 30 * 60

# what the service accepts is data shared with the client's config (protocol/vocabulary.py)
OPENAI_VOICES = vocabulary.OPENAI_VOICES
REALTIME_NATIVE_VOICES = vocabulary.REALTIME_NATIVE_VOICES
INPUT_FORMATS = vocabulary.INPUT_AUDIO_FORMATS
OUTPUT_FORMATS = vocabulary.OUTPUT_AUDIO_FORMATS
PCM16_INPUT_RATES = vocabulary.SAMPLING_RATES
MODALITIES = vocabulary.MODALITIES
AZURE_VAD_TYPES = vocabulary.AZURE_VAD_TYPES
TURN_DETECTION_TYPES = vocabulary.TURN_DETECTION_TYPES
#: OpenAI ``semantic_vad`` has no acoustic knobs; the emulator maps ``eagerness`` to a silence window.
SEMANTIC_VAD_SILENCE_MS = {"low": 1500, "medium": 800, "auto": 800, "high": 300}
#: Extra end-of-turn wait that stands in for the semantic end-of-utterance model, by
#: ``threshold_level`` (a lower level declares the utterance complete more readily).
EOU_EXTRA_WAIT_MS = {"low": 0, "default": 200, "medium": 200, "high": 400}
EOU_MODELS = vocabulary.EOU_MODELS
TRANSCRIPTION_MODELS = vocabulary.TRANSCRIPTION_MODELS
NOISE_REDUCTION_TYPES = vocabulary.NOISE_REDUCTION_TYPES
REASONING_EFFORTS = vocabulary.REASONING_EFFORTS
INCLUDE_OPTIONS = vocabulary.INCLUDE_OPTIONS
VOICE_REQUIRED = vocabulary.VOICE_REQUIRED
VOICE_OPTIONAL = (
    "temperature", "custom_lexicon_url", "custom_text_normalization_url", "prefer_locales", "locale", "style",
    "pitch", "rate", "volume",
)  # fmt: skip
#: Keys the server owns: a client echoing a whole ``session.updated`` back is fine, they are ignored.
_READ_ONLY = ("id", "object", "expires_at", "agent", "greeting", "handoff")
_SESSION_KEYS = (
    "model", "modalities", "instructions", "voice", "input_audio_format", "output_audio_format",
    "input_audio_sampling_rate", "turn_detection", "input_audio_noise_reduction",
    "input_audio_echo_cancellation", "input_audio_transcription", "tools", "tool_choice", "parallel_tool_calls",
    "temperature", "max_response_output_tokens", "max_output_tokens", "reasoning_effort", "interim_response",
    "interim-response", "output_audio_timestamp_types", "animation", "avatar", "include", "metadata",
    "truncation_strategy", *_READ_ONLY,
)  # fmt: skip
_COMMON_TD_KEYS = ("type", "create_response", "interrupt_response", "auto_truncate", "idle_timeout_ms")
_ACOUSTIC_TD_KEYS = ("threshold", "prefix_padding_ms", "silence_duration_ms", "end_of_utterance_detection")
_TD_KEYS = {
    "server_vad": (
        *_COMMON_TD_KEYS,
        *_ACOUSTIC_TD_KEYS,
        "speech_duration_ms",
        "appended_text_after_truncation",
    ),
    "semantic_vad": (*_COMMON_TD_KEYS, "eagerness"),
    **{
        t: (
            *_COMMON_TD_KEYS,
            *_ACOUSTIC_TD_KEYS,
            "speech_duration_ms",
            "remove_filler_words",
            "appended_text_after_truncation",
            *(() if t == "azure_semantic_vad_en" else ("languages",)),
        )
        for t in AZURE_VAD_TYPES
    },
}
_MAX_MS = 60_000


class SessionError(Exception):
    """A client request is invalid; becomes an ``error`` event with these fields."""

    def __init__(
        self, code: str, message: str, param: str | None = None, error_type: str = "invalid_request_error"
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.error_type = error_type


def _invalid(param: str, value: Any, allowed: str) -> SessionError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return SessionError("invalid_value", f"invalid value for '{param}': {shown}; expected {allowed}", param)


# --- defaults ----------------------------------------------------------------------------------


def _modern(api_version: str | None) -> bool:
    """API versions from 2026-04-10 on use the larger prefix-padding defaults (dates sort as text)."""
    return api_version is None or api_version[:10] >= "2026-04-10"


#: ``turn_detection`` of a new session, as the live service reports it in ``session.created``
#: (300/200 ms: different from what a ``session.update`` asking for ``server_vad`` completes to).
def initial_turn_detection() -> dict[str, Any]:
    """The ``turn_detection`` of ``session.created`` (live: server_vad 0.5 / 300 ms / 200 ms, nulls)."""
    return {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 200,
        "create_response": True,
        "interrupt_response": True,
        "idle_timeout_ms": None,
        "speech_duration_ms": None,
        "end_of_utterance_detection": None,
        "auto_truncate": False,
        "appended_text_after_truncation": None,
    }


def default_turn_detection(td_type: str = "server_vad", api_version: str | None = None) -> dict[str, Any]:
    """The full default ``turn_detection`` object of a type (§3.6), as an update completes it.

    ``server_vad`` is reported the way the live service reports it after a ``session.update``:
    threshold 0.5, prefix padding 400 ms (300 before 2026-04-10), silence 500 ms, and ``null``
    for ``idle_timeout_ms``, ``speech_duration_ms``, ``end_of_utterance_detection`` and
    ``appended_text_after_truncation`` (the emulator then uses 200 ms minimum speech).
    """
    modern = _modern(api_version)
    if td_type == "server_vad" and api_version == "v1":  # the GA shape keeps 300/200 after an update
        return initial_turn_detection()
    if td_type == "semantic_vad":
        return {
            "type": "semantic_vad",
            "eagerness": "auto",
            "create_response": True,
            "interrupt_response": True,
            "auto_truncate": False,
        }
    if td_type == "server_vad":
        return {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": 400 if modern else 300,
            "silence_duration_ms": 500,
            "create_response": True,
            "interrupt_response": True,
            "idle_timeout_ms": None,
            "speech_duration_ms": None,
            "end_of_utterance_detection": None,
            "auto_truncate": False,
            "appended_text_after_truncation": None,
        }
    td: dict[str, Any]
    if td_type in AZURE_VAD_TYPES:
        td = {
            "type": td_type,
            "threshold": 0.5,
            "prefix_padding_ms": 420 if modern else 300,
            "silence_duration_ms": 500,
            "speech_duration_ms": 80,
            "remove_filler_words": False,
        }
    else:
        raise InvalidValue(f"unknown turn_detection type {td_type!r}")
    td.update(create_response=True, interrupt_response=True, auto_truncate=False, idle_timeout_ms=None)
    return td


def new_session(
    model: str | None,
    *,
    session_id: str,
    now_s: float,
    expires_in_s: float = DEFAULT_SESSION_MAX_S,
    api_version: str | None = None,
    agent: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The complete session reported in ``session.created``, key for key as the live service
    reports it (audio-only output, ``null`` output format, timestamp types, include and
    truncation strategy). ``temperature``, ``parallel_tool_calls``, ``metadata``,
    ``interim_response`` and ``reasoning_effort`` appear once a client sets them."""
    voice: dict[str, Any] = (
        {"type": "azure-realtime-native", "name": "ava"}
        if model == "azure-realtime"
        else {"type": "openai", "name": "alloy"}
    )
    session: dict[str, Any] = {
        "id": session_id,
        "model": model,
        "modalities": ["audio"],
        "instructions": "",
        "voice": voice,
        "input_audio_format": "pcm16",
        "output_audio_format": None,
        "input_audio_transcription": None,
        "input_audio_noise_reduction": None,
        "turn_detection": initial_turn_detection(),
        "tools": [],
        "tool_choice": "auto",
        "max_response_output_tokens": "inf",
        "expires_at": math.floor(now_s + expires_in_s),
        "object": "realtime.session",
        "input_audio_sampling_rate": 24000,
        "animation": None,
        "input_audio_echo_cancellation": None,
        "avatar": None,
        "output_audio_timestamp_types": None,
        "truncation_strategy": None,
        "include": None,
    }
    if agent is not None:
        session["agent"] = dict(agent)
    return session


def output_sample_rate(output_format: str | None) -> int:
    """Sample rate of an output audio format (``None``: the default pcm16 at 24 kHz)."""
    if output_format is None:
        return 24000
    return {"pcm16": 24000, "pcm16_16000hz": 16000, "pcm16_8000hz": 8000}.get(output_format, 8000)


# --- effective VAD parameters ------------------------------------------------------------------


@dataclass(frozen=True)
class VadConfig:
    """What the conversation needs from a ``turn_detection`` object (after defaults)."""

    type: str
    threshold: float
    prefix_padding_ms: int
    silence_duration_ms: int  # includes the end-of-utterance stand-in wait
    speech_duration_ms: int
    create_response: bool
    interrupt_response: bool
    auto_truncate: bool
    remove_filler_words: bool
    appended_text_after_truncation: str | None


def _eou_extra_ms(eou: Mapping[str, Any] | None) -> int:
    if not eou:
        return 0
    timeout_ms = eou.get("timeout_ms", 1000)
    extra = EOU_EXTRA_WAIT_MS.get(str(eou.get("threshold_level", "default")), 200)
    return int(min(extra, timeout_ms))


def vad_config(turn_detection: Mapping[str, Any] | None) -> VadConfig | None:
    """The effective VAD parameters of a validated ``turn_detection`` (``None`` = manual mode).

    ``semantic_vad`` maps ``eagerness`` to a silence window (low 1500 ms, auto/medium 800 ms,
    high 300 ms) with threshold 0.5, 300 ms prefix padding and 200 ms minimum speech.
    An ``end_of_utterance_detection`` model waits longer than the silence window by
    ``EOU_EXTRA_WAIT_MS[threshold_level]`` (low 0, default/medium 200, high 400 ms), capped by
    its ``timeout_ms``: the emulator has no semantic model, so this stands in for it.
    """
    if turn_detection is None:
        return None
    td = turn_detection
    if td["type"] == "semantic_vad":
        return VadConfig(
            type="semantic_vad",
            threshold=0.5,
            prefix_padding_ms=300,
            silence_duration_ms=SEMANTIC_VAD_SILENCE_MS[td.get("eagerness", "auto")],
            speech_duration_ms=200,
            create_response=bool(td.get("create_response", True)),
            interrupt_response=bool(td.get("interrupt_response", True)),
            auto_truncate=bool(td.get("auto_truncate", False)),
            remove_filler_words=False,
            appended_text_after_truncation=None,
        )
    base = default_turn_detection(td["type"]) if td["type"] != "server_vad" else {}

    def knob(key: str, fallback: float) -> float:
        value = td.get(key)
        if value is None:
            value = base.get(key)
        return float(fallback if value is None else value)

    return VadConfig(
        type=td["type"],
        threshold=knob("threshold", 0.5),
        prefix_padding_ms=int(knob("prefix_padding_ms", 300)),
        silence_duration_ms=int(knob("silence_duration_ms", 500))
        + _eou_extra_ms(td.get("end_of_utterance_detection")),
        # null (the live service's report) means the emulator's own 200 ms minimum speech
        speech_duration_ms=int(knob("speech_duration_ms", 200)),
        create_response=bool(td.get("create_response", True)),
        interrupt_response=bool(td.get("interrupt_response", True)),
        auto_truncate=bool(td.get("auto_truncate", False)),
        remove_filler_words=bool(td.get("remove_filler_words", False)),
        appended_text_after_truncation=td.get("appended_text_after_truncation"),
    )


# --- validators ----------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return _is_number(value) and float(value).is_integer()


def _check_keys(obj: Mapping[str, Any], allowed: Sequence[str], param: str) -> None:
    for key in obj:
        if key not in allowed:
            raise SessionError(
                "unknown_parameter",
                f"unknown parameter '{param}.{key}'; allowed: {', '.join(allowed)}",
                f"{param}.{key}",
            )


def _need_object(value: Any, param: str, nullable: bool = True) -> dict[str, Any] | None:
    if value is None and nullable:
        return None
    if not isinstance(value, dict):
        raise _invalid(param, value, "an object" + (" or null" if nullable else ""))
    return value


def _need_str(value: Any, param: str, choices: Sequence[str] | None = None) -> str:
    if not isinstance(value, str):
        raise _invalid(param, value, "a string" if choices is None else "one of " + ", ".join(choices))
    if choices is not None and value not in choices:
        raise _invalid(param, value, "one of " + ", ".join(choices))
    return value


def _need_bool(value: Any, param: str) -> bool:
    if not isinstance(value, bool):
        raise _invalid(param, value, "true or false")
    return value


def _need_number(value: Any, param: str, lo: float, hi: float, integer: bool = False) -> float:
    ok = _is_int(value) if integer else _is_number(value)
    if not ok or not lo <= value <= hi:
        kind = "an integer" if integer else "a number"
        raise _invalid(param, value, f"{kind} from {lo:g} to {hi:g}")
    return float(value)


def _need_str_list(value: Any, param: str, choices: Sequence[str] | None = None) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _invalid(param, value, "a list of strings")
    if choices is not None:
        for v in value:
            if v not in choices:
                raise _invalid(param, v, "values from " + ", ".join(choices))
    return list(value)


def _validate_voice(value: Any) -> Any:
    param = "session.voice"
    if isinstance(value, str):
        if not value:
            raise _invalid(param, value, "a voice name")
        return value
    voice = _need_object(value, param, nullable=False)
    assert voice is not None
    vtype = _need_str(voice.get("type"), f"{param}.type", tuple(VOICE_REQUIRED))
    required = VOICE_REQUIRED[vtype]
    _check_keys(voice, ("type", *required, *VOICE_OPTIONAL, "name", "endpoint_id", "model"), param)
    for key in required:
        if not isinstance(voice.get(key), str) or not voice[key]:
            raise SessionError(
                "missing_required_parameter",
                f"voice type '{vtype}' needs '{key}' (a non-empty string)",
                f"{param}.{key}",
            )
    if vtype == "openai":
        _need_str(voice["name"], f"{param}.name", OPENAI_VOICES)
    if vtype == "azure-realtime-native":
        _need_str(voice["name"], f"{param}.name", REALTIME_NATIVE_VOICES)
    if vtype in ("azure-personal", "avatar-voice-sync"):
        _need_str(voice["model"], f"{param}.model", vocabulary.PERSONAL_VOICE_MODELS)
    if "temperature" in voice:
        _need_number(voice["temperature"], f"{param}.temperature", 0.0, 1.0)
    return dict(voice)


def _validate_eou(value: Any, param: str) -> dict[str, Any] | None:
    eou = _need_object(value, param)
    if eou is None:
        return None
    _check_keys(eou, ("model", "threshold_level", "timeout_ms", "threshold", "timeout"), param)
    model = _need_str(eou.get("model"), f"{param}.model", EOU_MODELS)
    out: dict[str, Any] = {"model": model}
    if "threshold_level" in eou:
        out["threshold_level"] = _need_str(
            eou["threshold_level"], f"{param}.threshold_level", vocabulary.EOU_THRESHOLD_LEVELS
        )
    elif "threshold" in eou:  # legacy shape: a probability; reported as the default level
        _need_number(eou["threshold"], f"{param}.threshold", 0.0, 1.0)
        out["threshold_level"] = "default"
    else:
        out["threshold_level"] = "default"
    if "timeout_ms" in eou:
        out["timeout_ms"] = int(
            _need_number(eou["timeout_ms"], f"{param}.timeout_ms", 0, _MAX_MS, integer=True)
        )
    elif "timeout" in eou:  # legacy shape: seconds
        out["timeout_ms"] = round(_need_number(eou["timeout"], f"{param}.timeout", 0, _MAX_MS / 1000) * 1000)
    else:
        out["timeout_ms"] = 1000
    return out


def _validate_turn_detection(value: Any, api_version: str | None) -> dict[str, Any] | None:
    param = "session.turn_detection"
    td_in = _need_object(value, param)
    if td_in is None:
        return None
    td_type = _need_str(td_in.get("type", "server_vad"), f"{param}.type", TURN_DETECTION_TYPES)
    _check_keys(td_in, _TD_KEYS[td_type], param)
    td = default_turn_detection(td_type, api_version)
    for key, raw in td_in.items():
        p = f"{param}.{key}"
        if key == "type":
            continue
        if raw is None and key in (
            "idle_timeout_ms",
            "speech_duration_ms",
            "end_of_utterance_detection",
            "appended_text_after_truncation",
            "threshold",
            "prefix_padding_ms",
            "silence_duration_ms",
        ):
            # the live service reports these as null; a client echoing that back keeps the default
            if key in ("idle_timeout_ms", "end_of_utterance_detection", "appended_text_after_truncation"):
                td[key] = None
            continue
        if key == "idle_timeout_ms":
            td[key] = int(_need_number(raw, p, 0, 30 * _MAX_MS, integer=True))
        elif key == "threshold":
            _need_number(raw, p, 0.0, 1.0)
            td[key] = raw
        elif key in ("prefix_padding_ms", "silence_duration_ms", "speech_duration_ms"):
            td[key] = int(_need_number(raw, p, 0, _MAX_MS, integer=True))
        elif key in ("create_response", "interrupt_response", "auto_truncate", "remove_filler_words"):
            td[key] = _need_bool(raw, p)
        elif key == "end_of_utterance_detection":
            td[key] = _validate_eou(raw, p)
        elif key == "languages":
            td[key] = _need_str_list(raw, p)
        elif key == "appended_text_after_truncation":
            td[key] = _need_str(raw, p)
        elif key == "eagerness":
            td[key] = _need_str(raw, p, vocabulary.SEMANTIC_VAD_EAGERNESS)
    if td.get("auto_truncate") and not td.get("interrupt_response"):
        raise SessionError(
            "invalid_value",
            "turn_detection.auto_truncate needs interrupt_response true; set interrupt_response or auto_truncate false",
            f"{param}.auto_truncate",
        )
    return td


def _validate_transcription(value: Any) -> dict[str, Any] | None:
    param = "session.input_audio_transcription"
    tr = _need_object(value, param)
    if tr is None:
        return None
    _check_keys(tr, ("model", "language", "custom_speech", "phrase_list", "prompt"), param)
    _need_str(tr.get("model"), f"{param}.model", TRANSCRIPTION_MODELS)
    if "language" in tr and tr["language"] is not None:
        _need_str(tr["language"], f"{param}.language")
    if "phrase_list" in tr and tr["phrase_list"] is not None:
        _need_str_list(tr["phrase_list"], f"{param}.phrase_list")
    if "prompt" in tr and tr["prompt"] is not None:
        _need_str(tr["prompt"], f"{param}.prompt")
    if "custom_speech" in tr and tr["custom_speech"] is not None:
        _need_object(tr["custom_speech"], f"{param}.custom_speech")
    # reported complete, with nulls, as the live service does
    out: dict[str, Any] = {"model": tr["model"], "language": None, "prompt": None, "custom_speech": None}
    out["phrase_list"] = None
    out.update(tr)
    return out


def _validate_echo_cancellation(
    value: Any, input_format: str, features: Sequence[str]
) -> dict[str, Any] | None:
    param = "session.input_audio_echo_cancellation"
    ec = _need_object(value, param)
    if ec is None:
        return None
    _check_keys(ec, ("type", "reference_source", "channels"), param)
    _need_str(ec.get("type"), f"{param}.type", vocabulary.ECHO_CANCELLATION_TYPES)
    source = _need_str(
        ec.get("reference_source", "server"), f"{param}.reference_source", vocabulary.ECHO_REFERENCE_SOURCES
    )
    channels = int(_need_number(ec.get("channels", 1), f"{param}.channels", 1, 2, integer=True))
    if source == "server" and channels == 2:
        raise SessionError(
            "invalid_ec_channels_requires_client",
            "echo cancellation with 2 channels needs reference_source 'client'",
            f"{param}.channels",
        )
    if source == "client" and channels == 1:
        raise SessionError(
            "invalid_ec_reference_channels",
            "echo cancellation with reference_source 'client' needs channels 2 (mic + reference interleaved)",
            f"{param}.channels",
        )
    if source == "client":
        if input_format != "pcm16":
            raise _invalid(f"{param}.reference_source", source, "'server' unless input_audio_format is pcm16")
        if "client_ec_reference:true" not in features:
            raise SessionError(
                "feature_not_enabled",
                "client echo reference needs the query parameter features=client_ec_reference:true",
                f"{param}.reference_source",
            )
    return {"type": "server_echo_cancellation", "reference_source": source, "channels": channels}


def _validate_interim(value: Any) -> dict[str, Any] | None:
    param = "session.interim_response"
    ir = _need_object(value, param)
    if ir is None:
        return None
    out = dict(ir)
    raw_type = ir.get("type")
    itype = raw_type.replace("-", "_") if isinstance(raw_type, str) else raw_type
    out["type"] = _need_str(itype, f"{param}.type", ("static_interim_response", "llm_interim_response"))
    common = ("type", "triggers", "latency_threshold_ms")
    extra = (
        ("texts",)
        if out["type"] == "static_interim_response"
        else ("model", "instructions", "max_completion_tokens")
    )
    _check_keys(ir, (*common, *extra), param)
    if "triggers" in ir:
        _need_str_list(ir["triggers"], f"{param}.triggers", ("latency", "tool"))
    if "latency_threshold_ms" in ir:
        _need_number(ir["latency_threshold_ms"], f"{param}.latency_threshold_ms", 0, _MAX_MS, integer=True)
    if "texts" in ir:
        _need_str_list(ir["texts"], f"{param}.texts")
    if "max_completion_tokens" in ir:
        _need_number(ir["max_completion_tokens"], f"{param}.max_completion_tokens", 1, 4096, integer=True)
    return out


def _validate_tools(value: Any) -> list[dict[str, Any]]:
    param = "session.tools"
    if not isinstance(value, list):
        raise _invalid(param, value, "a list of tools")
    for i, tool in enumerate(value):
        p = f"{param}[{i}]"
        _need_object(tool, p, nullable=False)
        ttype = _need_str(tool.get("type"), f"{p}.type", ("function", "mcp", "foundry_agent"))
        if ttype == "function":
            _need_str(tool.get("name"), f"{p}.name")
            if "parameters" in tool:
                _need_object(tool["parameters"], f"{p}.parameters")
        elif ttype == "mcp":
            _need_str(tool.get("server_label"), f"{p}.server_label")
            _need_str(tool.get("server_url"), f"{p}.server_url")
        else:  # a Foundry agent: kept and reported as the service does; the emulator has none to call
            for key in ("agent_name", "project_name"):
                if key in tool:
                    _need_str(tool[key], f"{p}.{key}")
    return copy.deepcopy(value)


def _validate_tool_choice(value: Any) -> Any:
    param = "session.tool_choice"
    if isinstance(value, str):
        if not value:
            raise _invalid(param, value, "auto, none, required, a function name or {type: function, name}")
        return value
    tc = _need_object(value, param, nullable=False)
    assert tc is not None
    _need_str(tc.get("type"), f"{param}.type", ("function",))
    _need_str(tc.get("name"), f"{param}.name")
    return dict(tc)


def validate_max_tokens(value: Any, param: str) -> int | str:
    """``"inf"`` or an integer from 1 to 4096."""
    if value == "inf":
        return "inf"
    if not _is_int(value) or not 1 <= value <= 4096:
        raise _invalid(param, value, 'an integer from 1 to 4096 or "inf"')
    return int(value)


def validate_metadata(value: Any, param: str) -> dict[str, str]:
    """At most 16 string pairs, keys up to 64 and values up to 512 characters."""
    md = _need_object(value, param)
    if md is None:
        return {}
    if len(md) > 16:
        raise _invalid(param, f"{len(md)} entries", "at most 16 entries")
    for k, v in md.items():
        if len(k) > 64 or not isinstance(v, str) or len(v) > 512:
            raise _invalid(f"{param}.{k}", v, "a string key up to 64 and a string value up to 512 characters")
    return dict(md)


def validate_modalities(value: Any, param: str) -> list[str]:
    """A non-empty subset of text/audio/animation/avatar (``["audio"]`` is the service's default).

    Reported in the client's order (the live service is not consistent: the same
    ``["text", "audio"]`` came back as ``["audio", "text"]`` on one connection and unchanged on another).
    """
    mods = _need_str_list(value, param, MODALITIES)
    if not mods:
        raise _invalid(param, value, "a non-empty list such as ['audio'], ['text', 'audio'] or ['text']")
    if "avatar" in mods and "audio" not in mods:
        raise _invalid(param, value, "['text', 'audio', 'avatar'] for avatar output")
    return list(dict.fromkeys(mods))


def validate_output_format(value: Any, param: str) -> str | None:
    """An output format name; the legacy hyphenated rates are reported with underscores.

    ``None`` (the live service's ``session.created`` value) means the default, pcm16 at 24 kHz."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.replace("-", "_")
    return _need_str(value, param, OUTPUT_FORMATS)


# --- merge -----------------------------------------------------------------------------------


def apply_session_update(
    current: Mapping[str, Any],
    update: Any,
    *,
    audio_appended: bool = False,
    audio_produced: bool = False,
    api_version: str | None = None,
    features: Sequence[str] = (),
) -> dict[str, Any]:
    """Validate ``update`` (the ``session`` of a ``session.update``) and merge it into ``current``.

    Returns the new full session; raises :class:`SessionError` and leaves ``current``
    untouched when anything is invalid.
    """
    if not isinstance(update, dict):
        raise _invalid("session", update, "an object")
    new = copy.deepcopy(dict(current))
    upd = dict(update)
    _check_keys(upd, _SESSION_KEYS, "session")
    # aliases first, so a later check sees the canonical names
    if "max_output_tokens" in upd:
        if (
            "max_response_output_tokens" in upd
            and upd["max_response_output_tokens"] != upd["max_output_tokens"]
        ):
            raise SessionError(
                "invalid_value",
                "max_output_tokens and max_response_output_tokens disagree; send one of them",
                "session.max_output_tokens",
            )
        upd["max_response_output_tokens"] = upd.pop("max_output_tokens")
    if "interim-response" in upd:
        upd["interim_response"] = upd.pop("interim-response")
    for key in _READ_ONLY:  # the server owns these; a client echoing a whole session is fine
        upd.pop(key, None)

    if "model" in upd and upd["model"] != current.get("model"):
        raise SessionError(
            "cannot_update_model",
            f"the model cannot be changed after connecting (it is {current.get('model')!r}); open a new session",
            "session.model",
        )
    upd.pop("model", None)

    if "modalities" in upd:
        new["modalities"] = validate_modalities(upd["modalities"], "session.modalities")
    if "instructions" in upd:
        new["instructions"] = (
            "" if upd["instructions"] is None else _need_str(upd["instructions"], "session.instructions")
        )
    if "voice" in upd:
        voice = _validate_voice(upd["voice"])
        if audio_produced and voice != current.get("voice"):
            raise SessionError(
                "cannot_update_voice",
                "the voice cannot be changed after the assistant has produced audio in this session",
                "session.voice",
            )
        new["voice"] = voice

    # input audio: format, rate and echo cancellation are fixed once audio was appended
    fixed_after_audio = ("input_audio_format", "input_audio_sampling_rate", "input_audio_echo_cancellation")
    if "input_audio_format" in upd:
        fmt = _need_str(upd["input_audio_format"], "session.input_audio_format", INPUT_FORMATS)
        if fmt != current.get("input_audio_format") and "input_audio_sampling_rate" not in upd:
            new["input_audio_sampling_rate"] = 24000 if fmt == "pcm16" else 8000
        new["input_audio_format"] = fmt
    if "input_audio_sampling_rate" in upd:
        rates = PCM16_INPUT_RATES if new["input_audio_format"] == "pcm16" else (8000,)
        rate = upd["input_audio_sampling_rate"]
        if not _is_int(rate) or int(rate) not in rates:
            raise _invalid(
                "session.input_audio_sampling_rate",
                rate,
                " or ".join(str(r) for r in rates) + f" for {new['input_audio_format']}",
            )
        new["input_audio_sampling_rate"] = int(rate)
    if "input_audio_echo_cancellation" in upd:
        new["input_audio_echo_cancellation"] = _validate_echo_cancellation(
            upd["input_audio_echo_cancellation"], new["input_audio_format"], features
        )
    if audio_appended:
        for key in fixed_after_audio:
            if key in upd and new.get(key) != current.get(key):
                raise SessionError(
                    "cannot_update_input_audio",
                    f"'{key}' cannot be changed after input audio was appended; set it before streaming audio",
                    f"session.{key}",
                )
    ec = new.get("input_audio_echo_cancellation")
    if ec and ec["reference_source"] == "client" and new["input_audio_format"] != "pcm16":
        raise _invalid(
            "session.input_audio_format", new["input_audio_format"], "pcm16 with client echo reference"
        )

    if "output_audio_format" in upd:
        new["output_audio_format"] = validate_output_format(
            upd["output_audio_format"], "session.output_audio_format"
        )
    if "turn_detection" in upd:
        new["turn_detection"] = _validate_turn_detection(upd["turn_detection"], api_version)
    if "input_audio_noise_reduction" in upd:
        nr = _need_object(upd["input_audio_noise_reduction"], "session.input_audio_noise_reduction")
        if nr is not None:
            _check_keys(nr, ("type",), "session.input_audio_noise_reduction")
            _need_str(nr.get("type"), "session.input_audio_noise_reduction.type", NOISE_REDUCTION_TYPES)
            nr = dict(nr)
        new["input_audio_noise_reduction"] = nr
    if "input_audio_transcription" in upd:
        new["input_audio_transcription"] = _validate_transcription(upd["input_audio_transcription"])
    if "tools" in upd:
        new["tools"] = [] if upd["tools"] is None else _validate_tools(upd["tools"])
    if "tool_choice" in upd:
        new["tool_choice"] = (
            "auto" if upd["tool_choice"] is None else _validate_tool_choice(upd["tool_choice"])
        )
    if "parallel_tool_calls" in upd:
        new["parallel_tool_calls"] = _need_bool(upd["parallel_tool_calls"], "session.parallel_tool_calls")
    if "temperature" in upd:
        _need_number(upd["temperature"], "session.temperature", 0.0, 2.0)
        new["temperature"] = upd["temperature"]
    if "max_response_output_tokens" in upd:
        new["max_response_output_tokens"] = validate_max_tokens(
            upd["max_response_output_tokens"], "session.max_response_output_tokens"
        )
    if "reasoning_effort" in upd:
        new["reasoning_effort"] = (
            None
            if upd["reasoning_effort"] is None
            else _need_str(upd["reasoning_effort"], "session.reasoning_effort", REASONING_EFFORTS)
        )
    if "interim_response" in upd:
        new["interim_response"] = _validate_interim(upd["interim_response"])
    if "output_audio_timestamp_types" in upd:
        value = upd["output_audio_timestamp_types"]
        new["output_audio_timestamp_types"] = (
            None
            if value is None
            else _need_str_list(value, "session.output_audio_timestamp_types", ("word",))
        )
    if "animation" in upd:
        anim = _need_object(upd["animation"], "session.animation")
        if anim is not None:
            _check_keys(anim, ("model_name", "outputs"), "session.animation")
            anim = {
                "model_name": _need_str(anim.get("model_name", "default"), "session.animation.model_name"),
                "outputs": _need_str_list(
                    anim.get("outputs", ["blendshapes"]),
                    "session.animation.outputs",
                    ("blendshapes", "viseme_id"),
                ),
            }
        new["animation"] = anim
    if "avatar" in upd:
        avatar = _need_object(upd["avatar"], "session.avatar")
        new["avatar"] = copy.deepcopy(avatar)
    if "include" in upd:
        value = upd["include"]
        new["include"] = None if value is None else _need_str_list(value, "session.include", INCLUDE_OPTIONS)
    if "metadata" in upd:
        new["metadata"] = validate_metadata(upd["metadata"], "session.metadata")
    if "truncation_strategy" in upd:
        ts = upd["truncation_strategy"]
        if ts is not None and not isinstance(ts, (str, dict)):
            raise _invalid("session.truncation_strategy", ts, "null, 'auto', 'disabled' or an object")
        new["truncation_strategy"] = copy.deepcopy(ts)
    return new
