"""Recorder: events.jsonl + mic.wav/assistant.wav, secrets never written, crash safety, load()."""

from __future__ import annotations

import base64
import copy
import json
import random
import threading
import wave
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from crash import run_and_kill

from voicelive_nb.audio.wav import read_wav
from voicelive_nb.recording import Recorder, RecordingError, redact

REPO = Path(__file__).resolve().parent.parent

SECRETS = {
    "S_APIKEY_HDR": "k3y-a1b2c3d4e5f6",
    "S_APIKEY_US": "k3y-underscore-777",
    "S_AUTH": "Bearer eyJhbGciOi.JSUzI1NiJ9.payload-sig",
    "S_MCP_HDR": "mcp-header-secret-9f8e7d",
    "S_MCP_AUTH": "mcp-authorization-5a5a5a",
    "S_TOKEN": "tok-1234567890abcdef",
    "S_ACCESS": "access-0f0f0f0f0f",
    "S_CLIENT": "client-secret-c0ffee",
    "S_PASSWORD": "hunter2-but-longer",
    "S_QUERY": "query-key-dddddd",
    "S_ICE": "turn-credential-eeee",
    "S_FREE": "freetextbearer-99999",
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def secret_events() -> list[tuple[str, dict[str, Any]]]:
    s = SECRETS
    return [
        (
            "sent",
            {
                "type": "session.update",
                "session": {
                    "instructions": "be brief",
                    "max_response_output_tokens": 200,
                    "tools": [
                        {
                            "type": "mcp",
                            "server_label": "docs",
                            "server_url": f"https://mcp.example/sse?api-key={s['S_QUERY']}&x=1",
                            "authorization": s["S_MCP_AUTH"],
                            "headers": {"X-Custom-Key": s["S_MCP_HDR"], "Accept": "text/event-stream"},
                        }
                    ],
                    "avatar": {
                        "ice_servers": [{"urls": ["turn:x"], "username": "u", "credential": s["S_ICE"]}]
                    },
                },
            },
        ),
        ("sent", {"type": "custom.login", "api-key": s["S_APIKEY_HDR"], "Authorization": s["S_AUTH"]}),
        (
            "sent",
            {"type": "custom.other", "api_key": s["S_APIKEY_US"], "nested": [{"password": s["S_PASSWORD"]}]},
        ),
        (
            "received",
            {
                "type": "session.created",
                "session": {"id": "sess_1", "client_secret": {"value": s["S_CLIENT"], "expires_at": 1}},
                "token": s["S_TOKEN"],
                "Access_Token": s["S_ACCESS"],
            },
        ),
        (
            "received",
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "transcript": "hello",
                "logprobs": [{"token": "hello", "logprob": -0.1, "bytes": [104]}],
            },
        ),
        ("note", {"kind": "debug", "text": f"sent header Authorization: Bearer {s['S_FREE']}"}),
    ]


def record_all(rec: Recorder, events: list[tuple[str, dict[str, Any]]]) -> None:
    for direction, event in events:
        if direction == "sent":
            rec.record_sent(event)
        elif direction == "received":
            rec.record_received(event)
        else:
            fields = dict(event)
            rec.note(fields.pop("kind"), **fields)


def test_secrets_never_reach_the_file(tmp_path: Path) -> None:
    events = secret_events()
    originals = copy.deepcopy(events)
    with Recorder(tmp_path / "rec", session_label="secrets") as rec:
        record_all(rec, events)
        rec.note("connected", url=f"wss://x.example/voice-live/realtime?api-key={SECRETS['S_QUERY']}&model=m")
    assert events == originals  # the live events were not modified
    raw = b"".join(p.read_bytes() for p in (tmp_path / "rec").iterdir())
    for name, value in SECRETS.items():
        assert value.encode() not in raw, f"{name} leaked"
        assert value.split()[-1].encode() not in raw, f"{name} leaked"
    loaded = Recorder.load(tmp_path / "rec")
    update = loaded.of_type("session.update")[0].event["session"]
    tool = update["tools"][0]
    assert tool["headers"] == {"X-Custom-Key": "***", "Accept": "***"}
    assert tool["authorization"] == "***"
    assert tool["server_url"] == "https://mcp.example/sse?api-key=***&x=1"
    assert update["max_response_output_tokens"] == 200  # not a secret: kept
    assert update["instructions"] == "be brief"
    login = loaded.of_type("custom.login")[0].event
    assert login["api-key"] == "***"
    assert login["Authorization"] == "***"
    created = loaded.of_type("session.created")[0].event
    assert created["session"]["client_secret"] == "***"
    assert created["session"]["id"] == "sess_1"
    transcript = loaded.of_type("conversation.item.input_audio_transcription.completed")[0].event
    assert transcript["logprobs"][0]["token"] == "hello"  # a text token, not a credential
    assert "Bearer ***" in loaded.of_type("debug")[0].event["text"]
    prose = "give basic answers; the bearer of bad news"
    assert redact({"instructions": prose}) == {"instructions": prose}  # prose is not a credential


def test_redact_is_a_pure_function() -> None:
    value: dict[str, Any] = {
        "a": [{"API-KEY": "x", "keep": 1}],
        "headers": {"h": "v", "n": None},
        "authorization": None,
    }
    assert redact(value) == {
        "a": [{"API-KEY": "***", "keep": 1}],
        "headers": {"h": "***", "n": None},
        "authorization": None,
    }
    assert value["a"][0]["API-KEY"] == "x"


def test_audio_offsets_point_at_the_right_bytes(tmp_path: Path) -> None:
    rng = random.Random(7)
    appends = [rng.randbytes(2 * rng.randint(1, 1500)) for _ in range(12)]
    deltas = {f"item_{i}": [rng.randbytes(2 * rng.randint(100, 3000)) for _ in range(3)] for i in range(2)}
    sent_events = [
        {"type": "input_audio_buffer.append", "audio": b64(a), "event_id": f"e{i}"}
        for i, a in enumerate(appends)
    ]
    with Recorder(tmp_path / "rec", input_sample_rate=16000, output_sample_rate=24000) as rec:
        for i, event in enumerate(sent_events):
            rec.record_sent(event)
            if i % 4 == 0:
                item = f"item_{i // 8}"
                rec.record_received(
                    {
                        "type": "response.audio.delta",
                        "item_id": item,
                        "delta": b64(deltas[item][(i // 4) % 3]),
                    }
                )
        for item, chunks in deltas.items():
            for chunk in chunks[len(chunks) - (1 if item == "item_0" else 2) :]:
                rec.record_received({"type": "response.audio.delta", "item_id": item, "delta": b64(chunk)})
    assert sent_events[0]["audio"] == b64(appends[0])  # input untouched

    lines = [json.loads(line) for line in (tmp_path / "rec" / "events.jsonl").read_text().splitlines()]
    mic_pcm, mic_rate = read_wav(tmp_path / "rec" / "mic.wav")
    out_pcm, out_rate = read_wav(tmp_path / "rec" / "assistant.wav")
    assert (mic_rate, out_rate) == (16000, 24000)
    assert mic_pcm == b"".join(appends)  # back to back, as sent
    with wave.open(str(tmp_path / "rec" / "mic.wav"), "rb") as w:
        assert w.readframes(w.getnframes()) == mic_pcm
    seen_appends, seen_deltas = [], []
    for line in lines:
        event = line["event"]
        if line["type"] == "input_audio_buffer.append":
            ref = event["audio"]
            assert ref["file"] == "mic.wav"
            seen_appends.append(mic_pcm[ref["offset"] : ref["offset"] + ref["bytes"]])
        elif line["type"] == "response.audio.delta":
            ref = event["delta"]
            assert ref["file"] == "assistant.wav"
            seen_deltas.append(out_pcm[ref["offset"] : ref["offset"] + ref["bytes"]])
    assert seen_appends == appends
    raw = (tmp_path / "rec" / "events.jsonl").read_bytes()
    assert b64(appends[3]).encode() not in raw  # the payload is in the WAV, not in the JSON
    loaded = Recorder.load(tmp_path / "rec")
    received = [loaded.audio(e) for e in loaded.of_type("response.audio.delta")]
    assert received == seen_deltas
    assert b"".join(received) == out_pcm


def test_item_audio_goes_to_items_wav_and_bad_base64_is_survivable(tmp_path: Path) -> None:
    user_audio = bytes(range(256)) * 4
    item_event = {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_audio", "audio": b64(user_audio)}],
        },
    }
    with Recorder(tmp_path / "rec") as rec:
        rec.record_sent({"type": "input_audio_buffer.append", "audio": b64(b"\x01\x00" * 10)})
        rec.record_sent(item_event)
        rec.record_sent({"type": "input_audio_buffer.append", "audio": "not base64!!"})
        rec.record_sent({"type": "input_audio_buffer.append", "audio": b64(b"\x01\x02\x03")})  # odd length
        rec.record_sent({"type": "input_audio_buffer.append", "audio": b64(b"\x05\x00" * 4)})
    loaded = Recorder.load(tmp_path / "rec")
    create = loaded.of_type("conversation.item.create")[0]
    ref = create.event["item"]["content"][0]["audio"]
    assert ref == {"bytes": len(user_audio), "offset": 0, "file": "items.wav"}
    assert loaded.audio(create) == user_audio
    appends = loaded.of_type("input_audio_buffer.append")
    assert appends[1].event["audio"] == {"invalid_base64": True, "chars": 12}
    assert loaded.audio(appends[2]) == b"\x01\x02\x03"
    assert loaded.audio(appends[3]) == b"\x05\x00" * 4  # still aligned after the odd payload
    assert loaded.mic[:20] == b"\x01\x00" * 10  # item audio did not shift the mic timeline
    assert loaded.restore(create) == item_event


def test_load_round_trip(tmp_path: Path) -> None:
    events: list[tuple[str, dict[str, Any]]] = [
        ("sent", {"type": "session.update", "session": {"voice": {"name": "en-US-Ava"}}}),
        ("received", {"type": "session.updated", "session": {"voice": {"name": "en-US-Ava"}}}),
        ("sent", {"type": "input_audio_buffer.append", "audio": b64(b"\x10\x00" * 480)}),
        ("received", {"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": "u1"}),
        ("received", {"type": "response.audio.delta", "item_id": "a1", "delta": b64(b"\x20\x00" * 960)}),
    ]
    before = datetime.now(timezone.utc)
    with Recorder(tmp_path / "rec", session_label="round trip", input_sample_rate=16000) as rec:
        record_all(rec, events)
        rec.note("status", value="connected")
    loaded = Recorder.load(tmp_path / "rec")
    assert loaded.complete
    assert loaded.skipped_lines == 0
    assert loaded.label == "round trip"
    assert (loaded.input_sample_rate, loaded.output_sample_rate) == (16000, 24000)
    body = [e for e in loaded.events if not e.type.startswith("recording.")]
    assert [(e.dir, e.type) for e in body] == [(d, ev["type"]) for d, ev in events] + [("note", "status")]
    assert [e.t_mono for e in loaded.events] == sorted(e.t_mono for e in loaded.events)
    for entry in loaded.events:
        stamp = datetime.fromisoformat(entry.t_wall)
        offset = stamp.utcoffset()
        assert offset is not None and offset.total_seconds() == 0
        assert stamp >= before.replace(microsecond=0)
    for (_, original), entry in zip(events, body, strict=False):
        assert loaded.restore(entry) == original
    assert loaded.mic == b"\x10\x00" * 480
    assert loaded.assistant == b"\x20\x00" * 960
    assert len(loaded.sent()) == 2 and len(loaded.received()) == 3


def test_load_skips_a_torn_last_line(tmp_path: Path) -> None:
    with Recorder(tmp_path / "rec") as rec:
        rec.record_received({"type": "response.done", "response": {"status": "completed"}})
    path = tmp_path / "rec" / "events.jsonl"
    raw = path.read_bytes()
    path.write_bytes(raw[:-25])  # cut the last line (recording.closed) in the middle
    loaded = Recorder.load(tmp_path / "rec")
    assert loaded.skipped_lines == 1
    assert not loaded.complete
    assert [e.type for e in loaded.events] == ["recording.started", "response.done"]


def test_recorder_lifecycle_errors(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "rec")
    rec.close()
    rec.close()
    with pytest.raises(RecordingError, match="closed"):
        rec.record_sent({"type": "x"})
    with pytest.raises(RecordingError, match="already exists"):
        Recorder(tmp_path / "rec")
    Recorder(tmp_path / "rec", overwrite=True).close()
    with pytest.raises(RecordingError, match="cannot read"):
        Recorder.load(tmp_path / "missing")


def test_recorder_is_thread_safe(tmp_path: Path) -> None:
    def worker(rec: Recorder, n: int) -> None:
        for i in range(200):
            rec.record_sent({"type": "input_audio_buffer.append", "audio": b64(bytes([n, i % 256]) * 50)})

    with Recorder(tmp_path / "rec") as rec:
        threads = [threading.Thread(target=worker, args=(rec, n)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    loaded = Recorder.load(tmp_path / "rec")
    appends = loaded.of_type("input_audio_buffer.append")
    assert len(appends) == 800
    assert loaded.skipped_lines == 0
    for entry in appends:
        audio = loaded.audio(entry)
        assert len(audio) == 100 and audio == audio[:2] * 50
    assert len(loaded.mic) == 800 * 100


def test_fsync_is_rate_limited(tmp_path: Path) -> None:
    with Recorder(tmp_path / "every", fsync_interval_s=0.0) as rec:
        for _ in range(20):
            rec.record_received({"type": "response.audio.delta", "delta": b64(bytes(960))})
    assert rec.fsyncs >= 20
    with Recorder(tmp_path / "limited", fsync_interval_s=3600) as rec:
        for _ in range(20):
            rec.record_received({"type": "response.audio.delta", "delta": b64(bytes(960))})
    assert rec.fsyncs == 1  # only the one at close


CHILD_RECORDER = r"""
import base64, sys, time
from voicelive_nb.recording import Recorder
rec = Recorder(sys.argv[1], session_label="crash")
rec.note("connected", url="wss://example/realtime?api-key=SUPERSECRET-KEY-42")
mic = out = 0
i = 0
while True:
    frame = bytes([i % 251, 1]) * 480  # 20 ms at 24 kHz
    rec.record_sent({"type": "input_audio_buffer.append", "audio": base64.b64encode(frame).decode()})
    mic += len(frame)
    if i % 3 == 0:
        delta = bytes([i % 241, 2]) * 1200  # 50 ms
        rec.record_received({"type": "response.audio.delta", "item_id": "a", "delta": base64.b64encode(delta).decode()})
        out += len(delta)
    print(mic, out, flush=True)
    i += 1
    time.sleep(0.0005)
"""


@pytest.mark.parametrize("min_bytes", [300, 40_000, 400_000])
def test_recorder_survives_kill_9(tmp_path: Path, min_bytes: int) -> None:
    directory = tmp_path / "rec"
    lines = run_and_kill(tmp_path, CHILD_RECORDER, [str(directory)], directory / "events.jsonl", min_bytes)
    mic_reported, out_reported = (int(v) for v in lines[-1].split()) if lines else (0, 0)
    raw = b"".join(p.read_bytes() for p in directory.iterdir())
    assert b"SUPERSECRET-KEY-42" not in raw
    loaded = Recorder.load(directory)
    assert not loaded.complete
    assert loaded.skipped_lines <= 1
    assert loaded.label == "crash"
    one_second = 2 * 24000
    # everything the child reported is there (the bound asked for is 1 s; kill -9 keeps the page cache)
    assert len(loaded.mic) >= mic_reported
    assert len(loaded.assistant) >= out_reported
    assert len(loaded.mic) - mic_reported <= 960 and len(loaded.assistant) - out_reported <= 2400
    for name, reported in (("mic.wav", mic_reported), ("assistant.wav", out_reported)):
        with wave.open(str(directory / name), "rb") as w:
            assert reported - 2 * w.getnframes() <= one_second
            assert 2 * w.getnframes() >= reported
    # every reference in the log resolves to audio that is in the file, with the right content
    appends = loaded.of_type("input_audio_buffer.append")
    assert len(appends) * 960 >= mic_reported
    for i, entry in enumerate(appends):
        assert loaded.audio(entry) == bytes([i % 251, 1]) * 480
    for entry in loaded.of_type("response.audio.delta"):
        audio = loaded.audio(entry)
        assert len(audio) == 2400 and audio == audio[:2] * 1200


def test_any_string_and_any_depth_is_recorded_and_reads_back(tmp_path: Path) -> None:
    from voicelive_nb.recording import DEEP_KEY

    deep: list[Any] = []
    node = deep
    for _ in range(5000):  # far past the recursion limit
        node.append([])
        node = node[0]
    with Recorder(tmp_path / "r") as rec:
        rec.record_received({"type": "response.text.delta", "delta": "\ud800 lone surrogate"})
        rec.record_received({"type": "weird", "value": deep, "headers": {"k": "v"}})
        rec.note("deep", value=deep)
    loaded = Recorder.load(tmp_path / "r")
    assert loaded.complete and loaded.skipped_lines == 0
    (text,) = loaded.of_type("response.text.delta")
    assert text.event["delta"] == "\ud800 lone surrogate"
    (weird,) = loaded.of_type("weird")
    node = weird.event["value"]
    while isinstance(node, list):
        node = node[0]
    kept = node[DEEP_KEY]  # the deep rest kept verbatim as JSON text
    assert isinstance(kept, str) and kept == "[" * (len(kept) // 2) + "]" * (len(kept) // 2)
    assert len(kept) // 2 > 4000
    assert weird.event["headers"] == {"k": "***"}
