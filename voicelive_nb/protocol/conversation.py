"""The conversation book of :class:`~voicelive_nb.protocol.state.SessionProtocol`: items and transcript.

:class:`Conversation` owns the items of one session in conversation order and the text of
each (the transcript). It is fed by the session protocol, the one interpreter of the events
(its dispatch table routes the item and transcript events here), and never decides anything
about responses, audio or barge-ins. The rules it keeps are those of the state module's
docstring ("Conversation", "Transcripts").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, NamedTuple

from .events import (
    ConversationItemCreated,
    ConversationItemDeleted,
    ConversationItemDone,
    ConversationItemInputAudioTranscriptionCompleted,
    ConversationItemInputAudioTranscriptionDelta,
    ConversationItemInputAudioTranscriptionFailed,
    ConversationItemRetrieved,
    ConversationItemTruncated,
    ResponseAudioTranscriptDelta,
    ResponseAudioTranscriptDone,
    ResponseContentPartDone,
    ResponseTextDelta,
    ResponseTextDone,
)

__all__ = ["Conversation", "ConversationItem", "TranscriptEntry"]


@dataclass(frozen=True, slots=True)
class ConversationItem:
    """An item of the conversation as last reported by the service."""

    id: str
    type: str | None
    role: str | None
    status: str | None
    previous_item_id: str | None
    data: Mapping[str, Any]  #: the item object itself
    truncated_audio_end_ms: int | None = None  #: set by ``conversation.item.truncated``
    deleted: bool = False


class TranscriptEntry(NamedTuple):
    """One line of the transcript: ``(role, item_id, text, final)``."""

    role: str
    item_id: str
    text: str
    final: bool


class _Text:
    __slots__ = ("done", "parts", "role")

    def __init__(self, role: str) -> None:
        self.role = role
        self.parts: dict[int, str] = {}
        self.done: set[int] = set()

    @property
    def text(self) -> str:
        return "".join(self.parts[i] for i in sorted(self.parts))

    @property
    def final(self) -> bool:
        return bool(self.parts) and self.done.issuperset(self.parts)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


_PART_TEXT_KEYS: Final = {
    "input_text": "text",
    "text": "text",
    "output_text": "text",  # GA shape
    "input_audio": "transcript",
    "audio": "transcript",
    "output_audio": "transcript",  # GA shape
}


class Conversation:
    """The items of a session in conversation order, and the transcript of their text.

    Items are placed by ``previous_item_id``; deleted ones leave :attr:`items` but keep their
    place in :attr:`transcript`. Streamed text wins over item contents, and final contents
    replace unfinished streams.
    """

    def __init__(self) -> None:
        #: every item id placed so far, in conversation order (deleted ones included)
        self._order: list[str] = []
        self._items: dict[str, ConversationItem] = {}
        self._texts: dict[str, _Text] = {}
        self._transcription_errors: dict[str, Mapping[str, Any]] = {}

    # ------------------------------------------------------------------ items

    def _place(self, item_id: str, previous_item_id: str | None) -> None:
        if item_id in self._order:
            self._order.remove(item_id)
        if previous_item_id is None or previous_item_id == "root":
            self._order.insert(0, item_id)
        elif previous_item_id in self._order:
            self._order.insert(self._order.index(previous_item_id) + 1, item_id)
        else:
            self._order.append(item_id)

    def _remember_item(self, item: Mapping[str, Any]) -> str | None:
        """Store the item object under its id (keeping what only events told: place, truncation)."""
        item_id = item.get("id")
        if not isinstance(item_id, str):
            return None
        old = self._items.get(item_id)
        self._items[item_id] = ConversationItem(
            id=item_id,
            type=_str_or_none(item.get("type")),
            role=_str_or_none(item.get("role")),
            status=_str_or_none(item.get("status")),
            previous_item_id=old.previous_item_id if old is not None else None,
            data=item,
            truncated_audio_end_ms=old.truncated_audio_end_ms if old is not None else None,
            deleted=old.deleted if old is not None else False,
        )
        return item_id

    def refresh(self, item: Mapping[str, Any]) -> None:
        """A newer object of an item (in a response's output): stored only if the item is known."""
        item_id = item.get("id")
        if isinstance(item_id, str) and item_id in self._items:
            self._remember_item(item)

    def item_created(self, event: ConversationItemCreated) -> None:
        item_id = self._remember_item(event.item)
        if item_id is None:
            return
        self._items[item_id] = replace(self._items[item_id], previous_item_id=event.previous_item_id)
        self._place(item_id, event.previous_item_id)
        self._absorb_content(item_id, event.item, authoritative=False)

    def item_done(self, event: ConversationItemDone) -> None:
        """Like ``created`` for an item not seen yet; its content is final."""
        item_id = self._remember_item(event.item)
        if item_id is None:
            return
        if item_id not in self._order:
            self._items[item_id] = replace(self._items[item_id], previous_item_id=event.previous_item_id)
            self._place(item_id, event.previous_item_id)
        self._absorb_content(item_id, event.item, authoritative=True)

    def item_retrieved(self, event: ConversationItemRetrieved) -> None:
        if event.item is None:
            return
        item_id = event.item.get("id")
        if isinstance(item_id, str) and item_id in self._items:
            self._remember_item(event.item)
            self._absorb_content(item_id, event.item, authoritative=True)

    def item_truncated(self, event: ConversationItemTruncated) -> None:
        item = self._items.get(event.item_id)
        if item is not None:
            self._items[event.item_id] = replace(item, truncated_audio_end_ms=event.audio_end_ms)

    def item_deleted(self, event: ConversationItemDeleted) -> None:
        item = self._items.get(event.item_id)
        if item is not None:
            self._items[event.item_id] = replace(item, deleted=True)

    def output_item_done(self, item_id: str, item: Mapping[str, Any]) -> None:
        """A response's output item is done: its object (if known) and its final content."""
        self.refresh(item)
        self._absorb_content(item_id, item, authoritative=True)

    # ------------------------------------------------------------------ transcripts

    def _text(self, item_id: str, role: str) -> _Text:
        text = self._texts.get(item_id)
        if text is None:
            item = self._items.get(item_id)
            text = self._texts[item_id] = _Text(item.role if item is not None and item.role else role)
            if item_id not in self._order:
                self._order.append(item_id)
        return text

    def _absorb_content(self, item_id: str, item: Mapping[str, Any], *, authoritative: bool) -> None:
        """Take the text of a message item's content parts (see the state module's docstring)."""
        content = item.get("content")
        if item.get("type") != "message" or not isinstance(content, list):
            return
        final = item.get("status") != "in_progress"
        role = _str_or_none(item.get("role")) or "assistant"
        for index, part in enumerate(content):
            if isinstance(part, Mapping):
                self._absorb_part(item_id, role, index, part, final=final, authoritative=authoritative)

    def _absorb_part(
        self,
        item_id: str,
        role: str,
        index: int,
        part: Mapping[str, Any],
        *,
        final: bool,
        authoritative: bool,
    ) -> None:
        part_type = part.get("type")
        key = _PART_TEXT_KEYS.get(part_type) if isinstance(part_type, str) else None
        value = part.get(key) if key is not None else None
        if not isinstance(value, str) or not value:
            return
        existing = self._texts.get(item_id)
        # a finished part never changes; an unfinished stream gives way only to final content
        if (
            existing is not None
            and index in existing.parts
            and (index in existing.done or not (authoritative and final))
        ):
            return
        text = self._text(item_id, role)
        text.parts[index] = value
        if final:
            text.done.add(index)

    def user_transcript_delta(self, event: ConversationItemInputAudioTranscriptionDelta) -> None:
        if event.delta:
            text = self._text(event.item_id, "user")
            index = event.content_index or 0
            text.parts[index] = text.parts.get(index, "") + event.delta

    def user_transcript_completed(self, event: ConversationItemInputAudioTranscriptionCompleted) -> None:
        text = self._text(event.item_id, "user")
        text.parts[event.content_index] = event.transcript
        text.done.add(event.content_index)

    def user_transcript_failed(self, event: ConversationItemInputAudioTranscriptionFailed) -> None:
        self._transcription_errors[event.item_id] = event.error
        text = self._text(event.item_id, "user")
        text.parts.setdefault(event.content_index, "")
        text.done.add(event.content_index)

    def assistant_delta(self, event: ResponseAudioTranscriptDelta | ResponseTextDelta) -> None:
        text = self._text(event.item_id, "assistant")
        text.parts[event.content_index] = text.parts.get(event.content_index, "") + event.delta

    def assistant_transcript_done(self, event: ResponseAudioTranscriptDone) -> None:
        text = self._text(event.item_id, "assistant")
        text.parts[event.content_index] = event.transcript
        text.done.add(event.content_index)

    def assistant_text_done(self, event: ResponseTextDone) -> None:
        text = self._text(event.item_id, "assistant")
        text.parts[event.content_index] = event.text
        text.done.add(event.content_index)

    def content_part_done(self, event: ResponseContentPartDone) -> None:
        self._absorb_part(
            event.item_id, "assistant", event.content_index, event.part, final=True, authoritative=True
        )

    # ------------------------------------------------------------------ views

    @property
    def items(self) -> tuple[ConversationItem, ...]:
        """The conversation, in order, without deleted items."""
        return tuple(
            item for i in self._order if (item := self._items.get(i)) is not None and not item.deleted
        )

    def item(self, item_id: str) -> ConversationItem | None:
        """The item with this id (deleted ones included), or None."""
        return self._items.get(item_id)

    @property
    def transcript(self) -> list[TranscriptEntry]:
        """``(role, item_id, text, final)`` for every item with text, in conversation order."""
        entries = []
        for item_id in self._order:
            text = self._texts.get(item_id)
            if text is not None:
                entries.append(TranscriptEntry(text.role, item_id, text.text, text.final))
        return entries

    @property
    def transcription_errors(self) -> Mapping[str, Mapping[str, Any]]:
        """The ``error`` of ``input_audio_transcription.failed``, per user item id."""
        return dict(self._transcription_errors)
