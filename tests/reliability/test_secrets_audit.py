"""A distinctive key through everything, with DEBUG logging on every logger: found nowhere.

The key travels as the api-key header, in the endpoint's query, as URL userinfo (websockets
turns it into ``Authorization: Basic``), as a Bearer token, and inside an MCP tool header of
the ``session.update`` (which the emulator echoes back). Every log record of every logger is
captured and formatted (tracebacks included); recordings, reprs, status, URLs and the errors
of a refused handshake are searched for the key and its base64 forms.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from voicelive_nb import Session, SessionConfig
from voicelive_nb.audio.memory import ArraySource, BufferSink
from voicelive_nb.emulator.server import run_emulator
from voicelive_nb.errors import AuthenticationError
from voicelive_nb.speech.tts import synthesize

KEY = "Kx7-distinctive-SECRET-9f3a2b1c0d"
MCP_SECRET = "mcp-header-SECRET-5e6f7a8b9c"
TOKEN = "eyJ0eXAi.distinctive-BEARER-token.Zm9vYmFy"


def forms(secret: str) -> list[str]:
    """The secret and its base64 texts (alone, and after ``user:`` as in Basic auth)."""
    out = [secret]
    for prefix in ("", "user:", "u:"):
        encoded = base64.b64encode((prefix + secret).encode()).decode()
        out += [encoded, encoded.rstrip("=")]
    out.append(base64.b64encode(secret.encode()).decode()[4:-4])  # a stable inner piece
    return out


class Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def all_logs() -> Iterator[Everything]:
    handler = Everything()
    root = logging.getLogger()
    saved = root.level
    levels: dict[str, int] = {}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in ("websockets", "websockets.client", "websockets.server", "azure", "voicelive_nb", "asyncio"):
        logger = logging.getLogger(name)
        levels[name] = logger.level
        logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def assert_nowhere(texts: list[str], *secrets: str) -> None:
    blob = "\n".join(texts)
    for secret in secrets:
        for form in forms(secret):
            assert form not in blob, (
                f"{form!r} leaked: ...{blob[max(0, blob.find(form) - 200) : blob.find(form) + 50]}"
            )


def files_under(directory: Path) -> list[str]:
    return [p.read_bytes().decode("latin-1") for p in directory.rglob("*") if p.is_file()]


def mcp_config() -> SessionConfig:
    tool = {
        "type": "mcp",
        "server_label": "kb",
        "server_url": "https://mcp.example/",
        "headers": {"x-key": MCP_SECRET},
    }
    return SessionConfig.manual().replace(tools=[tool])


class Tokens:
    async def get_token(self, *scopes: str, **kw: object) -> Any:
        return type("T", (), {"token": TOKEN, "expires_on": 4_000_000_000})()


async def test_key_token_and_mcp_header_leak_nowhere(all_logs: Everything, tmp_path: Path) -> None:
    texts: list[str] = []
    pcm = synthesize("Hello there.", sample_rate=24000).pcm16
    async with run_emulator(api_key=KEY, pace="fast") as emu:
        host = emu.url.split("://", 1)[1]
        endpoints = {
            "header": emu.url,
            "query": f"{emu.url}?api-key={KEY}",
            "userinfo": f"ws://user:{KEY}@{host}",
        }
        for name, endpoint in endpoints.items():
            s = Session(
                mcp_config(),
                endpoint=endpoint,
                api_key=KEY,
                record=tmp_path / name,
                sink=BufferSink(),
                dotenv=False,
            )
            async with s:
                s.stream(ArraySource(pcm, 24000, pace="fast", tail_silence_ms=1200))  # type: ignore[arg-type]
                await s.create_response()
                await s.wait_for("response.done", timeout=30)
                texts += [repr(s), s.status, str(s.url), repr(s._transport), repr(s.config), repr(s.events)]
                texts += [repr(e) for e in s.events]
            texts += [repr(s), s.status]
        async with run_emulator(api_key=TOKEN, pace="fast") as emu2:  # accepts the token as bearer
            async with Session(mcp_config(), endpoint=emu2.url, credential=Tokens(), dotenv=False) as s:
                assert s.status == "connected"
                texts += [repr(s), s.status, repr(s._transport)]
        # a refused handshake: the wrong key appears in no error, status or log
        wrong = "WrongKey-distinctive-0123456789"
        bad = Session(endpoint=f"ws://user:{wrong}@{host}?api-key={wrong}", api_key=wrong, dotenv=False)
        with pytest.raises(AuthenticationError) as info:
            await bad.open()
        texts += [str(info.value), repr(info.value), bad.status, repr(bad)]
    texts += files_under(tmp_path)
    assert any("> GET" in line for line in all_logs.lines), (
        "websockets' handshake debug lines were not captured"
    )
    assert any("TEXT" in line and "session.update" in line for line in all_logs.lines), (
        "frames were not logged"
    )
    assert_nowhere(texts + all_logs.lines, KEY, MCP_SECRET, TOKEN, wrong)


def test_the_audit_would_see_a_leak(all_logs: Everything) -> None:
    """The audit's own check bites: a secret logged raw by a logger nobody filters is found."""
    logging.getLogger("some.other.library").debug("header api key %s", KEY)
    with pytest.raises(AssertionError, match="leaked"):
        assert_nowhere(all_logs.lines, KEY)
