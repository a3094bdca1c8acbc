"""Session(tools=...) answers the model's function calls: the recorded live tool rounds, replayed over a socket."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import real_traffic as rt
from test_replay import TIMEOUT, drive, session_config

from voicelive_nb import Session
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
