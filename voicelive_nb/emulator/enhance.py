"""Input enhancement in the emulator: noise suppression and acoustic echo cancellation.

- :class:`Denoiser` (``input_audio_noise_reduction``): RNNoise from ``pyrnnoise`` (a recurrent
  network with its weights in the wheel's library), run at 48 kHz on 10 ms frames.
- :class:`EchoCanceller` (``input_audio_echo_cancellation``): the Speex multi-delay adaptive
  filter (``libspeexdsp``) with its residual-echo suppressor, on 10 ms frames.
- :class:`Playout`: the far-end reference for server echo cancellation: the assistant audio
  the emulator sent, consumed one sample per input sample from its first delta on (what a
  client that plays audio as it arrives would have put on its speaker while the mic captured).

Every processor returns exactly as many samples as it is given, delayed by a fixed latency,
so the session's input timeline keeps its length: the denoised audio is 44 ms late
(``LATENCY_MS`` plus RNNoise's own 20 ms), the echo-cancelled audio 10 ms; VAD times on an
enhanced input are that much later, as they would be behind any real-time enhancer.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

import numpy as np
import soxr

from ..errors import VoiceLiveError


class EnhanceUnavailable(VoiceLiveError):
    """The library for noise suppression or echo cancellation is not installed."""


class _Fifo:
    """Fixed-latency PCM16 output: primed with silence, always hands back what is asked for."""

    def __init__(self, latency_samples: int) -> None:
        self._data = bytearray(b"\x00\x00" * latency_samples)

    def push(self, pcm16: bytes) -> None:
        self._data += pcm16

    def pop(self, samples: int) -> bytes:
        n = samples * 2
        if len(self._data) < n:
            self._data += b"\x00" * (n - len(self._data))
        out = bytes(self._data[:n])
        del self._data[:n]
        return out


#: The denoiser's fixed delay: one 10 ms RNNoise frame, a partial one, and the resamplers' few samples.
LATENCY_MS = 24


class Denoiser:
    """Streaming RNNoise at any input rate (resampled to 48 kHz and back)."""

    RATE = 48000
    FRAME = 480  # 10 ms at 48 kHz

    def __init__(self, sample_rate: int) -> None:
        try:
            from pyrnnoise import rnnoise  # type: ignore[import-untyped]
        except (ImportError, OSError) as exc:
            raise EnhanceUnavailable(
                f"noise suppression needs pyrnnoise ({exc}); install voicelive_nb[emulator]"
            ) from None
        self._rnn: Any = rnnoise
        self._state = rnnoise.create()
        self.sample_rate = sample_rate
        # soxr's quick (cubic) quality: ~0.1 ms of delay there and back (HQ holds back ~70 ms)
        self._up = soxr.ResampleStream(sample_rate, self.RATE, 1, dtype="float32", quality="QQ")
        self._down = soxr.ResampleStream(self.RATE, sample_rate, 1, dtype="float32", quality="QQ")
        self._pending = np.zeros(0, dtype=np.float32)  # 48 kHz samples not yet a whole frame
        # a frame, a partial frame and the resamplers' delays, in input samples
        self._out = _Fifo(sample_rate * LATENCY_MS // 1000)
        self._odd = b""

    def process(self, pcm16: bytes) -> bytes:
        """Denoise ``pcm16`` (mono, at ``sample_rate``): the same number of samples, LATENCY_MS later."""
        data = self._odd + bytes(pcm16)
        cut = len(data) // 2 * 2
        self._odd = data[cut:]
        x = np.frombuffer(data[:cut], dtype="<i2").astype(np.float32) / 32768.0
        self._pending = np.concatenate([self._pending, self._up.resample_chunk(x)])
        whole = len(self._pending) // self.FRAME * self.FRAME
        if whole:
            frames = np.clip(self._pending[:whole] * 32768.0, -32768, 32767).astype(np.int16)
            self._pending = self._pending[whole:]
            out = np.empty(whole, dtype=np.float32)
            for i in range(0, whole, self.FRAME):
                clean, _prob = self._rnn.process_mono_frame(self._state, frames[i : i + self.FRAME])
                out[i : i + self.FRAME] = clean
            back = self._down.resample_chunk(out / 32768.0)
            self._out.push(np.clip(back * 32768.0, -32768, 32767).astype("<i2").tobytes())
        return self._out.pop(len(pcm16) // 2)

    def close(self) -> None:
        if self._state is not None:
            self._rnn.destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()


_SPEEX_ECHO_SET_SAMPLING_RATE = 24
_SPEEX_PREPROCESS_SET_DENOISE = 0
_SPEEX_PREPROCESS_SET_ECHO_STATE = 24
_speex: Any = None


def _libspeexdsp() -> Any:
    global _speex
    if _speex is None:
        path = ctypes.util.find_library("speexdsp") or "libspeexdsp.so.1"
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            raise EnhanceUnavailable(
                f"echo cancellation needs libspeexdsp ({exc}); install the libspeexdsp1 package"
            ) from None
        vp, ip = ctypes.c_void_p, ctypes.c_int
        lib.speex_echo_state_init.argtypes, lib.speex_echo_state_init.restype = [ip, ip], vp
        lib.speex_echo_state_destroy.argtypes = [vp]
        lib.speex_echo_cancellation.argtypes = [vp, vp, vp, vp]
        lib.speex_echo_ctl.argtypes, lib.speex_echo_ctl.restype = [vp, ip, vp], ip
        lib.speex_preprocess_state_init.argtypes, lib.speex_preprocess_state_init.restype = [ip, ip], vp
        lib.speex_preprocess_state_destroy.argtypes = [vp]
        lib.speex_preprocess_run.argtypes, lib.speex_preprocess_run.restype = [vp, vp], ip
        lib.speex_preprocess_ctl.argtypes, lib.speex_preprocess_ctl.restype = [vp, ip, vp], ip
        _speex = lib
    return _speex


class EchoCanceller:
    """Streaming Speex AEC: ``process(mic, reference)`` → the mic with the reference's echo removed."""

    def __init__(self, sample_rate: int, *, filter_ms: int = 100) -> None:
        lib = _libspeexdsp()
        self._lib = lib
        self.sample_rate = sample_rate
        self.frame = sample_rate // 100  # 10 ms
        self._echo = lib.speex_echo_state_init(self.frame, sample_rate * filter_ms // 1000)
        rate = ctypes.c_int(sample_rate)
        lib.speex_echo_ctl(self._echo, _SPEEX_ECHO_SET_SAMPLING_RATE, ctypes.byref(rate))
        self._pre = lib.speex_preprocess_state_init(self.frame, sample_rate)
        off = ctypes.c_int(1)  # the residual-echo suppressor works inside the denoiser
        lib.speex_preprocess_ctl(self._pre, _SPEEX_PREPROCESS_SET_DENOISE, ctypes.byref(off))
        lib.speex_preprocess_ctl(self._pre, _SPEEX_PREPROCESS_SET_ECHO_STATE, ctypes.c_void_p(self._echo))
        self._mic = bytearray()
        self._ref = bytearray()
        self._out = _Fifo(self.frame)

    def process(self, mic: bytes, reference: bytes) -> bytes:
        """``mic`` and ``reference``: mono PCM16 of the same length; returns that many samples, 10 ms later."""
        n = len(mic) // 2
        ref = bytes(reference[: n * 2]).ljust(n * 2, b"\x00")
        self._mic += mic
        self._ref += ref
        step = self.frame * 2
        lib = self._lib
        while len(self._mic) >= step:
            near = (ctypes.c_int16 * self.frame).from_buffer_copy(bytes(self._mic[:step]))
            far = (ctypes.c_int16 * self.frame).from_buffer_copy(bytes(self._ref[:step]))
            del self._mic[:step], self._ref[:step]
            out = (ctypes.c_int16 * self.frame)()
            lib.speex_echo_cancellation(self._echo, near, far, out)
            lib.speex_preprocess_run(self._pre, out)
            self._out.push(bytes(out))
        return self._out.pop(n)

    def close(self) -> None:
        if self._echo is not None:
            self._lib.speex_preprocess_state_destroy(self._pre)
            self._lib.speex_echo_state_destroy(self._echo)
            self._echo = None

    def __del__(self) -> None:
        self.close()


class Playout:
    """What the emulator's own speaker is playing, one sample per input sample (server reference)."""

    def __init__(self) -> None:
        self._queue = bytearray()

    def sent(self, pcm16: bytes) -> None:
        """Assistant audio went out (at the input rate): it plays after what is queued."""
        self._queue += pcm16

    def stop(self) -> None:
        """Playback stopped (truncation, output clear): nothing more is heard."""
        self._queue.clear()

    def take(self, samples: int) -> bytes:
        """The reference for the next ``samples`` input samples (silence once played out)."""
        n = samples * 2
        out = bytes(self._queue[:n]).ljust(n, b"\x00")
        del self._queue[:n]
        return out


def split_stereo(raw: bytes) -> tuple[bytes, bytes]:
    """Interleaved stereo PCM16 → (channel 0, channel 1)."""
    a = np.frombuffer(raw, dtype="<i2")
    return a[0::2].astype("<i2").tobytes(), a[1::2].astype("<i2").tobytes()


class InputPath:
    """A session's input processing before VAD and ASR, following its current settings.

    Nothing is made (and the audio passes untouched) unless the session asks for noise
    reduction or echo cancellation.
    """

    def __init__(self) -> None:
        self.playout = Playout()
        self._denoiser: Denoiser | None = None
        self._canceller: EchoCanceller | None = None

    def delay_ms(self, session: Any) -> int:
        """How late the processed audio is (fixed once running): 10 ms once the echo canceller
        runs, the denoiser's ``LATENCY_MS`` plus RNNoise's 20 ms with noise suppression."""
        delay = 0
        if session.get("input_audio_echo_cancellation") and self._canceller is not None:
            delay += 10
        if session.get("input_audio_noise_reduction"):
            delay += LATENCY_MS + 20
        return delay

    def server_reference(self, session: Any) -> bool:
        ec = session.get("input_audio_echo_cancellation")
        return bool(ec) and ec.get("reference_source", "server") == "server"

    def sent(self, session: Any, pcm16: bytes, output_rate: int) -> None:
        """The emulator sent assistant audio (PCM16 at ``output_rate``): queue it as the reference."""
        if not self.server_reference(session):
            return
        from ..audio.format import resample

        rate = int(session["input_audio_sampling_rate"])
        self.playout.sent(resample(pcm16, output_rate, rate) if output_rate != rate else pcm16)

    def process(self, session: Any, raw: bytes, mono: bytes) -> bytes:
        """``raw``: the appended bytes; ``mono``: channel 0 as PCM16 at the input rate."""
        ec = session.get("input_audio_echo_cancellation")
        nr = session.get("input_audio_noise_reduction")
        if not ec and not nr:
            return mono
        rate = int(session["input_audio_sampling_rate"])
        out = mono
        if ec:
            if int(ec.get("channels", 1)) == 2 and session["input_audio_format"] == "pcm16":
                reference = split_stereo(raw)[1]
            else:
                reference = self.playout.take(len(mono) // 2)
            # nothing has been played yet: no echo to remove, the input passes as it came (the
            # canceller starts with the first sound of the reference and runs from then on)
            if self._canceller is None and any(reference):
                self._canceller = EchoCanceller(rate)
            if self._canceller is not None and self._canceller.sample_rate != rate:
                self._canceller = EchoCanceller(rate)
            if self._canceller is not None:
                out = self._canceller.process(out, reference)
        if nr:
            if self._denoiser is None or self._denoiser.sample_rate != rate:
                self._denoiser = Denoiser(rate)
            out = self._denoiser.process(out)
        return out

    def close(self) -> None:
        for proc in (self._denoiser, self._canceller):
            if proc is not None:
                proc.close()
