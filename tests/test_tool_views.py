"""Tool calls in the notebook: the MCP approval flow, the panel's Tools section, tool lines in the
transcript, tool spans on the timeline and in the figure.

The approval flow runs against a small purpose-built Voice Live peer on 127.0.0.1 (a real
websockets server that sends ``mcp_approval_request`` items and records what the client sends);
function tools run against the built-in emulator, which calls them by rule.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from waiting import wait_until

from voicelive_nb import NotebookSession, Session
from voicelive_nb.analysis.timeline import Timeline, unpack
from voicelive_nb.emulator.server import BackgroundEmulator
from voicelive_nb.errors import ConfigError, VoiceLiveError
from voicelive_nb.protocol.codec import decode_server_event
from voicelive_nb.protocol.config import SessionConfig
from voicelive_nb.protocol.state import SessionProtocol
from voicelive_nb.tools import ToolCall
from voicelive_nb.widgets import SessionPanel
from voicelive_nb.widgets.log import TranscriptView, with_tool_lines
from voicelive_nb.widgets.tools import ToolsView, tool_line

# ---------------------------------------------------------------------------------- an MCP peer


def _approval_request(request_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "realtime.item",
        "type": "mcp_approval_request",
        "server_label": "docs",
        "name": name,
        "arguments": arguments,
    }


class McpPeer:
    """A Voice Live peer that, once configured, lists MCP tools and asks for two approvals; an
    ``mcp_approval_response`` item gets the MCP call's lifecycle events back (or a denial's)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="mcp-peer", daemon=True)
        self.thread.start()
        self.received: list[dict[str, Any]] = []

        async def start() -> Any:
            from websockets.asyncio.server import serve

            return await serve(self._handler, "127.0.0.1", 0, compression=None)

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.url = f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    @property
    def answers(self) -> list[dict[str, Any]]:
        return [
            e["item"]
            for e in list(self.received)
            if e.get("type") == "conversation.item.create"
            and (e.get("item") or {}).get("type") == "mcp_approval_response"
        ]

    async def _handler(self, ws: Any) -> None:
        n = 0

        async def send(event: dict[str, Any]) -> None:
            nonlocal n
            n += 1
            await ws.send(json.dumps({"event_id": f"ev{n}", **event}))

        await send({"type": "session.created", "session": {"id": "s1"}})
        async for raw in ws:
            event = json.loads(raw)
            self.received.append(event)
            etype = event.get("type")
            if etype == "session.update":
                await send({"type": "session.updated", "session": event.get("session", {})})
                await self._ask(send)
            elif etype == "conversation.item.create" and event["item"].get("type") == "mcp_approval_response":
                await self._answered(send, event["item"])

    async def _ask(self, send: Callable[[dict[str, Any]], Any]) -> None:
        await send({"type": "mcp_list_tools.in_progress", "item_id": "mcpl_1"})
        await send({"type": "mcp_list_tools.completed", "item_id": "mcpl_1"})
        await send({"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}})
        for index, (rid, name, args) in enumerate(
            [("mcpr_1", "search_docs", '{"query":"voice live"}'), ("mcpr_2", "delete_page", '{"page":7}')]
        ):
            item = _approval_request(rid, name, args)
            await send(
                {
                    "type": "response.output_item.added",
                    "response_id": "resp_1",
                    "output_index": index,
                    "item": item,
                }
            )
            await send({"type": "conversation.item.created", "previous_item_id": None, "item": item})
            await send(
                {
                    "type": "response.output_item.done",
                    "response_id": "resp_1",
                    "output_index": index,
                    "item": item,
                }
            )
        await send(
            {"type": "response.done", "response": {"id": "resp_1", "status": "completed", "output": []}}
        )

    async def _answered(self, send: Callable[[dict[str, Any]], Any], answer: dict[str, Any]) -> None:
        echo = {"id": f"item_{answer['approval_request_id']}", "object": "realtime.item", **answer}
        await send({"type": "conversation.item.created", "previous_item_id": None, "item": echo})
        if not answer["approve"]:
            return
        call = {
            "id": "mcp_1",
            "type": "mcp_call",
            "server_label": "docs",
            "name": "search_docs",
            "arguments": '{"query":"voice live"}',
            "approval_request_id": answer["approval_request_id"],
        }
        await send({"type": "response.created", "response": {"id": "resp_2", "status": "in_progress"}})
        await send(
            {"type": "response.output_item.added", "response_id": "resp_2", "output_index": 0, "item": call}
        )
        await send({"type": "response.mcp_call.in_progress", "item_id": "mcp_1", "output_index": 0})
        await send({"type": "response.mcp_call.completed", "item_id": "mcp_1", "output_index": 0})
        await send(
            {"type": "response.done", "response": {"id": "resp_2", "status": "completed", "output": []}}
        )

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def mcp_peer() -> Iterator[McpPeer]:
    peer = McpPeer()
    yield peer
    peer.close()


MCP_CONFIG = SessionConfig.server_vad().replace(
    tools=[
        {
            "type": "mcp",
            "server_label": "docs",
            "server_url": "https://mcp.example/sse",
            "require_approval": "always",
        }
    ]
)


def test_approve_and_deny_from_the_panel_send_mcp_approval_responses(mcp_peer: McpPeer) -> None:
    session = NotebookSession(
        MCP_CONFIG, endpoint=mcp_peer.url, api_key="k", mic=False, speaker=False, dotenv=False, emulator=False
    )
    panel = SessionPanel(session, show_live=False)
    try:
        session.start(wait=True, timeout=15)
        assert MCP_CONFIG.to_dict()["tools"][0]["require_approval"] == "always"
        sent_tools = next(e for e in mcp_peer.received if e["type"] == "session.update")["session"]["tools"]
        assert sent_tools[0]["type"] == "mcp" and sent_tools[0]["server_label"] == "docs"
        view = panel.tools_view
        wait_until(lambda: view.approve_buttons("mcpr_2") is not None, what="both approval rows")
        assert [a.id for a in session.state.pending_approvals] == ["mcpr_1", "mcpr_2"]
        assert "search_docs" in view.approvals.children[0].children[0].value

        approve, _deny = view.approve_buttons("mcpr_1")  # type: ignore[misc]
        approve.click()
        wait_until(lambda: len(mcp_peer.answers) == 1, what="the approval sent")
        assert mcp_peer.answers[0] == {
            "type": "mcp_approval_response",
            "approval_request_id": "mcpr_1",
            "approve": True,
        }
        _approve, deny = view.approve_buttons("mcpr_2")  # type: ignore[misc]
        deny.click()
        wait_until(lambda: len(mcp_peer.answers) == 2, what="the denial sent")
        assert mcp_peer.answers[1]["approve"] is False
        assert mcp_peer.answers[1]["approval_request_id"] == "mcpr_2"

        wait_until(lambda: not view.approvals.children, what="answered rows gone")
        assert view.approve_buttons("mcpr_1") is None
        answered = {a.id: a.approve for a in session.state.approval_requests}
        assert answered == {"mcpr_1": True, "mcpr_2": False}
        # MCP lifecycle events are in the event log
        wait_until(
            lambda: "response.mcp_call.completed" in {ln.type for ln in panel.event_log.lines},
            what="the mcp call in the event log",
        )
        types = {ln.type for ln in panel.event_log.lines}
        assert {"mcp_list_tools.completed", "response.mcp_call.in_progress"} <= types
        texts = [ln.text() for ln in panel.event_log.lines]
        assert any("mcp_approval_request docs.search_docs" in t and "mcpr_1" in t for t in texts), texts
        assert any(t.startswith("↑") and "mcp_approval_response deny mcpr_2" in t for t in texts), texts
        assert not panel.errors
    finally:
        session.stop()
        panel.close()


def test_approve_from_code_with_a_reason_and_refused_arguments(mcp_peer: McpPeer) -> None:
    session = NotebookSession(
        MCP_CONFIG, endpoint=mcp_peer.url, api_key="k", mic=False, speaker=False, dotenv=False, emulator=False
    )
    try:
        session.start(wait=True, timeout=15)
        wait_until(lambda: len(session.state.pending_approvals) == 2, what="two approval requests")
        request = session.state.pending_approvals[1]
        assert (request.server_label, request.name, request.arguments) == (
            "docs",
            "delete_page",
            '{"page":7}',
        )
        assert request.response_id == "resp_1"
        session.approve("mcpr_2", approve=False, reason="not on a live wiki")
        wait_until(lambda: len(mcp_peer.answers) == 1, what="the denial sent")
        assert mcp_peer.answers[0]["reason"] == "not on a live wiki"
        assert [a.id for a in session.state.pending_approvals] == ["mcpr_1"]
        for bad, field in (
            ({"approval_request_id": ""}, "approval_request_id"),
            ({"approve": "yes"}, "approve"),
        ):
            args = {"approval_request_id": "mcpr_1", "approve": True, **bad}
            with pytest.raises(ConfigError) as info:
                session.approve(**args)
            assert isinstance(info.value, VoiceLiveError)
            assert field in str(info.value)
        assert len(mcp_peer.answers) == 1  # nothing refused was sent
    finally:
        session.stop()


def test_state_keeps_approval_requests_from_any_item_event_verbatim() -> None:
    state = SessionProtocol()
    item = {**_approval_request("mcpr_9", "x", '{"a":1}'), "future_field": [1, 2]}
    state.receive(decode_server_event(json.dumps({"type": "conversation.item.created", "item": item})))
    (request,) = state.pending_approvals
    assert request.data["future_field"] == [1, 2] and request.response_id is None
    # the service reporting the answer (another client answered) closes it too
    answer = {"id": "a1", "type": "mcp_approval_response", "approval_request_id": "mcpr_9", "approve": True}
    state.receive(decode_server_event(json.dumps({"type": "conversation.item.created", "item": answer})))
    assert state.pending_approvals == () and state.approval_requests[0].approve is True


# ---------------------------------------------------------------------------------- function tools


def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return f"12 degrees in {city}"


@pytest.fixture
def tool_session(emulator: BackgroundEmulator) -> Iterator[tuple[NotebookSession, SessionPanel]]:
    session = NotebookSession(
        SessionConfig.server_vad(),
        endpoint=emulator.url,
        api_key="k",
        mic=False,
        speaker=False,
        dotenv=False,
        tools=[get_weather],
    )
    panel = SessionPanel(session, show_live=False)
    yield session, panel
    session.stop()
    panel.close()


def ask(session: NotebookSession, text: str) -> None:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    session.send({"type": "conversation.item.create", "item": item})
    session.create_response()


def test_a_call_shows_in_the_tools_section_transcript_timeline_and_figure(
    tool_session: tuple[NotebookSession, SessionPanel],
) -> None:
    session, panel = tool_session
    assert "get_weather" in panel.tools_view.registered.value  # registered, before the start
    assert "city: string" in panel.tools_view.registered.value
    from voicelive_nb.widgets.live import LiveView

    view = LiveView(window_s=10.0)
    view.attach(session)
    session.start(wait=True, timeout=15)
    ask(session, "what is the weather in London")
    wait_until(
        lambda: any(c.status == "completed" and c.sent for c in session.tool_calls),
        20,
        "the tool call answered",
    )
    (call,) = session.tool_calls
    assert call.parsed_arguments == {"city": "London"}
    wait_until(
        lambda: 'data-status="completed"' in panel.tools_view.calls.value, what="the call in the panel"
    )
    calls_html = panel.tools_view.calls.value
    assert "12 degrees in London" in calls_html and " ms</td>" in calls_html
    wait_until(
        lambda: "🔧 get_weather(city=London) → 12 degrees in London" in panel.transcript.value,
        what="the tool line in the transcript",
    )
    wait_until(
        lambda: "response.function_call_arguments.done" in {ln.type for ln in panel.event_log.lines},
        what="the call's events in the log",
    )
    # timeline: the span starts at the arguments' receipt and ends when the output was sent
    live = session.session
    assert live is not None
    events = live.timed_events()
    t_done = next(t for t, e in events if e.type == "response.function_call_arguments.done")
    timeline = Timeline.from_timed_events(events)
    timeline.tool_call(call)
    (span,) = timeline.tool_spans
    assert span.name == "get_weather" and span.status == "completed"
    assert span.start_s == pytest.approx(timeline.to_axis(call.started_s))
    assert span.end_s == pytest.approx(timeline.to_axis(call.finished_s))
    assert abs(call.started_s - t_done) < 0.5
    # the live view's tools lane: one finished span, with its name
    wait_until(lambda: len(unpack(view.timeline)["tools"]) == 1, what="the live tools lane")
    wait_until(lambda: unpack(view.timeline)["tools"][0][2] == 1, what="the live span finished")
    start, end, _code = unpack(view.timeline)["tools"][0]
    assert view.tool_names == "get_weather"
    assert end - start == pytest.approx(call.duration_ms / 1000, abs=0.01)
    view.detach()
    # and the figure of the session draws it
    from voicelive_nb.plots.figures import plot_session

    fig = plot_session(session)
    rects = [p for ax in fig.axes for p in ax.patches if p.get_gid() == "tool"]
    assert len(rects) == 1
    (drawn,) = fig.timeline.tool_spans
    assert drawn.status == "completed" and drawn.end_s is not None  # the ToolCall's times, not only events
    assert rects[0].get_x() == pytest.approx(drawn.start_s)
    assert rects[0].get_width() == pytest.approx(drawn.end_s - drawn.start_s)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "tool call" in labels


# ---------------------------------------------------------------------------------- pure views


def _call(**kw: Any) -> ToolCall:
    base: dict[str, Any] = {"call_id": "c1", "name": "get_weather", "arguments": '{"city": "London"}'}
    base.update(response_id="r1", item_id="fc1", started_s=100.0)
    base.update(kw)
    return ToolCall(**base)


def test_tool_line_says_what_was_called_and_what_came_back() -> None:
    assert tool_line(_call()) == "🔧 get_weather(city=London) …"
    done = _call(status="completed", output="12 degrees", finished_s=100.2)
    assert tool_line(done) == "🔧 get_weather(city=London) → 12 degrees"
    failed = _call(status="failed", error="ValueError: no such city", output="error: ...")
    assert tool_line(failed) == "🔧 get_weather(city=London) ✗ failed: ValueError: no such city"
    assert tool_line(_call(arguments="not json", status="completed", output="x")).startswith(
        "🔧 get_weather(not json)"
    )


def test_tool_lines_sit_where_their_item_is_in_the_conversation() -> None:
    entries = [("user", "u1", "weather?", True), ("assistant", "a2", "It is 12 degrees", True)]
    order = ["u1", "fc1", "a2"]
    merged = with_tool_lines(entries, [_call(status="completed", output="12")], order)
    assert [e[0] for e in merged] == ["user", "tool", "assistant"]
    unknown = with_tool_lines(entries, [_call(item_id="elsewhere")], order)
    assert [e[0] for e in unknown] == ["user", "assistant", "tool"]
    view = TranscriptView()
    view.render(merged)
    assert 'class="vl-tool"' in view.value and "→ 12" in view.value


def test_tools_view_lists_calls_with_status_output_and_duration() -> None:
    view = ToolsView()
    view.render([], [_call(status="timed_out", error="timed out after 30 s", finished_s=130.0)], [])
    assert 'data-status="timed_out"' in view.calls.value
    assert "timed out after 30 s" in view.calls.value and "30000 ms" in view.calls.value
    before = view.calls.value
    view.render([], [_call(status="timed_out", error="timed out after 30 s", finished_s=130.0)], [])
    assert view.calls.value is before or view.calls.value == before


def test_timeline_tool_span_from_recorded_events_and_the_output_sent() -> None:
    timeline = Timeline()
    timeline.input_audio(10.0, 960)  # axis zero at 9.98
    done = {
        "type": "response.function_call_arguments.done",
        "call_id": "c1",
        "name": "lookup",
        "arguments": "{}",
    }
    timeline.add(10.5, done)
    (open_span,) = timeline.tool_spans
    assert open_span.end_s is None and open_span.status == "running"
    assert open_span.start_s == pytest.approx(10.5 - 9.98)
    output = {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "c1", "output": "1"},
    }
    timeline.sent(10.75, output)
    (span,) = timeline.tool_spans
    assert span.end_s == pytest.approx(10.75 - 9.98) and span.status == "sent"
    assert timeline.summary()["tool_calls"] == 1
    packed = unpack(timeline.pack())
    assert packed["tools"].shape == (1, 3) and packed["tools"][0][2] == 1  # done
    assert len(packed["vad"]) == 0 and timeline.tool_names() == ["lookup"]


def test_figure_draws_a_tool_span_where_it_was_and_a_legend_entry_only_then() -> None:
    from voicelive_nb.plots.figures import plot_session

    timeline = Timeline()
    timeline.input_audio(10.0, 960)
    timeline.add(10.1, {"type": "response.created", "response": {"id": "r1"}})
    timeline.add(10.5, {"type": "response.function_call_arguments.done", "call_id": "c1", "name": "lookup"})
    timeline.sent(
        11.0, {"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "c1"}}
    )
    fig = plot_session(timeline)
    (rect,) = [p for ax in fig.axes for p in ax.patches if p.get_gid() == "tool"]
    assert rect.get_x() == pytest.approx(0.52, abs=1e-6)
    assert rect.get_width() == pytest.approx(0.5, abs=1e-6)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == "tool-label"]
    assert texts == [" lookup"]
    assert "tool call" in [t.get_text() for t in fig.legends[0].get_texts()]

    plain = Timeline()
    plain.input_audio(10.0, 960)
    plain.add(10.1, {"type": "response.created", "response": {"id": "r1"}})
    fig2 = plot_session(plain)
    assert not [p for ax in fig2.axes for p in ax.patches if p.get_gid() == "tool"]
    assert "tool call" not in [t.get_text() for t in fig2.legends[0].get_texts()]


def test_session_approve_refuses_bad_arguments_before_sending() -> None:
    session = Session(endpoint="ws://127.0.0.1:9", api_key="k", dotenv=False, emulator=False)

    async def go() -> None:
        with pytest.raises(ConfigError, match="reason"):
            await session.approve("mcpr_1", True, reason=3)  # type: ignore[arg-type]

    asyncio.run(go())


def test_a_tool_registered_later_shows_at_the_next_refresh() -> None:
    session = NotebookSession(
        endpoint="ws://127.0.0.1:9", api_key="k", mic=False, speaker=False, dotenv=False
    )
    panel = SessionPanel(session, show_live=False, show_config=False)
    try:
        assert "no tools registered" in panel.tools_view.registered.value
        assert "Tools" in panel.tabs.titles

        @session.tool
        def count_rows(column: str, missing: bool = False) -> int:
            """Count rows of the loaded table."""
            return 0

        panel.refresh()
        shown = panel.tools_view.registered.value
        assert "count_rows" in shown and "Count rows of the loaded table." in shown
        assert "column: string" in shown and "missing: boolean?" in shown
    finally:
        panel.close()


def test_the_emulators_mcp_approval_is_answered_from_the_panel(emulator: BackgroundEmulator) -> None:
    docs = {
        "type": "mcp",
        "server_label": "docs",
        "server_url": "https://mcp.example/docs",
        "allowed_tools": ["search_docs", "read_page"],
        "require_approval": "always",
    }
    config = SessionConfig.server_vad().replace(tools=[docs], turn_detection=None, modalities=["text"])
    session = NotebookSession(
        config, endpoint=emulator.url, api_key="k", mic=False, speaker=False, dotenv=False
    )
    panel = SessionPanel(session, show_live=False, show_config=False)
    try:
        session.start(wait=True, timeout=15)
        ask(session, "search the docs for phrase lists")
        wait_until(lambda: len(session.state.pending_approvals) == 1, 20, "the emulator's approval request")
        (request,) = session.state.pending_approvals
        assert (request.server_label, request.name) == ("docs", "search_docs")
        wait_until(lambda: panel.tools_view.approve_buttons(request.id) is not None, what="the approval row")
        approve, _deny = panel.tools_view.approve_buttons(request.id)  # type: ignore[misc]
        approve.click()
        wait_until(
            lambda: any("emulated search_docs result" in e.text for e in session.transcript),
            20,
            "the answer quoting the mcp call",
        )
        assert session.state.approval_requests[0].approve is True
        wait_until(lambda: not panel.tools_view.approvals.children, what="the row gone")
        wait_until(
            lambda: "response.mcp_call.completed" in {ln.type for ln in panel.event_log.lines},
            what="the mcp call in the event log",
        )
        assert not panel.errors
    finally:
        session.stop()
        panel.close()
