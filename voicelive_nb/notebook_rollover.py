"""The proactive rollover of a :class:`~voicelive_nb.notebook_session.NotebookSession`.

A connection ends at its ``expires_at``. :class:`RolloverDriver` watches for the moment to leave
it (inside ``rollover_margin_s``, quiet: no response running or asked for, no tool call open,
the user not speaking, nothing playing; at the latest near the deadline), opens and re-seeds the
next connection, switches cells and the microphone to it in one synchronous step, and closes the
old one once a reply the deadline forced over has finished. The pure decisions (when is it due,
what to re-seed) are :mod:`voicelive_nb.rollover`'s; this is the engine-loop driver around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .rollover import PUBLISHED_MAX_CONNECTION_S, rollover_due

if TYPE_CHECKING:
    from .notebook_archive import ConversationArchive
    from .notebook_audio import SessionAudio
    from .session import Session

log = logging.getLogger("voicelive_nb.notebook")

#: A client event that the service answers with an event of its own before the conversation has it.
ANSWERED_BY = {
    "response.create": "response.created",
    "conversation.item.create": "conversation.item.created",
}


@dataclass
class ConnectionNotes:
    """What a notebook session notes about one of its connections: when its session was created
    (Unix s), and when a cell last asked for an answer (``response.create``...) and the service
    last gave one (monotonic s, by event type)."""

    connected_unix: float | None = None
    asked: dict[str, float] = field(default_factory=dict)
    answered: dict[str, float] = field(default_factory=dict)


#: The notes of each connection, for as long as the connection (its Session) is alive.
_NOTES: weakref.WeakKeyDictionary[Session, ConnectionNotes] = weakref.WeakKeyDictionary()


def notes(session: Session) -> ConnectionNotes:
    """The notes of ``session`` (empty ones for a connection not built by a notebook session)."""
    found = _NOTES.get(session)
    if found is None:
        found = _NOTES[session] = ConnectionNotes()
    return found


class RolloverSettings(Protocol):
    """What the driver reads of its notebook session's settings (they may change between rollovers)."""

    rollover_margin_s: float
    setup_timeout_s: float
    reseed: bool
    reseed_max_chars: int | None
    reseed_max_items: int | None


class RolloverDriver:
    """Finds the quiet moment before a connection expires and moves the conversation to the next one.

    It owns the wake-up on every event, the count of cell sends under way per connection (a
    switch waits for them), the connection a failed rollover stays on (:attr:`no_rollover`) and
    the tasks closing rolled-over connections. ``current`` / ``switch`` read and set the
    connection cells talk to; ``open_next`` makes the next one (None: stopped while waiting).
    """

    def __init__(
        self,
        settings: RolloverSettings,
        archive: ConversationArchive,
        audio: SessionAudio,
        *,
        current: Callable[[], Session | None],
        switch: Callable[[Session], None],
        open_next: Callable[[], Awaitable[Session | None]],
    ) -> None:
        self.settings = settings
        self.archive = archive
        self.audio = audio
        self._current = current
        self._switch = switch
        self._open_next = open_next
        #: Sends from cells under way, per connection (a rollover waits for them: they are not in ``_sent`` yet).
        self.inflight: dict[Session, int] = {}
        #: The connection a rollover failed on: it is not rolled over again.
        self.no_rollover: Session | None = None
        self.closers: set[asyncio.Task[None]] = set()
        self._wake_event: asyncio.Event | None = None

    def reset(self) -> None:
        self.no_rollover = None

    async def wait_closers(self) -> None:
        """Let the rolled-over connections finish closing (bounded)."""
        for closer in tuple(self.closers):
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(closer, 5)

    # ------------------------------------------------------------------ when

    @staticmethod
    def deadline(session: Session | None) -> float | None:
        """When ``session`` ends (Unix seconds): its ``expires_at``, else 60 min after it connected."""
        if session is None:
            return None
        expires = session.expires_at
        if expires is not None:
            return expires
        started = notes(session).connected_unix
        return None if started is None else started + PUBLISHED_MAX_CONNECTION_S

    async def moment(self, session: Session) -> bool:
        """Return True at the moment to roll over (quiet, inside the margin; at the latest near the deadline)."""
        margin = self.settings.rollover_margin_s
        while True:
            deadline = self.deadline(session) if self._current() is session else None
            if deadline is None:
                await asyncio.sleep(0.5)
                continue
            now = time.time()
            if rollover_due(now, deadline, margin, quiet=self.quiet(session)):
                return True
            far = deadline - margin - now
            if far > 0.05:
                await asyncio.sleep(min(far, 1.0))
            else:  # inside the margin: look again on every event (a turn's end is the quiet moment)
                await self._next_event(0.05)

    async def _next_event(self, timeout: float) -> None:
        wake = self._wake
        wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout)

    async def _until_quiet(self, session: Session) -> None:
        """Until ``session`` is quiet, its connection is gone, or its deadline is 0.1 s away."""
        while session.failure is None and not self.quiet(session):
            expires = session.expires_at
            if expires is None or time.time() >= expires - 0.1:
                return
            await self._next_event(0.02)

    @property
    def _wake(self) -> asyncio.Event:
        """Set on every event received (engine loop): the rollover looks for its quiet moment then."""
        if self._wake_event is None:
            self._wake_event = asyncio.Event()
        return self._wake_event

    def woken(self, _event: Any) -> None:
        """Handler of every event of every connection."""
        if self._wake_event is not None:
            self._wake_event.set()

    @contextlib.contextmanager
    def sending(self, session: Session) -> Iterator[None]:
        """A cell's send to ``session`` is under way (the moment is not quiet until it has gone)."""
        self.inflight[session] = self.inflight.get(session, 0) + 1
        try:
            yield
        finally:
            left = self.inflight.pop(session, 1) - 1
            if left > 0:
                self.inflight[session] = left

    def quiet(self, session: Session) -> bool:
        """No response running or asked for, no tool call open, the user not speaking, nothing playing."""
        state = session.state
        return (
            state.active_response is None
            and not state.user_speaking
            and not state.pending_function_calls
            and not self.audio.speaker_busy()
            and not self.inflight.get(session)
            and not getattr(session.source, "playing", False)  # a speak() is under way
            and not response_requested(session)
            and all(entry.final for entry in state.transcript[-4:])
        )

    # ------------------------------------------------------------------ how

    async def roll_over(self, old: Session) -> Session | None:
        """Open the next connection, re-seed it, move the microphone over, close the old one."""
        started = time.monotonic()
        nxt = await self._open_next()
        if nxt is None:
            return None
        try:
            await nxt.open()
            old_seeded = await self._carry_over(old, nxt)
        except Exception as exc:
            log.warning("rolling over to a new connection failed (%s); staying on this one", _reason(exc))
            self._switch(old)
            self.no_rollover = old
            with contextlib.suppress(Exception):
                await nxt.close()
            return None
        if old.failure is not None:
            log.info("the old connection ended during the rollover")
        handovers = self.archive.handovers
        feed = await self.audio.detach(old)
        handovers[-1]["last_old_frame"] = feed.last_sent_at if feed is not None else None
        self.audio.attach(nxt, handovers)
        handovers[-1].update(kind="rollover", prepare_ms=round((time.monotonic() - started) * 1000, 1))
        known = {item["id"] for item in self.archive.history}
        closer = asyncio.get_running_loop().create_task(self._close_old(old, nxt, old_seeded, known))
        self.closers.add(closer)
        closer.add_done_callback(self.closers.discard)
        return nxt

    async def seed(self, session: Session, extra: list[dict[str, Any]] | None = None) -> set[str]:
        """Re-seed ``session`` with the archived conversation (and ``extra``) as the settings say."""
        settings = self.settings
        return await self.archive.seed(
            session,
            extra or (),
            enabled=settings.reseed,
            max_chars=settings.reseed_max_chars,
            max_items=settings.reseed_max_items,
            timeout=settings.setup_timeout_s,
        )

    async def _carry_over(self, old: Session, nxt: Session) -> set[str]:
        """Seed ``nxt`` with the conversation and switch to it at a quiet moment of ``old``.

        Whatever ``old`` is given meanwhile (a cell's turn) is let finish and carried too. The
        last look at ``old`` and the switch happen together, synchronously — in the handler of
        the event that made ``old`` quiet, before any waiting cell hears of that event — so a
        cell's next turn can only go to ``nxt``. Returns the old connection's seeded ids.
        """
        carried = self.archive.collect(old)
        seeded = await self.seed(nxt, carried)
        while True:
            late = await self._switch_when_quiet(old, nxt, carried, seeded)
            if late is None:
                return self.archive.old_seeded
            for item in late:
                await nxt.send({"type": "conversation.item.create", "item": item})
                seeded.add(item["id"])
            carried.extend(late)
            await nxt.wait_for(
                "conversation.item.created",
                timeout=self.settings.setup_timeout_s,
                predicate=_item_is(late[-1]["id"]),
            )

    async def _switch_when_quiet(
        self, old: Session, nxt: Session, carried: list[dict[str, Any]], seeded: set[str]
    ) -> list[dict[str, Any]] | None:
        """Switch to ``nxt`` once ``old`` is quiet (None), or return what ``old`` added that ``nxt`` lacks."""
        outcome: asyncio.Future[list[dict[str, Any]] | None] = asyncio.get_running_loop().create_future()
        archive = self.archive

        def look(_event: Any = None) -> None:
            if outcome.done():
                return
            expires = old.expires_at
            forced = old.failure is not None or expires is None or time.time() >= expires - 0.1
            quiet = self.quiet(old)
            if not quiet and not forced:
                return
            known = {item["id"] for item in carried}
            late = [item for item in archive.collect(old) if item["id"] not in known]
            if late:
                outcome.set_result(late)
                return
            archive.retire(
                old, reason="rollover", collected=carried, max_items=self.settings.reseed_max_items
            )
            archive.handovers[-1]["forced"] = not quiet  # the deadline came before a quiet moment
            archive.old_seeded, archive.seeded = archive.seeded, seeded
            self._switch(nxt)  # from here on, cells talk to the new connection
            outcome.set_result(None)

        old.on("*", look)
        try:
            look()
            while not outcome.done():
                await asyncio.wait({outcome}, timeout=0.02)
                look()
        finally:
            old.off("*", look)
        return outcome.result()

    async def _close_old(self, old: Session, nxt: Session, old_seeded: set[str], known: set[str]) -> None:
        """Close a rolled-over connection; a reply the deadline forced over may finish first and is carried."""
        await self._until_quiet(old)
        archive = self.archive
        archive.refresh_past(old, old_seeded)
        late = [item for item in archive.collect(old, old_seeded) if item["id"] not in known]
        if late:
            archive.history.extend(late)
            if self._current() is nxt and nxt.failure is None:
                for item in late:
                    archive.seeded.add(item["id"])
                    with contextlib.suppress(Exception):
                        await nxt.send({"type": "conversation.item.create", "item": item})
        await old.close()
        archive.past_events.extend(old.timed_events())


def response_requested(session: Session, within_s: float = 10.0) -> bool:
    """A cell's ``response.create`` or ``conversation.item.create`` has not been answered yet."""
    noted = notes(session)
    now = time.monotonic()
    return any(
        noted.answered.get(kind, -1.0) < at and now - at < within_s for kind, at in noted.asked.items()
    )


def _item_is(item_id: str) -> Callable[[Any], bool]:
    return lambda e: isinstance(e.item, Mapping) and e.item.get("id") == item_id


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
