"""Pure audio format helpers: PCM16 <-> float, resampling, G.711, framing and levels.

Everything here works on **PCM16 mono little-endian** ``bytes`` (the Voice Live wire format)
or on NumPy arrays, does no I/O and keeps no global state. Resampling uses ``soxr`` (a real
band-limited resampler); :class:`StreamResampler` keeps the filter state across chunks, so a
stream cut into arbitrary pieces resamples to the same samples as the whole signal would.
The G.711 codecs are written from the ITU-T G.711 definition (μ-law on 14-bit, A-law on
13-bit linear samples) and are vectorised with NumPy.
"""

from __future__ import annotations

import math
import re

import numpy as np
import numpy.typing as npt
import soxr

from ..errors import InvalidValue

__all__ = [
    "StreamResampler",
    "alaw_decode",
    "alaw_encode",
    "bytes_per_ms",
    "chunk",
    "duration_ms",
    "float_to_pcm16",
    "pcm16_to_float",
    "resample",
    "rms_dbfs",
    "ulaw_decode",
    "ulaw_encode",
]

FloatArray = npt.NDArray[np.float32]

_PCM16_WITH_RATE = re.compile(r"^pcm16[_-](\d+)hz$")
_G711 = ("g711_ulaw", "g711_alaw")
_TO_FLOAT = np.float32(1.0 / 32768.0)


def bytes_per_ms(fmt: str, sample_rate: int) -> float:
    """Bytes of audio per millisecond for a Voice Live audio format name.

    ``pcm16`` uses ``sample_rate`` (2 bytes per sample: 48 at 24 kHz, 32 at 16 kHz, 16 at
    8 kHz). ``pcm16_8000hz`` / ``pcm16_16000hz`` (and the legacy hyphenated spelling) carry
    their own rate, which wins over ``sample_rate``. ``g711_ulaw`` / ``g711_alaw`` are
    always 8 kHz with one byte per sample: 8 bytes/ms.
    """
    name = fmt.strip().lower()
    if name in _G711:
        return 8.0
    match = _PCM16_WITH_RATE.match(name)
    if match:
        return int(match.group(1)) * 2 / 1000.0
    if name == "pcm16":
        if sample_rate <= 0:
            raise InvalidValue(f"invalid sample rate: {sample_rate}; use a positive rate in Hz such as 24000")
        return sample_rate * 2 / 1000.0
    raise InvalidValue(
        f"unknown audio format: {fmt!r}; use pcm16, pcm16_8000hz, pcm16_16000hz, g711_ulaw or g711_alaw"
    )


def _as_int16(pcm16: bytes) -> npt.NDArray[np.int16]:
    if len(pcm16) % 2:
        raise InvalidValue(f"pcm16 audio must have an even number of bytes, got {len(pcm16)}")
    return np.frombuffer(pcm16, dtype="<i2")


def pcm16_to_float(b: bytes) -> FloatArray:
    """PCM16 bytes → float32 samples in [-1, 1) (divides by 32768, so it round-trips exactly)."""
    out: FloatArray = _as_int16(b).astype(np.float32) * _TO_FLOAT
    return out


def float_to_pcm16(a: npt.ArrayLike) -> bytes:
    """Float samples (nominally in [-1, 1]) → PCM16 bytes, rounding and clipping out-of-range values."""
    x = np.asarray(a)
    if x.dtype != np.float32:  # float32 stays float32 (exact for PCM16 and faster)
        x = x.astype(np.float64)
    scaled = np.rint(x.reshape(-1) * 32768.0)
    np.clip(scaled, -32768, 32767, out=scaled)
    return scaled.astype("<i2").tobytes()


def resample(pcm16: bytes, from_rate: int, to_rate: int) -> bytes:
    """Resample a whole PCM16 mono signal with soxr (high quality); same rate returns the input."""
    samples = _as_int16(pcm16)
    if from_rate <= 0 or to_rate <= 0:
        raise InvalidValue(f"invalid sample rates: {from_rate} -> {to_rate}; rates must be positive")
    if from_rate == to_rate or samples.size == 0:
        return bytes(pcm16)
    out = soxr.resample(samples.astype(np.float32) * _TO_FLOAT, from_rate, to_rate, quality="HQ")
    return float_to_pcm16(out)


class StreamResampler:
    """Chunked PCM16 resampling with ``soxr.ResampleStream``.

    ``process`` accepts any number of bytes (an odd trailing byte is kept for the next call)
    and returns whatever output is ready; ``flush`` returns the tail held back by the filter.
    The output is time-aligned with the input: output sample ``k`` is input time
    ``k / to_rate``; only its delivery lags by the filter delay.
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise InvalidValue(f"invalid sample rates: {from_rate} -> {to_rate}; rates must be positive")
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._passthrough = from_rate == to_rate
        # float32 inside: soxr's int16 mode rounds differently depending on how the stream is
        # chunked (±1 LSB); in float32 the output is the same for any chunking
        self._stream = (
            None if self._passthrough else soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32")
        )
        self._odd = b""

    def _whole_samples(self, pcm16: bytes) -> bytes:
        data = self._odd + bytes(pcm16) if self._odd else bytes(pcm16)
        if len(data) % 2:
            self._odd = data[-1:]
            return data[:-1]
        self._odd = b""
        return data

    def process(self, pcm16: bytes) -> bytes:
        """Feed a chunk; return the resampled samples that are ready."""
        data = self._whole_samples(pcm16)
        if self._stream is None or not data:
            return data
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32) * _TO_FLOAT
        return float_to_pcm16(self._stream.resample_chunk(samples, last=False))

    def process_float(self, pcm16: bytes) -> FloatArray:
        """Like :meth:`process` but returns float32 samples in [-1, 1] without rounding to PCM16
        (for consumers that want floats anyway, such as the VAD model). Do not mix the two
        methods within one stream unless you only need the sample count to line up."""
        data = self._whole_samples(pcm16)
        samples: FloatArray = np.frombuffer(data, dtype="<i2").astype(np.float32) * _TO_FLOAT
        if self._stream is None or samples.size == 0:
            return samples
        out: FloatArray = np.asarray(self._stream.resample_chunk(samples, last=False), dtype=np.float32)
        return out

    def flush(self) -> bytes:
        """End of stream: return the remaining output and make the resampler ready for a new stream."""
        self._odd = b""
        if self._stream is None:
            return b""
        out = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        self._stream.clear()
        return float_to_pcm16(out)

    def reset(self) -> None:
        """Drop buffered input and filter state without producing output."""
        self._odd = b""
        if self._stream is not None:
            self._stream.clear()


# --- G.711 -----------------------------------------------------------------------------------
# μ-law: 14-bit linear magnitude, bias 33, 8 segments of 16 steps; code bits are inverted.
# A-law: 13-bit linear magnitude, segment 0 is linear, even bits inverted (XOR 0x55).

_ULAW_BIAS = 33
_ULAW_CLIP = 8159


def _u8(data: bytes) -> npt.NDArray[np.uint8]:
    return np.frombuffer(data, dtype=np.uint8)


def _segment(mag: npt.NDArray[np.int32], first_edge: int) -> npt.NDArray[np.int32]:
    """Segment number 0..7 where segment s covers magnitudes below ``first_edge << s``."""
    edges = first_edge << np.arange(8, dtype=np.int32)
    return np.searchsorted(edges, mag, side="right").astype(np.int32)


def ulaw_encode(pcm16: bytes) -> bytes:
    """PCM16 → G.711 μ-law bytes (one byte per sample)."""
    x = _as_int16(pcm16).astype(np.int32) >> 2
    sign = np.where(x < 0, 0x00, 0x80).astype(np.int32)
    # clip, add the bias, and keep the top of the last segment (8159 + 33 would spill over)
    mag = np.minimum(np.minimum(np.abs(x), _ULAW_CLIP) + _ULAW_BIAS, 0x1FFF)
    seg = _segment(mag, 64)
    mantissa = (mag >> (seg + 1)) & 0x0F
    code = (sign | (seg << 4) | mantissa) ^ 0x7F
    return bytes(code.astype(np.uint8).tobytes())


def ulaw_decode(data: bytes) -> bytes:
    """G.711 μ-law bytes → PCM16."""
    u = (~_u8(data)).astype(np.int32) & 0xFF
    seg = (u >> 4) & 0x07
    mag = (((u & 0x0F) << 3) + (_ULAW_BIAS << 2)) << seg
    out = np.where(u & 0x80, (_ULAW_BIAS << 2) - mag, mag - (_ULAW_BIAS << 2))
    return bytes(out.astype("<i2").tobytes())


def alaw_encode(pcm16: bytes) -> bytes:
    """PCM16 → G.711 A-law bytes (one byte per sample)."""
    x = _as_int16(pcm16).astype(np.int32) >> 3
    positive = x >= 0
    mag = np.where(positive, x, -x - 1)
    seg = _segment(mag, 32)
    shift = np.where(seg < 2, 1, seg)
    code = (seg << 4) | ((mag >> shift) & 0x0F)
    code = np.where(positive, code ^ 0xD5, code ^ 0x55)
    return bytes(code.astype(np.uint8).tobytes())


def alaw_decode(data: bytes) -> bytes:
    """G.711 A-law bytes → PCM16."""
    a = _u8(data).astype(np.int32) ^ 0x55
    seg = (a >> 4) & 0x07
    step = (a & 0x0F) << 4
    mag = np.where(seg == 0, step + 8, (step + 0x108) << np.maximum(seg - 1, 0))
    out = np.where(a & 0x80, mag, -mag)
    return bytes(out.astype("<i2").tobytes())


# --- framing and levels ----------------------------------------------------------------------


def chunk(pcm16: bytes, sample_rate: int, frame_ms: int) -> list[bytes]:
    """Cut PCM16 into frames of ``frame_ms`` (the last one may be shorter); empty input → []."""
    frame_samples = sample_rate * frame_ms // 1000
    if frame_samples <= 0:
        raise InvalidValue(f"frame of {frame_ms} ms at {sample_rate} Hz holds no samples")
    if len(pcm16) % 2:
        raise InvalidValue(f"pcm16 audio must have an even number of bytes, got {len(pcm16)}")
    step = frame_samples * 2
    return [pcm16[i : i + step] for i in range(0, len(pcm16), step)]


def duration_ms(pcm16: bytes, sample_rate: int) -> float:
    """Duration of PCM16 mono audio in milliseconds."""
    if sample_rate <= 0:
        raise InvalidValue(f"invalid sample rate: {sample_rate}")
    return (len(pcm16) // 2) * 1000.0 / sample_rate


def rms_dbfs(pcm16: bytes) -> float:
    """RMS level in dB relative to full scale (a full-scale square wave is 0 dBFS, a full-scale
    sine -3.01 dBFS); digital silence and empty input give ``-inf``."""
    x = _as_int16(pcm16).astype(np.float64)
    if x.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(x * x)))
    if rms == 0.0:
        return -math.inf
    return 20.0 * math.log10(rms / 32768.0)
