"""Unpaced throughput of the emulator's server VAD: SpeechProbability (soxr + Silero) + VadSegmenter.

Run: ``python benchmarks/bench_vad.py [--seconds 60] [--runs 5] [--frame-ms 20]``

The input is 60 s of 24 kHz eSpeak speech with pauses, fed in 20 ms frames the way the
emulator receives ``input_audio_buffer.append``. Model loading is timed separately and not
counted. Reported:

* one session: seconds of audio per CPU second (``time.process_time``), median of the runs;
* 1, 2 and 4 sessions in parallel threads, each with its own model: total audio seconds per
  wall second, per CPU second (process-wide CPU time, all threads), and per session
  per wall second. The native model call releases the GIL, so threads use several cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

from voicelive_nb.audio.format import chunk
from voicelive_nb.speech.segmenter import VadSegmenter, VadSettings
from voicelive_nb.speech.tts import speech_with_pauses
from voicelive_nb.speech.vad import SpeechProbability

RATE = 24000
SENTENCES = [
    "Hello, this is the first sentence.",
    "Now comes the second part.",
    "And finally, the third one.",
    "The quick brown fox jumps over the lazy dog.",
]


def make_audio(seconds: float) -> bytes:
    """About ``seconds`` of speech and pauses (the pattern repeated, then cut)."""
    block, _ = speech_with_pauses(SENTENCES, [0.6, 1.2, 0.4], RATE, lead_s=0.3, tail_s=0.8)
    need = int(seconds * RATE) * 2
    reps = need // len(block) + 1
    return (block * reps)[:need]


def run_session(frames: list[bytes], vad: SpeechProbability) -> int:
    """Feed every frame through the model and the segmenter; return the number of events."""
    vad.reset()
    segmenter = VadSegmenter(VadSettings())
    events = 0
    for frame in frames:
        for p in vad.feed(frame):
            events += len(segmenter.push(p))
    return events


def single(frames: list[bytes], audio_s: float, runs: int) -> tuple[float, list[float], int]:
    vad = SpeechProbability(RATE)
    run_session(frames, vad)  # warm-up
    speeds = []
    events = 0
    for _ in range(runs):
        t0 = time.process_time()
        events = run_session(frames, vad)
        speeds.append(audio_s / (time.process_time() - t0))
    return statistics.median(speeds), speeds, events


def _work(barrier: threading.Barrier, frames: list[bytes], vad: SpeechProbability) -> None:
    barrier.wait()
    run_session(frames, vad)


def parallel(frames: list[bytes], audio_s: float, sessions: int, runs: int) -> tuple[float, float, float]:
    vads = [SpeechProbability(RATE) for _ in range(sessions)]
    for v in vads:
        run_session(frames[:50], v)
    walls, cpus = [], []
    for _ in range(runs):
        barrier = threading.Barrier(sessions + 1)

        threads = [threading.Thread(target=_work, args=(barrier, frames, v)) for v in vads]
        for t in threads:
            t.start()
        c0 = time.process_time()
        w0 = time.perf_counter()
        barrier.wait()
        for t in threads:
            t.join()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    wall = statistics.median(walls)
    cpu = statistics.median(cpus)
    total = sessions * audio_s
    return total / wall, total / cpu, audio_s / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--frame-ms", type=int, default=20)
    args = parser.parse_args()

    audio = make_audio(args.seconds)
    frames = chunk(audio, RATE, args.frame_ms)
    audio_s = len(audio) / 2 / RATE

    t0 = time.perf_counter()
    SpeechProbability(RATE)
    load_ms = (time.perf_counter() - t0) * 1000

    print(
        f"audio: {audio_s:.1f} s of 24 kHz speech in {len(frames)} frames of {args.frame_ms} ms; "
        f"cores: {os.cpu_count()}; model load: {load_ms:.0f} ms (not counted)"
    )
    median, speeds, events = single(frames, audio_s, args.runs)
    runs = ", ".join(f"{s:.0f}" for s in speeds)
    print(
        f"one session: {median:.0f}x real time per CPU second (median of {args.runs}: {runs}); "
        f"{events} VAD events per pass"
    )
    print()
    print(
        f"{'sessions':>8} | {'total audio s / wall s':>22} | {'total audio s / CPU s':>21} | {'per session / wall s':>20}"
    )
    for n in (1, 2, 4):
        total_wall, total_cpu, per_session = parallel(frames, audio_s, n, args.runs)
        print(f"{n:>8} | {total_wall:>21.0f}x | {total_cpu:>20.0f}x | {per_session:>19.0f}x")
    goal = "met" if median >= 100 else "NOT met"
    print(f"\ngoal >= 100x real time per session: {goal}")


if __name__ == "__main__":
    main()
