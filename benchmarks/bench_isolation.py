"""Isolation: a 21st client's turn latency while 20 other clients stream real-time audio (issue #13).

Run: ``python benchmarks/bench_isolation.py [--clients 20] [--turns 5] [--workers 2] [--json]``
(``--quick``: 4 background clients, 3 probe turns, for a smoke run; ``--help`` for the rest).

Rows, measured side by side in one run, each on a fresh emulator started as
``python -m voicelive_nb.emulator --port 0 --pace fast --max-connections-per-minute 0 ...``:

1. idle, one process (the default): the probe client alone;
2. one process, ``--clients`` background clients streaming, then the probe;
3. ``--workers W``, the same load;
4. ``--workers W --max-sessions C`` (C = ``--capacity``, default ``--clients``, so below the
   probe's 21st connection): the probe is refused with the service's error (reported, with
   how long the refusal took) or admitted (its latency reported like the other rows).

The probe is a real :class:`~voicelive_nb.session.Session` (``SessionConfig.server_vad()``: the
documented server VAD, azure-speech transcription, so recognition is on the path of every
reply) streaming a ~3 s question with :class:`~voicelive_nb.audio.memory.ArraySource`
``pace="realtime"`` in 20 ms frames, as a microphone does. Its turn latency is
``input_audio_buffer.speech_stopped`` → the reply's first ``response.audio.delta``, taken on
receipt; one warm-up turn (models loading) is not counted, then ``--turns`` turns give p50/p90
and the ratio to the idle row (goal: within 2x with the load on ``--workers``).

The background clients run in a child process of this script (so their client-side work does
not share the probe's event loop or GIL): each a Session looping speech with ``--pause-s`` of
silence after it (so they take turns too), real-time paced, started at staggered offsets.
Before the probe connects, the load must be warm: at least one background turn per client
answered (or ``--warm-timeout-s`` passed, which the row then says). The background clients'
own turn latencies while the probe ran are reported too (the admitted clients' latency, which
is what row 4 is about); a background turn whose next utterance began before any reply audio
counts as *superseded*, not as a latency.

Noise: the machine is shared. Each row reports ``os.getloadavg()`` before and after, and the
machine's CPU busy share during the row (``/proc/stat``); compare rows of one run, not runs.
Every child (emulator, its workers, the load process) is stopped in ``finally`` on any exit,
Ctrl-C included, and gets SIGTERM from the kernel if this process dies (Linux
``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KEY = "bench-isolation-key-0123456789"
RATE = 24000
#: The probe's question (~3 s in the emulator's eSpeak voice; the 3 s text of bench_turn_latency).
QUESTION = "what is the weather like in seattle today and tomorrow"
#: What the background clients say, one phrase per client in turn (different audio, same kind of load).
PHRASES = (
    "could you tell me a short story about a cat",
    "i would like to book a table for two tonight",
    "how long does it take to drive to portland",
    "please remind me to call my sister at six",
)
HERE = Path(__file__).resolve()


# --- small helpers ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (linear interpolation between closest ranks); None without values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of the whole machine from ``/proc/stat``; None where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_percent(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[1] <= before[1]:
        return None
    return 100.0 * (after[0] - before[0]) / (after[1] - before[1])


def tree_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants (Linux ``/proc``)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent pid, cpu s)
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return None
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        stats[int(entry)] = (int(rest[1]), (int(rest[11]) + int(rest[12])) / tick)
    if pid not in stats:
        return None
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats[current][1]
        todo.extend(p for p, (parent, _cpu) in stats.items() if parent == current)
    return total


def loadavg() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def die_with_parent() -> None:
    """Ask the kernel to SIGTERM this process when its parent dies (Linux only; else a no-op)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


def speech(text: str) -> bytes:
    from voicelive_nb.speech.tts import synthesize

    return bytes(synthesize(text, RATE).pcm16)


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


# --- child processes ---------------------------------------------------------------------------------


class Child:
    """A child process whose stdout lines are read on a thread (so waits can time out)."""

    def __init__(self, argv: list[str], name: str, stdin: bool = False) -> None:
        self.name = name
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Ctrl-C reaches only us; we stop the children in order
        )
        self._thread = threading.Thread(target=self._read, name=f"{name} stdout", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.on_line(line.rstrip("\n"))
        self.on_line(None)

    def on_line(self, line: str | None) -> None:
        self.lines.put(line)

    def readline(self, timeout: float) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{self.name} printed nothing within {timeout:g} s") from None
        if line is None:
            raise RuntimeError(f"{self.name} exited (code {self.proc.wait()}) before printing its line")
        return line

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM (the emulator stops its workers on it), then SIGKILL after ``grace_s``."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def start_emulator(extra: Sequence[str], pace: str, timeout_s: float) -> tuple[Child, str]:
    """The emulator CLI on a free port, as a user starts it; returns the child and its URL."""
    argv = ["-m", "voicelive_nb.emulator", "--port", "0", "--pace", pace, "--max-connections-per-minute", "0"]
    # a tiny wrapper sets PR_SET_PDEATHSIG (kept across exec) so the emulator cannot outlive us
    boot = (
        "import ctypes, os, signal, sys\n"
        "if sys.platform.startswith('linux'):\n"
        "    ctypes.CDLL(None).prctl(1, signal.SIGTERM)\n"
        "os.execv(sys.executable, [sys.executable] + sys.argv[1:])\n"
    )
    child = Child([sys.executable, "-c", boot, *argv, *extra], "the emulator")
    try:
        url = child.readline(timeout_s).strip()
        if not url.startswith("ws://"):
            raise RuntimeError(f"the emulator did not start (printed {url!r})")
    except BaseException:
        child.stop()
        raise
    return child, url


class Load(Child):
    """The background clients: ``bench_isolation.py --load-child URL`` (see :func:`load_main`)."""

    def __init__(self, url: str, clients: int, pause_s: float) -> None:
        self.turns: list[tuple[float, float]] = []  # (monotonic time of the reply's audio, latency s)
        self.superseded: list[float] = []
        self.errors: list[str] = []
        self.failed: list[tuple[float, str]] = []  # (monotonic time, status) of sessions that failed
        self.status: dict[str, Any] = {}
        self._cond = threading.Condition()
        argv = [sys.executable, str(HERE), "--load-child", url, "--clients", str(clients)]
        super().__init__([*argv, "--pause-s", str(pause_s)], "the load process", stdin=True)

    def on_line(self, line: str | None) -> None:
        if line is None:
            with self._cond:
                self.status.setdefault("exited", True)
                self._cond.notify_all()
            return
        try:
            message = json.loads(line)
        except ValueError:
            return
        with self._cond:
            kind = message.get("event")
            if kind == "turn":
                self.turns.append((message["t"], message["latency_s"]))
            elif kind == "superseded":
                self.superseded.append(message["t"])
            elif kind == "error":
                self.errors.append(str(message.get("message")))
            elif kind == "failed":
                self.failed.append((message["t"], str(message.get("status"))))
            else:
                self.status[kind] = message
            self._cond.notify_all()

    def wait(self, predicate: Any, timeout: float) -> bool:
        with self._cond:
            return bool(self._cond.wait_for(lambda: predicate() or "exited" in self.status, timeout))

    def connected(self, timeout: float) -> dict[str, Any]:
        if not self.wait(lambda: "connected" in self.status, timeout) or "connected" not in self.status:
            raise RuntimeError(f"the load process did not connect within {timeout:g} s: {self.status}")
        return dict(self.status["connected"])

    def window(self, t0: float, t1: float) -> tuple[list[float], int]:
        """Background latencies and superseded turns between ``t0`` and ``t1`` (monotonic)."""
        with self._cond:
            lat = [x for t, x in self.turns if t0 <= t <= t1]
            sup = sum(1 for t in self.superseded if t0 <= t <= t1)
        return lat, sup

    def stop(self, grace_s: float = 15.0) -> None:
        """Close stdin (the child closes its sessions and exits), then SIGTERM / SIGKILL."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(grace_s)
        super().stop(5.0)


# --- the load child ------------------------------------------------------------------------------------


def emit(**message: Any) -> None:
    print(json.dumps(message), flush=True)


class TurnClock:
    """speech_stopped → first response.audio.delta of one session, on receipt (handlers)."""

    def __init__(self, session: Any, name: str) -> None:
        self.name = name
        self.stopped_at: float | None = None
        session.on("input_audio_buffer.speech_stopped", self._stopped)
        session.on("input_audio_buffer.speech_started", self._started)
        session.on("response.audio.delta", self._audio)
        session.on("error", self._error)

    def _stopped(self, _event: Any) -> None:
        self.stopped_at = time.monotonic()

    def _started(self, _event: Any) -> None:
        if self.stopped_at is not None:  # the next utterance began before any reply audio
            emit(event="superseded", client=self.name, t=time.monotonic())
            self.stopped_at = None

    def _audio(self, _event: Any) -> None:
        if self.stopped_at is not None:
            now = time.monotonic()
            emit(event="turn", client=self.name, t=now, latency_s=now - self.stopped_at)
            self.stopped_at = None

    def _error(self, event: Any) -> None:
        emit(event="error", client=self.name, message=str(getattr(event, "error", event))[:300])


async def load_main(url: str, clients: int, pause_s: float) -> int:
    """Open ``clients`` sessions that loop speech + ``pause_s`` of silence in real time, until stdin closes."""
    from voicelive_nb import Session, SessionConfig
    from voicelive_nb.audio.memory import ArraySource
    from voicelive_nb.errors import VoiceLiveError

    die_with_parent()
    # a dropped background session is reported as a "failed" line; its log warning would only add noise
    logging.getLogger("voicelive_nb").setLevel(logging.ERROR)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def watch_stdin() -> None:  # a daemon thread: EOF (the parent closed it, or died) stops us
        with contextlib.suppress(OSError, ValueError):
            sys.stdin.read()
        with contextlib.suppress(RuntimeError):  # the loop may be closed already
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, name="stdin watch", daemon=True).start()
    phrases = [speech(text) for text in PHRASES]

    async def open_one(i: int) -> Any:
        s = Session(
            SessionConfig.server_vad(),
            endpoint=url,
            api_key=KEY,
            dotenv=False,
            max_events=2000,
            max_event_bytes=2_000_000,  # 20 histories of reply audio would otherwise grow to ~0.5 GB
        )
        TurnClock(s, f"bg{i}")
        await s.open()
        return s

    opened = await asyncio.gather(*(open_one(i) for i in range(clients)), return_exceptions=True)
    sessions = [s for s in opened if not isinstance(s, BaseException)]
    refused = [str(s)[:300] for s in opened if isinstance(s, BaseException)]
    for i, s in enumerate(sessions):
        pcm = phrases[i % len(phrases)]
        period_ms = 1000 * (len(pcm) / 2 / RATE + pause_s)
        s.stream(
            ArraySource(
                pcm,
                RATE,
                pace="realtime",
                loop=True,
                tail_silence_ms=pause_s * 1000,
                lead_silence_ms=200 + period_ms * i / max(1, len(sessions)),  # staggered turns
            )
        )
    emit(event="connected", open=len(sessions), refused=refused)
    reported: set[int] = set()
    while not stop.is_set():  # report sessions that failed (dropped, keepalive timeout...) as they do
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        for i, s in enumerate(sessions):
            if i not in reported and s.status.startswith("failed"):
                reported.add(i)
                emit(event="failed", client=f"bg{i}", t=time.monotonic(), status=s.status[:300])
    failed = [s.status for s in sessions if s.status.startswith("failed")]

    async def close(s: Any) -> None:
        with contextlib.suppress(VoiceLiveError, asyncio.TimeoutError, OSError):
            await asyncio.wait_for(s.close(), 10.0)

    await asyncio.gather(*(close(s) for s in sessions))
    emit(event="closed", failed=failed[:5], failed_count=len(failed))
    return 0


# --- the probe -------------------------------------------------------------------------------------------


@dataclass
class ProbeResult:
    admitted: bool
    open_ms: float
    error: str | None = None
    latencies: list[float] = field(default_factory=list)
    warmup_s: float | None = None
    failure: str | None = None


class ProbeTurn:
    """One turn's clock: the latest speech_stopped before the first reply audio, and response.done."""

    def __init__(self) -> None:
        self.stopped_at: float | None = None
        self.first_audio_at: float | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def stopped(self, _event: Any) -> None:
        if self.first_audio_at is None:
            self.stopped_at = time.monotonic()

    def audio(self, _event: Any) -> None:
        if self.first_audio_at is None and self.stopped_at is not None:
            self.first_audio_at = time.monotonic()

    def response_done(self, _event: Any) -> None:
        if self.first_audio_at is not None and not self.done.done():
            self.done.set_result(None)


async def probe(
    url: str, question: bytes, turns: int, turn_timeout_s: float, connect_timeout_s: float
) -> ProbeResult:
    """Connect one more client and measure ``turns`` turns after a warm-up turn."""
    from voicelive_nb import Session, SessionConfig
    from voicelive_nb.audio.memory import ArraySource
    from voicelive_nb.errors import VoiceLiveError

    s = Session(
        SessionConfig.server_vad(),
        endpoint=url,
        api_key=KEY,
        dotenv=False,
        connect_timeout_s=connect_timeout_s,
        setup_timeout_s=connect_timeout_s,
    )
    t0 = time.monotonic()
    try:
        await s.open()
    except VoiceLiveError as exc:
        return ProbeResult(False, (time.monotonic() - t0) * 1000, error=str(exc))
    result = ProbeResult(True, (time.monotonic() - t0) * 1000)
    try:
        for k in range(turns + 1):
            turn = ProbeTurn()
            handlers = [
                ("input_audio_buffer.speech_stopped", turn.stopped),
                ("response.audio.delta", turn.audio),
                ("response.done", turn.response_done),
            ]
            for name, fn in handlers:
                s.on(name, fn)
            try:
                source = ArraySource(
                    question, RATE, pace="realtime", lead_silence_ms=300, tail_silence_ms=1200
                )
                streaming = s.stream(source)
                try:
                    await asyncio.wait_for(asyncio.shield(turn.done), turn_timeout_s)
                except asyncio.TimeoutError:
                    result.failure = (
                        f"turn {k} had no reply audio and response.done within {turn_timeout_s:g} s "
                        f"(speech_stopped {'seen' if turn.stopped_at else 'not seen'}; status {s.status})"
                    )
                    break
                await streaming
            finally:
                for name, fn in handlers:
                    s.off(name, fn)
            assert turn.first_audio_at is not None and turn.stopped_at is not None
            latency = turn.first_audio_at - turn.stopped_at
            if k == 0:
                result.warmup_s = latency
            else:
                result.latencies.append(latency)
    except VoiceLiveError as exc:
        result.failure = f"the probe session failed: {exc}"
    finally:
        with contextlib.suppress(VoiceLiveError, asyncio.TimeoutError, OSError):
            await asyncio.wait_for(s.close(), 10.0)
    return result


# --- rows -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowSpec:
    label: str
    emulator_args: tuple[str, ...]
    background: int


def row_specs(args: argparse.Namespace) -> list[RowSpec]:
    w, n, cap = str(args.workers), args.clients, args.capacity
    return [
        RowSpec("idle, 1 process (default)", (), 0),
        RowSpec(f"{n} streaming, 1 process", (), n),
        RowSpec(f"{n} streaming, --workers {w}", ("--workers", w), n),
        RowSpec(
            f"{n} streaming, --workers {w} --max-sessions {cap}",
            ("--workers", w, "--max-sessions", str(cap)),
            n,
        ),
    ]


@contextlib.contextmanager
def stopping(children: list[Child]) -> Iterator[list[Child]]:
    """Stop every child started in the block, last started first, whatever ends the block."""
    try:
        yield children
    finally:
        for child in reversed(children):
            child.stop()
        children.clear()


def run_row(spec: RowSpec, args: argparse.Namespace, question: bytes) -> dict[str, Any]:
    load_before, cpu_before = loadavg(), cpu_jiffies()
    row: dict[str, Any] = {
        "row": spec.label,
        "emulator_args": list(spec.emulator_args),
        "background": spec.background,
    }
    with stopping([]) as children:
        emulator, url = start_emulator(spec.emulator_args, args.pace, args.start_timeout_s)
        children.append(emulator)
        load: Load | None = None
        if spec.background:
            load = Load(url, spec.background, args.pause_s)
            children.append(load)
            connected = load.connected(args.start_timeout_s)
            row["background_open"] = connected["open"]
            row["background_refused"] = connected["refused"]
            opened = connected["open"]

            def warm() -> bool:  # one answered or superseded turn per client, or every client gone
                assert load is not None
                return len(load.turns) + len(load.superseded) >= opened or len(load.failed) >= opened

            t_warm = time.monotonic()
            row["warm"] = load.wait(warm, args.warm_timeout_s) and len(load.failed) < opened
            row["warm_s"] = round(time.monotonic() - t_warm, 1)
        t0, emu_cpu0 = time.monotonic(), tree_cpu_s(emulator.proc.pid)
        load_cpu0 = tree_cpu_s(load.proc.pid) if load is not None else None
        result = asyncio.run(probe(url, question, args.turns, args.turn_timeout_s, args.connect_timeout_s))
        if load is not None and time.monotonic() < t0 + args.window_s:
            # a refused or failed probe ends at once: keep measuring the admitted clients for the window
            time.sleep(t0 + args.window_s - time.monotonic())
        t1, emu_cpu1 = time.monotonic(), tree_cpu_s(emulator.proc.pid)
        row["window_s"] = round(t1 - t0, 1)
        row["emulator_cpu_pct"] = cpu_share(emu_cpu0, emu_cpu1, t1 - t0)
        if load is not None:
            row["load_cpu_pct"] = cpu_share(load_cpu0, tree_cpu_s(load.proc.pid), t1 - t0)
            row["background_failed"] = len(load.failed)
            row["background_failed_sample"] = [status for _t, status in load.failed[:2]]
            row["background_failed_before_probe"] = sum(1 for t, _s in load.failed if t < t0)
            bg, superseded = load.window(t0, t1)
            row["background_turns"] = len(bg)
            row["background_p50_s"] = percentile(bg, 50)
            row["background_p90_s"] = percentile(bg, 90)
            row["background_superseded"] = superseded
            row["background_errors"] = len(load.errors)
            row["background_error_sample"] = load.errors[:3]
    row.update(
        admitted=result.admitted,
        open_ms=round(result.open_ms, 1),
        error=result.error,
        failure=result.failure,
        warmup_turn_s=result.warmup_s,
        latencies_s=[round(x, 4) for x in result.latencies],
        p50_s=percentile(result.latencies, 50),
        p90_s=percentile(result.latencies, 90),
        probe_s=round(t1 - t0, 1),
        loadavg_before=load_before,
        loadavg_after=loadavg(),
        cpu_busy_pct=busy_percent(cpu_before, cpu_jiffies()),
    )
    return row


def cpu_share(before: float | None, after: float | None, wall_s: float) -> float | None:
    """Percent of one core used between two :func:`tree_cpu_s` samples."""
    if before is None or after is None or wall_s <= 0:
        return None
    return 100.0 * (after - before) / wall_s


def ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else value / base


def print_table(rows: list[dict[str, Any]]) -> None:
    base50, base90 = rows[0]["p50_s"], rows[0]["p90_s"]
    print()
    print(
        "probe turn latency: speech_stopped -> first response.audio.delta (ms), ratios to the first row;"
        " bg = background clients during the probe (turns answered / superseded / sessions failed);"
        " emu cpu = % of one core used by the emulator and its workers during the window;"
        " machine cpu = busy % of all cores during the row"
    )
    head = (
        f"{'row':<44} | {'probe':>8} | {'n':>2} | {'p50':>6} | {'p90':>6} | {'p50/idle':>8} | {'p90/idle':>8} |"
        f" {'bg ok/sup/fail':>14} | {'bg p50':>6} | {'bg p90':>6} | {'emu cpu':>7} |"
        f" {'load 1m before->after':>21} | {'machine cpu':>11}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        probe_state = "admitted" if r["admitted"] else "refused"
        if r["admitted"] and r["failure"]:
            probe_state = "failed"
        r50, r90 = ratio(r["p50_s"], base50), ratio(r["p90_s"], base90)
        la, lb = r["loadavg_before"], r["loadavg_after"]
        load_text = f"{la[0]:.2f} -> {lb[0]:.2f}" if la and lb else "-"
        cpu = "-" if r["cpu_busy_pct"] is None else f"{r['cpu_busy_pct']:.0f}%"
        emu = "-" if r.get("emulator_cpu_pct") is None else f"{r['emulator_cpu_pct']:.0f}%"
        bg = "-"
        if r.get("background"):
            bg = f"{r['background_turns']}/{r['background_superseded']}/{r['background_failed']}"
        print(
            f"{r['row']:<44} | {probe_state:>8} | {len(r['latencies_s']):>2} | {ms(r['p50_s']):>6} |"
            f" {ms(r['p90_s']):>6} | {'-' if r50 is None else f'{r50:.2f}x':>8} |"
            f" {'-' if r90 is None else f'{r90:.2f}x':>8} | {bg:>14} |"
            f" {ms(r.get('background_p50_s')):>6} | {ms(r.get('background_p90_s')):>6} | {emu:>7} |"
            f" {load_text:>21} | {cpu:>11}"
        )


def print_notes(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print()
    base = rows[0]["p50_s"]
    for r in rows:
        notes = []
        if r.get("background"):
            notes.append(f"bg open {r['background_open']}/{r['background']}")
            if r["background_refused"]:
                notes.append(f"bg refused {len(r['background_refused'])}: {r['background_refused'][0]!r}")
            notes.append(
                f"warm {'yes' if r['warm'] else 'NO'} after {r['warm_s']} s; bg measured {r['window_s']} s"
            )
            if r["background_failed"]:
                notes.append(
                    f"bg sessions FAILED {r['background_failed']} ({r['background_failed_before_probe']} before "
                    f"the probe): {r['background_failed_sample'][0]!r}"
                )
            if r["background_errors"]:
                notes.append(f"bg error events {r['background_errors']}: {r['background_error_sample'][0]!r}")
        if not r["admitted"]:
            notes.append(f"probe refused after {r['open_ms']:.0f} ms: {r['error']}")
        else:
            notes.append(
                f"probe connected in {r['open_ms']:.0f} ms, warm-up turn {ms(r['warmup_turn_s'])} ms"
            )
        if r["failure"]:
            notes.append(f"probe FAILED: {r['failure']}")
        for key, who in (("emulator_cpu_pct", "emulator"), ("load_cpu_pct", "bg process")):
            if r.get(key) is not None:
                notes.append(f"{who} cpu {r[key]:.0f}% of a core during the window")
        if r["admitted"] and r["latencies_s"]:
            notes.append("turns ms " + " ".join(f"{x * 1000:.0f}" for x in r["latencies_s"]))
        print(f"{r['row']}: " + "; ".join(notes))
    print()
    for r in rows[1:]:
        if r["emulator_args"][:1] != ["--workers"]:
            continue
        if r["admitted"] and r["p50_s"] is not None and base:
            x = r["p50_s"] / base
            print(f"goal probe p50 <= 2x idle on '{r['row']}': {'met' if x <= 2 else 'missed'} ({x:.2f}x)")
        elif not r["admitted"]:
            bg = r.get("background_p50_s")
            x = ratio(bg, base)
            print(
                f"'{r['row']}': the probe was shed (refused, not slowed); admitted clients' p50 "
                f"{ms(bg)} ms = {'-' if x is None else f'{x:.2f}x'} idle"
            )
    print(
        f"cores: {os.cpu_count()}; pace {args.pace}; background pause {args.pause_s} s; "
        "the machine is shared: judge rows by the load and cpu columns"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--clients", type=int, default=None, help="background clients (default 20; --quick 4)"
    )
    parser.add_argument(
        "--turns", type=int, default=None, help="measured probe turns per row (default 5; --quick 3)"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes in rows 3 and 4 (default 2)")
    parser.add_argument(
        "--capacity",
        type=int,
        default=None,
        help="--max-sessions of row 4 (default: --clients, so the probe is refused)",
    )
    parser.add_argument(
        "--pause-s", type=float, default=2.5, help="background silence after each phrase (default 2.5)"
    )
    parser.add_argument(
        "--pace",
        choices=("fast", "realtime"),
        default="fast",
        help="the emulator's reply pace (default fast)",
    )
    parser.add_argument(
        "--rows", default="1,2,3,4", help="which rows to run, of 1,2,3,4 (default all; 1 is the base)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 background clients, 3 turns")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object too")
    parser.add_argument(
        "--turn-timeout-s", type=float, default=60.0, help="give up on a probe turn after (default 60)"
    )
    parser.add_argument(
        "--warm-timeout-s",
        type=float,
        default=120.0,
        help="longest wait for the background load to warm (default 120)",
    )
    parser.add_argument(
        "--start-timeout-s", type=float, default=180.0, help="emulator / load start-up limit (default 180)"
    )
    parser.add_argument(
        "--connect-timeout-s",
        type=float,
        default=30.0,
        help="the probe's connect and session.update limit; past it the probe counts as not served (default 30)",
    )
    parser.add_argument(
        "--window-s",
        type=float,
        default=None,
        help="shortest time the background clients are measured per loaded row, also when the probe is "
        "refused (default 30; --quick 15)",
    )
    parser.add_argument("--load-child", metavar="URL", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.clients is None:
        args.clients = 4 if args.quick else 20
    if args.turns is None:
        args.turns = 3 if args.quick else 5
    if args.window_s is None:
        args.window_s = 15.0 if args.quick else 30.0
    if args.capacity is None:
        args.capacity = args.clients
    problems = []
    if not 1 <= args.clients <= 200:
        problems.append(f"--clients {args.clients}: use 1 to 200")
    if not 1 <= args.turns <= 100:
        problems.append(f"--turns {args.turns}: use 1 to 100")
    if not 1 <= args.workers <= 64:
        problems.append(f"--workers {args.workers}: use 1 to 64")
    if args.capacity < 1:
        problems.append(f"--capacity {args.capacity}: use 1 or more")
    if not 0.6 <= args.pause_s <= 60:
        problems.append(f"--pause-s {args.pause_s}: use 0.6 to 60 (longer than the VAD's 500 ms silence)")
    try:
        args.row_numbers = sorted({int(x) for x in args.rows.split(",") if x.strip()})
    except ValueError:
        args.row_numbers = []
    if not args.row_numbers or not set(args.row_numbers) <= {1, 2, 3, 4}:
        problems.append(f"--rows {args.rows!r}: a comma-separated subset of 1,2,3,4")
    if problems:
        parser.error("; ".join(problems))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.load_child is not None:
        return asyncio.run(load_main(args.load_child, args.clients, args.pause_s))
    question = speech(QUESTION)
    specs = [s for i, s in enumerate(row_specs(args), start=1) if i in args.row_numbers]
    start_load = loadavg()
    print(
        f"isolation: {args.clients} background clients, {args.turns} probe turns per row (+1 warm-up), "
        f"question {len(question) / 2 / RATE:.1f} s; load average at start {start_load}",
        flush=True,
    )
    rows = []
    try:
        for spec in specs:
            print(f"... {spec.label}", flush=True)
            row = run_row(spec, args, question)
            rows.append(row)
            print(
                f"    probe {'admitted' if row['admitted'] else 'refused'}: p50 {ms(row['p50_s'])} ms, "
                f"p90 {ms(row['p90_s'])} ms; loadavg {row['loadavg_after']}",
                flush=True,
            )
    except KeyboardInterrupt:
        print("\ninterrupted: every child process was stopped", file=sys.stderr)
        if not rows:
            return 130
    print_table(rows)
    print_notes(rows, args)
    if args.json:
        print(json.dumps({"cores": os.cpu_count(), "loadavg_start": start_load, "rows": rows}))
    failed = any(r["failure"] for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
