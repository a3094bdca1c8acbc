"""Wall time of a VAD-lab sweep on the built-in emulator, and how it scales with concurrency.

Run: ``python benchmarks/bench_sweep.py [--seconds 60] [--runs 3] [--concurrency 1 2 4] [--same-loop]``

The workload is the issue's: a 12-configuration sweep (threshold 0.3/0.5/0.7 × silence
300/500 ms × prefix padding 200/400 ms) over 60 s of 24 kHz eSpeak speech with pauses (one clip,
its exact truth). Every configuration is one session that streams the whole clip plus its tail
silence as fast as possible (100 ms appends) to the emulator, whose Silero VAD scores every
32 ms window. The emulator is started once per measurement (its start-up is timed separately
and not counted). Reported per concurrency (sessions at a time), median of ``--runs``:

* wall seconds for the 12 sessions (goal: ≤ 15 s on this 2-core machine),
* process CPU seconds (all threads) and CPU ÷ wall (> 1 only if work ran in parallel),
* seconds of audio replayed per wall second,
* whether every concurrency gave the same scores (they must: VAD decisions do not depend on
  scheduling).

Two placements of the emulator are compared: on its own thread and event loop (the lab's
default, ``Backend(emulator_thread=True)``) and on the client's loop (``--same-loop`` adds it).

``--store`` also measures the results store (``results=DIR``, :mod:`voicelive_nb.lab.store`):
the same sweep writing every replay to SQLite as it finishes (the overhead of keeping them), and
then again with everything reused (the time a resume takes when nothing is missing), plus the
store's size.
The machine is shared and noisy: compare the rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from voicelive_nb.lab import Backend, Clip, concat, excerpt, speech_clip, sweep_async

GRID: dict[str, list[Any]] = {
    "threshold": [0.3, 0.5, 0.7],
    "silence_duration_ms": [300, 500],
    "prefix_padding_ms": [200, 400],
}
SENTENCES = [
    "Hello, this is the first sentence.",
    "Now comes the second part.",
    "And finally, the third one.",
    "The quick brown fox jumps over the lazy dog.",
]


def make_clip(seconds: float) -> Clip:
    """About ``seconds`` of speech with pauses of 0.4 to 1.2 s, and its truth."""
    block = speech_clip(SENTENCES, [0.6, 1.2, 0.4], lead_s=0.3, tail_s=0.3)
    reps = max(1, math.ceil(seconds / (block.duration_s + 0.5)))
    return excerpt(concat([block] * reps, 0.5), 0.0, seconds, name=f"{seconds:g}s")


async def one_sweep(
    clip: Clip, concurrency: int, thread: bool, results: Path | None = None
) -> tuple[float, float, float, list[Any]]:
    """(wall s, CPU s, emulator start s, scores) of one sweep."""
    t0 = time.perf_counter()
    backend = Backend("emulator", emulator_thread=thread)
    await backend.start()
    start_s = time.perf_counter() - t0
    try:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        result = await sweep_async(
            [clip],
            GRID,
            backend=backend,
            concurrency=concurrency,
            progress=False,
            show_plan=False,
            results=results,
        )
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        await backend.stop()
    assert all(run.complete for run in result.runs), [run.errors for run in result.runs]
    scores = [run.score.summary() if run.score else None for run in result.runs]
    return wall, cpu, start_s, scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--same-loop", action="store_true", help="also measure the emulator on the client's event loop"
    )
    parser.add_argument("--store", action="store_true", help="also measure the results store and a resume")
    args = parser.parse_args()

    clip = make_clip(args.seconds)
    configs = 1
    for values in GRID.values():
        configs *= len(values)
    print(
        f"sweep: {configs} configs over {clip.duration_s:.1f} s of audio ({len(clip.truth or ())} utterances), "
        f"cores: {os.cpu_count()}, runs: {args.runs} (median)"
    )
    asyncio.run(one_sweep(clip, 1, False))  # warm-up: imports, model files in the page cache

    modes = [("own thread", True)] + ([("same loop", False)] if args.same_loop else [])
    rows = []
    reference: list[Any] | None = None
    same = True
    for label, thread in modes:
        for concurrency in args.concurrency:
            walls, cpus, starts = [], [], []
            for _ in range(args.runs):
                wall, cpu, start_s, scores = asyncio.run(one_sweep(clip, concurrency, thread))
                walls.append(wall)
                cpus.append(cpu)
                starts.append(start_s)
                if reference is None:
                    reference = scores
                elif scores != reference:
                    same = False
            rows.append(
                (
                    label,
                    concurrency,
                    statistics.median(walls),
                    statistics.median(cpus),
                    statistics.median(starts),
                )
            )

    audio_s = configs * clip.duration_s
    base_wall = rows[0][2]
    print()
    print(
        f"{'emulator':>10} | {'sessions at a time':>18} | {'wall s':>7} | {'CPU s':>6} | {'CPU/wall':>8} | "
        f"{'audio s / wall s':>16} | {'vs 1 at a time':>14} | {'emulator start ms':>17}"
    )
    for label, concurrency, wall, cpu, start_s in rows:
        print(
            f"{label:>10} | {concurrency:>18} | {wall:>7.2f} | {cpu:>6.2f} | {cpu / wall:>8.2f} | "
            f"{audio_s / wall:>15.0f}x | {base_wall / wall:>13.2f}x | {start_s * 1000:>17.1f}"
        )
    best = min(r[2] for r in rows)
    print()
    print(f"same scores at every concurrency: {'yes' if same else 'NO'}")
    print(f"goal <= 15 s for the 12-config sweep: {'met' if best <= 15 else 'missed'} (best {best:.2f} s)")
    if args.store:
        concurrency = args.concurrency[-1]
        fresh, resumed = [], []
        size = 0
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="bench_store_") as tmp:
                wall, _, _, scores = asyncio.run(one_sweep(clip, concurrency, True, Path(tmp)))
                fresh.append(wall)
                again, _, _, scores_again = asyncio.run(one_sweep(clip, concurrency, True, Path(tmp)))
                resumed.append(again)
                same = same and scores == reference and scores_again == reference
                size = sum(f.stat().st_size for f in Path(tmp).iterdir())
        print()
        print(
            f"results store ({concurrency} at a time): sweep writing the store {statistics.median(fresh):.2f} s "
            f"(vs {next(r[2] for r in rows if r[1] == concurrency):.2f} s without), resumed with all "
            f"{configs} reused {statistics.median(resumed):.3f} s, store {size / 1024:.0f} KiB; "
            f"same scores: {'yes' if same else 'NO'}"
        )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
