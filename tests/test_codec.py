"""The JSON codec: every event type decodes to its class and back losslessly; bad input never raises."""

from __future__ import annotations

import base64
import json
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicelive_nb.errors import ProtocolError
from voicelive_nb.protocol.codec import (
    decode_client_event,
    decode_server_event,
    encode_audio_append,
    encode_event,
    event_from_dict,
    event_to_dict,
)
from voicelive_nb.protocol.events import (
    CLIENT_EVENTS,
    SERVER_EVENTS,
    ClientEvent,
    ConversationItemCreate,
    ConversationItemTruncate,
    Event,
    InputAudioBufferAppend,
    InputAudioBufferCommitted,
    ProtocolWarning,
    ResponseAudioDelta,
    ResponseCancel,
    ResponseCreate,
    ServerEvent,
    SessionUpdate,
    UnknownEvent,
)

DATA = Path(__file__).parent / "data"


def load(name: str) -> list[tuple[str, dict[str, Any]]]:
    rows = [json.loads(line) for line in (DATA / name).read_text().splitlines()]
    return [(row["from"], row["event"]) for row in rows]


CATALOG = load("turn_catalog.jsonl")
SERVER_PAYLOADS = [event for direction, event in CATALOG if direction == "server"]
CLIENT_PAYLOADS = [event for direction, event in CATALOG if direction == "client"]

#: A value of another JSON type than the field wants, per allowed-type set.
WRONG_VALUE: dict[frozenset[type], object] = {
    frozenset({str}): 123,
    frozenset({int}): "12",
    frozenset({bool}): "true",
    frozenset({int, float}): "0.5",
    frozenset({dict}): ["not", "an", "object"],
    frozenset({list}): {"not": "a list"},
    frozenset({list, str}): 7,
}


def ids(payloads: list[dict[str, Any]]) -> list[str]:
    return [p["type"] for p in payloads]


def field_cases(payloads: list[dict[str, Any]], registry: dict[str, Any]) -> Any:
    return [
        pytest.param(p, spec.name, id=f"{p['type']}:{spec.name}")
        for p in payloads
        for spec in registry[p["type"]].FIELDS
        if spec.name in p
    ]


def constructed(cls: Any, payload: dict[str, Any]) -> Event:
    """The event built with its constructor (the decoder's fast path must give an equal object)."""
    nulls = frozenset(k for k, v in payload.items() if v is None)
    fields = {k: v for k, v in payload.items() if k != "type" and v is not None}
    event: Event = cls(**fields, nulls=nulls)
    return event


# ---------------------------------------------------------------------------------- every type round-trips


def test_catalog_covers_every_type() -> None:
    assert {p["type"] for p in SERVER_PAYLOADS} == set(SERVER_EVENTS)
    assert {p["type"] for p in CLIENT_PAYLOADS} == set(CLIENT_EVENTS)


@pytest.mark.parametrize("payload", SERVER_PAYLOADS, ids=ids(SERVER_PAYLOADS))
def test_server_event_decodes_to_its_class_losslessly(payload: dict[str, Any]) -> None:
    text = json.dumps(payload)
    event = decode_server_event(text)
    assert type(event) is SERVER_EVENTS[payload["type"]]
    assert event.type == payload["type"]
    assert event.event_id == payload["event_id"]
    for spec in type(event).FIELDS:
        assert getattr(event, spec.name) == payload.get(spec.name)
    assert event.to_dict() == payload
    assert json.loads(encode_event(event)) == payload
    assert decode_server_event(text.encode()) == event
    assert event == constructed(type(event), payload)


@pytest.mark.parametrize("payload", CLIENT_PAYLOADS, ids=ids(CLIENT_PAYLOADS))
def test_client_event_decodes_to_its_class_losslessly(payload: dict[str, Any]) -> None:
    event = decode_client_event(json.dumps(payload))
    assert type(event) is CLIENT_EVENTS[payload["type"]]
    assert event == constructed(type(event), payload)
    for spec in type(event).FIELDS:
        assert getattr(event, spec.name) == payload.get(spec.name)
    assert event.to_dict() == payload
    assert json.loads(encode_event(event)) == payload


@pytest.mark.parametrize(
    "payload", SERVER_PAYLOADS + CLIENT_PAYLOADS, ids=ids(SERVER_PAYLOADS + CLIENT_PAYLOADS)
)
def test_unknown_extra_fields_are_kept(payload: dict[str, Any]) -> None:
    extended = {**payload, "x_future": {"nested": [1, 2.5, None]}, "x_flag": True}
    decode = decode_server_event if payload["type"] in SERVER_EVENTS else decode_client_event
    event = decode(json.dumps(extended))
    assert type(event) is (SERVER_EVENTS.get(payload["type"]) or CLIENT_EVENTS[payload["type"]])
    assert event.extra == {"x_future": {"nested": [1, 2.5, None]}, "x_flag": True}
    assert event.to_dict() == extended
    assert json.loads(encode_event(event)) == extended


def test_explicit_null_round_trips() -> None:
    text = (
        '{"type":"input_audio_buffer.committed","event_id":"e1","previous_item_id":null,"item_id":"item_1"}'
    )
    event = decode_server_event(text)
    assert isinstance(event, InputAudioBufferCommitted)
    assert event.previous_item_id is None
    assert event.nulls == {"previous_item_id"}
    assert encode_event(event) == text


def test_absent_optional_stays_absent() -> None:
    text = '{"type":"input_audio_buffer.committed","item_id":"item_1"}'
    event = decode_server_event(text)
    assert event.nulls == frozenset()
    assert encode_event(event) == text


def test_null_event_id_round_trips() -> None:
    event = decode_server_event('{"type":"input_audio_buffer.cleared","event_id":null}')
    assert event.event_id is None
    assert event.to_dict() == {"type": "input_audio_buffer.cleared", "event_id": None}


def test_decoded_audio_delta_gives_bytes() -> None:
    pcm = bytes(range(200)) * 3
    payload: dict[str, Any] = {
        "type": "response.audio.delta",
        "event_id": "e",
        "response_id": "r",
        "item_id": "i",
    }
    payload |= {"output_index": 0, "content_index": 0, "delta": base64.b64encode(pcm).decode()}
    event = decode_server_event(json.dumps(payload))
    assert isinstance(event, ResponseAudioDelta)
    assert event.audio == pcm
    assert event.audio_size == 600


def test_event_to_dict_and_from_dict() -> None:
    payload = SERVER_PAYLOADS[0]
    event = event_from_dict(payload)
    assert type(event) is SERVER_EVENTS[payload["type"]]
    assert event_to_dict(event) == payload
    client = event_from_dict({"type": "response.cancel", "response_id": "r"}, client=True)
    assert client == ResponseCancel(response_id="r")
    proxied = event_from_dict(types.MappingProxyType({"type": "input_audio_buffer.cleared"}))
    assert proxied.type == "input_audio_buffer.cleared"
    assert isinstance(event_from_dict([1, 2]), ProtocolWarning)


# ---------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        ("hello", "not valid JSON"),
        ('{"type":"error"} trailing', "not valid JSON"),
        ('{"type":"x","v":NaN}', "not valid JSON"),
        ('{"type":"x","v":-Infinity}', "not valid JSON"),
        ("[" * 100_000, "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        ("[1,2]", "must be a JSON object, got array"),
        ("42", "must be a JSON object, got integer"),
        ('"session.created"', "must be a JSON object, got string"),
        ("null", "must be a JSON object"),
        ('{"event_id":"e1"}', "no 'type' field"),
        ('{"type":5}', "'type' must be a string, got integer"),
        ('{"type":null}', "'type' must be a string"),
    ],
)
def test_malformed_messages_become_warnings(data: str | bytes, message: str) -> None:
    for decode in (decode_server_event, decode_client_event):
        warning = decode(data)
        assert isinstance(warning, ProtocolWarning)
        assert message in warning.message
        # the parsed object when it had one, else what was received
        assert warning.raw == (json.loads(data) if "'type'" in message else data)


@pytest.mark.parametrize(("payload", "field"), field_cases(SERVER_PAYLOADS, SERVER_EVENTS))
def test_server_field_problems_become_warnings(payload: dict[str, Any], field: str) -> None:
    spec = next(s for s in SERVER_EVENTS[payload["type"]].FIELDS if s.name == field)
    assert_field_problems(payload, spec, decode_server_event)


@pytest.mark.parametrize(("payload", "field"), field_cases(CLIENT_PAYLOADS, CLIENT_EVENTS))
def test_client_field_problems_become_warnings(payload: dict[str, Any], field: str) -> None:
    spec = next(s for s in CLIENT_EVENTS[payload["type"]].FIELDS if s.name == field)
    assert_field_problems(payload, spec, decode_client_event)


def assert_field_problems(payload: dict[str, Any], spec: Any, decode: Any) -> None:
    wire_type = payload["type"]
    if spec.required:
        missing = {k: v for k, v in payload.items() if k != spec.name}
        warning = decode(json.dumps(missing))
        assert isinstance(warning, ProtocolWarning)
        assert warning.message == f"{wire_type}: required field {spec.name!r} is missing"
        assert warning.wire_type == wire_type
        assert warning.raw == missing
        nulled = decode(json.dumps({**payload, spec.name: None}))
        assert isinstance(nulled, ProtocolWarning)
        assert "is null" in nulled.message
    if spec.allowed is not None:
        wrong = decode(json.dumps({**payload, spec.name: WRONG_VALUE[spec.allowed]}))
        assert isinstance(wrong, ProtocolWarning)
        assert wrong.message.startswith(f"{wire_type}: field {spec.name!r} must be ")


def test_bool_is_not_an_integer_and_float_is_not_an_integer() -> None:
    base = {"type": "input_audio_buffer.speech_started", "item_id": "item_1"}
    assert isinstance(decode_server_event(json.dumps({**base, "audio_start_ms": 1180})), ServerEvent)
    for value in (True, 1180.0):
        warning = decode_server_event(json.dumps({**base, "audio_start_ms": value}))
        assert isinstance(warning, ProtocolWarning)
        assert "must be integer" in warning.message


def test_number_fields_accept_integers_and_floats() -> None:
    event = decode_server_event(
        '{"type":"response.audio_timestamp.delta","response_id":"r","item_id":"i",'
        '"output_index":0,"content_index":0,"audio_offset_ms":5,"audio_duration_ms":9,'
        '"text":"hi","timestamp_type":"word"}'
    )
    assert type(event).__name__ == "ResponseAudioTimestampDelta"


def test_non_string_event_id_is_a_warning() -> None:
    warning = decode_server_event('{"type":"input_audio_buffer.cleared","event_id":7}')
    assert isinstance(warning, ProtocolWarning)
    assert "'event_id' must be string" in warning.message


def test_null_in_an_optional_field_is_kept() -> None:
    text = '{"type":"input_text.done","id":"item_1","content_index":null}'
    event = decode_client_event(text)
    assert type(event).__name__ == "InputTextDone"
    assert event.nulls == {"content_index"}
    assert encode_event(event) == text


def test_unknown_type_becomes_unknown_event() -> None:
    raw = {"type": "conversation.created", "event_id": "event_0", "conversation": {"id": "conv_1"}}
    event = decode_server_event(json.dumps(raw))
    assert isinstance(event, UnknownEvent)
    assert event.type == "conversation.created"
    assert event.raw == raw
    assert event.event_id == "event_0"
    assert json.loads(encode_event(event)) == raw


def test_types_of_the_other_direction_are_unknown() -> None:
    assert isinstance(decode_client_event(json.dumps(SERVER_PAYLOADS[2])), UnknownEvent)
    assert isinstance(decode_server_event('{"type":"response.cancel"}'), UnknownEvent)


# ---------------------------------------------------------------------------------- fuzzing

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(st.text())
def test_arbitrary_text_never_raises(text: str) -> None:
    assert isinstance(decode_server_event(text), ServerEvent)
    assert isinstance(decode_client_event(text), ClientEvent)


@given(st.binary())
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    assert isinstance(decode_server_event(data), ServerEvent)
    assert isinstance(decode_client_event(data), ClientEvent)


@given(JSON)
def test_arbitrary_json_never_raises(value: object) -> None:
    text = json.dumps(value)
    assert isinstance(decode_server_event(text), ServerEvent)
    assert isinstance(decode_client_event(text), ClientEvent)


@st.composite
def event_shaped(draw: st.DrawFn) -> dict[str, Any]:
    """Objects with a known type and a random mix of its fields, of random JSON values."""
    registry: dict[str, Any] = draw(st.sampled_from([SERVER_EVENTS, CLIENT_EVENTS]))
    cls = registry[draw(st.sampled_from(sorted(registry)))]
    obj: dict[str, Any] = {"type": cls.TYPE}
    for spec in cls.FIELDS:
        if draw(st.booleans()):
            obj[spec.name] = draw(JSON)
    if draw(st.booleans()):
        obj[draw(st.text(max_size=8))] = draw(JSON)
    return obj


@given(event_shaped())
@settings(max_examples=400)
def test_event_shaped_json_is_lossless_or_a_warning(obj: dict[str, Any]) -> None:
    text = json.dumps(obj)
    event: Event = decode_server_event(text) if obj["type"] in SERVER_EVENTS else decode_client_event(text)
    if isinstance(event, ProtocolWarning):
        assert event.wire_type == obj["type"]
    else:
        assert event.to_dict() == obj
        assert json.loads(encode_event(event)) == obj


# ---------------------------------------------------------------------------------- encoding


def test_encoding_is_compact() -> None:
    event = ConversationItemTruncate(item_id="item_1", content_index=0, audio_end_ms=1200)
    expected = (
        '{"type":"conversation.item.truncate","item_id":"item_1","content_index":0,"audio_end_ms":1200}'
    )
    assert encode_event(event) == expected


def test_null_inside_the_session_disables() -> None:
    text = encode_event(SessionUpdate(session={"turn_detection": None, "input_audio_noise_reduction": None}))
    assert (
        text
        == '{"type":"session.update","session":{"turn_detection":null,"input_audio_noise_reduction":null}}'
    )


def test_read_only_mappings_and_tuples_encode() -> None:
    item = types.MappingProxyType(
        {"type": "message", "role": "user", "content": ({"type": "input_text", "text": "é"},)}
    )
    text = encode_event(ConversationItemCreate(item=item, previous_item_id="root"))
    assert json.loads(text) == {
        "type": "conversation.item.create",
        "previous_item_id": "root",
        "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "é"}]},
    }
    assert "é" in text  # UTF-8 text, not \\u escapes


NO_ITEM_ID = ConversationItemTruncate(item_id=None, content_index=0, audio_end_ms=5)  # type: ignore[arg-type]
STRING_MS = ConversationItemTruncate(item_id="i", content_index=0, audio_end_ms="5")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (NO_ITEM_ID, "required field 'item_id' is missing"),
        (STRING_MS, "'audio_end_ms' must be integer"),
        (ResponseCreate(response={"temperature": float("nan")}), "cannot encode response.create"),
        (SessionUpdate(session={"x": b"bytes"}), "cannot encode session.update"),
        (ProtocolWarning("bad json", "{"), "cannot be sent"),
    ],
)
def test_encoding_invalid_events_raises(event: Event, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        encode_event(event)


def test_audio_append_fast_path_matches_the_general_encoder() -> None:
    pcm = bytes(range(256)) * 4 + b"\x00\x01"
    assert encode_audio_append(pcm) == encode_event(InputAudioBufferAppend.from_bytes(pcm))
    with_id = encode_audio_append(pcm, event_id='evt "1"')
    assert with_id == encode_event(InputAudioBufferAppend.from_bytes(pcm, event_id='evt "1"'))
    event = decode_client_event(with_id)
    assert isinstance(event, InputAudioBufferAppend)
    assert event.audio_bytes == pcm
    assert event.event_id == 'evt "1"'


def test_audio_append_accepts_buffers_and_rejects_odd_lengths() -> None:
    pcm = b"\x10\x00" * 480
    assert encode_audio_append(bytearray(pcm)) == encode_audio_append(pcm)
    assert encode_audio_append(memoryview(pcm)) == encode_audio_append(pcm)
    with pytest.raises(ProtocolError, match="even number of bytes, got 961"):
        encode_audio_append(pcm + b"\x00")


# ---------------------------------------------------------------------------------- GA names and the wire module

GA_NAMES = {
    "response.output_audio.delta": ("response.audio.delta", {"delta": "AAAA"}),
    "response.output_audio.done": ("response.audio.done", {}),
    "response.output_audio_transcript.delta": ("response.audio_transcript.delta", {"delta": "Hi"}),
    "response.output_audio_transcript.done": ("response.audio_transcript.done", {"transcript": "Hi."}),
    "response.output_text.delta": ("response.text.delta", {"delta": "Hi"}),
    "response.output_text.done": ("response.text.done", {"text": "Hi."}),
}


@pytest.mark.parametrize("ga_name", sorted(GA_NAMES))
def test_ga_names_decode_to_the_canonical_class_and_keep_the_wire_name(ga_name: str) -> None:
    from voicelive_nb.protocol import canonical_type

    canonical, fields = GA_NAMES[ga_name]
    payload = {
        "type": ga_name,
        "event_id": "event_1",
        "response_id": "resp_1",
        "item_id": "item_1",
        "output_index": 0,
        "content_index": 0,
        **fields,
        "obfuscation": "x1",  # GA extra: kept
    }
    event = decode_server_event(json.dumps(payload))
    assert type(event) is SERVER_EVENTS[canonical]
    assert (event.type, event.wire_type) == (canonical, ga_name)
    assert event.to_dict() == payload
    assert json.loads(encode_event(event)) == payload
    assert canonical_type(ga_name) == canonical and canonical_type(canonical) == canonical
    # a malformed GA event is a warning that names the GA type
    broken = decode_server_event(json.dumps({k: v for k, v in payload.items() if k != "item_id"}))
    assert isinstance(broken, ProtocolWarning) and broken.wire_type == ga_name and ga_name in broken.message


def test_conversation_item_added_is_item_created_and_wire_type_can_be_chosen() -> None:
    raw = {"type": "conversation.item.added", "previous_item_id": None, "item": {"id": "item_1"}}
    event = decode_server_event(json.dumps(raw))
    assert isinstance(event, SERVER_EVENTS["conversation.item.created"])
    assert event.to_dict() == raw
    audio = ResponseAudioDelta(response_id="r", item_id="i", output_index=0, content_index=0, delta="AAAA")
    ga = audio.with_wire_type("response.output_audio.delta")
    assert ga.type == "response.audio.delta" and ga.to_dict()["type"] == "response.output_audio.delta"
    assert audio.to_dict()["type"] == "response.audio.delta"  # the original is unchanged
    assert ga.with_wire_type("response.audio.delta").wire_type == "response.audio.delta"


@pytest.mark.parametrize(
    ("version", "override", "shape"),
    [
        ("2025-10-01", None, "preview"),
        ("2026-04-10", None, "preview"),
        ("2026-06-01-preview", None, "preview"),
        ("v1", None, "ga"),
        ("V1", None, "ga"),
        ("v1", "preview", "preview"),
        ("2026-04-10", "ga", "ga"),
    ],
)
def test_shape_for_api_version(version: str, override: str | None, shape: str) -> None:
    from voicelive_nb.protocol import shape_for_api_version

    assert shape_for_api_version(version, override) == shape


def test_a_bad_shape_override_names_the_choices() -> None:
    from voicelive_nb.errors import ConfigError
    from voicelive_nb.protocol import encode_client_event, session_to_wire, shape_for_api_version

    for call in (
        lambda: shape_for_api_version("v1", "beta"),
        lambda: session_to_wire({}, "beta"),
        lambda: encode_client_event({"type": "response.create"}, "beta"),
    ):
        with pytest.raises(ConfigError, match="invalid wire_shape: 'beta'; allowed: preview or ga"):
            call()


def test_session_to_wire_writes_the_ga_nesting() -> None:
    from voicelive_nb.protocol import session_from_wire, session_to_wire

    flat = {
        "modalities": ["text", "audio"],
        "instructions": "be brief",
        "input_audio_format": "pcm16",
        "input_audio_sampling_rate": 16000,
        "output_audio_format": "g711_ulaw",
        "turn_detection": {"type": "server_vad", "threshold": 0.4},
        "input_audio_noise_reduction": {"type": "near_field"},
        "input_audio_transcription": None,
        "voice": {"type": "openai", "name": "alloy"},
        "max_response_output_tokens": 200,
        "input_audio_echo_cancellation": {"type": "server_echo_cancellation"},  # no GA name: top level
    }
    assert session_to_wire(flat, "ga") == {
        "type": "realtime",
        "output_modalities": ["audio"],  # GA: audio carries its transcript; the two don't combine
        "instructions": "be brief",
        "max_output_tokens": 200,
        "input_audio_echo_cancellation": {"type": "server_echo_cancellation"},
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 16000},
                "turn_detection": {"type": "server_vad", "threshold": 0.4},
                "noise_reduction": {"type": "near_field"},
                "transcription": None,
            },
            "output": {"format": {"type": "audio/pcmu"}, "voice": "alloy"},
        },
    }
    assert session_to_wire(flat, "preview") == flat
    back = session_from_wire(session_to_wire(flat, "ga"))
    assert back["input_audio_sampling_rate"] == 16000 and back["output_audio_format"] == "g711_ulaw"
    # what the flat shape cannot name stays under audio, both ways
    odd = {
        "type": "realtime",
        "audio": {"output": {"format": {"type": "audio/pcm", "rate": 44100}, "speed": 1.2}},
    }
    assert session_from_wire(odd) == {
        "audio": {"output": {"format": {"type": "audio/pcm", "rate": 44100}, "speed": 1.2}}
    }
    assert session_to_wire(session_from_wire(odd), "ga") == odd
    assert session_from_wire({"modalities": ["text"]}) == {"modalities": ["text"]}  # preview: as it is


def test_encode_client_event_in_the_ga_shape() -> None:
    from voicelive_nb.protocol import encode_client_event

    update = SessionUpdate(session={"modalities": ["text"], "output_audio_format": "pcm16"})
    assert json.loads(encode_client_event(update, "ga")) == {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "output_modalities": ["text"],
            "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}}},
        },
    }
    assert encode_client_event(update, "preview") == encode_event(update)
    create = ResponseCreate(response={"modalities": ["text"], "max_response_output_tokens": 50})
    assert json.loads(encode_client_event(create, "ga")) == {
        "type": "response.create",
        "response": {"output_modalities": ["text"], "max_output_tokens": 50},
    }
    item = {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "assistant", "content": [{"type": "text", "text": "ok"}]},
    }
    sent = json.loads(encode_client_event(item, "ga"))
    assert sent["item"]["content"] == [{"type": "output_text", "text": "ok"}]
    assert item["item"]["content"][0]["type"] == "text"  # type: ignore[index]  # input untouched
    with pytest.raises(ProtocolError):
        encode_client_event(ResponseCreate(response={"x": float("nan")}), "ga")
