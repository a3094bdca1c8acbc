"""Moved: whole-utterance pocketsphinx transcription lives in :mod:`voicelive_nb.speech.asr` (issue #12).

This module only re-exports its public names so that ``voicelive_nb.emulator.asr`` imports
written before the move keep working; new code imports :mod:`voicelive_nb.speech.asr`.
Private names and module state (caches, locks) are not here: patch them on the new module.
"""

from __future__ import annotations

from ..speech.asr import (
    DITHER_LSB,
    MODEL_RATE,
    SILENCE_DBFS,
    Transcriber,
    normalize_phrase,
)

__all__ = [
    "DITHER_LSB",
    "MODEL_RATE",
    "SILENCE_DBFS",
    "Transcriber",
    "normalize_phrase",
]
