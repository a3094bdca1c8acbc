"""Conversations that outlive their connection (#16): rollover before ``expires_at``, re-seeding,
reconnect after a kill, the process-wide connection budget — against the emulator with short limits."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from waiting import wait_until

from voicelive_nb import SessionConfig
from voicelive_nb.audio.memory import ArraySource
from voicelive_nb.emulator.server import BackgroundEmulator, Faults
from voicelive_nb.errors import ConfigError, VoiceLiveError
from voicelive_nb.notebook_session import INCOMPLETE_NOTE, NotebookSession
from voicelive_nb.protocol.state import ConversationItem
from voicelive_nb.recording import Recording
from voicelive_nb.rollover import (
    OMITTED_NOTE,
    ConnectionBudget,
    history_items,
    reseed_plan,
    rollover_due,
)
from voicelive_nb.widgets.panel import phase_of, with_expiry


@pytest.fixture
def expiring() -> Iterator[BackgroundEmulator]:
    """Every connection expires 3 s after it opened (``session_expired``, then close 1001)."""
    emu = BackgroundEmulator(pace="fast", api_key="k", faults=Faults(session_expires_s=3.0)).start()
    try:
        yield emu
    finally:
        emu.stop()


def make(emu: BackgroundEmulator, **kw: Any) -> NotebookSession:
    return NotebookSession(
        kw.pop("config", SessionConfig.manual()),
        endpoint=emu.url,
        api_key="k",
        emulator=False,
        mic=kw.pop("mic", False),
        speaker=False,
        dotenv=False,
        **kw,
    )


def say(ns: NotebookSession, text: str, timeout: float = 15.0) -> Any:
    """One typed turn: a user text item and a response; the response.done."""
    ns.send(
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
        }
    )
    ns.create_response()
    return ns.wait_for("response.done", timeout=timeout)


def item_text(item: dict[str, Any]) -> str:
    return "".join(
        str(p.get("text") or p.get("transcript") or "")
        for p in item.get("content", ())
        if isinstance(p, dict)
    )


def retrieve(ns: NotebookSession, item_id: str) -> dict[str, Any]:
    """The item as the emulator's conversation on the current connection holds it."""
    ns.send({"type": "conversation.item.retrieve", "item_id": item_id})
    event = ns.wait_for(
        "conversation.item.retrieved", timeout=5, predicate=lambda e: (e.item or {}).get("id") == item_id
    )
    return dict(event.item)


# --- the pure parts ------------------------------------------------------------------------------


def _item(item_id: str, kind: str, role: str | None = None, **data: Any) -> ConversationItem:
    return ConversationItem(item_id, kind, role, "completed", None, {"id": item_id, "type": kind, **data})


def test_history_turns_audio_items_into_text_and_keeps_tool_rounds() -> None:
    items = [
        _item("u1", "message", "user", content=[{"type": "input_audio", "transcript": None}]),
        _item("a1", "message", "assistant", content=[{"type": "audio"}]),
        _item("c1", "function_call", call_id="call_1", name="total", arguments='{"x": 1}'),
        _item("o1", "function_call_output", call_id="call_1", output="42"),
        _item("m1", "mcp_approval_request", server_label="s", name="n", arguments="{}"),
        _item("seeded", "message", "user", content=[{"type": "input_text", "text": "old"}]),
        _item("u2", "message", "user", content=[{"type": "input_audio"}]),  # never transcribed
    ]
    texts = {"u1": "what is the total", "a1": "let me check"}
    out = history_items(items, texts, skip_ids={"seeded"})
    assert out == [
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "what is the total"}],
            "id": "u1",
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": "let me check"}],
            "id": "a1",
        },
        {"type": "function_call", "call_id": "call_1", "name": "total", "arguments": '{"x": 1}', "id": "c1"},
        {"type": "function_call_output", "call_id": "call_1", "output": "42", "id": "o1"},
    ]


def test_reseed_budget_drops_the_oldest_with_a_note_and_no_orphan_outputs() -> None:
    def msg(i: int) -> dict[str, Any]:
        return {
            "id": f"m{i}",
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "x" * 10}],
        }

    history = [
        {"id": "c", "type": "function_call", "call_id": "k", "name": "f", "arguments": "{}"},
        {"id": "o", "type": "function_call_output", "call_id": "k", "output": "y" * 30},
        *[msg(i) for i in range(5)],
    ]
    whole = reseed_plan(history, max_chars=None, max_items=None)
    assert [i["id"] for i in whole.items] == ["c", "o", "m0", "m1", "m2", "m3", "m4"] and whole.dropped == 0
    by_chars = reseed_plan(history, max_chars=80, max_items=None)  # the call fits, its output does not
    assert item_text(by_chars.items[0]) == OMITTED_NOTE
    assert [i.get("id") for i in by_chars.items[1:]] == ["m0", "m1", "m2", "m3", "m4"]
    assert by_chars.dropped == 2 and by_chars.chars == 50
    by_items = reseed_plan(history, max_chars=None, max_items=3)  # the note counts
    assert [item_text(i) for i in by_items.items] == [OMITTED_NOTE, "x" * 10, "x" * 10]
    assert [e["type"] for e in by_items.events()] == ["conversation.item.create"] * 3
    with pytest.raises(ConfigError, match="reseed_max_chars"):
        reseed_plan(history, max_chars=-1)


def test_rollover_waits_for_a_quiet_moment_but_not_past_the_deadline() -> None:
    assert not rollover_due(0.0, 100.0, 10.0, quiet=True)  # not yet inside the margin
    assert rollover_due(91.0, 100.0, 10.0, quiet=True)
    assert not rollover_due(91.0, 100.0, 10.0, quiet=False)  # a response is running: wait
    assert rollover_due(97.6, 100.0, 10.0, quiet=False)  # the last quarter: now, whatever happens
    assert not rollover_due(99.0, None, 10.0, quiet=True)


def test_connection_budget_is_a_sliding_window() -> None:
    now = [0.0]
    budget = ConnectionBudget(2, window_s=10.0, clock=lambda: now[0])
    assert budget.reserve() == 0 and budget.reserve() == 0
    assert budget.reserve() == pytest.approx(10.0)  # the third waits for the first to leave the window
    now[0] = 4.0
    assert budget.reserve() == pytest.approx(6.0)  # with the third, when the second leaves
    assert budget.reserve() == pytest.approx(16.0)  # a window after the two reserved ones
    assert budget.used(30.0) == 0
    budget.record(30.0)
    assert budget.used(30.0) == 1
    with pytest.raises(ConfigError, match="limit"):
        ConnectionBudget(0)


def test_settings_are_checked_and_named() -> None:
    with pytest.raises(ConfigError, match="rollover_margin_s"):
        NotebookSession(rollover_margin_s=0, dotenv=False)
    with pytest.raises(ConfigError, match="reseed_max_items"):
        NotebookSession(reseed_max_items=-3, dotenv=False)
    with pytest.raises(ConfigError, match="connection_budget"):
        NotebookSession(connection_budget=30, dotenv=False)  # type: ignore[arg-type]
    assert NotebookSession(auto_reconnect=True, dotenv=False).rollover is True  # on with auto_reconnect
    assert NotebookSession(dotenv=False).rollover is False


def test_panel_shows_a_quiet_countdown_and_reconnect_states() -> None:
    assert with_expiry("connected", 3600.0) == "connected"
    assert with_expiry("connected", 299.5, renews=True) == "connected · connection renews in 4:59"
    assert with_expiry("connected", 61.0) == "connected · connection ends in 1:01"
    assert with_expiry("connected", None) == "connected"
    assert phase_of("reconnecting (2/5): connection lost: 1011") == "connecting"
    assert phase_of("waiting 3.0 s for the connection budget (30 new connections per 60 s)") == "connecting"


# --- against the emulator ------------------------------------------------------------------------


def test_a_conversation_rolls_over_three_times_and_keeps_every_turn(expiring: BackgroundEmulator) -> None:
    ns = make(
        expiring, auto_reconnect=True, rollover_margin_s=1.5, reseed_max_items=None, reseed_max_chars=None
    )
    ns.start(wait=True, timeout=10)
    try:
        expires_in = ns.expires_in_s
        assert expires_in is not None and 0 < expires_in <= 3.0
        assert ns.session is not None and ns.session.expires_in_s is not None
        checked = 0
        turns = 0
        deadline = time.monotonic() + 30
        while (ns.rollovers < 3 or turns < 10) and time.monotonic() < deadline:
            turns += 1
            say(ns, f"turn number {turns}")
            time.sleep(0.15)  # the user thinks between turns (pacing, not synchronisation)
            if (
                ns.rollovers > checked
            ):  # a new connection: the emulator's conversation holds every turn so far
                for attempt in range(3):
                    try:
                        lines = [e for e in ns.transcript if e.text]
                        earlier = lines[:2] + lines[-4:]  # the first turns and the latest ones
                        held = {e.item_id: item_text(retrieve(ns, e.item_id)) for e in earlier}
                        break
                    except VoiceLiveError:  # it rolled over again while we asked: ask the new one
                        if attempt == 2:
                            raise
                assert held == {e.item_id: e.text for e in earlier}
                assert any(t == f"turn number {turns - 1}" for t in held.values()) or turns == 1
                checked = ns.rollovers
        assert ns.rollovers >= 3 and turns >= 10, (ns.rollovers, turns, ns.status)
        assert ns.reconnects == 0 and ns.status == "connected"  # no loss: every switch was planned
        expected = [f"turn number {i}" for i in range(1, turns + 1)]
        with contextlib.suppress(
            AssertionError
        ):  # a turn the deadline forced over is filed once the old one closes
            wait_until(lambda: [e.text for e in ns.transcript if e.role == "user"] == expected, timeout=5)
        users = [e.text for e in ns.transcript if e.role == "user"]
        assert users == expected  # one timeline, in order, none lost, none twice
        replies = [e.text for e in ns.transcript if e.role == "assistant"]
        assert replies == [f'You said: "turn number {i}".' for i in range(1, turns + 1)]
        assert sum(e.type == "session.created" for e in ns.events) == ns.rollovers + 1
        assert all(h["kind"] == "rollover" for h in ns.handovers) and len(ns.handovers) == ns.rollovers
    finally:
        ns.stop()
    wait_until(lambda: expiring.server.stats.connections_open == 0, timeout=5)  # every connection closed


def test_the_reseed_budget_leaves_the_oldest_turns_behind_a_note(expiring: BackgroundEmulator) -> None:
    ns = make(expiring, auto_reconnect=True, rollover_margin_s=1.5, reseed_max_items=3)
    ns.start(wait=True, timeout=10)
    try:
        first = say(ns, "the very first turn")
        say(ns, "the second turn")
        before = ns.rollovers
        wait_until(lambda: ns.rollovers > before, timeout=10)
        oldest = first.response["output"][0]["id"]  # the first reply: dropped for the budget
        ns.send({"type": "conversation.item.retrieve", "item_id": oldest})
        error = ns.wait_for("error", timeout=5)
        assert error.error["code"] == "item_not_found"
        kept = [e for e in ns.transcript if e.text][-2:]  # the newest two fit, after the note
        assert [item_text(retrieve(ns, e.item_id)) for e in kept] == [e.text for e in kept]
        sent = [e for _, e in ns.session.sent_events() if e["type"] == "conversation.item.create"]
        assert item_text(sent[0]["item"]) == OMITTED_NOTE and len(sent) == 3
    finally:
        ns.stop()


def test_mic_audio_goes_through_rollovers_exactly_once(expiring: BackgroundEmulator, tmp_path: Path) -> None:
    rng = np.random.default_rng(16)
    pcm = (rng.standard_normal(24000 * 5) * 2000).astype(np.int16)  # 5 s, every sample different
    record = tmp_path / "rec"
    ns = make(
        expiring,
        mic=ArraySource(pcm, 24000, pace="realtime"),
        auto_reconnect=True,
        rollover_margin_s=1.5,
        record=record,
    )
    ns.start(wait=True, timeout=10)
    try:
        wait_until(lambda: ns.session is not None and ns.session.source_done.is_set(), timeout=20)
        assert ns.rollovers >= 3, ns.handovers
        gaps = [h["gap_ms"] for h in ns.handovers if "gap_ms" in h]
        assert len(gaps) >= 3  # the microphone was switched over mid-stream at least three times
    finally:
        ns.stop()
    assert not list(tmp_path.glob("rec-*")), "one recording directory for the whole conversation"
    recording = Recording.load(record)
    assert recording.mic == pcm.tobytes()  # nothing lost, nothing twice, in order
    marks = [n for n in recording.notes() if n.type == "rollover"]
    assert len(marks) == ns.rollovers
    assert sum(e.type == "session.updated" for e in recording.received()) == ns.rollovers + 1


def test_a_kill_mid_response_is_reported_marked_and_resumed() -> None:
    long_reply = "This is a long answer that keeps going for quite a while. " * 6
    emu = BackgroundEmulator(
        pace="realtime",
        api_key="k",
        replies=lambda heard: long_reply if "tell" in heard else "Short.",
        faults=Faults(drop_after_s=1.5),
    ).start()
    try:
        ns = make(emu, auto_reconnect=True, reconnect_delay_s=0.05, rollover=False)
        statuses: list[str] = []
        ns.add_listener(lambda s: statuses.append(s.status))
        ns.start(wait=True, timeout=10)
        emu.server.faults = Faults()  # only the first connection is killed
        try:
            ns.send(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "tell me"}],
                    },
                }
            )
            ns.create_response()
            wait_until(lambda: ns.reconnects >= 1 and ns.status == "connected", timeout=15)
            assert any(s.startswith("reconnecting (1/5): connection lost") for s in statuses), set(statuses)
            assert ns.incomplete_items, "the reply that was cut off is known"
            cut = [e for e in ns.transcript if e.item_id in ns.incomplete_items]
            assert cut and all(e.text.endswith(INCOMPLETE_NOTE) and not e.final for e in cut)
            user = next(e for e in ns.transcript if e.role == "user")
            assert item_text(retrieve(ns, user.item_id)) == "tell me"  # the new connection knows the turn
            done = say(ns, "go on")
            assert done.response["status"] == "completed"
            assert [e.text for e in ns.transcript if e.role == "user"] == ["tell me", "go on"]
            assert ns.handovers[0]["kind"] == "reconnect"
        finally:
            ns.stop()
    finally:
        emu.stop()


def test_reconnects_wait_for_the_connection_budget_instead_of_hammering() -> None:
    emu = BackgroundEmulator(
        pace="fast",
        api_key="k",
        faults=Faults(close_after_s=0.3, close_code=1011, close_reason="maintenance"),
    ).start()
    try:
        budget = ConnectionBudget(2, window_s=2.0)  # "2 per minute", with a short window
        opened: list[float] = []
        ns = make(
            emu,
            auto_reconnect=True,
            rollover=False,
            reconnect_delay_s=0.01,
            reconnect_max_delay_s=0.01,
            reconnect_healthy_s=0.1,
            max_reconnects=10,
            connection_budget=budget,
        )
        statuses: list[str] = []
        ns.add_listener(lambda s: statuses.append(s.status))
        ns.on("session.created", lambda _e: opened.append(time.monotonic()))
        ns.start(wait=True, timeout=10)
        try:
            wait_until(lambda: len(opened) >= 5, timeout=20)
        finally:
            ns.stop()
        for i in range(len(opened) - 2):  # never a third connection inside any 2-second window
            assert opened[i + 2] - opened[i] >= 2.0 - 0.05, opened
        assert any(s.startswith("waiting") and "connection budget" in s for s in statuses)
        assert budget.waited_s > 0
        assert (
            emu.server.stats.connections_total == len(opened)
            or emu.server.stats.connections_total == len(opened) + 1
        )
    finally:
        emu.stop()


def test_a_refused_credential_on_reconnect_stops_retrying() -> None:
    emu = BackgroundEmulator(
        pace="fast",
        api_key="k",
        faults=Faults(close_after_s=0.3, close_code=1011, close_reason="maintenance"),
    ).start()
    try:
        ns = make(emu, auto_reconnect=True, reconnect_delay_s=0.01, max_reconnects=5)
        ns.start(wait=True, timeout=10)
        emu.server.api_key = "rotated"  # the key was revoked meanwhile
        try:
            wait_until(lambda: not ns.running, timeout=10)
        finally:
            ns.stop()
        assert ns.status.startswith("failed: the credential was refused on reconnect"), ns.status
        assert "not retrying" in ns.status
        assert ns.reconnects == 1  # one attempt, no more
        assert emu.server.stats.handshakes_rejected == 1
    finally:
        emu.stop()


def test_rollover_off_keeps_one_connection_until_it_expires(expiring: BackgroundEmulator) -> None:
    ns = make(expiring, auto_reconnect=False)
    ns.start(wait=True, timeout=10)
    try:
        wait_until(lambda: not ns.running, timeout=10)
        assert ns.rollovers == 0 and "1001" in ns.status
    finally:
        ns.stop()


def test_a_running_reply_is_not_cut_by_a_rollover() -> None:
    emu = BackgroundEmulator(
        pace="realtime",
        api_key="k",
        replies=lambda _heard: "This reply takes a second or two to say out loud.",
        faults=Faults(session_expires_s=5.0),
    ).start()
    try:
        ns = make(emu, auto_reconnect=True, rollover_margin_s=4.0)  # the window opens about 1 s in
        ns.start(wait=True, timeout=10)
        try:
            done = say(ns, "hello there")
            finished = time.time()
            assert done.response["status"] == "completed"
            wait_until(lambda: ns.rollovers >= 1, timeout=10)
            handover = ns.handovers[0]
            assert handover["forced"] is False  # it waited for the quiet moment after the reply
            assert handover["at"] >= finished - 0.05
            assert [e.final for e in ns.transcript] == [True, True]
        finally:
            ns.stop()
    finally:
        emu.stop()


def test_tool_rounds_are_carried_over_as_function_call_items() -> None:
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    emu = BackgroundEmulator(
        pace="fast", api_key="k", max_connection_s=3.0
    ).start()  # the emulator's own limit
    try:
        ns = make(emu, auto_reconnect=True, rollover_margin_s=1.5, tools=[get_weather])
        ns.start(wait=True, timeout=10)
        try:
            say(ns, "what is the weather in Paris")
            wait_until(lambda: any(c.status == "completed" for c in ns.tool_calls), timeout=10)
            wait_until(
                lambda: any("sunny" in e.text for e in ns.transcript if e.role == "assistant"), timeout=10
            )
            before = ns.rollovers
            wait_until(lambda: ns.rollovers > before, timeout=10)
            assert ns.session is not None
            seeded = [
                e["item"] for _, e in ns.session.sent_events() if e["type"] == "conversation.item.create"
            ]
            call = next(i for i in seeded if i["type"] == "function_call")
            output = next(i for i in seeded if i["type"] == "function_call_output")
            assert call["name"] == "get_weather" and "Paris" in call["arguments"]
            assert output["call_id"] == call["call_id"] and "sunny in Paris" in output["output"]
            held = retrieve(ns, call["id"])
            assert held["type"] == "function_call" and held["call_id"] == call["call_id"]
            assert retrieve(ns, output["id"])["output"] == output["output"]
            assert len(ns.tool_calls) == 1  # the carried call is not run again
        finally:
            ns.stop()
    finally:
        emu.stop()


def done_on_a_live_connection(ns: NotebookSession) -> bool:
    session = ns.session
    return session is not None and session.failure is None and session.source_done.is_set()


def test_mic_audio_waits_through_a_lost_connection(tmp_path: Path) -> None:
    emu = BackgroundEmulator(
        pace="fast", api_key="k", faults=Faults(drop_after_s=0.8)
    ).start()  # every one dropped
    try:
        pcm = (np.random.default_rng(7).standard_normal(24000 * 3) * 2000).astype(np.int16)
        ns = make(
            emu,
            mic=ArraySource(pcm, 24000, pace="realtime"),
            auto_reconnect=True,
            reconnect_delay_s=0.1,
            reconnect_healthy_s=0.5,
            record=tmp_path / "rec",
        )
        ns.start(wait=True, timeout=10)
        try:
            wait_until(lambda: ns.reconnects >= 2 and done_on_a_live_connection(ns), 20)
        finally:
            ns.stop()
        assert all(h["kind"] == "reconnect" for h in ns.handovers)
        assert Recording.load(tmp_path / "rec").mic == pcm.tobytes()  # buffered while reconnecting, sent once
    finally:
        emu.stop()
