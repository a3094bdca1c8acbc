"""The transcript and the event log of a session, as HTML widgets fed from the engine pump.

Both have ``update_from(notebook_session)``, called by the panel's one listener on the engine
thread (≤ 20 Hz) and from the kernel's thread after Start/Stop. They rebuild their HTML only
when what they show changed and set the ``value`` trait only when the text differs, so a quiet
session sends nothing. All text from the wire is HTML-escaped.
"""

from __future__ import annotations

import html
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, NamedTuple

import ipywidgets as W  # type: ignore[import-untyped]

__all__ = ["AUDIO_DELTA_TYPES", "EventLog", "LogLine", "TranscriptView", "summarize"]

#: Event types hidden by "hide audio deltas" (many per second while the assistant speaks).
AUDIO_DELTA_TYPES = frozenset(
    {
        "response.audio.delta",
        "response.audio_transcript.delta",
        "response.audio_timestamp.delta",
        "response.animation_viseme.delta",
        "response.animation_blendshapes.delta",
    }
)
_SUMMARY_MAX = 140


def _short(text: str, limit: int = _SUMMARY_MAX) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def summarize(event: Any) -> str:
    """A one-line summary of a server event (no audio payloads)."""
    etype = getattr(event, "type", "")
    if etype == "error":
        err = _mapping(getattr(event, "error", None))
        code = err.get("code") or err.get("type") or "error"
        param = f" (param {err['param']})" if err.get("param") else ""
        return _short(f"{code}: {err.get('message', '')}{param}")
    if etype in ("session.created", "session.updated"):
        session = _mapping(getattr(event, "session", None))
        td = session.get("turn_detection")
        if isinstance(td, Mapping):
            vad = f"turn_detection {td.get('type')}"
            if "threshold" in td:
                vad += f" threshold {td['threshold']}"
        else:
            vad = "turn_detection null (manual)" if "turn_detection" in session else ""
        voice = session.get("voice")
        name = voice.get("name") if isinstance(voice, Mapping) else voice
        return _short(", ".join(p for p in (vad, f"voice {name}" if name else "") if p))
    if etype in ("response.created", "response.done"):
        response = _mapping(getattr(event, "response", None))
        details = _mapping(response.get("status_details"))
        reason = details.get("reason")
        return _short(
            f"{response.get('status', '')}{f' ({reason})' if reason else ''} {response.get('id', '')}"
        )
    if etype == "response.audio.delta":
        return f"{len(getattr(event, 'delta', '') or '') * 3 // 4} bytes"
    if etype.startswith("conversation.item.") and hasattr(event, "item"):
        item = _mapping(event.item)
        return _short(" ".join(str(item.get(k, "")) for k in ("type", "role", "id") if item.get(k)))
    for attr in ("transcript", "text", "delta"):
        value = getattr(event, attr, None)
        if isinstance(value, str):
            return _short(repr(value))
    for attr, unit in (("audio_start_ms", " ms"), ("audio_end_ms", " ms")):
        value = getattr(event, attr, None)
        if value is not None:
            return f"at {value}{unit}"
    for attr in ("item_id", "response_id", "call_id"):
        value = getattr(event, attr, None)
        if value:
            return str(value)
    return ""


def _set_value(widget: Any, value: str) -> None:
    if widget.value != value:
        widget.value = value


class LogLine(NamedTuple):
    seq: int
    t: float
    type: str
    summary: str
    error: bool

    def text(self) -> str:
        return f"{self.t:8.3f}  {self.type}  {self.summary}".rstrip()


class TranscriptView(W.VBox):  # type: ignore[misc]
    """User and assistant turns as bubbles; text still streaming in italics.

    Two HTML parts: the finished turns (sent again only when a turn finishes) and the turns still
    streaming (a few hundred bytes, sent as they grow), so a long conversation does not resend the
    whole transcript 20 times a second.
    """

    def __init__(self, max_entries: int = 100, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._shown: tuple[tuple[Any, ...], tuple[Any, ...]] | None = None
        self.history = W.HTML()
        self.live = W.HTML()
        self.children = (self.history, self.live)
        self.layout.max_height = self.layout.max_height or "320px"
        self.layout.overflow = "auto"
        self.render([])

    @property
    def value(self) -> str:
        """The HTML shown (both parts)."""
        return str(self.history.value) + str(self.live.value)

    def update_from(self, session: Any) -> None:
        """Show ``session.transcript`` (a list of ``TranscriptEntry(role, item_id, text, final)``)."""
        self.render(session.transcript)

    def render(self, entries: list[Any]) -> None:
        shown = [tuple(e) for e in entries[-self.max_entries :]]
        split = next((i for i, e in enumerate(shown) if not e[3]), len(shown))
        parts = (tuple(shown[:split]), tuple(shown[split:]))
        with self._lock:
            if parts == self._shown:
                return
            before = self._shown
            self._shown = parts
            if before is None or parts[0] != before[0]:
                _set_value(self.history, self._html(parts[0], empty=not shown))
            if before is None or parts[1] != before[1]:
                _set_value(self.live, self._html(parts[1], empty=False))

    @staticmethod
    def _html(entries: tuple[Any, ...], *, empty: bool) -> str:
        if empty:
            return '<div style="color:#777;font-style:italic">no conversation yet</div>'
        parts = []
        for role, _item, text, final in entries:
            user = role == "user"
            body = html.escape(text) if text else "…"
            if not final:
                body = f"<i>{body}</i>"
            parts.append(
                f'<div class="vl-{html.escape(role)}" style="margin:3px 0;padding:3px 8px;border-radius:9px;'
                f'{"margin-left:20%;background:#e3f2fd" if user else "margin-right:20%;background:#f1f1f1"}">'
                f'<small style="color:#777">{html.escape(role)}</small> {body}</div>'
            )
        return "".join(parts)


class EventLog(W.VBox):  # type: ignore[misc]
    """The last ``max_lines`` server events: time (s since the first), type, summary; errors in red.

    A filter box (substring of type or summary) and a "hide audio deltas" checkbox; the events are
    read incrementally from ``session.session.timed_events()``.
    """

    def __init__(self, max_lines: int = 500, *, min_redraw_s: float = 0.2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_lines = max_lines
        self.min_redraw_s = min_redraw_s
        self._dirty = False
        self._last_draw = 0.0
        self._lock = threading.Lock()
        self._lines: deque[LogLine] = deque(maxlen=max_lines)
        self._deltas: deque[LogLine] = deque(maxlen=max_lines)
        self._seq = 0
        self._t0: float | None = None
        self._source: Any = None
        self._last_event: tuple[float, Any] | None = None
        self._shown_key: tuple[Any, ...] | None = None
        self.filter = W.Text(
            placeholder="filter (type or text)", continuous_update=True, layout=W.Layout(width="260px")
        )
        self.hide_deltas = W.Checkbox(value=True, description="hide audio deltas", indent=False)
        self.count = W.HTML()
        self.body = W.HTML(layout=W.Layout(max_height="320px", overflow="auto"))
        self.filter.observe(self._controls_changed, names="value")
        self.hide_deltas.observe(self._controls_changed, names="value")
        self.children = (W.HBox([self.filter, self.hide_deltas, self.count]), self.body)
        self._render()

    # ------------------------------------------------------------------ input

    def update_from(self, session: Any) -> None:
        """Take the events received since the last call from ``session.session`` and redraw."""
        live = getattr(session, "session", None)
        if live is None:
            return
        timed = live.timed_events()
        added = self._take(live, timed)
        if added or self._dirty:
            self._dirty = True
            if time.monotonic() - self._last_draw >= self.min_redraw_s or not getattr(
                session, "running", False
            ):
                self._render()

    def _take(self, live: Any, timed: list[tuple[float, Any]]) -> bool:
        with self._lock:
            if live is not self._source:
                self._source, self._last_event = live, None
            start = 0
            if self._last_event is not None:
                last_stamp, last_event = self._last_event
                for i in range(len(timed) - 1, -1, -1):
                    if timed[i][1] is last_event:
                        start = i + 1
                        break
                    if timed[i][0] < last_stamp:  # the last one seen was dropped from the session's
                        start = i + 1  # bounded history: everything after its time is new
                        break
            new = timed[start:]
            if not new:
                return False
            self._last_event = new[-1]
            for stamp, event in new[-2 * self.max_lines :]:
                self._add(stamp, event)
        return True

    def add(self, stamp: float, event: Any) -> None:
        """Add one event (``stamp``: ``time.monotonic()`` at receipt)."""
        with self._lock:
            self._add(stamp, event)
        self._render()

    def _add(self, stamp: float, event: Any) -> None:
        if self._t0 is None:
            self._t0 = stamp
        etype = str(getattr(event, "type", type(event).__name__))
        try:
            summary = summarize(event)
        except Exception as exc:  # a summary must never break the log
            summary = f"(no summary: {type(exc).__name__})"
        line = LogLine(self._seq, stamp - self._t0, etype, summary, etype == "error")
        self._seq += 1
        (self._deltas if etype in AUDIO_DELTA_TYPES else self._lines).append(line)

    def clear(self) -> None:
        with self._lock:
            self._lines.clear()
            self._deltas.clear()
            self._shown_key = None
        self._render()

    # ------------------------------------------------------------------ output

    @property
    def lines(self) -> list[LogLine]:
        """The lines shown now (after filter and "hide audio deltas")."""
        with self._lock:
            return self._visible()

    def _visible(self) -> list[LogLine]:
        lines: list[LogLine] = list(self._lines)
        if not self.hide_deltas.value:
            lines = sorted([*lines, *self._deltas], key=lambda line: line.seq)
        needle = self.filter.value.strip().lower()
        if needle:
            lines = [ln for ln in lines if needle in ln.type.lower() or needle in ln.summary.lower()]
        return lines[-self.max_lines :]

    def _controls_changed(self, _change: Any) -> None:
        self._render()

    def _render(self) -> None:
        with self._lock:
            self._dirty = False
            self._last_draw = time.monotonic()
            lines = self._visible()
            key = (len(lines), lines[-1].seq if lines else -1, self.filter.value, self.hide_deltas.value)
            if key == self._shown_key:
                return  # e.g. only hidden audio deltas arrived: nothing to send
            self._shown_key = key
            rows = []
            for ln in lines:
                style = ' style="color:#c62828;font-weight:bold"' if ln.error else ""
                rows.append(
                    f"<div{style}>{ln.t:8.3f}  <b>{html.escape(ln.type)}</b>  {html.escape(ln.summary)}</div>"
                )
            value = (
                '<div style="font-family:monospace;font-size:12px;white-space:pre">'
                + "".join(rows)
                + "</div>"
                if rows
                else '<div style="color:#777;font-style:italic">no events</div>'
            )
            if self.body.value != value:
                self.body.value = value
            count = f'<span style="color:#777">{len(lines)} events</span>'
            if self.count.value != count:
                self.count.value = count
