"""``ConfigLink``: the control panel's configuration form, wired to the session both ways.

The form (~400 widgets) is built when its tab is first opened or ``panel.form`` is used. Its
changes go to ``session.update(config, wait=False)`` while the session runs (the fields are marked
applied when ``session.updated`` acknowledges them), else they are kept for the next start. The
other way, the panel's refresh shows the session's configuration in the form when it changed
elsewhere (an ``update`` from a cell) — never over an edit still pending or refused — and what the
service reports it uses beside the fields left unset.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as W  # type: ignore[import-untyped]

from ..errors import ConfigError
from ..protocol.config import SessionConfig
from .forms import ConfigForm, same_value

__all__ = ["ConfigLink"]

#: The modelled sub-objects whose leaves a ``SessionConfig.diff`` names one by one.
_OBJECTS = frozenset(
    {
        "turn_detection",
        "voice",
        "input_audio_noise_reduction",
        "input_audio_echo_cancellation",
        "input_audio_transcription",
        "turn_detection.end_of_utterance_detection",
    }
)


class ConfigLink:
    """The panel's configuration form (built on first use) and its two-way link to the session.

    ``guard`` wraps the form's ``on_change`` so that a failure shows in the panel; ``show_error``
    reports a failed ``session.update``. ``slot`` is the tab page the form goes into."""

    def __init__(
        self,
        session: Any,
        *,
        enabled: bool,
        debounce_s: float,
        guard: Callable[[str, Callable[..., Any]], Callable[..., Any]],
        show_error: Callable[[str], None],
    ) -> None:
        self.session = session
        self.enabled = enabled
        self.debounce_s = debounce_s
        self._guard = guard
        self._show_error = show_error
        self._form: ConfigForm | None = None
        self._lock = threading.Lock()
        self._synced: SessionConfig | None = session.config
        self.slot = W.VBox([W.HTML('<span style="color:#777">opening the configuration…</span>')])

    @property
    def built(self) -> ConfigForm | None:
        """The form if it was built (never builds it)."""
        return self._form

    @property
    def form(self) -> ConfigForm | None:
        """The form, built now if needed (``None`` when the panel shows no configuration)."""
        if self._form is None and self.enabled:
            with self._lock:
                if self._form is None:
                    self._synced = self.session.config
                    form = ConfigForm(
                        self.session.config,
                        on_change=self._guard("applying the configuration", self._changed),
                        debounce_s=self.debounce_s,
                        on_error=self._show_error,
                    )
                    placeholder = self.slot.children
                    self.slot.children = (form,)
                    for widget in placeholder:
                        widget.close()
                    self._form = form
        return self._form

    def flush(self) -> None:
        """Before a Start: deliver what the form shows (a change waiting for its debounce)."""
        if self._form is not None:
            self._form.flush()

    def close(self) -> None:
        if self._form is not None:
            self._form.close()

    def _changed(self, config: SessionConfig) -> None:
        """From the form's debounce: a live ``session.update``, else kept for the next start."""
        session = self.session
        if session.running:
            try:
                session.config.diff(config)  # session.update cannot express an unset
            except ConfigError:
                self._synced = None  # the refresh puts the form back to what the session has
                raise
            paths = _paths(session.config.diff(config))
            future = session.update(config, wait=False)
            self._synced = config
            if future is not None:
                future.add_done_callback(self._update_done)
                future.add_done_callback(lambda f, paths=paths: self._confirm(f, paths))
        else:
            session.update(config)
            self._synced = config

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
            self._show_error(f"session.update failed: {type(exc).__name__}: {exc}")

    def sync(self) -> None:
        """Show the session's configuration when it changed elsewhere (``update`` from a cell,
        acknowledged by ``session.updated``) — never while the user's own change is pending."""
        form = self._form
        config = self.session.config
        live = self.session.session
        if form is not None and live is not None:
            form.set_effective(live.effective_session())
        if form is None or config is self._synced or form.pending or form.errors:
            return  # never over what the user is typing (a pending change, a refused value)
        self._synced = config
        if not same_value(config.to_dict(), form.config.to_dict()):
            form.set_config(config)


def _paths(delta: Any, prefix: str = "") -> list[str]:
    """The dotted paths of the leaves of a ``SessionConfig.diff`` mapping."""
    out: list[str] = []
    if isinstance(delta, dict):
        for key, value in delta.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict) and value and path in _OBJECTS:
                out.extend(_paths(value, path))
            else:
                out.append(path)
    return out
