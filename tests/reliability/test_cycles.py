"""Start/stop cycles of a NotebookSession leave nothing behind.

Against the emulator with no devices: 120 cycles, then threads, file descriptors, asyncio tasks
on the engine and RSS are back to what they were after one warm-up cycle (RSS within a
tolerance: the allocator keeps some pages). Through the PulseAudio virtual microphone and
speaker: a handful of cycles, and every PortAudio stream is closed again (the sound server's
own list of playback and record streams is back to its baseline), as are threads and fds.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from voicelive_nb import SessionConfig
from voicelive_nb.emulator.server import BackgroundEmulator, start_in_thread
from voicelive_nb.notebook_session import NotebookSession

CYCLES = 120


def live_threads() -> int:
    """Threads alive, not counting worker pools (asyncio's default executor, the in-process
    emulator's speech pool): bounded and reused, they grow on demand and are not leaks."""
    pools = ("asyncio_", "voicelive-emulator_")
    return sum(1 for t in threading.enumerate() if not t.name.startswith(pools))


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def engine_tasks(s: NotebookSession) -> int:
    async def count() -> int:
        return len([t for t in asyncio.all_tasks() if not t.done()]) - 1  # minus this one

    return s.engine.run(count(), timeout=5)


def settle(condition: object, timeout: float = 5.0) -> None:
    """Wait (bounded) for a cheap condition; returns as soon as it holds, or at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


@pytest.fixture(scope="module")
def emulator() -> Iterator[BackgroundEmulator]:
    emu = start_in_thread(pace="fast")
    yield emu
    emu.stop()


def test_many_cycles_without_devices_return_to_baseline(emulator: BackgroundEmulator) -> None:
    s = NotebookSession(
        SessionConfig.server_vad(), endpoint=emulator.url, api_key="k", mic=False, speaker=False, dotenv=False
    )
    s.start(wait=True)  # warm-up: the engine thread, the emulator's first connection, imports
    assert s.stop() == "stopped"
    gc.collect()
    threads, files, tasks, rss = live_threads(), fds(), engine_tasks(s), rss_bytes()
    for i in range(CYCLES):
        s.start(wait=True, timeout=15)
        assert s.status == "connected", f"cycle {i}: {s.status}"
        status = s.stop(timeout=5)
        assert status == "stopped", f"cycle {i}: {status}"
        assert s.left_running == []
    gc.collect()
    settle(lambda: emulator.server.connections == 0)
    assert emulator.server.connections == 0  # every connection closed on the server side too
    assert live_threads() == threads
    assert fds() <= files + 2
    assert engine_tasks(s) <= tasks
    grew = rss_bytes() - rss
    assert grew < 20e6, f"RSS grew {grew / 1e6:.1f} MB over {CYCLES} start/stop cycles"


def pulse_streams(va: object) -> dict[str, int]:
    """Playback and record streams the sound server has open right now, and its clients."""
    env = va._tool_env()  # type: ignore[attr-defined]
    out = {}
    for kind in ("sink-inputs", "source-outputs", "clients"):
        proc = subprocess.run(
            ["pactl", "list", "short", kind], env=env, capture_output=True, text=True, timeout=10, check=True
        )
        out[kind] = len([line for line in proc.stdout.splitlines() if line.strip()])
    return out


def test_cycles_with_the_virtual_devices_close_every_stream(virtual_audio: object) -> None:
    emu = start_in_thread(pace="fast")
    try:
        s = NotebookSession(SessionConfig.server_vad(), endpoint=emu.url, api_key="k", dotenv=False)
        s.start(wait=True)
        assert type(s.mic).__name__ == "MicrophoneSource"
        assert type(s.speaker).__name__ == "SpeakerSink"
        assert s.stop() == "stopped"
        baseline = pulse_streams(virtual_audio)
        threads, files = live_threads(), fds()
        for i in range(5):
            s.start(wait=True, timeout=15)
            opened = pulse_streams(virtual_audio)
            assert opened["source-outputs"] > baseline["source-outputs"], f"cycle {i}: the mic did not open"
            assert s.stop() == "stopped", f"cycle {i}"
        settle(lambda: pulse_streams(virtual_audio) == baseline)
        assert pulse_streams(virtual_audio) == baseline  # every PortAudio stream was closed
        settle(lambda: live_threads() == threads)
        assert live_threads() == threads, [t.name for t in threading.enumerate()]
        assert fds() <= files + 2
    finally:
        emu.stop()
