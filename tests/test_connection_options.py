"""ConnectionOptions: validation naming the field, masked reprs, replace(), from_env(), and the flat
keywords of Session/NotebookSession folded into the same object."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_until as _wait_until

from voicelive_nb import Session, SessionConfig
from voicelive_nb.auth import Secret
from voicelive_nb.connection import ConnectionOptions
from voicelive_nb.emulator.server import run_emulator
from voicelive_nb.engine import get_engine
from voicelive_nb.errors import ConfigError, VoiceLiveError
from voicelive_nb.notebook_session import NotebookSession
from voicelive_nb.testing import memory_emulator

KEY = "test-key-0123456789abcdef"
ENDPOINT = "https://example-voice.cognitiveservices.azure.com"
ENV = {
    "AZURE_VOICE_LIVE_ENDPOINT": ENDPOINT,
    "AZURE_VOICE_LIVE_API_KEY": KEY,
    "VOICE_LIVE_MODEL": "gpt-4o",
    "AZURE_VOICE_LIVE_API_VERSION": "2025-10-01",
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("endpoint", "ftp://nowhere"),
        ("endpoint", "https://"),
        ("endpoint", 42),
        ("api_key", ""),
        ("api_key", 1234),
        ("model", ""),
        ("api_version", 7),
        ("wire_shape", "v2"),
        ("agent", "my-agent"),
        ("query", {"features": 1}),
        ("emulator", "yes"),
        ("emulator", 1),
        ("emulator_options", ["pace"]),
        ("connect_timeout_s", 0),
        ("setup_timeout_s", -1),
        ("send_timeout_s", 5000),
        ("ping_interval_s", True),
        ("ping_timeout_s", "20"),
        ("close_timeout_s", math.nan),
        ("transport_factory", 42),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        ConnectionOptions(**{field: value})
    assert info.value.field.split(".")[0] == field
    assert isinstance(info.value, VoiceLiveError) and isinstance(info.value, ValueError)
    assert field in str(info.value)


def test_the_endpoint_error_says_which_schemes_work() -> None:
    with pytest.raises(ConfigError, match="endpoint must start with https://, http://, wss:// or ws://"):
        ConnectionOptions(endpoint="ftp://nowhere")


def test_the_repr_masks_every_secret() -> None:
    opts = ConnectionOptions(
        endpoint=f"{ENDPOINT}/?sig=abcdefsecretsig",
        api_key=KEY,
        query={"api-key": "querykey-0123456789", "extra": "1"},
        emulator_options={"api_key": "emukey-0123456789", "pace": "fast"},
        connect_timeout_s=3,
    )
    text = repr(opts) + str(opts)
    for secret in (KEY, "abcdefsecretsig", "querykey-0123456789", "emukey-0123456789"):
        assert secret not in text
    assert "connect_timeout_s=3" in text and "'extra': '1'" in text and "'pace': 'fast'" in text
    assert isinstance(opts.api_key, Secret) and opts.api_key.reveal() == KEY  # kept, only never shown


def test_replace_validates_again_and_leaves_the_original() -> None:
    opts = ConnectionOptions(endpoint=ENDPOINT, api_key=KEY)
    longer = opts.replace(connect_timeout_s=30)
    assert (longer.connect_timeout_s, opts.connect_timeout_s) == (30, 10.0)
    assert longer.api_key == opts.api_key and longer.endpoint == ENDPOINT
    with pytest.raises(ConfigError, match="connect_timeout_s"):
        opts.replace(connect_timeout_s=0)
    with pytest.raises(ConfigError, match="unknown connection option 'timeout'"):
        opts.replace(timeout=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.endpoint = "https://other.example"  # type: ignore[misc]
    with pytest.raises(TypeError):
        opts.query["x"] = "y"  # type: ignore[index]


def test_from_env_reads_the_quickstart_variables_arguments_first(tmp_path: Path) -> None:
    opts = ConnectionOptions.from_env(environ=ENV, dotenv=False)
    assert (opts.endpoint, opts.model, opts.api_version) == (ENDPOINT, "gpt-4o", "2025-10-01")
    assert opts.api_key == Secret(KEY)
    assert opts.sources["endpoint"] == "environment AZURE_VOICE_LIVE_ENDPOINT"
    mine = ConnectionOptions.from_env(environ=ENV, dotenv=False, model="gpt-realtime", connect_timeout_s=2)
    assert (mine.model, mine.endpoint, mine.connect_timeout_s) == ("gpt-realtime", ENDPOINT, 2)
    (tmp_path / ".env").write_text(f"AZURE_VOICE_LIVE_ENDPOINT={ENDPOINT}/fromfile\n")
    from_file = ConnectionOptions.from_env(environ={}, dotenv=tmp_path)
    assert from_file.endpoint == f"{ENDPOINT}/fromfile" and from_file.api_key is None
    assert from_file.model == "gpt-realtime"  # the default model is filled in
    nothing = ConnectionOptions.from_env(environ={}, dotenv=False, emulator="auto")
    assert nothing.endpoint is None and nothing.uses_emulator


def test_options_built_directly_read_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    s = Session(connection=ConnectionOptions(emulator="auto"))
    assert s.settings.endpoint is None and s.use_emulator
    flat = Session(emulator="auto", dotenv=False)  # the flat keywords read it, as they always did
    assert flat.connection.endpoint == ENDPOINT and not flat.use_emulator


def test_flat_keywords_fold_into_the_same_options() -> None:
    flat = Session(
        SessionConfig.manual(),
        endpoint=ENDPOINT,
        api_key=KEY,
        model="gpt-4o",
        api_version="v1",
        query={"extra": "1"},
        connect_timeout_s=3,
        close_timeout_s=1,
        dotenv=False,
    )
    opts = ConnectionOptions.from_env(
        dotenv=False,
        endpoint=ENDPOINT,
        api_key=KEY,
        model="gpt-4o",
        api_version="v1",
        query={"extra": "1"},
        connect_timeout_s=3,
        close_timeout_s=1,
    )
    built = Session(SessionConfig.manual(), connection=opts)
    assert flat.connection == built.connection
    for name in ("wire_shape", "connect_timeout_s", "close_timeout_s", "send_timeout_s", "use_emulator"):
        assert getattr(flat, name) == getattr(built, name), name
    assert (
        flat.settings.endpoint == built.settings.endpoint and flat.settings.api_key == built.settings.api_key
    )
    assert flat.connection_summary() == built.connection_summary()


async def test_flat_keywords_and_options_connect_alike() -> None:
    async with run_emulator(api_key=KEY, pace="fast") as emu:
        async with Session(SessionConfig.manual(), endpoint=emu.url, api_key=KEY, dotenv=False) as a:
            pass
        async with Session(
            SessionConfig.manual(), connection=ConnectionOptions(endpoint=emu.url, api_key=KEY)
        ) as b:
            pass
    assert a.url == b.url and a.url is not None and "api-version=" in a.url
    assert a.status == b.status == "closed"


@pytest.mark.parametrize(
    "flat", [{"endpoint": ENDPOINT}, {"api_key": KEY}, {"connect_timeout_s": 3}, {"dotenv": False}]
)
def test_connection_and_a_flat_keyword_together_is_a_clear_error(flat: dict[str, Any]) -> None:
    opts = ConnectionOptions(endpoint=ENDPOINT, api_key=KEY)
    (name,) = flat
    with pytest.raises(ConfigError, match=f"not both: got connection= and {name}="):
        Session(connection=opts, **flat)
    with pytest.raises(ConfigError, match=f"not both: got connection= and {name}="):
        NotebookSession(connection=opts, **flat)


def test_connection_must_be_options() -> None:
    with pytest.raises(ConfigError, match="connection"):
        Session(connection={"endpoint": ENDPOINT})  # type: ignore[arg-type]


def test_notebook_session_keeps_its_options_and_summary() -> None:
    opts = ConnectionOptions(endpoint=ENDPOINT, api_key=KEY, model="gpt-4o")
    nb = NotebookSession(connection=opts)
    assert nb.connection is opts
    summary = nb.connection_summary()
    assert (summary.auth, summary.model, summary.emulator) == ("api-key", "gpt-4o", False)
    assert KEY not in repr(summary)
    flat = NotebookSession(endpoint=ENDPOINT, api_key=KEY, model="gpt-4o", dotenv=False)
    assert flat.connection == opts.replace(emulator="auto", api_version=flat.connection.api_version)
    assert flat.connection_summary() == summary
    assert NotebookSession(dotenv=False).connection.emulator == "auto"  # its default, as before


def test_a_notebook_session_connects_through_its_options() -> None:
    """Every Session the notebook session builds gets its ConnectionOptions, transport factory included."""
    mem = memory_emulator(replies=["Hello from memory."])
    nb = NotebookSession(SessionConfig.manual(), mic=False, speaker=False, connection=mem.connection())
    try:
        nb.start(wait=True, timeout=20)
        assert nb.status == "connected"
        nb.create_response()
        done = nb.wait_for("response.done", timeout=30)
        assert done.response["status"] == "completed"
        assert nb.connection_summary().endpoint == "ws://localhost/memory-emulator"
        assert nb._budget_for(nb.session) is None  # type: ignore[arg-type]  # loopback: no service budget
    finally:
        nb.stop()
    assert len(mem.connections) == 1 and mem.connections[0].closed


def test_a_reconnect_goes_through_the_same_options_and_factory() -> None:
    """Why transport_factory lives on ConnectionOptions: the supervisor's next connection uses it too."""
    mem = memory_emulator(replies=["Back again."])
    nb = NotebookSession(
        SessionConfig.manual(instructions="Stay brief."),
        mic=False,
        speaker=False,
        auto_reconnect=True,
        reconnect_delay_s=0.05,
        connection=mem.connection(),
    )
    try:
        nb.start(wait=True, timeout=20)
        get_engine().run(mem.connections[0].close(1011, "maintenance"), timeout=10)
        _wait_until(lambda: len(mem.connections) == 2 and nb.status == "connected" and nb.reconnects == 1)
        nb.create_response()
        done = nb.wait_for("response.done", timeout=30)
    finally:
        nb.stop()
    assert done.response["status"] == "completed"
    second = mem.connections[1].conversation
    assert second is not None and second.session["instructions"] == "Stay brief."  # configuration replayed
    assert all(link.closed for link in mem.connections)
