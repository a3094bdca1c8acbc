"""``NotebookSession``: a live session for notebook cells — sync, non-blocking, on the engine thread.

::

    s = NotebookSession()          # Azure if AZURE_VOICE_LIVE_ENDPOINT is set, else the built-in emulator
    s.start()                      # returns at once; the session runs on the engine thread
    s.status                       # 'connecting' → 'connected'
    s.update(instructions="Be brief.")   # live session.update (validated here, sent there)
    s.wait_for("response.done", timeout=30)
    s.stop()                       # prompt, idempotent, leaves nothing running

Microphone and speaker: ``mic="auto"`` / ``speaker="auto"`` use the default sounddevice
devices when there are any and otherwise run without them (``speak(wav)`` then plays a WAV
file as the user, and replies are kept in memory). A device name or index picks a device;
``mic=False`` turns the microphone off. ``half_duplex=True`` mutes the microphone while the
assistant speaks (laptop speakers without a headset).

Every blocking call has a timeout and an awaitable twin (``await s.wait_for_async(...)``)
for cells that ``await``. Handlers given to :meth:`on` run on the engine thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .audio.base import AudioSink, AudioSource
from .engine import Engine, get_engine
from .errors import AudioDeviceUnavailable, ConnectionClosed, VoiceLiveError, WaitTimeout
from .protocol.config import SessionConfig
from .session import Session, updated_config

log = logging.getLogger("voicelive_nb.notebook")

T = TypeVar("T")

#: How often the background pump refreshes derived state (mute, UI listeners): ≤ 20 Hz.
PUMP_INTERVAL_S = 0.05


class NotebookSession:
    """A :class:`~voicelive_nb.session.Session` driven from cells and widgets."""

    def __init__(
        self,
        config: SessionConfig | Mapping[str, Any] | None = None,
        *,
        mic: bool | str | int | AudioSource = "auto",
        speaker: bool | str | int | AudioSink = "auto",
        endpoint: str | None = None,
        api_key: str | None = None,
        credential: Any = None,
        model: str | None = None,
        api_version: str | None = None,
        record: str | Path | None = None,
        half_duplex: bool = False,
        emulator: bool | str = "auto",
        emulator_options: Mapping[str, Any] | None = None,
        auto_reconnect: bool = False,
        max_reconnects: int = 5,
        engine: Engine | None = None,
        dotenv: bool = True,
    ) -> None:
        if config is None:
            config = SessionConfig.server_vad()
        elif isinstance(config, Mapping):
            config = SessionConfig.from_dict(dict(config))
        self.config: SessionConfig = config
        self.mic_spec = mic
        self.speaker_spec = speaker
        self.half_duplex = half_duplex
        self.auto_reconnect = auto_reconnect
        self.max_reconnects = max_reconnects
        self.record = record
        self._session_kwargs: dict[str, Any] = {
            "endpoint": endpoint,
            "api_key": api_key,
            "credential": credential,
            "model": model,
            "api_version": api_version,
            "emulator": emulator,
            "emulator_options": emulator_options,
            "dotenv": dotenv,
        }
        self._engine = engine
        self._session: Session | None = None
        self._future: concurrent.futures.Future[None] | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._status = "idle"
        self._error: BaseException | None = None
        self.mic: AudioSource | None = None
        self.speaker: AudioSink | None = None
        self.audio_notes: list[str] = []
        self.reconnects = 0
        self._handlers: list[tuple[str, Callable[[Any], Any]]] = []
        self._listeners: list[Callable[[NotebookSession], None]] = []

    # ------------------------------------------------------------------ lifecycle

    @property
    def engine(self) -> Engine:
        if self._engine is None or not self._engine.running:
            self._engine = get_engine()
        return self._engine

    @property
    def running(self) -> bool:
        return self._future is not None and not self._future.done()

    def start(self, *, wait: bool = False, timeout: float = 30.0) -> NotebookSession:
        """Start in the background and return at once (``wait=True``: until connected).

        Starting a running session does nothing. A microphone or speaker that was asked
        for by name and is missing raises :class:`AudioDeviceUnavailable` here.
        """
        if self.running:
            return self
        self._error = None
        self._started.clear()
        self._open_audio()
        self._status = "connecting"
        self._future = self.engine.submit(self._main())
        self._future.add_done_callback(self._finished)
        if wait:
            if not self._started.wait(timeout):
                raise WaitTimeout(f"not connected within {timeout:g} s (status: {self.status})")
            if self._error is not None:
                raise self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop streaming and close the connection; blocks until done (idempotent)."""
        future = self._future
        if future is None or future.done():
            self._close_audio()
            return
        if self._stop is not None:
            self.engine.call_soon(self._stop.set)
        else:
            future.cancel()
        with contextlib.suppress(
            concurrent.futures.CancelledError, concurrent.futures.TimeoutError, Exception
        ):
            future.result(timeout)
        if not future.done():
            future.cancel()
        self._close_audio()

    async def start_async(self, timeout: float = 30.0) -> NotebookSession:
        """Awaitable :meth:`start`: returns once connected."""
        self.start()
        await asyncio.get_running_loop().run_in_executor(None, self._started.wait, timeout)
        if self._error is not None:
            raise self._error
        return self

    async def stop_async(self, timeout: float = 10.0) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.stop, timeout)

    def _finished(self, future: concurrent.futures.Future[None]) -> None:
        self._started.set()  # never leave a waiter hanging
        if future.cancelled():
            if not self._status.startswith("failed"):
                self._status = "stopped"
            return
        exc = future.exception()
        if exc is not None:
            self._error = exc
            self._status = f"failed: {type(exc).__name__}: {exc}"
            log.error("voice session failed: %s", exc)

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        attempt = 0
        try:
            while True:
                session = self._new_session()
                self._session = session
                try:
                    await session.open()
                except BaseException as exc:
                    self._error = exc
                    self._status = session.status
                    self._started.set()
                    raise
                self._status = "connected"
                self._started.set()
                pump = asyncio.get_running_loop().create_task(self._pump(session))
                stop_wait = asyncio.get_running_loop().create_task(self._stop.wait())
                reader = session._reader
                waits: set[asyncio.Future[Any]] = {stop_wait}
                if reader is not None:
                    waits.add(reader)
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                pump.cancel()
                stop_wait.cancel()
                failure = session.failure
                lost = isinstance(failure, ConnectionClosed) and not self._stop.is_set()
                await session.close()
                if not lost:
                    self._status = "stopped" if failure is None else session.status
                    return
                if not self.auto_reconnect or attempt >= self.max_reconnects:
                    self._status = session.status
                    return
                attempt += 1
                self.reconnects += 1
                self._status = f"reconnecting ({attempt}/{self.max_reconnects}): {session.status}"
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=min(0.25 * 2**attempt, 5.0))
                if self._stop.is_set():
                    self._status = "stopped"
                    return
        finally:
            self._notify()

    def _new_session(self) -> Session:
        session = Session(
            self.config,
            source=self.mic,
            sink=self.speaker,
            record=self._record_dir(),
            close_audio=False,
            **self._session_kwargs,
        )
        for event_type, handler in self._handlers:
            session.on(event_type, handler)
        return session

    def _record_dir(self) -> Path | None:
        if self.record is None:
            return None
        base = Path(self.record)
        return base if self.reconnects == 0 else base.with_name(f"{base.name}-reconnect{self.reconnects}")

    async def _pump(self, session: Session) -> None:
        """≤ 20 Hz: half-duplex muting and UI listeners; never the audio path itself."""
        while True:
            if self.half_duplex and self.mic is not None and hasattr(self.mic, "muted"):
                speaking = session.state.active_response is not None or _sink_busy(self.speaker)
                self.mic.muted = speaking
            self._notify()
            await asyncio.sleep(PUMP_INTERVAL_S)

    def _notify(self) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(self)
            except Exception:
                log.exception("session listener failed")

    def add_listener(self, listener: Callable[[NotebookSession], None]) -> None:
        """Call ``listener(self)`` on the engine thread at ≤ 20 Hz while running (for UIs)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[NotebookSession], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    # ------------------------------------------------------------------ audio devices

    def _open_audio(self) -> None:
        self.audio_notes = []
        self.mic = self._resolve(self.mic_spec, "input")  # type: ignore[assignment]
        self.speaker = self._resolve(self.speaker_spec, "output")  # type: ignore[assignment]

    def _resolve(self, spec: Any, kind: str) -> AudioSource | AudioSink | None:
        if spec is False or spec is None:
            return None if kind == "input" else _memory_sink()
        if not isinstance(spec, (str, int)):  # a source or sink object (bool is an int)
            return spec  # type: ignore[no-any-return]
        from .audio import device

        ok, reason = device.audio_available()
        device_spec = None if spec in (True, "auto") else spec
        if not ok:
            if spec == "auto":
                self.audio_notes.append(f"no {kind} device: {reason}")
                return None if kind == "input" else _memory_sink()
            raise AudioDeviceUnavailable(
                f"{'microphone' if kind == 'input' else 'speaker'} not available: {reason}"
            )
        try:
            if kind == "input":
                microphone = device.MicrophoneSource(device_spec, max_queue_s=10.0)
                microphone.persistent = True  # buffers (bounded) while reconnecting
                mic: AudioSource = microphone
                return mic
            speaker: AudioSink = device.SpeakerSink(device_spec)
            return speaker
        except AudioDeviceUnavailable as exc:
            if spec == "auto":
                self.audio_notes.append(str(exc))
                return None if kind == "input" else _memory_sink()
            raise

    def _close_audio(self) -> None:
        mic, speaker = self.mic, self.speaker
        if mic is not None:
            with contextlib.suppress(Exception):
                self.engine.run(mic.aclose(), timeout=5)
        if speaker is not None:
            with contextlib.suppress(Exception):
                speaker.close()

    # ------------------------------------------------------------------ talking to the session

    def _live(self) -> Session:
        if self._session is None or not self.running:
            raise VoiceLiveError(f"the session is not running (status: {self.status}); call start() first")
        return self._session

    def _run(self, coro: Any, timeout: float) -> Any:
        return self.engine.run(coro, timeout=timeout)

    def update(
        self,
        config: SessionConfig | Mapping[str, Any] | None = None,
        *,
        wait: bool = True,
        timeout: float = 15.0,
        **changes: Any,
    ) -> Any:
        """Change the configuration; live with ``session.update`` when running.

        The new configuration is validated here first (a bad value raises
        :class:`~voicelive_nb.errors.ConfigError` naming the field). With ``wait=True``
        returns the ``session.updated`` event; otherwise a future of it.
        """
        new = updated_config(self.config, config, changes)
        self.config = new
        if not self.running or self._session is None:
            return None
        future = self.engine.submit(self._session.update(new))
        if not wait:
            return future
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise WaitTimeout(f"no session.updated within {timeout:g} s") from None

    async def update_async(
        self, config: SessionConfig | Mapping[str, Any] | None = None, **changes: Any
    ) -> Any:
        return await asyncio.wrap_future(self.update(config, wait=False, **changes) or _done(None))

    def wait_for(
        self, event_type: str, timeout: float = 30.0, predicate: Callable[[Any], bool] | None = None
    ) -> Any:
        """Block until the next ``event_type`` (see :meth:`Session.wait_for`), at most ``timeout`` s."""
        session = self._live()
        return self._run(session.wait_for(event_type, timeout, predicate), timeout + 5)

    async def wait_for_async(
        self, event_type: str, timeout: float = 30.0, predicate: Callable[[Any], bool] | None = None
    ) -> Any:
        session = self._live()
        return await self.engine.run_async(session.wait_for(event_type, timeout, predicate))

    def send(self, event: Any, timeout: float = 10.0) -> None:
        self._run(self._live().send(event), timeout)

    def commit(self) -> None:
        self.send({"type": "input_audio_buffer.commit"})

    def create_response(self, **response: Any) -> None:
        self._run(self._live().create_response(**response), 10)

    def cancel_response(self) -> None:
        self.send({"type": "response.cancel"})

    def speak(
        self, audio: str | Path | AudioSource, *, pace: str = "realtime", tail_silence_ms: int = 1500
    ) -> None:
        """Play a WAV file (or any source) into the session as the user's voice.

        Replaces the microphone stream while it plays; useful without audio devices.
        """
        session = self._live()
        if isinstance(audio, (str, Path)):
            from .audio.wav import WavSource

            source: AudioSource = WavSource(audio, pace=pace, tail_silence_ms=tail_silence_ms)  # type: ignore[arg-type]
        else:
            source = audio
        self.engine.call_soon(session.stream, _ThenResume(source, self.mic))

    def on(self, event_type: str, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Call ``handler(event)`` (on the engine thread) for each ``event_type`` event, also after reconnects."""
        self._handlers.append((event_type, handler))
        if self._session is not None:
            self.engine.call_soon(self._session.on, event_type, handler)
        return handler

    # ------------------------------------------------------------------ views (safe from any thread)

    @property
    def status(self) -> str:
        session = self._session
        if self._status == "connected" and session is not None and session.status != "connected":
            return session.status
        return self._status

    @property
    def session(self) -> Session | None:
        """The live :class:`Session` (owned by the engine thread: read, don't drive it)."""
        return self._session

    @property
    def error(self) -> BaseException | None:
        session = self._session
        return self._error or (session.failure if session is not None else None)

    def _snapshot(self, read: Callable[[Session], T], default: T) -> T:
        session = self._session
        if session is None:
            return default
        for _ in range(10):
            try:
                return read(session)
            except RuntimeError:  # mutated by the engine thread while copying: try again
                continue
        if self.running:

            async def snap() -> T:
                return read(session)

            return self.engine.run(snap(), timeout=5)
        return read(session)

    @property
    def events(self) -> list[Any]:
        return self._snapshot(lambda s: s.events, [])

    @property
    def transcript(self) -> list[Any]:
        return self._snapshot(lambda s: list(s.state.transcript), [])

    @property
    def state(self) -> Any:
        session = self._session
        return session.state if session is not None else None

    def __repr__(self) -> str:
        return f"<NotebookSession {self.status}>"

    def __enter__(self) -> NotebookSession:
        return self.start(wait=True)

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _ThenResume:
    """Play ``first`` to the end, then go back to the microphone (if there is one)."""

    def __init__(self, first: AudioSource, then: AudioSource | None) -> None:
        self.first = first
        self.then = then

    async def frames(self, sample_rate: int, frame_ms: int = 20) -> AsyncIterator[bytes]:
        async for frame in self.first.frames(sample_rate, frame_ms):
            yield frame
        await self.first.aclose()
        if self.then is not None:
            async for frame in self.then.frames(sample_rate, frame_ms):
                yield frame

    async def aclose(self) -> None:
        await self.first.aclose()  # the microphone belongs to the NotebookSession


def _memory_sink() -> AudioSink:
    from .audio.memory import BufferSink

    return BufferSink()


def _sink_busy(sink: AudioSink | None) -> bool:
    queued = getattr(sink, "queued_ms", None)
    try:
        return bool(queued is not None and queued() > 0)
    except Exception:
        return False


def _done(value: Any) -> concurrent.futures.Future[Any]:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    future.set_result(value)
    return future
