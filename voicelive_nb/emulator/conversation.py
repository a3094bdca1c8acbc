"""Per-connection conversation logic of the emulator (no sockets).

A :class:`Conversation` receives the client's raw JSON messages (:meth:`Conversation.handle_message`)
and sends server events (plain dicts) through an :class:`EventSink` that the socket layer
(:mod:`.server`) implements. It owns everything one Voice Live session has: the session
object, the input-audio timeline and buffer, server VAD, the conversation items, the one
active response and its playout clock.

The pure parts are plain functions and small classes at the top of this module
(:class:`ItemStore`, :func:`align_words`, :func:`plan_chunks`, :func:`error_event`, …);
:class:`Conversation` glues them to asyncio, threads (TTS and ASR run in an executor) and time.

Behaviour worth knowing (the protocol reference leaves these open):

* A voice turn: ``speech_started`` → ``speech_stopped`` → ``committed`` → ``conversation.item.created``
  (user) → [transcription ``delta`` + ``completed``, asynchronously] → ``response.created`` →
  ``output_item.added`` → ``conversation.item.created`` (assistant) → ``content_part.added`` →
  per 100 ms chunk: the words that start in it (``audio_transcript.delta``), the chunk
  (``audio.delta``), their ``audio_timestamp.delta`` → ``audio.done`` → ``audio_transcript.done`` →
  ``audio_timestamp.done`` → ``content_part.done`` → ``output_item.done`` → ``response.done``.
* Barge-in: ``speech_started``, then the cancelled response's closing events (unsent deltas are
  dropped; the transcript is what was sent), then ``conversation.item.truncated`` at the playout
  clock when ``auto_truncate`` is on. ``remove_filler_words`` (Azure VAD types) holds a
  ``speech_started`` back while the assistant talks until the speech has lasted
  :data:`FILLER_MAX_MS`; shorter speech is ignored entirely (no events).
* ``response.create`` during a response is an error unless ``response.cancel_previous`` is true;
  ``conversation.item.truncate`` of the item still being generated cancels that response first.
* ``replies`` lists are used in order per connection, then the default reply quotes the transcript.

Error codes used in ``error`` events (``error.type`` is ``invalid_request_error`` unless noted):

=====================================  ================================================================
``invalid_json``                       the frame is not JSON
``invalid_event``                      the JSON is not an object
``missing_required_parameter``         a required field is absent (``param`` names it, e.g. ``type``)
``invalid_value``                      a field has the wrong type or is out of range (``param``)
``unknown_parameter``                  ``session.update`` names a field the service does not know
``unknown_event_type``                 ``type`` is not a client event of Voice Live
``not_supported``                      a known client event the emulator does not implement
``invalid_base64``                     ``input_audio_buffer.append`` audio is not base64
``invalid_audio_length``               PCM16 audio with an odd byte count (or not whole stereo frames)
``input_audio_buffer_commit_empty``    commit with less than 100 ms of audio in the buffer
``conversation_already_has_active_response``  ``response.create`` while a response is in progress
``response_cancel_not_active``         ``response.cancel`` with nothing (or another id) in progress
``item_not_found``                     ``item_id`` / ``previous_item_id`` unknown
``duplicate_item_id``                  ``conversation.item.create`` with an id already used
``cannot_update_model`` / ``cannot_update_voice`` / ``cannot_update_input_audio``  see session_defaults
``session_expired``                    the session reached ``expires_at`` (then close 1001)
``internal_error`` (``server_error``)  a bug in the emulator; the connection stays usable
=====================================  ================================================================
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import copy
import inspect
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import numpy as np

from ..errors import NotFound, StateError
from ..speech.segmenter import (
    VadSegmenter,
    VadSettings,
    VadSpeechStarted,
    VadSpeechStopped,
    release_threshold,
)
from . import session_defaults as sd
from . import toolcalls as tc
from .enhance import InputPath
from .session_defaults import SessionError, VadConfig

__all__ = [
    "FILLER_MAX_MS",
    "Conversation",
    "ConversationOptions",
    "EmulatorStats",
    "EventSink",
    "ItemStore",
    "Reply",
    "align_words",
    "default_reply",
    "error_event",
    "plan_chunks",
]

logger = logging.getLogger("voicelive_nb.emulator")

T = TypeVar("T")
Event = dict[str, Any]
#: What ``replies=`` may be: a list of texts used in order, or a function of the user's words.
#: An entry of the list may instead be a scripted tool call, ``{"call": name, "arguments": {...}}``
#: (or a list of them, for parallel calls): that response calls the tool(s) instead of speaking.
Reply = (
    Sequence["str | Mapping[str, Any] | Sequence[Mapping[str, Any]]"]
    | Callable[[str], "str | Awaitable[str]"]
    | None
)

#: With ``remove_filler_words``, speech shorter than this during a response is a filler, not a barge-in.
FILLER_MAX_MS = 350
#: Manual commit needs at least this much audio (as the service says in its error message).
MIN_COMMIT_MS = 100
#: Audio kept before the current position while no speech is going on (prefix padding comes from here).
IDLE_KEEP_MS = 3000
#: The input buffer never holds more than this; older audio is dropped (with one warning event).
MAX_BUFFER_MS = 10 * 60 * 1000
#: User audio is kept for transcription on demand for this many of the latest items.
KEEP_USER_AUDIO_ITEMS = 4
NO_SPEECH_REPLY = "I heard something, but I could not make out the words."
_DELTA_TYPES = frozenset(
    {
        "response.audio.delta",
        "response.audio_transcript.delta",
        "response.audio_timestamp.delta",
        "response.text.delta",
        "response.function_call_arguments.delta",
        "response.mcp_call_arguments.delta",
    }
)
_KNOWN_UNSUPPORTED = frozenset(
    {
        "session.avatar.connect",
        "input_audio.turn.start",
        "input_audio.turn.append",
        "input_audio.turn.end",
        "input_audio.turn.cancel",
        "input_audio.clear",
        "mcp_approval_response",
        "transcription_session.update",
    }
)


# --- pure helpers ----------------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    """A fresh id such as ``item_3f9a0c1d2b4e5f60``."""
    return f"{prefix}_{secrets.token_hex(8)}"


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


#: Marks a canonical event that only the GA shape (api-version v1) sends; the edge strips it.
GA_ONLY = "_ga_only"


def item_done(previous_item_id: str | None, item: Event, *, ga_only: bool = False) -> Event:
    """A ``conversation.item.done`` (sent by the live service after a committed audio item, and by
    GA after every item); ``ga_only`` ones are dropped by the dated-version edge."""
    event: Event = {
        "type": "conversation.item.done",
        "previous_item_id": previous_item_id,
        "item": copy.deepcopy(item),
    }
    if ga_only:
        event[GA_ONLY] = True
    return event


def decode_client_frame(data: str | bytes) -> tuple[Any, str | None]:
    """``(message, None)``, or ``(None, what is wrong)`` for a frame that is not usable JSON.

    Pathological frames (nesting deep enough to exhaust the parser's recursion, invalid UTF-8,
    non-JSON) are reported, never raised: the connection stays usable.
    """
    try:
        return json.loads(data), None
    except RecursionError:
        return None, "the message is nested too deeply to parse; send a flat JSON object"
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"the message is not valid JSON: {exc}"


def _latest_outputs(items: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The ``(tool name, output)`` of the function_call_output items that end the conversation.

    Only outputs answering a function_call item of the conversation count (an output with no
    known call is not a tool round), so a response after them quotes them.
    """
    names = {i.get("call_id"): str(i.get("name", "")) for i in items if i.get("type") == "function_call"}
    outputs: list[tuple[str, str]] = []
    for item in reversed(items):
        if item.get("type") != "function_call_output":
            break
        if item.get("call_id") in names:
            outputs.append((names[item.get("call_id")], str(item.get("output", ""))))
    return outputs[::-1]


def _function_call_item(name: str, arguments: Mapping[str, Any]) -> Event:
    """A new in-progress function_call item (its arguments kept aside to stream as deltas)."""
    return {
        "id": new_id("item"),
        "object": "realtime.item",
        "type": "function_call",
        "status": "in_progress",
        "name": name,
        "call_id": new_id("call"),
        "arguments": "",
        "_arguments": tc.encode_arguments(arguments),
    }


def _latest_approval(items: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any], bool] | None:
    """The ``mcp_approval_request`` answered by the ``mcp_approval_response`` ending the conversation."""
    if not items or items[-1].get("type") != "mcp_approval_response":
        return None
    wanted = items[-1].get("approval_request_id")
    for item in items:
        if item.get("type") == "mcp_approval_request" and item.get("id") == wanted:
            return item, bool(items[-1].get("approve"))
    return None


def _json_object(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) and text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def default_reply(transcript: str) -> str:
    """The emulator's answer when no ``replies`` were scripted: it quotes what it heard."""
    text = transcript.strip()
    return f'You said: "{text}".' if text else NO_SPEECH_REPLY


@dataclass(frozen=True)
class Piece:
    """A part of the reply text and when its word is spoken (offset into the item's audio)."""

    offset_ms: float
    text: str


def align_words(text: str, words: Sequence[Any], total_ms: float) -> list[Piece]:
    """Cut ``text`` into consecutive pieces, one per spoken word, that concatenate to ``text``.

    ``words`` have ``text`` and ``offset_ms`` (TTS word timings). A word not found in the
    text (a number read out, say) gets no piece of its own; trailing punctuation goes with
    the last word. Without word timings the text's words are spread evenly over ``total_ms``.
    """
    pieces: list[Piece] = []
    low = text.lower()
    pos = 0
    for w in words:
        token = str(w.text).strip().lower()
        idx = low.find(token, pos) if token else -1
        if idx < 0:
            continue
        end = idx + len(token)
        pieces.append(Piece(float(w.offset_ms), text[pos:end]))
        pos = end
    if not pieces:
        tokens = re.findall(r"\s*\S+", text)
        step = total_ms / max(len(tokens), 1)
        return [Piece(i * step, tok) for i, tok in enumerate(tokens)] or ([Piece(0.0, text)] if text else [])
    if pos < len(text):
        last = pieces[-1]
        pieces[-1] = Piece(last.offset_ms, last.text + text[pos:])
    return pieces


def plan_chunks(offsets_ms: Iterable[float], chunk_count: int, chunk_ms: float) -> list[list[int]]:
    """Which of the (ascending) ``offsets_ms`` fall in each audio chunk; late ones go to the last chunk."""
    plan: list[list[int]] = [[] for _ in range(max(chunk_count, 1))]
    for i, off in enumerate(offsets_ms):
        plan[min(len(plan) - 1, max(0, int(off // chunk_ms)))].append(i)
    return plan


def text_until(pieces: Sequence[Piece], end_ms: float) -> str:
    """The transcript of the words that start before ``end_ms`` (what a listener heard)."""
    return "".join(p.text for p in pieces if p.offset_ms < end_ms).rstrip()


def _appender(target: list[str], text: str) -> Callable[[], None]:
    return lambda: target.append(text)


def words_of(text: str) -> int:
    return len(text.split())


class ItemStore:
    """The conversation: items in order, addressed by id (pure)."""

    def __init__(self) -> None:
        self._items: list[Event] = []

    def __contains__(self, item_id: object) -> bool:
        return any(i["id"] == item_id for i in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[Event]:
        return list(self._items)

    def get(self, item_id: str) -> Event | None:
        return next((i for i in self._items if i["id"] == item_id), None)

    def last_id(self) -> str | None:
        return self._items[-1]["id"] if self._items else None

    def insert(self, item: Event, previous_item_id: str | None = None) -> str | None:
        """Insert after ``previous_item_id`` (``None`` appends, ``"root"`` inserts first).

        Returns the id of the item now before it (``None`` at the start). Raises ``KeyError``
        when ``previous_item_id`` is unknown.
        """
        if previous_item_id is None:
            before = self.last_id()
            self._items.append(item)
            return before
        if previous_item_id == "root":
            self._items.insert(0, item)
            return None
        for idx, existing in enumerate(self._items):
            if existing["id"] == previous_item_id:
                self._items.insert(idx + 1, item)
                return previous_item_id
        raise NotFound(previous_item_id)

    def delete(self, item_id: str) -> bool:
        for idx, existing in enumerate(self._items):
            if existing["id"] == item_id:
                del self._items[idx]
                return True
        return False


def public_item(item: Mapping[str, Any]) -> Event:
    """A deep copy of a stored item for an event."""
    return copy.deepcopy(dict(item))


# --- the sink the socket layer provides -----------------------------------------------------------


class EventSink(Protocol):
    """Where a conversation sends its events (implemented by the server's outbox)."""

    async def send(self, event: Event, on_sent: Callable[[], None] | None = None) -> None:
        """Queue ``event`` (an ``event_id`` is added); ``on_sent`` runs once it is on the wire."""
        ...

    async def discard(self, predicate: Callable[[Event], bool]) -> int:
        """Drop queued events not yet sent that match; wait for one being sent. Returns how many."""
        ...


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
    executor: concurrent.futures.Executor | None = None
    #: Recognise while the user speaks (speech/streaming_asr.py); False: decode the utterance after its turn.
    streaming_asr: bool = True
    #: The server's limits.TokenBudget: ``rate_limits.updated`` after every response (None: not sent).
    tokens: Any = None
    stats: EmulatorStats = field(default_factory=EmulatorStats)


# --- response and audio state ---------------------------------------------------------------------


@dataclass
class AudioItemState:
    """What the server knows about an assistant item's audio (for truncation and auto_truncate)."""

    item_id: str
    output_rate: int
    bytes_per_sample: int
    pieces: list[Piece] = field(default_factory=list)
    sent_samples: int = 0
    playout_start: float | None = None  # loop time of the first delta on the wire
    truncated_ms: float | None = None

    @property
    def sent_ms(self) -> float:
        return self.sent_samples * 1000.0 / self.output_rate

    def playout_ms(self, now: float) -> float:
        """Where a listener who started playing at the first delta is now, within what was sent."""
        if self.playout_start is None:
            return 0.0
        return max(0.0, min((now - self.playout_start) * 1000.0, self.sent_ms))

    def playing(self, now: float) -> bool:
        """Still being heard: sent audio left on the playout clock, and not truncated (playback stopped)."""
        if self.playout_start is None or self.truncated_ms is not None:
            return False
        return (now - self.playout_start) * 1000.0 < self.sent_ms


@dataclass
class ActiveResponse:
    id: str
    item_id: str
    modalities: list[str]
    output_format: str
    params: Mapping[str, Any]
    conversation: str  # "auto" or "none"
    max_tokens: int | str
    audio: AudioItemState
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_reason: str | None = None
    task: asyncio.Task[None] | None = None
    item_opened: bool = False
    part_opened: bool = False
    text: str = ""
    sent_text: list[str] = field(default_factory=list)
    incomplete: bool = False
    timestamps: bool = False
    input_item_id: str | None = None
    previous_item_id: str | None = None
    #: What to say, decided before the reply began (the quote of a tool's output), if anything.
    planned_text: str | None = None
    #: The function_call items this response makes instead of speaking (see :mod:`.toolcalls`).
    calls: list[Event] = field(default_factory=list)
    calls_done: int = 0
    #: An approved (or approval-free) MCP call made before the message, and the message's output index.
    mcp_call: Event | None = None
    before: list[Event] = field(default_factory=list)
    message_index: int = 0

    @property
    def has_audio(self) -> bool:
        return "audio" in self.modalities


class _Cancelled(Exception):
    """The response was cancelled while waiting."""


class _CallsSent(Exception):
    """The response called tools instead of speaking (nothing more to stream)."""


@dataclass(frozen=True)
class _Rendered:
    chunks: list[bytes]
    chunk_samples: list[int]
    output_rate: int
    words: list[Any]
    total_ms: float


def _render_speech(text: str, output_format: str, chunk_ms: int) -> _Rendered:
    """TTS + conversion to the output format + chunking (runs in a worker thread)."""
    from ..audio.format import alaw_encode, resample, ulaw_encode
    from ..speech.tts import synthesize

    speech = synthesize(text, sample_rate=24000)
    rate = sd.output_sample_rate(output_format)
    pcm = resample(speech.pcm16, speech.sample_rate, rate)
    if output_format == "g711_ulaw":
        data, width = ulaw_encode(pcm), 1
    elif output_format == "g711_alaw":
        data, width = alaw_encode(pcm), 1
    else:
        data, width = pcm, 2
    step = rate * chunk_ms // 1000 * width
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    return _Rendered(
        chunks=chunks,
        chunk_samples=[len(c) // width for c in chunks],
        output_rate=rate,
        words=list(speech.words),
        total_ms=len(data) / width * 1000.0 / rate,
    )


def _decode_input(raw: bytes, fmt: str, channels: int) -> bytes:
    """Client input audio → mono PCM16 at the session's input rate."""
    from ..audio.format import alaw_decode, ulaw_decode

    if fmt == "g711_ulaw":
        return ulaw_decode(raw)
    if fmt == "g711_alaw":
        return alaw_decode(raw)
    if channels == 2:
        return np.frombuffer(raw, dtype="<i2")[0::2].astype("<i2").tobytes()
    return raw


# --- the conversation ------------------------------------------------------------------------------


class Conversation:
    """One Voice Live session: feed it client messages, it sends server events to the sink."""

    def __init__(
        self,
        sink: EventSink,
        *,
        model: str | None,
        api_version: str | None = None,
        features: Sequence[str] = (),
        agent: Mapping[str, Any] | None = None,
        options: ConversationOptions | None = None,
    ) -> None:
        self.sink = sink
        self.options = options or ConversationOptions()
        self.stats = self.options.stats
        self.api_version = api_version
        self.features = tuple(features)
        self.loop = asyncio.get_running_loop()
        self.session = sd.new_session(
            model,
            session_id=new_id("sess"),
            now_s=time.time(),
            expires_in_s=self.options.session_max_s,
            api_version=api_version,
            agent=agent,
        )
        self.conversation_id = new_id("conv")
        self.items = ItemStore()
        self.closed = False
        # input audio
        self._audio_appended = False
        self._audio_produced = False
        self._in_samples = 0  # session timeline, samples at the input rate
        self._buffer = bytearray()  # mono PCM16 since the last commit/clear
        self._buffer_start = 0  # timeline sample of _buffer[0]
        self._buffer_warned = False
        self._vad: VadConfig | None = None
        self._speech_prob: Any = None  # SpeechProbability, created on first use
        self._segmenter: VadSegmenter | None = None
        self._speech_item_id: str | None = None
        self._speech_start_ms = 0
        # a possible filler: (audio_start_ms, onset_ms, end of its last voiced window)
        self._deferred_start: tuple[int, float, float] | None = None
        self._input_path = InputPath()  # noise suppression and echo cancellation (enhance.py)
        # transcription
        self._item_audio: dict[str, tuple[bytes, int]] = {}
        self._asr: dict[str, asyncio.Task[str]] = {}
        self._transcribers: dict[tuple[str, ...] | None, Any] = {}
        self._asr_lock = asyncio.Lock()
        self._streaming: Any = None  # a streaming_asr.StreamingRecognizer, made on first speech
        self._text_inputs: dict[str, list[str]] = {}
        # responses
        self._active: ActiveResponse | None = None
        self._audio_items: dict[str, AudioItemState] = {}
        self._last_audio: AudioItemState | None = None
        self._reply_index = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._apply_vad(self.session["turn_detection"])
        self._handlers: dict[str, Callable[[Event], Awaitable[None]]] = {
            "session.update": self._on_session_update,
            "input_audio_buffer.append": self._on_append,
            "input_audio_buffer.commit": self._on_commit,
            "input_audio_buffer.clear": self._on_clear,
            "input_text.delta": self._on_text_delta,
            "input_text.done": self._on_text_done,
            "conversation.item.create": self._on_item_create,
            "conversation.item.retrieve": self._on_item_retrieve,
            "conversation.item.delete": self._on_item_delete,
            "conversation.item.truncate": self._on_item_truncate,
            "response.create": self._on_response_create,
            "response.cancel": self._on_response_cancel,
            "output_audio_buffer.clear": self._on_output_clear,
        }

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def input_ms(self) -> float:
        """Position of the session-wide input-audio timeline."""
        return self._in_samples * 1000.0 / self._in_rate

    @property
    def _in_rate(self) -> int:
        return int(self.session["input_audio_sampling_rate"])

    @property
    def _channels(self) -> int:
        ec = self.session.get("input_audio_echo_cancellation")
        return int(ec["channels"]) if ec else 1

    @property
    def active_response(self) -> ActiveResponse | None:
        return self._active

    async def start(self) -> None:
        """Send ``session.created``."""
        await self._send({"type": "session.created", "session": copy.deepcopy(self.session)})

    async def close(self) -> None:
        """The connection is gone: stop every task (nothing more is sent)."""
        self.closed = True
        self._input_path.close()
        if self._streaming is not None:
            self._streaming.close()
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    def _spawn(self, coro: Awaitable[T], name: str, *, log_errors: bool = True) -> asyncio.Task[T]:
        """A background task of this connection: cancelled on close; failures logged unless the
        awaiting side reports them itself (``log_errors=False``)."""
        task: asyncio.Task[T] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done if log_errors else self._task_done_quietly)
        return task

    def _task_done_quietly(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here, so an unawaited failure is not reported at exit

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            logger.error("emulator task %s failed", task.get_name(), exc_info=exc)

    async def _send(self, event: Event, on_sent: Callable[[], None] | None = None) -> None:
        if self.closed:
            return
        if event["type"] == "error":
            self.stats.errors_sent += 1
        await self.sink.send(event, on_sent)
        if event["type"] == "response.done" and self.options.tokens is not None:
            usage = event.get("response", {}).get("usage") or {}
            used = usage.get("total_tokens", 0) if isinstance(usage, dict) else 0
            await self.sink.send(self.options.tokens.use(int(used or 0), time.monotonic()))

    async def _run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.loop.run_in_executor(self.options.executor, fn, *args)

    # --- dispatch -----------------------------------------------------------------------------

    async def handle_message(self, data: str | bytes) -> None:
        """Handle one client frame; every problem becomes an ``error`` event."""
        msg = await self.parse_message(data)
        if msg is not None:
            await self.handle_event(msg)

    async def parse_message(self, data: str | bytes) -> Any:
        """Decode one client frame (counted as received); ``None`` after an ``error`` was sent for it."""
        self.stats.events_received += 1
        msg, problem = decode_client_frame(data)
        if problem is not None:
            await self._send(error_event("invalid_json", problem))
            return None
        return msg

    async def handle_event(self, msg: Any) -> None:
        """Handle one decoded client event (in the canonical, dated-version shape)."""
        if not isinstance(msg, dict):
            await self._send(
                error_event(
                    "invalid_event", f"a client event must be a JSON object, got {type(msg).__name__}"
                )
            )
            return
        client_id = msg.get("event_id") if isinstance(msg.get("event_id"), str) else None
        etype = msg.get("type")
        if etype is None:
            await self._send(
                error_event(
                    "missing_required_parameter",
                    "missing required parameter 'type'",
                    param="type",
                    event_id=client_id,
                )
            )
            return
        if not isinstance(etype, str):
            await self._send(
                error_event("invalid_value", "'type' must be a string", param="type", event_id=client_id)
            )
            return
        handler = self._handlers.get(etype)
        if handler is None:
            if etype in _KNOWN_UNSUPPORTED:
                code, text = "not_supported", f"the emulator does not support '{etype}'"
            else:
                code, text = "unknown_event_type", f"unknown client event type '{etype}'"
            await self._send(error_event(code, text, param="type", event_id=client_id))
            return
        try:
            await handler(msg)
        except SessionError as exc:
            await self._send(
                error_event(
                    exc.code, exc.message, param=exc.param, event_id=client_id, error_type=exc.error_type
                )
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("emulator failed on a %s event", etype)
            await self._send(
                error_event(
                    "internal_error",
                    f"the emulator failed on '{etype}': {type(exc).__name__}: {exc}",
                    event_id=client_id,
                    error_type="server_error",
                )
            )

    # --- session --------------------------------------------------------------------------------

    async def _on_session_update(self, msg: Event) -> None:
        if "session" not in msg:
            raise SessionError(
                "missing_required_parameter", "missing required parameter 'session'", "session"
            )
        new = sd.apply_session_update(
            self.session,
            msg["session"],
            audio_appended=self._audio_appended,
            audio_produced=self._audio_produced,
            api_version=self.api_version,
            features=self.features,
        )
        old = self.session
        self.session = new
        if new["input_audio_sampling_rate"] != old["input_audio_sampling_rate"]:
            self._speech_prob = None  # made again at the new rate (only possible before any audio)
        if new["turn_detection"] != old["turn_detection"]:
            self._apply_vad(new["turn_detection"])
        await self._send({"type": "session.updated", "session": copy.deepcopy(new)})

    def _apply_vad(self, turn_detection: Mapping[str, Any] | None) -> None:
        was = self._vad
        self._vad = sd.vad_config(turn_detection)
        if self._vad is None:
            self._segmenter = None
            self._speech_item_id = None
            self._deferred_start = None
            return
        settings = VadSettings(
            threshold=self._vad.threshold,
            prefix_padding_ms=self._vad.prefix_padding_ms,
            silence_duration_ms=self._vad.silence_duration_ms,
            speech_duration_ms=self._vad.speech_duration_ms,
        )
        if was is None or self._segmenter is None:
            self._segmenter = VadSegmenter(settings, window_ms=32.0, offset_ms=self.input_ms)
            self._segmenter.floor_ms = self._buffer_start * 1000.0 / self._in_rate
            if self._speech_prob is not None:
                self._speech_prob.reset()
        else:
            self._segmenter.update(settings)

    # --- input audio ----------------------------------------------------------------------------

    def _decode_audio_field(self, value: Any, param: str) -> bytes:
        if not isinstance(value, str):
            raise SessionError("invalid_value", f"'{param}' must be a base64 string", param)
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SessionError("invalid_base64", f"'{param}' is not valid base64: {exc}", param) from None

    def _check_audio_length(self, raw: bytes, param: str) -> None:
        fmt = self.session["input_audio_format"]
        if fmt != "pcm16":
            return
        frame = 2 * self._channels
        if len(raw) % frame:
            what = (
                "stereo (mic + reference) PCM16 frames of 4 bytes"
                if frame == 4
                else "PCM16 samples of 2 bytes"
            )
            raise SessionError(
                "invalid_audio_length",
                f"'{param}' has {len(raw)} bytes, which is not a whole number of {what}",
                param,
            )

    async def _on_append(self, msg: Event) -> None:
        if "audio" not in msg:
            raise SessionError("missing_required_parameter", "missing required parameter 'audio'", "audio")
        raw = self._decode_audio_field(msg["audio"], "audio")
        self._check_audio_length(raw, "audio")
        if not raw:
            return
        mono = _decode_input(raw, self.session["input_audio_format"], self._channels)
        mono = self._input_path.process(self.session, raw, mono)  # noise / echo (enhance.py)
        self._audio_appended = True
        rate = self._in_rate
        self._in_samples += len(mono) // 2
        self.stats.input_audio_ms += len(mono) / 2 * 1000.0 / rate
        self._buffer += mono
        if self._streaming is not None:
            self._streaming.feed(mono)
        max_bytes = MAX_BUFFER_MS * rate // 1000 * 2
        if len(self._buffer) > max_bytes:
            drop = len(self._buffer) - max_bytes
            del self._buffer[:drop]
            self._buffer_start += drop // 2
            if not self._buffer_warned:
                self._buffer_warned = True
                await self._send(
                    {
                        "type": "warning",
                        "warning": {
                            "message": "the input audio buffer holds more than 10 minutes; the oldest audio was dropped",
                            "code": "input_audio_buffer_full",
                            "param": None,
                        },
                    }
                )
        if self._vad is not None and self._segmenter is not None:
            await self._run_vad(mono)

    async def _run_vad(self, mono: bytes) -> None:
        if self._speech_prob is None:
            from ..speech.vad import SpeechProbability

            prob = await self._run_blocking(SpeechProbability, self._in_rate)
            if self._speech_prob is None:
                self._speech_prob = prob
                assert self._segmenter is not None
                # the model scores from here on: align the segmenter's timeline with it
                start_ms = (self._in_samples - len(mono) // 2) * 1000.0 / self._in_rate
                floor = self._segmenter.floor_ms
                self._segmenter.reset(start_ms)
                self._segmenter.floor_ms = min(floor, start_ms)
        t0 = time.perf_counter()
        if len(mono) > 2 * self._in_rate:  # over a second: score it off the event loop
            probs = await self._run_blocking(self._speech_prob.feed, mono)
        else:
            probs = self._speech_prob.feed(mono)
        self.stats.vad_cpu_s += time.perf_counter() - t0
        for p in probs:
            seg = self._segmenter
            if seg is None:  # VAD switched off by a handler below (cannot happen today, be safe)
                return
            for ev in seg.push(p):
                # the enhancer's fixed delay taken off, so times stay on the audio the client sent
                delay = self._input_path.delay_ms(self.session)
                if isinstance(ev, VadSpeechStarted):
                    await self._on_vad_start(max(0, ev.audio_start_ms - delay), seg.position_ms)
                elif isinstance(ev, VadSpeechStopped):
                    await self._on_vad_stop(max(0, ev.audio_end_ms - delay))
            deferred = self._deferred_start
            if deferred is not None and seg.in_speech:
                start_ms, onset_ms, voiced_end_ms = deferred
                if p >= release_threshold(seg.settings.threshold):
                    voiced_end_ms = seg.position_ms
                    self._deferred_start = (start_ms, onset_ms, voiced_end_ms)
                if voiced_end_ms - onset_ms >= FILLER_MAX_MS:
                    self._deferred_start = None
                    await self._speech_started(start_ms)
        if self._segmenter is not None and not self._segmenter.in_speech:
            self._trim_idle_buffer()

    def _trim_idle_buffer(self) -> None:
        keep = (IDLE_KEEP_MS + (self._vad.prefix_padding_ms if self._vad else 0)) * self._in_rate // 1000
        excess = len(self._buffer) // 2 - keep
        if excess > 0:
            del self._buffer[: excess * 2]
            self._buffer_start += excess

    def _responding(self) -> bool:
        now = self.loop.time()
        return self._active is not None or (self._last_audio is not None and self._last_audio.playing(now))

    async def _on_vad_start(self, audio_start_ms: int, position_ms: float) -> None:
        vad = self._vad
        assert vad is not None
        if vad.remove_filler_words and self._responding():
            # the segment has been voiced from its onset up to now; decide once it is long enough
            onset = position_ms - vad.speech_duration_ms
            if position_ms - onset < FILLER_MAX_MS:
                self._deferred_start = (audio_start_ms, onset, position_ms)
                return
        await self._speech_started(audio_start_ms)

    async def _speech_started(self, audio_start_ms: int) -> None:
        self._speech_item_id = new_id("item")
        self._speech_start_ms = audio_start_ms
        await self._send(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": audio_start_ms,
                "item_id": self._speech_item_id,
            }
        )
        self._stream_start()
        vad = self._vad
        if vad is None or not vad.interrupt_response:
            return
        active = self._active
        if active is not None:
            self.stats.barge_ins += 1
            await self._cancel_response(active, "turn_detected", auto_truncate=vad.auto_truncate)
        elif (
            vad.auto_truncate and self._last_audio is not None and self._last_audio.playing(self.loop.time())
        ):
            self.stats.barge_ins += 1
            state = self._last_audio
            await self._truncate(state, state.playout_ms(self.loop.time()))

    async def _on_vad_stop(self, audio_end_ms: int) -> None:
        if self._deferred_start is not None:
            # a filler while the assistant talks: ignored, as if it had not been said
            self._deferred_start = None
            self._drop_buffer_until(audio_end_ms)
            return
        item_id = self._speech_item_id or new_id("item")
        self._speech_item_id = None
        await self._send(
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": audio_end_ms, "item_id": item_id}
        )
        audio = self._buffer_slice(self._speech_start_ms, audio_end_ms)
        self._drop_buffer_until(audio_end_ms)
        self.stats.speech_turns += 1
        self._stream_finish(item_id)
        await self._commit_user_audio(item_id, audio)
        vad = self._vad
        if vad is not None and vad.create_response and self._active is None:
            await self._start_response({}, trigger_item=item_id)

    def _ms_to_sample(self, ms: float) -> int:
        return round(ms * self._in_rate / 1000.0)

    def _buffer_slice(self, start_ms: float, end_ms: float) -> bytes:
        a = max(0, self._ms_to_sample(start_ms) - self._buffer_start)
        b = max(a, self._ms_to_sample(end_ms) - self._buffer_start)
        return bytes(self._buffer[a * 2 : b * 2])

    def _drop_buffer_until(self, end_ms: float) -> None:
        n = min(len(self._buffer) // 2, max(0, self._ms_to_sample(end_ms) - self._buffer_start))
        del self._buffer[: n * 2]
        self._buffer_start += n

    async def _commit_user_audio(self, item_id: str, audio: bytes) -> None:
        previous = self.items.last_id()
        item: Event = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "audio": None, "transcript": None}],
        }
        self.items.insert(item)
        self._keep_audio(item_id, audio)
        await self._send(
            {"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id}
        )
        await self._send(
            {"type": "conversation.item.created", "previous_item_id": previous, "item": public_item(item)}
        )
        # both shapes: the live service closes a committed audio item at once
        await self._send(item_done(previous, public_item(item)))
        if self.session.get("input_audio_transcription") is not None:
            self._spawn(self._transcription_events(item_id), f"transcription {item_id}")

    def _keep_audio(self, item_id: str, audio: bytes) -> None:
        """Keep a user item's audio until it is transcribed (only the latest few items)."""
        self._item_audio[item_id] = (audio, self._in_rate)
        while len(self._item_audio) > KEEP_USER_AUDIO_ITEMS:
            del self._item_audio[next(iter(self._item_audio))]

    async def _on_commit(self, msg: Event) -> None:
        buffered_ms = len(self._buffer) / 2 * 1000.0 / self._in_rate
        if buffered_ms < MIN_COMMIT_MS:
            raise SessionError(
                "input_audio_buffer_commit_empty",
                f"buffer too small: expected at least {MIN_COMMIT_MS}ms of audio, "
                f"but the buffer only has {buffered_ms:.2f}ms of audio",
                None,
            )
        now_ms = self.input_ms
        item_id = self._speech_item_id or new_id("item")
        if self._segmenter is not None:
            stops = self._segmenter.force_stop(now_ms)
            self._deferred_start = None
            if stops and self._speech_item_id is not None:
                await self._send(
                    {
                        "type": "input_audio_buffer.speech_stopped",
                        "audio_end_ms": round(now_ms),
                        "item_id": item_id,
                    }
                )
        self._speech_item_id = None
        if self._streaming is not None:
            self._streaming.cancel()
        audio = bytes(self._buffer)
        self._buffer.clear()
        self._buffer_start = self._in_samples
        await self._commit_user_audio(item_id, audio)

    async def _on_clear(self, msg: Event) -> None:
        if self._streaming is not None:
            self._streaming.cancel()
        self._buffer.clear()
        self._buffer_start = self._in_samples
        self._speech_item_id = None
        self._deferred_start = None
        if self._segmenter is not None:
            self._segmenter.reset(self.input_ms)
            if self._speech_prob is not None:
                self._speech_prob.reset()
        await self._send({"type": "input_audio_buffer.cleared"})

    async def _on_output_clear(self, msg: Event) -> None:
        await self._send({"type": "output_audio_buffer.cleared"})

    # --- transcription ---------------------------------------------------------------------------

    def _user_transcript(self, item_id: str) -> asyncio.Task[str]:
        """The ASR of a user audio item, started on first need and shared."""
        task = self._asr.get(item_id)
        if task is None:
            # failures surface as transcription.failed events (and an empty heard text)
            task = self._spawn(self._transcribe(item_id), f"asr {item_id}", log_errors=False)
            self._asr[item_id] = task
        return task

    async def _transcribe(self, item_id: str) -> str:
        audio, rate = self._item_audio.get(item_id, (b"", self._in_rate))
        if not self.options.transcription:
            raise StateError("transcription is switched off in this emulator (transcription=False)")
        tr_cfg = self.session.get("input_audio_transcription") or {}
        phrases = tr_cfg.get("phrase_list") or None
        key = tuple(phrases) if phrases else None
        async with self._asr_lock:
            transcriber: Any = self._transcribers.get(key)
            if transcriber is None:
                from ..speech.asr import Transcriber

                transcriber = await self._run_blocking(Transcriber, list(phrases) if phrases else None)
                self._transcribers[key] = transcriber
        text = await self._run_blocking(transcriber.transcribe, audio, rate)
        self._item_audio.pop(item_id, None)
        item = self.items.get(item_id)
        if item is not None:
            for part in item["content"]:
                if part.get("type") == "input_audio":
                    part["transcript"] = text
        return str(text)

    async def _transcription_events(self, item_id: str) -> None:
        task = self._user_transcript(item_id)
        try:
            text = await asyncio.shield(task)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._send(
                {
                    "type": "conversation.item.input_audio_transcription.failed",
                    "item_id": item_id,
                    "content_index": 0,
                    "error": {
                        "type": "transcription_error",
                        "code": "transcription_failed",
                        "message": f"transcription failed: {exc}",
                        "param": None,
                    },
                }
            )
            return
        sent = self._streaming.sent_text(item_id) if self._streaming is not None else ""
        rest = text[len(sent) :] if text.startswith(sent) else ""
        if rest:
            await self._send(
                {
                    "type": "conversation.item.input_audio_transcription.delta",
                    "item_id": item_id,
                    "content_index": 0,
                    "delta": rest,
                }
            )
        await self._send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": text,
            }
        )

    # --- streaming recognition (the logic is in speech/streaming_asr.py) ----------------------------

    def _stream_start(self) -> None:
        if not (self.options.transcription and self.options.streaming_asr) or self._speech_item_id is None:
            return
        if self._streaming is None:
            from ..speech.streaming_asr import StreamingRecognizer

            self._streaming = StreamingRecognizer(self._run_blocking, self._stream_delta)
        phrases = (self.session.get("input_audio_transcription") or {}).get("phrase_list") or None
        audio = self._buffer_slice(self._speech_start_ms, self.input_ms)
        self._streaming.start(self._speech_item_id, tuple(phrases) if phrases else None, self._in_rate, audio)

    def _stream_finish(self, item_id: str) -> None:
        task = self._streaming.finish(item_id) if self._streaming is not None else None
        if task is not None and item_id not in self._asr:
            self._asr[item_id] = self._spawn(
                self._streamed_text(item_id, task), f"asr {item_id}", log_errors=False
            )

    async def _streamed_text(self, item_id: str, task: Awaitable[str | None]) -> str:
        text = await task
        if text is None:  # no decoder was free: decode the utterance now
            return await self._transcribe(item_id)
        self._item_audio.pop(item_id, None)
        item = self.items.get(item_id)
        if item is not None:
            for part in item["content"]:
                if part.get("type") == "input_audio":
                    part["transcript"] = text
        return text

    async def _stream_delta(self, item_id: str, delta: str) -> None:
        if self.session.get("input_audio_transcription") is not None:
            await self._send(
                {
                    "type": "conversation.item.input_audio_transcription.delta",
                    "item_id": item_id,
                    "content_index": 0,
                    "delta": delta,
                }
            )

    # --- text input -------------------------------------------------------------------------------

    async def _on_text_delta(self, msg: Event) -> None:
        target = self._require_str(msg, "id")
        delta = msg.get("delta", "")
        if not isinstance(delta, str):
            raise SessionError("invalid_value", "'delta' must be a string", "delta")
        self._text_inputs.setdefault(target, []).append(delta)

    async def _on_text_done(self, msg: Event) -> None:
        target = self._require_str(msg, "id")
        text = "".join(self._text_inputs.pop(target, []))
        existing = self.items.get(target)
        if existing is not None:  # the text becomes the content of an item the client created
            existing["content"] = [{"type": "input_text", "text": text}]
            return
        item: Event = {
            "id": target,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_text", "text": text}],
        }
        previous = self.items.insert(item)
        await self._send(
            {"type": "conversation.item.created", "previous_item_id": previous, "item": public_item(item)}
        )

    # --- conversation items -----------------------------------------------------------------------

    @staticmethod
    def _require_str(msg: Mapping[str, Any], key: str, param: str | None = None) -> str:
        p = param or key
        if key not in msg or msg[key] is None:
            raise SessionError("missing_required_parameter", f"missing required parameter '{p}'", p)
        value = msg[key]
        if not isinstance(value, str) or not value:
            raise SessionError("invalid_value", f"'{p}' must be a non-empty string", p)
        return value

    def _build_item(self, raw: Any, param: str = "item", *, new: bool = True) -> tuple[Event, bytes | None]:
        """Validate a request item; the stored item and any input audio it carries."""
        if not isinstance(raw, dict):
            raise SessionError("invalid_value", f"'{param}' must be an object", param)
        itype = self._require_str(raw, "type", f"{param}.type")
        item_id = raw.get("id") or new_id("item")
        if not isinstance(item_id, str):
            raise SessionError("invalid_value", f"'{param}.id' must be a string", f"{param}.id")
        if new and (item_id in self.items or item_id == "root"):
            raise SessionError(
                "duplicate_item_id", f"an item with id '{item_id}' already exists", f"{param}.id"
            )
        base: Event = {"id": item_id, "object": "realtime.item", "type": itype}
        audio: bytes | None = None
        if itype == "message":
            role = self._require_str(raw, "role", f"{param}.role")
            if role not in ("system", "user", "assistant"):
                raise SessionError(
                    "invalid_value", f"'{param}.role' must be system, user or assistant", f"{param}.role"
                )
            content = raw.get("content")
            if not isinstance(content, list) or not content:
                raise SessionError(
                    "invalid_value",
                    f"'{param}.content' must be a non-empty list of parts",
                    f"{param}.content",
                )
            parts: list[Event] = []
            allowed = {"system": ("input_text",), "user": ("input_text", "input_audio", "input_image")}.get(
                role, ("text",)
            )
            for i, part in enumerate(content):
                p = f"{param}.content[{i}]"
                if not isinstance(part, dict):
                    raise SessionError("invalid_value", f"'{p}' must be an object", p)
                ptype = part.get("type")
                if ptype not in allowed:
                    hint = " (assistant audio cannot be created; use a text part)" if ptype == "audio" else ""
                    raise SessionError(
                        "invalid_value",
                        f"'{p}.type' {ptype!r} is not allowed for role {role}; use {', '.join(allowed)}{hint}",
                        f"{p}.type",
                    )
                if ptype in ("input_text", "text"):
                    text = part.get("text")
                    if not isinstance(text, str):
                        raise SessionError("invalid_value", f"'{p}.text' must be a string", f"{p}.text")
                    parts.append({"type": ptype, "text": text})
                elif ptype == "input_audio":
                    raw_audio = self._decode_audio_field(part.get("audio"), f"{p}.audio")
                    self._check_audio_length(raw_audio, f"{p}.audio")
                    audio = _decode_input(raw_audio, self.session["input_audio_format"], self._channels)
                    transcript = part.get("transcript")
                    parts.append({"type": "input_audio", "audio": None, "transcript": transcript})
                else:
                    url = part.get("image_url")
                    if not isinstance(url, str) or not url:
                        raise SessionError(
                            "invalid_value", f"'{p}.image_url' must be a string", f"{p}.image_url"
                        )
                    parts.append(
                        {"type": "input_image", "image_url": url, "detail": part.get("detail", "auto")}
                    )
            base.update(role=role, status="completed", content=parts)
        elif itype == "function_call":
            base.update(
                name=self._require_str(raw, "name", f"{param}.name"),
                call_id=self._require_str(raw, "call_id", f"{param}.call_id"),
                arguments=raw.get("arguments", ""),
                status="completed",
            )
        elif itype == "function_call_output":
            output = raw.get("output", "")
            if not isinstance(output, str):
                raise SessionError("invalid_value", f"'{param}.output' must be a string", f"{param}.output")
            base.update(call_id=self._require_str(raw, "call_id", f"{param}.call_id"), output=output)
        elif itype == "mcp_approval_response":
            approve = raw.get("approve")
            if not isinstance(approve, bool):
                raise SessionError(
                    "invalid_value", f"'{param}.approve' must be true or false", f"{param}.approve"
                )
            base.update(
                approval_request_id=self._require_str(
                    raw, "approval_request_id", f"{param}.approval_request_id"
                ),
                approve=approve,
            )
        else:
            raise SessionError(
                "invalid_value",
                f"'{param}.type' {itype!r} must be message, function_call, function_call_output "
                "or mcp_approval_response",
                f"{param}.type",
            )
        return base, audio

    async def _create_item(self, raw: Any, previous_item_id: Any = None, param: str = "item") -> Event:
        if previous_item_id is not None and (not isinstance(previous_item_id, str)):
            raise SessionError("invalid_value", "'previous_item_id' must be a string", "previous_item_id")
        if previous_item_id not in (None, "root") and previous_item_id not in self.items:
            raise SessionError(
                "item_not_found", f"previous_item_id '{previous_item_id}' does not exist", "previous_item_id"
            )
        item, audio = self._build_item(raw, param)
        previous = self.items.insert(item, previous_item_id)
        await self._send(
            {"type": "conversation.item.created", "previous_item_id": previous, "item": public_item(item)}
        )
        await self._send(item_done(previous, public_item(item), ga_only=True))
        if audio is not None:
            self._keep_audio(item["id"], audio)
            has_transcript = any(p.get("transcript") for p in item["content"] if p["type"] == "input_audio")
            if not has_transcript and self.session.get("input_audio_transcription") is not None:
                self._spawn(self._transcription_events(item["id"]), f"transcription {item['id']}")
        return item

    async def _on_item_create(self, msg: Event) -> None:
        if "item" not in msg:
            raise SessionError("missing_required_parameter", "missing required parameter 'item'", "item")
        item = await self._create_item(msg["item"], msg.get("previous_item_id"))
        answered = item.get("type") == "mcp_approval_response" and _latest_approval(self.items.items())
        if answered and self._active is None:
            await self._start_response({})  # the service goes on by itself once it has the answer

    def _existing(self, msg: Mapping[str, Any]) -> tuple[str, Event]:
        item_id = self._require_str(msg, "item_id")
        item = self.items.get(item_id)
        if item is None:
            raise SessionError("item_not_found", f"item '{item_id}' does not exist", "item_id")
        return item_id, item

    async def _on_item_retrieve(self, msg: Event) -> None:
        _, item = self._existing(msg)
        await self._send({"type": "conversation.item.retrieved", "item": public_item(item)})

    async def _on_item_delete(self, msg: Event) -> None:
        item_id, _ = self._existing(msg)
        self.items.delete(item_id)
        self._item_audio.pop(item_id, None)
        await self._send({"type": "conversation.item.deleted", "item_id": item_id})

    async def _on_item_truncate(self, msg: Event) -> None:
        item_id, item = self._existing(msg)
        content_index = msg.get("content_index", 0)
        if not isinstance(content_index, int) or isinstance(content_index, bool):
            raise SessionError("invalid_value", "'content_index' must be an integer", "content_index")
        state = self._audio_items.get(item_id)
        content = item.get("content") or []
        if (
            state is None
            or item.get("role") != "assistant"
            or not 0 <= content_index < len(content)
            or content[content_index].get("type") != "audio"
        ):
            raise SessionError(
                "invalid_value",
                f"only the audio part of an assistant item can be truncated; item '{item_id}' content "
                f"{content_index} is not one",
                "content_index" if state is not None else "item_id",
            )
        end = msg.get("audio_end_ms")
        if end is None:
            raise SessionError(
                "missing_required_parameter", "missing required parameter 'audio_end_ms'", "audio_end_ms"
            )
        if not isinstance(end, (int, float)) or isinstance(end, bool) or not math.isfinite(end) or end < 0:
            raise SessionError(
                "invalid_value", "'audio_end_ms' must be a number of milliseconds >= 0", "audio_end_ms"
            )
        length = state.truncated_ms if state.truncated_ms is not None else state.sent_ms
        if end > math.ceil(length):
            raise SessionError(
                "invalid_value",
                f"audio_end_ms {end} is beyond the audio of item '{item_id}' ({math.floor(length)} ms were sent)",
                "audio_end_ms",
            )
        if self._active is not None and self._active.item_id == item_id:
            # truncating the item that is still being generated stops that response first
            await self._cancel_response(self._active, "client_cancelled", auto_truncate=False)
        await self._truncate(state, float(end), content_index, reported_ms=end)

    async def _truncate(
        self, state: AudioItemState, end_ms: float, content_index: int = 0, reported_ms: float | None = None
    ) -> None:
        state.truncated_ms = end_ms
        self._input_path.playout.stop()
        transcript = text_until(state.pieces, end_ms)
        vad = self._vad
        if vad is not None and vad.appended_text_after_truncation:
            transcript += vad.appended_text_after_truncation
        item = self.items.get(state.item_id)
        if item is not None:
            for part in item.get("content", []):
                if part.get("type") == "audio":
                    part["transcript"] = transcript
        audio_end = reported_ms if reported_ms is not None else math.floor(end_ms)
        await self._send(
            {
                "type": "conversation.item.truncated",
                "item_id": state.item_id,
                "content_index": content_index,
                "audio_end_ms": audio_end,
            }
        )

    # --- responses ----------------------------------------------------------------------------------

    async def _on_response_create(self, msg: Event) -> None:
        params = msg.get("response") or {}
        if not isinstance(params, dict):
            raise SessionError("invalid_value", "'response' must be an object", "response")
        if self._active is not None:
            if params.get("cancel_previous") is True:
                await self._cancel_response(self._active, "client_cancelled", auto_truncate=False)
            else:
                raise SessionError(
                    "conversation_already_has_active_response",
                    f"conversation already has an active response ({self._active.id}); wait for response.done, "
                    "send response.cancel, or set response.cancel_previous",
                    None,
                )
        checked = self._validate_response_params(params)
        if params.get("commit", True) is not False and self._vad is None and self._buffer:
            buffered_ms = len(self._buffer) / 2 * 1000.0 / self._in_rate
            if buffered_ms >= MIN_COMMIT_MS:
                await self._on_commit({})
        for i, raw in enumerate(params.get("append_input_items") or []):
            await self._create_item(raw, None, f"response.append_input_items[{i}]")
        await self._start_response(checked)

    def _validate_response_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(params)
        if "modalities" in params:
            out["modalities"] = sd.validate_modalities(params["modalities"], "response.modalities")
        if "output_audio_format" in params:
            out["output_audio_format"] = sd.validate_output_format(
                params["output_audio_format"], "response.output_audio_format"
            )
        for name in ("max_output_tokens", "max_response_output_tokens"):
            if name in params:
                out["max_output_tokens"] = sd.validate_max_tokens(params[name], f"response.{name}")
        if "metadata" in params:
            out["metadata"] = sd.validate_metadata(params["metadata"], "response.metadata")
        if "conversation" in params and params["conversation"] not in ("auto", "none"):
            raise SessionError(
                "invalid_value", "'response.conversation' must be auto or none", "response.conversation"
            )
        if "temperature" in params:
            t = params["temperature"]
            if not isinstance(t, (int, float)) or isinstance(t, bool) or not 0.0 <= t <= 2.0:
                raise SessionError(
                    "invalid_value", "'response.temperature' must be from 0 to 2", "response.temperature"
                )
        for name in ("append_input_items", "input_items"):
            if name in params and not isinstance(params[name], list):
                raise SessionError(
                    "invalid_value", f"'response.{name}' must be a list of items", f"response.{name}"
                )
        if "input_items" in params:
            out["input_items"] = [
                self._build_item(raw, f"response.input_items[{i}]", new=False)[0]
                for i, raw in enumerate(params["input_items"])
            ]
        pre = params.get("pre_generated_assistant_message")
        if pre is not None:
            parts = pre.get("content") if isinstance(pre, dict) else None
            if (
                not isinstance(parts, list)
                or len(parts) != 1
                or not isinstance(parts[0], dict)
                or parts[0].get("type") != "text"
                or not isinstance(parts[0].get("text"), str)
            ):
                raise SessionError(
                    "invalid_value",
                    "'response.pre_generated_assistant_message' must be an assistant message with exactly one text part",
                    "response.pre_generated_assistant_message",
                )
            out["pre_generated_text"] = parts[0]["text"]
        return out

    async def _start_response(self, params: Mapping[str, Any], trigger_item: str | None = None) -> None:
        modalities = list(params.get("modalities") or self.session["modalities"])
        output_format = params.get("output_audio_format") or self.session["output_audio_format"] or "pcm16"
        rate = sd.output_sample_rate(output_format)
        item_id = new_id("item")
        resp = ActiveResponse(
            id=new_id("resp"),
            item_id=item_id,
            modalities=modalities,
            output_format=output_format,
            params=params,
            conversation=params.get("conversation", "auto"),
            max_tokens=params.get("max_output_tokens", self.session["max_response_output_tokens"]),
            audio=AudioItemState(item_id, rate, 1 if output_format.startswith("g711") else 2),
            timestamps="word" in (self.session.get("output_audio_timestamp_types") or []),
            input_item_id=trigger_item,
        )
        self._active = resp
        self.stats.responses += 1
        resp.task = self._spawn(self._run_response(resp), f"response {resp.id}")

    def _response_object(self, resp: ActiveResponse, status: str, details: Any, output: list[Event]) -> Event:
        return {
            "id": resp.id,
            "object": "realtime.response",
            "status": status,
            "status_details": details,
            "output": output,
            "usage": None,
            "conversation_id": self.conversation_id if resp.conversation == "auto" else None,
            "voice": copy.deepcopy(self.session["voice"]),
            "modalities": list(resp.modalities),
            "output_audio_format": resp.output_format,
            "temperature": resp.params.get("temperature", self.session.get("temperature", 0.8)),
            "max_output_tokens": resp.max_tokens,
            "metadata": resp.params.get("metadata") or None,
        }

    def _assistant_item(self, resp: ActiveResponse, status: str, text: str | None) -> Event:
        content: list[Event] = []
        if text is not None:
            content = [
                {"type": "audio", "transcript": text} if resp.has_audio else {"type": "text", "text": text}
            ]
        return {
            "id": resp.item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": status,
            "content": content,
        }

    def _r(self, resp: ActiveResponse) -> Event:
        return {
            "response_id": resp.id,
            "item_id": resp.item_id,
            "output_index": resp.message_index,
            "content_index": 0,
        }

    async def _until_cancelled(self, resp: ActiveResponse, aw: Awaitable[T]) -> T:
        """Await ``aw`` unless the response is cancelled first (then raise :class:`_Cancelled`)."""
        fut = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(resp.cancelled.wait())
        try:
            await asyncio.wait({fut, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if fut.done():
            return fut.result()
        fut.cancel()
        raise _Cancelled

    async def _run_response(self, resp: ActiveResponse) -> None:
        status: str = "completed"
        details: Any = None
        try:
            await self._send(
                {"type": "response.created", "response": self._response_object(resp, "in_progress", None, [])}
            )
            if await self._until_cancelled(resp, self._plan_tools(resp)):
                await self._stream_calls(resp)
                raise _CallsSent
            if resp.mcp_call is not None:
                await self._stream_mcp_call(resp)
            in_progress = self._assistant_item(resp, "in_progress", None)
            await self._send(
                {
                    "type": "response.output_item.added",
                    "response_id": resp.id,
                    "output_index": resp.message_index,
                    "item": in_progress,
                }
            )
            resp.item_opened = True
            if resp.conversation == "auto":
                previous = self.items.insert(copy.deepcopy(in_progress))
                resp.previous_item_id = previous
                await self._send(
                    {"type": "conversation.item.created", "previous_item_id": previous, "item": in_progress}
                )
            part = {"type": "audio", "transcript": ""} if resp.has_audio else {"type": "text", "text": ""}
            await self._send({"type": "response.content_part.added", **self._r(resp), "part": part})
            resp.part_opened = True
            stored = self.items.get(resp.item_id)
            if stored is not None:
                stored["content"] = [dict(part)]
            text = await self._until_cancelled(resp, self._reply_text(resp))
            limit = resp.max_tokens
            if isinstance(limit, int) and words_of(text) > limit:
                text = " ".join(text.split()[:limit])
                resp.incomplete = True
            resp.text = text
            if resp.has_audio:
                await self._stream_audio(resp, text)
            else:
                await self._stream_text(resp, text)
            if resp.incomplete:
                status, details = "incomplete", {"type": "incomplete", "reason": "max_output_tokens"}
        except _CallsSent:
            pass
        except _Cancelled:
            status = "cancelled"
            details = {"type": "cancelled", "reason": resp.cancel_reason or "client_cancelled"}
        except asyncio.CancelledError:
            self._active = None if self._active is resp else self._active
            raise
        except Exception as exc:
            logger.exception("emulator response %s failed", resp.id)
            status = "failed"
            details = {
                "type": "failed",
                "error": {
                    "type": "server_error",
                    "code": "response_failed",
                    "message": f"{type(exc).__name__}: {exc}",
                },
            }
        await self._finish_response(resp, status, details)

    async def _reply_text(self, resp: ActiveResponse) -> str:
        params = resp.params
        if isinstance(params.get("pre_generated_text"), str):
            return str(params["pre_generated_text"])
        replies = self.options.replies  # a scripted text wins, even over the quote of a tool's output
        if isinstance(replies, Sequence) and not isinstance(replies, str):
            if self._reply_index < len(replies):
                self._reply_index += 1
                return str(replies[self._reply_index - 1])
            replies = None
        if resp.planned_text is not None:
            return resp.planned_text
        heard = await self._heard_text(params)
        if callable(replies):
            result = replies(heard)
            if inspect.isawaitable(result):
                result = await result
            return str(result)
        return default_reply(heard)

    async def _heard_text(self, params: Mapping[str, Any]) -> str:
        """What the user said last: the text of the latest user message (ASR for audio)."""
        items = params.get("input_items")
        candidates = list(items) if items is not None else self.items.items()
        for item in reversed(candidates):
            if item.get("type") != "message" or item.get("role") != "user":
                continue
            texts: list[str] = []
            for part in item.get("content", []):
                if part.get("type") == "input_text":
                    texts.append(part.get("text", ""))
                elif part.get("type") == "input_audio":
                    if part.get("transcript"):
                        texts.append(part["transcript"])
                    elif item["id"] in self._item_audio or item["id"] in self._asr:
                        try:
                            texts.append(await asyncio.shield(self._user_transcript(item["id"])))
                        except asyncio.CancelledError:
                            raise
                        except Exception:
                            logger.debug("no transcript for %s", item["id"], exc_info=True)
            return " ".join(t for t in texts if t)
        return ""

    # --- function tools (rules in .toolcalls) ---------------------------------------------------

    async def _plan_tools(self, resp: ActiveResponse) -> bool:
        """Decide whether ``resp`` quotes tool outputs (``planned_text``) or calls tools (True)."""
        params = resp.params
        if isinstance(params.get("pre_generated_text"), str):
            return False
        items = params.get("input_items")
        history = list(items) if items is not None else self.items.items()
        scripted = self._scripted_calls()
        if scripted:
            for name, arguments in scripted:
                resp.calls.append(_function_call_item(name, arguments))
            return True
        approval = _latest_approval(history)
        if approval is not None:
            request, approved = approval
            label, name = str(request.get("server_label", "")), str(request.get("name", ""))
            if approved:
                self._plan_mcp_call(resp, label, name, _json_object(request.get("arguments")), request["id"])
            else:
                resp.planned_text = tc.mcp_denied(label, name)
            return False
        outputs = _latest_outputs(history)
        if outputs:
            resp.planned_text = tc.replies_for_outputs(outputs)
            return False
        tools = params.get("tools", self.session.get("tools")) or []
        choice = params.get("tool_choice", self.session.get("tool_choice")) or "auto"
        if not isinstance(tools, list) or choice == "none":
            return False
        kinds = {t.get("type", "function") for t in tools if isinstance(t, Mapping)}
        if not kinds & {"function", "mcp"}:
            return False
        heard = await self._heard_text(params)
        parallel = params.get("parallel_tool_calls", self.session.get("parallel_tool_calls")) is not False
        planned = tc.plan_calls(heard, tools, choice, parallel=parallel) if "function" in kinds else []
        if not planned and "mcp" in kinds and not tc.is_named_choice(choice):
            return self._plan_mcp(resp, heard, tools)
        for name, arguments in planned:
            resp.calls.append(_function_call_item(name, arguments))
        return bool(resp.calls)

    def _scripted_calls(self) -> list[tuple[str, Mapping[str, Any]]]:
        """The next ``replies=`` entry when it is a scripted call (consumed), else nothing."""
        replies = self.options.replies
        if not isinstance(replies, Sequence) or isinstance(replies, str) or self._reply_index >= len(replies):
            return []
        entry = replies[self._reply_index]
        entries = [entry] if isinstance(entry, Mapping) else entry
        if isinstance(entries, str) or not isinstance(entries, Sequence):
            return []
        if not entries or not all(isinstance(e, Mapping) and isinstance(e.get("call"), str) for e in entries):
            return []
        self._reply_index += 1
        out: list[tuple[str, Mapping[str, Any]]] = []
        for e in entries:
            call: Mapping[str, Any] = e  # type: ignore[assignment]  # checked above
            arguments = call.get("arguments") or {}
            out.append((str(call["call"]), arguments if isinstance(arguments, Mapping) else {}))
        return out

    def _plan_mcp(self, resp: ActiveResponse, heard: str, tools: list[Any]) -> bool:
        """An MCP tool named in ``heard``: an approval request (True), or the call at once (False)."""
        chosen = tc.choose_mcp(heard, tools)
        if chosen is None:
            return False
        tool, name = chosen
        label, arguments = str(tool["server_label"]), {"query": heard}
        if not tc.needs_approval(tool, name):
            self._plan_mcp_call(resp, label, name, arguments, None)
            return False
        resp.calls.append(
            {
                "id": new_id("item"),
                "object": "realtime.item",
                "type": "mcp_approval_request",
                "server_label": label,
                "name": name,
                "arguments": tc.encode_arguments(arguments),
                "_arguments": None,
            }
        )
        return True

    def _plan_mcp_call(
        self, resp: ActiveResponse, label: str, name: str, arguments: Mapping[str, Any], approval: Any
    ) -> None:
        output = tc.mcp_output(label, name, arguments)
        resp.mcp_call = {
            "id": new_id("item"),
            "object": "realtime.item",
            "type": "mcp_call",
            "server_label": label,
            "name": name,
            "arguments": "",
            "approval_request_id": approval,
            "output": None,
            "error": None,
            "_arguments": tc.encode_arguments(arguments),
            "_output": output,
        }
        resp.planned_text = tc.reply_for_output(f"{label} {name}", output)
        resp.message_index = 1

    async def _stream_mcp_call(self, resp: ActiveResponse) -> None:
        """The MCP call item before the spoken message: added, created, argument deltas, done, completed."""
        call = resp.mcp_call
        assert call is not None
        arguments, output = call.pop("_arguments"), call.pop("_output")
        opened = dict(call)
        await self._send(
            {"type": "response.output_item.added", "response_id": resp.id, "output_index": 0, "item": opened}
        )
        previous: str | None = None
        if resp.conversation == "auto":
            previous = self.items.insert(copy.deepcopy(opened))
            await self._send(
                {"type": "conversation.item.created", "previous_item_id": previous, "item": dict(opened)}
            )
        ids = {"response_id": resp.id, "item_id": call["id"], "output_index": 0}
        for piece in tc.argument_deltas(arguments):
            await self._send({"type": "response.mcp_call_arguments.delta", **ids, "delta": piece})
        await self._send({"type": "response.mcp_call_arguments.done", **ids, "arguments": arguments})
        await self._send({"type": "response.mcp_call.in_progress", "item_id": call["id"], "output_index": 0})
        call.update(arguments=arguments, output=output)
        await self._send({"type": "response.mcp_call.completed", "item_id": call["id"], "output_index": 0})
        stored = self.items.get(call["id"])
        if stored is not None:
            stored.update(arguments=arguments, output=output)
            await self._send(item_done(previous, dict(call), ga_only=True))
        await self._send(
            {
                "type": "response.output_item.done",
                "response_id": resp.id,
                "output_index": 0,
                "item": dict(call),
            }
        )
        resp.before.append(dict(call))

    async def _stream_calls(self, resp: ActiveResponse) -> None:
        """The real service's order, per call: item added, created, argument deltas, done, item done."""
        for index, call in enumerate(resp.calls):
            arguments = call.pop("_arguments")
            opened = dict(call)
            previous: str | None = None
            await self._send(
                {
                    "type": "response.output_item.added",
                    "response_id": resp.id,
                    "output_index": index,
                    "item": opened,
                }
            )
            if resp.conversation == "auto":
                previous = self.items.insert(copy.deepcopy(opened))
                await self._send(
                    {"type": "conversation.item.created", "previous_item_id": previous, "item": dict(opened)}
                )
            if arguments is None:  # an approval request: no arguments streamed
                stored = self.items.get(call["id"])
                if stored is not None:
                    await self._send(item_done(previous, dict(call), ga_only=True))
                await self._send(
                    {
                        "type": "response.output_item.done",
                        "response_id": resp.id,
                        "output_index": index,
                        "item": dict(call),
                    }
                )
                resp.calls_done = index + 1
                continue
            ids = {
                "response_id": resp.id,
                "item_id": call["id"],
                "output_index": index,
                "call_id": call["call_id"],
            }
            for piece in tc.argument_deltas(arguments):
                if resp.cancelled.is_set():
                    raise _Cancelled
                await self._send({"type": "response.function_call_arguments.delta", **ids, "delta": piece})
            if resp.cancelled.is_set():
                raise _Cancelled
            call.update(arguments=arguments, status="completed")
            await self._send(
                {
                    "type": "response.function_call_arguments.done",
                    **ids,
                    "name": call["name"],
                    "arguments": arguments,
                }
            )
            stored = self.items.get(call["id"])
            if stored is not None:
                stored.update(arguments=arguments, status="completed")
                await self._send(item_done(previous, dict(call), ga_only=True))
            await self._send(
                {
                    "type": "response.output_item.done",
                    "response_id": resp.id,
                    "output_index": index,
                    "item": dict(call),
                }
            )
            resp.calls_done = index + 1

    async def _stream_text(self, resp: ActiveResponse, text: str) -> None:
        for token in re.findall(r"\s*\S+", text) or ([text] if text else []):
            if resp.cancelled.is_set():
                raise _Cancelled
            await self._send(
                {"type": "response.text.delta", **self._r(resp), "delta": token},
                _appender(resp.sent_text, token),
            )
        if resp.cancelled.is_set():
            raise _Cancelled

    async def _stream_audio(self, resp: ActiveResponse, text: str) -> None:
        chunk_ms = self.options.chunk_ms
        rendered = await self._until_cancelled(
            resp, self._run_blocking(_render_speech, text, resp.output_format, chunk_ms)
        )
        state = resp.audio
        state.pieces = align_words(text, rendered.words, rendered.total_ms)
        self._audio_items[resp.item_id] = state
        if resp.conversation == "auto":
            self._last_audio = state
        piece_plan = plan_chunks((p.offset_ms for p in state.pieces), len(rendered.chunks), chunk_ms)
        word_plan = plan_chunks((float(w.offset_ms) for w in rendered.words), len(rendered.chunks), chunk_ms)
        realtime = self.options.pace == "realtime"
        origin: float | None = None
        r = self._r(resp)

        def audio_sent(samples: int, chunk: bytes = b"") -> Callable[[], None]:
            def done() -> None:
                if state.playout_start is None:
                    state.playout_start = self.loop.time()
                state.sent_samples += samples
                if resp.output_format == "pcm16":
                    self._input_path.sent(self.session, chunk, rendered.output_rate)
                self._audio_produced = True

            return done

        for i, chunk in enumerate(rendered.chunks or [b""]):
            if resp.cancelled.is_set():
                raise _Cancelled
            if realtime:
                now = self.loop.time()
                if origin is None:
                    origin = now
                delay = origin + (i * chunk_ms - self.options.lead_ms) / 1000.0 - now
                if delay > 0:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(resp.cancelled.wait(), delay)
                    if resp.cancelled.is_set():
                        raise _Cancelled
            for k in piece_plan[i] if i < len(piece_plan) else []:
                piece = state.pieces[k].text
                await self._send(
                    {"type": "response.audio_transcript.delta", **r, "delta": piece},
                    _appender(resp.sent_text, piece),
                )
            if chunk:
                await self._send(
                    {"type": "response.audio.delta", **r, "delta": base64.b64encode(chunk).decode("ascii")},
                    audio_sent(rendered.chunk_samples[i], chunk),
                )
            if resp.timestamps:
                for k in word_plan[i] if i < len(word_plan) else []:
                    w = rendered.words[k]
                    await self._send(
                        {
                            "type": "response.audio_timestamp.delta",
                            **r,
                            "audio_offset_ms": round(float(w.offset_ms)),
                            "audio_duration_ms": round(float(w.duration_ms)),
                            "text": str(w.text),
                            "timestamp_type": "word",
                        }
                    )
        if resp.cancelled.is_set():
            raise _Cancelled

    async def _cancel_response(self, resp: ActiveResponse, reason: str, *, auto_truncate: bool) -> None:
        """Cancel ``resp`` and wait until its closing events are queued (and the truncation, if asked)."""
        if resp.cancel_reason is None:
            resp.cancel_reason = reason
        resp.cancelled.set()
        if resp.task is not None and asyncio.current_task() is not resp.task:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(resp.task)
        if auto_truncate and resp.audio.sent_samples > 0:
            await self._truncate(resp.audio, resp.audio.playout_ms(self.loop.time()))

    async def _finish_calls(self, resp: ActiveResponse, status: str, details: Any) -> None:
        """``response.done`` of a response that called tools (a cancelled call ends incomplete)."""
        if status == "cancelled":
            self.stats.responses_cancelled += 1
            await self.sink.discard(
                lambda e: e.get("type") in _DELTA_TYPES and e.get("response_id") == resp.id
            )
        output: list[Event] = []
        for index, call in enumerate(resp.calls):
            call.pop("_arguments", None)
            if index >= resp.calls_done:
                if call["id"] not in self.items:
                    continue
                call["status"] = "incomplete"
                stored = self.items.get(call["id"])
                if stored is not None:
                    stored["status"] = "incomplete"
                await self._send(
                    {
                        "type": "response.output_item.done",
                        "response_id": resp.id,
                        "output_index": index,
                        "item": dict(call),
                    }
                )
            output.append(dict(call))
        done = self._response_object(resp, status, details, output)
        done["usage"] = self._usage(resp, "".join(str(c.get("arguments", "")) for c in output))
        if self._active is resp:
            self._active = None
        await self._send({"type": "response.done", "response": done})

    async def _finish_response(self, resp: ActiveResponse, status: str, details: Any) -> None:
        if resp.calls:
            await self._finish_calls(resp, status, details)
            return
        r = self._r(resp)
        cancelled = status == "cancelled"
        if cancelled:
            self.stats.responses_cancelled += 1
            # stop sending: unsent deltas of this response are dropped, so "sent" is final
            await self.sink.discard(
                lambda e: e.get("type") in _DELTA_TYPES and e.get("response_id") == resp.id
            )
            text = "".join(resp.sent_text)
        else:
            text = resp.text
        item_status = {"completed": "completed", "failed": "incomplete"}.get(status, "incomplete")
        final_item = self._assistant_item(resp, item_status, text)
        if resp.part_opened:
            if resp.has_audio:
                await self._send({"type": "response.audio.done", **r})
                await self._send({"type": "response.audio_transcript.done", **r, "transcript": text})
                if resp.timestamps:
                    await self._send({"type": "response.audio_timestamp.done", **r})
                part: Event = {"type": "audio", "transcript": text}
            else:
                await self._send({"type": "response.text.done", **r, "text": text})
                part = {"type": "text", "text": text}
            await self._send({"type": "response.content_part.done", **r, "part": part})
        output: list[Event] = []
        if resp.item_opened:
            if not resp.part_opened:
                final_item["content"] = []
            if resp.conversation == "auto" and resp.item_id in self.items:
                await self._send(item_done(resp.previous_item_id, final_item, ga_only=True))
            await self._send(
                {
                    "type": "response.output_item.done",
                    "response_id": resp.id,
                    "output_index": resp.message_index,
                    "item": final_item,
                }
            )
            output = [*resp.before, final_item]
            stored = self.items.get(resp.item_id)
            if stored is not None:
                stored.clear()
                stored.update(copy.deepcopy(final_item))
        done = self._response_object(resp, status, details, output)
        done["usage"] = self._usage(resp, text)
        if self._active is resp:
            self._active = None
        await self._send({"type": "response.done", "response": done})

    def _usage(self, resp: ActiveResponse, text: str) -> Event:
        """Rough token counts: 1 per ~4 characters of text, 10 per second of input audio, 20 per second out."""
        text_in = math.ceil(len(self.session.get("instructions") or "") / 4)
        audio_in = 0
        for item in self.items.items():
            for part in item.get("content", []) if item.get("type") == "message" else []:
                if part.get("type") in ("input_text", "text"):
                    text_in += math.ceil(len(part.get("text", "")) / 4)
                elif part.get("type") == "input_audio":
                    audio_in += 20
        text_out = math.ceil(len(text) / 4)
        audio_out = math.ceil(resp.audio.sent_ms / 50) if resp.has_audio else 0
        inp, out = text_in + audio_in, text_out + audio_out
        return {
            "total_tokens": inp + out,
            "input_tokens": inp,
            "output_tokens": out,
            "input_token_details": {
                "cached_tokens": 0,
                "text_tokens": text_in,
                "audio_tokens": audio_in,
                "image_tokens": 0,
                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
            },
            "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
        }

    async def _on_response_cancel(self, msg: Event) -> None:
        active = self._active
        wanted = msg.get("response_id")
        if active is None or (wanted is not None and wanted != active.id):
            which = f"response '{wanted}'" if wanted is not None else "a response"
            raise SessionError(
                "response_cancel_not_active",
                f"cannot cancel {which}: no such response is in progress",
                "response_id" if wanted is not None else None,
            )
        await self._cancel_response(active, "client_cancelled", auto_truncate=False)

    # --- session expiry -------------------------------------------------------------------------------

    async def expire(self) -> None:
        """The session reached ``expires_at``: cancel any response and send ``session_expired``."""
        if self._active is not None:
            await self._cancel_response(self._active, "client_cancelled", auto_truncate=False)
        await self._send(
            error_event(
                "session_expired",
                f"the session reached its maximum duration ({self.options.session_max_s:g} s); open a new session",
            )
        )
