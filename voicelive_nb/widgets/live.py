"""The LIVE view: a small canvas widget fed with float32 binary buffers (no matplotlib per frame).

::

    view = LiveView().attach(notebook_session)   # taps the audio, follows reconnects
    view                                          # mic and assistant waveforms + VAD/response timeline
    view.detach()

    LiveView.from_recording("runs/2024-06-01")    # the same view of a recording, static

How it works: :class:`SessionMonitor` puts cheap taps on the live
:class:`~voicelive_nb.session.Session` (engine thread): every input block goes into a
min/max :class:`~voicelive_nb.analysis.meters.EnvelopeBuffer` and the
:class:`~voicelive_nb.analysis.timeline.Timeline`; assistant audio is queued and drained at
real-time speed, so the assistant lane shows what is being *played*, not the burst in which it
arrived; every event goes into the timeline. The NotebookSession's listener (≤ 20 Hz) then
builds a frame and :class:`LiveView` assigns the traits that changed, in one ``hold_sync()``
message: ``mic`` / ``assistant`` are ``(2, points)`` float32 little-endian (min row, max row),
``timeline`` is :meth:`Timeline.pack` (float32 too), all sent as binary buffers. Nothing is
sent while nothing changes; the browser scrolls by itself between messages (it extrapolates
``t_now`` with its own clock while ``running``) and draws with ``requestAnimationFrame`` at
most 20 times a second.

A monitor also keeps bounded PCM (:class:`~voicelive_nb.analysis.meters.AudioHistory`,
``history_s``) so that :func:`voicelive_nb.plots.plot_session` can draw the waveform of a
session that was not recorded.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from typing import Any

import anywidget
import numpy as np
import traitlets

from ..analysis.meters import AudioHistory, EnvelopeBuffer, envelope, place_segments
from ..analysis.timeline import Timeline, recorded_output_items
from ..errors import StateError

__all__ = ["DEFAULT_WINDOW_S", "LiveFrame", "LiveView", "SessionMonitor", "format_time", "monitor_for"]

log = logging.getLogger("voicelive_nb.widgets.live")

#: At most this often (the engine's pump runs at 20 Hz; a little slack for its jitter).
MIN_INTERVAL_S = 0.045
#: No input for this long: the mic lane is padded with silence up to now.
PAD_AFTER_S = 0.12
#: ... unless the session is still streaming a source (a microphone, a file): its next frames are
#: on their way and a longer pause is this process being starved (a loaded machine), not silence
#: at the source; padding then would draw a gap into speech that was sent without one.
PAD_AFTER_WHILE_STREAMING_S = 0.75
#: Seconds the live view shows by default: a whole turn (question, pause, spoken answer) fits.
DEFAULT_WINDOW_S = 24.0
#: How many of the last copied events an event delivered right after binding is compared with
#: (only the events received while the history was being copied can be in both).
_OVERLAP = 64
#: Window lengths offered by the panel (any positive length works with ``set_window``).
WINDOW_CHOICES = (10.0, 24.0, 60.0, 120.0)


def format_time(t: float, step: float = 1.0) -> str:
    """An axis label: ``4.5 s`` under a minute, else ``m:ss`` (``m:ss.s`` for sub-second steps).

    The total is rounded once, before it is split, so 119.7 s is ``2:00``, never ``1:60``.
    """
    decimals = 1 if step < 1 else 0
    if abs(t) < 60:
        return f"{round(t, 1):g} s"
    sign = "-" if t < 0 else ""
    total = round(abs(t), decimals)
    minutes = int(total // 60)
    seconds = total - 60 * minutes
    text = f"{seconds:04.1f}" if decimals else f"{round(seconds):02d}"
    return f"{sign}{minutes}:{text}"


_MONITORS: weakref.WeakKeyDictionary[Any, SessionMonitor] = weakref.WeakKeyDictionary()


def monitor_for(source: Any) -> SessionMonitor | None:
    """The monitor last attached to ``source`` (a NotebookSession or Session), if any."""
    try:
        return _MONITORS.get(source)
    except TypeError:
        return None


def _none() -> Any:
    return None


def _le_bytes(array: np.ndarray[Any, Any]) -> bytes:
    data = array if sys.byteorder == "little" else array.astype("<f4")
    return data.tobytes()


@dataclass(frozen=True)
class LiveFrame:
    """What the view shows at one moment (seconds on the session's timeline axis)."""

    mic: bytes
    assistant: bytes
    timeline: bytes
    t_now: float
    mic_end_s: float
    assistant_end_s: float
    running: bool
    note: str
    counts: str = ""
    tool_names: str = ""  #: names of the timeline's ``tools`` rows, one per line


class SessionMonitor:
    """Taps on a session that keep envelopes, a :class:`Timeline` and (optionally) bounded audio.

    Without ``on_frame`` it only collects (for figures)::

        SessionMonitor(history_s=600).attach(notebook_session)   # then plot_session(notebook_session)

    ``attach(notebook_session)`` follows reconnects: each tick of the session's listener
    checks whether ``notebook_session.session`` is a new :class:`Session` and moves the taps
    there (a new connection gets a new timeline and history; the lanes keep scrolling).
    ``bind(session)`` taps a plain :class:`Session` (call it on the session's loop, or before
    it starts). Taps, the event handler and ticks all run on the engine thread; ``lock``
    guards against the kernel thread (``detach``, ``timeline_copy``).
    """

    def __init__(
        self,
        *,
        window_s: float = DEFAULT_WINDOW_S,
        points: int = 800,
        history_s: float | None = 600.0,
        on_frame: Callable[[LiveFrame], None] | None = None,
    ) -> None:
        self.window_s = window_s
        self.points = points
        self.history_s = history_s
        self.on_frame = on_frame
        self.lock = threading.Lock()
        self._input_rate = 24000
        self._output_rate = 24000
        self.mic = EnvelopeBuffer(self._input_rate, window_s, points)
        self.assistant = EnvelopeBuffer(self._output_rate, window_s, points)
        self.timeline = Timeline()
        self.history: AudioHistory | None = None
        self._history_base_ms = 0.0  # input-audio ms of the history's first sample
        # weak references only: the registry of monitors must not keep sessions alive
        self._notebook: Callable[[], Any] = _none
        self._session: Callable[[], Any] = _none  # tapped now
        self._last_session: Callable[[], Any] = _none  # tapped last (kept after detach, for figures)
        self._active = False
        self._pending: deque[bytes] = deque()
        self._pending_samples = 0
        self._overlap: list[Any] = []  # the copied history's last events (see _bind_locked)
        self._mic_t = time.monotonic()
        self._asst_t = self._mic_t
        self._mic_surplus = 0
        self._last_tick = 0.0
        self._frozen_at: float | None = None  # the wall time the lanes stopped at (after Stop)
        self._was_running = False
        self.ticks = 0
        self.frames = 0
        self.cpu_s = 0.0  # thread CPU spent in ticks that produced a frame (incl. serialisation)

    # ------------------------------------------------------------------ wiring

    def attach(self, notebook_session: Any) -> SessionMonitor:
        """Follow a NotebookSession (taps move to each new Session; ticks from its listener)."""
        with self.lock:
            if self._active:
                raise StateError("this monitor is already attached; detach() first")
            self._notebook = weakref.ref(notebook_session)
            self._active = True
            _MONITORS[notebook_session] = self
        notebook_session.add_listener(self._on_listener)
        return self

    def bind(self, session: Any) -> SessionMonitor:
        """Tap a plain Session directly (no listener: call :meth:`tick` yourself for frames)."""
        with self.lock:
            self._active = True
            self._bind_locked(session, time.monotonic())
        return self

    def detach(self) -> None:
        """Stop: remove the listener and taps; no frame is produced after this returns."""
        with self.lock:
            self._active = False
            notebook = self._notebook()
            self._notebook = _none
            self._unbind_locked()
        if notebook is not None:
            notebook.remove_listener(self._on_listener)

    @property
    def attached(self) -> bool:
        return self._active

    def set_window(self, window_s: float) -> None:
        """Show ``window_s`` seconds (the lanes restart empty at the new length; the timeline keeps
        everything)."""
        if not (isinstance(window_s, (int, float)) and 0.5 <= window_s <= 3600):
            from ..errors import ConfigError

            raise ConfigError("window_s", window_s, "0.5 to 3600 seconds")
        with self.lock:
            self.window_s = float(window_s)
            self.mic = EnvelopeBuffer(self._input_rate, self.window_s, self.points)
            self.assistant = EnvelopeBuffer(self._output_rate, self.window_s, self.points)
            self._last_tick = 0.0

    @property
    def session(self) -> Any:
        """The Session tapped now, or last (after ``detach``): what :meth:`timeline_copy` describes."""
        session = self._session()
        return session if session is not None else self._last_session()

    def _bind_locked(self, session: Any, now: float) -> None:
        self._unbind_locked()
        config = getattr(session, "config", None)
        in_rate = int(getattr(config, "input_sample_rate", 24000) or 24000)
        out_rate = int(getattr(config, "output_sample_rate", 24000) or 24000)
        if in_rate != self._input_rate:
            self._input_rate = in_rate
            self.mic = EnvelopeBuffer(in_rate, self.window_s, self.points)
        if out_rate != self._output_rate:
            self._output_rate = out_rate
            self.assistant = EnvelopeBuffer(out_rate, self.window_s, self.points)
        self.timeline = Timeline(in_rate, out_rate)
        self.history = AudioHistory(self.history_s, in_rate, out_rate) if self.history_s else None
        # subscribe first, then copy what happened before: an event received in between is both in
        # the copy and delivered, and is taken once (a session keeps an event before it dispatches it,
        # so nothing falls between the two); copy-then-subscribe lost such an event when bound from
        # another thread than the session's (a lost speech_stopped drew a VAD span to the next turn)
        session.on("*", self.on_event)
        past = session.timed_events()
        self._overlap = [event for _, event in past[-_OVERLAP:]]
        for t, event in past:
            self.timeline.add(t, event)
        sent = int(getattr(session, "bytes_sent", 0) or 0)
        if sent:
            self.timeline.input_audio(now, sent)
        self._history_base_ms = self.timeline.input_ms
        session.input_taps.append(self.on_input)
        session.output_taps.append(self.on_output)
        self._session = self._last_session = weakref.ref(session)
        _MONITORS[session] = self

    def _unbind_locked(self) -> None:
        session, self._session = self._session(), _none
        if session is None:
            return
        with contextlib.suppress(ValueError):
            session.input_taps.remove(self.on_input)
        with contextlib.suppress(ValueError):
            session.output_taps.remove(self.on_output)
        session.off("*", self.on_event)
        self._pending.clear()
        self._pending_samples = 0

    # ------------------------------------------------------------------ taps (engine thread; cheap)

    def on_input(self, pcm16: bytes) -> None:
        """Input tap: a block of input audio was sent (about 20 µs)."""
        if not self._active:
            return
        now = time.monotonic()
        with self.lock:
            self.mic.push(pcm16)
            self.timeline.input_audio(now, len(pcm16))
            if self.history is not None:
                self.history.push_input(pcm16)
            self._mic_t = now
            self._mic_surplus = 0

    def on_output(self, item_id: str, pcm16: bytes) -> None:
        """Output tap: a block of assistant audio arrived (queued, played out by :meth:`tick`)."""
        if not self._active:
            return
        with self.lock:
            self._pending.append(pcm16)
            self._pending_samples += len(pcm16) // 2
            if self.history is not None:
                self.history.push_output(item_id, pcm16)

    def on_event(self, event: Any) -> None:
        """Handler for every received event (``session.on("*", ...)``)."""
        if not self._active:
            return
        now = time.monotonic()
        with self.lock:
            if self._overlap:
                if any(event is copied for copied in self._overlap):
                    return  # already taken from the session's history when bound
                self._overlap = []
            self.timeline.add(now, event)
            if event.type == "input_audio_buffer.speech_started":
                self._pending.clear()  # barge-in: the session flushes its speaker too
                self._pending_samples = 0

    # ------------------------------------------------------------------ ticks

    def _on_listener(self, notebook_session: Any) -> None:
        self.tick(notebook_session)

    def tick(self, notebook_session: Any = None, now: float | None = None) -> LiveFrame | None:
        """Follow a new Session if there is one, advance the lanes to ``now`` and hand a frame to
        ``on_frame`` (at most every ``MIN_INTERVAL_S``); returns the frame (None if skipped)."""
        cpu0 = time.thread_time()
        now = time.monotonic() if now is None else now
        with self.lock:
            notebook = notebook_session if notebook_session is not None else self._notebook()
            running = True
            if notebook is not None:
                status = str(notebook.status)
                running = status == "connected" or status.startswith(("connecting", "reconnecting"))
            # the tick that says "stopped" is never skipped: the view must freeze at once
            if not self._active or (now - self._last_tick < MIN_INTERVAL_S and running == self._was_running):
                return None
            self._last_tick = now
            self._was_running = running
            self.ticks += 1
            if notebook is not None:
                session = notebook.session
                if session is not None and session is not self._session():
                    self._bind_locked(session, now)
                self._tool_calls_locked(notebook)
            if running:
                self._frozen_at = None
            elif self._frozen_at is None:
                self._frozen_at = now
            if self.on_frame is None:  # collecting only (timeline, history): nobody to show frames to
                return None
            frame = self._frame_locked(self._frozen_at if self._frozen_at is not None else now, running)
            self.on_frame(frame)
            self.frames += 1
            self.cpu_s += time.thread_time() - cpu0
        return frame

    def _tool_calls_locked(self, notebook: Any) -> None:
        """Tool calls (``tool_calls``: ``time.monotonic()`` start and finish) onto the timeline."""
        try:
            calls = list(getattr(notebook, "tool_calls", None) or ())
        except (TypeError, RuntimeError):
            return
        for call in calls[-100:]:
            self.timeline.tool_call(call, only_known=True)  # this connection's calls only

    def _streaming(self) -> bool:
        session = self._session()
        done = getattr(session, "source_done", None)
        return done is not None and getattr(session, "source", None) is not None and not done.is_set()

    def _advance_lanes(self, now: float) -> None:
        gap = now - self._mic_t
        if gap > PAD_AFTER_S and (gap > PAD_AFTER_WHILE_STREAMING_S or not self._streaming()):
            want = min(round(gap * self._input_rate), self.mic.points * self.mic.samples_per_bucket)
            want -= self._mic_surplus
            if want > 0:
                self._mic_surplus = self.mic.push_silence(want) - want
            else:
                self._mic_surplus = -want
            self._mic_t = now
        elapsed = now - self._asst_t
        self._asst_t = now
        need = min(
            round(elapsed * self._output_rate), self.assistant.points * self.assistant.samples_per_bucket
        )
        while need > 0 and self._pending:
            chunk = self._pending[0]
            samples = len(chunk) // 2
            if samples <= need:
                self._pending.popleft()
                self.assistant.push(chunk)
                need -= samples
                self._pending_samples -= samples
            else:
                self.assistant.push(chunk[: 2 * need])
                self._pending[0] = chunk[2 * need :]
                self._pending_samples -= need
                need = 0
        if need > 0:
            self.assistant.push_silence(need, align=False)

    def _frame_locked(self, now: float, running: bool) -> LiveFrame:
        self._advance_lanes(now)
        tl = self.timeline
        note = "" if tl.mode in ("realtime", "none") else tl.mapping_note
        t_now = tl.to_axis(now)
        summary = tl.summary()
        counts = (
            f"session: {summary['vad_segments']} VAD · {summary['responses']} responses · "
            f"{summary['barge_ins']} barge-ins"
        )
        if summary["latency_ms"]:
            counts += f" · last latency {round(summary['latency_ms'][-1])} ms"
        since_s = t_now - 2 * self.mic.window_s  # only what the window can show
        return LiveFrame(
            mic=_le_bytes(self.mic.snapshot()),
            assistant=_le_bytes(self.assistant.snapshot()),
            timeline=tl.pack(since_s=since_s),
            tool_names="\n".join(tl.tool_names(since_s)),
            t_now=t_now,
            mic_end_s=tl.to_axis(self._mic_t),
            assistant_end_s=tl.to_axis(self._asst_t),
            running=running,
            note=note,
            counts=counts,
        )

    # ------------------------------------------------------------------ for figures

    def timeline_copy(self) -> Timeline:
        """A copy of the current timeline, safe to read on any thread."""
        with self.lock:
            return copy.deepcopy(self.timeline)

    def audio_copy(self) -> tuple[float, bytes, dict[str, bytes]] | None:
        """``(input_offset_ms, input_pcm, assistant_pcm_per_item)`` kept so far, or None without history."""
        with self.lock:
            if self.history is None:
                return None
            offset = self._history_base_ms + self.history.input_offset_ms
            return offset, self.history.input_pcm(), self.history.output_items()


# ---------------------------------------------------------------------------------- the widget

_ESM = r"""
const LANES = ["vad", "responses", "audio", "barge_ins", "latency", "commits", "tools"];
const WIDTHS = { vad: 2, responses: 3, audio: 3, barge_ins: 1, latency: 3, commits: 1, tools: 3 };
const COLORS = {
  mic: "#1f77b4", assistant: "#ff7f0e", vad: "rgba(44,160,44,0.55)", commit: "#2ca02c",
  done: "rgba(148,103,189,0.55)", open: "rgba(148,103,189,0.3)", cancelled: "rgba(214,39,40,0.45)",
  audio: "#ff7f0e", unplayed: "rgba(255,127,14,0.3)", barge: "#d62728", latency: "#7f7f7f",
  tool: "rgba(0,137,123,0.7)", toolOpen: "rgba(0,137,123,0.35)", toolFailed: "rgba(198,40,40,0.7)",
};

function f32(value) {
  if (!value) return new Float32Array(0);
  let buffer, offset = 0, length;
  if (value instanceof ArrayBuffer) { buffer = value; length = value.byteLength; }
  else if (ArrayBuffer.isView(value)) { buffer = value.buffer; offset = value.byteOffset; length = value.byteLength; }
  else return new Float32Array(0);
  const n = Math.floor(length / 4);
  if (offset % 4 === 0) return new Float32Array(buffer, offset, n);
  return new Float32Array(buffer.slice(offset, offset + n * 4));
}

function unpack(flat) {
  const out = {};
  if (flat.length < 8 || flat[0] !== 1) { for (const l of LANES) out[l] = []; return out; }
  let off = 8;
  LANES.forEach((lane, i) => {
    const rows = flat[1 + i], w = WIDTHS[lane], list = [];
    for (let r = 0; r < rows; r++) list.push(Array.from(flat.subarray(off + r * w, off + (r + 1) * w)));
    off += rows * w;
    out[lane] = list;
  });
  return out;
}

function niceStep(span) {
  const steps = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600];
  for (const s of steps) if (span / s <= 8) return s;
  return 7200;
}

function fmt(t, step) {
  // round the total once, then split: 119.7 s is 2:00, never 1:60; sub-second steps keep a decimal
  if (Math.abs(t) < 60) return (Math.round(t * 10) / 10) + " s";
  const d = step !== undefined && step < 1 ? 10 : 1;
  const total = Math.round(Math.abs(t) * d) / d, m = Math.floor(total / 60), s = total - 60 * m;
  const sec = d === 10 ? s.toFixed(1).padStart(4, "0") : String(Math.round(s)).padStart(2, "0");
  return (t < 0 ? "-" : "") + m + ":" + sec;
}

function render({ model, el }) {
  el.classList.add("vlnb-live");
  const canvas = document.createElement("canvas");
  el.appendChild(canvas);
  const ctx = canvas.getContext("2d");
  let baseClock = performance.now();
  let raf = 0, lastDraw = 0, dirty = true, hoverX = null;
  let data = {};

  function decode() {
    data = {
      mic: f32(model.get("mic")), assistant: f32(model.get("assistant")),
      tl: unpack(f32(model.get("timeline"))),
    };
  }

  function displayNow() {
    const t = model.get("t_now");
    return model.get("running") ? t + (performance.now() - baseClock) / 1000 : t;
  }

  function lane(env, end, win, x, top, h, color) {
    const P = env.length / 2;
    if (!P) return;
    let peak = 0.05;
    for (let i = 0; i < env.length; i++) peak = Math.max(peak, Math.abs(env[i]));
    const mid = top + h / 2, k = (h / 2 - 1) / peak, dt = win / P, t0 = end - win;
    ctx.beginPath();
    for (let i = 0; i < P; i++) ctx.lineTo(x(t0 + (i + 0.5) * dt), mid - env[P + i] * k);
    for (let i = P - 1; i >= 0; i--) ctx.lineTo(x(t0 + (i + 0.5) * dt), mid - env[i] * k);
    ctx.closePath();
    ctx.fillStyle = color;
    ctx.fill();
  }

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const W = Math.max(200, el.clientWidth || 800), H = model.get("height");
    if (canvas.width !== Math.round(W * dpr) || canvas.height !== Math.round(H * dpr)) {
      canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
      canvas.style.height = H + "px";
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    const fg = getComputedStyle(el).color || "#333";
    const live = model.get("mode") === "live";
    const win = Math.max(0.1, model.get("window_s"));
    const now = displayNow();
    const right = live ? now + 0.04 * win : model.get("t_now");
    const left = right - win;
    const x = (t) => ((t - left) / win) * W;
    const axisH = 16, laneH = (H - axisH) * 0.3, tlTop = 2 * laneH, tlH = H - axisH - tlTop;
    ctx.font = "10px sans-serif";
    ctx.globalAlpha = 0.15; ctx.fillStyle = fg;
    ctx.fillRect(0, laneH / 2, W, 1); ctx.fillRect(0, laneH * 1.5, W, 1); ctx.fillRect(0, tlTop, W, 1);
    ctx.globalAlpha = 1;
    lane(data.mic, model.get("mic_end_s"), win, x, 0, laneH, COLORS.mic);
    lane(data.assistant, model.get("assistant_end_s"), win, x, laneH, laneH, COLORS.assistant);
    const tl = data.tl, end = (e) => (Number.isNaN(e) ? now : e);
    const tools = tl.tools || [], names = (model.get("tool_names") || "").split("\n");
    const rowH = tlH / (tools.length ? 4 : 3), vadY = tlTop + 2, respY = tlTop + rowH + 2, audioY = tlTop + 2 * rowH + 2;
    const toolY = tlTop + 3 * rowH + 2;
    tools.forEach(([s, e, code], i) => {
      ctx.fillStyle = code === 2 ? COLORS.toolFailed : Number.isNaN(e) ? COLORS.toolOpen : COLORS.tool;
      ctx.fillRect(x(s), toolY, Math.max(2, x(end(e)) - x(s)), rowH - 4);
      ctx.fillStyle = fg; ctx.fillText(names[i] || "tool", x(s) + 2, toolY + rowH / 2 + 3);
    });
    for (const [s, e] of tl.vad) { ctx.fillStyle = COLORS.vad; ctx.fillRect(x(s), vadY, x(end(e)) - x(s), rowH - 4); }
    for (const [t] of tl.commits) { ctx.fillStyle = COLORS.commit; ctx.fillRect(x(t) - 1, vadY, 2, rowH - 4); }
    for (const [s, e, code] of tl.responses) {
      ctx.fillStyle = code === 2 ? COLORS.cancelled : Number.isNaN(e) ? COLORS.open : COLORS.done;
      ctx.fillRect(x(s), respY, x(end(e)) - x(s), rowH - 4);
    }
    for (const [s, e, p] of tl.audio) {
      ctx.fillStyle = COLORS.unplayed; ctx.fillRect(x(s), audioY, x(e) - x(s), rowH - 4);
      ctx.fillStyle = COLORS.audio; ctx.fillRect(x(s), audioY, x(Math.min(p, now)) - x(s), rowH - 4);
    }
    ctx.fillStyle = COLORS.latency; ctx.strokeStyle = COLORS.latency;
    for (const [s, e, ms] of tl.latency) {
      const y = respY + rowH / 2;
      ctx.beginPath(); ctx.moveTo(x(s), y); ctx.lineTo(x(e), y); ctx.stroke();
      ctx.fillRect(x(s), y - 3, 1, 6); ctx.fillRect(x(e), y - 3, 1, 6);
      ctx.fillStyle = fg; ctx.fillText(Math.round(ms) + " ms", x(s) + 3, y - 3); ctx.fillStyle = COLORS.latency;
    }
    ctx.fillStyle = COLORS.barge;
    for (const [t] of tl.barge_ins) {
      ctx.fillRect(x(t) - 1, 0, 2, H - axisH);
      ctx.beginPath(); ctx.moveTo(x(t) - 5, 0); ctx.lineTo(x(t) + 5, 0); ctx.lineTo(x(t), 7); ctx.fill();
    }
    ctx.fillStyle = fg; ctx.globalAlpha = 0.75;
    ctx.fillText("mic", 4, 11); ctx.fillText("assistant", 4, laneH + 11);
    ctx.fillText("VAD", 4, vadY + 10); ctx.fillText("response", 4, respY + 10); ctx.fillText("audio", 4, audioY + 10);
    if (tools.length) ctx.fillText("tools", 4, toolY + 10);
    const lat = tl.latency.map((r) => r[2]);
    let info = model.get("counts");  // over the whole session, not only what the window shows
    if (!info) {
      info = tl.vad.length + " VAD · " + tl.responses.length + " responses · " + tl.barge_ins.length + " barge-ins";
      if (lat.length) info += " · last latency " + Math.round(lat[lat.length - 1]) + " ms";
    }
    const note = model.get("note");
    if (note) info = note + " — " + info;
    ctx.textAlign = "right"; ctx.fillText(info, W - 4, 11); ctx.textAlign = "left";
    const step = niceStep(win);
    for (let t = Math.ceil(left / step) * step; t <= right; t += step) {
      ctx.fillRect(x(t), H - axisH, 1, 4); ctx.fillText(fmt(t, step), x(t) + 2, H - 3);
    }
    ctx.globalAlpha = 1;
    if (live) { ctx.fillStyle = fg; ctx.fillRect(x(now), 0, 1, H - axisH); }
    if (hoverX !== null) {
      ctx.globalAlpha = 0.5; ctx.fillStyle = fg; ctx.fillRect(hoverX, 0, 1, H - axisH);
      ctx.globalAlpha = 1; ctx.fillText(fmt(left + (hoverX / W) * win), hoverX + 3, H - axisH - 3);
    }
    el.dataset.draws = String(Number(el.dataset.draws || 0) + 1);
  }

  function loop(ts) {
    raf = 0;
    const running = model.get("running");
    if (dirty || (running && ts - lastDraw >= 50)) { draw(); lastDraw = ts; dirty = false; }
    if (running) raf = requestAnimationFrame(loop);
  }
  function kick() { dirty = true; if (!raf) raf = requestAnimationFrame(loop); }
  function onData() { decode(); kick(); }
  function onClock() { baseClock = performance.now(); kick(); }

  decode();
  model.on("change:mic change:assistant change:timeline", onData);
  model.on("change:t_now change:running", onClock);
  model.on("change:height change:window_s change:mode change:note change:counts change:tool_names", kick);
  const onMove = (e) => { const r = canvas.getBoundingClientRect(); hoverX = e.clientX - r.left; kick(); };
  const onLeave = () => { hoverX = null; kick(); };
  canvas.addEventListener("mousemove", onMove);
  canvas.addEventListener("mouseleave", onLeave);
  const resize = typeof ResizeObserver !== "undefined" ? new ResizeObserver(kick) : null;
  if (resize) resize.observe(el);
  kick();
  return () => {
    if (raf) cancelAnimationFrame(raf);
    model.off("change:mic change:assistant change:timeline", onData);
    model.off("change:t_now change:running", onClock);
    model.off("change:height change:window_s change:mode change:note change:counts change:tool_names", kick);
    canvas.removeEventListener("mousemove", onMove);
    canvas.removeEventListener("mouseleave", onLeave);
    if (resize) resize.disconnect();
  };
}

export default { render };
"""

_CSS = """
.vlnb-live { width: 100%; min-width: 200px; }
.vlnb-live canvas { width: 100%; display: block; }
"""


class LiveView(anywidget.AnyWidget):
    """Live waveforms (mic, assistant) and the session timeline on one canvas.

    ``attach(notebook_session)`` starts following a session; ``detach()`` stops. The traits
    are the wire format: ``mic`` / ``assistant`` are ``(2, points)`` float32 little-endian
    min/max envelopes ending at ``mic_end_s`` / ``assistant_end_s``; ``timeline`` is
    :meth:`~voicelive_nb.analysis.timeline.Timeline.pack`; times are seconds on the session axis.
    """

    _esm = _ESM
    _css = _CSS

    mic = traitlets.Bytes(b"").tag(sync=True)
    assistant = traitlets.Bytes(b"").tag(sync=True)
    timeline = traitlets.Bytes(b"").tag(sync=True)
    t_now = traitlets.Float(0.0).tag(sync=True)
    mic_end_s = traitlets.Float(0.0).tag(sync=True)
    assistant_end_s = traitlets.Float(0.0).tag(sync=True)
    window_s = traitlets.Float(DEFAULT_WINDOW_S).tag(sync=True)
    running = traitlets.Bool(False).tag(sync=True)
    mode = traitlets.Unicode("live").tag(sync=True)
    note = traitlets.Unicode("").tag(sync=True)
    counts = traitlets.Unicode("").tag(sync=True)
    tool_names = traitlets.Unicode("").tag(sync=True)
    height = traitlets.Int(220).tag(sync=True)

    def __init__(
        self,
        *,
        window_s: float = DEFAULT_WINDOW_S,
        points: int = 800,
        history_s: float | None = 600.0,
        height: int = 220,
        **kwargs: Any,
    ) -> None:
        super().__init__(window_s=window_s, height=height, **kwargs)
        self.points = points
        self.history_s = history_s
        self.monitor: SessionMonitor | None = None
        self._last_monitor: SessionMonitor | None = None
        self.updates = 0
        self._update_lock = threading.Lock()

    # ------------------------------------------------------------------ live

    def attach(self, notebook_session: Any) -> LiveView:
        """Follow ``notebook_session`` (a NotebookSession): taps, reconnects, ≤ 20 Hz updates."""
        self.detach()
        monitor = SessionMonitor(
            window_s=self.window_s, points=self.points, history_s=self.history_s, on_frame=self._apply
        )
        self.window_s = monitor.mic.window_s
        self.mode = "live"
        self.monitor = self._last_monitor = monitor.attach(notebook_session)
        return self

    def set_window(self, window_s: float) -> None:
        """Show the last ``window_s`` seconds (the panel's *window* dropdown calls this)."""
        monitor = self.monitor
        if monitor is not None:
            monitor.set_window(window_s)
        elif not (isinstance(window_s, (int, float)) and 0.5 <= window_s <= 3600):
            from ..errors import ConfigError

            raise ConfigError("window_s", window_s, "0.5 to 3600 seconds")
        self.window_s = float(window_s)

    def detach(self) -> None:
        """Stop following the session (no trait changes after this returns)."""
        monitor, self.monitor = self.monitor, None
        if monitor is not None:
            monitor.detach()
            with self._update_lock:
                self.running = False

    def _apply(self, frame: LiveFrame) -> None:
        """Assign the traits that changed, in one message (engine thread)."""
        with self._update_lock:
            changed = {
                name: value
                for name, value in (
                    ("mic", frame.mic),
                    ("assistant", frame.assistant),
                    ("timeline", frame.timeline),
                    ("running", frame.running),
                    ("note", frame.note),
                    ("counts", frame.counts),
                    ("tool_names", frame.tool_names),
                )
                if getattr(self, name) != value
            }
            if not changed:
                return
            with self.hold_sync():
                for name, value in changed.items():
                    setattr(self, name, value)
                self.t_now = frame.t_now
                self.mic_end_s = frame.mic_end_s
                self.assistant_end_s = frame.assistant_end_s
            self.updates += 1

    @property
    def cpu_ms_per_update(self) -> float | None:
        """Mean engine-thread CPU per tick (frame building, diff, trait assignment, serialisation)."""
        monitor = self._last_monitor
        if monitor is None or not monitor.frames:
            return None
        return monitor.cpu_s * 1000.0 / monitor.frames

    # ------------------------------------------------------------------ static

    @classmethod
    def from_recording(
        cls, directory: str | PathLike[str], *, points: int = 1600, height: int = 220
    ) -> LiveView:
        """A static view of a recorded session (the whole session in one window)."""
        from ..recording import Recording

        recording = Recording.load(directory)
        timeline = Timeline.from_recording(recording)
        duration = max(timeline.end_s, 0.5)
        mic = place_segments(timeline.place_input(recording.mic), recording.input_sample_rate, duration)
        assistant = place_segments(
            timeline.place_output(recorded_output_items(recording)), recording.output_sample_rate, duration
        )
        view = cls(window_s=duration, points=points, history_s=None, height=height)
        with view.hold_sync():
            view.mode = "static"
            view.mic = _le_bytes(envelope(mic, points))
            view.assistant = _le_bytes(envelope(assistant, points))
            view.timeline = timeline.pack()
            view.t_now = view.mic_end_s = view.assistant_end_s = duration
            view.note = "" if timeline.mode == "realtime" else timeline.mapping_note
        return view
