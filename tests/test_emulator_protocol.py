"""The emulator's sans-I/O core wired to the client's state machine, in memory, on virtual time.

A :class:`~voicelive_nb.emulator.protocol.ServerProtocol` and a
:class:`~voicelive_nb.protocol.state.SessionProtocol` talk through JSON text (the client's codec
encodes and decodes, the server's edge renders the dated-version wire shape) with no socket, no
event loop and no clock: time is a number of milliseconds the test moves forward, and the
server's jobs run inline — TTS with the real eSpeak NG renderer, VAD with :class:`EnergyVad`, a
real implementation of the speech-probability interface (an energy detector, so the file needs
no 0.7 s model load). The whole file runs in well under a second.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from voicelive_nb.emulator.conversation import render_speech
from voicelive_nb.emulator.core import InputProcessing, Job, PassThrough
from voicelive_nb.emulator.enhance import Playout
from voicelive_nb.emulator.options import ConversationOptions
from voicelive_nb.emulator.protocol import ServerProtocol
from voicelive_nb.protocol.codec import decode_server_event
from voicelive_nb.protocol.events import (
    ClientEvent,
    ConversationItemCreate,
    ConversationItemTruncate,
    ErrorEvent,
    InputAudioBufferAppend,
    ResponseCreate,
    ServerEvent,
    SessionUpdate,
)
from voicelive_nb.protocol.state import SessionProtocol
from voicelive_nb.protocol.wire import encode_client_event

RATE = 24000
FRAME_MS = 20


class EnergyVad:
    """Speech probability from frame energy: one value per complete 32 ms window (the model's contract)."""

    window_ms = 32.0

    def __init__(self, rate: int) -> None:
        self.window = int(rate * self.window_ms / 1000)
        self._pending = np.zeros(0, dtype=np.float32)

    def feed(self, pcm16: bytes) -> list[float]:
        samples = np.concatenate(
            (self._pending, np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0)
        )
        count = samples.size // self.window
        out = []
        for k in range(count):
            w = samples[k * self.window : (k + 1) * self.window]
            rms_db = 20 * math.log10(max(float(np.sqrt(np.mean(w * w))), 1e-9))
            out.append(0.98 if rms_db > -35.0 else 0.02)
        self._pending = samples[count * self.window :]
        return out

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)


def run_job(job: Job) -> Any:
    """The shell's work, inline."""
    if job.kind == "vad_model":
        return EnergyVad(*job.args)
    if job.kind == "vad_score":
        model, mono = job.args
        return model.feed(mono)
    if job.kind == "render":
        return render_speech(*job.args)
    raise AssertionError(f"unexpected job {job!r}")


def tone(ms: int, level: float = 0.3) -> bytes:
    t = np.arange(RATE * ms // 1000) / RATE
    return (np.sin(2 * np.pi * 220 * t) * level * 32767).astype("<i2").tobytes()


def silence(ms: int) -> bytes:
    return bytes(RATE * ms // 1000 * 2)


class Pair:
    """A client and a server state machine joined by JSON text, on virtual milliseconds."""

    def __init__(
        self, api_version: str = "2025-10-01", input_path: InputProcessing | None = None, **options: Any
    ) -> None:
        self.now = 0.0
        self.shape = "ga" if api_version == "v1" else "preview"
        options.setdefault("transcription", False)
        self.server = ServerProtocol(
            model="gpt-realtime",
            api_version=api_version,
            options=ConversationOptions(**options),
            input_path=input_path,
        )
        self.client = SessionProtocol()
        self.log: list[tuple[float, ServerEvent]] = []
        self.server.start(self.now)
        self.pump()

    def send(self, event: ClientEvent) -> None:
        self.client.send(event)
        self.server.receive(encode_client_event(event, self.shape), self.now)
        self.pump()

    def pump(self) -> None:
        """Run the requested work and deliver what the server sends, until both are quiet."""
        while True:
            jobs = self.server.work()
            for job in jobs:
                self.server.job_done(job, run_job(job), self.now)
            frames = self.server.data_to_send(self.now)
            for frame in frames:
                event = decode_server_event(frame)
                self.client.receive(event, self.now)
                self.log.append((self.now, event))
            if not jobs and not frames:
                return

    def wait(self, ms: float) -> None:
        """Let ``ms`` of virtual time pass, stopping at every deadline the server names."""
        end = self.now + ms
        while (due := self.server.next_deadline()) is not None and due <= end:
            self.now = max(self.now, due)
            self.server.advance(self.now)
            self.pump()
        self.now = end
        self.server.advance(end)
        self.pump()

    def speak(self, pcm16: bytes) -> None:
        """Append audio in 20 ms frames at real-time pace (virtual)."""
        step = RATE * FRAME_MS // 1000 * 2
        for i in range(0, len(pcm16), step):
            self.send(InputAudioBufferAppend.from_bytes(pcm16[i : i + step]))
            self.wait(FRAME_MS)

    def types(self, since: int = 0) -> list[str]:
        return [e.type for _, e in self.log[since:]]

    def first(self, etype: str, since: int = 0) -> tuple[float, ServerEvent]:
        return next((t, e) for t, e in self.log[since:] if e.type == etype)

    def errors(self, since: int = 0) -> list[dict[str, Any]]:
        return [dict(e.error) for _, e in self.log[since:] if isinstance(e, ErrorEvent)]


def manual_text_session(pair: Pair) -> None:
    pair.send(SessionUpdate(session={"turn_detection": None, "modalities": ["text"]}))


USER_HELLO = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello there"}]}


@pytest.mark.parametrize("api_version", ["2025-10-01", "v1"])
def test_text_turn_event_order_and_transcript(api_version: str) -> None:
    """The same turn in both wire shapes (GA frames decode to the same client events)."""
    pair = Pair(api_version, pace="fast")
    manual_text_session(pair)
    start = len(pair.log)
    pair.send(ConversationItemCreate(item=USER_HELLO))
    pair.send(ResponseCreate())
    types = [t for t in pair.types(start) if t != "response.text.delta"]
    ga = ["conversation.item.done"] if api_version == "v1" else []  # GA closes every item
    assert types == [
        "conversation.item.created",
        *ga,
        "response.created",
        "response.output_item.added",
        "conversation.item.created",
        "response.content_part.added",
        "response.text.done",
        "response.content_part.done",
        *ga,
        "response.output_item.done",
        "response.done",
    ]
    deltas = [e.delta for _, e in pair.log[start:] if e.type == "response.text.delta"]
    assert "".join(deltas) == 'You said: "hello there".'
    assert pair.client.transcript[-1].text == 'You said: "hello there".'
    assert pair.client.active_response is None
    assert pair.client.responses[-1].status == "completed"


def test_audio_turn_is_paced_by_deadlines() -> None:
    pair = Pair(pace="realtime", replies=["One two three four five six seven eight."])
    pair.speak(silence(200) + tone(600) + silence(900))
    types = pair.types()
    order = [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "response.created",
        "response.content_part.added",
    ]
    assert [t for t in types if t in order] == order
    started_at, _ = pair.first("response.created")
    # the reply is being paced: the server names the next chunk's time, and more audio comes with time
    assert pair.server.next_deadline() is not None
    before = sum(1 for _, e in pair.log if e.type == "response.audio.delta")
    pair.wait(3000)
    times = [t for t, e in pair.log if e.type == "response.audio.delta"]
    assert len(times) > before
    for i, t in enumerate(times):  # chunk i goes out lead_ms (100) before its playout time, not sooner
        assert t >= started_at + i * 100 - 100 - 1e-6
    assert pair.types()[-1] in ("response.done", "rate_limits.updated")
    record = pair.client.responses[-1]
    assert record.status == "completed"
    item_id = record.output_item_ids[0]
    assert pair.client.audio_ms(item_id) == pytest.approx((times[-1] - started_at), abs=200)


def test_barge_in_mid_reply_cancels_and_truncates_at_the_playout_clock() -> None:
    pair = Pair(
        pace="realtime", replies=["This is a long answer that keeps going for several seconds of speech."]
    )
    pair.send(SessionUpdate(session={"turn_detection": {"type": "server_vad", "auto_truncate": True}}))
    pair.speak(tone(600) + silence(900))
    _, created = pair.first("response.created")
    response_id = created.response["id"]
    first_audio_at, _ = pair.first("response.audio.delta")
    pair.wait(1000)
    mark = len(pair.log)
    pair.speak(tone(600))
    after = pair.types(mark)
    assert after.index("input_audio_buffer.speech_started") < after.index("response.done")
    assert after.index("response.done") < after.index("conversation.item.truncated")
    _, done = pair.first("response.done", mark)
    assert done.response["id"] == response_id
    assert done.response["status"] == "cancelled"
    assert done.response["status_details"]["reason"] == "turn_detected"
    started_at, _ = pair.first("input_audio_buffer.speech_started", mark)
    _, truncated = pair.first("conversation.item.truncated", mark)
    item_id = truncated.item_id
    # cut where a listener who started at the first delta is, within what was sent
    expected = math.floor(min(started_at - first_audio_at, pair.client.audio_ms(item_id)))
    assert truncated.audio_end_ms == expected
    assert 900 <= truncated.audio_end_ms < pair.client.audio_ms(item_id) + 1
    (barge,) = pair.client.barge_ins
    assert barge.response_id == response_id and barge.response_active and barge.server_truncates
    # no delta of the cancelled response after its response.done
    done_index = mark + after.index("response.done")
    assert not [e for _, e in pair.log[done_index:] if getattr(e, "response_id", None) == response_id]


class ServerReference(PassThrough):
    """Input processing that keeps the server's echo reference as ``enhance.InputPath`` does (a
    :class:`Playout`) and records the reference each input frame is compared with."""

    def __init__(self) -> None:
        self.playout = Playout()
        self.heard: list[bytes] = []
        self.resumed: list[float] = []

    def sent(self, session: Any, chunk: bytes, rate: int, now_ms: float | None = None) -> None:
        assert rate == RATE
        self.playout.sent(chunk, rate, now_ms)

    def stop_playout(self) -> None:
        self.playout.stop()

    def input_resumed(self, now_ms: float, rate: int) -> None:
        self.resumed.append(now_ms)
        self.playout.resume(now_ms, rate)

    def process(self, session: Any, raw: bytes, mono: bytes) -> bytes:
        self.heard.append(self.playout.take(len(mono) // 2))
        return mono


def test_a_pause_in_the_input_moves_the_server_reference_on_with_the_clock() -> None:
    # a client that stops sending after its question (speak() between questions, push-to-talk)
    # while the reply plays: the reply goes on by the clock, so the next question is not compared
    # with the reply's remaining audio (a still-converging canceller took its first syllable down)
    ref = ServerReference()
    pair = Pair(pace="fast", input_path=ref, replies=["One two three four five six seven eight nine ten."])
    pair.speak(silence(200) + tone(600) + silence(700))
    pair.first("response.done")  # the whole reply has been sent
    reply_ms = pair.client.audio_ms(pair.client.responses[-1].output_item_ids[0])
    assert reply_ms > 2000 and not ref.resumed  # a continuous stream follows the reply sample by sample
    ref.heard.clear()
    pair.wait(reply_ms + 500)  # the client sends nothing; the reply ends by the clock
    pair.speak(tone(300))
    assert ref.resumed == [pytest.approx(pair.now - 300, abs=FRAME_MS + 1)]
    assert not any(any(frame) for frame in ref.heard)  # compared with silence: the reply had ended


def test_truncate_is_clamped_to_the_audio_received() -> None:
    pair = Pair(pace="fast", replies=["A short reply."])
    pair.send(SessionUpdate(session={"turn_detection": None}))
    pair.send(ConversationItemCreate(item=USER_HELLO))
    pair.send(ResponseCreate())
    item_id = pair.client.responses[-1].output_item_ids[0]
    received = pair.client.audio_ms(item_id)
    assert received > 500
    mark = len(pair.log)
    # beyond what was sent: the service rejects it, naming the field
    pair.send(ConversationItemTruncate(item_id=item_id, content_index=0, audio_end_ms=int(received) + 5000))
    (error,) = pair.errors(mark)
    assert (error["code"], error["param"]) == ("invalid_value", "audio_end_ms")
    # the client clamps a playback position past the end to what it received, and that is accepted
    pair.send(pair.client.truncate_event(item_id, played_ms=received + 5000))
    _, truncated = pair.first("conversation.item.truncated", mark)
    assert truncated.audio_end_ms == int(received)
    assert pair.errors(mark) == [error]


def test_response_create_while_active_needs_cancel_previous() -> None:
    pair = Pair(pace="realtime", replies=["The first answer is rather long and keeps speaking.", "Second."])
    pair.send(SessionUpdate(session={"turn_detection": None}))
    pair.send(ConversationItemCreate(item=USER_HELLO))
    pair.send(ResponseCreate())
    pair.wait(300)
    first = pair.client.active_response
    assert first is not None
    mark = len(pair.log)
    pair.send(ResponseCreate())
    (error,) = pair.errors(mark)
    assert error["code"] == "conversation_already_has_active_response"
    assert pair.client.active_response == first
    mark = len(pair.log)
    pair.send(ResponseCreate(response={"cancel_previous": True}))
    after = pair.types(mark)
    assert after.index("response.done") < after.index("response.created")
    _, done = pair.first("response.done", mark)
    assert done.response["id"] == first.id and done.response["status"] == "cancelled"
    assert done.response["status_details"]["reason"] == "client_cancelled"
    pair.wait(5000)
    assert [r.status for r in pair.client.responses] == ["cancelled", "completed"]


def test_tool_call_turn_then_the_reply_quotes_its_output() -> None:
    pair = Pair(pace="fast", replies=[{"call": "get_weather", "arguments": {"city": "Paris"}}])
    manual_text_session(pair)
    pair.send(ConversationItemCreate(item=USER_HELLO))
    mark = len(pair.log)
    pair.send(ResponseCreate())
    types = [t for t in pair.types(mark) if t != "response.function_call_arguments.delta"]
    assert types == [
        "response.created",
        "response.output_item.added",
        "conversation.item.created",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.done",
    ]
    (call,) = pair.client.pending_function_calls
    assert (call.name, json.loads(call.arguments), call.done) == ("get_weather", {"city": "Paris"}, True)
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}
    pair.send(ConversationItemCreate(item=output))
    assert not pair.client.pending_function_calls
    pair.send(ResponseCreate())
    assert pair.client.transcript[-1].text == "Get weather says: sunny, 21 C"
    assert pair.client.responses[-1].status == "completed"


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        ({"bogus_field": 1}, "unknown_parameter", "session.bogus_field"),
        (
            {"turn_detection": {"type": "server_vad", "threshold": 7}},
            "invalid_value",
            "session.turn_detection.threshold",
        ),
        ({"modalities": ["smell"]}, "invalid_value", "session.modalities"),
    ],
)
def test_session_update_errors_name_the_field(session: dict[str, Any], code: str, param: str) -> None:
    pair = Pair(pace="fast")
    before = dict(pair.client.session)
    mark = len(pair.log)
    pair.send(SessionUpdate(session=session))
    (error,) = pair.errors(mark)
    assert (error["code"], error["param"]) == (code, param)
    assert "session.updated" not in pair.types(mark)
    assert dict(pair.client.session) == before
