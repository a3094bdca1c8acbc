"""The function-call loop: run the model's calls, send their outputs, ask for the next response.

Per the protocol (and the live traces): a response's ``function_call`` item is complete at
``response.function_call_arguments.done`` (or its ``response.output_item.done``); the client
adds a ``function_call_output`` item per call and sends ``response.create`` once the response
that asked is done. :class:`ToolRunner` does exactly that, on the session's event loop:

- each call starts as soon as its arguments are complete: async functions on the loop, plain
  functions in a small worker pool, never on the audio path; the calls of one response run
  concurrently (one after another when ``parallel_tool_calls`` is false) and their outputs
  are sent in the order the model made them;
- arguments are validated against the schema first; a validation error, an exception or a
  timeout becomes the tool's output (so the model can recover) and is kept on the
  :class:`ToolCall` and logged, never a dead session;
- when the response that asked ends ``cancelled`` (a barge-in, ``response.cancel``) its
  unfinished calls are cancelled and nothing is sent for them;
- return values are sent as text: strings as they are, DataFrames as a short table, numpy
  arrays and scalars as lists and numbers, dataclasses and pydantic models as JSON, long
  outputs cut with a note.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import enum
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from .schema import Tool, ToolArgumentsError, as_tool

__all__ = ["ToolCall", "ToolRunner", "format_output", "tool_calls_table"]

log = logging.getLogger("voicelive_nb.tools")

#: Outputs longer than this are cut (the model reads every character, and pays for it).
MAX_OUTPUT_CHARS = 4_000

Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclasses.dataclass
class ToolCall:
    """One call the model made, as it went.

    ``status``: ``running``, ``completed``, ``failed`` (the function raised),
    ``invalid_arguments``, ``timed_out``, ``cancelled`` (its response was cancelled) or
    ``unknown_tool``. Times are ``time.monotonic()`` seconds.
    """

    call_id: str
    name: str
    arguments: str
    response_id: str | None
    item_id: str | None
    output_index: int = 0
    status: str = "running"
    output: str | None = None
    error: str | None = None
    started_s: float = 0.0
    finished_s: float | None = None
    sent: bool = False

    @property
    def duration_ms(self) -> float | None:
        return None if self.finished_s is None else (self.finished_s - self.started_s) * 1000

    @property
    def parsed_arguments(self) -> Any:
        try:
            return json.loads(self.arguments or "{}")
        except ValueError:
            return self.arguments

    def as_row(self) -> dict[str, Any]:
        """A flat dict (for a table or DataFrame), the columns a reader looks at first."""
        return {
            "name": self.name,
            "arguments": self.parsed_arguments,
            "status": self.status,
            "output": self.output,
            "duration_ms": None if self.duration_ms is None else round(self.duration_ms, 2),
            "error": self.error,
            "call_id": self.call_id,
            "response_id": self.response_id,
        }


class ToolRunner:
    """Answers the model's function calls with the registered Python functions.

    ``send`` sends one client event (a wire dict); ``handle(event)`` is fed every server
    event, on the loop that ``send`` belongs to. With no tool registered the runner only
    records calls (the caller may answer them by hand).
    """

    def __init__(
        self,
        send: Send,
        tools: Iterable[Callable[..., Any] | Tool] = (),
        *,
        parallel: bool = True,
        max_output_chars: int = MAX_OUTPUT_CHARS,
        workers: int = 4,
        on_change: Callable[[ToolCall], None] | None = None,
    ) -> None:
        self._send = send
        self.tools: dict[str, Tool] = {}
        self.calls: list[ToolCall] = []
        self.parallel = parallel
        self.max_output_chars = max_output_chars
        self.on_change = on_change
        self._workers = workers
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._by_id: dict[str, ToolCall] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._responses_done: dict[str, str] = {}
        self._active_responses: set[str] = set()
        self._flushing: set[str] = set()
        self._responded: set[str] = set()
        self.add(*tools)

    # ------------------------------------------------------------------ registry

    def add(self, *tools: Callable[..., Any] | Tool) -> list[Tool]:
        """Register tools (functions or :class:`Tool`); a name already taken is replaced."""
        added = [as_tool(t) for t in tools]
        for t in added:
            self.tools[t.name] = t
        return added

    def remove(self, name: str) -> None:
        self.tools.pop(name, None)

    def definitions(self) -> list[dict[str, Any]]:
        """The ``tools`` list for ``session.update``."""
        return [t.definition() for t in self.tools.values()]

    # ------------------------------------------------------------------ events

    def handle(self, event: Any) -> None:
        """Feed one server event (typed event or anything with ``type`` and its fields)."""
        etype = getattr(event, "type", None)
        if etype == "response.function_call_arguments.done":
            self._start(
                getattr(event, "call_id", None),
                getattr(event, "name", None),
                getattr(event, "arguments", ""),
                getattr(event, "response_id", None),
                getattr(event, "item_id", None),
                getattr(event, "output_index", 0),
            )
        elif etype == "response.output_item.done":
            item = getattr(event, "item", None) or {}
            if isinstance(item, Mapping) and item.get("type") == "function_call":
                self._start(
                    item.get("call_id"),
                    item.get("name"),
                    item.get("arguments", ""),
                    getattr(event, "response_id", None),
                    item.get("id"),
                    getattr(event, "output_index", 0),
                )
        elif etype == "response.created":
            rid = _response_id(event)
            if rid:
                self._active_responses.add(rid)
        elif etype == "response.done":
            rid = _response_id(event)
            if rid:
                self._active_responses.discard(rid)
                status = str((getattr(event, "response", None) or {}).get("status", "completed"))
                self._responses_done[rid] = status
                if status == "cancelled":
                    self._cancel_response(rid)
                else:
                    self._maybe_flush(rid)

    def _start(
        self,
        call_id: Any,
        name: Any,
        arguments: Any,
        response_id: Any,
        item_id: Any,
        output_index: Any,
    ) -> None:
        if not isinstance(call_id, str) or call_id in self._by_id or not self.tools:
            return
        call = ToolCall(
            call_id=call_id,
            name=str(name or ""),
            arguments=arguments if isinstance(arguments, str) else json.dumps(arguments),
            response_id=response_id if isinstance(response_id, str) else None,
            item_id=item_id if isinstance(item_id, str) else None,
            output_index=output_index if isinstance(output_index, int) else 0,
            started_s=time.monotonic(),
        )
        self.calls.append(call)
        self._by_id[call_id] = call
        self._changed(call)
        lane = call.response_id or call.call_id
        previous = None if self.parallel else self._lanes.get(lane)
        task = asyncio.get_running_loop().create_task(
            self._run(call, previous), name=f"voicelive-tool-{call.name}"
        )
        self._tasks[call_id] = task
        self._lanes[lane] = task
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        for call_id, known in list(self._tasks.items()):
            if known is task:
                del self._tasks[call_id]

    async def _run(self, call: ToolCall, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        tool = self.tools.get(call.name)
        try:
            if tool is None:
                known = ", ".join(sorted(self.tools)) or "none"
                text = f"there is no tool named {call.name!r} (tools: {known})"
                self._finish(call, "unknown_tool", f"error: {text}", error=text)
            else:
                kwargs = tool.parse(call.arguments)
                value = await asyncio.wait_for(self._invoke(tool, kwargs), timeout=tool.timeout_s)
                self._finish(call, "completed", format_output(value, self.max_output_chars))
        except ToolArgumentsError as exc:
            self._finish(call, "invalid_arguments", f"error: {exc}", error=str(exc))
        except asyncio.TimeoutError:
            assert tool is not None
            text = f"error: {call.name} did not finish within {tool.timeout_s:g} s"
            self._finish(call, "timed_out", text, error=text.removeprefix("error: "))
        except asyncio.CancelledError:
            self._finish(call, "cancelled", None)
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.warning("tool %s raised %s", call.name, reason)
            self._finish(call, "failed", f"error: {call.name} raised {reason}", error=reason)
        if call.response_id is None:
            await self._send_outputs([call], respond=True)
        else:
            self._maybe_flush(call.response_id)

    async def _invoke(self, tool: Tool, kwargs: dict[str, Any]) -> Any:
        if tool.is_async:
            return await tool.fn(**kwargs)
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self._workers, thread_name_prefix="voicelive-tool"
            )
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._pool, lambda: tool.fn(**kwargs))
        if asyncio.iscoroutine(result):  # a plain function that returned a coroutine
            result = await result
        return result

    def _finish(self, call: ToolCall, status: str, output: str | None, *, error: str | None = None) -> None:
        call.status = status
        call.output = output
        call.error = error
        call.finished_s = time.monotonic()
        self._changed(call)

    def _cancel_response(self, response_id: str) -> None:
        for call in self.calls:
            if call.response_id == response_id and call.status == "running":
                task = self._tasks.get(call.call_id)
                if task is not None:
                    task.cancel()
                else:
                    self._finish(call, "cancelled", None)

    def _maybe_flush(self, response_id: str) -> None:
        """Send the finished calls' outputs in the model's order; ``response.create`` once the response is done.

        An output goes out as soon as its call (and every call the model made before it in the
        same response) has finished, as the live service's own clients do; the next response is
        asked for only when the response that made the calls is done and every output is sent.
        """
        if response_id in self._flushing or self._responses_done.get(response_id) == "cancelled":
            return
        calls = sorted((c for c in self.calls if c.response_id == response_id), key=lambda c: c.output_index)
        ready: list[ToolCall] = []
        for call in calls:
            if call.status == "running":
                break
            if not call.sent and call.output is not None:
                ready.append(call)
        all_sent = all(c.sent or c.output is None for c in calls[len(ready) :]) and not any(
            c.status == "running" for c in calls
        )
        respond = (
            response_id in self._responses_done
            and all_sent
            and response_id not in self._responded
            and any(c.output is not None for c in calls)
        )
        if not ready and not respond:
            return
        self._flushing.add(response_id)
        task = asyncio.get_running_loop().create_task(self._flush(response_id, ready, respond))
        task.add_done_callback(_log_failure)

    async def _flush(self, response_id: str, calls: list[ToolCall], respond: bool) -> None:
        try:
            await self._send_outputs(calls, respond=False)
            if respond:
                self._responded.add(response_id)
                if not self._active_responses:
                    await self._send({"type": "response.create"})
        finally:
            self._flushing.discard(response_id)
        self._maybe_flush(response_id)  # calls that finished meanwhile, or the response that ended meanwhile

    async def _send_outputs(self, calls: list[ToolCall], *, respond: bool) -> None:
        for call in calls:
            item = {"type": "function_call_output", "call_id": call.call_id, "output": call.output or ""}
            await self._send({"type": "conversation.item.create", "item": item})
            call.sent = True
            self._changed(call)
        if respond and calls and not self._active_responses:
            await self._send({"type": "response.create"})

    def _changed(self, call: ToolCall) -> None:
        if self.on_change is not None:
            try:
                self.on_change(call)
            except Exception:  # a broken view must not break the call loop
                log.exception("tool call listener failed")

    # ------------------------------------------------------------------ lifecycle and views

    @property
    def running(self) -> list[ToolCall]:
        return [c for c in self.calls if c.status == "running"]

    async def aclose(self) -> None:
        """Cancel running calls (their threads finish on their own) and release the worker pool."""
        for task in list(self._tasks.values()):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=1)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def table(self) -> Any:
        """The calls as a pandas DataFrame (or a list of dicts without pandas)."""
        return tool_calls_table(self.calls)


def tool_calls_table(calls: Iterable[ToolCall]) -> Any:
    """``calls`` as a pandas DataFrame, the useful columns first (a list of dicts without pandas)."""
    rows = [c.as_row() for c in calls]
    try:
        import pandas as pd  # type: ignore[import-untyped]
    except ImportError:
        return rows
    return pd.DataFrame(rows, columns=list(ToolCall("", "", "", None, None).as_row()))


def _response_id(event: Any) -> str | None:
    response = getattr(event, "response", None)
    rid = response.get("id") if isinstance(response, Mapping) else None
    return rid if isinstance(rid, str) else None


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("sending tool outputs failed: %s", task.exception())


# ------------------------------------------------------------------------------ outputs


def format_output(value: Any, max_chars: int = MAX_OUTPUT_CHARS) -> str:
    """A tool's return value as the text the model reads, cut to ``max_chars`` with a note."""
    text = _to_text(value)
    if len(text) <= max_chars:
        return text
    note = f" … [output cut: {len(text):,} characters, the first {max_chars:,} shown]"
    return text[: max(0, max_chars - len(note))] + note


def _to_text(value: Any) -> str:
    if value is None:
        return "done"
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    kind = type(value).__module__.split(".")[0]
    if kind == "pandas":
        return _pandas_text(value)
    return json.dumps(_jsonable(value), ensure_ascii=False, default=str)


def _pandas_text(value: Any) -> str:
    to_string = getattr(value, "to_string", None)
    if to_string is None:
        return str(value)
    rows = len(value)
    if rows > 20:
        return f"{to_string(max_rows=20)}\n[{rows:,} rows]"
    return str(to_string())


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "model_dump"):  # pydantic
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, enum.Enum):
        return _jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return str(value)
