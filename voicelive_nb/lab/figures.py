"""Figures of the VAD lab (matplotlib, no pyplot state; safe to draw on any thread).

The lab owns its figures (this module was ``voicelive_nb.plots.lab_figures``, which still
re-exports it). It reads results through :class:`ReplayView` and :class:`SweepView`
(protocols) rather than importing :mod:`.replay` and :mod:`.sweep`, whose ``plot()``
methods import this module: so there is no import cycle, not even a type-only one.

* :func:`plot_replay`: one replay — the waveform, the truth, the service's spans as reported
  (light: prefix padding and silence window included) and mapped onto speech (solid).
* :func:`plot_timelines`: several replays of one clip stacked against the truth.
* :func:`plot_sweep_timelines`: the same for chosen configurations of a sweep.
* :func:`plot_sweep_heatmap`: F1 and a boundary error over two knobs of a sweep (when other
  knobs vary too, each cell shows the best configuration for that pair).
* :func:`plot_eot_frontier`: false cut-offs against latency after the end of turn, every
  configuration, the Pareto frontier, the silence-only baseline and the chosen configuration.
* :func:`plot_turn_scatter`: per configuration, false cut-off rate and latency (p50 to p90).

Every function returns a :class:`LabFigure`, a matplotlib Figure that shows itself inline in
Jupyter (``_repr_png_``) and has :meth:`LabFigure.to_png` for image widgets.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from ..errors import InvalidValue, OptionalDependencyMissing, VoiceLiveError
from .truth import Truth

try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
except ImportError as exc:  # pragma: no cover - matplotlib is in the notebook extra
    raise OptionalDependencyMissing("VAD lab figures", "matplotlib", "notebook") from exc

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


class ReplayView(Protocol):
    """What the figures read of a :class:`~voicelive_nb.lab.replay.ReplayResult`."""

    @property
    def name(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def config(self) -> Any: ...
    @property
    def clip(self) -> Any: ...
    @property
    def truth(self) -> Truth | None: ...
    @property
    def turns(self) -> Sequence[Any]: ...
    @property
    def score(self) -> Any: ...
    @property
    def audio_ms(self) -> float: ...
    @property
    def tail_ms(self) -> float: ...


class SweepView(Protocol):
    """What the figures read of a :class:`~voicelive_nb.lab.sweep.SweepResult`."""

    @property
    def runs(self) -> Sequence[Any]: ...
    @property
    def clips(self) -> Sequence[Any]: ...
    @property
    def grid(self) -> Any: ...
    def ranked(self, metric: str = "f1") -> Sequence[Any]: ...
    def best_run(self, metric: str = "f1") -> Any: ...
    def turn_rows(self) -> list[dict[str, Any]]: ...
    def baseline(self) -> Any: ...
    def chosen_eot(self, cutoff_budget: float = 0.05) -> int | None: ...


TRUTH_COLOR = "#2ca02c"
RAW_COLOR = "#ffbf80"
SPEECH_COLOR = "#e6550d"
ENVELOPE_POINTS = 2000

#: Metrics where higher is better (the rest are errors or counts: lower, by absolute value, is better).
HIGHER_IS_BETTER = ("f1", "precision", "recall", "matched")


class LabFigure(Figure):
    """A Figure with its own Agg canvas that shows itself inline (``_repr_png_``), without pyplot."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        FigureCanvasAgg(self)

    def _repr_png_(self) -> bytes:
        return self.to_png()

    def to_png(self, dpi: float | None = None) -> bytes:
        """The figure as PNG bytes."""
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=dpi if dpi is not None else "figure")
        return buffer.getvalue()


# ---------------------------------------------------------------------------------- drawing helpers


def _envelope(pcm16: bytes, sample_rate: int, points: int = ENVELOPE_POINTS) -> tuple[Any, Any, Any]:
    x = np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0
    if x.size == 0:
        return np.zeros(1), np.zeros(1), np.zeros(1)
    buckets = max(1, min(points, x.size))
    size = x.size // buckets
    trimmed = x[: size * buckets].reshape(buckets, size)
    t = (np.arange(buckets) + 0.5) * size / sample_rate
    return t, trimmed.min(axis=1), trimmed.max(axis=1)


def _draw_waveform(ax: Any, result: ReplayView | None, truth: Truth | None, end_s: float) -> None:
    clip = result.clip if result is not None else None
    if clip is not None:
        t, lo, hi = _envelope(clip.pcm16, clip.sample_rate)
        ax.fill_between(t, lo, hi, color="#555555", linewidth=0, step="mid")
        peak = max(float(np.max(np.abs(np.concatenate([lo, hi])))), 1e-3)
        ax.set_ylim(-peak * 1.05, peak * 1.05)
    else:
        ax.text(0.5, 0.5, "(audio not kept)", transform=ax.transAxes, ha="center", va="center", color="gray")
    if truth is not None:
        for a, b in truth.spans_s:
            ax.axvspan(a, b, color=TRUTH_COLOR, alpha=0.15, linewidth=0)
    ax.set_yticks([])
    ax.set_ylabel("audio", rotation=0, ha="right", va="center")
    ax.set_xlim(0, end_s)


def _draw_lane(ax: Any, y: float, result: ReplayView, show_raw: bool) -> None:
    end_s = (result.audio_ms + result.tail_ms) / 1000.0
    for turn in result.turns:
        if show_raw:
            raw_end = turn.audio_end_ms if turn.audio_end_ms is not None else result.audio_ms + result.tail_ms
            ax.broken_barh(
                [(turn.audio_start_ms / 1000.0, (raw_end - turn.audio_start_ms) / 1000.0)],
                (y - 0.35, 0.7),
                facecolors=RAW_COLOR,
                edgecolors="white",
                linewidth=1.0,
            )
        width = max((turn.speech_end_ms - turn.speech_start_ms) / 1000.0, 0.005)
        ax.broken_barh(
            [(turn.speech_start_ms / 1000.0, width)],
            (y - 0.2, 0.4),
            facecolors=SPEECH_COLOR,
            edgecolors="none",
            hatch="//" if turn.open else None,
        )
        if turn.start_clamped:
            ax.plot([turn.speech_start_ms / 1000.0], [y + 0.3], marker="v", color=SPEECH_COLOR, markersize=4)
    ax.set_xlim(0, end_s)


def _draw_truth_lane(ax: Any, y: float, truth: Truth) -> None:
    ax.broken_barh(
        [(a, b - a) for a, b in truth.spans_s], (y - 0.2, 0.4), facecolors=TRUTH_COLOR, edgecolors="none"
    )


def _legend(ax: Any, show_raw: bool) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=TRUTH_COLOR, label="truth"), Patch(color=SPEECH_COLOR, label="turn (mapped)")]
    if show_raw:
        handles.insert(1, Patch(color=RAW_COLOR, label="turn as reported"))
    ax.legend(handles=handles, loc="upper right", fontsize="x-small", ncols=len(handles), frameon=False)


def _score_text(result: ReplayView) -> str:
    if result.score is None:
        return f"{len(result.turns)} turns"
    s = result.score
    text = f"F1 {s.f1:.2f}  P {s.precision:.2f}  R {s.recall:.2f}"
    if s.start_error_ms_median is not None and s.end_error_ms_median is not None:
        text += f"  start {s.start_error_ms_median:+.0f} ms  end {s.end_error_ms_median:+.0f} ms"
    mistakes = [
        f"{n} {label}"
        for n, label in (
            (s.false_starts, "false"),
            (s.cut_offs, "cut"),
            (s.merged, "merged"),
            (s.missed, "missed"),
        )
        if n
    ]
    return text + ("  (" + ", ".join(mistakes) + ")" if mistakes else "")


def _knob_text(config: Any) -> str:
    td = config.to_dict().get("turn_detection") or {}
    parts = [str(td.get("type", "?"))]
    for key, label in (("threshold", "thr"), ("prefix_padding_ms", "pad"), ("silence_duration_ms", "sil")):
        if key in td:
            parts.append(f"{label} {td[key]}")
    nr = config.to_dict().get("input_audio_noise_reduction")
    if nr:
        parts.append("NS")
    return " ".join(parts)


# ---------------------------------------------------------------------------------- public figures


def plot_replay(
    result: ReplayView,
    *,
    truth: Truth | None = None,
    title: str | None = None,
    show_raw: bool = True,
    figsize: tuple[float, float] = (10.0, 3.0),
    dpi: float = 100,
) -> Any:
    """One replay: waveform with truth shading, truth lane, and the turns (reported and mapped)."""
    t = truth or result.truth
    fig = LabFigure(figsize=figsize, dpi=dpi, layout="constrained")
    wave_ax, lane_ax = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1.3))
    end_s = (result.audio_ms + result.tail_ms) / 1000.0
    _draw_waveform(wave_ax, result, t, end_s)
    lanes = ["service"]
    _draw_lane(lane_ax, 0, result, show_raw)
    if t is not None:
        _draw_truth_lane(lane_ax, 1, t)
        lanes.append("truth")
    lane_ax.set_yticks(range(len(lanes)), lanes)
    lane_ax.set_ylim(-0.6, len(lanes) - 0.4)
    lane_ax.set_xlabel("input audio time (s)")
    _legend(wave_ax, show_raw)
    head = title or f"{result.name} on {result.target} — {_knob_text(result.config)}"
    wave_ax.set_title(f"{head}\n{_score_text(result)}", fontsize="small", loc="left")
    return fig


def plot_timelines(
    results: Sequence[ReplayView],
    *,
    labels: Sequence[str] | None = None,
    truth: Truth | None = None,
    title: str | None = None,
    show_raw: bool = True,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
) -> Any:
    """Replays of one clip (e.g. one per configuration) stacked under its waveform and truth."""
    if not results:
        raise InvalidValue("plot_timelines needs at least one replay")
    t = truth or results[0].truth
    names = list(labels) if labels is not None else [_knob_text(r.config) for r in results]
    if len(names) != len(results):
        raise InvalidValue(f"got {len(names)} labels for {len(results)} replays")
    rows = len(results) + (1 if t is not None else 0)
    size = figsize or (10.0, 1.6 + 0.45 * rows)
    fig = LabFigure(figsize=size, dpi=dpi, layout="constrained")
    wave_ax, lane_ax = fig.subplots(2, 1, sharex=True, height_ratios=(1.6, 0.45 * rows))
    end_s = max((r.audio_ms + r.tail_ms) / 1000.0 for r in results)
    _draw_waveform(wave_ax, results[0], t, end_s)
    ticks: list[str] = []
    y = 0
    for result, name in zip(reversed(results), reversed(names), strict=True):
        _draw_lane(lane_ax, y, result, show_raw)
        score = f"  F1 {result.score.f1:.2f}" if result.score is not None else ""
        ticks.append(f"{name}{score}")
        y += 1
    if t is not None:
        _draw_truth_lane(lane_ax, y, t)
        ticks.append("truth")
    lane_ax.set_yticks(range(len(ticks)), ticks, fontsize="small")
    lane_ax.set_ylim(-0.6, len(ticks) - 0.4)
    lane_ax.set_xlim(0, end_s)
    lane_ax.set_xlabel("input audio time (s)")
    _legend(wave_ax, show_raw)
    wave_ax.set_title(title or f"{results[0].name}: turns by configuration", fontsize="small", loc="left")
    return fig


def plot_sweep_timelines(
    result: SweepView,
    configs: Sequence[int] | None = None,
    *,
    clip: int = 0,
    metric: str = "f1",
    top: int = 3,
    **kwargs: Any,
) -> Any:
    """Timelines of chosen configurations (indices; default the ``top`` best) on clip ``clip``."""
    chosen = list(configs) if configs is not None else [run.index for run in result.ranked(metric)[:top]]
    replays = []
    labels = []
    for index in chosen:
        run = result.runs[index]
        replayed = run.replays[clip]
        if replayed is None:
            continue
        replays.append(replayed)
        knobs = ", ".join(f"{k}={v}" for k, v in run.knobs.items())
        labels.append(f"#{index} {knobs}" if knobs else f"#{index}")
    if not replays:
        raise InvalidValue("none of the chosen configurations was replayed on that clip")
    kwargs.setdefault("title", f"{result.clips[clip].name}: chosen configurations against the truth")
    return plot_timelines(replays, labels=labels, **kwargs)


def _cell_value(runs: Sequence[Any], metric: str) -> float | None:
    values = []
    for run in runs:
        score = run.score
        if score is None or not run.complete:
            continue
        value = score.summary().get(metric)
        if value is not None:
            values.append(float(value))
    if not values:
        return None
    if metric in HIGHER_IS_BETTER:
        return max(values)
    return min(values, key=abs)


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def plot_sweep_heatmap(
    result: SweepView,
    x: str,
    y: str,
    *,
    metrics: Sequence[str] = ("f1", "end_error_ms_median"),
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
    annotate: bool = True,
    best_metric: str = "f1",
) -> Any:
    """One heatmap per metric over grid knobs ``x`` and ``y`` (F1 and median end error by default).

    The cell of the best configuration (:meth:`~voicelive_nb.lab.sweep.SweepResult.best_run` by ``best_metric``) is
    outlined in red in every panel.

    Each cell is the best value among the configurations with that pair of values (other knobs
    may vary): the highest for F1/precision/recall, the smallest in absolute value for errors and
    counts. Empty cells (cancelled, failed) are blank.
    """
    for knob in (x, y):
        if knob not in result.grid:
            raise InvalidValue(
                f"{knob!r} is not a knob of this sweep; knobs: {', '.join(result.grid) or 'none'}"
            )
    xs, ys = result.grid[x], result.grid[y]
    best_cell: tuple[int, int] | None = None
    try:
        best = result.best_run(best_metric)
    except VoiceLiveError:  # nothing complete (cancelled, failed): no cell to mark
        best = None
    if best is not None and best.knobs.get(x) in xs and best.knobs.get(y) in ys:
        best_cell = (xs.index(best.knobs[x]), ys.index(best.knobs[y]))
    size = figsize or (4.2 * len(metrics) + 0.5, 0.5 * len(ys) + 2.2)
    fig = LabFigure(figsize=size, dpi=dpi, layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        grid = np.full((len(ys), len(xs)), np.nan)
        for yi, yv in enumerate(ys):
            for xi, xv in enumerate(xs):
                cell = [run for run in result.runs if run.knobs.get(x) == xv and run.knobs.get(y) == yv]
                value = _cell_value(cell, metric)
                if value is not None:
                    grid[yi, xi] = value
        higher = metric in HIGHER_IS_BETTER
        shown = grid if higher else np.abs(grid)
        cmap = "viridis" if higher else "viridis_r"
        finite = shown[np.isfinite(shown)]
        vmin, vmax = (
            (0.0, 1.0)
            if metric in ("f1", "precision", "recall")
            else ((float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0))
        )
        if vmin == vmax:
            vmax = vmin + 1.0
        image = ax.imshow(shown, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", origin="lower")
        ax.set_xticks(range(len(xs)), [_fmt(v) for v in xs])
        ax.set_yticks(range(len(ys)), [_fmt(v) for v in ys])
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        label = f"|{metric}|" if metric.endswith("_median") else metric  # signed: coloured by size
        ax.set_title(label, fontsize="small")
        fig.colorbar(image, ax=ax, shrink=0.85)
        if annotate:
            for yi in range(len(ys)):
                for xi in range(len(xs)):
                    value = grid[yi, xi]
                    if math.isnan(value):
                        continue
                    text = f"{value:.2f}" if higher and metric != "matched" else f"{value:.0f}"
                    norm = (shown[yi, xi] - vmin) / (vmax - vmin)
                    dark = norm < 0.5 if higher else norm > 0.5
                    ax.text(
                        xi,
                        yi,
                        text,
                        ha="center",
                        va="center",
                        fontsize="x-small",
                        color="white" if dark else "black",
                    )
        if best_cell is not None:
            ax.add_patch(
                Rectangle(
                    (best_cell[0] - 0.5, best_cell[1] - 0.5),
                    1.0,
                    1.0,
                    fill=False,
                    edgecolor="#d62728",
                    linewidth=2.5,
                    gid="best-cell",
                )
            )
    others = [k for k in result.grid if k not in (x, y)]
    note = f" (best over {', '.join(others)})" if others else ""
    marked = ""
    if best is not None and best_cell is not None:
        knobs = ", ".join(f"{k}={_fmt(v)}" for k, v in best.knobs.items())
        marked = f"; red box: the best configuration by {best_metric} ({knobs})"
    fig.suptitle(f"sweep over {len(result.clips)} clip(s){note}{marked}", fontsize="small")
    return fig


# ---------------------------------------------------------------------------------- end of turn


def _knob_label(row: dict[str, Any], knobs: Sequence[str]) -> str:
    return ", ".join(f"{k}={_fmt(row[k])}" for k in knobs if k in row)


def plot_eot_frontier(
    result: SweepView,
    *,
    chosen: int | None = None,
    cutoff_budget: float = 0.05,
    baseline: bool = True,
    figsize: tuple[float, float] = (6.4, 4.2),
    dpi: float = 100,
) -> Any:
    """False cut-off rate (y) against p50 latency after the end of turn (x): every complete
    configuration (grey), the Pareto frontier (line), the silence-only baseline over the same
    truth (dashed) and ``chosen`` (default :meth:`~voicelive_nb.lab.sweep.SweepResult.chosen_eot` at ``cutoff_budget``)
    as a red star. Point artists carry gids ``config-N``, ``frontier``, ``baseline``, ``chosen``."""
    rows = [
        r
        for r in result.turn_rows()
        if r["latency_ms_p50"] is not None and r["false_cutoff_rate"] is not None
    ]
    pick = chosen if chosen is not None else result.chosen_eot(cutoff_budget)
    fig = LabFigure(figsize=figsize, dpi=dpi, layout="constrained")
    ax = fig.subplots()
    for r in rows:
        ax.scatter(
            [r["latency_ms_p50"]],
            [r["false_cutoff_rate"] * 100],
            color="#999999",
            s=22,
            zorder=2,
            gid=f"config-{r['config']}",
        )
    front = [r for r in rows if r["frontier"]]
    front.sort(key=lambda r: r["latency_ms_p50"])
    if front:
        ax.plot(
            [r["latency_ms_p50"] for r in front],
            [r["false_cutoff_rate"] * 100 for r in front],
            "-o",
            color="#1f77b4",
            label="Pareto frontier",
            zorder=3,
            gid="frontier",
        )
    if baseline:
        curve = [
            p
            for p in result.baseline().curve()
            if p["false_cutoff_rate"] is not None and p["latency_ms_p50"] is not None
        ]
        if curve:
            ax.step(
                [p["latency_ms_p50"] for p in curve],
                [p["false_cutoff_rate"] * 100 for p in curve],
                where="post",
                linestyle="--",
                color="#7f7f7f",
                label="silence only (truth)",
                gid="baseline",
            )
    knobs = list(result.grid)
    if pick is not None:
        row = next((r for r in rows if r["config"] == pick), None)
        if row is not None:
            ax.scatter(
                [row["latency_ms_p50"]],
                [row["false_cutoff_rate"] * 100],
                marker="*",
                s=220,
                color="#d62728",
                zorder=4,
                label=f"chosen: {_knob_label(row, knobs)}",
                gid="chosen",
            )
    if rows:
        top = max(r["latency_ms_p50"] for r in rows)
        ax.set_xlim(0, max(top * 1.15, 1100))
    ax.set_ylim(-2, 102)
    for budget in (300, 600, 1000):
        ax.axvline(budget, color="#dddddd", linewidth=0.8, zorder=1)
    ax.axhline(cutoff_budget * 100, color="#dddddd", linewidth=0.8, zorder=1)
    ax.set_xlabel("latency after the end of turn, p50 (ms)")
    ax.set_ylabel("false cut-offs in holds (%)")
    ax.set_title(
        f"end of turn: {len(rows)} configurations over {len(result.clips)} clip(s)", fontsize="small"
    )
    if rows or baseline:
        ax.legend(fontsize="x-small", loc="upper right")
    return fig


def plot_turn_scatter(
    result: SweepView,
    *,
    figsize: tuple[float, float] = (6.4, 4.2),
    dpi: float = 100,
    annotate: bool = True,
) -> Any:
    """Per configuration: false cut-off rate against latency, a bar from p50 to p90, each point
    labelled with its configuration number (the knobs are in :meth:`~voicelive_nb.lab.sweep.SweepResult.turn_frame`)."""
    rows = [
        r
        for r in result.turn_rows()
        if r["latency_ms_p50"] is not None and r["false_cutoff_rate"] is not None
    ]
    fig = LabFigure(figsize=figsize, dpi=dpi, layout="constrained")
    ax = fig.subplots()
    for r in rows:
        y = r["false_cutoff_rate"] * 100
        p90 = r["latency_ms_p90"] if r["latency_ms_p90"] is not None else r["latency_ms_p50"]
        ax.plot([r["latency_ms_p50"], p90], [y, y], color="#9ecae1", linewidth=2, zorder=1)
        ax.scatter(
            [r["latency_ms_p50"]],
            [y],
            color="#1f77b4" if r["frontier"] else "#999999",
            s=26,
            zorder=2,
            gid=f"config-{r['config']}",
        )
        if annotate:
            ax.annotate(
                str(r["config"]),
                (r["latency_ms_p50"], y),
                textcoords="offset points",
                xytext=(3, 3),
                fontsize="x-small",
            )
    ax.set_xlabel("latency after the end of turn (ms): dot p50, bar to p90")
    ax.set_ylabel("false cut-offs in holds (%)")
    ax.set_title("per configuration (blue: on the frontier)", fontsize="small")
    return fig
