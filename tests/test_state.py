"""SessionProtocol fed with recorded turns (tests/data/turn_*.jsonl) and hand-made event sequences."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from voicelive_nb.protocol.codec import decode_client_event, decode_server_event
from voicelive_nb.protocol.events import (
    ConversationItemCreate,
    ConversationItemCreated,
    ConversationItemDeleted,
    ConversationItemInputAudioTranscriptionCompleted,
    ConversationItemInputAudioTranscriptionDelta,
    ConversationItemInputAudioTranscriptionFailed,
    ConversationItemTruncate,
    ErrorEvent,
    InputAudioBufferAppend,
    InputAudioBufferSpeechStarted,
    ResponseAudioDelta,
    ResponseCreate,
    ResponseCreated,
    ResponseDone,
    ResponseTextDelta,
    ResponseTextDone,
    SessionCreated,
    SessionUpdated,
    UnknownEvent,
    WarningEvent,
)
from voicelive_nb.protocol.state import (
    CONNECTING,
    READY,
    RESPONDING,
    BargeIn,
    ConversationItem,
    FunctionCall,
    SessionProtocol,
    SessionState,
    TranscriptEntry,
    VadSegment,
    input_bytes_per_ms,
    output_bytes_per_ms,
)

DATA = Path(__file__).parent / "data"


def rows(name: str) -> list[tuple[str, str]]:
    """(direction, wire text) of every line of a recorded turn."""
    out = []
    for line in (DATA / name).read_text().splitlines():
        row = json.loads(line)
        out.append((row["from"], json.dumps(row["event"], separators=(",", ":"))))
    return out


def replay(
    proto: SessionProtocol, name: str, *, stop: Callable[[dict[str, Any]], bool] | None = None
) -> list[BargeIn]:
    """Feed a recorded turn; returns the barge-ins ``receive`` reported. Stops before ``stop(event)``."""
    barge_ins = []
    for direction, text in rows(name):
        if stop is not None and stop(json.loads(text)):
            break
        if direction == "client":
            proto.send(decode_client_event(text))
        else:
            result = proto.receive(decode_server_event(text))
            if result is not None:
                barge_ins.append(result)
    return barge_ins


def first(wire_type: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event["type"] == wire_type and all(event.get(k) == v for k, v in fields.items())


def audio_delta(item_id: str, size: int, response_id: str = "resp_X") -> ResponseAudioDelta:
    b64 = base64.b64encode(bytes(size)).decode()
    return ResponseAudioDelta(
        response_id=response_id, item_id=item_id, output_index=0, content_index=0, delta=b64
    )


def message(item_id: str, role: str, *parts: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": role,
        "status": status,
        "content": list(parts),
    }


def created(item: dict[str, Any], previous: str | None) -> ConversationItemCreated:
    return ConversationItemCreated(previous_item_id=previous, item=item)


def item_of(proto: SessionProtocol, item_id: str) -> ConversationItem:
    item = proto.item(item_id)
    assert item is not None
    return item


def state_of(proto: SessionProtocol) -> SessionState:
    return proto.state


# ---------------------------------------------------------------------------------- the §6 turn


def test_full_turn() -> None:
    proto = SessionProtocol()
    assert replay(proto, "turn_full.jsonl") == []
    assert proto.state is READY
    assert proto.session_id == "sess_001"
    # session.updated merged over session.created
    assert proto.session["voice"] == {"type": "azure-standard", "name": "en-US-AvaNeural"}
    assert proto.session["turn_detection"]["type"] == "azure_semantic_vad"
    assert proto.session["modalities"] == ["text", "audio"]
    assert [(i.id, i.role, i.status) for i in proto.items] == [
        ("item_U1", "user", "completed"),
        ("item_A1", "assistant", "completed"),
    ]
    assert item_of(proto, "item_A1").previous_item_id == "item_U1"
    assert proto.vad_segments == (VadSegment("item_U1", 1180, 3020, committed=True),)
    assert proto.vad_segments[0].duration_ms == 1840
    assert proto.audio_ms("item_A1") == 200.0
    tally = proto.assistant_audio["item_A1"]
    assert (tally.response_id, tally.bytes, tally.bytes_per_ms, tally.ms) == ("resp_R1", 9600, 48, 200.0)
    assert proto.transcript == [
        ("user", "item_U1", "What's the weather?", True),
        ("assistant", "item_A1", "It's sunny today.", True),
    ]
    assert proto.active_response is None
    [response] = proto.responses
    assert (response.id, response.status, response.status_details, response.reason) == (
        "resp_R1",
        "completed",
        None,
        None,
    )
    assert response.output_item_ids == ("item_A1",)
    assert response.usage is not None
    assert response.usage["total_tokens"] == 120
    assert proto.barge_ins == ()
    assert proto.errors == ()
    assert proto.protocol_warnings == ()
    assert proto.events_received == 21


def test_full_turn_while_streaming() -> None:
    proto = SessionProtocol()
    replay(proto, "turn_full.jsonl", stop=first("response.audio.done"))
    assert proto.state is RESPONDING
    active = proto.active_response
    assert active is not None
    assert (active.id, active.status, active.output_item_ids) == ("resp_R1", "in_progress", ("item_A1",))
    assert proto.transcript[-1] == TranscriptEntry("assistant", "item_A1", "It's sunny", False)
    assert item_of(proto, "item_A1").status == "in_progress"
    assert proto.responses == ()


def test_before_session_created_the_state_is_connecting() -> None:
    proto = SessionProtocol()
    assert state_of(proto) is CONNECTING
    assert proto.session == {}
    replay(proto, "turn_full.jsonl", stop=first("session.updated"))
    assert proto.state is READY
    assert proto.session["voice"] == {"type": "openai", "name": "alloy"}


def test_user_is_speaking_between_started_and_stopped() -> None:
    proto = SessionProtocol()
    replay(proto, "turn_full.jsonl", stop=first("input_audio_buffer.speech_stopped"))
    assert proto.user_speaking
    assert proto.vad_segments == (VadSegment("item_U1", 1180, None, committed=False),)
    replay(proto, "turn_full.jsonl", stop=first("input_audio_buffer.committed"))
    assert not proto.user_speaking


# ---------------------------------------------------------------------------------- barge-in


def test_barge_in_turn() -> None:
    proto = SessionProtocol()
    replay(proto, "turn_barge_in.jsonl", stop=first("input_audio_buffer.speech_started", item_id="item_U2"))
    assert proto.audio_ms("item_A1") == 1600.0
    proto.note_playback("item_A1", 1200.0)
    barge_ins = replay_from(
        proto, "turn_barge_in.jsonl", first("input_audio_buffer.speech_started", item_id="item_U2")
    )
    expected = BargeIn(
        user_item_id="item_U2",
        audio_start_ms=4300,
        response_id="resp_R1",
        response_active=True,
        assistant_item_id="item_A1",
        received_audio_ms=1600.0,
        played_audio_ms=1200.0,
        server_truncates=False,
    )
    assert barge_ins == [expected]
    assert proto.barge_ins == (expected,)
    [response] = proto.responses
    assert (response.status, response.reason) == ("cancelled", "turn_detected")
    assert response.status_details == {"type": "cancelled", "reason": "turn_detected"}
    a1 = item_of(proto, "item_A1")
    assert (a1.status, a1.truncated_audio_end_ms) == ("incomplete", 1200)
    assert proto.truncates_sent == {"item_A1": 1200}
    assert [i.id for i in proto.items] == ["item_U1", "item_A1", "item_U2"]
    assert proto.vad_segments == (
        VadSegment("item_U1", 1180, 3020, committed=True),
        VadSegment("item_U2", 4300, 5600, committed=True),
    )
    assert proto.transcript == [
        ("user", "item_U1", "What's the weather?", True),
        ("assistant", "item_A1", "It's sunny today, with a light breeze", True),
        ("user", "item_U2", "What about tomorrow?", True),
    ]
    assert proto.state is READY


def replay_from(proto: SessionProtocol, name: str, start: Callable[[dict[str, Any]], bool]) -> list[BargeIn]:
    """Feed a recorded turn from the first event matching ``start``."""
    barge_ins = []
    started = False
    for direction, text in rows(name):
        started = started or start(json.loads(text))
        if not started:
            continue
        if direction == "client":
            proto.send(decode_client_event(text))
        elif (result := proto.receive(decode_server_event(text))) is not None:
            barge_ins.append(result)
    return barge_ins


def test_truncate_event_matches_the_recorded_client_reply() -> None:
    proto = SessionProtocol()
    replay(proto, "turn_barge_in.jsonl", stop=first("input_audio_buffer.speech_started", item_id="item_U2"))
    recorded = next(text for direction, text in rows("turn_barge_in.jsonl") if direction == "client")
    assert proto.truncate_event("item_A1", 1200.4) == decode_client_event(recorded)


def test_truncate_event_is_clamped_to_the_audio_received() -> None:
    proto = SessionProtocol()
    replay(proto, "turn_barge_in.jsonl", stop=first("input_audio_buffer.speech_started", item_id="item_U2"))
    assert proto.truncate_event("item_A1", 5000).audio_end_ms == 1600
    assert proto.truncate_event("item_A1", -20).audio_end_ms == 0
    assert proto.truncate_event("item_never", 300).audio_end_ms == 0


def test_barge_in_without_playback_information() -> None:
    proto = SessionProtocol()
    [barge_in] = replay(proto, "turn_barge_in.jsonl")
    assert barge_in.played_audio_ms is None
    assert barge_in.response_active


def speech_started(item_id: str, at_ms: int) -> InputAudioBufferSpeechStarted:
    return InputAudioBufferSpeechStarted(audio_start_ms=at_ms, item_id=item_id)


def test_speech_after_a_finished_reply_that_was_fully_played_is_not_a_barge_in() -> None:
    proto = SessionProtocol()
    replay(proto, "turn_full.jsonl")
    proto.note_playback("item_A1", 200.0)
    assert proto.receive(speech_started("item_U2", 9000)) is None
    assert proto.barge_ins == ()


def test_speech_while_the_finished_reply_may_still_play_is_a_barge_in() -> None:
    proto = SessionProtocol()
    replay(proto, "turn_full.jsonl")
    proto.note_playback("item_A1", 150.0)
    proto.note_playback("item_A1", 90.0)  # never goes back
    barge_in = proto.receive(speech_started("item_U2", 3400))
    assert barge_in is not None
    assert (barge_in.response_id, barge_in.response_active) == ("resp_R1", False)
    assert (barge_in.received_audio_ms, barge_in.played_audio_ms) == (200.0, 150.0)


def test_only_the_latest_reply_since_the_last_speech_counts() -> None:
    proto = SessionProtocol()
    replay(proto, "turn_full.jsonl")
    assert proto.receive(speech_started("item_U2", 3400)) is not None
    # the next speech is not a barge-in over resp_R1 again
    assert proto.receive(speech_started("item_U3", 8000)) is None


def test_server_truncates_with_auto_truncate() -> None:
    proto = SessionProtocol()
    replay(proto, "turn_barge_in.jsonl", stop=first("input_audio_buffer.speech_started", item_id="item_U2"))
    proto.receive(SessionUpdated(session={"turn_detection": {"type": "server_vad", "auto_truncate": True}}))
    barge_in = proto.receive(speech_started("item_U2", 4300))
    assert barge_in is not None
    assert barge_in.server_truncates


def test_a_reply_without_audio_is_not_barged_in_after_it_is_done() -> None:
    proto = SessionProtocol()
    proto.receive(SessionCreated(session={"id": "s"}))
    proto.receive(ResponseCreated(response={"id": "r1", "status": "in_progress", "output": []}))
    proto.receive(ResponseDone(response={"id": "r1", "status": "completed", "output": []}))
    assert proto.receive(speech_started("item_U1", 10)) is None


# ---------------------------------------------------------------------------------- manual mode


def test_manual_mode_turn() -> None:
    proto = SessionProtocol()
    replay(proto, "turn_manual.jsonl")
    assert "turn_detection" in proto.session
    assert proto.session["turn_detection"] is None
    assert proto.vad_segments == ()
    assert proto.input_audio_ms == 500.0
    assert [i.id for i in proto.items] == ["item_M1", "item_MA1"]
    # pcm16_16000hz: 32 bytes per ms; 100 ms + 150 ms were received
    assert proto.assistant_audio["item_MA1"].bytes_per_ms == 32
    assert proto.audio_ms("item_MA1") == 250.0
    assert proto.transcript == [
        ("user", "item_M1", "Tell me a joke.", True),
        ("assistant", "item_MA1", "Why did the chicken cross the road?", True),
    ]
    assert [(r.id, r.status) for r in proto.responses] == [("resp_M1", "completed")]


def test_manual_mode_transcript_while_streaming() -> None:
    proto = SessionProtocol()
    replay(proto, "turn_manual.jsonl", stop=first("response.audio.done"))
    assert proto.transcript[-1] == ("assistant", "item_MA1", "Why did the chicken cross the road?", False)


def test_response_format_from_the_response_create_sent() -> None:
    proto = SessionProtocol()
    proto.receive(SessionCreated(session={"id": "s", "output_audio_format": "pcm16"}))
    proto.send(ResponseCreate(response={"output_audio_format": "g711_ulaw"}))
    proto.receive(ResponseCreated(response={"id": "r1", "status": "in_progress", "output": []}))
    proto.receive(audio_delta("item_A", 800, "r1"))
    assert proto.audio_ms("item_A") == 100.0
    proto.receive(
        ResponseCreated(
            response={
                "id": "r2",
                "status": "in_progress",
                "output": [],
                "output_audio_format": "pcm16_8000hz",
            }
        )
    )
    proto.receive(audio_delta("item_B", 1600, "r2"))
    assert proto.audio_ms("item_B") == 100.0
    proto.receive(ResponseCreated(response={"id": "r3", "status": "in_progress", "output": []}))
    proto.receive(audio_delta("item_C", 4800, "r3"))
    assert proto.audio_ms("item_C") == 100.0


# ---------------------------------------------------------------------------------- function calls


def test_function_call_turn() -> None:
    proto = SessionProtocol()
    replay(proto, "turn_function_call.jsonl")
    assert proto.function_calls == (
        FunctionCall(
            call_id="call_7",
            name="get_weather",
            item_id="item_F1",
            response_id="resp_R1",
            arguments='{"city":"Paris"}',
            done=True,
            output_sent=True,
        ),
    )
    assert proto.pending_function_calls == ()
    assert [(i.id, i.type) for i in proto.items] == [
        ("item_U1", "message"),
        ("item_F1", "function_call"),
        ("item_O1", "function_call_output"),
        ("item_A2", "message"),
    ]
    assert proto.transcript == [
        ("user", "item_U1", "What's the weather in Paris?", True),
        ("assistant", "item_A2", "It's 18 degrees and sunny in Paris.", True),
    ]
    assert [(r.id, r.status, r.output_item_ids) for r in proto.responses] == [
        ("resp_R1", "completed", ("item_F1",)),
        ("resp_R2", "completed", ("item_A2",)),
    ]


def test_function_call_arguments_stream_then_the_call_is_pending_until_answered() -> None:
    proto = SessionProtocol()
    replay(proto, "turn_function_call.jsonl", stop=first("response.function_call_arguments.done"))
    [call] = proto.function_calls
    assert (call.name, call.arguments, call.done) == ("get_weather", '{"city":"Paris"}', False)
    assert proto.pending_function_calls == ()
    replay_from(proto, "turn_function_call.jsonl", first("response.function_call_arguments.done"))
    assert proto.pending_function_calls == ()  # answered by the recorded conversation.item.create

    fresh = SessionProtocol()
    replay(fresh, "turn_function_call.jsonl", stop=first("conversation.item.create"))
    assert [c.call_id for c in fresh.pending_function_calls] == ["call_7"]
    fresh.send(
        ConversationItemCreate(item={"type": "function_call_output", "call_id": "call_7", "output": "{}"})
    )
    assert fresh.pending_function_calls == ()
    assert fresh.function_calls[0].output_sent


# ---------------------------------------------------------------------------------- conversation rules


def test_items_are_placed_after_their_previous_item() -> None:
    proto = SessionProtocol()
    proto.receive(created(message("a", "user"), None))
    proto.receive(created(message("b", "assistant"), "a"))
    proto.receive(created(message("c", "user"), "a"))  # inserted between a and b
    proto.receive(created(message("r", "system"), "root"))
    proto.receive(created(message("z", "user"), "unknown_id"))  # unknown: at the end
    assert [i.id for i in proto.items] == ["r", "a", "c", "b", "z"]


def test_deleted_items_leave_the_conversation_but_keep_their_transcript() -> None:
    proto = SessionProtocol()
    proto.receive(created(message("a", "user", {"type": "input_text", "text": "hi"}), None))
    proto.receive(created(message("b", "assistant", {"type": "text", "text": "hello"}), "a"))
    proto.receive(ConversationItemDeleted(item_id="a"))
    assert [i.id for i in proto.items] == ["b"]
    assert item_of(proto, "a").deleted
    assert proto.transcript == [("user", "a", "hi", True), ("assistant", "b", "hello", True)]


def test_transcription_before_the_item_is_created_moves_into_place() -> None:
    proto = SessionProtocol()
    proto.receive(created(message("a", "assistant", {"type": "text", "text": "Hi!"}), None))
    proto.receive(
        ConversationItemInputAudioTranscriptionCompleted(item_id="u", content_index=0, transcript="Hey")
    )
    proto.receive(created(message("b", "assistant", {"type": "text", "text": "Yes?"}), "a"))
    assert [e.item_id for e in proto.transcript] == ["a", "b", "u"]  # u is not placed yet
    proto.receive(created(message("u", "user", {"type": "input_audio", "transcript": None}), "a"))
    assert [e.item_id for e in proto.transcript] == ["a", "u", "b"]
    assert [i.id for i in proto.items] == ["a", "u", "b"]


def test_user_transcription_deltas_then_completed() -> None:
    proto = SessionProtocol()
    proto.receive(created(message("u", "user", {"type": "input_audio", "transcript": None}), None))
    proto.receive(ConversationItemInputAudioTranscriptionDelta(item_id="u", content_index=0, delta="Hello "))
    proto.receive(ConversationItemInputAudioTranscriptionDelta(item_id="u", delta="wor"))
    assert proto.transcript == [("user", "u", "Hello wor", False)]
    proto.receive(
        ConversationItemInputAudioTranscriptionCompleted(
            item_id="u", content_index=0, transcript="Hello world."
        )
    )
    assert proto.transcript == [("user", "u", "Hello world.", True)]


def test_failed_transcription_is_final_and_recorded() -> None:
    proto = SessionProtocol()
    error = {"type": "transcription_error", "message": "no speech"}
    proto.receive(ConversationItemInputAudioTranscriptionFailed(item_id="u", content_index=0, error=error))
    assert proto.transcript == [("user", "u", "", True)]
    assert proto.transcription_errors == {"u": error}


def test_text_responses_make_assistant_transcript() -> None:
    proto = SessionProtocol()
    common: dict[str, Any] = {"response_id": "r", "item_id": "t", "output_index": 0, "content_index": 0}
    proto.receive(ResponseTextDelta(**common, delta="For"))
    proto.receive(ResponseTextDelta(**common, delta="ty-two"))
    assert proto.transcript == [("assistant", "t", "Forty-two", False)]
    proto.receive(ResponseTextDone(**common, text="Forty-two."))
    assert proto.transcript == [("assistant", "t", "Forty-two.", True)]


def test_final_item_content_completes_an_unfinished_stream() -> None:
    proto = SessionProtocol()
    replay(proto, "turn_full.jsonl", stop=first("response.audio.done"))
    replay_from(proto, "turn_full.jsonl", first("response.output_item.done"))  # the .done events were lost
    assert proto.transcript[-1] == ("assistant", "item_A1", "It's sunny today.", True)


def test_in_progress_item_content_does_not_override_a_stream() -> None:
    proto = SessionProtocol()
    common: dict[str, Any] = {"response_id": "r", "item_id": "a", "output_index": 0, "content_index": 0}
    proto.receive(ResponseTextDelta(**common, delta="Streaming"))
    item = message("a", "assistant", {"type": "text", "text": "Other"}, status="in_progress")
    proto.receive(created(item, None))
    assert proto.transcript == [("assistant", "a", "Streaming", False)]


# ---------------------------------------------------------------------------------- session, errors, odds


def test_session_updated_merges_and_keeps_null() -> None:
    proto = SessionProtocol()
    proto.receive(
        SessionCreated(session={"id": "s", "voice": "alloy", "turn_detection": {"type": "server_vad"}})
    )
    proto.receive(SessionUpdated(session={"turn_detection": None, "instructions": "Be brief."}))
    assert proto.session == {"id": "s", "voice": "alloy", "turn_detection": None, "instructions": "Be brief."}
    with pytest.raises(TypeError):
        proto.session["voice"] = "echo"  # type: ignore[index]


def test_errors_warnings_and_oddities_are_recorded() -> None:
    proto = SessionProtocol()
    error = ErrorEvent(error={"type": "invalid_request_error", "message": "no active response"})
    warning = WarningEvent(warning={"message": "ignored"})
    assert proto.receive(error) is None
    proto.receive(warning)
    proto.receive(decode_server_event("{not json"))
    proto.receive(decode_server_event('{"type":"conversation.created","conversation":{}}'))
    proto.receive(UnknownEvent("error", {"type": "error"}))  # dispatch is by class, not by type string
    assert proto.errors == (error,)
    assert proto.warnings == (warning,)
    assert [w.message[:25] for w in proto.protocol_warnings] == ["message is not valid JSON"]
    assert [u.type for u in proto.unknown_events] == ["conversation.created", "error"]
    assert proto.events_received == 5


def test_input_audio_timeline_counts_appended_bytes() -> None:
    proto = SessionProtocol()
    proto.receive(
        SessionCreated(session={"id": "s", "input_audio_format": "pcm16", "input_audio_sampling_rate": 16000})
    )
    for _ in range(10):
        proto.send(InputAudioBufferAppend.from_bytes(b"\x00\x00" * 320))  # 20 ms at 16 kHz
    assert proto.input_audio_ms == 200.0


def test_truncate_sent_is_recorded() -> None:
    proto = SessionProtocol()
    proto.send(ConversationItemTruncate(item_id="a", content_index=0, audio_end_ms=640))
    assert proto.truncates_sent == {"a": 640}


@pytest.mark.parametrize(
    ("fmt", "per_ms"),
    [
        ("pcm16", 48),
        (None, 48),
        ("pcm16_16000hz", 32),
        ("pcm16_8000hz", 16),
        ("g711_ulaw", 8),
        ("g711_alaw", 8),
    ],
)
def test_output_bytes_per_ms(fmt: str | None, per_ms: int) -> None:
    assert output_bytes_per_ms(fmt) == per_ms


def test_input_bytes_per_ms() -> None:
    assert input_bytes_per_ms({}) == 48
    assert input_bytes_per_ms({"input_audio_sampling_rate": 16000}) == 32
    assert input_bytes_per_ms({"input_audio_format": "g711_alaw"}) == 8
    stereo = {
        "input_audio_echo_cancellation": {
            "type": "server_echo_cancellation",
            "reference_source": "client",
            "channels": 2,
        }
    }
    assert input_bytes_per_ms(stereo) == 96


# ---------------------------------------------------------------------------------- GA shape, item.done, bounds


def _ga_turn() -> list[str]:
    resp = {"id": "resp_g", "status": "in_progress", "output": [], "output_modalities": ["audio"]}
    resp["audio"] = {"output": {"format": {"type": "audio/pcm", "rate": 16000}, "voice": "alloy"}}
    part = {"response_id": "resp_g", "item_id": "item_a", "output_index": 0, "content_index": 0}
    session = {
        "type": "realtime",
        "id": "sess_g",
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "turn_detection": {"type": "server_vad"},
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin", "speed": 1.0},
        },
    }
    item = {"id": "item_a", "type": "message", "role": "assistant", "status": "completed"}
    events: list[dict[str, Any]] = [
        {"type": "session.created", "session": session},
        {"type": "response.created", "response": resp},
        {"type": "response.output_item.added", "response_id": "resp_g", "output_index": 0, "item": item},
        {"type": "response.output_audio.delta", **part, "delta": "AAAA" * 80},  # 240 bytes
        {"type": "response.output_audio_transcript.delta", **part, "delta": "Hel"},
        {
            "type": "response.output_item.done",
            "response_id": "resp_g",
            "output_index": 0,
            "item": {**item, "content": [{"type": "output_audio", "transcript": "Hello."}]},
        },
    ]
    return [json.dumps(e) for e in events]


def test_ga_turn_is_tracked_like_a_preview_one() -> None:
    proto = SessionProtocol()
    for text in _ga_turn():
        proto.receive(decode_server_event(text))
    assert proto.session["output_audio_format"] == "pcm16"
    assert proto.session["turn_detection"] == {"type": "server_vad"}
    assert proto.session["voice"] == "marin"
    assert proto.session_id == "sess_g"
    # the response names 16 kHz in the GA shape: 32 bytes per ms, not the session's 48
    assert proto.audio_ms("item_a") == pytest.approx(240 / 32)
    # the final content of an output_audio part replaces the unfinished stream
    assert proto.transcript == [TranscriptEntry("assistant", "item_a", "Hello.", True)]
    assert proto.counts["unknown_events"] == 0


def test_conversation_item_done_places_an_unseen_item_with_final_content() -> None:
    proto = SessionProtocol()
    proto.receive(decode_server_event('{"type":"session.created","session":{}}'))
    first = {
        "id": "item_1",
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "hi"}],
    }
    second = {
        "id": "item_2",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "hello"}],
    }
    proto.receive(decode_server_event(json.dumps({"type": "conversation.item.added", "item": first})))
    proto.receive(
        decode_server_event(
            json.dumps({"type": "conversation.item.done", "previous_item_id": "item_1", "item": second})
        )
    )
    proto.receive(decode_server_event(json.dumps({"type": "conversation.item.done", "item": first})))
    assert [i.id for i in proto.items] == ["item_1", "item_2"]  # done of a known item does not move it
    assert proto.item("item_2") is not None and proto.item("item_2").previous_item_id == "item_1"  # type: ignore[union-attr]
    assert [(e.role, e.text, e.final) for e in proto.transcript] == [
        ("user", "hi", True),
        ("assistant", "hello", True),
    ]


def test_unknown_events_warnings_and_errors_are_bounded_but_counted() -> None:
    from voicelive_nb.protocol import KEEP_LAST

    proto = SessionProtocol()
    n = KEEP_LAST * 3 + 7
    for i in range(n):
        proto.receive(decode_server_event(json.dumps({"type": "x.unknown", "n": i})))
        proto.receive(decode_server_event("not json"))
        proto.receive(decode_server_event(json.dumps({"type": "error", "error": {"message": str(i)}})))
        proto.receive(decode_server_event(json.dumps({"type": "warning", "warning": {"message": str(i)}})))
    assert len(proto.unknown_events) == len(proto.protocol_warnings) == KEEP_LAST
    assert len(proto.errors) == len(proto.warnings) == KEEP_LAST
    assert proto.unknown_events[-1].raw["n"] == n - 1  # the latest are kept
    assert proto.errors[0].message == str(n - KEEP_LAST)
    assert proto.counts == {"errors": n, "warnings": n, "protocol_warnings": n, "unknown_events": n}
    assert proto.events_received == 4 * n
