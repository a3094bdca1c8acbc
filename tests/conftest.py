"""Shared fixtures: a real virtual microphone and speaker (PulseAudio null sinks) for device tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from virtual_audio import VirtualAudio

from voicelive_nb.audio.wav import write_wav
from voicelive_nb.emulator.server import BackgroundEmulator, start_in_thread
from voicelive_nb.emulator.tts import synthesize


@pytest.fixture(scope="session")
def virtual_audio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualAudio]:
    """A private PulseAudio with a virtual mic (``speak``) and speaker (``capture_path``, ``tap``).

    Started once per test session; PortAudio sees it as the default input and output.
    """
    if shutil.which("pulseaudio") is None:
        pytest.skip(
            "pulseaudio is not installed, so there is no virtual microphone/speaker; "
            "install it with: apt-get install pulseaudio pulseaudio-utils libasound2-plugins"
        )
    va = VirtualAudio(tmp_path_factory.mktemp("virtual_audio"))
    va.start()
    try:
        yield va
    finally:
        va.stop()


@pytest.fixture(scope="module")
def emulator() -> Iterator[BackgroundEmulator]:
    """The built-in emulator on its own thread, answering as fast as it can (one per test module)."""
    emu = start_in_thread(pace="fast")
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def question_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short spoken question as a 24 kHz WAV."""
    path = tmp_path_factory.mktemp("wav") / "question.wav"
    write_wav(path, synthesize("What time is it?").pcm16, 24000)
    return path
