"""The interactive VAD lab: sliders for the turn-detection knobs, a re-run of the replay of the
current recording (debounced), and the overlay redrawn against the truth.

::

    lab = VadLab("question.wav", truth="question.json")   # emulator unless Azure is configured
    lab                                                     # shows the controls and the figure
    session.update(lab.session_update())                   # take the settings you like

Threads: widget callbacks run on the kernel's main thread and only post work to the engine
thread (:mod:`voicelive_nb.engine`), where a timer implements the debounce (each change restarts
it; the replay starts ``debounce_s`` after the last change) and a newer change cancels a replay
still running. The figure is rendered to PNG off the event loop and shown in an
``ipywidgets.Image`` (trait updates from other threads reach the front end; ``Output`` capture
does not work from threads). Errors are shown in the status line and kept in :attr:`VadLab.error`.
Works the same against the emulator (a replay takes a fraction of a second) and against a
service (real-time pacing: a replay takes as long as the recording).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InvalidValue, OptionalDependencyMissing, WaitTimeout
from ..protocol.config import SessionConfig, field_spec
from .inputs import as_config, as_truth
from .replay import Backend, Pace, ReplayResult, replay_async
from .sweep import apply_knobs
from .testsets import Clip, as_clip
from .truth import Truth

__all__ = ["VAD_TYPES", "VadLab"]

#: The turn-detection types the sliders apply to (those the config's specs give these knobs).
VAD_TYPES: tuple[str, ...] = field_spec("turn_detection.threshold").applies_to
#: How far a slider reaches at first (the lab's zoom); ranges, steps and defaults are the config's
#: field specs, and a value beyond the reach widens its slider up to the spec's maximum.
SLIDER_REACH: dict[str, float] = {
    "threshold": 1.0,
    "prefix_padding_ms": 1000,
    "silence_duration_ms": 2000,
    "speech_duration_ms": 1000,
}


def _widgets() -> Any:
    try:
        import ipywidgets  # type: ignore[import-untyped]
    except ImportError as exc:
        raise OptionalDependencyMissing("the VAD lab widget", "ipywidgets", "notebook") from exc
    return ipywidgets


def knob_slider(w: Any, name: str, td: Mapping[str, Any], vad_type: str, style: Any, layout: Any) -> Any:
    """A slider for ``turn_detection.<name>``: range, step, default (for ``vad_type``) and tooltip
    from its field spec; it reaches :data:`SLIDER_REACH`, or further when ``td`` holds more."""
    spec = field_spec(f"turn_detection.{name}")
    kind = float if spec.kind == "float" else int
    value = kind(td.get(name, spec.type_defaults.get(vad_type, spec.default)))
    top = min(float(spec.maximum or 0), max(SLIDER_REACH[name], value))
    slider = w.FloatSlider if spec.kind == "float" else w.IntSlider
    return slider(
        value=value,
        min=kind(spec.minimum or 0),
        max=kind(top),
        step=spec.step,
        description=name,
        tooltip=f"{spec.doc} ({spec.allowed})",
        continuous_update=False,
        style=style,
        layout=layout,
    )


def check_knob(name: str, value: Any) -> None:
    """A knob's value inside its field spec, else a ConfigError naming the field and range."""
    if name == "type" and value not in VAD_TYPES:
        raise ConfigError("turn_detection.type", value, "one of: " + ", ".join(VAD_TYPES))
    if name in SLIDER_REACH:
        field_spec(f"turn_detection.{name}").check(value)


def set_knob(control: Any, name: str, value: Any) -> None:
    """Set a checked knob's control, widening a slider (up to its spec's maximum) to hold the value."""
    if name in SLIDER_REACH and value > control.max:
        control.max = value
    control.value = value


class VadLab:
    """Sliders for the VAD knobs that re-run the replay of one recording and redraw the overlay."""

    def __init__(
        self,
        audio: Clip | str | Path | bytes,
        config: SessionConfig | Mapping[str, Any] | None = None,
        *,
        truth: Truth | str | Path | Sequence[Sequence[float]] | None = None,
        endpoint: str | None = None,
        api_key: str | None = None,
        pace: Pace | None = None,
        sample_rate: int | None = None,
        debounce_s: float = 0.4,
        autorun: bool = True,
        figsize: tuple[float, float] = (10.0, 3.2),
    ) -> None:
        from ..engine import get_engine

        w = _widgets()
        self.clip = as_clip(audio, sample_rate, truth=as_truth(truth))
        self.base = as_config(config)
        self.debounce_s = debounce_s
        self.figsize = figsize
        self.result: ReplayResult | None = None
        self.error: BaseException | None = None
        self.runs_started = 0
        self.runs_finished = 0
        self._engine = get_engine()
        self._backend = Backend(endpoint, api_key, pace=pace)
        self._engine.run(self._backend.start(), 60)
        self._lock = threading.Lock()
        self._generation = 0
        self._idle = threading.Event()
        self._idle.set()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

        td = self.base.to_dict().get("turn_detection") or {}
        nr = self.base.to_dict().get("input_audio_noise_reduction")
        style = {"description_width": "150px"}
        layout = w.Layout(width="460px")
        self.vad_type = w.Dropdown(
            options=list(VAD_TYPES),
            value=td.get("type", "server_vad") if td.get("type") in VAD_TYPES else "server_vad",
            description="VAD type",
            style=style,
            layout=layout,
        )
        vad_type = self.vad_type.value
        self.threshold = knob_slider(w, "threshold", td, vad_type, style, layout)
        self.prefix_padding_ms = knob_slider(w, "prefix_padding_ms", td, vad_type, style, layout)
        self.silence_duration_ms = knob_slider(w, "silence_duration_ms", td, vad_type, style, layout)
        self.speech_duration_ms = knob_slider(w, "speech_duration_ms", td, vad_type, style, layout)
        self.noise_suppression = w.Checkbox(
            value=bool(nr), description="deep noise suppression", style=style, indent=False
        )
        self.rerun_button = w.Button(description="Re-run", icon="refresh", tooltip="replay again")
        self.status = w.HTML(value="")
        self.image = w.Image(format="png", layout=w.Layout(width="100%"))
        self._controls = (
            self.vad_type,
            self.threshold,
            self.prefix_padding_ms,
            self.silence_duration_ms,
            self.speech_duration_ms,
            self.noise_suppression,
        )
        for control in self._controls:
            control.observe(self._on_change, names="value")
        self.rerun_button.on_click(lambda _button: self.rerun())
        head = w.HTML(
            value=f"<b>VAD lab</b> — {self.clip.name} ({self.clip.duration_s:.1f} s) on {self._backend.label}"
        )
        self.widget = w.VBox(
            [
                head,
                w.HBox([w.VBox(list(self._controls)), w.VBox([self.rerun_button])]),
                self.status,
                self.image,
            ]
        )
        if autorun:
            self.rerun()

    # ------------------------------------------------------------------ knobs

    @property
    def knobs(self) -> dict[str, Any]:
        """The current slider values as grid knobs."""
        return {
            "type": self.vad_type.value,
            "threshold": round(float(self.threshold.value), 4),
            "prefix_padding_ms": int(self.prefix_padding_ms.value),
            "silence_duration_ms": int(self.silence_duration_ms.value),
            "speech_duration_ms": int(self.speech_duration_ms.value),
            "noise_suppression": bool(self.noise_suppression.value),
        }

    def current_config(self) -> SessionConfig:
        """The base configuration with the slider values."""
        return apply_knobs(self.base, self.knobs)

    def session_update(self) -> dict[str, Any]:
        """The current settings for ``session.update(...)``: turn_detection and noise reduction."""
        wire = self.current_config().to_dict()
        return {k: wire[k] for k in ("turn_detection", "input_audio_noise_reduction") if k in wire}

    def set(self, **knobs: Any) -> None:
        """Set several knobs at once (one debounced re-run), e.g. ``lab.set(threshold=0.6)``."""
        controls = {}
        for name, value in knobs.items():  # all checked before any is set
            control = getattr(self, name if name != "type" else "vad_type", None)
            if control not in self._controls:
                raise InvalidValue(f"unknown knob {name!r}; knobs: {', '.join(self.knobs)}")
            check_knob(name, value)
            controls[name] = control
        for name, value in knobs.items():
            set_knob(controls[name], name, value)

    def load(
        self, audio: Clip | str | Path | bytes, *, truth: Any = None, sample_rate: int | None = None
    ) -> None:
        """Switch to another recording and replay it."""
        self.clip = as_clip(audio, sample_rate, truth=as_truth(truth))
        self.rerun()

    # ------------------------------------------------------------------ scheduling (main thread → engine)

    def _on_change(self, change: Any = None) -> None:
        self._schedule(self.debounce_s)

    def rerun(self) -> None:
        """Replay now with the current settings (no debounce)."""
        self._schedule(0.0)

    def _schedule(self, delay: float) -> None:
        if self._closed:
            return
        with self._lock:
            self._generation += 1
            generation = self._generation
            self._idle.clear()
        self._engine.call_soon(self._arm, generation, delay)

    def wait_idle(self, timeout: float = 60.0) -> ReplayResult | None:
        """Block until no change is pending and no replay runs; the latest result."""
        if not self._idle.wait(timeout):
            raise WaitTimeout(f"the VAD lab was still busy after {timeout:g} s")
        return self.result

    # ------------------------------------------------------------------ engine side

    def _arm(self, generation: int, delay: float) -> None:
        if generation != self._generation or self._closed:
            return  # a newer change was scheduled after this one
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, self._fire, generation)

    def _fire(self, generation: int) -> None:
        self._timer = None
        if generation != self._generation or self._closed:
            return
        if self._task is not None and not self._task.done():
            self._task.cancel()  # a newer setting wins; its session closes cleanly
        self._task = asyncio.get_running_loop().create_task(self._run(generation))

    async def _run(self, generation: int) -> None:
        self.runs_started += 1
        try:
            config = self.current_config()
            self._set_status(f"replaying with {_describe(self.knobs)} …")
            result = await replay_async(self.clip, config, backend=self._backend)
            loop = asyncio.get_running_loop()
            png = await loop.run_in_executor(None, self._render, result)
            if generation == self._generation:
                self.result = result
                self.error = None
                self.image.value = png
                self._set_status(_summary_html(result))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = exc
            self._set_status(f'<span style="color:#c00">replay failed: {type(exc).__name__}: {exc}</span>')
        finally:
            self.runs_finished += 1
            with self._lock:
                if generation == self._generation:
                    self._idle.set()

    def _render(self, result: ReplayResult) -> bytes:
        from .figures import plot_replay

        fig = plot_replay(result, figsize=self.figsize)
        png: bytes = fig.to_png()
        return png

    def _set_status(self, html: str) -> None:
        self.status.value = html

    # ------------------------------------------------------------------ lifecycle and display

    def close(self) -> None:
        """Stop pending work, stop the lab's emulator, close the widgets (idempotent)."""
        if self._closed:
            return
        self._closed = True

        async def shutdown() -> None:
            if self._timer is not None:
                self._timer.cancel()
            task = self._task
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            await self._backend.stop()

        with contextlib.suppress(Exception):
            self._engine.run(shutdown(), 30)
        self._idle.set()
        self.widget.close()
        for control in (*self._controls, self.rerun_button, self.status, self.image):
            control.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"<VadLab {self.clip.name} on {self._backend.label} {_describe(self.knobs)}>"


def _describe(knobs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in knobs.items())


def _summary_html(result: ReplayResult) -> str:
    text = f"{len(result.turns)} turns in {result.wall_s:.2f} s"
    if result.score is not None:
        s = result.score.summary()
        text += (
            f" — F1 <b>{s['f1']:.2f}</b> (P {s['precision']:.2f}, R {s['recall']:.2f}); "
            f"start {s['start_error_ms_median']} ms, end {s['end_error_ms_median']} ms (medians); "
            f"false starts {s['false_starts']}, cut-offs {s['cut_offs']}, merged {s['merged']}"
        )
    return text
