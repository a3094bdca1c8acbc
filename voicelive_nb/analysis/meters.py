"""Audio meters for live views and figures: pure, preallocated, cheap enough for an audio tap.

- :class:`EnvelopeBuffer` keeps the min/max (and mean square) of PCM16 audio per bucket over a
  rolling window, in a preallocated ring: ``push`` a 20 ms block (a few µs), ``snapshot()`` the
  window as a ``(2, points)`` float32 array (min row, max row, oldest → newest).
- :class:`AudioHistory` keeps bounded PCM16 of a session (input as one stream, assistant audio
  per item), for figures drawn after the fact.
- :func:`envelope` is the same min/max reduction over a whole array (static views, figures).

Samples are scaled to [-1, 1) as ``int16 / 32768``. Nothing here reads a clock: the caller
decides when time passes (``push_silence``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InvalidType, InvalidValue

__all__ = ["FLOOR_DBFS", "AudioHistory", "EnvelopeBuffer", "as_int16", "envelope", "place_segments"]

Float32Array = npt.NDArray[np.float32]
Int16Array = npt.NDArray[np.int16]

#: The level reported for digital silence (below the 16-bit noise floor of about -98 dBFS).
FLOOR_DBFS = -100.0
_SCALE = np.float32(1.0 / 32768.0)
_FLOOR_MS = 10.0 ** (FLOOR_DBFS / 10.0)


def as_int16(pcm: bytes | bytearray | memoryview | npt.NDArray[np.int16]) -> Int16Array:
    """PCM16 little-endian bytes (or an int16 array) as an int16 array, without copying bytes."""
    if isinstance(pcm, np.ndarray):
        if pcm.dtype != np.int16:
            raise InvalidType(f"expected int16 samples, got dtype {pcm.dtype}")
        return pcm.reshape(-1)
    view = memoryview(pcm).cast("B")
    if len(view) % 2:
        raise InvalidValue(f"pcm16 audio must have an even number of bytes, got {len(view)}")
    return np.frombuffer(view, dtype="<i2")


class EnvelopeBuffer:
    """Min/max envelope of the last ``window_s`` seconds of PCM16 audio in ``points`` buckets.

    Each bucket covers ``samples_per_bucket = round(sample_rate * window_s / points)`` samples
    (4 s / 800 points at 24 kHz: 120 samples, 5 ms). Samples that do not fill a bucket wait
    in a partial bucket, which :meth:`snapshot` leaves out (at most one bucket of latency).
    The ring and its three rows are allocated once; ``push`` allocates only small temporaries.
    """

    __slots__ = (
        "_max",
        "_min",
        "_p_max",
        "_p_min",
        "_p_n",
        "_p_sq",
        "_pos",
        "_sq",
        "buckets_written",
        "points",
        "sample_rate",
        "samples_per_bucket",
        "samples_pushed",
        "window_s",
    )

    def __init__(self, sample_rate: int, window_s: float = 4.0, points: int = 800) -> None:
        if sample_rate <= 0:
            raise InvalidValue(f"sample_rate must be positive, got {sample_rate}")
        if points <= 0:
            raise InvalidValue(f"points must be positive, got {points}")
        if window_s <= 0:
            raise InvalidValue(f"window_s must be positive, got {window_s}")
        self.sample_rate = sample_rate
        self.points = points
        self.samples_per_bucket = max(1, round(sample_rate * window_s / points))
        #: The window actually covered (``points * samples_per_bucket`` samples).
        self.window_s = points * self.samples_per_bucket / sample_rate
        self._min: Float32Array = np.zeros(points, np.float32)
        self._max: Float32Array = np.zeros(points, np.float32)
        self._sq: Float32Array = np.zeros(points, np.float32)
        self._pos = 0  # next slot to write
        self.buckets_written = 0
        self.samples_pushed = 0
        self._p_n = 0
        self._p_min = 0
        self._p_max = 0
        self._p_sq = 0.0

    # ------------------------------------------------------------------ writing
    # The ring holds raw int16 units (min, max, and the sum of squares per bucket); scaling to
    # [-1, 1) happens when reading, at the view's rate rather than at the audio's.

    def push(self, pcm16: bytes | bytearray | memoryview | npt.NDArray[np.int16]) -> None:
        """Add a block of PCM16 mono audio (any length)."""
        x = pcm16.reshape(-1) if isinstance(pcm16, np.ndarray) else as_int16(pcm16)
        n = x.size
        if n == 0:
            return
        if x.dtype != np.int16:
            raise InvalidType(f"expected int16 samples, got dtype {x.dtype}")
        self.samples_pushed += n
        spb = self.samples_per_bucket
        if self._p_n:
            k = min(spb - self._p_n, n)
            head = x[:k]
            self._p_min = min(self._p_min, int(head.min()))
            self._p_max = max(self._p_max, int(head.max()))
            f = head.astype(np.float32)
            self._p_sq += float(np.dot(f, f))
            self._p_n += k
            x = x[k:]
            if self._p_n == spb:
                self._close_partial()
        full = x.size // spb
        if full:
            if full > self.points:  # only the newest window matters
                x = x[(full - self.points) * spb :]
                full = self.points
            block = x[: full * spb].reshape(full, spb)
            f = block.astype(np.float32)
            f *= f
            self._write(block.min(axis=1), block.max(axis=1), f.sum(axis=1))
        rest = x[full * spb :]
        if rest.size:
            f = rest.astype(np.float32)
            self._p_n = rest.size
            self._p_min = int(rest.min())
            self._p_max = int(rest.max())
            self._p_sq = float(np.dot(f, f))

    def push_silence(self, samples: int, *, align: bool = True) -> int:
        """Add ``samples`` of digital silence; returns how many were added.

        With ``align`` the count is rounded up to end on a bucket boundary, so that audio
        pushed next starts a fresh bucket (the envelope of a block then does not depend on
        how long the silence before it was). At most one window is written.
        """
        if samples <= 0:
            return 0
        spb = self.samples_per_bucket
        if align:
            samples += -(self._p_n + samples) % spb
        added = samples
        self.samples_pushed += samples
        if self._p_n:
            k = min(spb - self._p_n, samples)
            self._p_min = min(self._p_min, 0)
            self._p_max = max(self._p_max, 0)
            self._p_n += k
            samples -= k
            if self._p_n == spb:
                self._close_partial()
        full = min(samples // spb, self.points)
        if full:
            zeros = np.zeros(full, np.float32)
            self._write(zeros, zeros, zeros)
        rest = samples % spb
        if rest:
            self._p_n, self._p_min, self._p_max, self._p_sq = rest, 0, 0, 0.0
        return added

    def clear(self) -> None:
        """Forget everything (the window becomes silence)."""
        self._min[:] = 0
        self._max[:] = 0
        self._sq[:] = 0
        self._p_n = 0

    def _close_partial(self) -> None:
        pos = self._pos
        self._min[pos] = self._p_min
        self._max[pos] = self._p_max
        self._sq[pos] = self._p_sq
        self._pos = (pos + 1) % self.points
        self.buckets_written += 1
        self._p_n = 0

    def _write(self, mins: npt.NDArray[Any], maxs: npt.NDArray[Any], sqs: npt.NDArray[Any]) -> None:
        n = len(mins)
        pos = self._pos
        end = pos + n
        if end <= self.points:
            self._min[pos:end] = mins
            self._max[pos:end] = maxs
            self._sq[pos:end] = sqs
        else:
            first = self.points - pos
            self._min[pos:] = mins[:first]
            self._max[pos:] = maxs[:first]
            self._sq[pos:] = sqs[:first]
            self._min[: n - first] = mins[first:]
            self._max[: n - first] = maxs[first:]
            self._sq[: n - first] = sqs[first:]
        self._pos = end % self.points
        self.buckets_written += n

    # ------------------------------------------------------------------ reading

    def snapshot(self, out: Float32Array | None = None) -> Float32Array:
        """``(2, points)`` float32: row 0 the minimum, row 1 the maximum, oldest → newest.

        Values are ``int16 / 32768``; buckets never written are 0 (silence). Pass ``out`` to
        fill an existing array.
        """
        if out is None:
            out = np.empty((2, self.points), np.float32)
        pos, cut = self._pos, self.points - self._pos
        np.multiply(self._min[pos:], _SCALE, out=out[0, :cut])
        np.multiply(self._min[:pos], _SCALE, out=out[0, cut:])
        np.multiply(self._max[pos:], _SCALE, out=out[1, :cut])
        np.multiply(self._max[:pos], _SCALE, out=out[1, cut:])
        return out

    def _last(self, ring: Float32Array, buckets: int) -> Float32Array:
        buckets = max(1, min(buckets, self.points))
        pos = self._pos
        if buckets <= pos:
            return ring[pos - buckets : pos]
        return np.concatenate((ring[self.points - (buckets - pos) :], ring[:pos]))

    def _buckets(self, window_s: float) -> int:
        return max(1, round(window_s * self.sample_rate / self.samples_per_bucket))

    def level_dbfs(self, window_s: float = 0.1) -> float:
        """RMS level of the newest ``window_s`` (whole buckets), in dBFS (``FLOOR_DBFS`` for silence)."""
        sums = self._last(self._sq, self._buckets(window_s))
        ms = float(sums.mean()) / self.samples_per_bucket / 32768.0**2
        return 10.0 * math.log10(ms) if ms > _FLOOR_MS else FLOOR_DBFS

    def peak_dbfs(self, window_s: float = 0.1) -> float:
        """Peak level of the newest ``window_s``, in dBFS (a full-scale sample is 0 dBFS)."""
        n = self._buckets(window_s)
        raw = max(float(np.abs(self._last(self._min, n)).max()), float(self._last(self._max, n).max()))
        peak = raw / 32768.0
        return 20.0 * math.log10(peak) if peak > 10.0 ** (FLOOR_DBFS / 20.0) else FLOOR_DBFS


def envelope(samples: bytes | bytearray | memoryview | npt.NDArray[np.int16], points: int) -> Float32Array:
    """Min/max envelope of a whole PCM16 signal in ``points`` equal buckets: ``(2, points)`` float32.

    Bucket ``i`` covers samples ``[i * n // points, (i + 1) * n // points)``; an empty bucket
    (fewer samples than points) repeats the previous value.
    """
    x = as_int16(samples)
    out = np.zeros((2, points), np.float32)
    n = len(x)
    if n == 0 or points <= 0:
        return out
    edges = (np.arange(points + 1, dtype=np.int64) * n) // points
    starts = np.minimum(edges[:-1], n - 1)
    scaled = x.astype(np.float32) * _SCALE
    out[0] = np.minimum.reduceat(scaled, starts)
    out[1] = np.maximum.reduceat(scaled, starts)
    return out


def place_segments(
    segments: Iterable[tuple[float, bytes | npt.NDArray[np.int16]]], sample_rate: int, duration_s: float
) -> Int16Array:
    """PCM16 segments laid out on a time axis: ``[(start_s, pcm), ...]`` → int16 array of ``duration_s``.

    Later segments overwrite earlier ones where they overlap; parts outside ``[0, duration_s)``
    are cut off.
    """
    total = max(0, round(duration_s * sample_rate))
    out = np.zeros(total, np.int16)
    for start_s, pcm in segments:
        x = as_int16(pcm)
        begin = round(start_s * sample_rate)
        if begin < 0:
            x = x[-begin:]
            begin = 0
        end = min(total, begin + len(x))
        if end > begin:
            out[begin:end] = x[: end - begin]
    return out


class AudioHistory:
    """Bounded PCM16 of a session: input audio as one stream, assistant audio per item.

    Keeps at most ``max_s`` seconds of each (the oldest input chunks and the oldest items are
    dropped first). Feed it from the session's taps: ``push_input(pcm)`` for each block sent
    and ``push_output(item_id, pcm)`` for each block received. ``input_offset_ms`` says where
    on the input-audio timeline the kept input starts.
    """

    def __init__(
        self, max_s: float = 600.0, sample_rate: int = 24000, output_sample_rate: int = 24000
    ) -> None:
        if max_s <= 0:
            raise InvalidValue(f"max_s must be positive, got {max_s}")
        self.max_s = max_s
        self.sample_rate = sample_rate
        self.output_sample_rate = output_sample_rate
        self._in: deque[bytes] = deque()
        self._in_bytes = 0
        self._in_dropped = 0
        self._out: dict[str, list[bytes]] = {}
        self._out_bytes = 0
        self._max_in = int(max_s * sample_rate) * 2
        self._max_out = int(max_s * output_sample_rate) * 2

    def push_input(self, pcm16: bytes) -> None:
        self._in.append(bytes(pcm16))
        self._in_bytes += len(pcm16)
        while self._in_bytes > self._max_in and len(self._in) > 1:
            dropped = self._in.popleft()
            self._in_bytes -= len(dropped)
            self._in_dropped += len(dropped)

    def push_output(self, item_id: str, pcm16: bytes) -> None:
        self._out.setdefault(item_id, []).append(bytes(pcm16))
        self._out_bytes += len(pcm16)
        while self._out_bytes > self._max_out and len(self._out) > 1:
            oldest = next(iter(self._out))
            self._out_bytes -= sum(len(b) for b in self._out.pop(oldest))

    @property
    def input_offset_ms(self) -> float:
        """Input-audio time (ms since the first block) of the first sample kept."""
        return self._in_dropped / 2 / self.sample_rate * 1000.0

    @property
    def input_ms(self) -> float:
        """Input audio pushed in total (kept or not), in ms."""
        return (self._in_dropped + self._in_bytes) / 2 / self.sample_rate * 1000.0

    def input_pcm(self) -> bytes:
        """The kept input audio, PCM16, starting at :attr:`input_offset_ms`."""
        return b"".join(self._in)

    def output_items(self) -> dict[str, bytes]:
        """The kept assistant audio per item id, in the order the items started."""
        return {item_id: b"".join(chunks) for item_id, chunks in self._out.items()}

    def clear(self) -> None:
        self._in.clear()
        self._out.clear()
        self._in_bytes = self._in_dropped = self._out_bytes = 0
