"""The VAD lab's figures moved to :mod:`voicelive_nb.lab.figures` (the lab owns them); re-exported here."""

from __future__ import annotations

from ..lab.figures import (
    LabFigure,
    ReplayView,
    SweepView,
    plot_eot_frontier,
    plot_replay,
    plot_sweep_heatmap,
    plot_sweep_timelines,
    plot_timelines,
    plot_turn_scatter,
)

__all__ = [
    "LabFigure",
    "ReplayView",
    "SweepView",
    "plot_eot_frontier",
    "plot_replay",
    "plot_sweep_heatmap",
    "plot_sweep_timelines",
    "plot_timelines",
    "plot_turn_scatter",
]
