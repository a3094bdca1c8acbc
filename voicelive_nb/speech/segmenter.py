"""Pure server-VAD turn segmentation, for the emulator and the lab's truth (no I/O, no clock, no model).

:class:`VadSegmenter` turns a stream of per-window speech probabilities (one every
``window_ms``, e.g. Silero's 32 ms windows from :class:`~voicelive_nb.speech.vad.SpeechProbability`)
into ``input_audio_buffer.speech_started`` / ``speech_stopped`` decisions with Voice Live's
``server_vad`` knobs. Time is the session-wide input-audio timeline in milliseconds: window
``k`` after the last :meth:`VadSegmenter.reset` covers ``[offset + k·window_ms, offset + (k+1)·window_ms)``.

Semantics
---------
* **Onset / start.** While idle, the first window with ``probability >= threshold`` is the
  *onset* (its start time). Speech *starts* once windows at or above ``threshold`` have
  lasted ``speech_duration_ms`` (counted from the onset to the end of the current window;
  ``0`` starts on the onset window itself). A window below ``threshold`` before that
  cancels the candidate, so bursts shorter than ``speech_duration_ms`` never fire.
  ``audio_start_ms = max(floor_ms, onset − prefix_padding_ms)`` (never after the onset).
* **Floor.** ``floor_ms`` is the start of the input buffer since the last commit or clear;
  prefix padding never reaches before it. It moves automatically to ``audio_end_ms`` on
  every stop (server VAD commits the buffer then), to ``at_ms`` on :meth:`~VadSegmenter.reset`
  and :meth:`~VadSegmenter.force_stop`, and can be set directly after a manual commit.
* **Hysteresis / end.** Once in speech, a window counts as silence only when its
  probability is below the *release threshold* ``max(0.01, threshold − 0.15)`` (the
  hysteresis Silero's own ``get_speech_timestamps`` uses), so values that wobble just under
  ``threshold`` do not end a turn. Speech *stops* when silence has lasted
  ``silence_duration_ms`` without interruption (decided at the end of the window where
  that happens). ``audio_end_ms`` is the end of that silence window, ``silence start +
  silence_duration_ms`` (Voice Live's ``audio_end_ms`` includes the trailing silence), so
  ``audio_end_ms − silence_duration_ms`` is exactly the end of the last speech window. A dip
  shorter than ``silence_duration_ms`` is forgotten at the next window at or above the
  release threshold.
* **Live updates.** :meth:`~VadSegmenter.update` swaps the settings between windows; a
  candidate onset or silence run in progress is kept and judged by the new values from the
  next window on.
* ``remove_filler_words`` and end-of-utterance detection are not the segmenter's business:
  :func:`is_filler_only` helps the server decide about fillers from a transcript.

Every public call returns the events it decided, in order; starts and stops alternate.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import ConfigError, InvalidValue

__all__ = [
    "FILLER_WORDS",
    "VadEvent",
    "VadSegmenter",
    "VadSettings",
    "VadSpeechStarted",
    "VadSpeechStopped",
    "is_filler_only",
    "release_threshold",
]

#: Hysteresis between the start threshold and the threshold that counts a window as silence.
RELEASE_GAP = 0.15
#: Lowest release threshold (keeps a usable gap for very low thresholds).
RELEASE_FLOOR = 0.01

#: Words Voice Live's ``remove_filler_words`` ignores during an ongoing response.
FILLER_WORDS = frozenset({"ah", "umm", "mm", "uh", "huh", "oh", "yeah", "hmm"})


@dataclass(frozen=True)
class VadSettings:
    """The ``server_vad`` knobs the segmenter uses (Voice Live defaults for the Azure VAD types)."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    speech_duration_ms: int = 80

    def __post_init__(self) -> None:
        if not (isinstance(self.threshold, (int, float)) and 0.0 <= self.threshold <= 1.0):
            raise ConfigError("turn_detection.threshold", self.threshold, "a number from 0.0 to 1.0")
        for name in ("prefix_padding_ms", "silence_duration_ms", "speech_duration_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ConfigError(f"turn_detection.{name}", value, "a number of milliseconds >= 0")

    def replace(
        self,
        *,
        threshold: float | None = None,
        prefix_padding_ms: int | None = None,
        silence_duration_ms: int | None = None,
        speech_duration_ms: int | None = None,
    ) -> VadSettings:
        """A copy with the given fields changed (``None`` keeps the current value)."""
        return VadSettings(
            threshold=self.threshold if threshold is None else threshold,
            prefix_padding_ms=self.prefix_padding_ms if prefix_padding_ms is None else prefix_padding_ms,
            silence_duration_ms=self.silence_duration_ms
            if silence_duration_ms is None
            else silence_duration_ms,
            speech_duration_ms=self.speech_duration_ms if speech_duration_ms is None else speech_duration_ms,
        )


@dataclass(frozen=True)
class VadSpeechStarted:
    """Speech began; ``audio_start_ms`` already moved back by the prefix padding."""

    audio_start_ms: int


@dataclass(frozen=True)
class VadSpeechStopped:
    """Speech ended; ``audio_end_ms`` includes the trailing silence window."""

    audio_end_ms: int


VadEvent = VadSpeechStarted | VadSpeechStopped


def release_threshold(threshold: float) -> float:
    """The probability below which a window counts as silence once speech has started."""
    return max(RELEASE_FLOOR, threshold - RELEASE_GAP)


def _ms(value: float) -> int:
    return math.floor(value + 0.5)


class VadSegmenter:
    """Speech-probability windows in, speech start/stop events out (see the module docstring)."""

    def __init__(
        self, settings: VadSettings | None = None, window_ms: float = 32.0, offset_ms: float = 0.0
    ) -> None:
        if not window_ms > 0:
            raise InvalidValue(f"window_ms must be positive, got {window_ms}")
        self._settings = settings if settings is not None else VadSettings()
        self._window_ms = float(window_ms)
        self._offset_ms = float(offset_ms)
        self._windows = 0
        self.floor_ms: float = float(offset_ms)
        self._in_speech = False
        self._onset_ms: float | None = None  # candidate onset while idle
        self._silence_ms: float | None = None  # start of the current silence run while in speech
        self._start_ms = 0  # audio_start_ms of the current turn

    # --- inspection ---------------------------------------------------------------------------

    @property
    def settings(self) -> VadSettings:
        return self._settings

    @settings.setter
    def settings(self, settings: VadSettings) -> None:
        self.update(settings)

    @property
    def window_ms(self) -> float:
        return self._window_ms

    @property
    def in_speech(self) -> bool:
        """True between a start and the matching stop."""
        return self._in_speech

    @property
    def position_ms(self) -> float:
        """Timeline position of the end of the last window pushed (start of the next one)."""
        return self._offset_ms + self._windows * self._window_ms

    # --- control ------------------------------------------------------------------------------

    def update(self, settings: VadSettings) -> None:
        """Replace the settings; they apply from the next window on."""
        self._settings = settings

    def reset(self, at_ms: float = 0.0) -> None:
        """Forget any speech in progress (no event) and restart the timeline at ``at_ms``.

        Use it after ``input_audio_buffer.clear`` (``at_ms`` = current timeline position, the
        timeline itself is session-wide) or when a new stream starts at another offset. The
        floor moves to ``at_ms``.
        """
        self._offset_ms = float(at_ms)
        self._windows = 0
        self.floor_ms = float(at_ms)
        self._in_speech = False
        self._onset_ms = None
        self._silence_ms = None

    def force_stop(self, at_ms: float) -> list[VadEvent]:
        """End a turn now (manual commit, VAD switched off): a stop at ``at_ms`` if in speech.

        The onset candidate is dropped and the floor moves to ``at_ms`` either way.
        """
        events: list[VadEvent] = []
        if self._in_speech:
            events.append(VadSpeechStopped(max(self._start_ms, _ms(at_ms))))
        self._in_speech = False
        self._onset_ms = None
        self._silence_ms = None
        self.floor_ms = float(at_ms)
        return events

    # --- the state machine --------------------------------------------------------------------

    def push(self, probability: float) -> list[VadEvent]:
        """Feed the probability of the next window; return the events it causes (0 or 1)."""
        s = self._settings
        start = self._offset_ms + self._windows * self._window_ms
        end = start + self._window_ms
        self._windows += 1
        if not self._in_speech:
            if probability < s.threshold:
                self._onset_ms = None
                return []
            if self._onset_ms is None:
                self._onset_ms = start
            onset = self._onset_ms
            if end - onset + 1e-9 < s.speech_duration_ms:
                return []
            floor = min(self.floor_ms, onset)
            self._start_ms = _ms(max(floor, onset - s.prefix_padding_ms))
            self._in_speech = True
            self._onset_ms = None
            self._silence_ms = None
            return [VadSpeechStarted(self._start_ms)]
        if probability >= release_threshold(s.threshold):
            self._silence_ms = None
            return []
        if self._silence_ms is None:
            self._silence_ms = start
        if end - self._silence_ms + 1e-9 < s.silence_duration_ms:
            return []
        audio_end = max(self._start_ms, _ms(self._silence_ms + s.silence_duration_ms))
        self._in_speech = False
        self._silence_ms = None
        self.floor_ms = float(audio_end)
        return [VadSpeechStopped(audio_end)]

    def push_many(self, probabilities: list[float]) -> list[VadEvent]:
        """Push several consecutive windows; the concatenated events."""
        events: list[VadEvent] = []
        for p in probabilities:
            events.extend(self.push(p))
        return events


_WORD = re.compile(r"[a-z']+")


def is_filler_only(text: str) -> bool:
    """True when a (partial) transcript holds only filler words (``remove_filler_words``).

    Empty text is not filler-only: nothing was recognised, so nothing can be ignored for it.
    """
    words = _WORD.findall(text.lower())
    return bool(words) and all(w.strip("'") in FILLER_WORDS for w in words)
