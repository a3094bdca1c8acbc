"""Sweep turn-detection settings over recordings and rank them against the truth.

::

    result = sweep(["a.wav", "b.wav"], grid={"threshold": [0.3, 0.5, 0.7],
                                            "silence_duration_ms": [200, 500]})
    result.to_frame()            # one row per configuration: knobs, F1, boundary errors, mistakes
    session.update(result.best())  # the winning turn_detection (and noise suppression)
    result.plot_heatmap("threshold", "silence_duration_ms")

Every combination of the grid (a Cartesian product, in the grid's order) is one configuration,
``base`` (default :meth:`SessionConfig.server_vad`) with the knobs changed; every configuration
is replayed over every clip in its own session (:mod:`voicelive_nb.lab.replay`), at most
``concurrency`` sessions at a time (default 2 against a service, 4 on the emulator). On the
emulator a sweep is CPU-bound (Silero plus the Python around it, serialised by the GIL), so
concurrency neither helps nor hurts much there: ``benchmarks/bench_sweep.py`` measured 4.5 s
for 12 sessions of 60 s at 1, 2 and 4 at a time on 2 cores. Scores of a configuration pool all
its clips (micro average).

Grid knobs: ``threshold``, ``silence_duration_ms`` (or ``silence``), ``prefix_padding_ms`` (or
``padding``), ``speech_duration_ms``, ``type`` (or ``vad_type``; put it first to vary VAD types),
``eagerness``, ``noise_suppression`` (``True``/``False`` or a noise-reduction type; the emulator
accepts it but does not model it), or any dotted session path such as
``turn_detection.end_of_utterance_detection.threshold_level``.

Before a sweep starts, its plan (sessions and seconds of audio to send, including the tail
silence) is printed; against a service, that is what will be billed. A running sweep can be
cancelled (:meth:`SweepHandle.cancel`, or Ctrl-C / the notebook's interrupt in :func:`sweep`):
workers stop after closing their sessions and the partial result is returned, with
``cancelled=True``; configurations not replayed over every clip are marked incomplete and never
chosen by :meth:`SweepResult.best`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import itertools
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.vad_scoring import SUMMARY_FIELDS, VadScore, rank_key
from ..errors import ConfigError, InvalidValue, VoiceLiveError, WaitTimeout
from ..protocol.config import SessionConfig
from .inputs import as_config, as_truth, optional_pandas
from .quota import (
    QuotaLimiter,
    QuotaLimits,
    check_prices,
    estimate_cost,
    estimate_tokens,
    rate_limit_pause_s,
    retry_after_s,
)
from .replay import (
    KEY_SCORE_COLUMNS,
    Backend,
    Pace,
    ReplayResult,
    RetryPolicy,
    boundary_mapping,
    is_rate_limited,
    replay_with_retries,
)
from .store import ResultStore, audio_hash, config_hash, run_key
from .testsets import Clip, as_clip
from .truth import Truth
from .turns import (
    DEFAULT_EOT_GAP_MS,
    DEFAULT_TOLERANCE_MS,
    TURN_FIELDS,
    Pause,
    Stop,
    TurnScore,
    budget_figures,
    label_pauses,
    pareto_frontier,
    score_stops,
    silence_baseline,
)

__all__ = [
    "KNOB_ALIASES",
    "ConfigRun",
    "SweepHandle",
    "SweepPlan",
    "SweepResult",
    "expand_grid",
    "knob_path",
    "plan_sweep",
    "replay_turn_score",
    "start_sweep",
    "sweep",
    "sweep_async",
]

log = logging.getLogger("voicelive_nb.lab")

NOISE = "input_audio_noise_reduction"

#: Short grid names and the session paths they change.
KNOB_ALIASES: dict[str, str] = {
    "threshold": "turn_detection.threshold",
    "silence": "turn_detection.silence_duration_ms",
    "silence_ms": "turn_detection.silence_duration_ms",
    "silence_duration_ms": "turn_detection.silence_duration_ms",
    "padding": "turn_detection.prefix_padding_ms",
    "padding_ms": "turn_detection.prefix_padding_ms",
    "prefix_padding_ms": "turn_detection.prefix_padding_ms",
    "speech_duration_ms": "turn_detection.speech_duration_ms",
    "min_speech_ms": "turn_detection.speech_duration_ms",
    "type": "turn_detection.type",
    "vad_type": "turn_detection.type",
    "vad": "turn_detection.type",
    "eagerness": "turn_detection.eagerness",
    "remove_filler_words": "turn_detection.remove_filler_words",
    "noise_suppression": NOISE,
    "noise_reduction": NOISE,
    "ns": NOISE,
}

#: Concurrent sessions by default: against a service / on the emulator.
DEFAULT_SERVICE_CONCURRENCY = 2
DEFAULT_EMULATOR_CONCURRENCY = 4


def knob_path(name: str) -> str:
    """The session path a grid name changes (``threshold`` → ``turn_detection.threshold``)."""
    return KNOB_ALIASES.get(name, name)


def _knob_value(path: str, value: Any) -> Any:
    if path != NOISE:
        return value
    if value is True:
        return {"type": "azure_deep_noise_suppression"}
    if value is False or value is None or (isinstance(value, str) and value.lower() in ("off", "none", "")):
        return None
    if isinstance(value, str):
        return {"type": value}
    return value


def apply_knobs(base: SessionConfig, knobs: Mapping[str, Any]) -> SessionConfig:
    """``base`` with the grid knobs changed (the VAD type first, so its knobs apply to it)."""
    changes = {knob_path(k): _knob_value(knob_path(k), v) for k, v in knobs.items()}
    ordered = dict(sorted(changes.items(), key=lambda kv: kv[0] != "turn_detection.type"))
    return base.with_changes(ordered)


def expand_grid(
    grid: Mapping[str, Sequence[Any]], base: SessionConfig | None = None
) -> list[tuple[dict[str, Any], SessionConfig]]:
    """Every combination of ``grid`` as ``(knobs, config)``; a bad value raises ConfigError now,
    before anything is sent."""
    cfg = base or SessionConfig.server_vad()
    names = list(grid)
    values: list[list[Any]] = []
    for name in names:
        vals = grid[name]
        if isinstance(vals, (str, bytes)) or not isinstance(vals, Iterable):
            vals = [vals]
        vals = list(vals)
        if not vals:
            raise ConfigError(name, vals, "at least one value to try")
        values.append(vals)
    out: list[tuple[dict[str, Any], SessionConfig]] = []
    for combo in itertools.product(*values):
        knobs = dict(zip(names, combo, strict=True))
        out.append((knobs, apply_knobs(cfg, knobs)))
    return out


# --------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep will do: sessions, seconds of audio (with tail silence), where, how fast."""

    configs: int
    clips: int
    audio_s: float  #: clip audio over all sessions
    tail_s: float  #: trailing silence over all sessions (lets the last turn end)
    target: str
    is_service: bool
    pace: str
    concurrency: int
    tokens: int = 0  #: estimated tokens (:func:`~voicelive_nb.lab.quota.estimate_tokens`)
    limits: QuotaLimits | None = None  #: the quota scheduler's budgets, when one is used
    reused: int = 0  #: sessions found in the results store (not run again)
    #: prices the user gave (:func:`~voicelive_nb.lab.quota.check_prices`); None: the cost is unknown
    prices: Mapping[str, Any] | None = None

    @property
    def sessions(self) -> int:
        return self.configs * self.clips

    @property
    def to_run(self) -> int:
        """Sessions that will actually be opened (the rest come from the results store)."""
        return self.sessions - self.reused

    @property
    def quota_wall_s(self) -> float:
        """The least time the quotas allow for the sessions to run (0 without a scheduler)."""
        if self.limits is None or self.to_run <= 0:
            return 0.0
        share = self.to_run / max(1, self.sessions)
        by_connections = max(0, self.to_run - self.limits.connections) / self.limits.connections
        by_tokens = max(0.0, self.tokens * share - self.limits.tokens) / self.limits.tokens
        return max(by_connections, by_tokens) * self.limits.window_s

    @property
    def send_s(self) -> float:
        """Seconds of audio that will be sent in total."""
        return self.audio_s + self.tail_s

    @property
    def connections(self) -> int:
        """New connections the sweep opens (one per session to run; a retried 429 opens one more)."""
        return self.to_run

    @property
    def tokens_to_run(self) -> int:
        """Estimated tokens of the sessions that will run (the store's are not spent again)."""
        return round(self.tokens * self.to_run / max(1, self.sessions))

    @property
    def cost(self) -> float | None:
        """Estimated cost of the sessions to run at the user's ``prices``; None when no price was
        given (no price is assumed: none is published in the project's reference)."""
        return estimate_cost(
            self.send_s * self.to_run / max(1, self.sessions), self.tokens_to_run, self.prices
        )

    def cost_text(self) -> str:
        cost = self.cost
        if cost is None:
            return "cost unknown (pass prices={'audio_minute': ...} or {'tokens_1m': ...})"
        currency = str((self.prices or {}).get("currency", "")).strip()
        return f"~{cost:,.2f}{' ' + currency if currency else ''}"

    @property
    def estimated_wall_s(self) -> float | None:
        """Real-time pacing: the larger of audio ÷ concurrency and what the quotas allow (a lower
        bound); None when sent as fast as possible."""
        if self.pace != "realtime":
            return None
        share = self.to_run / max(1, self.sessions)
        return max(self.send_s * share / max(1, self.concurrency), self.quota_wall_s)

    def describe(self) -> str:
        head = (
            f"sweep: {self.configs} configs x {self.clips} clips = {self.sessions} sessions on {self.target} "
            f"({self.pace} pacing, {self.concurrency} at a time): "
            f"{self.send_s:.1f} s of audio ({self.audio_s:.1f} s + {self.tail_s:.1f} s tail silence)"
            f", ~{self.tokens:,} tokens"
        )
        if self.reused:
            head += f"; {self.reused} reused from the results store, {self.to_run} to run"
        if self.limits is not None:
            head += (
                f"; quota: {self.limits.connections} connections and {self.limits.tokens:,} tokens "
                f"per {self.limits.window_s:g} s"
            )
        head += f"; {self.connections} new connections, ~{self.tokens_to_run:,} tokens to spend"
        if self.limits is not None:
            head += f", at least {self.quota_wall_s:.0f} s under the quota"
        if self.is_service:
            est = self.estimated_wall_s or 0.0
            head += (
                f"; this sends {self.send_s / 60:.1f} min of audio to the service, "
                f"taking at least {est / 60:.1f} min"
            )
        if self.is_service or self.prices is not None:
            head += f"; {self.cost_text()}"
        return head

    def as_dict(self) -> dict[str, Any]:
        return {
            "configs": self.configs,
            "clips": self.clips,
            "sessions": self.sessions,
            "audio_s": round(self.audio_s, 3),
            "tail_s": round(self.tail_s, 3),
            "send_s": round(self.send_s, 3),
            "target": self.target,
            "is_service": self.is_service,
            "pace": self.pace,
            "concurrency": self.concurrency,
            "tokens": self.tokens,
            "reused": self.reused,
            "to_run": self.to_run,
            "estimated_wall_s": None if self.estimated_wall_s is None else round(self.estimated_wall_s, 1),
            "connections": self.connections,
            "tokens_to_run": self.tokens_to_run,
            "quota_wall_s": round(self.quota_wall_s, 1),
            "cost": None if self.cost is None else round(self.cost, 4),
            "prices": None if self.prices is None else _jsonable(self.prices),
            "limits": None
            if self.limits is None
            else {
                "connections": self.limits.connections,
                "tokens": self.limits.tokens,
                "window_s": self.limits.window_s,
            },
        }


def _tail_ms(config: SessionConfig, tail_ms: float | None) -> float:
    return tail_ms if tail_ms is not None else boundary_mapping(None, config).silence_duration_ms + 1000.0


def _plan(
    configs: Sequence[tuple[dict[str, Any], SessionConfig]],
    clips: Sequence[Clip],
    backend: Backend,
    concurrency: int,
    tail_ms: float | None,
    *,
    responses: bool = False,
    limits: QuotaLimits | None = None,
    prices: Mapping[str, Any] | None = None,
) -> SweepPlan:
    audio = sum(c.duration_s for c in clips) * len(configs)
    tail = sum(_tail_ms(cfg, tail_ms) / 1000.0 for _, cfg in configs) * len(clips)
    turns = sum(len(c.truth) if c.truth is not None else 1 for c in clips) * len(configs)
    return SweepPlan(
        configs=len(configs),
        clips=len(clips),
        audio_s=audio,
        tail_s=tail,
        target=backend.label,
        is_service=backend.is_service,
        pace=backend.pace,
        concurrency=concurrency,
        tokens=estimate_tokens(audio + tail, turns if responses else 0),
        limits=limits,
        prices=check_prices(prices),
    )


# --------------------------------------------------------------------------------- results


def truth_pauses(truth: Truth | None, eot_gap_ms: float = DEFAULT_EOT_GAP_MS) -> list[Pause]:
    """The truth's pauses, labelled hold / end of turn (:func:`~voicelive_nb.lab.turns.label_pauses`)."""
    if truth is None:
        return []
    return label_pauses(truth.spans_ms, truth.turns, eot_gap_ms=eot_gap_ms)


def replay_turn_score(
    replay: ReplayResult,
    *,
    eot_gap_ms: float = DEFAULT_EOT_GAP_MS,
    tolerance_ms: float = DEFAULT_TOLERANCE_MS,
) -> TurnScore | None:
    """The end-of-turn score of one replay against its truth (None without a truth)."""
    if replay.truth is None:
        return None
    stops = [
        Stop(t.audio_end_ms, t.speech_end_ms, t.stop_latency_ms, t.response_latency_ms)
        for t in replay.turns
        if t.audio_end_ms is not None and not t.open
    ]
    return score_stops(truth_pauses(replay.truth, eot_gap_ms), stops, tolerance_ms=tolerance_ms)


@dataclass
class ConfigRun:
    """One configuration of the grid and its replays (one per clip; None until done)."""

    index: int
    knobs: dict[str, Any]
    config: SessionConfig
    replays: list[ReplayResult | None]
    errors: list[str] = field(default_factory=list)
    eot_gap_ms: float = DEFAULT_EOT_GAP_MS
    tolerance_ms: float = DEFAULT_TOLERANCE_MS
    reused: int = 0  #: replays loaded from the results store instead of run

    @property
    def complete(self) -> bool:
        """Replayed over every clip without an error."""
        return all(r is not None for r in self.replays) and not self.errors

    @property
    def score(self) -> VadScore | None:
        scores = [r.score for r in self.replays if r is not None and r.score is not None]
        return VadScore.combine(scores) if scores else None

    @property
    def turn_score(self) -> TurnScore | None:
        """End-of-turn counts and latencies pooled over the clips (see :mod:`voicelive_nb.lab.turns`)."""
        done = [r for r in self.replays if r is not None and r.truth is not None]
        if not done:
            return None
        return TurnScore.combine(
            s
            for s in (
                replay_turn_score(r, eot_gap_ms=self.eot_gap_ms, tolerance_ms=self.tolerance_ms) for r in done
            )
            if s is not None
        )

    def session_update(self, keys: Iterable[str] = ("turn_detection",)) -> dict[str, Any]:
        """The parts of this configuration a ``session.update`` needs (whole objects)."""
        wire = self.config.to_dict()
        return {k: wire[k] for k in keys if k in wire}

    def row(self) -> dict[str, Any]:
        summary: dict[str, Any] = (
            dict(self.score.summary()) if self.score is not None else dict.fromkeys(SUMMARY_FIELDS)
        )
        done = [r for r in self.replays if r is not None]
        turn = self.turn_score
        turns: dict[str, Any] = turn.summary() if turn is not None else dict.fromkeys(TURN_FIELDS)
        return {
            "config": self.index,
            **self.knobs,
            **summary,
            **turns,
            "clips_done": len(done),
            "complete": self.complete,
            "errors": "; ".join(self.errors) if self.errors else "",
            "retries": sum(r.retries for r in done),
        }


@dataclass
class SweepResult:
    """The outcome of a sweep: one :class:`ConfigRun` per configuration of the grid."""

    runs: list[ConfigRun]
    clips: list[Clip] = field(repr=False)
    plan: SweepPlan
    grid: dict[str, list[Any]]
    cancelled: bool = False
    wall_s: float = 0.0

    @property
    def touched_keys(self) -> list[str]:
        """Top-level session keys the grid changes (always including ``turn_detection``)."""
        keys = ["turn_detection"]
        for name in self.grid:
            top = knob_path(name).split(".")[0]
            if top not in keys:
                keys.append(top)
        return keys

    def rows(self) -> list[dict[str, Any]]:
        return [run.row() for run in self.runs]

    def to_frame(self) -> Any:
        """One row per configuration as a pandas DataFrame (a list of dicts without pandas)."""
        rows = self.rows()
        try:
            import pandas as pd  # type: ignore[import-untyped]
        except ImportError:
            return rows
        return pd.DataFrame(rows).set_index("config")

    @property
    def table(self) -> Any:
        return self.to_frame()

    def ranked_rows(self, metric: str = "f1") -> list[dict[str, Any]]:
        """Rows best first (incomplete configurations last): ``rank``, the knobs, then
        :data:`~voicelive_nb.lab.replay.KEY_SCORE_COLUMNS` (and why a configuration is incomplete)."""
        ranked = self.ranked(metric)
        order = ranked + [run for run in self.runs if run not in ranked]
        incomplete = len(ranked) < len(self.runs)
        rows = []
        for position, run in enumerate(order, 1):
            full = run.row()
            row: dict[str, Any] = {"rank": position if run in ranked else None, "config": run.index}
            row.update(run.knobs)
            row.update({k: full.get(k) for k in KEY_SCORE_COLUMNS})
            row.update({k: full.get(k) for k in EOT_COLUMNS})
            if incomplete:
                row["complete"] = full["complete"]
                row["errors"] = full["errors"]
            rows.append(row)
        return rows

    def ranked_frame(self, metric: str = "f1") -> Any:
        """The ranked table (see :meth:`ranked_rows`): the knobs and the columns that matter
        first, best first; a pandas DataFrame indexed by ``config`` (a list of dicts without pandas)."""
        rows = self.ranked_rows(metric)
        pd = optional_pandas()
        if pd is None:
            return rows
        return pd.DataFrame(rows).set_index("config")

    def format_table(self, metric: str = "f1", top: int | None = None) -> str:
        """The ranked table as plain text (for the command line), ``top`` rows at most."""
        rows = self.ranked_rows(metric)
        if top is not None:
            rows = rows[:top]
        if not rows:
            return "(no configurations)"
        headers = list(rows[0])

        def cell(value: Any, header: str) -> str:
            if value is None:
                return "-"
            if isinstance(value, float):
                return (
                    f"{value:.3f}"
                    if header in ("f1", "precision", "recall", "false_cutoff_rate")
                    else f"{value:.1f}"
                )
            return str(value)

        as_given = set(self.grid) | {"rank", "config"}  # knob values exactly as in the grid

        def show(header: str, value: Any) -> str:
            return "-" if value is None else str(value) if header in as_given else cell(value, header)

        table = [[_short(h) for h in headers]] + [[show(h, row.get(h)) for h in headers] for row in rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(headers))]
        return "\n".join("  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True)) for line in table)

    def ranked(self, metric: str = "f1") -> list[ConfigRun]:
        """Complete configurations, best first (see :func:`~voicelive_nb.analysis.vad_scoring.rank_key`)."""
        scored: list[tuple[tuple[float, ...], int, ConfigRun]] = []
        for run in self.runs:
            score = run.score
            if run.complete and score is not None:
                scored.append((rank_key(score.summary(), metric), run.index, run))
        scored.sort(key=lambda item: (item[0], item[1]))
        return [run for _, _, run in scored]

    def best_run(self, metric: str = "f1") -> ConfigRun:
        ranked = self.ranked(metric)
        if not ranked:
            raise VoiceLiveError(
                "no configuration was replayed over every clip"
                + (" (the sweep was cancelled)" if self.cancelled else "")
                + "; nothing to choose from"
            )
        return ranked[0]

    def best(self, metric: str = "f1") -> dict[str, Any]:
        """The best configuration as a partial session, ready for ``session.update(...)``: the
        whole ``turn_detection`` object (and whatever else the grid changed)."""
        return self.best_run(metric).session_update(self.touched_keys)

    def best_config(self, metric: str = "f1") -> SessionConfig:
        return self.best_run(metric).config

    def best_knobs(self, metric: str = "f1") -> dict[str, Any]:
        return dict(self.best_run(metric).knobs)

    def replays(self, config: int, clip: int | None = None) -> list[ReplayResult]:
        """The replays of configuration ``config`` (only of clip ``clip`` when given)."""
        found = self.runs[config].replays
        chosen = found if clip is None else [found[clip]]
        return [r for r in chosen if r is not None]

    def to_json(self, metric: str = "f1") -> dict[str, Any]:
        """``{"results": [...], "best": {...} | null, "plan": {...}, "cancelled": bool, "wall_s": float}``;
        each result has ``config`` (the knobs), ``session`` (for session.update) and the score fields."""

        front = set(self.frontier())

        def entry(run: ConfigRun) -> dict[str, Any]:
            summary = run.score.summary() if run.score is not None else dict.fromkeys(SUMMARY_FIELDS)
            turn = run.turn_score
            row = run.row()
            return {
                "config": _jsonable(run.knobs),
                "session": _jsonable(run.session_update(self.touched_keys)),
                **summary,
                **(turn.summary() if turn is not None else dict.fromkeys(TURN_FIELDS)),
                "frontier": run.index in front,
                "complete": run.complete,
                "clips_done": row["clips_done"],
                "errors": list(run.errors),
            }

        ranked = self.ranked(metric)
        return {
            "results": [entry(run) for run in self.runs],
            "best": entry(ranked[0]) if ranked else None,
            "metric": metric,
            "clips": [{"name": c.name, "duration_s": round(c.duration_s, 3)} for c in self.clips],
            "plan": self.plan.as_dict(),
            "cancelled": self.cancelled,
            "wall_s": round(self.wall_s, 3),
            "eot": {**self.eot_figures(), "frontier": self.frontier(), "chosen": self.chosen_eot()},
            "usage": self.usage(),
        }

    def usage(self) -> dict[str, Any]:
        """What the sweep used, next to what its plan estimated: tokens the server reported
        (``response.done`` usage; 0 when no response was asked for), connections opened
        (sessions plus rate-limited retries), seconds of audio sent, wall time. Replays reused
        from the results store count as they were when first run (``reused`` says how many)."""
        ran = [r for run in self.runs for r in run.replays if r is not None]
        tokens = 0
        for replay in ran:
            for _, ev in replay.events:
                if ev.get("type") == "response.done":
                    got = (ev.get("response") or {}).get("usage") or {}
                    total = got.get("total_tokens") if isinstance(got, Mapping) else None
                    if isinstance(total, (int, float)) and not isinstance(total, bool):
                        tokens += int(total)
        return {
            "tokens": tokens,
            "estimated_tokens": self.plan.tokens,
            "connections": sum(1 + r.retries for r in ran),
            "sessions": len(ran),
            "reused": sum(run.reused for run in self.runs),
            "send_s": round(sum((r.audio_ms + r.tail_ms) / 1000.0 for r in ran), 3),
            "estimated_send_s": round(self.plan.send_s, 3),
            "wall_s": round(self.wall_s, 3),
        }

    # ------------------------------------------------------------------ end of turn

    def pauses(self) -> list[Pause]:
        """Every clip's truth pauses, labelled hold / end of turn."""
        gap = self.runs[0].eot_gap_ms if self.runs else DEFAULT_EOT_GAP_MS
        return [p for c in self.clips for p in truth_pauses(c.truth, gap)]

    def turn_rows(self) -> list[dict[str, Any]]:
        """One row per complete configuration: the knobs and :data:`~voicelive_nb.lab.turns.TURN_FIELDS`,
        ``frontier`` True on the Pareto frontier (lower p50 latency, fewer false cut-offs)."""
        rows = []
        for run in self.runs:
            if not run.complete:
                continue
            turn = run.turn_score
            summary = turn.summary() if turn is not None else dict.fromkeys(TURN_FIELDS)
            rows.append({"config": run.index, **run.knobs, **summary})
        front = set(pareto_frontier(rows))
        for i, row in enumerate(rows):
            row["frontier"] = i in front
        return rows

    def turn_frame(self) -> Any:
        """:meth:`turn_rows` as a DataFrame indexed by ``config`` (a list of dicts without pandas)."""
        rows = self.turn_rows()
        pd = optional_pandas()
        return rows if pd is None else pd.DataFrame(rows).set_index("config")

    def frontier(self) -> list[int]:
        """The configurations on the Pareto frontier (their ``config`` numbers, fastest first)."""
        rows = self.turn_rows()
        return [rows[i]["config"] for i in pareto_frontier(rows)]

    def baseline(self) -> Any:
        """The silence-only baseline over this sweep's truth (:func:`~voicelive_nb.lab.turns.silence_baseline`)."""
        return silence_baseline(self.pauses())

    def eot_figures(self) -> dict[str, dict[str, float | None]]:
        """``{"sweep": {...}, "silence_baseline": {...}}``: false cut-offs at latency budgets
        300/600/1000 ms and p50 latency at cut-off budgets 5 %/10 %, for the grid and for the
        silence-only policy over the same truth."""
        return {"sweep": budget_figures(self.turn_rows()), "silence_baseline": self.baseline().figures()}

    def eot_table(self) -> Any:
        """:meth:`eot_figures` side by side: one row per figure, columns ``sweep`` and ``silence_baseline``."""
        figs = self.eot_figures()
        rows = [
            {"figure": k, "sweep": figs["sweep"][k], "silence_baseline": figs["silence_baseline"][k]}
            for k in figs["sweep"]
        ]
        pd = optional_pandas()
        return rows if pd is None else pd.DataFrame(rows).set_index("figure")

    def chosen_eot(self, cutoff_budget: float = 0.05) -> int | None:
        """The fastest configuration (p50 latency) whose false cut-off rate is within the budget
        (None when none is)."""
        rows = [
            r
            for r in self.turn_rows()
            if r["false_cutoff_rate"] is not None and r["latency_ms_p50"] is not None
        ]
        within = [r for r in rows if r["false_cutoff_rate"] <= cutoff_budget + 1e-12]
        if not within:
            return None
        return int(min(within, key=lambda r: (r["latency_ms_p50"], r["false_cutoff_rate"]))["config"])

    def describe_eot(self) -> str:
        """The eot-style figures of the sweep and of the silence baseline as text lines."""
        figs = self.eot_figures()
        holds = sum(1 for p in self.pauses() if not p.end_of_turn)
        eots = sum(1 for p in self.pauses() if p.end_of_turn)

        def fmt(key: str, value: float | None) -> str:
            if value is None:
                return "n/a"
            return f"{value * 100:.1f} %" if key.startswith("cutoff") else f"{value:.0f} ms"

        lines = [
            f"end of turn over {holds} holds and {eots} ends of turn:",
            f"{'':24}{'sweep':>12}{'silence only':>14}",
        ]
        for key in figs["sweep"]:
            label = key.replace("cutoff_at_", "false cut-offs @ ").replace("latency_at_", "latency @ ")
            label = label.replace("pct", " % cut-offs").replace("0ms", "0 ms")
            lines.append(
                f"{label:24}{fmt(key, figs['sweep'][key]):>12}{fmt(key, figs['silence_baseline'][key]):>14}"
            )
        return "\n".join(lines)

    def plot_frontier(self, chosen: int | None = None, **kwargs: Any) -> Any:
        """False cut-offs against latency: every configuration, the frontier, the silence baseline
        and ``chosen`` highlighted (default :meth:`chosen_eot`)."""
        from .figures import plot_eot_frontier

        return plot_eot_frontier(self, chosen=chosen, **kwargs)

    def plot_turn_scatter(self, **kwargs: Any) -> Any:
        """Per configuration: false cut-off rate against p50 latency, labelled by knobs."""
        from .figures import plot_turn_scatter

        return plot_turn_scatter(self, **kwargs)

    def save_json(self, path: str | Path, metric: str = "f1") -> Path:
        p = Path(path)
        p.write_text(json.dumps(self.to_json(metric), indent=2) + "\n", encoding="utf-8")
        return p

    def plot_heatmap(self, x: str, y: str, **kwargs: Any) -> Any:
        """Heatmaps of F1 and boundary error over two knobs (see :func:`~voicelive_nb.lab.figures.plot_sweep_heatmap`)."""
        from .figures import plot_sweep_heatmap

        return plot_sweep_heatmap(self, x, y, **kwargs)

    def plot_timelines(self, configs: Sequence[int] | None = None, clip: int = 0, **kwargs: Any) -> Any:
        """Timelines of chosen configurations against the truth (default: the best three)."""
        from .figures import plot_sweep_timelines

        return plot_sweep_timelines(self, configs, clip=clip, **kwargs)


#: End-of-turn columns of the ranked table (after the score columns).
EOT_COLUMNS: tuple[str, ...] = ("false_cutoff_rate", "latency_ms_p50", "latency_ms_p90")

_SHORT = {
    "false_cutoff_rate": "cutoff_rate",
    "latency_ms_p50": "eot_p50_ms",
    "latency_ms_p90": "eot_p90_ms",
    "silence_duration_ms": "silence_ms",
    "prefix_padding_ms": "padding_ms",
    "speech_duration_ms": "speech_ms",
    "start_error_ms_median": "start_err_ms",
    "end_error_ms_median": "end_err_ms",
    "end_error_ms_p90": "end_err_p90",
    "false_starts": "false_st",
    "precision": "P",
    "recall": "R",
}


def _short(header: str) -> str:
    return _SHORT.get(header, header)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


# --------------------------------------------------------------------------------- running


class SweepHandle:
    """Follow and cancel a running sweep from any thread.

    ``cancel()`` stops the workers (each closes its session) and the sweep returns what it has;
    ``result(timeout)`` waits for it (a sweep started with :func:`start_sweep`). ``partial`` is
    the result as far as it got, updated live.
    """

    def __init__(self) -> None:
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._future: concurrent.futures.Future[SweepResult] | None = None
        self.partial: SweepResult | None = None
        self.plan: SweepPlan | None = None
        self.done_jobs = 0
        self.total_jobs = 0
        #: rate-limit refusals backed off from (every worker held), and what holds them right now
        self.backoffs = 0
        self.waiting = ""
        #: the most replays in flight at once
        self.peak_in_flight = 0
        self.in_flight = 0

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Stop the sweep (thread-safe, idempotent)."""
        self._cancel.set()
        with self._lock:
            loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            same_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            same_loop = False
        if same_loop:  # e.g. from an on_result callback: stop the other workers right now
            self._cancel_workers()
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._cancel_workers)

    def _cancel_workers(self) -> None:
        for task in self._workers:
            if not task.done():
                task.cancel()

    def _attach(self, loop: asyncio.AbstractEventLoop, workers: list[asyncio.Task[None]]) -> None:
        with self._lock:
            self._loop = loop
            self._workers = workers
        if self.cancelled:
            self._cancel_workers()

    def done(self) -> bool:
        return self._future is not None and self._future.done()

    def result(self, timeout: float | None = None) -> SweepResult:
        """Wait for the sweep (started with :func:`start_sweep`); Ctrl-C cancels it and returns
        the partial result."""
        if self._future is None:
            raise VoiceLiveError("this sweep was not started with start_sweep(); await sweep_async() instead")
        try:
            return self._future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise WaitTimeout(f"the sweep is still running after {timeout:g} s") from None
        except KeyboardInterrupt:
            self.cancel()
            return self._future.result(timeout=60)

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else ("done" if self.done() else "running")
        extra = f", {self.backoffs} back-offs" if self.backoffs else ""
        extra += f", waiting {self.waiting}" if self.waiting else ""
        return f"<SweepHandle {state} {self.done_jobs}/{self.total_jobs} sessions{extra}>"


def _as_clips(wavs: Clip | str | Path | Sequence[Clip | str | Path], truth: Any) -> list[Clip]:
    items = [wavs] if isinstance(wavs, (Clip, str, Path)) else list(wavs)
    if not items:
        raise InvalidValue("a sweep needs at least one clip or WAV file")
    clips = [as_clip(w) for w in items]
    if truth is not None:
        per_clip = (
            isinstance(truth, (list, tuple))
            and len(truth) == len(clips)
            and all(t is None or isinstance(t, (Truth, str, Path)) for t in truth)
        )
        truths = [as_truth(t) for t in truth] if per_clip else [as_truth(truth)] * len(clips)
        clips = [
            c if t is None else Clip(c.pcm16, c.sample_rate, t, c.name)
            for c, t in zip(clips, truths, strict=True)
        ]
    missing = [c.name for c in clips if c.truth is None]
    if missing:
        raise InvalidValue(
            f"no truth for {', '.join(missing)}: pass truth= (a label file, a Truth or [[start_s, end_s], ...]) "
            "or put NAME.json / NAME.csv / NAME.txt next to each WAV"
        )
    return clips


def _progress(total: int, enabled: Any, desc: str) -> Any:
    if enabled is None or enabled is False:
        return None
    if enabled is not True:
        return enabled  # a tqdm-like bar made by the caller (on the caller's thread)
    try:
        from tqdm.auto import tqdm  # type: ignore[import-untyped]
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="session", leave=True)


async def sweep_async(
    wavs: Clip | str | Path | Sequence[Clip | str | Path],
    grid: Mapping[str, Sequence[Any]] | None = None,
    *,
    truth: Any = None,
    base: SessionConfig | Mapping[str, Any] | None = None,
    endpoint: str | None = None,
    api_key: str | None = None,
    backend: Backend | None = None,
    pace: Pace | None = None,
    concurrency: int | None = None,
    progress: Any = True,
    show_plan: bool = True,
    responses: bool = False,
    tail_ms: float | None = None,
    retry: RetryPolicy | None = None,
    seed: int | None = None,
    handle: SweepHandle | None = None,
    on_result: Callable[[ConfigRun, ReplayResult], None] | None = None,
    keep_events: bool = True,
    results: str | Path | None = None,
    resume: bool = True,
    eot_gap_ms: float = DEFAULT_EOT_GAP_MS,
    limits: QuotaLimits | None = None,
    limiter: QuotaLimiter | None = None,
    prices: Mapping[str, Any] | None = None,
) -> SweepResult:
    """Replay every configuration of ``grid`` over every clip; see the module doc.

    ``truth``: None (each clip's own: a WAV's sidecar label file), one truth for all clips, or a
    list with one per clip. ``handle`` lets another thread follow or cancel the sweep.
    ``results``: a directory for the results store (:mod:`voicelive_nb.lab.store`): every finished
    replay is kept there at once and, with ``resume`` (default), stored replays are reused.
    ``eot_gap_ms``: the end-of-turn gap for truths without turn ids (:mod:`voicelive_nb.lab.turns`).
    ``limits`` / ``limiter``: the quota scheduler (:mod:`voicelive_nb.lab.quota`); against a
    service one with the published defaults is always used. A refusal for a rate limit (HTTP 429,
    an error or close naming a rate limit) holds every worker for what it asked (its "retry
    after", else the ``retry`` policy's back-off) and then runs the replay again; the progress
    bar and ``handle.backoffs`` / ``handle.waiting`` show it.
    ``prices``: for the plan's cost estimate (:func:`~voicelive_nb.lab.quota.check_prices`).
    Every (configuration, clip) pair is one job of a single queue, so ``concurrency`` sessions
    run at once however few configurations there are.
    """
    clips = _as_clips(wavs, truth)
    base_cfg = as_config(base)
    grid_lists = {
        k: list(v) if isinstance(v, Iterable) and not isinstance(v, (str, bytes)) else [v]
        for k, v in (grid or {}).items()
    }
    configs = expand_grid(grid_lists, base_cfg)
    h = handle or SweepHandle()
    own_backend = backend is None
    be = backend or Backend(endpoint, api_key, pace=pace)
    if concurrency is None:
        concurrency = DEFAULT_SERVICE_CONCURRENCY if be.is_service else DEFAULT_EMULATOR_CONCURRENCY
    if concurrency < 1:
        raise ConfigError("concurrency", concurrency, "1 or more sessions at a time")
    quota = limiter or (QuotaLimiter(limits) if (limits is not None or be.is_service) else None)
    plan = _plan(
        configs,
        clips,
        be,
        concurrency,
        tail_ms,
        responses=responses,
        limits=quota.limits if quota else None,
        prices=prices,
    )
    # without a scheduler, a limiter that never limits still makes a back-off hold every worker
    backoff = quota or QuotaLimiter(QuotaLimits(connections=10**9, tokens=10**12))
    runs = [
        ConfigRun(i, knobs, cfg, [None] * len(clips), eot_gap_ms=eot_gap_ms)
        for i, (knobs, cfg) in enumerate(configs)
    ]
    result = SweepResult(runs, clips, plan, grid_lists)
    h.partial = result
    options: dict[str, Any] = {
        "responses": responses,
        "transcription": False,
        "tail_ms": tail_ms,
        "frame_ms": None,
        "settle_s": 3.0,
        "timeout_s": None,
        "keep_clip": True,
    }
    store = ResultStore(results) if results is not None else None
    endpoint_label = be.label
    api_version = str(be._api_version or "default")
    model = str(be._model or "default")
    audio_keys = [audio_hash(c) for c in clips]
    keys: dict[tuple[int, int], tuple[str, str]] = {}
    reused = 0
    all_jobs = [(ci, ki) for ci in range(len(runs)) for ki in range(len(clips))]
    jobs: deque[tuple[int, int]] = deque()
    for ci, ki in all_jobs:
        if store is None:
            jobs.append((ci, ki))
            continue
        chash = config_hash(runs[ci].config, {**options, "pace": be.pace})
        key = run_key(audio_keys[ki], chash, endpoint_label, api_version, model)
        keys[(ci, ki)] = (key, chash)
        stored = store.get(key, clips[ki]) if resume else None
        if stored is None:
            jobs.append((ci, ki))
        else:
            runs[ci].replays[ki] = stored
            runs[ci].reused += 1
            reused += 1
    plan = dataclasses.replace(plan, reused=reused)
    result.plan = plan
    h.plan = plan
    if show_plan:
        print(plan.describe(), flush=True)
    h.total_jobs = len(all_jobs)
    h.done_jobs = reused
    rng = random.Random(seed)
    policy = retry or RetryPolicy()
    no_retry = RetryPolicy(max_retries=0)
    bar = _progress(len(all_jobs), progress, f"sweep on {plan.target}")
    best_f1: list[float] = []
    postfix: dict[str, str] = {}
    if reused:
        postfix["reused"] = str(reused)
    if bar is not None and reused:
        bar.update(reused)
        bar.set_postfix(postfix, refresh=True)

    def show_wait(delay: float, why: str) -> None:
        h.waiting = f"{delay:.1f} s ({why})"
        if bar is not None:
            postfix["waiting"] = h.waiting
            bar.set_postfix(postfix, refresh=True)

    backoff.on_wait = show_wait
    started = time.monotonic()

    async def replay_job(run: ConfigRun, clip: Clip) -> ReplayResult:
        tokens = estimate_tokens(
            clip.duration_s + _tail_ms(run.config, tail_ms) / 1000.0, 1 if responses else 0
        )
        attempt = 0
        while True:
            await backoff.acquire(tokens if quota is not None else 0)
            h.waiting = ""
            postfix.pop("waiting", None)
            try:
                replayed = await replay_with_retries(be, clip, run.config, clip.truth, options, no_retry, rng)
            except Exception as exc:
                if not is_rate_limited(exc) or attempt >= policy.max_retries:
                    raise
                asked = retry_after_s(exc)
                delay = asked if asked is not None else policy.delay_s(attempt, rng)
                backoff.pause(delay)  # every worker holds, not just this one
                h.backoffs += 1
                postfix["backoffs"] = str(h.backoffs)
                log.warning(
                    "rate limited (%s); every worker holds %.1f s, then retry %d", exc, delay, attempt + 1
                )
                attempt += 1
                continue
            replayed.retries = attempt
            pause = rate_limit_pause_s(replayed.events)
            if pause:
                backoff.pause(pause)
                h.backoffs += 1
                postfix["backoffs"] = str(h.backoffs)
            return replayed

    async def worker() -> None:
        while jobs and not h.cancelled:
            ci, ki = jobs.popleft()
            run, clip = runs[ci], clips[ki]
            h.in_flight += 1
            h.peak_in_flight = max(h.peak_in_flight, h.in_flight)
            try:
                replayed = await replay_job(run, clip)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                h.in_flight -= 1
                if h.cancelled:
                    break
                run.errors.append(f"{clip.name}: {type(exc).__name__}: {exc}")
            else:
                h.in_flight -= 1
                if h.cancelled:
                    # finished although the sweep was cancelled meanwhile (a cancellation can be
                    # swallowed by a wait that completed at the same moment): in flight, dropped
                    break
                if store is not None:
                    key, chash = keys[(ci, ki)]
                    store.put(
                        key,
                        replayed,
                        audio=audio_keys[ki],
                        config=chash,
                        endpoint=endpoint_label,
                        api_version=api_version,
                        model=model,
                        knobs=_jsonable(run.knobs),
                    )
                if not keep_events:
                    replayed.events = []
                run.replays[ki] = replayed
                if on_result is not None:
                    on_result(run, replayed)
            h.done_jobs += 1
            if bar is not None:
                if run.complete and run.score is not None:
                    best_f1.append(run.score.f1)
                    postfix["best_f1"] = f"{max(best_f1):.3f}"
                bar.set_postfix(postfix, refresh=False)
                bar.update(1)

    try:
        if own_backend:
            await be.start()
        workers = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, len(jobs)))]
        h._attach(asyncio.get_running_loop(), workers)
        try:
            if workers:
                await asyncio.wait(workers)
        except asyncio.CancelledError:
            h._cancel.set()
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        for w in workers:
            failure = None if w.cancelled() else w.exception()
            if failure is not None:  # e.g. an on_result callback raised: never silent
                raise failure
    finally:
        result.cancelled = h.cancelled
        result.wall_s = time.monotonic() - started
        if bar is not None:
            bar.close()
        if store is not None:
            store.close()
        if own_backend:
            await be.stop()
    return result


def plan_sweep(
    wavs: Clip | str | Path | Sequence[Clip | str | Path],
    grid: Mapping[str, Sequence[Any]] | None = None,
    *,
    truth: Any = None,
    base: SessionConfig | Mapping[str, Any] | None = None,
    endpoint: str | None = None,
    backend: Backend | None = None,
    pace: Pace | None = None,
    concurrency: int | None = None,
    tail_ms: float | None = None,
    responses: bool = False,
    results: str | Path | None = None,
    resume: bool = True,
    limits: QuotaLimits | None = None,
    prices: Mapping[str, Any] | None = None,
) -> SweepPlan:
    """What :func:`sweep` would send, without sending anything (with ``results``: how many
    sessions the results store already has): audio seconds, connections, estimated tokens,
    the least wall time the quota allows, and the cost at ``prices`` (unknown without)."""
    clips = _as_clips(wavs, truth)
    configs = expand_grid(grid or {}, as_config(base))
    be = backend or Backend(endpoint, pace=pace)
    if concurrency is None:
        concurrency = DEFAULT_SERVICE_CONCURRENCY if be.is_service else DEFAULT_EMULATOR_CONCURRENCY
    lim = limits if limits is not None else (QuotaLimits() if be.is_service else None)
    plan = _plan(configs, clips, be, concurrency, tail_ms, responses=responses, limits=lim, prices=prices)
    if results is None or not resume:
        return plan
    options = {"responses": responses, "tail_ms": tail_ms, "pace": be.pace, "transcription": False}
    audio_keys = [audio_hash(c) for c in clips]
    api_version, model = str(be._api_version or "default"), str(be._model or "default")
    with ResultStore(results) as store:
        reused = sum(
            store.has(run_key(a, config_hash(cfg, options), be.label, api_version, model))
            for _, cfg in configs
            for a in audio_keys
        )
    return dataclasses.replace(plan, reused=reused)


def start_sweep(
    wavs: Clip | str | Path | Sequence[Clip | str | Path],
    grid: Mapping[str, Sequence[Any]] | None = None,
    **options: Any,
) -> SweepHandle:
    """Start a sweep on the engine thread and return at once; ``handle.cancel()`` stops it,
    ``handle.result(timeout)`` waits for it. Options as :func:`sweep_async`."""
    from ..engine import get_engine

    handle = options.pop("handle", None) or SweepHandle()
    # clips, plan and progress bar are made here, on the caller's thread, so that what they
    # print or display lands in the caller's cell and not in whichever cell runs later
    clips = _as_clips(wavs, options.pop("truth", None))
    if options.pop("show_plan", True):
        plan = plan_sweep(
            clips,
            grid,
            base=options.get("base"),
            endpoint=options.get("endpoint"),
            backend=options.get("backend"),
            pace=options.get("pace"),
            concurrency=options.get("concurrency"),
            tail_ms=options.get("tail_ms"),
            responses=options.get("responses", False),
            results=options.get("results"),
            resume=options.get("resume", True),
            limits=options.get("limits") or (options["limiter"].limits if options.get("limiter") else None),
            prices=options.get("prices"),
        )
        print(plan.describe(), flush=True)
    progress = options.pop("progress", True)
    if progress is True:
        backend = options.get("backend")
        label = (
            backend.label
            if backend is not None
            else Backend(options.get("endpoint"), pace=options.get("pace")).label
        )
        total = len(clips) * len(expand_grid(grid or {}, as_config(options.get("base"))))
        progress = _progress(total, True, f"sweep on {label}") or False
    coro = sweep_async(clips, grid, handle=handle, show_plan=False, progress=progress, **options)
    handle._future = get_engine().submit(coro)
    return handle


def sweep(
    wavs: Clip | str | Path | Sequence[Clip | str | Path],
    grid: Mapping[str, Sequence[Any]] | None = None,
    *,
    timeout: float | None = None,
    **options: Any,
) -> SweepResult:
    """Blocking sweep (runs on the engine thread, works in scripts and notebook cells).

    Ctrl-C (or the notebook's interrupt) cancels it and returns the partial result.
    Options as :func:`sweep_async`.
    """
    return start_sweep(wavs, grid, **options).result(timeout)
