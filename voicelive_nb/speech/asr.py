"""Offline transcription (the emulator's, the lab's) with pocketsphinx's shipped US-English model.

The model (acoustic model, 27 MB language model, CMU dictionary) takes about 0.35 s to load,
so one decoder is created lazily per process and shared by every :class:`Transcriber`
under a lock (pocketsphinx decoders are not thread-safe). A transcriber with ``phrases``
registers a JSGF grammar as a named search on that decoder and activates it for its own
utterances, which restricts recognition to those phrases; without phrases the default
n-gram language model is used (poor on eSpeak voices, fine for "something was said").

With a grammar the result is always one of the phrases or ``""``; one utterance is expected
to hold exactly one phrase. Utterances that match no phrase usually give ``""``, but a short
phrase can match the start of longer speech ("stop the music now" → "stop") and a grammar of
only a few phrases may force-fit unrelated speech to one of them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..audio.format import float_to_pcm16, resample, rms_dbfs
from ..errors import InvalidValue, OptionalDependencyMissing

__all__ = ["MODEL_RATE", "Transcriber", "normalize_phrase"]

MODEL_RATE = 16000
#: Audio quieter than this (RMS, dBFS) is not decoded at all.
SILENCE_DBFS = -70.0
#: Standard deviation of the dither added before recognition, in PCM16 steps.
DITHER_LSB = 2.0

_LOCK = threading.RLock()
_DECODER: Any = None
_SEARCHES: dict[tuple[str, ...], str] = {}

_NON_WORD = re.compile(r"[^a-z0-9' ]+")


def _decoder() -> Any:
    """The shared decoder (call with ``_LOCK`` held)."""
    global _DECODER
    if _DECODER is None:
        try:
            import pocketsphinx
        except ImportError as exc:
            raise OptionalDependencyMissing(
                "the emulator's transcription", "pocketsphinx", "emulator"
            ) from exc
        _DECODER = pocketsphinx.Decoder(samprate=MODEL_RATE, loglevel="FATAL")
    return _DECODER


def _dither(pcm16: bytes) -> bytes:
    """Add fixed, seeded noise of about 2 LSB (-84 dBFS).

    Runs of exact digital zeros (eSpeak pauses, padded audio) give the recogniser degenerate
    features: on 225 eSpeak utterances of 25 grammar phrases it found 206 without dither and
    225 with it. pocketsphinx's own ``dither`` option did nearly as well (223) but draws from a
    generator whose state carries over between utterances; this keeps every result a pure
    function of the audio.
    """
    x = np.frombuffer(pcm16, dtype="<i2").astype(np.float32)
    x += np.random.default_rng(0).standard_normal(x.size, dtype=np.float32) * np.float32(DITHER_LSB)
    return float_to_pcm16(x * np.float32(1.0 / 32768.0))


def normalize_phrase(phrase: str) -> list[str]:
    """Lowercase, drop punctuation (apostrophes inside words stay), split into words."""
    text = _NON_WORD.sub(" ", phrase.lower().replace("-", " "))
    return [w.strip("'") for w in text.split() if w.strip("'")]


def _jsgf(phrases: Iterable[tuple[str, ...]]) -> str:
    alternatives = " | ".join("( " + " ".join(words) + " )" for words in phrases)
    return f"#JSGF V1.0;\ngrammar phrases;\npublic <utterance> = {alternatives};\n"


class Transcriber:
    """Speech → text with pocketsphinx; optionally restricted to a list of phrases.

    ``phrases`` are normalised with :func:`normalize_phrase`; words missing from the
    pronunciation dictionary are dropped (see :attr:`dropped_words`) and phrases left empty
    are ignored. A grammar accepts exactly one of the phrases per utterance. Raises
    :class:`ValueError` if ``phrases`` is given but no usable phrase remains.
    """

    def __init__(self, phrases: list[str] | None = None) -> None:
        self.phrases: list[str] | None = None
        self.dropped_words: list[str] = []
        self._search: str | None = None
        if phrases is None:
            return
        with _LOCK:
            decoder = _decoder()
            kept: list[tuple[str, ...]] = []
            for phrase in phrases:
                words: list[str] = []
                for word in normalize_phrase(phrase):
                    if decoder.lookup_word(word) is None:
                        self.dropped_words.append(word)
                    else:
                        words.append(word)
                if words and tuple(words) not in kept:
                    kept.append(tuple(words))
            if not kept:
                raise InvalidValue(f"none of the phrases has a word the recogniser knows: {phrases!r}")
            key = tuple(" ".join(words) for words in kept)
            search = _SEARCHES.get(key)
            if search is None:
                search = f"phrases{len(_SEARCHES)}"
                # A grammar search reads "bestpath" when it is created. With the lattice
                # best-path pass on it sometimes returned a phrase cut short ("now comes the"
                # for "now comes the second part": 217 of 225 exact, 8 truncated); off, 225
                # of 225. The language-model search keeps the default.
                previous = decoder.config["bestpath"]
                decoder.config["bestpath"] = False
                try:
                    decoder.add_jsgf_string(search, _jsgf(kept))
                finally:
                    decoder.config["bestpath"] = previous
                _SEARCHES[key] = search
            self._search = search
            self.phrases = list(key)

    def transcribe(self, pcm16: bytes, sample_rate: int) -> str:
        """Recognise one utterance of PCM16 mono audio; ``""`` when nothing was recognised."""
        audio = resample(pcm16, sample_rate, MODEL_RATE)
        if len(audio) < 2 or rms_dbfs(audio) < SILENCE_DBFS:
            return ""  # the language model "hears" words in digital silence ("dog")
        audio = _dither(audio)
        with _LOCK:
            decoder = _decoder()
            decoder.activate_search(self._search)
            decoder.start_utt()
            try:
                decoder.process_raw(audio, full_utt=True)
            finally:
                decoder.end_utt()
            hyp = decoder.hyp()
        return "" if hyp is None else str(hyp.hypstr).strip()
