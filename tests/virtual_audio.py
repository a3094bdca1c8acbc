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
"""

from __future__ import annotations

import contextlib
import os
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

__all__ = ["SpeakerTap", "VirtualAudio", "VirtualAudioError"]

_TOOLS = ("pulseaudio", "pactl", "parec", "parecord", "paplay")
_SOCKET_MAX = 100  # sun_path is 108 bytes on Linux


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
    ) -> None:
        self.directory = Path(directory).resolve()
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
            self.startup_s["low_latency"] = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise
        self._export_env()
        return self

    def _start_server(self, timeout: float) -> None:
        assert self._xdg is not None
        r = self.sample_rate
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
                "--log-level=notice",
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
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
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
