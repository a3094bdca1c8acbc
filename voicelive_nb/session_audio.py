"""The audio of a :class:`~voicelive_nb.session.Session`: the source streamed in, the sink played out.

:class:`AudioFeed` owns the way in: the pump task that streams a source in frames (one at a
time, a new stream replacing the old), what was sent (blocks and bytes) and the input taps.
:class:`Playback` owns the path from an audio delta to the speaker: decoding the output format
to PCM16, the output taps (meters, views), opening the sink at the first block, which item is
playing, and flushing the sink when the user barges in. It never sends anything: what was
played is returned, and :class:`BargeIns` tells the service (the truncate of what was heard).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from .audio.base import AudioSink, AudioSource
from .errors import VoiceLiveError
from .protocol.events import ResponseAudioDelta
from .protocol.state import SessionProtocol

log = logging.getLogger("voicelive_nb.session")


class AudioFeed:
    """The microphone side of a session: the pump task, the counts of what was sent, the input taps."""

    def __init__(self) -> None:
        self.pump: asyncio.Task[None] | None = None
        #: Set when the source streamed last has ended (or failed, or was replaced).
        self.done = asyncio.Event()
        #: ``fn(pcm16)`` for every block of input audio sent (engine thread; keep it cheap).
        self.taps: list[Callable[[bytes], None]] = []
        self.bytes_sent = 0
        self.frames_sent = 0

    def start(
        self,
        frames: Callable[[], AsyncIterator[bytes]],
        append: Callable[[bytes], Awaitable[None]],
        on_done: Callable[[asyncio.Task[None]], None],
    ) -> asyncio.Task[None]:
        """Stream ``frames()`` through ``append`` in a new pump task (a running one is cancelled)."""
        if self.pump is not None and not self.pump.done():
            self.pump.cancel()
        self.done.clear()
        self.pump = asyncio.get_running_loop().create_task(self._run(frames, append), name="voicelive-audio")
        self.pump.add_done_callback(on_done)
        return self.pump

    @property
    def streaming(self) -> bool:
        """Whether a pump is running."""
        return self.pump is not None and not self.pump.done()

    async def end(self, timeout: float) -> bool:
        """Wait for the running pump to end once its source has ended; if a send hangs, cancel
        it after ``timeout`` s. True when it ended by itself (or none ran)."""
        pump = self.pump
        if pump is None or pump.done():
            return True
        await asyncio.wait({pump}, timeout=timeout)
        if pump.done():
            return True
        pump.cancel()
        await asyncio.wait({pump}, timeout=timeout)
        return False

    async def _run(
        self, frames: Callable[[], AsyncIterator[bytes]], append: Callable[[bytes], Awaitable[None]]
    ) -> None:
        try:
            async for frame in frames():
                await append(frame)
        finally:
            self.done.set()

    def sent(self, pcm16: bytes, stereo: bool) -> None:
        """Count a block that went out and show it to the taps (the mic channel of a stereo block)."""
        self.bytes_sent += len(pcm16)
        self.frames_sent += 1
        if self.taps:
            mono = channel0(pcm16) if stereo else pcm16
            for tap in self.taps:
                call_tap(tap, mono)


def source_frames(source: AudioSource, config: Any, frame_ms: int) -> AsyncIterator[bytes]:
    """The frames of ``source`` the session streams: stereo (mic, reference) for client echo
    cancellation, else mono, at the config's input rate."""
    rate = config.input_sample_rate
    if client_ec(config):
        return source.reference_frames(rate, frame_ms)  # type: ignore[attr-defined,no-any-return]
    return source.frames(rate, frame_ms)


def client_ec(config: Any) -> bool:
    """Whether ``config`` sends the echo reference (any config-like object; a plain one does not)."""
    return getattr(config, "client_echo_reference", False) is True


def channel0(stereo: bytes) -> bytes:
    """The microphone channel of interleaved (mic, reference) PCM16: what meters and views show."""
    return memoryview(stereo[: len(stereo) // 4 * 4]).cast("H")[0::2].tobytes()


class Playback:
    """Where the assistant's audio goes: taps, then the sink (opened at the first block).

    ``warn`` counts a delta that cannot be played (not base64, half a sample) without
    stopping the reader; ``sample_rate`` is asked when the sink opens (the config may change).
    """

    def __init__(
        self, sink: AudioSink | None, warn: Callable[[str], None], sample_rate: Callable[[], int]
    ) -> None:
        self.sink = sink
        #: ``fn(item_id, pcm16)`` for every block of assistant audio received (engine thread).
        self.taps: list[Callable[[str, bytes], None]] = []
        self.playing_item: str | None = None
        self.output_format = "pcm16"
        self.opened = False
        self._warn = warn
        self._sample_rate = sample_rate

    def play(self, event: Any) -> int:
        """Hand an audio delta to the taps and the sink; the bytes of PCM now held by the event."""
        if self.sink is None and not self.taps:
            return 0
        if not isinstance(event, ResponseAudioDelta):
            return 0
        try:
            audio = event.audio
            pcm = to_pcm16(audio, self.output_format)
        except VoiceLiveError as exc:
            self._warn(f"an audio delta was not valid base64: {exc}")
            return 0
        if len(pcm) % 2:  # the sinks rightly refuse half a sample; the peer must not make them
            self._warn(f"an audio delta had an odd number of bytes ({len(pcm)}), so it is not pcm16")
            return len(audio)
        for tap in self.taps:
            call_tap(tap, event.item_id, pcm)
        if self.sink is None:
            return len(audio)
        if not self.opened:
            self.sink.open(self._sample_rate())
            self.opened = True
        self.playing_item = event.item_id
        self.sink.write(event.item_id, pcm)
        return len(audio)

    def played_now(self) -> tuple[str, int] | None:
        """``(item, ms played)`` of the item playing, if any: what was really heard so far."""
        if self.sink is None or not self.playing_item:
            return None
        return self.playing_item, self.sink.played_ms(self.playing_item)

    def end_of_item(self, event: Any) -> None:
        """The item's audio is complete: play the tail even if shorter than the jitter target."""
        end_of_item = getattr(self.sink, "end_of_item", None)
        if end_of_item is not None:
            end_of_item(getattr(event, "item_id", ""))

    def use_format(self, session: Mapping[str, Any]) -> None:
        """Decode later deltas in the ``output_audio_format`` the service reported."""
        fmt = session.get("output_audio_format")
        self.output_format = fmt if isinstance(fmt, str) else "pcm16"

    def flush(self, item: str | None) -> int | None:
        """Silence the speaker at once; the ms of ``item`` that were played (None: no sink or item)."""
        if self.sink is None or item is None:
            return None
        played_ms = self.sink.played_ms(item)
        self.sink.clear()
        self.playing_item = None
        return played_ms

    def close(self) -> None:
        """Close the sink if it was opened (not a sink that never played)."""
        if self.sink is not None and self.opened:
            self.sink.close()


def call_tap(tap: Callable[..., None], *args: Any) -> None:
    """Call a meter or view; a broken one is logged and must not stop the audio."""
    try:
        tap(*args)
    except Exception:
        log.exception("audio tap %r failed", tap)


def to_pcm16(audio: bytes, fmt: str) -> bytes:
    """``audio`` in ``fmt`` (``pcm16``, ``g711_ulaw``, ``g711_alaw``) as PCM16."""
    if fmt == "g711_ulaw":
        from .audio.format import ulaw_decode

        return ulaw_decode(audio)
    if fmt == "g711_alaw":
        from .audio.format import alaw_decode

        return alaw_decode(audio)
    return audio


class BargeIns:
    """The answer to the user talking over the assistant: silence the speaker at once, note it,
    then (unless the service truncates by itself) send the truncate of what was really heard.

    ``send(event)`` sends in the background; :attr:`truncations` lists what was sent.
    """

    def __init__(
        self,
        playback: Playback,
        state: SessionProtocol,
        recorder: Callable[[], Any],
        send: Callable[[Any], None],
    ) -> None:
        self.truncations: list[dict[str, Any]] = []
        self._playback = playback
        self._state = state
        self._recorder = recorder
        self._send = send

    def respond(self, barge_in: Any) -> None:
        """Flush, note ``playback_flushed`` in the recording, send the clamped truncate."""
        item = barge_in.assistant_item_id
        played_ms = self._playback.flush(item)
        if played_ms is None:
            return
        recorder = self._recorder()
        if recorder is not None:
            recorder.note(
                "playback_flushed", item_id=item, played_ms=played_ms, received_ms=barge_in.received_audio_ms
            )
        if barge_in.server_truncates:
            return  # auto_truncate: the service truncates by itself
        truncate = self._state.truncate_event(item, played_ms)
        self.truncations.append(
            {
                "item_id": item,
                "audio_end_ms": truncate.audio_end_ms,
                "received_ms": barge_in.received_audio_ms,
                "played_ms": played_ms,
            }
        )
        self._send(truncate)
