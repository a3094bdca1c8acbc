"""What every part of one emulator connection shares (pure): the outbox, time, ids, requested work.

The sans-I/O core of the emulator (:class:`~.protocol.ServerProtocol` and the parts it is made
of: :class:`~.responder.Responder`, :class:`~.tool_turns.ToolTurns`,
:class:`~.input_audio.InputAudio`) never waits, sleeps, or runs CPU-heavy speech code itself:

* events go into the :class:`Core` outbox (:meth:`Core.emit`), with an optional ``on_sent``
  hook that the I/O shell runs, with the time, when the event is on the wire;
* CPU work (VAD scoring, TTS, ASR, a ``replies=`` function) is a :class:`Job` the shell
  takes from :meth:`Core.take_work`, runs (inline, in an executor, or awaited) and hands back;
* a job, and anything else that finishes later, is a :class:`Pending`: a tiny promise whose
  callbacks run synchronously when it resolves, so a response's plan (a generator, see
  :mod:`.responder`) continues exactly where it yielded it.

Time comes in as milliseconds on a monotonic clock (:attr:`Core.now_ms`); ids come from an
injected ``new_id`` function.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from .items import ItemStore

if TYPE_CHECKING:
    from .options import ConversationOptions, EmulatorStats

__all__ = [
    "DELTA_TYPES",
    "Core",
    "InputProcessing",
    "Job",
    "Outgoing",
    "PassThrough",
    "Pending",
    "Until",
    "error_event",
]

Event = dict[str, Any]
T = TypeVar("T")

#: Streaming deltas: what is dropped from the outbox when their response is cancelled.
DELTA_TYPES = frozenset(
    {
        "response.audio.delta",
        "response.audio_transcript.delta",
        "response.audio_timestamp.delta",
        "response.text.delta",
        "response.function_call_arguments.delta",
        "response.mcp_call_arguments.delta",
    }
)


def error_event(
    code: str | None,
    message: str,
    *,
    param: str | None = None,
    event_id: str | None = None,
    error_type: str = "invalid_request_error",
) -> Event:
    """An ``error`` server event; ``event_id`` is the client event that caused it."""
    return {
        "type": "error",
        "error": {"type": error_type, "code": code, "message": message, "param": param, "event_id": event_id},
    }


class Pending(Generic[T]):
    """A result that arrives later (a job's, a transcript's); callbacks run when it resolves."""

    def __init__(self) -> None:
        self.done = False
        self.value: T | None = None
        self.error: BaseException | None = None
        self._callbacks: list[Callable[[Pending[T]], None]] = []

    def then(self, callback: Callable[[Pending[T]], None]) -> None:
        """Run ``callback(self)`` once resolved (at once if it already is)."""
        if self.done:
            callback(self)
        else:
            self._callbacks.append(callback)

    def resolve(self, value: T) -> None:
        self._settle(value, None)

    def fail(self, error: BaseException) -> None:
        self._settle(None, error)

    def _settle(self, value: T | None, error: BaseException | None) -> None:
        if self.done:
            return
        self.done, self.value, self.error = True, value, error
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)


_job_ids = itertools.count(1)


class Job(Pending[Any]):
    """CPU work the core asks the shell to run: ``kind`` with ``args``.

    Kinds: ``vad_model`` (rate) → a speech-probability model; ``vad_score`` (model, mono PCM16)
    → probabilities; ``render`` (text, output format, chunk ms) → :class:`~.responses.Rendered`;
    ``transcribe`` (PCM16, rate, phrases) → text; ``stream_finish`` (a streaming recogniser's
    handle) → text or ``None``; ``reply`` (what the user said) → the ``replies=`` function's text.
    A ``blocking`` job holds the client's later events back until it is done (VAD: events are
    handled in order, as if each append waited for its scoring).
    """

    def __init__(self, kind: str, args: tuple[Any, ...], *, blocking: bool = False) -> None:
        super().__init__()
        self.id = next(_job_ids)
        self.kind = kind
        self.args = args
        self.blocking = blocking

    def __repr__(self) -> str:
        return f"Job({self.id}, {self.kind!r}{', blocking' if self.blocking else ''})"


@dataclass(frozen=True)
class Until:
    """What a response's plan yields to wait for the clock (ms)."""

    ms: float


@dataclass
class Outgoing:
    """An event to send, and the hook to run (with the time in ms) once it is on the wire."""

    event: Event
    on_sent: Callable[[float], None] | None = None


class InputProcessing(Protocol):
    """Noise suppression / echo cancellation of the input (``enhance.InputPath`` implements it)."""

    def process(self, session: Mapping[str, Any], raw: bytes, mono: bytes) -> bytes: ...

    def delay_ms(self, session: Mapping[str, Any]) -> int: ...

    def sent(
        self, session: Mapping[str, Any], chunk: bytes, rate: int, now_ms: float | None = None
    ) -> None: ...

    def stop_playout(self) -> None: ...

    def input_resumed(self, now_ms: float, rate: int) -> None: ...

    def close(self) -> None: ...


class PassThrough:
    """No input processing: the audio as the client sent it (for in-memory use)."""

    def process(self, session: Mapping[str, Any], raw: bytes, mono: bytes) -> bytes:
        return mono

    def delay_ms(self, session: Mapping[str, Any]) -> int:
        return 0

    def sent(self, session: Mapping[str, Any], chunk: bytes, rate: int, now_ms: float | None = None) -> None:
        return None

    def stop_playout(self) -> None:
        return None

    def input_resumed(self, now_ms: float, rate: int) -> None:
        return None

    def close(self) -> None:
        return None


class Core:
    """The shared state of one connection: session, conversation, outbox, clock, ids, work."""

    def __init__(
        self,
        session: Event,
        options: ConversationOptions,
        *,
        new_id: Callable[[str], str],
        now_ms: float,
        input_path: InputProcessing,
        api_version: str | None,
        features: tuple[str, ...],
    ) -> None:
        self.session = session
        self.options = options
        self.stats: EmulatorStats = options.stats
        self.new_id = new_id
        self.now_ms = now_ms
        self.input_path = input_path
        self.api_version = api_version
        self.features = features
        self.items = ItemStore()
        self.conversation_id = new_id("conv")
        self.closed = False
        self.audio_appended = False
        self.audio_produced = False
        self._outbox: deque[Outgoing] = deque()
        self._discards: list[str] = []
        self._work: list[Job] = []
        self.blocking_jobs = 0
        #: Bugs caught in the core, ``(what, exception)``: the shell logs them (the core has no logger).
        self.failures: list[tuple[str, BaseException]] = []

    # --- the outbox -------------------------------------------------------------------------------

    def emit(self, event: Event, on_sent: Callable[[float], None] | None = None) -> None:
        """Queue a server event (nothing once the connection is closed)."""
        if self.closed:
            return
        if event["type"] == "error":
            self.stats.errors_sent += 1
        self._outbox.append(Outgoing(event, on_sent))
        if event["type"] == "response.done" and self.options.tokens is not None:
            used = (event.get("response", {}).get("usage") or {}).get("total_tokens", 0)
            self._outbox.append(Outgoing(self.options.tokens.use(int(used or 0), self.now_ms / 1000.0)))

    def drop_unsent(self, response_id: str) -> None:
        """A cancelled response: drop its deltas not yet handed out, and ask the shell to do the same."""
        self._outbox = deque(
            o
            for o in self._outbox
            if not (o.event.get("type") in DELTA_TYPES and o.event.get("response_id") == response_id)
        )
        self._discards.append(response_id)

    def next_outgoing(self) -> Outgoing | None:
        """The oldest queued event (the shell runs its ``on_sent`` when it is on the wire)."""
        return self._outbox.popleft() if self._outbox else None

    def take_discards(self) -> list[str]:
        """Responses cancelled since the last call: a shell with its own queue drops their unsent deltas."""
        out, self._discards = self._discards, []
        return out

    # --- work -------------------------------------------------------------------------------------

    def request(self, kind: str, *args: Any, blocking: bool = False) -> Job:
        """Ask the shell to run a job; its result arrives through :meth:`Pending.then`."""
        job = Job(kind, args, blocking=blocking)
        if blocking:
            self.blocking_jobs += 1
        self._work.append(job)
        return job

    def take_work(self) -> list[Job]:
        out, self._work = self._work, []
        return out

    # --- session facts ------------------------------------------------------------------------------

    @property
    def in_rate(self) -> int:
        return int(self.session["input_audio_sampling_rate"])

    @property
    def channels(self) -> int:
        ec = self.session.get("input_audio_echo_cancellation")
        return int(ec["channels"]) if ec else 1

    @property
    def audio_format(self) -> tuple[str, int]:
        """The session's input ``(format, channels)``, as :func:`~.items.build_item` wants it."""
        return str(self.session["input_audio_format"]), self.channels

    def transcribing(self) -> bool:
        return self.session.get("input_audio_transcription") is not None
