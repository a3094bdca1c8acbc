"""A pure model of one session on ONE time axis: :class:`Timeline`.

Feed it what happened, with the ``time.monotonic()`` at which it happened (the caller reads
the clock; this module never does): :meth:`Timeline.add` for every event received,
:meth:`Timeline.input_audio` for every block of input audio sent (or :meth:`Timeline.sent`
with the ``input_audio_buffer.append`` event). Read spans and marks in **seconds on the
session axis**, or :meth:`Timeline.to_arrays` / :meth:`Timeline.pack` for the live view.

The time axis
-------------
Zero is the start of the session's input audio (the capture time of its first sample).
Two clocks have to be put on it:

* **Input-audio milliseconds** (``audio_start_ms`` / ``audio_end_ms`` of the VAD events) are
  positions in the audio the client sent. They are the reference.
* **Receive times** ``t`` (response spans, commits, barge-ins, assistant audio, latency).

Mapping (``mode == "realtime"``): the first input block, of ``n`` ms, is sent at ``t0``; its
audio was captured from ``t0 - n/1000``, which is axis zero, so input-audio ms ``a`` is
``a / 1000`` s and a receive time ``t`` is ``t - (t0 - n/1000)`` s — i.e. ``t - t0`` up to one
block. This is valid because input is streamed in real time: a block is sent as soon as its
audio is captured. The origin is refined to the earliest consistent block (a late first block
does not shift the axis), and when input stops and resumes later (no audio sent for more than
``GAP_S``, e.g. ``speak()`` twice with the microphone off) a new *run* starts: audio after the
gap is placed where it was really sent, not right after the previous audio. A stall of the
sender is told apart from a pause by what follows: a backlog sent in a burst (faster than real
time) was captured on schedule, so it stays in the previous run.

``mode == "fast-input"``: the input was sent faster than real time (a file paced ``"fast"``;
detected when the audio sent runs ahead of the clock by more than ``FAST_LEAD_S`` and half its
duration). Audio time and receive time then cannot be related: VAD spans and the input
waveform use audio time (``a / 1000``), everything received uses wall time since the first
block (``t - t0``). The two are not comparable; figures say so.

``mode == "estimated"``: no input-audio times were given (a bare event list). The origin is
estimated as the latest of the ``session.updated`` receipt (input cannot start before it) and
the earliest ``t_recv - audio_ms/1000`` over VAD events (audio cannot be reported before it was
sent). Responses may then appear a little early relative to the VAD spans.

``mode == "none"``: neither input nor VAD events; the first event is zero.

What is modelled
----------------
* VAD spans: ``speech_started.audio_start_ms`` → ``speech_stopped.audio_end_ms`` (open while
  speaking), committed or not.
* Commits: receipt of ``input_audio_buffer.committed``.
* Responses: ``response.created`` receipt → ``response.done`` receipt, with status and reason.
* Assistant audio per item: playback is modelled as real time from the first
  ``response.audio.delta`` of the item (and after the previous item), so a reply received
  in one burst still spans its duration. ``played_end_s`` stops at a barge-in (the client
  flushes its speaker) or at ``conversation.item.truncated.audio_end_ms``.
* Barge-ins: ``speech_started`` received while a response is in progress or while assistant
  audio is (modelled as) still playing.
* Latency: from the receipt of ``speech_stopped`` (or, without server VAD, ``committed``) to
  the first ``response.audio.delta`` of the next response, in ms of receive time.

Events may be event objects (``.type`` and attributes) or wire dicts, including the dicts of a
recording, whose audio is replaced by ``{"bytes": n, ...}`` references.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from ..errors import InvalidValue
from ..protocol.codec import event_from_dict
from ..protocol.events import InputAudioBufferSpeechStarted, ResponseAudioDelta, ServerEvent
from ..protocol.state import SessionProtocol
from .input_clock import CONFIRM_S as CONFIRM_S
from .input_clock import FAST_LEAD_S, GAP_S, InputClock
from .input_clock import STALL_DROP_S as STALL_DROP_S
from .playback import AudioSpan, PlaybackModel

__all__ = [
    "FAST_LEAD_S",
    "GAP_S",
    "TOOL_FAILED_STATUSES",
    "AudioSpan",
    "BargeInMark",
    "CommitMark",
    "LatencyMark",
    "Mode",
    "ResponseSpan",
    "Timeline",
    "ToolSpan",
    "VadSpan",
    "format_clock",
    "recorded_output_items",
    "unpack",
]

Mode = Literal["realtime", "fast-input", "estimated", "none"]
Float32Array = npt.NDArray[np.float32]

# GAP_S, STALL_DROP_S, CONFIRM_S, FAST_LEAD_S: the input clock's (analysis.input_clock), re-exported
#: ``pack()`` layout version (first float of the header).
PACK_VERSION = 1
#: Response status codes in ``to_arrays()["responses"][:, 2]``.
STATUS_CODES: Mapping[str, int] = {"in_progress": 0, "completed": 1, "cancelled": 2}
STATUS_OTHER = 3
LANES = ("vad", "responses", "audio", "barge_ins", "latency", "commits", "tools")
_WIDTHS = {"vad": 2, "responses": 3, "audio": 3, "barge_ins": 1, "latency": 3, "commits": 1, "tools": 3}
#: Status code of a tool span in :meth:`Timeline.to_arrays`: 0 running, 1 done, 2 failed.
TOOL_FAILED_STATUSES = frozenset({"failed", "invalid_arguments", "timed_out", "unknown_tool", "cancelled"})


class RecordingLike(Protocol):
    """What :meth:`Timeline.from_recording` reads (``voicelive_nb.recording.Recording``)."""

    @property
    def events(self) -> Any: ...

    @property
    def input_sample_rate(self) -> int: ...

    @property
    def output_sample_rate(self) -> int: ...


# ---------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class VadSpan:
    item_id: str
    start_s: float | None  #: None: ``speech_stopped`` without ``speech_started``
    end_s: float | None  #: None while the user is speaking
    start_ms: int | None
    end_ms: int | None
    committed: bool


@dataclass(frozen=True, slots=True)
class ResponseSpan:
    response_id: str
    start_s: float
    end_s: float | None  #: None while in progress
    status: str
    reason: str | None  #: ``status_details.reason`` (``turn_detected``…)


@dataclass(frozen=True, slots=True)
class BargeInMark:
    t_s: float  #: receipt of the ``speech_started`` that interrupted
    user_item_id: str
    response_id: str | None
    audio_start_s: float  #: where the VAD says the interrupting speech began


@dataclass(frozen=True, slots=True)
class LatencyMark:
    start_s: float  #: receipt of ``speech_stopped`` (or ``committed``)
    end_s: float  #: receipt of the first audio of the next response
    ms: float
    user_item_id: str
    response_id: str


@dataclass(frozen=True, slots=True)
class ToolSpan:
    """A tool call: its arguments complete (``function_call_arguments.done`` received, or the
    :class:`~voicelive_nb.tools.ToolCall`'s ``started_s``) → its output sent (``finished_s``)."""

    call_id: str
    name: str
    start_s: float
    end_s: float | None  #: None while running
    status: str  #: ``running``, ``completed``, ``failed``… (``sent`` when only the events are known)


@dataclass(frozen=True, slots=True)
class CommitMark:
    t_s: float
    item_id: str


# ---------------------------------------------------------------------------------- helpers


def _field(event: Any, name: str) -> Any:
    if isinstance(event, Mapping):
        return event.get(name)
    return getattr(event, name, None)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _b64_len(text: str) -> int:
    n = len(text)
    return n * 3 // 4 - (text.endswith("=") + text.endswith("=="))


def _audio_bytes(event: Any) -> int:
    """Bytes of audio an append / audio delta carries (object, wire dict, or recording reference)."""
    size = getattr(event, "audio_size", None)
    if isinstance(size, int):
        return size
    for key in ("delta", "audio"):
        value = _field(event, key)
        if isinstance(value, str):
            return _b64_len(value)
        if isinstance(value, Mapping) and isinstance(value.get("bytes"), int):
            return int(value["bytes"])
    return 0


# ---------------------------------------------------------------------------------- the model


class Timeline:
    """The session on one time axis (see the module docstring for the mapping).

    It owns the input clock (:class:`.InputClock`: input runs, their origins, input-audio ms
    on the axis) and the modelled playback (:class:`.PlaybackModel`: assistant audio as heard),
    and reads VAD segments, responses and barge-ins from the one interpreter, :attr:`state`.
    """

    def __init__(self, input_sample_rate: int = 24000, output_sample_rate: int = 24000) -> None:
        self._input = InputClock(input_sample_rate * 2 / 1000.0)
        self._playback = PlaybackModel(output_sample_rate * 2 / 1000.0)
        # what happened (raw: receive times, audio ms), mapped on output
        self._t_first: float | None = None
        self._t_last: float | None = None
        self._t_updated: float | None = None
        #: the one interpreter of the events: VAD segments, barge-ins (with receive times)
        self.state = SessionProtocol()
        self._commits: list[tuple[float, str]] = []
        self._latencies: list[tuple[float, float, str, str]] = []
        self._pending_turn: tuple[float, str] | None = None  # (t, user item) awaiting a response
        self._pending_response: str | None = None  # the response that answers it
        self._last_response: str | None = None
        self._origin: float | None = None
        self._origin_valid = False
        self.events_seen = 0
        self._tools: dict[str, list[Any]] = {}  # call_id -> [t_start, t_end | None, name, status]

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_timed_events(
        cls,
        timed_events: Iterable[tuple[float, Any]],
        *,
        input_blocks: Iterable[tuple[float, int]] | None = None,
        input_sample_rate: int = 24000,
        output_sample_rate: int = 24000,
    ) -> Timeline:
        """From ``Session.timed_events()`` (received) and optionally ``(t, n_bytes)`` input blocks."""
        timeline = cls(input_sample_rate, output_sample_rate)
        merged: list[tuple[float, int, int, Any]] = [(t, 1, i, ev) for i, (t, ev) in enumerate(timed_events)]
        if input_blocks is not None:
            merged += [(t, 0, i, n) for i, (t, n) in enumerate(input_blocks)]
        merged.sort(key=lambda entry: (entry[0], entry[1], entry[2]))
        for t, kind, _, payload in merged:
            if kind == 0:
                timeline.input_audio(t, int(payload))
            else:
                timeline.add(t, payload)
        return timeline

    @classmethod
    def from_recording(cls, recording: RecordingLike) -> Timeline:
        """From a :class:`~voicelive_nb.recording.Recording` (its ``t_mono`` is the clock)."""
        timeline = cls(recording.input_sample_rate, recording.output_sample_rate)
        for entry in recording.events:
            if entry.dir == "received":
                timeline.add(entry.t_mono, entry.event)
            elif entry.dir == "sent":
                timeline.sent(entry.t_mono, entry.event)
        return timeline

    # ------------------------------------------------------------------ inputs

    @property
    def input_bytes_per_ms(self) -> float:
        """Bytes per millisecond of input audio (PCM16 at the input sample rate)."""
        return self._input.bytes_per_ms

    @input_bytes_per_ms.setter
    def input_bytes_per_ms(self, value: float) -> None:
        self._input.bytes_per_ms = value

    @property
    def output_bytes_per_ms(self) -> float:
        """Bytes per millisecond of assistant audio (PCM16 at the output sample rate)."""
        return self._playback.bytes_per_ms

    @output_bytes_per_ms.setter
    def output_bytes_per_ms(self, value: float) -> None:
        self._playback.bytes_per_ms = value

    def input_audio(self, t: float, n_bytes: int) -> None:
        """A block of ``n_bytes`` of input audio was sent at ``t`` (``time.monotonic()``)."""
        if n_bytes <= 0:
            return
        self._touch(t)
        self._input.add(t, n_bytes)

    def sent(self, t: float, event: Any) -> None:
        """A client event was sent at ``t`` (``input_audio_buffer.append``; a ``function_call_output``
        item ends its tool span)."""
        etype = _field(event, "type")
        if etype == "input_audio_buffer.append":
            self.input_audio(t, _audio_bytes(event))
        elif etype == "conversation.item.create":
            item = _mapping(_field(event, "item"))
            tool = self._tools.get(_str(item.get("call_id")) or "")
            if item.get("type") == "function_call_output" and tool is not None and tool[1] is None:
                tool[1] = t
                if tool[3] == "running":
                    tool[3] = "sent"
                self._touch(t)

    def tool_call(self, call: Any, *, only_known: bool = False) -> None:
        """A :class:`~voicelive_nb.tools.ToolCall` (its ``started_s`` / ``finished_s`` are
        ``time.monotonic()``, the clock of the receive times): its span, name and status.
        ``only_known``: only a call whose ``function_call_arguments.done`` this timeline saw."""
        call_id = _str(getattr(call, "call_id", None))
        start = getattr(call, "started_s", None)
        if call_id is None or not isinstance(start, (int, float)) or start <= 0:
            return
        if only_known and call_id not in self._tools:
            return
        end = getattr(call, "finished_s", None)
        end = float(end) if isinstance(end, (int, float)) else None
        status = _str(getattr(call, "status", None)) or "running"
        self._tools[call_id] = [float(start), end, _str(getattr(call, "name", None)) or "", status]
        self._touch(float(start))
        if end is not None:
            self._touch(end)

    def add(self, t: float, event: Any) -> None:
        """A server event was received at ``t`` (``time.monotonic()``)."""
        etype = _field(event, "type")
        self.events_seen += 1
        self._touch(t)
        if etype == "session.updated" and self._t_updated is None:
            self._t_updated = t
        decoded = _as_event(event)
        if isinstance(decoded, InputAudioBufferSpeechStarted):
            self._playback.tell(self.state, t)  # what was heard decides the barge-in
        barge_in = self.state.receive(decoded, t)
        if etype == "input_audio_buffer.speech_started":
            self._speech_started(t, barge_in is not None)
        elif etype == "input_audio_buffer.speech_stopped":
            item_id = _str(_field(event, "item_id")) or ""
            self._pending_turn = (t, item_id)
            self._pending_response = None
        elif etype == "input_audio_buffer.committed":
            item_id = _str(_field(event, "item_id")) or ""
            self._commits.append((t, item_id))
            if self._pending_turn is None or self._pending_turn[1] != item_id:
                self._pending_turn = (t, item_id)  # a manual commit ends the user's turn
                self._pending_response = None
        elif etype == "response.created":
            response_id = _str(_mapping(_field(event, "response")).get("id"))
            if response_id is not None:
                self._last_response = response_id
                if self._pending_turn is not None and self._pending_response is None:
                    self._pending_response = response_id
        elif etype == "response.done":
            self._response_done(_mapping(_field(event, "response")))
        elif etype == "response.function_call_arguments.done":
            call_id = _str(_field(event, "call_id"))
            if call_id is not None and call_id not in self._tools:
                self._tools[call_id] = [t, None, _str(_field(event, "name")) or "", "running"]
        elif isinstance(decoded, ResponseAudioDelta):  # either wire shape
            self._audio_delta(t, event)
        elif etype == "conversation.item.truncated":
            end_ms = _int(_field(event, "audio_end_ms"))
            if end_ms is not None:
                self._playback.truncated(_str(_field(event, "item_id")) or "", end_ms)

    def _touch(self, t: float) -> None:
        self._origin_valid = False
        if self._t_first is None or t < self._t_first:
            self._t_first = t
        if self._t_last is None or t > self._t_last:
            self._t_last = t

    def _speech_started(self, t: float, barge_in: bool) -> None:
        self._pending_turn = None
        self._pending_response = None
        if barge_in:
            self._playback.flush(t)  # the client flushes its speaker

    def _response_done(self, response: Mapping[str, Any]) -> None:
        response_id = _str(response.get("id"))
        if response_id is not None and response_id == self._pending_response:
            # it ended without audio (a function call): the next response answers the turn
            self._pending_response = None

    def _audio_delta(self, t: float, event: Any) -> None:
        n = _audio_bytes(event)
        item_id = _str(_field(event, "item_id")) or ""
        response_id = _str(_field(event, "response_id"))
        first = self._playback.audio(t, item_id, response_id, n)
        if (
            first  # the item's first audio answers the pending turn, if it is its response's
            and self._pending_turn is not None
            and self._pending_response is not None
            and response_id == self._pending_response
        ):
            t_turn, user_item = self._pending_turn
            self._latencies.append((t_turn, t, user_item, response_id))
            self._pending_turn = None
            self._pending_response = None

    # ------------------------------------------------------------------ the mapping

    @property
    def mode(self) -> Mode:
        if self._input.started:
            return "fast-input" if self._input.fast else "realtime"
        if any(v.start_ms is not None or v.end_ms is not None for v in self.state.vad_segments):
            return "estimated"
        return "none"

    @property
    def mapping_note(self) -> str:
        """One line saying how the two clocks were put on the axis (for titles and captions)."""
        return {
            "realtime": "input streamed in real time: one axis from its first sample",
            "fast-input": "input sent faster than real time: VAD on audio time, responses on wall time",
            "estimated": "no input-audio times: origin estimated from VAD event receipts",
            "none": "no input audio: times from the first event",
        }[self.mode]

    def origin(self) -> float | None:
        """The ``time.monotonic()`` value that is zero on the axis (None before anything happened)."""
        if not self._origin_valid:
            self._origin = self._find_origin()
            self._origin_valid = True
        return self._origin

    def _find_origin(self) -> float | None:
        if self._input.started:
            return self._input.origin()
        bounds = [
            t - ms / 1000.0
            for v in self.state.vad_segments
            for t, ms in ((v.started_at, v.start_ms), (v.stopped_at, v.end_ms))
            if t is not None and ms is not None
        ]
        if bounds:
            estimate = min(bounds)
            return estimate if self._t_updated is None else max(estimate, self._t_updated)
        return self._t_updated if self._t_updated is not None else self._t_first

    def to_axis(self, t: float) -> float:
        """A receive time (``time.monotonic()``) in seconds on the axis."""
        origin = self.origin()
        return 0.0 if origin is None else t - origin

    def audio_to_axis(self, audio_ms: float) -> float:
        """An input-audio position (ms since the first sample sent) in seconds on the axis."""
        return self._input.audio_to_axis(audio_ms)

    def input_runs(self) -> list[tuple[float, float, float]]:
        """``(axis_start_s, audio_start_ms, audio_end_ms)`` per stretch of input sent without a gap."""
        return self._input.runs()

    def place_input(self, pcm16: bytes, offset_ms: float = 0.0) -> list[tuple[float, bytes]]:
        """Input audio (PCM16 from input-audio ms ``offset_ms`` on) cut into ``(axis_start_s, pcm)`` runs."""
        return self._input.place(pcm16, offset_ms)

    def place_output(
        self, items: Mapping[str, bytes], *, played_only: bool = True
    ) -> list[tuple[float, bytes]]:
        """Assistant audio per item as ``(axis_start_s, pcm)`` at its modelled playback time.

        With ``played_only`` each item is cut where playback was cut (barge-in, truncation).
        """
        per_ms = self.output_bytes_per_ms
        out = []
        for span in self.audio_spans:
            pcm = items.get(span.item_id)
            if not pcm:
                continue
            if played_only:
                keep = round((span.played_end_s - span.start_s) * 1000.0 * per_ms) & ~1
                pcm = pcm[: max(0, keep)]
            out.append((span.start_s, pcm))
        return out

    @property
    def input_ms(self) -> float:
        """Input audio sent so far, in ms."""
        return self._input.input_ms

    @property
    def end_s(self) -> float:
        """The latest time known on the axis (last event, input, or modelled playback)."""
        ends = [0.0]
        if self._t_last is not None:
            ends.append(self.to_axis(self._t_last))
        input_end = self._input.end_s()
        if input_end is not None:
            ends.append(input_end)
        if self._playback.play_end is not None:
            ends.append(self.to_axis(self._playback.play_end))
        return max(ends)

    # ------------------------------------------------------------------ views

    @property
    def vad_spans(self) -> list[VadSpan]:
        spans = []
        for v in self.state.vad_segments:
            run = self._input.span_run(v)
            spans.append(
                VadSpan(
                    v.item_id,
                    None if v.start_ms is None else self._input.span_to_axis(v.start_ms, run),
                    None if v.end_ms is None else self._input.span_to_axis(v.end_ms, run),
                    v.start_ms,
                    v.end_ms,
                    v.committed,
                )
            )
        return spans

    @property
    def commits(self) -> list[CommitMark]:
        return [CommitMark(self.to_axis(t), item_id) for t, item_id in self._commits]

    @property
    def response_spans(self) -> list[ResponseSpan]:
        """A view over the interpreter's response records (a repeated ``response.done``: the last one)."""
        spans: dict[str, ResponseSpan] = {}
        for r in self.state.all_responses:
            if r.created_at is None:
                continue
            done = r.done_at is not None
            status = "completed" if done and r.status == "in_progress" else r.status
            end = None if r.done_at is None else self.to_axis(r.done_at)
            start = self.to_axis(r.created_at)
            if r.id in spans:
                start = spans[r.id].start_s
            spans[r.id] = ResponseSpan(r.id, start, end, status, r.reason)
        return list(spans.values())

    @property
    def audio_spans(self) -> list[AudioSpan]:
        return self._playback.spans(self.to_axis)

    @property
    def tool_spans(self) -> list[ToolSpan]:
        return [
            ToolSpan(call_id, name, self.to_axis(t0), None if t1 is None else self.to_axis(t1), status)
            for call_id, (t0, t1, name, status) in self._tools.items()
        ]

    @property
    def barge_ins(self) -> list[BargeInMark]:
        out = []
        segments = {v.item_id: v for v in self.state.vad_segments}
        for b in self.state.barge_ins:
            vad = segments.get(b.user_item_id)
            run = self._input.span_run(vad) if vad is not None else None
            t = b.received_at if b.received_at is not None else 0.0
            out.append(
                BargeInMark(
                    self.to_axis(t),
                    b.user_item_id,
                    b.response_id,
                    self._input.span_to_axis(b.audio_start_ms, run),
                )
            )
        return out

    @property
    def latencies(self) -> list[LatencyMark]:
        return [
            LatencyMark(self.to_axis(t0), self.to_axis(t1), (t1 - t0) * 1000.0, user_item, rid)
            for t0, t1, user_item, rid in self._latencies
        ]

    def summary(self) -> dict[str, Any]:
        """Counts and latency statistics (for titles and reports)."""
        responses = self.response_spans
        lat = [m.ms for m in self.latencies]
        return {
            "vad_segments": len(self.state.vad_segments),
            "responses": len(responses),
            "cancelled": sum(r.status == "cancelled" for r in responses),
            "barge_ins": len(self.state.barge_ins),
            "tool_calls": len(self._tools),
            "latency_ms": lat,
            "median_latency_ms": float(np.median(lat)) if lat else None,
            "mode": self.mode,
            "duration_s": self.end_s,
        }

    # ------------------------------------------------------------------ compact form for the live view

    def to_arrays(self, since_s: float | None = None) -> dict[str, Float32Array]:
        """float32 arrays per lane, seconds on the axis; NaN ends are still open.

        ``vad`` (n, 2) start, end · ``responses`` (n, 3) start, end, status code
        (0 in progress, 1 completed, 2 cancelled, 3 other) · ``audio`` (n, 3) start, end,
        played end · ``barge_ins`` (n,) · ``latency`` (n, 3) start, end, ms · ``commits`` (n,) ·
        ``tools`` (n, 3) start, end, status code (0 running, 1 done, 2 failed; names in the same
        order from :meth:`tool_names`).
        With ``since_s``, rows that ended before it are left out (the live view sends only
        what its window can show).
        """
        nan = math.nan
        keep = -math.inf if since_s is None else since_s
        vad = [
            (s.start_s, nan if s.end_s is None else s.end_s)
            for s in self.vad_spans
            if s.start_s is not None and (s.end_s is None or s.end_s >= keep)
        ]
        responses = [
            (r.start_s, nan if r.end_s is None else r.end_s, STATUS_CODES.get(r.status, STATUS_OTHER))
            for r in self.response_spans
            if r.end_s is None or r.end_s >= keep
        ]
        audio = [(a.start_s, a.end_s, a.played_end_s) for a in self.audio_spans if a.end_s >= keep]
        latency = [(m.start_s, m.end_s, m.ms) for m in self.latencies if m.end_s >= keep]
        tools = [
            (t.start_s, nan if t.end_s is None else t.end_s, _tool_code(t.status))
            for t in self._kept_tools(keep)
        ]
        return {
            "vad": _rows(vad, 2),
            "responses": _rows(responses, 3),
            "audio": _rows(audio, 3),
            "barge_ins": np.array([b.t_s for b in self.barge_ins if b.t_s >= keep], np.float32),
            "latency": _rows(latency, 3),
            "commits": np.array([c.t_s for c in self.commits if c.t_s >= keep], np.float32),
            "tools": _rows(tools, 3),
        }

    def _kept_tools(self, keep: float) -> list[ToolSpan]:
        return [t for t in self.tool_spans if t.end_s is None or t.end_s >= keep]

    def tool_names(self, since_s: float | None = None) -> list[str]:
        """The names of the ``tools`` rows of :meth:`to_arrays` (same ``since_s``), in order."""
        return [t.name for t in self._kept_tools(-math.inf if since_s is None else since_s)]

    def pack(self, since_s: float | None = None) -> bytes:
        """:meth:`to_arrays` as one float32 little-endian buffer (see :func:`unpack`).

        Header of 8 floats: layout version, then the row count of each of the 7 lanes in
        ``LANES`` order (``tools`` last: a reader that knows only the first 6 reads them unchanged);
        then each lane's rows, flattened, in that order.
        """
        arrays = self.to_arrays(since_s)
        counts = [len(arrays[lane]) for lane in LANES]
        header = np.array([PACK_VERSION, *counts, *[0] * (7 - len(counts))], dtype=np.float32)
        parts = [header] + [arrays[lane].reshape(-1) for lane in LANES]
        return np.concatenate(parts).astype("<f4").tobytes()


def format_clock(seconds: float, decimals: int = 1) -> str:
    """A time on the axis as a clock: ``"42.5"`` under a minute, ``"1:05.0"``, ``"1:02:03.0"``.

    Negative times (a padding that reaches before the first input) get a leading minus.
    """
    if not math.isfinite(seconds):
        return str(seconds)
    sign = "-" if seconds < 0 else ""
    scale = 10**decimals
    total = round(abs(seconds) * scale)
    whole, frac = divmod(total, scale)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    tail = f".{frac:0{decimals}d}" if decimals > 0 else ""
    if hours:
        return f"{sign}{hours}:{minutes:02d}:{secs:02d}{tail}"
    if minutes:
        return f"{sign}{minutes}:{secs:02d}{tail}"
    return f"{sign}{secs}{tail}"


def recorded_output_items(recording: Any) -> dict[str, bytes]:
    """Assistant audio per item id from a loaded recording (its ``response.audio.delta`` references)."""
    items: dict[str, bytearray] = {}
    for entry in recording.events:
        if entry.dir == "received" and entry.type == "response.audio.delta":
            item_id = _str(entry.event.get("item_id")) or ""
            items.setdefault(item_id, bytearray()).extend(recording.audio(entry))
    return {item_id: bytes(pcm) for item_id, pcm in items.items()}


def unpack(data: bytes) -> dict[str, Float32Array]:
    """The arrays of :meth:`Timeline.pack` back (for tests and other consumers)."""
    flat = np.frombuffer(data, dtype="<f4")
    if len(flat) < 8 or int(flat[0]) != PACK_VERSION:
        raise InvalidValue("not a packed timeline (version 1)")
    out: dict[str, Float32Array] = {}
    offset = 8
    for i, lane in enumerate(LANES):
        rows = int(flat[1 + i])
        width = _WIDTHS[lane]
        chunk = flat[offset : offset + rows * width].astype(np.float32)
        out[lane] = chunk.reshape(rows, width) if width > 1 else chunk
        offset += rows * width
    return out


def _tool_code(status: str) -> int:
    if status == "running":
        return 0
    return 2 if status in TOOL_FAILED_STATUSES else 1


def _rows(rows: Sequence[Sequence[float]], width: int) -> Float32Array:
    if not rows:
        return np.zeros((0, width), np.float32)
    return np.array(rows, dtype=np.float32).reshape(len(rows), width)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _recorded_audio_b64(n_bytes: int) -> str:
    """A base64 string that decodes to ``n_bytes`` (a recording keeps only the size of its audio)."""
    whole, rest = divmod(max(0, n_bytes), 3)
    return "AAAA" * whole + ("", "AA==", "AAA=")[rest]


def _as_event(event: Any) -> ServerEvent:
    """An event object for the state (wire dicts and recording dicts decoded; objects as they are)."""
    if isinstance(event, ServerEvent):
        return event
    data = dict(event) if isinstance(event, Mapping) else {"type": _field(event, "type")}
    for key in ("delta", "audio"):
        value = data.get(key)
        if isinstance(value, Mapping) and isinstance(value.get("bytes"), int):
            data[key] = _recorded_audio_b64(int(value["bytes"]))
    return event_from_dict(data)
