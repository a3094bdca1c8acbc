"""The session API a supervisor needs (#12): ``Session.wait_closed()`` against the emulator over 127.0.0.1."""

from __future__ import annotations

import asyncio

from voicelive_nb import Session, SessionConfig
from voicelive_nb.audio.memory import SilenceSource
from voicelive_nb.emulator.server import run_emulator

KEY = "test-key-0123456789abcdef"


async def test_wait_closed_waits_for_the_connection_to_end() -> None:
    async with run_emulator(api_key=KEY, pace="fast") as emu:
        s = Session(SessionConfig.server_vad(), endpoint=emu.url, api_key=KEY, dotenv=False)
        await s.open()
        closed = asyncio.ensure_future(s.wait_closed())
        # a full round trip to the server: the connection is alive, so wait_closed has not returned
        await s.update(instructions="still here")
        assert not closed.done()
        await s.close()
        await asyncio.wait_for(closed, timeout=15)
    assert closed.result() is None
    assert s.status == "closed"


async def test_wait_closed_returns_when_the_server_goes_away() -> None:
    async with run_emulator(api_key=KEY, pace="fast") as emu:
        s = Session(SessionConfig.server_vad(), endpoint=emu.url, api_key=KEY, dotenv=False)
        await s.open()
        closed = asyncio.ensure_future(s.wait_closed())
        await s.update(instructions="still here")
        assert not closed.done()
    # the emulator has shut down: the connection ended without the client closing it
    await asyncio.wait_for(closed, timeout=15)
    assert s.status != "connected"
    await s.close()


def test_connection_summary_names_the_service_without_the_secret() -> None:
    from voicelive_nb.notebook_session import NotebookSession

    endpoint = "https://example-voice.cognitiveservices.azure.com/?sig=abcdefsecret"
    nb = NotebookSession(endpoint=endpoint, api_key=KEY, model="gpt-4o", dotenv=False)
    summary = nb.connection_summary()
    assert summary.emulator is False
    assert summary.auth == "api-key"
    assert summary.model == "gpt-4o"
    assert summary.endpoint.startswith("https://example-voice.cognitiveservices.azure.com/")
    text = repr(summary) + summary.endpoint + (summary.key or "")
    assert KEY not in text
    assert "abcdefsecret" not in text


def test_connection_summary_uses_the_sessions_emulator_rule() -> None:
    from voicelive_nb.notebook_session import NotebookSession

    assert NotebookSession(emulator=True, dotenv=False).connection_summary().emulator is True
    assert NotebookSession(emulator=True, dotenv=False).connection_summary().auth == "emulator"
    configured = NotebookSession(endpoint="https://x.cognitiveservices.azure.com", api_key=KEY, dotenv=False)
    assert configured.connection_summary().emulator is False


async def test_end_stream_returns_once_a_finished_source_is_sent() -> None:
    async with run_emulator(api_key=KEY, pace="fast") as emu:
        async with Session(SessionConfig.manual(), endpoint=emu.url, api_key=KEY, dotenv=False) as s:
            s.stream(SilenceSource(200, pace="fast"))
            assert await s.end_stream(timeout=10) is True
            assert s.source_done.is_set()
            assert s.frames_sent == 10  # 200 ms in 20 ms frames, all of them sent
            assert await s.end_stream() is True  # nothing running: at once


async def test_end_stream_cancels_a_stream_that_does_not_end() -> None:
    async with run_emulator(api_key=KEY, pace="fast") as emu:
        async with Session(SessionConfig.manual(), endpoint=emu.url, api_key=KEY, dotenv=False) as s:
            s.stream(SilenceSource())  # a live source: real time, no end
            assert await s.end_stream(timeout=0.2) is False
            assert s.source_done.is_set()
            assert "voicelive-audio" not in [t.get_name() for t in s.background_tasks()]
            sent = s.frames_sent
            await s.update(instructions="still here")  # the connection goes on without the stream
            assert s.frames_sent == sent and s.status == "connected"
