"""The emulator across processes (``workers=N``): real worker processes behind one address on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from voicelive_nb import Session, SessionConfig
from voicelive_nb.audio.wav import WavSource, write_wav
from voicelive_nb.emulator.server import run_emulator, start_in_thread
from voicelive_nb.emulator.workers import WORKER_HEADER, WorkerPool
from voicelive_nb.errors import ConfigError
from voicelive_nb.speech.tts import synthesize

KEY = "test-key-0123456789abcdef"
QUERY = "/voice-live/realtime?api-version=2025-10-01&model=gpt-realtime"


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("workers")
    paths = []
    for name, text in (("weather", "What is the weather like today?"), ("time", "What time is it?")):
        path = folder / f"{name}.wav"
        write_wav(path, synthesize(text, sample_rate=24000).pcm16, 24000)
        paths.append(path)
    return paths


async def one_turn(url: str, wav: Path) -> tuple[str, str]:
    """A server-VAD voice turn from a WAV; (what the user was heard saying, the assistant's answer)."""
    async with Session(SessionConfig.server_vad(), endpoint=url, api_key=KEY, dotenv=False) as s:
        s.stream(WavSource(wav, pace="fast", tail_silence_ms=1200))
        done = await s.wait_for("response.done", timeout=60)
        await s.wait_for("conversation.item.input_audio_transcription.completed", timeout=30)
        assert done.response["status"] == "completed"
        heard = " ".join(t.text for t in s.transcript if t.role == "user" and t.text)
        said = " ".join(t.text for t in s.transcript if t.role == "assistant" and t.text)
        return heard, said


async def test_two_workers_serve_two_concurrent_sessions_each_on_its_own_process(wavs: list[Path]) -> None:
    async with run_emulator(workers=2, api_key=KEY, pace="fast") as pool:
        assert isinstance(pool, WorkerPool)
        pids = pool.pids
        assert len(set(pids)) == 2 and os.getpid() not in pids
        answers = await asyncio.gather(one_turn(pool.url, wavs[0]), one_turn(pool.url, wavs[1]))
        await pool.wait_until(lambda: pool.connections == 0)
        stats = pool.worker_stats()
    # each session got the answer to its own question (the emulator answers with what it heard)
    (heard_a, said_a), (heard_b, said_b) = answers
    assert heard_a and heard_b and heard_a != heard_b, answers
    assert said_a == f'You said: "{heard_a}".' and said_b == f'You said: "{heard_b}".', answers
    # one connection on each worker process, as counted by the worker itself
    assert [(s["pid"], s["total"]) for s in stats] == [(pids[0], 1), (pids[1], 1)]
    # stopping the pool leaves no process behind
    assert all(gone(pid) for pid in pids)


async def test_a_dead_worker_is_reported_and_the_others_keep_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="voicelive_nb.emulator.workers")
    async with run_emulator(workers=2, pace="fast") as pool:
        victim, survivor = pool.pids
        os.kill(victim, signal.SIGKILL)
        await pool.wait_until(lambda: bool(pool.failures))
        assert pool.failures == [{"index": 0, "pid": victim, "exitcode": -signal.SIGKILL, "open": 0}]
        assert any(f"pid {victim}" in r.getMessage() and "died" in r.getMessage() for r in caplog.records)
        for _ in range(2):  # new connections all go to the worker still alive
            async with connect(pool.url + QUERY) as ws:
                assert json.loads(await ws.recv())["type"] == "session.created"
                assert ws.response is not None
                assert ws.response.headers[WORKER_HEADER] == str(survivor)
        await pool.wait_until(lambda: pool.connections == 0)
        alive = [s for s in pool.worker_stats() if s["alive"]]
        assert [(s["pid"], s["total"]) for s in alive] == [(survivor, 2)]
    assert gone(victim) and gone(survivor)


async def test_past_max_sessions_new_connections_get_503_before_the_upgrade() -> None:
    async with run_emulator(workers=1, pace="fast", max_sessions=1) as pool:
        async with connect(pool.url + QUERY) as first:
            assert json.loads(await first.recv())["type"] == "session.created"
            with pytest.raises(InvalidStatus) as refused:
                await connect(pool.url + QUERY, open_timeout=10)
            response = refused.value.response
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "1"
            assert b"capacity of 1 sessions" in response.body
        await pool.wait_until(lambda: pool.connections == 0)
        async with connect(pool.url + QUERY) as again:  # room again once the first one closed
            assert json.loads(await again.recv())["type"] == "session.created"
        assert pool.refused == 1


async def test_the_connection_rate_is_enforced_once_for_all_workers() -> None:
    async with run_emulator(workers=2, pace="fast", max_connections_per_minute=2) as pool:
        for _ in range(2):
            async with connect(pool.url + QUERY) as ws:
                await ws.recv()
        with pytest.raises(InvalidStatus) as refused:
            await connect(pool.url + QUERY, open_timeout=10)
        assert refused.value.response.status_code == 429
        assert int(refused.value.response.headers["Retry-After"]) >= 1


def test_options_that_cannot_reach_a_worker_are_refused_naming_them() -> None:
    with pytest.raises(ConfigError, match="invalid replies: a function cannot be sent") as err:
        run_emulator(workers=2, replies=lambda heard: "hi")
    assert err.value.field == "replies"
    with pytest.raises(ConfigError, match="workers"):
        run_emulator(workers=0)
    with pytest.raises(ValueError, match="pace"):  # the server's own checks run before any process starts
        run_emulator(workers=2, pace="slow")  # type: ignore[arg-type]


def test_start_in_thread_with_workers_and_stop_leaves_no_process() -> None:
    emu = start_in_thread(workers=2, pace="fast", api_key=KEY)
    try:
        pids = emu.server.pids
        assert len(pids) == 2 and not any(gone(pid) for pid in pids)

        async def hello() -> str:
            async with connect(emu.url + QUERY, additional_headers={"api-key": KEY}) as ws:
                return str(json.loads(await ws.recv())["type"])

        assert asyncio.run(hello()) == "session.created"
    finally:
        emu.stop()
    assert all(gone(pid) for pid in pids)


def children_of(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc to list child processes")
def test_cli_workers_serves_and_sigterm_stops_every_worker() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "voicelive_nb.emulator", "--port", "0", "--workers", "2", "--pace", "fast"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()  # printed only once every worker is listening
        assert url.startswith("ws://127.0.0.1:")
        workers = children_of(proc.pid)
        assert len(workers) == 2

        async def two() -> list[str]:
            async with connect(url + QUERY) as a, connect(url + QUERY) as b:
                return [json.loads(await a.recv())["type"], json.loads(await b.recv())["type"]]

        assert asyncio.run(two()) == ["session.created", "session.created"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert all(gone(pid) for pid in workers)


@pytest.mark.skipif(
    not hasattr(os, "pidfd_open"), reason="needs os.pidfd_open (Linux) to wait for a grandchild"
)
def test_workers_exit_when_the_parent_is_killed() -> None:
    import select

    proc = subprocess.Popen(
        [sys.executable, "-m", "voicelive_nb.emulator", "--port", "0", "--workers", "2", "--pace", "fast"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("ws://")
        workers = children_of(proc.pid)
        fds = [os.pidfd_open(pid) for pid in workers]
        proc.kill()  # no chance to stop its workers: they see their pipe close and exit by themselves
        proc.wait(timeout=10)
        try:
            pending = list(fds)
            while pending:
                ready, _, _ = select.select(pending, [], [], 30)
                assert ready, f"workers {workers} still running 30 s after their parent was killed"
                pending = [fd for fd in pending if fd not in ready]
        finally:
            for fd in fds:
                os.close(fd)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


async def test_a_lab_sweep_on_two_workers_scores_as_in_process() -> None:
    from voicelive_nb.lab import Backend, speech_clip, sweep_async

    clip = speech_clip(["Hello there.", "The quick brown fox."], [0.8], lead_s=0.3, tail_s=0.3)
    grid = {"silence_duration_ms": [300, 500]}

    async def scores(options: dict[str, object]) -> list[object]:
        async with Backend("emulator", emulator_options=options) as backend:
            result = await sweep_async(
                [clip], grid, backend=backend, concurrency=2, progress=False, show_plan=False
            )
            server = backend._server.server
            assert isinstance(server, WorkerPool) == ("workers" in options)
            handed = [s["handed"] for s in server.worker_stats()] if "workers" in options else [1, 1]
        assert all(run.complete for run in result.runs), [run.errors for run in result.runs]
        assert handed == [1, 1]  # one configuration's session on each worker
        return [run.score.summary() if run.score else None for run in result.runs]

    assert await scores({"workers": 2}) == await scores({})
