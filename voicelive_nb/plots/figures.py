"""Figures people keep: the session timeline and VAD plots, drawn with matplotlib's object API.

::

    plot_session("runs/2024-06-01")       # a recording directory (or a Recording)
    plot_session(notebook_session)        # a NotebookSession (live or stopped) or a Session

No pyplot global state is used: each call makes a :class:`SessionFigure` (a
:class:`matplotlib.figure.Figure` with an Agg canvas) that displays inline in Jupyter through
``_repr_png_``. Output is deterministic (no random ids; PNG, which nbval does not compare).

Where the data comes from, best first:

1. a recording (``Recorder.load``): waveforms from ``mic.wav`` / ``assistant.wav``, times from
   ``events.jsonl`` including every input block — the full picture;
2. a :class:`~voicelive_nb.widgets.live.SessionMonitor` attached to the session (a
   :class:`~voicelive_nb.widgets.live.LiveView` has one): input-block times from its taps and
   bounded audio from its :class:`~voicelive_nb.analysis.meters.AudioHistory`;
3. the session's own events only (``Session.timed_events()``): no waveform, and times on the
   axis are estimated (the title says so).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter, MultipleLocator

from ..analysis.meters import as_int16, envelope, place_segments
from ..analysis.timeline import TOOL_FAILED_STATUSES, Timeline, format_clock, recorded_output_items
from ..errors import InvalidType, InvalidValue

__all__ = ["SessionFigure", "plot_session", "plot_vad"]

MIC_COLOR = "#1f77b4"
ASSISTANT_COLOR = "#ff7f0e"
VAD_COLOR = "#2ca02c"
RESPONSE_COLOR = "#9467bd"
CANCELLED_COLOR = "#d62728"
BARGE_COLOR = "#d62728"
LATENCY_COLOR = "#555555"
TRUTH_COLOR = "#7f7f7f"
TOOL_COLOR = "#00897b"
TOOL_FAILED_COLOR = "#c62828"
#: Tool-call statuses drawn as a failure.
TOOL_FAILURES = TOOL_FAILED_STATUSES
#: Buckets of the min/max envelope drawn for a waveform (the line zigzags min → max per bucket).
WAVEFORM_POINTS = 3000
#: Received audio not played for less than this (a rounding of the play-out model) is not drawn.
UNPLAYED_MIN_S = 0.02


class SessionFigure(Figure):
    """A Figure with an Agg canvas that shows itself inline (``_repr_png_``), without pyplot."""

    #: The timeline this figure draws (set by :func:`plot_session`): check a figure's data with it.
    timeline: Timeline | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        FigureCanvasAgg(self)

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png")
        return buffer.getvalue()

    def to_png(self, dpi: float | None = None) -> bytes:
        """The figure as PNG bytes."""
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=dpi if dpi is not None else "figure")
        return buffer.getvalue()


# ---------------------------------------------------------------------------------- gathering


@dataclass
class _Data:
    timeline: Timeline
    mic: list[tuple[float, bytes]] | None
    assistant: list[tuple[float, bytes]] | None
    input_rate: int
    output_rate: int
    origin: str  #: where it came from, for the title


def _from_recording(recording: Any) -> _Data:
    timeline = Timeline.from_recording(recording)
    return _Data(
        timeline,
        timeline.place_input(recording.mic),
        timeline.place_output(recorded_output_items(recording)),
        recording.input_sample_rate,
        recording.output_sample_rate,
        f"recording {Path(recording.directory).name}",
    )


def _from_monitor(monitor: Any) -> _Data:
    timeline = monitor.timeline_copy()
    audio = monitor.audio_copy()
    rates = (round(timeline.input_bytes_per_ms * 500), round(timeline.output_bytes_per_ms * 500))
    if audio is None:
        return _Data(timeline, None, None, *rates, "live taps (no audio history kept)")
    offset_ms, mic, items = audio
    return _Data(
        timeline,
        timeline.place_input(mic, offset_ms),
        timeline.place_output(items),
        *rates,
        "live taps",
    )


def _from_events(session: Any) -> _Data:
    events: list[tuple[float, Any]] = []
    for _ in range(10):
        try:
            events = session.timed_events()
            break
        except RuntimeError:  # the engine thread appended while we copied: try again
            continue
    config = getattr(session, "config", None)
    in_rate = int(getattr(config, "input_sample_rate", 24000) or 24000)
    out_rate = int(getattr(config, "output_sample_rate", 24000) or 24000)
    timeline = Timeline.from_timed_events(events, input_sample_rate=in_rate, output_sample_rate=out_rate)
    return _Data(
        timeline, None, None, in_rate, out_rate, "events only: no audio recorded, waveform not shown"
    )


def _monitor_for(source: Any) -> Any:
    """The live view's monitor of ``source`` (its audio as heard), if a live view watched it."""
    try:
        from ..widgets.live import monitor_for
    except ImportError:  # no anywidget: there was never a live view
        return None
    return monitor_for(source)


def _recording_dir(session: Any) -> Path | None:
    directory = getattr(session, "record_dir", None)
    if directory is not None and (Path(directory) / "events.jsonl").exists():
        return Path(directory)
    return None


def _gather(source: Any) -> _Data:
    data = _gather_data(source)
    for call in _tool_calls_of(source):
        data.timeline.tool_call(call)
    return data


def _tool_calls_of(source: Any) -> list[Any]:
    """The :class:`~voicelive_nb.tools.ToolCall` list of a (Notebook)Session, if it has one."""
    calls = getattr(source, "tool_calls", None)
    if calls is None and getattr(source, "session", None) is not None:
        calls = getattr(source.session, "tool_calls", None)
    try:
        return list(calls) if calls is not None and not callable(calls) else []
    except TypeError:
        return []


def _gather_data(source: Any) -> _Data:
    from ..recording import Recording

    if isinstance(source, Timeline):
        rates = (round(source.input_bytes_per_ms * 500), round(source.output_bytes_per_ms * 500))
        return _Data(source, None, None, *rates, "timeline (no audio)")
    if isinstance(source, (str, os.PathLike)):
        return _from_recording(Recording.load(source))
    if isinstance(source, Recording):
        return _from_recording(source)
    if hasattr(source, "add_listener") and hasattr(source, "session"):  # a NotebookSession
        session = source.session
        if session is None:
            raise InvalidValue("the session has not been started: nothing to plot yet")
        directory = _recording_dir(session)
        if directory is not None:
            return _from_recording(Recording.load(directory))
        monitor = _monitor_for(source)
        if monitor is not None and monitor.session is session:
            return _from_monitor(monitor)
        source = session
    if hasattr(source, "timed_events"):  # a Session
        directory = _recording_dir(source)
        if directory is not None:
            return _from_recording(Recording.load(directory))
        monitor = _monitor_for(source)
        if monitor is not None and monitor.session is source:
            return _from_monitor(monitor)
        return _from_events(source)
    raise InvalidType(
        f"cannot plot {type(source).__name__}: pass a NotebookSession, a Session, a Recording, "
        "a recording directory or a Timeline"
    )


# ---------------------------------------------------------------------------------- drawing


def _zigzag(
    segments: list[tuple[float, bytes]], sample_rate: int, t0: float, t1: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32]]:
    """x, y of one line that zigzags min → max per bucket over ``[t0, t1]``."""
    shifted = [(start - t0, pcm) for start, pcm in segments]
    samples = place_segments(shifted, sample_rate, t1 - t0)
    points = max(1, min(WAVEFORM_POINTS, len(samples)))
    env = envelope(samples, points)
    centres = t0 + (np.arange(points) + 0.5) * (t1 - t0) / points
    x = np.repeat(centres, 2)
    y = np.empty(2 * points, np.float32)
    y[0::2] = env[0]
    y[1::2] = env[1]
    return x, y


def _draw_waveforms(ax: Axes, data: _Data, t0: float, t1: float) -> None:
    for segments, rate, centre, color, label in (
        (data.mic or [], data.input_rate, 1.0, MIC_COLOR, "mic"),
        (data.assistant or [], data.output_rate, -1.0, ASSISTANT_COLOR, "assistant"),
    ):
        x, y = _zigzag(segments, rate, t0, t1)
        peak = float(np.abs(y).max()) if len(y) else 0.0
        scale = 0.9 / peak if peak > 1e-4 else 1.0
        ax.plot(x, centre + y * scale, color=color, linewidth=0.6, label=label, gid=f"waveform-{label}")
    for span in data.timeline.vad_spans:
        if span.start_s is not None:
            end = span.end_s if span.end_s is not None else data.timeline.end_s
            ax.axvspan(span.start_s, end, color=VAD_COLOR, alpha=0.12, linewidth=0, gid="vad-shade")
    for mark in data.timeline.barge_ins:
        ax.axvline(mark.t_s, color=BARGE_COLOR, linestyle="--", linewidth=0.9, gid="barge-in-line")
    ax.set_yticks([1.0, -1.0], ["mic", "assistant"])
    ax.set_ylim(-2.05, 2.05)
    ax.grid(axis="x", alpha=0.3)


def _draw_timeline(ax: Axes, timeline: Timeline) -> None:
    end_s = timeline.end_s
    for span in timeline.vad_spans:
        if span.start_s is None:
            continue
        end = span.end_s if span.end_s is not None else end_s
        ax.add_patch(
            Rectangle((span.start_s, 2.62), end - span.start_s, 0.76, color=VAD_COLOR, alpha=0.7, gid="vad")
        )
    for commit in timeline.commits:
        ax.plot([commit.t_s, commit.t_s], [2.55, 3.45], color=VAD_COLOR, linewidth=1.5, gid="commit")
    for response in timeline.response_spans:
        end = response.end_s if response.end_s is not None else end_s
        cancelled = response.status == "cancelled"
        ax.add_patch(
            Rectangle(
                (response.start_s, 1.62),
                end - response.start_s,
                0.76,
                color=CANCELLED_COLOR if cancelled else RESPONSE_COLOR,
                alpha=0.55 if response.end_s is not None else 0.3,
                gid="response",
            )
        )
    for audio in timeline.audio_spans:
        played = audio.played_end_s - audio.start_s
        ax.add_patch(
            Rectangle((audio.start_s, 0.62), played, 0.76, color=ASSISTANT_COLOR, alpha=0.8, gid="audio")
        )
        if audio.end_s > audio.played_end_s + UNPLAYED_MIN_S:
            ax.add_patch(
                Rectangle(
                    (audio.played_end_s, 0.62),
                    audio.end_s - audio.played_end_s,
                    0.76,
                    facecolor="none",
                    edgecolor=ASSISTANT_COLOR,
                    hatch="///",
                    linewidth=0.5,
                    gid="audio-unplayed",
                )
            )
    for mark in timeline.barge_ins:
        ax.axvline(mark.t_s, color=BARGE_COLOR, linestyle="--", linewidth=0.9, gid="barge-in-line")
        ax.plot(
            [mark.t_s], [3.62], marker="v", color=BARGE_COLOR, markersize=8, linestyle="none", gid="barge-in"
        )
    for lat in timeline.latencies:
        ax.annotate(
            "",
            xy=(lat.end_s, 1.5),
            xytext=(lat.start_s, 1.5),
            arrowprops={"arrowstyle": "<->", "color": LATENCY_COLOR, "linewidth": 0.9},
            gid="latency",
        )
        ax.text(
            (lat.start_s + lat.end_s) / 2,
            1.24,
            f"{lat.ms:.0f} ms",
            ha="center",
            va="center",
            fontsize=8,
            color=LATENCY_COLOR,
            gid="latency-label",
        )
    tools = timeline.tool_spans
    for tool in tools:
        end = tool.end_s if tool.end_s is not None else end_s
        ax.add_patch(
            Rectangle(
                (tool.start_s, 4.12),
                max(end - tool.start_s, 0.0),
                0.76,
                color=TOOL_FAILED_COLOR if tool.status in TOOL_FAILURES else TOOL_COLOR,
                alpha=0.7 if tool.end_s is not None else 0.35,
                gid="tool",
            )
        )
        ax.text(tool.start_s, 4.5, f" {tool.name}", ha="left", va="center", fontsize=7, gid="tool-label")
    if tools:
        ax.set_yticks([1.0, 2.0, 3.0, 4.5], ["assistant\naudio", "response", "VAD", "tools"])
        ax.set_ylim(0.4, 5.0)
    else:
        ax.set_yticks([1.0, 2.0, 3.0], ["assistant\naudio", "response", "VAD"])
        ax.set_ylim(0.4, 3.85)
    ax.grid(axis="x", alpha=0.3)


def _legend_handles(data: _Data, with_waveform: bool) -> list[Any]:
    """Legend entries for what the figure really draws, and nothing else."""
    timeline = data.timeline
    responses = timeline.response_spans
    audio = timeline.audio_spans
    handles: list[Any] = []
    if with_waveform:
        if any(len(pcm) for _, pcm in data.mic or []):
            handles.append(Line2D([], [], color=MIC_COLOR, linewidth=1, label="mic"))
        if any(len(pcm) for _, pcm in data.assistant or []):
            handles.append(Line2D([], [], color=ASSISTANT_COLOR, linewidth=1, label="assistant"))
    if any(s.start_s is not None for s in timeline.vad_spans):
        handles.append(Patch(color=VAD_COLOR, alpha=0.7, label="VAD speech"))
    if timeline.commits:
        handles.append(Line2D([], [], color=VAD_COLOR, linewidth=1.5, label="commit"))
    if any(r.status != "cancelled" for r in responses):
        handles.append(Patch(color=RESPONSE_COLOR, alpha=0.55, label="response"))
    if any(r.status == "cancelled" for r in responses):
        handles.append(Patch(color=CANCELLED_COLOR, alpha=0.55, label="cancelled response"))
    if audio:
        handles.append(Patch(color=ASSISTANT_COLOR, alpha=0.8, label="assistant audio played"))
    if any(a.end_s > a.played_end_s + UNPLAYED_MIN_S for a in audio):
        handles.append(
            Patch(facecolor="none", edgecolor=ASSISTANT_COLOR, hatch="///", label="received, not played")
        )
    if timeline.barge_ins:
        handles.append(Line2D([], [], color=BARGE_COLOR, linestyle="--", marker="v", label="barge-in"))
    tools = timeline.tool_spans
    if any(t.status not in TOOL_FAILURES for t in tools):
        handles.append(Patch(color=TOOL_COLOR, alpha=0.7, label="tool call"))
    if any(t.status in TOOL_FAILURES for t in tools):
        handles.append(Patch(color=TOOL_FAILED_COLOR, alpha=0.7, label="tool call failed"))
    if timeline.latencies:
        handles.append(
            Line2D([], [], color=LATENCY_COLOR, marker="$\u2194$", linestyle="none", label="latency")
        )
    return handles


def _clock_ticks(ax: Axes, t0: float, t1: float) -> bool:
    """Beyond a minute, ticks read as m:ss (``1:05``) at round steps; True if they were set."""
    if t1 - t0 <= 60.0:
        return False
    span = t1 - t0
    step = next((s for s in (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600) if span / s <= 10), 7200)
    ax.xaxis.set_major_locator(MultipleLocator(step))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: format_clock(x, decimals=0)))
    return True


def _title(data: _Data) -> str:
    summary = data.timeline.summary()
    parts = [
        f"{summary['vad_segments']} VAD segment{'s' * (summary['vad_segments'] != 1)}",
        f"{summary['responses']} response{'s' * (summary['responses'] != 1)}"
        + (f" ({summary['cancelled']} cancelled)" if summary["cancelled"] else ""),
        f"{summary['barge_ins']} barge-in{'s' * (summary['barge_ins'] != 1)}",
    ]
    if summary["median_latency_ms"] is not None:
        parts.append(f"median latency {summary['median_latency_ms']:.0f} ms")
    notes = [data.origin]
    if data.timeline.mode != "realtime":
        notes.append(data.timeline.mapping_note)
    return " · ".join(parts) + "\n" + "; ".join(notes)


def plot_session(
    source: Any,
    *,
    ax: Axes | None = None,
    show_waveform: bool = True,
    title: str | None = None,
    figsize: tuple[float, float] = (11.0, 5.0),
) -> Figure:
    """The session on one time axis: waveforms, VAD spans, responses, barge-ins, latency.

    ``source``: a ``NotebookSession``, a ``Session``, a ``Recording``, a recording directory,
    or a :class:`~voicelive_nb.analysis.timeline.Timeline`.
    With ``ax``, only the timeline lanes are drawn into that axes and its figure is returned.
    """
    data = _gather(source)
    timeline = data.timeline
    label = title if title is not None else _title(data)
    if ax is not None:
        _draw_timeline(ax, timeline)
        t0, t1 = _xlim(timeline)
        ax.set_xlim(t0, t1)
        _clock_ticks(ax, t0, t1)
        ax.set_title(label, fontsize=9)
        fig = ax.get_figure(root=True)
        assert isinstance(fig, Figure)
        return fig
    with_waveform = show_waveform and data.mic is not None
    fig = SessionFigure(figsize=figsize, layout="constrained")
    fig.timeline = timeline
    if with_waveform:
        ax_wave, ax_tl = fig.subplots(2, 1, sharex=True, height_ratios=[1.2, 1.0])
        t0, t1 = _xlim(timeline)
        _draw_waveforms(ax_wave, data, t0, t1)
    else:
        ax_tl = fig.subplots()
    _draw_timeline(ax_tl, timeline)
    t0, t1 = _xlim(timeline)
    ax_tl.set_xlim(t0, t1)
    clock = _clock_ticks(ax_tl, t0, t1)
    unit = "time (m:ss)" if clock else "seconds"
    xlabel = f"{unit} since the first input audio"
    if timeline.mode == "fast-input":
        xlabel = f"{unit} (VAD: input-audio time; responses: wall time since the first input)"
    ax_tl.set_xlabel(xlabel)
    handles = _legend_handles(data, with_waveform)
    if handles:
        fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    else:
        ax_tl.text(
            0.5,
            0.5,
            "nothing happened yet",
            transform=ax_tl.transAxes,
            ha="center",
            va="center",
            color=LATENCY_COLOR,
            gid="empty-note",
        )
    fig.suptitle(label, fontsize=10)
    return fig


def _xlim(timeline: Timeline) -> tuple[float, float]:
    starts = [0.0]
    starts += [s.start_s for s in timeline.vad_spans if s.start_s is not None]
    starts += [r.start_s for r in timeline.response_spans]
    t0 = min(starts)
    t1 = max(timeline.end_s, t0 + 0.5)
    pad = 0.02 * (t1 - t0)
    return t0 - pad, t1 + pad


# ---------------------------------------------------------------------------------- VAD


def _spans_ms(spans: Iterable[Any] | None) -> list[tuple[float, float | None]]:
    out: list[tuple[float, float | None]] = []
    for span in spans or ():
        if isinstance(span, Sequence) and not isinstance(span, str):
            start, end = span[0], span[1]
        else:
            start, end = getattr(span, "start_ms", None), getattr(span, "end_ms", None)
        if start is None:
            continue
        out.append((float(start), None if end is None else float(end)))
    return out


def _covered(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    total = 0.0
    for s1, e1 in a:
        for s2, e2 in b:
            total += max(0.0, min(e1, e2) - max(s1, s2))
    return total


def plot_vad(
    segments: Iterable[Any],
    truth: Iterable[Any] | None = None,
    audio: bytes | npt.NDArray[Any] | None = None,
    *,
    sample_rate: int = 24000,
    ax: Axes | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (11.0, 3.5),
) -> Figure:
    """Detected speech spans against the truth (and the audio), in seconds of input audio.

    ``segments`` / ``truth``: ``VadSegment``-like objects (``start_ms``, ``end_ms``) or
    ``(start_ms, end_ms)`` pairs; an open span (``end_ms`` None) runs to the end. ``audio``:
    PCM16 bytes or an int16 / float array at ``sample_rate``. The title gives counts and how
    much of the true speech was detected (and how much detected time was speech).
    """
    detected = _spans_ms(segments)
    true = _spans_ms(truth) if truth is not None else []
    samples: npt.NDArray[np.int16] | None = None
    if audio is not None:
        if isinstance(audio, np.ndarray) and audio.dtype.kind == "f":
            samples = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
        else:
            samples = as_int16(audio)
    ends = [e for _, e in detected + true if e is not None] + [s for s, _ in detected + true]
    audio_ms = 1000.0 * len(samples) / sample_rate if samples is not None else 0.0
    end_ms = max([audio_ms, *ends, 1.0])
    closed = [(s, e if e is not None else end_ms) for s, e in detected]
    closed_true = [(s, e if e is not None else end_ms) for s, e in true]

    if ax is None:
        fig: Figure = SessionFigure(figsize=figsize, layout="constrained")
        if samples is not None:
            ax_wave, ax = fig.subplots(2, 1, sharex=True, height_ratios=[1.0, 0.8])
            x, y = _zigzag([(0.0, samples.tobytes())], sample_rate, 0.0, len(samples) / sample_rate)
            ax_wave.plot(x, y, color=MIC_COLOR, linewidth=0.6, gid="waveform-audio")
            for s, e in closed_true:
                ax_wave.axvspan(
                    s / 1000, e / 1000, color=TRUTH_COLOR, alpha=0.15, linewidth=0, gid="truth-shade"
                )
            ax_wave.set_ylabel("audio")
        else:
            ax = fig.subplots()
    else:
        parent = ax.get_figure(root=True)
        assert isinstance(parent, Figure)
        fig = parent
    for s, e in closed:
        ax.add_patch(Rectangle((s / 1000, 1.15), (e - s) / 1000, 0.7, color=VAD_COLOR, alpha=0.75, gid="vad"))
    for s, e in closed_true:
        ax.add_patch(
            Rectangle((s / 1000, 0.15), (e - s) / 1000, 0.7, color=TRUTH_COLOR, alpha=0.75, gid="truth")
        )
    ax.set_yticks([0.5, 1.5] if true else [1.5], ["truth", "detected"] if true else ["detected"])
    ax.set_ylim(0.0 if true else 1.0, 2.0)
    ax.set_xlim(0.0, end_ms / 1000)
    ax.set_xlabel("seconds of input audio")
    ax.grid(axis="x", alpha=0.3)
    if title is None:
        title = f"{len(detected)} detected"
        if truth is not None:
            true_ms = sum(e - s for s, e in closed_true)
            det_ms = sum(e - s for s, e in closed)
            both = _covered(closed, closed_true)
            recall = both / true_ms if true_ms else math.nan
            precision = both / det_ms if det_ms else math.nan
            title += f", {len(true)} true · {recall:.0%} of true speech detected · {precision:.0%} of detected time is speech"
    ax.set_title(title, fontsize=9)
    return fig
