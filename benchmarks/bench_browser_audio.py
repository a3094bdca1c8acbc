"""Browser microphone vs the sounddevice microphone: delivery latency and kernel CPU.

Run: ``python benchmarks/bench_browser_audio.py [--seconds 10] [--chunks 100 20] [--no-sounddevice]``

* Browser path, per chunk size: a private JupyterLab + Debian's Chromium (Playwright) with a fake
  microphone (a synthesized WAV, 48 kHz), a notebook whose kernel iterates
  ``BrowserMicrophone.frames(24000, 20)`` on the engine thread. Latency is the page's wall clock
  at ``model.send`` to the kernel's at the comm handler (one machine: one clock); the first second
  of streaming is left out (start-up). Kernel CPU is ``time.process_time()`` of the kernel
  process (all threads) over the streaming window, next to the same kernel idle for as long.
* sounddevice path (needs pulseaudio: a private virtual mic, as in ``bench_audio.py``):
  ``MicrophoneSource(block_ms=...)``, latency from the PortAudio callback to ``frames()`` yielding
  the frame (a different hop: there is no network in it), CPU of this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

RATE = 24000

KERNEL_SETUP = """\
import json, time, asyncio
import ipywidgets as W
from voicelive_nb.audio.browser import BrowserMicrophone
from voicelive_nb.engine import get_engine
mic = BrowserMicrophone(chunk_ms={chunk_ms}, echo_cancellation=False, noise_suppression=False, auto_gain_control=False)
out = W.Label("").add_class("vlnb-bench")
async def consume():
    async for _f in mic.frames(24000, 20):
        pass
task = get_engine().submit(consume())
display(mic, out)
"""

MEASURE = """\
c0, w0 = time.process_time(), time.monotonic()
def _done(lat_from=len(mic.latencies_ms), chunks0=mic.chunks):
    import threading
    def run():
        time.sleep({seconds})  # the measuring window itself (not synchronisation)
        lat = list(mic.latencies_ms)[lat_from:]
        cpu = 100 * (time.process_time() - c0) / (time.monotonic() - w0)
        out.value = json.dumps({{"kind": "{kind}", "cpu": cpu, "lat": lat, "chunks": mic.chunks - chunks0,
            "gaps": mic.seq_gaps, "dropped": mic.chunks_dropped, "overruns": mic.overruns}})
    threading.Thread(target=run, daemon=True).start()
_done()
"""

EXECUTE = """async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const reply = await kernel.requestExecute({code, silent: false, store_history: false}).done;
  return reply.content.status === 'ok' ? 'ok' : `${reply.content.ename}: ${reply.content.evalue}`;
}"""
READY = """(name) => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!w || !w.context || !w.context.path.endsWith(name) || !w.content || !w.content.widgets) return false;
  const s = w.sessionContext && w.sessionContext.session;
  return !!(s && s.kernel && s.kernel.status === 'idle');
}"""


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def wait_json(page: Any, kind: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = page.locator(".vlnb-bench").inner_text()
        if text.startswith("{"):
            data: dict[str, Any] = json.loads(text)
            if data["kind"] == kind:
                return data
        page.wait_for_timeout(100)
    raise TimeoutError(f"no {kind} measurement within {timeout:g} s")


def bench_browser(chunk_ms: int, seconds: float) -> dict[str, Any]:
    import nbformat
    from jupyter_lab import chromium, jupyter_lab

    from voicelive_nb.audio.format import resample
    from voicelive_nb.audio.wav import write_wav
    from voicelive_nb.speech.tts import synthesize

    root = Path(tempfile.mkdtemp(prefix="vlnb-bench-browser-"))
    try:
        speech = resample(synthesize("Testing the browser microphone, one two three.").pcm16, 24000, 48000)
        write_wav(root / "mic.wav", speech + bytes(48000), 48000)
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(KERNEL_SETUP.format(chunk_ms=chunk_ms))]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, root / "bench.ipynb")
        fake = [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={root / 'mic.wav'}",
        ]
        with jupyter_lab(root) as server, chromium(extra_args=fake) as context:
            page = context.new_page()
            page.goto(server.lab_url("bench.ipynb"))
            page.wait_for_function(READY, arg="bench.ipynb", timeout=60_000)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_selector(".vlnb-mic-button", timeout=30_000)
            page.wait_for_function(READY, arg="bench.ipynb", timeout=30_000)
            assert page.evaluate(EXECUTE, MEASURE.format(seconds=seconds, kind="idle")) == "ok"
            idle = wait_json(page, "idle", seconds + 20)
            page.locator(".vlnb-mic-button").click()
            page.wait_for_selector('.vlnb-mic-status[data-state="capturing"]', timeout=10_000)
            page.wait_for_timeout(1000)  # leave the start-up second out of the measurement
            assert page.evaluate(EXECUTE, MEASURE.format(seconds=seconds, kind="stream")) == "ok"
            stream = wait_json(page, "stream", seconds + 20)
        lat = stream["lat"]
        return {
            "path": f"browser {chunk_ms} ms chunks",
            "p50_ms": pct(lat, 50),
            "p99_ms": pct(lat, 99),
            "max_ms": max(lat) if lat else float("nan"),
            "msgs_per_s": stream["chunks"] / seconds,
            "kernel_cpu": stream["cpu"],
            "idle_cpu": idle["cpu"],
            "gaps": stream["gaps"],
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_sounddevice(block_ms: int, seconds: float) -> dict[str, Any] | str:
    if shutil.which("pulseaudio") is None:
        return "pulseaudio not installed: no virtual microphone"
    from virtual_audio import VirtualAudio

    va = VirtualAudio(Path(tempfile.mkdtemp(prefix="vlnb-bench-va-")))
    va.start()
    try:
        from voicelive_nb.audio import device

        device.rescan()
        latencies: list[float] = []
        mic = device.MicrophoneSource(block_ms=block_ms)

        async def main() -> None:
            deadline = time.monotonic() + seconds
            try:
                async for _frame in mic.frames(RATE, 20):
                    latencies.append(1000 * (time.monotonic() - mic.block_time))
                    if time.monotonic() >= deadline:
                        break
            finally:
                await mic.aclose()

        w0, c0 = time.monotonic(), time.process_time()
        asyncio.run(main())
        cpu = 100 * (time.process_time() - c0) / (time.monotonic() - w0)
        return {
            "path": f"sounddevice {block_ms} ms blocks",
            "p50_ms": pct(latencies, 50),
            "p99_ms": pct(latencies, 99),
            "max_ms": max(latencies) if latencies else float("nan"),
            "msgs_per_s": mic.blocks / seconds,
            "kernel_cpu": cpu,
            "idle_cpu": float("nan"),
            "gaps": mic.overruns,
        }
    finally:
        va.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--chunks", type=int, nargs="+", default=[100, 20])
    ap.add_argument("--no-sounddevice", action="store_true")
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for chunk in args.chunks:
        rows.append(bench_browser(chunk, args.seconds))
    if not args.no_sounddevice:
        for block in args.chunks:
            result = bench_sounddevice(block, args.seconds)
            if isinstance(result, str):
                notes.append(result)
                break
            rows.append(result)
    print(
        f"{'path':28} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'msg/s':>6} {'CPU %':>6} {'idle %':>6} gaps"
    )
    for r in rows:
        print(
            f"{r['path']:28} {r['p50_ms']:7.2f} {r['p99_ms']:7.2f} {r['max_ms']:7.2f} {r['msgs_per_s']:6.1f} "
            f"{r['kernel_cpu']:6.2f} {r['idle_cpu']:6.2f} {r['gaps']}"
        )
    for note in notes:
        print("note:", note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
