"""Tool-call overhead: ``function_call_arguments.done`` → ``function_call_output`` sent, against calling the function.

    python benchmarks/bench_tools.py [--calls 300]

A trivial tool (``add(a, b)``) runs through :class:`voicelive_nb.tools.ToolRunner` on a real
asyncio loop, fed with decoded events; the clock starts when the runner is handed
``response.function_call_arguments.done`` (the response already done, so the output is sent
as soon as the call finishes) and stops when its ``conversation.item.create`` reaches ``send``.
Side by side, in the same run: the same function called directly (the floor), its
arguments validated and called (schema cost), and an async tool (no worker thread).
Goal: ≤ 5 ms p50 on the engine. Medians and p90 over ``--calls`` calls; compare ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicelive_nb.protocol.codec import decode_server_event
from voicelive_nb.tools import ToolRunner, as_tool


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def add_async(a: int, b: int) -> int:
    """Add two integers, asynchronously."""
    return a + b


def args_done(i: int, name: str) -> Any:
    return decode_server_event(
        json.dumps(
            {
                "type": "response.function_call_arguments.done",
                "response_id": f"resp_{i}",
                "item_id": f"item_{i}",
                "output_index": 0,
                "call_id": f"call_{i}",
                "name": name,
                "arguments": '{"a": 2, "b": 3}',
            }
        )
    )


def response_done(i: int) -> Any:
    return decode_server_event(
        json.dumps(
            {"type": "response.done", "response": {"id": f"resp_{i}", "status": "completed", "output": []}}
        )
    )


async def through_runner(fn: Any, calls: int) -> list[float]:
    sent_at: dict[str, float] = {}
    arrived = asyncio.Event()

    async def send(event: dict[str, Any]) -> None:
        if event["type"] == "conversation.item.create":
            sent_at[event["item"]["call_id"]] = time.perf_counter()
            arrived.set()

    runner = ToolRunner(send, [fn])
    times = []
    for i in range(calls):
        runner.handle(response_done(i))  # the response is done: the output goes out at once
        arrived.clear()
        start = time.perf_counter()
        runner.handle(args_done(i, fn.__name__))
        await arrived.wait()
        times.append((sent_at[f"call_{i}"] - start) * 1000)
    await runner.aclose()
    return times


def direct(calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        add(**json.loads('{"a": 2, "b": 3}'))
        times.append((time.perf_counter() - start) * 1000)
    return times


def validated(calls: int) -> list[float]:
    tool = as_tool(add)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        add(**tool.parse('{"a": 2, "b": 3}'))
        times.append((time.perf_counter() - start) * 1000)
    return times


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    rows = {
        "direct call (json.loads + call)": direct(args.calls),
        "validated call (pydantic + call)": validated(args.calls),
        "runner, sync tool (worker thread)": asyncio.run(through_runner(add, args.calls)),
        "runner, async tool (on the loop)": asyncio.run(through_runner(add_async, args.calls)),
    }
    floor = statistics.median(rows["direct call (json.loads + call)"])
    print(f"{'path':38s} {'p50 ms':>9s} {'p90 ms':>9s} {'× direct':>10s}")
    for name, values in rows.items():
        median = statistics.median(values)
        print(f"{name:38s} {median:9.3f} {p90(values):9.3f} {median / floor:10.1f}")
    worst = max(statistics.median(rows[k]) for k in rows if k.startswith("runner"))
    print(
        f"goal: arguments.done → output sent ≤ 5 ms p50: {'met' if worst <= 5 else 'NOT met'} ({worst:.3f} ms)"
    )


if __name__ == "__main__":
    main()
