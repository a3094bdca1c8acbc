"""NotebookSession: the sync facade cells use, running on the engine thread against a real emulator."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from voicelive_nb import SessionConfig
from voicelive_nb.emulator.server import BackgroundEmulator, Faults, start_in_thread
from voicelive_nb.errors import ConfigError, VoiceLiveError
from voicelive_nb.notebook_session import NotebookSession


def wait_until(condition: object, timeout: float = 10.0) -> None:
    """Poll a cheap condition (not a sleep as synchronisation: it returns as soon as it holds)."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)


def make(emulator: BackgroundEmulator, **kw: object) -> NotebookSession:
    return NotebookSession(
        kw.pop("config", SessionConfig.server_vad()),  # type: ignore[arg-type]
        endpoint=emulator.url,
        api_key="k",
        mic=False,
        speaker=False,
        dotenv=False,
        **kw,  # type: ignore[arg-type]
    )


def test_start_returns_at_once_and_a_turn_completes(emulator: BackgroundEmulator, question_wav: Path) -> None:
    s = make(emulator)
    t0 = time.monotonic()
    s.start()
    assert time.monotonic() - t0 < 0.5  # non-blocking
    assert s.status in ("connecting", "connected")
    try:
        wait_until(lambda: s.status == "connected")
        s.speak(question_wav, pace="fast")
        done = s.wait_for("response.done", timeout=30)
        assert done.response["status"] == "completed"
        assert any(t.role == "assistant" and t.text for t in s.transcript)
        assert s.events[0].type == "session.created"
    finally:
        s.stop()
    assert s.status == "stopped"


def test_session_keeps_running_while_the_main_thread_blocks(
    emulator: BackgroundEmulator, question_wav: Path
) -> None:
    s = make(emulator)
    s.start(wait=True)
    sent_at: list[float] = []
    try:
        assert s.session is not None
        s.session.input_taps.append(lambda pcm: sent_at.append(time.monotonic()))  # runs on the engine thread
        s.speak(question_wav, pace="realtime", tail_silence_ms=2500)  # ~1.2 s of speech + 2.5 s of silence
        t0 = time.monotonic()
        time.sleep(2.0)  # a cell doing blocking work: the engine thread must not care
        t1 = time.monotonic()
        received = [t for t, _ in s.session.timed_events() if t0 <= t <= t1]
        assert received, "no event arrived while the main thread was blocked"
        # 20 ms frames kept going out at real-time pace: everything due by t1 was sent (the
        # emulator shares this process, so a burst of its reply may delay a few frames by a
        # fraction of a second; the paced source catches up, it does not drop)
        due = (t1 - sent_at[0]) / 0.020
        wait_until(lambda: len([t for t in sent_at if t <= t1 + 0.5]) >= due - 1, timeout=3)
        assert len([t for t in sent_at if t0 <= t <= t1]) >= 0.5 * 2.0 / 0.020
    finally:
        s.stop()


def test_update_validates_here_and_applies_live(emulator: BackgroundEmulator) -> None:
    s = make(emulator)
    with pytest.raises(ConfigError, match=r"temperature"):
        s.update(temperature=9.0)  # not running: still validated at once
    s.start(wait=True)
    try:
        updated = s.update(instructions="Answer briefly.")
        assert updated.session["instructions"] == "Answer briefly."
        with pytest.raises(ConfigError, match=r"turn_detection\.threshold"):
            s.update(turn_detection={"type": "server_vad", "threshold": -1})
        assert s.config.instructions == "Answer briefly."
    finally:
        s.stop()


def test_stop_is_idempotent_and_calls_need_a_running_session(emulator: BackgroundEmulator) -> None:
    s = make(emulator)
    s.stop()  # before start: fine
    with pytest.raises(VoiceLiveError, match="not running"):
        s.wait_for("response.done", timeout=1)
    s.start(wait=True)
    s.stop()
    s.stop()
    assert s.status == "stopped"
    assert not s.running


def test_connection_loss_shows_reason_quickly() -> None:
    emu = start_in_thread(
        pace="fast", faults=Faults(close_after_s=0.5, close_code=1011, close_reason="maintenance")
    )
    try:
        s = NotebookSession(endpoint=emu.url, api_key="k", mic=False, speaker=False, dotenv=False)
        s.start(wait=True)
        t_closed = time.monotonic()
        wait_until(lambda: s.status.startswith("failed"), timeout=5)
        assert time.monotonic() - t_closed < 0.5 + 1.0
        assert s.status == "failed: connection lost: 1011 server error: maintenance"
        s.stop()
    finally:
        emu.stop()


def test_auto_reconnect_replays_the_configuration() -> None:
    emu = start_in_thread(
        pace="fast", faults=Faults(close_after_s=0.4, close_code=1001, close_reason="going away")
    )
    try:
        s = NotebookSession(
            SessionConfig.server_vad(instructions="Remember me."),
            endpoint=emu.url,
            api_key="k",
            mic=False,
            speaker=False,
            dotenv=False,
            auto_reconnect=True,
            max_reconnects=2,
        )
        s.start(wait=True)
        wait_until(lambda: s.reconnects >= 1, timeout=10)
        wait_until(lambda: s.status == "connected" or s.status.startswith("failed"), timeout=10)
        session = s.session
        assert session is not None
        assert session.effective_session().get("instructions") == "Remember me."
        wait_until(lambda: s.reconnects == 2 and not s.running, timeout=15)
        assert s.status.startswith("failed: connection lost: 1001")
        s.stop()
    finally:
        emu.stop()


def test_start_stop_cycles_leave_threads_and_fds_at_baseline(emulator: BackgroundEmulator) -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    s = make(emulator)
    s.start(wait=True)  # warm up: the engine thread and the emulator's first connection exist
    s.stop()
    threads, files = threading.active_count(), fds()
    for _ in range(200):
        s.start(wait=True)
        s.stop()
    assert threading.active_count() == threads
    assert fds() <= files + 2
