"""Replay a recording through a Voice Live session and read back where the service heard speech.

::

    result = replay("question.wav", SessionConfig.server_vad(), truth="question.json")
    result.turns            # Turn(audio_start_ms, audio_end_ms, speech_start_ms, ..., latencies)
    result.score.summary()  # precision / recall / F1 / boundary errors (when a truth is known)
    result.plot()           # waveform, truth, the service's spans

Where it runs (:class:`Backend`): ``endpoint=None`` uses ``AZURE_VOICE_LIVE_ENDPOINT`` (environment
or ``.env``) when set and the built-in emulator otherwise; ``endpoint="emulator"`` always the
emulator; any URL that endpoint. Audio is paced in real time against a service and sent as fast
as possible to the emulator (and to any loopback endpoint, which is taken to be an emulator);
``pace=`` overrides.

One replay = one fresh session: connect, ``session.update`` with the configuration (with
``create_response`` off unless ``responses=True``, and no input transcription unless
``transcription=True``: the lab measures turn detection, not the model), stream the audio plus
``tail_ms`` of digital silence so the last turn can end, then wait until the service has
processed everything. In fast pacing that wait is a barrier: an empty ``session.update`` is
answered only after every earlier append was processed, so its ``session.updated`` proves that
all VAD events are in. In real-time pacing the tail itself is the wait, plus up to ``settle_s``
for a turn still open.

Spans are mapped onto speech as described in :mod:`voicelive_nb.analysis.vad_scoring`:
``speech_start_ms = audio_start_ms + prefix_padding_ms`` (unless clamped at the buffer start),
``speech_end_ms = audio_end_ms - silence_duration_ms``, with both knobs read from the
effective session the service reported.

Rate limits: a refused handshake with HTTP 429, an ``error`` event whose code contains
``rate``, or a close whose reason mentions a rate limit (or code 1013, try again later) is
retried after an exponential, jittered back-off, a bounded number of times
(:class:`RetryPolicy`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from ..analysis.vad_scoring import BoundaryMapping, DetectedTurn, VadScore, percentile, score_turns
from ..errors import (
    ConfigError,
    ConnectionClosed,
    InvalidValue,
    ServerError,
    TransportError,
    VoiceLiveError,
    WaitTimeout,
)
from ..hosts import is_loopback_host
from ..protocol.config import UNSET, SessionConfig
from ..protocol.state import SessionProtocol, VadSegment
from .inputs import as_config, as_truth, optional_pandas
from .testsets import Clip, as_clip
from .truth import Truth

log = logging.getLogger("voicelive_nb.lab")

__all__ = [
    "EMULATOR",
    "Backend",
    "RateLimited",
    "ReplayResult",
    "RetryPolicy",
    "Turn",
    "boundary_mapping",
    "is_rate_limited",
    "replay",
    "replay_async",
    "run_sync",
]

T = TypeVar("T")
Pace = Literal["realtime", "fast"]

#: ``endpoint=EMULATOR`` always uses the built-in emulator.
EMULATOR = "emulator"
#: The key the lab's own emulator is started with.
EMULATOR_KEY = "voicelive-nb-lab"

#: Documented defaults when the service does not report a knob (reference §3.6, API ≥ 2026-04-10).
_DEFAULT_PADDING_MS = {"server_vad": 400, "semantic_vad": 300}
_DEFAULT_AZURE_PADDING_MS = 420
_DEFAULT_SILENCE_MS = 500
#: ``semantic_vad`` has no silence knob; the wait its ``eagerness`` stands for (the emulator's
#: model of it; the service's semantic model decides by content, and its end errors show that).
_SEMANTIC_SILENCE_MS = {"low": 1500, "medium": 800, "auto": 800, "high": 300}


# --------------------------------------------------------------------------------- rate limits


class RateLimited(ServerError):
    """The service said the client is over a rate limit (an ``error`` event mid-session)."""


def is_rate_limited(exc: BaseException) -> bool:
    """True when ``exc`` means "slow down": HTTP 429 at the handshake, an error code with
    ``rate`` in it, or a close whose reason mentions a rate limit (or close code 1013)."""
    if isinstance(exc, RateLimited):
        return True
    if isinstance(exc, ServerError):
        return "rate" in (exc.code or "").lower()
    if isinstance(exc, ConnectionClosed):
        return exc.code == 1013 or "rate" in (exc.reason or "").lower()
    if isinstance(exc, TransportError):
        text = str(exc)
        return "HTTP 429" in text or "429 Too Many Requests" in text
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential back-off with jitter for rate-limited replays.

    Attempt ``k`` (0-based) waits ``d/2 + uniform(0, d/2)`` with ``d = min(max_delay_s,
    base_delay_s · 2**k)``; after ``max_retries`` retries the error is raised.
    """

    max_retries: int = 4
    base_delay_s: float = 1.0
    max_delay_s: float = 20.0

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        d = min(self.max_delay_s, self.base_delay_s * (2.0**attempt))
        return d / 2 + rng.uniform(0.0, d / 2)


# --------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Turn:
    """One turn the service detected, raw and mapped, with its timing.

    ``stop_latency_ms``: wall time from the moment the audio up to ``speech_end_ms`` had been
    sent until ``speech_stopped`` arrived (silence window + detection + network; only measured
    with real-time pacing, None when the audio was sent as fast as possible). ``response_latency_ms``: from ``speech_stopped`` to the first audio
    or text of the response it triggered (only with ``responses=True``; None when the response
    was cancelled before any output, e.g. by the next turn's barge-in, see ``response_status``).
    ``turn_latency_ms``: their sum, end of speech to first response output.
    """

    index: int
    item_id: str | None
    audio_start_ms: float
    audio_end_ms: float | None
    speech_start_ms: float
    speech_end_ms: float
    start_clamped: bool
    open: bool
    started_at_s: float | None
    stopped_at_s: float | None
    stop_latency_ms: float | None = None
    response_id: str | None = None
    response_latency_ms: float | None = None
    response_status: str | None = None

    @property
    def turn_latency_ms(self) -> float | None:
        if self.stop_latency_ms is None or self.response_latency_ms is None:
            return None
        return self.stop_latency_ms + self.response_latency_ms

    @property
    def detected(self) -> DetectedTurn:
        return DetectedTurn(
            self.audio_start_ms,
            self.audio_end_ms,
            self.speech_start_ms,
            self.speech_end_ms,
            self.start_clamped,
            self.open,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "item_id": self.item_id,
            "audio_start_ms": self.audio_start_ms,
            "audio_end_ms": self.audio_end_ms,
            "speech_start_ms": self.speech_start_ms,
            "speech_end_ms": self.speech_end_ms,
            "start_clamped": self.start_clamped,
            "open": self.open,
            "started_at_s": _r(self.started_at_s, 4),
            "stopped_at_s": _r(self.stopped_at_s, 4),
            "stop_latency_ms": _r(self.stop_latency_ms),
            "response_id": self.response_id,
            "response_latency_ms": _r(self.response_latency_ms),
            "response_status": self.response_status,
            "turn_latency_ms": _r(self.turn_latency_ms),
        }


#: Score columns in the order a reader needs them: the overall rate, then the mistakes, then
#: the boundary errors, then the rest.
KEY_SCORE_COLUMNS: tuple[str, ...] = (
    "f1",
    "precision",
    "recall",
    "missed",
    "cut_offs",
    "merged",
    "false_starts",
    "start_error_ms_median",
    "end_error_ms_median",
    "end_error_ms_p90",
)


def format_score(summary: Mapping[str, Any]) -> str:
    """A score summary as one readable line (``F1 0.97 (P 1.00, R 0.94) · 1 missed · ...``)."""

    def num(name: str, spec: str) -> str:
        value = summary.get(name)
        return "n/a" if value is None else format(value, spec)

    text = f"F1 {num('f1', '.2f')} (P {num('precision', '.2f')}, R {num('recall', '.2f')})"
    mistakes = [
        f"{summary[k]} {k.replace('_', '-').rstrip('s') if summary[k] == 1 else k.replace('_', '-')}"
        for k in ("missed", "cut_offs", "merged", "false_starts")
        if summary.get(k)
    ]
    text += " · " + (", ".join(mistakes) if mistakes else "no mistakes")
    text += f" · start {num('start_error_ms_median', '+.0f')} ms, end {num('end_error_ms_median', '+.0f')} ms (median)"
    return text


def score_table(rows: Sequence[tuple[str, Mapping[str, Any]]], index: str = "clip") -> Any:
    """Named score summaries as a table with :data:`KEY_SCORE_COLUMNS` first (pandas if installed)."""
    records = []
    for name, summary in rows:
        ordered: dict[str, Any] = {index: name}
        ordered.update({k: summary.get(k) for k in KEY_SCORE_COLUMNS})
        ordered.update({k: v for k, v in summary.items() if k not in ordered})
        records.append(ordered)
    pd = optional_pandas()
    if pd is None:
        return records
    return pd.DataFrame(records).set_index(index)


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class ReplayResult:
    """What one replay produced. ``events`` are ``(seconds since streaming began, wire dict)``
    with audio payloads left out."""

    name: str
    config: SessionConfig
    mapping: BoundaryMapping
    turns: list[Turn]
    events: list[tuple[float, dict[str, Any]]] = field(repr=False)
    audio_ms: float
    tail_ms: float
    sample_rate: int
    pace: str
    target: str
    wall_s: float
    truth: Truth | None = None
    score: VadScore | None = None
    errors: list[str] = field(default_factory=list)
    retries: int = 0
    clip: Clip | None = field(default=None, repr=False)

    @property
    def service_spans_ms(self) -> list[tuple[float, float | None]]:
        """The service's spans as reported: ``(audio_start_ms, audio_end_ms)``."""
        return [(t.audio_start_ms, t.audio_end_ms) for t in self.turns]

    @property
    def speech_spans_s(self) -> list[tuple[float, float]]:
        """The turns mapped onto speech, in seconds (open turns end at the end of the audio)."""
        return [
            (t.speech_start_ms / 1000.0, t.speech_end_ms / 1000.0)
            for t in self.turns
            if t.speech_end_ms > t.speech_start_ms
        ]

    def rescore(self, truth: Truth | str | Path | Sequence[Sequence[float]], **options: float) -> VadScore:
        """Score against another truth (``min_overlap``, ``collar_ms`` as in :func:`score_turns`)."""
        t = as_truth(truth)
        assert t is not None
        return score_turns(t.spans_ms, [turn.detected for turn in self.turns], **options)

    def summary(self) -> dict[str, Any]:
        """One flat row: the clip, the target, the turn count and the score fields."""
        row: dict[str, Any] = {
            "name": self.name,
            "target": self.target,
            "audio_s": round(self.audio_ms / 1000.0, 3),
            "wall_s": round(self.wall_s, 3),
            "turns": len(self.turns),
        }
        if self.score is not None:
            row.update(self.score.summary())
        latencies = [t.stop_latency_ms for t in self.turns if t.stop_latency_ms is not None]
        if latencies and self.pace == "realtime":
            row["stop_latency_ms_median"] = _r(percentile(latencies, 50))
        return row

    def describe(self) -> str:
        """One readable line: the clip, where it ran, the turns and the score."""
        text = f"{self.name} on {self.target}: {len(self.turns)} turn{'s' * (len(self.turns) != 1)}"
        text += f" in {self.audio_ms / 1000.0:.1f} s of audio"
        if self.score is not None:
            text += f"; {format_score(self.score.summary())}"
        if self.errors:
            text += f"; errors: {'; '.join(self.errors)}"
        return text

    def __repr__(self) -> str:
        return f"<ReplayResult {self.describe()}>"

    def score_frame(self) -> Any:
        """The score as a one-row table, the columns that matter first (a dict without pandas)."""
        if self.score is None:
            raise VoiceLiveError("this replay has no truth, so no score; pass truth= to replay()")
        return score_table([(self.name, self.score.summary())])

    def to_frame(self, columns: Sequence[str] | None = None) -> Any:
        """The turns as a pandas DataFrame (a list of dicts without pandas); ``columns``: only
        these, in this order (the ``index`` column is always kept)."""
        rows = [t.as_dict() for t in self.turns]
        every = list(Turn(0, None, 0, None, 0, 0, False, False, None, None).as_dict())
        chosen = every if columns is None else ["index", *(c for c in columns if c != "index")]
        unknown = [c for c in chosen if c not in every]
        if unknown:
            raise InvalidValue(f"unknown turn column(s) {unknown}; columns: {', '.join(every)}")
        rows = [{c: row[c] for c in chosen} for row in rows]
        pd = optional_pandas()
        if pd is None:
            return rows
        return pd.DataFrame(rows, columns=chosen).set_index("index")

    def plot(self, **kwargs: Any) -> Any:
        """Waveform, truth and the service's spans (see :func:`voicelive_nb.lab.figures.plot_replay`)."""
        from .figures import plot_replay

        return plot_replay(self, **kwargs)


# --------------------------------------------------------------------------------- where replays run


class Backend:
    """Where replays run: the built-in emulator (started on enter) or a service endpoint.

    Start it once and run many replays through it (a sweep or the widget do); every replay opens
    its own session. Use it on one event loop only.

    The built-in emulator runs on its own thread and event loop by default (``emulator_thread``):
    its Silero VAD is the CPU-heavy part of a replay, and on the client's loop (the engine's, in a
    notebook) it would hold up every other live session there; on its own thread it also overlaps
    with the client's work (see ``benchmarks/bench_sweep.py``).
    """

    def __init__(
        self,
        endpoint: str | None = None,
        api_key: str | None = None,
        *,
        pace: Pace | None = None,
        dotenv: bool = True,
        model: str | None = None,
        api_version: str | None = None,
        emulator_options: Mapping[str, Any] | None = None,
        emulator_thread: bool = True,
    ) -> None:
        if pace not in (None, "realtime", "fast"):
            raise ConfigError("pace", pace, "'realtime', 'fast' or None (automatic)")
        self._model = model
        self._api_version = api_version
        self._dotenv = dotenv
        self._emulator_options = dict(emulator_options or {})
        self._emulator_thread = emulator_thread
        self._server: Any = None
        if endpoint is None:
            from ..auth import load_settings

            settings = load_settings(dotenv=dotenv)
            if settings.configured:
                endpoint = settings.endpoint
        self.emulator = endpoint is None or endpoint == EMULATOR
        self.endpoint: str | None = None if self.emulator else endpoint
        self.api_key = EMULATOR_KEY if self.emulator else api_key
        local = self.emulator or (
            endpoint is not None and is_loopback_host(urlsplit(endpoint).hostname or "")
        )
        #: True when replays go to a real service (real-time pacing, cost, rate limits).
        self.is_service = not local
        self.pace: Pace = pace or ("fast" if local else "realtime")

    @property
    def label(self) -> str:
        if self.emulator:
            return "emulator"
        from ..transport import redact_url

        return redact_url(self.endpoint or "")

    @property
    def url(self) -> str:
        if self.emulator:
            if self._server is None:
                raise VoiceLiveError("the lab's emulator is not running; use 'async with Backend(...)'")
            return str(self._server.url)
        assert self.endpoint is not None
        return self.endpoint

    async def start(self) -> None:
        """Start the built-in emulator (no-op for a service endpoint or when already started)."""
        if not self.emulator or self._server is not None:
            return
        options: dict[str, Any] = {"api_key": EMULATOR_KEY, "pace": "fast", "transcription": False}
        options.update(self._emulator_options)
        if self._emulator_thread:
            from ..emulator.server import BackgroundEmulator

            background = BackgroundEmulator(**options)
            self._server = await asyncio.to_thread(background.start)
        else:
            from ..emulator.server import EmulatorServer

            server = EmulatorServer(**options)
            await server.start()
            self._server = server

    async def stop(self) -> None:
        """Stop the built-in emulator if this backend started it (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        if self._emulator_thread:
            await asyncio.to_thread(server.stop)
        else:
            await server.stop()

    async def __aenter__(self) -> Backend:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def session(self, config: SessionConfig, *, frame_ms: int, max_events: int = 20_000) -> Any:
        from ..session import Session

        return Session(
            config,
            endpoint=self.url,
            api_key=self.api_key,
            model=self._model,
            api_version=self._api_version,
            emulator=False,
            frame_ms=frame_ms,
            max_events=max_events,
            dotenv=self._dotenv and not self.emulator,
        )

    def __repr__(self) -> str:
        return f"<Backend {self.label} pace={self.pace}>"


# --------------------------------------------------------------------------------- configuration


def _replay_config(config: SessionConfig, responses: bool, transcription: bool) -> SessionConfig:
    """The configuration actually sent: VAD only unless asked otherwise."""
    if config.turn_detection is None:
        raise ConfigError(
            "turn_detection", None, "a VAD type: replay measures turn detection (manual mode has none)"
        )
    run = config
    if config.turn_detection is UNSET:
        run = run.with_changes({"turn_detection": {"type": "server_vad"}})
    if not responses:
        run = run.with_changes({"turn_detection.create_response": False})
    if not transcription and run.input_audio_transcription is not UNSET:
        run = run.replace(input_audio_transcription=None)
    return run


def boundary_mapping(
    session: Mapping[str, Any] | None, config: SessionConfig | None = None
) -> BoundaryMapping:
    """The padding and silence window to undo: from the effective session the service reported,
    else from ``config``, else the documented defaults of the VAD type.

    Only ``silence_duration_ms`` is undone: the extra wait of an end-of-utterance model
    (``end_of_utterance_detection``) is not known exactly and shows as later ends."""
    td: Mapping[str, Any] = {}
    if session and isinstance(session.get("turn_detection"), Mapping):
        td = session["turn_detection"]
    cfg_td = config.to_dict().get("turn_detection") if config is not None else None
    if not isinstance(cfg_td, Mapping):
        cfg_td = {}

    def knob(name: str) -> Any:
        value = td.get(name)
        return value if isinstance(value, (int, float)) else cfg_td.get(name)

    kind = str(td.get("type") or cfg_td.get("type") or "server_vad")
    padding = knob("prefix_padding_ms")
    silence = knob("silence_duration_ms")
    if not isinstance(padding, (int, float)):
        padding = _DEFAULT_PADDING_MS.get(kind, _DEFAULT_AZURE_PADDING_MS)
    if not isinstance(silence, (int, float)):
        if kind == "semantic_vad":
            eagerness = td.get("eagerness") or cfg_td.get("eagerness") or "auto"
            silence = _SEMANTIC_SILENCE_MS.get(str(eagerness), 800)
        else:
            silence = _DEFAULT_SILENCE_MS
    return BoundaryMapping(float(padding), float(silence))


# --------------------------------------------------------------------------------- the replay


async def _race(awaitable: Coroutine[Any, Any, T], stop: asyncio.Future[BaseException], timeout: float) -> T:
    """``awaitable``'s result, unless ``stop`` resolves first (its exception is raised) or time runs out."""
    task: asyncio.Future[T] = asyncio.ensure_future(awaitable)
    waitables: set[asyncio.Future[Any]] = {task, stop}
    try:
        done, _ = await asyncio.wait(waitables, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    if task in done:
        return task.result()
    if stop.done():
        raise stop.result()
    raise WaitTimeout(f"the replay did not finish within {timeout:g} s")


def _extract_turns(
    events: list[tuple[float, Any]],
    mapping: BoundaryMapping,
    sent: list[tuple[float, int]] | None,
    bytes_per_ms: float,
    audio_total_ms: float,
) -> list[Turn]:
    """Turns from the timed events (``sent``: the send log, None when latencies are meaningless).

    A view over :class:`SessionProtocol`, the one interpreter of the events: its VAD segments
    (with their receive times) are the turns; a response answers the latest stopped turn that
    has none when it is created."""
    proto = SessionProtocol()
    answered: dict[int, object] = {}  # segment index -> the response created for it
    first_output: dict[str, float] = {}
    status: dict[str, str] = {}
    for t, ev in events:
        proto.receive(ev, t)
        etype = ev.type
        if etype == "response.created":
            _answer_latest_turn(proto.vad_segments, answered, ev.response.get("id"))
        elif etype == "response.done":
            rid = ev.response.get("id")
            if isinstance(rid, str):
                status[rid] = str(ev.response.get("status"))
        elif etype in ("response.audio.delta", "response.text.delta", "response.audio_transcript.delta"):
            rid = getattr(ev, "response_id", None)
            if isinstance(rid, str) and rid not in first_output:
                first_output[rid] = t
    pending: list[dict[str, Any]] = [
        {"item_id": s.item_id, "start": s.start_ms, "end": s.end_ms, "t0": s.started_at, "t1": s.stopped_at}
        for s in proto.vad_segments
    ]
    for index, rid in answered.items():
        pending[index]["response"] = rid
    mapped = mapping.map_turns(((p["start"], p["end"]) for p in pending), audio_total_ms=audio_total_ms)
    turns: list[Turn] = []
    for index, (p, m) in enumerate(zip(pending, mapped, strict=True)):
        stop_latency = None
        if sent is not None and p["t1"] is not None and not m.open:
            sent_at = _sent_time(sent, m.speech_end_ms * bytes_per_ms)
            if sent_at is not None:
                stop_latency = (p["t1"] - sent_at) * 1000.0
        rid = p.get("response")
        response_latency = None
        if isinstance(rid, str) and rid in first_output and p["t1"] is not None:
            response_latency = (first_output[rid] - p["t1"]) * 1000.0
        turns.append(
            Turn(
                index=index,
                item_id=p["item_id"],
                audio_start_ms=m.audio_start_ms,
                audio_end_ms=m.audio_end_ms,
                speech_start_ms=m.speech_start_ms,
                speech_end_ms=m.speech_end_ms,
                start_clamped=m.start_clamped,
                open=m.open,
                started_at_s=p["t0"],
                stopped_at_s=p["t1"],
                stop_latency_ms=stop_latency,
                response_id=rid if isinstance(rid, str) else None,
                response_latency_ms=response_latency,
                response_status=status.get(rid) if isinstance(rid, str) else None,
            )
        )
    return turns


def _answer_latest_turn(segments: Sequence[VadSegment], answered: dict[int, object], rid: object) -> None:
    """Give a new response to the latest stopped turn that has none yet."""
    for index in range(len(segments) - 1, -1, -1):
        if segments[index].end_ms is not None and index not in answered:
            answered[index] = rid
            return


def _sent_time(sent: list[tuple[float, int]], byte_pos: float) -> float | None:
    """When the input audio up to ``byte_pos`` had been sent (binary search over the send log)."""
    lo, hi = 0, len(sent)
    while lo < hi:
        mid = (lo + hi) // 2
        if sent[mid][1] < byte_pos:
            lo = mid + 1
        else:
            hi = mid
    return sent[lo][0] if lo < len(sent) else None


def _event_dict(ev: Any) -> dict[str, Any]:
    try:
        data = dict(ev.to_dict())
    except Exception:
        return {"type": getattr(ev, "type", "?")}
    if data.get("type") == "response.audio.delta":
        data.pop("delta", None)
    return data


async def _replay_once(
    backend: Backend,
    clip: Clip,
    config: SessionConfig,
    truth: Truth | None,
    *,
    responses: bool,
    transcription: bool,
    tail_ms: float | None,
    frame_ms: int | None,
    settle_s: float,
    timeout_s: float | None,
    keep_clip: bool,
) -> ReplayResult:
    from ..audio.memory import ArraySource

    run_cfg = _replay_config(config, responses, transcription)
    pace = backend.pace
    frames = frame_ms or (100 if pace == "fast" else 20)
    session = backend.session(run_cfg, frame_ms=frames)
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[BaseException] = loop.create_future()
    errors: list[str] = []

    def on_error(event: Any) -> None:
        err = getattr(event, "error", None) or {}
        code = str(err.get("code") or "")
        errors.append(f"{code or 'error'}: {err.get('message', '')}")
        if "rate" in code.lower() and not stop.done():
            stop.set_result(
                RateLimited(str(err.get("message", "rate limited")), code=code, error_type=err.get("type"))
            )

    session.on("error", on_error)
    sent: list[tuple[float, int]] = []
    started = time.monotonic()
    async with session:
        effective = session.effective_session()
        mapping = boundary_mapping(effective, run_cfg)
        tail = tail_ms if tail_ms is not None else mapping.silence_duration_ms + 1000.0
        audio_total_ms = clip.duration_s * 1000.0 + tail
        budget = (
            timeout_s
            if timeout_s is not None
            else (60.0 + audio_total_ms / 1000.0 * (1.5 if pace == "realtime" else 0.5))
        )
        session.input_taps.append(lambda pcm: sent.append((time.monotonic(), session.bytes_sent)))
        source = ArraySource(clip.pcm16, clip.sample_rate, pace=pace, tail_silence_ms=tail)
        t0 = time.monotonic()
        session.stream(source)
        await _race(session.source_done.wait(), stop, budget)
        if session.failure is not None:
            raise session.failure
        if pace == "fast":
            # barrier: answered only after every earlier append was processed
            await session.send({"type": "session.update", "session": {}})
            await _race(session.wait_for("session.updated", timeout=budget), stop, budget)
        else:
            segs = session.state.vad_segments
            if segs and segs[-1].end_ms is None:
                open_item = segs[-1].item_id
                with contextlib.suppress(WaitTimeout):
                    await _race(
                        session.wait_for(
                            "input_audio_buffer.speech_stopped",
                            timeout=settle_s,
                            predicate=lambda e: e.item_id == open_item,
                        ),
                        stop,
                        settle_s + 1,
                    )
        if responses:
            deadline = settle_s + 30.0
            with contextlib.suppress(WaitTimeout):
                await _race(_responses_done(session), stop, deadline)
        if stop.done():
            raise stop.result()
        timed = session.timed_events()
        bytes_per_ms = run_cfg.input_bytes_per_ms
    wall = time.monotonic() - started
    if session.failure is not None and not isinstance(session.failure, ConnectionClosed):
        raise session.failure
    rel = [(t - t0, ev) for t, ev in timed if t >= t0]
    # in fast pacing everything is sent at once: a wall-clock stop latency would mean nothing
    sent_rel = [(t - t0, n) for t, n in sent] if pace == "realtime" else None
    turns = _extract_turns(rel, mapping, sent_rel, bytes_per_ms, audio_total_ms)
    score = score_turns(truth.spans_ms, [t.detected for t in turns]) if truth is not None else None
    return ReplayResult(
        name=clip.name,
        config=config,
        mapping=mapping,
        turns=turns,
        events=[(round(t, 4), _event_dict(ev)) for t, ev in rel],
        audio_ms=clip.duration_s * 1000.0,
        tail_ms=tail,
        sample_rate=clip.sample_rate,
        pace=pace,
        target=backend.label,
        wall_s=wall,
        truth=truth,
        score=score,
        errors=errors,
        clip=clip if keep_clip else None,
    )


async def _responses_done(session: Any) -> None:
    """Wait until every ended turn has had its response created, and every response is done.

    A response is created a little after its ``speech_stopped`` (the emulator and the service
    commit first), so waiting only for the active ones could end before the last one began.
    """

    def count(event_type: str) -> int:
        return sum(1 for e in session.events if e.type == event_type)

    while count("response.created") < count("input_audio_buffer.speech_stopped"):
        await session.wait_for("response.created", timeout=60)
    while session.state.active_responses:
        await session.wait_for("response.done", timeout=60)


async def replay_async(
    audio: Clip | str | Path | bytes,
    config: SessionConfig | Mapping[str, Any] | None = None,
    *,
    truth: Truth | str | Path | Sequence[Sequence[float]] | None = None,
    endpoint: str | None = None,
    api_key: str | None = None,
    backend: Backend | None = None,
    pace: Pace | None = None,
    sample_rate: int | None = None,
    name: str | None = None,
    responses: bool = False,
    transcription: bool = False,
    tail_ms: float | None = None,
    frame_ms: int | None = None,
    settle_s: float = 3.0,
    timeout_s: float | None = None,
    retry: RetryPolicy | None = None,
    rng: random.Random | None = None,
    keep_clip: bool = True,
) -> ReplayResult:
    """Replay ``audio`` (a WAV path, a :class:`~voicelive_nb.lab.testsets.Clip` or PCM16 bytes with
    ``sample_rate``) through one session configured with ``config``; see the module doc.

    ``truth`` (a :class:`Truth`, a label file or ``[[start_s, end_s], ...]``) defaults to the
    clip's own (a WAV's sidecar ``.json``/``.csv``/``.txt``); with a truth the result is scored.
    Pass a started ``backend`` to reuse one emulator for many replays.
    """
    clip = as_clip(audio, sample_rate, name=name)
    t = as_truth(truth) if truth is not None else clip.truth
    cfg = as_config(config)
    policy = retry or RetryPolicy()
    jitter = rng or random.Random()
    options: dict[str, Any] = {
        "responses": responses,
        "transcription": transcription,
        "tail_ms": tail_ms,
        "frame_ms": frame_ms,
        "settle_s": settle_s,
        "timeout_s": timeout_s,
        "keep_clip": keep_clip,
    }
    if backend is None:
        async with Backend(endpoint, api_key, pace=pace) as own:
            return await replay_with_retries(own, clip, cfg, t, options, policy, jitter)
    return await replay_with_retries(backend, clip, cfg, t, options, policy, jitter)


async def replay_with_retries(
    backend: Backend,
    clip: Clip,
    config: SessionConfig,
    truth: Truth | None,
    options: Mapping[str, Any],
    policy: RetryPolicy,
    rng: random.Random,
    on_retry: Callable[[int, float, BaseException], None] | None = None,
) -> ReplayResult:
    """One replay, retried on rate limits as ``policy`` says (shared with the sweep, which adds ``on_retry``)."""
    attempt = 0
    while True:
        try:
            result = await _replay_once(backend, clip, config, truth, **options)
        except Exception as exc:
            if not is_rate_limited(exc) or attempt >= policy.max_retries:
                raise
            delay = policy.delay_s(attempt, rng)
            attempt += 1
            log.warning(
                "rate limited (%s); retry %d of %d in %.1f s", exc, attempt, policy.max_retries, delay
            )
            if on_retry is not None:
                on_retry(attempt, delay, exc)
            await asyncio.sleep(delay)
            continue
        result.retries = attempt
        return result


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the engine thread and wait (works in scripts and in notebook cells,
    where the kernel's loop is already running). Ctrl-C cancels it."""
    from ..engine import get_engine

    engine = get_engine()
    if engine.in_engine_thread():
        coro.close()
        raise VoiceLiveError("called from the engine thread; await the *_async version instead")
    future = engine.submit(coro)
    try:
        return future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise WaitTimeout(f"the operation did not finish within {timeout:g} s") from None
    except KeyboardInterrupt:
        future.cancel()
        raise


def replay(
    audio: Clip | str | Path | bytes,
    config: SessionConfig | Mapping[str, Any] | None = None,
    *,
    timeout: float | None = None,
    **options: Any,
) -> ReplayResult:
    """Blocking :func:`replay_async` (runs on the engine thread; same options)."""
    return run_sync(replay_async(audio, config, **options), timeout)
