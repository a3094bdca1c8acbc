"""Live waveform updates, side by side: the LiveView canvas widget vs a matplotlib PNG live plot.

Run: ``python benchmarks/bench_live_view.py [--updates 100] [--window-s 2.0] [--rate-hz 20]``

Workload (as in reference/jupyter-in-practice.md §3): a ``window_s`` window of 24 kHz audio,
1,200 new samples per update, at ``rate_hz`` (paced in real time, like the engine's pump),
reduced to an 800-bucket min/max envelope (1,600 values), drawn 800×250 px.

* **LiveView**: the production path — the session's input tap (``SessionMonitor.on_input``:
  envelope push + timeline), ``SessionMonitor.tick`` (frame), ``LiveView._apply`` (diff, trait
  assignment in one ``hold_sync``), and the comm message serialised the way ipykernel does it
  (``jupyter_client.session.Session.serialize``: JSON + HMAC; only the ZMQ send is left out).
* **matplotlib → Image**: the same envelope, ``line.set_ydata`` + ``canvas.draw()`` + PNG
  encode of the drawn buffer (Pillow, default compression) + ``ipywidgets.Image.value = png``,
  serialised the same way — what an Image widget would send.

Reported per update that sent a message (the view skips a tick that comes < 45 ms after the
previous one, or whose data did not change): median (and p90) kernel CPU (``time.process_time``, all threads) and
median bytes on the wire (message frames + binary buffers), and the ratios. No frontend is
needed: the comm is a real ``comm.base_comm.BaseComm`` whose "socket" is the serialiser.
Also: µs per ``EnvelopeBuffer.push`` of one 20 ms block, and per full input tap.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from typing import Any

import comm
import numpy as np
from comm.base_comm import BaseComm
from jupyter_client.session import Session as WireSession

RATE = 24000
NEW_SAMPLES = 1200
POINTS = 800


class WireComm(BaseComm):
    """A comm that serialises every message like ipykernel's and counts the bytes."""

    wire = WireSession(key=b"benchmark-key", username="bench")
    sizes: list[int] = []  # one shared tally for the run

    def publish_msg(
        self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any
    ) -> None:
        content = {"data": data or {}, "comm_id": self.comm_id, **keys}
        msg = self.wire.msg(msg_type, content=content, metadata=metadata or {})
        frames = self.wire.serialize(msg)
        WireComm.sizes.append(sum(len(f) for f in frames) + sum(memoryview(b).nbytes for b in buffers or []))


def make_audio(seconds: float) -> np.ndarray[Any, np.dtype[np.int16]]:
    """Speech-like test audio: noise bursts with a 4 Hz syllable envelope and pauses (deterministic)."""
    rng = np.random.default_rng(1234)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    syllables = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    phrases = (np.sin(2 * np.pi * 0.3 * t) > -0.3).astype(np.float64)
    voice = np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 360 * t) + 0.3 * rng.standard_normal(n)
    return (0.4 * syllables * phrases * voice * 32767 / 1.8).astype(np.int16)


def paced(updates: int, rate_hz: float, step: Callable[[int], None]) -> list[float]:
    """Run ``step(k)`` ``updates`` times at ``rate_hz``; CPU seconds of each step."""
    cpu: list[float] = []
    start = time.monotonic()
    for k in range(updates):
        c0 = time.process_time()
        step(k)
        cpu.append(time.process_time() - c0)
        delay = start + (k + 1) / rate_hz - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return cpu


def bench_liveview(
    audio: np.ndarray[Any, Any], updates: int, rate_hz: float, window_s: float
) -> tuple[list[float], list[int]]:
    from voicelive_nb import SessionConfig
    from voicelive_nb.session import Session
    from voicelive_nb.widgets.live import LiveView, SessionMonitor

    view = LiveView(window_s=window_s, points=POINTS)
    session = Session(SessionConfig.server_vad(), endpoint="ws://127.0.0.1:9", api_key="k", dotenv=False)
    monitor = SessionMonitor(window_s=window_s, points=POINTS, history_s=None, on_frame=view._apply)
    monitor.bind(session)
    view.window_s = monitor.mic.window_s
    sizes: list[int] = []

    def step(k: int) -> None:
        before = len(WireComm.sizes)
        block = audio[k * NEW_SAMPLES : (k + 1) * NEW_SAMPLES].tobytes()
        for tap in session.input_taps:  # what Session.append_audio does
            tap(block)
        monitor.tick()
        sizes.append(sum(WireComm.sizes[before:]))

    cpu = paced(updates, rate_hz, step)
    monitor.detach()
    view.close()
    return cpu, sizes


def bench_matplotlib(
    audio: np.ndarray[Any, Any], updates: int, rate_hz: float, window_s: float
) -> tuple[list[float], list[int]]:
    import ipywidgets
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    from voicelive_nb.analysis.meters import EnvelopeBuffer

    env = EnvelopeBuffer(RATE, window_s, POINTS)
    fig = Figure(figsize=(8, 2.5), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = np.repeat(np.linspace(-env.window_s, 0, POINTS), 2)
    (line,) = ax.plot(x, np.zeros(2 * POINTS, np.float32), linewidth=0.6)
    ax.set_ylim(-1, 1)
    ax.set_xlim(-env.window_s, 0)
    image = ipywidgets.Image(format="png")
    y = np.empty(2 * POINTS, np.float32)
    sizes: list[int] = []

    def step(k: int) -> None:
        before = len(WireComm.sizes)
        env.push(audio[k * NEW_SAMPLES : (k + 1) * NEW_SAMPLES])
        snap = env.snapshot()
        y[0::2], y[1::2] = snap[0], snap[1]
        line.set_ydata(y)
        canvas.draw()
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(canvas.buffer_rgba())).save(buffer, format="png")
        image.value = buffer.getvalue()
        sizes.append(sum(WireComm.sizes[before:]))

    cpu = paced(updates, rate_hz, step)
    image.close()
    return cpu, sizes


def micro(audio: np.ndarray[Any, Any]) -> tuple[float, float]:
    """µs per EnvelopeBuffer.push of a 20 ms block, and per full SessionMonitor input tap."""
    from voicelive_nb.analysis.meters import EnvelopeBuffer
    from voicelive_nb.widgets.live import SessionMonitor

    block = audio[:480].tobytes()
    env = EnvelopeBuffer(RATE, 4.0, POINTS)
    monitor = SessionMonitor(history_s=600.0)
    monitor._active = True  # taps without a session: what they cost on the engine thread
    monitor.history = None
    results = []
    for fn in (env.push, monitor.on_input):
        best = float("inf")
        for _ in range(5):
            n = 5000
            t0 = time.perf_counter()
            for _ in range(n):
                fn(block)
            best = min(best, (time.perf_counter() - t0) / n * 1e6)
        results.append(best)
    return results[0], results[1]


def summarise(name: str, cpu: list[float], sizes: list[int]) -> tuple[float, float]:
    """Median/p90 CPU and median bytes over the updates that sent something."""
    ms = sorted(c * 1000 for c, size in zip(cpu, sizes, strict=True) if size) or [0.0]
    p90 = ms[int(0.9 * (len(ms) - 1))]
    sent = [s for s in sizes if s]
    med_bytes = statistics.median(sent) if sent else 0.0
    med = statistics.median(ms)
    print(
        f"{name:<24} {med:8.2f} ms {p90:8.2f} ms {med_bytes / 1024:9.1f} KB {len(sent):>4}/{len(sizes)} sent"
    )
    return med, med_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--rate-hz", type=float, default=20.0)
    parser.add_argument("--window-s", type=float, default=2.0)
    args = parser.parse_args()
    comm.create_comm = lambda **kw: WireComm(**kw)  # the hook ipykernel uses for its own comm
    audio = make_audio(args.updates * NEW_SAMPLES / RATE + 1.0)
    push_us, tap_us = micro(audio)
    print(
        f"{args.updates} updates at {args.rate_hz:g} Hz, {args.window_s:g} s window at {RATE} Hz, "
        f"{NEW_SAMPLES} new samples per update, {POINTS}-bucket min/max envelope ({2 * POINTS} values)"
    )
    print(
        f"EnvelopeBuffer.push, one 20 ms block: {push_us:.1f} µs; full input tap (envelope + timeline): {tap_us:.1f} µs"
    )
    print(f"{'renderer':<24} {'CPU med':>11} {'CPU p90':>11} {'bytes med':>12}")
    lv = summarise("LiveView (canvas)", *bench_liveview(audio, args.updates, args.rate_hz, args.window_s))
    mpl = summarise(
        "matplotlib -> PNG Image", *bench_matplotlib(audio, args.updates, args.rate_hz, args.window_s)
    )
    print(
        f"ratio matplotlib / LiveView: CPU {mpl[0] / lv[0]:.1f}x, bytes {mpl[1] / max(lv[1], 1):.1f}x; "
        f"LiveView at {args.rate_hz:g} Hz: {lv[0] * args.rate_hz / 10:.1f}% of one core"
    )


if __name__ == "__main__":
    main()
