"""Moved: the VAD lab's figures live in :mod:`voicelive_nb.lab.figures` (issue #12).

The names of ``MOVED_NAMES`` are still importable from here, each with a ``DeprecationWarning`` that
names the new path; this module is removed in voicelive_nb 0.2 (see :mod:`voicelive_nb.moved`).
New code imports :mod:`voicelive_nb.lab.figures`.
"""

from __future__ import annotations

from typing import Any

from ..lab import figures as _new
from ..moved import forward

#: The names that moved (importable from here with a warning until the module goes).
MOVED_NAMES = (
    "LabFigure",
    "ReplayView",
    "SweepView",
    "plot_eot_frontier",
    "plot_replay",
    "plot_sweep_heatmap",
    "plot_sweep_timelines",
    "plot_timelines",
    "plot_turn_scatter",
)


def __getattr__(name: str) -> Any:
    if name not in MOVED_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return forward(__name__, _new, name)
