"""The browser microphone and speaker.

Headless part: messages go through the widgets' real comm entry point (``Widget._handle_msg`` with
a ``custom`` message, exactly what the comm delivers) on this thread, while ``frames()`` runs on the
engine thread, as in a kernel. Browser part (slow): JupyterLab + Debian's Chromium with a fake
microphone playing a synthesized WAV; the emulator answers, the page plays the reply, and a
barge-in from the kernel flushes the page's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from waiting import wait_until

from voicelive_nb.audio.browser import BrowserMicrophone, BrowserSpeaker
from voicelive_nb.engine import get_engine

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

RATE = 24000


def deliver(widget: Any, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
    """Hand ``content`` to ``widget`` the way its comm does for a ``model.send`` from the page."""
    widget._handle_msg(
        {"content": {"data": {"method": "custom", "content": content}}, "buffers": list(buffers or [])}
    )


def tone(freq: float, ms: int, rate: int, amp: float = 0.3) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (np.sin(2 * np.pi * freq * t) * amp * 32767).astype("<i2").tobytes()


class Collector:
    """Iterates ``mic.frames()`` on the engine thread and keeps the frames."""

    def __init__(self, mic: BrowserMicrophone, rate: int = RATE, frame_ms: int = 20) -> None:
        self.frames: list[bytes] = []
        self.mic = mic

        async def run() -> None:
            async for frame in mic.frames(rate, frame_ms):
                self.frames.append(frame)

        self.future = get_engine().submit(run())
        wait_until(lambda: mic._loop is not None)

    def close(self) -> None:
        get_engine().run(self.mic.aclose())
        self.future.result(5)


def pcm_msg(
    seq: int, pcm: bytes, rate: int = RATE, stream: int = 1, t: float | None = None
) -> dict[str, Any]:
    return {
        "type": "pcm",
        "stream": stream,
        "seq": seq,
        "t": time.time() * 1000 if t is None else t,
        "rate": rate,
    }


# ----------------------------------------------------------------------------- headless: microphone


def test_mic_chunks_become_exact_frames_and_gaps_are_filled() -> None:
    mic = BrowserMicrophone(chunk_ms=100)
    chunk = tone(300, 100, RATE)
    deliver(mic, pcm_msg(0, chunk), [chunk])  # nobody listens yet
    assert mic.chunks_dropped == 1 and mic.chunks == 1

    got = Collector(mic)
    for seq in (0, 1, 3, 4):  # seq 2 never arrives
        deliver(mic, pcm_msg(seq, chunk, stream=2), [chunk])
    wait_until(lambda: len(got.frames) == 25)  # 5 chunks of 100 ms (one of them silence) / 20 ms
    assert mic.seq_gaps == 1 and mic.chunks_missing == 1
    assert all(len(f) == RATE * 20 // 1000 * 2 for f in got.frames)
    audio = b"".join(got.frames)
    third = audio[2 * len(chunk) : 3 * len(chunk)]
    assert third == bytes(len(chunk))  # the missing chunk is silence of the same length
    assert audio[: 2 * len(chunk)] == chunk * 2 and audio[3 * len(chunk) :] == chunk * 2
    # a new capture (stream id) restarts the sequence without counting a gap
    deliver(mic, pcm_msg(0, chunk, stream=3), [chunk])
    wait_until(lambda: len(got.frames) == 30)
    assert mic.seq_gaps == 1
    mic.muted = True
    deliver(mic, pcm_msg(1, chunk, stream=3), [chunk])
    wait_until(lambda: len(got.frames) == 35)
    assert set(b"".join(got.frames[30:])) == {0}
    got.close()
    assert mic.closed and mic.frames_yielded == 35
    mic.close()


def test_mic_resamples_a_page_that_captured_at_another_rate() -> None:
    mic = BrowserMicrophone()
    got = Collector(mic)
    chunk = tone(440, 50, 48000)
    for seq in range(40):  # 2 s at 48 kHz, 50 ms chunks
        deliver(mic, pcm_msg(seq, chunk, rate=48000), [chunk])
    wait_until(lambda: len(got.frames) >= 95)
    got.close()
    audio = np.frombuffer(b"".join(got.frames), dtype="<i2").astype(float)
    assert 95 * 480 <= audio.size <= 100 * 480  # 24 kHz now (the filter holds a few ms back)
    spectrum = np.abs(np.fft.rfft(audio[2400:]))
    peak_hz = np.argmax(spectrum) * RATE / (audio.size - 2400)
    assert abs(peak_hz - 440) < 5
    assert mic.seq_gaps == 0 and mic.overruns == 0
    mic.close()


def test_mic_records_page_to_kernel_latency_and_ignores_other_messages() -> None:
    mic = BrowserMicrophone()
    chunk = bytes(4800)
    deliver(mic, pcm_msg(0, chunk, t=time.time() * 1000 - 7), [chunk])
    deliver(mic, {"type": "something else"}, [chunk])
    deliver(mic, pcm_msg(1, chunk), [])  # no buffer: ignored
    stats = mic.latency_stats()
    assert stats["n"] == 1 and 7 <= stats["p50_ms"] < 1000
    assert mic.chunks == 1
    with pytest.raises(Exception, match="chunk_ms"):
        BrowserMicrophone(chunk_ms=10)
    mic.close()


def test_mic_overflow_drops_the_oldest_chunk() -> None:
    mic = BrowserMicrophone(max_queue_s=0.2, chunk_ms=100)  # a queue of 4 chunks

    async def stalled() -> asyncio.Future[bytes]:
        first = asyncio.ensure_future(mic.frames(RATE, 20).__anext__())
        await asyncio.sleep(0)  # the generator now waits on its queue
        return first

    first = get_engine().run(stalled())
    chunk = bytes(4800)

    async def fill() -> None:  # ten chunks arrive before the consumer gets a turn
        for _ in range(10):
            mic._put(chunk, RATE, 0, 0.0)

    get_engine().run(fill())
    assert mic.overruns == 10 - 4

    async def finish() -> None:
        with contextlib.suppress(StopAsyncIteration):
            await first

    get_engine().run(mic.aclose())
    get_engine().run(finish())
    mic.close()


# ----------------------------------------------------------------------------- headless: speaker


def ms_frames(ms: int) -> int:
    return RATE * ms // 1000


def report(speaker: BrowserSpeaker, epoch: int, played_ms: int, queued_ms: int = 0, **extra: Any) -> None:
    content = {
        "type": "played",
        "epoch": epoch,
        "played": ms_frames(played_ms),
        "queued": ms_frames(queued_ms),
    }
    content.update(extra)
    deliver(speaker.widget, content)


def test_speaker_maps_page_reports_to_items_and_flushes_exactly() -> None:
    sp = BrowserSpeaker()
    sp.open(RATE)
    sp.write("a", bytes(ms_frames(100) * 2))
    assert sp.frames_dropped == ms_frames(100) and sp.queued_ms() == 0  # no page playing yet
    sp.widget.state = "running"  # what the page sets once its AudioContext runs
    sp.write("a", bytes(ms_frames(300) * 2))
    sp.write("b", bytes(ms_frames(200) * 2))
    assert sp.chunks_sent == 2 and sp.queued_ms() == 500
    report(sp, 0, 240, 260)
    assert sp.played_ms("a") == 240 and sp.played_ms("b") == 0
    report(sp, 0, 400, 100)
    assert (sp.played_ms("a"), sp.played_ms("b"), sp.queued_ms()) == (300, 100, 100)
    assert sp.current_item == "b"

    sp.clear()  # barge-in: the kernel writes off what is queued at once
    assert sp.queued_ms() == 0 and sp.clears == 1
    report(sp, 0, 430, 70)  # a report the page sent before the flush reached it: ignored
    assert sp.played_ms("b") == 100
    deliver(
        sp.widget,
        {
            "type": "flushed",
            "epoch": 1,
            "prev_epoch": 0,
            "prev_played": ms_frames(430),
            "dropped": ms_frames(70),
            "played": 0,
            "queued": 0,
        },
    )
    assert sp.last_flush == {"epoch": 1, "dropped_ms": 70, "late_ms": 30}
    sp.write("c", bytes(ms_frames(200) * 2))
    report(sp, 1, 50, 150)
    assert sp.played_ms("c") == 50 and sp.played_ms("b") == 100
    report(sp, 1, 900)  # never more than was sent
    assert sp.played_ms("c") == 200 and sp.queued_ms() == 0
    sp.end_of_item("c")
    sp.close()
    assert sp.closed
    sp.open(RATE)  # a new session on the same widget
    assert not sp.closed
    sp.widget.close()


def test_speaker_is_an_audio_sink_and_validates() -> None:
    from voicelive_nb.audio.base import AudioSink, AudioSource

    sp = BrowserSpeaker()
    mic = BrowserMicrophone()
    assert isinstance(sp, AudioSink) and isinstance(mic, AudioSource)
    with pytest.raises(Exception, match="not open"):
        sp.write("a", b"\0\0")
    sp.open(RATE)
    sp.widget.state = "running"
    with pytest.raises(Exception, match="even"):
        sp.write("a", b"\0")
    with pytest.raises(Exception, match="jitter_ms"):
        BrowserSpeaker(jitter_ms=-1)
    assert "data" in sp._repr_mimebundle_() or sp._repr_mimebundle_()
    sp.widget.close()
    mic.close()


def test_panel_picks_the_browser_when_the_kernel_has_no_audio() -> None:
    from voicelive_nb.audio.device import audio_available
    from voicelive_nb.notebook_session import NotebookSession
    from voicelive_nb.widgets.panel import SessionPanel

    available, _ = audio_available()
    session = NotebookSession(dotenv=False, emulator=True)  # mic="auto", speaker="auto"
    panel = SessionPanel(session, show_live=False, show_config=False)
    try:
        assert panel.audio_route.options == ("kernel", "browser")
        if available:
            assert panel.audio_route.value == "kernel"
            panel.audio_route.value = "browser"
        assert panel.audio_route.value == "browser"
        assert isinstance(session.mic_spec, BrowserMicrophone)
        assert isinstance(session.speaker_spec, BrowserSpeaker)
        assert panel.browser_slot.children == (session.mic_spec, session.speaker_spec.widget)
        panel.audio_route.value = "kernel"
        assert (session.mic_spec, session.speaker_spec) == ("auto", "auto")
        assert panel.browser_slot.children == ()
        panel.audio_route.value = "browser"  # the same widgets come back
        assert panel.browser_slot.children[0] is panel.browser_mic
    finally:
        panel.close()
    # an explicit choice is kept
    fixed = NotebookSession(mic=False, speaker=False, dotenv=False, emulator=True)
    panel = SessionPanel(fixed, show_live=False, show_config=False)
    try:
        assert panel.audio_route.value == "kernel" and fixed.mic_spec is False
    finally:
        panel.close()


# ----------------------------------------------------------------------------- real browser (slow)

CHROMIUM = "/usr/bin/chromium"

#: The notebook the browser runs: the browser mic and speaker on the built-in emulator, plus a
#: status label the session listener (engine thread, ≤ 20 Hz) fills with what the kernel sees.
NOTEBOOK_CELLS = [
    """\
import json
import ipywidgets as W
from voicelive_nb.audio.browser import BrowserMicrophone, BrowserSpeaker
from voicelive_nb.notebook_session import NotebookSession

mic = BrowserMicrophone(echo_cancellation=False, noise_suppression=False, auto_gain_control=False)
sp = BrowserSpeaker()
s = NotebookSession(mic=mic, speaker=sp, emulator=True, dotenv=False)
status = W.Label("waiting").add_class("vlnb-test-status")

def show(session):
    items = {t.item_id for t in session.transcript if getattr(t, "role", "") == "assistant"}
    status.value = json.dumps({
        "transcript": [[getattr(t, "role", ""), getattr(t, "text", "")] for t in session.transcript],
        "mic_chunks": mic.chunks, "mic_frames": mic.frames_yielded, "mic_state": mic.state,
        "played_ms": sum(sp.played_ms(i) for i in items), "reports": sp.reports,
        "sent": sp.chunks_sent, "dropped": sp.frames_dropped, "clears": sp.clears,
        "last_flush": sp.last_flush, "latency": mic.latency_stats(),
    })

s.add_listener(show)
display(mic, sp, status)""",
    "s.start()",
]

READY = """(name) => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!w || !w.context || !w.context.path.endsWith(name) || !w.content || !w.content.widgets) return false;
  const s = w.sessionContext && w.sessionContext.session;
  return !!(s && s.kernel && s.kernel.status === 'idle' && w.content.widgets.length > 0);
}"""
RUN_ALL = "() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); return true; }"
EXECUTE = """async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const reply = await kernel.requestExecute({code, silent: false, store_history: false}).done;
  return reply.content.status === 'ok' ? 'ok' : `${reply.content.ename}: ${reply.content.evalue}`;
}"""


def make_fake_mic_wav(path: Path) -> None:
    """A question for the emulator, 48 kHz PCM16 mono (what Chromium's fake capture reads),
    with enough silence after it that the reply plays before the file loops."""
    from voicelive_nb.audio.format import resample
    from voicelive_nb.audio.wav import write_wav
    from voicelive_nb.speech.tts import synthesize

    speech = resample(synthesize("Hello there, what is the weather like today?").pcm16, 24000, 48000)
    write_wav(path, bytes(48000 * 2) + speech + bytes(48000 * 2 * 12), 48000)


def kernel_status(page: Any) -> dict[str, Any]:
    text = page.locator(".vlnb-test-status").inner_text()
    return json.loads(text) if text.startswith("{") else {}


def wait_for_status(
    page: Any, condition: Callable[[dict[str, Any]], Any], what: str, timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = kernel_status(page)
        if status and condition(status):
            return status
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s; kernel says {status}"
        page.wait_for_timeout(50)  # poll interval of a condition with a deadline


@contextlib.contextmanager
def lab_notebook(cells: list[str]) -> Iterator[tuple[Any, str, Path]]:
    import nbformat
    from jupyter_lab import jupyter_lab

    root = Path(tempfile.mkdtemp(prefix="vlnb-browser-audio-"))
    try:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, root / "browser_audio.ipynb")
        make_fake_mic_wav(root / "fake_mic.wav")
        with jupyter_lab(root) as server:
            yield server, "browser_audio.ipynb", root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Debian's chromium at {CHROMIUM}")
def test_browser_mic_reaches_the_emulator_and_the_reply_plays_and_flushes() -> None:
    pytest.importorskip("playwright")
    from jupyter_lab import chromium, console_problems

    with lab_notebook(NOTEBOOK_CELLS) as (server, name, root):
        fake = [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={root / 'fake_mic.wav'}",
        ]
        with chromium(extra_args=fake) as context:
            page = context.new_page()
            problems = console_problems(page)
            page.goto(server.lab_url(name))
            page.wait_for_function(READY, arg=name, timeout=60_000)
            page.evaluate(RUN_ALL)
            wait_for_status(page, lambda s: True, "the notebook ran", 60)
            # (the speaker may already run: headless Chromium lets some pages start audio unasked)

            page.locator(".vlnb-mic-button").click()  # the user gesture
            page.wait_for_selector('.vlnb-mic-status[data-state="capturing"]', timeout=10_000)
            page.wait_for_selector('.vlnb-speaker-status[data-state="running"]', timeout=10_000)

            status = wait_for_status(
                page,
                lambda s: any(role == "assistant" and text for role, text in s["transcript"]),
                "the emulator answered what the fake microphone said",
                40,
            )
            assert status["mic_chunks"] > 10 and status["mic_state"] == "capturing"
            assert any(role == "user" for role, _ in status["transcript"]), status["transcript"]

            # the page plays the reply and reports it: the kernel's played_ms moves
            status = wait_for_status(page, lambda s: s["played_ms"] > 200, "the page played the reply", 20)
            assert status["reports"] > 0 and status["sent"] > 0
            played_in_page = int(page.locator(".vlnb-speaker-status").get_attribute("data-played") or 0)
            assert played_in_page > 0

            # barge-in from the kernel: the page drops its queue at once and reports the flush
            page.wait_for_function(
                "() => Number(document.querySelector('.vlnb-speaker-status').dataset.queued) > 0",
                timeout=10_000,
            )
            flushes = int(page.locator(".vlnb-speaker-status").get_attribute("data-flushes") or 0)
            assert page.evaluate(EXECUTE, "s.engine.call_soon(sp.clear)") == "ok"
            page.wait_for_function(
                "(n) => { const d = document.querySelector('.vlnb-speaker-status').dataset;"
                " return Number(d.flushes) > n && Number(d.queued) === 0; }",
                arg=flushes,
                timeout=5_000,
            )
            status = wait_for_status(
                page, lambda s: s["last_flush"] is not None, "the kernel got the flush", 5
            )
            assert status["clears"] >= 1
            print("kernel status:", json.dumps(status))
            assert page.evaluate(EXECUTE, "s.stop()") == "ok"
            assert not problems.errors, problems.errors


#: The value of a kernel expression (``user_expressions``: no cell, no output), or an
#: ``Error`` when the kernel does not answer within ``ms``: a kernel-side read that cannot hang.
EVAL = """async ([expr, ms]) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const future = kernel.requestExecute({code: '', silent: true, store_history: false, user_expressions: {v: expr}});
  let timer;
  const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no reply in ${ms} ms`)), ms); });
  try {
    const content = (await Promise.race([future.done, late])).content;
    // an 'aborted' reply (the kernel dropped queued requests after a cell failed) has no expressions
    const v = (content.user_expressions || {}).v;
    if (!v) return `no value: the reply was ${content.status}${content.ename ? ` (${content.ename}: ${content.evalue})` : ''}`;
    return v.status === 'ok' ? v.data['text/plain'] : `${v.ename}: ${v.evalue}`;
  } finally { clearTimeout(timer); }
}"""

#: The text of every cell output in the page (for a failure message).
OUTPUTS = "() => [...document.querySelectorAll('.jp-OutputArea-output')].map((o) => o.innerText).join(' | ')"

#: Keeps every stream getUserMedia hands out (the real one), so the test can see its tracks end.
RECORD_STREAMS = """(() => {
  window.__vlnbStreams = [];
  const md = navigator.mediaDevices, real = md.getUserMedia.bind(md);
  md.getUserMedia = async (c) => { const s = await real(c); window.__vlnbStreams.push(s); return s; };
})();"""
LIVE_TRACKS = (
    "() => window.__vlnbStreams.flatMap((s) => s.getTracks()).filter((t) => t.readyState === 'live').length"
)


def kernel_eval(page: Any, expr: str, timeout: float = 10.0) -> str:
    return str(page.evaluate(EVAL, [expr, int(timeout * 1000)]))


def wait_kernel(page: Any, expr: str, expected: str, timeout: float = 10.0) -> None:
    """Poll a kernel expression until its repr is ``expected`` (the page's sync may be in flight)."""
    deadline = time.monotonic() + timeout
    while (value := kernel_eval(page, expr, timeout)) != expected:
        assert time.monotonic() < deadline, f"kernel: {expr} is {value}, not {expected} after {timeout:g} s"
        page.wait_for_timeout(50)  # poll interval of a condition with a deadline


def open_and_run(context: Any, server: Any, name: str) -> tuple[Any, Any]:
    """Open ``name`` in a new page of ``context``, run all cells, wait for the session to run."""
    from jupyter_lab import console_problems

    page = context.new_page()
    problems = console_problems(page)
    page.goto(server.lab_url(name))
    page.wait_for_function(READY, arg=name, timeout=30_000)
    page.evaluate(RUN_ALL)
    # the session runs and its frames() consumer listens to the (not yet started) microphone
    try:
        wait_kernel(page, "(s.running, mic._iterating)", "(True, True)", 30)
    except AssertionError as exc:  # say what the notebook printed: a cell that failed shows here
        shown = page.evaluate(OUTPUTS)
        raise AssertionError(
            f"{exc}; the notebook's outputs: {shown[-2000:]!r}; console: {problems}"
        ) from None
    return page, problems


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Debian's chromium at {CHROMIUM}")
def test_browser_mic_failures_are_shown_and_never_hang() -> None:
    """Permission denied, no microphone, kernel restart: a clear state in the page and the kernel,
    a session that keeps running (its ``frames()`` yields nothing) and stops at once, and a
    restart that releases the microphone and the speaker."""
    pytest.importorskip("playwright")
    from jupyter_lab import chromium

    mic_state = '.vlnb-mic-status[data-state="{}"]'
    with lab_notebook(NOTEBOOK_CELLS) as (server, name, root):
        no_device_name = "no_device.ipynb"
        shutil.copy(root / name, root / no_device_name)

        # (1) permission denied: a fake device exists, but no fake UI and no grant, so the
        # (Playwright-handled) prompt is refused. Then (3): granted, capturing, kernel restart.
        with chromium(extra_args=["--use-fake-device-for-media-stream"]) as context:
            context.add_init_script(RECORD_STREAMS)
            page, problems = open_and_run(context, server, name)
            page.locator(".vlnb-mic-button").click()
            page.wait_for_selector(mic_state.format("denied"), timeout=10_000)
            assert "permission denied" in page.locator(".vlnb-mic-status").inner_text()
            assert page.locator(".vlnb-mic-button").is_enabled()  # the user can try again
            wait_kernel(page, "mic.state", "'denied'")
            assert kernel_eval(page, "mic.error.split(':')[0]") == "'NotAllowedError'"
            # the session's frames() consumer is still listening and has yielded nothing ...
            assert kernel_eval(page, "(mic._iterating, mic.chunks, mic.frames_yielded)") == "(True, 0, 0)"
            # ... and ends at once when the session stops (aclose): nothing waits for the page
            t0 = time.monotonic()
            assert page.evaluate(EXECUTE, "s.stop()") == "ok"
            assert time.monotonic() - t0 < 5
            assert kernel_eval(page, "(mic._iterating, mic.closed)") == "(False, True)"

            # (3) kernel restart while capturing: the page releases the microphone at once
            context.grant_permissions(["microphone"], origin=server.base_url)
            page.locator(".vlnb-mic-button").click()
            page.wait_for_selector(mic_state.format("capturing"), timeout=10_000)
            wait_kernel(page, "mic.state", "'capturing'")
            assert page.evaluate(LIVE_TRACKS) == 1
            page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.restartKernel()")
            page.wait_for_selector(mic_state.format("kernel-gone"), timeout=10_000)
            page.wait_for_function(f"() => ({LIVE_TRACKS})() === 0", timeout=5_000)
            assert page.locator(".vlnb-mic-button").is_disabled()
            assert "microphone released" in page.locator(".vlnb-mic-status").inner_text()
            page.wait_for_selector('.vlnb-speaker-status[data-state="kernel-gone"]', timeout=5_000)
            # the new kernel answers and has no session: nothing from the old one survives
            assert kernel_eval(page, "'s' in globals()", 30) == "False"
            assert not problems.errors, problems.errors

        # (2) no microphone: the prompt is accepted, but headless Chromium has no capture device
        with chromium(extra_args=["--use-fake-ui-for-media-stream"]) as context:
            page, problems = open_and_run(context, server, no_device_name)
            page.locator(".vlnb-mic-button").click()
            page.wait_for_selector(mic_state.format("no-device"), timeout=10_000)
            assert "no microphone found" in page.locator(".vlnb-mic-status").inner_text()
            wait_kernel(page, "mic.state", "'no-device'")
            assert kernel_eval(page, "mic.error.split(':')[0]") == "'NotFoundError'"
            assert kernel_eval(page, "(mic._iterating, mic.chunks, mic.frames_yielded)") == "(True, 0, 0)"
            assert page.evaluate(EXECUTE, "s.stop()") == "ok"
            assert kernel_eval(page, "(mic._iterating, mic.closed)") == "(False, True)"
            assert not problems.errors, problems.errors


PANEL_CELLS = [
    """\
from voicelive_nb.notebook_session import NotebookSession
from voicelive_nb.widgets import panel as make_panel

s = NotebookSession(emulator=True, dotenv=False)  # mic="auto", speaker="auto": no kernel devices
p = make_panel(s, show_config=False)
p"""
]

TEXT_FITS = """(el) => el.scrollWidth <= el.clientWidth + 1"""


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Debian's chromium at {CHROMIUM}")
def test_one_start_opens_the_browser_microphone_and_a_restart_marks_the_panel_stale() -> None:
    pytest.importorskip("playwright")
    from jupyter_lab import chromium, console_problems

    from voicelive_nb.audio.device import audio_available

    if audio_available()[0]:
        pytest.skip("the kernel has audio devices here: the panel does not choose the browser by itself")
    with lab_notebook(PANEL_CELLS) as (server, name, root):
        fake = [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={root / 'fake_mic.wav'}",
        ]
        with chromium(extra_args=fake) as context:
            page = context.new_page()
            problems = console_problems(page)
            page.goto(server.lab_url(name))
            page.wait_for_function(READY, arg=name, timeout=60_000)
            page.evaluate(RUN_ALL)
            panel = page.locator(".vlnb-panel")
            panel.wait_for(timeout=30_000)
            route = panel.locator(".widget-toggle-buttons button", has_text="browser")
            assert "mod-active" in (route.get_attribute("class") or ""), "browser audio was not chosen"
            assert route.evaluate(TEXT_FITS), "the 'browser' button is cut"
            mic_status = panel.locator(".vlnb-mic-status")
            assert mic_status.get_attribute("data-state") == "idle"
            # ONE Start: the session connects and the page opens its microphone (no second click)
            panel.locator("button.widget-button", has_text=re.compile(r"^Start$")).click()
            panel.locator('span[data-phase="connected"]').wait_for(timeout=30_000)
            page.wait_for_selector('.vlnb-mic-status[data-state="capturing"]', timeout=15_000)
            deadline = time.monotonic() + 15
            while page.evaluate(EXECUTE, "assert p.browser_mic.chunks > 0") != "ok":  # the kernel hears it
                assert time.monotonic() < deadline, "no microphone chunk reached the kernel"
                page.wait_for_timeout(100)  # poll interval of a condition with a deadline
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "panel-browser-audio.png"))
            # a kernel restart: the panel says it is stale instead of a green "connected"
            page.evaluate(
                "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()"
            )
            banner = panel.locator(".vlnb-stale-banner")
            banner.wait_for(state="visible", timeout=20_000)
            assert "re-run the cell" in banner.inner_text()
            assert "vlnb-stale" in (panel.get_attribute("class") or "")
            icons = panel.evaluate(
                "(el) => [...el.querySelectorAll('.jupyter-widgets-disconnected')].filter("
                "(w) => getComputedStyle(w, '::before').display !== 'none' && "
                "getComputedStyle(w, '::before').content !== 'none').length"
            )
            assert icons == 0, f"{icons} broken-link icons in a panel that already says it is stale"
            page.screenshot(path=str(ARTIFACTS / "panel-stale-browser.png"))
            errors = [e for e in problems.errors if "restart" not in e.lower()]
            assert not errors, errors
