"""Benchmark one conversation turn through the in-memory emulator against the socket emulator.

Run: ``python benchmarks/bench_memory_transport.py [--rounds 7] [--json]``

The same :class:`~voicelive_nb.session.Session` code holds each turn, once over a WebSocket to
``run_emulator`` on 127.0.0.1 and once through :func:`voicelive_nb.testing.memory_emulator` (no
socket), alternating round by round so that both see the same machine load. Both emulators run
in this process with ``pace="fast"``. Per kind of turn, the wall-clock time from ``Session.open``
to the closed session (connect, ``session.created``, ``session.update``, the turn, close):

* **text**: a manual-turn session; ``conversation.item.create`` + ``response.create`` until
  ``response.done`` (TTS on the path, no VAD or ASR);
* **audio**: a server-VAD session streaming 2.4 s of synthesized speech (unpaced) until
  ``response.done`` and the input transcription (VAD, streaming ASR and TTS on the path);
* **vad**: the same speech through server VAD only (no response, no transcription) until
  ``input_audio_buffer.committed``: 180 appends of 20 ms through the transport and the VAD;
* **setup**: open and close only (handshake and the session.update round trip).

The audio turn is dominated by the emulator's speech recognition (seconds, on the executor, and
noisy under load); the vad and text rows show the transport's share.

Medians over ``--rounds`` (after one warm-up round each), and socket / memory as a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from voicelive_nb import Session, SessionConfig
from voicelive_nb.audio.memory import ArraySource, BufferSink
from voicelive_nb.connection import ConnectionOptions
from voicelive_nb.emulator.server import run_emulator
from voicelive_nb.speech.tts import synthesize
from voicelive_nb.testing import memory_emulator

KEY = "bench-key-0123456789abcdef"
QUESTION = "What is the weather like today?"


async def setup_turn(opts: ConnectionOptions, _pcm: bytes) -> None:
    async with Session(SessionConfig.manual(), connection=opts):
        pass


async def text_turn(opts: ConnectionOptions, _pcm: bytes) -> None:
    async with Session(SessionConfig.manual(), connection=opts, sink=BufferSink()) as s:
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": QUESTION}]}
        await s.send({"type": "conversation.item.create", "item": item})
        await s.create_response()
        await s.wait_for("response.done", timeout=30)


async def audio_turn(opts: ConnectionOptions, pcm: bytes) -> None:
    async with Session(SessionConfig.server_vad(), connection=opts, sink=BufferSink()) as s:
        s.stream(ArraySource(pcm, 24000, pace="fast", tail_silence_ms=1200))
        await s.wait_for("response.done", timeout=30)
        await s.wait_for("conversation.item.input_audio_transcription.completed", timeout=15)


async def vad_turn(opts: ConnectionOptions, pcm: bytes) -> None:
    config = SessionConfig.server_vad(create_response=False, input_audio_transcription=None)
    async with Session(config, connection=opts) as s:
        s.stream(ArraySource(pcm, 24000, pace="fast", tail_silence_ms=1200))
        await s.wait_for("input_audio_buffer.committed", timeout=30)


TURNS: dict[str, Callable[[ConnectionOptions, bytes], Awaitable[None]]] = {
    "setup": setup_turn,
    "text": text_turn,
    "vad": vad_turn,
    "audio": audio_turn,
}


async def timed(
    turn: Callable[[ConnectionOptions, bytes], Awaitable[None]], opts: ConnectionOptions, pcm: bytes
) -> float:
    start = time.perf_counter()
    await turn(opts, pcm)
    return time.perf_counter() - start


async def run(rounds: int) -> dict[str, dict[str, Any]]:
    pcm = synthesize(QUESTION, sample_rate=24000).pcm16
    results: dict[str, dict[str, list[float]]] = {kind: {"socket": [], "memory": []} for kind in TURNS}
    async with run_emulator(api_key=KEY, pace="fast") as emu, memory_emulator(api_key=KEY) as mem:
        options = {
            "socket": ConnectionOptions(endpoint=emu.url, api_key=KEY),
            "memory": mem.connection(),
        }
        for kind, turn in TURNS.items():
            for opts in options.values():  # warm-up: models loaded, code paths compiled
                await timed(turn, opts, pcm)
            for _ in range(rounds):
                for where, opts in options.items():
                    results[kind][where].append(await timed(turn, opts, pcm))
    summary: dict[str, dict[str, Any]] = {}
    for kind, by in results.items():
        socket_ms = statistics.median(by["socket"]) * 1000
        memory_ms = statistics.median(by["memory"]) * 1000
        summary[kind] = {
            "socket_ms": round(socket_ms, 1),
            "memory_ms": round(memory_ms, 1),
            "ratio": round(socket_ms / memory_ms, 2),
            "rounds": rounds,
        }
    return summary


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    summary = asyncio.run(run(args.rounds))
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"one turn, open to closed, median of {args.rounds} rounds (pace fast, same process)")
    print(f"{'turn':<8}{'socket ms':>12}{'memory ms':>12}{'socket/memory':>16}")
    for kind, row in summary.items():
        print(f"{kind:<8}{row['socket_ms']:>12.1f}{row['memory_ms']:>12.1f}{row['ratio']:>15.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
