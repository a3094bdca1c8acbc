"""Tests of voicelive_nb.protocol.config: validation, lossless round trips, changes, presets, specs."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicelive_nb.errors import ConfigError
from voicelive_nb.protocol.config import (
    UNSET,
    Animation,
    Avatar,
    EchoCancellation,
    EndOfUtteranceDetection,
    FieldSpec,
    FunctionTool,
    InputTranscription,
    InterimResponse,
    McpTool,
    NoiseReduction,
    SessionConfig,
    TurnDetection,
    Voice,
    field_spec,
    field_specs,
)

AZURE_VADS = ["azure_semantic_vad", "azure_semantic_vad_en", "azure_semantic_vad_multilingual"]
OPENAI_VOICES = ["alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"]

# ---------------------------------------------------------------------------------------------
# A fully populated wire dict: every field, unknown keys at every level, explicit nulls
# ---------------------------------------------------------------------------------------------

FULL: dict[str, Any] = {
    "model": "gpt-realtime",
    "modalities": ["text", "audio", "animation"],
    "instructions": "be brief",
    "voice": {
        "type": "azure-standard",
        "name": "en-US-Ava:DragonHDLatestNeural",
        "temperature": 0.7,
        "custom_lexicon_url": "https://x/lex.xml",
        "custom_text_normalization_url": "https://x/norm",
        "prefer_locales": ["en-GB", "en-US"],
        "locale": "en-US",
        "style": "cheerful",
        "pitch": "+5%",
        "rate": "1.2",
        "volume": "loud",
        "x_voice": {"nested": [1, None]},
    },
    "input_audio_format": "pcm16",
    "output_audio_format": "pcm16_16000hz",
    "input_audio_sampling_rate": 16000,
    "turn_detection": {
        "type": "azure_semantic_vad_multilingual",
        "threshold": 0.42,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 450,
        "speech_duration_ms": 80,
        "remove_filler_words": True,
        "languages": ["en-US", "fr", "ja-JP"],
        "create_response": False,
        "interrupt_response": True,
        "auto_truncate": True,
        "appended_text_after_truncation": " [interrupted]",
        "end_of_utterance_detection": {
            "model": "semantic_detection_v1_multilingual",
            "threshold_level": "low",
            "timeout_ms": 900,
            "x_eou": "kept",
        },
        "x_td": 7,
    },
    "input_audio_noise_reduction": {"type": "azure_deep_noise_suppression", "x_nr": False},
    "input_audio_echo_cancellation": {
        "type": "server_echo_cancellation",
        "reference_source": "client",
        "channels": 2,
        "x_ec": [],
    },
    "input_audio_transcription": {
        "model": "azure-speech",
        "language": "en-US,fr-FR",
        "custom_speech": {"en-US": "endpoint-id"},
        "phrase_list": ["Voice Live", "Contoso"],
        "x_tr": {},
    },
    "tools": [
        {
            "type": "function",
            "name": "get_weather",
            "description": "weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
            "x_fn": 1,
        },
        {
            "type": "mcp",
            "server_label": "docs",
            "server_url": "https://mcp.example/sse",
            "authorization": "Bearer t",
            "headers": {"x-a": "b"},
            "allowed_tools": ["search"],
            "require_approval": {"never": ["search"], "always": []},
            "x_mcp": None,
        },
    ],
    "tool_choice": {"type": "function", "name": "get_weather"},
    "parallel_tool_calls": False,
    "temperature": 0.9,
    "max_response_output_tokens": 1024,
    "reasoning_effort": "low",
    "interim_response": {
        "type": "llm_interim_response",
        "triggers": ["latency", "tool"],
        "latency_threshold_ms": 1500,
        "model": "gpt-4.1-mini",
        "instructions": "say one short filler",
        "max_completion_tokens": 40,
        "x_ir": "y",
    },
    "output_audio_timestamp_types": ["word"],
    "animation": {"model_name": "default", "outputs": ["blendshapes", "viseme_id"], "x_an": 0.5},
    "avatar": {
        "type": "photo-avatar",
        "character": "lisa",
        "style": "casual-sitting",
        "customized": False,
        "model": "vasa-1",
        "output_protocol": "websocket",
        "output_audit_audio": True,
        "ice_servers": [{"urls": ["stun:stun.example:3478"], "username": "u", "credential": "c"}],
        "video": {"bitrate": 2000000, "codec": "h264", "resolution": {"width": 1280, "height": 720}},
        "scene": {"zoom": 1.0, "position_x": 0},
        "x_av": "z",
    },
    "include": ["item.input_audio_transcription.logprobs", "file_search_call.results"],
    "metadata": {"run": "42", "k" * 64: "v" * 512},
    "x_top": {"a": [1, 2.5, None, True, "s", {"b": []}]},
}


def fresh_full() -> dict[str, Any]:
    return copy.deepcopy(FULL)


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def with_key(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """``base`` (a deep copy) with ``value`` placed at dotted ``path``."""
    out = copy.deepcopy(base) if base is not None else {}
    node = out
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value
    return out


TD_SERVER = {"turn_detection": {"type": "server_vad"}}
TD_AZURE = {"turn_detection": {"type": "azure_semantic_vad"}}
TD_MULTI = {"turn_detection": {"type": "azure_semantic_vad_multilingual"}}
TD_SEMANTIC = {"turn_detection": {"type": "semantic_vad"}}
EOU = {
    "turn_detection": {
        "type": "azure_semantic_vad",
        "end_of_utterance_detection": {"model": "semantic_detection_v1"},
    }
}
STD_VOICE = {"voice": {"type": "azure-standard", "name": "en-US-AvaNeural"}}
OAI_VOICE = {"voice": {"type": "openai", "name": "alloy"}}
EC = {"input_audio_echo_cancellation": {"type": "server_echo_cancellation"}}
TR_AZ = {"input_audio_transcription": {"model": "azure-speech"}}
TR_WH = {"input_audio_transcription": {"model": "whisper-1"}}
IR_STATIC = {"interim_response": {"type": "static_interim_response"}}
IR_LLM = {"interim_response": {"type": "llm_interim_response"}}
AV = {"avatar": {"character": "lisa"}}
FN = {"tools": [{"type": "function", "name": "f"}]}
MCP = {"tools": [{"type": "mcp", "server_label": "s", "server_url": "https://s"}]}

TD_TYPES = (
    "server_vad, azure_semantic_vad, azure_semantic_vad_en, azure_semantic_vad_multilingual, semantic_vad"
)

BAD_VALUES: list[tuple[str, dict[str, Any], str, str]] = [
    # (id, wire dict, field named in the error, text of the allowed part)
    ("model-type", {"model": 5}, "model", "a string"),
    ("modalities-item", {"modalities": ["text", "video"]}, "modalities", "text, audio, animation, avatar"),
    ("modalities-dup", {"modalities": ["text", "text"]}, "modalities", "distinct"),
    ("modalities-str", {"modalities": "text"}, "modalities", "a list of distinct values"),
    ("modalities-empty", {"modalities": []}, "modalities", "at least one modality"),
    (
        "modalities-avatar",
        {"modalities": ["text", "avatar"]},
        "modalities",
        "avatar only together with text and audio",
    ),
    ("instructions-type", {"instructions": 3}, "instructions", "a string"),
    ("voice-bare-name", {"voice": "bob"}, "voice", "one of: alloy, ash"),
    ("voice-wrong-type", {"voice": 3}, "voice", "an OpenAI voice name or a voice object"),
    (
        "voice-type",
        {"voice": {"type": "google", "name": "x"}},
        "voice.type",
        "one of: openai, azure-standard",
    ),
    ("voice-type-missing", {"voice": {"name": "x"}}, "voice.type", "one of: openai"),
    ("voice-openai-name", {"voice": {"type": "openai", "name": "bob"}}, "voice.name", "alloy"),
    ("voice-native-name", {"voice": {"type": "azure-realtime-native", "name": "bob"}}, "voice.name", "ava"),
    ("voice-name-missing", {"voice": {"type": "azure-standard"}}, "voice.name", "non-empty string"),
    ("voice-name-empty", {"voice": {"type": "azure-standard", "name": ""}}, "voice.name", "non-empty string"),
    (
        "voice-endpoint",
        {"voice": {"type": "azure-custom", "name": "v"}},
        "voice.endpoint_id",
        "non-empty string",
    ),
    (
        "voice-personal-model",
        {"voice": {"type": "azure-personal", "name": "v"}},
        "voice.model",
        "PhoenixV2Neural",
    ),
    (
        "voice-personal-bad-model",
        {"voice": {"type": "azure-personal", "name": "v", "model": "Nope"}},
        "voice.model",
        "DragonLatestNeural",
    ),
    ("voice-sync-model", {"voice": {"type": "avatar-voice-sync"}}, "voice.model", "MAI-Voice-1"),
    ("voice-temperature", with_key("voice.temperature", 1.5, STD_VOICE), "voice.temperature", "0.0 to 1.0"),
    (
        "voice-temperature-neg",
        with_key("voice.temperature", -0.1, STD_VOICE),
        "voice.temperature",
        "0.0 to 1.0",
    ),
    (
        "voice-temperature-openai",
        with_key("voice.temperature", 0.5, OAI_VOICE),
        "voice.temperature",
        "azure-standard",
    ),
    ("voice-style-openai", with_key("voice.style", "sad", OAI_VOICE), "voice.style", "only when voice.type"),
    (
        "voice-prefer-locales",
        with_key("voice.prefer_locales", "en-US", STD_VOICE),
        "voice.prefer_locales",
        "list",
    ),
    ("voice-pitch", with_key("voice.pitch", 5, STD_VOICE), "voice.pitch", "a string"),
    (
        "voice-endpoint-std",
        with_key("voice.endpoint_id", "e", STD_VOICE),
        "voice.endpoint_id",
        "azure-custom",
    ),
    (
        "input-format",
        {"input_audio_format": "pcm24"},
        "input_audio_format",
        "one of: pcm16, g711_ulaw, g711_alaw",
    ),
    ("output-format", {"output_audio_format": "mp3"}, "output_audio_format", "pcm16_8000hz"),
    ("rate", {"input_audio_sampling_rate": 44100}, "input_audio_sampling_rate", "one of: 8000, 16000, 24000"),
    ("rate-str", {"input_audio_sampling_rate": "24000"}, "input_audio_sampling_rate", "8000, 16000, 24000"),
    ("rate-float", {"input_audio_sampling_rate": 24000.0}, "input_audio_sampling_rate", "8000, 16000, 24000"),
    (
        "rate-g711",
        {"input_audio_format": "g711_ulaw", "input_audio_sampling_rate": 24000},
        "input_audio_sampling_rate",
        "8000 with input_audio_format g711_ulaw",
    ),
    ("td-not-object", {"turn_detection": "server_vad"}, "turn_detection", "a JSON object"),
    ("td-type", {"turn_detection": {"type": "webrtc_vad"}}, "turn_detection.type", TD_TYPES),
    ("td-type-missing", {"turn_detection": {"threshold": 0.5}}, "turn_detection.type", TD_TYPES),
    ("td-type-null", {"turn_detection": {"type": None}}, "turn_detection.type", TD_TYPES),
    (
        "threshold-high",
        with_key("turn_detection.threshold", 1.5, TD_SERVER),
        "turn_detection.threshold",
        "0.0 to 1.0",
    ),
    (
        "threshold-low",
        with_key("turn_detection.threshold", -0.01, TD_AZURE),
        "turn_detection.threshold",
        "0.0 to 1.0",
    ),
    (
        "threshold-str",
        with_key("turn_detection.threshold", "0.5", TD_SERVER),
        "turn_detection.threshold",
        "0.0 to 1.0",
    ),
    (
        "threshold-bool",
        with_key("turn_detection.threshold", True, TD_SERVER),
        "turn_detection.threshold",
        "0.0 to",
    ),
    (
        "threshold-nan",
        with_key("turn_detection.threshold", float("nan"), TD_SERVER),
        "turn_detection.threshold",
        "0.0",
    ),
    (
        "threshold-semantic",
        with_key("turn_detection.threshold", 0.5, TD_SEMANTIC),
        "turn_detection.threshold",
        "server_vad, azure_semantic_vad",
    ),
    (
        "prefix-neg",
        with_key("turn_detection.prefix_padding_ms", -1, TD_SERVER),
        "turn_detection.prefix_padding_ms",
        "integers 0 to 10000",
    ),
    (
        "prefix-float",
        with_key("turn_detection.prefix_padding_ms", 300.5, TD_SERVER),
        "turn_detection.prefix_padding_ms",
        "integers 0 to 10000",
    ),
    (
        "silence-high",
        with_key("turn_detection.silence_duration_ms", 10_001, TD_AZURE),
        "turn_detection.silence_duration_ms",
        "integers 0 to 10000",
    ),
    (
        "speech-duration",
        with_key("turn_detection.speech_duration_ms", -5, TD_AZURE),
        "turn_detection.speech_duration_ms",
        "integers 0 to 10000",
    ),
    (
        "filler-server",
        with_key("turn_detection.remove_filler_words", True, TD_SERVER),
        "turn_detection.remove_filler_words",
        "azure_semantic_vad, azure_semantic_vad_en, azure_semantic_vad_multilingual",
    ),
    (
        "filler-type",
        with_key("turn_detection.remove_filler_words", "no", TD_AZURE),
        "turn_detection.remove_filler_words",
        "true or false",
    ),
    (
        "languages-server",
        with_key("turn_detection.languages", ["en"], TD_SERVER),
        "turn_detection.languages",
        "azure_semantic_vad, azure_semantic_vad_multilingual",
    ),
    (
        "languages-en-type",
        {"turn_detection": {"type": "azure_semantic_vad_en", "languages": ["en"]}},
        "turn_detection.languages",
        "only when turn_detection.type",
    ),
    (
        "languages-azure-unknown",
        with_key("turn_detection.languages", ["en-US", "sv-SE"], TD_AZURE),
        "turn_detection.languages",
        "en, es, fr, it, de, ja, pt, zh, ko, hi",
    ),
    (
        "languages-multi",
        with_key("turn_detection.languages", ["sv-SE"], TD_MULTI),
        "turn_detection.languages",
        "en, es, fr, it, de, ja, pt, zh, ko, hi",
    ),
    (
        "eagerness-server",
        with_key("turn_detection.eagerness", "low", TD_SERVER),
        "turn_detection.eagerness",
        "only when turn_detection.type is one of: semantic_vad",
    ),
    (
        "eagerness-value",
        with_key("turn_detection.eagerness", "eager", TD_SEMANTIC),
        "turn_detection.eagerness",
        "one of: auto, low, medium, high",
    ),
    (
        "create-response",
        with_key("turn_detection.create_response", "yes", TD_SERVER),
        "turn_detection.create_response",
        "true or false",
    ),
    (
        "interrupt-response",
        with_key("turn_detection.interrupt_response", 1, TD_SEMANTIC),
        "turn_detection.interrupt_response",
        "true or false",
    ),
    (
        "auto-truncate",
        with_key("turn_detection.auto_truncate", "true", TD_AZURE),
        "turn_detection.auto_truncate",
        "true or false",
    ),
    (
        "appended-text-server",
        with_key("turn_detection.appended_text_after_truncation", "…", TD_SERVER),
        "turn_detection.appended_text_after_truncation",
        "azure_semantic_vad",
    ),
    (
        "eou-semantic",
        with_key(
            "turn_detection.end_of_utterance_detection", {"model": "semantic_detection_v1"}, TD_SEMANTIC
        ),
        "turn_detection.end_of_utterance_detection",
        "server_vad",
    ),
    (
        "eou-model",
        with_key("turn_detection.end_of_utterance_detection.model", "smart_end_of_turn_detection", EOU),
        "turn_detection.end_of_utterance_detection.model",
        "semantic_detection_v1, semantic_detection_v1_en, semantic_detection_v1_multilingual",
    ),
    (
        "eou-model-missing",
        with_key("turn_detection.end_of_utterance_detection", {"timeout_ms": 5}, TD_AZURE),
        "turn_detection.end_of_utterance_detection.model",
        "semantic_detection_v1",
    ),
    (
        "eou-level",
        with_key("turn_detection.end_of_utterance_detection.threshold_level", "max", EOU),
        "turn_detection.end_of_utterance_detection.threshold_level",
        "low, medium, high, default",
    ),
    (
        "eou-timeout-ms",
        with_key("turn_detection.end_of_utterance_detection.timeout_ms", 20_000, EOU),
        "turn_detection.end_of_utterance_detection.timeout_ms",
        "0 to 10000",
    ),
    (
        "eou-legacy-threshold",
        with_key("turn_detection.end_of_utterance_detection.threshold", 2, EOU),
        "turn_detection.end_of_utterance_detection.threshold",
        "0.0 to 1.0",
    ),
    (
        "eou-legacy-timeout",
        with_key("turn_detection.end_of_utterance_detection.timeout", 11, EOU),
        "turn_detection.end_of_utterance_detection.timeout",
        "0 to 10",
    ),
    (
        "eou-mixed-shapes",
        with_key(
            "turn_detection.end_of_utterance_detection",
            {"model": "semantic_detection_v1", "threshold": 0.01, "timeout_ms": 500},
            TD_AZURE,
        ),
        "turn_detection.end_of_utterance_detection.timeout_ms",
        "legacy {model, threshold, timeout}",
    ),
    (
        "nr-type",
        {"input_audio_noise_reduction": {"type": "rnnoise"}},
        "input_audio_noise_reduction.type",
        "azure_deep_noise_suppression, near_field, far_field",
    ),
    ("nr-missing", {"input_audio_noise_reduction": {}}, "input_audio_noise_reduction.type", "near_field"),
    (
        "ec-type",
        {"input_audio_echo_cancellation": {"type": "aec3"}},
        "input_audio_echo_cancellation.type",
        "one of: server_echo_cancellation",
    ),
    (
        "ec-missing-type",
        {"input_audio_echo_cancellation": {}},
        "input_audio_echo_cancellation.type",
        "server_echo",
    ),
    (
        "ec-source",
        with_key("input_audio_echo_cancellation.reference_source", "speaker", EC),
        "input_audio_echo_cancellation.reference_source",
        "one of: server, client",
    ),
    (
        "ec-channels",
        with_key("input_audio_echo_cancellation.channels", 3, EC),
        "input_audio_echo_cancellation.channels",
        "one of: 1, 2",
    ),
    (
        "ec-channels-bool",
        with_key("input_audio_echo_cancellation.channels", True, EC),
        "input_audio_echo_cancellation.channels",
        "one of: 1, 2",
    ),
    (
        "ec-server-2",
        with_key("input_audio_echo_cancellation.channels", 2, EC),
        "input_audio_echo_cancellation.channels",
        "reference_source server with channels 1, or reference_source client with channels 2",
    ),
    (
        "ec-client-1",
        with_key("input_audio_echo_cancellation.reference_source", "client", EC),
        "input_audio_echo_cancellation.reference_source",
        "reference_source client with channels 2",
    ),
    (
        "ec-client-g711",
        {
            "input_audio_format": "g711_alaw",
            "input_audio_echo_cancellation": {
                "type": "server_echo_cancellation",
                "reference_source": "client",
                "channels": 2,
            },
        },
        "input_audio_echo_cancellation.reference_source",
        "'client' only with input_audio_format pcm16",
    ),
    (
        "tr-model",
        {"input_audio_transcription": {"model": "kaldi"}},
        "input_audio_transcription.model",
        "azure-speech",
    ),
    (
        "tr-model-missing",
        {"input_audio_transcription": {"language": "en"}},
        "input_audio_transcription.model",
        "whisper",
    ),
    (
        "tr-language",
        with_key("input_audio_transcription.language", ["en"], TR_AZ),
        "input_audio_transcription.language",
        "a string",
    ),
    (
        "tr-custom-speech-whisper",
        with_key("input_audio_transcription.custom_speech", {"en-US": "id"}, TR_WH),
        "input_audio_transcription.custom_speech",
        "only when input_audio_transcription.model is one of: azure-speech",
    ),
    (
        "tr-custom-speech-type",
        with_key("input_audio_transcription.custom_speech", "id", TR_AZ),
        "input_audio_transcription.custom_speech",
        "a JSON object",
    ),
    (
        "tr-phrase-list-whisper",
        with_key("input_audio_transcription.phrase_list", ["a"], TR_WH),
        "input_audio_transcription.phrase_list",
        "azure-speech, mai-transcribe",
    ),
    (
        "tr-prompt-azure",
        with_key("input_audio_transcription.prompt", "p", TR_AZ),
        "input_audio_transcription.prompt",
        "whisper-1, gpt-4o-transcribe",
    ),
    ("tools-not-list", {"tools": {"type": "function"}}, "tools", "a list of tool objects"),
    ("tools-item", {"tools": ["f"]}, "tools[0]", "a tool object"),
    ("tools-type", {"tools": [{"type": "web_search"}]}, "tools[0].type", "one of: function, mcp"),
    ("tools-name", {"tools": [{"type": "function"}]}, "tools[0].name", "a non-empty string"),
    (
        "tools-params",
        with_key("tools", [{"type": "function", "name": "f", "parameters": []}]),
        "tools[0].parameters",
        "a JSON object",
    ),
    (
        "tools-desc",
        {"tools": [{"type": "function", "name": "f", "description": 1}]},
        "tools[0].description",
        "string",
    ),
    (
        "mcp-url",
        {"tools": [FN["tools"][0], {"type": "mcp", "server_label": "s"}]},
        "tools[1].server_url",
        "non-empty",
    ),
    ("mcp-label", {"tools": [{"type": "mcp", "server_url": "u"}]}, "tools[0].server_label", "non-empty"),
    (
        "mcp-approval",
        {"tools": [dict(MCP["tools"][0], require_approval="sometimes")]},
        "tools[0].require_approval",
        "never, always, or {never: [tool names], always: [tool names]}",
    ),
    (
        "mcp-approval-map",
        {"tools": [dict(MCP["tools"][0], require_approval={"maybe": ["x"]})]},
        "tools[0].require_approval",
        "never, always",
    ),
    ("mcp-headers", {"tools": [dict(MCP["tools"][0], headers=["a"])]}, "tools[0].headers", "a JSON object"),
    ("mcp-allowed", {"tools": [dict(MCP["tools"][0], allowed_tools="x")]}, "tools[0].allowed_tools", "list"),
    ("tool-choice-empty", {"tool_choice": ""}, "tool_choice", "auto, none, required"),
    ("tool-choice-object", {"tool_choice": {"type": "mcp"}}, "tool_choice", "{type: function, name}"),
    ("tool-choice-int", {"tool_choice": 1}, "tool_choice", "a function name"),
    ("parallel", {"parallel_tool_calls": "yes"}, "parallel_tool_calls", "true or false"),
    ("temperature-high", {"temperature": 2.5}, "temperature", "0.0 to 2.0"),
    ("temperature-neg", {"temperature": -0.1}, "temperature", "0.0 to 2.0"),
    ("temperature-inf", {"temperature": float("inf")}, "temperature", "0.0 to 2.0"),
    (
        "tokens-zero",
        {"max_response_output_tokens": 0},
        "max_response_output_tokens",
        "integers 1 to 4096 or 'inf'",
    ),
    ("tokens-high", {"max_response_output_tokens": 4097}, "max_response_output_tokens", "integers 1 to 4096"),
    ("tokens-str", {"max_response_output_tokens": "infinite"}, "max_response_output_tokens", "or 'inf'"),
    (
        "tokens-float",
        {"max_response_output_tokens": 10.0},
        "max_response_output_tokens",
        "integers 1 to 4096",
    ),
    ("tokens-alias", {"max_output_tokens": 5000}, "max_response_output_tokens", "integers 1 to 4096"),
    (
        "tokens-both",
        {"max_output_tokens": 5, "max_response_output_tokens": 6},
        "max_response_output_tokens",
        "not both",
    ),
    (
        "reasoning",
        {"reasoning_effort": "extreme"},
        "reasoning_effort",
        "none, minimal, low, medium, high, xhigh",
    ),
    ("ir-type", {"interim_response": {"type": "spoken"}}, "interim_response.type", "static_interim_response"),
    ("ir-missing", {"interim_response": {"texts": ["a"]}}, "interim_response.type", "llm_interim_response"),
    (
        "ir-trigger",
        with_key("interim_response.triggers", ["silence"], IR_STATIC),
        "interim_response.triggers",
        "latency, tool",
    ),
    (
        "ir-latency",
        with_key("interim_response.latency_threshold_ms", 60_001, IR_STATIC),
        "interim_response.latency_threshold_ms",
        "integers 0 to 60000",
    ),
    (
        "ir-texts-llm",
        with_key("interim_response.texts", ["a"], IR_LLM),
        "interim_response.texts",
        "only when interim_response.type is one of: static_interim_response",
    ),
    (
        "ir-model-static",
        with_key("interim_response.model", "m", IR_STATIC),
        "interim_response.model",
        "llm_interim",
    ),
    (
        "ir-max-tokens",
        with_key("interim_response.max_completion_tokens", 0, IR_LLM),
        "interim_response.max_completion_tokens",
        "integers 1 to 4096",
    ),
    (
        "ir-both-spellings",
        {"interim_response": IR_LLM["interim_response"], "interim-response": IR_LLM["interim_response"]},
        "interim_response",
        "not both",
    ),
    ("timestamps", {"output_audio_timestamp_types": ["phoneme"]}, "output_audio_timestamp_types", "word"),
    (
        "animation-outputs",
        {"animation": {"outputs": ["mesh"]}},
        "animation.outputs",
        "blendshapes, viseme_id",
    ),
    ("animation-model", {"animation": {"model_name": 1}}, "animation.model_name", "a string"),
    ("avatar-character", {"avatar": {"style": "s"}}, "avatar.character", "a non-empty string"),
    ("avatar-type", with_key("avatar.type", "3d-avatar", AV), "avatar.type", "video-avatar, photo-avatar"),
    ("avatar-model-video", with_key("avatar.model", "vasa-1", AV), "avatar.model", "photo-avatar"),
    (
        "avatar-protocol",
        with_key("avatar.output_protocol", "rtmp", AV),
        "avatar.output_protocol",
        "webrtc, websocket",
    ),
    ("avatar-customized", with_key("avatar.customized", "no", AV), "avatar.customized", "true or false"),
    ("avatar-ice", with_key("avatar.ice_servers", {"urls": []}, AV), "avatar.ice_servers", "a list of {urls"),
    ("avatar-video", with_key("avatar.video", [1], AV), "avatar.video", "a JSON object"),
    ("include", {"include": ["item.audio"]}, "include", "file_search_call.results"),
    ("metadata-pairs", {"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "at most 16 pairs"),
    ("metadata-key", {"metadata": {"k" * 65: "v"}}, "metadata." + "k" * 65, "1 to 64 characters"),
    ("metadata-value", {"metadata": {"k": "v" * 513}}, "metadata.k", "at most 512 characters"),
    ("metadata-value-type", {"metadata": {"k": 5}}, "metadata.k", "string values"),
    ("metadata-not-object", {"metadata": ["k"]}, "metadata", "a JSON object"),
    ("session-not-object", [], "session", "a JSON object"),  # type: ignore[list-item]
]


@pytest.mark.parametrize(
    ("wire", "field", "allowed"), [b[1:] for b in BAD_VALUES], ids=[b[0] for b in BAD_VALUES]
)
def test_bad_value_raises_config_error_naming_field_and_allowed(wire: Any, field: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as info:
        SessionConfig.from_dict(wire)
    err = info.value
    assert err.field == field
    message = str(err)
    assert field in message
    assert "allowed: " in message
    assert allowed in message
    assert allowed in err.allowed or allowed in message


def test_error_message_has_the_documented_shape() -> None:
    with pytest.raises(ConfigError) as info:
        SessionConfig.from_dict({"turn_detection": {"type": "server_vad", "threshold": 1.5}})
    assert str(info.value) == "invalid turn_detection.threshold: 1.5; allowed: 0.0 to 1.0"
    assert info.value.value == 1.5
    assert info.value.allowed == "0.0 to 1.0"


def test_knob_for_wrong_vad_type_says_which_types_allow_it() -> None:
    with pytest.raises(ConfigError) as info:
        SessionConfig.from_dict({"turn_detection": {"type": "server_vad", "remove_filler_words": False}})
    assert str(info.value) == (
        "invalid turn_detection.remove_filler_words: False is not valid for turn_detection.type 'server_vad'; "
        "allowed: only when turn_detection.type is one of: "
        "azure_semantic_vad, azure_semantic_vad_en, azure_semantic_vad_multilingual"
    )


def test_validation_also_runs_on_direct_construction() -> None:
    with pytest.raises(ConfigError, match=r"turn_detection\.threshold"):
        TurnDetection(type="server_vad", threshold=2)
    with pytest.raises(ConfigError, match="temperature"):
        SessionConfig(temperature=3.0)
    with pytest.raises(ConfigError, match=r"voice\.temperature"):
        Voice(type="azure-standard", name="x", temperature=2)
    with pytest.raises(ConfigError, match=r"end_of_utterance_detection\.model"):
        EndOfUtteranceDetection(timeout_ms=1)
    with pytest.raises(ConfigError, match="input_audio_echo_cancellation.channels"):
        EchoCancellation(channels=2)
    with pytest.raises(ConfigError, match=r"tools\.name"):
        FunctionTool()
    with pytest.raises(ConfigError, match=r"tools\.type"):
        FunctionTool(type="mcp", name="x")
    with pytest.raises(ConfigError, match=r"tools\.type"):
        McpTool(type="function", server_label="a", server_url="b")
    with pytest.raises(ConfigError, match="avatar.character"):
        Avatar(type="video-avatar")
    with pytest.raises(ConfigError, match="animation.outputs"):
        Animation(outputs=("mesh",))
    with pytest.raises(ConfigError, match="input_audio_noise_reduction.type"):
        NoiseReduction(type="x")
    with pytest.raises(ConfigError, match="interim_response.type"):
        InterimResponse()
    with pytest.raises(ConfigError, match="input_audio_transcription.prompt"):
        InputTranscription(model="azure-speech", prompt="p")
    with pytest.raises(ConfigError, match="modalities"):
        SessionConfig(modalities=["audio", "avatar"])


def test_nested_dicts_are_accepted_on_construction_and_validated() -> None:
    cfg = SessionConfig(
        turn_detection={"type": "server_vad", "threshold": 0.7}, voice={"type": "openai", "name": "ash"}
    )  # type: ignore[arg-type]
    assert cfg.turn_detection == TurnDetection(type="server_vad", threshold=0.7)
    assert cfg.voice == Voice(type="openai", name="ash")
    with pytest.raises(ConfigError, match=r"turn_detection\.threshold"):
        SessionConfig(turn_detection={"type": "server_vad", "threshold": 7})  # type: ignore[arg-type]


def test_extra_may_not_shadow_a_modelled_field() -> None:
    with pytest.raises(ConfigError) as info:
        TurnDetection(type="server_vad", extra={"threshold": 0.5})
    assert info.value.field == "turn_detection.extra"
    with pytest.raises(ConfigError) as info:
        SessionConfig(extra={"max_output_tokens": 5})
    assert info.value.field == "extra"


def test_null_is_accepted_for_optional_knobs_even_where_the_type_does_not_use_them() -> None:
    wire = {"turn_detection": {"type": "server_vad", "eagerness": None, "remove_filler_words": None}}
    assert SessionConfig.from_dict(wire).to_dict() == wire


@pytest.mark.parametrize(
    "wire",
    [
        {
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.0,
                "prefix_padding_ms": 0,
                "silence_duration_ms": 10_000,
            }
        },
        {"turn_detection": {"type": "azure_semantic_vad", "threshold": 1.0, "languages": ["en", "en-GB"]}},
        {
            "turn_detection": {
                "type": "azure_semantic_vad_multilingual",
                "languages": ["zh-CN", "hi", "pt-BR"],
            }
        },
        {"turn_detection": {"type": "semantic_vad", "eagerness": "medium", "auto_truncate": True}},
        {"temperature": 0.0},
        {"temperature": 2.0},
        {"temperature": 1},
        {"max_response_output_tokens": 1},
        {"max_response_output_tokens": 4096},
        {"max_response_output_tokens": "inf"},
        {"input_audio_format": "g711_ulaw", "input_audio_sampling_rate": 8000},
        {"voice": {"type": "azure-personal", "name": "p", "model": "MAI-Voice-1", "temperature": 1.0}},
        {"voice": {"type": "avatar-voice-sync", "model": "DragonLatestNeural"}},
        {"voice": {"type": "azure-realtime-native", "name": "ava"}},
        {"voice": "cedar"},
        {"metadata": {f"k{i}": "" for i in range(16)}},
        {"tool_choice": "lookup"},
        {"tool_choice": "required"},
        {"input_audio_noise_reduction": {"type": "near_field"}},
        {"input_audio_noise_reduction": {"type": "far_field"}},
        {
            "input_audio_echo_cancellation": {
                "type": "server_echo_cancellation",
                "reference_source": "server",
                "channels": 1,
            }
        },
        {"avatar": {"type": "video-avatar", "character": "lisa"}},
        {"instructions": ""},
    ],
)
def test_boundary_and_variant_values_are_accepted(wire: dict[str, Any]) -> None:
    assert SessionConfig.from_dict(wire).to_dict() == wire


# ---------------------------------------------------------------------------------------------
# Spec-driven validation: every numeric / choice / bool field, from the spec table itself
# ---------------------------------------------------------------------------------------------


def context_for(spec: FieldSpec) -> tuple[dict[str, Any], list[str]]:
    """A minimal valid wire dict in which the parent object of ``spec`` exists (with a discriminator
    value the field applies to), and the key path of ``spec`` inside it."""
    parts = spec.path.split(".")
    disc = spec.applies_to[0] if spec.applies_to else None
    parents: dict[str, dict[str, Any]] = {
        "voice": {
            "type": disc or "azure-standard",
            "name": "alloy" if disc == "openai" else "en-US-AvaNeural",
        },
        "turn_detection": {"type": disc or "server_vad"},
        "input_audio_noise_reduction": {"type": "azure_deep_noise_suppression"},
        "input_audio_echo_cancellation": {"type": "server_echo_cancellation"},
        "input_audio_transcription": {"model": disc or "azure-speech"},
        "interim_response": {"type": disc or "static_interim_response"},
        "animation": {},
        "avatar": {"character": "lisa", "type": disc or "video-avatar"},
    }
    if parts[0] == "voice" and parents["voice"]["type"] == "azure-custom":
        parents["voice"]["endpoint_id"] = "e"
    if parts[0] == "voice" and parents["voice"]["type"] in ("azure-personal", "avatar-voice-sync"):
        parents["voice"]["model"] = "DragonLatestNeural"
    if parents["voice"]["type"] == "avatar-voice-sync":
        del parents["voice"]["name"]
    if parents["voice"]["type"] == "azure-realtime-native":
        parents["voice"]["name"] = "ava"
    if len(parts) == 1:
        return {}, parts
    if parts[0] == "turn_detection" and len(parts) == 3:
        return {
            "turn_detection": {
                "type": "server_vad",
                "end_of_utterance_detection": {"model": "semantic_detection_v1"},
            }
        }, parts
    return {parts[0]: parents[parts[0]]}, parts


def place(base: dict[str, Any], parts: list[str], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    node = out
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value
    return out


SCALAR_SPECS = [s for s in field_specs() if s.kind in ("float", "int", "choice", "bool")]


@pytest.mark.parametrize("spec", SCALAR_SPECS, ids=[s.path for s in SCALAR_SPECS])
def test_every_scalar_spec_accepts_its_range_and_rejects_outside(spec: FieldSpec) -> None:
    base, parts = context_for(spec)
    if spec.path == "input_audio_sampling_rate":
        base = {"input_audio_format": "pcm16"}
    good: list[Any]
    bad: list[Any]
    if spec.kind in ("float", "int"):
        good = [spec.minimum, spec.maximum]
        bad = [spec.minimum - 1, spec.maximum + 1, "1", True]  # type: ignore[operator]
        if spec.kind == "int":
            bad.append(float(spec.minimum) + 0.5)  # type: ignore[arg-type]
    elif spec.kind == "choice":
        good = list(spec.choices)
        bad = ["not-a-choice", True, 3.5]
    else:
        good = [True, False]
        bad = ["true", 1, 0]
    if (
        spec.path.startswith("input_audio_echo_cancellation.")
        and spec.path != "input_audio_echo_cancellation.type"
    ):
        # channels and reference_source only come in valid pairs (tested on their own)
        good = []
    if spec.path == "voice.type":
        good = []  # each voice type has its own required fields (see test_variants_round_trip)
    for value in good:
        wire = place(base, parts, value)
        assert SessionConfig.from_dict(wire).to_dict() == wire, value
    for value in bad:
        with pytest.raises(ConfigError) as info:
            SessionConfig.from_dict(place(base, parts, value))
        assert info.value.field == spec.path
        assert spec.allowed in str(info.value)


@pytest.mark.parametrize(
    "spec", [s for s in field_specs() if s.applies_to], ids=[s.path for s in field_specs() if s.applies_to]
)
def test_every_type_restricted_spec_is_rejected_for_other_types(spec: FieldSpec) -> None:
    assert spec.discriminator is not None
    disc_spec = field_spec(spec.discriminator)
    others = [c for c in disc_spec.choices if c not in spec.applies_to]
    assert others, spec.path
    sample = {
        "float": 0.5,
        "int": 100,
        "bool": True,
        "str": "x",
        "text": "x",
        "list": ["en"],
        "object": {"model": "semantic_detection_v1"},
        "choice": spec.choices[0] if spec.choices else "x",
    }[spec.kind]
    if spec.path == "voice.name":
        sample = "alloy"  # valid for the first type it applies to (openai)
    good_base, parts = context_for(spec)
    assert SessionConfig.from_dict(place(good_base, parts, sample)).value_at(spec.path) is not UNSET
    for other in others:
        base = copy.deepcopy(good_base)
        parent = base[parts[0]]
        parent[spec.discriminator.split(".")[-1]] = other
        parent.pop("endpoint_id", None)
        if parts[0] == "voice":  # satisfy the other voice type's own required fields
            parent.update(
                {"name": "alloy" if other == "openai" else "ava" if other == "azure-realtime-native" else "n"}
            )
            if other == "azure-custom":
                parent["endpoint_id"] = "e"
            if other in ("azure-personal", "avatar-voice-sync"):
                parent["model"] = "DragonLatestNeural"
                if other == "avatar-voice-sync":
                    del parent["name"]
        with pytest.raises(ConfigError) as info:
            SessionConfig.from_dict(place(base, parts, sample))
        assert info.value.field == spec.path
        assert "only when " + spec.discriminator in str(info.value)
        assert ", ".join(spec.applies_to) in str(info.value)


# ---------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------


def test_full_config_round_trips_losslessly() -> None:
    wire = fresh_full()
    cfg = SessionConfig.from_dict(wire)
    assert cfg.to_dict() == FULL
    assert SessionConfig.from_dict(cfg.to_dict()) == cfg
    assert wire == FULL  # input not mutated


def test_full_config_is_typed() -> None:
    cfg = SessionConfig.from_dict(fresh_full())
    assert isinstance(cfg.turn_detection, TurnDetection)
    assert isinstance(cfg.turn_detection.end_of_utterance_detection, EndOfUtteranceDetection)
    assert cfg.turn_detection.end_of_utterance_detection.timeout_ms == 900
    assert cfg.turn_detection.languages == ("en-US", "fr", "ja-JP")
    assert isinstance(cfg.voice, Voice) and cfg.voice.prefer_locales == ("en-GB", "en-US")
    assert isinstance(cfg.input_audio_echo_cancellation, EchoCancellation)
    assert isinstance(cfg.input_audio_transcription, InputTranscription)
    assert isinstance(cfg.interim_response, InterimResponse)
    assert isinstance(cfg.animation, Animation) and isinstance(cfg.avatar, Avatar)
    assert isinstance(cfg.tools, tuple)
    assert [type(t) for t in cfg.tools] == [FunctionTool, McpTool]
    assert cfg.extra["x_top"]["a"][5]["b"] == ()
    assert cfg.turn_detection.extra == {"x_td": 7}
    assert cfg.turn_detection.end_of_utterance_detection.extra == {"x_eou": "kept"}


UNKNOWN_KEY_PATHS = [
    "x_top",
    "voice.x_voice",
    "turn_detection.x_td",
    "turn_detection.end_of_utterance_detection.x_eou",
    "input_audio_noise_reduction.x_nr",
    "input_audio_echo_cancellation.x_ec",
    "input_audio_transcription.x_tr",
    "interim_response.x_ir",
    "animation.x_an",
    "avatar.x_av",
]


@pytest.mark.parametrize("path", UNKNOWN_KEY_PATHS)
def test_unknown_keys_survive_at_every_level(path: str) -> None:
    wire = place(fresh_full(), path.split("."), {"new": [1, {"deep": None}]})
    cfg = SessionConfig.from_dict(wire)
    assert cfg.to_dict() == wire
    assert _to_plain(cfg.value_at(path)) == {"new": [1, {"deep": None}]}


@pytest.mark.parametrize("index", [0, 1])
def test_unknown_keys_survive_in_tools(index: int) -> None:
    wire = fresh_full()
    wire["tools"][index]["x_new"] = {"a": 1}
    assert SessionConfig.from_dict(wire).to_dict() == wire


NULLABLE_PATHS = [
    "turn_detection",
    "input_audio_noise_reduction",
    "input_audio_echo_cancellation",
    "input_audio_transcription",
    "interim_response",
    "animation",
    "avatar",
    "turn_detection.end_of_utterance_detection",
    "turn_detection.threshold",
    "turn_detection.create_response",
    "voice.temperature",
    "instructions",
    "tools",
    "tool_choice",
    "metadata",
    "max_response_output_tokens",
    "input_audio_sampling_rate",
    "interim_response.texts",
    "avatar.video",
]


@pytest.mark.parametrize("path", NULLABLE_PATHS)
def test_explicit_null_is_kept_distinct_from_unset(path: str) -> None:
    wire = fresh_full()
    if path.startswith("interim_response."):
        wire["interim_response"] = {"type": "static_interim_response"}
    wire = place(wire, path.split("."), None)
    cfg = SessionConfig.from_dict(wire)
    assert cfg.value_at(path) is None
    assert cfg.to_dict() == wire
    parts = path.split(".")
    removed = copy.deepcopy(wire)
    node = removed
    for part in parts[:-1]:
        node = node[part]
    del node[parts[-1]]
    other = SessionConfig.from_dict(removed)
    assert other.value_at(path) is UNSET
    assert other != cfg


def test_unset_fields_are_omitted_and_empty_config_is_empty() -> None:
    assert SessionConfig().to_dict() == {}
    assert SessionConfig.from_dict({}) == SessionConfig()
    assert SessionConfig(turn_detection=None).to_dict() == {"turn_detection": None}


@pytest.mark.parametrize(
    "wire",
    [
        {"turn_detection": {"type": t, "threshold": 0.3, "prefix_padding_ms": 120, "silence_duration_ms": 0}}
        for t in ["server_vad", *AZURE_VADS]
    ]
    + [
        {
            "turn_detection": {
                "type": "server_vad",
                "speech_duration_ms": 200,
                "end_of_utterance_detection": None,
            }
        },
        {"turn_detection": {"type": "semantic_vad", "eagerness": "high", "create_response": True}},
        {"turn_detection": {"type": "azure_semantic_vad_en", "remove_filler_words": False}},
        {
            "turn_detection": {
                "type": "azure_semantic_vad",
                "end_of_utterance_detection": {
                    "model": "semantic_detection_v1",
                    "threshold": 0.01,
                    "timeout": 2,
                },
            }
        },
        {
            "turn_detection": {
                "type": "azure_semantic_vad_en",
                "end_of_utterance_detection": {
                    "model": "semantic_detection_v1_en",
                    "threshold_level": "default",
                    "timeout_ms": 1000,
                },
            }
        },
        {"voice": {"type": "openai", "name": "marin"}},
        {"voice": {"type": "azure-custom", "name": "v", "endpoint_id": "e", "style": "sad"}},
        {"voice": {"type": "azure-personal", "name": "p", "model": "PhoenixV2Neural", "locale": "de-DE"}},
        {"voice": {"type": "avatar-voice-sync", "model": "DragonHDOmniLatestNeural", "rate": "0.9"}},
        {"voice": {"type": "azure-realtime-native", "name": "xiaoxiao"}},
        {"voice": "alloy"},
        {
            "input_audio_transcription": {
                "model": "gpt-4o-transcribe",
                "prompt": "names: Ana",
                "language": "en",
            }
        },
        {"input_audio_transcription": {"model": "mai-transcribe-2", "phrase_list": ["x"]}},
        {
            "interim_response": {
                "type": "static_interim_response",
                "texts": ["one moment"],
                "triggers": ["tool"],
            }
        },
        {"tools": [], "tool_choice": "none", "parallel_tool_calls": True},
        {"tools": [{"type": "mcp", "server_label": "s", "server_url": "u", "require_approval": "never"}]},
        {"output_audio_format": "g711_alaw", "input_audio_format": "g711_alaw"},
    ],
)
def test_variants_round_trip(wire: dict[str, Any]) -> None:
    cfg = SessionConfig.from_dict(copy.deepcopy(wire))
    assert cfg.to_dict() == wire
    assert SessionConfig.from_dict(cfg.to_dict()) == cfg


def test_eou_shapes_are_distinguished() -> None:
    legacy = EndOfUtteranceDetection(model="semantic_detection_v1", threshold=0.01, timeout=2)
    current = EndOfUtteranceDetection(model="semantic_detection_v1", threshold_level="high", timeout_ms=800)
    assert legacy.is_legacy and not current.is_legacy
    assert legacy.to_dict() == {"model": "semantic_detection_v1", "threshold": 0.01, "timeout": 2}
    assert current.to_dict() == {
        "model": "semantic_detection_v1",
        "threshold_level": "high",
        "timeout_ms": 800,
    }


def test_alternate_spellings_are_normalised() -> None:
    cfg = SessionConfig.from_dict(
        {
            "max_output_tokens": 300,
            "interim-response": {"type": "static-interim-response", "texts": ["hm"]},
        }
    )
    assert cfg.max_response_output_tokens == 300
    assert cfg.to_dict() == {
        "max_response_output_tokens": 300,
        "interim_response": {"type": "static_interim_response", "texts": ["hm"]},
    }
    assert InterimResponse(type="llm-interim-response").type == "llm_interim_response"
    assert SessionConfig().replace(max_output_tokens="inf").max_response_output_tokens == "inf"


def test_config_is_immutable_and_outputs_are_copies() -> None:
    cfg = SessionConfig.from_dict(fresh_full())
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.temperature = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.extra["x_top"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        cfg.metadata["run"] = "1"  # type: ignore[index]
    out = cfg.to_dict()
    out["turn_detection"]["threshold"] = 0.99
    out["tools"][0]["parameters"]["type"] = "array"
    out["x_top"]["a"].append("more")
    assert cfg.to_dict() == FULL
    source = fresh_full()
    cfg2 = SessionConfig.from_dict(source)
    source["turn_detection"]["languages"].append("de")
    source["x_top"]["a"].clear()
    assert cfg2.to_dict() == FULL


# -- hypothesis ---------------------------------------------------------------------------------

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)
extras = st.dictionaries(st.sampled_from(["x_a", "x_b", "vendor_flag"]), json_value, max_size=2)


def nullable(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def obj(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    base = st.fixed_dictionaries(
        {k: v if isinstance(v, st.SearchStrategy) else st.just(v) for k, v in required.items()},
        optional={k: nullable(v) for k, v in optional.items()},
    )
    return st.tuples(base, extras).map(lambda pair: {**pair[0], **pair[1]})


unit = st.floats(0.0, 1.0)
ms = st.integers(0, 10_000)
word = st.text("abcdefgh-", min_size=1, max_size=8)
words = st.lists(word, max_size=3)

eou = st.one_of(
    obj(
        {
            "model": st.sampled_from(
                ["semantic_detection_v1", "semantic_detection_v1_en", "semantic_detection_v1_multilingual"]
            )
        },
        {"threshold_level": st.sampled_from(["low", "medium", "high", "default"]), "timeout_ms": ms},
    ),
    obj({"model": st.just("semantic_detection_v1")}, {"threshold": unit, "timeout": st.floats(0, 10)}),
)
common_knobs = {
    "create_response": st.booleans(),
    "interrupt_response": st.booleans(),
    "auto_truncate": st.booleans(),
}
classic_knobs = {
    "threshold": unit,
    "prefix_padding_ms": ms,
    "silence_duration_ms": ms,
    "speech_duration_ms": ms,
    "end_of_utterance_detection": eou,
    **common_knobs,
}
azure_knobs = {
    **classic_knobs,
    "remove_filler_words": st.booleans(),
    "appended_text_after_truncation": st.text(max_size=5),
}
turn_detection = st.one_of(
    obj({"type": "server_vad"}, classic_knobs),
    obj(
        {"type": "azure_semantic_vad"},
        {**azure_knobs, "languages": st.lists(st.sampled_from(["en", "en-US", "en-GB"]), max_size=2)},
    ),
    obj({"type": "azure_semantic_vad_en"}, azure_knobs),
    obj(
        {"type": "azure_semantic_vad_multilingual"},
        {
            **azure_knobs,
            "languages": st.lists(st.sampled_from(["en", "es-ES", "fr", "ja-JP", "zh", "hi-IN"]), max_size=3),
        },
    ),
    obj(
        {"type": "semantic_vad"},
        {"eagerness": st.sampled_from(["auto", "low", "medium", "high"]), **common_knobs},
    ),
)
azure_voice_knobs = {
    "temperature": unit,
    "custom_lexicon_url": word,
    "custom_text_normalization_url": word,
    "prefer_locales": words,
    "locale": word,
    "style": word,
    "pitch": word,
    "rate": word,
    "volume": word,
}
personal_models = st.sampled_from(
    [
        "DragonLatestNeural",
        "PhoenixLatestNeural",
        "PhoenixV2Neural",
        "DragonHDOmniLatestNeural",
        "MAI-Voice-1",
    ]
)
voice = st.one_of(
    st.sampled_from(OPENAI_VOICES),
    obj({"type": "openai", "name": st.sampled_from(OPENAI_VOICES)}, {}),
    obj({"type": "azure-standard", "name": word}, azure_voice_knobs),
    obj({"type": "azure-custom", "name": word, "endpoint_id": word}, azure_voice_knobs),
    obj({"type": "azure-personal", "name": word, "model": personal_models}, azure_voice_knobs),
    obj({"type": "avatar-voice-sync", "model": personal_models}, azure_voice_knobs),
    obj({"type": "azure-realtime-native", "name": st.sampled_from(["ava", "andrew", "ximena"])}, {}),
)
transcription = st.one_of(
    obj(
        {"model": "azure-speech"},
        {"language": word, "custom_speech": st.dictionaries(word, word, max_size=2), "phrase_list": words},
    ),
    obj(
        {"model": st.sampled_from(["mai-transcribe", "mai-transcribe-1", "mai-transcribe-2"])},
        {"language": word, "phrase_list": words},
    ),
    obj(
        {
            "model": st.sampled_from(
                ["whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-4o-transcribe-diarize"]
            )
        },
        {"language": word, "prompt": st.text(max_size=10)},
    ),
)
tool = st.one_of(
    obj(
        {"type": "function", "name": word},
        {"description": st.text(max_size=5), "parameters": st.dictionaries(word, json_value, max_size=2)},
    ),
    obj(
        {"type": "mcp", "server_label": word, "server_url": word},
        {
            "authorization": word,
            "headers": st.dictionaries(word, word, max_size=2),
            "allowed_tools": words,
            "require_approval": st.one_of(
                st.sampled_from(["never", "always"]),
                st.fixed_dictionaries({}, optional={"never": words, "always": words}),
            ),
        },
    ),
)
interim = st.one_of(
    obj(
        {"type": "static_interim_response"},
        {
            "triggers": st.sampled_from([["latency"], ["tool"], ["latency", "tool"]]),
            "latency_threshold_ms": st.integers(0, 60_000),
            "texts": words,
        },
    ),
    obj(
        {"type": "llm_interim_response"},
        {
            "triggers": st.sampled_from([["latency"], ["tool", "latency"]]),
            "latency_threshold_ms": st.integers(0, 60_000),
            "model": word,
            "instructions": st.text(max_size=8),
            "max_completion_tokens": st.integers(1, 4096),
        },
    ),
)
avatar = st.one_of(
    obj({"character": word}, {"type": st.just("video-avatar"), "style": word, "customized": st.booleans()}),
    obj(
        {"character": word, "type": "photo-avatar"},
        {
            "model": st.just("vasa-1"),
            "output_protocol": st.sampled_from(["webrtc", "websocket"]),
            "output_audit_audio": st.booleans(),
            "ice_servers": st.lists(st.fixed_dictionaries({"urls": words}), max_size=2),
            "video": st.dictionaries(word, json_value, max_size=2),
            "scene": st.dictionaries(word, json_value, max_size=2),
        },
    ),
)


@st.composite
def session_wires(draw: st.DrawFn) -> dict[str, Any]:
    optional: dict[str, st.SearchStrategy[Any]] = {
        "model": word,
        "modalities": st.sampled_from(
            [
                ["text"],
                ["text", "audio"],
                ["audio", "text"],
                ["text", "audio", "avatar"],
                ["text", "audio", "animation"],
            ]
        ),
        "instructions": st.text(max_size=10),
        "voice": voice,
        "output_audio_format": st.sampled_from(
            ["pcm16", "pcm16_8000hz", "pcm16_16000hz", "g711_ulaw", "g711_alaw"]
        ),
        "turn_detection": turn_detection,
        "input_audio_noise_reduction": obj(
            {"type": st.sampled_from(["azure_deep_noise_suppression", "near_field", "far_field"])}, {}
        ),
        "input_audio_transcription": transcription,
        "tools": st.lists(tool, max_size=2),
        "tool_choice": st.one_of(
            st.sampled_from(["auto", "none", "required"]),
            word,
            st.builds(lambda n: {"type": "function", "name": n}, word),
        ),
        "parallel_tool_calls": st.booleans(),
        "temperature": st.floats(0.0, 2.0),
        "max_response_output_tokens": st.one_of(st.integers(1, 4096), st.just("inf")),
        "reasoning_effort": st.sampled_from(["none", "minimal", "low", "medium", "high", "xhigh"]),
        "interim_response": interim,
        "output_audio_timestamp_types": st.just(["word"]),
        "animation": obj(
            {},
            {
                "model_name": word,
                "outputs": st.sampled_from([["blendshapes"], ["viseme_id"], ["viseme_id", "blendshapes"]]),
            },
        ),
        "avatar": avatar,
        "include": st.lists(
            st.sampled_from(
                [
                    "item.input_audio_transcription.logprobs",
                    "item.input_audio_transcription.phrases",
                    "file_search_call.results",
                ]
            ),
            unique=True,
        ),
        "metadata": st.dictionaries(
            st.text("kv", min_size=1, max_size=64), st.text("ab", max_size=512), max_size=16
        ),
    }
    wire = draw(obj({}, optional))
    fmt = draw(st.sampled_from([None, "absent", "pcm16", "g711_ulaw", "g711_alaw"]))
    if fmt != "absent":
        wire["input_audio_format"] = fmt
    if draw(st.booleans()):
        wire["input_audio_sampling_rate"] = (
            8000 if fmt in ("g711_ulaw", "g711_alaw") else draw(st.sampled_from([8000, 16000, 24000]))
        )
    ec = draw(st.sampled_from(["absent", "null", "server", "server-explicit", "client"]))
    if ec == "client" and fmt in ("g711_ulaw", "g711_alaw"):
        ec = "server"
    wire.update(
        {
            "absent": {},
            "null": {"input_audio_echo_cancellation": None},
            "server": {"input_audio_echo_cancellation": {"type": "server_echo_cancellation"}},
            "server-explicit": {
                "input_audio_echo_cancellation": {
                    "type": "server_echo_cancellation",
                    "reference_source": "server",
                    "channels": 1,
                }
            },
            "client": {
                "input_audio_echo_cancellation": {
                    "type": "server_echo_cancellation",
                    "reference_source": "client",
                    "channels": 2,
                }
            },
        }[ec]
    )
    return wire


HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYPOTHESIS
@given(session_wires())
def test_hypothesis_wire_round_trip(wire: dict[str, Any]) -> None:
    cfg = SessionConfig.from_dict(copy.deepcopy(wire))
    assert cfg.to_dict() == wire
    assert SessionConfig.from_dict(cfg.to_dict()) == cfg


@HYPOTHESIS
@given(session_wires(), session_wires())
def test_hypothesis_diff_then_merge_reaches_target(a_wire: dict[str, Any], b_wire: dict[str, Any]) -> None:
    a = SessionConfig.from_dict(a_wire)
    b = SessionConfig.from_dict({**{k: None for k in a_wire}, **b_wire})  # every key of a is also in b
    patch = a.diff(b)
    assert a.merge_update(patch) == b
    assert set(patch) <= set(b.to_dict())
    for key in patch:
        assert (
            key not in a.to_dict()
            or a.to_dict()[key] != b.to_dict()[key]
            or _differs_by_type(a.to_dict()[key], b.to_dict()[key])
        )
    assert b.diff(b) == {}


def _differs_by_type(x: Any, y: Any) -> bool:
    return repr(x) != repr(y)


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# merge_update, diff, replace, with_changes
# ---------------------------------------------------------------------------------------------


def test_merge_update_changes_only_supplied_keys() -> None:
    base = SessionConfig.quickstart()
    updated = base.merge_update({"instructions": "be terse", "temperature": 0.7})
    expected = base.to_dict() | {"instructions": "be terse", "temperature": 0.7}
    assert updated.to_dict() == expected
    assert base.to_dict()["instructions"] != "be terse"  # original untouched


def test_merge_update_replaces_nested_objects_whole() -> None:
    base = SessionConfig.quickstart()
    updated = base.merge_update({"turn_detection": {"type": "server_vad", "threshold": 0.6}})
    assert updated.to_dict()["turn_detection"] == {"type": "server_vad", "threshold": 0.6}
    updated = base.merge_update({"voice": {"type": "azure-standard", "name": "en-US-AndrewNeural"}})
    assert updated.to_dict()["voice"] == {"type": "azure-standard", "name": "en-US-AndrewNeural"}


def test_merge_update_explicit_null_disables() -> None:
    updated = SessionConfig.quickstart().merge_update(
        {"turn_detection": None, "input_audio_noise_reduction": None, "input_audio_echo_cancellation": None}
    )
    wire = updated.to_dict()
    assert wire["turn_detection"] is None
    assert wire["input_audio_noise_reduction"] is None
    assert wire["input_audio_echo_cancellation"] is None
    assert updated.turn_detection is None


def test_merge_update_accepts_aliases_unknown_keys_and_validates() -> None:
    base = SessionConfig(max_response_output_tokens=100)
    updated = base.merge_update({"max_output_tokens": 200, "x_new": {"a": 1}})
    assert updated.to_dict() == {"max_response_output_tokens": 200, "x_new": {"a": 1}}
    with pytest.raises(ConfigError) as info:
        base.merge_update({"turn_detection": {"type": "server_vad", "silence_duration_ms": -1}})
    assert info.value.field == "turn_detection.silence_duration_ms"
    with pytest.raises(ConfigError):
        base.merge_update(["not", "a", "dict"])  # type: ignore[arg-type]


def test_diff_is_minimal_and_sends_changed_objects_whole() -> None:
    a = SessionConfig.quickstart()
    assert a.diff(a) == {}
    b = a.with_changes({"turn_detection.threshold": 0.5})
    patch = a.diff(b)
    assert patch == {"turn_detection": b.to_dict()["turn_detection"]}
    assert patch["turn_detection"]["silence_duration_ms"] == 200
    assert a.merge_update(patch) == b


def test_diff_expresses_disable_and_new_keys() -> None:
    a = SessionConfig.quickstart()
    b = a.replace(turn_detection=None, temperature=0.9, extra={"x_new": 1})
    assert a.diff(b) == {"turn_detection": None, "temperature": 0.9, "x_new": 1}


def test_diff_refuses_to_unset_a_key() -> None:
    a = SessionConfig.quickstart()
    with pytest.raises(ConfigError) as info:
        a.diff(a.replace(instructions=UNSET))
    assert info.value.field == "instructions"
    assert "cannot unset instructions" in str(info.value)


def test_diff_distinguishes_true_from_one() -> None:
    a = SessionConfig(extra={"x": 1})
    b = SessionConfig(extra={"x": True})
    assert a.diff(b) == {"x": True}
    c = SessionConfig(extra={"x": 1.0})
    assert a.diff(c) == {}


def test_replace_returns_new_validated_config() -> None:
    a = SessionConfig.server_vad()
    b = a.replace(temperature=1.1, turn_detection=TurnDetection(type="semantic_vad", eagerness="low"))
    assert b.temperature == 1.1 and a.temperature is UNSET
    assert b.to_dict()["turn_detection"] == {"type": "semantic_vad", "eagerness": "low"}
    with pytest.raises(ConfigError) as info:
        a.replace(temperature=5)
    assert info.value.field == "temperature"
    with pytest.raises(ConfigError) as info:
        a.replace(threshold=0.5)
    assert info.value.field == "threshold"
    assert "a SessionConfig field" in str(info.value)
    assert a.replace(instructions=UNSET).to_dict() == a.to_dict()


def test_with_changes_dotted_and_nested_keep_other_knobs() -> None:
    a = SessionConfig.quickstart()
    by_path = a.with_changes(
        {"turn_detection.threshold": 0.6, "turn_detection.end_of_utterance_detection.timeout": 3}
    )
    by_dict = a.with_changes(
        {"turn_detection": {"threshold": 0.6, "end_of_utterance_detection": {"timeout": 3}}}
    )
    assert by_path == by_dict
    td = by_path.to_dict()["turn_detection"]
    assert td == a.to_dict()["turn_detection"] | {
        "threshold": 0.6,
        "end_of_utterance_detection": {"model": "semantic_detection_v1", "threshold": 0.01, "timeout": 3},
    }


def test_with_changes_dataclass_value_replaces_whole_and_unset_removes() -> None:
    a = SessionConfig.quickstart()
    b = a.with_changes({"turn_detection": TurnDetection(type="server_vad"), "voice.temperature": UNSET})
    assert b.to_dict()["turn_detection"] == {"type": "server_vad"}
    assert b.to_dict()["voice"] == {"type": "azure-standard", "name": "en-US-Ava:DragonHDLatestNeural"}
    c = a.with_changes({"input_audio_noise_reduction": None, "voice": "alloy", "max_output_tokens": 10})
    assert c.input_audio_noise_reduction is None and c.voice == "alloy" and c.max_response_output_tokens == 10


def test_with_changes_unknown_keys_go_to_extra_at_their_level() -> None:
    b = SessionConfig.quickstart().with_changes({"turn_detection.x_new": 1, "x_top": "t"})
    assert b.turn_detection is not None and b.turn_detection.extra == {"x_new": 1}
    assert b.extra == {"x_top": "t"}


def test_with_changes_errors() -> None:
    a = SessionConfig.quickstart()
    with pytest.raises(ConfigError) as info:
        a.with_changes({"input_audio_transcription.language": "en"})
    assert info.value.field == "input_audio_transcription"
    assert "set the whole input_audio_transcription first" in str(info.value)
    with pytest.raises(ConfigError) as info:
        a.with_changes({"turn_detection.type": "semantic_vad"})  # the azure knobs do not fit semantic_vad
    assert info.value.field == "turn_detection.threshold"
    with pytest.raises(ConfigError) as info:
        a.with_changes({"turn_detection.threshold": 3})
    assert info.value.field == "turn_detection.threshold"
    with pytest.raises(ConfigError):
        a.with_changes({"turn_detection..threshold": 3})
    with pytest.raises(ConfigError):
        SessionConfig.manual().with_changes({"turn_detection.threshold": 0.5})


def test_value_at() -> None:
    cfg = SessionConfig.quickstart()
    assert cfg.value_at("turn_detection.end_of_utterance_detection.timeout") == 2
    assert cfg.value_at("voice.name") == "en-US-Ava:DragonHDLatestNeural"
    assert cfg.value_at("temperature") is UNSET
    assert cfg.value_at("input_audio_transcription.model") is UNSET
    assert SessionConfig.manual().value_at("turn_detection") is None
    assert SessionConfig.manual().value_at("turn_detection.threshold") is UNSET


# ---------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------


def test_quickstart_preset_is_exactly_the_quickstart_session() -> None:
    assert SessionConfig.quickstart().to_dict() == {
        "modalities": ["text", "audio"],
        "instructions": "You are a helpful AI assistant responding in natural, engaging language.",
        "voice": {"name": "en-US-Ava:DragonHDLatestNeural", "type": "azure-standard", "temperature": 0.8},
        "input_audio_format": "pcm16",
        "output_audio_format": "pcm16",
        "turn_detection": {
            "type": "azure_semantic_vad",
            "threshold": 0.3,
            "prefix_padding_ms": 200,
            "silence_duration_ms": 200,
            "remove_filler_words": False,
            "end_of_utterance_detection": {"model": "semantic_detection_v1", "threshold": 0.01, "timeout": 2},
        },
        "input_audio_noise_reduction": {"type": "azure_deep_noise_suppression"},
        "input_audio_echo_cancellation": {"type": "server_echo_cancellation"},
    }
    eou = SessionConfig.quickstart().value_at("turn_detection.end_of_utterance_detection")
    assert isinstance(eou, EndOfUtteranceDetection) and eou.is_legacy


def test_server_vad_preset() -> None:
    assert SessionConfig.server_vad().to_dict() == {
        "modalities": ["text", "audio"],
        "input_audio_format": "pcm16",
        "output_audio_format": "pcm16",
        "input_audio_sampling_rate": 24000,
        "turn_detection": {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": 400,
            "silence_duration_ms": 500,
        },
        "input_audio_transcription": {"model": "azure-speech"},
        "input_audio_echo_cancellation": {"type": "server_echo_cancellation"},
    }
    # the preset's knob values are the documented defaults of server_vad
    for knob in ("threshold", "prefix_padding_ms", "silence_duration_ms"):
        spec = field_spec(f"turn_detection.{knob}")
        default = spec.type_defaults.get("server_vad", spec.default)
        assert SessionConfig.server_vad().value_at(f"turn_detection.{knob}") == default


def test_manual_preset() -> None:
    wire = SessionConfig.manual().to_dict()
    assert wire["turn_detection"] is None
    assert wire == SessionConfig.server_vad().to_dict() | {"turn_detection": None}


def test_presets_accept_changes() -> None:
    cfg = SessionConfig.quickstart(instructions="hi", voice="alloy")
    assert cfg.instructions == "hi" and cfg.voice == "alloy"
    with pytest.raises(ConfigError):
        SessionConfig.server_vad(temperature=9)


# ---------------------------------------------------------------------------------------------
# Audio helpers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "in_rate", "in_bpm", "out_rate", "out_bpm"),
    [
        ({}, 24000, 48, 24000, 48),
        ({"input_audio_sampling_rate": 16000, "output_audio_format": "pcm16_16000hz"}, 16000, 32, 16000, 32),
        ({"input_audio_sampling_rate": 8000, "output_audio_format": "pcm16_8000hz"}, 8000, 16, 8000, 16),
        ({"input_audio_format": "g711_ulaw", "output_audio_format": "g711_alaw"}, 8000, 8, 8000, 8),
        (
            {"input_audio_format": None, "output_audio_format": None, "input_audio_sampling_rate": None},
            24000,
            48,
            24000,
            48,
        ),
        (
            {
                "input_audio_echo_cancellation": {
                    "type": "server_echo_cancellation",
                    "reference_source": "client",
                    "channels": 2,
                }
            },
            24000,
            96,
            24000,
            48,
        ),
    ],
)
def test_audio_helpers(wire: dict[str, Any], in_rate: int, in_bpm: int, out_rate: int, out_bpm: int) -> None:
    cfg = SessionConfig.from_dict(wire)
    assert cfg.input_sample_rate == in_rate
    assert cfg.input_bytes_per_ms == in_bpm
    assert cfg.output_sample_rate == out_rate
    assert cfg.output_bytes_per_ms == out_bpm


# ---------------------------------------------------------------------------------------------
# Field specs
# ---------------------------------------------------------------------------------------------

KINDS = {"float", "int", "bool", "str", "choice", "text", "list", "object"}
SUB_OBJECTS = {
    "voice": Voice,
    "turn_detection": TurnDetection,
    "turn_detection.end_of_utterance_detection": EndOfUtteranceDetection,
    "input_audio_noise_reduction": NoiseReduction,
    "input_audio_echo_cancellation": EchoCancellation,
    "input_audio_transcription": InputTranscription,
    "interim_response": InterimResponse,
    "animation": Animation,
    "avatar": Avatar,
}


def test_field_specs_are_well_formed() -> None:
    specs = field_specs()
    paths = [s.path for s in specs]
    assert len(paths) == len(set(paths))
    assert SessionConfig.field_specs() == specs
    for spec in specs:
        assert spec.kind in KINDS, spec.path
        assert spec.doc and "\n" not in spec.doc, spec.path
        if spec.kind in ("float", "int"):
            assert spec.minimum is not None and spec.maximum is not None and spec.step, spec.path
            assert spec.minimum < spec.maximum
        if spec.kind == "choice":
            assert spec.choices, spec.path
        if spec.default is not UNSET and spec.kind == "choice":
            assert spec.default in spec.choices, spec.path
        if spec.applies_to:
            assert spec.discriminator is not None
            assert set(spec.applies_to) <= set(field_spec(spec.discriminator).choices), spec.path
        for value in spec.type_defaults.values():
            if spec.kind == "int":
                assert spec.minimum is not None and spec.maximum is not None
                assert spec.minimum <= value <= spec.maximum


def test_every_field_has_a_spec_and_every_spec_a_field() -> None:
    paths = {s.path for s in field_specs()}
    not_wire = {"extra", "server_fields", "unchecked", "warnings"}
    expected = {f.name for f in dataclasses.fields(SessionConfig) if f.name not in not_wire}
    for prefix, cls in SUB_OBJECTS.items():
        expected |= {f"{prefix}.{f.name}" for f in dataclasses.fields(cls) if f.name != "extra"}
    expected.discard("voice.extra")
    assert paths == expected


def test_turn_detection_specs_say_which_types_they_apply_to() -> None:
    def types(name: str) -> set[str]:
        spec = field_spec(f"turn_detection.{name}")
        return set(spec.applies_to) if spec.applies_to else set(field_spec("turn_detection.type").choices)

    assert types("eagerness") == {"semantic_vad"}
    assert types("remove_filler_words") == set(AZURE_VADS)
    assert types("languages") == {"azure_semantic_vad", "azure_semantic_vad_multilingual"}
    assert types("threshold") == {"server_vad", *AZURE_VADS}
    assert types("create_response") == {"server_vad", "semantic_vad", *AZURE_VADS}
    assert field_spec("turn_detection.prefix_padding_ms").type_defaults["azure_semantic_vad"] == 420
    assert field_spec("turn_detection.threshold").minimum == 0.0
    assert field_spec("turn_detection.threshold").maximum == 1.0
    assert field_spec("turn_detection").nullable
    with pytest.raises(ConfigError):
        field_spec("turn_detection.nope")


# ---------------------------------------------------------------------------------- what the server sends


LIVE_CREATED = {
    "id": "sess_1",
    "object": "realtime.session",
    "expires_at": 1784668573,
    "model": "gpt-realtime-global-standard",
    "modalities": ["audio"],
    "output_audio_format": None,
    "truncation_strategy": None,
    "greeting": None,
    "include": None,
    "turn_detection": {"type": "server_vad", "threshold": 0.5, "idle_timeout_ms": None},
    "voice": {"name": "alloy", "type": "openai"},
}


def test_a_live_session_is_accepted_and_sends_back_only_writable_keys() -> None:
    for config in (SessionConfig.from_server(LIVE_CREATED), SessionConfig.from_dict(LIVE_CREATED)):
        sent = config.to_dict()
        assert not {"id", "object", "expires_at", "truncation_strategy", "greeting"} & set(sent)
        assert "idle_timeout_ms" not in sent["turn_detection"]
        assert sent["modalities"] == ["audio"] and sent["include"] is None
        assert config.server_only()["id"] == "sess_1"
        assert config.server_only()["turn_detection.idle_timeout_ms"] is None
    assert "model" not in SessionConfig.from_server(LIVE_CREATED).to_dict()
    assert SessionConfig.from_dict(LIVE_CREATED).model == "gpt-realtime-global-standard"  # user contract
    assert SessionConfig.from_server(LIVE_CREATED).server_only()["model"] == "gpt-realtime-global-standard"
    # a value someone sets for an echo-only key is sent as given
    assert SessionConfig.from_dict({"greeting": {"type": "text"}}).to_dict() == {"greeting": {"type": "text"}}


@pytest.mark.parametrize(
    "session",
    [
        {"modalities": "audio", "temperature": 0.7},
        {"turn_detection": {"type": "brand_new_vad", "threshold": 7}, "temperature": 0.7},
        {"tools": [{"type": "web_search"}], "voice": "someone-new", "temperature": 0.7},
        {"max_output_tokens": 5, "max_response_output_tokens": 6, "temperature": 0.7},
        {"input_audio_sampling_rate": 44100, "metadata": {"k": 1}, "temperature": 0.7},
        {"voice": {"type": "azure-custom"}, "temperature": 0.7, "id": "sess_x"},
    ],
)
def test_from_server_never_raises_and_keeps_what_it_cannot_check(session: dict[str, Any]) -> None:
    config = SessionConfig.from_server(session)
    assert config.temperature == 0.7  # the rest is still typed
    assert config.warnings and all("kept" in w for w in config.warnings)
    sent = config.to_dict()
    for key, value in session.items():
        if key not in ("id", "max_output_tokens"):
            assert sent[key] == value  # verbatim, and sent back as it came
    assert SessionConfig.from_server(sent).to_dict() == sent
    # changing a checked field keeps the unchecked ones; changing an unchecked one validates it
    assert config.replace(temperature=0.9).to_dict() == sent | {"temperature": 0.9}
    assert config.with_changes({"temperature": 0.9}).to_dict() == sent | {"temperature": 0.9}
    assert config.merge_update({"temperature": 0.9}).unchecked == config.unchecked
    if config.unchecked:  # sent again by a user, the same values are validated
        with pytest.raises(ConfigError):
            config.merge_update(dict(config.unchecked))


def test_from_server_on_garbage() -> None:
    assert SessionConfig.from_server("nope").warnings  # type: ignore[arg-type]
    assert SessionConfig.from_server({1: 2, "temperature": 0.5}).to_dict() == {"temperature": 0.5}  # type: ignore[dict-item]


def test_relaxed_to_the_reference() -> None:
    assert SessionConfig(modalities=["audio", "animation"]).modalities == ("audio", "animation")
    td = {"type": "azure_semantic_vad", "languages": ["fr-FR", "de"]}
    eou = {"model": "semantic_detection_v1", "timeout_ms": 1000.0}
    config = SessionConfig.from_dict({"turn_detection": td | {"end_of_utterance_detection": eou}})
    assert config.to_dict()["turn_detection"]["end_of_utterance_detection"]["timeout_ms"] == 1000.0
    with pytest.raises(ConfigError, match=r"timeout_ms: 999.5; allowed: integers 0 to 10000"):
        SessionConfig.from_dict(
            {"turn_detection": td | {"end_of_utterance_detection": eou | {"timeout_ms": 999.5}}}
        )
    with pytest.raises(ConfigError, match="avatar only together with text and audio"):
        SessionConfig(modalities=["audio", "avatar"])


def test_foundry_agent_and_mcp_tools() -> None:
    from voicelive_nb.protocol.config import FoundryAgentTool, McpTool

    agent = {
        "type": "foundry_agent",
        "agent_name": "a",
        "project_name": "p",
        "return_agent_response_directly": True,
    }
    mcp = {"type": "mcp", "server_label": "s", "server_url": "https://x", "require_approval": "never"}
    config = SessionConfig.from_dict({"tools": [agent, mcp]})
    assert isinstance(config.tools[0], FoundryAgentTool) and isinstance(config.tools[1], McpTool)  # type: ignore[index]
    assert config.to_dict()["tools"] == [agent, mcp]
    with pytest.raises(ConfigError, match=r"missing tools\[0\]\.project_name"):
        SessionConfig.from_dict({"tools": [{"type": "foundry_agent", "agent_name": "a"}]})
    with pytest.raises(ConfigError, match=r"tools\[0\]\.type.*function, mcp, foundry_agent"):
        SessionConfig.from_dict({"tools": [{"type": "web_search"}]})


def test_repr_masks_secrets() -> None:
    tool = {
        "type": "mcp",
        "server_label": "s",
        "server_url": "https://x",
        "authorization": "Bearer sk-live-123",
        "headers": {"x-api-key": "hdr-secret-456"},
    }
    config = SessionConfig.from_dict(
        {
            "tools": [tool],
            "avatar_auth": {"access_token": "tok-789"},
            "avatar": {
                "character": "lisa",
                "ice_servers": [{"urls": ["turn:x"], "username": "u", "credential": "ice-000"}],
            },
        }
    )
    text = repr(config)
    for secret in ("sk-live-123", "hdr-secret-456", "tok-789", "ice-000"):
        assert secret not in text
    assert "server_label='s'" in text and "***" in text
    assert config.to_dict()["tools"][0]["authorization"] == "Bearer sk-live-123"  # only the repr masks


def test_preset_turn_detection_knobs_are_routed_and_validated() -> None:
    assert (
        SessionConfig.server_vad(threshold=0.6, silence_duration_ms=300).value_at("turn_detection.threshold")
        == 0.6
    )
    with pytest.raises(ConfigError) as info:
        SessionConfig.server_vad(threshold=2)
    assert str(info.value) == "invalid turn_detection.threshold: 2; allowed: 0.0 to 1.0"
    assert info.value.field == "turn_detection.threshold"
    quick = SessionConfig.quickstart(remove_filler_words=True, temperature=0.7)
    assert quick.value_at("turn_detection.remove_filler_words") is True and quick.temperature == 0.7
    with pytest.raises(ConfigError, match="cannot set turn_detection.threshold: turn_detection is None"):
        SessionConfig.manual(threshold=0.5)


def test_config_warnings_for_text_end_of_utterance_on_a_realtime_model() -> None:
    from voicelive_nb.protocol.config import config_warnings

    eou = SessionConfig.quickstart()  # semantic_detection_v1
    assert config_warnings(eou, "gpt-4o") == []  # cascaded
    for model in (
        "gpt-realtime",
        "gpt-4o-realtime-preview",
        "gpt-4o-mini-realtime-preview",
        "gpt-realtime-mini",
    ):
        (warning,) = config_warnings(eou, model)
        assert "semantic_detection_v1" in warning and model in warning and "cascaded" in warning
    assert config_warnings(SessionConfig.server_vad(), "gpt-realtime") == []
    assert config_warnings(eou.replace(model="gpt-realtime")) != []  # the config's own model
