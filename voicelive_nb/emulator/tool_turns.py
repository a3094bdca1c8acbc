"""Responses that call tools (pure): deciding to call, streaming the call items, closing them.

The rules of what to call are in :mod:`.toolcalls`; this module is the response side: a
scripted call (``replies=[{"call": ...}]``), the quote of the tool outputs that end the
conversation, an MCP approval answered, or tools named in what the user said. Calls stream in
the real service's order, per call: ``output_item.added``, ``conversation.item.created``,
argument deltas, ``arguments.done``, ``output_item.done``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Generator, Mapping
from typing import Any

from . import toolcalls as tc
from .core import Core, Pending
from .items import item_done, json_object, latest_approval, latest_outputs
from .responses import ActiveResponse, ScriptedReplies, usage

__all__ = ["CallsSent", "Cancelled", "ToolTurns"]

Event = dict[str, Any]
HeardText = Callable[[Mapping[str, Any]], Generator[Pending[Any], Any, str]]


class Cancelled(Exception):
    """Thrown into a response's plan: the response was cancelled."""


class CallsSent(Exception):
    """The response called tools instead of speaking (nothing more to stream)."""


class ToolTurns:
    """Tool calls of one connection's responses."""

    def __init__(self, core: Core, script: ScriptedReplies, heard_text: HeardText) -> None:
        self.core = core
        self.script = script
        self.heard_text = heard_text

    def _function_call_item(self, name: str, arguments: Mapping[str, Any]) -> Event:
        """A new in-progress function_call item (its arguments kept aside to stream as deltas)."""
        return {
            "id": self.core.new_id("item"),
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": name,
            "call_id": self.core.new_id("call"),
            "arguments": "",
            "_arguments": tc.encode_arguments(arguments),
        }

    # --- planning ----------------------------------------------------------------------------------

    def plan(self, resp: ActiveResponse) -> Generator[Pending[Any], Any, bool]:
        """Decide whether ``resp`` quotes tool outputs (``planned_text``) or calls tools (True)."""
        params = resp.params
        if isinstance(params.get("pre_generated_text"), str):
            return False
        items = params.get("input_items")
        history = list(items) if items is not None else self.core.items.items()
        scripted = self.script.next_calls()
        if scripted:
            resp.calls.extend(self._function_call_item(name, arguments) for name, arguments in scripted)
            return True
        if self._answered(resp, history):
            return False
        session = self.core.session
        tools = params.get("tools", session.get("tools")) or []
        choice = params.get("tool_choice", session.get("tool_choice")) or "auto"
        if not isinstance(tools, list) or choice == "none":
            return False
        kinds = {t.get("type", "function") for t in tools if isinstance(t, Mapping)}
        if not kinds & {"function", "mcp"}:
            return False
        heard = yield from self.heard_text(params)
        parallel = params.get("parallel_tool_calls", session.get("parallel_tool_calls")) is not False
        planned = tc.plan_calls(heard, tools, choice, parallel=parallel) if "function" in kinds else []
        if not planned and "mcp" in kinds and not tc.is_named_choice(choice):
            return self._plan_mcp(resp, heard, tools)
        resp.calls.extend(self._function_call_item(name, arguments) for name, arguments in planned)
        return bool(resp.calls)

    def _answered(self, resp: ActiveResponse, history: list[Event]) -> bool:
        """The conversation ends with an approval answer or tool outputs: the reply follows from them."""
        approval = latest_approval(history)
        if approval is not None:
            request, approved = approval
            label, name = str(request.get("server_label", "")), str(request.get("name", ""))
            if approved:
                self._plan_mcp_call(resp, label, name, json_object(request.get("arguments")), request["id"])
            else:
                resp.planned_text = tc.mcp_denied(label, name)
            return True
        outputs = latest_outputs(history)
        if outputs:
            resp.planned_text = tc.replies_for_outputs(outputs)
            return True
        return False

    def _plan_mcp(self, resp: ActiveResponse, heard: str, tools: list[Any]) -> bool:
        """An MCP tool named in ``heard``: an approval request (True), or the call at once (False)."""
        chosen = tc.choose_mcp(heard, tools)
        if chosen is None:
            return False
        tool, name = chosen
        label, arguments = str(tool["server_label"]), {"query": heard}
        if not tc.needs_approval(tool, name):
            self._plan_mcp_call(resp, label, name, arguments, None)
            return False
        resp.calls.append(
            {
                "id": self.core.new_id("item"),
                "object": "realtime.item",
                "type": "mcp_approval_request",
                "server_label": label,
                "name": name,
                "arguments": tc.encode_arguments(arguments),
                "_arguments": None,
            }
        )
        return True

    def _plan_mcp_call(
        self, resp: ActiveResponse, label: str, name: str, arguments: Mapping[str, Any], approval: Any
    ) -> None:
        output = tc.mcp_output(label, name, arguments)
        resp.mcp_call = {
            "id": self.core.new_id("item"),
            "object": "realtime.item",
            "type": "mcp_call",
            "server_label": label,
            "name": name,
            "arguments": "",
            "approval_request_id": approval,
            "output": None,
            "error": None,
            "_arguments": tc.encode_arguments(arguments),
            "_output": output,
        }
        resp.planned_text = tc.reply_for_output(f"{label} {name}", output)
        resp.message_index = 1

    # --- streaming ----------------------------------------------------------------------------------

    def _open(self, resp: ActiveResponse, index: int, call: Event) -> str | None:
        """``output_item.added`` and (in the conversation) ``conversation.item.created``."""
        opened = dict(call)
        self.core.emit(
            {
                "type": "response.output_item.added",
                "response_id": resp.id,
                "output_index": index,
                "item": opened,
            }
        )
        if resp.conversation != "auto":
            return None
        previous = self.core.items.insert(copy.deepcopy(opened))
        self.core.emit(
            {"type": "conversation.item.created", "previous_item_id": previous, "item": dict(opened)}
        )
        return previous

    def _item_done(self, resp: ActiveResponse, index: int, call: Event) -> None:
        self.core.emit(
            {
                "type": "response.output_item.done",
                "response_id": resp.id,
                "output_index": index,
                "item": dict(call),
            }
        )

    def stream_mcp_call(self, resp: ActiveResponse) -> None:
        """The MCP call item before the spoken message: added, created, argument deltas, done, completed."""
        call = resp.mcp_call
        assert call is not None
        arguments, output = call.pop("_arguments"), call.pop("_output")
        previous = self._open(resp, 0, call)
        ids = {"response_id": resp.id, "item_id": call["id"], "output_index": 0}
        for piece in tc.argument_deltas(arguments):
            self.core.emit({"type": "response.mcp_call_arguments.delta", **ids, "delta": piece})
        self.core.emit({"type": "response.mcp_call_arguments.done", **ids, "arguments": arguments})
        self.core.emit({"type": "response.mcp_call.in_progress", "item_id": call["id"], "output_index": 0})
        call.update(arguments=arguments, output=output)
        self.core.emit({"type": "response.mcp_call.completed", "item_id": call["id"], "output_index": 0})
        stored = self.core.items.get(call["id"])
        if stored is not None:
            stored.update(arguments=arguments, output=output)
            self.core.emit(item_done(previous, dict(call), ga_only=True))
        self._item_done(resp, 0, call)
        resp.before.append(dict(call))

    def stream_calls(self, resp: ActiveResponse) -> None:
        """Every call of ``resp``, in the real service's order."""
        for index, call in enumerate(resp.calls):
            arguments = call.pop("_arguments")
            previous = self._open(resp, index, call)
            if arguments is not None:  # an approval request has no arguments to stream
                self._stream_arguments(resp, index, call, arguments)
                call.update(arguments=arguments, status="completed")
            stored = self.core.items.get(call["id"])
            if stored is not None:
                if arguments is not None:
                    stored.update(arguments=arguments, status="completed")
                self.core.emit(item_done(previous, dict(call), ga_only=True))
            self._item_done(resp, index, call)
            resp.calls_done = index + 1

    def _stream_arguments(self, resp: ActiveResponse, index: int, call: Event, arguments: str) -> None:
        ids = {
            "response_id": resp.id,
            "item_id": call["id"],
            "output_index": index,
            "call_id": call["call_id"],
        }
        for piece in tc.argument_deltas(arguments):
            self.core.emit({"type": "response.function_call_arguments.delta", **ids, "delta": piece})
        self.core.emit(
            {
                "type": "response.function_call_arguments.done",
                **ids,
                "name": call["name"],
                "arguments": arguments,
            }
        )

    def finish_calls(
        self, resp: ActiveResponse, status: str, details: Any, response: Callable[..., Event]
    ) -> Event:
        """The ``response`` of the ``response.done`` of a response that called tools (a cancelled call ends incomplete)."""
        if status == "cancelled":
            self.core.stats.responses_cancelled += 1
            self.core.drop_unsent(resp.id)
        output: list[Event] = []
        for index, call in enumerate(resp.calls):
            call.pop("_arguments", None)
            if index >= resp.calls_done:
                if call["id"] not in self.core.items:
                    continue
                call["status"] = "incomplete"
                stored = self.core.items.get(call["id"])
                if stored is not None:
                    stored["status"] = "incomplete"
                self._item_done(resp, index, call)
            output.append(dict(call))
        done = response(resp, status, details, output)
        done["usage"] = usage(
            resp, self.core.session, self.core.items, "".join(str(c.get("arguments", "")) for c in output)
        )
        return done
