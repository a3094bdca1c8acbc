"""A replay server: recorded traffic served back over a real WebSocket on 127.0.0.1.

A *trace* is a list of ``(direction, payload)`` in recorded order, ``direction`` being
``"server"`` or ``"client"`` (``"received"`` / ``"sent"`` are accepted too). Every connection to
``ws://127.0.0.1:PORT/<any prefix>/voice-live/realtime`` replays the whole trace from the start:

* the server events recorded before the first client event are sent at once;
* each recorded client event *owns* the server events recorded after it, up to the next client
  event (its *answer*); an answer is sent when the client event is matched.

The matching rule (liberal, so that a real client whose traffic differs in detail still gets
the recorded answers):

1. ``input_audio_buffer.append`` is matched **by audio position**, not by count: the answer of a
   recorded append is released once the client has appended at least as many audio bytes in
   total as the trace had up to and including that append. A client that sends smaller,
   larger or extra frames gets the same answers at the same point of the audio.
2. Any other client event is matched **by type, in order**: it matches the next not yet matched
   recorded client event of the same type. Recorded client events it passes over count as
   sent: their answers are released first, in order. Content is not compared, so a slightly
   different ``session.update`` gets the recorded ``session.updated``.
3. A client event with no recorded match left (an extra event) gets no answer; a frame that is
   not a JSON object gets an ``error`` event (as the service does). Nothing a client sends
   ends the connection; after the last answer the server stays connected until the client leaves.

A recording directory made with ``Session(record=DIR)`` is replayed through the same server:
:func:`load_recording_trace` reads its ``events.jsonl`` and puts the audio (stored as offsets
into ``mic.wav`` / ``assistant.wav`` / ``items.wav``) back into the events as base64. The
recording's secrets were redacted when it was written; they stay masked.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Union
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ..audio.wav import read_wav
from ..errors import AudioError, InvalidValue, StateError, VoiceLiveError
from ..hosts import is_loopback_host
from .conversation import decode_client_frame, error_event

__all__ = [
    "ReplayError",
    "ReplayScript",
    "ReplayServer",
    "Trace",
    "TraceSource",
    "load_recording_trace",
    "load_trace",
]

logger = logging.getLogger("voicelive_nb.emulator.replay")

ROUTE = "/voice-live/realtime"
APPEND = "input_audio_buffer.append"
Trace = list[tuple[str, dict[str, Any]]]
TraceSource = Union[Sequence[tuple[str, Any]], str, "os.PathLike[str]"]
_DIRECTIONS = {"server": "server", "received": "server", "client": "client", "sent": "client"}


class ReplayError(VoiceLiveError):
    """A trace or recording cannot be replayed (what is wrong and what to pass instead)."""


# --- loading ---------------------------------------------------------------------------------------


def _b64_len(text: Any) -> int:
    """Bytes of audio in a base64 string (0 when it is not valid base64)."""
    if not isinstance(text, str):
        return 0
    try:
        return len(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        return 0


def _is_ref(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("file"), str)
        and isinstance(value.get("offset"), int)
        and isinstance(value.get("bytes"), int)
    )


def load_recording_trace(directory: str | os.PathLike[str]) -> Trace:
    """The trace of a ``Session(record=DIR)`` recording, audio re-inserted as base64.

    Lines torn by a crash are skipped; notes (``dir: "note"``) are not traffic and are left out.
    """
    path = Path(directory)
    try:
        raw = (path / "events.jsonl").read_bytes()
    except OSError as exc:
        raise ReplayError(
            f"cannot read recording {path}: {exc.strerror or exc}; pass a directory made with Session(record=DIR)"
        ) from exc
    audio: dict[str, bytes] = {}

    def pcm_of(name: str) -> bytes:
        if name not in audio:
            wav = path / Path(name).name  # a reference names a file beside events.jsonl, nothing else
            try:
                audio[name] = read_wav(wav)[0] if wav.is_file() else b""
            except AudioError:
                audio[name] = b""
        return audio[name]

    def restore(value: Any) -> Any:
        if _is_ref(value):
            pcm = pcm_of(value["file"])
            return base64.b64encode(pcm[value["offset"] : value["offset"] + value["bytes"]]).decode("ascii")
        if isinstance(value, dict):
            return {k: restore(v) for k, v in value.items()}
        if isinstance(value, list):
            return [restore(v) for v in value]
        return value

    trace: Trace = []
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue  # torn by a crash
        if not isinstance(record, dict) or record.get("dir") not in ("sent", "received"):
            continue
        event = record.get("event")
        if isinstance(event, dict):
            trace.append((_DIRECTIONS[record["dir"]], restore(event)))
    return trace


def load_trace(source: TraceSource) -> Trace:
    """A trace from a list of ``(direction, payload)`` or from a recording directory."""
    if isinstance(source, (str, os.PathLike)):
        return load_recording_trace(source)
    trace: Trace = []
    for i, entry in enumerate(source):
        try:
            direction, payload = entry
        except (TypeError, ValueError):
            raise ReplayError(
                f"trace entry {i} is not a (direction, payload) pair; got {entry!r:.80}"
            ) from None
        if direction not in _DIRECTIONS or not isinstance(payload, dict):
            raise ReplayError(
                f"trace entry {i}: direction must be 'server' or 'client' and payload a dict; "
                f"got {direction!r} and {type(payload).__name__}"
            )
        trace.append((_DIRECTIONS[direction], copy.deepcopy(payload)))
    return trace


# --- the script (pure) -------------------------------------------------------------------------------


class ReplayScript:
    """One connection's progress through a trace: feed client events, get the server events to send."""

    def __init__(self, trace: Trace) -> None:
        self._opening: list[dict[str, Any]] = []
        self._clients: list[dict[str, Any]] = []
        self._answers: list[list[dict[str, Any]]] = []
        self._audio_end: list[int] = []  # total recorded append bytes through each client event
        total = 0
        for direction, payload in trace:
            if direction == "client":
                if payload.get("type") == APPEND:
                    total += _b64_len(payload.get("audio"))
                self._clients.append(payload)
                self._answers.append([])
                self._audio_end.append(total)
            elif self._clients:
                self._answers[-1].append(payload)
            else:
                self._opening.append(payload)
        self._cursor = 0
        self._client_audio = 0
        self.matched = 0
        self.extra = 0

    @property
    def finished(self) -> bool:
        """Every recorded client event was matched (all answers were released)."""
        return self._cursor >= len(self._clients)

    def opening(self) -> list[dict[str, Any]]:
        """The server events recorded before the first client event."""
        return [copy.deepcopy(e) for e in self._opening]

    def _release_through(self, j: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for k in range(self._cursor, j + 1):
            out.extend(copy.deepcopy(e) for e in self._answers[k])
        self.matched += j + 1 - self._cursor
        self._cursor = j + 1
        return out

    def answer(self, msg: Any) -> list[dict[str, Any]]:
        """The server events answering one decoded client event (see the module's matching rule)."""
        if not isinstance(msg, dict):
            return []
        etype = msg.get("type")
        if etype == APPEND:
            self._client_audio += _b64_len(msg.get("audio"))
            out: list[dict[str, Any]] = []
            while (
                self._cursor < len(self._clients)
                and self._clients[self._cursor].get("type") == APPEND
                and self._audio_end[self._cursor] <= self._client_audio
            ):
                out.extend(self._release_through(self._cursor))
            return out
        for j in range(self._cursor, len(self._clients)):
            if self._clients[j].get("type") == etype:
                return self._release_through(j)
        self.extra += 1
        return []


# --- the server ----------------------------------------------------------------------------------------


class ReplayServer:
    """Serves a trace on ``ws://127.0.0.1:PORT`` (``async with``; ``url`` as the emulator's)."""

    def __init__(self, trace: TraceSource, host: str = "127.0.0.1", port: int = 0) -> None:
        if not is_loopback_host(host):
            raise InvalidValue(f"refusing to listen on {host!r}: the replay server binds loopback only")
        self.trace = load_trace(trace)
        if not self.trace:
            raise ReplayError(
                "the trace is empty: nothing to replay; pass recorded events or a recording directory"
            )
        self.host = host
        self.port = port
        self.connections_total = 0
        self.scripts: list[ReplayScript] = []
        self._server: Server | None = None

    @property
    def url(self) -> str:
        """``ws://HOST:PORT`` (clients append ``/voice-live/realtime?...`` themselves)."""
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> None:
        if self._server is not None:
            raise StateError("the replay server is already running")
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            max_size=16 * 1024 * 1024,
            compression=None,
            logger=logging.getLogger("voicelive_nb.emulator.replay.websockets"),
        )
        sockets = list(self._server.sockets)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        logger.info("replay server listening on %s (%d events)", self.url, len(self.trace))

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def __aenter__(self) -> ReplayServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @staticmethod
    def _process_request(connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path.rstrip("/")
        if not path.endswith(ROUTE):
            return connection.respond(
                404, f"not found: {path!r}; the replay server serves <any prefix>{ROUTE}\n"
            )
        return None  # credentials are not checked (and never logged): this is a local replay

    async def _send_all(self, ws: ServerConnection, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            await ws.send(json.dumps(event, separators=(",", ":"), ensure_ascii=False))

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections_total += 1
        script = ReplayScript(self.trace)
        self.scripts.append(script)
        try:
            await self._send_all(ws, script.opening())
            async for message in ws:
                msg, problem = decode_client_frame(message)
                if problem is not None:
                    await self._send_all(ws, [error_event("invalid_json", problem)])
                    continue
                if not isinstance(msg, dict):
                    await self._send_all(
                        ws, [error_event("invalid_event", "a client event must be a JSON object")]
                    )
                    continue
                await self._send_all(ws, script.answer(msg))
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            raise
        except Exception:  # never let one connection's surprise take the server down
            logger.exception("replay connection failed")
            with contextlib.suppress(Exception):
                await ws.close(1011, "replay server error")
