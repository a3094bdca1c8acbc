"""``SessionPanel``: the control panel of a :class:`~voicelive_nb.notebook_session.NotebookSession`.

Start / Stop, a state light with the status text, microphone and speaker pickers, the connection
(endpoint or the built-in emulator; the API key only masked), an error area, a slot for the live
view, the transcript, the event log, and the generated :class:`~voicelive_nb.widgets.forms.ConfigForm`
wired to ``session.update`` both ways.

Threads (see design.md, "The threading model"):

* Widget callbacks run on the kernel's thread and only post work to the session's engine through
  its public non-blocking API, and the panel starts no thread of its own: Start calls
  ``session.start()``; Stop ``session.stop(wait=False)``; push-to-talk
  ``session.send(..., wait=False)`` / ``session.end_turn(wait=False)``; Approve / Deny
  ``session.approve(..., wait=False)``; form changes ``session.update(config, wait=False)`` from the
  form's debounce (on the kernel's loop in Jupyter). Each returns a future; its outcome (an error
  included) comes back through a done-callback on the engine thread.
* ONE ``session.add_listener`` callback, on the engine thread at ≤ 20 Hz and once more when the run
  has ended, refreshes status, light, transcript, log and form. It never blocks on the kernel thread:
  if a refresh from the kernel thread holds the lock, that refresh runs once more when it is done,
  so no news is lost. It sets only traits whose value changed.
* Every callback is wrapped: an exception is shown in the error area and logged, never swallowed.
* No widget state holds a secret: the key is shown only as ``Secret.masked()``, and any text shown
  (errors, status) is scrubbed of the key.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as W  # type: ignore[import-untyped]

from .audio_route import DEFAULT_LABEL as DEFAULT_LABEL  # re-exported: it lived here
from .audio_route import NONE_LABEL as NONE_LABEL
from .audio_route import AudioRoute
from .config_link import ConfigLink
from .forms import ConfigForm, widget_tree
from .log import EventLog, TranscriptView
from .notices import EMULATOR_NOTE as EMULATOR_NOTE  # re-exported: it lived here
from .notices import STATUS_MAX as STATUS_MAX
from .notices import ConnectionLine, ErrorArea, one_line
from .tools import ToolsView

__all__ = ["COLORS", "SessionPanel", "phase_of"]

log = logging.getLogger("voicelive_nb.widgets")

#: Colour of the state light per phase.
COLORS = {"idle": "#9e9e9e", "connecting": "#ffb300", "connected": "#43a047", "failed": "#e53935"}
#: The pump calls at 20 Hz; a little slack so that jitter does not halve the rate.
MIN_REFRESH_S = 0.045
STALE_TEXT = "kernel restarted — this panel is no longer connected; re-run the cell"

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
        self._failure_shown: str | None = None
        self._last_refresh = 0.0
        self._stopping = False
        self._missed = False  # a pump call found the lock taken (see _catch_up)
        self._closed = False
        self.phase = "idle"
        # first, so that the key is known (and scrubbed) before any text is shown
        self._connection = ConnectionLine(session)
        self.connection = self._connection.widget

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
        self._error_box = ErrorArea(self._connection.scrub, self._guard)
        self.error_area = self._error_box.area
        self.clear_errors_button = self._error_box.clear_button

        # --- devices
        self.audio = AudioRoute(session, self._guard)
        self.mic_picker, self.speaker_picker = self.audio.mic_picker, self.audio.speaker_picker
        self.device_note, self.browser_slot = self.audio.device_note, self.audio.browser_slot
        self.audio_route = self.audio.route

        # --- live view, transcript, log, form
        self.live_slot = W.Box(layout=W.Layout(width="100%"))
        self.live_view: Any = None
        if show_live:
            self._attach_live_view()
        self.transcript = TranscriptView()
        self.event_log = EventLog(max_lines=max_log_lines)
        self.tools_view = ToolsView(on_approve=self._approve, on_error=self.show_error)
        # the form is ~400 widgets: built when its tab is first opened (or .form is used)
        self.config_link = ConfigLink(
            session,
            enabled=show_config,
            debounce_s=debounce_s,
            guard=self._guard,
            show_error=self.show_error,
        )
        pages = [self.transcript, self.event_log, self.tools_view]
        titles = ["Transcript", "Events", "Tools"]
        if show_config:
            pages.append(self.config_link.slot)
            titles.append("Configuration")
        self.tabs = W.Tab(children=pages, titles=titles)
        self.tabs.observe(
            self._guard("opening the configuration", self._tab_selected), names="selected_index"
        )

        self.add_class("vlnb-panel")
        self.children = (
            self.stale_watch,
            header,
            self._error_box.box,
            self.audio.box,
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
        return self._connection.scrub(text)

    def show_error(self, text: str) -> None:
        """Add a line to the error area (any thread)."""
        self._error_box.show(text)

    def clear_errors(self) -> None:
        self._error_box.clear()

    @property
    def errors(self) -> list[str]:
        return self._error_box.lines

    @property
    def browser_mic(self) -> Any:
        """The page's microphone widget once browser audio was chosen (else ``None``)."""
        return self.audio.browser_mic

    @property
    def browser_speaker(self) -> Any:
        """The page's speaker widget once browser audio was chosen (else ``None``)."""
        return self.audio.browser_speaker

    # ------------------------------------------------------------------ Start / Stop

    def _start_clicked(self, _button: Any) -> None:
        session = self.session
        self.config_link.flush()  # start with what the form shows
        if session.running and phase_of(session.status) in ("idle", "failed"):
            session.stop()  # the previous run is finishing: let it end first
        self._failure_shown = None
        session.start()
        self.audio.start_capture()  # one Start: the click is the gesture the page's microphone needs
        self.refresh()

    def _stop_clicked(self, _button: Any) -> None:
        if self._stopping:
            return
        self._stopping = True
        if self.talk_button.value:
            self.talk_button.value = False
        self.refresh()
        try:
            future = self.session.stop(wait=False)  # the engine stops it; this thread never waits
        except Exception as exc:
            self._stopped(None, exc)
            return
        future.add_done_callback(self._stopped)

    def _stopped(self, future: Any, error: BaseException | None = None) -> None:
        """The stop finished (engine thread): release the page's microphone, show the outcome."""
        try:
            if error is None and future is not None:
                error = future.exception()
            if error is not None:
                log.error("panel: stop failed: %s", error)
                self.show_error(f"stop failed: {type(error).__name__}: {error}")
            self.audio.stop_capture()
        except Exception as exc:
            log.exception("panel: stop failed")
            self.show_error(f"stop failed: {type(exc).__name__}: {exc}")
        finally:
            self._stopping = False
            self.refresh()

    # ------------------------------------------------------------------ refreshing

    def _pump(self, session: Any) -> None:
        """The one session listener (engine thread, ≤ 20 Hz, and once more when the run has ended)."""
        if self._closed:
            return
        status = session.status
        final = phase_of(status) in ("idle", "failed") or not session.running
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
            self._catch_up()
        else:
            self._missed = True  # the refresh holding the lock runs once more when it is done

    def _catch_up(self) -> None:
        """A pump call found the lock taken: refresh again, so its news is never lost."""
        while self._missed and not self._closed:
            self._missed = False
            self.refresh()

    def refresh(self) -> None:
        """Bring every part of the panel up to date (any thread)."""
        if self._closed:
            return
        try:
            with self._lock:
                self._missed = False
                self._refresh_locked()
        except Exception as exc:
            log.exception("panel: refresh failed")
            self.show_error(f"panel refresh failed: {type(exc).__name__}: {exc}")
        self._catch_up()

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
        self._connection.refresh()
        self.transcript.update_from(session)
        self.event_log.update_from(session)
        self.tools_view.update_from(session)
        self.config_link.sync()

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
        try:  # on the engine; this thread never waits for the network
            if pressed:
                future = session.send({"type": "input_audio_buffer.clear"}, wait=False)
            else:
                future = session.end_turn(wait=False)
                self.talks += 1
        except Exception as exc:
            self._talk_failed(exc)
            return
        future.add_done_callback(self._talk_sent)

    def _talk_sent(self, future: Any) -> None:
        exc = future.exception()
        if exc is not None:
            self._talk_failed(exc)

    def _talk_failed(self, exc: BaseException) -> None:
        log.error("panel: push-to-talk failed: %s", exc)
        self.show_error(f"push-to-talk failed: {type(exc).__name__}: {exc}")

    def _approve(self, approval_request_id: str, approve: bool) -> Any:
        """From the Tools section's Approve / Deny buttons: answer on the engine (a future)."""
        future = self.session.approve(approval_request_id, approve, wait=False)
        future.add_done_callback(lambda _f: self.refresh())
        return future

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
        return self.config_link.form

    @property
    def _form(self) -> ConfigForm | None:
        """The form if it was built (reading this never builds it)."""
        return self.config_link.built

    def _tab_selected(self, change: Any) -> None:
        if change["new"] is not None and self.tabs.children[change["new"]] is self.config_link.slot:
            _ = self.form

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
        self.config_link.close()
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
