"""The emulator's asyncio shell around its sans-I/O core (:class:`~.protocol.ServerProtocol`).

A :class:`Conversation` receives the client's raw JSON messages (:meth:`Conversation.handle_message`)
and sends server events (plain dicts) through an :class:`EventSink` that the socket layer
(:mod:`.endpoint`) implements. Everything the session decides is in the protocol; this class only
does what needs I/O, time and threads:

* it passes the loop's clock (ms) with every call and feeds the protocol's events to the sink,
  running each event's ``on_sent`` hook when the sink says it is on the wire, and asking the sink
  to drop the unsent deltas of a cancelled response;
* it keeps **one pacing timer** at the protocol's :meth:`~.protocol.ServerProtocol.next_deadline`;
* it runs the CPU work the protocol asks for (:meth:`~.protocol.ServerProtocol.work`): VAD steps
  inline when short (over a second of audio: in the executor), TTS and ASR in the executor,
  a streaming recogniser's decode and a ``replies=`` coroutine awaited; VAD steps are awaited
  before the next client message, as the protocol holds later messages back until they are done.

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

The error codes are listed in :mod:`.protocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from ..errors import InvalidValue
from . import session_defaults as sd
from .core import DELTA_TYPES, Job, error_event
from .enhance import InputPath
from .input_audio import FILLER_MAX_MS
from .items import GA_ONLY, ItemStore, item_done, public_item
from .options import ConversationOptions, EmulatorStats, Reply
from .protocol import ServerProtocol, decode_client_frame
from .responder import Responder
from .responses import ActiveResponse, Piece, Rendered, align_words, default_reply, plan_chunks, text_until

__all__ = [
    "FILLER_MAX_MS",
    "GA_ONLY",
    "Conversation",
    "ConversationOptions",
    "EmulatorStats",
    "EventSink",
    "ItemStore",
    "Piece",
    "Reply",
    "align_words",
    "decode_client_frame",
    "default_reply",
    "error_event",
    "item_done",
    "new_id",
    "plan_chunks",
    "public_item",
    "render_speech",
    "text_until",
]

logger = logging.getLogger("voicelive_nb.emulator")

T = TypeVar("T")
Event = dict[str, Any]


def new_id(prefix: str) -> str:
    """A fresh id such as ``item_3f9a0c1d2b4e5f60``."""
    return f"{prefix}_{secrets.token_hex(8)}"


class EventSink(Protocol):
    """Where a conversation sends its events (implemented by the server's outbox)."""

    async def send(self, event: Event, on_sent: Callable[[], None] | None = None) -> None:
        """Queue ``event`` (an ``event_id`` is added); ``on_sent`` runs once it is on the wire."""
        ...

    async def discard(self, predicate: Callable[[Event], bool]) -> int:
        """Drop queued events not yet sent that match; wait for one being sent. Returns how many."""
        ...


def render_speech(text: str, output_format: str, chunk_ms: int) -> Rendered:
    """TTS + conversion to the output format + chunking (the ``render`` job; runs in a worker thread)."""
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
    return Rendered(
        chunks=chunks,
        chunk_samples=[len(c) // width for c in chunks],
        output_rate=rate,
        words=list(speech.words),
        total_ms=len(data) / width * 1000.0 / rate,
    )


class _Enhancer:
    """:class:`~.enhance.InputPath` as the protocol's input processing."""

    def __init__(self) -> None:
        self.path = InputPath()

    def process(self, session: Mapping[str, Any], raw: bytes, mono: bytes) -> bytes:
        return self.path.process(session, raw, mono)

    def delay_ms(self, session: Mapping[str, Any]) -> int:
        return self.path.delay_ms(session)

    def sent(self, session: Mapping[str, Any], chunk: bytes, rate: int, now_ms: float | None = None) -> None:
        self.path.sent(session, chunk, rate, now_ms)

    def stop_playout(self) -> None:
        self.path.playout.stop()

    def input_resumed(self, now_ms: float, rate: int) -> None:
        self.path.playout.resume(now_ms, rate)

    def close(self) -> None:
        self.path.close()


def _is_delta_of(response_id: str) -> Callable[[Event], bool]:
    return lambda e: e.get("type") in DELTA_TYPES and e.get("response_id") == response_id


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
        self.loop = asyncio.get_running_loop()
        self.protocol = ServerProtocol(
            model=model,
            api_version=api_version,
            features=features,
            agent=agent,
            options=self.options,
            now_ms=self._now(),
            wall_s=time.time(),
            new_id=new_id,
            input_path=_Enhancer(),
            recognizer_factory=self._recognizer,
        )
        self.closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._push_lock = asyncio.Lock()
        self._cancelled: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._transcribers: dict[tuple[str, ...] | None, Any] = {}
        self._asr_lock = asyncio.Lock()

    # --- what it holds ----------------------------------------------------------------------------

    @property
    def session(self) -> Event:
        return self.protocol.session

    @property
    def items(self) -> ItemStore:
        return self.protocol.items

    @property
    def input_ms(self) -> float:
        """Position of the session-wide input-audio timeline."""
        return self.protocol.input_ms

    @property
    def active_response(self) -> ActiveResponse | None:
        return self.protocol.active_response

    @property
    def responder(self) -> Responder:
        return self.protocol.responder

    def _now(self) -> float:
        return self.loop.time() * 1000.0

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Send ``session.created``."""
        self.protocol.start(self._now())
        await self._sync()

    async def close(self) -> None:
        """The connection is gone: stop every task (nothing more is sent)."""
        self.closed = True
        self.protocol.close()
        if self._timer is not None:
            self._timer.cancel()
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    async def expire(self) -> None:
        """The session reached ``expires_at``: cancel any response and send ``session_expired``."""
        self.protocol.expire(self._now())
        await self._sync()

    # --- client messages ----------------------------------------------------------------------------

    async def handle_message(self, data: str | bytes) -> None:
        """Handle one client frame; every problem becomes an ``error`` event."""
        msg = await self.parse_message(data)
        if msg is not None:
            await self.handle_event(msg)

    async def parse_message(self, data: str | bytes) -> Any:
        """Decode one client frame (counted as received); ``None`` after an ``error`` was sent for it."""
        msg = self.protocol.parse_message(data)
        await self._sync()
        return msg

    async def handle_event(self, msg: Any) -> None:
        """Handle one decoded client event (in the canonical, dated-version shape)."""
        self.protocol.handle_event(msg, self._now())
        await self._sync()

    # --- feeding the sink ---------------------------------------------------------------------------

    async def _sync(self) -> None:
        """After every call into the protocol: discards, work, events, the timer (in that order)."""
        for what, exc in self.protocol.take_failures():
            logger.error("emulator failed on %s", what, exc_info=exc)
        for response_id in self.protocol.take_discards():
            # at once, before the sink's writer runs again: what it has not sent stays unsent
            self._cancelled.add(response_id)
            await self.sink.discard(_is_delta_of(response_id))
        blocking = self._start_work()
        await self._push()
        self._arm_timer()
        for job in blocking:
            await self._run_job(job)

    async def _push(self) -> None:
        async with self._push_lock:
            while not self.closed and (out := self.protocol.next_outgoing()) is not None:
                event, hook = out.event, out.on_sent
                rid = event.get("response_id")
                if rid in self._cancelled and event.get("type") in DELTA_TYPES:
                    continue
                await self.sink.send(event, None if hook is None else self._hook(hook))
                if rid in self._cancelled and event.get("type") in DELTA_TYPES:
                    # cancelled while this one waited for room: it must not go out either
                    await self.sink.discard(_is_delta_of(str(rid)))

    def _hook(self, hook: Callable[[float], None]) -> Callable[[], None]:
        return lambda: hook(self._now())

    def _arm_timer(self) -> None:
        due = None if self.closed else self.protocol.next_deadline()
        if due == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, due
        if due is not None:
            self._timer = self.loop.call_at(due / 1000.0, self._on_timer, due)

    def _on_timer(self, due: float) -> None:
        self._timer, self._timer_at = None, None
        self._spawn(self._advance(due), "emulator pacing")

    async def _advance(self, due: float) -> None:
        self.protocol.advance(max(self._now(), due))
        await self._sync()

    # --- work -----------------------------------------------------------------------------------

    def _start_work(self) -> list[Job]:
        """Spawn the protocol's non-blocking jobs; return the blocking ones (run them in order)."""
        blocking: list[Job] = []
        for job in self.protocol.work():
            if job.blocking:
                blocking.append(job)
            else:
                self._spawn(self._run_job(job), f"emulator {job.kind}")
        return blocking

    async def _run_job(self, job: Job) -> None:
        try:
            result = await self._execute(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if job.kind not in ("transcribe", "stream_finish"):  # those become transcription.failed
                logger.debug("emulator job %r failed", job, exc_info=True)
            self.protocol.job_failed(job, exc, self._now())
        else:
            self.protocol.job_done(job, result, self._now())
        if not self.closed:
            await self._sync()

    async def _execute(self, job: Job) -> Any:
        kind, args = job.kind, job.args
        if kind == "vad_model":
            from ..speech.vad import SpeechProbability

            return await self._run_blocking(SpeechProbability, *args)
        if kind == "vad_score":
            model, mono = args
            t0 = time.perf_counter()
            if len(mono) > 2 * int(self.session["input_audio_sampling_rate"]):  # over a second: off the loop
                probs = await self._run_blocking(model.feed, mono)
            else:
                probs = model.feed(mono)
            self.stats.vad_cpu_s += time.perf_counter() - t0
            return probs
        if kind == "render":
            return await self._run_blocking(render_speech, *args)
        if kind == "transcribe":
            return await self._transcribe(*args)
        if kind in ("stream_finish", "await"):
            return await args[0]
        raise InvalidValue(f"unknown emulator job {kind!r}")

    async def _transcribe(self, audio: bytes, rate: int, phrases: tuple[str, ...] | None) -> str:
        async with self._asr_lock:
            transcriber: Any = self._transcribers.get(phrases)
            if transcriber is None:
                from ..speech.asr import Transcriber

                transcriber = await self._run_blocking(Transcriber, list(phrases) if phrases else None)
                self._transcribers[phrases] = transcriber
        return str(await self._run_blocking(transcriber.transcribe, audio, rate))

    def _recognizer(self) -> Any:
        from ..speech.streaming_asr import StreamingRecognizer

        return StreamingRecognizer(self._run_blocking, self._stream_delta)

    async def _stream_delta(self, item_id: str, delta: str) -> None:
        self.protocol.transcription_delta(item_id, delta, self._now())
        await self._sync()

    async def _run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.loop.run_in_executor(self.options.executor, fn, *args)

    def _spawn(self, coro: Awaitable[T], name: str) -> asyncio.Task[T]:
        """A background task of this connection: cancelled on close; failures logged."""
        task: asyncio.Task[T] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            logger.error("emulator task %s failed", task.get_name(), exc_info=exc)
