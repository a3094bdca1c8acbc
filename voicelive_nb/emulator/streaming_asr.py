"""Moved: streaming PocketSphinx recognition lives in :mod:`voicelive_nb.speech.streaming_asr` (issue #12).

The names of ``MOVED_NAMES`` are still importable from here, each with a ``DeprecationWarning`` that
names the new path; this module is removed in voicelive_nb 0.2 (see :mod:`voicelive_nb.moved`).
New code imports :mod:`voicelive_nb.speech.streaming_asr`.
"""

from __future__ import annotations

from typing import Any

from ..moved import forward
from ..speech import streaming_asr as _new

#: The names that moved (importable from here with a warning until the module goes).
MOVED_NAMES = (
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
)


def __getattr__(name: str) -> Any:
    if name not in MOVED_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return forward(__name__, _new, name)
