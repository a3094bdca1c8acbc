"""Session(tools=...) answers the model's function calls: the recorded live tool rounds, replayed over a socket."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import real_traffic as rt
from test_replay import TIMEOUT, drive, session_config

from voicelive_nb import NotebookSession, Session
from voicelive_nb.audio.memory import BufferSink
from voicelive_nb.emulator import run_emulator


def tool_round_params() -> list[Any]:
    return list(_tool_round_params())


def _tool_round_params() -> Any:
    for param in rt.params():
        trace = param.values[0]
        if trace is None or (
            "response.function_call_arguments.done" in [p["type"] for p in trace.server()]
            and any(p["type"] == "session.created" for p in trace.server())
        ):
            yield param


def split_at_tool_output(trace: rt.Trace) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
    """The trace's lines up to (not including) the client's function_call_output, and that item."""
    lines = trace.lines()
    for i, (direction, payload) in enumerate(lines):
        item = payload.get("item") or {}
        if direction == "client" and item.get("type") == "function_call_output":
            return lines[:i], item
    raise AssertionError("no function_call_output in the trace")


@pytest.mark.parametrize("trace", tool_round_params())
async def test_the_runner_answers_a_live_tool_round_as_the_recorded_client_did(trace: rt.Trace) -> None:
    before, recorded = split_at_tool_output(trace)
    calls: list[dict[str, Any]] = []

    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        calls.append({"city": city})
        return str(recorded["output"])

    api_version = "v1" if trace.shape == "ga" else "2025-10-01"
    async with (
        run_emulator(replay=trace.lines()) as replay,
        Session(
            session_config(trace),
            endpoint=replay.url,
            api_key="replay-key",
            api_version=api_version,
            model="gpt-realtime",
            sink=BufferSink(),
            tools=[get_weather],
            dotenv=False,
        ) as session,
    ):
        await drive(session, before)  # the user's question; the tool round is the runner's job
        first = await session.wait_for("response.done", timeout=TIMEOUT)
        second = await session.wait_for("response.done", timeout=TIMEOUT)
        assert first.response["status"] == second.response["status"] == "completed"
        assert calls == [{"city": "London"}]
        (call,) = session.tool_calls
        assert call.name == "get_weather" and call.status == "completed" and call.sent
        assert call.call_id == recorded["call_id"]
        sent = [e for _, e in session.sent_events() if e["type"] == "conversation.item.create"]
        outputs = [e["item"] for e in sent if e["item"].get("type") == "function_call_output"]
        assert outputs == [
            {"type": "function_call_output", "call_id": recorded["call_id"], "output": recorded["output"]}
        ]
        assert session.errors == []
        # the service's answer quotes the tool's output
        texts = [getattr(e, "text", "") or getattr(e, "transcript", "") for e in session.events]
        assert any("London" in t for t in texts if t)


async def test_registered_tools_are_sent_and_added_live() -> None:
    async with run_emulator(pace="fast") as emu:
        s = Session(endpoint=emu.url, api_key="k", dotenv=False)

        def row_count() -> int:
            """Count the rows of the table."""
            return 3

        s.tool(row_count)
        async with s:
            names = [t["name"] for t in s.effective_session().get("tools") or []]
            assert names == ["row_count"]

            @s.tool(timeout_s=5)
            def mean_price(region: str = "all") -> float:
                """The mean price."""
                return 1.0

            updated = await s.add_tools()  # nothing new to add: the decorator already sent it, or sends now
            deadline = asyncio.get_running_loop().time() + 5
            while "mean_price" not in [t["name"] for t in s.effective_session().get("tools") or []]:
                assert asyncio.get_running_loop().time() < deadline, "the live tool update never arrived"
                await s.wait_for("session.updated", timeout=5)
            assert updated is None or updated.type == "session.updated"
            tools = {t["name"]: t for t in s.effective_session()["tools"]}
            assert tools["mean_price"]["parameters"]["properties"]["region"]["default"] == "all"


class ReplayInThread:
    """The replay server on its own thread and loop, for the synchronous NotebookSession API."""

    def __init__(self, lines: list[tuple[str, dict[str, Any]]]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._cm = run_emulator(replay=lines)
        self.server = asyncio.run_coroutine_threadsafe(self._cm.__aenter__(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._cm.__aexit__(None, None, None), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def test_notebook_session_tools_answer_a_live_tool_round() -> None:
    traces = [t for t in rt.load(rt.VOICELIVE_FILE) if t.short == "test_tool_call_round"]
    if not traces:
        pytest.skip(rt.SKIP_REASON)
    (trace,) = traces
    before, recorded = split_at_tool_output(trace)
    replay = ReplayInThread(trace.lines())
    seen: list[str] = []
    ns = NotebookSession(
        session_config(trace),
        endpoint=replay.server.url,
        api_key="replay-key",
        api_version="2025-10-01",
        model="gpt-realtime",
        mic=False,
        speaker=False,
        emulator=False,
        dotenv=False,
    )

    @ns.tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        return str(recorded["output"])

    ns.add_tool_listener(lambda call: seen.append(call.status))
    try:
        ns.start(wait=True, timeout=15)
        for direction, payload in before:
            if direction == "client" and payload["type"] in ("conversation.item.create", "response.create"):
                ns.send(payload)
        ns.wait_for("response.done", timeout=TIMEOUT)
        ns.wait_for("response.done", timeout=TIMEOUT)
        (call,) = ns.tool_calls
        assert (call.name, call.parsed_arguments, call.status) == (
            "get_weather",
            {"city": "London"},
            "completed",
        )
        assert seen[0] == "running" and "completed" in seen
        table = ns.tool_table()
        assert list(table.columns[:5]) == ["name", "arguments", "status", "output", "duration_ms"]
        assert [t.name for t in ns.tools] == ["get_weather"]
    finally:
        ns.stop()
        replay.close()


def test_notebook_session_adds_tools_live(emulator: Any) -> None:
    def row_count() -> int:
        """Count the rows."""
        return 3

    ns = NotebookSession(
        endpoint=emulator.url, api_key="k", mic=False, speaker=False, tools=[row_count], dotenv=False
    )
    try:
        ns.start(wait=True, timeout=15)
        assert [t["name"] for t in ns.session.effective_session()["tools"]] == ["row_count"]

        def mean_price(region: str = "all") -> float:
            """The mean price."""
            return 1.0

        ns.add_tools(mean_price)
        assert [t["name"] for t in ns.session.effective_session()["tools"]] == ["row_count", "mean_price"]
    finally:
        ns.stop()
