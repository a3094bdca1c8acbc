"""The service's published limits, as the emulator enforces them (no clocks here: time is an argument).

* A connection lasts at most :data:`MAX_CONNECTION_S` (60 minutes): ``session.expires_at`` says
  when, and at that moment the server sends an ``error`` with code ``session_expired`` and
  closes with 1001 (see :mod:`.server`).
* At most :data:`MAX_CONNECTIONS_PER_MINUTE` (30) new connections per minute per resource: one
  more is refused before the WebSocket upgrade with HTTP 429 and a ``Retry-After`` header
  (:class:`ConnectionRate`).
* :data:`TOKENS_PER_MINUTE` (120,000) tokens per minute per resource: after every response the
  server sends ``rate_limits.updated`` with what is left of the current minute
  (:class:`TokenBudget`), in the shape the live service uses:
  ``{"rate_limits": [{"name": "tokens", "limit": …, "remaining": …, "reset_seconds": …}]}``.

Every number is configurable (``run_emulator(max_connection_s=2, max_connections_per_minute=2,
tokens_per_minute=1000)``, or the CLI's ``--max-connection-s`` etc.) so tests can reach them.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidValue

__all__ = [
    "MAX_CONNECTIONS_PER_MINUTE",
    "MAX_CONNECTION_S",
    "TOKENS_PER_MINUTE",
    "WINDOW_S",
    "ConnectionRate",
    "RateDecision",
    "TokenBudget",
    "check_limit",
]

#: Longest connection, in seconds (published: 60 minutes).
MAX_CONNECTION_S = 60 * 60
#: New connections per minute per resource (published: 30).
MAX_CONNECTIONS_PER_MINUTE = 30
#: Tokens per minute per resource (published: 120,000).
TOKENS_PER_MINUTE = 120_000
#: The window of both rates.
WINDOW_S = 60.0


def check_limit(name: str, value: Any, *, integer: bool) -> None:
    """Raise ``ValueError`` naming the option unless ``value`` is a positive number."""
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not (value > 0 and math.isfinite(value)):
        kind = "a positive integer" if integer else "a positive number of seconds"
        raise InvalidValue(f"invalid {name} {value!r}; use {kind}")


@dataclass(frozen=True)
class RateDecision:
    """Whether a new connection is accepted, and if not how long until one would be."""

    allowed: bool
    retry_after_s: float = 0.0


class ConnectionRate:
    """A sliding one-minute window of accepted connections."""

    def __init__(self, per_minute: int = MAX_CONNECTIONS_PER_MINUTE, window_s: float = WINDOW_S) -> None:
        check_limit("max_connections_per_minute", per_minute, integer=True)
        self.per_minute = per_minute
        self.window_s = window_s
        self._accepted: deque[float] = deque()
        self.refused = 0

    def _expire(self, now_s: float) -> None:
        while self._accepted and self._accepted[0] <= now_s - self.window_s:
            self._accepted.popleft()

    def admit(self, now_s: float) -> RateDecision:
        """Count a new connection at ``now_s`` if the window has room."""
        self._expire(now_s)
        if len(self._accepted) >= self.per_minute:
            self.refused += 1
            return RateDecision(False, max(0.0, self._accepted[0] + self.window_s - now_s))
        self._accepted.append(now_s)
        return RateDecision(True)

    def refusal_message(self, decision: RateDecision) -> str:
        wait = max(1, math.ceil(decision.retry_after_s))
        return (
            f"too many requests: more than {self.per_minute} new connections in a minute for this resource; "
            f"retry after {wait} s"
        )


class TokenBudget:
    """Tokens used in the current one-minute window, shared by every connection of a server."""

    def __init__(self, per_minute: int = TOKENS_PER_MINUTE, window_s: float = WINDOW_S) -> None:
        check_limit("tokens_per_minute", per_minute, integer=True)
        self.per_minute = per_minute
        self.window_s = window_s
        self._used: deque[tuple[float, int]] = deque()
        self._total = 0

    def _expire(self, now_s: float) -> None:
        while self._used and self._used[0][0] <= now_s - self.window_s:
            self._total -= self._used.popleft()[1]

    def remaining(self, now_s: float) -> int:
        self._expire(now_s)
        return max(0, self.per_minute - self._total)

    def use(self, tokens: int, now_s: float) -> dict[str, Any]:
        """Count ``tokens`` at ``now_s``; the ``rate_limits.updated`` event to send."""
        self._expire(now_s)
        if tokens > 0:
            self._used.append((now_s, int(tokens)))
            self._total += int(tokens)
        return self.event(now_s)

    def event(self, now_s: float) -> dict[str, Any]:
        remaining = self.remaining(now_s)
        reset = (self._used[0][0] + self.window_s - now_s) if self._used else 0.0
        return {
            "type": "rate_limits.updated",
            "rate_limits": [
                {
                    "name": "tokens",
                    "limit": self.per_minute,
                    "remaining": remaining,
                    "reset_seconds": round(max(0.0, reset), 3),
                }
            ],
        }


def capacity_refusal(max_sessions: int) -> str:
    """The HTTP 503 body when ``max_sessions`` connections are open (one wording, every server)."""
    return (
        f"service unavailable: the emulator is at its capacity of {max_sessions} sessions; "
        "retry after a session ends"
    )
