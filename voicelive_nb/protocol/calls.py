"""The tool-call book of :class:`~voicelive_nb.protocol.state.SessionProtocol`: calls and approvals.

:class:`ToolCallBook` owns the function calls the model requested (arguments streamed or
given whole, done, output sent back) and the ``mcp_approval_request`` items of server-side
tools (answered or not). The session protocol, the one interpreter of the events, feeds it
the events received and the items sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .events import (
    ResponseFunctionCallArgumentsDelta,
    ResponseFunctionCallArgumentsDone,
    ResponseOutputItemAdded,
    ServerEvent,
)

__all__ = ["ApprovalRequest", "FunctionCall", "ToolCallBook"]


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A function call requested by the model, and whether its output was sent back."""

    call_id: str
    name: str
    item_id: str
    response_id: str | None
    arguments: str
    done: bool
    output_sent: bool


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """An ``mcp_approval_request`` item: a server-side (MCP) tool call waiting for the user's answer.

    ``approve`` is None until an ``mcp_approval_response`` for it was sent (or reported by the
    service), then what it said.
    """

    id: str  #: the item id, which the answer names as ``approval_request_id``
    server_label: str
    name: str
    arguments: str
    response_id: str | None
    data: Mapping[str, Any]  #: the item as last received, verbatim
    approve: bool | None = None
    reason: str | None = None

    @property
    def pending(self) -> bool:
        return self.approve is None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


class ToolCallBook:
    """The function calls and MCP approval requests of a session, by call id / item id."""

    def __init__(self) -> None:
        self._calls: dict[str, FunctionCall] = {}
        self._approvals: dict[str, ApprovalRequest] = {}

    # ------------------------------------------------------------------ function calls

    def output_item_added(self, event: ResponseOutputItemAdded) -> None:
        """A ``function_call`` output item opens its call."""
        item_id = event.item.get("id")
        call_id = event.item.get("call_id")
        if (
            event.item.get("type") == "function_call"
            and isinstance(call_id, str)
            and isinstance(item_id, str)
        ):
            self._calls[call_id] = FunctionCall(
                call_id=call_id,
                name=_str_or_none(event.item.get("name")) or "",
                item_id=item_id,
                response_id=event.response_id,
                arguments=_str_or_none(event.item.get("arguments")) or "",
                done=False,
                output_sent=False,
            )

    def output_item_done(self, item: Mapping[str, Any]) -> None:
        """A done ``function_call`` output item completes its call (with its arguments, if given)."""
        call_id = item.get("call_id")
        call = self._calls.get(call_id) if isinstance(call_id, str) else None
        if call is not None and not call.done:
            arguments = _str_or_none(item.get("arguments"))
            self._calls[call.call_id] = replace(
                call, arguments=arguments if arguments is not None else call.arguments, done=True
            )

    def arguments_delta(self, event: ResponseFunctionCallArgumentsDelta) -> None:
        call = self._calls.get(event.call_id)
        if call is None:
            call = FunctionCall(event.call_id, "", event.item_id, event.response_id, "", False, False)
        self._calls[event.call_id] = replace(call, arguments=call.arguments + event.delta)

    def arguments_done(self, event: ResponseFunctionCallArgumentsDone) -> None:
        call = self._calls.get(event.call_id)
        if call is None:
            call = FunctionCall(event.call_id, event.name, event.item_id, event.response_id, "", False, False)
        self._calls[event.call_id] = replace(call, name=event.name, arguments=event.arguments, done=True)

    def item_sent(self, item: Mapping[str, Any]) -> None:
        """A ``conversation.item.create`` was sent: a call's output, or an approval's answer."""
        call_id = item.get("call_id")
        if item.get("type") == "function_call_output" and isinstance(call_id, str):
            call = self._calls.get(call_id)
            if call is not None:
                self._calls[call_id] = replace(call, output_sent=True)
        elif item.get("type") == "mcp_approval_response":
            self.answer(item)

    # ------------------------------------------------------------------ approvals

    def note_item(self, event: ServerEvent) -> None:
        """Record ``mcp_approval_request`` items (and answers the service reports) of any item event."""
        item = getattr(event, "item", None)
        if not isinstance(item, Mapping):
            return
        itype = item.get("type")
        if itype == "mcp_approval_response":
            self.answer(item)
            return
        item_id = item.get("id")
        if itype != "mcp_approval_request" or not isinstance(item_id, str):
            return
        old = self._approvals.get(item_id)
        arguments = item.get("arguments")
        if not isinstance(arguments, str):
            arguments = "" if arguments is None else str(arguments)
        self._approvals[item_id] = ApprovalRequest(
            id=item_id,
            server_label=_str_or_none(item.get("server_label")) or "",
            name=_str_or_none(item.get("name")) or "",
            arguments=arguments,
            response_id=_str_or_none(getattr(event, "response_id", None))
            or (old.response_id if old is not None else None),
            data=item,
            approve=old.approve if old is not None else None,
            reason=old.reason if old is not None else None,
        )

    def answer(self, item: Mapping[str, Any]) -> None:
        """An ``mcp_approval_response`` (sent or reported): the request it names is answered."""
        request_id = item.get("approval_request_id")
        approve = item.get("approve")
        old = self._approvals.get(request_id) if isinstance(request_id, str) else None
        if old is not None and isinstance(approve, bool):
            self._approvals[old.id] = replace(old, approve=approve, reason=_str_or_none(item.get("reason")))

    # ------------------------------------------------------------------ views

    @property
    def function_calls(self) -> tuple[FunctionCall, ...]:
        return tuple(self._calls.values())

    @property
    def pending_function_calls(self) -> tuple[FunctionCall, ...]:
        """Calls whose arguments are complete and whose output was not sent yet."""
        return tuple(c for c in self._calls.values() if c.done and not c.output_sent)

    @property
    def approval_requests(self) -> tuple[ApprovalRequest, ...]:
        """Every ``mcp_approval_request`` seen, oldest first (answered or not)."""
        return tuple(self._approvals.values())

    @property
    def pending_approvals(self) -> tuple[ApprovalRequest, ...]:
        """Approval requests not answered yet."""
        return tuple(a for a in self._approvals.values() if a.approve is None)
