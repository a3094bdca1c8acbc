"""The response book of :class:`~voicelive_nb.protocol.state.SessionProtocol`: responses and their audio.

:class:`ResponseBook` owns the responses of one session (in progress and finished, in the
order they began, with their receive times) and the assistant audio they carried: bytes per
item, the format they are counted in, and how much of each item was played. The session
protocol, the one interpreter of the events, feeds it and asks it what a ``speech_started``
would speak over (:meth:`ResponseBook.spoken_over`); the barge-in itself is decided there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from .events import ResponseAudioDelta, ResponseCreated, ResponseDone
from .wire import format_from_wire

__all__ = [
    "AudioTally",
    "ResponseBook",
    "ResponseRecord",
    "SpokenOver",
    "output_bytes_per_ms",
    "response_output_format",
]

_OUTPUT_BYTES_PER_MS: Final[dict[str, int]] = {
    "pcm16": 48,
    "pcm16_16000hz": 32,
    "pcm16_8000hz": 16,
    "pcm16-16000hz": 32,  # legacy spelling the SDK still maps
    "pcm16-8000hz": 16,
    "g711_ulaw": 8,
    "g711_alaw": 8,
}


def output_bytes_per_ms(output_audio_format: str | None) -> int:
    """Bytes per millisecond of assistant audio in ``output_audio_format`` (unknown: pcm16 24 kHz)."""
    return _OUTPUT_BYTES_PER_MS.get(output_audio_format or "pcm16", 48)


def response_output_format(response: Mapping[str, Any]) -> str | None:
    """The output audio format a response object names, in either shape (None if it names none)."""
    fmt = response.get("output_audio_format")
    if isinstance(fmt, str):
        return fmt
    audio = response.get("audio")
    output = audio.get("output") if isinstance(audio, Mapping) else None
    parsed = format_from_wire(output.get("format"), output=True) if isinstance(output, Mapping) else None
    return parsed[0] if parsed is not None else None


@dataclass(frozen=True, slots=True)
class ResponseRecord:
    """A response: in progress (``status == "in_progress"``) or finished."""

    id: str
    status: str
    status_details: Mapping[str, Any] | None
    output_item_ids: tuple[str, ...]
    usage: Mapping[str, Any] | None
    data: Mapping[str, Any]  #: the last response object received
    #: receive times (as given to :meth:`SessionProtocol.receive`) of ``response.created`` (or of
    #: ``response.done`` for a response never announced), of its first audio delta, of ``response.done``
    created_at: float | None = field(default=None, compare=False)
    first_audio_at: float | None = field(default=None, compare=False)
    done_at: float | None = field(default=None, compare=False)

    @property
    def reason(self) -> str | None:
        """``status_details.reason`` (``turn_detected``, ``client_cancelled``, ``max_output_tokens``…)."""
        details = self.status_details
        reason = details.get("reason") if details else None
        return reason if isinstance(reason, str) else None


@dataclass(frozen=True, slots=True)
class AudioTally:
    """Assistant audio received for one item."""

    item_id: str
    response_id: str
    bytes: int
    bytes_per_ms: int

    @property
    def ms(self) -> float:
        return self.bytes / self.bytes_per_ms


class SpokenOver(NamedTuple):
    """What a ``speech_started`` now would speak over (see :meth:`ResponseBook.spoken_over`)."""

    response_id: str
    response_active: bool
    item_id: str | None  #: the response's (last) item that carried audio
    received_ms: float
    played_ms: float | None


def _mapping_or_none(value: object) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


class _Response:
    __slots__ = ("bytes_per_ms", "created_at", "data", "done_at", "first_audio_at", "id", "output")

    def __init__(
        self, response_id: str, data: Mapping[str, Any], bytes_per_ms: int, created_at: float | None = None
    ) -> None:
        self.id = response_id
        self.data = data
        self.output: list[str] = []
        self.bytes_per_ms = bytes_per_ms
        self.created_at = created_at
        self.first_audio_at: float | None = None
        self.done_at: float | None = None

    def record(self) -> ResponseRecord:
        data = self.data
        status = data.get("status")
        return ResponseRecord(
            id=self.id,
            status=status if isinstance(status, str) else "in_progress",
            status_details=_mapping_or_none(data.get("status_details")),
            output_item_ids=tuple(self.output),
            usage=_mapping_or_none(data.get("usage")),
            data=data,
            created_at=self.created_at,
            first_audio_at=self.first_audio_at,
            done_at=self.done_at,
        )


class _Audio:
    __slots__ = ("bytes", "bytes_per_ms", "response_id")

    def __init__(self, response_id: str, bytes_per_ms: int) -> None:
        self.response_id = response_id
        self.bytes = 0
        self.bytes_per_ms = bytes_per_ms


class ResponseBook:
    """The responses of a session and the assistant audio they carried.

    More than one response may be open (out-of-band responses); the latest is the active one.
    Audio is counted per item in bytes and converted to milliseconds with the output format
    of its response (the one ``response.create`` asked for, else the session's).
    """

    def __init__(self) -> None:
        self._active: dict[str, _Response] = {}
        self._finished: list[ResponseRecord] = []
        self._order: dict[str, int] = {}  #: response id -> when it began, for all_responses
        #: the latest response created since the last speech_started
        self._last: _Response | None = None
        self._pending_output_format: str | None = None
        self._audio: dict[str, _Audio] = {}
        self._played: dict[str, float] = {}

    # ------------------------------------------------------------------ inputs

    def requested(self, response: Mapping[str, Any] | None) -> None:
        """A ``response.create`` was sent with these parameters (their output format counts the audio)."""
        self._pending_output_format = response_output_format(response) if response else None

    def created(self, event: ResponseCreated, now: float | None, session_format: str | None) -> None:
        response_id = event.response.get("id")
        if not isinstance(response_id, str):
            return
        fmt = response_output_format(event.response)
        if fmt is None:
            fmt = self._pending_output_format or session_format
        self._pending_output_format = None
        response = _Response(response_id, event.response, output_bytes_per_ms(fmt), now)
        self._order.setdefault(response_id, len(self._order))
        self._active[response_id] = response
        self._last = response

    def output_item_added(self, response_id: str, item_id: object) -> None:
        response = self._active.get(response_id)
        if isinstance(item_id, str) and response is not None and item_id not in response.output:
            response.output.append(item_id)

    def audio_delta(self, event: ResponseAudioDelta, now: float | None, session: Mapping[str, Any]) -> None:
        """Count an audio delta (an item without a known response counts in ``session``'s format)."""
        tally = self._audio.get(event.item_id)
        if tally is None:
            response = self._active.get(event.response_id)
            session_format = session.get("output_audio_format")
            per_ms = (
                response.bytes_per_ms
                if response is not None
                else output_bytes_per_ms(session_format if isinstance(session_format, str) else None)
            )
            tally = self._audio[event.item_id] = _Audio(event.response_id, per_ms)
            if response is not None and event.item_id not in response.output:
                response.output.append(event.item_id)
        response = self._active.get(event.response_id)
        if response is not None and response.first_audio_at is None:
            response.first_audio_at = now
        tally.bytes += event.audio_size

    def done(self, event: ResponseDone, now: float | None) -> None:
        response_id = event.response.get("id")
        if not isinstance(response_id, str):
            return
        response = self._active.pop(response_id, None)
        if response is None:
            response = _Response(response_id, event.response, output_bytes_per_ms(None), now)
            self._order.setdefault(response_id, len(self._order))
        response.data = event.response
        response.done_at = now
        output = event.response.get("output")
        if isinstance(output, list):
            for item in output:
                item_id = item.get("id") if isinstance(item, Mapping) else None
                if isinstance(item_id, str) and item_id not in response.output:
                    response.output.append(item_id)
        self._finished.append(response.record())

    def note_playback(self, item_id: str, played_ms: float) -> None:
        """Record how much of an assistant item's audio was really played (never decreases)."""
        if played_ms > self._played.get(item_id, -1.0):
            self._played[item_id] = played_ms

    def spoken_over(self) -> SpokenOver | None:
        """What the user would speak over now: the active response, or the latest one since the
        previous ``speech_started`` while its audio is not known to have been played completely.

        Also forgets that latest response: the next call sees only responses created after it.
        """
        active = next(reversed(self._active.values())) if self._active else None
        response = active or self._last
        self._last = None
        if response is None:
            return None
        item_id = next((i for i in reversed(response.output) if i in self._audio), None)
        received = self.audio_ms(item_id) if item_id is not None else 0.0
        played = self._played.get(item_id) if item_id is not None else None
        if active is None and (received <= 0 or (played is not None and played >= received)):
            return None  # nothing left to hear
        return SpokenOver(response.id, active is not None, item_id, received, played)

    # ------------------------------------------------------------------ views

    def audio_ms(self, item_id: str) -> float:
        """Milliseconds of assistant audio received for ``item_id`` (0 if none)."""
        tally = self._audio.get(item_id)
        return tally.bytes / tally.bytes_per_ms if tally is not None else 0.0

    @property
    def any_active(self) -> bool:
        return bool(self._active)

    @property
    def active_response(self) -> ResponseRecord | None:
        """The latest response still in progress, or None."""
        if not self._active:
            return None
        return next(reversed(self._active.values())).record()

    @property
    def active_responses(self) -> tuple[ResponseRecord, ...]:
        return tuple(r.record() for r in self._active.values())

    @property
    def responses(self) -> tuple[ResponseRecord, ...]:
        """Finished responses, in the order they finished."""
        return tuple(self._finished)

    @property
    def all_responses(self) -> tuple[ResponseRecord, ...]:
        """Every response so far, finished or in progress, in the order they began (receive times on each)."""
        records = [*self._finished, *(r.record() for r in self._active.values())]
        order = self._order
        return tuple(sorted(records, key=lambda r: order.get(r.id, len(order))))

    @property
    def assistant_audio(self) -> dict[str, AudioTally]:
        """Assistant audio received, per item id."""
        return {
            item_id: AudioTally(item_id, a.response_id, a.bytes, a.bytes_per_ms)
            for item_id, a in self._audio.items()
        }

    @property
    def played_ms(self) -> Mapping[str, float]:
        """What :meth:`note_playback` was told, per item id."""
        return dict(self._played)
