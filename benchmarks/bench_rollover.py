"""Benchmark: what a rollover costs — mic audio lost, and the gap in the assistant's availability.

Run: ``python benchmarks/bench_rollover.py [--seconds 8] [--expires 2.5] [--turns 20]``

An emulator (``pace="fast"``) ends every connection ``--expires`` seconds after it opened; a
``NotebookSession(auto_reconnect=True)`` rolls over before each deadline while a 24 kHz noise
"microphone" streams in real time and typed turns build up a conversation to carry over.

* **audio lost per rollover**: the recording's ``mic.wav`` (what was sent, across every
  connection) compared sample by sample with the source — ms missing or sent twice (goal 0).
* **availability gap**: the last mic frame the old connection took → the first frame the
  new one took (ms). The mic buffers meanwhile, so this is latency, not loss (goal ≤ 300 ms).
* **prepare**: opening, configuring and re-seeding the next connection, done while the old one
  still serves (not part of the gap).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from voicelive_nb import NotebookSession, SessionConfig
from voicelive_nb.audio.memory import ArraySource
from voicelive_nb.emulator.server import BackgroundEmulator, Faults
from voicelive_nb.recording import Recording


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the mic stream")
    parser.add_argument("--expires", type=float, default=2.5, help="connection lifetime (s)")
    parser.add_argument("--turns", type=int, default=20, help="typed turns during the stream")
    args = parser.parse_args()

    pcm = (np.random.default_rng(16).standard_normal(int(24000 * args.seconds)) * 2000).astype(np.int16)
    emu = BackgroundEmulator(pace="fast", api_key="k", faults=Faults(session_expires_s=args.expires)).start()
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "rec"
        ns = NotebookSession(
            SessionConfig.manual(),
            endpoint=emu.url,
            api_key="k",
            emulator=False,
            mic=ArraySource(pcm, 24000, pace="realtime"),
            speaker=False,
            dotenv=False,
            auto_reconnect=True,
            rollover_margin_s=args.expires / 2,
            record=record,
        )
        ns.start(wait=True, timeout=10)
        pause = args.seconds / max(args.turns, 1)
        for i in range(args.turns):
            ns.send(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": f"turn {i}"}],
                    },
                }
            )
            ns.create_response()
            ns.wait_for("response.done", timeout=15)
            time.sleep(pause / 2)
        deadline = time.monotonic() + args.seconds + 10
        while (
            not (ns.session is not None and ns.session.source_done.is_set()) and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        ns.stop()
        mic = np.frombuffer(Recording.load(record).mic, dtype=np.int16)
    emu.stop()
    gaps = [h["gap_ms"] for h in ns.handovers if "gap_ms" in h]
    prepare = [h["prepare_ms"] for h in ns.handovers if "prepare_ms" in h]
    lost_ms = (len(pcm) - len(mic)) / 24 if len(mic) <= len(pcm) else -(len(mic) - len(pcm)) / 24
    identical = len(mic) == len(pcm) and bool(np.array_equal(mic, pcm))
    result = {
        "rollovers": ns.rollovers,
        "forced": sum(bool(h.get("forced")) for h in ns.handovers),
        "audio_identical": identical,
        "audio_ms_lost_total": lost_ms,
        "gap_ms": {"median": statistics.median(gaps), "max": max(gaps), "all": gaps} if gaps else None,
        "prepare_ms": {"median": statistics.median(prepare), "max": max(prepare)} if prepare else None,
        "transcript_lines": len(ns.transcript),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
