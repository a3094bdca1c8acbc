"""Benchmark one text turn through the emulator's sans-I/O core against the in-memory and socket emulators.

Run: ``python benchmarks/bench_emulator_protocol.py [--rounds 15] [--json]``

The same turn (a manual session: ``session.update``, ``conversation.item.create``,
``response.create`` until ``response.done``, text modality so no TTS is on the path) three ways,
alternating round by round so all see the same machine load:

* **protocol**: :class:`~voicelive_nb.emulator.protocol.ServerProtocol` and the client's
  :class:`~voicelive_nb.protocol.state.SessionProtocol` joined by JSON text in one function: no
  event loop, no socket, virtual time (what ``tests/test_emulator_protocol.py`` does);
* **memory**: a :class:`~voicelive_nb.session.Session` through :func:`voicelive_nb.testing.memory_emulator`;
* **socket**: the same ``Session`` over a WebSocket to ``run_emulator`` on 127.0.0.1.

Medians over ``--rounds`` (after a warm-up round each), and each against the protocol as a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

from voicelive_nb import Session, SessionConfig
from voicelive_nb.connection import ConnectionOptions
from voicelive_nb.emulator.options import ConversationOptions
from voicelive_nb.emulator.protocol import ServerProtocol
from voicelive_nb.emulator.server import run_emulator
from voicelive_nb.protocol.codec import decode_server_event, encode_event
from voicelive_nb.protocol.events import ConversationItemCreate, ResponseCreate, SessionUpdate
from voicelive_nb.protocol.state import SessionProtocol
from voicelive_nb.testing import memory_emulator

KEY = "bench-key-0123456789abcdef"
ITEM = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What time is it?"}]}
TEXT_ONLY = {"turn_detection": None, "modalities": ["text"]}


def protocol_turn() -> float:
    start = time.perf_counter()
    server = ServerProtocol(
        model="gpt-realtime", api_version="2025-10-01", options=ConversationOptions(pace="fast")
    )
    client = SessionProtocol()
    server.start(0.0)
    done = False
    for event in (SessionUpdate(session=TEXT_ONLY), ConversationItemCreate(item=ITEM), ResponseCreate()):
        client.send(event)
        server.receive(encode_event(event), 0.0)
        assert not server.work()  # a text reply needs no job
        for frame in server.data_to_send(0.0):
            received = decode_server_event(frame)
            client.receive(received, 0.0)
            done |= received.type == "response.done"
    assert done
    return time.perf_counter() - start


async def session_turn(opts: ConnectionOptions) -> float:
    start = time.perf_counter()
    config = SessionConfig.manual(modalities=["text"])
    async with Session(config, connection=opts) as s:
        await s.send({"type": "conversation.item.create", "item": ITEM})
        await s.create_response()
        await s.wait_for("response.done", timeout=30)
    return time.perf_counter() - start


async def run(rounds: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {"protocol": [], "memory": [], "socket": []}
    async with run_emulator(api_key=KEY, pace="fast") as emu, memory_emulator(api_key=KEY) as mem:
        options = {"memory": mem.connection(), "socket": ConnectionOptions(endpoint=emu.url, api_key=KEY)}
        protocol_turn()
        for opts in options.values():
            await session_turn(opts)
        for _ in range(rounds):
            times["protocol"].append(protocol_turn())
            for where, opts in options.items():
                times[where].append(await session_turn(opts))
    base = statistics.median(times["protocol"]) * 1000
    return {
        where: {
            "median_ms": round(statistics.median(ts) * 1000, 3),
            "vs_protocol": round(statistics.median(ts) * 1000 / base, 1),
            "rounds": rounds,
        }
        for where, ts in times.items()
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    summary = asyncio.run(run(args.rounds))
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"one text turn (session.update, item, response), median of {args.rounds} rounds")
    print(f"{'path':<10}{'median ms':>12}{'x protocol':>12}")
    for where, row in summary.items():
        print(f"{where:<10}{row['median_ms']:>12.3f}{row['vs_protocol']:>11.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
