"""RSS growth per hour of conversation of a NotebookSession with no speaker: bounds off vs on.

    python benchmarks/bench_long_session.py [--hours 1] [--warmup-s 900]

The conversation is the one of ``tests/reliability/test_long_session.py``: a loopback peer
answers each ``response.create`` with a 20 s assistant turn (200 ms audio deltas with
transcript deltas, the real event order), as fast as the socket takes it. The session has no
speaker, so replies go to the in-memory fallback speaker.

  before   ``speaker_memory_bytes=None``: every reply is kept (the old behaviour; the old code
           kept each byte twice, so it grew about twice as fast as this row)
  after    the default bound, 2,880,000 bytes (the last 60 s at 24 kHz)

Each run is a fresh subprocess (RSS is per process and never shrinks much); the RSS is read
after the warm-up, which fills every bounded buffer, and again after ``--hours`` of audio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys
sys.path.insert(0, {tests!r})
import test_long_session as t
mem = None if {mem!r} == "none" else int({mem!r})
r = t.run_conversation(warmup_s={warmup}, hours={hours}, speaker_memory_bytes=mem)
print(json.dumps({{"mb_per_hour": r.mb_per_hour, "wall_s": r.wall_s, "held_mb": r.held_bytes / 1e6,
                  "measured_min": r.measured_ms / 60000}}))
"""


def run(mem: str, hours: float, warmup: float) -> dict[str, float]:
    code = CHILD.format(tests=str(ROOT / "tests" / "reliability"), mem=mem, warmup=warmup, hours=hours)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--warmup-s", type=float, default=900.0)
    args = parser.parse_args()
    rows = [("before (no bound)", "none"), ("after (60 s bound)", str(60 * 24000 * 2))]
    print(f"{'':20} {'RSS MB/hour':>12} {'held MB':>8} {'audio min':>10} {'wall s':>7}")
    results = {}
    for name, mem in rows:
        r = run(mem, args.hours, args.warmup_s)
        results[name] = r
        print(
            f"{name:20} {r['mb_per_hour']:12.1f} {r['held_mb']:8.1f} {r['measured_min']:10.0f} {r['wall_s']:7.1f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
