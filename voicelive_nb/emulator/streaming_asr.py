"""Moved: streaming recognition and its decoder pool lives in :mod:`voicelive_nb.speech.streaming_asr` (issue #12).

This module only re-exports its public names so that ``voicelive_nb.emulator.streaming_asr`` imports
written before the move keep working; new code imports :mod:`voicelive_nb.speech.streaming_asr`.
Private names and module state (caches, locks) are not here: patch them on the new module.
"""

from __future__ import annotations

from ..speech.streaming_asr import (
    DEFAULT_POOL_SIZE,
    FASTER_THAN_SPOKEN,
    PARTIAL_EVERY_MS,
    STABLE_PARTIALS,
    TRAILING_WORDS,
    DecoderPool,
    RecognitionStream,
    StreamingRecognizer,
    default_pool,
    stable_words,
)

__all__ = [
    "DEFAULT_POOL_SIZE",
    "FASTER_THAN_SPOKEN",
    "PARTIAL_EVERY_MS",
    "STABLE_PARTIALS",
    "TRAILING_WORDS",
    "DecoderPool",
    "RecognitionStream",
    "StreamingRecognizer",
    "default_pool",
    "stable_words",
]
