"""Streaming recognition (used by the emulator): pocketsphinx decodes while the user speaks.

The decode-after-turn path (:class:`~.asr.Transcriber`) hands the whole utterance to one shared
decoder after ``speech_stopped``, so the reply waits for a decode that grows with the utterance
and with the number of sessions (they queue on the one decoder). Here every utterance gets a
decoder of its own from a small process-wide :class:`DecoderPool` for as long as it lasts:
``start_utt`` at ``speech_started``, ``process_raw`` for each chunk as it arrives, ``hyp()`` for
partial results, ``end_utt`` at ``speech_stopped`` — when only the last chunk and the final
search are left, a few milliseconds whatever the utterance's length.

Cost (measured on the project's 2-core machine): a decoder with the shipped US-English model
takes ~90 MB and ~0.5 s to create; it is kept in the pool and reused, so that cost is paid
once per concurrent speaker, not per utterance. The pool holds at most
:data:`DEFAULT_POOL_SIZE` decoders; an utterance that finds none free is decoded after its
turn by the shared decoder, as before (slower, never wrong).

Accuracy: the live decode normalises cepstra with a running mean, which starts from the model's
default on a connection's first utterance and from where the previous utterance ended after
that; on some voices the first utterance is heard less well than by the whole-utterance decode
(the bundled question at real time: "what is that where they're like ..." instead of word for
word). Audio sent much faster than real time (a file, ``WavSource(pace="fast")``) gains nothing from
streaming, so it is decoded whole after its turn as before (:data:`FASTER_THAN_SPOKEN`).

The audio path matches :meth:`~.asr.Transcriber.transcribe` chunk by chunk: resampling to
16 kHz with a streaming resampler, the same seeded ~2 LSB dither (one generator per utterance,
drawn in order, so chunking does not change it), and nothing at all recognised when the whole
utterance is quieter than :data:`~.asr.SILENCE_DBFS`.

Partial results become ``conversation.item.input_audio_transcription.delta`` events as the user
speaks (as the GA service sends them): a word is sent once :data:`STABLE_PARTIALS` successive
partial hypotheses agree on it and :data:`TRAILING_WORDS` more words were heard after it. With a
phrase list (a grammar) the deltas add up to the final transcript. With open vocabulary the
final pass (lattice best path) can still revise a word already sent: then no further delta is
sent and ``completed`` carries the final text, which is what the reply quotes.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import numpy as np

from ..audio.format import StreamResampler, float_to_pcm16
from ..errors import InvalidValue, OptionalDependencyMissing
from .asr import DITHER_LSB, MODEL_RATE, SILENCE_DBFS, normalize_phrase

__all__ = [
    "DEFAULT_POOL_SIZE",
    "STABLE_PARTIALS",
    "TRAILING_WORDS",
    "DecoderPool",
    "RecognitionStream",
    "StreamingRecognizer",
    "default_pool",
    "stable_words",
]

T = TypeVar("T")

#: Decoders kept at most (~90 MB each): enough for this many people speaking at the same moment.
DEFAULT_POOL_SIZE = 8
#: An utterance whose audio arrived more than this many times faster than real time is decoded
#: whole after its turn instead (the decode-after-turn path is then as fast and more accurate).
FASTER_THAN_SPOKEN = 3.0
#: Partial hypotheses are read at most this often (in audio ms fed), to keep the cost down.
PARTIAL_EVERY_MS = 300


class _PooledDecoder:
    """A decoder and the grammar searches registered on it."""

    def __init__(self) -> None:
        try:
            import pocketsphinx
        except ImportError as exc:
            raise OptionalDependencyMissing(
                "the emulator's transcription", "pocketsphinx", "emulator"
            ) from exc
        # no second (flat-lexicon) pass: it runs at end_utt over the whole utterance, which is
        # the latency this module exists to remove (0.2-0.9 s for 3-6 s of speech, measured)
        # maxhmmpf/maxwpf cap the active search per frame: the same words on the test utterances,
        # and a decoder that keeps up with real time while other sessions decode too
        self.decoder: Any = pocketsphinx.Decoder(
            samprate=MODEL_RATE, loglevel="FATAL", fwdflat=False, maxhmmpf=3000, maxwpf=10
        )
        self.cmn_default: str = str(self.decoder.get_cmn(False))
        self.searches: dict[tuple[str, ...], str | None] = {}

    def search_for(self, phrases: tuple[str, ...] | None) -> str | None:
        """The name of a grammar search for ``phrases`` (``None``: the language model)."""
        if not phrases:
            return None
        if phrases in self.searches:
            return self.searches[phrases]
        d = self.decoder
        kept: list[tuple[str, ...]] = []
        for phrase in phrases:
            words = tuple(w for w in normalize_phrase(phrase) if d.lookup_word(w) is not None)
            if words and words not in kept:
                kept.append(words)
        name: str | None = None
        if kept:
            name = f"phrases{len(self.searches)}"
            alternatives = " | ".join("( " + " ".join(words) + " )" for words in kept)
            jsgf = f"#JSGF V1.0;\ngrammar phrases;\npublic <utterance> = {alternatives};\n"
            # bestpath off for grammar searches, as in asr.Transcriber (phrases cut short otherwise)
            previous = d.config["bestpath"]
            d.config["bestpath"] = False
            try:
                d.add_jsgf_string(name, jsgf)
            finally:
                d.config["bestpath"] = previous
        self.searches[phrases] = name
        return name


class DecoderPool:
    """Decoders to lend, one per utterance in progress (thread-safe, never blocks)."""

    def __init__(self, size: int = DEFAULT_POOL_SIZE) -> None:
        if size < 1:
            raise InvalidValue(f"invalid decoder pool size {size}; use 1 or more")
        self.size = size
        self._lock = threading.Lock()
        self._free: list[_PooledDecoder] = []
        self._lent = 0
        self.created = 0

    def try_acquire(self) -> _PooledDecoder | None:
        """A free decoder (created if the pool is not full yet), or ``None`` when all are lent."""
        with self._lock:
            if self._free:
                self._lent += 1
                return self._free.pop()
            if self._lent + len(self._free) >= self.size:
                return None
            self._lent += 1
        try:
            pooled = _PooledDecoder()  # slow: outside the lock
        except BaseException:
            with self._lock:
                self._lent -= 1
            raise
        with self._lock:
            self.created += 1
        return pooled

    def release(self, pooled: _PooledDecoder) -> None:
        with self._lock:
            self._lent -= 1
            self._free.append(pooled)

    def discard(self, pooled: _PooledDecoder) -> None:
        """A decoder in an unknown state (an error mid-utterance): do not lend it again."""
        with self._lock:
            self._lent -= 1

    @property
    def lent(self) -> int:
        return self._lent

    @property
    def free(self) -> int:
        return len(self._free)


_DEFAULT_POOL: DecoderPool | None = None
_DEFAULT_LOCK = threading.Lock()


def default_pool() -> DecoderPool:
    """The process-wide pool (decoders are expensive to create and are shared by every server)."""
    global _DEFAULT_POOL
    with _DEFAULT_LOCK:
        if _DEFAULT_POOL is None:
            _DEFAULT_POOL = DecoderPool()
        return _DEFAULT_POOL


#: A word is sent as a delta once this many successive partial hypotheses agree on it ...
STABLE_PARTIALS = 3
#: ... and at least this many words were heard after it.
TRAILING_WORDS = 2


def stable_words(history: list[list[str]], trailing: int = TRAILING_WORDS) -> int:
    """How many leading words every hypothesis in ``history`` agrees on, leaving out the last
    ``trailing`` words of the newest one (the recogniser still revises those most)."""
    if not history:
        return 0
    newest = history[-1]
    n = max(0, len(newest) - trailing)
    for older in history[:-1]:
        k = 0
        while k < min(n, len(older)) and older[k] == newest[k]:
            k += 1
        n = k
    return n


class RecognitionStream:
    """One utterance on one pooled decoder. Blocking calls: run them on a worker thread, in order."""

    def __init__(
        self, pool: DecoderPool, phrases: tuple[str, ...] | None, sample_rate: int, cmn: str | None = None
    ) -> None:
        pooled = pool.try_acquire()
        if pooled is None:
            raise _PoolExhausted
        self._pool = pool
        self._pooled: _PooledDecoder | None = pooled
        self._resampler = StreamResampler(sample_rate, MODEL_RATE)
        self._rng = np.random.default_rng(0)
        self._sum_sq = 0.0
        self._samples = 0
        self._since_partial = 0
        #: the cepstral mean at the end of the utterance (set by finish)
        self.cmn: str | None = None
        # feed/finish/abandon may be called from different worker threads (abandon after a cancel)
        self._lock = threading.Lock()
        try:
            search = pooled.search_for(phrases)
            if phrases and search is None:
                raise InvalidValue(f"none of the phrases has a word the recogniser knows: {list(phrases)!r}")
            d = pooled.decoder
            d.activate_search(search)
            # cepstral mean: the model's default, or what the connection's last utterance ended with
            # (as a live recogniser adapts to one speaker), never another connection's
            d.set_cmn(cmn or pooled.cmn_default)
            d.start_utt()
        except BaseException:
            self._pooled = None
            pool.release(pooled)
            raise

    def _process(self, pcm16: bytes) -> None:
        if not pcm16 or self._pooled is None:
            return
        x = np.frombuffer(pcm16, dtype="<i2").astype(np.float32)
        self._sum_sq += float(np.dot(x, x))
        self._samples += x.size
        x += self._rng.standard_normal(x.size, dtype=np.float32) * np.float32(DITHER_LSB)
        self._pooled.decoder.process_raw(float_to_pcm16(x * np.float32(1.0 / 32768.0)), full_utt=False)
        self._since_partial += x.size

    def feed(self, pcm16: bytes) -> list[str] | None:
        """Decode a chunk; every :data:`PARTIAL_EVERY_MS` of audio, the words heard so far."""
        with self._lock:
            return self._feed(pcm16)

    def _feed(self, pcm16: bytes) -> list[str] | None:
        self._process(self._resampler.process(pcm16))
        if self._pooled is None or self._since_partial < PARTIAL_EVERY_MS * MODEL_RATE // 1000:
            return None
        self._since_partial = 0
        hyp = self._pooled.decoder.hyp()
        return [] if hyp is None else str(hyp.hypstr).split()

    def finish(self) -> str:
        """End the utterance; the final text (``""`` when nothing was recognised). Returns the decoder."""
        with self._lock:
            return self._finish()

    def _finish(self) -> str:
        pooled = self._pooled
        if pooled is None:
            return ""
        try:
            self._process(self._resampler.flush())
            pooled.decoder.end_utt()
            hyp = pooled.decoder.hyp()
            self.cmn = str(pooled.decoder.get_cmn(False))
        except BaseException:
            self._pooled = None
            self._pool.discard(pooled)
            raise
        self._pooled = None
        self._pool.release(pooled)
        if self._samples < 2:
            return ""
        rms = math.sqrt(self._sum_sq / self._samples) / 32768.0
        if rms <= 0 or 20 * math.log10(rms) < SILENCE_DBFS:
            return ""  # the language model "hears" words in digital silence
        return "" if hyp is None else str(hyp.hypstr).strip()

    def abandon(self) -> None:
        """Drop the utterance and give the decoder back."""
        with self._lock:
            self._abandon()

    def _abandon(self) -> None:
        pooled, self._pooled = self._pooled, None
        if pooled is None:
            return
        try:
            pooled.decoder.end_utt()
        except Exception:
            self._pool.discard(pooled)
            return
        self._pool.release(pooled)


class _PoolExhausted(Exception):
    pass


class _Claim:
    """A decoder being taken from the pool on a worker thread, which its utterance may give up
    (cancelled) before it arrives: whichever side comes second gives the decoder back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._given_up = False
        self._stream: RecognitionStream | None = None

    def make(self, *args: Any) -> RecognitionStream:
        """On the worker thread: a :class:`RecognitionStream` (released at once if given up)."""
        stream = RecognitionStream(*args)
        with self._lock:
            self._stream = stream
            given_up = self._given_up
        if given_up:
            stream.abandon()
        return stream

    def give_up(self) -> None:
        """On the loop: the utterance no longer wants the decoder."""
        with self._lock:
            self._given_up = True
            stream = self._stream
        if stream is not None:
            _abandon_in_thread(stream)


class _Utterance:
    """The asyncio side of one streaming utterance: a single consumer feeds the decoder in order."""

    def __init__(self, owner: StreamingRecognizer, item_id: str, phrases: tuple[str, ...] | None, rate: int):
        self.owner = owner
        self.item_id = item_id
        self.phrases = phrases
        self.rate = rate
        self.sent_words: list[str] = []
        self.sent_text = ""
        self._pending = bytearray()
        self._wake = asyncio.Event()
        self._finishing = False
        self._partials: list[list[str]] = []
        self._fed_bytes = 0
        self._burst = False
        self._started = time.monotonic()
        self.task: asyncio.Task[str | None] = asyncio.ensure_future(self._run())

    def feed(self, pcm16: bytes) -> None:
        if not self._finishing:
            self._fed_bytes += len(pcm16)
            self._pending += pcm16
            self._wake.set()

    def finish(self) -> asyncio.Task[str | None]:
        spoken_s = self._fed_bytes / 2 / self.rate
        # audio that came faster than anyone speaks (a file sent as fast as possible) gains
        # nothing from streaming: it is decoded whole after its turn, which is more accurate
        self._burst = spoken_s > FASTER_THAN_SPOKEN * (time.monotonic() - self._started) + 0.5
        self._finishing = True
        self._wake.set()
        return self.task

    async def _run(self) -> str | None:
        owner = self.owner
        claim = _Claim()
        try:
            stream: RecognitionStream = await owner.run_blocking(
                claim.make, owner.pool, self.phrases, self.rate, owner.cmn
            )
        except _PoolExhausted:
            return None  # decoded after the turn instead
        except asyncio.CancelledError:
            # cancelled while a worker thread takes a decoder from the pool (slow under load; the
            # first decoder takes a second to build): the decoder goes back once it is made, or
            # it would stay lent for ever and the pool shrink by one with every such utterance
            claim.give_up()
            raise
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._burst:
                    await owner.run_blocking(stream.abandon)
                    return None
                if self._pending:
                    chunk = bytes(self._pending)
                    self._pending.clear()
                    words = await owner.run_blocking(stream.feed, chunk)
                    if words is not None:
                        await self._partial(words)
                if self._finishing and not self._pending:
                    text: str = await owner.run_blocking(stream.finish)
                    if stream.cmn is not None:
                        owner.cmn = stream.cmn
                    return text
        except asyncio.CancelledError:
            # the worker thread may still be inside feed(); give the decoder back after it
            owner.abandon_later(stream)
            raise
        except BaseException:
            owner.abandon_later(stream)
            raise

    async def _partial(self, words: list[str]) -> None:
        self._partials = [*self._partials[-(STABLE_PARTIALS - 1) :], words]
        if len(self._partials) < STABLE_PARTIALS:
            return
        stable = stable_words(self._partials)
        if stable > len(self.sent_words) and words[: len(self.sent_words)] == self.sent_words:
            new = words[len(self.sent_words) : stable]
            delta = (" " if self.sent_words else "") + " ".join(new)
            self.sent_words.extend(new)
            self.sent_text += delta
            await self.owner.on_delta(self.item_id, delta)


class StreamingRecognizer:
    """Per-connection streaming ASR: ``start`` at speech_started, ``feed`` each chunk, ``finish`` at
    speech_stopped (a task with the text, or ``None`` when the utterance was not streamed)."""

    def __init__(
        self,
        run_blocking: Callable[..., Awaitable[Any]],
        on_delta: Callable[[str, str], Awaitable[None]],
        pool: DecoderPool | None = None,
    ) -> None:
        self.run_blocking = run_blocking
        self.on_delta = on_delta
        self.pool = pool or default_pool()
        #: the cepstral mean the connection's last streamed utterance ended with
        self.cmn: str | None = None
        self._current: _Utterance | None = None
        self._done: dict[str, _Utterance] = {}

    @property
    def active(self) -> bool:
        return self._current is not None

    def start(self, item_id: str, phrases: tuple[str, ...] | None, sample_rate: int, audio: bytes) -> None:
        self.cancel()
        self._current = _Utterance(self, item_id, phrases, sample_rate)
        if audio:
            self._current.feed(audio)

    def feed(self, pcm16: bytes) -> None:
        if self._current is not None:
            self._current.feed(pcm16)

    def finish(self, item_id: str) -> asyncio.Task[str | None] | None:
        utt, self._current = self._current, None
        if utt is None or utt.item_id != item_id:
            if utt is not None:
                utt.task.cancel()
            return None
        self._done[item_id] = utt
        while len(self._done) > 8:
            del self._done[next(iter(self._done))]
        return utt.finish()

    def sent_text(self, item_id: str) -> str:
        """The transcription deltas already sent for an item (``""`` if none)."""
        utt = self._done.get(item_id)
        return utt.sent_text if utt is not None else ""

    def cancel(self) -> None:
        utt, self._current = self._current, None
        if utt is not None:
            utt.task.cancel()

    def close(self) -> None:
        self.cancel()
        for utt in self._done.values():
            utt.task.cancel()
        self._done.clear()

    def abandon_later(self, stream: RecognitionStream) -> None:
        """Give the decoder back on a worker thread (after any feed still running there)."""
        _abandon_in_thread(stream)


def _abandon_in_thread(stream: RecognitionStream) -> None:
    """Give the decoder back on a worker thread (after any feed still running there)."""
    # a thread of its own, not the loop's executor: this also runs while the loop shuts down
    threading.Thread(target=stream.abandon, name="voicelive-asr-release", daemon=True).start()
