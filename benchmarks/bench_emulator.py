"""Benchmark the emulator: turn latency and unpaced server-VAD throughput, 1-8 sessions at once.

Run: ``python benchmarks/bench_emulator.py [--sessions 1,2,4,8] [--turns 3] [--audio-s 60] [--json]``

The emulator runs as a subprocess (``python -m voicelive_nb.emulator --port 0 --pace fast``),
so its CPU time is measured alone (``/proc/<pid>/stat``); the clients run here, on the
same machine, with plain ``websockets``.

* **Turn latency**: client-side time from ``input_audio_buffer.speech_stopped`` to the
  first ``response.audio.delta`` of the reply (the default reply quotes the transcript, so
  ASR and TTS are both on the path), median over every turn of every session. Two columns:
  with a ``phrase_list`` (pocketsphinx grammar) and open vocabulary (n-gram model; one
  shared decoder, so concurrent turns queue for it).
* **VAD throughput**: every session appends ``--audio-s`` seconds of speech with pauses in
  20 ms chunks as fast as it can (server VAD on, no responses, no transcription); seconds
  of audio per CPU second of the server process, and per wall-clock second overall.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

QUERY = "/voice-live/realtime?api-version=2026-07-15&model=gpt-realtime"
PHRASES = ["what is the weather like in seattle today", "turn on the lights in the kitchen", "good morning"]


@contextmanager
def emulator_process() -> Iterator[tuple[str, int]]:
    proc = subprocess.Popen(
        # no connection-rate limit: the runs open more than the service's 30 connections a minute
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
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("ws://"):
            raise RuntimeError(f"the emulator did not start (printed {url!r})")
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def recv(ws: ClientConnection, timeout: float = 60.0) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), timeout)))


async def until(ws: ClientConnection, type_: str) -> dict[str, Any]:
    while True:
        event = await recv(ws)
        if event["type"] == type_:
            return event


async def append(ws: ClientConnection, pcm: bytes, chunk: int = 960) -> None:
    for i in range(0, len(pcm), chunk):
        await ws.send(
            json.dumps(
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm[i : i + chunk]).decode()}
            )
        )
        await asyncio.sleep(0)


async def update(ws: ClientConnection, **session: Any) -> None:
    await ws.send(json.dumps({"type": "session.update", "session": session}))
    event = await until(ws, "session.updated")
    assert event["type"] == "session.updated"


async def turn_latencies(url: str, n: int, turns: int, phrase_list: bool) -> list[float]:
    from voicelive_nb.speech.tts import synthesize

    async def one(index: int) -> list[float]:
        out = []
        async with connect(url + QUERY, max_size=2**22) as ws:
            await until(ws, "session.created")
            transcription: dict[str, Any] = {"model": "azure-speech"}
            if phrase_list:
                transcription["phrase_list"] = PHRASES
            await update(ws, input_audio_transcription=transcription)
            for t in range(turns):
                phrase = PHRASES[(index + t) % len(PHRASES)]
                audio = bytes(9600) + synthesize(phrase).pcm16 + bytes(48000)
                sender = asyncio.ensure_future(append(ws, audio))
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

    results = await asyncio.gather(*(one(i) for i in range(n)))
    return [x for r in results for x in r]


async def vad_throughput(url: str, pid: int, n: int, audio_s: float) -> tuple[float, float]:
    from voicelive_nb.speech.tts import speech_with_pauses

    block, _ = speech_with_pauses(PHRASES, [0.8, 1.2], lead_s=0.5, tail_s=1.0)
    repeats = max(1, round(audio_s * 48000 / len(block)))
    audio = block * repeats
    seconds = len(audio) / 48000

    async def one() -> None:
        async with connect(url + QUERY, max_size=2**22) as ws:
            await until(ws, "session.created")
            await update(ws, turn_detection={"type": "server_vad", "create_response": False})
            await append(ws, bytes(960))  # the VAD model is loaded on the first audio
            await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
            await until(ws, "input_audio_buffer.cleared")
            await ready.wait()
            await append(ws, audio)
            await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
            await until(ws, "input_audio_buffer.cleared")  # every append before it is processed

    ready = asyncio.Event()
    tasks = [asyncio.ensure_future(one()) for _ in range(n)]
    await asyncio.sleep(1.0)  # let every session connect and load its VAD
    cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
    ready.set()
    await asyncio.gather(*tasks)
    cpu, wall = cpu_seconds(pid) - cpu0, time.perf_counter() - wall0
    return n * seconds / max(cpu, 1e-9), n * seconds / wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="1,2,4,8", help="concurrent session counts (default 1,2,4,8)")
    parser.add_argument(
        "--turns", type=int, default=3, help="voice turns per session for latency (default 3)"
    )
    parser.add_argument(
        "--audio-s", type=float, default=60.0, help="seconds of audio per session for VAD (default 60)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.sessions.split(",")]
    rows = []
    with emulator_process() as (url, pid):
        for n in counts:
            fixed = asyncio.run(turn_latencies(url, n, args.turns, phrase_list=True))
            open_vocab = asyncio.run(turn_latencies(url, n, args.turns, phrase_list=False))
            per_cpu, per_wall = asyncio.run(vad_throughput(url, pid, n, args.audio_s))
            rows.append(
                {
                    "sessions": n,
                    "latency_phrase_list_ms": round(statistics.median(fixed) * 1000),
                    "latency_open_vocab_ms": round(statistics.median(open_vocab) * 1000),
                    "vad_audio_s_per_server_cpu_s": round(per_cpu, 1),
                    "vad_audio_s_per_wall_s": round(per_wall, 1),
                }
            )
    if args.json:
        print(json.dumps({"cpus": os.cpu_count(), "rows": rows}, indent=2))
        return 0
    print(f"emulator benchmark on {os.cpu_count()} CPUs (clients run in this process)")
    print(
        "sessions | turn latency median, phrase list | open vocabulary | VAD audio s / server CPU s | audio s / wall s"
    )
    for r in rows:
        print(
            f"{r['sessions']:>8} | {r['latency_phrase_list_ms']:>27} ms | {r['latency_open_vocab_ms']:>12} ms"
            f" | {r['vad_audio_s_per_server_cpu_s']:>26} | {r['vad_audio_s_per_wall_s']:>16}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
