"""Our session dicts against the official SDK's ``RequestSession`` (azure-ai-voicelive, test-only).

Findings with SDK 1.3.1 (asserted below):

* ``RequestSession(mapping)`` keeps the raw JSON: ``as_dict()`` and the ``session.update`` event the SDK
  sends give back our dict exactly, unknown keys at every level and explicit nulls included.
* ``RequestSession(**kwargs)`` (the keyword form) raises ``TypeError`` for top-level keys the SDK does not
  model, so keys in our ``extra`` can only travel with the mapping form; nested unknown keys survive either way.
* The typed attribute view is partial: the voice object, ``interim_response`` and an object ``tool_choice``
  come back as plain dicts (unions are not resolved); ``semantic_vad`` becomes the base ``TurnDetection``;
  several wire fields have no SDK attribute at all (``SDK_UNMODELLED`` below) and are reachable only as raw data.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from voicelive_nb.protocol.config import SessionConfig

models = pytest.importorskip("azure.ai.voicelive.models")

pytestmark = pytest.mark.sdk

FULL: dict[str, Any] = {
    "model": "gpt-realtime",
    "modalities": ["text", "audio"],
    "instructions": "be brief",
    "voice": {
        "type": "azure-custom",
        "name": "my-voice",
        "endpoint_id": "ep-1",
        "temperature": 0.6,
        "custom_lexicon_url": "https://x/lex.xml",
        "custom_text_normalization_url": "https://x/norm",
        "prefer_locales": ["en-GB"],
        "locale": "en-US",
        "style": "calm",
        "pitch": "-2%",
        "rate": "1.1",
        "volume": "soft",
        "x_voice": 1,
    },
    "input_audio_format": "pcm16",
    "output_audio_format": "pcm16_16000hz",
    "input_audio_sampling_rate": 16000,
    "turn_detection": {
        "type": "azure_semantic_vad",
        "threshold": 0.4,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 400,
        "speech_duration_ms": 80,
        "remove_filler_words": True,
        "languages": ["en-US"],
        "create_response": True,
        "interrupt_response": True,
        "auto_truncate": True,
        "appended_text_after_truncation": " …",
        "end_of_utterance_detection": {
            "model": "semantic_detection_v1",
            "threshold": 0.01,
            "timeout": 2,
            "x_eou": None,
        },
        "x_td": {"a": [1]},
    },
    "input_audio_noise_reduction": None,
    "input_audio_echo_cancellation": {
        "type": "server_echo_cancellation",
        "reference_source": "client",
        "channels": 2,
    },
    "input_audio_transcription": {"model": "whisper-1", "language": "en", "prompt": "names: Ana"},
    "tools": [
        {
            "type": "function",
            "name": "f",
            "description": "d",
            "parameters": {"type": "object", "properties": {}},
        },
        {
            "type": "mcp",
            "server_label": "docs",
            "server_url": "https://mcp.example",
            "authorization": "Bearer t",
            "headers": {"x-a": "b"},
            "allowed_tools": ["search"],
            "require_approval": {"never": ["search"]},
        },
    ],
    "tool_choice": {"type": "function", "name": "f"},
    "parallel_tool_calls": False,
    "temperature": 0.9,
    "max_response_output_tokens": "inf",
    "reasoning_effort": "medium",
    "interim_response": {
        "type": "llm_interim_response",
        "triggers": ["latency", "tool"],
        "latency_threshold_ms": 1500,
        "model": "gpt-4.1-mini",
        "instructions": "filler",
        "max_completion_tokens": 30,
    },
    "output_audio_timestamp_types": ["word"],
    "animation": {"model_name": "default", "outputs": ["viseme_id"]},
    "avatar": {
        "type": "photo-avatar",
        "character": "lisa",
        "style": "casual",
        "customized": False,
        "model": "vasa-1",
        "output_protocol": "websocket",
        "output_audit_audio": False,
        "ice_servers": [{"urls": ["stun:x:3478"]}],
        "video": {"bitrate": 2000000, "codec": "h264"},
        "scene": {"zoom": 1.0},
    },
    "include": ["item.input_audio_transcription.phrases"],
    "metadata": {"run": "7"},
    "x_top": [1, {"y": None}],
}

CONFIGS: dict[str, SessionConfig] = {
    "quickstart": SessionConfig.quickstart(),
    "server_vad": SessionConfig.server_vad(),
    "manual": SessionConfig.manual(),
    "full": SessionConfig.from_dict(copy.deepcopy(FULL)),
    "semantic_vad-openai": SessionConfig.from_dict(
        {
            "voice": "alloy",
            "turn_detection": {"type": "semantic_vad", "eagerness": "low"},
            "tool_choice": "auto",
        }
    ),
    "realtime-native": SessionConfig.from_dict(
        {
            "voice": {"type": "azure-realtime-native", "name": "ava"},
            "turn_detection": {
                "type": "azure_semantic_vad_multilingual",
                "languages": ["fr", "de"],
                "end_of_utterance_detection": {
                    "model": "semantic_detection_v1_multilingual",
                    "threshold_level": "high",
                    "timeout_ms": 700,
                },
            },
            "interim_response": {"type": "static_interim_response", "texts": ["one moment"]},
        }
    ),
}

# Wire keys we send that the SDK's typed models have no attribute for (raw data only), SDK 1.3.1.
SDK_UNMODELLED = {
    "x_top",  # our unknown key, by construction
    "turn_detection.appended_text_after_truncation",
    "turn_detection.end_of_utterance_detection.threshold",  # legacy EOU shape, removed from the SDK in 1.0.0b5
    "turn_detection.end_of_utterance_detection.timeout",
    "turn_detection.x_td",
    "turn_detection.end_of_utterance_detection.x_eou",
    "input_audio_transcription.prompt",
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_request_session_keeps_everything(name: str) -> None:
    ours = CONFIGS[name].to_dict()
    session = models.RequestSession(copy.deepcopy(ours))
    assert session.as_dict() == ours


@pytest.mark.parametrize("name", list(CONFIGS))
def test_session_update_event_sent_by_the_sdk_keeps_everything(name: str) -> None:
    ours = CONFIGS[name].to_dict()
    event = models.ClientEventSessionUpdate(session=models.RequestSession(copy.deepcopy(ours)))
    # VoiceLiveConnection.send() serialises a ClientEvent as json.dumps(event.as_dict())
    sent = json.loads(json.dumps(event.as_dict()))
    assert sent == {"type": "session.update", "session": ours}
    # and what comes back parses to the same config
    assert SessionConfig.from_dict(sent["session"]) == CONFIGS[name]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_keyword_form_keeps_modelled_keys_and_rejects_unknown_top_level_keys(name: str) -> None:
    ours = CONFIGS[name].to_dict()
    modelled = {k: v for k, v in ours.items() if not k.startswith("x_")}
    session = models.RequestSession(**copy.deepcopy(modelled))
    assert session.as_dict() == modelled
    if modelled != ours:
        with pytest.raises(TypeError):
            models.RequestSession(**copy.deepcopy(ours))


def test_typed_view_of_the_full_config() -> None:
    session = models.RequestSession(copy.deepcopy(FULL))
    assert isinstance(session.turn_detection, models.AzureSemanticVad)
    assert session.turn_detection.threshold == 0.4
    assert session.turn_detection.speech_duration_ms == 80
    assert isinstance(session.input_audio_echo_cancellation, models.AudioEchoCancellation)
    assert session.input_audio_echo_cancellation.channels == 2
    assert session.input_audio_noise_reduction is None
    assert isinstance(session.input_audio_transcription, models.AudioInputTranscriptionOptions)
    assert [type(t) for t in session.tools] == [models.FunctionTool, models.MCPServer]
    assert isinstance(session.avatar, models.AvatarConfig) and session.avatar.avatar_type == "photo-avatar"
    assert isinstance(session.animation, models.Animation)
    # unions are not resolved: plain dicts
    assert session.voice == FULL["voice"]
    assert session.interim_response == FULL["interim_response"]
    assert session.tool_choice == FULL["tool_choice"]


def test_semantic_vad_has_no_sdk_class() -> None:
    session = models.RequestSession(CONFIGS["semantic_vad-openai"].to_dict())
    assert type(session.turn_detection) is models.TurnDetection
    assert session.turn_detection.as_dict() == {"type": "semantic_vad", "eagerness": "low"}
    assert session.voice == "alloy"


def _sdk_attribute_names(model: Any) -> set[str]:
    return {f._rest_name for f in type(model)._attr_to_rest_field.values()}


def _unmodelled(value: Any, typed: Any, prefix: str) -> set[str]:
    """Keys of our dict ``value`` with no attribute on the SDK model ``typed``, recursively."""
    found: set[str] = set()
    names = _sdk_attribute_names(typed)
    for key, item in value.items():
        path = f"{prefix}{key}"
        if key not in names:
            found.add(path)
            continue
        sub = getattr(
            typed, next(a for a, f in type(typed)._attr_to_rest_field.items() if f._rest_name == key)
        )
        if isinstance(item, dict) and hasattr(type(sub), "_attr_to_rest_field"):
            found |= _unmodelled(item, sub, path + ".")
    return found


def test_sdk_unmodelled_fields_are_the_documented_ones() -> None:
    session = models.RequestSession(copy.deepcopy(FULL))
    assert _unmodelled(FULL, session, "") == SDK_UNMODELLED
    # the legacy EOU shape is typed as the current one: its threshold/timeout are raw data only
    eou = session.turn_detection.end_of_utterance_detection
    assert isinstance(eou, models.AzureSemanticDetection)
    assert eou.as_dict() == FULL["turn_detection"]["end_of_utterance_detection"]


@pytest.mark.parametrize(
    ("class_name", "key", "unmodelled"),
    [
        ("AzureCustomVoice", "voice", {"x_voice"}),
        ("LlmInterimResponseConfig", "interim_response", set()),
        ("ToolChoiceFunctionSelection", "tool_choice", set()),
    ],
)
def test_union_members_model_our_keys_when_built_explicitly(
    class_name: str, key: str, unmodelled: set[str]
) -> None:
    value = FULL[key]
    typed = getattr(models, class_name)(copy.deepcopy(value))
    assert typed.as_dict() == value
    assert set(value) - _sdk_attribute_names(typed) == unmodelled
