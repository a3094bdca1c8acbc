"""Both notebooks in a real browser: JupyterLab + Debian's Chromium through Playwright.

Runs every cell of ``notebooks/01_quickstart.ipynb`` as a user would (Run All), then drives the
rendered control panel: Start, a spoken turn, the transcript and the live canvas filling in, an
out-of-range value typed into the Configuration tab (refused at the field, no ``session.update``
sent), Stop. Then Run All of ``notebooks/02_vad_lab.ipynb`` with no error output. Fails on any
browser console error or uncaught page error except the ones listed in :data:`BENIGN_CONSOLE`.
Leaves screenshots in ``artifacts/`` (``quickstart-browser.png``, ``config-refused-browser.png``,
``vad-lab-browser.png``).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from jupyter_lab import CHROMIUM, chromium, console_problems, jupyter_lab
from playwright.sync_api import expect

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
NOTEBOOK = "01_quickstart.ipynb"
SCREENSHOT = REPO / "artifacts" / "quickstart-browser.png"
CONFIG_SCREENSHOT = REPO / "artifacts" / "config-refused-browser.png"
LAB_NOTEBOOK = "02_vad_lab.ipynb"
LAB_SCREENSHOT = REPO / "artifacts" / "vad-lab-browser.png"

#: Console messages that are not failures, each with the reason. Matched as substrings.
BENIGN_CONSOLE: tuple[str, ...] = ()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Debian's chromium at {CHROMIUM}"),
    pytest.mark.timeout(420),
]

# ----------------------------------------------------------------------------- page-side helpers
# `window.jupyterapp` exists because the server runs with --LabApp.expose_app_in_browser.

NOTEBOOK_READY = """(name) => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!w || !w.context || !w.context.path.endsWith(name) || !w.content || !w.content.widgets) return false;
  const s = w.sessionContext && w.sessionContext.session;
  return !!(s && s.kernel && s.kernel.status === 'idle' && w.content.widgets.length > 0);
}"""

RUN_ALL = """() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); return true; }"""

# Done when every code cell has an execution count (the notebook is stored with most cells unrun,
# and Run All clears the others as it queues them) and the kernel is idle, or as soon as any output
# is an error (Run All stops there: say which cell and why).
RUN_STATE = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const cells = w.content.widgets.filter((c) => c.model.type === 'code');
  for (const [i, c] of cells.entries()) {
    for (const o of c.model.outputs.toJSON()) {
      if (o.output_type === 'error') return {error: `code cell ${i}: ${o.ename}: ${o.evalue}`};
    }
  }
  const pending = cells.filter((c) => c.model.executionCount === null).length;
  const idle = w.sessionContext.session.kernel.status === 'idle';
  return pending === 0 && idle ? {done: cells.length} : false;
}"""

EXECUTE = """async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const reply = await kernel.requestExecute({code, silent: false, store_history: false}).done;
  return reply.content.status === 'ok' ? 'ok' : `${reply.content.ename}: ${reply.content.evalue}`;
}"""


def run_in_kernel(page: Any, code: str) -> None:
    """Execute ``code`` in the notebook's kernel (as an extra, unrecorded execution)."""
    status = page.evaluate(EXECUTE, code)
    assert status == "ok", f"{code!r} failed in the kernel: {status}"


# The LiveView draws on a <canvas> inside `.vlnb-live` and counts its draws in `data-draws`.
# Its lanes scroll right to left (audio from before a restart scrolls on); the test sets a 10 s
# window with the panel's picker, then counts the pixels of one lane colour (solid fills: mic
# #1f77b4, assistant #ff7f0e) in the newest part of the canvas only: the rightmost
# RECENT_FRACTION of its width.
COLOR_PIXELS = """([el, rgb, fromFraction]) => {
  const canvas = el.querySelector('canvas');
  if (!canvas || !canvas.width || !canvas.height) return 0;
  const x0 = Math.floor(canvas.width * fromFraction), w = canvas.width - x0;
  const data = canvas.getContext('2d').getImageData(x0, 0, w, canvas.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 200 && Math.abs(data[i] - rgb[0]) < 8 && Math.abs(data[i + 1] - rgb[1]) < 8
        && Math.abs(data[i + 2] - rgb[2]) < 8) n++;
  }
  return n;
}"""
MIC_RGB = (0x1F, 0x77, 0xB4)
ASSISTANT_RGB = (0xFF, 0x7F, 0x0E)
RECENT_FRACTION = 0.5  # the last 5 s of the 10 s window
MIN_LANE_PIXELS = 200
# True while no lane colour reaches MIN_LANE_PIXELS in the recent part of the canvas.
QUIET = f"""([el, colours, fromFraction]) => Math.max(
  ...colours.map((rgb) => ({COLOR_PIXELS})([el, rgb, fromFraction]))) < {MIN_LANE_PIXELS}"""


def lane_pixels(page: Any, live: Any, rgb: tuple[int, int, int]) -> int:
    count: int = page.evaluate(COLOR_PIXELS, [live.element_handle(), list(rgb), 1 - RECENT_FRACTION])
    return count


def wait_for_pixels(page: Any, live: Any, rgb: tuple[int, int, int], what: str) -> int:
    """Wait until the newest part of the live canvas shows a waveform of colour ``rgb``."""
    page.wait_for_function(
        f"(args) => ({COLOR_PIXELS})(args) >= {MIN_LANE_PIXELS}",
        arg=[live.element_handle(), list(rgb), 1 - RECENT_FRACTION],
        timeout=20_000,
        polling=100,
    )
    count = lane_pixels(page, live, rgb)
    assert count >= MIN_LANE_PIXELS, f"the live view drew no recent {what} waveform"
    return count


def test_quickstart_in_jupyterlab() -> None:
    before = (NOTEBOOKS / NOTEBOOK).read_bytes()
    t0 = time.monotonic()
    with jupyter_lab(NOTEBOOKS) as lab, chromium() as context:
        page = context.pages[0] if context.pages else context.new_page()
        problems = console_problems(page, BENIGN_CONSOLE)

        # Open the notebook in a fresh workspace, wait for its kernel, Run All.
        page.goto(lab.lab_url(NOTEBOOK))
        page.wait_for_function(NOTEBOOK_READY, arg=NOTEBOOK, timeout=60_000)
        t_open = time.monotonic()
        page.evaluate(RUN_ALL)
        state = page.wait_for_function(RUN_STATE, timeout=90_000, polling=250).json_value()
        assert "error" not in state, f"the notebook failed in JupyterLab: {state['error']}"
        t_run = time.monotonic() - t_open

        # The panel is the output that has the state light; the notebook ended with stop().
        panel = page.locator(".jp-OutputArea-output").filter(has=page.locator("span[data-phase]"))
        expect_one(panel, "the session panel")
        panel.scroll_into_view_if_needed()
        light = panel.locator("span[data-phase]")
        # By text, not role: the Font Awesome icon's glyph is part of the accessible name.
        start = panel.locator("button.widget-button", has_text=re.compile(r"^Start$"))
        stop = panel.locator("button.widget-button", has_text=re.compile(r"^Stop$"))
        live = panel.locator(".vlnb-live")
        status = panel.locator(
            "code", has_text=re.compile(r"^(idle|connecting|connected|stopped|stopping…)$")
        )
        expect(live).to_have_count(1)
        assert int(live.get_attribute("data-draws") or 0) > 0, "the live view never drew"

        def expect_stopped() -> None:
            wait_attr(light, "data-phase", "idle", timeout=20_000)
            expect(status).to_have_text("stopped")
            expect(start).to_be_enabled()
            expect(stop).to_be_disabled()

        def start_and_expect_connected() -> None:
            start.click()
            wait_attr(light, "data-phase", "connected", timeout=30_000)
            expect(status).to_have_text("connected")
            expect(stop).to_be_enabled()
            expect(start).to_be_disabled()

        # The notebook ended with session.stop(): the panel shows it. Then Start, Stop, Start.
        expect_stopped()
        # A shorter live window (the picker under the panel) so that old audio scrolls out fast.
        panel.locator(".widget-dropdown", has_text="window").locator("select").select_option(label="10 s")
        start_and_expect_connected()
        stop.click()
        expect_stopped()
        start_and_expect_connected()

        # A new connection starts with an empty transcript; play the question as the user.
        expect(panel.locator(".vl-assistant")).to_have_count(0, timeout=10_000)
        # Nothing was said since Start: the newest part of both lanes goes silent (the canvas
        # scrolls on, and audio from the notebook's own turns moves out of it).
        page.wait_for_function(
            QUIET,
            arg=[live.element_handle(), [list(MIC_RGB), list(ASSISTANT_RGB)], 1 - RECENT_FRACTION],
            timeout=15_000,
            polling=100,
        )
        draws_before = int(live.get_attribute("data-draws") or 0)
        run_in_kernel(page, "session.speak(QUESTION_WAV)")
        mic_pixels = wait_for_pixels(page, live, MIC_RGB, "microphone")
        panel.locator(".vl-assistant").wait_for(timeout=45_000)  # the answer has started
        assistant_pixels = wait_for_pixels(page, live, ASSISTANT_RGB, "assistant")
        assert int(live.get_attribute("data-draws") or 0) > draws_before
        # Screenshot while both lanes show audio (the window is 10 s wide and scrolls).
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        panel.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOT))
        # The emulator answers by quoting what it heard; streaming text is in <i> until final.
        answer = panel.locator(".vl-assistant:not(:has(i))", has_text='You said: "')
        answer.wait_for(timeout=45_000)
        expect(panel.locator(".vl-user")).to_have_count(1)

        # Configuration: an out-of-range threshold is refused at the field and nothing is sent.
        run_in_kernel(
            page,
            "_updates = lambda: [w['type'] for _t, w in session.session.sent_events()].count('session.update')\n"
            "_before = _updates()",
        )
        panel.locator(".lm-TabBar-tab", has_text="Configuration").first.click()
        form_tab = panel.locator(".lm-TabBar-tab", has_text="Turn detection")
        form_tab.first.wait_for(timeout=20_000)
        form_tab.first.click()
        threshold = (
            panel.locator(
                ".widget-text:visible", has=page.locator("label", has_text=re.compile(r"^threshold$"))
            )
            .locator("input")
            .first
        )
        threshold.fill("5")
        threshold.press("Enter")
        refusal = panel.locator("span", has_text="turn_detection.threshold 5 is out of range")
        refusal.first.wait_for(timeout=10_000)
        expect(refusal.first).to_contain_text("0.0 to 1.0")
        assert threshold.input_value() == "5", "the field clamped what was typed"
        run_in_kernel(page, "assert session.config.value_at('turn_detection.threshold') != 5")
        run_in_kernel(page, "assert _updates() == _before, f'session.update sent: {_updates()} vs {_before}'")
        refusal.first.scroll_into_view_if_needed()
        page.screenshot(path=str(CONFIG_SCREENSHOT))

        # Stop: the light goes grey and the status reads 'stopped'.
        stop.click()
        expect_stopped()
        expect(answer).to_have_count(1)  # the transcript stays after Stop

        # The VAD lab notebook: Run All, no error output.
        t_lab0 = time.monotonic()
        page.goto(lab.lab_url(LAB_NOTEBOOK))
        page.wait_for_function(NOTEBOOK_READY, arg=LAB_NOTEBOOK, timeout=60_000)
        page.evaluate(RUN_ALL)
        lab_state = page.wait_for_function(RUN_STATE, timeout=180_000, polling=250).json_value()
        page.screenshot(path=str(LAB_SCREENSHOT))
        assert "error" not in lab_state, f"{LAB_NOTEBOOK} failed in JupyterLab: {lab_state['error']}"
        t_vad_lab = time.monotonic() - t_lab0

        errors = list(problems.errors)
        t_lab = lab.started_s
    assert not errors, "browser console errors:\n" + "\n".join(errors)
    assert (NOTEBOOKS / NOTEBOOK).read_bytes() == before, "the test must not modify the notebook"
    print(
        f"lab start {t_lab:.1f} s, open+run all {t_run:.1f} s, VAD lab {t_vad_lab:.1f} s, "
        f"whole test {time.monotonic() - t0:.1f} s; "
        f"live view: {mic_pixels} mic / {assistant_pixels} assistant pixels; ignored: {problems.ignored}"
    )


def expect_one(locator: Any, what: str) -> None:
    locator.first.wait_for(timeout=20_000)
    assert locator.count() == 1, f"expected one {what}, found {locator.count()}"


def wait_attr(locator: Any, name: str, value: str, timeout: float = 15_000) -> None:
    """Wait until the element's attribute ``name`` equals ``value`` (re-queried: widgets re-render)."""
    expect(locator).to_have_attribute(name, value, timeout=timeout)
