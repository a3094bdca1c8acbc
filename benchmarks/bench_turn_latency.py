"""Benchmark: turn latency with streaming recognition vs the decode-after-turn path, side by side.

Run: ``python benchmarks/bench_turn_latency.py [--sessions 1,4] [--lengths 1,3,8] [--turns 2] [--json]``

Two emulators run as subprocesses (``python -m voicelive_nb.emulator --pace fast``), one with
streaming recognition (the default) and one with ``--no-streaming-asr`` (the utterance is decoded
after its turn ends). Every client streams its question **in real time**, in 20 ms chunks, as a
microphone does; open vocabulary (no phrase list), transcription on, the default reply (which
quotes the transcript, so recognition is on the path of every reply).

Measured on the client: ``input_audio_buffer.speech_stopped`` → the reply's first
``response.audio.delta``, median over every turn of every session, for questions of about
1 s, 3 s and 8 s at 1 and 4 concurrent sessions. Goals (issue #13): ≤ 250 ms at 1 session,
≤ 500 ms at 4, flat in utterance length.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

QUERY = "/voice-live/realtime?api-version=2026-07-15&model=gpt-realtime"
#: Questions of about 1 s, 3 s and 8 s when spoken by the emulator's eSpeak voice.
TEXTS = {
    1: "good morning to you",
    3: "what is the weather like in seattle today and tomorrow",
    8: "could you tell me what the weather will be like in seattle tomorrow morning and whether "
    "i should take an umbrella and a warm coat when i walk to work at eight",
}
CHUNK_BYTES = 960  # 20 ms at 24 kHz


@contextmanager
def emulator_process(*extra: str) -> Iterator[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voicelive_nb.emulator",
            "--port",
            "0",
            "--pace",
            "fast",
            "--max-connections-per-minute",
            "0",
            *extra,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("ws://"):
            raise RuntimeError(f"the emulator did not start (printed {url!r})")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


async def recv(ws: ClientConnection, timeout: float = 60.0) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), timeout)))


async def until(ws: ClientConnection, type_: str) -> dict[str, Any]:
    while True:
        event = await recv(ws)
        if event["type"] == type_:
            return event


async def stream_realtime(ws: ClientConnection, pcm: bytes) -> None:
    """Append ``pcm`` in 20 ms chunks on a real-time schedule (as a microphone would)."""
    t0 = time.perf_counter()
    for k, i in enumerate(range(0, len(pcm), CHUNK_BYTES)):
        delay = t0 + k * 0.02 - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        chunk = base64.b64encode(pcm[i : i + CHUNK_BYTES]).decode()
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))


async def session_latencies(url: str, audio: bytes, turns: int) -> list[float]:
    out: list[float] = []
    async with connect(url + QUERY, max_size=2**22) as ws:
        await until(ws, "session.created")
        await ws.send(
            json.dumps(
                {
                    "type": "session.update",
                    "session": {"input_audio_transcription": {"model": "azure-speech"}},
                }
            )
        )
        await until(ws, "session.updated")
        for _ in range(turns):
            sender = asyncio.ensure_future(stream_realtime(ws, audio))
            stopped_at = first_audio_at = None
            while first_audio_at is None:
                event = await recv(ws)
                if event["type"] == "input_audio_buffer.speech_stopped":
                    stopped_at = time.perf_counter()
                elif event["type"] == "response.audio.delta" and stopped_at is not None:
                    first_audio_at = time.perf_counter()
            await until(ws, "response.done")
            await sender
            assert stopped_at is not None
            out.append(first_audio_at - stopped_at)
    return out


async def latencies(url: str, sessions: int, audio: bytes, turns: int) -> list[float]:
    results = await asyncio.gather(*(session_latencies(url, audio, turns) for _ in range(sessions)))
    return [x for r in results for x in r]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="1,4", help="concurrent session counts (default 1,4)")
    parser.add_argument(
        "--lengths", default="1,3,8", help="question lengths in seconds, of 1,3,8 (default all)"
    )
    parser.add_argument("--turns", type=int, default=2, help="turns per session (default 2)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.sessions.split(",")]
    lengths = [int(x) for x in args.lengths.split(",")]

    from voicelive_nb.speech.tts import synthesize

    audios = {n: bytes(9600) + bytes(synthesize(TEXTS[n]).pcm16) + bytes(48000) for n in lengths}
    rows: list[dict[str, Any]] = []
    with emulator_process() as streaming_url, emulator_process("--no-streaming-asr") as after_url:
        for url in (streaming_url, after_url):  # load models (VAD, ASR, TTS) before measuring
            asyncio.run(latencies(url, 1, audios[lengths[0]], 1))
        for n in counts:
            for length in lengths:
                audio = audios[length]
                speech_s = (len(audio) - 9600 - 48000) / 48000
                stream_ms = (
                    statistics.median(asyncio.run(latencies(streaming_url, n, audio, args.turns))) * 1000
                )
                after_ms = statistics.median(asyncio.run(latencies(after_url, n, audio, args.turns))) * 1000
                rows.append(
                    {
                        "sessions": n,
                        "speech_s": round(speech_s, 2),
                        "streaming_ms": round(stream_ms),
                        "after_turn_ms": round(after_ms),
                        "speed_up": round(after_ms / max(stream_ms, 1e-9), 1),
                    }
                )
                print(
                    f"sessions {n} | speech {speech_s:4.1f} s | streaming p50 {stream_ms:6.0f} ms"
                    f" | decode after turn p50 {after_ms:6.0f} ms | {after_ms / max(stream_ms, 1e-9):4.1f}x",
                    flush=True,
                )
    print()
    print(
        "speech_stopped -> first response.audio.delta, median (goal: <= 250 ms at 1 session, <= 500 ms at 4)"
    )
    print("sessions | speech s | streaming ms | decode after turn ms | ratio")
    for r in rows:
        print(
            f"{r['sessions']:>8} | {r['speech_s']:>8} | {r['streaming_ms']:>12} | {r['after_turn_ms']:>20} |"
            f" {r['speed_up']:>4}x"
        )
    for n in counts:
        mine = [r["streaming_ms"] for r in rows if r["sessions"] == n]
        print(
            f"{n} session(s): streaming longest/shortest utterance latency ratio {max(mine) / max(min(mine), 1):.2f}"
        )
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
