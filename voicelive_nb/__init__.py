"""voicelive_nb: Azure AI Voice Live in Jupyter.

The names below are imported lazily so that ``import voicelive_nb`` stays fast and works
without the optional extras (sounddevice, ipywidgets, the emulator's speech models).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    AudioDeviceUnavailable,
    AudioError,
    AuthenticationError,
    ConfigError,
    ConnectionClosed,
    ConnectTimeout,
    HandshakeRefused,
    OptionalDependencyMissing,
    ProtocolError,
    ServerError,
    TransportError,
    VoiceLiveError,
)

_LAZY = {
    "Session": "voicelive_nb.session",
    "ConnectionOptions": "voicelive_nb.connection",
    "memory_emulator": "voicelive_nb.testing",
    "NotebookSession": "voicelive_nb.notebook",
    "SessionConfig": "voicelive_nb.protocol.config",
    "SessionProtocol": "voicelive_nb.protocol.state",
    "WavSource": "voicelive_nb.audio.wav",
    "WavSink": "voicelive_nb.audio.wav",
    "ArraySource": "voicelive_nb.audio.memory",
    "BufferSink": "voicelive_nb.audio.memory",
    "Recorder": "voicelive_nb.recording",
    "load_settings": "voicelive_nb.auth",
    "run_emulator": "voicelive_nb.emulator.server",
}

if TYPE_CHECKING:
    from .audio.memory import ArraySource, BufferSink
    from .audio.wav import WavSink, WavSource
    from .auth import load_settings
    from .connection import ConnectionOptions
    from .emulator.server import run_emulator
    from .notebook import NotebookSession
    from .protocol.config import SessionConfig
    from .protocol.state import SessionProtocol
    from .recording import Recorder
    from .session import Session
    from .testing import memory_emulator


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'voicelive_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ArraySource",
    "AudioDeviceUnavailable",
    "AudioError",
    "AuthenticationError",
    "BufferSink",
    "ConfigError",
    "ConnectTimeout",
    "ConnectionClosed",
    "ConnectionOptions",
    "HandshakeRefused",
    "NotebookSession",
    "OptionalDependencyMissing",
    "ProtocolError",
    "Recorder",
    "ServerError",
    "Session",
    "SessionConfig",
    "SessionProtocol",
    "TransportError",
    "VoiceLiveError",
    "WavSink",
    "WavSource",
    "__version__",
    "load_settings",
    "memory_emulator",
    "run_emulator",
]
