"""One answer to "is this host this machine's own?" for the emulator's binds and the client's budget."""

from __future__ import annotations

import pytest

from voicelive_nb.emulator.endpoint import EmulatorServer
from voicelive_nb.errors import InvalidValue
from voicelive_nb.hosts import is_loopback_host
from voicelive_nb.lab.replay import Backend


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST", "localhost.localdomain", "127.0.0.1", "127.8.9.10", "::1", "[::1]"]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host",
    [
        "",
        "0.0.0.0",
        "::",
        "10.0.0.1",
        "192.168.1.20",
        "example.com",
        "localhost.example.com",
        "128.0.0.1",
        "[::2]",
    ],
)
def test_other_hosts(host: str) -> None:
    assert not is_loopback_host(host)


def test_the_emulator_refuses_a_wildcard_bind_and_names_the_way_out() -> None:
    with pytest.raises(InvalidValue, match="allow_remote=True"):
        EmulatorServer(host="0.0.0.0")


@pytest.mark.parametrize(
    ("endpoint", "local"),
    [
        ("ws://127.0.0.1:8765", True),
        ("ws://localhost.localdomain:8765", True),  # the lab's own check once missed this one
        ("ws://[::1]:8765", True),
        ("wss://my-resource.services.ai.azure.com", False),
    ],
)
def test_the_lab_paces_a_loopback_endpoint_as_an_emulator(endpoint: str, local: bool) -> None:
    backend = Backend(endpoint=endpoint, api_key="k", dotenv=False)
    assert backend.is_service is not local
    assert backend.pace == ("fast" if local else "realtime")
