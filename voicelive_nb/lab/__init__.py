"""The VAD lab: replay recordings through a session and tune turn detection against the truth.

* :func:`replay` / :func:`replay_async`: one recording, one configuration → the events, the
  service's speech spans, turns with latencies, and a score when the truth is known.
* :func:`sweep` / :func:`sweep_async` / :func:`start_sweep`: a grid of configurations over
  recordings, ranked; ``result.best()`` goes straight into ``session.update``.
* :class:`VadLab`: sliders for the knobs that re-run the replay and redraw the overlay.
* :mod:`~voicelive_nb.lab.testsets`: speech with known pauses, noise at an SNR, inserted
  pauses, concatenation — each with its truth.
* :mod:`~voicelive_nb.lab.truth`: label files (JSON, CSV, Audacity, Praat TextGrid, RTTM) and
  reference VAD runs.
* :mod:`~voicelive_nb.lab.turns`: end-of-turn metrics — false cut-offs in holds, latency after
  the end of turn, budgets, the Pareto frontier, the silence-only baseline.
* :mod:`~voicelive_nb.lab.store`: finished replays kept in SQLite (``sweep(..., results=DIR)``),
  so a sweep resumes instead of starting over.
* :mod:`~voicelive_nb.lab.quota`: new connections and tokens per minute kept within budget.
* :mod:`~voicelive_nb.lab.barge_in`: :func:`barge_in_lab` — scripted interruptions, backchannels
  and noises over the assistant's replies in an echoing room, compared across echo cancellation
  conditions (false and missed barge-ins, stop time, truncate error, audio lost).

How the service's spans are mapped onto the truth, and what each score means, is documented
in :mod:`voicelive_nb.analysis.vad_scoring`.
"""

from __future__ import annotations

from typing import Any

from ..analysis.vad_scoring import BoundaryMapping, VadScore, score_turns
from .barge_in import (
    CONDITIONS,
    BargeInResult,
    Condition,
    Cue,
    barge_in_lab,
    default_script,
    no_speech_script,
)
from .quota import QuotaLimiter, QuotaLimits
from .replay import EMULATOR, Backend, RateLimited, ReplayResult, RetryPolicy, Turn, replay, replay_async
from .store import ResultStore
from .sweep import ConfigRun, SweepHandle, SweepPlan, SweepResult, plan_sweep, start_sweep, sweep, sweep_async
from .testsets import Clip, concat, excerpt, insert_pause, mix_noise, silence_clip, speech_clip, with_gain
from .truth import Truth, find_truth, load_truth, parse_truth, reference_truth, save_truth
from .turns import TurnScore, budget_figures, label_pauses, pareto_frontier, score_stops, silence_baseline

__all__ = [
    "CONDITIONS",
    "EMULATOR",
    "Backend",
    "BargeInResult",
    "BoundaryMapping",
    "Clip",
    "Condition",
    "ConfigRun",
    "Cue",
    "QuotaLimiter",
    "QuotaLimits",
    "RateLimited",
    "ReplayResult",
    "ResultStore",
    "RetryPolicy",
    "SweepHandle",
    "SweepPlan",
    "SweepResult",
    "Truth",
    "Turn",
    "TurnScore",
    "VadLab",
    "VadScore",
    "barge_in_lab",
    "budget_figures",
    "concat",
    "default_script",
    "excerpt",
    "find_truth",
    "insert_pause",
    "label_pauses",
    "load_truth",
    "mix_noise",
    "no_speech_script",
    "pareto_frontier",
    "parse_truth",
    "plan_sweep",
    "reference_truth",
    "replay",
    "replay_async",
    "save_truth",
    "score_stops",
    "score_turns",
    "silence_baseline",
    "silence_clip",
    "speech_clip",
    "start_sweep",
    "sweep",
    "sweep_async",
    "with_gain",
]


def __getattr__(name: str) -> Any:
    if name == "VadLab":  # ipywidgets is imported only when the widget is wanted
        from .widget import VadLab

        return VadLab
    raise AttributeError(f"module 'voicelive_nb.lab' has no attribute {name!r}")
