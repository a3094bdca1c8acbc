"""Input enhancement in the emulator: noise suppression and acoustic echo cancellation.

- :class:`Denoiser` (``input_audio_noise_reduction``): RNNoise from ``pyrnnoise`` (a recurrent
  network with its weights in the wheel's library), run at 48 kHz on 10 ms frames.
- :class:`EchoCanceller` (``input_audio_echo_cancellation``): a delay estimate that aligns the
  reference with its echo within ~100 ms of the first far-end sound, the Speex multi-delay
  adaptive filter (``libspeexdsp``), and a double-talk-aware residual-echo suppressor, on 10 ms
  frames: the echo is gone from the assistant's first word, not after the filter's second of
  convergence.
- :class:`Playout`: the far-end reference for server echo cancellation: the assistant audio
  the emulator sent, consumed one sample per input sample from its first delta on (what a
  client that plays audio as it arrives would have put on its speaker while the mic captured).

Every processor returns exactly as many samples as it is given, delayed by a fixed latency,
so the session's input timeline keeps its length: the denoised audio is 44 ms late
(``LATENCY_MS`` plus RNNoise's own 20 ms), the echo-cancelled audio 20 ms; VAD times on an
enhanced input are that much later, as they would be behind any real-time enhancer.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import soxr

from ..errors import ConfigError, VoiceLiveError


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
        lib.speex_echo_state_reset.argtypes = [vp]
        lib.speex_echo_cancellation.argtypes = [vp, vp, vp, vp]
        lib.speex_echo_ctl.argtypes, lib.speex_echo_ctl.restype = [vp, ip, vp], ip
        lib.speex_preprocess_state_init.argtypes, lib.speex_preprocess_state_init.restype = [ip, ip], vp
        lib.speex_preprocess_state_destroy.argtypes = [vp]
        lib.speex_preprocess_run.argtypes, lib.speex_preprocess_run.restype = [vp, vp], ip
        lib.speex_preprocess_ctl.argtypes, lib.speex_preprocess_ctl.restype = [vp, ip, vp], ip
        _speex = lib
    return _speex


Float = npt.NDArray[np.float64]
#: A 10 ms frame (or a 20 ms hop) quieter than RMS 30 of 32768 (-61 dBFS) is silence.
_SILENT_RMS = 30.0


class DelayEstimator:
    """Where the echo sits behind the reference, found in the first ~100 ms of far-end sound.

    Every 20 ms hop the newest microphone samples are correlated with the reference at every
    lag from 0 to ``max_delay`` (one FFT). Both are pre-emphasised first (a first difference
    flattens speech's spectrum, so the peak is a few samples wide and not a pitch period).
    Correlations and energies are accumulated over the last few hundred milliseconds in which
    the reference had sound, so near-end speech in a hop dilutes the peak but does not move it.
    A lag is taken once its normalised correlation is at least ``THRESHOLD`` in two hops
    running, and changed only the same way (a client whose output latency moved, or a server
    reference whose offset differs from one reply to the next). Measured on the lab's room:
    the echo reaches 0.6 to 0.96 from its third hop on; a reference 30 ms behind its echo (its
    speech against itself some lag off) at most 0.45, so it is not mistaken for an echo.
    """

    THRESHOLD = 0.5
    FORGET = 0.85  # per hop with far-end sound: ~130 ms of memory
    HOP_MS = 20

    def __init__(self, sample_rate: int, max_delay: int) -> None:
        self.hop = sample_rate * self.HOP_MS // 1000
        self.max_delay = max_delay
        self._n = 1 << int(np.ceil(np.log2(self.hop + max_delay + 1)))
        self._c = np.zeros(max_delay + 1)
        self._er = np.zeros(max_delay + 1)
        self._em = 0.0
        self._silence = self.hop * _SILENT_RMS**2
        self.active_hops = 0
        """Hops in which the reference had sound (the estimate's evidence)."""
        self.delay: int | None = None
        """The echo's delay behind the reference, in samples (``None``: not found yet)."""
        self.correlation = 0.0
        """The normalised correlation at the best lag of the last update."""
        self._candidate: int | None = None

    def update(self, mic: Float, ref: Float) -> None:
        """``mic``: the newest ``hop + 1`` samples; ``ref``: the newest ``hop + max_delay + 1``."""
        m = mic[1:] - 0.9 * mic[:-1]
        r = ref[1:] - 0.9 * ref[:-1]
        hop, top = self.hop, self.max_delay
        if float(r[-hop:] @ r[-hop:]) < self._silence and float(r @ r) < self._silence * 2:
            return
        corr = np.fft.irfft(np.fft.rfft(r, self._n) * np.conj(np.fft.rfft(m, self._n)), self._n)
        sq = np.concatenate(([0.0], np.cumsum(r * r)))
        # lag L pairs m[i] with r[i + top - L]: the reference L samples before the mic
        self._c = self.FORGET * self._c + corr[top::-1]
        self._er = self.FORGET * self._er + (sq[hop : hop + top + 1] - sq[: top + 1])[::-1]
        self._em = self.FORGET * self._em + float(m @ m)
        self.active_hops += 1
        rho = np.abs(self._c) / np.sqrt(self._em * self._er + 1e-9)
        lag = int(np.argmax(rho))
        self.correlation = float(rho[lag])
        if self.correlation < self.THRESHOLD:
            self._candidate = None
            return
        agrees = self._candidate is not None and abs(lag - self._candidate) <= 2
        self._candidate = lag
        if agrees and (self.delay is None or abs(lag - self.delay) > 2):
            self.delay = lag


class ResidualSuppressor:
    """Non-linear processing after the linear filter: what is left of the echo is attenuated,
    near-end speech passes (a double-talk-aware spectral gain, as production cancellers have).

    20 ms sqrt-Hann windows every 10 ms (one frame of delay, as the Speex preprocessor it
    replaces). Once the delay is known the reference ``X`` is aligned with its echo, so the
    path left from ``X`` to the microphone ``Y`` is short and, per frequency bin, one complex
    factor: ``H = S_YX / S_XX``, cross- and auto-spectra averaged over ~100 ms of frames in
    which the reference has sound. Near-end speech is uncorrelated with the reference and does
    not bias ``S_YX`` (it only makes it noisier), so ``H`` holds through double talk. The echo
    the reference predicts is ``H·X``; the linear filter took ``Y - E`` away; what it missed,
    ``|H·X - (Y - E)|²``, plus ``MISMATCH`` of the predicted echo for the model's own error, is
    the residual echo expected in ``E``. A bin whose ``|E|²`` that explains is taken down (by up
    to ``floor_db``); a bin well above it is someone talking and keeps its level.

    Until the delay is known (the first far-end hops) the echo could come from any lag in the
    range: the expected echo is then the loudest reference spectrum of that range at 0 dB
    (the echo as loud as what was played: the cautious start of a production canceller). That
    initial state ends when the delay is found, or after ``INITIAL_S`` of far-end sound without
    one (no echo within reach: nothing to suppress).
    """

    SMOOTH = 0.9  # per frame with far-end sound: ~100 ms
    OVERESTIMATE = 2.0
    MISMATCH = 0.01  # -20 dB of the predicted echo
    INITIAL_S = 1.5
    INITIAL_ECHO = 0.25  # the loudest echo assumed before the delay is known: -6 dB of what was played

    def __init__(self, frame: int, max_delay: int, floor_db: float = -60.0) -> None:
        self.frame = frame
        n = 2 * frame
        self._window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n))
        bins = frame + 1
        self._sxx = np.zeros(bins)
        self._syx = np.zeros(bins, dtype=np.complex128)
        self._prev = {k: np.zeros(frame) for k in ("e", "y", "x", "raw")}
        self._tail = np.zeros(frame)
        self._floor = 10 ** (floor_db / 20)
        self._silence = frame * _SILENT_RMS**2
        self._recent = np.zeros((max_delay // frame + 3, bins))  # unaligned reference power spectra
        self.far_frames = 0
        """Frames in which the reference had sound."""
        self.initial_frames = round(self.INITIAL_S * 100)
        self.gain: Float = np.ones(bins)
        """The last frame's gain per bin (1: passed, ``floor``: suppressed)."""

    def reset(self) -> None:
        """The alignment changed: what was learnt about the echo path no longer holds."""
        self._sxx[:] = 0
        self._syx[:] = 0
        self._prev["x"][:] = 0

    def _spectrum(self, key: str, cur: Float) -> npt.NDArray[np.complex128]:
        spec = np.fft.rfft(np.concatenate((self._prev[key], cur)) * self._window)
        self._prev[key] = cur
        return spec

    def process(self, e: Float, x: Float | None, raw: Float, mic: Float) -> Float:
        """``e``: the linear filter's output frame for microphone frame ``mic``; ``x``: the
        reference frame aligned with its echo (``None`` while the delay is unknown); ``raw``: the
        reference frame as given. Returns the frame before ``e``, its residual echo suppressed."""
        spec_e = self._spectrum("e", e)
        spec_y = self._spectrum("y", mic)
        if float(raw @ raw) > self._silence:
            self.far_frames += 1
        initial = x is None and self.far_frames <= self.initial_frames
        if initial:  # the unaligned reference's recent spectra: only the initial state needs them
            self._recent[:-1] = self._recent[1:]
            self._recent[-1] = np.abs(self._spectrum("raw", raw)) ** 2
        echo: Float | None = None
        if x is not None:
            sound = float(x @ x) + float(self._prev["x"] @ self._prev["x"]) > self._silence
            spec_x = self._spectrum("x", x)
            if sound:
                a = self.SMOOTH
                self._sxx = a * self._sxx + (1 - a) * np.abs(spec_x) ** 2
                self._syx = a * self._syx + (1 - a) * spec_y * np.conj(spec_x)
            predicted = self._syx / (self._sxx + 1e-6) * spec_x
            missed = predicted - (spec_y - spec_e)
            echo = np.abs(missed) ** 2 + self.MISMATCH * np.abs(predicted) ** 2
        elif initial and self.far_frames:
            loudest = self._recent.max(axis=0)
            # a frame louder than any echo of what was played could be is someone talking (over
            # the reply, or with headphones and no echo at all): it passes whole
            if float(np.sum(np.abs(spec_y) ** 2)) <= self.OVERESTIMATE * self.INITIAL_ECHO * float(
                loudest.sum()
            ):
                echo = self.INITIAL_ECHO * loudest
        if echo is None:
            self.gain = np.ones(len(spec_e))
        else:
            power = np.abs(spec_e) ** 2 + 1e-6
            self.gain = np.clip(1.0 - self.OVERESTIMATE * echo / power, self._floor, 1.0)
        y = np.fft.irfft(spec_e * self.gain, 2 * self.frame) * self._window
        out = self._tail + y[: self.frame]
        self._tail = y[self.frame :]
        return np.asarray(out, dtype=np.float64)


class EchoCanceller:
    """Streaming echo canceller: ``process(mic, reference)`` → the mic with the reference's echo removed.

    Three stages, as in a production canceller (the WebRTC AEC3 kind):

    1. :class:`DelayEstimator`: the echo's delay behind the reference (up to ``filter_ms``), by
       cross-correlation, as soon as the reference has sound; the reference then reaches the
       filter that much later (less a 2 ms margin), so the filter only models the short path left;
    2. the Speex multi-delay adaptive filter (``libspeexdsp``), ``filter_ms`` long;
    3. :class:`ResidualSuppressor`: what the filter has not removed yet (on its own it needs
       about a second of far-end speech to converge, and the first words would come through)
       is attenuated where the reference explains it; near-end speech passes.

    ``align=False, suppress=False`` is the canceller as it was before this (Speex with the
    residual-echo suppressor of its preprocessor, the reference as given), kept for comparison
    (``benchmarks/bench_echo_reference.py``). Either way the output is ``LATENCY_MS`` late.
    """

    LATENCY_MS = 20
    """The fixed delay: one 10 ms frame buffered, and one in the suppressor (or preprocessor)."""

    def __init__(
        self, sample_rate: int, *, filter_ms: int = 100, align: bool = True, suppress: bool = True
    ) -> None:
        self._echo: Any = None  # set before anything can raise: __del__ closes what was made
        if sample_rate <= 0 or sample_rate % 100:
            raise ConfigError("sample_rate", sample_rate, "a positive rate in Hz, a multiple of 100")
        if not 10 <= filter_ms <= 1000:
            raise ConfigError("filter_ms", filter_ms, "10 to 1000 milliseconds")
        lib = _libspeexdsp()
        self._lib = lib
        self.sample_rate = sample_rate
        self.frame = sample_rate // 100  # 10 ms
        self.align = align
        self.suppress = suppress
        max_delay = sample_rate * filter_ms // 1000
        self._echo = lib.speex_echo_state_init(self.frame, max_delay)
        rate = ctypes.c_int(sample_rate)
        lib.speex_echo_ctl(self._echo, _SPEEX_ECHO_SET_SAMPLING_RATE, ctypes.byref(rate))
        self._pre: Any = None
        if not suppress:
            self._pre = lib.speex_preprocess_state_init(self.frame, sample_rate)
            on = ctypes.c_int(1)  # the residual-echo suppressor works inside the denoiser
            lib.speex_preprocess_ctl(self._pre, _SPEEX_PREPROCESS_SET_DENOISE, ctypes.byref(on))
            lib.speex_preprocess_ctl(self._pre, _SPEEX_PREPROCESS_SET_ECHO_STATE, ctypes.c_void_p(self._echo))
        self.delay = DelayEstimator(sample_rate, max_delay)
        self._margin = sample_rate // 500  # 2 ms: the filter starts a little before the echo does
        self.suppressor = ResidualSuppressor(self.frame, max_delay) if suppress else None
        self._ref_hist = np.zeros(max_delay + self.delay.hop + 2 * self.frame + 1)
        self._mic_hist = np.zeros(self.delay.hop + 1)
        self._frames = 0
        self.used_delay: int | None = None
        """The delay (samples) the reference is aligned by now (``None``: as given)."""
        self._mic = bytearray()
        self._ref = bytearray()
        self._out = _Fifo(self.frame)

    @property
    def latency_ms(self) -> int:
        return self.LATENCY_MS

    def process(self, mic: bytes, reference: bytes) -> bytes:
        """``mic`` and ``reference``: mono PCM16 of the same length; returns that many samples,
        ``LATENCY_MS`` later."""
        n = len(mic) // 2
        ref = bytes(reference[: n * 2]).ljust(n * 2, b"\x00")
        self._mic += mic
        self._ref += ref
        step = self.frame * 2
        while len(self._mic) >= step:
            near = np.frombuffer(bytes(self._mic[:step]), dtype="<i2")
            far = np.frombuffer(bytes(self._ref[:step]), dtype="<i2")
            del self._mic[:step], self._ref[:step]
            self._out.push(self._frame(near, far))
        return self._out.pop(n)

    def _frame(self, near: npt.NDArray[np.int16], far: npt.NDArray[np.int16]) -> bytes:
        f = self.frame
        hist = self._ref_hist
        hist[:-f] = hist[f:]
        hist[-f:] = far
        self._mic_hist[:-f] = self._mic_hist[f:]
        self._mic_hist[-f:] = near
        self._frames += 1
        if self.align and self._frames % 2 == 0:
            top = self.delay.max_delay + self.delay.hop + 1
            self.delay.update(self._mic_hist, hist[-top:])
        d = self.delay.delay if self.align else None
        if d != self.used_delay:  # a new alignment: the filter and the suppressor start again
            self._lib.speex_echo_state_reset(self._echo)
            if self.suppressor is not None:
                self.suppressor.reset()
            self.used_delay = d
        end = len(hist)
        shift = max(0, d - self._margin) if d is not None else 0
        far_al = np.clip(np.rint(hist[end - f - shift : end - shift]), -32768, 32767).astype(np.int16)
        if self.align and d is None:
            # No echo found within the filter's reach: nothing for the linear filter to model.
            # Fed the reference anyway, it adapts on near-end speech alone (double talk with no
            # echo, e.g. headphones) and then adds its wrong estimate into silence afterwards —
            # a voice-like residue that kept the VAD from ever hearing the user stop.
            far_al = np.zeros(f, dtype=np.int16)
        lib = self._lib
        c_near = (ctypes.c_int16 * f).from_buffer_copy(near.astype("<i2").tobytes())
        c_far = (ctypes.c_int16 * f).from_buffer_copy(far_al.astype("<i2").tobytes())
        c_out = (ctypes.c_int16 * f)()
        lib.speex_echo_cancellation(self._echo, c_near, c_far, c_out)
        if self.suppressor is None:
            lib.speex_preprocess_run(self._pre, c_out)
            return bytes(c_out)
        e = np.frombuffer(bytes(c_out), dtype="<i2").astype(np.float64)
        x = hist[end - f - d : end - d].copy() if d is not None else None
        y = self.suppressor.process(e, x, far.astype(np.float64), near.astype(np.float64))
        return bytes(np.clip(np.rint(y), -32768, 32767).astype("<i2").tobytes())

    def close(self) -> None:
        if self._echo is not None:
            if self._pre is not None:
                self._lib.speex_preprocess_state_destroy(self._pre)
            self._lib.speex_echo_state_destroy(self._echo)
            self._echo = None

    def __del__(self) -> None:
        self.close()


class Playout:
    """What the emulator's own speaker is playing, one sample per input sample (server reference).

    The reference follows the input: each input sample is paired with the reply sample playing
    then. When the client stops sending for a while (``speak()`` between questions,
    push-to-talk) the reply goes on playing at its end by the clock; :meth:`resume` keeps only
    what is still to play when the input comes again, so that the next words are not compared
    with a reply that has already ended (a canceller still converging took their first syllable
    down, and the recogniser missed the phrase).
    """

    def __init__(self) -> None:
        self._queue = bytearray()
        self._ends_ms: float | None = None  # when the reply queued ends by the clock (as sent)

    def sent(self, pcm16: bytes, rate: int | None = None, now_ms: float | None = None) -> None:
        """Assistant audio went out (at the input ``rate``, at ``now_ms``): it plays after what is queued."""
        self._queue += pcm16
        if rate and now_ms is not None:
            start = now_ms if self._ends_ms is None else max(self._ends_ms, now_ms)
            self._ends_ms = start + len(pcm16) / 2 * 1000.0 / rate

    def stop(self) -> None:
        """Playback stopped (truncation, output clear): nothing more is heard."""
        self._queue.clear()
        self._ends_ms = None

    def resume(self, now_ms: float, rate: int) -> None:
        """Input comes again after a pause: what played meanwhile was heard by no microphone."""
        if self._ends_ms is None:
            return
        keep = max(0, round((self._ends_ms - now_ms) * rate / 1000.0)) * 2
        if len(self._queue) > keep:
            del self._queue[: len(self._queue) - keep]

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

    canceller_options: ClassVar[dict[str, Any]] = {}
    """Keyword arguments for every :class:`EchoCanceller` made from now on, in this process: the
    benchmark's ``{"align": False, "suppress": False}`` runs the canceller as it was before the
    delay estimate and the residual suppressor, side by side with the current one."""

    def __init__(self) -> None:
        self.playout = Playout()
        self._denoiser: Denoiser | None = None
        self._canceller: EchoCanceller | None = None

    def delay_ms(self, session: Any) -> int:
        """How late the processed audio is (fixed once running): the canceller's ``LATENCY_MS``
        once it runs, the denoiser's ``LATENCY_MS`` plus RNNoise's 20 ms with noise suppression."""
        delay = 0
        if session.get("input_audio_echo_cancellation") and self._canceller is not None:
            delay += self._canceller.LATENCY_MS
        if session.get("input_audio_noise_reduction"):
            delay += LATENCY_MS + 20
        return delay

    def server_reference(self, session: Any) -> bool:
        ec = session.get("input_audio_echo_cancellation")
        return bool(ec) and ec.get("reference_source", "server") == "server"

    def sent(self, session: Any, pcm16: bytes, output_rate: int, now_ms: float | None = None) -> None:
        """The emulator sent assistant audio (PCM16 at ``output_rate``, at ``now_ms``): queue it as the reference."""
        if not self.server_reference(session):
            return
        from ..audio.format import resample

        rate = int(session["input_audio_sampling_rate"])
        self.playout.sent(resample(pcm16, output_rate, rate) if output_rate != rate else pcm16, rate, now_ms)

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
                self._canceller = EchoCanceller(rate, **self.canceller_options)
            if self._canceller is not None and self._canceller.sample_rate != rate:
                self._canceller = EchoCanceller(rate, **self.canceller_options)
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
