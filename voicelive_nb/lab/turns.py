"""End-of-turn metrics: how often a configuration cuts the speaker off in a pause, against how
long it waits after the speaker is done (pure: no I/O, no clock, no asyncio).

Everything is in milliseconds on the input-audio timeline of one clip (0 = its first sample).

Pauses: hold or end of turn
---------------------------
The truth's speech spans, in order, leave a *pause* between each pair of neighbours. A pause is
an **end of turn** when the truth says the turn changes there and a **hold** (the speaker goes
on after it) otherwise:

* with turn ids (:attr:`Truth.turns <voicelive_nb.lab.truth.Truth.turns>`: JSON ``turns``, a CSV
  ``turn`` column, a TextGrid turn tier, RTTM speakers): a pause between two spans with the
  same id is a hold, between different ids an end of turn;
* without: a pause of at least ``eot_gap_ms`` (default :data:`DEFAULT_EOT_GAP_MS`) is an end of
  turn, a shorter one a hold.

The end of the last span is always an end of turn (its pause runs to the end of the audio).

Which pause a stop falls in
---------------------------
A *stop* is a ``speech_stopped`` of the service at ``audio_end_ms`` (the moment it decided,
on the audio timeline: the speech end plus the silence window). A stop belongs to pause ``i``
when ``end_i ≤ audio_end_ms < start_{i+1} + tolerance_ms`` (default
:data:`DEFAULT_TOLERANCE_MS`: the VAD hears resumed speech a window or two late, so a stop just
after the next onset was still decided in the pause). A stop outside every pause is a stop *in
speech* (counted in ``cutoffs_in_speech``).

* **false cut-off**: a hold pause with at least one stop in it (the agent would have answered
  while the speaker was still going). ``false_cutoff_rate = false cut-offs / holds``.
* **latency** of an end of turn: its first stop's ``audio_end_ms`` minus the truth's speech end;
  with real-time pacing, when the wall time of the stop was measured
  (:attr:`~voicelive_nb.lab.replay.Turn.stop_latency_ms`), the wall time from sending the truth's
  speech end to receiving ``speech_stopped`` is used instead. An end of turn with no stop is
  *missed* (no latency). ``response_latency``: latency plus the time from ``speech_stopped`` to
  the first response audio (only with ``responses=True``).
* Percentiles are p50/p90 with linear interpolation between ranks.

Budgets and the frontier (over a grid of configurations)
--------------------------------------------------------
* *false cut-offs at a latency budget L*: the lowest false cut-off rate of the configurations
  whose p50 latency is ≤ L (None when none is that fast);
* *latency at a cut-off budget c*: the lowest p50 latency of the configurations whose false
  cut-off rate is ≤ c;
* the **Pareto frontier**: the configurations no other one beats on both (lower or equal rate
  and latency, one of them strictly lower).

Silence-only baseline
---------------------
:func:`silence_baseline` scores, from the truth alone, the policy "end the turn after ``s`` ms
of silence": a hold of ``d`` ms is cut off when ``d > s``; an end of turn is detected with
latency ``s`` when its pause is longer than ``s`` (always for the last one), else missed. Its
budget figures: cut-offs at latency L are those of ``s = L``; latency at cut-off budget ``c`` is
the smallest ``s`` (a hold duration or 0) that cuts off at most ``c`` of the holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..analysis.vad_scoring import percentile
from ..errors import InvalidValue

__all__ = [
    "CUTOFF_BUDGETS",
    "DEFAULT_EOT_GAP_MS",
    "DEFAULT_TOLERANCE_MS",
    "LATENCY_BUDGETS_MS",
    "TURN_FIELDS",
    "BaselineCurve",
    "Pause",
    "Stop",
    "TurnScore",
    "budget_figures",
    "label_pauses",
    "pareto_frontier",
    "score_stops",
    "silence_baseline",
]

#: A pause at least this long is an end of turn when the truth has no turn ids.
DEFAULT_EOT_GAP_MS = 1500.0
#: A stop this far past the next onset still belongs to the pause before it.
DEFAULT_TOLERANCE_MS = 100.0
LATENCY_BUDGETS_MS: tuple[float, ...] = (300.0, 600.0, 1000.0)
CUTOFF_BUDGETS: tuple[float, ...] = (0.05, 0.10)

#: The flat fields of :meth:`TurnScore.summary`, in display order.
TURN_FIELDS: tuple[str, ...] = (
    "false_cutoff_rate",
    "latency_ms_p50",
    "latency_ms_p90",
    "response_latency_ms_p50",
    "response_latency_ms_p90",
    "holds",
    "false_cutoffs",
    "eots",
    "eots_detected",
    "eots_missed",
    "cutoffs_in_speech",
)


@dataclass(frozen=True)
class Pause:
    """A pause of the truth: from the end of one span to the start of the next (None: the
    audio's end)."""

    index: int
    start_ms: float  #: the truth's speech end before it
    end_ms: float | None  #: the next speech start; None after the last span
    end_of_turn: bool

    @property
    def duration_ms(self) -> float:
        return math.inf if self.end_ms is None else self.end_ms - self.start_ms

    @property
    def kind(self) -> str:
        return "eot" if self.end_of_turn else "hold"


@dataclass(frozen=True)
class Stop:
    """A ``speech_stopped``: where it was decided on the audio timeline, and optionally the wall
    latency after the truth's speech end and the time to the first response audio."""

    audio_end_ms: float
    speech_end_ms: float | None = None  #: the mapped speech end (for the wall-time correction)
    stop_latency_ms: float | None = None  #: wall: speech_end_ms sent → speech_stopped received
    response_latency_ms: float | None = None  #: speech_stopped → first response output


def label_pauses(
    spans_ms: Sequence[tuple[float, float]],
    turns: Sequence[str] | None = None,
    *,
    eot_gap_ms: float = DEFAULT_EOT_GAP_MS,
) -> list[Pause]:
    """The pauses after each span (sorted spans), each a hold or an end of turn (module doc)."""
    if turns is not None and len(turns) != len(spans_ms):
        raise InvalidValue(f"one turn id per span: {len(spans_ms)} spans, {len(turns)} turn ids")
    if eot_gap_ms < 0:
        raise InvalidValue(f"eot_gap_ms must be 0 or more, got {eot_gap_ms}")
    out: list[Pause] = []
    for i, (_, end) in enumerate(spans_ms):
        if i + 1 == len(spans_ms):
            out.append(Pause(i, float(end), None, True))
            continue
        nxt = float(spans_ms[i + 1][0])
        eot = turns[i] != turns[i + 1] if turns is not None else (nxt - end) >= eot_gap_ms
        out.append(Pause(i, float(end), nxt, eot))
    return out


@dataclass
class TurnScore:
    """End-of-turn counts and latencies of one configuration (one clip or pooled)."""

    holds: int = 0
    false_cutoffs: int = 0
    eots: int = 0
    eots_detected: int = 0
    cutoffs_in_speech: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    response_latencies_ms: list[float] = field(default_factory=list)

    @property
    def eots_missed(self) -> int:
        return self.eots - self.eots_detected

    @property
    def false_cutoff_rate(self) -> float | None:
        return self.false_cutoffs / self.holds if self.holds else None

    @classmethod
    def combine(cls, scores: Iterable[TurnScore]) -> TurnScore:
        """Pooled counts and latencies (micro average)."""
        out = cls()
        for s in scores:
            out.holds += s.holds
            out.false_cutoffs += s.false_cutoffs
            out.eots += s.eots
            out.eots_detected += s.eots_detected
            out.cutoffs_in_speech += s.cutoffs_in_speech
            out.latencies_ms.extend(s.latencies_ms)
            out.response_latencies_ms.extend(s.response_latencies_ms)
        return out

    def summary(self) -> dict[str, Any]:
        def r(v: float | None, d: int = 1) -> float | None:
            return None if v is None else round(v, d)

        return {
            "false_cutoff_rate": r(self.false_cutoff_rate, 4),
            "latency_ms_p50": r(percentile(self.latencies_ms, 50)),
            "latency_ms_p90": r(percentile(self.latencies_ms, 90)),
            "response_latency_ms_p50": r(percentile(self.response_latencies_ms, 50)),
            "response_latency_ms_p90": r(percentile(self.response_latencies_ms, 90)),
            "holds": self.holds,
            "false_cutoffs": self.false_cutoffs,
            "eots": self.eots,
            "eots_detected": self.eots_detected,
            "eots_missed": self.eots_missed,
            "cutoffs_in_speech": self.cutoffs_in_speech,
        }


def score_stops(
    pauses: Sequence[Pause],
    stops: Iterable[Stop],
    *,
    tolerance_ms: float = DEFAULT_TOLERANCE_MS,
) -> TurnScore:
    """Score the service's stops against the labelled pauses (see the module doc)."""
    in_pause: dict[int, list[Stop]] = {p.index: [] for p in pauses}
    score = TurnScore()
    for stop in sorted(stops, key=lambda s: s.audio_end_ms):
        home = next(
            (
                p
                for p in pauses
                if p.start_ms <= stop.audio_end_ms
                and (p.end_ms is None or stop.audio_end_ms < p.end_ms + tolerance_ms)
            ),
            None,
        )
        if home is None:
            score.cutoffs_in_speech += 1
        else:
            in_pause[home.index].append(stop)
    for p in pauses:
        found = in_pause[p.index]
        if not p.end_of_turn:
            score.holds += 1
            score.false_cutoffs += bool(found)
            continue
        score.eots += 1
        if not found:
            continue
        score.eots_detected += 1
        first = found[0]
        if first.stop_latency_ms is not None and first.speech_end_ms is not None:
            latency = first.stop_latency_ms + (first.speech_end_ms - p.start_ms)
        else:
            latency = first.audio_end_ms - p.start_ms
        score.latencies_ms.append(latency)
        if first.response_latency_ms is not None:
            score.response_latencies_ms.append(latency + first.response_latency_ms)
    return score


# --------------------------------------------------------------------------------- across a grid


def _value(point: Mapping[str, Any], key: str) -> float | None:
    v = point.get(key)
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def pareto_frontier(
    points: Sequence[Mapping[str, Any]],
    x: str = "latency_ms_p50",
    y: str = "false_cutoff_rate",
) -> list[int]:
    """Indexes of ``points`` on the Pareto frontier of lower ``x`` and lower ``y``, by ``x``
    (points missing either value are left out)."""
    valued = [(i, _value(p, x), _value(p, y)) for i, p in enumerate(points)]
    usable = [(i, a, b) for i, a, b in valued if a is not None and b is not None]
    front = []
    for i, a, b in usable:
        beaten = any((a2 <= a and b2 <= b) and (a2 < a or b2 < b) for j, a2, b2 in usable if j != i)
        if not beaten:
            front.append((a, b, i))
    return [i for _, _, i in sorted(front)]


def budget_figures(
    points: Sequence[Mapping[str, Any]],
    *,
    latency_budgets_ms: Sequence[float] = LATENCY_BUDGETS_MS,
    cutoff_budgets: Sequence[float] = CUTOFF_BUDGETS,
    latency: str = "latency_ms_p50",
    rate: str = "false_cutoff_rate",
) -> dict[str, float | None]:
    """eot-bench style figures over operating points (configurations): ``cutoff_at_300ms``
    (the lowest false cut-off rate within the latency budget) and ``latency_at_5pct`` (the
    lowest latency within the cut-off budget); None when no point meets the budget."""
    pairs = [(_value(p, latency), _value(p, rate)) for p in points]
    usable = [(a, b) for a, b in pairs if a is not None and b is not None]
    out: dict[str, float | None] = {}
    for budget in latency_budgets_ms:
        within = [b for a, b in usable if a <= budget]
        out[f"cutoff_at_{budget:g}ms"] = round(min(within), 4) if within else None
    for budget in cutoff_budgets:
        within = [a for a, b in usable if b <= budget + 1e-12]
        out[f"latency_at_{budget * 100:g}pct"] = round(min(within), 1) if within else None
    return out


@dataclass(frozen=True)
class BaselineCurve:
    """The silence-only policy over the truth's pauses: one point per silence window."""

    holds_ms: tuple[float, ...]  #: the hold durations
    eots_ms: tuple[float, ...]  #: the end-of-turn pause durations (inf for the last ones)

    def point(self, silence_ms: float) -> dict[str, Any]:
        """Cut-off rate and latency of "end the turn after ``silence_ms`` of silence"."""
        cut = sum(1 for d in self.holds_ms if d > silence_ms)
        detected = sum(1 for d in self.eots_ms if d > silence_ms)
        return {
            "silence_ms": silence_ms,
            "false_cutoff_rate": round(cut / len(self.holds_ms), 4) if self.holds_ms else None,
            "latency_ms_p50": float(silence_ms) if detected else None,
            "latency_ms_p90": float(silence_ms) if detected else None,
            "false_cutoffs": cut,
            "holds": len(self.holds_ms),
            "eots": len(self.eots_ms),
            "eots_detected": detected,
        }

    def curve(self, silences_ms: Sequence[float] | None = None) -> list[dict[str, Any]]:
        """Points at ``silences_ms`` (default: 0, every hold duration, and 50 ms steps to 3 s)."""
        grid = silences_ms
        if grid is None:
            grid = sorted({0.0, *self.holds_ms, *(50.0 * k for k in range(61))})
        return [self.point(s) for s in grid]

    def figures(
        self,
        latency_budgets_ms: Sequence[float] = LATENCY_BUDGETS_MS,
        cutoff_budgets: Sequence[float] = CUTOFF_BUDGETS,
    ) -> dict[str, float | None]:
        """The same keys as :func:`budget_figures`, exact for this policy."""
        out: dict[str, float | None] = {}
        n = len(self.holds_ms)
        for budget in latency_budgets_ms:
            out[f"cutoff_at_{budget:g}ms"] = (
                round(sum(1 for d in self.holds_ms if d > budget) / n, 4) if n else None
            )
        desc = sorted(self.holds_ms, reverse=True)
        for budget in cutoff_budgets:
            allowed = math.floor(budget * n + 1e-9)
            # the smallest window that cuts off at most `allowed` holds: the (allowed+1)-th longest
            s = desc[allowed] if allowed < n else 0.0
            out[f"latency_at_{budget * 100:g}pct"] = round(float(s), 1) if n else None
        return out


def silence_baseline(pauses: Iterable[Pause]) -> BaselineCurve:
    """The silence-only baseline of these pauses (pool the pauses of every clip first)."""
    ps = list(pauses)
    return BaselineCurve(
        tuple(p.duration_ms for p in ps if not p.end_of_turn),
        tuple(p.duration_ms for p in ps if p.end_of_turn),
    )
