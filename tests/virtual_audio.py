"""A real virtual microphone and speaker for tests on a machine with no sound card.

A private PulseAudio server (started by PID, our own ``-n`` configuration, an anonymous
native-protocol socket in a private ``XDG_RUNTIME_DIR``) with two null sinks at 24 kHz mono
s16le and one remapped source::

    vspeaker          default sink:   what the code under test plays (PortAudio → ALSA "pulse")
    vspeaker.monitor                  recorded to ``capture_path`` (a WAV) from start to stop
    vmic_feed         helper sink:    ``speak(wav)`` plays a WAV into it in real time (paplay)
    vmic              default source: a remap of ``vmic_feed.monitor``, the "microphone"

PortAudio (Debian 19.6) has no PulseAudio host API; it reaches the server through its ALSA
host API and the ALSA ``pulse`` plugin (libasound2-plugins), which finds the server through
``PULSE_SERVER``. PortAudio scans devices once, when sounddevice is imported, so
:meth:`VirtualAudio.start` puts the environment into ``os.environ`` and re-initialises
PortAudio if sounddevice was already imported.

A null sink renders in 2 s blocks until a client asks for low latency; new streams then wait up
to 2 s for their first block. ``start`` therefore runs two low-latency readers for the whole
session (the speaker capture and a "keeper" on the mic) and returns only once a fresh stream
on each gets its first block quickly (observed, not a fixed sleep).

Nothing is written to ``$HOME``: the server's and tools' config/state go under ``directory``.

**The acoustic path** (``VirtualAudio(directory, echo=EchoPath(delay_ms=50, gain_db=-12))``,
off by default): what the speaker plays comes back into the microphone, as from a laptop's
speakers into its own microphone, so a session without echo cancellation interrupts itself::

    vspeaker.monitor -> module-loopback (latency_msec = delay_ms)
                     -> vecho_gain  (module-ladspa-sink, amp_mono: gain_db)
                     -> vecho_dull  (module-ladspa-sink, lpf: lowpass_hz)  -> vmic_feed (+ speak())

The LADSPA plugins are the SDK's examples (Debian ``ladspa-sdk``: amp.so, filter.so).
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EchoPath",
    "RigCue",
    "RigReplies",
    "SpeakerTap",
    "VirtualAudio",
    "VirtualAudioError",
    "rig_replies",
]

_TOOLS = ("pulseaudio", "pactl", "parec", "parecord", "paplay")
_SOCKET_MAX = 100  # sun_path is 108 bytes on Linux
_LADSPA_DIRS = ("/usr/lib/ladspa", "/usr/local/lib/ladspa", "/usr/lib/x86_64-linux-gnu/ladspa")


@dataclass(frozen=True)
class EchoPath:
    """The speaker-to-microphone echo of the rig: how late, how loud, how dull."""

    delay_ms: int = 50
    """Latency of the loopback from the speaker's monitor into the mic feed: PulseAudio sets it
    at start (with rate adaptation on, its reports held it at 49.96-49.98 ms for 50)."""
    gain_db: float = -12.0
    """Level of the echo relative to what the speaker played."""
    lowpass_hz: float = 3000.0
    """Cut-off of a one-pole low-pass (a room and a cheap microphone lose the highs)."""
    adaptive: bool = False
    """Let the loopback adapt its rate to hold ``delay_ms`` and report its latency once a
    second (:meth:`VirtualAudio.echo_latency_ms`). Off by default: the adapting resampler makes
    the echo path change all the time, and no echo canceller converges on it (measured: Speex
    left -3 dB of the echo, against -30 dB without it)."""

    def __post_init__(self) -> None:
        if not 10 <= self.delay_ms <= 1000:
            raise ValueError(f"EchoPath.delay_ms must be 10 to 1000 ms, got {self.delay_ms}")
        if not -60 <= self.gain_db <= 0:
            raise ValueError(f"EchoPath.gain_db must be -60 to 0 dB, got {self.gain_db}")
        if not 100 <= self.lowpass_hz <= 11000:
            raise ValueError(f"EchoPath.lowpass_hz must be 100 to 11000 Hz, got {self.lowpass_hz}")


def _ladspa_dir() -> Path | None:
    for d in (os.environ.get("LADSPA_PATH", ""), *_LADSPA_DIRS):
        if d and (Path(d) / "amp.so").exists() and (Path(d) / "filter.so").exists():
            return Path(d)
    return None


class VirtualAudioError(RuntimeError):
    """The virtual sound server could not be started."""


@dataclass
class SpeakerTap:
    """Raw audio from ``vspeaker.monitor`` with the arrival time of each chunk.

    ``chunks`` holds ``(time.monotonic() at arrival, pcm16 bytes)``. A sample's arrival time
    is when the null sink rendered it (played it) plus the tap's own delivery delay (≤ the
    10 ms latency asked for), so it maps the speaker output onto the test's clock.
    """

    proc: subprocess.Popen[bytes]
    sample_rate: int
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return
            if not data:
                return
            self.chunks.append((time.monotonic(), data))

    @property
    def frames(self) -> int:
        return sum(len(c) for _, c in self.chunks) // 2

    def audio(self) -> tuple[bytes, list[tuple[int, float]]]:
        """All samples so far and ``(sample index at the end of a chunk, arrival time)`` marks."""
        marks: list[tuple[int, float]] = []
        parts: list[bytes] = []
        n = 0
        for t, c in list(self.chunks):
            parts.append(c)
            n += len(c)
            marks.append((n // 2, t))
        data = b"".join(parts)
        return data[: len(data) // 2 * 2], marks

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._thread is not None:
            self._thread.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class VirtualAudio:
    """Start/stop a private PulseAudio with a virtual mic and speaker (see the module doc)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        sample_rate: int = 24000,
        feed_latency_ms: int = 200,
        echo: EchoPath | None = None,
    ) -> None:
        self.directory = Path(directory).resolve()
        #: The acoustic path from the speaker back into the microphone (``None``: none, the default).
        self.echo: EchoPath | None = None
        self._echo_at_start = echo
        self._echo_indices: list[str] = []
        self._echo_log_start = 0
        self.sample_rate = sample_rate
        # paplay's buffer for the mic feed: 20 ms dropped out under load in our measurements
        self.feed_latency_ms = feed_latency_ms
        self.capture_path = self.directory / "speaker.wav"
        self._xdg: Path | None = None
        self._xdg_is_temp = False
        self._server: subprocess.Popen[bytes] | None = None
        self._helpers: dict[str, subprocess.Popen[bytes]] = {}
        self._speakers: list[subprocess.Popen[bytes]] = []
        self._taps: list[SpeakerTap] = []
        self._saved_env: dict[str, str | None] = {}
        self._logs: list[object] = []
        self.startup_s: dict[str, float] = {}

    # -- environment ---------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """What a client (PortAudio's ALSA pulse plugin, pactl, paplay…) needs to find the server."""
        if self._xdg is None:
            raise VirtualAudioError("virtual audio is not started")
        return {
            "XDG_RUNTIME_DIR": str(self._xdg),
            "PULSE_SERVER": f"unix:{self._xdg / 'pulse' / 'native'}",
            "PULSE_COOKIE": str(self.directory / "cookie"),
        }

    def _tool_env(self) -> dict[str, str]:
        """Environment for the processes we start: also keeps their config/state out of $HOME."""
        env = dict(os.environ)
        env.update(self.env)
        env["XDG_CONFIG_HOME"] = str(self.directory / "config")
        env["XDG_STATE_HOME"] = str(self.directory / "state")
        env["XDG_CACHE_HOME"] = str(self.directory / "cache")
        env.pop("DISPLAY", None)
        ladspa = _ladspa_dir()
        if ladspa is not None:
            env["LADSPA_PATH"] = str(ladspa)
        return env

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.poll() is None

    @property
    def server_pid(self) -> int | None:
        return self._server.pid if self._server is not None else None

    # -- start ---------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], *, stdout: int | None = None) -> subprocess.Popen[bytes]:
        log = open(self.directory / f"{name}.log", "ab")  # noqa: SIM115 (closed in stop())
        self._logs.append(log)
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else log,
            stderr=log,
            env=self._tool_env(),
            start_new_session=True,  # a stray ^C in the test terminal does not hit them
        )

    def _pactl_ok(self) -> bool:
        result = subprocess.run(
            ["pactl", "info"], env=self._tool_env(), capture_output=True, timeout=5, check=False
        )
        return result.returncode == 0

    def _first_block_s(self, device: str, timeout: float) -> float:
        """Seconds a new low-latency recording stream on ``device`` waits for its first 10 ms."""
        t0 = time.monotonic()
        proc = self._spawn(
            "probe",
            ["parec", f"--device={device}", "--latency-msec=20", "--raw", "--format=s16le"],
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        want = self.sample_rate // 100 * 2
        got = 0
        try:
            fd = proc.stdout.fileno()
            while got < want:
                left = timeout - (time.monotonic() - t0)
                if left <= 0:
                    break
                ready, _, _ = select.select([fd], [], [], left)
                if not ready:
                    break
                chunk = os.read(fd, want - got)
                if not chunk:
                    break
                got += len(chunk)
            return time.monotonic() - t0 if got >= want else float("inf")
        finally:
            proc.terminate()
            proc.wait(5)
            proc.stdout.close()

    def start(self, *, timeout: float = 15.0) -> VirtualAudio:
        """Start the server and the helpers, wait until low-latency streams work, export the env."""
        if self.running:
            return self
        missing = [t for t in _TOOLS if shutil.which(t) is None]
        if missing:
            raise VirtualAudioError(
                f"missing programs: {', '.join(missing)}; "
                "install them with: apt-get install pulseaudio pulseaudio-utils libasound2-plugins"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        xdg = self.directory / "xdg"
        if len(str(xdg / "pulse" / "native")) > _SOCKET_MAX:
            xdg = Path(tempfile.mkdtemp(prefix="va-xdg-"))
            self._xdg_is_temp = True
        xdg.mkdir(mode=0o700, exist_ok=True)
        (xdg / "pulse").mkdir(mode=0o700, exist_ok=True)
        self._xdg = xdg
        self.capture_path.unlink(missing_ok=True)
        t0 = time.monotonic()
        try:
            self._start_server(timeout)
            self.startup_s["server"] = time.monotonic() - t0
            self._start_helpers()
            self._wait_low_latency(timeout)
            if self._echo_at_start is not None:  # once the sinks run at low latency
                self.set_echo(self._echo_at_start)
            self.startup_s["low_latency"] = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise
        self._export_env()
        return self

    def _start_server(self, timeout: float) -> None:
        assert self._xdg is not None
        r = self.sample_rate
        echo_logs = self._echo_at_start is not None
        config = self.directory / "va.pa"
        null_sink = f"module-null-sink rate={r} channels=1 format=s16le"
        config.write_text(
            f"load-module module-native-protocol-unix auth-anonymous=1 socket={self._xdg}/pulse/native\n"
            f"load-module {null_sink} sink_name=vspeaker sink_properties=device.description=VirtualSpeaker\n"
            f"load-module {null_sink} sink_name=vmic_feed sink_properties=device.description=VirtualMicFeed\n"
            "load-module module-remap-source source_name=vmic master=vmic_feed.monitor "
            "source_properties=device.description=VirtualMic\n"
            "set-default-sink vspeaker\n"
            "set-default-source vmic\n"
        )
        # -n: none of the system default.pa (no udev, ALSA cards or D-Bus); never exit when idle.
        # As root it logs "This program is not intended to be run as root" and works.
        self._server = self._spawn(
            "pulseaudio",
            [
                "pulseaudio",
                "-n",
                "-F",
                str(config),
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--use-pid-file=no",
                "--disallow-exit",
                f"--log-target=file:{self.directory / 'pulseaudio-server.log'}",
                # the adaptive loopback's latency reports (EchoPath.adaptive) are debug lines
                f"--log-level={'debug' if echo_logs else 'notice'}",
            ],
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._server.poll() is not None:
                raise VirtualAudioError(
                    f"pulseaudio exited with code {self._server.returncode}; see {self.directory}/pulseaudio*.log"
                )
            if (self._xdg / "pulse" / "native").exists() and self._pactl_ok():
                return
            if time.monotonic() > deadline:
                raise VirtualAudioError(f"pulseaudio did not answer within {timeout} s; see {self.directory}")
            time.sleep(0.02)  # polling interval while waiting for the socket (not synchronisation by sleep)

    def _echo_modules(self, echo: EchoPath) -> list[list[str]]:
        """``pactl load-module`` arguments of the acoustic path, master first."""
        if _ladspa_dir() is None:
            raise VirtualAudioError(
                "the echo path needs the LADSPA example plugins (amp.so, filter.so); "
                "install them with: apt-get install ladspa-sdk"
            )
        spec = [f"rate={self.sample_rate}", "channels=1", "format=float32le"]  # LADSPA runs on floats
        amp = 10 ** (echo.gain_db / 20)
        # adjust_time=0: no rate adaptation (see EchoPath.adaptive); both null sinks run on the
        # one system clock, so the latency set when the loopback starts holds.
        adjust = ["adjust_time=1", "log_interval=1"] if echo.adaptive else ["adjust_time=0"]
        return [
            [
                "module-ladspa-sink",
                "sink_name=vecho_dull",
                "sink_master=vmic_feed",
                *spec,
                "plugin=filter",
                "label=lpf",
                f"control={echo.lowpass_hz:g}",
            ],
            [
                "module-ladspa-sink",
                "sink_name=vecho_gain",
                "sink_master=vecho_dull",
                *spec,
                "plugin=amp",
                "label=amp_mono",
                f"control={amp:.6f}",
            ],
            [
                "module-loopback",
                "source=vspeaker.monitor",
                "sink=vecho_gain",
                f"latency_msec={echo.delay_ms}",
                *adjust,
                "source_dont_move=true",
                "sink_dont_move=true",
                "remix=false",
            ],
        ]

    def set_echo(self, echo: EchoPath | None) -> None:
        """Switch the acoustic path (``None``: off) on the running server."""
        if not self.running:
            raise VirtualAudioError("virtual audio is not running")
        for index in reversed(self._echo_indices):
            subprocess.run(
                ["pactl", "unload-module", index], env=self._tool_env(), capture_output=True, timeout=10
            )
        self._echo_indices = []
        self.echo = echo
        if echo is None:
            return
        self._echo_log_start = self._server_log_size()
        for args in self._echo_modules(echo):
            result = subprocess.run(
                ["pactl", "load-module", *args],
                env=self._tool_env(),
                capture_output=True,
                text=True,
                timeout=10,
            )
            if result.returncode != 0:
                self.set_echo(None)
                raise VirtualAudioError(
                    f"the echo path did not load ({args[0]}: {result.stderr.strip()}); "
                    f"see {self.directory}/pulseaudio-server.log"
                )
            self._echo_indices.append(result.stdout.strip())

    def _server_log_size(self) -> int:
        try:
            return (self.directory / "pulseaudio-server.log").stat().st_size
        except FileNotFoundError:
            return 0

    def echo_latency_ms(self) -> float | None:
        """The acoustic path's delay as PulseAudio reports it (the median of the adaptive
        loopback's "End-to-end latency" lines since :meth:`set_echo`), ``None`` without reports."""
        if self.echo is None or not self.echo.adaptive:
            return None
        try:
            with open(self.directory / "pulseaudio-server.log", "rb") as f:
                f.seek(self._echo_log_start)
                text = f.read().decode(errors="replace")
        except FileNotFoundError:
            return None
        values = sorted(float(m) for m in re.findall(r"End-to-end latency: ([0-9.]+) ms", text))
        return values[len(values) // 2] if values else None

    def _start_helpers(self) -> None:
        r = str(self.sample_rate)
        fmt = ["--format=s16le", f"--rate={r}", "--channels=1"]
        self._helpers["capture"] = self._spawn(
            "capture",
            [
                "parecord",
                "--device=vspeaker.monitor",
                "--latency-msec=20",
                "--file-format=wav",
                *fmt,
                str(self.capture_path),
            ],
        )
        # a low-latency reader on the mic chain too, so the null sink leaves its 2 s blocks
        self._helpers["keeper"] = self._spawn(
            "keeper",
            ["parec", "--device=vmic", "--latency-msec=20", "--raw", *fmt],
            stdout=subprocess.DEVNULL,
        )

    def _wait_low_latency(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for name, proc in self._helpers.items():
                if proc.poll() is not None:
                    raise VirtualAudioError(
                        f"{name} exited with code {proc.returncode}; see {self.directory}"
                    )
            mic = self._first_block_s("vmic", 3.0)
            speaker = self._first_block_s("vspeaker.monitor", 3.0)
            if mic < 0.15 and speaker < 0.15:
                return
            if time.monotonic() > deadline:
                raise VirtualAudioError(
                    f"the null sinks did not switch to low latency within {timeout} s "
                    f"(first block after {mic:.2f} s / {speaker:.2f} s)"
                )

    def _export_env(self) -> None:
        for key, value in self.env.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        if "sounddevice" in sys.modules and sys.modules["sounddevice"] is not None:
            from voicelive_nb.audio.device import rescan

            rescan()

    # -- use -----------------------------------------------------------------------------

    def speak(
        self, wav_path: str | os.PathLike[str], *, wait: bool = True, timeout: float = 60.0
    ) -> subprocess.Popen[bytes]:
        """Play a WAV into the virtual mic in real time; wait for the end unless ``wait=False``."""
        if not self.running:
            raise VirtualAudioError("virtual audio is not running")
        proc = self._spawn(
            "speak",
            ["paplay", "--device=vmic_feed", f"--latency-msec={self.feed_latency_ms}", str(wav_path)],
        )
        self._speakers.append(proc)
        if wait:
            rc = proc.wait(timeout)
            if rc != 0:
                raise VirtualAudioError(
                    f"paplay {wav_path} failed with code {rc}; see {self.directory}/speak.log"
                )
        return proc

    def tap(self, *, latency_ms: int = 10) -> SpeakerTap:
        """Start recording the speaker with arrival timestamps (see :class:`SpeakerTap`)."""
        if not self.running:
            raise VirtualAudioError("virtual audio is not running")
        proc = self._spawn(
            "tap",
            [
                "parec",
                "--device=vspeaker.monitor",
                f"--latency-msec={latency_ms}",
                "--raw",
                "--format=s16le",
                f"--rate={self.sample_rate}",
                "--channels=1",
            ],
            stdout=subprocess.PIPE,
        )
        tap = SpeakerTap(proc, self.sample_rate)
        tap._thread = threading.Thread(target=tap._run, name="speaker-tap", daemon=True)
        tap._thread.start()
        self._taps.append(tap)
        return tap

    def capture_frames(self) -> int:
        """Frames in the speaker capture so far (the WAV header is only filled in at stop)."""
        try:
            size = self.capture_path.stat().st_size
        except FileNotFoundError:
            return 0
        return max(0, size - 44) // 2

    # -- stop ----------------------------------------------------------------------------

    def stop(self) -> None:
        """TERM the server by PID (its clients then exit by themselves), wait, kill leftovers.

        Stopping the clients first would take 1–2 s each: the null sinks fall back to 2 s
        blocks as low-latency readers leave. parecord still finalises the WAV header.
        """
        for proc in self._speakers:
            if proc.poll() is None:
                proc.terminate()
        for tap in self._taps:
            if tap.proc.poll() is None:
                tap.proc.terminate()
        if self._server is not None and self._server.poll() is None:
            self._server.send_signal(signal.SIGTERM)
        procs = [*self._speakers, *(t.proc for t in self._taps), *self._helpers.values()]
        if self._server is not None:
            procs.append(self._server)
        deadline = time.monotonic() + 5.0
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for tap in self._taps:
            tap.close()
        for log in self._logs:
            log.close()  # type: ignore[attr-defined]
        self._taps.clear()
        self._speakers.clear()
        self._helpers.clear()
        self._logs.clear()
        self._server = None
        restored = any(v is not None for v in self._saved_env.values())
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        if restored and "sounddevice" in sys.modules and sys.modules["sounddevice"] is not None:
            # another server (an outer VirtualAudio) is what the environment names again
            from voicelive_nb.audio.device import rescan

            with contextlib.suppress(Exception):
                rescan()
        if self._xdg is not None:
            with contextlib.suppress(FileNotFoundError):
                (self._xdg / "pulse" / "native").unlink()
            if self._xdg_is_temp:
                shutil.rmtree(self._xdg, ignore_errors=True)
        self._xdg = None

    def __enter__(self) -> VirtualAudio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the assistant's replies through the echoing rig, with a scripted user -------------------------

#: A speech_started this far before a cue began to play into the mic, or after it ended (plus
#: paplay's feed latency), is not put down to it (the lab's windows: the service takes its
#: prefix padding off ``audio_start_ms``).
CUE_BEFORE_MS = 500
CUE_AFTER_MS = 600


@dataclass
class RigCue:
    """A scripted sound of the user, as it was played into the virtual microphone."""

    reply: int
    text: str
    at_ms: int
    """Where on the session's input timeline paplay was started."""
    window: tuple[int, int]
    """The ``audio_start_ms`` range put down to this cue."""
    flushed: bool = False
    """The speaker was flushed while this cue's reply played."""


@dataclass
class RigReplies:
    """What :func:`rig_replies` saw: every ``speech_started`` and the cues played."""

    starts: list[int]
    cues: list[RigCue]
    clears: int
    played_ms: int

    def real(self, cue: RigCue) -> list[int]:
        lo, hi = cue.window
        return [t for t in self.starts if lo <= t <= hi]

    @property
    def false_starts(self) -> list[int]:
        """Starts no cue accounts for: the assistant heard itself."""
        return [t for t in self.starts if not any(c.window[0] <= t <= c.window[1] for c in self.cues)]

    @property
    def missed(self) -> list[RigCue]:
        """Interruptions with no ``speech_started`` in their window, or no flush of the speaker."""
        return [c for c in self.cues if not self.real(c) or not c.flushed]


async def _until(condition: Any, timeout: float, what: str) -> None:
    import asyncio

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise VirtualAudioError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)  # polling interval, not synchronisation


async def rig_replies(
    rig: VirtualAudio,
    config: Any,
    replies: int,
    texts: list[str],
    *,
    cues: dict[int, tuple[str, float]] | None = None,
) -> RigReplies:
    """``replies`` emulator replies played through the rig's real PortAudio devices (the mic
    attached to the speaker as its echo reference), each waited out to its end; ``cues`` maps a
    reply to ``(words, offset_ms)``: eSpeak says them into the microphone ``offset_ms`` after
    the reply began to play (measured on the microphone's own frames)."""
    import numpy as np

    from voicelive_nb.audio.device import MicrophoneSource, SpeakerSink
    from voicelive_nb.lab.barge_in import Cue, cue_audio
    from voicelive_nb.session import Session

    cues = cues or {}
    speaker = SpeakerSink()
    mic = MicrophoneSource(reference=speaker)
    options: dict[str, Any] = {"pace": "fast", "transcription": False, "replies": texts * replies}
    starts: list[int] = []
    items: list[str] = []
    placed: list[RigCue] = []
    frame_ms = 20
    async with Session(config, emulator=True, emulator_options=options, source=mic, sink=speaker) as s:
        s.on("input_audio_buffer.speech_started", lambda e: starts.append(e.audio_start_ms))
        s.on("response.audio.delta", lambda e: items.append(e.item_id) if e.item_id not in items else None)
        for reply in range(replies):
            clears = speaker.clears
            await s.create_response()
            proc = None
            if reply in cues:
                words, offset_ms = cues[reply]
                await _until(lambda c=clears: speaker.playing or speaker.clears > c, 60, "the reply to play")
                target = mic.frames_yielded + round(offset_ms / frame_ms)
                await _until(lambda t=target: mic.frames_yielded >= t, 30, "the cue's offset")
                audio = cue_audio(Cue("interrupt", offset_ms, words), rig.sample_rate)
                wav = rig.directory / f"cue-{reply}.wav"
                _write_wav(wav, audio.astype(np.int16).tobytes(), rig.sample_rate)
                at = s.frames_sent * s.frame_ms
                proc = rig.speak(wav, wait=False)
                dur = len(audio) * 1000 // rig.sample_rate
                placed.append(
                    RigCue(
                        reply, words, at, (at - CUE_BEFORE_MS, at + rig.feed_latency_ms + dur + CUE_AFTER_MS)
                    )
                )
            await s.wait_for("response.done", timeout=60)
            await _until(
                lambda: speaker.queued_ms() == 0 and not speaker.playing, 60, "the reply to play out"
            )
            if proc is not None:
                await _until(lambda p=proc: p.poll() is not None, 30, "the cue to be spoken")
                placed[-1].flushed = speaker.clears > clears
            # the output buffer and the path still hold its end: 0.8 s more of the microphone
            target = mic.frames_yielded + 40
            await _until(lambda t=target: mic.frames_yielded >= t, 30, "0.8 s more of the microphone")
        await s.update(instructions="barrier")  # every start the sent audio caused has arrived
        played = sum(speaker.played_ms(i) for i in items)
    return RigReplies(starts, placed, speaker.clears, played)


def _write_wav(path: Path, pcm16: bytes, rate: int) -> None:
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm16)
