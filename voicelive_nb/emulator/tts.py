"""Moved: eSpeak NG speech synthesis lives in :mod:`voicelive_nb.speech.tts` (issue #12).

The names of ``MOVED_NAMES`` are still importable from here, each with a ``DeprecationWarning`` that
names the new path; this module is removed in voicelive_nb 0.2 (see :mod:`voicelive_nb.moved`).
New code imports :mod:`voicelive_nb.speech.tts`.
"""

from __future__ import annotations

from typing import Any

from ..moved import forward
from ..speech import tts as _new

#: The names that moved (importable from here with a warning until the module goes).
MOVED_NAMES = (
    "SILENCE_LEVEL",
    "SpeechAudio",
    "WordTiming",
    "add_noise",
    "speech_with_pauses",
    "synthesize",
    "white_noise",
)


def __getattr__(name: str) -> Any:
    if name not in MOVED_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return forward(__name__, _new, name)
