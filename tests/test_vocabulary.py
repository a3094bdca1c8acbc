"""One table of the service's values (protocol/vocabulary.py); the client and the emulator agree on it.

For every closed field, every value of the table and one value outside it go through both the
client's validation (``SessionConfig.from_dict``) and the emulator's (``apply_session_update``
on a fresh session): each value is accepted by both or refused by both. Both sides read the
table, so a value added there is accepted everywhere at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from voicelive_nb.emulator import session_defaults
from voicelive_nb.emulator.session_defaults import SessionError, apply_session_update, new_session
from voicelive_nb.errors import ConfigError
from voicelive_nb.protocol import config, vocabulary
from voicelive_nb.protocol.config import SessionConfig

#: The client-reference echo canceller is a preview feature the connection has to name.
FEATURES = ("client_ec_reference:true",)


def _voice(vtype: str) -> dict[str, Any]:
    names = {"openai": "alloy", "azure-realtime-native": "ava"}
    keys = {k: names.get(vtype, "en-US-AvaNeural") for k in vocabulary.VOICE_REQUIRED.get(vtype, ("name",))}
    if "model" in keys:
        keys["model"] = vocabulary.PERSONAL_VOICE_MODELS[0]
    if "endpoint_id" in keys:
        keys["endpoint_id"] = "00000000-0000-0000-0000-000000000000"
    return {"voice": {"type": vtype, **keys}}


def _echo(source: str) -> dict[str, Any]:
    ec = {
        "type": "server_echo_cancellation",
        "reference_source": source,
        "channels": 2 if source == "client" else 1,
    }
    return {"input_audio_echo_cancellation": ec}


#: field -> (the table's values, a value outside it, the session.update that sets it)
FIELDS: dict[str, tuple[tuple[Any, ...], Any, Callable[[Any], dict[str, Any]]]] = {
    "voice.name (openai)": (
        vocabulary.OPENAI_VOICES,
        "bob",
        lambda v: {"voice": {"type": "openai", "name": v}},
    ),
    "voice.name (azure-realtime-native)": (
        vocabulary.REALTIME_NATIVE_VOICES,
        "bob",
        lambda v: {"voice": {"type": "azure-realtime-native", "name": v}},
    ),
    "voice.type": (vocabulary.VOICE_TYPES, "azure-magic", _voice),
    "voice.model (azure-personal)": (
        vocabulary.PERSONAL_VOICE_MODELS,
        "DragonNeural",
        lambda v: {"voice": {"type": "azure-personal", "name": "x", "model": v}},
    ),
    "voice.model (avatar-voice-sync)": (
        vocabulary.PERSONAL_VOICE_MODELS,
        "DragonNeural",
        lambda v: {"voice": {"type": "avatar-voice-sync", "model": v}},
    ),
    "input_audio_format": (vocabulary.INPUT_AUDIO_FORMATS, "mp3", lambda v: {"input_audio_format": v}),
    "output_audio_format": (
        vocabulary.OUTPUT_AUDIO_FORMATS,
        "pcm16_44100hz",
        lambda v: {"output_audio_format": v},
    ),
    "input_audio_sampling_rate": (
        vocabulary.SAMPLING_RATES,
        44100,
        lambda v: {"input_audio_sampling_rate": v},
    ),
    "modalities": (vocabulary.MODALITIES[:2], "video", lambda v: {"modalities": [v]}),
    "turn_detection.type": (
        vocabulary.TURN_DETECTION_TYPES,
        "magic_vad",
        lambda v: {"turn_detection": {"type": v}},
    ),
    "turn_detection.eagerness": (
        vocabulary.SEMANTIC_VAD_EAGERNESS,
        "eager",
        lambda v: {"turn_detection": {"type": "semantic_vad", "eagerness": v}},
    ),
    "end_of_utterance_detection.model": (
        vocabulary.EOU_MODELS,
        "semantic_detection_v2",
        lambda v: {
            "turn_detection": {"type": "azure_semantic_vad", "end_of_utterance_detection": {"model": v}}
        },
    ),
    "end_of_utterance_detection.threshold_level": (
        vocabulary.EOU_THRESHOLD_LEVELS,
        "highest",
        lambda v: {
            "turn_detection": {
                "type": "server_vad",
                "end_of_utterance_detection": {"model": "semantic_detection_v1", "threshold_level": v},
            }
        },
    ),
    "input_audio_transcription.model": (
        vocabulary.TRANSCRIPTION_MODELS,
        "whisper-2",
        lambda v: {"input_audio_transcription": {"model": v}},
    ),
    "input_audio_noise_reduction.type": (
        vocabulary.NOISE_REDUCTION_TYPES,
        "mid_field",
        lambda v: {"input_audio_noise_reduction": {"type": v}},
    ),
    "input_audio_echo_cancellation.type": (
        vocabulary.ECHO_CANCELLATION_TYPES,
        "client_echo_cancellation",
        lambda v: {"input_audio_echo_cancellation": {"type": v}},
    ),
    "input_audio_echo_cancellation.reference_source": (vocabulary.ECHO_REFERENCE_SOURCES, "speaker", _echo),
    "reasoning_effort": (vocabulary.REASONING_EFFORTS, "extreme", lambda v: {"reasoning_effort": v}),
    "include": (vocabulary.INCLUDE_OPTIONS, "item.audio", lambda v: {"include": [v]}),
}

CASES = [
    pytest.param(update(value), value in values, id=f"{field}={value}")
    for field, (values, outside, update) in FIELDS.items()
    for value in (*values, outside)
]


def client_accepts(update: dict[str, Any]) -> bool:
    try:
        SessionConfig.from_dict(update)
    except ConfigError:
        return False
    return True


def emulator_accepts(update: dict[str, Any]) -> bool:
    session = new_session("gpt-realtime", session_id="sess_vocabulary", now_s=0.0)
    try:
        apply_session_update(session, update, features=FEATURES)
    except SessionError:
        return False
    return True


@pytest.mark.parametrize(("update", "in_table"), CASES)
def test_client_and_emulator_agree(update: dict[str, Any], in_table: bool) -> None:
    assert client_accepts(update) is in_table, f"client: {update}"
    assert emulator_accepts(update) is in_table, f"emulator: {update}"


def test_both_sides_read_the_one_table() -> None:
    """No copies: the names both sides validate with are the table's own objects."""
    assert config.OPENAI_VOICES is vocabulary.OPENAI_VOICES
    assert config.TRANSCRIPTION_MODELS is vocabulary.TRANSCRIPTION_MODELS
    assert config.TURN_DETECTION_TYPES is vocabulary.TURN_DETECTION_TYPES
    assert session_defaults.OPENAI_VOICES is vocabulary.OPENAI_VOICES
    assert session_defaults.TRANSCRIPTION_MODELS is vocabulary.TRANSCRIPTION_MODELS
    assert session_defaults.INPUT_FORMATS is vocabulary.INPUT_AUDIO_FORMATS
    assert session_defaults.NOISE_REDUCTION_TYPES is vocabulary.NOISE_REDUCTION_TYPES
