"""Playback buffers: a preallocated ring buffer and a per-item playout tracker (pure core).

This module does no I/O, starts no threads and reads no clock: time is the number of
frames handed to the output. It is what the sounddevice speaker uses from the PortAudio
callback, so the hot paths (:meth:`RingBuffer.read_into`, :meth:`RingBuffer.write`,
:meth:`PlayoutTracker.consume`, :meth:`PlayoutBuffer.read_into`) allocate no arrays: they
copy between preallocated NumPy buffers through views.

A *frame* is one sample per channel; the buffer holds mono audio. ``read_into`` also
fills a 2-D ``(frames, channels)`` output by copying the mono signal to every channel.

None of these classes lock. When a writer thread (the event loop) and a reader thread
(the audio callback) share one, the caller guards each call with a short lock.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import AudioError, ConfigError

__all__ = ["PlayoutBuffer", "PlayoutTracker", "ReferenceRing", "RingBuffer", "interleave"]

Array = npt.NDArray[Any]


class RingBuffer:
    """A fixed-capacity FIFO of mono samples, preallocated once.

    ``write`` stores what fits and counts the rest as an overrun (the newest samples are
    the ones dropped, so what is queued stays contiguous). ``read_into`` copies up to
    ``len(out)`` frames and fills the rest of ``out`` with zeros (silence); a short read
    counts as an underrun only while playing, that is, when the previous read delivered
    audio and no ``clear`` came in between (an idle speaker is not underrunning).
    """

    def __init__(self, capacity_frames: int, dtype: npt.DTypeLike = np.int16) -> None:
        if capacity_frames <= 0:
            raise ConfigError("capacity_frames", capacity_frames, "a positive number of frames")
        self._buf: Array = np.zeros(capacity_frames, dtype=dtype)
        self._capacity = capacity_frames
        # Monotonic positions: available = written - read; indexes are positions mod capacity.
        self._write_pos = 0
        self._read_pos = 0
        self._playing = False
        self.frames_written = 0
        """Frames accepted by ``write``."""
        self.frames_read = 0
        """Frames of audio handed out by ``read_into`` (silence padding not included)."""
        self.overruns = 0
        """Number of ``write`` calls that did not fit entirely."""
        self.overrun_frames = 0
        """Frames dropped by ``write`` because the buffer was full."""
        self.underruns = 0
        """Number of reads that ran dry while playing."""
        self.underrun_frames = 0
        """Frames of silence inserted by those reads."""
        self.clears = 0
        """Number of ``clear`` calls."""
        self.frames_cleared = 0
        """Frames dropped by ``clear``."""

    @property
    def capacity(self) -> int:
        """Capacity in frames."""
        return self._capacity

    @property
    def dtype(self) -> np.dtype[Any]:
        """Sample type of the buffer (``read_into`` needs the same type)."""
        return self._buf.dtype

    @property
    def available(self) -> int:
        """Frames queued and not yet read."""
        return self._write_pos - self._read_pos

    @property
    def free(self) -> int:
        """Frames that ``write`` can still accept."""
        return self._capacity - (self._write_pos - self._read_pos)

    @property
    def playing(self) -> bool:
        """Whether the last read delivered audio (a short read now is an underrun)."""
        return self._playing

    def write(self, samples: Array) -> int:
        """Append mono ``samples`` (1-D); return how many frames were stored.

        Frames beyond the free space are dropped and counted in ``overrun_frames``.
        """
        if samples.ndim != 1:
            raise AudioError(f"ring buffer takes 1-D mono samples, got shape {samples.shape}")
        n = samples.shape[0]
        free = self._capacity - (self._write_pos - self._read_pos)
        k = n if n <= free else free
        if k < n:
            self.overruns += 1
            self.overrun_frames += n - k
        if k:
            start = self._write_pos % self._capacity
            first = min(k, self._capacity - start)
            self._buf[start : start + first] = samples[:first]
            if first < k:
                self._buf[: k - first] = samples[first:k]
            self._write_pos += k
            self.frames_written += k
        return k

    def read_into(self, out: Array) -> int:
        """Fill ``out`` (1-D, or 2-D ``(frames, channels)``) and return the frames of audio copied.

        Frames past the returned count are set to zero. ``out`` must have the buffer's dtype.
        """
        if out.dtype != self._buf.dtype:
            raise AudioError(f"output dtype {out.dtype} differs from the ring buffer's {self._buf.dtype}")
        wanted = out.shape[0]
        if wanted == 0:
            return 0
        avail = self._write_pos - self._read_pos
        k = wanted if wanted <= avail else avail
        if k:
            start = self._read_pos % self._capacity
            first = min(k, self._capacity - start)
            if out.ndim == 1:
                out[:first] = self._buf[start : start + first]
                if first < k:
                    out[first:k] = self._buf[: k - first]
            else:
                out[:first] = self._buf[start : start + first, np.newaxis]
                if first < k:
                    out[first:k] = self._buf[: k - first, np.newaxis]
            self._read_pos += k
            self.frames_read += k
        if k < wanted:
            out[k:] = 0
            if self._playing:
                self.underruns += 1
                self.underrun_frames += wanted - k
        self._playing = k > 0 and k == wanted
        return k

    def clear(self) -> int:
        """Drop everything queued (barge-in); return the frames dropped. The next read is silence."""
        dropped = self._write_pos - self._read_pos
        self._read_pos = self._write_pos
        self._playing = False
        self.clears += 1
        self.frames_cleared += dropped
        return dropped


class PlayoutTracker:
    """Maps frames handed to the output back to the assistant items they came from.

    Keep it in step with a FIFO of audio: :meth:`add` when an item's frames enter the FIFO,
    :meth:`consume` with the frames that left it for the device, :meth:`clear` when the
    FIFO is flushed. ``played_ms(item_id)`` is then exactly what the device got of that item
    (rounded down to whole milliseconds, so it never exceeds what was received).
    """

    def __init__(self, sample_rate: int) -> None:
        if sample_rate <= 0:
            raise ConfigError("sample_rate", sample_rate, "a positive rate in Hz such as 24000")
        self.sample_rate = sample_rate
        # Segments of consecutive frames of one item, oldest first: [item_id, frames left].
        self._segments: deque[list[Any]] = deque()
        self._queued_total = 0
        self._played: dict[str, int] = {}
        self._received: dict[str, int] = {}

    def add(self, item_id: str, frames: int) -> None:
        """Record ``frames`` of ``item_id`` entering the FIFO (after the ones already queued)."""
        if frames < 0:
            raise AudioError(f"frame count must not be negative, got {frames}")
        self._received[item_id] = self._received.get(item_id, 0) + frames
        self._played.setdefault(item_id, 0)
        if frames == 0:
            return
        if self._segments and self._segments[-1][0] == item_id:
            self._segments[-1][1] += frames
        else:
            self._segments.append([item_id, frames])
        self._queued_total += frames

    def consume(self, frames: int) -> None:
        """Record ``frames`` leaving the FIFO for the output, oldest first.

        Consuming more than is queued is a bookkeeping error and raises :class:`AudioError`.
        """
        if frames > self._queued_total or frames < 0:
            raise AudioError(f"cannot consume {frames} frames: {self._queued_total} queued")
        self._queued_total -= frames
        segments = self._segments
        played = self._played
        while frames:
            head = segments[0]
            take = head[1] if head[1] <= frames else frames
            played[head[0]] += take
            frames -= take
            if take == head[1]:
                segments.popleft()
            else:
                head[1] -= take

    def clear(self) -> int:
        """Forget everything queued (the FIFO was flushed); return the frames dropped."""
        dropped = self._queued_total
        self._segments.clear()
        self._queued_total = 0
        return dropped

    def played_frames(self, item_id: str) -> int:
        """Frames of ``item_id`` handed to the output (0 for an unknown item)."""
        return self._played.get(item_id, 0)

    def played_ms(self, item_id: str) -> int:
        """Whole milliseconds of ``item_id`` handed to the output."""
        return self._played.get(item_id, 0) * 1000 // self.sample_rate

    def received_frames(self, item_id: str) -> int:
        """Frames of ``item_id`` that were added (queued or played or cleared)."""
        return self._received.get(item_id, 0)

    def queued_frames(self, item_id: str | None = None) -> int:
        """Frames still queued, of one item or of all."""
        if item_id is None:
            return self._queued_total
        return sum(frames for seg_item, frames in self._segments if seg_item == item_id)

    @property
    def current_item(self) -> str | None:
        """The item whose audio plays next (the head of the queue), or ``None`` when idle."""
        return str(self._segments[0][0]) if self._segments else None

    def item_ids(self) -> list[str]:
        """Every item seen, in the order first added."""
        return list(self._received)

    def forget(self, item_id: str) -> None:
        """Drop the counters of an item that is no longer queued (bounds memory in long sessions)."""
        if any(seg_item == item_id for seg_item, _ in self._segments):
            raise AudioError(f"item {item_id!r} still has queued audio")
        self._played.pop(item_id, None)
        self._received.pop(item_id, None)


class PlayoutBuffer:
    """A :class:`RingBuffer` and a :class:`PlayoutTracker` kept in step: the speaker's queue.

    ``write(item_id, samples)`` tracks only the frames the ring accepted, ``read_into``
    credits the frames it copied to their items, ``clear`` flushes both.
    """

    def __init__(self, sample_rate: int, capacity_frames: int, dtype: npt.DTypeLike = np.int16) -> None:
        self.ring = RingBuffer(capacity_frames, dtype)
        self.tracker = PlayoutTracker(sample_rate)

    @property
    def sample_rate(self) -> int:
        return self.tracker.sample_rate

    @property
    def available(self) -> int:
        return self.ring.available

    def write(self, item_id: str, samples: Array) -> int:
        """Queue ``samples`` of ``item_id``; return the frames accepted (the rest is an overrun)."""
        written = self.ring.write(samples)
        self.tracker.add(item_id, written)
        return written

    def read_into(self, out: Array) -> int:
        """Fill ``out`` from the ring (silence when short); return the frames of audio copied."""
        n = self.ring.read_into(out)
        if n:
            self.tracker.consume(n)
        return n

    def clear(self) -> int:
        """Flush (barge-in); return the frames dropped."""
        self.tracker.clear()
        return self.ring.clear()

    def played_ms(self, item_id: str) -> int:
        return self.tracker.played_ms(item_id)

    def played_frames(self, item_id: str) -> int:
        return self.tracker.played_frames(item_id)

    @property
    def current_item(self) -> str | None:
        return self.tracker.current_item


class ReferenceRing:
    r"""What the speaker handed to the device, kept by the time it reaches the DAC (pure core).

    Client-reference echo cancellation needs, for every microphone sample, what the speaker
    was playing when that sample was captured. PortAudio says both: each output callback's
    ``outputBufferDacTime`` (when its first frame will be played) and each input callback's
    ``inputBufferAdcTime`` (when its first frame was captured), on one clock. So the speaker
    :meth:`write`\ s each block at ``dac_time`` and the microphone :meth:`read`\ s the same
    stretch of time back at ``adc_time``; times are seconds, converted to absolute sample
    positions at ``sample_rate``.

    Output times jitter by a fraction of a block, so a block that lands within ``snap_frames``
    of where the previous one ended is taken as contiguous (no sample repeated or lost); a
    larger jump is a resync (counted in ``resyncs``; a forward gap reads as silence). Reads
    are placed by the capture's sample count (see :meth:`read_into`). Positions
    never written, or older than ``capacity_frames``, read as silence: nothing played.

    No lock, no clock, no allocation in :meth:`write` (it runs in the output callback).
    """

    #: Reads whose capture-time errors anchor the read position (0.2 s of 20 ms blocks).
    ANCHOR_READS = 10
    #: A capture time this far (seconds) from where the reads were is a new timeline, not jitter.
    JUMP_S = 0.2

    def __init__(self, sample_rate: int, capacity_frames: int, *, snap_frames: int | None = None) -> None:
        if sample_rate <= 0:
            raise ConfigError("sample_rate", sample_rate, "a positive rate in Hz such as 24000")
        if capacity_frames <= 0:
            raise ConfigError("capacity_frames", capacity_frames, "a positive number of frames")
        self.sample_rate = sample_rate
        self.capacity = capacity_frames
        #: Largest jump (frames) between consecutive output blocks still taken as contiguous (4 ms default).
        self.snap_frames = sample_rate * 4 // 1000 if snap_frames is None else snap_frames
        self._buf: Array = np.zeros(capacity_frames, dtype=np.int16)
        self._start: int | None = None  # oldest position held
        self._end: int | None = None  # one past the newest position written
        #: Place output blocks by sample count after the first (output times then only matter
        #: for a jump of more than ``JUMP_S``, or after :meth:`restart_output`).
        self.contiguous = True
        self._restart = False
        self._read_next: int | None = None
        self._read_errors: list[int] = []
        self._anchored = False
        self.resyncs = 0
        """Writes that did not continue where the previous one ended (beyond ``snap_frames``)."""
        self.read_resyncs = 0
        """Reads that did not continue where the previous one ended."""
        self.frames_written = 0

    @property
    def span(self) -> tuple[int, int] | None:
        """``(first, end)`` absolute positions held, or ``None`` before the first write."""
        if self._start is None or self._end is None:
            return None
        return self._start, self._end

    def position(self, t: float) -> int:
        """The absolute sample position of stream time ``t`` (seconds)."""
        return round(t * self.sample_rate)

    def write(self, samples: Array, dac_time: float) -> int:
        """Keep ``samples`` (1-D, or 2-D ``(frames, channels)``: channel 0) as played from
        ``dac_time`` on; return the absolute position they were stored at."""
        block = samples[:, 0] if samples.ndim == 2 else samples
        n = block.shape[0]
        pos = round(dac_time * self.sample_rate)
        end = self._end
        if self._restart and end is not None:
            self._restart = False
            if abs(pos - end) > self.snap_frames:
                self.resyncs += 1
                if end < pos < end + self.capacity:
                    self._fill_zero(end, pos)
                elif pos >= end + self.capacity:
                    self._start = pos
                else:
                    self._start = min(self._start if self._start is not None else pos, pos)
                end = None  # placed where its time says
        if end is None or self._start is None:
            if self._start is None:
                self._start = pos
        elif abs(pos - end) <= self.snap_frames or (
            self.contiguous and abs(pos - end) <= self.JUMP_S * self.sample_rate
        ):
            pos = end
        else:
            self.resyncs += 1
            if end < pos < end + self.capacity:
                self._fill_zero(end, pos)  # a gap in the output: nothing played there
            elif pos >= end + self.capacity:
                self._start = pos
            else:  # back in time: the new block is what plays from pos on
                self._start = min(self._start, pos)
        cap = self.capacity
        if n > cap:
            block = block[n - cap :]
            pos += n - cap
            n = cap
        start = pos % cap
        first = min(n, cap - start)
        self._buf[start : start + first] = block[:first]
        if first < n:
            self._buf[: n - first] = block[first:n]
        self._end = pos + n
        if self._start < self._end - cap:
            self._start = self._end - cap
        self.frames_written += n
        return pos

    def _fill_zero(self, begin: int, end: int) -> None:
        cap = self.capacity
        for p in range(begin, end, cap):
            k = min(end - p, cap)
            s = p % cap
            first = min(k, cap - s)
            self._buf[s : s + first] = 0
            if first < k:
                self._buf[: k - first] = 0

    def read_into(self, out: Array, adc_time: float) -> int:
        """Fill ``out`` (1-D int16) with what played from ``adc_time`` on; return the frames
        that were held (the rest is silence: not played, or too old).

        Capture times are far noisier than output times. Measured through PulseAudio's ALSA
        plugin: one block in five ~7 ms early, and the estimate drifting ~20 ms over the first
        seconds while the samples themselves keep perfect time (the echo's lag against a
        sample-counted reference stays constant to 0.1 ms). So the read position follows the
        *sample count*: anchored on the median capture-time error of the first
        ``ANCHOR_READS`` reads, then contiguous; it re-anchors only after :meth:`reanchor`
        (the microphone lost input) or a jump of more than ``JUMP_S`` (a new stream)."""
        n = int(out.shape[0])
        pos = round(adc_time * self.sample_rate)
        nxt = self._read_next
        if nxt is not None:
            err = pos - nxt
            if abs(err) > self.JUMP_S * self.sample_rate:
                self._read_errors.clear()
                self._anchored = False
                self.read_resyncs += 1
            else:
                if not self._anchored:
                    self._read_errors.append(err)
                    if len(self._read_errors) >= self.ANCHOR_READS:
                        nxt += int(np.median(self._read_errors))
                        self._read_errors.clear()
                        self._anchored = True
                pos = nxt
        self._read_next = pos + n
        return self.read_at(out, pos)

    def restart_output(self) -> None:
        """The output lost time (an underflow): place the next block by its output time again."""
        self._restart = True

    def reanchor(self) -> None:
        """The capture lost samples (an input overflow): place the next reads by their times again."""
        self._read_next = None
        self._read_errors.clear()
        self._anchored = False
        self.read_resyncs += 1

    def read_at(self, out: Array, pos: int) -> int:
        """Fill ``out`` with the samples held at absolute positions ``pos ..``; return how many were held."""
        n = int(out.shape[0])
        out[:] = 0
        if self._start is None or self._end is None or n == 0:
            return 0
        lo = max(pos, self._start)
        hi = min(pos + n, self._end)
        if hi <= lo:
            return 0
        cap = self.capacity
        k = hi - lo
        s = lo % cap
        first = min(k, cap - s)
        o = lo - pos
        out[o : o + first] = self._buf[s : s + first]
        if first < k:
            out[o + first : o + k] = self._buf[: k - first]
        return k


def interleave(channel0: Array, channel1: Array) -> bytes:
    """Two mono int16 signals of one length as interleaved stereo PCM16 little-endian bytes
    (channel 0 first): the client-reference input format (mic, reference)."""
    if channel0.shape != channel1.shape or channel0.ndim != 1:
        raise AudioError(f"channels must be 1-D of one length, got {channel0.shape} and {channel1.shape}")
    out = np.empty(2 * channel0.shape[0], dtype="<i2")
    out[0::2] = channel0
    out[1::2] = channel1
    return out.tobytes()
