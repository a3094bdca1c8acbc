"""Conformance on traffic recorded against the live services (both wire shapes).

Every event of every trace must decode to its specific class and give back its payload exactly;
fed in order through ``SessionProtocol`` the traces must give the responses, items, VAD segments,
transcripts and assistant audio that the raw payloads show (computed here independently of the
package); every session object the services sent must be accepted and re-usable.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from typing import Any

import pytest
import real_traffic
from real_traffic import Trace

from voicelive_nb.protocol import (
    ProtocolWarning,
    SessionProtocol,
    UnknownEvent,
    canonical_type,
    decode_client_event,
    decode_server_event,
    encode_client_event,
    session_from_wire,
    session_to_wire,
)
from voicelive_nb.protocol.config import ECHO_ONLY_KEYS, SERVER_ONLY_KEYS, SessionConfig
from voicelive_nb.protocol.events import CLIENT_EVENTS, SERVER_EVENTS

TRACES = real_traffic.params()
SESSION_TYPES = ("session.created", "session.updated", "session.update")
AUDIO_DELTAS = ("response.audio.delta", "response.output_audio.delta")
PCM16_24K_BYTES_PER_MS = 24000 * 2 / 1000


def run(trace: Trace) -> SessionProtocol:
    proto = SessionProtocol()
    for direction, payload in trace.lines():
        text = json.dumps(payload)
        if direction == "server":
            proto.receive(decode_server_event(text))
        else:
            proto.send(decode_client_event(text))
    return proto


def sessions(trace: Trace) -> list[tuple[str, dict[str, Any]]]:
    return [(p["type"], p["session"]) for _, p in trace.lines() if p["type"] in SESSION_TYPES]


# ---------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("trace", TRACES)
def test_every_event_decodes_to_its_class_and_gives_back_its_payload(trace: Trace) -> None:
    for direction, payload in trace.lines():
        text = json.dumps(payload)
        event = decode_server_event(text) if direction == "server" else decode_client_event(text)
        assert not isinstance(event, (UnknownEvent, ProtocolWarning)), (direction, payload["type"], event)
        registry: dict[str, Any] = SERVER_EVENTS if direction == "server" else CLIENT_EVENTS
        assert type(event) is registry[canonical_type(payload["type"])]
        assert event.type == canonical_type(payload["type"])
        assert event.wire_type == payload["type"]
        assert event.to_dict() == payload
        repr(event)


# ---------------------------------------------------------------------------------- the state machine


@pytest.mark.parametrize("trace", TRACES)
def test_state_machine_sees_what_the_payloads_show(trace: Trace) -> None:
    proto = run(trace)
    server = trace.server()
    kinds = [canonical_type(p["type"]) for p in server]

    # responses: one record per response.done, same statuses, in order; none left open
    done = [p["response"] for p in server if p["type"] == "response.done"]
    assert [(r.id, r.status) for r in proto.responses] == [(d["id"], d["status"]) for d in done]
    assert proto.active_response is None

    # items: every item the server added to the conversation, nothing else
    added = {
        p["item"]["id"]
        for p in server
        if p["type"] in ("conversation.item.created", "conversation.item.added")
    }
    assert {item.id for item in proto.items} == added
    assert proto.counts == {"errors": 0, "warnings": 0, "protocol_warnings": 0, "unknown_events": 0}
    assert proto.events_received == len(server)

    # VAD segments, from the raw speech events
    starts = [
        (p["item_id"], p["audio_start_ms"]) for p in server if kinds and p["type"].endswith("speech_started")
    ]
    stops = {p["item_id"]: p["audio_end_ms"] for p in server if p["type"].endswith("speech_stopped")}
    committed = {p["item_id"] for p in server if p["type"] == "input_audio_buffer.committed"}
    assert [(s.item_id, s.start_ms, s.end_ms, s.committed) for s in proto.vad_segments] == [
        (item_id, start, stops.get(item_id), item_id in committed) for item_id, start in starts
    ]

    # assistant audio per item, from the base64 lengths
    audio_bytes: dict[str, int] = defaultdict(int)
    for p in server:
        if p["type"] in AUDIO_DELTAS:
            audio_bytes[p["item_id"]] += len(base64.b64decode(p["delta"]))
    assert proto.session.get("output_audio_format") in ("pcm16", None)
    received = {item_id: tally.ms for item_id, tally in proto.assistant_audio.items()}
    assert received == pytest.approx({k: v / PCM16_24K_BYTES_PER_MS for k, v in audio_bytes.items()})
    for item_id, ms in received.items():
        assert proto.audio_ms(item_id) == pytest.approx(ms)

    # transcripts: final texts as the server sent them, with the right roles
    expected: dict[str, tuple[str, str]] = {}
    for p in server:
        if p["type"] in ("response.audio_transcript.done", "response.output_audio_transcript.done"):
            expected[p["item_id"]] = ("assistant", p["transcript"])
        elif p["type"] in ("response.text.done", "response.output_text.done"):
            expected[p["item_id"]] = ("assistant", p["text"])
        elif p["type"] == "conversation.item.input_audio_transcription.completed":
            expected[p["item_id"]] = ("user", p["transcript"])
    for p in trace.client():
        item = p.get("item", {})
        if p["type"] == "conversation.item.create" and item.get("role") == "user":
            text = item["content"][0]["text"]
            user_items = [
                i
                for i in proto.items
                if i.role == "user" and i.data.get("content", [{}])[0].get("text") == text
            ]
            assert user_items, text
            expected[user_items[0].id] = ("user", text)
    entries = {e.item_id: e for e in proto.transcript}
    for item_id, (role, text) in expected.items():
        assert (entries[item_id].role, entries[item_id].text, entries[item_id].final) == (role, text, True)

    # function calls: arguments as the server finished them
    calls = {
        p["call_id"]: p["arguments"] for p in server if p["type"] == "response.function_call_arguments.done"
    }
    assert {c.call_id: c.arguments for c in proto.function_calls} == calls


@pytest.mark.parametrize("trace", TRACES)
def test_effective_session_is_canonical_flat_in_both_shapes(trace: Trace) -> None:
    proto = run(trace)
    session = proto.session
    assert "audio" not in session or "format" not in session["audio"].get("output", {})
    assert session["output_audio_format"] == "pcm16"
    assert session["input_audio_format"] == "pcm16"
    assert isinstance(session["turn_detection"], dict)
    assert session["turn_detection"]["type"] == "server_vad"
    assert "output_modalities" not in session and "modalities" in session
    if trace.shape == "ga":
        last = [s for kind, s in sessions(trace) if kind != "session.update"][-1]
        assert session["turn_detection"] == last["audio"]["input"]["turn_detection"]
        assert session["voice"] == last["audio"]["output"]["voice"]


# ---------------------------------------------------------------------------------- sessions


@pytest.mark.parametrize("trace", TRACES)
def test_every_session_object_is_accepted_and_reusable(trace: Trace) -> None:
    for kind, session in sessions(trace):
        from_server = SessionConfig.from_server(session)
        assert from_server.warnings == (), (kind, from_server.warnings)
        assert from_server.unchecked == {}
        from_dict = SessionConfig.from_dict(session)
        for config in (from_server, from_dict):
            sent = config.to_dict()
            assert not set(SERVER_ONLY_KEYS) & set(sent), (kind, sent)
            for key in ECHO_ONLY_KEYS:
                head, _, tail = key.partition(".")
                node = sent.get(head) if tail else sent
                assert not (isinstance(node, dict) and (tail or head) in node and node[tail or head] is None)
            assert "output_modalities" not in sent and "type" not in sent  # canonical (flat) shape
            # sent again, it is accepted the same way and is a fixed point
            assert SessionConfig.from_dict(sent).to_dict() == sent
        assert "model" not in from_server.to_dict()
        if kind != "session.update":
            assert from_server.server_only()["id"] == session["id"]
            assert from_server.server_only()["model"] == session["model"]
        # nothing the server sent was lost: what is sent plus what is kept aside is all of it
        flat = session_from_wire(session)
        kept = from_server.to_dict() | {k: v for k, v in from_server.server_only().items() if "." not in k}
        assert set(kept) == set(flat)


@pytest.mark.parametrize("trace", TRACES)
def test_ga_sessions_round_trip_through_the_flat_shape(trace: Trace) -> None:
    for kind, session in sessions(trace):
        flat = session_from_wire(session)
        assert session_to_wire(flat, trace.shape) == session, kind
        if trace.shape == "ga":
            assert flat["input_audio_format"] == "pcm16" and flat["output_audio_format"] == "pcm16"
            assert flat["modalities"] == session["output_modalities"]


@pytest.mark.parametrize("trace", TRACES)
def test_client_events_re_encode_from_the_canonical_config(trace: Trace) -> None:
    """What the recorded client sent is what this package sends for the same config and shape."""
    for payload in trace.client():
        if payload["type"] != "session.update":
            continue
        config = SessionConfig.from_dict(payload["session"])
        event = {"type": "session.update", "session": config.to_dict()}
        assert json.loads(encode_client_event(event, trace.shape)) == payload
