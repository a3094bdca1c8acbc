"""Audio source and sink protocols shared by sessions, devices, files and the browser.

All audio crossing these interfaces is **PCM16 mono little-endian** at the rate the caller
asks for. Sources are async iterators of frames; sinks are non-blocking and track how
much of each assistant item was actually handed to the output (for exact truncation on
barge-in).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable


@runtime_checkable
class AudioSource(Protocol):
    """Something that yields microphone-like audio."""

    def frames(self, sample_rate: int, frame_ms: int = 20) -> AsyncIterator[bytes]:
        """Yield PCM16 mono frames of ``frame_ms`` at ``sample_rate``.

        The last frame may be shorter. The iterator ends when the source ends (a WAV file)
        and runs until closed for live sources (a microphone).
        """
        ...

    async def aclose(self) -> None:
        """Release the source (idempotent)."""
        ...


@runtime_checkable
class AudioSink(Protocol):
    """Something that plays or stores the assistant's audio."""

    def open(self, sample_rate: int) -> None:
        """Prepare for PCM16 mono audio at ``sample_rate`` (called once before ``write``)."""
        ...

    def write(self, item_id: str, pcm16: bytes) -> None:
        """Queue audio of assistant item ``item_id``; never blocks."""
        ...

    def clear(self) -> None:
        """Drop everything not yet played (barge-in); the next output is silence."""
        ...

    def played_ms(self, item_id: str) -> int:
        """Milliseconds of ``item_id`` actually handed to the output so far."""
        ...

    def close(self) -> None:
        """Finish and release (idempotent); file sinks finalise their files here."""
        ...


# Optional sink methods, used when present (real-time sinks have them):
#   end_of_item(item_id) -> None   the item's audio is complete: play its tail now
#   queued_ms() -> int             audio written and not yet played (half-duplex muting, meters)
#
# Optional source members for client-reference echo cancellation (SessionConfig.with_client_echo_reference()):
#   reference_available: bool      whether reference_frames can run (a mic needs its speaker attached)
#   reference_frames(sample_rate, frame_ms) -> AsyncIterator[bytes]
#                                  stereo interleaved PCM16 frames (4 bytes a sample pair): channel 0
#                                  the microphone, channel 1 what the speaker played at that moment
