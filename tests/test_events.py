"""The event classes: naming rule, registries, immutability, wire fields and conveniences."""

from __future__ import annotations

import base64
import dataclasses
import types
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicelive_nb.errors import ProtocolError
from voicelive_nb.protocol import events as ev
from voicelive_nb.protocol.events import (
    CLIENT_EVENTS,
    EMPTY,
    PROTOCOL_WARNING_TYPE,
    SERVER_EVENTS,
    ClientEvent,
    ConversationItemCreated,
    ErrorEvent,
    InputAudioBufferAppend,
    InputAudioBufferCommitted,
    ProtocolWarning,
    ResponseAudioDelta,
    ResponseCancel,
    ServerEvent,
    UnknownEvent,
    WarningEvent,
    b64_decoded_size,
    decode_b64_audio,
    wire_type_to_class_name,
)

#: Every server event type of the reference (§3.1, with the documented non-SDK ones).
REFERENCE_SERVER_TYPES = {
    "error",
    "warning",
    "session.created",
    "session.updated",
    "session.avatar.connecting",
    "session.avatar.switch_to_speaking",
    "session.avatar.switch_to_idle",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared",
    "output_audio_buffer.cleared",
    "conversation.item.created",
    "conversation.item.retrieved",
    "conversation.item.truncated",
    "conversation.item.deleted",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
    "response.created",
    "response.done",
    "response.output_item.added",
    "response.output_item.done",
    "response.content_part.added",
    "response.content_part.done",
    "response.text.delta",
    "response.text.done",
    "response.audio_transcript.delta",
    "response.audio_transcript.done",
    "response.audio_transcript.annotation.added",
    "response.audio.delta",
    "response.audio.done",
    "response.audio_timestamp.delta",
    "response.audio_timestamp.done",
    "response.animation_viseme.delta",
    "response.animation_viseme.done",
    "response.animation_blendshapes.delta",
    "response.animation_blendshapes.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "mcp_list_tools.in_progress",
    "mcp_list_tools.completed",
    "mcp_list_tools.failed",
    "response.mcp_call_arguments.delta",
    "response.mcp_call_arguments.done",
    "response.mcp_call.in_progress",
    "response.mcp_call.completed",
    "response.mcp_call.failed",
    "response.web_search_call.searching",
    "response.web_search_call.in_progress",
    "response.web_search_call.completed",
    "response.file_search_call.searching",
    "response.file_search_call.in_progress",
    "response.file_search_call.completed",
    "response.video.delta",
    "response.invocation.delta",
    "rate_limits.updated",
    "response.foundry_agent_call_arguments.delta",
    "response.foundry_agent_call_arguments.done",
    "response.foundry_agent_call.in_progress",
    "response.foundry_agent_call.completed",
    "response.foundry_agent_call.failed",
    # seen from the live services (shared real traffic) or documented for the GA shape
    "conversation.item.done",
    "input_audio_buffer.timeout_triggered",
    "output_audio_buffer.started",
    "output_audio_buffer.stopped",
}

#: Every client event type of the reference (§2, with the SDK-enum-only ones).
REFERENCE_CLIENT_TYPES = {
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "input_text.delta",
    "input_text.done",
    "conversation.item.create",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "conversation.item.delete",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
    "session.avatar.connect",
    "input_audio.turn.start",
    "input_audio.turn.append",
    "input_audio.turn.end",
    "input_audio.turn.cancel",
    "input_audio.clear",
    "mcp_approval_response",
    "transcription_session.update",
}


def audio_delta(delta: str) -> ResponseAudioDelta:
    return ResponseAudioDelta(
        response_id="resp_1", item_id="item_1", output_index=0, content_index=0, delta=delta
    )


def test_registries_cover_the_reference_exactly() -> None:
    assert set(SERVER_EVENTS) == REFERENCE_SERVER_TYPES
    assert set(CLIENT_EVENTS) == REFERENCE_CLIENT_TYPES


@pytest.mark.parametrize("wire_type", sorted(REFERENCE_SERVER_TYPES | REFERENCE_CLIENT_TYPES))
def test_class_name_is_camel_case_of_wire_type(wire_type: str) -> None:
    cls = SERVER_EVENTS.get(wire_type) or CLIENT_EVENTS[wire_type]
    assert cls.__name__ == wire_type_to_class_name(wire_type)
    assert wire_type == cls.TYPE
    assert getattr(ev, cls.__name__) is cls


def test_naming_rule_examples() -> None:
    assert wire_type_to_class_name("input_audio_buffer.speech_started") == "InputAudioBufferSpeechStarted"
    assert wire_type_to_class_name("response.audio.delta") == "ResponseAudioDelta"
    assert wire_type_to_class_name("mcp_list_tools.in_progress") == "McpListToolsInProgress"


def test_directions_are_separate_base_classes() -> None:
    assert all(issubclass(c, ServerEvent) and not issubclass(c, ClientEvent) for c in SERVER_EVENTS.values())
    assert all(issubclass(c, ClientEvent) and not issubclass(c, ServerEvent) for c in CLIENT_EVENTS.values())
    for special in (UnknownEvent, ProtocolWarning):
        assert issubclass(special, ServerEvent)
        assert issubclass(special, ClientEvent)


def test_error_and_warning_have_builtin_safe_aliases() -> None:
    assert ErrorEvent is SERVER_EVENTS["error"]
    assert WarningEvent is SERVER_EVENTS["warning"]
    import voicelive_nb.protocol as protocol

    assert "Warning" not in protocol.__all__
    assert "WarningEvent" in protocol.__all__


def test_events_are_frozen_and_slotted() -> None:
    event = InputAudioBufferCommitted(item_id="item_1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.item_id = "other"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


def test_type_is_an_instance_attribute_equal_to_the_class_type() -> None:
    event = ResponseCancel()
    assert event.type == "response.cancel" == ResponseCancel.TYPE


def test_field_tables_follow_the_annotations() -> None:
    specs = {spec.name: spec for spec in InputAudioBufferCommitted.FIELDS}
    assert list(specs) == ["previous_item_id", "item_id"]
    assert specs["item_id"].required
    assert specs["item_id"].allowed == frozenset({str})
    assert not specs["previous_item_id"].required
    assert specs["previous_item_id"].nullable
    frames = {spec.name: spec for spec in ev.ResponseAnimationBlendshapesDelta.FIELDS}["frames"]
    assert frames.allowed == frozenset({list, str})
    annotation = {spec.name: spec for spec in ev.ResponseAudioTranscriptAnnotationAdded.FIELDS}["annotation"]
    assert annotation.allowed is None
    assert annotation.required


def test_to_dict_omits_unset_optionals_and_keeps_order() -> None:
    event = ConversationItemCreated(item={"id": "item_1"}, event_id="event_1")
    assert event.to_dict() == {
        "type": "conversation.item.created",
        "event_id": "event_1",
        "item": {"id": "item_1"},
    }
    assert list(event.to_dict()) == ["type", "event_id", "item"]


def test_nulls_write_explicit_json_null() -> None:
    event = InputAudioBufferCommitted(item_id="item_2", nulls=frozenset({"previous_item_id"}))
    assert event.to_dict() == {
        "type": "input_audio_buffer.committed",
        "previous_item_id": None,
        "item_id": "item_2",
    }


def test_extra_keys_are_written_after_the_fields() -> None:
    event = ResponseCancel(response_id="resp_1", extra={"x_trace": "abc"})
    assert event.to_dict() == {"type": "response.cancel", "response_id": "resp_1", "x_trace": "abc"}
    assert ResponseCancel().extra is EMPTY
    assert len(EMPTY) == 0
    assert list(EMPTY) == []
    with pytest.raises(KeyError):
        EMPTY["x"]


def test_equality_includes_extra_and_nulls() -> None:
    base = InputAudioBufferCommitted(item_id="item_1")
    assert base == InputAudioBufferCommitted(item_id="item_1")
    assert base != InputAudioBufferCommitted(item_id="item_1", extra={"x": 1})
    assert base != InputAudioBufferCommitted(item_id="item_1", nulls=frozenset({"previous_item_id"}))


def test_repr_abbreviates_long_strings() -> None:
    text = repr(audio_delta("A" * 6400))
    assert "6400 chars" in text
    assert len(text) < 250
    assert text.startswith("ResponseAudioDelta(")


def test_audio_delta_decodes_lazily_and_caches() -> None:
    pcm = bytes(range(256)) * 10
    event = audio_delta(base64.b64encode(pcm).decode())
    assert event.audio_size == len(pcm)
    first = event.audio
    assert first == pcm
    assert event.audio is first  # cached, not decoded again


def test_audio_delta_is_still_equal_after_decoding() -> None:
    text = base64.b64encode(b"\x01\x02" * 50).decode()
    decoded = audio_delta(text)
    _ = decoded.audio
    assert decoded == audio_delta(text)


def test_audio_accepts_urlsafe_alphabet_and_missing_padding() -> None:
    pcm = b"\xfb\xff\xfe\x00\x10"
    standard = base64.b64encode(pcm).decode()
    urlsafe = base64.urlsafe_b64encode(pcm).decode().rstrip("=")
    assert "-" in urlsafe or "_" in urlsafe
    assert audio_delta(urlsafe).audio == pcm
    assert decode_b64_audio(standard.rstrip("=")) == pcm


def test_invalid_base64_audio_raises_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="invalid base64 audio"):
        _ = audio_delta("A").audio


@given(st.binary(max_size=300))
def test_b64_decoded_size_matches_decoding(data: bytes) -> None:
    text = base64.b64encode(data).decode()
    assert b64_decoded_size(text) == len(data)
    assert b64_decoded_size(text.rstrip("=")) == len(data)


def test_append_builds_from_bytes_and_decodes_back() -> None:
    pcm = b"\x00\x01" * 480
    event = InputAudioBufferAppend.from_bytes(pcm, event_id="client_1")
    assert event.audio == base64.b64encode(pcm).decode()
    assert event.audio_bytes == pcm
    assert event.audio_size == 960
    assert event.event_id == "client_1"


def test_unknown_event_keeps_the_raw_object() -> None:
    raw = {"type": "conversation.created", "event_id": "event_9", "conversation": {"id": "conv_1"}}
    event = UnknownEvent("conversation.created", raw, event_id="event_9")
    assert event.type == "conversation.created"
    assert event.raw is raw
    assert event.event_id == "event_9"
    assert event.to_dict() == raw
    assert "conversation.created" in repr(event)


def test_protocol_warning_shape() -> None:
    warning = ProtocolWarning("message is not valid JSON", b"{oops")
    assert warning.type == PROTOCOL_WARNING_TYPE == "voicelive_nb.protocol_warning"
    assert warning.message == "message is not valid JSON"
    assert warning.raw == b"{oops"
    assert warning.to_dict() == {
        "type": PROTOCOL_WARNING_TYPE,
        "message": "message is not valid JSON",
        "wire_type": None,
        "raw": "{oops",
    }


def test_error_event_conveniences() -> None:
    error = ErrorEvent(error={"type": "invalid_request_error", "code": "invalid_value", "message": "bad"})
    assert error.message == "bad"
    assert error.code == "invalid_value"
    assert ErrorEvent(error={"message": "x", "code": None}).code is None


def test_nested_objects_are_typed_read_only() -> None:
    session = types.MappingProxyType({"voice": "alloy"})
    event = ev.SessionUpdate(session=session)
    assert event.session["voice"] == "alloy"
    assert event.to_dict()["session"] is session


# ---------------------------------------------------------------------------------- repr never raises


def _deep(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": "\ud800"}
    for _ in range(depth):
        node = {"a": node}
    return node


@pytest.mark.parametrize(
    "value",
    [
        _deep(1000),
        _deep(100_000),
        "\ud800\udfff" * 10,
        "x" * 5_000_000,
        [list(range(10))] * 10_000,
        {"k\ud800": b"\x00" * 99},
    ],
    ids=["deep", "very-deep", "surrogates", "huge-string", "long-list", "surrogate-key"],
)
def test_repr_of_any_event_never_raises_and_stays_short(value: Any) -> None:
    from voicelive_nb.protocol.codec import event_from_dict

    events = [
        event_from_dict({"type": "session.created", "session": {"x": value}}),
        event_from_dict({"type": "x.unknown", "v": value}),
        ProtocolWarning("bad", value),
        event_from_dict(
            {
                "type": "response.text.delta",
                "response_id": "r",
                "item_id": "i",
                "output_index": 0,
                "content_index": 0,
                "delta": value if isinstance(value, str) else "d",
                "extra": value,
            }
        ),
    ]
    for event in events:
        text = repr(event)
        assert len(text) < 2_000
        text.encode("utf-8")  # printable: no lone surrogate left in it
