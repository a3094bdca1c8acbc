"""The conversation of a :class:`~voicelive_nb.notebook_session.NotebookSession` across connections.

Each connection of a notebook session (reconnects, rollovers) is a fresh
:class:`~voicelive_nb.session.Session` that knows only its own events. :class:`ConversationArchive`
keeps what outlives them: the conversation items to re-seed the next connection with, the
transcript and events of the connections that ended (a reply a lost connection cut off marked
:data:`INCOMPLETE_NOTE`), one dict per switch (:attr:`ConversationArchive.handovers`) and the one
recording every connection writes to (:class:`SharedRecording`).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .protocol.state import TranscriptEntry
from .rollover import history_items, reseed_plan

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger("voicelive_nb.notebook")

#: Appended to a reply in :attr:`NotebookSession.transcript` when a lost connection cut it off.
INCOMPLETE_NOTE = "[incomplete: the connection was lost]"


class ConversationArchive:
    """What the connections of one run said: items for re-seeding, past transcript and events, handovers."""

    def __init__(self) -> None:
        #: Item ids of assistant replies cut off by a lost connection (marked incomplete in the transcript).
        self.incomplete_items: list[str] = []
        #: One dict per rollover or reconnect (``gap_ms``, ``prepare_ms``, ``forced``, ...).
        self.handovers: list[dict[str, Any]] = []
        #: The conversation items of the connections that ended (newest last, bounded by :meth:`retire`).
        self.history: list[dict[str, Any]] = []
        #: Ids the current connection was seeded with (not its own: not archived twice).
        self.seeded: set[str] = set()
        #: The seeded ids of the connection a rollover just left.
        self.old_seeded: set[str] = set()
        self.past_transcript: list[TranscriptEntry] = []
        self.past_events: deque[tuple[float, Any]] = deque(maxlen=20_000)
        self.recording: SharedRecording | None = None

    def reset(self, record: str | Path | None, input_rate: int, output_rate: int) -> None:
        """A new run: forget the previous one's conversation, open its recording (``record`` set)."""
        self.history = []
        self.seeded = set()
        self.past_transcript = []
        self.past_events.clear()
        self.incomplete_items = []
        self.recording = open_recording(record, input_rate, output_rate)

    def finish(self) -> None:
        """The run has ended: close the recording's files."""
        if self.recording is not None:
            self.recording.finish()

    # ------------------------------------------------------------------ items and re-seeding

    def collect(self, session: Session, seeded: set[str] | None = None) -> list[dict[str, Any]]:
        """The items a connection added to the conversation (not the ones it was seeded with)."""
        state = session.state
        texts = {e.item_id: e.text for e in state.transcript}
        items = history_items(state.items, texts, skip_ids=self.seeded if seeded is None else seeded)
        for item in items:
            if "id" not in item:
                item["id"] = f"vlnb{uuid.uuid4().hex[:24]}"
        return items

    async def seed(
        self,
        session: Session,
        extra: Sequence[dict[str, Any]] = (),
        *,
        enabled: bool,
        max_chars: int | None,
        max_items: int | None,
        timeout: float,
    ) -> set[str]:
        """Send the conversation so far to a fresh connection, bounded by the budget; the ids sent."""
        history = [*self.history, *extra]
        seeded: set[str] = set()
        if not enabled or not history:
            return seeded
        plan = reseed_plan(history, max_chars=max_chars, max_items=max_items)
        events = plan.events()
        for event in events:
            if "id" not in event["item"]:
                event["item"]["id"] = f"vlnbnote{uuid.uuid4().hex[:20]}"
            seeded.add(event["item"]["id"])
        for event in events:
            await session.send(event)
        if events:
            last = events[-1]["item"]["id"]
            await session.wait_for(
                "conversation.item.created",
                timeout=timeout,
                predicate=lambda e: isinstance(e.item, Mapping) and e.item.get("id") == last,
            )
        if plan.dropped:
            log.info(
                "re-seeded %d items; %d older ones omitted for the budget", len(events) - 1, plan.dropped
            )
        return seeded

    # ------------------------------------------------------------------ connections that end

    def mark_cut_off(self, session: Session) -> None:
        """A reply still running when the connection was lost is incomplete, not silently dropped."""
        for response in session.state.active_responses:
            self.incomplete_items.extend(response.output_item_ids)

    def retire(
        self,
        old: Session,
        *,
        reason: str,
        max_items: int | None,
        collected: list[dict[str, Any]] | None = None,
        last_old: float | None = None,
    ) -> None:
        """Move what a finished connection said into the history and the timeline."""
        items = self.collect(old) if collected is None else collected
        self.history.extend(items)
        bound = 4 * (max_items or 100)
        if len(self.history) > bound:  # the budget keeps only the newest anyway
            del self.history[: len(self.history) - bound]
        self._archive_transcript(old)
        if old.failure is not None:  # a lost connection is closed already: keep its events now
            self.past_events.extend(old.timed_events())
        self.handovers.append(
            {
                "kind": "reconnect",
                "reason": reason,
                "at": time.time(),
                "carried_items": len(self.history),
                "last_old_frame": last_old,
            }
        )
        if self.recording is not None:
            self.recording.recorder.note("rollover", reason=reason, items=len(self.history))

    def _archive_transcript(self, old: Session) -> None:
        cut = set(self.incomplete_items)
        shown: set[str] = set()
        for entry in old.state.transcript:
            if entry.item_id in self.seeded:
                continue
            if entry.item_id in cut:
                entry = entry._replace(text=f"{entry.text} {INCOMPLETE_NOTE}".lstrip(), final=False)
            shown.add(entry.item_id)
            self.past_transcript.append(entry)
        for item_id in self.incomplete_items:  # cut off before any of its text arrived
            item = old.state.item(item_id)
            if item_id not in shown and item is not None and item.type == "message":
                self.past_transcript.append(TranscriptEntry("assistant", item_id, INCOMPLETE_NOTE, False))

    def refresh_past(self, old: Session, old_seeded: set[str]) -> None:
        """Bring the archived lines of ``old`` up to date (text that arrived after the switch)."""
        past = self.past_transcript
        where = {entry.item_id: index for index, entry in enumerate(past)}
        fresh = [e for e in old.state.transcript if e.item_id not in old_seeded]
        at = max((where[e.item_id] for e in fresh if e.item_id in where), default=len(past) - 1) + 1
        for entry in fresh:
            if entry.item_id in where:
                if not past[where[entry.item_id]].text.endswith(INCOMPLETE_NOTE):
                    past[where[entry.item_id]] = entry
            else:
                past.insert(at, entry)
                at += 1

    # ------------------------------------------------------------------ views

    def timed_events(self, current: list[tuple[float, Any]]) -> list[tuple[float, Any]]:
        """The archived events and ``current`` (the live connection's), in time order."""
        past = list(self.past_events)
        if not past:
            return current
        seen = {id(e) for _, e in past}
        merged = past + [pair for pair in current if id(pair[1]) not in seen]
        merged.sort(key=lambda pair: pair[0])
        return merged

    def transcript(self, current: list[TranscriptEntry]) -> list[TranscriptEntry]:
        """The archived lines and ``current`` (the live connection's, less what it was seeded with)."""
        seeded = self.seeded
        return list(self.past_transcript) + [e for e in current if e.item_id not in seeded]


def open_recording(record: str | Path | None, input_rate: int, output_rate: int) -> SharedRecording | None:
    """One :class:`SharedRecording` in ``record`` (a directory), or None."""
    if record is None:
        return None
    from .recording import Recorder

    recorder = Recorder(Path(record), input_sample_rate=input_rate, output_sample_rate=output_rate)
    return SharedRecording(recorder)


class SharedRecording:
    """One :class:`~voicelive_nb.recording.Recorder` for every connection of a NotebookSession.

    A connection's ``close`` only notes that it closed; :meth:`finish` closes the files.
    """

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder

    def record_sent(self, event: Mapping[str, Any]) -> None:
        self.recorder.record_sent(event)

    def record_received(self, event: Mapping[str, Any]) -> None:
        self.recorder.record_received(event)

    def note(self, kind: str, **fields: Any) -> None:
        self.recorder.note(kind, **fields)

    def close(self) -> None:
        self.recorder.note("connection.closed")

    def finish(self) -> None:
        with contextlib.suppress(Exception):
            self.recorder.close()
