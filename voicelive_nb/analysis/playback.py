"""The modelled playback of a :class:`~voicelive_nb.analysis.timeline.Timeline`: assistant audio as heard.

:class:`PlaybackModel` owns the assistant audio items received and models their playback in
receive time: real time from the first ``response.audio.delta`` of an item, after the previous
item, so a reply received in one burst still spans its duration; cut where the client
flushes its speaker (a barge-in) or where ``conversation.item.truncated`` says. It tells the
session protocol how much of each item was heard (:meth:`PlaybackModel.tell`); the protocol
decides what a barge-in is (one definition), this model only says what was played.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..protocol.state import SessionProtocol

__all__ = ["AudioSpan", "PlaybackModel"]


@dataclass(frozen=True, slots=True)
class AudioSpan:
    """Assistant audio of one item, as played (modelled: real time from its first delta)."""

    item_id: str
    response_id: str | None
    start_s: float
    end_s: float  #: end of all audio received
    played_end_s: float  #: end of what was heard (≤ ``end_s``; earlier after a barge-in)
    received_ms: float


class _Item:
    __slots__ = ("bytes", "played_end", "response_id", "t_end", "t_first", "t_start")

    def __init__(self, response_id: str | None, t_first: float, t_start: float) -> None:
        self.response_id = response_id
        self.t_first = t_first
        self.t_start = t_start  # modelled playback start (after the previous item)
        self.t_end = t_start
        self.bytes = 0
        self.played_end: float | None = None  # wall time playback was cut, if it was


class PlaybackModel:
    """Assistant audio per item on the receive-time clock, as the client's speaker played it."""

    def __init__(self, bytes_per_ms: float) -> None:
        self.bytes_per_ms = bytes_per_ms
        self._items: dict[str, _Item] = {}
        self.play_end: float | None = None  # wall time the modelled playback queue runs dry

    def audio(self, t: float, item_id: str, response_id: str | None, n_bytes: int) -> bool:
        """``n_bytes`` of audio for ``item_id`` received at ``t``; True if it is the item's first."""
        item = self._items.get(item_id)
        start = t if self.play_end is None else max(t, self.play_end)
        first = item is None
        if item is None:
            item = self._items[item_id] = _Item(response_id, t, start)
        ms = n_bytes / self.bytes_per_ms
        item.bytes += n_bytes
        self.play_end = start + ms / 1000.0
        item.t_end = self.play_end
        return first

    def flush(self, t: float) -> None:
        """The client flushed its speaker at ``t`` (a barge-in): what was still to play is cut."""
        for item in self._items.values():
            if item.t_end > t and (item.played_end is None or item.played_end > t):
                item.played_end = max(t, item.t_start)
        self.play_end = t

    def truncated(self, item_id: str, audio_end_ms: int) -> None:
        """``conversation.item.truncated``: the item was heard up to ``audio_end_ms`` at most."""
        item = self._items.get(item_id)
        if item is not None:
            cut = item.t_start + audio_end_ms / 1000.0
            item.played_end = cut if item.played_end is None else min(item.played_end, cut)

    def tell(self, state: SessionProtocol, t: float) -> None:
        """Tell the state how much of each item the modelled playback has played by ``t``."""
        for item_id, item in self._items.items():
            end = item.t_end if item.played_end is None else min(item.t_end, item.played_end)
            if end <= t:
                played = state.audio_ms(item_id) if item.played_end is None else (end - item.t_start) * 1000.0
            else:
                played = max(0.0, (t - item.t_start) * 1000.0)
            state.note_playback(item_id, played)

    def spans(self, to_axis: Callable[[float], float]) -> list[AudioSpan]:
        """Every item's span, with receive times put on the axis by ``to_axis``."""
        spans = []
        for item_id, item in self._items.items():
            played = item.t_end if item.played_end is None else min(item.t_end, item.played_end)
            spans.append(
                AudioSpan(
                    item_id,
                    item.response_id,
                    to_axis(item.t_start),
                    to_axis(item.t_end),
                    to_axis(played),
                    item.bytes / self.bytes_per_ms,
                )
            )
        return spans
