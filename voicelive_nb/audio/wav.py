"""WAV files as audio sources and sinks.

- :class:`WavSource` plays a WAV file as a microphone would (real-time paced) or as fast as
  possible: any PCM WAV (8-bit unsigned, 16/24/32-bit signed integer, 32/64-bit float,
  plain or ``WAVE_FORMAT_EXTENSIBLE``, any channel count), mixed to mono and resampled to
  the session rate.
- :class:`WavSink` writes the assistant's audio to a PCM16 mono WAV that stays readable if
  the process dies at any moment (see its docstring for the exact guarantee).
- :func:`read_wav` / :func:`write_wav` read and write whole PCM16 mono files;
  :func:`read_wav` also reads files whose header sizes were never filled in.

The RIFF parser is our own rather than the stdlib ``wave`` module: on Python 3.10/3.11
``wave`` reads neither float nor ``WAVE_FORMAT_EXTENSIBLE`` files, and it trusts the
header's data size, so a recording cut short by a crash (size 0) reads as empty.
"""

from __future__ import annotations

import os
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import AudioError
from .format import float_to_pcm16
from .memory import Pace, PcmSource

__all__ = ["WavInfo", "WavSink", "WavSource", "read_wav", "wav_info", "write_wav"]

_PCM = 0x0001
_FLOAT = 0x0003
_EXTENSIBLE = 0xFFFE
_TAG_NAMES = {
    0x0002: "MS ADPCM",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0050: "MPEG",
    0x0055: "MP3",
}
_UNKNOWN_SIZE = 0xFFFFFFFF
_HEADER_BYTES = 44

StrPath = str | os.PathLike[str]


@dataclass(frozen=True)
class WavInfo:
    """What a WAV file holds, from its header."""

    path: Path
    encoding: str
    """``"pcm"`` (integer) or ``"float"``."""
    bits_per_sample: int
    channels: int
    sample_rate: int
    frames: int
    """Sample frames in the file (counted from the bytes present when the header lies)."""
    data_offset: int
    """Byte offset of the first sample in the file."""
    header_complete: bool
    """``False`` when the data size in the header was 0, unknown or larger than the file."""

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def _fail(path: Path, what: str) -> AudioError:
    return AudioError(f"cannot read WAV file {path}: {what}")


def _parse(path: Path, data: bytes) -> tuple[WavInfo, memoryview]:
    """Parse RIFF/WAVE ``data``; return the header facts and a view of the sample bytes."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        if data[:4] == b"RF64":
            raise _fail(path, "RF64 (64-bit WAV) is not supported; convert it to a plain WAV")
        raise _fail(path, f"not a RIFF/WAVE file (starts with {data[:12]!r})")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    view = memoryview(data)
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise _fail(path, f"fmt chunk too short ({size} bytes)")
            tag, channels, rate, _byte_rate, _align, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag == _EXTENSIBLE:
                if size < 40 or body + 40 > len(data):
                    raise _fail(path, "WAVE_FORMAT_EXTENSIBLE fmt chunk too short")
                (tag,) = struct.unpack_from("<H", data, body + 24)  # first two bytes of the sub-format GUID
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise _fail(path, "data chunk before the fmt chunk")
            end = body + size
            complete = size not in (0, _UNKNOWN_SIZE) and end <= len(data)
            if not complete:
                end = len(data)  # the writer never patched the size (or died): read to EOF
            return _describe(path, fmt, body, end, complete), view[body:end]
        pos = body + size + (size & 1)  # chunks are padded to even sizes
    if fmt is None:
        raise _fail(path, "no fmt chunk")
    raise _fail(path, "no data chunk")


def _describe(path: Path, fmt: tuple[int, int, int, int], body: int, end: int, complete: bool) -> WavInfo:
    tag, channels, rate, bits = fmt
    if tag == _PCM:
        encoding = "pcm"
        if bits not in (8, 16, 24, 32):
            raise _fail(path, f"unsupported integer PCM with {bits} bits per sample; use 8, 16, 24 or 32")
    elif tag == _FLOAT:
        encoding = "float"
        if bits not in (32, 64):
            raise _fail(path, f"unsupported float PCM with {bits} bits per sample; use 32 or 64")
    else:
        name = _TAG_NAMES.get(tag, "unknown")
        raise _fail(
            path,
            f"unsupported encoding: format tag 0x{tag:04x} ({name}); "
            "convert it to integer PCM (8/16/24/32-bit) or 32/64-bit float",
        )
    if channels < 1:
        raise _fail(path, f"invalid channel count {channels}")
    if rate < 1:
        raise _fail(path, f"invalid sample rate {rate}")
    frames = (end - body) // (channels * bits // 8)
    return WavInfo(path, encoding, bits, channels, rate, frames, body, complete)


def _load(path: StrPath) -> tuple[WavInfo, memoryview]:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise AudioError(f"cannot open WAV file {p}: {exc.strerror or exc}") from exc
    return _parse(p, data)


def wav_info(path: StrPath) -> WavInfo:
    """Read a WAV file's header facts (the sizes are taken from the bytes actually present)."""
    return _load(path)[0]


def _to_mono_float(info: WavInfo, raw: memoryview) -> npt.NDArray[np.float64]:
    width = info.bits_per_sample // 8
    usable = info.frames * info.channels * width
    buf = raw[:usable]
    x: npt.NDArray[Any]
    if info.encoding == "float":
        x = np.frombuffer(buf, dtype="<f4" if width == 4 else "<f8").astype(np.float64)
    elif width == 1:
        x = (np.frombuffer(buf, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(buf, dtype="<i2").astype(np.float64) / 32768.0
    elif width == 3:
        b = np.frombuffer(buf, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = (v << 8) >> 8  # sign-extend 24 → 32 bits
        x = v.astype(np.float64) / 8388608.0
    else:
        x = np.frombuffer(buf, dtype="<i4").astype(np.float64) / 2147483648.0
    if info.channels > 1:
        x = x.reshape(-1, info.channels).mean(axis=1)
    return x


def _decode(info: WavInfo, raw: memoryview, gain: float = 1.0) -> bytes:
    """Sample bytes → PCM16 mono (exact for 16-bit mono at unity gain)."""
    if info.encoding == "pcm" and info.bits_per_sample == 16 and info.channels == 1 and gain == 1.0:
        return bytes(raw[: info.frames * 2])
    return float_to_pcm16(_to_mono_float(info, raw) * gain)


def read_wav(path: StrPath) -> tuple[bytes, int]:
    """Read a WAV file as ``(pcm16 mono bytes, sample_rate)`` at the file's own rate.

    Any supported encoding is converted (channels averaged). A header whose data size is 0,
    unknown or past the end of the file (a writer that was killed) is read to the end of
    the file, dropping a torn last sample.
    """
    info, raw = _load(path)
    return _decode(info, raw), info.sample_rate


def _header(sample_rate: int, data_bytes: int) -> bytes:
    riff = 36 + data_bytes
    if riff > _UNKNOWN_SIZE:  # past 4 GiB: mark sizes unknown; read_wav reads to EOF
        riff = data_bytes = _UNKNOWN_SIZE
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        riff,
        b"WAVE",
        b"fmt ",
        16,
        _PCM,
        1,
        sample_rate,
        sample_rate * 2,
        2,
        16,
        b"data",
        data_bytes,
    )


def write_wav(path: StrPath, pcm16: bytes, sample_rate: int) -> None:
    """Write PCM16 mono audio as a WAV file (atomically: a temporary file renamed into place)."""
    if len(pcm16) % 2:
        raise AudioError(f"pcm16 audio must have an even number of bytes, got {len(pcm16)}")
    if sample_rate <= 0:
        raise AudioError(f"invalid sample rate {sample_rate}; use a positive rate in Hz")
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=p.name + ".", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_header(sample_rate, len(pcm16)))
            f.write(pcm16)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a written WAV is an ordinary file
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class WavSource(PcmSource):
    """An :class:`~voicelive_nb.audio.base.AudioSource` that plays a WAV file.

    The file is read and validated at construction (a bad file raises :class:`AudioError`
    naming it), mixed to mono, multiplied by ``gain`` (clipped) and resampled to the rate
    ``frames`` is asked for. ``pace="realtime"`` releases each frame when a microphone would
    have finished capturing it, on a deadline schedule with no drift; ``"fast"`` yields
    without waiting (it still hands control to the event loop after each frame).
    ``lead_silence_ms`` comes once before the audio, ``tail_silence_ms`` after each pass;
    ``loop=True`` repeats for ever.
    """

    def __init__(
        self,
        path: StrPath,
        *,
        pace: Pace = "realtime",
        loop: bool = False,
        lead_silence_ms: float = 0,
        tail_silence_ms: float = 0,
        gain: float = 1.0,
    ) -> None:
        info, raw = _load(path)
        self.path = info.path
        self.info = info
        super().__init__(
            _decode(info, raw, gain),
            info.sample_rate,
            pace=pace,
            loop=loop,
            lead_silence_ms=lead_silence_ms,
            tail_silence_ms=tail_silence_ms,
        )

    @property
    def channels(self) -> int:
        """Channels in the file (``frames`` always yields mono)."""
        return self.info.channels

    def __repr__(self) -> str:
        return (
            f"WavSource({str(self.path)!r}, {self.info.sample_rate} Hz, {self.info.channels} ch, "
            f"{self.info.encoding}{self.info.bits_per_sample}, {self.duration_s:.2f} s, pace={self.pace!r})"
        )


class WavSink:
    """An :class:`~voicelive_nb.audio.base.AudioSink` that writes PCM16 mono to a WAV file.

    A file "plays" instantly: ``played_ms(item_id)`` is what was written of that item, and
    ``clear`` drops nothing (it is counted in ``clears``).

    Crash safety: every ``write`` appends the samples with one unbuffered ``write`` system
    call and then rewrites the 44-byte header with the new sizes (one ``pwrite``). Both land
    in the kernel's page cache before ``write`` returns, so if the *process* is killed at any
    moment (``kill -9``, a crashed kernel of Jupyter) the file is a valid WAV:

    - :func:`read_wav` (which reads to EOF) loses nothing but a torn last sample;
    - readers that trust the header (stdlib ``wave``, soundfile) lose at most the one
      ``write`` that was in flight between the data and the header update — one delta
      of audio, typically 20–100 ms.

    Surviving a power loss or OS crash needs the data on disk: pass ``fsync_interval_s`` to
    ``fsync`` at most that often from ``write`` (or call :meth:`sync`); the loss is then at
    most that interval.
    """

    def __init__(self, path: StrPath, *, fsync_interval_s: float | None = None) -> None:
        self.path = Path(path)
        self.fsync_interval_s = fsync_interval_s
        self.sample_rate: int | None = None
        self.data_bytes = 0
        self.clears = 0
        self._played: dict[str, int] = {}
        self._file: Any = None  # io.FileIO while open
        self._closed = False
        self._last_sync = 0.0

    @property
    def frames(self) -> int:
        return self.data_bytes // 2

    @property
    def duration_ms(self) -> int:
        return 0 if not self.sample_rate else self.frames * 1000 // self.sample_rate

    @property
    def closed(self) -> bool:
        return self._closed

    def open(self, sample_rate: int) -> None:
        if sample_rate <= 0:
            raise AudioError(f"invalid sample rate {sample_rate}; use a positive rate in Hz")
        if self._file is not None or self._closed:
            raise AudioError(f"WAV sink {self.path} was already opened")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._file = open(self.path, "wb", buffering=0)  # noqa: SIM115 (kept open until close())
            self._write_all(_header(sample_rate, 0))
        except OSError as exc:
            raise AudioError(f"cannot write WAV file {self.path}: {exc.strerror or exc}") from exc
        self.sample_rate = sample_rate
        self._last_sync = time.monotonic()

    def _write_all(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            n = self._file.write(view)
            view = view[n:]

    def _patch_header(self) -> None:
        assert self.sample_rate is not None
        header = _header(self.sample_rate, self.data_bytes)
        fd = self._file.fileno()
        if hasattr(os, "pwrite"):
            os.pwrite(fd, header, 0)
        else:  # pragma: no cover - Windows has no pwrite
            self._file.seek(0)
            self._write_all(header)
            self._file.seek(0, os.SEEK_END)

    def write(self, item_id: str, pcm16: bytes) -> None:
        if self._file is None:
            state = "closed" if self._closed else "not open; call open(sample_rate) first"
            raise AudioError(f"WAV sink {self.path} is {state}")
        if len(pcm16) % 2:
            raise AudioError(f"pcm16 audio must have an even number of bytes, got {len(pcm16)}")
        if not pcm16:
            self._played.setdefault(item_id, 0)
            return
        try:
            self._write_all(pcm16)
            self.data_bytes += len(pcm16)
            self._patch_header()
        except OSError as exc:
            raise AudioError(f"cannot write WAV file {self.path}: {exc.strerror or exc}") from exc
        self._played[item_id] = self._played.get(item_id, 0) + len(pcm16)
        if self.fsync_interval_s is not None:
            now = time.monotonic()
            if now - self._last_sync >= self.fsync_interval_s:
                self.sync()

    def sync(self) -> None:
        """Force what was written to disk (``fsync``)."""
        if self._file is not None:
            os.fsync(self._file.fileno())
            self._last_sync = time.monotonic()

    def clear(self) -> None:
        self.clears += 1

    def played_ms(self, item_id: str) -> int:
        if not self.sample_rate:
            return 0
        return self._played.get(item_id, 0) // 2 * 1000 // self.sample_rate

    def written_bytes(self, item_id: str) -> int:
        """Bytes of ``item_id`` written to the file."""
        return self._played.get(item_id, 0)

    def close(self) -> None:
        if self._file is None:
            self._closed = True
            return
        try:
            self._patch_header()
            if self.fsync_interval_s is not None:
                os.fsync(self._file.fileno())
        finally:
            self._file.close()
            self._file = None
            self._closed = True

    def __enter__(self) -> WavSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
