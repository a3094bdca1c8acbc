"""Conversations that outlive their connection: the re-seed plan, the rollover moment, the connection budget.

A Voice Live connection ends after at most 60 minutes (the session object's ``expires_at``
says when), and a resource accepts about 30 new connections per minute.
:class:`~voicelive_nb.notebook_session.NotebookSession` rolls over to a fresh connection
before the deadline, and reconnects after a loss, carrying the conversation over: this
module holds the parts of that which need no socket.

* :func:`history_items` turns a connection's items (as the state machine saw them) into
  ``conversation.item.create`` payloads: user and assistant messages as text (an assistant
  audio item becomes a text message of its transcript), function calls and their outputs as
  ``function_call`` / ``function_call_output`` items.
* :func:`reseed_plan` bounds them by a budget of characters and items, the oldest dropped
  first and replaced by one note item (:data:`OMITTED_NOTE`); an output whose call was
  dropped goes with it.
* :func:`rollover_due` decides the moment: inside the margin before the deadline at a quiet
  moment (no response running, the user not speaking), and at the hard deadline whatever happens.
* :class:`ConnectionBudget` is a sliding-window limit of new connections; :func:`process_budget`
  is the one every session of the process shares (30 per 60 s).
"""

from __future__ import annotations

import asyncio
import bisect
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = [
    "CONNECTIONS_PER_MINUTE",
    "OMITTED_NOTE",
    "PUBLISHED_MAX_CONNECTION_S",
    "ConnectionBudget",
    "ReseedPlan",
    "history_items",
    "process_budget",
    "reseed_plan",
    "rollover_due",
]

#: The service's published per-connection limit (``expires_at`` is what counts when it is sent).
PUBLISHED_MAX_CONNECTION_S = 60 * 60
#: New connections per minute per resource (published limit).
CONNECTIONS_PER_MINUTE = 30
#: The note that stands for the dropped oldest part of the conversation.
OMITTED_NOTE = "[earlier conversation omitted]"
#: Client item ids are at most 32 characters.
_MAX_ID = 32


@dataclass(frozen=True)
class ReseedPlan:
    """What to send to a fresh connection: ``items`` (the ``item`` of each ``conversation.item.create``)."""

    items: tuple[dict[str, Any], ...]
    dropped: int  #: items of the history left out for the budget
    chars: int  #: characters of text in ``items``

    def events(self) -> list[dict[str, Any]]:
        """The client events, in order."""
        return [{"type": "conversation.item.create", "item": dict(item)} for item in self.items]


def _item_id(item_id: object) -> str | None:
    return item_id if isinstance(item_id, str) and 0 < len(item_id) <= _MAX_ID else None


def _content_text(data: Mapping[str, Any]) -> str:
    parts = []
    content = data.get("content")
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, Mapping):
                continue
            for key in ("text", "transcript"):
                value = part.get(key)
                if isinstance(value, str) and value:
                    parts.append(value)
                    break
    return "".join(parts)


def history_items(
    items: Iterable[Any],
    transcripts: Mapping[str, str] | None = None,
    *,
    skip_ids: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """The conversation as ``conversation.item.create`` items, in order.

    ``items`` are :class:`~voicelive_nb.protocol.state.ConversationItem` (or anything with
    ``id``, ``type``, ``role``, ``data``, ``deleted``), in conversation order; ``transcripts``
    maps item ids to their text as transcribed (what an audio item said). Items in
    ``skip_ids``, deleted items, messages without any text and item types that cannot be
    re-created (MCP, unknown) are left out.
    """
    texts = dict(transcripts or {})
    skip = set(skip_ids)
    out: list[dict[str, Any]] = []
    for item in items:
        if getattr(item, "deleted", False) or item.id in skip:
            continue
        data: Mapping[str, Any] = item.data if isinstance(item.data, Mapping) else {}
        kind = item.type or data.get("type")
        new: dict[str, Any] | None = None
        if kind == "message" and item.role in ("user", "assistant", "system"):
            text = texts.get(item.id) or _content_text(data)
            if text:
                part = "text" if item.role == "assistant" else "input_text"
                new = {"type": "message", "role": item.role, "content": [{"type": part, "text": text}]}
        elif kind == "function_call":
            call_id, name = data.get("call_id"), data.get("name")
            if isinstance(call_id, str) and isinstance(name, str):
                arguments = data.get("arguments")
                new = {
                    "type": "function_call",
                    "call_id": call_id,
                    "name": name,
                    "arguments": arguments if isinstance(arguments, str) else "{}",
                }
        elif kind == "function_call_output":
            call_id, output = data.get("call_id"), data.get("output")
            if isinstance(call_id, str):
                new = {
                    "type": "function_call_output",
                    "call_id": call_id,
                    "output": output if isinstance(output, str) else "",
                }
        if new is None:
            continue
        item_id = _item_id(item.id)
        if item_id is not None:
            new["id"] = item_id
        out.append(new)
    return out


def _chars(item: Mapping[str, Any]) -> int:
    if item.get("type") == "function_call":
        return len(str(item.get("arguments", ""))) + len(str(item.get("name", "")))
    if item.get("type") == "function_call_output":
        return len(str(item.get("output", "")))
    return sum(len(str(p.get("text", ""))) for p in item.get("content", ()) if isinstance(p, Mapping))


def check_budget(max_chars: Any, max_items: Any) -> None:
    """Validate the re-seed budget (``ConfigError`` naming the field)."""
    for name, value, what in (
        ("reseed_max_chars", max_chars, "characters"),
        ("reseed_max_items", max_items, "items"),
    ):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(name, value, f"0 or more {what}, or None for no bound")


def reseed_plan(
    history: Sequence[Mapping[str, Any]],
    *,
    max_chars: int | None = 20_000,
    max_items: int | None = 100,
) -> ReseedPlan:
    """The newest part of ``history`` that fits the budget, with a note for what was dropped.

    The note item (:data:`OMITTED_NOTE`, a system message) counts towards ``max_items``
    but not ``max_chars``. A ``function_call_output`` whose ``function_call`` was dropped is
    dropped too, so the fresh conversation never holds an answer to an unknown call.
    """
    check_budget(max_chars, max_items)
    kept: list[dict[str, Any]] = []
    chars = 0
    for item in reversed(history):
        size = _chars(item)
        over_items = max_items is not None and len(kept) + 1 > max_items
        over_chars = max_chars is not None and chars + size > max_chars
        if over_items or over_chars:
            break
        kept.append(dict(item))
        chars += size
    kept.reverse()
    calls = {i.get("call_id") for i in kept if i.get("type") == "function_call"}
    orphans = [i for i in kept if i.get("type") == "function_call_output" and i.get("call_id") not in calls]
    for orphan in orphans:
        kept.remove(orphan)
        chars -= _chars(orphan)
    dropped = len(history) - len(kept)
    if dropped:
        note = {
            "type": "message",
            "role": "system",
            "content": [{"type": "input_text", "text": OMITTED_NOTE}],
        }
        if max_items is not None and len(kept) + 1 > max_items and kept:
            removed = kept.pop(0)
            chars -= _chars(removed)
            dropped += 1
        if max_items is None or max_items > 0:
            kept.insert(0, note)
    return ReseedPlan(tuple(kept), dropped, chars)


def rollover_due(now_s: float, deadline_s: float | None, margin_s: float, *, quiet: bool) -> bool:
    """Roll over now? Inside ``margin_s`` of ``deadline_s`` when ``quiet``; in the last quarter of the margin always."""
    if deadline_s is None:
        return False
    left = deadline_s - now_s
    if left <= margin_s * 0.25:
        return True
    return quiet and left <= margin_s


class ConnectionBudget:
    """At most ``limit`` new connections in any ``window_s`` seconds (a sliding window).

    :meth:`reserve` (pure, given the time) takes a slot and says how long to wait before
    using it; :meth:`acquire` waits that long (or until ``stop`` is set). Thread-safe: every
    session of the process may share one (:func:`process_budget`).
    """

    def __init__(
        self,
        limit: int = CONNECTIONS_PER_MINUTE,
        window_s: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError("limit", limit, "1 or more connections per window")
        if isinstance(window_s, bool) or not isinstance(window_s, (int, float)) or not 0 < window_s < 1e6:
            raise ConfigError("window_s", window_s, "a positive number of seconds")
        self.limit = limit
        self.window_s = float(window_s)
        self.clock = clock
        self.waited_s = 0.0  #: total time connections were held back
        self._slots: list[float] = []  # sorted
        self._lock = threading.Lock()

    def record(self, now: float | None = None) -> None:
        """Count a connection made now, without waiting (a user's own ``start()``)."""
        now = self.clock() if now is None else now
        with self._lock:
            self._prune(now)
            bisect.insort(self._slots, now)

    def _prune(self, now: float) -> None:
        while self._slots and self._slots[0] <= now - self.window_s:
            del self._slots[0]

    def reserve(self, now: float | None = None) -> float:
        """Take the next slot; the seconds to wait before connecting (0 when there is room now)."""
        now = self.clock() if now is None else now
        with self._lock:
            self._prune(now)
            at = now if len(self._slots) < self.limit else max(now, self._slots[-self.limit] + self.window_s)
            bisect.insort(self._slots, at)
            return max(0.0, at - now)

    def used(self, now: float | None = None) -> int:
        """Connections (made or reserved) in the current window."""
        now = self.clock() if now is None else now
        with self._lock:
            return sum(1 for t in self._slots if t > now - self.window_s)

    async def acquire(
        self, stop: asyncio.Event | None = None, on_wait: Callable[[float], None] | None = None
    ) -> bool:
        """Wait for a slot; False if ``stop`` was set meanwhile."""
        delay = self.reserve()
        if delay <= 0:
            return True
        self.waited_s += delay
        if on_wait is not None:
            on_wait(delay)
        if stop is None:
            await asyncio.sleep(delay)
            return True
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except asyncio.TimeoutError:
            return True
        return False

    def __repr__(self) -> str:
        return f"<ConnectionBudget {self.limit} per {self.window_s:g} s>"


_PROCESS_BUDGET: ConnectionBudget | None = None
_PROCESS_LOCK = threading.Lock()


def process_budget() -> ConnectionBudget:
    """The connection budget shared by every session of this process (30 per 60 s)."""
    global _PROCESS_BUDGET
    with _PROCESS_LOCK:
        if _PROCESS_BUDGET is None:
            _PROCESS_BUDGET = ConnectionBudget()
        return _PROCESS_BUDGET
