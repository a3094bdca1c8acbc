"""Build VAD test sets with exact truth: speech with known pauses, noise at a chosen SNR,
inserted pauses, concatenation, gain.

A :class:`Clip` is PCM16 mono audio with its :class:`~voicelive_nb.lab.truth.Truth`; every
helper returns a new clip whose truth follows the edit::

    clip = speech_clip(["Hello there.", "How are you today?"], pauses_s=[0.8])
    noisy = mix_noise(clip, snr_db=5, seed=1)           # truth unchanged
    halting = insert_pause(clip, at_s=1.0, pause_s=0.4)  # a hesitation: still one utterance
    longer = concat([clip, noisy], pauses_s=1.0)         # truth shifted and joined
    longer.save("sets/long.wav")                         # sets/long.wav + sets/long.json

Speech comes from eSpeak NG (:mod:`voicelive_nb.speech.tts`, the emulator's TTS): each sentence is
trimmed to its first and last audible sample, so its truth span is exact to the sample. eSpeak
renders a sentence slightly differently from call to call, so keep the clip (or the saved WAV)
when results must be compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..audio.format import float_to_pcm16, pcm16_to_float, resample
from ..errors import InvalidType, InvalidValue
from .truth import Truth, find_truth, save_truth

__all__ = [
    "Clip",
    "as_clip",
    "concat",
    "excerpt",
    "insert_pause",
    "mix_noise",
    "silence_clip",
    "speech_clip",
    "with_gain",
]


@dataclass(frozen=True)
class Clip:
    """PCM16 mono audio, its sample rate, its truth and a name."""

    pcm16: bytes = field(repr=False)
    sample_rate: int
    truth: Truth | None = None
    name: str = "clip"

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise InvalidValue(f"invalid sample rate: {self.sample_rate}")
        if len(self.pcm16) % 2:
            raise InvalidValue(f"pcm16 audio must have an even number of bytes, got {len(self.pcm16)}")

    @property
    def duration_s(self) -> float:
        return len(self.pcm16) / 2 / self.sample_rate

    @property
    def samples(self) -> np.ndarray:
        """The audio as int16 samples (a read-only view)."""
        return np.frombuffer(self.pcm16, dtype="<i2")

    def at_rate(self, sample_rate: int) -> Clip:
        """The same clip resampled (the truth is in seconds and does not change)."""
        if sample_rate == self.sample_rate:
            return self
        return replace(
            self, pcm16=resample(self.pcm16, self.sample_rate, sample_rate), sample_rate=sample_rate
        )

    def renamed(self, name: str) -> Clip:
        return replace(self, name=name)

    def save(self, path: str | Path, truth_format: str = "json") -> Path:
        """Write ``path`` (a WAV) and the truth next to it (``.json``, ``.csv`` or ``.txt``)."""
        from ..audio.wav import write_wav

        p = Path(path)
        write_wav(p, self.pcm16, self.sample_rate)
        if self.truth is not None:
            suffix = {"json": ".json", "csv": ".csv", "audacity": ".txt"}[truth_format]
            save_truth(p.with_name(p.stem + suffix), self.truth, truth_format)
        return p


def as_clip(
    audio: Clip | str | Path | bytes,
    sample_rate: int | None = None,
    *,
    truth: Truth | None = None,
    name: str | None = None,
) -> Clip:
    """A clip from a clip, a WAV path (its sidecar truth is picked up) or PCM16 bytes."""
    if isinstance(audio, Clip):
        clip = audio
    elif isinstance(audio, (str, Path)):
        from ..audio.wav import read_wav

        pcm, rate = read_wav(audio)
        clip = Clip(pcm, rate, find_truth(audio), Path(audio).stem)
    elif isinstance(audio, (bytes, bytearray, memoryview)):
        if sample_rate is None:
            raise InvalidValue("raw PCM16 audio needs sample_rate")
        clip = Clip(bytes(audio), sample_rate, None, "audio")
    else:
        raise InvalidType(f"expected a Clip, a WAV path or PCM16 bytes, got {type(audio).__name__}")
    if truth is not None:
        clip = replace(clip, truth=truth)
    if name is not None:
        clip = replace(clip, name=name)
    return clip


def speech_clip(
    sentences: Sequence[str],
    pauses_s: Sequence[float] | float = 1.0,
    *,
    lead_s: float = 0.5,
    tail_s: float = 0.5,
    sample_rate: int = 24000,
    words_per_minute: int = 160,
    voice: str = "en-us",
    name: str = "speech",
    turns: Sequence[str] | None = None,
) -> Clip:
    """Sentences spoken by eSpeak NG with exact digital-silence pauses between them; one
    utterance per sentence in the truth. ``turns``: a turn id per sentence (the same id on
    neighbours makes the pause between them a hold, see :mod:`voicelive_nb.lab.turns`)."""
    from ..speech.tts import speech_with_pauses

    if isinstance(pauses_s, (int, float)):
        pauses = [float(pauses_s)] * max(len(sentences) - 1, 0)
    else:
        pauses = [float(p) for p in pauses_s]
    pcm, spans = speech_with_pauses(
        list(sentences),
        pauses,
        sample_rate,
        lead_s,
        tail_s,
        voice=voice,
        words_per_minute=words_per_minute,
    )
    if turns is not None and len(turns) != len(sentences):
        raise InvalidValue(
            f"speech_clip needs one turn id per sentence: {len(sentences)} sentences, {len(turns)} ids"
        )
    return Clip(pcm, sample_rate, Truth.from_spans(spans, source="speech_with_pauses", turns=turns), name)


def silence_clip(duration_s: float, sample_rate: int = 24000, name: str = "silence") -> Clip:
    """Digital silence (truth: no speech)."""
    return Clip(bytes(2 * round(duration_s * sample_rate)), sample_rate, Truth(()), name)


def _noise_like(noise: Clip | bytes | None, n: int, sample_rate: int, seed: int) -> np.ndarray:
    if noise is None:
        return np.random.default_rng(seed).standard_normal(n)
    if isinstance(noise, Clip):
        src = pcm16_to_float(noise.at_rate(sample_rate).pcm16).astype(np.float64)
    else:
        src = pcm16_to_float(bytes(noise)).astype(np.float64)
    if src.size == 0 or not np.any(src):
        raise InvalidValue("the noise is empty or silent")
    reps = -(-n // src.size)
    start = int(np.random.default_rng(seed).integers(0, src.size))
    looped = np.tile(np.roll(src, -start), reps)[:n]
    return looped


def _active_rms(x: np.ndarray, sample_rate: int) -> float:
    frame = max(1, sample_rate // 100)
    count = x.size // frame
    if count == 0:
        return float(np.sqrt(np.mean(x**2))) if x.size else 0.0
    power = np.mean(x[: count * frame].reshape(count, frame) ** 2, axis=1)
    active = power > (32 / 32768.0) ** 2
    return float(np.sqrt(np.mean(power[active]))) if np.any(active) else 0.0


def mix_noise(
    clip: Clip,
    snr_db: float,
    *,
    seed: int = 0,
    noise: Clip | bytes | None = None,
    name: str | None = None,
) -> Clip:
    """Add noise ``snr_db`` below the speech level; the truth does not change.

    The speech level is the RMS over the clip's non-silent 10 ms frames (so pauses do not lower
    it); the noise covers the whole clip, pauses included. ``noise`` is white Gaussian noise by
    default, or a recording (a clip or PCM16 at the clip's rate; looped from a seeded random
    offset). Deterministic for a seed; the sum is clipped to PCM16.
    """
    x = pcm16_to_float(clip.pcm16).astype(np.float64)
    level = _active_rms(x, clip.sample_rate)
    if level == 0.0:
        raise InvalidValue("the clip is silent, so a signal-to-noise ratio is undefined")
    n = _noise_like(noise, x.size, clip.sample_rate, seed)
    n_rms = float(np.sqrt(np.mean(n**2)))
    scaled = n * (level / (10.0 ** (snr_db / 20.0)) / n_rms)
    label = name or f"{clip.name}+noise{snr_db:g}dB"
    return replace(clip, pcm16=float_to_pcm16(x + scaled), name=label)


def with_gain(clip: Clip, gain_db: float, *, name: str | None = None) -> Clip:
    """The clip louder or softer by ``gain_db`` (clipped to PCM16); the truth does not change."""
    x = pcm16_to_float(clip.pcm16).astype(np.float64) * (10.0 ** (gain_db / 20.0))
    return replace(clip, pcm16=float_to_pcm16(x), name=name or f"{clip.name}{gain_db:+g}dB")


def insert_pause(
    clip: Clip, at_s: float, pause_s: float, *, split: bool = False, name: str | None = None
) -> Clip:
    """Insert ``pause_s`` of digital silence at ``at_s``.

    Truth after the point moves later by ``pause_s``. A pause inside an utterance is a
    hesitation: by default the utterance stays one (longer) utterance, which a VAD with a
    silence window shorter than the pause will cut; with ``split=True`` it becomes two.
    """
    if pause_s < 0:
        raise InvalidValue(f"pause_s must be >= 0, got {pause_s}")
    if not 0 <= at_s <= clip.duration_s:
        raise InvalidValue(f"at_s must be within the clip (0 to {clip.duration_s:.3f} s), got {at_s}")
    cut = 2 * round(at_s * clip.sample_rate)
    gap = bytes(2 * round(pause_s * clip.sample_rate))
    pcm = clip.pcm16[:cut] + gap + clip.pcm16[cut:]
    at = cut / 2 / clip.sample_rate
    shift = len(gap) / 2 / clip.sample_rate
    truth = None
    if clip.truth is not None:
        spans: list[tuple[float, float]] = []
        for a, b in clip.truth.spans_s:
            if b <= at:
                spans.append((a, b))
            elif a >= at:
                spans.append((a + shift, b + shift))
            elif split:
                spans.extend([(a, at), (at + shift, b + shift)])
            else:
                spans.append((a, b + shift))
        truth = Truth(tuple(spans), clip.truth.source)
    return Clip(pcm, clip.sample_rate, truth, name or f"{clip.name}+pause{pause_s:g}s")


def excerpt(clip: Clip, start_s: float, end_s: float, *, name: str | None = None) -> Clip:
    """The part of ``clip`` from ``start_s`` to ``end_s``; utterances cut at the edges are cut too."""
    if not 0 <= start_s < end_s:
        raise InvalidValue(f"need 0 <= start_s < end_s, got {start_s} and {end_s}")
    a = round(start_s * clip.sample_rate)
    b = min(round(end_s * clip.sample_rate), len(clip.pcm16) // 2)
    t0, t1 = a / clip.sample_rate, b / clip.sample_rate
    truth = None
    if clip.truth is not None:
        spans = [(max(s, t0) - t0, min(e, t1) - t0) for s, e in clip.truth.spans_s if e > t0 and s < t1]
        truth = Truth(tuple((s, e) for s, e in spans if e > s), clip.truth.source)
    return Clip(clip.pcm16[2 * a : 2 * b], clip.sample_rate, truth, name or f"{clip.name}[{t0:g}:{t1:g}]")


def concat(
    clips: Sequence[Clip],
    pauses_s: Sequence[float] | float = 0.0,
    *,
    sample_rate: int | None = None,
    name: str = "concat",
) -> Clip:
    """Clips one after another with digital-silence pauses between them; truths joined.

    Clips at other rates are resampled to ``sample_rate`` (default: the first clip's). A clip
    without truth makes the result's truth None (unknown).
    """
    if not clips:
        raise InvalidValue("concat needs at least one clip")
    rate = sample_rate or clips[0].sample_rate
    if isinstance(pauses_s, (int, float)):
        pauses = [float(pauses_s)] * (len(clips) - 1)
    else:
        pauses = [float(p) for p in pauses_s]
    if len(pauses) != len(clips) - 1:
        raise InvalidValue(f"need {len(clips) - 1} pauses for {len(clips)} clips, got {len(pauses)}")
    parts: list[bytes] = []
    spans: list[tuple[float, float]] = []
    known = True
    cursor = 0
    for i, c in enumerate(clips):
        c = c.at_rate(rate)
        offset = cursor / rate
        if c.truth is None:
            known = False
        else:
            spans.extend((a + offset, b + offset) for a, b in c.truth.spans_s)
        parts.append(c.pcm16)
        cursor += len(c.pcm16) // 2
        if i < len(pauses):
            gap = bytes(2 * round(pauses[i] * rate))
            parts.append(gap)
            cursor += len(gap) // 2
    truth = Truth.from_spans(spans, source="concat") if known else None
    return Clip(b"".join(parts), rate, truth, name)
