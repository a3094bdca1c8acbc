"""Keep a sweep inside the service's quotas: new connections per minute and tokens per minute.

A :class:`QuotaLimiter` is a sliding window: before a replay opens its session it calls
:meth:`QuotaLimiter.acquire` with the replay's estimated tokens, which waits until both the
connections and the tokens started in the last ``window_s`` seconds leave room for it. The
defaults are the published per-resource limits of Voice Live: :data:`DEFAULT_CONNECTIONS_PER_MIN`
new connections and :data:`DEFAULT_TOKENS_PER_MIN` tokens per minute. A replay bigger than the
whole token budget is let through alone (once the window is empty) rather than never.

Back-off: a 429 / rate-limit error (:func:`~voicelive_nb.lab.replay.is_rate_limited`) or a
``rate_limits.updated`` event with ``remaining`` 0 calls :meth:`QuotaLimiter.pause`, which holds
*every* worker until the delay (or the event's ``reset_seconds``) is over.

The clock and the sleep are injectable (``clock=``, ``sleep=``): a test drives the limiter with a
small manual clock and sees exactly when it lets connections through.

Token estimate (:func:`estimate_tokens`): input audio is counted at :data:`AUDIO_TOKENS_PER_S`
tokens per second (the realtime models' rate of about one token per 100 ms), responses at
:data:`RESPONSE_TOKENS` each when asked for. It is an estimate for planning, not a bill.

Cost (:func:`estimate_cost`): only from prices the caller gives (``prices={"audio_minute": 0.1}``
per minute of audio sent, and/or ``{"tokens_1m": 40.0}`` per million tokens, optionally
``"currency"``). No price is built in: none is published in the project's reference, so
without ``prices`` the cost is "unknown", never a guess.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = [
    "AUDIO_TOKENS_PER_S",
    "DEFAULT_CONNECTIONS_PER_MIN",
    "DEFAULT_TOKENS_PER_MIN",
    "RESPONSE_TOKENS",
    "QuotaLimiter",
    "QuotaLimits",
    "check_prices",
    "estimate_cost",
    "estimate_tokens",
    "rate_limit_pause_s",
    "retry_after_s",
]

#: The price keys :func:`check_prices` accepts (per minute of audio sent, per million tokens).
PRICE_KEYS = ("audio_minute", "tokens_1m")

DEFAULT_CONNECTIONS_PER_MIN = 30
DEFAULT_TOKENS_PER_MIN = 120_000
AUDIO_TOKENS_PER_S = 10.0
RESPONSE_TOKENS = 400


def estimate_tokens(send_s: float, responses: int = 0) -> int:
    """Estimated tokens of ``send_s`` seconds of input audio and ``responses`` responses."""
    return round(send_s * AUDIO_TOKENS_PER_S) + responses * RESPONSE_TOKENS


def check_prices(prices: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``prices`` validated (None stays None): ``audio_minute`` and/or ``tokens_1m``, each a
    number of 0 or more, plus an optional ``currency`` label; a ConfigError names a bad key."""
    if prices is None:
        return None
    if not isinstance(prices, Mapping):
        raise ConfigError("prices", prices, "a mapping such as {'audio_minute': 0.1} or {'tokens_1m': 40}")
    out: dict[str, Any] = {}
    for key, value in prices.items():
        if key == "currency":
            out[key] = str(value)
            continue
        if key not in PRICE_KEYS:
            raise ConfigError(f"prices.{key}", value, f"one of {', '.join(PRICE_KEYS)} or currency")
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (math.isfinite(value) and value >= 0)
        ):
            raise ConfigError(f"prices.{key}", value, "a finite price of 0 or more")
        out[key] = float(value)
    if not any(k in out for k in PRICE_KEYS):
        raise ConfigError("prices", dict(prices), f"at least one of {', '.join(PRICE_KEYS)}")
    return out


def estimate_cost(send_s: float, tokens: int, prices: Mapping[str, Any] | None) -> float | None:
    """The cost of ``send_s`` seconds of audio and ``tokens`` tokens at ``prices`` (None without)."""
    if not prices:
        return None
    return send_s / 60.0 * float(prices.get("audio_minute", 0.0)) + tokens / 1e6 * float(
        prices.get("tokens_1m", 0.0)
    )


_RETRY_AFTER = re.compile(r"retry[ -]after:?\s*(\d+(?:\.\d+)?)\s*s", re.IGNORECASE)


def retry_after_s(exc: BaseException) -> float | None:
    """How long a refusal asked to wait: an exception's ``retry_after_s`` attribute, or a
    "retry after N s" in its message (the emulator's 429 body says so); None when it does not say."""
    value = getattr(exc, "retry_after_s", None)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    found = _RETRY_AFTER.search(str(exc))
    return float(found.group(1)) if found else None


@dataclass(frozen=True)
class QuotaLimits:
    """Per-window budgets (both per ``window_s``, default a minute)."""

    connections: int = DEFAULT_CONNECTIONS_PER_MIN
    tokens: int = DEFAULT_TOKENS_PER_MIN
    window_s: float = 60.0

    def __post_init__(self) -> None:
        if not isinstance(self.connections, int) or self.connections < 1:
            raise ConfigError("connections_per_min", self.connections, "a whole number of 1 or more")
        if not isinstance(self.tokens, int) or self.tokens < 1:
            raise ConfigError("tokens_per_min", self.tokens, "a whole number of 1 or more")
        if not self.window_s > 0:
            raise ConfigError("window_s", self.window_s, "more than 0 seconds")


def rate_limit_pause_s(events: Iterable[tuple[float, Mapping[str, Any]]]) -> float | None:
    """The longest ``reset_seconds`` of an exhausted limit (``remaining`` ≤ 0) in the
    ``rate_limits.updated`` events of a replay, or None. Unknown shapes are ignored."""
    longest: float | None = None
    for _, ev in events:
        if ev.get("type") != "rate_limits.updated":
            continue
        limits = ev.get("rate_limits")
        if not isinstance(limits, list):
            continue
        for lim in limits:
            if not isinstance(lim, Mapping):
                continue
            remaining, reset = lim.get("remaining"), lim.get("reset_seconds")
            if isinstance(remaining, (int, float)) and remaining <= 0 and isinstance(reset, (int, float)):
                longest = max(longest or 0.0, float(reset))
    return longest


class QuotaLimiter:
    """Sliding-window limiter of new connections and tokens, shared by a sweep's workers
    (one event loop)."""

    def __init__(
        self,
        limits: QuotaLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.limits = limits or QuotaLimits()
        self._clock = clock
        self._sleep = sleep
        self._log: deque[tuple[float, int]] = deque()  # (start time, tokens)
        self._paused_until = 0.0
        self._lock = asyncio.Lock()
        #: seconds waited in total, and whether a worker is waiting right now (for the progress bar)
        self.waited_s = 0.0
        self.waiting = False
        self.backoffs = 0
        self.on_wait: Callable[[float, str], None] | None = None

    def _trim(self, now: float) -> None:
        while self._log and self._log[0][0] <= now - self.limits.window_s:
            self._log.popleft()

    def delay_for(self, tokens: int) -> tuple[float, str]:
        """How long a connection with ``tokens`` would have to wait now, and why ("" when 0)."""
        now = self._clock()
        self._trim(now)
        if now < self._paused_until:
            return self._paused_until - now, "rate limited"
        if len(self._log) >= self.limits.connections:
            k = len(self._log) - self.limits.connections
            return self._log[k][0] + self.limits.window_s - now, "connections/min"
        used = sum(t for _, t in self._log)
        if self._log and used + tokens > self.limits.tokens:
            # wait until enough of the oldest starts leave the window
            freed = 0
            for start, t in self._log:
                freed += t
                if used - freed + tokens <= self.limits.tokens:
                    return start + self.limits.window_s - now, "tokens/min"
            return self._log[-1][0] + self.limits.window_s - now, "tokens/min"
        return 0.0, ""

    async def acquire(self, tokens: int = 0) -> float:
        """Wait until a new connection with ``tokens`` fits, record it; return the seconds waited."""
        waited = 0.0
        async with self._lock:  # first come, first served
            while True:
                delay, why = self.delay_for(tokens)
                if delay <= 0:
                    break
                self.waiting = True
                if self.on_wait is not None:
                    self.on_wait(delay, why)
                await self._sleep(delay)
                waited += delay
            self.waiting = False
            self._log.append((self._clock(), tokens))
        self.waited_s += waited
        return waited

    def pause(self, seconds: float) -> None:
        """Hold every new connection for ``seconds`` from now (a 429 or an exhausted limit)."""
        self.backoffs += 1
        self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))

    def starts_in_window(self) -> int:
        """Connections started within the last window."""
        self._trim(self._clock())
        return len(self._log)

    def __repr__(self) -> str:
        lim = self.limits
        return (
            f"<QuotaLimiter {lim.connections} connections and {lim.tokens} tokens per {lim.window_s:g} s; "
            f"waited {self.waited_s:.1f} s, {self.backoffs} back-offs>"
        )
