"""Run a child Python that writes files, and kill -9 it mid-write (crash-safety tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_and_kill(tmp_path: Path, script: str, args: list[str], watched: Path, min_bytes: int) -> list[str]:
    """Run ``script`` in a child, SIGKILL it once ``watched`` has grown past ``min_bytes``;
    return the complete lines it printed."""
    out_path, err_path = tmp_path / "child.out", tmp_path / "child.err"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-c", script, *args], stdout=out, stderr=err, env=env)
        try:
            deadline = time.monotonic() + 30
            while not (watched.exists() and watched.stat().st_size > min_bytes):
                assert proc.poll() is None, f"child exited early: {err_path.read_text()}"
                assert time.monotonic() < deadline, f"{watched} did not grow past {min_bytes} bytes"
                time.sleep(0.005)  # polling interval; the condition above is what we wait for
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    text = out_path.read_text()
    return text.split("\n")[:-1]  # the last piece is empty or a torn line
