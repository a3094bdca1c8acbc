"""Moved: Silero speech probabilities lives in :mod:`voicelive_nb.speech.vad` (issue #12).

This module only re-exports its public names so that ``voicelive_nb.emulator.vad`` imports
written before the move keep working; new code imports :mod:`voicelive_nb.speech.vad`.
Private names and module state (caches, locks) are not here: patch them on the new module.
"""

from __future__ import annotations

from ..speech.vad import (
    MODEL_RATE,
    WINDOW_SAMPLES,
    SpeechProbability,
)

__all__ = [
    "MODEL_RATE",
    "WINDOW_SAMPLES",
    "SpeechProbability",
]
