"""The transcript and the event log of a session, as HTML widgets fed from the engine pump.

Both have ``update_from(notebook_session)``, called by the panel's one listener on the engine
thread (≤ 20 Hz) and from the kernel's thread after Start/Stop. They rebuild their HTML only
when what they show changed and set the ``value`` trait only when the text differs, so a quiet
session sends nothing. All text from the wire is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, NamedTuple

import ipywidgets as W  # type: ignore[import-untyped]

from .tools import tool_calls, tool_line

__all__ = [
    "AUDIO_DELTA_TYPES",
    "EventLog",
    "LogLine",
    "TranscriptView",
    "client_summary",
    "elide",
    "summarize",
]

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
    if etype.startswith(("conversation.item.", "response.output_item.")) and hasattr(event, "item"):
        item = _mapping(event.item)
        return tool_item_summary(item) or _short(
            " ".join(str(item.get(k, "")) for k in ("type", "role", "id") if item.get(k))
        )
    if etype == "response.function_call_arguments.done":
        name, args = getattr(event, "name", ""), getattr(event, "arguments", "")
        return _short(f"{name}({args}) {getattr(event, 'call_id', '')}")
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


def tool_item_summary(item: Mapping[str, Any]) -> str:
    """One line for a tool item (function call or output, MCP call, approval request or answer);
    ``""`` for any other item."""
    itype = item.get("type")
    if itype in ("function_call", "mcp_call", "mcp_approval_request"):
        label = ".".join(str(p) for p in (item.get("server_label"), item.get("name")) if p)
        return _short(f"{itype} {label}({item.get('arguments') or ''}) {item.get('id') or ''}".rstrip())
    if itype == "function_call_output":
        return _short(f"function_call_output {item.get('call_id', '')}: {item.get('output', '')!r}")
    if itype == "mcp_approval_response":
        verdict = "approve" if item.get("approve") is True else "deny"
        return _short(f"mcp_approval_response {verdict} {item.get('approval_request_id', '')}")
    if itype == "mcp_list_tools":
        tools = item.get("tools")
        count = len(tools) if isinstance(tools, list) else 0
        return _short(f"mcp_list_tools {item.get('server_label', '')}: {count} tools")
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
    #: ``server`` (received), ``client`` (sent) or ``separator`` (a new session starts here).
    direction: str = "server"
    #: 1 for the first session the log saw, 2 after the first reconnect or restart, …
    session: int = 1
    #: The event (a server event object or a client wire dict), for :meth:`EventLog.details`.
    payload: Any = None

    def text(self) -> str:
        if self.direction == "separator":
            return f"──── {self.summary} ────"
        arrow = ARROWS.get(self.direction, "")
        return f"{arrow} {self.t:8.3f}  {self.type}  {self.summary}".rstrip()


#: ↓ received from the service, ↑ sent by this client.
ARROWS = {"server": "↓", "client": "↑"}
#: Keys whose values are audio (base64): shown as their size, never verbatim.
AUDIO_KEYS = frozenset({"audio", "delta"})
_SECRET_KEYS = frozenset({"authorization", "credential", "api_key", "api-key", "password", "token", "secret"})
_MAX_STRING = 2000


def elide(value: Any, *, key: str = "", etype: str = "") -> Any:
    """A copy of a wire value for display: secrets masked, audio payloads replaced by their size,
    very long strings cut."""
    if isinstance(value, Mapping):
        return {k: elide(v, key=str(k), etype=etype) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [elide(v, key=key, etype=etype) for v in value]
    if isinstance(value, str):
        if key.lower() in _SECRET_KEYS and value:
            return "***"
        audio = key == "audio" or (
            key == "delta" and etype in ("response.audio.delta", "input_audio_buffer.append")
        )
        if audio:
            return f"<audio: {len(value) * 3 // 4} bytes>"
        if len(value) > _MAX_STRING:
            return value[:_MAX_STRING] + f"… <{len(value)} characters>"
    return value


def client_summary(wire: Mapping[str, Any]) -> str:
    """A one-line summary of a client event."""
    etype = str(wire.get("type", ""))
    if etype == "session.update":
        session = _mapping(wire.get("session"))
        return _short(", ".join(sorted(session)) or "(empty)")
    if etype == "conversation.item.truncate":
        return f"{wire.get('item_id', '')} at {wire.get('audio_end_ms', '')} ms"
    if etype == "conversation.item.create":
        item = _mapping(wire.get("item"))
        return tool_item_summary(item) or _short(
            " ".join(str(item.get(k, "")) for k in ("type", "role") if item.get(k))
        )
    if etype == "input_audio_buffer.append":
        return f"{len(str(wire.get('audio', ''))) * 3 // 4} bytes"
    for key in ("item_id", "response_id", "event_id"):
        if wire.get(key):
            return str(wire[key])
    return ""


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
        """Show ``session.transcript`` (a list of ``TranscriptEntry(role, item_id, text, final)``),
        with a ``🔧 name(args) → output`` line per tool call where its item is in the conversation."""
        entries = list(session.transcript)
        calls = tool_calls(session)
        if calls:
            entries = with_tool_lines(entries, calls, _item_order(session))
        self.render(entries)

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
            if role == "tool":
                style = "font-style:italic;" if not final else ""
                parts.append(
                    f'<div class="vl-tool" style="margin:3px 10%;padding:2px 8px;border-radius:6px;'
                    f'background:#e0f2f1;font-family:monospace;font-size:12px;{style}">{html.escape(text)}</div>'
                )
                continue
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
    """An event inspector: the last ``max_lines`` events received (↓) and sent (↑), with their time
    (s since the session's first), type and summary; errors marked ⚠; a separator where a new
    session starts. Selecting a line shows its JSON (secrets masked, audio payloads elided to
    their size) in ``detail``.

    A filter box (substring of type or summary) and a "hide audio deltas" checkbox; the events are
    read incrementally from ``session.session.timed_events()`` and ``sent_events()``.
    """

    def __init__(self, max_lines: int = 500, *, min_redraw_s: float = 0.2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_lines = max_lines
        self.min_redraw_s = min_redraw_s
        self._dirty = False
        self._last_draw = 0.0
        self._lock = threading.RLock()
        self._lines: deque[LogLine] = deque(maxlen=max_lines)
        self._deltas: deque[LogLine] = deque(maxlen=max_lines)
        self._seq = 0
        self._t0: float | None = None
        self._source: Any = None
        self._sessions = 0
        self._last_event: tuple[float, Any] | None = None
        self._last_sent: tuple[float, Any] | None = None
        self._shown_key: tuple[Any, ...] | None = None
        self._by_seq: dict[int, LogLine] = {}
        self._shown_labels: tuple[str, ...] = ()
        self.filter = W.Text(
            placeholder="filter (type or text)", continuous_update=True, layout=W.Layout(width="260px")
        )
        self.hide_deltas = W.Checkbox(value=True, description="hide audio deltas", indent=False)
        self.count = W.HTML()
        self.list = W.Select(options=[], rows=14, layout=W.Layout(width="100%"))
        self.list.add_class("vlnb-event-list")
        self.detail = W.HTML(layout=W.Layout(max_height="320px", overflow="auto"))
        self.body = self.list  # the list of lines (older name)
        self.filter.observe(self._controls_changed, names="value")
        self.hide_deltas.observe(self._controls_changed, names="value")
        self.list.observe(self._selected, names="value")
        hint = W.HTML(
            "<style>.vlnb-event-list select{font-family:monospace;font-size:12px}</style>"
            '<span style="color:#777">↓ received · ↑ sent · select a line to see its JSON</span>'
        )
        self.children = (W.HBox([self.filter, self.hide_deltas, self.count, hint]), self.list, self.detail)
        self._render()

    # ------------------------------------------------------------------ input

    def update_from(self, session: Any) -> None:
        """Take the events received and sent since the last call from ``session.session`` and redraw."""
        live = getattr(session, "session", None)
        if live is None:
            return
        timed = live.timed_events()
        sent_events = getattr(live, "sent_events", None)
        sent = sent_events() if callable(sent_events) else []
        added = self._take(live, timed, sent)
        if added or self._dirty:
            self._dirty = True
            if time.monotonic() - self._last_draw >= self.min_redraw_s or not getattr(
                session, "running", False
            ):
                self._render()

    @staticmethod
    def _new_since(items: list[tuple[float, Any]], last: tuple[float, Any] | None) -> list[tuple[float, Any]]:
        if last is None:
            return items
        last_stamp, last_item = last
        for i in range(len(items) - 1, -1, -1):
            if items[i][1] is last_item:
                return items[i + 1 :]
            if items[i][0] < last_stamp:  # the last one seen was dropped from the session's
                return items[i + 1 :]  # bounded history: everything after its time is new
        return items

    def _take(
        self, live: Any, timed: list[tuple[float, Any]], sent: list[tuple[float, Any]] | None = None
    ) -> bool:
        with self._lock:
            if live is not self._source:
                self._source, self._last_event, self._last_sent = live, None, None
                self._sessions += 1
                self._t0 = None
                if self._seq:  # not the first session: say where the new one starts
                    self._separator(f"session {self._sessions} · {time.strftime('%H:%M:%S')}")
            new = self._new_since(timed, self._last_event)
            new_sent = self._new_since(list(sent or ()), self._last_sent)
            if not new and not new_sent:
                return False
            if new:
                self._last_event = new[-1]
            if new_sent:
                self._last_sent = new_sent[-1]
            merged = sorted(
                [(stamp, 1, event) for stamp, event in new[-2 * self.max_lines :]]
                + [(stamp, 0, wire) for stamp, wire in new_sent[-2 * self.max_lines :]],
                key=lambda row: (row[0], row[1]),
            )
            for stamp, server, payload in merged:
                if server:
                    self._add(stamp, payload)
                else:
                    self._add_sent(stamp, payload)
        return True

    def add(self, stamp: float, event: Any) -> None:
        """Add one received event (``stamp``: ``time.monotonic()`` at receipt)."""
        with self._lock:
            self._add(stamp, event)
        self._render()

    def add_sent(self, stamp: float, wire: Mapping[str, Any]) -> None:
        """Add one sent client event (a wire dict)."""
        with self._lock:
            self._add_sent(stamp, wire)
        self._render()

    def _append(self, line: LogLine) -> None:
        self._seq += 1
        target = self._deltas if line.type in AUDIO_DELTA_TYPES else self._lines
        if len(target) == target.maxlen:
            self._by_seq.pop(target[0].seq, None)
        target.append(line)
        self._by_seq[line.seq] = line

    def _separator(self, text: str) -> None:
        self._append(LogLine(self._seq, 0.0, "", text, False, "separator", self._sessions))

    def _add(self, stamp: float, event: Any) -> None:
        if self._t0 is None:
            self._t0 = stamp
        etype = str(getattr(event, "type", type(event).__name__))
        try:
            summary = summarize(event)
        except Exception as exc:  # a summary must never break the log
            summary = f"(no summary: {type(exc).__name__})"
        self._append(
            LogLine(
                self._seq,
                stamp - self._t0,
                etype,
                summary,
                etype == "error",
                "server",
                max(1, self._sessions),
                event,
            )
        )

    def _add_sent(self, stamp: float, wire: Mapping[str, Any]) -> None:
        if self._t0 is None:
            self._t0 = stamp
        etype = str(wire.get("type", "")) if isinstance(wire, Mapping) else type(wire).__name__
        try:
            summary = client_summary(wire)
        except Exception as exc:
            summary = f"(no summary: {type(exc).__name__})"
        self._append(
            LogLine(
                self._seq, stamp - self._t0, etype, summary, False, "client", max(1, self._sessions), wire
            )
        )

    def clear(self) -> None:
        with self._lock:
            self._lines.clear()
            self._deltas.clear()
            self._by_seq.clear()
            self._shown_key = None
        self._render()

    # ------------------------------------------------------------------ output

    @property
    def lines(self) -> list[LogLine]:
        """The event lines shown now (after filter and "hide audio deltas"; no separators)."""
        with self._lock:
            return [ln for ln in self._visible() if ln.direction != "separator"]

    def _visible(self) -> list[LogLine]:
        lines: list[LogLine] = list(self._lines)
        if not self.hide_deltas.value:
            lines = sorted([*lines, *self._deltas], key=lambda line: line.seq)
        needle = self.filter.value.strip().lower()
        if needle:
            lines = [
                ln
                for ln in lines
                if ln.direction == "separator" or needle in ln.type.lower() or needle in ln.summary.lower()
            ]
        return lines[-self.max_lines :]

    def details(self, seq: int) -> dict[str, Any] | None:
        """The JSON of line ``seq`` as shown: secrets masked, audio payloads elided to their size."""
        with self._lock:
            line = self._by_seq.get(seq)
        if line is None or line.payload is None:
            return None
        payload = line.payload
        if not isinstance(payload, Mapping):
            to_dict = getattr(payload, "to_dict", None)
            try:
                payload = to_dict() if callable(to_dict) else {"type": line.type, "repr": repr(payload)}
            except Exception as exc:  # never let a strange event break the inspector
                payload = {"type": line.type, "error": f"cannot show it: {type(exc).__name__}"}
        shown = elide(payload, etype=line.type)
        return shown if isinstance(shown, dict) else {"value": shown}

    def select(self, seq: int) -> None:
        """Select line ``seq`` (as a click on it does): its JSON is shown in ``detail``."""
        with self._lock:
            self._shown_key = None
            self._render()
        self.list.value = seq

    def _selected(self, change: Any) -> None:
        seq = change["new"]
        if seq is None:
            _set_value(self.detail, "")
            return
        with self._lock:
            line = self._by_seq.get(seq)
        data = self.details(seq)
        if line is None or data is None:
            _set_value(self.detail, "")
            return
        where = "sent" if line.direction == "client" else "received"
        text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
        _set_value(
            self.detail,
            f'<div style="font-size:12px;color:#777">{ARROWS.get(line.direction, "")} {where} at '
            f"{line.t:.3f} s (session {line.session})</div>"
            f'<pre class="vlnb-event-json" style="font-size:12px;margin:2px 0">{html.escape(text)}</pre>',
        )

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
            options: list[tuple[str, int | None]] = []
            for ln in lines:
                label = ln.text()
                if ln.error:
                    label = "⚠ " + label
                options.append((label, ln.seq))
            if not options:
                options = [("no events", None)]
            selected = self.list.value
            labels = tuple(label for label, _ in options)
            if labels != self._shown_labels:
                self._shown_labels = labels
                with self.list.hold_trait_notifications():
                    self.list.options = options
                    values = {value for _, value in options}
                    self.list.value = selected if selected in values else None
            n = sum(1 for ln in lines if ln.direction != "separator")
            count = f'<span style="color:#777">{n} events</span>'
            if self.count.value != count:
                self.count.value = count


def _item_order(session: Any) -> list[str]:
    """The conversation's item ids in order (empty when there is no live state)."""
    state = getattr(session, "state", None)
    for _ in range(3):
        try:
            return [item.id for item in getattr(state, "items", ())]
        except RuntimeError:  # the engine thread changed it while we copied
            continue
    return []


def with_tool_lines(entries: list[Any], calls: list[Any], order: list[str]) -> list[tuple[Any, ...]]:
    """The transcript with a ``("tool", item_id, line, final)`` entry per call, placed at its
    ``function_call`` item's place in ``order`` (at the end when the item is not known)."""
    where = {item_id: i for i, item_id in enumerate(order)}
    end = len(order)
    keyed: list[tuple[float, int, tuple[Any, ...]]] = []
    last = -1.0
    for seq, entry in enumerate(entries):
        key = float(where.get(entry[1], last))
        last = key
        keyed.append((key, seq, tuple(entry)))
    for seq, call in enumerate(calls, start=len(entries)):
        item_id = str(getattr(call, "item_id", None) or getattr(call, "call_id", ""))
        key = float(where.get(item_id, end)) + 0.5
        line = ("tool", item_id, tool_line(call), getattr(call, "status", "running") != "running")
        keyed.append((key, seq, line))
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [entry for _, _, entry in keyed]
