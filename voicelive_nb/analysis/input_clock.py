"""The input clock of a :class:`~voicelive_nb.analysis.timeline.Timeline`: input audio on the axis.

:class:`InputClock` owns the blocks of input audio sent (their send times and sizes) and
turns them into *runs* — stretches streamed without a gap, each with the origin its audio
was captured from — so that an input-audio position (the ``audio_start_ms`` / ``audio_end_ms``
of the VAD events) can be put on the session axis. The rules (origin, gaps, stalls, fast
input) are those of the timeline module's docstring ("The time axis"); the timeline owns one
clock and asks it, and never reads a clock itself.
"""

from __future__ import annotations

import bisect

from ..protocol.state import VadSegment

__all__ = ["CONFIRM_S", "FAST_LEAD_S", "GAP_S", "STALL_DROP_S", "InputClock"]

#: No input for longer than this (beyond real-time pacing) starts a new input run.
GAP_S = 0.5
#: A new run whose blocks then arrive this much ahead of its first one is a stall being caught up.
STALL_DROP_S = 0.25
#: A new run streaming at real-time pace for this long was a real pause.
CONFIRM_S = 0.5
#: Input running ahead of the clock by more than this (and half its duration) is "fast".
FAST_LEAD_S = 1.0


class _Run:
    """A stretch of input streamed without a gap: audio ms ``a`` was captured at ``origin + a/1000``."""

    __slots__ = ("confirmed", "first_origin", "lateness", "origin", "start_ms", "t_first")

    def __init__(self, start_ms: float, origin: float, t_first: float, lateness: float = 0.0) -> None:
        self.start_ms = start_ms
        self.origin = origin
        self.first_origin = origin
        self.t_first = t_first
        self.lateness = lateness  # how much later than the previous run's schedule it began
        self.confirmed = lateness == 0.0  # a real pause, not a stall being caught up


class InputClock:
    """The input audio sent, as runs on the axis (zero: the capture time of its first sample)."""

    def __init__(self, bytes_per_ms: float) -> None:
        self.bytes_per_ms = bytes_per_ms
        self._runs: list[_Run] = []
        self._run_starts: list[float] = []
        self._input_ms = 0.0
        self._t_last: float | None = None
        self._fast = False

    def add(self, t: float, n_bytes: int) -> None:
        """A block of ``n_bytes`` (> 0) of input audio was sent at ``t`` (``time.monotonic()``)."""
        ms = n_bytes / self.bytes_per_ms
        end_ms = self._input_ms + ms
        implied = t - end_ms / 1000.0  # the origin if this block's end was captured at t
        run = self._runs[-1] if self._runs else None
        if run is None or implied - run.origin > GAP_S:
            run = _Run(self._input_ms, implied, t, 0.0 if run is None else implied - run.origin)
            self._runs.append(run)
            self._run_starts.append(run.start_ms)
        elif implied < run.origin:
            run.origin = implied
        if not run.confirmed:
            run = self._settle(run, t)
        lead = run.first_origin - run.origin
        if lead > FAST_LEAD_S and lead > 0.5 * (end_ms - run.start_ms) / 1000.0:
            self._fast = True
        self._input_ms = end_ms
        self._t_last = t

    def _settle(self, run: _Run, t: float) -> _Run:
        """Tell a stall from a pause for a new run not confirmed yet; returns the run now streaming."""
        if run.first_origin - run.origin >= min(STALL_DROP_S, 0.5 * run.lateness):
            # sent in a burst: a backlog captured on schedule, not a pause — one run after all
            self._runs.pop()
            self._run_starts.pop()
            previous = self._runs[-1]
            previous.origin = min(previous.origin, run.origin)
            return previous
        if t - run.t_first >= CONFIRM_S:
            run.confirmed = True  # streaming at real-time pace again: the gap was a pause
        return run

    # ------------------------------------------------------------------ reading

    @property
    def started(self) -> bool:
        """Whether any input audio was sent."""
        return bool(self._runs)

    @property
    def fast(self) -> bool:
        """Whether the input was sent faster than real time (audio and receive times unrelated)."""
        return self._fast

    @property
    def input_ms(self) -> float:
        """Input audio sent so far, in ms."""
        return self._input_ms

    def origin(self) -> float | None:
        """The receive-time origin the input implies (fast: the send time of its first block)."""
        if not self._runs:
            return None
        run = self._runs[0]
        return run.t_first if self._fast else run.origin

    def audio_to_axis(self, audio_ms: float) -> float:
        """An input-audio position (ms since the first sample sent) in seconds on the axis."""
        if not self._runs or self._fast:
            return audio_ms / 1000.0
        i = max(0, bisect.bisect_right(self._run_starts, audio_ms) - 1)
        return self._runs[i].origin - self._runs[0].origin + audio_ms / 1000.0

    def end_s(self) -> float | None:
        """The end of the input sent, on the axis (None before any)."""
        return self.audio_to_axis(self._input_ms) if self._runs else None

    def span_run(self, v: VadSegment) -> int | None:
        """The input run one VAD span belongs to: both its ends are placed with that run's origin.

        The span's start includes the prefix padding, which can reach back into the tail of
        the previous run's audio (speech resumed after a pause): placed on that earlier run's
        origin, the start would sit before the pause and the span would cover it. The end
        decides (an end exactly at a run boundary closes the earlier run); an open span goes
        with the run that was streaming when its ``speech_started`` arrived.
        """
        if not self._runs or self._fast:
            return None
        if v.end_ms is not None:
            return max(0, bisect.bisect_left(self._run_starts, v.end_ms) - 1)
        index = 0 if v.start_ms is None else max(0, bisect.bisect_right(self._run_starts, v.start_ms) - 1)
        if v.started_at is not None:
            while index + 1 < len(self._runs) and self._runs[index + 1].t_first <= v.started_at:
                index += 1
        return index

    def span_to_axis(self, audio_ms: float, run: int | None) -> float:
        """An input-audio position placed with the origin of ``run`` (None: the run it falls in)."""
        if run is None:
            return self.audio_to_axis(audio_ms)
        return self._runs[run].origin - self._runs[0].origin + audio_ms / 1000.0

    def runs(self) -> list[tuple[float, float, float]]:
        """``(axis_start_s, audio_start_ms, audio_end_ms)`` per stretch of input sent without a gap."""
        out = []
        for i, run in enumerate(self._runs):
            end = self._run_starts[i + 1] if i + 1 < len(self._runs) else self._input_ms
            out.append((self.audio_to_axis(run.start_ms), run.start_ms, end))
        return out

    def place(self, pcm16: bytes, offset_ms: float = 0.0) -> list[tuple[float, bytes]]:
        """Input audio (PCM16 from input-audio ms ``offset_ms`` on) cut into ``(axis_start_s, pcm)`` runs."""
        per_ms = self.bytes_per_ms
        total_ms = offset_ms + len(pcm16) / per_ms
        runs = self.runs() or [(0.0, 0.0, total_ms)]
        out = []
        for i, (_, a0, a1) in enumerate(runs):
            if i == len(runs) - 1:
                a1 = max(a1, total_ms)  # audio kept beyond what the timeline saw
            lo, hi = max(a0, offset_ms), min(a1, total_ms)
            if hi <= lo:
                continue
            b0 = round((lo - offset_ms) * per_ms) & ~1
            b1 = round((hi - offset_ms) * per_ms) & ~1
            out.append((self.audio_to_axis(lo), pcm16[b0:b1]))
        return out
