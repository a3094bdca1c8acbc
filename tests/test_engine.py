"""The engine thread: runs coroutines for other threads, stops cleanly, never hides errors."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from voicelive_nb.engine import Engine, get_engine, stop_engine
from voicelive_nb.errors import VoiceLiveError, WaitTimeout


def test_run_submit_and_thread_identity() -> None:
    engine = Engine(name="t-engine")
    try:

        async def where() -> str:
            return threading.current_thread().name

        assert engine.run(where()) == "t-engine"
        assert engine.submit(where()).result(5) == "t-engine"
        assert engine.running
    finally:
        engine.stop()
    assert not engine.running
    with pytest.raises(VoiceLiveError, match="stopped"):
        engine.submit(asyncio.sleep(0))


def test_run_times_out_and_cancels() -> None:
    engine = Engine()
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            cancelled.set()

    try:
        with pytest.raises(WaitTimeout, match=r"within 0\.2 s"):
            engine.run(slow(), timeout=0.2)
        assert cancelled.wait(5)
    finally:
        engine.stop()


def test_run_from_engine_thread_is_refused() -> None:
    engine = Engine()
    try:

        async def nested() -> None:
            engine.run(asyncio.sleep(0))

        with pytest.raises(VoiceLiveError, match="from the engine thread"):
            engine.run(nested())
    finally:
        engine.stop()


def test_stop_cancels_running_tasks_and_joins() -> None:
    engine = Engine()
    started, finished = threading.Event(), threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            finished.set()

    engine.submit(forever())
    assert started.wait(5)
    engine.stop()
    assert finished.wait(5)
    assert not engine._thread.is_alive()


def test_unhandled_errors_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine()
    try:

        async def boom() -> None:
            raise RuntimeError("background bug")

        def schedule() -> None:
            engine.loop.create_task(boom())  # nobody awaits it

        with caplog.at_level(logging.ERROR, logger="voicelive_nb.engine"):
            engine.call_soon(schedule)

            async def collect() -> None:
                import gc

                for _ in range(20):
                    gc.collect()
                    await asyncio.sleep(0.01)

            engine.run(collect())
        assert any("background bug" in (r.exc_text or r.getMessage()) or r.exc_info for r in caplog.records)
    finally:
        engine.stop()


def test_shared_engine_restarts_after_stop() -> None:
    first = get_engine()
    assert get_engine() is first
    stop_engine()
    second = get_engine()
    assert second is not first
    assert second.running


# --- the test command's own rule: a missing declared extra fails, it does not skip -------------------


def test_missing_declared_extra_fails_under_require_extras(tmp_path: Path) -> None:
    """Run pytest on a small test file with this suite's conftest, with a declared extra "missing"."""
    tests_dir = Path(__file__).resolve().parent
    shadow = tmp_path / "shadow" / "pocketsphinx"
    shadow.mkdir(parents=True)  # a declared extra that is not there (as after a failed pip install)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'pocketsphinx'\")\n")
    (tmp_path / "test_probe.py").write_text(
        "import pytest\n"
        "def test_needs_extra():\n"
        "    pytest.importorskip('pocketsphinx')\n"
        "def test_needs_undeclared():\n"
        "    pytest.importorskip('no_such_module_anywhere')\n"
    )

    def run(require: str | None) -> str:
        env = {k: v for k, v in os.environ.items() if k != "VOICELIVE_NB_REQUIRE_EXTRAS"}
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "shadow"), str(tests_dir)])
        if require is not None:
            env["VOICELIVE_NB_REQUIRE_EXTRAS"] = require
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "conftest",
                "-rfs",
                "-c",
                os.devnull,
                "--rootdir",
                str(tmp_path),
                str(tmp_path / "test_probe.py"),
            ],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return proc.stdout + proc.stderr

    strict = run("1")
    assert "1 failed, 1 skipped" in strict, strict
    assert "pocketsphinx is a declared dependency" in strict
    relaxed = run(None)
    assert "2 skipped" in relaxed and "failed" not in relaxed, relaxed
