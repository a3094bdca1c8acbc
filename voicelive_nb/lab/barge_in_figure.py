"""The barge-in lab's figure: one condition's timeline (matplotlib, no pyplot state).

Lanes, on the microphone's clock: what the speaker played, what the microphone heard (the
echo plus the user), the scripted user's sounds by kind, the service's speech segments (VAD),
and each flush of the speaker — green for a real interruption, red for a false barge-in.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .figures import LabFigure

__all__ = ["timeline_figure"]

_KIND_COLOURS = {
    "interrupt": "tab:green",
    "backchannel": "tab:olive",
    "cough": "tab:purple",
    "door": "tab:brown",
}
_CAUSE_COLOURS = {"real": "tab:green", "echo": "tab:red", "backchannel": "tab:orange", "noise": "tab:purple"}


def _envelope(pcm16: bytes, rate: int, frame_ms: int = 20) -> tuple[np.ndarray, np.ndarray]:
    x = np.frombuffer(pcm16[: len(pcm16) // 2 * 2], dtype="<i2").astype(np.float64) / 32768.0
    n = rate * frame_ms // 1000
    k = len(x) // n
    if k == 0:
        return np.zeros(0), np.zeros(0)
    rms = np.sqrt((x[: k * n].reshape(k, n) ** 2).mean(axis=1))
    return np.arange(k) * frame_ms / 1000, 20 * np.log10(rms + 1e-5)


def timeline_figure(result: Any, *, figsize: tuple[float, float] = (11, 4.2), dpi: int = 80) -> Any:
    """The timeline of ``result`` (a :class:`~voicelive_nb.lab.barge_in.ConditionResult`, read by
    its attributes: this module does not import the lab, which imports it)."""
    fig = LabFigure(figsize=figsize, dpi=dpi, layout="constrained")
    ax_audio, ax_events = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    rate = result.rate
    for pcm, label, colour in (
        (result.played, "speaker", "tab:blue"),
        (result.heard, "microphone", "tab:gray"),
    ):
        t, db = _envelope(pcm, rate)
        if len(t):
            ax_audio.plot(t, db, lw=0.8, color=colour, label=label)
    warmup_s = getattr(result, "scored_from", 0) / rate
    if warmup_s > 0:  # the unscored warm-up replies (the canceller converging)
        ax_audio.axvspan(0, warmup_s, color="0.92", zorder=0, label="warm-up (not scored)")
    ax_audio.set_ylim(-80, 0)
    ax_audio.set_ylabel("dBFS")
    row = result.row()
    ax_audio.set_title(
        f"{result.condition.name}: {row['false_barge_ins']} false barge-ins, "
        f"{row['missed_barge_ins']} missed of {row['interruptions']} interruptions"
    )
    for p in result.placed:
        ax_events.broken_barh(
            [(p.onset / rate, max(p.end - p.onset, 1) / rate)], (2.1, 0.8), color=_KIND_COLOURS[p.cue.kind]
        )
        ax_events.text(p.onset / rate, 3.0, p.cue.kind, fontsize=7, va="bottom")
    for start, end in result.vad:
        s = start / 1000
        e = (end / 1000) if end is not None else s + 0.05
        ax_events.broken_barh([(s, max(e - s, 0.02))], (1.1, 0.8), color="tab:cyan")
    for b in result.barge_ins:
        if b.flush is None:
            continue
        at = b.flush.at / rate
        colour = _CAUSE_COLOURS.get(b.cause, "black")
        for ax in (ax_audio, ax_events):
            ax.axvline(at, color=colour, lw=1.2, ls="--")
        ax_events.text(at, 0.2, b.cause, fontsize=7, color=colour)
    ax_events.set_yticks([0.5, 1.5, 2.5], ["flush", "VAD", "user"])
    ax_events.set_ylim(0, 3.6)
    ax_events.set_xlabel("microphone time (s)")
    ax_audio.legend(loc="upper right", fontsize=8)
    return fig
