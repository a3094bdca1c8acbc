"""Our wire text against the official SDK's discriminator (``azure-ai-voicelive``, test-only dependency).

The SDK turns a received JSON object into a typed event with ``ServerEvent._deserialize(obj, [])``
(``aio/_patch.py``, ``VoiceLiveConnection.recv``): the ``type`` value is looked up in
``ServerEvent.__mapping__`` (filled by ``Model.__init_subclass__(discriminator=...)``) and an
unknown value silently falls back to the base class. Client events work the same way with
``ClientEvent``. A fallback to the base class is how a wrong ``type`` would show up, so every
check below asserts the *specific* class.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from voicelive_nb.protocol.codec import (
    decode_client_event,
    decode_server_event,
    encode_audio_append,
    encode_event,
)
from voicelive_nb.protocol.events import (
    CLIENT_EVENTS,
    ClientEvent,
    ConversationItemCreate,
    ConversationItemDelete,
    ConversationItemRetrieve,
    ConversationItemTruncate,
    InputAudioBufferAppend,
    InputAudioBufferClear,
    InputAudioBufferCommit,
    InputAudioClear,
    InputAudioTurnAppend,
    InputAudioTurnCancel,
    InputAudioTurnEnd,
    InputAudioTurnStart,
    InputTextDelta,
    InputTextDone,
    McpApprovalResponse,
    OutputAudioBufferClear,
    ResponseAudioDelta,
    ResponseCancel,
    ResponseCreate,
    SessionAvatarConnect,
    SessionUpdate,
    TranscriptionSessionUpdate,
)

pytestmark = pytest.mark.sdk
sdk = pytest.importorskip("azure.ai.voicelive.models")

DATA = Path(__file__).parent / "data"
PCM = bytes(range(256)) * 8

#: Types the SDK has no class for (it yields the base class): documented in the reference, §2 and §3.1.
NO_SDK_CLASS = {
    "rate_limits.updated",
    "response.foundry_agent_call_arguments.delta",
    "response.foundry_agent_call_arguments.done",
    "response.foundry_agent_call.in_progress",
    "response.foundry_agent_call.completed",
    "response.foundry_agent_call.failed",
    "mcp_approval_response",
    "transcription_session.update",
    # sent by the live services (shared real traffic) / the GA shape; not in the SDK 1.3 enum
    "conversation.item.done",
    "input_audio_buffer.timeout_triggered",
    "output_audio_buffer.started",
    "output_audio_buffer.stopped",
}

#: One event of every client type this package can build.
CLIENT_SAMPLES: list[ClientEvent] = [
    SessionUpdate(
        event_id="client_1",
        session={
            "instructions": "You are brief.",
            "voice": {"type": "azure-standard", "name": "en-US-Ava:DragonHDLatestNeural", "temperature": 0.8},
            "turn_detection": {"type": "azure_semantic_vad", "threshold": 0.3, "silence_duration_ms": 200},
            "input_audio_noise_reduction": {"type": "azure_deep_noise_suppression"},
            "input_audio_echo_cancellation": None,
        },
    ),
    InputAudioBufferAppend.from_bytes(PCM),
    InputAudioBufferCommit(event_id="client_2"),
    InputAudioBufferClear(),
    InputTextDelta(id="item_T1", delta="Hello, ", content_index=0),
    InputTextDone(id="item_T1"),
    ConversationItemCreate(
        previous_item_id="root",
        item={
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "What's the weather?"}],
        },
    ),
    ConversationItemRetrieve(item_id="item_9"),
    ConversationItemTruncate(item_id="item_9", content_index=0, audio_end_ms=1200),
    ConversationItemDelete(item_id="item_7"),
    ResponseCreate(
        response={"modalities": ["text", "audio"], "instructions": "One sentence."},
        additional_instructions="Be warm.",
    ),
    ResponseCancel(response_id="resp_9"),
    OutputAudioBufferClear(),
    SessionAvatarConnect(client_sdp="dj0wDQo="),
    InputAudioTurnStart(turn_id="turn_1"),
    InputAudioTurnAppend(turn_id="turn_1", audio=base64.b64encode(PCM).decode()),
    InputAudioTurnEnd(turn_id="turn_1"),
    InputAudioTurnCancel(turn_id="turn_1"),
    InputAudioClear(),
    McpApprovalResponse(approval_request_id="mcpr_1", approve=False),
    TranscriptionSessionUpdate(session={"input_audio_transcription": {"model": "gpt-4o-transcribe"}}),
]


def sdk_class(base: Any, wire_type: str) -> Any:
    return base if wire_type in NO_SDK_CLASS else base.__mapping__[wire_type]


def recorded_server_texts() -> list[Any]:
    params = []
    for path in sorted(DATA.glob("turn_*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            row = json.loads(line)
            if row["from"] == "server":
                text = json.dumps(row["event"], separators=(",", ":"))
                params.append(pytest.param(text, id=f"{path.stem}:{number}:{row['event']['type']}"))
    return params


SERVER_TEXTS = recorded_server_texts()


def test_samples_cover_every_client_type() -> None:
    assert sorted(e.type for e in CLIENT_SAMPLES) == sorted(CLIENT_EVENTS)


def test_sdk_lacks_only_the_documented_types() -> None:
    from voicelive_nb.protocol.events import SERVER_EVENTS

    missing = {t for t in SERVER_EVENTS if t not in sdk.ServerEvent.__mapping__}
    missing |= {t for t in CLIENT_EVENTS if t not in sdk.ClientEvent.__mapping__}
    assert missing == NO_SDK_CLASS


@pytest.mark.parametrize("event", CLIENT_SAMPLES, ids=lambda e: e.type)
def test_our_client_events_deserialize_to_the_specific_sdk_class(event: ClientEvent) -> None:
    wire = json.loads(encode_event(event))
    model = sdk.ClientEvent._deserialize(wire, [])
    expected = sdk_class(sdk.ClientEvent, event.type)
    assert type(model) is expected
    if expected is not sdk.ClientEvent:
        assert type(model).__name__ == "ClientEvent" + type(event).__name__
    assert model.type == event.type
    assert model.as_dict() == wire


def test_audio_append_fast_path_deserializes_in_the_sdk() -> None:
    model = sdk.ClientEvent._deserialize(json.loads(encode_audio_append(PCM, event_id="c9")), [])
    assert type(model) is sdk.ClientEventInputAudioBufferAppend
    assert base64.b64decode(model.audio) == PCM
    assert model.event_id == "c9"


def test_sdk_built_client_events_decode_to_our_specific_classes() -> None:
    built = [
        sdk.ClientEventSessionUpdate(
            session=sdk.RequestSession(
                instructions="Be brief.",
                turn_detection=sdk.ServerVad(threshold=0.4, silence_duration_ms=300),
                input_audio_sampling_rate=24000,
            ),
            event_id="sdk_1",
        ),
        sdk.ClientEventInputAudioBufferAppend(audio=base64.b64encode(PCM).decode()),
        sdk.ClientEventConversationItemTruncate(item_id="item_9", content_index=0, audio_end_ms=800),
        sdk.ClientEventResponseCreate(response=sdk.ResponseCreateParams(instructions="Hi")),
        sdk.ClientEventResponseCancel(),
        sdk.ClientEventConversationItemCreate(
            item=sdk.FunctionCallOutputItem(call_id="call_1", output='{"ok":true}'), previous_item_id="item_8"
        ),
    ]
    for model in built:
        wire = model.as_dict()
        event = decode_client_event(json.dumps(wire))
        assert type(event) is CLIENT_EVENTS[wire["type"]]
        assert event.to_dict() == wire


@pytest.mark.parametrize("text", SERVER_TEXTS)
def test_recorded_server_events_deserialize_to_the_specific_sdk_class(text: str) -> None:
    ours = decode_server_event(text)
    model = sdk.ServerEvent._deserialize(json.loads(text), [])
    assert type(model) is sdk_class(sdk.ServerEvent, ours.type)
    assert model.as_dict() == ours.to_dict()
    # what we would send as a server (the emulator) is what the SDK reads
    again = sdk.ServerEvent._deserialize(json.loads(encode_event(ours)), [])
    assert type(again) is type(model)
    if isinstance(ours, ResponseAudioDelta):
        assert again.delta == ours.audio  # the SDK decodes base64 when .delta is read
