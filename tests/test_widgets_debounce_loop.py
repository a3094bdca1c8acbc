"""The form's debounce inside a running asyncio loop (how a Jupyter kernel runs widget callbacks)
and without one; and the panel's parts that scrub what they show.

Inside a loop the delivery is ``loop.call_later`` on that loop: it runs on the loop's thread and no
thread is started. Without a loop a ``threading.Timer`` waits. Ordering, not sleeping: a loop runs
``call_later`` handles in deadline order, so a handle due after the debounce's deadline shows
whether the debounce delivered (or, cancelled, did not).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from voicelive_nb.notebook import NotebookSession
from voicelive_nb.protocol.config import SessionConfig
from voicelive_nb.widgets.debounce import THREAD_NAME
from voicelive_nb.widgets.forms import ConfigForm
from voicelive_nb.widgets.panel import SessionPanel

SECRET = "sk-SECRET-0123456789abcdef0123456789"
DEBOUNCE_S = 0.05
THRESHOLD = "turn_detection.threshold"


class Delivered:
    """on_change recorder: the configurations and the thread each arrived on."""

    def __init__(self) -> None:
        self.configs: list[SessionConfig] = []
        self.threads: list[threading.Thread] = []
        self.event = threading.Event()

    def __call__(self, config: SessionConfig) -> None:
        self.configs.append(config)
        self.threads.append(threading.current_thread())
        self.event.set()


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads started while the test runs."""
    names: list[str] = []
    real_start = threading.Thread.start

    def observed(thread: threading.Thread) -> None:
        names.append(thread.name)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", observed)
    return names


@pytest.fixture
def delivered() -> Iterator[tuple[ConfigForm, Delivered]]:
    calls = Delivered()
    form = ConfigForm(SessionConfig.server_vad(), on_change=calls, debounce_s=DEBOUNCE_S)
    yield form, calls
    form.close()


async def _past_the_deadline() -> None:
    """Return once the loop has run every handle due within a few debounce intervals."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_later(3 * DEBOUNCE_S, done.set_result, None)
    await asyncio.wait_for(done, timeout=10)


def test_in_a_running_loop_a_burst_is_delivered_once_on_the_loop_thread_without_a_thread(
    delivered: tuple[ConfigForm, Delivered], started: list[str]
) -> None:
    form, calls = delivered

    async def main() -> threading.Thread:
        for value in (0.6, 0.65, 0.7):  # one burst
            form.widget(THRESHOLD).value = value
        assert form.pending and not calls.configs
        await _past_the_deadline()
        return threading.current_thread()

    loop_thread = asyncio.run(main())
    assert [c.value_at(THRESHOLD) for c in calls.configs] == [0.7]
    assert calls.threads == [loop_thread] == [threading.current_thread()]
    assert not form.pending
    assert THREAD_NAME not in started and started == []  # no timer, no thread at all


def test_in_a_running_loop_set_config_drops_the_waiting_change(
    delivered: tuple[ConfigForm, Delivered],
) -> None:
    form, calls = delivered

    async def main() -> None:
        form.widget(THRESHOLD).value = 0.7
        assert form.pending
        form.set_config(SessionConfig.server_vad())  # e.g. session.updated arrived
        await _past_the_deadline()

    asyncio.run(main())
    assert calls.configs == [] and not form.pending


def test_a_change_waiting_on_the_loop_is_dropped_from_another_thread(
    delivered: tuple[ConfigForm, Delivered],
) -> None:
    """The panel's listener calls ``set_config`` on the engine thread while the kernel's loop
    holds the waiting change: it is cancelled on its own loop, and nothing is delivered."""
    form, calls = delivered

    async def main() -> None:
        form.widget(THRESHOLD).value = 0.7
        engine = threading.Thread(target=form.set_config, args=(SessionConfig.server_vad(),))
        engine.start()
        await asyncio.get_running_loop().run_in_executor(None, engine.join, 10)
        assert not engine.is_alive()
        await _past_the_deadline()

    asyncio.run(main())
    assert calls.configs == [] and not form.pending


def test_in_a_running_loop_flush_delivers_at_once(delivered: tuple[ConfigForm, Delivered]) -> None:
    form, calls = delivered

    async def main() -> None:
        form.widget(THRESHOLD).value = 0.7
        assert form.flush() is True
        assert len(calls.configs) == 1  # at once, on this thread
        await _past_the_deadline()

    asyncio.run(main())
    assert [c.value_at(THRESHOLD) for c in calls.configs] == [0.7]  # the cancelled wait added nothing


def test_without_a_loop_a_timer_thread_delivers(delivered: tuple[ConfigForm, Delivered]) -> None:
    form, calls = delivered
    form.widget(THRESHOLD).value = 0.7
    assert any(t.name == THREAD_NAME for t in threading.enumerate())
    assert calls.event.wait(10)
    assert [t.name for t in calls.threads] == [THREAD_NAME]
    assert calls.threads[0] is not threading.current_thread()
    assert calls.configs[0].value_at(THRESHOLD) == 0.7


def test_the_panel_scrubs_the_key_from_what_it_shows() -> None:
    session = NotebookSession(
        endpoint="wss://voicelive.invalid", api_key=SECRET, mic=False, speaker=False, dotenv=False
    )
    panel = SessionPanel(session, show_live=False, show_config=False)
    try:
        panel.show_error(f"the service said: bad key {SECRET}")
        shown: Any = panel.errors[-1]
        assert SECRET not in shown and SECRET not in panel.error_area.value
        assert "bad key" in shown
        assert SECRET not in panel.connection.value
    finally:
        panel.close()
