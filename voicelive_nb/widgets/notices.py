"""What the control panel tells the user besides the session's own views: the connection line and
the error area.

:class:`ConnectionLine` shows where the session connects (endpoint or the built-in emulator, the
kind of authentication with the API key only masked, model, api-version) and owns the secrets any
shown text is scrubbed of. :class:`ErrorArea` keeps the last errors, each scrubbed, on any thread.
"""

from __future__ import annotations

import html
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import ipywidgets as W  # type: ignore[import-untyped]

from ..auth import Secret

__all__ = ["EMULATOR_NOTE", "STATUS_MAX", "ConnectionLine", "ErrorArea", "one_line"]

#: The status line shows at most this much; the whole text is in its tooltip and the error area.
STATUS_MAX = 60
EMULATOR_NOTE = (
    "the built-in emulator ignores instructions and voice: it answers every turn with a short "
    "spoken reply (set AZURE_VOICE_LIVE_ENDPOINT to talk to Azure)"
)


def one_line(text: str, limit: int = STATUS_MAX) -> str:
    """The first line of ``text``, at most ``limit`` characters (an ellipsis if anything is cut)."""
    lines = text.strip().splitlines()
    first = " ".join(lines[0].split()) if lines else ""
    if len(first) > limit:
        return first[: limit - 1] + "…"
    return first + " …" if len(lines) > 1 else first


def _set(widget: Any, name: str, value: Any) -> None:
    if getattr(widget, name) != value:
        setattr(widget, name, value)


class ConnectionLine:
    """The one line saying where the session connects, redrawn when the connection changes; it
    collects the connection's secret first, so that the key is scrubbed before any text shows."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self._secrets: list[Secret] = []
        self._key: Any = object()
        self.widget = W.HTML(self._html())

    def scrub(self, text: str) -> str:
        """``text`` with every known secret replaced by its masked form."""
        for secret in self._secrets:
            value = secret.reveal()
            if value in text:
                text = text.replace(value, secret.masked())
        return text

    def refresh(self) -> None:
        """Redraw if the live connection changed (another run, another emulator URL)."""
        live = self.session.session
        key = (id(live), getattr(live, "emulator_url", None))
        if key != self._key:
            self._key = key
            _set(self.widget, "value", self._html())

    def _html(self) -> str:
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


class ErrorArea:
    """The last ten errors (newest last, a repeat of the last one dropped), each one line with the
    whole text one click away, and a clear button shown while there are any. Any thread."""

    def __init__(self, scrub: Callable[[str], str], guard: Callable[..., Any]) -> None:
        self._scrub = scrub
        self._lock = threading.Lock()
        self._errors: deque[str] = deque(maxlen=10)
        self.area = W.HTML()
        self.clear_button = W.Button(description="clear", layout=W.Layout(width="70px", display="none"))
        self.clear_button.on_click(guard("clear errors", lambda _b: self.clear()))
        self.box = W.HBox([self.area, self.clear_button], layout=W.Layout(align_items="flex-start"))

    def show(self, text: str) -> None:
        """Add a line (scrubbed, with the time)."""
        text = self._scrub(text)
        with self._lock:
            if self._errors and self._errors[-1].endswith(text):
                return
            self._errors.append(f"{time.strftime('%H:%M:%S')} {text}")
            self._render()

    def clear(self) -> None:
        with self._lock:
            self._errors.clear()
            self._render()

    @property
    def lines(self) -> list[str]:
        with self._lock:
            return list(self._errors)

    def _render(self) -> None:
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
        _set(self.area, "value", "".join(parts))
        _set(self.clear_button.layout, "display", None if self._errors else "none")
