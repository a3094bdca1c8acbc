"""The Voice Live session configuration: an immutable, typed, validated model of the session object.

This is the request side of ``session.update`` (reference §3.4–3.6). It is pure: no I/O, no
environment, no clocks.

* ``SessionConfig.from_dict(wire)`` / ``.to_dict()`` round-trip a wire dict losslessly: keys this
  module does not know are kept in ``extra`` at every nesting level, and an explicit JSON ``null``
  (``None`` here, which disables a feature) stays distinct from a key that is not set (:data:`UNSET`,
  omitted from the wire). Two spellings are normalised on the way in: ``max_output_tokens`` (the
  SDK's response-level name) becomes ``max_response_output_tokens``, and hyphenated
  ``interim-response`` / ``static-interim-response`` / ``llm-interim-response`` become underscores.
* Every value is checked on construction; a bad one raises :class:`~voicelive_nb.errors.ConfigError`
  naming the dotted field, the value and what is allowed.
* ``replace`` / ``with_changes`` / ``merge_update`` return new validated configs; ``diff`` gives the
  minimal ``session.update`` payload between two configs.
* :func:`field_specs` describes every editable field as data (kind, default, range, choices, and
  which ``type`` of the enclosing object it applies to) so that forms can be generated from it.

Ranges and limits that the reference does not fix are chosen generously and stated here:
turn-detection and end-of-utterance durations are integers 0–10,000 ms, the legacy EOU ``timeout``
is 0–10 s, the interim-response latency threshold 0–60,000 ms.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from dataclasses import replace as _dc_replace
from types import MappingProxyType
from typing import Any, ClassVar, Final, Literal, TypeAlias, TypeVar, cast

from ..errors import ConfigError
from . import vocabulary

__all__ = [
    "CLIENT_EC_FEATURE",
    "ECHO_ONLY_KEYS",
    "FIELD_SPECS",
    "SERVER_ONLY_KEYS",
    "UNSET",
    "Animation",
    "Avatar",
    "EchoCancellation",
    "EndOfUtteranceDetection",
    "FieldSpec",
    "FoundryAgentTool",
    "FunctionTool",
    "InputTranscription",
    "InterimResponse",
    "McpTool",
    "NoiseReduction",
    "SessionConfig",
    "TurnDetection",
    "Unset",
    "Voice",
    "client_echo_reference_problem",
    "config_warnings",
    "field_spec",
    "field_specs",
]


# --------------------------------------------------------------------------------------------
# "not set" sentinel and JSON helpers
# --------------------------------------------------------------------------------------------


class _UnsetType(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = _UnsetType.UNSET
"""A field that is not set: omitted from the wire (unlike ``None``, which is sent as ``null``)."""

Unset = Literal[_UnsetType.UNSET]
_T = TypeVar("_T")
Opt: TypeAlias = _T | Unset | None


def _freeze(value: Any) -> Any:
    """Deep read-only copy of a JSON value: objects become mapping proxies, arrays tuples."""
    if isinstance(value, _WireObject):
        return value
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items() if v is not UNSET})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """Plain JSON-ready copy (dicts and lists) of a frozen value or config object."""
    if isinstance(value, _WireObject):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items() if v is not UNSET}
    if isinstance(value, (list, tuple)):
        return [_thaw(v) for v in value]
    return value


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return not isinstance(value, float) or math.isfinite(value)


def _same(a: Any, b: Any) -> bool:
    """JSON equality that does not confuse ``true`` with ``1``."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


# --------------------------------------------------------------------------------------------
# Vocabulary (reference §3.3–3.6)
# --------------------------------------------------------------------------------------------

# the values themselves are data in .vocabulary, shared with the emulator's validation
TURN_DETECTION_TYPES: Final = vocabulary.TURN_DETECTION_TYPES
_AZURE_VAD: Final = vocabulary.AZURE_VAD_TYPES
_CLASSIC_VAD: Final = ("server_vad", *_AZURE_VAD)
_MULTILINGUAL_VAD_LANGUAGES: Final = vocabulary.MULTILINGUAL_VAD_LANGUAGES
VOICE_TYPES: Final = vocabulary.VOICE_TYPES
_AZURE_VOICES: Final = vocabulary.AZURE_VOICE_TYPES
_NAMED_VOICES: Final = vocabulary.NAMED_VOICE_TYPES
OPENAI_VOICES: Final = vocabulary.OPENAI_VOICES
REALTIME_NATIVE_VOICES: Final = vocabulary.REALTIME_NATIVE_VOICES
PERSONAL_VOICE_MODELS: Final = vocabulary.PERSONAL_VOICE_MODELS
_VOICE_REQUIRED: Final = vocabulary.VOICE_REQUIRED
EOU_MODELS: Final = vocabulary.EOU_MODELS
TRANSCRIPTION_MODELS: Final = vocabulary.TRANSCRIPTION_MODELS
_OPENAI_TRANSCRIBERS: Final = vocabulary.OPENAI_TRANSCRIBERS
INPUT_AUDIO_FORMATS: Final = vocabulary.INPUT_AUDIO_FORMATS
OUTPUT_AUDIO_FORMATS: Final = vocabulary.OUTPUT_AUDIO_FORMATS
SAMPLING_RATES: Final = vocabulary.SAMPLING_RATES
MODALITIES: Final = vocabulary.MODALITIES
_G711: Final = vocabulary.G711_FORMATS
_OUTPUT_RATES: Final = vocabulary.OUTPUT_FORMAT_RATES
_INTERIM_TYPES: Final = vocabulary.INTERIM_RESPONSE_TYPES
_ALIASES: Final[Mapping[str, str]] = {
    "max_output_tokens": "max_response_output_tokens",
    "interim-response": "interim_response",
}
_TOOL_CHOICE_ALLOWED: Final = "auto, none, required, a function name, or {type: function, name}"
_METADATA_MAX_PAIRS: Final = 16
_METADATA_MAX_KEY: Final = 64
_METADATA_MAX_VALUE: Final = 512


# --------------------------------------------------------------------------------------------
# Field specifications: the data that drives validation and generated forms
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One editable field of the session, as data (no widgets).

    ``kind`` is one of ``float``, ``int``, ``bool``, ``str`` (one line), ``text`` (multi-line),
    ``choice`` (closed set: ``choices``), ``list`` (of strings; when ``choices`` is non-empty the
    items must come from it) or ``object`` (a structured JSON value, edited whole).
    For ``str``, ``choices`` are suggestions only; for ``int``, extra literal values accepted besides
    the numeric range (``"inf"`` for the token limit).
    ``minimum`` / ``maximum`` / ``step`` apply to numeric kinds. ``default`` is the service's documented
    default when the field is omitted (``UNSET`` if none is documented); ``type_defaults`` gives it per
    value of the discriminator where it differs. ``applies_to`` lists the values of ``discriminator``
    (a dotted path, e.g. ``turn_detection.type``) for which the field is valid; empty means always.
    ``nullable``: an explicit ``null`` is meaningful (it disables the feature). ``required``: must be
    present whenever the enclosing object is.
    """

    path: str
    kind: str
    doc: str
    default: Any = UNSET
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] = ()
    applies_to: tuple[str, ...] = ()
    discriminator: str | None = None
    type_defaults: Mapping[str, Any] = field(default_factory=dict)
    nullable: bool = False
    required: bool = False

    def check(self, value: Any) -> None:
        """Raise a :class:`ConfigError` naming the field and the allowed values unless ``value`` fits."""
        _check(self, value)

    @property
    def allowed(self) -> str:
        """Human-readable description of the allowed values (used in error messages)."""
        if self.kind == "float":
            return f"{self.minimum!r} to {self.maximum!r}"
        if self.kind == "int":
            text = f"integers {self.minimum!r} to {self.maximum!r}"
            return text + "".join(f" or {c!r}" for c in self.choices)
        if self.kind == "choice":
            return "one of: " + ", ".join(str(c) for c in self.choices)
        if self.kind == "list":
            if self.choices:
                return "a list of distinct values from: " + ", ".join(self.choices)
            return "a list of strings"
        if self.kind == "bool":
            return "true or false"
        if self.kind in ("str", "text"):
            return "a non-empty string" if self.required else "a string"
        return "a JSON object"


def _td(name: str, kind: str, doc: str, applies_to: tuple[str, ...] = (), **kw: Any) -> FieldSpec:
    return FieldSpec(
        f"turn_detection.{name}", kind, doc, applies_to=applies_to, discriminator="turn_detection.type", **kw
    )


def _voice(
    name: str, kind: str, doc: str, applies_to: tuple[str, ...] = _AZURE_VOICES, **kw: Any
) -> FieldSpec:
    return FieldSpec(f"voice.{name}", kind, doc, applies_to=applies_to, discriminator="voice.type", **kw)


_EOU = "turn_detection.end_of_utterance_detection"
_TR = "input_audio_transcription"
_IR = "interim_response"
_MS: Final[dict[str, Any]] = {"minimum": 0, "maximum": 10_000, "step": 10}

FIELD_SPECS: Final[tuple[FieldSpec, ...]] = (
    FieldSpec("model", "str", "model or deployment name; fixed once connected"),
    FieldSpec(
        "modalities",
        "list",
        "output modalities (avatar needs text and audio)",
        ("text", "audio"),
        choices=MODALITIES,
    ),
    FieldSpec("instructions", "text", "system prompt; an empty string clears it", ""),
    FieldSpec("voice", "object", "the assistant voice: a bare OpenAI voice name or a voice object"),
    _voice("type", "choice", "voice family", applies_to=(), choices=VOICE_TYPES, required=True),
    _voice(
        "name",
        "str",
        "voice name, e.g. alloy, en-US-AvaNeural, en-US-Ava:DragonHDLatestNeural, ava",
        applies_to=_NAMED_VOICES,
        choices=OPENAI_VOICES + REALTIME_NATIVE_VOICES,
    ),
    _voice("endpoint_id", "str", "custom voice deployment id", applies_to=("azure-custom",)),
    _voice(
        "model",
        "choice",
        "neural model of a personal voice",
        applies_to=("azure-personal", "avatar-voice-sync"),
        choices=PERSONAL_VOICE_MODELS,
    ),
    _voice("temperature", "float", "voice variability (HD voices)", minimum=0.0, maximum=1.0, step=0.05),
    _voice("custom_lexicon_url", "str", "URL of a custom pronunciation lexicon"),
    _voice("custom_text_normalization_url", "str", "URL of a custom text normalization endpoint"),
    _voice("prefer_locales", "list", "preferred locales (BCP-47) that shape accents"),
    _voice("locale", "str", "force one output locale (BCP-47)"),
    _voice("style", "str", "speaking style, e.g. cheerful"),
    _voice("pitch", "str", "SSML prosody pitch, e.g. +5% or high"),
    _voice("rate", "str", "SSML prosody rate, e.g. 1.2 or fast"),
    _voice("volume", "str", "SSML prosody volume, e.g. +10% or loud"),
    FieldSpec(
        "input_audio_format", "choice", "format of appended audio", "pcm16", choices=INPUT_AUDIO_FORMATS
    ),
    FieldSpec(
        "output_audio_format", "choice", "format of response audio", "pcm16", choices=OUTPUT_AUDIO_FORMATS
    ),
    FieldSpec(
        "input_audio_sampling_rate",
        "choice",
        "sample rate of pcm16 input in Hz; cannot change mid-session",
        24000,
        choices=SAMPLING_RATES,
    ),
    FieldSpec(
        "turn_detection", "object", "voice activity detection; null means manual commit", nullable=True
    ),
    _td("type", "choice", "turn detection algorithm", choices=TURN_DETECTION_TYPES, required=True),
    _td(
        "threshold",
        "float",
        "speech probability needed to start a turn",
        _CLASSIC_VAD,
        default=0.5,
        minimum=0.0,
        maximum=1.0,
        step=0.01,
    ),
    _td(
        "prefix_padding_ms",
        "int",
        "audio kept before detected speech, ms",
        _CLASSIC_VAD,
        type_defaults=dict.fromkeys(_AZURE_VAD, 420) | {"server_vad": 400},
        **_MS,
    ),
    _td("silence_duration_ms", "int", "silence that ends a turn, ms", _CLASSIC_VAD, default=500, **_MS),
    _td(
        "speech_duration_ms",
        "int",
        "minimum speech that starts a turn, ms",
        _CLASSIC_VAD,
        type_defaults=dict.fromkeys(_AZURE_VAD, 80) | {"server_vad": 200},
        **_MS,
    ),
    _td("remove_filler_words", "bool", "fillers (um, uh) do not barge in", _AZURE_VAD, default=False),
    _td(
        "languages",
        "list",
        "speech languages (BCP-47) of: en, es, fr, it, de, ja, pt, zh, ko, hi",
        ("azure_semantic_vad", "azure_semantic_vad_multilingual"),
    ),
    _td(
        "eagerness",
        "choice",
        "how soon the model ends the turn",
        ("semantic_vad",),
        default="auto",
        choices=vocabulary.SEMANTIC_VAD_EAGERNESS,
    ),
    _td("create_response", "bool", "start a response when a turn ends", default=True),
    _td("interrupt_response", "bool", "user speech cancels the current response", default=True),
    _td("auto_truncate", "bool", "server truncates interrupted audio itself", default=False),
    _td("appended_text_after_truncation", "str", "marker appended to truncated assistant text", _AZURE_VAD),
    _td(
        "end_of_utterance_detection",
        "object",
        "semantic end-of-utterance model; null disables",
        _CLASSIC_VAD,
        nullable=True,
    ),
    FieldSpec(f"{_EOU}.model", "choice", "end-of-utterance model", choices=EOU_MODELS, required=True),
    FieldSpec(
        f"{_EOU}.threshold_level",
        "choice",
        "lower ends the utterance more readily",
        "default",
        choices=vocabulary.EOU_THRESHOLD_LEVELS,
    ),
    # an int field in forms; a number in the reference (1000.0 is accepted): EndOfUtteranceDetection
    FieldSpec(f"{_EOU}.timeout_ms", "int", "longest wait for more speech, ms", 1000, **_MS),
    FieldSpec(
        f"{_EOU}.threshold",
        "float",
        "legacy shape: decision threshold",
        minimum=0.0,
        maximum=1.0,
        step=0.01,
    ),
    FieldSpec(
        f"{_EOU}.timeout", "float", "legacy shape: longest wait, seconds", minimum=0, maximum=10, step=0.1
    ),
    FieldSpec("input_audio_noise_reduction", "object", "input noise reduction; null disables", nullable=True),
    FieldSpec(
        "input_audio_noise_reduction.type",
        "choice",
        "noise reduction model (near/far_field: gpt-realtime only)",
        choices=vocabulary.NOISE_REDUCTION_TYPES,
        required=True,
    ),
    FieldSpec(
        "input_audio_echo_cancellation", "object", "server echo cancellation; null disables", nullable=True
    ),
    FieldSpec(
        "input_audio_echo_cancellation.type",
        "choice",
        "echo cancellation model",
        "server_echo_cancellation",
        choices=vocabulary.ECHO_CANCELLATION_TYPES,
        required=True,
    ),
    FieldSpec(
        "input_audio_echo_cancellation.reference_source",
        "choice",
        "echo reference: what the server played, or a second input channel",
        "server",
        choices=vocabulary.ECHO_REFERENCE_SOURCES,
    ),
    FieldSpec(
        "input_audio_echo_cancellation.channels",
        "choice",
        "input channels: 1 with server reference, 2 (mic+ref) with client",
        1,
        choices=(1, 2),
    ),
    FieldSpec(_TR, "object", "transcription of user audio; null disables", nullable=True),
    FieldSpec(f"{_TR}.model", "choice", "transcription model", choices=TRANSCRIPTION_MODELS, required=True),
    FieldSpec(f"{_TR}.language", "str", "language (BCP-47, ISO-639-1, or a comma list to auto-detect)"),
    FieldSpec(
        f"{_TR}.custom_speech",
        "object",
        "custom speech endpoints by locale",
        applies_to=("azure-speech",),
        discriminator=f"{_TR}.model",
    ),
    FieldSpec(
        f"{_TR}.phrase_list",
        "list",
        "phrases that bias recognition",
        applies_to=("azure-speech", "mai-transcribe", "mai-transcribe-1", "mai-transcribe-2"),
        discriminator=f"{_TR}.model",
    ),
    FieldSpec(
        f"{_TR}.prompt",
        "text",
        "prompt that guides an OpenAI transcription model",
        applies_to=_OPENAI_TRANSCRIBERS,
        discriminator=f"{_TR}.model",
    ),
    FieldSpec("tools", "object", "list of tools: {type: function | mcp | foundry_agent, ...}", ()),
    FieldSpec(
        "tool_choice",
        "str",
        "auto, none, required, a function name, or {type: function, name}",
        "auto",
        choices=("auto", "none", "required"),
    ),
    FieldSpec("parallel_tool_calls", "bool", "allow several tool calls in one response", True),
    FieldSpec(
        "temperature", "float", "sampling temperature of the model", 0.8, minimum=0.0, maximum=2.0, step=0.05
    ),
    FieldSpec(
        "max_response_output_tokens",
        "int",
        "token limit of one response",
        "inf",
        minimum=1,
        maximum=4096,
        step=1,
        choices=("inf",),
    ),
    FieldSpec(
        "reasoning_effort",
        "choice",
        "reasoning models only",
        choices=vocabulary.REASONING_EFFORTS,
    ),
    FieldSpec(_IR, "object", "filler speech while the answer is slow; null disables", nullable=True),
    FieldSpec(
        f"{_IR}.type",
        "choice",
        "static texts or an LLM-written filler",
        choices=_INTERIM_TYPES,
        required=True,
    ),
    FieldSpec(f"{_IR}.triggers", "list", "what triggers a filler", ("latency",), choices=("latency", "tool")),
    FieldSpec(
        f"{_IR}.latency_threshold_ms",
        "int",
        "latency before a filler is spoken, ms",
        2000,
        minimum=0,
        maximum=60_000,
        step=100,
    ),
    FieldSpec(
        f"{_IR}.texts",
        "list",
        "filler texts to pick from",
        applies_to=("static_interim_response",),
        discriminator=f"{_IR}.type",
    ),
    FieldSpec(
        f"{_IR}.model",
        "str",
        "model that writes the filler",
        "gpt-4.1-mini",
        applies_to=("llm_interim_response",),
        discriminator=f"{_IR}.type",
    ),
    FieldSpec(
        f"{_IR}.instructions",
        "text",
        "instructions for the filler model",
        applies_to=("llm_interim_response",),
        discriminator=f"{_IR}.type",
    ),
    FieldSpec(
        f"{_IR}.max_completion_tokens",
        "int",
        "token limit of the filler",
        50,
        minimum=1,
        maximum=4096,
        step=1,
        applies_to=("llm_interim_response",),
        discriminator=f"{_IR}.type",
    ),
    FieldSpec("output_audio_timestamp_types", "list", "word timestamps for Azure voices", choices=("word",)),
    FieldSpec("animation", "object", "viseme / blendshape output; null disables", nullable=True),
    FieldSpec("animation.model_name", "str", "animation model", "default"),
    FieldSpec(
        "animation.outputs",
        "list",
        "animation data to send",
        ("blendshapes",),
        choices=("blendshapes", "viseme_id"),
    ),
    FieldSpec("avatar", "object", "video or photo avatar; null disables", nullable=True),
    FieldSpec(
        "avatar.type", "choice", "avatar kind", "video-avatar", choices=("video-avatar", "photo-avatar")
    ),
    FieldSpec("avatar.character", "str", "avatar character, e.g. lisa", required=True),
    FieldSpec("avatar.style", "str", "avatar style, e.g. casual-sitting"),
    FieldSpec("avatar.customized", "bool", "a custom avatar", False),
    FieldSpec(
        "avatar.model",
        "choice",
        "photo avatar base model",
        choices=("vasa-1",),
        applies_to=("photo-avatar",),
        discriminator="avatar.type",
    ),
    FieldSpec(
        "avatar.output_protocol",
        "choice",
        "how video is delivered",
        "webrtc",
        choices=("webrtc", "websocket"),
    ),
    FieldSpec("avatar.output_audit_audio", "bool", "forward audit audio over the WebSocket", False),
    FieldSpec("avatar.ice_servers", "object", "list of ICE servers {urls, username?, credential?}"),
    FieldSpec("avatar.video", "object", "video parameters (bitrate, codec, crop, resolution, background)"),
    FieldSpec("avatar.scene", "object", "zoom, position, rotation and amplitude of the avatar"),
    FieldSpec(
        "include",
        "list",
        "extra data in server events",
        choices=vocabulary.INCLUDE_OPTIONS,
    ),
    FieldSpec("metadata", "object", "string pairs for logs: at most 16, keys ≤ 64 chars, values ≤ 512"),
)

# Tool fields are validated from specs too, but tools are edited as one JSON value in forms.
_TOOL_SPECS: Final = (
    FieldSpec("tools.name", "str", "function name", required=True),
    FieldSpec("tools.description", "text", "what the function does"),
    FieldSpec("tools.parameters", "object", "JSON Schema of the arguments"),
    FieldSpec("tools.server_label", "str", "MCP server label", required=True),
    FieldSpec("tools.server_url", "str", "MCP server URL", required=True),
    FieldSpec("tools.authorization", "str", "MCP authorization header value"),
    FieldSpec("tools.headers", "object", "extra HTTP headers for the MCP server"),
    FieldSpec("tools.allowed_tools", "list", "MCP tools the model may call"),
    FieldSpec("tools.require_approval", "object", "never, always, or {never: [...], always: [...]}"),
    FieldSpec("tools.agent_name", "str", "Foundry agent name", required=True),
    FieldSpec("tools.project_name", "str", "Foundry project name", required=True),
    FieldSpec("tools.agent_version", "str", "Foundry agent version"),
    FieldSpec("tools.client_id", "str", "managed identity client id used to call the agent"),
    FieldSpec("tools.foundry_resource_override", "str", "Foundry resource hosting the agent"),
    FieldSpec(
        "tools.agent_context_type",
        "choice",
        "what the agent sees of the conversation",
        choices=("no_context", "agent_context"),
    ),
    FieldSpec("tools.return_agent_response_directly", "bool", "speak the agent's answer as it is"),
)
_SPECS: Final[Mapping[str, FieldSpec]] = {s.path: s for s in FIELD_SPECS + _TOOL_SPECS}


def field_specs() -> tuple[FieldSpec, ...]:
    """Every editable field of the session, in display order."""
    return FIELD_SPECS


def field_spec(path: str) -> FieldSpec:
    """The spec of one dotted path, e.g. ``turn_detection.threshold``."""
    try:
        return _SPECS[path]
    except KeyError:
        raise ConfigError(path, path, "a known field path (see field_specs())") from None


def _check(spec: FieldSpec, value: Any) -> None:
    kind = spec.kind
    if kind in ("str", "text"):
        ok = isinstance(value, str) and (value != "" or not spec.required)
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "float":
        ok = _is_number(value) and cast(float, spec.minimum) <= value <= cast(float, spec.maximum)
    elif kind == "int":
        in_range = isinstance(value, int) and not isinstance(value, bool)
        in_range = in_range and cast(float, spec.minimum) <= value <= cast(float, spec.maximum)
        ok = in_range or (isinstance(value, str) and value in spec.choices)
    elif kind == "choice":
        ok = not isinstance(value, (bool, float)) and value in spec.choices
    elif kind == "list":
        ok = isinstance(value, tuple) and all(isinstance(v, str) for v in value)
        if ok and spec.choices:
            ok = all(v in spec.choices for v in value) and len(set(value)) == len(value)
    else:
        ok = isinstance(value, Mapping)
    if not ok:
        raise ConfigError(spec.path, _thaw(value), spec.allowed)


def _missing(path: str, allowed: str, why: str = "") -> ConfigError:
    return ConfigError(path, UNSET, allowed, message=f"missing {path}{why}; allowed: {allowed}")


# --------------------------------------------------------------------------------------------
# Secrets never appear in reprs
# --------------------------------------------------------------------------------------------

_SECRET_WORDS: Final = ("authorization", "api_key", "api-key", "apikey", "token", "secret", "password")
_SECRET_KEYS: Final = frozenset({"headers", "credential", "key", "access_key", "sas"})
MASK: Final = "***"


def _is_secret(key: object) -> bool:
    if not isinstance(key, str):
        return False
    low = key.lower()
    return low in _SECRET_KEYS or any(word in low for word in _SECRET_WORDS)


def _masked(value: Any, depth: int = 0) -> Any:
    """A copy of a JSON value with the values of secret-looking keys replaced by ``***``."""
    if depth > 50:
        return "…"
    if isinstance(value, Mapping):
        return {k: MASK if _is_secret(k) else _masked(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v, depth + 1) for v in value]
    return value


def _masked_repr(name: str, value: Any) -> str:
    if _is_secret(name) and value is not None:
        return repr(MASK)
    if isinstance(value, _WireObject) or value is None or isinstance(value, (str, int, float, bool)):
        return repr(value)
    if isinstance(value, tuple) and all(isinstance(v, _WireObject) for v in value):
        return repr(value)
    return repr(_masked(_thaw(value)))


# --------------------------------------------------------------------------------------------
# The generic wire object: normalise, validate, to/from dict
# --------------------------------------------------------------------------------------------

_W = TypeVar("_W", bound="_WireObject")


class _WireObject:
    """Shared machinery of the config dataclasses. Field names equal wire keys."""

    _PATH: ClassVar[str] = ""
    _NESTED: ClassVar[Mapping[str, type[_WireObject]]] = {}
    _DISCRIMINATOR: ClassVar[str | None] = None
    _WIRE_REQUIRED: ClassVar[tuple[str, ...]] = ()
    _CUSTOM_CHECK: ClassVar[frozenset[str]] = frozenset()  # fields checked by _check_rules, not by spec
    extra: Mapping[str, Any]

    _NOT_WIRE: ClassVar[frozenset[str]] = frozenset({"extra"})

    @classmethod
    def _known(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cast(Any, cls)) if f.name not in cls._NOT_WIRE)

    @classmethod
    def _path_of(cls, name: str) -> str:
        return f"{cls._PATH}.{name}" if cls._PATH else name

    @classmethod
    def _canonical_keys(cls, data: Mapping[str, Any]) -> Mapping[str, Any]:
        return data

    @classmethod
    def from_dict(cls: type[_W], data: Mapping[str, Any]) -> _W:
        """Build from a wire dict; unknown keys go to ``extra``, explicit nulls stay ``None``."""
        where = cls._PATH or "session"
        if not isinstance(data, Mapping):
            raise ConfigError(where, data, "a JSON object")
        data = cls._canonical_keys(data)
        for key in cls._WIRE_REQUIRED:
            if key not in data:
                path = cls._path_of(key)
                raise _missing(path, _SPECS[path].allowed if path in _SPECS else "a value")
        known = set(cls._known())
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            if not isinstance(key, str):
                raise ConfigError(where, key, "string keys")
            (kwargs if key in known else extra)[key] = value
        return cast(_W, cast(Any, cls)(**kwargs, extra=extra))

    def to_dict(self) -> dict[str, Any]:
        """The wire dict: set fields (``None`` as ``null``) plus ``extra``; fresh plain dicts and lists."""
        out: dict[str, Any] = {}
        for name in self._known():
            value = getattr(self, name)
            if value is not UNSET:
                out[name] = _thaw(value)
        out.update(_thaw(self.extra))
        return out

    def __repr__(self) -> str:
        parts = [
            f"{n}={_masked_repr(n, getattr(self, n))}" for n in self._known() if getattr(self, n) is not UNSET
        ]
        if self.extra:
            parts.append(f"extra={_masked(_thaw(self.extra))!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __post_init__(self) -> None:
        known = self._known()
        for name in known:
            object.__setattr__(self, name, self._normalize(name, getattr(self, name)))
        extra = self.extra
        extra_path = self._path_of("extra")
        if not isinstance(extra, Mapping):
            raise ConfigError(extra_path, extra, "a mapping of keys this package does not model")
        for key in extra:
            if not isinstance(key, str) or key in known or (not self._PATH and key in _ALIASES):
                raise ConfigError(extra_path, key, "keys that are not modelled fields of this object")
        object.__setattr__(self, "extra", _freeze(extra))
        self._validate()

    def _normalize(self, name: str, value: Any) -> Any:
        if value is UNSET or value is None:
            return value
        path = self._path_of(name)
        sub = self._NESTED.get(name)
        if sub is not None:
            if isinstance(value, sub):
                return value
            if isinstance(value, Mapping):
                return sub.from_dict(value)
            raise ConfigError(path, value, "a JSON object")
        spec = _SPECS.get(path)
        if spec is not None and spec.kind == "list":
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise ConfigError(path, value, spec.allowed)
            return _freeze(value)
        if spec is not None and spec.kind == "object":
            return _freeze(value)
        return value

    def _discriminator_value(self) -> Any:
        if self._DISCRIMINATOR is None:
            return None
        value = getattr(self, self._DISCRIMINATOR)
        if value is UNSET or value is None:
            return _SPECS[self._path_of(self._DISCRIMINATOR)].default
        return value

    def _validate(self) -> None:
        for name in self._known():
            path = self._path_of(name)
            spec = _SPECS.get(path)
            value = getattr(self, name)
            if spec is None or name in self._CUSTOM_CHECK:
                continue
            if value is UNSET or value is None:
                if spec.required:
                    raise _missing(path, spec.allowed)
                continue
            if not isinstance(value, _WireObject):
                _check(spec, value)
            if spec.applies_to:
                disc = self._discriminator_value()
                if isinstance(disc, str) and disc not in spec.applies_to:
                    allowed = f"only when {spec.discriminator} is one of: {', '.join(spec.applies_to)}"
                    raise ConfigError(
                        path,
                        _thaw(value),
                        allowed,
                        message=f"invalid {path}: {_thaw(value)!r} is not valid for "
                        f"{spec.discriminator} {disc!r}; allowed: {allowed}",
                    )
        self._check_rules()

    def _check_rules(self) -> None:
        """Cross-field rules of one object (overridden where needed)."""


# --------------------------------------------------------------------------------------------
# Sub-objects
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, repr=False)
class EndOfUtteranceDetection(_WireObject):
    """``turn_detection.end_of_utterance_detection``: current shape ``{model, threshold_level,
    timeout_ms}`` or legacy shape ``{model, threshold, timeout (seconds)}``; the two do not mix."""

    _PATH = _EOU

    model: Opt[str] = UNSET
    threshold_level: Opt[str] = UNSET
    timeout_ms: Opt[int] = UNSET
    threshold: Opt[float] = UNSET
    timeout: Opt[float] = UNSET
    extra: Mapping[str, Any] = field(default_factory=dict)

    _CUSTOM_CHECK = frozenset({"timeout_ms"})

    @property
    def is_legacy(self) -> bool:
        """True for the legacy ``{threshold, timeout}`` shape."""
        return self.threshold is not UNSET or self.timeout is not UNSET

    def _check_rules(self) -> None:
        timeout = self.timeout_ms
        if timeout is not UNSET and timeout is not None:
            spec = _SPECS[self._path_of("timeout_ms")]
            lo, hi = cast(float, spec.minimum), cast(float, spec.maximum)
            whole = _is_number(timeout) and float(timeout).is_integer()  # 1000.0 as the service sends it
            if not (whole and lo <= timeout <= hi):
                raise ConfigError(spec.path, timeout, f"{spec.allowed} (whole ms; 1000.0 is accepted)")
        current = [n for n in ("threshold_level", "timeout_ms") if getattr(self, n) is not UNSET]
        if self.is_legacy and current:
            path = self._path_of(current[0])
            raise ConfigError(
                path,
                getattr(self, current[0]),
                "either {model, threshold_level, timeout_ms} or the legacy {model, threshold, timeout}",
                message=f"invalid {path}: cannot mix with the legacy threshold/timeout fields; allowed: either "
                "{model, threshold_level, timeout_ms} or the legacy {model, threshold, timeout}",
            )


@dataclass(frozen=True, kw_only=True, repr=False)
class TurnDetection(_WireObject):
    """``turn_detection``: one of the VAD types with its knobs (reference §3.6)."""

    _PATH = "turn_detection"
    _NESTED = {"end_of_utterance_detection": EndOfUtteranceDetection}
    _DISCRIMINATOR = "type"

    type: Opt[str] = UNSET
    threshold: Opt[float] = UNSET
    prefix_padding_ms: Opt[int] = UNSET
    silence_duration_ms: Opt[int] = UNSET
    speech_duration_ms: Opt[int] = UNSET
    remove_filler_words: Opt[bool] = UNSET
    languages: Opt[Sequence[str]] = UNSET
    eagerness: Opt[str] = UNSET
    create_response: Opt[bool] = UNSET
    interrupt_response: Opt[bool] = UNSET
    auto_truncate: Opt[bool] = UNSET
    appended_text_after_truncation: Opt[str] = UNSET
    end_of_utterance_detection: Opt[EndOfUtteranceDetection] = UNSET
    extra: Mapping[str, Any] = field(default_factory=dict)

    def _check_rules(self) -> None:
        if not isinstance(self.languages, tuple):
            return
        allowed_langs = _MULTILINGUAL_VAD_LANGUAGES  # the reference's list, for both azure types
        for lang in self.languages:
            if lang.split("-")[0].lower() not in allowed_langs:
                raise ConfigError(
                    "turn_detection.languages",
                    list(self.languages),
                    f"BCP-47 tags of: {', '.join(allowed_langs)} (for {self.type})",
                )


@dataclass(frozen=True, kw_only=True, repr=False)
class Voice(_WireObject):
    """``voice`` as an object. (A bare OpenAI voice name is kept as a plain ``str`` in ``SessionConfig``.)"""

    _PATH = "voice"
    _DISCRIMINATOR = "type"

    type: Opt[str] = UNSET
    name: Opt[str] = UNSET
    endpoint_id: Opt[str] = UNSET
    model: Opt[str] = UNSET
    temperature: Opt[float] = UNSET
    custom_lexicon_url: Opt[str] = UNSET
    custom_text_normalization_url: Opt[str] = UNSET
    prefer_locales: Opt[Sequence[str]] = UNSET
    locale: Opt[str] = UNSET
    style: Opt[str] = UNSET
    pitch: Opt[str] = UNSET
    rate: Opt[str] = UNSET
    volume: Opt[str] = UNSET
    extra: Mapping[str, Any] = field(default_factory=dict)

    def _check_rules(self) -> None:
        vtype = cast(str, self.type)
        for name in _VOICE_REQUIRED[vtype]:
            value = getattr(self, name)
            if value is UNSET or value is None or value == "":
                spec = _SPECS[f"voice.{name}"]
                allowed = spec.allowed if spec.kind == "choice" else "a non-empty string"
                raise _missing(spec.path, allowed, f" (required for voice.type {vtype!r})")
        names = {"openai": OPENAI_VOICES, "azure-realtime-native": REALTIME_NATIVE_VOICES}.get(vtype)
        if names is not None and self.name not in names:
            raise ConfigError(
                "voice.name", self.name, f"one of: {', '.join(names)} (for voice.type {vtype!r})"
            )


@dataclass(frozen=True, kw_only=True, repr=False)
class NoiseReduction(_WireObject):
    """``input_audio_noise_reduction``."""

    _PATH = "input_audio_noise_reduction"

    type: Opt[str] = UNSET
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, repr=False)
class EchoCancellation(_WireObject):
    """``input_audio_echo_cancellation``. Valid pairs: reference_source server with 1 channel
    (the defaults) or client with 2 channels (stereo mic + reference input)."""

    _PATH = "input_audio_echo_cancellation"
    _WIRE_REQUIRED = ("type",)

    type: Opt[str] = "server_echo_cancellation"
    reference_source: Opt[str] = UNSET
    channels: Opt[int] = UNSET
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def effective_channels(self) -> int:
        return self.channels if isinstance(self.channels, int) else 1

    def _check_rules(self) -> None:
        source = self.reference_source if isinstance(self.reference_source, str) else "server"
        wanted = 2 if source == "client" else 1
        if self.effective_channels != wanted:
            name = "channels" if isinstance(self.channels, int) else "reference_source"
            raise ConfigError(
                self._path_of(name),
                getattr(self, name),
                "reference_source server with channels 1, or reference_source client with channels 2",
            )


#: The preview feature that lets the client send the echo reference (URL ``features=``).
CLIENT_EC_FEATURE: Final = "client_ec_reference:true"
#: The first dated api-version with client-reference echo cancellation (REF0715); ``v1`` (GA) has it too.
CLIENT_EC_FIRST_API_VERSION: Final = "2026-07-15"


def client_echo_reference_problem(api_version: str) -> str | None:
    """Why ``api_version`` cannot carry client-reference echo cancellation, or ``None`` if it can.

    Documented from ``2026-07-15`` on (and for ``v1``); the earlier dated versions, previews
    included, do not know ``reference_source``/``channels``."""
    version = api_version.strip().lower()
    if version == "v1" or version.startswith("v1-"):
        return None
    date = version[:10]
    if len(date) == 10 and date[4] == "-" and date[7] == "-" and date.replace("-", "").isdigit():
        if date >= CLIENT_EC_FIRST_API_VERSION:
            return None
        return (
            f"api-version {api_version} has no client-reference echo cancellation; "
            f"use {CLIENT_EC_FIRST_API_VERSION} or later (or v1), or server echo cancellation"
        )
    return None  # an unknown form: let the service decide


@dataclass(frozen=True, kw_only=True, repr=False)
class InputTranscription(_WireObject):
    """``input_audio_transcription``; ``custom_speech`` is for azure-speech, ``phrase_list`` for
    azure-speech and mai-transcribe*, ``prompt`` for the OpenAI models."""

    _PATH = _TR
    _DISCRIMINATOR = "model"

    model: Opt[str] = UNSET
    language: Opt[str] = UNSET
    custom_speech: Opt[Mapping[str, str]] = UNSET
    phrase_list: Opt[Sequence[str]] = UNSET
    prompt: Opt[str] = UNSET
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, repr=False)
class FunctionTool(_WireObject):
    """A ``{type: "function", name, description?, parameters?}`` tool."""

    _PATH = "tools"
    _WIRE_REQUIRED = ("type",)

    type: Opt[str] = "function"
    name: Opt[str] = UNSET
    description: Opt[str] = UNSET
    parameters: Opt[Mapping[str, Any]] = UNSET
    extra: Mapping[str, Any] = field(default_factory=dict)

    def _check_rules(self) -> None:
        if self.type != "function":
            raise ConfigError("tools.type", self.type, "'function' for a FunctionTool")


@dataclass(frozen=True, kw_only=True, repr=False)
class McpTool(_WireObject):
    """A ``{type: "mcp", server_label, server_url, ...}`` tool."""

    _PATH = "tools"
    _WIRE_REQUIRED = ("type",)

    type: Opt[str] = "mcp"
    server_label: Opt[str] = UNSET
    server_url: Opt[str] = UNSET
    authorization: Opt[str] = UNSET
    headers: Opt[Mapping[str, str]] = UNSET
    allowed_tools: Opt[Sequence[str]] = UNSET
    require_approval: Opt[str | Mapping[str, Sequence[str]]] = UNSET
    extra: Mapping[str, Any] = field(default_factory=dict)

    _CUSTOM_CHECK = frozenset({"require_approval"})

    def _check_rules(self) -> None:
        if self.type != "mcp":
            raise ConfigError("tools.type", self.type, "'mcp' for an McpTool")
        approval = self.require_approval
        if approval is UNSET or approval is None:
            return
        if isinstance(approval, Mapping):
            ok = all(
                k in ("never", "always") and isinstance(v, tuple) and all(isinstance(t, str) for t in v)
                for k, v in approval.items()
            )
        else:
            ok = approval in ("never", "always")
        if not ok:
            raise ConfigError(
                "tools.require_approval",
                _thaw(approval),
                "never, always, or {never: [tool names], always: [tool names]}",
            )


@dataclass(frozen=True, kw_only=True, repr=False)
class InterimResponse(_WireObject):
    """``interim_response``: static texts or an LLM-written filler while the answer is slow.
    Hyphenated type names are accepted and stored with underscores."""

    _PATH = _IR
    _DISCRIMINATOR = "type"

    type: Opt[str] = UNSET
    triggers: Opt[Sequence[str]] = UNSET
    latency_threshold_ms: Opt[int] = UNSET
    texts: Opt[Sequence[str]] = UNSET
    model: Opt[str] = UNSET
    instructions: Opt[str] = UNSET
    max_completion_tokens: Opt[int] = UNSET
    extra: Mapping[str, Any] = field(default_factory=dict)

    def _normalize(self, name: str, value: Any) -> Any:
        if name == "type" and isinstance(value, str):
            return value.replace("-", "_")
        return super()._normalize(name, value)


@dataclass(frozen=True, kw_only=True, repr=False)
class Animation(_WireObject):
    """``animation``: viseme ids and/or blendshapes alongside the audio."""

    _PATH = "animation"

    model_name: Opt[str] = UNSET
    outputs: Opt[Sequence[str]] = UNSET
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, repr=False)
class Avatar(_WireObject):
    """``avatar``; ``ice_servers``, ``video`` and ``scene`` are kept as JSON values."""

    _PATH = "avatar"
    _DISCRIMINATOR = "type"
    _CUSTOM_CHECK = frozenset({"ice_servers"})

    type: Opt[str] = UNSET
    character: Opt[str] = UNSET
    style: Opt[str] = UNSET
    customized: Opt[bool] = UNSET
    model: Opt[str] = UNSET
    output_protocol: Opt[str] = UNSET
    output_audit_audio: Opt[bool] = UNSET
    ice_servers: Opt[Sequence[Mapping[str, Any]]] = UNSET
    video: Opt[Mapping[str, Any]] = UNSET
    scene: Opt[Mapping[str, Any]] = UNSET
    extra: Mapping[str, Any] = field(default_factory=dict)

    def _check_rules(self) -> None:
        servers = self.ice_servers
        if servers is UNSET or servers is None:
            return
        if not (isinstance(servers, tuple) and all(isinstance(s, Mapping) for s in servers)):
            raise ConfigError(
                "avatar.ice_servers", _thaw(servers), "a list of {urls, username?, credential?}"
            )


@dataclass(frozen=True, kw_only=True, repr=False)
class FoundryAgentTool(_WireObject):
    """A ``{type: "foundry_agent", agent_name, project_name, ...}`` tool (a Foundry agent the model
    can call; its progress comes as ``response.foundry_agent_call*`` events)."""

    _PATH = "tools"
    _WIRE_REQUIRED = ("type",)

    type: Opt[str] = "foundry_agent"
    agent_name: Opt[str] = UNSET
    project_name: Opt[str] = UNSET
    agent_version: Opt[str] = UNSET
    description: Opt[str] = UNSET
    client_id: Opt[str] = UNSET
    foundry_resource_override: Opt[str] = UNSET
    agent_context_type: Opt[str] = UNSET
    return_agent_response_directly: Opt[bool] = UNSET
    extra: Mapping[str, Any] = field(default_factory=dict)

    def _check_rules(self) -> None:
        if self.type != "foundry_agent":
            raise ConfigError("tools.type", self.type, "'foundry_agent' for a FoundryAgentTool")


Tool = FunctionTool | McpTool | FoundryAgentTool
_TOOL_CLASSES: Final[Mapping[str, type[FunctionTool] | type[McpTool] | type[FoundryAgentTool]]] = {
    "function": FunctionTool,
    "mcp": McpTool,
    "foundry_agent": FoundryAgentTool,
}


# --------------------------------------------------------------------------------------------
# The session
# --------------------------------------------------------------------------------------------

QUICKSTART_INSTRUCTIONS: Final = "You are a helpful AI assistant responding in natural, engaging language."

#: Keys of the session object that only the server sets (ResponseSession extras, reference §3.4):
#: never sent back. ``model`` is writable (RequestSession has it) but fixed once connected, so
#: :meth:`SessionConfig.from_server` puts the server's value here too instead of sending it back.
SERVER_ONLY_KEYS: Final = ("id", "object", "expires_at", "agent")

#: Keys the live service reports that the reference does not list as request fields
#: (``truncation_strategy``, ``greeting``, ``handoff``; ``turn_detection.idle_timeout_ms`` is an
#: OpenAI GA ``server_vad`` knob that Voice Live echoes as null). A ``null`` here is the server
#: saying "not set": it is not sent back. A value someone sets is sent as given.
ECHO_ONLY_KEYS: Final = ("truncation_strategy", "greeting", "handoff", "turn_detection.idle_timeout_ms")

#: Keyword arguments of the presets that are turn-detection knobs (routed into turn_detection).
_TD_KNOBS: Final = frozenset(
    s.path.split(".", 1)[1]
    for s in FIELD_SPECS
    if s.path.startswith("turn_detection.") and s.path.count(".") == 1
) - {"type"}


@dataclass(frozen=True, kw_only=True, repr=False)
class SessionConfig(_WireObject):
    """The whole session object of ``session.update`` (request side), immutable and validated.

    Every field defaults to :data:`UNSET` (not sent); ``None`` is sent as ``null``. Nested objects
    may be given as their dataclass or as a wire dict; lists are stored as tuples and JSON objects
    as read-only mappings. ``extra`` holds top-level keys this package does not model.
    """

    _NESTED = {
        "turn_detection": TurnDetection,
        "input_audio_noise_reduction": NoiseReduction,
        "input_audio_echo_cancellation": EchoCancellation,
        "input_audio_transcription": InputTranscription,
        "interim_response": InterimResponse,
        "animation": Animation,
        "avatar": Avatar,
    }
    _CUSTOM_CHECK = frozenset({"voice", "tools", "tool_choice"})
    _NOT_WIRE = frozenset({"extra", "server_fields", "unchecked", "warnings"})

    model: Opt[str] = UNSET
    modalities: Opt[Sequence[str]] = UNSET
    instructions: Opt[str] = UNSET
    voice: Opt[str | Voice] = UNSET
    input_audio_format: Opt[str] = UNSET
    output_audio_format: Opt[str] = UNSET
    input_audio_sampling_rate: Opt[int] = UNSET
    turn_detection: Opt[TurnDetection] = UNSET
    input_audio_noise_reduction: Opt[NoiseReduction] = UNSET
    input_audio_echo_cancellation: Opt[EchoCancellation] = UNSET
    input_audio_transcription: Opt[InputTranscription] = UNSET
    tools: Opt[Sequence[Tool]] = UNSET
    tool_choice: Opt[str | Mapping[str, Any]] = UNSET
    parallel_tool_calls: Opt[bool] = UNSET
    temperature: Opt[float] = UNSET
    max_response_output_tokens: Opt[int | str] = UNSET
    reasoning_effort: Opt[str] = UNSET
    interim_response: Opt[InterimResponse] = UNSET
    output_audio_timestamp_types: Opt[Sequence[str]] = UNSET
    animation: Opt[Animation] = UNSET
    avatar: Opt[Avatar] = UNSET
    include: Opt[Sequence[str]] = UNSET
    metadata: Opt[Mapping[str, str]] = UNSET
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: What the server reported that is not sent back (see :data:`SERVER_ONLY_KEYS`,
    #: :data:`ECHO_ONLY_KEYS`; dotted keys for nested ones). Read it with :meth:`server_only`.
    server_fields: Mapping[str, Any] = field(default_factory=dict, compare=False)
    #: Top-level values from the server this package would refuse from a user: kept verbatim and
    #: sent back as they are (only :meth:`from_server` fills this).
    unchecked: Mapping[str, Any] = field(default_factory=dict)
    #: What :meth:`from_server` noticed (a value kept unchecked, and why).
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "server_fields", _freeze(dict(self.server_fields)))
        object.__setattr__(self, "unchecked", _freeze(dict(self.unchecked)))
        object.__setattr__(self, "warnings", tuple(self.warnings))

    # ---- wire in / out -----------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionConfig:
        """Build from a session object of either wire shape (a GA one is made flat first, see
        :func:`.wire.session_from_wire`). Unknown keys go to ``extra``; server-only keys (and the
        server's null for echo-only keys) go to :attr:`server_fields`, never sent back.

        Raises:
            ConfigError: a value is invalid (the error names the dotted field and what is allowed).
        """
        if not isinstance(data, Mapping):
            raise ConfigError("session", data, "a JSON object")
        data, server = _split_server_only(cls._canonical_keys(_flat(data)))
        config = super().from_dict(data)
        if server:
            object.__setattr__(config, "server_fields", _freeze(server))
        return config

    @classmethod
    def from_server(cls, session: Mapping[str, Any]) -> SessionConfig:
        """The config of a session object the service sent (``session.created/updated``). Never raises.

        Either shape is accepted. ``model`` and the server-only keys go to :attr:`server_fields`;
        a top-level value this package would refuse from a user is kept verbatim in
        :attr:`unchecked` (sent back as it is) and explained in :attr:`warnings`.
        """
        warnings: list[str] = []
        if not isinstance(session, Mapping):
            return cls(warnings=(f"session is not a JSON object ({type(session).__name__}); ignored",))
        try:
            data, server = _split_server_only(cls._canonical_keys(_flat(session)))
        except ConfigError as exc:  # both max_output_tokens spellings: keep the canonical one
            flat = dict(_flat(session))
            flat.pop("max_output_tokens", None)
            warnings.append(f"{exc}; kept max_response_output_tokens")
            data, server = _split_server_only(flat)
        data = dict(data)
        if "model" in data:
            server["model"] = data.pop("model")
        unchecked: dict[str, Any] = {}
        for key in [k for k in data if not isinstance(k, str)]:
            warnings.append(f"dropped a non-string session key: {key!r}")
            del data[key]
        for _ in range(len(data) + 1):
            try:
                config = cls.from_dict(data)
                break
            except ConfigError as exc:
                top = exc.field.split(".", 1)[0].split("[", 1)[0]
                if top not in data:
                    top = next(iter(data))  # cannot tell which: keep the first key unchecked
                unchecked[top] = data.pop(top)
                warnings.append(f"{exc}; kept {top} as the server sent it")
        else:  # pragma: no cover - every key moved to unchecked, so the last try succeeds
            config = cls()
        object.__setattr__(config, "server_fields", _freeze(server))
        object.__setattr__(config, "unchecked", _freeze(unchecked))
        object.__setattr__(config, "warnings", tuple(warnings))
        return config

    def to_dict(self) -> dict[str, Any]:
        """The wire dict that is sent: set fields (``None`` as ``null``), ``extra`` and
        :attr:`unchecked`; never :attr:`server_fields`."""
        out = super().to_dict()
        if self.unchecked:
            out.update(_thaw(self.unchecked))
        return out

    def server_only(self) -> dict[str, Any]:
        """What the server reported that :meth:`to_dict` leaves out (``{}`` for a user config)."""
        return dict(_thaw(self.server_fields))

    # ---- presets ---------------------------------------------------------------------------

    @classmethod
    def quickstart(cls, **changes: Any) -> SessionConfig:
        """The session the service's own Python quickstart sends (azure_semantic_vad with the
        legacy end-of-utterance shape, deep noise suppression, server echo cancellation, the
        Ava HD voice), plus modalities text+audio and pcm16 both ways."""
        base = cls(
            modalities=("text", "audio"),
            instructions=QUICKSTART_INSTRUCTIONS,
            input_audio_format="pcm16",
            output_audio_format="pcm16",
            turn_detection=TurnDetection(
                type="azure_semantic_vad",
                threshold=0.3,
                prefix_padding_ms=200,
                silence_duration_ms=200,
                remove_filler_words=False,
                end_of_utterance_detection=EndOfUtteranceDetection(
                    model="semantic_detection_v1", threshold=0.01, timeout=2
                ),
            ),
            input_audio_noise_reduction=NoiseReduction(type="azure_deep_noise_suppression"),
            input_audio_echo_cancellation=EchoCancellation(type="server_echo_cancellation"),
            voice=Voice(type="azure-standard", name="en-US-Ava:DragonHDLatestNeural", temperature=0.8),
        )
        return base._preset_changes(changes)

    @classmethod
    def server_vad(cls, **changes: Any) -> SessionConfig:
        """Plain server_vad with its documented defaults (threshold 0.5, prefix 400 ms, silence
        500 ms), pcm16 at 24 kHz both ways, azure-speech transcription, server echo cancellation."""
        base = cls(
            modalities=("text", "audio"),
            input_audio_format="pcm16",
            output_audio_format="pcm16",
            input_audio_sampling_rate=24000,
            turn_detection=TurnDetection(
                type="server_vad", threshold=0.5, prefix_padding_ms=400, silence_duration_ms=500
            ),
            input_audio_transcription=InputTranscription(model="azure-speech"),
            input_audio_echo_cancellation=EchoCancellation(type="server_echo_cancellation"),
        )
        return base._preset_changes(changes)

    @classmethod
    def manual(cls, **changes: Any) -> SessionConfig:
        """Push-to-talk: like :meth:`server_vad` but ``turn_detection`` is ``null`` (the client
        commits the input buffer and asks for a response itself)."""
        base = cls.server_vad(turn_detection=None)
        return base._preset_changes(changes)

    def _preset_changes(self, changes: dict[str, Any]) -> SessionConfig:
        """Apply a preset's keyword arguments; turn-detection knobs (``threshold=0.6``) change
        ``turn_detection`` and are validated there (``turn_detection.threshold``)."""
        if not changes:
            return self
        knobs = {k: changes.pop(k) for k in list(changes) if k in _TD_KNOBS and k not in self._known()}
        config = self.replace(**changes) if changes else self
        if knobs:
            if not isinstance(config.turn_detection, TurnDetection):
                name = next(iter(knobs))
                raise ConfigError(
                    f"turn_detection.{name}",
                    knobs[name],
                    "a turn_detection object",
                    message=f"cannot set turn_detection.{name}: turn_detection is "
                    f"{_thaw(config.turn_detection)!r} in this preset; allowed: pass turn_detection=... as well",
                )
            config = config.with_changes({f"turn_detection.{k}": v for k, v in knobs.items()})
        return config

    # ---- normalisation and rules -------------------------------------------------------------

    @classmethod
    def _canonical_keys(cls, data: Mapping[str, Any]) -> Mapping[str, Any]:
        if not any(k in data for k in _ALIASES):
            return data
        out = dict(data)
        for alias, canonical in _ALIASES.items():
            if alias in out:
                if canonical in out:
                    raise ConfigError(
                        canonical, out[alias], f"either {canonical} or {alias}, not both (they are one field)"
                    )
                out[canonical] = out.pop(alias)
        return out

    def _normalize(self, name: str, value: Any) -> Any:
        if value is UNSET or value is None:
            return value
        if name == "voice":
            if isinstance(value, (str, Voice)):
                return value
            if isinstance(value, Mapping):
                return Voice.from_dict(value)
            raise ConfigError("voice", value, "an OpenAI voice name or a voice object")
        if name == "tools":
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise ConfigError("tools", value, "a list of tool objects")
            return tuple(_tool(i, item) for i, item in enumerate(value))
        if name == "tool_choice":
            return _freeze(value)
        return super()._normalize(name, value)

    def _check_rules(self) -> None:
        voice = self.voice
        if isinstance(voice, str) and voice not in OPENAI_VOICES:
            raise ConfigError("voice", voice, "one of: " + ", ".join(OPENAI_VOICES) + " (or a voice object)")
        choice = self.tool_choice
        if isinstance(choice, str) and not choice:
            raise ConfigError("tool_choice", choice, _TOOL_CHOICE_ALLOWED)
        is_function = (
            isinstance(choice, Mapping)
            and choice.get("type") == "function"
            and isinstance(choice.get("name"), str)
        )
        if choice is not UNSET and choice is not None and not isinstance(choice, str) and not is_function:
            raise ConfigError("tool_choice", _thaw(choice), _TOOL_CHOICE_ALLOWED)
        if isinstance(self.modalities, tuple):
            mods = self.modalities
            problem = ""
            # ["audio"] alone is what the live service reports; ["audio", "animation"] is in the
            # reference's own example: only the avatar rule is enforced.
            if not mods:
                problem = "at least one modality"
            elif "avatar" in mods and not {"text", "audio"} <= set(mods):
                problem = "avatar only together with text and audio"
            if problem:
                raise ConfigError("modalities", list(mods), f"{_SPECS['modalities'].allowed}; {problem}")
        if isinstance(self.metadata, Mapping):
            _check_metadata(self.metadata)
        ec = self.input_audio_echo_cancellation
        in_fmt = self.input_audio_format
        if (
            isinstance(ec, EchoCancellation)
            and ec.reference_source == "client"
            and in_fmt not in (UNSET, None, "pcm16")
        ):
            raise ConfigError(
                "input_audio_echo_cancellation.reference_source",
                "client",
                "'client' only with input_audio_format pcm16",
            )
        rate = self.input_audio_sampling_rate
        if in_fmt in _G711 and isinstance(rate, int) and rate != 8000:
            raise ConfigError("input_audio_sampling_rate", rate, f"8000 with input_audio_format {in_fmt}")

    # ---- audio helpers ---------------------------------------------------------------------

    @property
    def input_sample_rate(self) -> int:
        """Sample rate of the audio the client appends (Hz)."""
        if self.input_audio_format in _G711:
            return 8000
        rate = self.input_audio_sampling_rate
        return rate if isinstance(rate, int) else 24000

    def with_client_echo_reference(self, on: bool = True) -> SessionConfig:
        """This config with client-reference echo cancellation on (or, ``on=False``, back to
        server echo cancellation): ``input_audio_echo_cancellation`` becomes
        ``{type: server_echo_cancellation, reference_source: client, channels: 2}``. A
        :class:`~voicelive_nb.session.Session` on it adds the feature flag
        ``client_ec_reference:true`` to the connection and streams stereo frames (channel 0 the
        microphone, channel 1 what the speaker played then) from a source that can give them."""
        if on:
            ec = EchoCancellation(type="server_echo_cancellation", reference_source="client", channels=2)
        else:
            ec = EchoCancellation(type="server_echo_cancellation")
        return self.replace(input_audio_echo_cancellation=ec)

    @property
    def client_echo_reference(self) -> bool:
        """Whether the client sends the echo reference (stereo input, the feature flag)."""
        ec = self.input_audio_echo_cancellation
        return isinstance(ec, EchoCancellation) and ec.reference_source == "client"

    @property
    def input_channels(self) -> int:
        """2 when client-reference echo cancellation expects interleaved mic + reference, else 1."""
        ec = self.input_audio_echo_cancellation
        return ec.effective_channels if isinstance(ec, EchoCancellation) else 1

    @property
    def input_bytes_per_ms(self) -> int:
        """Bytes of appended audio per millisecond (all channels)."""
        width = 1 if self.input_audio_format in _G711 else 2
        return self.input_sample_rate * width * self.input_channels // 1000

    @property
    def output_sample_rate(self) -> int:
        """Sample rate of ``response.audio.delta`` audio (Hz)."""
        fmt = self.output_audio_format
        return _OUTPUT_RATES[fmt] if isinstance(fmt, str) else 24000

    @property
    def output_bytes_per_ms(self) -> int:
        """Bytes of response audio per millisecond (48 for the default pcm16 at 24 kHz)."""
        width = 1 if self.output_audio_format in _G711 else 2
        return self.output_sample_rate * width // 1000

    # ---- changes -----------------------------------------------------------------------------

    def replace(self, **changes: Any) -> SessionConfig:
        """A new validated config with top-level fields replaced (``UNSET`` removes a field)."""
        known = set(self._known()) | {"extra"}
        for key in list(changes):
            canonical = _ALIASES.get(key, key)
            if canonical not in known:
                raise ConfigError(key, changes[key], "a SessionConfig field: " + ", ".join(self._known()))
            if canonical != key:
                if canonical in changes:
                    raise ConfigError(canonical, changes[key], f"either {canonical} or {key}, not both")
                changes[canonical] = changes.pop(key)
        if self.unchecked and "unchecked" not in changes and any(k in self.unchecked for k in changes):
            changes["unchecked"] = {k: v for k, v in self.unchecked.items() if k not in changes}
        return cast(SessionConfig, _dc_replace(cast(Any, self), **changes))

    def with_changes(self, changes: Mapping[str, Any]) -> SessionConfig:
        """A new validated config with fields changed by dotted path or nested dict.

        ``{"turn_detection.threshold": 0.6}`` and ``{"turn_detection": {"threshold": 0.6}}`` both change
        one knob and keep the others (a nested dict merges into a set sub-object; a dataclass value
        replaces it whole). ``UNSET`` removes a key, ``None`` sends null. Unknown keys land in ``extra``.
        Changing a field inside an object that is not set raises ConfigError.
        """
        if not isinstance(changes, Mapping):
            raise ConfigError("session", changes, "a mapping of dotted field paths to values")
        wire = self.to_dict()
        for key, value in changes.items():
            if not isinstance(key, str) or not key or "" in key.split("."):
                raise ConfigError("session", key, "dotted field paths such as turn_detection.threshold")
            parts = key.split(".")
            parts[0] = _ALIASES.get(parts[0], parts[0])
            _apply_change(wire, parts, value, SessionConfig, "")
        changed = {_ALIASES.get(k.split(".")[0], k.split(".")[0]) for k in changes if isinstance(k, str)}
        return self._rebuild(wire, changed)

    def merge_update(self, update: Mapping[str, Any]) -> SessionConfig:
        """Apply a ``session.update`` payload the way the service does: only supplied keys change,
        nested objects are replaced whole, an explicit null disables."""
        if not isinstance(update, Mapping):
            raise ConfigError("session", update, "a JSON object")
        wire = self.to_dict()
        update = SessionConfig._canonical_keys(update)
        for key, value in update.items():
            wire[key] = _thaw(value)
        return self._rebuild(wire, set(update))

    def _rebuild(self, wire: dict[str, Any], changed: set[str]) -> SessionConfig:
        """``from_dict(wire)``, keeping unchanged unchecked values unchecked and the server fields."""
        keep = {k: wire.pop(k) for k in list(wire) if k in self.unchecked and k not in changed}
        config = SessionConfig.from_dict(wire)
        if keep or self.server_fields or self.warnings:
            object.__setattr__(config, "unchecked", _freeze(keep))
            object.__setattr__(
                config, "server_fields", _freeze(_thaw(self.server_fields) | config.server_only())
            )
            object.__setattr__(config, "warnings", self.warnings)
        return config

    def diff(self, other: SessionConfig) -> dict[str, Any]:
        """The minimal ``session.update`` payload that turns ``self`` into ``other``.

        Changed top-level keys are sent whole (the service replaces nested objects whole).
        A key set in ``self`` but not in ``other`` cannot be expressed (session.update has no
        "unset"): that raises ConfigError; set it to a value or to None instead.
        """
        mine, theirs = self.to_dict(), other.to_dict()
        for key in mine:
            if key not in theirs:
                raise ConfigError(
                    key,
                    UNSET,
                    "a value or null",
                    message=f"cannot unset {key} with session.update; allowed: a value or null (None)",
                )
        return {k: v for k, v in theirs.items() if k not in mine or not _same(mine[k], v)}

    def value_at(self, path: str) -> Any:
        """The value at a dotted path (``UNSET`` when it or a parent is not set)."""
        node: Any = self
        for part in path.split("."):
            if isinstance(node, _WireObject) and part in node._known():
                node = getattr(node, part)
            elif isinstance(node, _WireObject):
                node = node.extra.get(part, UNSET)
            elif isinstance(node, Mapping):
                node = node.get(part, UNSET)
            else:
                return UNSET
        return node

    @staticmethod
    def field_specs() -> tuple[FieldSpec, ...]:
        """Every editable field, as data (see :class:`FieldSpec`)."""
        return FIELD_SPECS


def _tool(index: int, item: Any) -> Tool:
    if isinstance(item, (FunctionTool, McpTool, FoundryAgentTool)):
        return item
    if not isinstance(item, Mapping):
        raise ConfigError(f"tools[{index}]", item, "a tool object")
    kind = item.get("type", UNSET)
    cls = _TOOL_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ConfigError(f"tools[{index}].type", kind, "one of: " + ", ".join(_TOOL_CLASSES))
    try:
        return cls.from_dict(item)
    except ConfigError as exc:
        if not exc.field.startswith("tools"):
            raise
        new_field = f"tools[{index}]" + exc.field[len("tools") :]
        raise ConfigError(
            new_field, exc.value, exc.allowed, str(exc).replace(exc.field, new_field, 1)
        ) from None


def _check_metadata(metadata: Mapping[str, Any]) -> None:
    if len(metadata) > _METADATA_MAX_PAIRS:
        raise ConfigError("metadata", _thaw(metadata), f"at most {_METADATA_MAX_PAIRS} pairs")
    for key, value in metadata.items():
        if not isinstance(key, str) or not 0 < len(key) <= _METADATA_MAX_KEY:
            raise ConfigError(f"metadata.{key}", key, f"string keys of 1 to {_METADATA_MAX_KEY} characters")
        if not isinstance(value, str) or len(value) > _METADATA_MAX_VALUE:
            raise ConfigError(
                f"metadata.{key}", value, f"string values of at most {_METADATA_MAX_VALUE} characters"
            )


def _apply_change(
    target: dict[str, Any], parts: list[str], value: Any, owner: type[_WireObject] | None, prefix: str
) -> None:
    name = parts[0]
    path = f"{prefix}.{name}" if prefix else name
    sub = owner._NESTED.get(name) if owner is not None else None
    if owner is SessionConfig and name == "voice":
        sub = Voice
    current = target.get(name, UNSET)
    if len(parts) > 1:
        if not isinstance(current, dict):
            raise ConfigError(
                path,
                current,
                "an object that is set",
                message=f"cannot change {path}.{'.'.join(parts[1:])}: {path} is {current!r}, not an object; "
                f"allowed: set the whole {path} first",
            )
        _apply_change(current, parts[1:], value, sub, path)
        return
    if value is UNSET:
        target.pop(name, None)
    elif sub is not None and isinstance(value, Mapping) and isinstance(current, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                raise ConfigError(path, key, "string field names")
            _apply_change(current, key.split("."), item, sub, path)
    else:
        target[name] = _thaw(value)


def _flat(session: Mapping[str, Any]) -> Mapping[str, Any]:
    from .wire import is_ga_session, session_from_wire

    return session_from_wire(session) if is_ga_session(session) else session


def _split_server_only(data: Mapping[str, Any]) -> tuple[Mapping[str, Any], dict[str, Any]]:
    """``data`` without its server-only keys and echo-only nulls, and those keys."""
    server = {k: data[k] for k in SERVER_ONLY_KEYS if k in data}
    server.update({k: None for k in ECHO_ONLY_KEYS if "." not in k and k in data and data[k] is None})
    td = data.get("turn_detection")
    nested = [k for k in ECHO_ONLY_KEYS if k.startswith("turn_detection.")]
    td_drop = [k.split(".", 1)[1] for k in nested if isinstance(td, Mapping) and k.split(".", 1)[1] in td]
    td_drop = [k for k in td_drop if isinstance(td, Mapping) and td[k] is None]
    if not server and not td_drop:
        return data, server
    out = {k: v for k, v in data.items() if k not in server}
    if td_drop and isinstance(td, Mapping):
        out["turn_detection"] = {k: v for k, v in td.items() if k not in td_drop}
        server.update({f"turn_detection.{k}": None for k in td_drop})
    return out, server


_REALTIME_MODEL_PREFIXES: Final = (
    "gpt-realtime",
    "gpt-4o-realtime",
    "gpt-4o-mini-realtime",
    "azure-realtime",
)


def _is_realtime_model(model: str) -> bool:
    name = model.strip().lower()
    return any(name.startswith(p) for p in _REALTIME_MODEL_PREFIXES) or "-realtime" in name


def config_warnings(config: SessionConfig, model: str | None = None) -> list[str]:
    """Advice about a valid config for ``model`` (the deployment in the URL; falls back to the
    config's own ``model``). Pure; returns an empty list when there is nothing to say.

    Today: text-based end-of-utterance detection (``semantic_detection_v1*``) is documented for
    cascaded pipelines (speech-to-text, a text model, text-to-speech) only, so a realtime
    speech-to-speech model with it gets a warning.
    """
    out: list[str] = []
    name = model if model else config.model if isinstance(config.model, str) else None
    td = config.turn_detection
    eou = td.end_of_utterance_detection if isinstance(td, TurnDetection) else None
    if name and _is_realtime_model(name) and isinstance(eou, EndOfUtteranceDetection):
        eou_model = eou.model if isinstance(eou.model, str) else "end_of_utterance_detection"
        out.append(
            f"turn_detection.end_of_utterance_detection ({eou_model}) is documented for cascaded "
            f"pipelines only; {name} is a realtime speech-to-speech model, so it may be ignored or "
            "refused: remove end_of_utterance_detection or use a cascaded model (e.g. gpt-4o)"
        )
    return out
