"""``voicelive-nb talk --mic --speaker --duration`` through real PortAudio devices.

The command runs as its own process against the emulator; PortAudio in it finds the PulseAudio
virtual microphone and speaker (the ``virtual_audio`` fixture exports their environment). A
question is spoken into the virtual mic; the reply must be printed and come out of the virtual
speaker, and the command must end by itself after ``--duration``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from virtual_audio import VirtualAudio

from voicelive_nb.audio.wav import write_wav
from voicelive_nb.emulator.server import start_in_thread
from voicelive_nb.speech.tts import synthesize

RATE = 24000


def loud_ms(pcm: bytes, block_ms: int = 20, threshold_dbfs: float = -45.0) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    n = RATE * block_ms // 1000
    blocks = x[: len(x) // n * n].reshape(-1, n)
    if not len(blocks):
        return 0.0
    rms = np.sqrt(np.mean(blocks**2, axis=1) + 1e-12)
    return float(np.sum(20 * np.log10(rms) > threshold_dbfs) * block_ms)


@pytest.fixture(scope="module")
def question(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "question.wav"
    write_wav(
        path, b"\0\0" * 4800 + synthesize("What is the weather like today?").pcm16 + b"\0\0" * 24000, RATE
    )
    return path


def test_talk_through_the_mic_and_speaker_for_a_duration(virtual_audio: VirtualAudio, question: Path) -> None:
    emu = start_in_thread(pace="fast", replies=["It is sunny today, with a light breeze."])
    tap = virtual_audio.tap()
    duration = 8.0
    cmd = [sys.executable, "-m", "voicelive_nb", "talk", "--mic", "--speaker", "--duration", str(duration)]
    cmd += ["--endpoint", emu.url, "--api-key", "k"]
    env = {**os.environ, **virtual_audio.env, "PYTHONUNBUFFERED": "1"}
    lines: list[str] = []
    listening = threading.Event()
    try:
        before = tap.frames
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("listening"):
                    listening.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert listening.wait(30), "".join(lines)
        virtual_audio.speak(question)  # real time, through the virtual mic
        rc = proc.wait(timeout=duration + 30)
        elapsed = time.monotonic() - t0
        reader.join(5)
        assert proc.stdout is not None
        proc.stdout.close()
        data, _ = tap.audio()
    finally:
        tap.close()
        emu.stop()
    out = "".join(lines)
    assert rc == 0, out
    assert duration <= elapsed < duration + 20, out  # it ended by itself, after --duration
    assert "response.done" in out, out
    heard = loud_ms(data[before * 2 :])
    assert heard > 500, f"only {heard} ms of the reply came out of the speaker\n{out}"
