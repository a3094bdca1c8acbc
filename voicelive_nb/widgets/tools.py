"""The panel's Tools section: registered tools, every call as it goes, and MCP approvals.

:class:`ToolsView` is refreshed by the panel's one pump (engine thread, ≤ 20 Hz) from the
public session API — ``tool_calls``, the registered tools, ``state.approval_requests`` — and
sets only the traits whose value changed. A tool listener (``add_tool_listener``) only marks the
view stale; it never touches a widget. Approve / Deny buttons call ``on_approve``, which posts the
answer to the session's engine and returns its future (``session.approve(..., wait=False)``), so
the kernel thread never blocks on the network and no thread is started here.
"""

from __future__ import annotations

import concurrent.futures
import html
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as W  # type: ignore[import-untyped]

__all__ = ["ToolsView", "approval_requests", "registered_tools", "tool_calls", "tool_line"]

log = logging.getLogger("voicelive_nb.widgets")

#: How much of an argument value or an output a one-line summary shows.
LINE_VALUE_MAX = 40
LINE_OUTPUT_MAX = 80
#: Calls shown in the table (the newest).
MAX_CALLS = 50

STATUS_COLORS = {
    "running": "#f9a825",
    "completed": "#2e7d32",
    "failed": "#c62828",
    "invalid_arguments": "#c62828",
    "timed_out": "#c62828",
    "unknown_tool": "#c62828",
    "cancelled": "#757575",
}


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def tool_line(call: Any) -> str:
    """One line for the transcript: ``🔧 get_weather(city=London) → 12 degrees``."""
    args = getattr(call, "parsed_arguments", None)
    if isinstance(args, dict):
        shown = ", ".join(f"{k}={_cut(_value(v), LINE_VALUE_MAX)}" for k, v in args.items())
    else:
        shown = _cut(str(getattr(call, "arguments", "") or ""), LINE_VALUE_MAX)
    head = f"🔧 {getattr(call, 'name', '') or '?'}({shown})"
    status = getattr(call, "status", "running")
    if status == "running":
        return f"{head} …"
    if status == "completed":
        return f"{head} → {_cut(str(getattr(call, 'output', '') or ''), LINE_OUTPUT_MAX)}"
    error = getattr(call, "error", None) or getattr(call, "output", None) or ""
    return f"{head} ✗ {status}: {_cut(str(error), LINE_OUTPUT_MAX)}"


def tool_calls(session: Any) -> list[Any]:
    """The session's ``ToolCall`` list (a NotebookSession's across reconnects), or ``[]``."""
    for owner in (session, getattr(session, "session", None)):
        calls = getattr(owner, "tool_calls", None) if owner is not None else None
        if calls is not None and not callable(calls):
            try:
                return list(calls)
            except (TypeError, RuntimeError):
                return []
    return []


def registered_tools(session: Any) -> list[Any]:
    """The registered :class:`~voicelive_nb.tools.Tool` objects (``name``, ``description``, ``parameters``)."""
    for owner in (session, getattr(session, "session", None)):  # the NotebookSession's list first
        runner = getattr(owner, "tools", None) if owner is not None else None
        registry = getattr(runner, "tools", runner)
        if isinstance(registry, dict):
            return list(registry.values())
        if isinstance(registry, (list, tuple)) and registry:
            from ..tools import as_tool

            out = []
            for fn in registry:
                if hasattr(fn, "name") and hasattr(fn, "parameters"):  # a Tool already
                    out.append(fn)
                    continue
                try:
                    out.append(as_tool(fn))
                except Exception:  # a view never fails on what it cannot describe
                    log.debug("tools view: cannot describe %r", fn)
            return out
    return []


def approval_requests(session: Any) -> list[Any]:
    """``state.approval_requests`` of the live session, or ``[]``."""
    state = getattr(session, "state", None)
    requests = getattr(state, "approval_requests", None)
    try:
        return list(requests) if requests is not None else []
    except (TypeError, RuntimeError):
        return []


def _schema_params(parameters: Any) -> str:
    props = parameters.get("properties", {}) if isinstance(parameters, dict) else {}
    required = set(parameters.get("required", ())) if isinstance(parameters, dict) else set()
    parts = []
    for name, spec in props.items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        if kind is None and isinstance(spec, dict) and "enum" in spec:
            kind = "|".join(map(str, spec["enum"]))
        label = f"{name}: {kind or 'any'}" + ("" if name in required else "?")
        parts.append(html.escape(label))
    return ", ".join(parts)


def _set(widget: Any, name: str, value: Any) -> None:
    if getattr(widget, name) != value:
        setattr(widget, name, value)


class ToolsView(W.VBox):  # type: ignore[misc]
    """Registered tools, the calls (arguments, status, output or error, duration), pending approvals.

    ``on_approve(approval_request_id, approve)`` is called by the buttons and returns at once: a
    :class:`concurrent.futures.Future` of the answer being sent (or any value once it was sent);
    ``on_error(text)`` shows what went wrong.
    """

    def __init__(
        self,
        on_approve: Callable[[str, bool], Any] | None = None,
        on_error: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.on_approve = on_approve
        self.on_error = on_error
        self.registered = W.HTML()
        self.calls = W.HTML()
        self.approvals = W.VBox()
        self._approval_rows: dict[str, tuple[Any, Any, Any, Any]] = {}
        self._answering: set[str] = set()
        self._lock = threading.Lock()
        self.children = (self.approvals, self.registered, self.calls)
        self.layout.max_height = self.layout.max_height or "360px"
        self.layout.overflow = "auto"
        self.render([], [], [])

    # ------------------------------------------------------------------ rendering

    def update_from(self, session: Any) -> None:
        self.render(registered_tools(session), tool_calls(session), approval_requests(session))

    def render(self, tools: list[Any], calls: list[Any], approvals: list[Any]) -> None:
        with self._lock:
            _set(self.registered, "value", self._tools_html(tools))
            _set(self.calls, "value", self._calls_html(calls[-MAX_CALLS:]))
            self._render_approvals(approvals)

    @staticmethod
    def _tools_html(tools: list[Any]) -> str:
        if not tools:
            return '<div style="color:#777;font-style:italic">no tools registered (session.tool(fn))</div>'
        rows = "".join(
            f'<tr class="vl-tool"><td><code>{html.escape(str(t.name))}</code></td>'
            f"<td>{html.escape(str(getattr(t, 'description', '') or ''))}</td>"
            f"<td><code>{_schema_params(getattr(t, 'parameters', {}))}</code></td></tr>"
            for t in tools
        )
        return (
            '<table style="font-size:12px;border-collapse:collapse"><tr><th align="left">tool</th>'
            f'<th align="left">description</th><th align="left">parameters</th></tr>{rows}</table>'
        )

    @staticmethod
    def _calls_html(calls: list[Any]) -> str:
        if not calls:
            return '<div style="color:#777;font-style:italic">no tool calls yet</div>'
        rows = []
        for c in calls:
            status = str(getattr(c, "status", ""))
            color = STATUS_COLORS.get(status, "#555")
            duration = getattr(c, "duration_ms", None)
            result = getattr(c, "error", None) if status != "completed" else None
            result = result or getattr(c, "output", None) or ""
            rows.append(
                f'<tr class="vl-call" data-status="{html.escape(status)}">'
                f"<td><code>{html.escape(str(c.name))}</code></td>"
                f"<td><code>{html.escape(_cut(str(c.arguments or ''), 120))}</code></td>"
                f'<td style="color:{color}">{html.escape(status)}</td>'
                f'<td title="{html.escape(str(result))}">{html.escape(_cut(str(result), 120))}</td>'
                f"<td>{'' if duration is None else f'{duration:.0f} ms'}</td></tr>"
            )
        return (
            '<table style="font-size:12px;border-collapse:collapse"><tr><th align="left">call</th>'
            '<th align="left">arguments</th><th align="left">status</th><th align="left">output / error</th>'
            f'<th align="left">duration</th></tr>{"".join(rows)}</table>'
        )

    def _render_approvals(self, approvals: list[Any]) -> None:
        pending = [a for a in approvals if getattr(a, "approve", None) is None]
        ids = [a.id for a in pending]
        gone = [self._approval_rows.pop(i) for i in list(self._approval_rows) if i not in ids]
        for a in pending:
            if a.id in self._approval_rows:
                continue
            label = W.HTML(
                f'<span style="color:#e65100">approval needed:</span> <code>{html.escape(a.server_label)}'
                f"</code> wants to call <code>{html.escape(a.name)}({html.escape(_cut(a.arguments, 120))})</code>"
            )
            approve = W.Button(description="Approve", button_style="success", icon="check")
            deny = W.Button(description="Deny", button_style="danger", icon="times")
            approve.on_click(lambda _b, rid=a.id: self.answer(rid, True))
            deny.on_click(lambda _b, rid=a.id: self.answer(rid, False))
            box = W.HBox([label, approve, deny], layout=W.Layout(align_items="center"), tooltip=a.id)
            box.add_class("vl-approval")
            self._approval_rows[a.id] = (label, approve, deny, box)
        rows = tuple(self._approval_rows[i][3] for i in ids)
        if tuple(self.approvals.children) != rows:
            self.approvals.children = rows
        for row in gone:  # answered: its buttons go
            self._answering.discard(row[3].tooltip or "")
            for widget in row:
                widget.close()

    # ------------------------------------------------------------------ answering

    def approve_buttons(self, approval_request_id: str) -> tuple[Any, Any] | None:
        """The (Approve, Deny) buttons of a pending request (for tests and scripting)."""
        row = self._approval_rows.get(approval_request_id)
        return None if row is None else (row[1], row[2])

    def answer(self, approval_request_id: str, approve: bool) -> Any:
        """What a button does: disable the row's buttons and call ``on_approve``; returns what it
        returned (a future). The row goes when the answer is sent; on failure the buttons come back
        and the error is shown."""
        if self.on_approve is None or approval_request_id in self._answering:
            return None
        self._answering.add(approval_request_id)
        row = self._approval_rows.get(approval_request_id)
        if row is not None:
            for button in row[1:3]:
                button.disabled = True

        def failed(exc: BaseException) -> None:
            log.error("tools view: answering %s failed: %s", approval_request_id, exc)
            self._answering.discard(approval_request_id)  # shown again: the user may retry
            if row is not None:
                for button in row[1:3]:
                    button.disabled = False
            if self.on_error is not None:
                verb = "approving" if approve else "denying"
                self.on_error(f"{verb} {approval_request_id} failed: {type(exc).__name__}: {exc}")

        try:
            result = self.on_approve(approval_request_id, approve)
        except Exception as exc:
            failed(exc)
            return None
        if isinstance(result, concurrent.futures.Future):

            def done(future: concurrent.futures.Future[Any]) -> None:
                exc = future.exception()
                if exc is not None:
                    failed(exc)

            result.add_done_callback(done)
        return result
