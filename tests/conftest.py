"""Shared fixtures: a real virtual microphone and speaker (PulseAudio null sinks) for device tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from virtual_audio import VirtualAudio


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
