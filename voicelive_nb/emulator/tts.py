"""Moved: eSpeak NG speech synthesis lives in :mod:`voicelive_nb.speech.tts` (issue #12).

This module only re-exports its public names so that ``voicelive_nb.emulator.tts`` imports
written before the move keep working; new code imports :mod:`voicelive_nb.speech.tts`.
Private names and module state (caches, locks) are not here: patch them on the new module.
"""

from __future__ import annotations

from ..speech.tts import (
    SILENCE_LEVEL,
    SpeechAudio,
    WordTiming,
    add_noise,
    speech_with_pauses,
    synthesize,
    white_noise,
)

__all__ = [
    "SILENCE_LEVEL",
    "SpeechAudio",
    "WordTiming",
    "add_noise",
    "speech_with_pauses",
    "synthesize",
    "white_noise",
]
