"""Python functions as tools: schemas from signatures, and the call loop fed with real decoded events."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import threading
from typing import Annotated, Any, Literal

import numpy as np
import pytest
from pydantic import BaseModel
from typing_extensions import TypedDict

from voicelive_nb.errors import ConfigError, VoiceLiveError
from voicelive_nb.protocol.codec import decode_server_event
from voicelive_nb.tools import ToolArgumentsError, ToolRunner, as_tool, format_output, tool


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


@dataclasses.dataclass
class Window:
    start: int
    end: int = 10


class Filters(TypedDict):
    column: str
    missing: bool


class Box(BaseModel):
    width: float
    height: float


def weather(city: str, unit: Unit = Unit.CELSIUS, days: Annotated[int, "how many days ahead"] = 1) -> str:
    """Get the weather forecast for a city.

    Looks it up somewhere.

    Args:
        city: the city's name,
            in English.
        unit: the temperature unit.
    """
    return f"{city}: 12 degrees {unit.value}, {days} day(s)"


# ------------------------------------------------------------------------------ schema


def test_schema_from_signature_docstring_and_annotated() -> None:
    t = as_tool(weather)
    assert t.name == "weather"
    assert t.description == "Get the weather forecast for a city."
    props = t.parameters["properties"]
    assert t.parameters["type"] == "object"
    assert t.parameters["required"] == ["city"]
    assert props["city"] == {"type": "string", "description": "the city's name, in English."}
    assert props["days"]["description"] == "how many days ahead"
    assert props["days"]["default"] == 1
    assert t.parameters["$defs"]["Unit"]["enum"] == ["celsius", "fahrenheit"]
    assert t.definition()["type"] == "function"
    assert "title" not in json.dumps(t.parameters)


def test_literal_dataclass_typeddict_and_pydantic_models_become_nested_schemas() -> None:
    def f(mode: Literal["fast", "exact"], window: Window, filters: Filters, box: Box | None = None) -> None:
        """Do it."""

    t = as_tool(f)
    props = t.parameters["properties"]
    assert props["mode"]["enum"] == ["fast", "exact"]
    defs = t.parameters["$defs"]
    assert defs["Window"]["required"] == ["start"]
    assert set(defs["Filters"]["properties"]) == {"column", "missing"}
    assert set(defs["Box"]["properties"]) == {"width", "height"}
    kwargs = t.parse(
        '{"mode": "fast", "window": {"start": 2}, "filters": {"column": "price", "missing": true}}'
    )
    assert kwargs["window"] == Window(2, 10)
    assert kwargs["filters"] == {"column": "price", "missing": True}
    assert kwargs["box"] is None


def test_numpy_and_sphinx_docstrings() -> None:
    def numpy_style(a: int, b: int) -> int:
        """Add two numbers.

        Parameters
        ----------
        a : int
            the first
        b : int
            the second
        """
        return a + b

    def sphinx_style(a: int) -> int:
        """Double it.

        :param a: the number
        """
        return 2 * a

    assert as_tool(numpy_style).parameters["properties"]["b"]["description"] == "the second"
    assert as_tool(sphinx_style).parameters["properties"]["a"]["description"] == "the number"


def test_arguments_are_validated_to_the_declared_types() -> None:
    t = as_tool(weather)
    assert t.parse('{"city": "Oslo", "unit": "fahrenheit"}') == {
        "city": "Oslo",
        "unit": Unit.FAHRENHEIT,
        "days": 1,
    }
    with pytest.raises(ToolArgumentsError) as info:
        t.parse('{"unit": "kelvin"}')
    text = str(info.value)
    assert "city: Field required" in text and "unit:" in text and "call it again" in text
    with pytest.raises(ToolArgumentsError):
        t.parse('{"city": "Oslo", "extra": 1}')  # unknown arguments are refused, not dropped
    with pytest.raises(ToolArgumentsError):
        t.parse("not json")
    assert isinstance(info.value, VoiceLiveError)


def test_bad_definitions_name_the_problem() -> None:
    def star(*args: int) -> None: ...

    with pytest.raises(ConfigError, match=r"no \*args"):
        as_tool(star)
    with pytest.raises(ConfigError, match="letters, digits"):
        as_tool(weather, name="has space")
    with pytest.raises(ConfigError, match="positive"):
        as_tool(weather, timeout_s=0)


def test_decorator_forms() -> None:
    @tool
    def a() -> str:
        """A."""
        return "a"

    @tool(name="bee", timeout_s=2)
    def b() -> str:
        return "b"

    assert a.name == "a" and b.name == "bee" and b.timeout_s == 2
    assert as_tool(a) is a


# ------------------------------------------------------------------------------ outputs


def test_outputs_are_sensible_text() -> None:
    pd = pytest.importorskip("pandas")
    assert format_output("hi") == "hi"
    assert format_output(None) == "done"
    assert format_output(np.arange(3)) == "[0, 1, 2]"
    assert format_output(np.float32(1.5)) == "1.5"
    assert format_output({"n": np.int64(3), "u": Unit.CELSIUS}) == '{"n": 3, "u": "celsius"}'
    assert format_output(Window(1)) == '{"start": 1, "end": 10}'
    assert format_output(Box(width=1, height=2)) == '{"width": 1.0, "height": 2.0}'
    frame = pd.DataFrame({"price": range(100)})
    text = format_output(frame)
    assert "[100 rows]" in text and len(text.splitlines()) < 30
    cut = format_output("x" * 10_000, max_chars=200)
    assert len(cut) == 200 and "output cut: 10,000 characters" in cut


# ------------------------------------------------------------------------------ the call loop


def ev(payload: dict[str, Any]) -> Any:
    event = decode_server_event(json.dumps(payload))
    assert type(event).__name__ not in ("UnknownEvent", "ProtocolWarning"), event
    return event


def args_done(call_id: str, name: str, arguments: str, response_id: str = "resp_1", index: int = 0) -> Any:
    return ev(
        {
            "type": "response.function_call_arguments.done",
            "event_id": f"ev_{call_id}",
            "response_id": response_id,
            "item_id": f"item_{call_id}",
            "output_index": index,
            "call_id": call_id,
            "name": name,
            "arguments": arguments,
        }
    )


def response(kind: str, response_id: str = "resp_1", status: str = "completed") -> Any:
    body: dict[str, Any] = {"object": "realtime.response", "id": response_id, "status": status, "output": []}
    if kind == "created":
        body["status"] = "in_progress"
    return ev({"type": f"response.{kind}", "event_id": f"ev_{kind}", "response": body})


class Wire:
    """A real ``send``: keeps what was sent and lets a test wait for the n-th event."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    async def send(self, event: dict[str, Any]) -> None:
        self.sent.append(event)
        self._changed.set()

    async def wait(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        async def until() -> None:
            while len(self.sent) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(until(), timeout)
        return self.sent

    def outputs(self) -> list[tuple[str, str]]:
        return [
            (e["item"]["call_id"], e["item"]["output"])
            for e in self.sent
            if e["type"] == "conversation.item.create"
        ]


async def test_a_call_is_answered_with_its_output_then_response_create() -> None:
    wire = Wire()
    runner = ToolRunner(wire.send, [weather])
    runner.handle(response("created"))
    runner.handle(args_done("call_1", "weather", '{"city": "London"}'))
    runner.handle(response("done"))
    sent = await wire.wait(2)
    assert sent[0] == {
        "type": "conversation.item.create",
        "item": {
            "type": "function_call_output",
            "call_id": "call_1",
            "output": "London: 12 degrees celsius, 1 day(s)",
        },
    }
    assert sent[1] == {"type": "response.create"}
    (call,) = runner.calls
    assert call.status == "completed" and call.sent and call.duration_ms is not None
    await runner.aclose()


async def test_output_waits_for_the_response_that_asked_to_be_done() -> None:
    wire = Wire()
    gate = threading.Event()

    def slow() -> str:
        gate.wait(5)
        return "ok"

    runner = ToolRunner(wire.send, [slow])
    runner.handle(response("created"))
    runner.handle(args_done("c", "slow", "{}"))
    await asyncio.sleep(0)  # let the call start
    runner.handle(response("done"))
    assert wire.sent == []  # still running
    gate.set()
    sent = await wire.wait(2)
    assert [e["type"] for e in sent] == ["conversation.item.create", "response.create"]
    await runner.aclose()


async def test_the_output_item_done_alone_starts_the_call_and_duplicates_are_ignored() -> None:
    wire = Wire()
    runner = ToolRunner(wire.send, [weather])
    item = {
        "id": "item_x",
        "type": "function_call",
        "call_id": "call_x",
        "name": "weather",
        "arguments": '{"city":"Rome"}',
    }
    done = ev({"type": "response.output_item.done", "response_id": "resp_1", "output_index": 0, "item": item})
    runner.handle(done)
    runner.handle(args_done("call_x", "weather", '{"city":"Rome"}'))
    runner.handle(response("done"))
    await wire.wait(2)
    assert len(runner.calls) == 1 and wire.outputs() == [("call_x", "Rome: 12 degrees celsius, 1 day(s)")]
    await runner.aclose()


async def test_parallel_calls_run_concurrently_and_outputs_keep_the_models_order() -> None:
    wire = Wire()
    second_started = threading.Event()

    def first() -> str:
        # only finishes if `second` runs meanwhile: sequential execution would time out here
        return "first" if second_started.wait(5) else "sequential"

    def second() -> str:
        second_started.set()
        return "second"

    runner = ToolRunner(wire.send, [first, second])
    runner.handle(response("created"))
    runner.handle(args_done("c1", "first", "{}", index=0))
    runner.handle(args_done("c2", "second", "{}", index=1))
    runner.handle(response("done"))
    await wire.wait(3)
    assert wire.outputs() == [("c1", "first"), ("c2", "second")]
    assert wire.sent[-1] == {"type": "response.create"}
    await runner.aclose()


async def test_parallel_false_runs_one_after_another() -> None:
    wire = Wire()
    order: list[str] = []

    async def a() -> str:
        order.append("a-start")
        await asyncio.sleep(0.01)
        order.append("a-end")
        return "a"

    async def b() -> str:
        order.append("b-start")
        return "b"

    runner = ToolRunner(wire.send, [a, b], parallel=False)
    runner.handle(args_done("c1", "a", "{}", index=0))
    runner.handle(args_done("c2", "b", "{}", index=1))
    runner.handle(response("done"))
    await wire.wait(3)
    assert order == ["a-start", "a-end", "b-start"]
    await runner.aclose()


async def test_a_raising_tool_becomes_an_error_output_not_a_dead_loop() -> None:
    wire = Wire()

    def broken(x: int) -> int:
        raise ZeroDivisionError("division by zero")

    runner = ToolRunner(wire.send, [broken, weather])
    runner.handle(args_done("c1", "broken", '{"x": 1}'))
    runner.handle(response("done"))
    await wire.wait(2)
    call = runner.calls[0]
    assert call.status == "failed" and call.error == "ZeroDivisionError: division by zero"
    assert wire.outputs() == [("c1", "error: broken raised ZeroDivisionError: division by zero")]
    # the loop goes on: the next response's call is answered
    runner.handle(args_done("c2", "weather", '{"city":"Paris"}', response_id="resp_2"))
    runner.handle(response("done", "resp_2"))
    await wire.wait(4)
    assert wire.outputs()[-1] == ("c2", "Paris: 12 degrees celsius, 1 day(s)")
    await runner.aclose()


async def test_a_timeout_is_told_to_the_model() -> None:
    wire = Wire()

    async def never() -> str:
        await asyncio.sleep(60)
        return "late"

    runner = ToolRunner(wire.send, [as_tool(never, timeout_s=0.05)])
    runner.handle(args_done("c1", "never", "{}"))
    runner.handle(response("done"))
    await wire.wait(2)
    assert runner.calls[0].status == "timed_out"
    assert wire.outputs() == [("c1", "error: never did not finish within 0.05 s")]
    await runner.aclose()


async def test_bad_arguments_go_back_to_the_model_for_a_retry() -> None:
    wire = Wire()
    runner = ToolRunner(wire.send, [weather])
    runner.handle(args_done("c1", "weather", '{"town": "Oslo"}'))
    runner.handle(response("done"))
    await wire.wait(2)
    call = runner.calls[0]
    assert call.status == "invalid_arguments"
    ((_, output),) = wire.outputs()
    assert output.startswith("error: invalid arguments for weather: city: Field required")
    assert wire.sent[-1] == {"type": "response.create"}  # the model gets its chance to retry
    await runner.aclose()


async def test_barge_in_cancels_the_call_and_sends_nothing_stale() -> None:
    wire = Wire()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def lookup() -> str:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "stale"

    runner = ToolRunner(wire.send, [lookup])
    runner.handle(response("created"))
    runner.handle(args_done("c1", "lookup", "{}"))
    await asyncio.wait_for(started.wait(), 5)
    runner.handle(response("done", status="cancelled"))
    await asyncio.wait_for(cancelled.wait(), 5)
    await asyncio.sleep(0)
    assert runner.calls[0].status == "cancelled"
    assert wire.sent == []
    await runner.aclose()


async def test_an_unknown_tool_is_answered_with_the_known_names() -> None:
    wire = Wire()
    runner = ToolRunner(wire.send, [weather])
    runner.handle(args_done("c1", "stocks", "{}"))
    runner.handle(response("done"))
    await wire.wait(2)
    assert runner.calls[0].status == "unknown_tool"
    assert wire.outputs() == [("c1", "error: there is no tool named 'stocks' (tools: weather)")]
    await runner.aclose()


async def test_without_tools_the_runner_leaves_calls_to_the_caller() -> None:
    wire = Wire()
    runner = ToolRunner(wire.send)
    runner.handle(args_done("c1", "weather", "{}"))
    runner.handle(response("done"))
    await asyncio.sleep(0)
    assert runner.calls == [] and wire.sent == []


async def test_no_response_create_while_another_response_is_running() -> None:
    wire = Wire()
    runner = ToolRunner(wire.send, [weather])
    runner.handle(response("created", "resp_1"))
    runner.handle(args_done("c1", "weather", '{"city":"Oslo"}'))
    runner.handle(response("created", "resp_2"))  # e.g. the user spoke and the service answers that
    runner.handle(response("done", "resp_1"))
    await wire.wait(1)
    await asyncio.sleep(0.01)
    assert [e["type"] for e in wire.sent] == ["conversation.item.create"]
    await runner.aclose()


async def test_table_lists_every_call() -> None:
    pytest.importorskip("pandas")
    wire = Wire()
    runner = ToolRunner(wire.send, [weather])
    runner.handle(args_done("c1", "weather", '{"city":"Oslo"}'))
    runner.handle(response("done"))
    await wire.wait(2)
    frame = runner.table()
    assert list(frame["name"]) == ["weather"] and frame["arguments"][0] == {"city": "Oslo"}
    assert frame["status"][0] == "completed"
    await runner.aclose()
