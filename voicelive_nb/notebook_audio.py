"""The audio devices of a :class:`~voicelive_nb.notebook_session.NotebookSession`.

One microphone and one speaker serve every connection of a notebook session, however many
reconnects and rollovers it goes through. :class:`SessionAudio` owns them: it resolves the
``mic=`` / ``speaker=`` specs to devices (or to nothing, or to an in-memory sink), attaches the
speaker as the microphone's echo reference, and — while the session runs — reads the
microphone once (:class:`MicHub`) and hands each frame to exactly one connection
(:class:`MicFeed`), so a switch of connection neither loses a frame nor sends one twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from .audio.base import AudioSink, AudioSource
from .errors import AudioDeviceUnavailable, ConfigError

if TYPE_CHECKING:
    from .engine import Engine
    from .session import Session

log = logging.getLogger("voicelive_nb.notebook")


class SessionAudio:
    """The microphone and speaker of a notebook session, and the one reader of the microphone.

    ``mic`` / ``speaker`` are the resolved devices (None: none); ``notes`` says why an ``"auto"``
    device is missing. :meth:`start` begins reading the microphone for the run;
    :meth:`attach` / :meth:`detach` move that stream from one connection to the next.
    """

    def __init__(self) -> None:
        self.mic: AudioSource | None = None
        self.speaker: AudioSink | None = None
        self.notes: list[str] = []
        self.hub: MicHub | None = None
        self.feed: MicFeed | None = None

    # ------------------------------------------------------------------ devices

    def open(self, mic_spec: Any, speaker_spec: Any, memory_bytes: int | None, echo_reference: bool) -> None:
        """Resolve both specs (a device named and missing raises :class:`AudioDeviceUnavailable`)."""
        self.notes = []
        self.mic = self._resolve(mic_spec, "input", memory_bytes)  # type: ignore[assignment]
        self.speaker = self._resolve(speaker_spec, "output", memory_bytes)  # type: ignore[assignment]
        attach = getattr(self.mic, "attach_reference", None)
        if echo_reference and callable(attach):
            # The echo reference is what the speaker plays; the microphone decides which speakers
            # it takes it from (MicrophoneSource: a SpeakerSink; BrowserMicrophone: a
            # BrowserSpeaker shown in its page). Another pair keeps what the mic had, and the
            # session's reference check then says what to use.
            with contextlib.suppress(ConfigError):
                attach(self.speaker)

    def _resolve(self, spec: Any, kind: str, memory_bytes: int | None) -> AudioSource | AudioSink | None:
        if spec is False or spec is None:
            return None if kind == "input" else memory_sink(memory_bytes)
        if not isinstance(spec, (str, int)):  # a source or sink object (bool is an int)
            return spec  # type: ignore[no-any-return]
        from .audio import device

        ok, reason = device.audio_available()
        device_spec = None if spec in (True, "auto") else spec
        if not ok:
            if spec == "auto":
                self.notes.append(f"no {kind} device: {reason}")
                return None if kind == "input" else memory_sink(memory_bytes)
            raise AudioDeviceUnavailable(
                f"{'microphone' if kind == 'input' else 'speaker'} not available: {reason}"
            )
        try:
            if kind == "input":
                microphone = device.MicrophoneSource(device_spec, max_queue_s=10.0)
                microphone.persistent = True  # buffers (bounded) while reconnecting
                mic: AudioSource = microphone
                return mic
            speaker: AudioSink = device.SpeakerSink(device_spec)
            return speaker
        except AudioDeviceUnavailable as exc:
            if spec == "auto":
                self.notes.append(str(exc))
                return None if kind == "input" else memory_sink(memory_bytes)
            raise

    def close(self, engine: Engine) -> None:
        """Close both devices from a cell (the session is not running)."""
        mic, speaker = self.mic, self.speaker
        if mic is not None:
            with contextlib.suppress(Exception):
                engine.run(mic.aclose(), timeout=5)
        if speaker is not None:
            with contextlib.suppress(Exception):
                speaker.close()

    async def aclose(self) -> None:
        """Close both devices on the engine loop (the end of a stop)."""
        mic, speaker = self.mic, self.speaker
        if mic is not None:
            try:
                await asyncio.wait_for(mic.aclose(), timeout=5)
            except Exception as exc:
                log.warning("closing the microphone failed: %s", exc)
        if speaker is not None:
            try:
                speaker.close()
            except Exception as exc:
                log.warning("closing the speaker failed: %s", exc)

    # ------------------------------------------------------------------ the microphone stream

    def start(self, sample_rate: int, *, stereo: bool) -> None:
        """Begin the run's one reader of the microphone (engine loop; nothing without a microphone)."""
        self.hub = MicHub(self.mic, sample_rate, stereo=stereo) if self.mic is not None else None

    async def finish(self) -> None:
        """End the run's reader of the microphone."""
        if self.hub is not None:
            await self.hub.aclose()

    def attach(self, session: Session, handovers: list[dict[str, Any]]) -> None:
        """Feed ``session`` from the microphone; the newest of ``handovers`` gets its first frame's time."""
        if self.hub is None:
            return
        feed = self.feed = MicFeed(self.hub)
        session.input_taps.append(feed.confirm)
        session.stream(feed)
        if handovers and "first_new_frame" not in handovers[-1]:
            handovers[-1]["first_new_frame"] = None
            feed.on_first = lambda at: _first_frame(handovers[-1], at)

    async def detach(self, session: Session) -> MicFeed | None:
        """Stop feeding ``session``; a frame it took but did not send goes back to the front."""
        feed, self.feed = self.feed, None
        if feed is None:
            return None
        feed.close()  # the audio task ends after the frame it is sending, if any
        await session.end_stream(timeout=1.0)  # a send that hangs is cancelled: its frame comes back
        feed.give_back()
        return feed

    def then_resume(self, first: AudioSource) -> ThenResume:
        """``first`` (a ``speak()``), then back to the microphone stream."""
        return ThenResume(first, self.feed or self.mic)

    def from_mic(self, source: AudioSource) -> bool:
        """``source`` is the microphone, or a stream that goes back to it."""
        return source is self.mic or isinstance(source, (ThenResume, MicFeed))

    def mute_while_speaking(self, speaking: bool) -> None:
        """Half duplex: the microphone is muted while the assistant speaks (if it can be)."""
        if self.mic is not None and hasattr(self.mic, "muted"):
            self.mic.muted = speaking or sink_busy(self.speaker)

    def speaker_busy(self) -> bool:
        return sink_busy(self.speaker)


def _first_frame(handover: dict[str, Any], at: float) -> None:
    handover["first_new_frame"] = at
    last = handover.get("last_old_frame")
    if last is not None:
        handover["gap_ms"] = round((at - last) * 1000, 1)


def check_memory_bytes(max_bytes: Any) -> None:
    """``speaker_memory_bytes``: a positive number of bytes or None, else a ConfigError."""
    if max_bytes is not None and (
        isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0
    ):
        raise ConfigError(
            "speaker_memory_bytes", max_bytes, "a positive number of bytes, or None for no bound"
        )


def memory_sink(max_bytes: int | None) -> AudioSink:
    """Replies kept in memory, bounded (no speaker)."""
    from .audio.memory import BufferSink

    return BufferSink(max_bytes=max_bytes)


def sink_busy(sink: AudioSink | None) -> bool:
    """The sink still has audio queued to play."""
    queued = getattr(sink, "queued_ms", None)
    try:
        return bool(queued is not None and queued() > 0)
    except Exception:
        return False


class ThenResume:
    """Play ``first`` to the end, then go back to the microphone (if there is one)."""

    def __init__(self, first: AudioSource, then: AudioSource | None) -> None:
        self.first = first
        self.then = then
        self.playing = True  #: still in ``first`` (a rollover waits for it to end)

    async def frames(self, sample_rate: int, frame_ms: int = 20) -> AsyncIterator[bytes]:
        try:
            async for frame in self.first.frames(sample_rate, frame_ms):
                yield frame
        finally:
            self.playing = False
        await self.first.aclose()
        if self.then is not None:
            async for frame in self.then.frames(sample_rate, frame_ms):
                yield frame

    async def aclose(self) -> None:
        await self.first.aclose()  # the microphone belongs to the NotebookSession


class MicHub:
    """Reads the microphone once, for every connection in turn: what no connection took yet waits here.

    Bounded (``max_frames``, the oldest dropped and counted in :attr:`dropped`).
    """

    def __init__(
        self,
        source: AudioSource,
        sample_rate: int,
        frame_ms: int = 20,
        max_frames: int = 1500,
        *,
        stereo: bool = False,
    ) -> None:
        self.source = source
        #: (mic, reference) frames for client-reference echo cancellation
        self.stereo = stereo
        self.frames: deque[bytes] = deque()
        self.max_frames = max_frames
        self.dropped = 0
        self.ended = False
        self.wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(
            self._read(sample_rate, frame_ms), name="voicelive-mic"
        )

    async def _read(self, sample_rate: int, frame_ms: int) -> None:
        try:
            read = self.source.reference_frames if self.stereo else self.source.frames  # type: ignore[attr-defined]
            async for frame in read(sample_rate, frame_ms):
                self.frames.append(frame)
                if len(self.frames) > self.max_frames:
                    self.frames.popleft()
                    self.dropped += 1
                self.wake.set()
        except Exception as exc:
            text = str(exc)
            log.warning(
                "the microphone stopped: %s", f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            )
        finally:
            self.ended = True
            self.wake.set()

    async def aclose(self) -> None:
        if not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=2)


class MicFeed:
    """One connection's view of the :class:`MicHub`: the frames it takes, confirmed once sent."""

    def __init__(self, hub: MicHub) -> None:
        self.hub = hub
        self.closed = False
        self.pending: bytes | None = None
        self.sent = 0
        self.last_sent_at: float | None = None
        self.on_first: Callable[[float], None] | None = None

    async def frames(self, sample_rate: int, frame_ms: int = 20) -> AsyncIterator[bytes]:
        hub = self.hub
        self.give_back()  # a frame of an interrupted stream (speak()) goes first
        while not self.closed:
            if not hub.frames:
                if hub.ended:
                    return
                hub.wake.clear()
                await hub.wake.wait()
                continue
            frame = hub.frames.popleft()
            self.pending = frame
            yield frame

    @property
    def reference_available(self) -> bool:
        """The hub reads (mic, reference) frames when the session has client echo reference."""
        return self.hub.stereo

    def reference_frames(self, sample_rate: int, frame_ms: int = 20) -> AsyncIterator[bytes]:
        return self.frames(sample_rate, frame_ms)

    def confirm(self, pcm16: bytes) -> None:
        """Input tap: the frame went out on this connection."""
        if pcm16 is self.pending:
            self.pending = None
            self.sent += 1
            self.last_sent_at = time.monotonic()
            if self.on_first is not None:
                first, self.on_first = self.on_first, None
                first(self.last_sent_at)

    def give_back(self) -> None:
        if self.pending is not None:
            self.hub.frames.appendleft(self.pending)
            self.pending = None

    def close(self) -> None:
        self.closed = True
        self.hub.wake.set()

    async def aclose(self) -> None:
        """The microphone belongs to the NotebookSession."""
