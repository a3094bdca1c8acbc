"""The emulator's sessions and event order against traffic recorded from the live services.

Both wire shapes: Voice Live's dated versions (``voicelive-live.jsonl``) and the GA shape of
``api-version=v1`` (``openai-ga-live.jsonl``). Compared key by key; the only values not compared
are the per-session ones listed in ``PER_SESSION`` (and ``instructions`` of ``session.created``:
the service's built-in default prompt, which the emulator does not reproduce).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import real_traffic as rt
from websockets.asyncio.client import connect

from voicelive_nb.emulator import run_emulator
from voicelive_nb.speech.tts import synthesize

#: Values that differ per connection: ids, timestamps, the session's expiry.
PER_SESSION = {
    "id", "event_id", "expires_at", "item_id", "previous_item_id", "response_id", "call_id", "conversation_id",
}  # fmt: skip
#: ``session.created`` only: the service's default prompt (not reproduced by the emulator).
CREATED_ONLY = {"instructions"}
#: Compared as sets: the live service reported the same requested ``["text", "audio"]`` as
#: ``["audio", "text"]`` on one connection and unchanged on another.
UNORDERED = {"modalities"}


def compare(ours: Any, theirs: Any, path: str = "", skip: frozenset[str] = frozenset()) -> list[str]:
    """Every difference between two JSON values, key by key (``skip``: keys whose value is not compared)."""
    diffs: list[str] = []
    if isinstance(theirs, dict) and isinstance(ours, dict):
        for key in sorted(set(ours) | set(theirs)):
            where = f"{path}.{key}"
            if key not in ours:
                diffs.append(f"{where}: missing (live: {theirs[key]!r:.60})")
            elif key not in theirs:
                diffs.append(f"{where}: extra (ours: {ours[key]!r:.60})")
            elif key in UNORDERED and isinstance(ours[key], list) and isinstance(theirs[key], list):
                if sorted(ours[key]) != sorted(theirs[key]):
                    diffs.append(f"{where}: ours {ours[key]!r} != live {theirs[key]!r} (as sets)")
            elif key not in skip:
                diffs.extend(compare(ours[key], theirs[key], where, skip))
    elif isinstance(theirs, list) and isinstance(ours, list) and len(ours) == len(theirs):
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            diffs.extend(compare(a, b, f"{path}[{i}]", skip))
    elif ours != theirs:
        diffs.append(f"{path}: ours {ours!r:.60} != live {theirs!r:.60}")
    return diffs


def trace_named(file: str, short: str) -> rt.Trace:
    rt.require()
    return next(t for t in rt.load(file) if t.short == short)


def collapse(types: list[str]) -> list[str]:
    """The order of the non-delta events, then the delta types that came (sorted): how audio and
    transcript deltas interleave depends on the speech, not on the protocol."""
    return [t for t in types if not t.endswith(".delta")] + sorted({t for t in types if t.endswith(".delta")})


TURN_TYPES_SKIP = ("rate_limits.updated",)  # OpenAI's own, not part of a turn


async def recv(ws: Any, timeout: float = 20.0) -> dict[str, Any]:
    import asyncio

    return dict(json.loads(await asyncio.wait_for(ws.recv(), timeout)))


async def first_events(url: str, update: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    async with connect(url) as ws:
        created = await recv(ws)
        await ws.send(json.dumps(update))
        updated = await recv(ws)
        return created, updated


def turn_audio() -> bytes:
    speech = synthesize("what is the weather like today", sample_rate=24000).pcm16
    return bytes(24000) + speech + bytes(48000 * 2)  # 0.5 s lead, the phrase, 2 s of silence


async def audio_turn_types(url: str, update: dict[str, Any]) -> list[str]:
    """The event types from the first speech_started to response.done of one server-VAD audio turn."""
    async with connect(url) as ws:
        await recv(ws)
        await ws.send(json.dumps(update))
        assert (await recv(ws))["type"] == "session.updated"
        audio = turn_audio()
        for i in range(0, len(audio), 4800):
            await ws.send(
                json.dumps(
                    {
                        "type": "input_audio_buffer.append",
                        "audio": base64.b64encode(audio[i : i + 4800]).decode(),
                    }
                )
            )
        types: list[str] = []
        while True:
            event = await recv(ws)
            types.append(event["type"])
            if event["type"] == "response.done":
                return types


def live_turn_types(trace: rt.Trace) -> list[str]:
    types = [p["type"] for p in trace.server()]
    start = types.index("input_audio_buffer.speech_started")
    end = types.index("response.done")
    return [t for t in types[start : end + 1] if t not in TURN_TYPES_SKIP]


def without_transcription(types: list[str]) -> list[str]:
    """Input transcription events come when the recogniser finishes: their place is not fixed."""
    return [t for t in types if not t.startswith("conversation.item.input_audio_transcription")]


# --- dated versions (preview shape) ---------------------------------------------------------------

PREVIEW_URL = "/voice-live/realtime?api-version=2026-07-15&model=gpt-realtime-global-standard"


async def test_preview_session_created_and_updated_match_the_live_service_key_by_key() -> None:
    trace = trace_named(rt.VOICELIVE_FILE, "test_audio_in_server_vad_turn")
    lines = trace.lines()
    live_created, update, live_updated = lines[0][1], lines[1][1], lines[2][1]
    assert (live_created["type"], update["type"], live_updated["type"]) == (
        "session.created",
        "session.update",
        "session.updated",
    )
    async with run_emulator(pace="fast") as emu:
        created, updated = await first_events(emu.url + PREVIEW_URL, update)
    assert compare(created, live_created, skip=frozenset(PER_SESSION | CREATED_ONLY)) == []
    assert compare(updated, live_updated, skip=frozenset(PER_SESSION)) == []
    # re-applying the live session.updated whole (read-only keys and all) is accepted, not an error
    async with run_emulator(pace="fast") as emu:
        _, again = await first_events(
            emu.url + PREVIEW_URL, {"type": "session.update", "session": live_updated["session"]}
        )
    assert again["type"] == "session.updated", again
    assert compare(again, live_updated, skip=frozenset(PER_SESSION)) == []


async def test_preview_every_live_session_update_is_accepted_and_reported_as_live() -> None:
    rt.require()
    async with run_emulator(pace="fast") as emu:
        for trace in rt.load(rt.VOICELIVE_FILE):
            lines = trace.lines()
            update, live_updated = lines[1][1], lines[2][1]
            _, updated = await first_events(emu.url + PREVIEW_URL, update)
            live = dict(live_updated["session"])
            live.pop("greeting", None)  # newer service builds report these two as well
            live.pop("handoff", None)
            assert compare(updated["session"], live, skip=frozenset(PER_SESSION | CREATED_ONLY)) == [], (
                trace.short
            )


async def test_preview_audio_turn_event_order_matches_the_live_service() -> None:
    trace = trace_named(rt.VOICELIVE_FILE, "test_audio_in_server_vad_turn")
    update = trace.lines()[1][1]
    async with run_emulator(pace="fast") as emu:
        ours = await audio_turn_types(emu.url + PREVIEW_URL, update)
    live = live_turn_types(trace)
    assert "conversation.item.done" in ours
    assert collapse(without_transcription(ours)) == collapse(without_transcription(live))


# --- api-version=v1 (GA shape) --------------------------------------------------------------------

GA_URL = "/voice-live/realtime?api-version=v1&model=gpt-realtime"


async def test_ga_session_created_and_updated_match_the_live_service_key_by_key() -> None:
    trace = trace_named(rt.GA_FILE, "test_audio_in_server_vad_turn")
    lines = trace.lines()
    live_created, update, live_updated = lines[0][1], lines[1][1], lines[2][1]
    async with run_emulator(pace="fast") as emu:
        created, updated = await first_events(emu.url + GA_URL, update)
    assert compare(created, live_created, skip=frozenset(PER_SESSION | CREATED_ONLY)) == []
    assert compare(updated, live_updated, skip=frozenset(PER_SESSION)) == []


async def test_ga_every_live_session_update_is_accepted() -> None:
    rt.require()
    async with run_emulator(pace="fast") as emu:
        for trace in rt.load(rt.GA_FILE):
            update = next(p for d, p in trace.lines() if d == "client" and p["type"] == "session.update")
            live_updated = next(p for p in trace.server() if p["type"] == "session.updated")
            _, updated = await first_events(emu.url + GA_URL, update)
            assert updated["type"] == "session.updated", (trace.short, updated)
            live = live_updated["session"]
            assert updated["session"]["output_modalities"] == live["output_modalities"], trace.short
            assert updated["session"]["audio"]["input"]["format"] == live["audio"]["input"]["format"]


async def test_ga_audio_turn_event_order_matches_the_live_service() -> None:
    trace = trace_named(rt.GA_FILE, "test_audio_in_server_vad_turn")
    update = trace.lines()[1][1]
    async with run_emulator(pace="fast") as emu:
        ours = await audio_turn_types(emu.url + GA_URL, update)
    assert collapse(without_transcription(ours)) == collapse(without_transcription(live_turn_types(trace)))


async def test_ga_text_turn_event_order_and_items_match_the_live_service() -> None:
    trace = trace_named(rt.GA_FILE, "test_text_in_audio_out_turn")
    client = trace.client()
    live = [p for p in trace.server() if p["type"] not in TURN_TYPES_SKIP]
    async with run_emulator(pace="fast", replies=["Hello there."]) as emu, connect(emu.url + GA_URL) as ws:
        await recv(ws)
        ours: list[dict[str, Any]] = []
        for event in client:
            await ws.send(json.dumps(event))
        while not ours or ours[-1]["type"] != "response.done":
            ours.append(await recv(ws))
    assert collapse([e["type"] for e in ours]) == collapse([e["type"] for e in live[1:]])
    by_type = {e["type"]: e for e in ours}
    live_by_type = {e["type"]: e for e in live}
    values = frozenset(PER_SESSION | {"transcript", "delta", "usage", "status_details"})
    for etype in ("conversation.item.added", "response.created", "response.output_item.done"):
        assert compare(by_type[etype], live_by_type[etype], skip=values) == [], etype
    done = by_type["response.done"]["response"]
    assert set(done) == set(live_by_type["response.done"]["response"])


async def test_ga_takes_credentials_only_from_headers() -> None:
    from websockets.exceptions import InvalidStatus

    async with run_emulator(pace="fast", api_key="k") as emu:
        with pytest.raises(InvalidStatus) as info:
            async with connect(emu.url + GA_URL + "&api-key=k"):
                pass
        assert info.value.response.status_code == 401
        assert b"only from headers" in info.value.response.body
        async with connect(emu.url + GA_URL, additional_headers={"api-key": "k"}) as ws:
            assert (await recv(ws))["session"]["type"] == "realtime"
        # dated versions keep accepting the query parameter
        async with connect(emu.url + PREVIEW_URL + "&api-key=k") as ws:
            assert (await recv(ws))["type"] == "session.created"
