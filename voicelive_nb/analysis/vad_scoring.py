"""Score the turns a VAD detected against the truth (pure: no I/O, no clock, no asyncio).

Everything is in milliseconds on the session-wide input-audio timeline (0 = the first sample
appended).

Boundary mapping
----------------
Voice Live reports ``speech_started.audio_start_ms`` already moved back by
``prefix_padding_ms``, and ``speech_stopped.audio_end_ms`` *including* the trailing
``silence_duration_ms`` window (reference §3.1). So the service's span ``[audio_start_ms,
audio_end_ms]`` is wider than the speech on both sides. :class:`BoundaryMapping` maps it onto
the speech it stands for::

    speech_start_ms = audio_start_ms + prefix_padding_ms
    speech_end_ms   = audio_end_ms   - silence_duration_ms     (never before speech_start_ms)

One exception: the padding cannot reach before the start of the input buffer (the session start,
or the previous ``audio_end_ms``, where server VAD committed the buffer). When ``audio_start_ms``
equals that floor the start was *clamped*: the onset lies somewhere in ``[floor, floor +
prefix_padding_ms)`` and is not known. A clamped start maps to ``audio_start_ms`` (the earliest it
could be), is flagged ``start_clamped``, and is left out of the start-error statistics (counted in
``clamped_starts`` instead). A turn without ``speech_stopped`` (still open when the audio ended)
ends at the end of the audio, is flagged ``open``, and has no end error.

Scoring definitions
-------------------
* A truth utterance and a detected turn are *candidates* when they overlap by more than zero and
  by at least ``min_overlap`` (default 0.5) of the shorter of the two. Utterances and turns are
  matched one-to-one, greedily by largest overlap (ties: earlier utterance, then earlier turn).
* ``precision = matched / turns``, ``recall = matched / utterances``, ``f1`` their harmonic mean.
  With no utterances and no turns all three are 1; with only one side empty they are 0 (except
  that precision is 1 when there are no turns and no utterances).
* ``start_error_ms = speech_start_ms - truth start`` and ``end_error_ms = speech_end_ms - truth
  end`` of each matched pair: positive = late. Reported as the signed median (the bias) and the
  90th percentile of the absolute error (the spread), linear interpolation between ranks.
* ``false_starts``: turns that overlap no utterance at all (fired on noise or silence).
* ``cut_offs``: closed turns whose end falls inside an utterance, more than ``collar_ms``
  (default 150) before the utterance's end: the turn ended while the user was still speaking.
* ``merged``: utterances swallowed by a turn that also covers another utterance. A turn covering
  ``k`` utterances (each by at least ``min_overlap`` of the utterance) counts ``k - 1``.
* ``missed``: utterances that overlap no turn at all.
* ``false_alarm_s``: time the turns call speech that is more than ``collar_ms`` away from any
  utterance (a VAD firing on noise keeps turns open through noise-only pauses and shows here
  even when it merges rather than starts new turns). ``missed_speech_s``: utterance time no turn
  covers.

Scores of several files combine with :meth:`VadScore.combine`: counts add up, precision, recall
and F1 are computed from the pooled counts (micro average), and error statistics from the pooled
errors.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import InvalidValue

__all__ = [
    "SUMMARY_FIELDS",
    "BoundaryMapping",
    "DetectedTurn",
    "Match",
    "VadScore",
    "normalize_spans",
    "percentile",
    "rank_key",
    "score_turns",
]

Span = tuple[float, float]

#: The flat fields of :meth:`VadScore.summary`, in display order.
SUMMARY_FIELDS: tuple[str, ...] = (
    "f1",
    "precision",
    "recall",
    "matched",
    "n_truth",
    "n_turns",
    "start_error_ms_median",
    "start_error_ms_p90",
    "end_error_ms_median",
    "end_error_ms_p90",
    "false_starts",
    "cut_offs",
    "merged",
    "missed",
    "clamped_starts",
    "false_alarm_s",
    "missed_speech_s",
)


@dataclass(frozen=True)
class DetectedTurn:
    """One turn of the service, raw and mapped onto the speech it stands for."""

    audio_start_ms: float  #: as reported (prefix padding included)
    audio_end_ms: float | None  #: as reported (silence window included); None if never stopped
    speech_start_ms: float
    speech_end_ms: float
    start_clamped: bool = False
    open: bool = False

    @property
    def span(self) -> Span:
        return (self.speech_start_ms, self.speech_end_ms)


@dataclass(frozen=True)
class BoundaryMapping:
    """How service spans map onto speech: subtract the padding and the silence window."""

    prefix_padding_ms: float = 0.0
    silence_duration_ms: float = 0.0

    def map_turn(
        self,
        audio_start_ms: float | None,
        audio_end_ms: float | None,
        *,
        floor_ms: float = 0.0,
        audio_total_ms: float | None = None,
    ) -> DetectedTurn:
        """Map one service span. ``floor_ms`` is where the input buffer began (0 or the previous
        ``audio_end_ms``); ``audio_total_ms`` is where an open turn ends."""
        clamped = audio_start_ms is None or audio_start_ms <= floor_ms
        raw_start = floor_ms if audio_start_ms is None else float(audio_start_ms)
        start = raw_start if clamped else raw_start + self.prefix_padding_ms
        if audio_end_ms is None:
            end = audio_total_ms if audio_total_ms is not None else start
            return DetectedTurn(raw_start, None, start, max(start, end), clamped, True)
        end = float(audio_end_ms) - self.silence_duration_ms
        return DetectedTurn(raw_start, float(audio_end_ms), start, max(start, end), clamped, False)

    def map_turns(
        self,
        spans: Iterable[tuple[float | None, float | None]],
        *,
        audio_total_ms: float | None = None,
        initial_floor_ms: float = 0.0,
    ) -> list[DetectedTurn]:
        """Map consecutive service spans ``(audio_start_ms, audio_end_ms)``; each stop moves the floor."""
        floor = initial_floor_ms
        out: list[DetectedTurn] = []
        for start, end in spans:
            out.append(self.map_turn(start, end, floor_ms=floor, audio_total_ms=audio_total_ms))
            if end is not None:
                floor = float(end)
        return out


@dataclass(frozen=True)
class Match:
    """A truth utterance matched to a detected turn."""

    truth_index: int
    turn_index: int
    overlap_ms: float
    start_error_ms: float | None  #: None when the turn's start was clamped
    end_error_ms: float | None  #: None when the turn never stopped


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0–100) with linear interpolation between ranks; None if empty."""
    if not values:
        return None
    if not 0.0 <= q <= 100.0:
        raise InvalidValue(f"percentile must be within 0 and 100, got {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return float(ordered[lo])
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass(frozen=True)
class VadScore:
    """Event-level scores of detected turns against truth utterances (see the module doc)."""

    n_truth: int
    n_turns: int
    matched: int
    false_starts: int
    cut_offs: int
    merged: int
    missed: int
    clamped_starts: int
    start_errors_ms: tuple[float, ...] = ()
    end_errors_ms: tuple[float, ...] = ()
    false_alarm_ms: float = 0.0
    missed_speech_ms: float = 0.0
    matches: tuple[Match, ...] = field(default=(), repr=False)

    @property
    def precision(self) -> float:
        if self.n_turns == 0:
            return 1.0 if self.n_truth == 0 else 0.0
        return self.matched / self.n_turns

    @property
    def recall(self) -> float:
        if self.n_truth == 0:
            return 1.0 if self.n_turns == 0 else 0.0
        return self.matched / self.n_truth

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    @property
    def start_error_ms_median(self) -> float | None:
        """Signed median start error (positive: the turn began late)."""
        return percentile(self.start_errors_ms, 50)

    @property
    def end_error_ms_median(self) -> float | None:
        """Signed median end error (positive: the end was put after the speech ended)."""
        return percentile(self.end_errors_ms, 50)

    @property
    def start_error_ms_p90(self) -> float | None:
        """90th percentile of the absolute start error."""
        return percentile([abs(e) for e in self.start_errors_ms], 90)

    @property
    def end_error_ms_p90(self) -> float | None:
        """90th percentile of the absolute end error."""
        return percentile([abs(e) for e in self.end_errors_ms], 90)

    def summary(self) -> dict[str, float | int | None]:
        """The flat fields of :data:`SUMMARY_FIELDS` (rates to 4 decimals, errors to 0.1 ms)."""
        return {
            "f1": round(self.f1, 4),
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "matched": self.matched,
            "n_truth": self.n_truth,
            "n_turns": self.n_turns,
            "start_error_ms_median": _round(self.start_error_ms_median),
            "start_error_ms_p90": _round(self.start_error_ms_p90),
            "end_error_ms_median": _round(self.end_error_ms_median),
            "end_error_ms_p90": _round(self.end_error_ms_p90),
            "false_starts": self.false_starts,
            "cut_offs": self.cut_offs,
            "merged": self.merged,
            "missed": self.missed,
            "clamped_starts": self.clamped_starts,
            "false_alarm_s": round(self.false_alarm_ms / 1000.0, 3),
            "missed_speech_s": round(self.missed_speech_ms / 1000.0, 3),
        }

    @staticmethod
    def combine(scores: Iterable[VadScore]) -> VadScore:
        """Pool several scores (e.g. one per file): counts add, errors are pooled."""
        items = list(scores)
        return VadScore(
            n_truth=sum(s.n_truth for s in items),
            n_turns=sum(s.n_turns for s in items),
            matched=sum(s.matched for s in items),
            false_starts=sum(s.false_starts for s in items),
            cut_offs=sum(s.cut_offs for s in items),
            merged=sum(s.merged for s in items),
            missed=sum(s.missed for s in items),
            clamped_starts=sum(s.clamped_starts for s in items),
            start_errors_ms=tuple(e for s in items for e in s.start_errors_ms),
            end_errors_ms=tuple(e for s in items for e in s.end_errors_ms),
            false_alarm_ms=sum(s.false_alarm_ms for s in items),
            missed_speech_ms=sum(s.missed_speech_ms for s in items),
        )


def normalize_spans(spans: Iterable[Sequence[float]]) -> list[Span]:
    """Sorted ``(start, end)`` spans with overlapping or touching ones merged.

    Raises ValueError for a span that is not two finite numbers with ``start < end``.
    """
    cleaned: list[Span] = []
    for i, span in enumerate(spans):
        if len(span) != 2:
            raise InvalidValue(f"span {i} must be [start, end], got {list(span)!r}")
        start, end = float(span[0]), float(span[1])
        if not (math.isfinite(start) and math.isfinite(end)):
            raise InvalidValue(f"span {i} must be finite numbers, got {list(span)!r}")
        if end <= start:
            raise InvalidValue(f"span {i} ends before it starts: [{start}, {end}]")
        cleaned.append((start, end))
    cleaned.sort()
    merged: list[Span] = []
    for start, end in cleaned:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _overlap(a: Span, b: Span) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def _union(spans: Iterable[Span]) -> list[Span]:
    merged: list[Span] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _outside_ms(spans: Sequence[Span], cover: Sequence[Span]) -> float:
    """Total length of ``spans`` not covered by ``cover`` (both sorted and disjoint)."""
    total = 0.0
    for span in spans:
        length = span[1] - span[0]
        covered = sum(_overlap(span, c) for c in cover if c[1] > span[0] and c[0] < span[1])
        total += max(0.0, length - covered)
    return total


def score_turns(
    truth_ms: Iterable[Sequence[float]],
    turns: Sequence[DetectedTurn],
    *,
    min_overlap: float = 0.5,
    collar_ms: float = 150.0,
) -> VadScore:
    """Score ``turns`` against truth utterances ``truth_ms`` (``[start_ms, end_ms]`` each)."""
    if not 0.0 < min_overlap <= 1.0:
        raise InvalidValue(f"min_overlap must be in (0, 1], got {min_overlap}")
    if collar_ms < 0:
        raise InvalidValue(f"collar_ms must be >= 0, got {collar_ms}")
    truth = normalize_spans(truth_ms)
    spans = [t.span for t in turns]

    overlaps: dict[tuple[int, int], float] = {}
    for i, u in enumerate(truth):
        for j, d in enumerate(spans):
            if d[1] <= u[0] or d[0] >= u[1]:
                continue
            ov = _overlap(u, d)
            if ov > 0:
                overlaps[(i, j)] = ov

    candidates = [
        (ov, i, j)
        for (i, j), ov in overlaps.items()
        if ov >= min_overlap * min(truth[i][1] - truth[i][0], spans[j][1] - spans[j][0])
    ]
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    used_truth: set[int] = set()
    used_turn: set[int] = set()
    matches: list[Match] = []
    for ov, i, j in candidates:
        if i in used_truth or j in used_turn:
            continue
        used_truth.add(i)
        used_turn.add(j)
        turn = turns[j]
        start_err = None if turn.start_clamped else turn.speech_start_ms - truth[i][0]
        end_err = None if turn.open else turn.speech_end_ms - truth[i][1]
        matches.append(Match(i, j, ov, start_err, end_err))
    matches.sort(key=lambda m: m.truth_index)

    touched_turns = {j for (_, j) in overlaps}
    touched_truth = {i for (i, _) in overlaps}
    false_starts = sum(1 for j in range(len(turns)) if j not in touched_turns)
    missed = sum(1 for i in range(len(truth)) if i not in touched_truth)

    cut_offs = 0
    for turn in turns:
        if turn.open:
            continue
        end = turn.speech_end_ms
        if any(u[0] < end < u[1] - collar_ms for u in truth):
            cut_offs += 1

    merged = 0
    for j in range(len(turns)):
        covered = sum(
            1 for i, u in enumerate(truth) if overlaps.get((i, j), 0.0) >= min_overlap * (u[1] - u[0])
        )
        merged += max(0, covered - 1)

    detected = _union(spans)
    collared = _union((u[0] - collar_ms, u[1] + collar_ms) for u in truth)

    return VadScore(
        n_truth=len(truth),
        n_turns=len(turns),
        matched=len(matches),
        false_starts=false_starts,
        cut_offs=cut_offs,
        merged=merged,
        missed=missed,
        clamped_starts=sum(1 for t in turns if t.start_clamped),
        start_errors_ms=tuple(m.start_error_ms for m in matches if m.start_error_ms is not None),
        end_errors_ms=tuple(m.end_error_ms for m in matches if m.end_error_ms is not None),
        false_alarm_ms=_outside_ms(detected, collared),
        missed_speech_ms=_outside_ms(truth, detected),
        matches=tuple(matches),
    )


def rank_key(summary: Mapping[str, float | int | None], metric: str = "f1") -> tuple[float, ...]:
    """Sort key (smaller is better) for a :meth:`VadScore.summary`-like mapping.

    ``metric`` is maximised for ``f1``, ``precision`` and ``recall`` and minimised for anything
    else (errors and counts; an error is compared by its absolute value). Ties are broken by
    F1, then by fewer false starts + cut-offs + merges, then by less false-alarm + missed speech
    time (to 0.1 s), then by the smaller absolute median end error, then by the smaller absolute
    median start error. A missing value ranks last.
    """

    def num(name: str) -> float | None:
        value = summary.get(name)
        return None if value is None else float(value)

    def worst_last(value: float | None, maximise: bool) -> float:
        if value is None:
            return math.inf
        return -value if maximise else abs(value)

    maximise = metric in ("f1", "precision", "recall")
    mistakes = sum(float(summary.get(k) or 0) for k in ("false_starts", "cut_offs", "merged"))
    frame_errors = sum(float(summary.get(k) or 0) for k in ("false_alarm_s", "missed_speech_s"))
    return (
        worst_last(num(metric), maximise),
        worst_last(num("f1"), True),
        mistakes,
        round(frame_errors, 1),
        worst_last(num("end_error_ms_median"), False),
        worst_last(num("start_error_ms_median"), False),
    )
