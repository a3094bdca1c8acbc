"""NotebookSession: the sync facade cells use, running on the engine thread against a real emulator."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_until

from voicelive_nb import SessionConfig
from voicelive_nb.emulator.server import BackgroundEmulator, Faults, start_in_thread
from voicelive_nb.errors import ConfigError, VoiceLiveError, WaitTimeout
from voicelive_nb.notebook_session import NotebookSession, StopIncompleteWarning


def make(emulator: BackgroundEmulator, **kw: object) -> NotebookSession:
    return NotebookSession(
        kw.pop("config", SessionConfig.server_vad()),  # type: ignore[arg-type]
        endpoint=emulator.url,
        api_key="k",
        mic=False,
        speaker=False,
        dotenv=False,
        **kw,  # type: ignore[arg-type]
    )


def test_start_returns_at_once_and_a_turn_completes(emulator: BackgroundEmulator, question_wav: Path) -> None:
    s = make(emulator)
    t0 = time.monotonic()
    s.start()
    assert time.monotonic() - t0 < 0.5  # non-blocking
    assert s.status in ("connecting", "connected")
    try:
        wait_until(lambda: s.status == "connected")
        s.speak(question_wav, pace="fast")
        done = s.wait_for("response.done", timeout=30)
        assert done.response["status"] == "completed"
        assert any(t.role == "assistant" and t.text for t in s.transcript)
        assert s.events[0].type == "session.created"
    finally:
        s.stop()
    assert s.status == "stopped"


def test_session_keeps_running_while_the_main_thread_blocks(
    emulator: BackgroundEmulator, question_wav: Path
) -> None:
    s = make(emulator)
    s.start(wait=True)
    sent_at: list[float] = []
    try:
        assert s.session is not None
        s.session.input_taps.append(lambda pcm: sent_at.append(time.monotonic()))  # runs on the engine thread
        s.speak(question_wav, pace="realtime", tail_silence_ms=2500)  # ~1.2 s of speech + 2.5 s of silence
        t0 = time.monotonic()
        time.sleep(2.0)  # a cell doing blocking work: the engine thread must not care
        t1 = time.monotonic()
        received = [t for t, _ in s.session.timed_events() if t0 <= t <= t1]
        assert received, "no event arrived while the main thread was blocked"
        # 20 ms frames kept going out at real-time pace: everything due by t1 was sent (the
        # emulator shares this process, so a burst of its reply may delay a few frames by a
        # fraction of a second; the paced source catches up, it does not drop)
        due = (t1 - sent_at[0]) / 0.020
        wait_until(lambda: len([t for t in sent_at if t <= t1 + 0.5]) >= due - 1, timeout=3)
        assert len([t for t in sent_at if t0 <= t <= t1]) >= 0.5 * 2.0 / 0.020
    finally:
        s.stop()


def test_update_validates_here_and_applies_live(emulator: BackgroundEmulator) -> None:
    s = make(emulator)
    with pytest.raises(ConfigError, match=r"temperature"):
        s.update(temperature=9.0)  # not running: still validated at once
    s.start(wait=True)
    try:
        updated = s.update(instructions="Answer briefly.")
        assert updated.session["instructions"] == "Answer briefly."
        with pytest.raises(ConfigError, match=r"turn_detection\.threshold"):
            s.update(turn_detection={"type": "server_vad", "threshold": -1})
        assert s.config.instructions == "Answer briefly."
    finally:
        s.stop()


def test_stop_is_idempotent_and_calls_need_a_running_session(emulator: BackgroundEmulator) -> None:
    s = make(emulator)
    s.stop()  # before start: fine
    with pytest.raises(VoiceLiveError, match="not running"):
        s.wait_for("response.done", timeout=1)
    s.start(wait=True)
    s.stop()
    s.stop()
    assert s.status == "stopped"
    assert not s.running


def test_connection_loss_shows_reason_quickly() -> None:
    emu = start_in_thread(
        pace="fast", faults=Faults(close_after_s=0.5, close_code=1011, close_reason="maintenance")
    )
    try:
        s = NotebookSession(endpoint=emu.url, api_key="k", mic=False, speaker=False, dotenv=False)
        s.start(wait=True)
        t_closed = time.monotonic()
        wait_until(lambda: s.status.startswith("failed"), timeout=5)
        assert time.monotonic() - t_closed < 0.5 + 1.0
        assert s.status == "failed: connection lost: 1011 server error: maintenance"
        s.stop()
    finally:
        emu.stop()


def test_auto_reconnect_replays_the_configuration() -> None:
    emu = start_in_thread(
        pace="fast", faults=Faults(close_after_s=0.4, close_code=1001, close_reason="going away")
    )
    try:
        s = NotebookSession(
            SessionConfig.server_vad(instructions="Remember me."),
            endpoint=emu.url,
            api_key="k",
            mic=False,
            speaker=False,
            dotenv=False,
            auto_reconnect=True,
            max_reconnects=2,
        )
        s.start(wait=True)
        wait_until(lambda: s.reconnects >= 1, timeout=10)
        wait_until(lambda: s.status == "connected" or s.status.startswith("failed"), timeout=10)
        session = s.session
        assert session is not None
        assert session.effective_session().get("instructions") == "Remember me."
        wait_until(lambda: s.reconnects == 2 and not s.running, timeout=15)
        assert s.status.startswith("failed: connection lost: 1001")
        s.stop()
    finally:
        emu.stop()


def test_start_stop_cycles_leave_threads_and_fds_at_baseline(emulator: BackgroundEmulator) -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    s = make(emulator)
    s.start(wait=True)  # warm up: the engine thread and the emulator's first connection exist
    s.stop()
    threads, files = threading.active_count(), fds()
    for _ in range(200):
        s.start(wait=True)
        s.stop()
    assert threading.active_count() == threads
    assert fds() <= files + 2


# --- loopback peers for the stop / start tests ------------------------------------------------------


class LoopbackPeer:
    """A small purpose-built Voice Live peer on 127.0.0.1, on its own thread.

    ``mode="stall"``: answers ``session.update`` with ``session.updated``, then never reads
    again (``max_queue=1``: websockets stops reading the socket, so the client's sends back up).
    ``mode="silent"``: accepts the WebSocket and never says anything (no ``session.created``).
    """

    def __init__(self, mode: str) -> None:
        import asyncio

        self.mode = mode
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="loopback-peer", daemon=True)
        self.thread.start()
        self.connections = 0
        self.open: list[Any] = []

        async def start() -> Any:
            from websockets.asyncio.server import serve

            self.release = asyncio.Event()
            return await serve(self._handler, "127.0.0.1", 0, max_queue=1, compression=None)

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.url = f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handler(self, ws: Any) -> None:
        import json

        self.connections += 1
        self.open.append(ws)
        if self.mode == "stall":
            await ws.send(json.dumps({"type": "session.created", "event_id": "e1", "session": {"id": "s1"}}))
            update = json.loads(await ws.recv())
            await ws.send(
                json.dumps(
                    {"type": "session.updated", "event_id": "e2", "session": update.get("session", {})}
                )
            )
        await self.release.wait()  # never reads again

    def close(self) -> None:
        import asyncio

        async def stop() -> None:
            self.release.set()
            for ws in self.open:  # this peer does not read: no polite close with it either
                ws.transport.abort()
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def streaming_source() -> Any:
    import numpy as np

    from voicelive_nb.audio.memory import ArraySource

    return ArraySource(np.zeros(4800, dtype=np.float32), 24000, loop=True, pace="fast")


def test_stop_with_a_peer_that_stopped_reading_leaves_nothing_running() -> None:
    peer = LoopbackPeer("stall")
    try:
        s = NotebookSession(
            endpoint=peer.url,
            api_key="k",
            mic=streaming_source(),
            speaker=False,
            dotenv=False,
            emulator=False,
        )
        s.start(wait=True, timeout=10)
        session = s.session
        assert session is not None
        # audio goes up as fast as it can until the peer's socket buffers are full
        wait_until(lambda: session.bytes_sent > 1_000_000, timeout=10)
        sent = session.bytes_sent
        wait_until(lambda: session.bytes_sent == sent or session.bytes_sent > 50_000_000, timeout=10)
        t0 = time.monotonic()
        status = s.stop(timeout=1.0)
        took = time.monotonic() - t0
        assert status == "stopped" == s.status
        assert took < 1.0 + 2.0 + 0.5
        assert s.left_running == []
        assert not s.running
        # the connection and every task of it are really gone
        assert session.still_running() == []
        ws = session._transport._ws  # type: ignore[union-attr]
        assert ws.state.name == "CLOSED"
        assert ws.keepalive_task is None or ws.keepalive_task.done()
    finally:
        peer.close()


def test_stop_says_what_it_left_running(emulator: BackgroundEmulator) -> None:
    import asyncio

    release = threading.Event()

    async def stubborn(event: Any) -> None:  # an async handler that refuses to be cancelled
        while not release.is_set():
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                continue

    s = make(emulator)
    s.on("session.updated", stubborn)
    s.start(wait=True)
    try:
        with pytest.warns(StopIncompleteWarning, match="1 background task"):
            status = s.stop(timeout=0.3)
        assert status.startswith("stop incomplete: still running: ")
        assert "1 background task" in s.left_running
        assert s.status == status
    finally:
        release.set()
        wait_until(lambda: not s.running, timeout=10)


def test_stop_without_waiting_returns_a_future(emulator: BackgroundEmulator) -> None:
    s = make(emulator)
    s.start(wait=True)
    future = s.stop(wait=False)
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(timeout=10) == "stopped"
    assert not s.running
    assert s.stop(wait=False).result(timeout=1) == "stopped"  # idempotent


def test_start_async_honours_its_timeout() -> None:
    import asyncio

    peer = LoopbackPeer("silent")  # never sends session.created
    try:
        s = NotebookSession(
            endpoint=peer.url, api_key="k", mic=False, speaker=False, dotenv=False, setup_timeout_s=60
        )

        async def cell() -> None:
            await s.start_async(timeout=0.5)

        t0 = time.monotonic()
        with pytest.raises(WaitTimeout, match=r"not connected within 0\.5 s \(status: connecting\)"):
            asyncio.run(cell())
        assert time.monotonic() - t0 < 3
        wait_until(lambda: not s.running, timeout=5)
        assert s.status == "stopped"
    finally:
        peer.close()


def test_setup_timeout_is_used() -> None:
    peer = LoopbackPeer("silent")
    try:
        s = NotebookSession(
            endpoint=peer.url, api_key="k", mic=False, speaker=False, dotenv=False, setup_timeout_s=0.3
        )
        t0 = time.monotonic()
        with pytest.raises(WaitTimeout, match=r"no session\.created within 0\.3 s"):
            s.start(wait=True, timeout=10)
        assert time.monotonic() - t0 < 3
        assert s.status.startswith("failed")
        with pytest.raises(ConfigError, match="connect_timeout_s"):
            NotebookSession(connect_timeout_s=0, dotenv=False)
        with pytest.raises(ConfigError, match="max_reconnects"):
            NotebookSession(max_reconnects=-1, dotenv=False)
        with pytest.raises(ConfigError, match="speaker_memory_bytes"):
            NotebookSession(speaker_memory_bytes=0, dotenv=False)
    finally:
        peer.close()


def test_wait_for_timeout_names_the_event_and_says_the_mic_is_off(emulator: BackgroundEmulator) -> None:
    s = make(emulator)
    s.start(wait=True)
    try:
        with pytest.raises(WaitTimeout) as info:
            s.wait_for("response.done", timeout=0.5)
        text = str(info.value)
        assert "no response.done within 0.5 s" in text
        assert "the microphone is off (mic=False)" in text
        assert "speak(wav)" in text
    finally:
        s.stop()


def test_healthy_connections_reset_the_reconnect_budget() -> None:
    emu = start_in_thread(
        pace="fast", faults=Faults(close_after_s=0.6, close_code=1001, close_reason="going away")
    )
    statuses: list[str] = []
    try:
        s = NotebookSession(
            endpoint=emu.url,
            api_key="k",
            mic=False,
            speaker=False,
            dotenv=False,
            auto_reconnect=True,
            max_reconnects=1,
            reconnect_delay_s=0.05,
            reconnect_healthy_s=0.3,  # each connection lives 0.6 s: healthy
        )
        s.add_listener(lambda ns: statuses.append(ns.status))
        s.start(wait=True)
        # with a per-lifetime budget of 1 the session would have died at the second loss
        wait_until(lambda: s.reconnects >= 4, timeout=20)
        assert s.running
        assert any(st.startswith("reconnecting (1/1): connection lost: 1001 going away") for st in statuses)
        assert not any(st.startswith("reconnecting (2/") for st in statuses)
        s.stop()
        assert s.status == "stopped"
    finally:
        emu.stop()


def test_unhealthy_reconnects_back_off_and_give_up() -> None:
    emu = start_in_thread(
        pace="fast", faults=Faults(close_after_s=0.2, close_code=1011, close_reason="maintenance")
    )
    statuses: list[str] = []
    try:
        s = NotebookSession(
            endpoint=emu.url,
            api_key="k",
            mic=False,
            speaker=False,
            dotenv=False,
            auto_reconnect=True,
            max_reconnects=3,
            reconnect_delay_s=0.2,
            reconnect_max_delay_s=0.5,
            reconnect_healthy_s=30,
        )
        s.add_listener(lambda ns: statuses.append(ns.status))
        t0 = time.monotonic()
        s.start(wait=True)
        wait_until(lambda: not s.running, timeout=20)
        elapsed = time.monotonic() - t0
        seen = [st for st in dict.fromkeys(statuses) if st.startswith("reconnecting")]
        assert [st.split(":")[0] for st in seen] == [
            "reconnecting (1/3)",
            "reconnecting (2/3)",
            "reconnecting (3/3)",
        ]
        assert s.status == (
            "failed: connection lost: 1011 server error: maintenance "
            "(gave up after 3 consecutive failed reconnects)"
        )
        # back-off 0.2 + 0.4 + 0.5 (capped) on top of 4 connections of 0.2 s each
        assert elapsed >= 0.2 + 0.4 + 0.5 + 4 * 0.2
        s.stop()
    finally:
        emu.stop()


# --- reconnect with a fresh Microsoft Entra ID token -------------------------------------------------


class CountingTokenCredential:
    """A real ``azure.core.credentials_async.AsyncTokenCredential``: a new, distinct token per call."""

    def __init__(self) -> None:
        self.issued: list[str] = []

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> Any:
        from azure.core.credentials import AccessToken

        token = f"token-{len(self.issued) + 1}-{os.urandom(4).hex()}"
        self.issued.append(token)
        return AccessToken(token, int(time.time()) + 3600)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> CountingTokenCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass


class RecordingProxy:
    """A loopback WebSocket proxy that records each handshake's Authorization and forwards it upstream."""

    def __init__(self, upstream: str) -> None:
        import asyncio

        self.upstream = upstream
        self.authorizations: list[str | None] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="recording-proxy", daemon=True)
        self.thread.start()

        async def start() -> Any:
            from websockets.asyncio.server import serve

            return await serve(self._handler, "127.0.0.1", 0, compression=None, max_size=None)

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.url = f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handler(self, ws: Any) -> None:
        import asyncio

        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        auth = ws.request.headers.get("Authorization")
        self.authorizations.append(auth)
        async with connect(
            self.upstream + ws.request.path,
            additional_headers={"Authorization": auth or ""},
            compression=None,
        ) as up:

            async def pipe(src: Any, dst: Any) -> None:
                with contextlib.suppress(ConnectionClosed):
                    async for message in src:
                        await dst.send(message)

            tasks = [asyncio.create_task(pipe(ws, up)), asyncio.create_task(pipe(up, ws))]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
            await ws.close(up.close_code or 1000, up.close_reason or "")

    def close(self) -> None:
        import asyncio

        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_every_reconnect_presents_a_fresh_entra_token() -> None:
    pytest.importorskip("azure.core")
    from azure.core.credentials_async import AsyncTokenCredential

    # the emulator takes any Bearer token (its public accept_any_bearer option) but no api-key
    emu = start_in_thread(
        pace="fast",
        api_key="not-used-by-this-test",
        accept_any_bearer=True,
        faults=Faults(close_after_s=0.4, close_code=1001, close_reason="going away"),
    )
    proxy = RecordingProxy(emu.url)
    credential = CountingTokenCredential()
    assert isinstance(credential, AsyncTokenCredential)  # the azure-core protocol, for real
    try:
        s = NotebookSession(
            endpoint=proxy.url,
            credential=credential,
            mic=False,
            speaker=False,
            dotenv=False,
            emulator=False,
            auto_reconnect=True,
            max_reconnects=3,
            reconnect_delay_s=0.05,
        )
        s.start(wait=True)
        wait_until(lambda: s.reconnects >= 2 and s.status == "connected", timeout=15)
        s.stop()
    finally:
        proxy.close()
        emu.stop()
    assert len(proxy.authorizations) >= 3
    # each connection presented the token fetched for it, and no token twice
    assert proxy.authorizations == [f"Bearer {t}" for t in credential.issued[: len(proxy.authorizations)]]
    assert len(set(proxy.authorizations)) == len(proxy.authorizations)


# --- half duplex ----------------------------------------------------------------------------------------


class MutableLoopSource:
    """A microphone-like source (real time, looping speech) with a ``muted`` switch like MicrophoneSource's."""

    def __init__(self, wav: Path) -> None:
        from voicelive_nb.audio.wav import WavSource

        self._inner = WavSource(wav, pace="realtime", loop=True, tail_silence_ms=1500)
        self.muted = False
        self.sent: list[tuple[bool, bool]] = []  # (muted, all zero) per frame

    async def frames(self, sample_rate: int, frame_ms: int = 20) -> Any:
        async for frame in self._inner.frames(sample_rate, frame_ms):
            out = bytes(len(frame)) if self.muted else frame
            self.sent.append((self.muted, not any(out)))
            yield out

    async def aclose(self) -> None:
        await self._inner.aclose()


def test_half_duplex_mutes_the_mic_while_the_assistant_speaks(question_wav: Path) -> None:
    long_reply = "Here is a long answer that keeps the assistant talking for quite a while, on and on. "
    emu = start_in_thread(pace="realtime", replies=lambda text: long_reply)
    try:
        mic = MutableLoopSource(question_wav)
        s = NotebookSession(
            endpoint=emu.url,
            api_key="k",
            mic=mic,
            speaker=False,
            dotenv=False,
            half_duplex=True,
        )
        s.start(wait=True)
        try:
            s.wait_for("response.created", timeout=30)  # the looping question was heard
            wait_until(lambda: mic.muted, timeout=2)  # muted within a pump tick or two
            n = len(mic.sent)
            wait_until(lambda: len(mic.sent) > n + 25, timeout=5)  # half a second of talking over it
            during = mic.sent[n : n + 25]
            assert all(muted and zero for muted, zero in during), "the user's audio went up mid-reply"
            done = s.wait_for("response.done", timeout=60)
            assert done.response["status"] == "completed"  # never barged in on
            wait_until(lambda: not mic.muted, timeout=2)  # the microphone is back once it is done
        finally:
            s.stop()
    finally:
        emu.stop()
