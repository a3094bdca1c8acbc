"""Sweep throughput of the emulator across processes: 1 worker at concurrency 1 vs N workers at concurrency N.

Run: ``python benchmarks/bench_workers.py [--seconds 20] [--runs 3] [--workers 2]``

The workload is ``bench_sweep.py``'s 12-configuration VAD sweep (threshold × silence × prefix
padding) over ``--seconds`` of eSpeak speech with pauses; every configuration is one session
streaming the clip as fast as possible to the emulator, whose Silero VAD is the CPU-heavy part.
The emulator is ``start_in_thread(workers=W)`` (W worker processes behind one address, see
:mod:`voicelive_nb.emulator.workers`) and the sweep reaches it as a loopback endpoint
(``Backend(endpoint=url)``: fast pace, no service quota). Compared, median of ``--runs``:

* ``concurrency=1`` on 1 worker, and ``concurrency=W`` on W workers (the same grid),
* and, for reference, ``concurrency=W`` on the in-process emulator (one process, its own thread),

as wall seconds, configurations per second and the throughput ratio to the first row (goal:
≥ 1.7× with two workers on two cores), and whether the scores are identical (they must be).
Emulator start-up (the worker processes) is timed apart and not counted.
The machine is shared and noisy: compare the rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sweep import GRID, make_clip

from voicelive_nb.emulator.server import start_in_thread
from voicelive_nb.lab import Backend, Clip, sweep_async

KEY = "bench-workers-key-0123456789"


def one_sweep(clip: Clip, workers: int | None, concurrency: int) -> tuple[float, float, list[Any]]:
    """(wall s, emulator start s, scores) of one sweep on a fresh emulator."""
    t0 = time.perf_counter()
    emu = start_in_thread(workers=workers, api_key=KEY, pace="fast", transcription=False)
    start_s = time.perf_counter() - t0
    try:

        async def run() -> Any:
            backend = Backend(emu.url, KEY, dotenv=False)
            return await sweep_async(
                [clip], GRID, backend=backend, concurrency=concurrency, progress=False, show_plan=False
            )

        wall0 = time.perf_counter()
        result = asyncio.run(run())
        wall = time.perf_counter() - wall0
    finally:
        emu.stop()
    assert all(run.complete for run in result.runs), [run.errors for run in result.runs]
    scores = [run.score.summary() if run.score else None for run in result.runs]
    return wall, start_s, scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of audio per configuration")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-in-process", action="store_true", help="skip the in-process reference row")
    args = parser.parse_args()

    clip = make_clip(args.seconds)
    configs = 1
    for values in GRID.values():
        configs *= len(values)
    w = args.workers
    print(
        f"sweep: {configs} configs over {clip.duration_s:.1f} s of audio each, cores: {os.cpu_count()}, "
        f"runs: {args.runs} (median)"
    )
    one_sweep(clip, 1, 1)  # warm-up: imports, model files in the page cache

    setups: list[tuple[str, int | None, int]] = [("1 worker", 1, 1), (f"{w} workers", w, w)]
    if not args.no_in_process:
        setups.append(("in-process", None, w))
    rows = []
    reference: list[Any] | None = None
    same = True
    for label, workers, concurrency in setups:
        walls, starts = [], []
        for _ in range(args.runs):
            wall, start_s, scores = one_sweep(clip, workers, concurrency)
            walls.append(wall)
            starts.append(start_s)
            if reference is None:
                reference = scores
            elif scores != reference:
                same = False
        rows.append((label, concurrency, statistics.median(walls), statistics.median(starts), walls))

    base = rows[0][2]
    print()
    print(
        f"{'emulator':>11} | {'concurrency':>11} | {'wall s (median)':>15} | {'configs / s':>11} | "
        f"{'throughput vs 1 worker':>22} | {'start ms':>8} | walls"
    )
    for label, concurrency, wall, start_s, walls in rows:
        print(
            f"{label:>11} | {concurrency:>11} | {wall:>15.2f} | {configs / wall:>11.2f} | "
            f"{base / wall:>21.2f}x | {start_s * 1000:>8.0f} | {' '.join(f'{x:.2f}' for x in walls)}"
        )
    ratio = base / rows[1][2]
    print()
    print(f"identical scores in every setup: {'yes' if same else 'NO'}")
    print(
        f"goal >= 1.7x with {w} workers at concurrency {w}: {'met' if ratio >= 1.7 else 'missed'} ({ratio:.2f}x)"
    )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
