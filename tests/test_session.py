"""Session ↔ emulator over real sockets on 127.0.0.1: whole voice turns, barge-in, recording, failures."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from voicelive_nb import Session, SessionConfig
from voicelive_nb.audio.memory import ArraySource, BufferSink
from voicelive_nb.emulator.server import Faults, run_emulator
from voicelive_nb.errors import (
    AuthenticationError,
    ConfigError,
    ConnectionClosed,
    ProtocolError,
    ServerError,
    WaitTimeout,
)
from voicelive_nb.protocol import ProtocolWarning, UnknownEvent
from voicelive_nb.recording import Recorder
from voicelive_nb.speech.tts import synthesize

KEY = "test-key-0123456789abcdef"


@pytest.fixture(scope="module")
def question() -> bytes:
    return synthesize("What is the weather like today?", sample_rate=24000).pcm16


def speech(pcm: bytes, *, pace: str = "fast", tail_ms: int = 1200) -> ArraySource:
    return ArraySource(pcm, 24000, pace=pace, tail_silence_ms=tail_ms)  # type: ignore[arg-type]


async def test_whole_voice_turn(question: bytes) -> None:
    sink = BufferSink()
    async with (
        run_emulator(api_key=KEY, pace="fast") as emu,
        Session(SessionConfig.server_vad(), endpoint=emu.url, api_key=KEY, sink=sink, dotenv=False) as s,
    ):
        assert s.status == "connected"
        seen: list[str] = []
        s.on("*", lambda e: seen.append(e.type))
        s.stream(speech(question))
        done = await s.wait_for("response.done", timeout=30)
        await s.wait_for("conversation.item.input_audio_transcription.completed", timeout=15)
    assert done.response["status"] == "completed"
    assert s.status == "closed"
    # the service's order of a turn (reference §3.2), as seen by handlers
    order = [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
        "response.audio.delta",
        "response.audio.done",
        "response.audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
    ]
    positions = [seen.index(t) for t in order]
    assert positions == sorted(positions)
    # state machine, sink and transcript agree
    (segment,) = s.state.vad_segments
    assert segment.start_ms < 400 and segment.end_ms is not None
    assert segment.end_ms > len(question) / 48  # ends after the speech (includes the silence window)
    assistant_ms = sum(t.ms for t in s.state.assistant_audio.values())
    assert assistant_ms > 500
    assert len(sink.audio) == pytest.approx(assistant_ms * 48, abs=2)
    roles = {t.role for t in s.transcript if t.text}
    assert roles == {"user", "assistant"}
    assert s.frames_sent * 960 >= len(question)


async def test_wait_for_has_a_cursor_per_type_and_times_out(question: bytes) -> None:
    async with run_emulator(pace="fast", replies=["One.", "Two."]) as emu:
        async with Session(SessionConfig.manual(), endpoint=emu.url, api_key="x", dotenv=False) as s:
            for _ in range(2):
                await s.create_response()
                await s.wait_for("response.done", timeout=20)
            # both already arrived: the cursor hands out nothing more
            with pytest.raises(WaitTimeout, match=r"no response\.done within 0\.2 s"):
                await s.wait_for("response.done", timeout=0.2)
            texts = [t.text for t in s.transcript if t.role == "assistant"]
    assert texts == ["One.", "Two."]


async def test_update_live_and_bad_values(question: bytes) -> None:
    async with run_emulator(pace="fast") as emu:
        async with Session(SessionConfig.server_vad(), endpoint=emu.url, api_key="x", dotenv=False) as s:
            updated = await s.update(instructions="Be brief.", temperature=0.9)
            assert updated.session["instructions"] == "Be brief."
            assert s.effective_session()["temperature"] == 0.9
            with pytest.raises(ConfigError, match=r"turn_detection\.threshold") as info:
                await s.update({"turn_detection": {"type": "server_vad", "threshold": 1.7}})
            assert "0.0 to 1.0" in str(info.value) or "1.0" in str(info.value)
            # the service's own validation error comes back as ServerError naming the param
            before = len(s.errors)
            await s.send({"type": "session.update", "session": {"input_audio_sampling_rate": 11025}})
            err = await s.wait_for("error", timeout=10)
            assert len(s.errors) == before + 1
            assert "input_audio_sampling_rate" in (err.error.get("param") or "")
            # and the session still works
            assert (await s.update(instructions="Again.")).session["instructions"] == "Again."


async def test_server_error_during_setup_is_raised() -> None:
    async with run_emulator(pace="fast") as emu:
        bad = Session(endpoint=emu.url, api_key="x", dotenv=False)
        bad.config = _RawConfig({"turn_detection": {"type": "nonsense_vad"}})  # type: ignore[assignment]
        with pytest.raises(ServerError) as info:
            await bad.open()
    assert "turn_detection" in (info.value.param or "")
    assert bad.status.startswith("failed: ServerError")


class _RawConfig:
    """A config whose wire dict skips client-side validation (to reach the server's)."""

    def __init__(self, wire: dict[str, Any]) -> None:
        self.wire = wire
        self.input_sample_rate = 24000
        self.output_sample_rate = 24000

    def to_dict(self) -> dict[str, Any]:
        return self.wire


async def test_barge_in_silences_sink_and_truncates_at_what_was_played(
    question: bytes, tmp_path: Path
) -> None:
    clock_origin = asyncio.get_running_loop().time
    sink = BufferSink(realtime=True, clock=clock_origin)
    long_reply = (
        "This is a long answer that keeps going on and on so that there is time to interrupt it. " * 3
    )
    async with (
        run_emulator(pace="realtime", replies=[long_reply]) as emu,
        Session(SessionConfig.server_vad(), endpoint=emu.url, api_key="x", sink=sink, dotenv=False) as s,
    ):
        s.stream(speech(question, pace="realtime", tail_ms=800))
        first = await s.wait_for("response.audio.delta", timeout=30)
        await s.wait_for(
            "response.audio.delta", timeout=10, predicate=lambda e: sink.played_ms(first.item_id) > 1000
        )
        s.stream(speech(question, pace="realtime", tail_ms=1500))  # the user talks over the reply
        started = await s.wait_for("input_audio_buffer.speech_started", timeout=15)
        assert started is not None
        truncated = await s.wait_for("conversation.item.truncated", timeout=10)
        done = await s.wait_for("response.done", timeout=10)
    assert done.response["status"] == "cancelled"
    assert done.response["status_details"]["reason"] == "turn_detected"
    (cut,) = s.truncations
    assert sink.clears >= 1
    flush = sink.flushes[0]
    assert flush.item_id == first.item_id
    # what the client says it played is what the sink played, never more than received
    assert cut["audio_end_ms"] == int(flush.played_ms)
    assert cut["audio_end_ms"] <= cut["received_ms"]
    assert truncated.audio_end_ms == cut["audio_end_ms"]
    assert cut["audio_end_ms"] >= 1000


async def test_auto_truncate_leaves_truncation_to_the_server(question: bytes) -> None:
    sink = BufferSink(realtime=True, clock=asyncio.get_running_loop().time)
    config = SessionConfig.server_vad().with_changes({"turn_detection.auto_truncate": True})
    long_reply = "A long reply that goes on for quite a while so that it can be interrupted. " * 3
    async with run_emulator(pace="realtime", replies=[long_reply]) as emu:
        async with Session(config, endpoint=emu.url, api_key="x", sink=sink, dotenv=False) as s:
            s.stream(speech(question, pace="realtime", tail_ms=800))
            await s.wait_for("response.audio.delta", timeout=30)
            s.stream(speech(question, pace="realtime", tail_ms=1500))
            truncated = await s.wait_for("conversation.item.truncated", timeout=20)
    assert s.truncations == []  # the client sent none
    assert sink.clears >= 1  # but still silenced the speaker at once
    assert truncated.audio_end_ms > 0


async def test_recording_has_events_and_audio_and_no_secret(tmp_path: Path, question: bytes) -> None:
    out = tmp_path / "rec"
    # the key travels where a recording could catch it: an MCP header in session.update (echoed
    # back in session.updated) and the endpoint's query (in the "connected" note)
    tool = {
        "type": "mcp",
        "server_label": "kb",
        "server_url": "https://mcp.example/",
        "headers": {"x-key": KEY},
    }
    config = SessionConfig.server_vad().replace(tools=[tool])
    async with run_emulator(api_key=KEY, pace="fast") as emu:
        endpoint = f"{emu.url}?api-key={KEY}"
        async with Session(
            config, endpoint=endpoint, api_key=KEY, record=out, sink=BufferSink(), dotenv=False
        ) as s:
            s.stream(speech(question))
            await s.wait_for("response.done", timeout=30)
    rec = Recorder.load(out)
    types = [e.type for e in rec.events]
    assert types.count("session.update") == 1
    assert "response.done" in types
    assert len(rec.mic) == s.bytes_sent
    assert len(rec.assistant) == pytest.approx(
        sum(t.ms for t in s.state.assistant_audio.values()) * 48, abs=2
    )
    for f in out.iterdir():
        assert KEY.encode() not in f.read_bytes(), f.name


async def test_connection_drop_shows_reason_in_status() -> None:
    async with run_emulator(
        pace="fast", faults=Faults(close_after_events=3, close_code=1011, close_reason="boom")
    ) as emu:
        s = Session(SessionConfig.manual(), endpoint=emu.url, api_key="x", dotenv=False)
        await s.open()
        try:
            await s.create_response()
            with pytest.raises(ConnectionClosed) as info:
                await s.wait_for("response.done", timeout=10)
            assert info.value.code == 1011
            assert s.status == "failed: connection lost: 1011 server error: boom"
            with pytest.raises(ConnectionClosed):  # later waits fail at once too
                await s.wait_for("response.done", timeout=10)
        finally:
            await s.close()
        assert s.status.startswith("failed: connection lost")


async def test_wrong_key_is_authentication_error() -> None:
    async with run_emulator(api_key=KEY) as emu:
        s = Session(endpoint=emu.url, api_key="wrong-key", dotenv=False)
        with pytest.raises(AuthenticationError, match="401") as info:
            await s.open()
    assert "wrong-key" not in str(info.value)
    assert s.status.startswith("failed: AuthenticationError")


async def test_entra_token_credential_reaches_the_service() -> None:
    class Tokens:
        calls = 0

        async def get_token(self, *scopes: str, **kw: object) -> Any:
            Tokens.calls += 1
            return type("T", (), {"token": KEY, "expires_on": 4_000_000_000})()

    async with run_emulator(api_key=KEY) as emu:
        async with Session(endpoint=emu.url, credential=Tokens(), dotenv=False) as s:
            assert s.status == "connected"
    assert Tokens.calls == 1


async def test_handler_errors_are_kept_not_fatal() -> None:
    async with run_emulator(pace="fast") as emu:
        async with Session(SessionConfig.manual(), endpoint=emu.url, api_key="x", dotenv=False) as s:

            def bad(event: Any) -> None:
                raise RuntimeError("handler bug")

            async def bad_async(event: Any) -> None:
                raise ValueError("async handler bug")

            s.on("response.created", bad)
            s.on("response.created", bad_async)
            await s.create_response()
            await s.wait_for("response.done", timeout=20)
            assert s.status == "connected"
    kinds = sorted(type(e).__name__ for e in s.handler_errors)
    assert kinds == ["RuntimeError", "ValueError"]


@contextlib.asynccontextmanager
async def scripted_server(messages: list[str]) -> AsyncIterator[str]:
    """A minimal real server that sends odd messages, then behaves."""

    async def handler(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "session.created", "event_id": "e0", "session": {"id": "s1"}}))
        async for raw in ws:
            event = json.loads(raw)
            if event["type"] == "session.update":
                for m in messages:
                    await ws.send(m)
                await ws.send(
                    json.dumps({"type": "session.updated", "event_id": "e9", "session": event["session"]})
                )

    async with serve(handler, "127.0.0.1", 0) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_reader_survives_malformed_and_unknown_messages() -> None:
    garbage = [
        "not json",
        "[1,2]",
        '{"no_type": 1}',
        '{"type":"brand.new.event","x":1}',
        '{"type":"response.done"}',
    ]
    async with scripted_server(garbage) as url, Session(endpoint=url, api_key="x", dotenv=False) as s:
        assert s.status == "connected"
    kinds = [type(e).__name__ for e in s.events]
    assert kinds.count("ProtocolWarning") == 4
    assert any(isinstance(e, UnknownEvent) and e.type == "brand.new.event" for e in s.events)
    assert all(isinstance(e, ProtocolWarning) or e.type for e in s.events)


async def test_no_endpoint_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_VOICE_LIVE_ENDPOINT", raising=False)
    monkeypatch.chdir(tmp_path)
    s = Session(dotenv=False)
    with pytest.raises(Exception, match="no endpoint configured"):
        await s.open()


async def test_emulator_auto_starts_when_nothing_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_VOICE_LIVE_ENDPOINT", raising=False)
    monkeypatch.chdir(tmp_path)
    async with Session(
        SessionConfig.manual(), emulator="auto", emulator_options={"pace": "fast"}, dotenv=False
    ) as s:
        assert s.use_emulator
        assert s.emulator_url is not None
        await s.create_response()
        done = await s.wait_for("response.done", timeout=20)
    assert done.response["status"] == "completed"


async def test_concurrent_waiters_for_one_type_all_wake() -> None:
    async with run_emulator(pace="fast") as emu:
        async with Session(SessionConfig.manual(), endpoint=emu.url, api_key="x", dotenv=False) as s:
            waits = [asyncio.ensure_future(s.wait_for("response.done", timeout=20)) for _ in range(3)]
            await asyncio.sleep(0)  # let the three register before the event can arrive
            await s.create_response()
            results = await asyncio.gather(*waits)
    assert len({id(r) for r in results}) == 1


async def test_malformed_session_created_is_reported_as_such() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "session.created", "event_id": "e0", "session": "not an object"}))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        s = Session(endpoint=url, api_key="x", dotenv=False, setup_timeout_s=5)
        with pytest.raises(ProtocolError, match="a session.created arrived but was malformed: ") as info:
            await s.open()
    assert "session" in str(info.value).split("malformed:", 1)[1]  # says why
    assert "within" not in str(info.value)
    assert s.status.startswith("failed: ProtocolError: a session.created arrived but was malformed")


async def test_history_is_bounded_in_bytes_and_cursors_survive_eviction() -> None:
    delta = {
        "type": "response.text.delta",
        "event_id": "e",
        "response_id": "r",
        "item_id": "i",
        "output_index": 0,
        "content_index": 0,
        "delta": "x" * 1000,
    }
    frames = [json.dumps({**delta, "event_id": f"e{i}"}) for i in range(200)]
    async with scripted_server(frames) as url:
        async with Session(endpoint=url, api_key="x", dotenv=False, max_event_bytes=20_000) as s:
            sizes = sum(len(json.dumps(e.to_dict())) for e in s.events)
            assert sizes <= 20_000 + 1200
            assert 10 < len(s.events) < 25  # ~1.1 KB each: only the newest ones are kept
            assert s._received.count >= 202
            # the cursor of a type still hands out the next event, never an evicted or repeated one
            first = await s.wait_for("response.text.delta", timeout=1)
            second = await s.wait_for("response.text.delta", timeout=1)
            ids = [e.event_id for e in s.events if e.type == "response.text.delta"]
            assert [first.event_id, second.event_id] == ids[:2]


async def test_wait_for_timeout_names_type_timeout_and_that_no_source_streams() -> None:
    async with run_emulator(pace="fast") as emu:
        async with Session(SessionConfig.manual(), endpoint=emu.url, api_key="x", dotenv=False) as s:
            with pytest.raises(WaitTimeout) as info:
                await s.wait_for("response.done", timeout=0.2)
    text = str(info.value)
    assert "no response.done within 0.2 s" in text
    assert "no audio source is streaming (the microphone/source is off)" in text


def test_repr_never_raises_and_masks_the_endpoint() -> None:
    s = Session(
        endpoint="wss://user:pw-secret-123456@host.example/?api-key=SECRETQUERY1", api_key="k", dotenv=False
    )
    text = repr(s)
    assert "pw-secret-123456" not in text and "SECRETQUERY1" not in text
    s._health = None  # type: ignore[assignment]
    s.settings = None  # type: ignore[assignment]
    assert repr(s).startswith("<Session")


def test_limits_are_validated_naming_the_field() -> None:
    for name, value in (
        ("send_timeout_s", 0),
        ("close_timeout_s", -1),
        ("max_event_bytes", 0),
        ("ping_timeout_s", "x"),
    ):
        with pytest.raises(ConfigError, match=name):
            Session(api_key="k", dotenv=False, **{name: value})


# ------------------------------------------------------------------ the service's own sessions, re-used


def _real_sessions(file: str | None = "voicelive-live.jsonl") -> list[tuple[str, dict[str, Any]]]:
    """Every distinct session object of the real traces (created and updated).

    By default Voice Live's own; ``file=None`` adds the OpenAI GA traces, whose sessions carry
    OpenAI-only keys (``tracing``, ``prompt``, ``truncation``) that Voice Live refuses.
    """
    import real_traffic

    real_traffic.require()
    seen: dict[str, tuple[str, dict[str, Any]]] = {}
    for trace in real_traffic.load(file):
        for payload in trace.server():
            if payload.get("type") in ("session.created", "session.updated"):
                session = payload["session"]
                key = json.dumps(
                    {k: v for k, v in session.items() if k not in ("id", "expires_at")}, sort_keys=True
                )
                seen.setdefault(key, (f"{trace.short}:{payload['type']}", session))
    return list(seen.values())


async def test_every_real_session_opens_a_session_and_re_applies_live(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``from_dict(real)`` → ``Session(config=…)``, and ``update(real)`` on a live one: no error."""
    sessions = _real_sessions()
    assert len(sessions) >= 5
    caplog.set_level("DEBUG", logger="voicelive_nb.session")
    async with run_emulator(api_key=KEY, pace="fast") as emu:
        async with Session(endpoint=emu.url, api_key=KEY, dotenv=False) as live:
            for name, session in sessions:
                config = SessionConfig.from_dict(session)
                async with Session(config, endpoint=emu.url, api_key=KEY, dotenv=False) as s:
                    assert s.status == "connected", name
                    assert not s.errors, (name, s.errors)
                    (update,) = [w for _, w in s.sent_events() if w["type"] == "session.update"]
                    assert not {"id", "object", "expires_at"} & set(update["session"]), name
                # a real session.updated's session, re-applied as it came: only writable keys go out
                before = len(live.sent_events())
                await live.update(session)
                assert not live.errors, (name, live.errors)
                for _, wire in live.sent_events()[before:]:
                    assert not {"id", "object", "expires_at", "model"} & set(wire["session"]), name
    notes = [r.getMessage() for r in caplog.records if "server-only session keys" in r.getMessage()]
    assert notes and all("id" in n for n in notes)


def test_every_real_session_of_both_shapes_gives_a_writable_update() -> None:
    from voicelive_nb.session import writable_update

    sessions = _real_sessions(None)
    assert any(s.get("type") == "realtime" for _, s in sessions)  # GA ones are there too
    base = SessionConfig.server_vad()
    for name, session in sessions:
        update = writable_update(session)
        assert not {"id", "object", "expires_at", "model", "type"} & set(update), name
        merged = base.merge_update(update)  # accepted as the service sent it
        assert not {"id", "object", "expires_at", "model"} & set(base.diff(merged)), name
        assert SessionConfig.from_dict(session).server_only(), name


@pytest.mark.parametrize("version", ["2026-07-15", "v1"])
async def test_the_emulators_effective_session_is_re_usable(version: str) -> None:
    async with run_emulator(api_key=KEY, pace="fast") as emu:
        async with Session(
            SessionConfig.server_vad(threshold=0.6),
            endpoint=emu.url,
            api_key=KEY,
            api_version=version,
            dotenv=False,
        ) as first:
            effective = first.effective_session()
        # canonical flat (what the flat shape cannot say stays under "audio", e.g. output speed)
        assert "turn_detection" not in effective.get("audio", {}).get("input", {})
        assert effective["turn_detection"]["threshold"] == 0.6
        again = SessionConfig.from_dict(effective)
        async with Session(again, endpoint=emu.url, api_key=KEY, api_version=version, dotenv=False) as second:
            await second.update(effective)
            assert not second.errors
            assert second.effective_session()["turn_detection"]["threshold"] == 0.6


def test_notebook_session_accepts_a_real_session() -> None:
    from voicelive_nb import NotebookSession

    name, session = _real_sessions()[0]
    ns = NotebookSession(
        SessionConfig.from_dict(session), mic=False, speaker=False, emulator=True, dotenv=False
    )
    try:
        ns.start(wait=True, timeout=20)
        assert ns.status == "connected", (name, ns.status)
        ns.update(session)  # the service's own session, re-applied live
    finally:
        ns.stop()
    assert ns.status == "stopped"


def test_sweep_base_and_lab_replay_take_a_real_session(tmp_path: Path) -> None:
    from voicelive_nb.lab import replay, speech_clip
    from voicelive_nb.lab.cli import main as sweep_main

    _, session = _real_sessions()[-1]
    base = tmp_path / "base.json"
    base.write_text(json.dumps(session), encoding="utf-8")
    clip = speech_clip(["What is the weather like today?"], lead_s=0.5, tail_s=1.0)
    wav = clip.save(tmp_path / "q.wav")
    out = tmp_path / "out.json"
    argv = [str(wav), "--base", str(base), "--grid", "threshold=0.5", "--json", str(out), "--quiet"]
    assert sweep_main(argv) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["session"]["turn_detection"]["threshold"] == 0.5
    result = replay(clip, session, truth=clip.truth, timeout=60)
    assert (
        result.config.to_dict()["turn_detection"]
        == SessionConfig.from_dict(session).to_dict()["turn_detection"]
    )


def test_session_event_reprs_are_short_and_never_raise() -> None:
    """``NotebookSession.update()`` returns a session.updated: its repr is one short line."""
    import real_traffic

    from voicelive_nb.protocol.codec import decode_server_event

    real_traffic.require()
    reprs = []
    for trace in real_traffic.load():
        for payload in trace.server():
            if payload.get("type") in ("session.created", "session.updated"):
                event = decode_server_event(json.dumps(payload))
                reprs.append((len(json.dumps(payload)), repr(event)))
    assert reprs and max(size for size, _ in reprs) > 800  # the sessions are long...
    for _, text in reprs:  # ...their reprs are not
        assert len(text) <= 160, text
        assert text.startswith("<session.") and "voice=" in text and "turn_detection=" in text
    assert "<session.created voice=alloy turn_detection=server_vad(0.5, 300/200 ms) modalities=[audio]>" in {
        r for _, r in reprs
    }
    from voicelive_nb.protocol.events import SessionUpdated

    odd: list[Any] = [
        {"voice": {"x": "y" * 10_000}, "turn_detection": None, "modalities": ["a"] * 1000},
        {"turn_detection": {"type": {"nested": [1] * 1000}, "threshold": "high"}},
        {"voice": "v" * 10_000, "tools": [{}] * 3},
        {},
    ]
    for session in odd:
        text = repr(SessionUpdated(session=session))
        assert text.startswith("<session.updated") and len(text) <= 300, text
    assert repr(SessionUpdated(session="not a mapping")).startswith("<session.updated")  # type: ignore[arg-type]


# ------------------------------------------------------------------ model-aware warnings, abort


async def test_config_warnings_are_kept_and_logged_on_open_and_update(
    caplog: pytest.LogCaptureFixture,
) -> None:
    eou = SessionConfig.from_dict(
        {
            "turn_detection": {
                "type": "azure_semantic_vad",
                "end_of_utterance_detection": {"model": "semantic_detection_v1"},
            }
        }
    )
    caplog.set_level("WARNING", logger="voicelive_nb.session")
    async with run_emulator(api_key=KEY, pace="fast") as emu:
        async with Session(eou, endpoint=emu.url, api_key=KEY, model="gpt-realtime", dotenv=False) as s:
            (warning,) = s.config_warnings
            assert "cascaded" in warning and "gpt-realtime" in warning
            logged = [r for r in caplog.records if r.levelname == "WARNING" and "cascaded" in r.getMessage()]
            assert len(logged) == 1
            await s.update(instructions="Be brief.")  # still there; not logged again
            assert s.config_warnings == [warning]
            assert len([r for r in caplog.records if "cascaded" in r.getMessage()]) == 1
            await s.update(turn_detection={"type": "azure_semantic_vad"})  # fixed
            assert s.config_warnings == []
        # a cascaded pipeline model: nothing to say
        async with Session(eou, endpoint=emu.url, api_key=KEY, model="gpt-4o", dotenv=False) as s:
            assert s.config_warnings == []


async def test_abort_drops_the_connection_and_ends_every_task() -> None:
    async with run_emulator(api_key=KEY, pace="fast") as emu:
        s = Session(endpoint=emu.url, api_key=KEY, dotenv=False)
        await s.open()
        s.stream(ArraySource(b"\0" * 48_000, 24000, pace="realtime"))  # type: ignore[arg-type]
        running = s.background_tasks()
        assert len(running) >= 2  # reader, audio pump (and the keepalive)
        s.abort()
        s.abort()  # idempotent
        _, pending = await asyncio.wait(running, timeout=5)
        assert not pending
        assert s.background_tasks() == []
        assert s._transport is not None and s._transport.aborted
        await asyncio.wait_for(s.close(), timeout=5)
    assert s.status == "closed"  # close() after abort() still finishes
