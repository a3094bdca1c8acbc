"""In-memory audio sources and sinks: arrays in, buffers out (tests, notebooks, the VAD lab).

- :class:`ArraySource` streams a NumPy array or PCM16 bytes as if it were a microphone.
- :class:`SilenceSource` streams digital silence, for a while or for ever.
- :class:`BufferSink` collects what the assistant says, per item and in total. By default
  everything "plays" the moment it is written; with ``realtime=True`` it models a speaker
  that plays at real-time speed on an injectable clock, so barge-in truncation (what was
  really heard when the user interrupted) can be tested without a sound card.
- :class:`EchoRoom` puts a speaker and a microphone in one room: what the session plays comes
  back into the microphone delayed, attenuated and dulled (the acoustic echo of a laptop with
  no headphones), and :meth:`EchoRoom.reference_frames` adds, as channel 1, what the speaker
  played at each moment (client-reference echo cancellation), all on the microphone's sample
  clock, so it runs with ``pace="fast"``.

:class:`PcmSource` is the paced framing shared with :class:`~voicelive_nb.audio.wav.WavSource`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..errors import AudioError, ConfigError, WaitTimeout
from .buffers import PlayoutTracker, interleave
from .format import float_to_pcm16, resample

__all__ = [
    "ArraySource",
    "BufferSink",
    "EchoRoom",
    "Flush",
    "Pace",
    "PcmSource",
    "RoomSpeaker",
    "SilenceSource",
]

Pace = Literal["realtime", "fast"]
_PACES = ("realtime", "fast")


def _check_pace(pace: str) -> None:
    if pace not in _PACES:
        raise ConfigError("pace", pace, "'realtime' (paced like a microphone) or 'fast' (no waiting)")


def _check_ms(name: str, value: float) -> None:
    if value < 0:
        raise ConfigError(name, value, "0 or more milliseconds")


def _frame_samples(sample_rate: int, frame_ms: int) -> int:
    if sample_rate <= 0:
        raise ConfigError("sample_rate", sample_rate, "a positive rate in Hz such as 24000")
    if frame_ms <= 0:
        raise ConfigError("frame_ms", frame_ms, "a positive number of milliseconds such as 20")
    samples = sample_rate * frame_ms // 1000
    if samples <= 0:
        raise ConfigError("frame_ms", frame_ms, f"at least one sample per frame at {sample_rate} Hz")
    return samples


def _silence(sample_rate: int, ms: float) -> bytes:
    return bytes(2 * round(sample_rate * ms / 1000))


async def _paced(
    frames: Iterator[bytes], sample_rate: int, pace: Pace, closed: Callable[[], bool]
) -> AsyncIterator[bytes]:
    """Yield ``frames`` either as fast as possible or like a microphone would deliver them.

    Real-time pacing follows a deadline schedule computed from the start, not a sum of
    sleeps: frame ``k`` is released when the audio up to its end has "been captured",
    ``t0 + samples_through_k / sample_rate``. A late consumer catches up instead of
    shifting every later frame (no drift).
    """
    loop = asyncio.get_running_loop()
    t0: float | None = None
    emitted = 0
    for frame in frames:
        if closed():
            return
        emitted += len(frame) // 2
        if pace == "realtime":
            if t0 is None:
                t0 = loop.time()
            delay = t0 + emitted / sample_rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        else:
            await asyncio.sleep(0)
        if closed():
            return
        yield frame


class PcmSource:
    """An :class:`~voicelive_nb.audio.base.AudioSource` over PCM16 mono audio held in memory.

    ``frames(sample_rate, frame_ms)`` resamples (once per rate, cached), adds
    ``lead_silence_ms`` before the audio and ``tail_silence_ms`` after each pass, and with
    ``loop=True`` repeats audio + tail for ever (frames run across the seams, so only a
    non-looping source ends with a shorter frame).
    """

    def __init__(
        self,
        pcm16: bytes,
        sample_rate: int,
        *,
        pace: Pace = "fast",
        loop: bool = False,
        lead_silence_ms: float = 0,
        tail_silence_ms: float = 0,
    ) -> None:
        _check_pace(pace)
        _check_ms("lead_silence_ms", lead_silence_ms)
        _check_ms("tail_silence_ms", tail_silence_ms)
        if sample_rate <= 0:
            raise ConfigError("sample_rate", sample_rate, "a positive rate in Hz such as 24000")
        if len(pcm16) % 2:
            raise AudioError(f"pcm16 audio must have an even number of bytes, got {len(pcm16)}")
        self._pcm16 = bytes(pcm16)
        self._rate = sample_rate
        self.pace: Pace = pace
        self.loop = loop
        self.lead_silence_ms = lead_silence_ms
        self.tail_silence_ms = tail_silence_ms
        self._by_rate: dict[int, bytes] = {sample_rate: self._pcm16}
        self._closed = False

    @property
    def sample_rate(self) -> int:
        """The rate of the audio as given (``frames`` resamples to the rate it is asked for)."""
        return self._rate

    @property
    def duration_s(self) -> float:
        """Duration of the audio itself, without lead or tail silence."""
        return len(self._pcm16) / 2 / self._rate

    @property
    def closed(self) -> bool:
        return self._closed

    def pcm16_at(self, sample_rate: int) -> bytes:
        """The whole audio (no lead/tail silence) resampled to ``sample_rate``."""
        pcm = self._by_rate.get(sample_rate)
        if pcm is None:
            pcm = resample(self._pcm16, self._rate, sample_rate)
            self._by_rate[sample_rate] = pcm
        return pcm

    def _stream(self, sample_rate: int, frame_samples: int) -> Iterator[bytes]:
        step = 2 * frame_samples
        lead = _silence(sample_rate, self.lead_silence_ms)
        body = self.pcm16_at(sample_rate) + _silence(sample_rate, self.tail_silence_ms)
        if not self.loop or not body:
            data = lead + body
            for i in range(0, len(data), step):
                yield data[i : i + step]
            return
        pending = bytearray(lead)
        while True:
            while len(pending) < step:
                pending += body
            yield bytes(pending[:step])
            del pending[:step]

    def frames(self, sample_rate: int, frame_ms: int = 20) -> AsyncIterator[bytes]:
        """Yield PCM16 mono frames of ``frame_ms`` at ``sample_rate`` (see the class doc)."""
        frame_samples = _frame_samples(sample_rate, frame_ms)
        return _paced(self._stream(sample_rate, frame_samples), sample_rate, self.pace, lambda: self._closed)

    async def aclose(self) -> None:
        """Stop every running ``frames`` iterator at its next frame (idempotent)."""
        self._closed = True


def _to_pcm16(samples: npt.NDArray[Any] | bytes | bytearray | memoryview, gain: float) -> bytes:
    if isinstance(samples, (bytes, bytearray, memoryview)):
        raw = bytes(samples)
        if len(raw) % 2:
            raise AudioError(f"pcm16 audio must have an even number of bytes, got {len(raw)}")
        if gain == 1.0:
            return raw
        return float_to_pcm16(np.frombuffer(raw, dtype="<i2").astype(np.float64) * (gain / 32768.0))
    arr = np.asarray(samples)
    if arr.dtype != np.int16 and arr.dtype.kind != "f":
        raise AudioError(f"audio samples must be float (in [-1, 1]) or int16, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2):
        raise AudioError(f"audio samples must be 1-D (mono) or 2-D (frames, channels), got shape {arr.shape}")
    if arr.ndim == 1 and arr.dtype == np.int16 and gain == 1.0:
        return arr.astype("<i2").tobytes()
    x = arr.astype(np.float64)
    if arr.dtype == np.int16:
        x /= 32768.0
    if x.ndim == 2:
        x = x.mean(axis=1)  # (frames, channels) → mono
    return float_to_pcm16(x * gain)


class ArraySource(PcmSource):
    """Stream an array (float in [-1, 1] or int16; 1-D, or 2-D ``(frames, channels)`` mixed to
    mono) or PCM16 bytes at ``sample_rate``, as fast as possible by default."""

    def __init__(
        self,
        samples: npt.NDArray[Any] | bytes,
        sample_rate: int,
        *,
        pace: Pace = "fast",
        tail_silence_ms: float = 0,
        lead_silence_ms: float = 0,
        loop: bool = False,
        gain: float = 1.0,
    ) -> None:
        super().__init__(
            _to_pcm16(samples, gain),
            sample_rate,
            pace=pace,
            loop=loop,
            lead_silence_ms=lead_silence_ms,
            tail_silence_ms=tail_silence_ms,
        )


class SilenceSource:
    """Digital silence: ``duration_ms`` of it, or for ever with ``None``; real-time paced by default."""

    def __init__(self, duration_ms: float | None = None, *, pace: Pace = "realtime") -> None:
        _check_pace(pace)
        if duration_ms is not None:
            _check_ms("duration_ms", duration_ms)
        self.duration_ms = duration_ms
        self.pace: Pace = pace
        self._closed = False

    def _stream(self, sample_rate: int, frame_samples: int) -> Iterator[bytes]:
        frame = bytes(2 * frame_samples)
        if self.duration_ms is None:
            while True:
                yield frame
        remaining = 2 * round(sample_rate * self.duration_ms / 1000)
        while remaining > 0:
            out = frame if remaining >= len(frame) else frame[:remaining]
            remaining -= len(out)
            yield out

    def frames(self, sample_rate: int, frame_ms: int = 20) -> AsyncIterator[bytes]:
        frame_samples = _frame_samples(sample_rate, frame_ms)
        return _paced(self._stream(sample_rate, frame_samples), sample_rate, self.pace, lambda: self._closed)

    async def aclose(self) -> None:
        self._closed = True


@dataclass(frozen=True)
class Flush:
    """One :meth:`BufferSink.clear`: what was playing, how much of it was heard, what was dropped."""

    item_id: str | None
    """The item at the head of the playout queue (``None`` if nothing was queued)."""
    played_ms: int
    """``played_ms(item_id)`` at the moment of the flush."""
    dropped_ms: int
    """Audio (of any item) that was queued and will never play."""
    total_bytes: int
    """Bytes written to the sink before the flush (a position among all bytes written; in
    :attr:`BufferSink.audio` it is ``total_bytes - audio_start``)."""
    at_s: float
    """The sink's clock at the flush."""


class BufferSink:
    """An :class:`~voicelive_nb.audio.base.AudioSink` that keeps what it is given in memory.

    ``audio`` is the bytes written, in order, and ``items`` the same bytes per item (both
    include audio that a later ``clear`` dropped: they are what was *received*). Each byte is
    held once: ``audio`` and ``items`` are two views over one list of written blocks.
    ``clears`` counts flushes and ``flushes`` records the most recent ``max_flushes`` of them.

    **Memory bound.** ``max_bytes`` (``None``: no bound, the default for tests and short
    scripts) caps the audio kept: when a write takes the total over it, the *oldest* blocks
    are dropped, whole, until it fits again (the newest block is always kept). ``audio`` then
    starts at byte :attr:`audio_start` of everything written; :attr:`bytes_written` and
    :attr:`total_ms` keep counting everything; :attr:`bytes_dropped` says how much was let go.
    Playback accounting (``played_ms``, ``queued_ms``) is not affected by the bound.
    :class:`~voicelive_nb.notebook_session.NotebookSession` uses this sink, bounded (its
    ``speaker_memory_bytes``; 2,880,000 bytes = the last 60 s at 24 kHz), when there is no
    speaker, so an hour-long session does not keep an hour of replies.

    ``played_ms`` by default equals what was written, since nothing waits to be played.
    With ``realtime=True`` the sink models a speaker: one playout queue that plays at
    ``sample_rate`` on ``clock`` (seconds, ``time.monotonic`` by default), starting when
    audio arrives at an idle speaker; ``clear`` drops what was not played yet. For a single
    item that is ``min(received, elapsed since its first write)``; for back-to-back items
    the second starts when the first has finished.
    """

    def __init__(
        self,
        *,
        realtime: bool = False,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int | None = None,
        max_flushes: int = 1000,
    ) -> None:
        if max_bytes is not None and (isinstance(max_bytes, bool) or max_bytes <= 0):
            raise ConfigError("max_bytes", max_bytes, "a positive number of bytes, or None for no bound")
        if isinstance(max_flushes, bool) or max_flushes <= 0:
            raise ConfigError("max_flushes", max_flushes, "a positive number of flushes to remember")
        self.realtime = realtime
        self._clock = clock
        self.max_bytes = max_bytes
        self.sample_rate: int | None = None
        self._blocks: deque[tuple[str, bytes]] = deque()
        self._held = 0
        self.bytes_written = 0
        self.bytes_dropped = 0
        self.clears = 0
        self.flushes: deque[Flush] = deque(maxlen=max_flushes)
        self.closed = False
        self._tracker: PlayoutTracker | None = None
        # realtime model: when the current playout run started and how much it consumed since
        self._anchor: float | None = None
        self._consumed = 0

    @property
    def audio(self) -> bytes:
        """The bytes written, in order (the most recent ``max_bytes`` of them when bounded)."""
        return b"".join(block for _, block in self._blocks)

    @property
    def items(self) -> dict[str, bytearray]:
        """The bytes kept per item id, in the order the items first appear (a fresh copy)."""
        out: dict[str, bytearray] = {}
        for item_id, block in self._blocks:
            out.setdefault(item_id, bytearray()).extend(block)
        return out

    @property
    def held_bytes(self) -> int:
        """Bytes of audio held right now (≤ ``max_bytes`` plus one block)."""
        return self._held

    @property
    def audio_start(self) -> int:
        """Where :attr:`audio` starts among all bytes written (0 until the bound drops something)."""
        return self.bytes_dropped

    @property
    def total_ms(self) -> int:
        """Milliseconds of audio written in total (kept or not)."""
        return 0 if not self.sample_rate else self.bytes_written // 2 * 1000 // self.sample_rate

    def open(self, sample_rate: int) -> None:
        if sample_rate <= 0:
            raise ConfigError("sample_rate", sample_rate, "a positive rate in Hz such as 24000")
        if self.sample_rate is not None and self.sample_rate != sample_rate:
            raise AudioError(f"buffer sink already opened at {self.sample_rate} Hz, not {sample_rate} Hz")
        self.sample_rate = sample_rate
        if self._tracker is None:
            self._tracker = PlayoutTracker(sample_rate)
        self.closed = False

    def _require_tracker(self) -> PlayoutTracker:
        if self._tracker is None:
            raise AudioError("buffer sink is not open; call open(sample_rate) first")
        return self._tracker

    def _advance(self, tracker: PlayoutTracker, now: float) -> None:
        """Realtime model: credit what the speaker has played up to ``now``."""
        if self._anchor is None or self.sample_rate is None:
            return
        due = round((now - self._anchor) * self.sample_rate) - self._consumed
        queued = tracker.queued_frames()
        take = min(max(due, 0), queued)
        if take:
            tracker.consume(take)
            self._consumed += take
        if take == queued:
            self._anchor = None  # ran dry: the next write starts a new run at its arrival

    def write(self, item_id: str, pcm16: bytes) -> None:
        tracker = self._require_tracker()
        if self.closed:
            raise AudioError("buffer sink is closed")
        if len(pcm16) % 2:
            raise AudioError(f"pcm16 audio must have an even number of bytes, got {len(pcm16)}")
        self._keep(item_id, bytes(pcm16))
        frames = len(pcm16) // 2
        if not self.realtime:
            tracker.add(item_id, frames)
            tracker.consume(frames)
            return
        now = self._clock()
        self._advance(tracker, now)
        if self._anchor is None and frames:
            self._anchor = now
            self._consumed = 0
        tracker.add(item_id, frames)

    def _keep(self, item_id: str, block: bytes) -> None:
        if not block:
            return
        self._blocks.append((item_id, block))
        self._held += len(block)
        self.bytes_written += len(block)
        limit = self.max_bytes
        if limit is None:
            return
        while self._held > limit and len(self._blocks) > 1:
            _, old = self._blocks.popleft()
            self._held -= len(old)
            self.bytes_dropped += len(old)

    def clear(self) -> None:
        tracker = self._tracker
        now = self._clock()
        item_id: str | None = None
        played = dropped_ms = 0
        if tracker is not None:
            if self.realtime:
                self._advance(tracker, now)
            item_id = tracker.current_item
            played = tracker.played_ms(item_id) if item_id is not None else 0
            dropped = tracker.clear()
            dropped_ms = dropped * 1000 // tracker.sample_rate
            self._anchor = None
        self.clears += 1
        self.flushes.append(Flush(item_id, played, dropped_ms, self.bytes_written, now))

    def played_ms(self, item_id: str) -> int:
        tracker = self._tracker
        if tracker is None:
            return 0
        if self.realtime:
            self._advance(tracker, self._clock())
        return tracker.played_ms(item_id)

    def queued_ms(self) -> int:
        """Milliseconds written and not yet played (always 0 unless ``realtime``)."""
        tracker = self._tracker
        if tracker is None:
            return 0
        if self.realtime:
            self._advance(tracker, self._clock())
        return tracker.queued_frames() * 1000 // tracker.sample_rate

    def close(self) -> None:
        self.closed = True


class RoomSpeaker:
    """The speaker of an :class:`EchoRoom` (an :class:`~voicelive_nb.audio.base.AudioSink`).

    It plays on the room's clock: each microphone frame the room produces takes as many
    samples from this queue as it holds (silence when empty). ``played_ms`` is what left the
    queue so far, ``clear`` drops the rest (barge-in), ``clears`` counts flushes.
    """

    def __init__(self, room: EchoRoom) -> None:
        self._room = room
        self.sample_rate: int | None = None
        self._queue = bytearray()
        self._tracker: PlayoutTracker | None = None
        self.clears = 0
        self.closed = False
        #: Item id -> the room's sample (microphone timeline) at which it began to play.
        self.started_at: dict[str, int] = {}

    def open(self, sample_rate: int) -> None:
        if sample_rate <= 0:
            raise ConfigError("sample_rate", sample_rate, "a positive rate in Hz such as 24000")
        if self.sample_rate is not None and self.sample_rate != sample_rate:
            raise AudioError(f"room speaker already opened at {self.sample_rate} Hz, not {sample_rate} Hz")
        self.sample_rate = sample_rate
        if self._tracker is None:
            self._tracker = PlayoutTracker(self._room.sample_rate or sample_rate)

    def write(self, item_id: str, pcm16: bytes) -> None:
        if self._tracker is None or self.sample_rate is None:
            raise AudioError("room speaker is not open; call open(sample_rate) first")
        if self.closed:
            raise AudioError("room speaker is closed")
        if len(pcm16) % 2:
            raise AudioError(f"pcm16 audio must have an even number of bytes, got {len(pcm16)}")
        room_rate = self._tracker.sample_rate
        data = resample(bytes(pcm16), self.sample_rate, room_rate) if room_rate != self.sample_rate else pcm16
        self._queue += data
        self._tracker.add(item_id, len(data) // 2)

    def take(self, samples: int) -> npt.NDArray[np.int16]:
        """The next ``samples`` the speaker plays (the room's clock advanced by that much)."""
        out = np.zeros(samples, dtype=np.int16)
        k = min(samples, len(self._queue) // 2)
        if k:
            assert self._tracker is not None
            head = self._tracker.current_item
            if head is not None and head not in self.started_at:
                self.started_at[head] = self._room.samples
            out[:k] = np.frombuffer(bytes(self._queue[: 2 * k]), dtype="<i2")
            del self._queue[: 2 * k]
            self._tracker.consume(k)
        return out

    def end_of_item(self, item_id: str) -> None:
        """Nothing to do: the room has no jitter buffer (it plays what it holds)."""

    def clear(self) -> None:
        self._queue.clear()
        if self._tracker is not None:
            self._tracker.clear()
        self.clears += 1

    def played_ms(self, item_id: str) -> int:
        return self._tracker.played_ms(item_id) if self._tracker is not None else 0

    def queued_ms(self) -> int:
        tracker = self._tracker
        return 0 if tracker is None else tracker.queued_frames() * 1000 // tracker.sample_rate

    def close(self) -> None:
        self.closed = True


class EchoRoom:
    """A microphone that hears the session's own speaker, in memory (see the module doc).

    ``EchoRoom(mic)`` wraps any mono source (an :class:`ArraySource` of the user's speech, a
    :class:`SilenceSource`…). Use the room as the session's source and ``room.speaker`` as its
    sink. Each microphone frame of ``n`` samples advances the room's clock by ``n``: the speaker
    plays ``n`` samples, and the frame becomes ``mic + echo``, where the echo is what the speaker
    played ``delay_ms`` earlier, ``gain_db`` quieter, through a ``smooth``-tap moving average
    (a dull room). :meth:`frames` yields that mono signal (no or server echo cancellation);
    :meth:`reference_frames` yields it as channel 0 of stereo frames with channel 1 what the
    speaker played at that sample (client-reference echo cancellation). ``reference_shift_ms``
    moves the reference later (positive) or earlier, to show what a misaligned reference does.

    ``played`` and ``heard`` keep the last ``keep_s`` seconds of the speaker output and of
    channel 0, sample-aligned, for analysis. One ``frames``/``reference_frames`` iterator at a time.
    """

    def __init__(
        self,
        mic: Any,
        *,
        delay_ms: float = 50.0,
        gain_db: float = -12.0,
        smooth: int = 4,
        reference_shift_ms: float = 0.0,
        keep_s: float = 120.0,
    ) -> None:
        _check_ms("delay_ms", delay_ms)
        if not -120 <= gain_db <= 20:
            raise ConfigError("gain_db", gain_db, "-120 to 20 (dB of echo relative to the speaker)")
        if not isinstance(smooth, int) or smooth < 1:
            raise ConfigError("smooth", smooth, "a whole number of taps, 1 or more (1: no filtering)")
        if abs(reference_shift_ms) > 1000:
            raise ConfigError("reference_shift_ms", reference_shift_ms, "-1000 to 1000 milliseconds")
        self.mic = mic
        self.delay_ms = delay_ms
        self.gain_db = gain_db
        self.smooth = smooth
        self.reference_shift_ms = reference_shift_ms
        self.keep_s = keep_s
        self.sample_rate: int | None = None
        self.speaker = RoomSpeaker(self)
        self.reference_available = True
        self._history = np.zeros(0, dtype=np.int16)  # played samples, newest last
        self.played = bytearray()
        self.heard = bytearray()
        self.samples = 0
        """The room's clock: microphone samples produced so far."""
        self._tick: asyncio.Event | None = None
        self._closed = False

    async def wait_until(self, condition: Callable[[EchoRoom], bool], timeout: float = 30.0) -> None:
        """Wait (checking after every frame the room produces) until ``condition(room)`` holds,
        e.g. ``room.wait_until(lambda r: r.speaker.queued_ms() == 0)``; :class:`TimeoutError` after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition(self):
            if self._tick is None:
                self._tick = asyncio.Event()
            tick = self._tick
            left = deadline - loop.time()
            if left <= 0:
                raise WaitTimeout(f"echo room: condition not met within {timeout:g} s")
            try:
                await asyncio.wait_for(tick.wait(), left)
            except asyncio.TimeoutError:
                continue
            if tick is self._tick:
                self._tick = None

    async def wait_samples(self, samples: int, timeout: float = 30.0) -> None:
        """Wait until the room's clock has advanced by ``samples`` from now."""
        target = self.samples + samples
        await self.wait_until(lambda room: room.samples >= target, timeout)

    def _echo_and_reference(self, n: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int16]]:
        """Advance the clock by ``n``: the echo reaching the mic and the reference for those samples."""
        assert self.sample_rate is not None
        rate = self.sample_rate
        played = self.speaker.take(n)
        delay = round(self.delay_ms * rate / 1000)
        shift = round(self.reference_shift_ms * rate / 1000)
        need = n + delay + self.smooth - 1 + max(0, shift)
        hist = np.concatenate([self._history, played])
        if len(hist) < need:
            hist = np.concatenate([np.zeros(need - len(hist), dtype=np.int16), hist])
        self._history = hist[-(need - n) :] if need > n else hist[:0]
        end = len(hist)  # hist[end - n + i] is what plays at sample i of this frame
        seg = hist[end - n - delay - self.smooth + 1 : end - delay].astype(np.float64)
        echo = np.convolve(seg, np.ones(self.smooth) / self.smooth, mode="valid")
        echo *= 10 ** (self.gain_db / 20)
        if shift >= 0:  # a late reference shows what played ``shift`` samples earlier
            ref = hist[end - n - shift : end - shift].copy()
        else:  # an early one would need what is not played yet: the future part is silence
            ref = np.zeros(n, dtype=np.int16)
            ahead = -shift
            if ahead < n:
                ref[: n - ahead] = hist[end - n + ahead : end]
        self._keep(self.played, played)
        return echo, ref.astype(np.int16)

    def _keep(self, store: bytearray, samples: npt.NDArray[Any]) -> None:
        store += samples.astype("<i2").tobytes()
        limit = 2 * round(self.keep_s * (self.sample_rate or 24000))
        if len(store) > limit:
            del store[: len(store) - limit]

    async def _mixed(self, sample_rate: int, frame_ms: int, stereo: bool) -> AsyncIterator[bytes]:
        if self.sample_rate is not None and self.sample_rate != sample_rate:
            raise AudioError(f"echo room runs at {self.sample_rate} Hz, not {sample_rate} Hz")
        self.sample_rate = sample_rate
        async for frame in self.mic.frames(sample_rate, frame_ms):
            if self._closed:
                return
            mic = np.frombuffer(frame[: len(frame) // 2 * 2], dtype="<i2")
            if self.speaker._tracker is None:  # the session opens its sink at the first reply audio
                echo = np.zeros(len(mic))
                ref = np.zeros(len(mic), dtype=np.int16)
                self._keep(self.played, ref)
            else:
                echo, ref = self._echo_and_reference(len(mic))
            heard = np.clip(np.rint(mic.astype(np.float64) + echo), -32768, 32767).astype(np.int16)
            self._keep(self.heard, heard)
            self.samples += len(heard)
            if self._tick is not None:
                self._tick.set()
            yield interleave(heard, ref) if stereo else heard.astype("<i2").tobytes()

    def frames(self, sample_rate: int, frame_ms: int = 20) -> AsyncIterator[bytes]:
        """Mono frames: the microphone plus the speaker's echo."""
        _frame_samples(sample_rate, frame_ms)
        return self._mixed(sample_rate, frame_ms, stereo=False)

    def reference_frames(self, sample_rate: int, frame_ms: int = 20) -> AsyncIterator[bytes]:
        """Stereo frames: channel 0 as :meth:`frames`, channel 1 what the speaker played then."""
        _frame_samples(sample_rate, frame_ms)
        return self._mixed(sample_rate, frame_ms, stereo=True)

    async def aclose(self) -> None:
        self._closed = True
        await self.mic.aclose()
