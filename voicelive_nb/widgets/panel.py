"""``SessionPanel``: the control panel of a :class:`~voicelive_nb.notebook_session.NotebookSession`.

Start / Stop, a state light with the status text, microphone and speaker pickers, the connection
(endpoint or the built-in emulator; the API key only masked), an error area, a slot for the live
view, the transcript, the event log, and the generated :class:`~voicelive_nb.widgets.forms.ConfigForm`
wired to ``session.update`` both ways.

Threads (see design.md, "The threading model"):

* Widget callbacks run on the kernel's thread and only post work: Start calls the non-blocking
  ``session.start()``; Stop runs the (briefly blocking) ``session.stop()`` on a helper thread;
  form changes reach ``session.update(config, wait=False)`` from the form's debounce timer.
* ONE ``session.add_listener`` callback, on the engine thread at ≤ 20 Hz, refreshes status, light,
  transcript, log and form. It never blocks on the kernel thread (it skips a tick if a refresh
  from the kernel thread holds the lock) and sets only traits whose value changed.
* Every callback is wrapped: an exception is shown in the error area and logged, never swallowed.
* No widget state holds a secret: the key is shown only as ``Secret.masked()``, and any text shown
  (errors, status) is scrubbed of the key.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import ipywidgets as W  # type: ignore[import-untyped]

from ..auth import Secret
from ..errors import ConfigError
from ..protocol.config import SessionConfig
from .forms import ConfigForm, same_value, widget_tree
from .log import EventLog, TranscriptView
from .tools import ToolsView

__all__ = ["COLORS", "SessionPanel", "phase_of"]

log = logging.getLogger("voicelive_nb.widgets")

#: Colour of the state light per phase.
COLORS = {"idle": "#9e9e9e", "connecting": "#ffb300", "connected": "#43a047", "failed": "#e53935"}
#: The pump calls at 20 Hz; a little slack so that jitter does not halve the rate.
MIN_REFRESH_S = 0.045
DEFAULT_LABEL = "system default"
NONE_LABEL = "none"
#: The status line shows at most this much; the whole text is in its tooltip and the error area.
STATUS_MAX = 60
STALE_TEXT = "kernel restarted — this panel is no longer connected; re-run the cell"
EMULATOR_NOTE = (
    "the built-in emulator ignores instructions and voice: it answers every turn with a short "
    "spoken reply (set AZURE_VOICE_LIVE_ENDPOINT to talk to Azure)"
)

_STALE_ESM = r"""
function render({ model, el }) {
  el.classList.add("vlnb-stale-watch");
  const banner = document.createElement("div");
  banner.className = "vlnb-stale-banner";
  banner.textContent = model.get("text");
  banner.style.cssText = "display:none;background:#fff3e0;color:#e65100;border:1px solid #ffb74d;" +
    "border-radius:4px;padding:2px 8px;font-weight:bold";
  el.appendChild(banner);
  const stale = () => {
    banner.style.display = "block";
    const root = el.closest(".vlnb-panel");
    if (root) root.classList.add("vlnb-stale");
    el.dataset.stale = "1";
  };
  const check = () => { if (model.comm_live === false || (model.comm && model.comm_live === false)) stale(); };
  model.on("comm_live_update", () => { if (!model.comm_live) stale(); });
  check();
  return () => {};
}
export default { render };
"""
_STALE_CSS = """
.vlnb-panel.vlnb-stale .vlnb-light, .vlnb-panel.vlnb-stale .vlnb-status { opacity: 0.25; }
.vlnb-panel.vlnb-stale .jupyter-button { pointer-events: none; opacity: 0.4; }
.vlnb-panel.vlnb-stale .jupyter-widgets-disconnected::before,
.vlnb-panel.vlnb-stale.jupyter-widgets-disconnected::before { display: none; }
"""


def _stale_watch() -> Any:
    """A tiny anywidget that turns the panel grey with a banner when the kernel behind it is gone
    (JupyterLab marks the models not live on a restart; it does not close them)."""
    try:
        import anywidget
        import traitlets
    except ImportError:
        return W.HTML()

    class StaleWatch(anywidget.AnyWidget):
        _esm = _STALE_ESM
        _css = _STALE_CSS
        text = traitlets.Unicode(STALE_TEXT).tag(sync=True)

    return StaleWatch()


def one_line(text: str, limit: int = STATUS_MAX) -> str:
    """The first line of ``text``, at most ``limit`` characters (an ellipsis if anything is cut)."""
    lines = text.strip().splitlines()
    first = " ".join(lines[0].split()) if lines else ""
    if len(first) > limit:
        return first[: limit - 1] + "…"
    return first + " …" if len(lines) > 1 else first


def with_expiry(status: str, expires_in_s: float | None, *, renews: bool = False) -> str:
    """The status with a quiet countdown when the connection ends in less than 5 minutes."""
    if expires_in_s is None or expires_in_s >= 300:
        return status
    left = max(0, int(expires_in_s))
    what = "renews" if renews else "ends"
    return f"{status} · connection {what} in {left // 60}:{left % 60:02d}"


def phase_of(status: str) -> str:
    """``idle`` (idle, stopped, closed), ``connecting`` (also reconnecting), ``connected`` or ``failed``."""
    if status.startswith("failed"):
        return "failed"
    if status.startswith(("connecting", "reconnecting", "waiting")):
        return "connecting"
    if status == "connected":
        return "connected"
    return "idle"


def _set(widget: Any, name: str, value: Any) -> None:
    if getattr(widget, name) != value:
        setattr(widget, name, value)


class SessionPanel(W.VBox):  # type: ignore[misc]
    """The control panel; ``display(SessionPanel(session))`` or ``session.ui()``."""

    def __init__(
        self,
        session: Any,
        *,
        show_config: bool = True,
        show_live: bool = True,
        debounce_s: float = 0.3,
        max_log_lines: int = 500,
    ) -> None:
        super().__init__()
        self.session = session
        self._lock = threading.Lock()  # one refresh at a time (engine pump vs kernel thread)
        self._error_lock = threading.Lock()
        self._errors: deque[str] = deque(maxlen=10)
        self._failure_shown: str | None = None
        self._last_refresh = 0.0
        self._stopping = False
        self._settling = False
        self._settle_lock = threading.Lock()
        self._secrets: list[Secret] = []
        self._connection_key: Any = object()
        self._synced_config: SessionConfig | None = session.config
        self._closed = False
        self._device_choices: dict[str, dict[str, Any]] = {}
        self.phase = "idle"
        # first, so that the key is known (and scrubbed) before any text is shown
        self.connection = W.HTML(self._connection_html())

        # --- header: light, Start / Stop, status
        self.light = W.HTML()
        self.light.add_class("vlnb-light")
        fixed = W.Layout(width="90px", min_width="90px", flex="0 0 auto")
        self.start_button = W.Button(description="Start", icon="play", button_style="success", layout=fixed)
        self.stop_button = W.Button(
            description="Stop", icon="stop", button_style="danger", disabled=True, layout=fixed
        )
        self.status = W.HTML(layout=W.Layout(flex="1 1 auto", min_width="0", overflow="hidden"))
        self.status.add_class("vlnb-status")
        self.start_button.on_click(self._guard("start", self._start_clicked))
        self.stop_button.on_click(self._guard("stop", self._stop_clicked))
        # push-to-talk, shown only with manual turn detection (turn_detection off / the manual preset)
        self.talk_button = W.ToggleButton(
            value=False,
            description="Hold to talk",
            icon="microphone",
            tooltip="manual turn detection: press, speak, release (commit + response.create)",
            layout=W.Layout(width="130px", min_width="130px", flex="0 0 auto", display="none"),
        )
        self.talk_button.observe(self._guard("push-to-talk", self._talk_toggled), names="value")
        self.talks = 0
        self.stale_watch = _stale_watch()
        header = W.HBox(
            [self.light, self.start_button, self.stop_button, self.talk_button, self.status],
            layout=W.Layout(align_items="center", width="100%"),
        )

        # --- errors
        self.error_area = W.HTML()
        self.clear_errors_button = W.Button(
            description="clear", layout=W.Layout(width="70px", display="none")
        )
        self.clear_errors_button.on_click(self._guard("clear errors", lambda _b: self.clear_errors()))
        errors = W.HBox(
            [self.error_area, self.clear_errors_button], layout=W.Layout(align_items="flex-start")
        )

        # --- devices and connection
        self.mic_picker, self.speaker_picker, self.device_note = self._device_pickers()
        self.browser_mic: Any = None
        self.browser_speaker: Any = None
        self.browser_slot = W.VBox()
        self.audio_route = self._audio_route()
        devices = W.HBox(
            [self.audio_route, self.mic_picker, self.speaker_picker, self.device_note],
            layout=W.Layout(align_items="center", flex_flow="row wrap"),
        )

        # --- live view, transcript, log, form
        self.live_slot = W.Box(layout=W.Layout(width="100%"))
        self.live_view: Any = None
        if show_live:
            self._attach_live_view()
        self.transcript = TranscriptView()
        self.event_log = EventLog(max_lines=max_log_lines)
        self.tools_view = ToolsView(on_approve=self._approve, on_error=self.show_error)
        # the form is ~400 widgets: built when its tab is first opened (or .form is used)
        self._form: ConfigForm | None = None
        self._form_lock = threading.Lock()
        self._show_config = show_config
        self._debounce_s = debounce_s
        self._form_slot = W.VBox([W.HTML('<span style="color:#777">opening the configuration…</span>')])
        pages = [self.transcript, self.event_log, self.tools_view]
        titles = ["Transcript", "Events", "Tools"]
        if show_config:
            pages.append(self._form_slot)
            titles.append("Configuration")
        self.tabs = W.Tab(children=pages, titles=titles)
        self.tabs.observe(
            self._guard("opening the configuration", self._tab_selected), names="selected_index"
        )

        self.add_class("vlnb-panel")
        self.children = (
            self.stale_watch,
            header,
            errors,
            devices,
            self.browser_slot,
            self.connection,
            self.live_slot,
            self.tabs,
        )
        self._listener = self._pump
        session.add_listener(self._listener)
        self.refresh()

    # ------------------------------------------------------------------ errors

    def _guard(self, what: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a callback: an exception is shown in the error area and logged, never swallowed."""

        def run(*args: Any) -> Any:
            try:
                return fn(*args)
            except Exception as exc:
                log.exception("panel: %s failed", what)
                self.show_error(f"{what} failed: {type(exc).__name__}: {exc}")
                return None

        return run

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            value = secret.reveal()
            if value in text:
                text = text.replace(value, secret.masked())
        return text

    def show_error(self, text: str) -> None:
        """Add a line to the error area (any thread)."""
        text = self._scrub(text)
        with self._error_lock:
            if self._errors and self._errors[-1].endswith(text):
                return
            self._errors.append(f"{time.strftime('%H:%M:%S')} {text}")
            self._render_errors()

    def clear_errors(self) -> None:
        with self._error_lock:
            self._errors.clear()
            self._render_errors()

    @property
    def errors(self) -> list[str]:
        with self._error_lock:
            return list(self._errors)

    def _render_errors(self) -> None:
        parts = []
        for line in self._errors:
            short = one_line(line, 110)
            if short == line:
                parts.append(f'<div style="color:#c62828">⚠ {html.escape(line)}</div>')
            else:  # long: one line, the whole text one click away
                parts.append(
                    f'<details style="color:#c62828"><summary>⚠ {html.escape(short)}</summary>'
                    f'<pre style="white-space:pre-wrap;margin:2px 0 2px 16px">{html.escape(line)}</pre></details>'
                )
        value = "".join(parts)
        _set(self.error_area, "value", value)
        _set(self.clear_errors_button.layout, "display", None if self._errors else "none")

    # ------------------------------------------------------------------ Start / Stop

    def _start_clicked(self, _button: Any) -> None:
        session = self.session
        if self._form is not None:
            self._form.flush()  # start with what the form shows
        if session.running and phase_of(session.status) in ("idle", "failed"):
            session.stop()  # the previous run is finishing: let it end first
        self._failure_shown = None
        session.start()
        if self.browser_mic is not None and session.mic_spec is self.browser_mic:
            # one Start: the click is the user gesture the page needs to open its microphone
            start_capture = getattr(self.browser_mic, "start_capture", None)
            if callable(start_capture) and not self.browser_mic.capturing:
                start_capture()
        self.refresh()

    def _stop_clicked(self, _button: Any) -> None:
        if self._stopping:
            return
        self._stopping = True
        self.refresh()

        def stop() -> None:
            try:
                if self.talk_button.value:
                    self.talk_button.value = False
                self.session.stop()
                if self.browser_mic is not None and self.browser_mic.capturing:
                    self.browser_mic.stop_capture()  # release the page's microphone too
            except Exception as exc:
                log.exception("panel: stop failed")
                self.show_error(f"stop failed: {type(exc).__name__}: {exc}")
            finally:
                self._stopping = False
                self.refresh()

        threading.Thread(target=stop, name="voicelive-panel-stop", daemon=True).start()

    # ------------------------------------------------------------------ refreshing

    def _pump(self, session: Any) -> None:
        """The one session listener (engine thread, ≤ 20 Hz)."""
        if self._closed:
            return
        status = session.status
        final = phase_of(status) in ("idle", "failed")
        now = time.monotonic()
        if now - self._last_refresh < MIN_REFRESH_S and not final:
            return
        if self._lock.acquire(blocking=False):  # never wait for the kernel thread here
            try:
                self._last_refresh = now
                self._refresh_locked()
            except Exception as exc:
                log.exception("panel: refresh failed")
                self.show_error(f"panel refresh failed: {type(exc).__name__}: {exc}")
            finally:
                self._lock.release()
        if final:
            self._settle()

    def _settle(self) -> None:
        """After the last pump call the run is still finishing: refresh once it has ended."""
        with self._settle_lock:
            if self._settling:
                return
            self._settling = True

        def settle() -> None:
            deadline = time.monotonic() + 10
            while self.session.running and time.monotonic() < deadline:
                time.sleep(0.02)
            self._settling = False
            self.refresh()

        threading.Thread(target=settle, name="voicelive-panel-settle", daemon=True).start()

    def refresh(self) -> None:
        """Bring every part of the panel up to date (any thread)."""
        if self._closed:
            return
        try:
            with self._lock:
                self._refresh_locked()
        except Exception as exc:
            log.exception("panel: refresh failed")
            self.show_error(f"panel refresh failed: {type(exc).__name__}: {exc}")

    def _refresh_locked(self) -> None:
        session = self.session
        status = session.status
        phase = phase_of(status)
        running = session.running
        self.phase = phase
        _set(self.light, "value", self._light_html(phase))
        shown = self._scrub("stopping…" if self._stopping else status)
        if phase == "connected" and not self._stopping:
            shown = with_expiry(
                shown,
                getattr(session, "expires_in_s", None),
                renews=bool(getattr(session, "rollover", False)),
            )
        _set(
            self.status,
            "value",
            f'<code title="{html.escape(shown)}" style="white-space:nowrap">{html.escape(one_line(shown))}</code>',
        )
        manual = self._manual()
        _set(self.talk_button.layout, "display", None if manual else "none")
        _set(self.talk_button, "disabled", phase != "connected")
        _set(self.start_button, "disabled", self._stopping or phase in ("connecting", "connected"))
        _set(self.stop_button, "disabled", self._stopping or not running)
        if "failed" in status and status != self._failure_shown:
            self._failure_shown = status
            self.show_error(status)
        live = session.session
        key = (id(live), getattr(live, "emulator_url", None))
        if key != self._connection_key:
            self._connection_key = key
            _set(self.connection, "value", self._connection_html())
        self.transcript.update_from(session)
        self.event_log.update_from(session)
        self.tools_view.update_from(session)
        self._sync_form()

    # ------------------------------------------------------------------ push-to-talk

    def _manual(self) -> bool:
        """Manual turn detection: ``turn_detection`` is off (``null``) in the configuration."""
        config = self.session.config
        return "turn_detection" in config.to_dict() and config.turn_detection is None

    def _talk_toggled(self, change: Any) -> None:
        """Pressed: drop what the input buffer holds; released: commit it and ask for a response
        (what the protocol wants without server VAD). Sent from a helper thread (never blocks)."""
        pressed = bool(change["new"])
        session = self.session
        _set(self.talk_button, "description", "Release to send" if pressed else "Hold to talk")
        _set(self.talk_button, "button_style", "warning" if pressed else "")
        if not session.running or phase_of(session.status) != "connected":
            return

        def send() -> None:
            try:
                if pressed:
                    session.send({"type": "input_audio_buffer.clear"})
                else:
                    session.commit()
                    session.create_response()
                    self.talks += 1
            except Exception as exc:
                log.exception("panel: push-to-talk failed")
                self.show_error(f"push-to-talk failed: {type(exc).__name__}: {exc}")

        threading.Thread(target=send, name="voicelive-panel-talk", daemon=True).start()

    def _approve(self, approval_request_id: str, approve: bool) -> None:
        """From the Tools section's Approve / Deny buttons (a helper thread): answer the request."""
        self.session.approve(approval_request_id, approve)
        self.refresh()

    @staticmethod
    def _light_html(phase: str) -> str:
        return (
            f'<span data-phase="{phase}" title="{phase}" '
            f'style="color:{COLORS[phase]};font-size:22px;line-height:22px">●</span>'
        )

    # ------------------------------------------------------------------ configuration, both ways

    @property
    def form(self) -> ConfigForm | None:
        """The configuration form (built on first use; ``None`` with ``show_config=False``)."""
        if self._form is None and self._show_config:
            with self._form_lock:
                if self._form is None:
                    self._synced_config = self.session.config
                    form = ConfigForm(
                        self.session.config,
                        on_change=self._guard("applying the configuration", self._config_changed),
                        debounce_s=self._debounce_s,
                        on_error=self.show_error,
                    )
                    placeholder = self._form_slot.children
                    self._form_slot.children = (form,)
                    for widget in placeholder:
                        widget.close()
                    self._form = form
        return self._form

    def _tab_selected(self, change: Any) -> None:
        if change["new"] is not None and self.tabs.children[change["new"]] is self._form_slot:
            _ = self.form

    def _config_changed(self, config: SessionConfig) -> None:
        """From the form (its debounce thread): live ``session.update``, else kept for the next start."""
        session = self.session
        if session.running:
            try:
                session.config.diff(config)  # session.update cannot express an unset
            except ConfigError:
                self._synced_config = None  # the pump puts the form back to what the session has
                raise
            paths = _paths(session.config.diff(config))
            future = session.update(config, wait=False)
            self._synced_config = config
            if future is not None:
                future.add_done_callback(self._update_done)
                future.add_done_callback(lambda f, paths=paths: self._confirm(f, paths))
        else:
            session.update(config)
            self._synced_config = config

    def _confirm(self, future: Any, paths: list[str]) -> None:
        """``session.updated`` arrived for a change from the form: mark those fields applied."""
        form = self._form
        if form is None or future.cancelled() or future.exception() is not None:
            return
        if future.result() is not None:
            form.confirm_applied(paths)

    def _update_done(self, future: Any) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            self.show_error(f"session.update failed: {type(exc).__name__}: {exc}")

    def _sync_form(self) -> None:
        """Show the session's configuration when it changed elsewhere (``update`` from a cell,
        acknowledged by ``session.updated``) — never while the user's own change is pending."""
        form = self._form
        config = self.session.config
        live = self.session.session
        if form is not None and live is not None:
            form.set_effective(live.effective_session())
        if form is None or config is self._synced_config or form.pending or form.errors:
            return  # never over what the user is typing (a pending change, a refused value)
        self._synced_config = config
        if not same_value(config.to_dict(), form.config.to_dict()):
            form.set_config(config)

    # ------------------------------------------------------------------ devices

    def _device_pickers(self) -> tuple[Any, Any, Any]:
        ok, reason, devices = True, "", []
        try:
            from ..audio import device

            ok, reason = device.audio_available()
            if ok:
                devices = list(device.list_devices())
        except Exception as exc:  # no device module yet, no PortAudio, …: say so in the panel
            ok, reason = False, f"{type(exc).__name__}: {exc}"
            log.info("panel: audio devices unavailable: %s", reason)
        pickers = []
        for kind, attr in (("input", "mic_spec"), ("output", "speaker_spec")):
            usable = [d for d in devices if getattr(d, "inputs" if kind == "input" else "outputs", 0) > 0]
            choices: dict[str, Any] = {DEFAULT_LABEL: "auto", NONE_LABEL: False}
            for d in usable:
                choices[f"{d.index}: {d.name}"] = d.index
            current = getattr(self.session, attr)
            label = _label_for(current, choices, usable)
            picker = W.Dropdown(
                options=list(choices),
                value=label,
                description="microphone" if kind == "input" else "speaker",
                disabled=not ok,
                layout=W.Layout(width="340px"),
            )
            self._device_choices[attr] = choices
            picker.observe(
                self._guard(f"choosing the {kind} device", self._device_chosen(attr)), names="value"
            )
            pickers.append(picker)
        note = W.HTML(
            "" if ok else f'<span style="color:#777">audio devices unavailable: {html.escape(reason)}</span>'
        )
        return pickers[0], pickers[1], note

    def _device_chosen(self, attr: str) -> Callable[[Any], None]:
        def chosen(change: Any) -> None:
            setattr(self.session, attr, self._device_choices[attr][change["new"]])
            if self.session.running:
                self.device_note.value = (
                    '<span style="color:#777">device changes apply at the next start</span>'
                )

        return chosen

    # ------------------------------------------------------------------ browser audio

    def _audio_route(self) -> Any:
        """``kernel`` (sounddevice devices, the pickers) or ``browser`` (the page's microphone and
        speaker, for remote kernels). ``browser`` is chosen by itself when the kernel has no audio
        device and both ``mic`` and ``speaker`` are ``"auto"``; the user can switch either way."""
        self._kernel_specs: tuple[Any, Any] = (self.session.mic_spec, self.session.speaker_spec)
        try:
            from ..audio import browser
        except Exception as exc:  # anywidget missing: only the kernel's devices
            log.info("panel: browser audio unavailable: %s", exc)
            return W.ToggleButtons(
                options=["kernel"], value="kernel", disabled=True, layout=W.Layout(display="none")
            )
        mic, speaker = self.session.mic_spec, self.session.speaker_spec
        already = isinstance(mic, browser.BrowserMicrophone) or isinstance(speaker, browser.BrowserSpeaker)
        auto = mic in (True, "auto") and speaker in (True, "auto") and self.mic_picker.disabled
        route = W.ToggleButtons(
            options=["kernel", "browser"],
            value="browser" if already or auto else "kernel",
            tooltips=["the kernel's sound devices", "this browser tab's microphone and speaker"],
            style={"button_width": "90px"},
            description="audio",
        )
        if already:
            self.browser_mic = mic if isinstance(mic, browser.BrowserMicrophone) else None
            self.browser_speaker = speaker if isinstance(speaker, browser.BrowserSpeaker) else None
            self._kernel_specs = ("auto", "auto")
            self._show_browser_audio()
        elif auto:
            self._use_browser_audio()
        route.observe(self._guard("choosing where audio goes", self._route_chosen), names="value")
        return route

    def _use_browser_audio(self) -> None:
        from ..audio.browser import BrowserMicrophone, BrowserSpeaker

        if self.browser_mic is None:
            self.browser_mic = BrowserMicrophone(sample_rate=self.session.config.input_sample_rate)
        if self.browser_speaker is None:
            self.browser_speaker = BrowserSpeaker()
        self._kernel_specs = (self.session.mic_spec, self.session.speaker_spec)
        self.session.mic_spec = self.browser_mic
        self.session.speaker_spec = self.browser_speaker
        self._show_browser_audio()

    def _show_browser_audio(self) -> None:
        shown = [w.widget for w in (self.browser_mic, self.browser_speaker) if w is not None]
        self.browser_slot.children = tuple(shown)

    def _route_chosen(self, change: Any) -> None:
        if change["new"] == "browser":
            self._use_browser_audio()
        else:
            self.session.mic_spec, self.session.speaker_spec = self._kernel_specs
            self.browser_slot.children = ()
        if self.session.running:
            self.device_note.value = '<span style="color:#777">device changes apply at the next start</span>'

    # ------------------------------------------------------------------ connection

    def _connection_html(self) -> str:
        summary = self.session.connection_summary()
        if summary.secret is not None and summary.secret not in self._secrets:
            self._secrets.append(summary.secret)
        if summary.emulator:
            where = (
                '<span style="background:#6a1b9a;color:white;border-radius:4px;padding:0 6px">'
                "built-in emulator</span>"
            )
            if summary.emulator_url:
                where += f" <code>{html.escape(summary.emulator_url)}</code>"

            where += (
                f' <span class="vlnb-emulator-note" style="color:#777">({html.escape(EMULATOR_NOTE)})</span>'
            )
            auth = "local emulator key"
        else:
            where = f"<code>{html.escape(summary.endpoint)}</code>"
            if summary.auth == "api-key":
                auth = f"api-key <code>{html.escape(summary.key or '')}</code>"
            elif summary.auth == "token credential":
                auth = f"token credential ({html.escape(summary.credential_type or '')})"
            else:
                auth = "Microsoft Entra ID (DefaultAzureCredential)"
        model = html.escape(summary.model)
        return (
            f'<div style="font-size:12px">endpoint {where} · auth {auth} · model <code>{model}</code>'
            f" · api-version <code>{html.escape(summary.api_version)}</code></div>"
        )

    # ------------------------------------------------------------------ live view

    def _attach_live_view(self) -> None:
        try:
            from . import live as module
        except ImportError as exc:
            self.live_slot.children = (
                W.HTML(f'<span style="color:#777">live view not available: {html.escape(str(exc))}</span>'),
            )
            return
        try:
            view = module.LiveView()
            view.attach(self.session)
        except Exception as exc:
            log.exception("panel: the live view failed")
            self.live_slot.children = (
                W.HTML(f'<span style="color:#777">live view failed: {html.escape(str(exc))}</span>'),
            )
            self.show_error(f"live view failed: {type(exc).__name__}: {exc}")
            return
        self.live_view = view
        self.window_picker = W.Dropdown(
            options=[(f"{w:g} s", w) for w in module.WINDOW_CHOICES],
            value=view.window_s if view.window_s in module.WINDOW_CHOICES else module.WINDOW_CHOICES[0],
            description="window",
            tooltip="seconds of the live view",
            layout=W.Layout(width="170px"),
        )
        self.window_picker.observe(
            self._guard("changing the live window", lambda change: view.set_window(change["new"])),
            names="value",
        )
        self.live_slot.children = (W.VBox([self.window_picker, view], layout=W.Layout(width="100%")),)

    # ------------------------------------------------------------------ lifetime

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget, with a text fallback that says what to do where it cannot be drawn (a
        reopened notebook whose kernel restarted, a static viewer)."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            bundle["text/plain"] = (
                "voicelive_nb control panel (live widgets: drawn only while the kernel that made it "
                "runs; after a kernel restart, re-run this cell)"
            )
        return bundle

    def close(self) -> None:
        """Detach from the session and close every widget of the panel."""
        self._closed = True
        self.session.remove_listener(self._listener)
        if self._form is not None:
            self._form.close()
        if self.live_view is not None:
            detach = getattr(self.live_view, "detach", None)
            if callable(detach):
                try:
                    detach()
                except Exception:
                    log.exception("panel: detaching the live view failed")
        for widget in widget_tree(self):
            if widget is not self:
                widget.close()
        super().close()


def _label_for(spec: Any, choices: dict[str, Any], devices: list[Any]) -> str:
    """The picker label of a ``mic=`` / ``speaker=`` value (added to ``choices`` if new)."""
    if spec is True or spec == "auto":
        return DEFAULT_LABEL
    if spec is False or spec is None:
        return NONE_LABEL
    if isinstance(spec, int):
        for label, value in choices.items():
            if value == spec and label not in (DEFAULT_LABEL, NONE_LABEL):
                return label
        label = f"device {spec}"
    elif isinstance(spec, str):
        for d in devices:
            if d.name == spec:
                return f"{d.index}: {d.name}"
        label = spec
    else:
        label = _FRIENDLY.get(type(spec).__name__, f"custom ({type(spec).__name__})")
    choices[label] = spec
    return label


#: What a person calls the audio objects a ``mic=`` / ``speaker=`` can be.
_FRIENDLY = {
    "BrowserMicrophone": "this browser tab's microphone",
    "BrowserSpeaker": "this browser tab's speaker",
    "MicrophoneSource": "a microphone",
    "SpeakerSink": "a speaker",
    "WavSource": "a WAV file",
    "WavSink": "a WAV file",
    "ArraySource": "an array of samples",
    "BufferSink": "a memory buffer",
}


def _paths(delta: Any, prefix: str = "") -> list[str]:
    """The dotted paths of the leaves of a ``SessionConfig.diff`` mapping."""
    out: list[str] = []
    if isinstance(delta, dict):
        for key, value in delta.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if (
                isinstance(value, dict)
                and value
                and path
                in (
                    "turn_detection",
                    "voice",
                    "input_audio_noise_reduction",
                    "input_audio_echo_cancellation",
                    "input_audio_transcription",
                    "turn_detection.end_of_utterance_detection",
                )
            ):
                out.extend(_paths(value, path))
            else:
                out.append(path)
    return out
