"""Moved: the pure server-VAD segmenter lives in :mod:`voicelive_nb.speech.segmenter` (issue #12).

The names of ``MOVED_NAMES`` are still importable from here, each with a ``DeprecationWarning`` that
names the new path; this module is removed in voicelive_nb 0.2 (see :mod:`voicelive_nb.moved`).
New code imports :mod:`voicelive_nb.speech.segmenter`.
"""

from __future__ import annotations

from typing import Any

from ..moved import forward
from ..speech import segmenter as _new

#: The names that moved (importable from here with a warning until the module goes).
MOVED_NAMES = (
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
)


def __getattr__(name: str) -> Any:
    if name not in MOVED_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return forward(__name__, _new, name)
