"""The emulator's per-server knobs and counters (pure data, shared by the core and the shell)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import InvalidValue
from . import session_defaults as sd

__all__ = ["ConversationOptions", "EmulatorStats", "Reply", "check_pacing"]

#: What ``replies=`` may be: a list of texts used in order, or a function of the user's words.
#: An entry of the list may instead be a scripted tool call, ``{"call": name, "arguments": {...}}``
#: (or a list of them, for parallel calls): that response calls the tool(s) instead of speaking.
Reply = (
    Sequence["str | Mapping[str, Any] | Sequence[Mapping[str, Any]]"]
    | Callable[[str], "str | Awaitable[str]"]
    | None
)


@dataclass
class EmulatorStats:
    """Counters over all connections of one server (read them; the server updates them)."""

    connections_total: int = 0
    connections_open: int = 0
    handshakes_rejected: int = 0
    events_received: int = 0
    events_sent: int = 0
    errors_sent: int = 0
    responses: int = 0
    responses_cancelled: int = 0
    barge_ins: int = 0
    input_audio_ms: float = 0.0
    vad_cpu_s: float = 0.0
    speech_turns: int = 0


@dataclass
class ConversationOptions:
    """Server-wide knobs a conversation follows."""

    pace: Literal["realtime", "fast"] = "realtime"
    replies: Reply = None
    transcription: bool = True
    chunk_ms: int = 100
    #: In real-time pacing, audio is sent this far ahead of its playout time (a small jitter cushion).
    lead_ms: int = 100
    session_max_s: float = sd.DEFAULT_SESSION_MAX_S
    #: Where the shell runs TTS, ASR and long VAD steps (a ``concurrent.futures.Executor``; None: the loop's).
    executor: Any = None
    #: Recognise while the user speaks (speech/streaming_asr.py); False: decode the utterance after its turn.
    streaming_asr: bool = True
    #: The server's limits.TokenBudget: ``rate_limits.updated`` after every response (None: not sent).
    tokens: Any = None
    stats: EmulatorStats = field(default_factory=EmulatorStats)


def check_pacing(pace: Any, chunk_ms: Any) -> None:
    """Refuse a ``pace`` other than realtime/fast and a ``chunk_ms`` outside 20 to 1000 (an integer),
    naming the option (every server that builds :class:`ConversationOptions` checks these)."""
    if pace not in ("realtime", "fast"):
        raise InvalidValue(f"invalid pace {pace!r}; use 'realtime' or 'fast'")
    if isinstance(chunk_ms, bool) or not isinstance(chunk_ms, int) or not 20 <= chunk_ms <= 1000:
        raise InvalidValue(f"invalid chunk_ms {chunk_ms!r}; use 20 to 1000")
