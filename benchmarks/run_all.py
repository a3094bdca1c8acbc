"""Run every benchmark in this folder, one after another, and print their numbers.

    python benchmarks/run_all.py            # all
    python benchmarks/run_all.py decode vad # only bench_decode.py and bench_vad.py

Each benchmark measures the things it compares side by side in the same run and prints
medians and ratios; the machine is noisy, so compare ratios rather than absolute numbers.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(s.stem == f"bench_{a}" for a in argv)]
    failed = 0
    for script in scripts:
        print(f"\n=== {script.name}", flush=True)
        t0 = time.monotonic()
        code = subprocess.call([sys.executable, str(script)])
        print(f"--- {script.name}: exit {code}, {time.monotonic() - t0:.1f} s wall", flush=True)
        failed += code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
