"""The service's vocabulary as data: the values Voice Live accepts for each closed field. Pure.

One table, read by both sides: the client's :mod:`~voicelive_nb.protocol.config` (strict
in what it sends: a value outside these refuses with the allowed list) and the emulator's
validation (:mod:`voicelive_nb.emulator.session_defaults`, which refuses what the service
refuses). When the service adds a voice, a format or a model, it is added here once
(reference ``voice-live-protocol.md`` §3.3–3.6); ``tests/test_vocabulary.py`` checks that the
client and the emulator accept and refuse the same values.

The order of each tuple is the order error messages and generated forms list them in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = [
    "AZURE_VAD_TYPES",
    "AZURE_VOICE_TYPES",
    "ECHO_CANCELLATION_TYPES",
    "ECHO_REFERENCE_SOURCES",
    "EOU_MODELS",
    "EOU_THRESHOLD_LEVELS",
    "G711_FORMATS",
    "INCLUDE_OPTIONS",
    "INPUT_AUDIO_FORMATS",
    "INTERIM_RESPONSE_TYPES",
    "MODALITIES",
    "MULTILINGUAL_VAD_LANGUAGES",
    "NAMED_VOICE_TYPES",
    "NOISE_REDUCTION_TYPES",
    "OPENAI_TRANSCRIBERS",
    "OPENAI_VOICES",
    "OUTPUT_AUDIO_FORMATS",
    "OUTPUT_FORMAT_RATES",
    "PERSONAL_VOICE_MODELS",
    "REALTIME_NATIVE_VOICES",
    "REASONING_EFFORTS",
    "SAMPLING_RATES",
    "SEMANTIC_VAD_EAGERNESS",
    "TRANSCRIPTION_MODELS",
    "TURN_DETECTION_TYPES",
    "VOICE_REQUIRED",
    "VOICE_TYPES",
]

# ------------------------------------------------------------------------------ turn detection

AZURE_VAD_TYPES: Final = ("azure_semantic_vad", "azure_semantic_vad_en", "azure_semantic_vad_multilingual")
TURN_DETECTION_TYPES: Final = ("server_vad", *AZURE_VAD_TYPES, "semantic_vad")
#: Languages of ``azure_semantic_vad_multilingual``.
MULTILINGUAL_VAD_LANGUAGES: Final = ("en", "es", "fr", "it", "de", "ja", "pt", "zh", "ko", "hi")
#: ``turn_detection.end_of_utterance_detection.model``.
EOU_MODELS: Final = (
    "semantic_detection_v1",
    "semantic_detection_v1_en",
    "semantic_detection_v1_multilingual",
)
#: ``end_of_utterance_detection.threshold_level``: lower ends the utterance more readily.
EOU_THRESHOLD_LEVELS: Final = ("low", "medium", "high", "default")
#: ``semantic_vad`` ``eagerness``: how soon the model ends the turn.
SEMANTIC_VAD_EAGERNESS: Final = ("auto", "low", "medium", "high")

# ------------------------------------------------------------------------------ voices

VOICE_TYPES: Final = (
    "openai",
    "azure-standard",
    "azure-custom",
    "azure-personal",
    "avatar-voice-sync",
    "azure-realtime-native",
)
AZURE_VOICE_TYPES: Final = ("azure-standard", "azure-custom", "azure-personal", "avatar-voice-sync")
#: Voice types whose object names a voice (``name``).
NAMED_VOICE_TYPES: Final = (
    "openai",
    "azure-standard",
    "azure-custom",
    "azure-personal",
    "azure-realtime-native",
)
#: Keys each voice type requires besides ``type``.
VOICE_REQUIRED: Final[Mapping[str, tuple[str, ...]]] = {
    "openai": ("name",),
    "azure-standard": ("name",),
    "azure-custom": ("name", "endpoint_id"),
    "azure-personal": ("name", "model"),
    "avatar-voice-sync": ("model",),
    "azure-realtime-native": ("name",),
}
OPENAI_VOICES: Final = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)
REALTIME_NATIVE_VOICES: Final = (
    "aarti",
    "andrew",
    "ava",
    "denise",
    "diya",
    "elsa",
    "florian",
    "francisca",
    "meera",
    "ximena",
    "xiaoxiao",
    "yunxi",
)
#: ``voice.model`` of ``azure-personal`` and ``avatar-voice-sync`` voices.
PERSONAL_VOICE_MODELS: Final = (
    "DragonLatestNeural",
    "PhoenixLatestNeural",
    "PhoenixV2Neural",
    "DragonHDOmniLatestNeural",
    "MAI-Voice-1",
)

# ------------------------------------------------------------------------------ transcription

TRANSCRIPTION_MODELS: Final = (
    "azure-speech",
    "whisper-1",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-transcribe-diarize",
    "mai-transcribe",
    "mai-transcribe-1",
    "mai-transcribe-2",
    "gpt-realtime-whisper",  # reported by the live GA service (shared real traffic)
)
#: The transcription models served by OpenAI (no Azure Speech options).
OPENAI_TRANSCRIBERS: Final = (
    "whisper-1",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-transcribe-diarize",
    "gpt-realtime-whisper",
)

# ------------------------------------------------------------------------------ audio

INPUT_AUDIO_FORMATS: Final = ("pcm16", "g711_ulaw", "g711_alaw")
OUTPUT_AUDIO_FORMATS: Final = ("pcm16", "pcm16_8000hz", "pcm16_16000hz", "g711_ulaw", "g711_alaw")
G711_FORMATS: Final = ("g711_ulaw", "g711_alaw")
#: ``input_audio_sampling_rate`` for pcm16 input (G.711 is always 8000).
SAMPLING_RATES: Final = (8000, 16000, 24000)
#: Sample rate of each output format.
OUTPUT_FORMAT_RATES: Final[Mapping[str, int]] = {
    "pcm16": 24000,
    "pcm16_8000hz": 8000,
    "pcm16_16000hz": 16000,
    "g711_ulaw": 8000,
    "g711_alaw": 8000,
}
NOISE_REDUCTION_TYPES: Final = ("azure_deep_noise_suppression", "near_field", "far_field")
ECHO_CANCELLATION_TYPES: Final = ("server_echo_cancellation",)
#: ``input_audio_echo_cancellation.reference_source``: what the server played, or the client's second channel.
ECHO_REFERENCE_SOURCES: Final = ("server", "client")

# ------------------------------------------------------------------------------ responses

MODALITIES: Final = ("text", "audio", "animation", "avatar")
REASONING_EFFORTS: Final = ("none", "minimal", "low", "medium", "high", "xhigh")
INTERIM_RESPONSE_TYPES: Final = ("static_interim_response", "llm_interim_response")
#: ``include``: extra data in server events.
INCLUDE_OPTIONS: Final = (
    "item.input_audio_transcription.logprobs",
    "item.input_audio_transcription.phrases",
    "file_search_call.results",
)
