"""How a cell's call reaches the live connection of a :class:`~voicelive_nb.notebook_session.NotebookSession`.

Cells run on the kernel's thread; the connections live on the engine thread and change under a
rollover. :class:`CellCalls` is the one path between them: it checks that the session runs,
runs a coroutine on the engine for the connection that is current *when it runs* (so nothing a
cell sends lands on a connection a rollover just retired, and the rollover waits for it), blocks
for the result with a timeout or hands back a future, and explains a timeout (no audio going up:
the microphone is off or muted, the source has ended).
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .errors import VoiceLiveError, WaitTimeout
from .notebook_rollover import ANSWERED_BY, notes

if TYPE_CHECKING:
    from .audio.base import AudioSource
    from .engine import Engine
    from .notebook_audio import SessionAudio
    from .notebook_rollover import RolloverDriver
    from .session import Session

T = TypeVar("T")


class CallsHost(Protocol):
    """What the calls read of their notebook session (its public API)."""

    mic_spec: Any
    half_duplex: bool

    @property
    def engine(self) -> Engine: ...

    @property
    def running(self) -> bool: ...

    @property
    def status(self) -> str: ...

    @property
    def session(self) -> Session | None: ...


class CellCalls:
    """A cell's calls on the current connection: run on the engine, block or hand back a future."""

    def __init__(self, host: CallsHost, rollover: RolloverDriver, audio: SessionAudio) -> None:
        self.host = host
        self.rollover = rollover
        self.audio = audio

    def live(self) -> Session:
        """The current connection; a :class:`VoiceLiveError` when the session is not running."""
        host = self.host
        session = host.session
        if session is None or not host.running:
            raise VoiceLiveError(f"the session is not running (status: {host.status}); call start() first")
        return session

    async def on_current(self, call: Callable[[Session], Any], asks: str | None = None) -> Any:
        """Run ``call(session)`` on the connection that is current when it runs (on the engine loop),
        so that nothing sent from a cell lands on a connection that a rollover just retired."""
        session = self.live()
        if asks is not None:  # the service answers with ``asks``: until then the moment is not quiet
            notes(session).asked[asks] = time.monotonic()
        with self.rollover.sending(session):
            return await call(session)

    def run(self, coro: Any, timeout: float) -> Any:
        return self.host.engine.run(coro, timeout=timeout)

    def call(self, coro: Any, timeout: float, wait: bool) -> Any:
        """Run on the engine: block for the result, or hand back its future (``wait=False``)."""
        if wait:
            return self.run(coro, timeout)
        return self.host.engine.submit(coro)

    def post(self, call: Callable[[Session], Any], asks: str | None, timeout: float, wait: bool) -> Any:
        """``call(session)`` on the current connection (checked running first), as :meth:`call`."""
        self.live()
        return self.call(self.on_current(call, asks), timeout, wait)

    def send(self, event: Any, timeout: float, wait: bool) -> Any:
        """Send one client event; a ``response.create`` or ``conversation.item.create`` awaits its answer."""
        self.live()
        kind = event.get("type") if isinstance(event, Mapping) else getattr(event, "type", None)
        asks = ANSWERED_BY.get(kind) if isinstance(kind, str) else None
        return self.call(self.on_current(lambda s: s.send(event), asks), timeout, wait)

    def end_turn(self, response: dict[str, Any], wait: bool) -> Any:
        """Commit the input buffer and ask for a response, in that order on one connection."""

        async def both(s: Session) -> None:
            await s.send({"type": "input_audio_buffer.commit"})
            await s.create_response(**response)

        return self.post(both, "response.created", 10, wait)

    def speak(self, audio: str | Path | AudioSource, pace: str, tail_silence_ms: int) -> None:
        """Stream ``audio`` (a WAV path or a source) as the user, then go back to the microphone."""
        session = self.live()
        if isinstance(audio, (str, Path)):
            from .audio.wav import WavSource

            source: AudioSource = WavSource(audio, pace=pace, tail_silence_ms=tail_silence_ms)  # type: ignore[arg-type]
        else:
            source = audio
        self.host.engine.call_soon(session.stream, self.audio.then_resume(source))

    def snapshot(self, read: Callable[[Session], T], default: T) -> T:
        """``read(session)`` from any thread: retried when the engine thread changed it meanwhile,
        at last on the engine itself; ``default`` without a session."""
        host = self.host
        session = host.session
        if session is None:
            return default
        for _ in range(10):
            try:
                return read(session)
            except RuntimeError:  # mutated by the engine thread while copying: try again
                continue
        if host.running:

            async def snap() -> T:
                return read(session)

            result: T = host.engine.run(snap(), timeout=5)
            return result
        return read(session)

    # ------------------------------------------------------------------ waiting for events

    def wait_for(self, event_type: str, timeout: float, predicate: Callable[[Any], bool] | None) -> Any:
        session = self.live()
        future = self.host.engine.submit(session.wait_for(event_type, timeout, predicate))
        try:
            return future.result(timeout + 5)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise WaitTimeout(self.timeout_message(event_type, timeout, session)) from None
        except WaitTimeout:
            raise WaitTimeout(self.timeout_message(event_type, timeout, session)) from None

    async def wait_for_async(
        self, event_type: str, timeout: float, predicate: Callable[[Any], bool] | None
    ) -> Any:
        session = self.live()
        try:
            return await self.host.engine.run_async(session.wait_for(event_type, timeout, predicate))
        except WaitTimeout:
            raise WaitTimeout(self.timeout_message(event_type, timeout, session)) from None

    def timeout_message(self, event_type: str, timeout: float, session: Session) -> str:
        text = f"no {event_type} within {timeout:g} s (status: {self.host.status})"
        note = self.input_note(session)
        return f"{text}; {note}" if note else text

    def input_note(self, session: Session) -> str:
        """Why no user audio may be reaching the service, or '' when it is."""
        source = session.source
        if source is None:
            why = "mic=False" if self.host.mic_spec in (False, None) else "no input device"
            return (
                f"the microphone is off ({why}), so no audio is being sent: "
                "use speak(wav), or commit() / create_response() to get a reply"
            )
        if session.source_done.is_set():
            return "the audio source has ended, so no audio is being sent: use speak(wav) to send more"
        if getattr(self.audio.mic, "muted", False) and self.audio.from_mic(source):
            return "the microphone is muted" + (" (half duplex)" if self.host.half_duplex else "")
        return ""
