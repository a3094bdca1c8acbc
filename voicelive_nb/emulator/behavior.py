"""Moved: the pure server-VAD segmenter lives in :mod:`voicelive_nb.speech.segmenter` (issue #12).

This module only re-exports its public names so that ``voicelive_nb.emulator.behavior`` imports
written before the move keep working; new code imports :mod:`voicelive_nb.speech.segmenter`.
Private names and module state (caches, locks) are not here: patch them on the new module.
"""

from __future__ import annotations

from ..speech.segmenter import (
    FILLER_WORDS,
    RELEASE_FLOOR,
    RELEASE_GAP,
    VadEvent,
    VadSegmenter,
    VadSettings,
    VadSpeechStarted,
    VadSpeechStopped,
    is_filler_only,
    release_threshold,
)

__all__ = [
    "FILLER_WORDS",
    "RELEASE_FLOOR",
    "RELEASE_GAP",
    "VadEvent",
    "VadSegmenter",
    "VadSettings",
    "VadSpeechStarted",
    "VadSpeechStopped",
    "is_filler_only",
    "release_threshold",
]
