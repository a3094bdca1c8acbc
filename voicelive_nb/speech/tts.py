"""Offline text-to-speech with eSpeak NG (the library and voices shipped by ``espeakng-loader``).

A small ctypes binding drives ``libespeak-ng`` in synchronous mode: ``espeak_Synth`` calls our
synth callback with 22050 Hz PCM16 blocks and word events on the calling thread. The library
is process-global, so it is initialised once and every call runs under one lock. The audio
is resampled with soxr to the rate asked for (24 kHz by default).

Not repeatable call to call: the same text comes out a little different each time (four calls
of one sentence gave four different waveforms, lengths within about 10 ms), in an order fixed
from the process's start. eSpeak NG's waveform generator keeps its pitch-flutter position
(``Flutter_ix`` in wavegen.c) from one utterance to the next; setting it back to 0 before each
call made the output identical in an experiment, but it is a static inside the library, so
this module leaves it alone. Tests that compare audio lengths or onsets allow for this.

Also here: :func:`speech_with_pauses`, which builds test speech with exactly known speech
spans (each sentence trimmed to its first and last audible sample), and :func:`add_noise` /
:func:`white_noise` for noise experiments. These feed the VAD tests and the VAD lab.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..audio.format import float_to_pcm16, pcm16_to_float, resample
from ..errors import InvalidValue, OptionalDependencyMissing, StateError

__all__ = [
    "SpeechAudio",
    "WordTiming",
    "add_noise",
    "speech_with_pauses",
    "synthesize",
    "white_noise",
]

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_SENTENCE = 2
_EVENT_END = 5
_EVENT_MSG_TERMINATED = 6
_PARAM_RATE = 1
_EE_OK = 0

#: |sample| at or below this (PCM16 units, about -60 dBFS) counts as silence when trimming.
SILENCE_LEVEL = 32


@dataclass(frozen=True)
class WordTiming:
    """A spoken word: ``offset_ms`` from the start of the audio, ``duration_ms`` until its sound ends."""

    text: str
    offset_ms: float
    duration_ms: float


@dataclass(frozen=True)
class SpeechAudio:
    """Synthesised speech: PCM16 mono at ``sample_rate`` and the word timings."""

    pcm16: bytes
    sample_rate: int
    words: list[WordTiming] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return (len(self.pcm16) // 2) * 1000.0 / self.sample_rate


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class _ESpeak:
    """The process-wide eSpeak NG library; use only while holding ``_LOCK``."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise OptionalDependencyMissing(
                "the emulator's speech synthesis", "espeakng-loader", "emulator"
            ) from exc
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_Callback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        data_path = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 100, data_path, 0)
        if rate <= 0:
            raise StateError(f"espeak-ng failed to initialise (data at {data_path.decode()!r})")
        self.lib = lib
        self.sample_rate = int(rate)
        self.voice: str | None = None
        self.rate_wpm: int | None = None
        self._blocks: list[np.ndarray[Any, np.dtype[np.int16]]] = []
        self._events: list[tuple[int, int, int, int]] = []  # type, text_position, length, sample
        self._callback = _Callback(self._on_synth)  # keep a reference: C holds only the pointer
        lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav: Any, count: int, events: Any) -> int:
        if count > 0 and wav:
            self._blocks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            self._events.append((ev.type, ev.text_position, ev.length, ev.sample))
            i += 1
        return 0

    def speak(
        self, text: str, voice: str, wpm: int
    ) -> tuple[np.ndarray[Any, np.dtype[np.int16]], list[tuple[int, int, int, int]]]:
        if voice != self.voice:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise InvalidValue(f"unknown espeak-ng voice: {voice!r}; try 'en-us' or 'en'")
            self.voice = voice
            self.rate_wpm = None  # a voice change resets the rate
        if wpm != self.rate_wpm:
            self.lib.espeak_SetParameter(_PARAM_RATE, wpm, 0)
            self.rate_wpm = wpm
        self._blocks = []
        self._events = []
        data = text.encode("utf-8") + b"\0"
        err = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        blocks, events = self._blocks, self._events
        self._blocks, self._events = [], []
        if err != _EE_OK:
            raise StateError(f"espeak-ng could not synthesise the text (error {err})")
        audio = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int16)
        return audio, events


_LOCK = threading.Lock()
_ENGINE: _ESpeak | None = None


def _engine() -> _ESpeak:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _ESpeak()
    return _ENGINE


def _word_timings(
    text: str, audio: np.ndarray[Any, np.dtype[np.int16]], events: list[tuple[int, int, int, int]], rate: int
) -> list[WordTiming]:
    """Words from eSpeak's word events; each lasts until the last audible sample before the next
    word or clause end (so pauses after commas and full stops are not part of a word)."""
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > SILENCE_LEVEL)
    boundaries = sorted(
        {
            s
            for kind, _, _, s in events
            if kind in (_EVENT_WORD, _EVENT_END, _EVENT_SENTENCE, _EVENT_MSG_TERMINATED)
        }
        | {audio.size}
    )
    words: list[WordTiming] = []
    for kind, pos, length, start in events:
        if kind != _EVENT_WORD:
            continue
        stop = next((b for b in boundaries if b > start), audio.size)
        inside = loud[(loud >= start) & (loud < stop)]
        end = int(inside[-1]) + 1 if inside.size else start
        word = text[pos - 1 : pos - 1 + length] if pos >= 1 else ""
        words.append(WordTiming(word, start * 1000.0 / rate, (end - start) * 1000.0 / rate))
    return words


def synthesize(
    text: str, sample_rate: int = 24000, voice: str = "en-us", words_per_minute: int = 160
) -> SpeechAudio:
    """Speak ``text`` with eSpeak NG; PCM16 mono at ``sample_rate`` plus word timings.

    Takes a few milliseconds per sentence. Thread-safe (calls are serialised). Raises
    :class:`~voicelive_nb.errors.OptionalDependencyMissing` without ``espeakng-loader``.
    """
    if sample_rate <= 0:
        raise InvalidValue(f"invalid sample rate: {sample_rate}")
    if words_per_minute <= 0:
        raise InvalidValue(f"invalid speaking rate: {words_per_minute} words per minute")
    if not text.strip():
        return SpeechAudio(b"", sample_rate, [])
    with _LOCK:
        engine = _engine()
        audio, events = engine.speak(text, voice, int(words_per_minute))
        native = engine.sample_rate
    words = _word_timings(text, audio, events, native)
    pcm = resample(audio.astype("<i2").tobytes(), native, sample_rate)
    return SpeechAudio(pcm, sample_rate, words)


def _audible_bounds(samples: np.ndarray[Any, np.dtype[np.int16]]) -> tuple[int, int]:
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > SILENCE_LEVEL)
    if loud.size == 0:
        return 0, 0
    return int(loud[0]), int(loud[-1]) + 1


def speech_with_pauses(
    sentences: Sequence[str],
    pauses_s: Sequence[float],
    sample_rate: int = 24000,
    lead_s: float = 0.5,
    tail_s: float = 0.5,
    *,
    voice: str = "en-us",
    words_per_minute: int = 160,
) -> tuple[bytes, list[tuple[float, float]]]:
    """Sentences separated by exact digital-silence pauses, with the true speech spans.

    Each sentence is synthesised and trimmed to its first and last sample above
    :data:`SILENCE_LEVEL` (about -60 dBFS), then laid out as ``lead_s`` silence, sentence,
    ``pauses_s[0]``, sentence, …, ``tail_s``. The spans are ``(start_s, end_s)`` of each
    sentence in the returned audio, exact to the sample.
    """
    if len(pauses_s) != max(len(sentences) - 1, 0):
        raise InvalidValue(
            f"need {max(len(sentences) - 1, 0)} pauses for {len(sentences)} sentences, got {len(pauses_s)}"
        )
    parts: list[np.ndarray[Any, np.dtype[np.int16]]] = []
    spans: list[tuple[float, float]] = []
    cursor = 0

    def silence(seconds: float) -> None:
        nonlocal cursor
        n = round(seconds * sample_rate)
        parts.append(np.zeros(n, dtype=np.int16))
        cursor += n

    silence(lead_s)
    for i, sentence in enumerate(sentences):
        speech = synthesize(sentence, sample_rate, voice, words_per_minute)
        samples = np.frombuffer(speech.pcm16, dtype="<i2")
        first, last = _audible_bounds(samples)
        trimmed = samples[first:last]
        spans.append((cursor / sample_rate, (cursor + trimmed.size) / sample_rate))
        parts.append(trimmed)
        cursor += trimmed.size
        if i < len(pauses_s):
            silence(pauses_s[i])
    silence(tail_s)
    return np.concatenate(parts).astype("<i2").tobytes(), spans


def _active_rms(x: np.ndarray[Any, np.dtype[np.float32]], sample_rate: int) -> float:
    """RMS over the 10 ms frames that are not (near) digital silence."""
    frame = max(1, sample_rate // 100)
    n = x.size // frame
    if n == 0:
        return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if x.size else 0.0
    frames = x[: n * frame].astype(np.float64).reshape(n, frame)
    power = np.mean(frames**2, axis=1)
    active = power > (SILENCE_LEVEL / 32768.0) ** 2
    if not np.any(active):
        return 0.0
    return float(np.sqrt(np.mean(power[active])))


def add_noise(pcm16: bytes, snr_db: float, seed: int = 0, sample_rate: int = 24000) -> bytes:
    """Mix in white Gaussian noise ``snr_db`` below the speech level.

    The speech level is the RMS over the non-silent 10 ms frames (so long pauses do not
    lower it); the noise covers the whole signal, pauses included. Deterministic for a seed;
    the sum is clipped to PCM16.
    """
    x = pcm16_to_float(pcm16)
    speech_rms = _active_rms(x, sample_rate)
    if speech_rms == 0.0:
        raise InvalidValue("the audio is silent, so a signal-to-noise ratio is undefined; use white_noise()")
    noise_rms = speech_rms / (10.0 ** (snr_db / 20.0))
    noise = np.random.default_rng(seed).standard_normal(x.size) * noise_rms
    return float_to_pcm16(x + noise)


def white_noise(duration_s: float, level_dbfs: float, sample_rate: int = 24000, seed: int = 0) -> bytes:
    """White Gaussian noise with an RMS of ``level_dbfs`` (dB re full-scale square wave)."""
    n = round(duration_s * sample_rate)
    rms = 10.0 ** (level_dbfs / 20.0)
    return float_to_pcm16(np.random.default_rng(seed).standard_normal(n) * rms)
