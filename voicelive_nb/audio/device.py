"""Real microphones and speakers through sounddevice (PortAudio).

This is the only module that imports ``sounddevice`` (lazily, when a device is listed or
opened) and the only code that runs on PortAudio's callback thread. Importing it works
without sounddevice or the PortAudio library; the error comes when a device is opened and
says what to install.

- :class:`MicrophoneSource` (an :class:`~voicelive_nb.audio.base.AudioSource`): the input
  callback copies each block into ``bytes`` and hands it to the event loop with
  ``loop.call_soon_threadsafe``; ``frames()`` resamples to the session rate and re-chunks.
- :class:`SpeakerSink` (an :class:`~voicelive_nb.audio.base.AudioSink`): ``write`` resamples
  on the caller's thread into a preallocated :class:`~voicelive_nb.audio.buffers.PlayoutBuffer`;
  the output callback only copies from it into PortAudio's buffer (silence when empty).
- Client-reference echo cancellation: the output callback also keeps what it put out in a
  :class:`~voicelive_nb.audio.buffers.ReferenceRing` at its ``outputBufferDacTime``; a
  microphone given that speaker (``MicrophoneSource(reference=speaker)``) passes each block's
  ``inputBufferAdcTime`` along, and :meth:`MicrophoneSource.reference_frames` looks the same
  stretch of time up in the ring on the event loop: stereo frames, channel 0 the microphone,
  channel 1 what the speaker was playing when it was captured. Both streams' times are
  PortAudio's one stream clock, so no clock is translated.
- :func:`list_devices`, :func:`find_device`, :func:`rescan`, :func:`audio_available`.

Callbacks allocate nothing but the one ``bytes`` copy of an input block, never log, and hold
one lock only for the copy out of the playout ring.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np

from ..errors import AudioDeviceUnavailable, AudioError, ConfigError
from .buffers import PlayoutBuffer, ReferenceRing, interleave
from .format import StreamResampler, rms_dbfs

__all__ = [
    "DEFAULT_INPUT_LATENCY_S",
    "DEFAULT_OUTPUT_LATENCY_S",
    "DeviceInfo",
    "MicrophoneSource",
    "SpeakerSink",
    "audio_available",
    "find_device",
    "list_devices",
    "rescan",
]

Kind = Literal["input", "output"]

#: Output latency asked of PortAudio (its buffer; PortAudio rounds it to whole blocks: 0.3 s
#: gives 0.32 s). Measured with benchmarks/bench_audio.py --latency-sweep on a 2-core machine,
#: 5 s of tone per run, 2-4 CPU burner processes plus a thread holding the GIL (a busy notebook
#: cell), on a machine shared with other jobs: 0.05 s glitched in most runs, 0.1 s was clean in
#: 33 of 43 runs, 0.2 s in 35 of 39, 0.3 s in all 25. Lower it for snappier barge-in on an idle
#: machine: after ``clear()`` the speaker falls silent once this buffer has played out.
DEFAULT_OUTPUT_LATENCY_S = 0.3
#: How much longer than its latency a new output stream may take to settle into real-time
#: callbacks before ``SpeakerSink.open`` returns anyway (measured: 1-15 ms on PulseAudio).
PREFILL_GRACE_S = 0.5
#: Input latency asked of PortAudio (the size of its capture buffer, not a delay: blocks
#: are delivered every ``block_ms``); large enough not to overflow under load.
DEFAULT_INPUT_LATENCY_S = 0.1
#: Seconds of speaker output kept for the echo reference: the microphone looks its capture time
#: up there after the block crossed the loop (output latency + queueing; 4 s is ample).
REFERENCE_KEEP_S = 4.0

_PORTAUDIO_HINT = "install libportaudio2 (apt-get install libportaudio2)"
_PIP_HINT = "install it with: pip install 'voicelive_nb[audio]'"
_ALTERNATIVE = {"microphone": "use WavSource / the browser microphone", "speaker": "use WavSink / BufferSink"}

_sd: ModuleType | None = None
#: Objects with an open PortAudio stream (rescan() must not pull PortAudio from under them).
_open_streams: weakref.WeakSet[Any] = weakref.WeakSet()


def _sounddevice(feature: str = "audio devices") -> ModuleType:
    """Import sounddevice once; translate a missing package or library into AudioDeviceUnavailable."""
    global _sd
    if _sd is not None:
        return _sd
    alternative = _ALTERNATIVE.get(feature, "use WavSource / WavSink")
    try:
        import sounddevice
    except ImportError as exc:
        raise AudioDeviceUnavailable(
            f"{feature} not available: the sounddevice package is not installed; {_PIP_HINT} or {alternative}"
        ) from exc
    except OSError as exc:  # sounddevice raises OSError('PortAudio library not found')
        raise AudioDeviceUnavailable(
            f"{feature} not available: PortAudio library not found ({exc}); {_PORTAUDIO_HINT} or {alternative}"
        ) from exc
    module: ModuleType = sounddevice
    _sd = module
    return module


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device."""

    index: int
    name: str
    hostapi: str
    inputs: int
    """Maximum input channels (0: not a microphone)."""
    outputs: int
    """Maximum output channels (0: not a speaker)."""
    default_samplerate: float
    is_default_input: bool
    is_default_output: bool

    def __str__(self) -> str:
        marks = "".join(m for m, on in (("<", self.is_default_input), (">", self.is_default_output)) if on)
        return f"{self.index} {self.name!r} ({self.hostapi}, {self.inputs} in, {self.outputs} out){marks}"


def _default_index(sd: ModuleType, kind: Kind) -> int:
    """PortAudio's default device of ``kind`` (-1 when there is none)."""
    try:
        info = sd.query_devices(kind=kind)
    except sd.PortAudioError:
        return -1
    except ValueError:
        return -1
    return int(info["index"])


def list_devices() -> list[DeviceInfo]:
    """Every device PortAudio sees (raises :class:`AudioDeviceUnavailable` without PortAudio)."""
    sd = _sounddevice()
    hostapis = [str(h["name"]) for h in sd.query_hostapis()]
    default_in = _default_index(sd, "input")
    default_out = _default_index(sd, "output")
    out = []
    for dev in sd.query_devices():
        index = int(dev["index"])
        out.append(
            DeviceInfo(
                index=index,
                name=str(dev["name"]),
                hostapi=hostapis[dev["hostapi"]] if 0 <= dev["hostapi"] < len(hostapis) else "?",
                inputs=int(dev["max_input_channels"]),
                outputs=int(dev["max_output_channels"]),
                default_samplerate=float(dev["default_samplerate"]),
                is_default_input=index == default_in,
                is_default_output=index == default_out,
            )
        )
    return out


def _channels(info: DeviceInfo, kind: Kind) -> int:
    return info.inputs if kind == "input" else info.outputs


def _describe(devices: list[DeviceInfo], kind: Kind) -> str:
    usable = [d for d in devices if _channels(d, kind) > 0]
    if not devices:
        return "PortAudio sees no devices"
    if not usable:
        return f"PortAudio sees only {', '.join(repr(d.name) for d in devices)}, none with {kind} channels"
    return f"{kind} devices: " + ", ".join(f"{d.index} {d.name!r}" for d in usable)


def _no_device(kind: Kind, devices: list[DeviceInfo]) -> AudioDeviceUnavailable:
    instead = "WavSource / the browser microphone" if kind == "input" else "WavSink / BufferSink"
    return AudioDeviceUnavailable(
        f"no {kind} device found ({_describe(devices, kind)}); "
        f"start a sound server (PulseAudio/PipeWire) or use {instead}"
    )


def find_device(spec: int | str | None, kind: Kind) -> int:
    """Resolve a device to its PortAudio index.

    ``None`` is the default device of ``kind``; an ``int`` (or a string of digits) is an index;
    any other string matches a device name case-insensitively (an exact name wins, otherwise
    a unique substring among the devices with ``kind`` channels). Raises
    :class:`AudioDeviceUnavailable` naming the available devices when nothing fits.
    """
    if kind not in ("input", "output"):
        raise ConfigError("kind", kind, "'input' or 'output'")
    devices = list_devices()
    usable = [d for d in devices if _channels(d, kind) > 0]
    if spec is None:
        for d in usable:
            if d.is_default_input if kind == "input" else d.is_default_output:
                return d.index
        if usable:
            return usable[0].index
        raise _no_device(kind, devices)
    if isinstance(spec, str) and spec.strip().isdigit():
        spec = int(spec.strip())
    if isinstance(spec, int) and not isinstance(spec, bool):
        for d in devices:
            if d.index == spec:
                if _channels(d, kind) == 0:
                    raise AudioDeviceUnavailable(
                        f"device {spec} ({d.name!r}) has no {kind} channels; {_describe(devices, kind)}"
                    )
                return d.index
        raise AudioDeviceUnavailable(f"no {kind} device with index {spec}; {_describe(devices, kind)}")
    if not isinstance(spec, str):
        raise ConfigError("device", spec, "a device index, a name (or part of one), or None for the default")
    wanted = spec.strip().lower()
    exact = [d for d in usable if d.name.lower() == wanted]
    if exact:
        return exact[0].index
    matches = [d for d in usable if wanted in d.name.lower()]
    if len(matches) == 1:
        return matches[0].index
    if matches:
        names = ", ".join(f"{d.index} {d.name!r}" for d in matches)
        raise AudioDeviceUnavailable(
            f"{kind} device name {spec!r} is ambiguous: it matches {names}; give the index or a longer name"
        )
    raise AudioDeviceUnavailable(f"no {kind} device matches {spec!r}; {_describe(devices, kind)}")


def rescan() -> None:
    """Re-initialise PortAudio so devices that appeared after sounddevice was imported are seen.

    PortAudio enumerates devices once, at initialisation. Streams must be closed first
    (re-initialising would pull PortAudio from under them).
    """
    sd = _sounddevice()
    if len(_open_streams):
        raise AudioError(
            f"cannot rescan audio devices while {len(_open_streams)} stream(s) are open; close them first"
        )
    sd._terminate()
    sd._initialize()


def audio_available() -> tuple[bool, str]:
    """Whether a microphone and a speaker can be opened, and why not (or what was found)."""
    try:
        devices = list_devices()
    except AudioDeviceUnavailable as exc:
        return False, str(exc)
    inputs = [d for d in devices if d.inputs > 0]
    outputs = [d for d in devices if d.outputs > 0]
    if not inputs and not outputs:
        return False, (
            "no audio devices found (PortAudio sees none); start a sound server (PulseAudio/PipeWire) "
            "or use WavSource / WavSink / the browser microphone"
        )
    if not inputs:
        return False, str(_no_device("input", devices))
    if not outputs:
        return False, str(_no_device("output", devices))
    return True, f"{len(inputs)} input and {len(outputs)} output devices"


def _device_info(index: int) -> DeviceInfo:
    for d in list_devices():
        if d.index == index:
            return d
    raise AudioDeviceUnavailable(f"audio device {index} disappeared; call rescan() and pick a device again")


def _stream_rate(sd: ModuleType, device: int, kind: Kind, fixed: int | None, wanted: int) -> int:
    """The rate to open the device at: ``fixed`` if given, else the session rate when the
    device accepts it (the sound server resamples then), else the device's default rate."""
    if fixed is not None:
        return fixed
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    try:
        check(device=device, channels=1, dtype="int16", samplerate=wanted)
        return wanted
    except Exception:
        return int(_device_info(device).default_samplerate)


def _check_rate(name: str, rate: int | None) -> None:
    if rate is not None and (not isinstance(rate, int) or rate <= 0):
        raise ConfigError(name, rate, "a positive rate in Hz such as 24000, or None")


def _close_stream(stream: Any) -> None:
    """Abort (do not wait for buffers) and close; errors at this point are not actionable."""
    try:
        stream.abort(ignore_errors=True)
    finally:
        stream.close(ignore_errors=True)


# --- microphone ------------------------------------------------------------------------------


class MicrophoneSource:
    """A microphone as an :class:`~voicelive_nb.audio.base.AudioSource` (PCM16 mono frames).

    The stream opens when ``frames()`` starts iterating (it needs the running event loop)
    and closes when the iterator ends or :meth:`aclose` is called. ``sample_rate`` fixes the
    device rate; by default the device is opened at the session rate when it accepts it,
    otherwise at its default rate, and ``frames`` resamples with soxr.

    Hand-off: the PortAudio callback copies the block into ``bytes`` and calls
    ``loop.call_soon_threadsafe``; on the loop the block joins a queue of at most
    ``max_queue_s`` of audio. When the consumer falls further behind, the *oldest* block is
    dropped and counted in ``overruns`` (memory stays bounded, the audio stays recent).

    Counters: ``overruns`` (blocks dropped from the queue), ``input_overflows`` (PortAudio
    reported lost input), ``blocks`` (blocks received), ``frames_yielded``. ``muted = True``
    yields silence of the same size (the session timeline stays continuous).
    ``level_dbfs`` is the level of the last block taken from the queue; ``block_time`` the
    ``time.monotonic()`` at which the callback delivered it.
    """

    def __init__(
        self,
        device: int | str | None = None,
        *,
        sample_rate: int | None = None,
        block_ms: int = 20,
        max_queue_s: float = 2.0,
        latency_s: float = DEFAULT_INPUT_LATENCY_S,
        reference: SpeakerSink | None = None,
        reference_delay_ms: float = 0.0,
    ) -> None:
        _check_rate("sample_rate", sample_rate)
        if not isinstance(reference_delay_ms, (int, float)) or not -500 <= reference_delay_ms <= 2000:
            raise ConfigError("reference_delay_ms", reference_delay_ms, "-500 to 2000 milliseconds")
        if not isinstance(block_ms, int) or block_ms <= 0:
            raise ConfigError("block_ms", block_ms, "a positive number of milliseconds such as 20")
        if reference is not None and not isinstance(reference, SpeakerSink):
            raise ConfigError("reference", reference, "a SpeakerSink (the speaker whose output is the echo)")
        if max_queue_s <= 0:
            raise ConfigError("max_queue_s", max_queue_s, "a positive number of seconds")
        self._sd = _sounddevice("microphone")
        try:
            self.device = find_device(device, "input")
        except AudioDeviceUnavailable as exc:
            raise AudioDeviceUnavailable(f"microphone not available: {exc}") from None
        self.device_name = _device_info(self.device).name
        self._fixed_rate = sample_rate
        self.block_ms = block_ms
        self.max_queue_s = max_queue_s
        #: Keep the stream capturing (into the bounded queue) between ``frames()`` iterators,
        #: so a reconnecting session loses nothing of what was said meanwhile (up to
        #: ``max_queue_s``). Closed only by :meth:`aclose`.
        self.persistent = False
        self.latency_s = latency_s
        self.device_rate: int | None = None
        """The rate the device was opened at (``None`` until ``frames()`` starts)."""
        self.muted = False
        self.overruns = 0
        self.input_overflows = 0
        self.blocks = 0
        self.frames_yielded = 0
        self.block_time = 0.0
        self._stream: Any = None
        self._queue: asyncio.Queue[tuple[bytes, float, float, float] | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reference: SpeakerSink | None = reference
        #: Channel 1 is delayed by this much: for an output heard later than PortAudio says
        #: (a Bluetooth speaker adds 100-200 ms); 0 for wired and virtual devices.
        self.reference_delay_ms = float(reference_delay_ms)
        self._lost_input = False  # set by the callback on an overflow: the reference re-anchors
        self._last_block = b""
        self._closed = False
        self._iterating = False
        self._close_lock = threading.Lock()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("streaming" if self._stream is not None else "idle")
        return (
            f"MicrophoneSource({self.device} {self.device_name!r}, {self.device_rate or 'auto'} Hz, {state})"
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def attach_reference(self, speaker: SpeakerSink | None) -> None:
        """Take the echo reference from ``speaker`` (``None``: no reference any more)."""
        if speaker is not None and not isinstance(speaker, SpeakerSink):
            raise ConfigError("reference", speaker, "a SpeakerSink (the speaker whose output is the echo)")
        self._reference = speaker

    @property
    def reference_available(self) -> bool:
        """Whether :meth:`reference_frames` can give channel 1 (a speaker is attached)."""
        return self._reference is not None

    @property
    def reference_problem(self) -> str | None:
        return (
            None
            if self._reference is not None
            else "has no speaker attached: MicrophoneSource(reference=speaker)"
        )

    @property
    def level_dbfs(self) -> float:
        """RMS level of the last block in dBFS (``-inf`` for silence or before any audio)."""
        return rms_dbfs(self._last_block)

    @property
    def queued(self) -> int:
        """Blocks waiting in the queue."""
        return self._queue.qsize() if self._queue is not None else 0

    # PortAudio thread: copy, count, hand off. Nothing else.
    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        if status and status.input_overflow:
            self.input_overflows += 1
            self._lost_input = True
        block = bytes(indata)
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(
                self._put, block, time.monotonic(), time_info.inputBufferAdcTime, time_info.currentTime
            )
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass

    # Event-loop thread.
    def _put(self, block: bytes, t: float, adc_time: float = 0.0, now: float = 0.0) -> None:
        q = self._queue
        if q is None:
            return
        self.blocks += 1
        if q.full():
            q.get_nowait()
            self.overruns += 1
        q.put_nowait((block, t, adc_time, now))

    def _open(self, loop: asyncio.AbstractEventLoop, sample_rate: int) -> None:
        sd = self._sd
        rate = _stream_rate(sd, self.device, "input", self._fixed_rate, sample_rate)
        block_frames = max(1, rate * self.block_ms // 1000)
        self._queue = asyncio.Queue(maxsize=max(1, math.ceil(self.max_queue_s * 1000 / self.block_ms)))
        self._loop = loop
        try:
            stream = sd.RawInputStream(
                samplerate=rate,
                blocksize=block_frames,
                device=self.device,
                channels=1,
                dtype="int16",
                latency=self.latency_s,
                callback=self._callback,
            )
        except (sd.PortAudioError, ValueError) as exc:
            self._loop = None
            raise AudioDeviceUnavailable(
                f"microphone not available: cannot open input device {self.device} {self.device_name!r} "
                f"at {rate} Hz ({exc}); pick another with list_devices() or use WavSource"
            ) from exc
        try:
            stream.start()
        except sd.PortAudioError as exc:
            _close_stream(stream)
            self._loop = None
            raise AudioDeviceUnavailable(
                f"microphone not available: cannot start input device {self.device_name!r} ({exc})"
            ) from exc
        self._stream = stream
        self.device_rate = rate
        _open_streams.add(self)

    def _close(self) -> None:
        with self._close_lock:  # aclose() may run on another thread than the frames() loop
            stream, self._stream = self._stream, None
            self._loop = None
        if stream is not None:
            _open_streams.discard(self)
            _close_stream(stream)

    @staticmethod
    def _wake(q: asyncio.Queue[tuple[bytes, float, float, float] | None]) -> None:
        if q.full():
            q.get_nowait()
        q.put_nowait(None)

    def frames(self, sample_rate: int, frame_ms: int = 20) -> AsyncIterator[bytes]:
        """Yield PCM16 mono frames of exactly ``frame_ms`` at ``sample_rate`` until closed."""
        _check_rate("sample_rate", sample_rate)
        frame_samples = sample_rate * frame_ms // 1000
        if frame_samples <= 0:
            raise ConfigError("frame_ms", frame_ms, f"a frame length that holds samples at {sample_rate} Hz")
        if self._closed:
            raise AudioError("microphone source is closed")
        if self._iterating:
            raise AudioError("microphone source is already streaming; one frames() iterator at a time")
        return self._frames(sample_rate, frame_samples * 2)

    def reference_frames(self, sample_rate: int, frame_ms: int = 20) -> AsyncIterator[bytes]:
        """Stereo frames of ``frame_ms``: channel 0 the microphone, channel 1 what the attached
        speaker was playing when each sample was captured (client-reference echo cancellation)."""
        if self._reference is None:
            raise AudioError(
                "microphone has no echo reference: attach its speaker with MicrophoneSource(reference=speaker)"
            )
        frame_samples = sample_rate * frame_ms // 1000
        if frame_samples <= 0:
            raise ConfigError("frame_ms", frame_ms, f"a frame length that holds samples at {sample_rate} Hz")
        if self._closed:
            raise AudioError("microphone source is closed")
        if self._iterating:
            raise AudioError("microphone source is already streaming; one frames() iterator at a time")
        return self._frames(sample_rate, frame_samples * 2, stereo=True)

    def _reference_block(self, samples: int, adc_time: float, now: float) -> bytes:
        """What the speaker played over the ``samples`` captured from ``adc_time`` (silence if nothing)."""
        speaker = self._reference
        assert self.device_rate is not None
        if adc_time <= 0:  # a host API without capture times: the block ended about now
            adc_time = now - samples / self.device_rate
        if speaker is None:
            return bytes(2 * samples)
        if self._lost_input:
            self._lost_input = False
            speaker.reanchor_reference()
        return speaker.reference_at(adc_time - self.reference_delay_ms / 1000, samples, self.device_rate)

    async def _frames(self, sample_rate: int, frame_bytes: int, stereo: bool = False) -> AsyncIterator[bytes]:
        if self._iterating:
            raise AudioError("microphone source is already streaming; one frames() iterator at a time")
        if self._closed:
            return
        self._iterating = True
        try:
            loop = asyncio.get_running_loop()
            if self._stream is None or self._loop is not loop:
                self._close()
                self._open(loop, sample_rate)
            assert self._queue is not None and self.device_rate is not None
            q = self._queue
            same = self.device_rate == sample_rate
            resampler = None if same else StreamResampler(self.device_rate, sample_rate)
            ref_resampler = None if same or not stereo else StreamResampler(self.device_rate, sample_rate)
            silence = bytes(2 * frame_bytes if stereo else frame_bytes)
            pending = bytearray()
            pending_ref = bytearray()
            while not self._closed:
                item = await q.get()
                if item is None:
                    break
                block, self.block_time, adc_time, now = item
                self._last_block = block
                pending += resampler.process(block) if resampler is not None else block
                if stereo:
                    ref = self._reference_block(len(block) // 2, adc_time, now)
                    pending_ref += ref_resampler.process(ref) if ref_resampler is not None else ref
                while len(pending) >= frame_bytes and (not stereo or len(pending_ref) >= frame_bytes):
                    frame = bytes(pending[:frame_bytes])
                    del pending[:frame_bytes]
                    if stereo:
                        mic = np.frombuffer(frame, dtype="<i2")
                        ref_frame = np.frombuffer(bytes(pending_ref[:frame_bytes]), dtype="<i2")
                        del pending_ref[:frame_bytes]
                        frame = interleave(mic, ref_frame)
                    self.frames_yielded += 1
                    yield silence if self.muted else frame
        finally:
            self._iterating = False
            if not self.persistent or self._closed:
                self._close()

    async def aclose(self) -> None:
        """Stop and close the stream (idempotent); a running ``frames()`` iterator ends."""
        if self._closed:
            return
        self._closed = True
        q, loop = self._queue, self._loop
        self._close()
        if q is None:
            return
        if loop is None or loop is asyncio.get_running_loop():
            self._wake(q)
        else:  # frames() runs on another loop (another thread): wake it there
            try:
                loop.call_soon_threadsafe(self._wake, q)
            except RuntimeError:  # that loop is closed already
                pass

    async def __aenter__(self) -> MicrophoneSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


# --- speaker ---------------------------------------------------------------------------------


class SpeakerSink:
    """A speaker as an :class:`~voicelive_nb.audio.base.AudioSink`.

    ``open(sample_rate)`` opens the output stream (at ``sample_rate`` of the constructor, or
    the session rate when the device accepts it, or the device's default rate), starts it and
    returns once the device has taken its initial buffer of silence (a few ms), so that the
    first delta is not pulled out faster than real time.
    ``write`` resamples on the caller's thread and queues into a preallocated playout ring of
    ``buffer_s``; the PortAudio callback only copies from the ring (silence when empty).

    Jitter buffer: after silence, playback starts once ``jitter_ms`` are queued, or at once
    when :meth:`end_of_item` says no more audio is coming (short replies still play). A
    ring that runs dry while more audio is expected counts one ``underrun`` and waits for
    ``jitter_ms`` again.

    :meth:`clear` (barge-in) empties the ring so the next callback plays silence;
    ``played_ms(item_id)`` is exactly what was handed to the device of that item.
    ``overruns`` counts writes that did not fit in the ring; ``output_underflows`` the
    callbacks where PortAudio reported an output underflow.
    """

    def __init__(
        self,
        device: int | str | None = None,
        *,
        sample_rate: int | None = None,
        latency_s: float = DEFAULT_OUTPUT_LATENCY_S,
        buffer_s: float = 30.0,
        jitter_ms: int = 60,
        block_ms: int = 20,
    ) -> None:
        _check_rate("sample_rate", sample_rate)
        if buffer_s <= 0:
            raise ConfigError("buffer_s", buffer_s, "a positive number of seconds")
        if jitter_ms < 0:
            raise ConfigError("jitter_ms", jitter_ms, "milliseconds, 0 or more")
        if not isinstance(block_ms, int) or block_ms <= 0:
            raise ConfigError("block_ms", block_ms, "a positive number of milliseconds such as 20")
        self._sd = _sounddevice("speaker")
        try:
            self.device = find_device(device, "output")
        except AudioDeviceUnavailable as exc:
            raise AudioDeviceUnavailable(f"speaker not available: {exc}") from None
        self.device_name = _device_info(self.device).name
        self._fixed_rate = sample_rate
        self.latency_s = latency_s
        self.buffer_s = buffer_s
        self.jitter_ms = jitter_ms
        self.block_ms = block_ms
        self.sample_rate: int | None = None
        """The session rate given to ``open``."""
        self.device_rate: int | None = None
        self.underruns = 0
        self.output_underflows = 0
        self.callbacks = 0
        self.clears = 0
        self._lock = threading.Lock()
        self._buffer: PlayoutBuffer | None = None
        self._reference: ReferenceRing | None = None
        self._latency_guess = latency_s
        self._resampler: StreamResampler | None = None
        self._resampler_item: str | None = None
        self._jitter_frames = 0
        self._gate = False  # the callback plays from the ring only while True
        self._ending = False  # end_of_item after the last write: running dry is the end, not an underrun
        # set by the callback once the device paces it: a new stream first takes its whole buffer
        # at once (PulseAudio: 20 blocks in ~1-15 ms), which would drain a just-queued delta
        self._paced = threading.Event()
        self._last_callback = 0.0
        self._stream: Any = None
        self._closed = False

    @property
    def output_latency_s(self) -> float | None:
        """The output latency PortAudio reports for the open stream (``None`` when not open)."""
        stream = self._stream
        return float(stream.latency) if stream is not None else None

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("open" if self._stream is not None else "not open")
        return f"SpeakerSink({self.device} {self.device_name!r}, {self.device_rate or 'auto'} Hz, {state})"

    # PortAudio thread: copy from the ring under a short lock. Nothing else.
    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        if status and status.output_underflow:
            self.output_underflows += 1
        self.callbacks += 1
        if not self._paced.is_set():
            now = time.monotonic()
            if self.callbacks > 1 and now - self._last_callback > self.block_ms / 2000:
                self._paced.set()
            self._last_callback = now
        with self._lock:
            buf = self._buffer
            if buf is None or not self._gate:
                outdata.fill(0)
            elif buf.read_into(outdata) < frames:
                self._gate = False
                if not self._ending:
                    self.underruns += 1
            ref = self._reference
            if ref is not None:
                if status and status.output_underflow:
                    ref.restart_output()
                dac = time_info.outputBufferDacTime
                ref.write(outdata, dac if dac > 0 else time_info.currentTime + self._latency_guess)

    def open(self, sample_rate: int) -> None:
        """Open and start the output stream for PCM16 mono audio at ``sample_rate``."""
        _check_rate("sample_rate", sample_rate)
        if self._closed:
            raise AudioError("speaker sink is closed")
        if self._stream is not None:
            if sample_rate != self.sample_rate:
                raise AudioError(f"speaker already open at {self.sample_rate} Hz, not {sample_rate} Hz")
            return
        sd = self._sd
        rate = _stream_rate(sd, self.device, "output", self._fixed_rate, sample_rate)
        with self._lock:
            self._buffer = PlayoutBuffer(rate, max(1, round(self.buffer_s * rate)))
            self._reference = ReferenceRing(rate, round(REFERENCE_KEEP_S * rate))
            self._jitter_frames = rate * self.jitter_ms // 1000
            self._gate = False
        self._resampler = StreamResampler(sample_rate, rate) if rate != sample_rate else None
        try:
            stream = sd.OutputStream(
                samplerate=rate,
                blocksize=max(1, rate * self.block_ms // 1000),
                device=self.device,
                channels=1,
                dtype="int16",
                latency=self.latency_s,
                callback=self._callback,
            )
        except (sd.PortAudioError, ValueError) as exc:
            raise AudioDeviceUnavailable(
                f"speaker not available: cannot open output device {self.device} {self.device_name!r} "
                f"at {rate} Hz ({exc}); pick another with list_devices() or use WavSink"
            ) from exc
        try:
            stream.start()
        except sd.PortAudioError as exc:
            _close_stream(stream)
            raise AudioDeviceUnavailable(
                f"speaker not available: cannot start output device {self.device_name!r} ({exc})"
            ) from exc
        self._stream = stream
        # open returns once the device has taken its initial buffer (of silence): audio written
        # during that prefill would be pulled faster than real time and run dry mid-reply
        self._paced.wait(timeout=float(stream.latency) + PREFILL_GRACE_S)
        self._latency_guess = float(stream.latency)
        self.sample_rate = sample_rate
        self.device_rate = rate
        _open_streams.add(self)

    def _require_buffer(self) -> PlayoutBuffer:
        if self._closed:
            raise AudioError("speaker sink is closed")
        if self._buffer is None:
            raise AudioError("speaker sink is not open; call open(sample_rate) first")
        return self._buffer

    def _queue(self, buf: PlayoutBuffer, item_id: str, data: bytes) -> None:
        samples = np.frombuffer(data, dtype="<i2")
        with self._lock:
            buf.write(item_id, samples)
            if not self._gate and (self._ending or buf.available >= self._jitter_frames) and buf.available:
                self._gate = True

    def write(self, item_id: str, pcm16: bytes) -> None:
        """Queue audio of ``item_id`` (resampled here, on the caller's thread); never blocks."""
        buf = self._require_buffer()
        if len(pcm16) % 2:
            raise AudioError(f"pcm16 audio must have an even number of bytes, got {len(pcm16)}")
        data = pcm16
        if self._resampler is not None:
            if self._resampler_item is not None and self._resampler_item != item_id:
                tail = self._resampler.flush()
                if tail:
                    self._queue(buf, self._resampler_item, tail)
            self._resampler_item = item_id
            data = self._resampler.process(pcm16)
        self._ending = False
        self._queue(buf, item_id, data)

    def end_of_item(self, item_id: str) -> None:
        """No more audio of ``item_id`` is coming: play what is queued even if below ``jitter_ms``."""
        buf = self._require_buffer()
        if self._resampler is not None and self._resampler_item == item_id:
            tail = self._resampler.flush()
            self._resampler_item = None
            if tail:
                self._queue(buf, item_id, tail)
        with self._lock:
            self._ending = True
            if buf.available:
                self._gate = True

    def clear(self) -> None:
        """Drop everything queued (barge-in): the next callback plays silence."""
        buf = self._buffer
        if buf is None:
            return
        with self._lock:
            buf.clear()
            self._gate = False
            self._ending = False
            self.clears += 1
        if self._resampler is not None:
            self._resampler.reset()
            self._resampler_item = None

    def played_ms(self, item_id: str) -> int:
        """Milliseconds of ``item_id`` handed to the device so far (exact, whole ms)."""
        buf = self._buffer
        if buf is None:
            return 0
        with self._lock:
            return buf.played_ms(item_id)

    def reference_at(self, t: float, samples: int, rate: int) -> bytes:
        """PCM16 mono: what this speaker played over ``samples`` at ``rate`` from stream time
        ``t`` (a microphone's ``inputBufferAdcTime``); silence where it played nothing or is not open."""
        ring = self._reference
        if ring is None:
            return bytes(2 * samples)
        if rate == ring.sample_rate:
            out = np.zeros(samples, dtype=np.int16)
            with self._lock:
                ring.read_into(out, t)
            return out.astype("<i2").tobytes()
        held = max(1, round(samples * ring.sample_rate / rate))
        raw = np.zeros(held, dtype=np.int16)
        with self._lock:
            ring.read_into(raw, t)
        x = np.interp(np.arange(samples) * (held / samples), np.arange(held), raw.astype(np.float64))
        return bytes(np.rint(x).astype("<i2").tobytes())

    def reanchor_reference(self) -> None:
        """The microphone lost input: place its next reads by their capture times again."""
        ring = self._reference
        if ring is not None:
            with self._lock:
                ring.reanchor()

    @property
    def reference_resyncs(self) -> tuple[int, int]:
        """Jumps in the reference timeline: ``(output blocks, microphone reads)`` that did not continue the last."""
        ring = self._reference
        return (ring.resyncs, ring.read_resyncs) if ring is not None else (0, 0)

    def queued_ms(self) -> int:
        """Audio written and not yet handed to the device."""
        buf = self._buffer
        if buf is None:
            return 0
        with self._lock:
            return buf.available * 1000 // buf.sample_rate

    @property
    def playing(self) -> bool:
        """Whether the callback is currently playing queued audio."""
        return self._gate

    @property
    def current_item(self) -> str | None:
        """The item whose audio plays next (``None`` when nothing is queued)."""
        buf = self._buffer
        if buf is None:
            return None
        with self._lock:
            return buf.current_item

    @property
    def overruns(self) -> int:
        """Writes that did not fit entirely into the playout ring (the excess was dropped)."""
        return self._buffer.ring.overruns if self._buffer is not None else 0

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop and close the stream at once (idempotent); queued audio is dropped."""
        if self._closed:
            return
        self._closed = True
        stream, self._stream = self._stream, None
        if stream is not None:
            _open_streams.discard(self)
            _close_stream(stream)

    def __enter__(self) -> SpeakerSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
