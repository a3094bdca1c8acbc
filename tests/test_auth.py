"""Settings resolution, secret masking, and token credentials (real implementations, no mocks)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from voicelive_nb.auth import (
    DEFAULT_SCOPE,
    LEGACY_SCOPE,
    ApiKeyCredential,
    Secret,
    TokenCredentialAuth,
    load_settings,
    make_credential,
)
from voicelive_nb.errors import AuthenticationError


@dataclass
class AccessToken:
    token: str
    expires_on: int


class ShortLivedTokens:
    """An async token credential (azure-core's AsyncTokenCredential shape) issuing numbered tokens."""

    def __init__(self, lifetime_s: int, clock: list[float]) -> None:
        self.lifetime_s = lifetime_s
        self.clock = clock
        self.issued = 0
        self.scopes: list[tuple[str, ...]] = []
        self.closed = False

    async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.issued += 1
        self.scopes.append(scopes)
        return AccessToken(f"token-{self.issued}", int(self.clock[0]) + self.lifetime_s)

    async def close(self) -> None:
        self.closed = True


class SyncTokens:
    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken("sync-token", 2_000_000_000)


class FailingTokens:
    async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        raise RuntimeError("no account signed in")


def test_settings_precedence_argument_environment_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "AZURE_VOICE_LIVE_ENDPOINT=https://from-dotenv\nAZURE_VOICE_LIVE_API_KEY=dotenv-key\n"
        "VOICE_LIVE_MODEL=gpt-4o\nAZURE_VOICE_LIVE_API_VERSION=2025-05-01-preview\n"
    )
    env = {"AZURE_VOICE_LIVE_ENDPOINT": "https://from-env"}
    s = load_settings(environ=env, dotenv=tmp_path)
    assert s.endpoint == "https://from-env"
    assert s.api_key == Secret("dotenv-key")
    assert s.model == "gpt-4o" and s.api_version == "2025-05-01-preview"
    assert s.sources["endpoint"] == "environment AZURE_VOICE_LIVE_ENDPOINT"
    assert s.sources["api_key"] == ".env AZURE_VOICE_LIVE_API_KEY"
    s2 = load_settings(endpoint="https://arg", api_key="arg-key", environ=env, dotenv=tmp_path)
    assert s2.endpoint == "https://arg" and s2.api_key == Secret("arg-key")


def test_settings_defaults_without_anything(tmp_path: Path) -> None:
    s = load_settings(environ={}, dotenv=tmp_path)
    assert not s.configured and s.endpoint is None and s.api_key is None
    assert s.model == "gpt-realtime" and s.api_version == "2026-07-15"
    assert "built-in emulator" in s.describe()


def test_dotenv_does_not_change_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    (tmp_path / ".env").write_text("AZURE_VOICE_LIVE_API_KEY=file-key\n")
    monkeypatch.delenv("AZURE_VOICE_LIVE_API_KEY", raising=False)
    load_settings(environ={}, dotenv=tmp_path)
    assert "AZURE_VOICE_LIVE_API_KEY" not in os.environ


def test_secret_never_shows_itself() -> None:
    key = "sk-very-secret-value-1234567890"
    s = Secret(key)
    settings = load_settings(endpoint="https://h", api_key=key, environ={}, dotenv=False)
    for text in (repr(s), str(s), f"{s}", repr(settings), settings.describe(), repr(ApiKeyCredential(key))):
        assert key not in text
    assert s.reveal() == key
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(s)


async def test_api_key_header() -> None:
    assert await ApiKeyCredential("k").headers() == {"api-key": "k"}


async def test_token_is_cached_and_refreshed_before_expiry() -> None:
    clock = [1_000.0]
    tokens = ShortLivedTokens(lifetime_s=600, clock=clock)
    auth = TokenCredentialAuth(tokens, refresh_margin_s=300, clock=lambda: clock[0])
    assert await auth.headers() == {"Authorization": "Bearer token-1"}
    clock[0] += 200  # 400 s left: still cached
    assert await auth.headers() == {"Authorization": "Bearer token-1"}
    clock[0] += 150  # 250 s left < margin: refreshed
    assert await auth.headers() == {"Authorization": "Bearer token-2"}
    assert tokens.issued == 2 and auth.fetches == 2
    assert tokens.scopes[0] == (DEFAULT_SCOPE,)


async def test_legacy_scope_and_sync_credentials() -> None:
    clock = [0.0]
    tokens = ShortLivedTokens(3600, clock)
    auth = make_credential(credential=tokens, scopes=LEGACY_SCOPE)
    await auth.headers()
    assert tokens.scopes == [(LEGACY_SCOPE,)]
    assert await make_credential(credential=SyncTokens()).headers() == {"Authorization": "Bearer sync-token"}


async def test_azure_key_credential_is_used_as_api_key() -> None:
    from azure.core.credentials import AzureKeyCredential

    cred = make_credential(credential=AzureKeyCredential("azk"))
    assert cred.kind == "api-key" and await cred.headers() == {"api-key": "azk"}


async def test_token_failure_is_authentication_error() -> None:
    auth = TokenCredentialAuth(FailingTokens())
    with pytest.raises(AuthenticationError, match="no account signed in") as info:
        await auth.headers()
    assert info.value.credential_kind == "entra-token"


async def test_owned_credentials_are_closed_borrowed_ones_not() -> None:
    clock = [0.0]
    owned, borrowed = ShortLivedTokens(60, clock), ShortLivedTokens(60, clock)
    await TokenCredentialAuth(owned, owns=True).aclose()
    await TokenCredentialAuth(borrowed, owns=False).aclose()
    assert owned.closed and not borrowed.closed


def test_default_azure_credential_is_created_and_closed_cleanly() -> None:
    """No key → DefaultAzureCredential, owned and closed: no 'Unclosed client session' at exit.

    Runs in a fresh interpreter with warnings as errors. No token is requested (that would
    contact Azure); the credential's transports are created and must be closed.
    """
    code = textwrap.dedent(
        """
        import asyncio, gc
        from voicelive_nb.auth import make_credential, TokenCredentialAuth
        async def main():
            cred = make_credential()
            assert isinstance(cred, TokenCredentialAuth) and cred._owns
            await cred.aclose()
        asyncio.run(main())
        gc.collect()
        print("OK")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-X", "dev", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout
    assert "Unclosed" not in proc.stderr and "ResourceWarning" not in proc.stderr


def test_redact_text_masks_live_secrets_their_base64_and_credential_shapes() -> None:
    import base64

    from voicelive_nb.auth import redact_text, register_secret

    secret = "LiveSecret-abcdef-0123456789"
    register_secret(secret)
    register_secret("short")  # too short to mask by value: it would mask ordinary words
    for prefix in ("", "a", "ab", "user:"):
        encoded = base64.b64encode((prefix + secret).encode()).decode()
        assert secret not in redact_text(f"x {secret} y") and encoded not in redact_text(f"x {encoded} y")
    assert redact_text("a short word") == "a short word"
    assert redact_text("> api-key: abc") == "> api-key: ***"
    assert redact_text("wss://u:p@h/") == "wss://***@h/"
    assert "tok" not in redact_text("Authorization: Bearer tok1234567890abcdefgh")


def test_an_error_code_stays_readable_and_only_a_url_code_or_signature_is_masked() -> None:
    from voicelive_nb.auth import redact_text

    # the service's error code in a status or log line is what the user needs to see
    assert redact_text("failed: feature_not_enabled (code=feature_not_enabled)").endswith(
        "(code=feature_not_enabled)"
    )
    assert redact_text("closed code=1008 reason=policy") == "closed code=1008 reason=policy"
    # an OAuth authorization code or a SAS signature in a URL is a credential
    masked = redact_text("wss://h/voice-live/realtime?api-version=1&code=AbC123xyz&sig=s1G%2B&x=1")
    assert "AbC123xyz" not in masked and "s1G" not in masked
    assert masked.endswith("?api-version=1&code=***&sig=***&x=1")
    assert redact_text("https://h/?code=abc") == "https://h/?code=***"


def test_redacting_filter_masks_formatted_message_and_traceback() -> None:
    import logging

    from voicelive_nb.auth import REDACTING_FILTER, register_secret

    secret = "FilterSecret-0123456789"
    register_secret(secret)
    try:
        raise ValueError(f"boom {secret}")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "voicelive_nb.x", logging.ERROR, __file__, 1, "key %s", (secret,), sys.exc_info()
        )
    assert REDACTING_FILTER.filter(record)
    assert secret not in record.getMessage() and secret not in (record.exc_text or "")


# --- a failing Entra ID chain is reported in a few lines -----------------------------------------

_AZURE_ENV = (
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE",
    "IDENTITY_ENDPOINT",
    "MSI_ENDPOINT",
)


async def test_default_azure_credential_failure_is_concise(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real ``DefaultAzureCredential`` (no key, offline): one short line per credential."""
    pytest.importorskip("azure.identity")
    import asyncio

    for name in _AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    credential = make_credential()  # no key: DefaultAzureCredential
    try:
        try:
            await asyncio.wait_for(credential.headers(), timeout=60)
        except AuthenticationError as exc:
            err = exc
        else:
            pytest.skip("this machine can sign in to Microsoft Entra ID (az login or a managed identity)")
    finally:
        await credential.aclose()
    text = str(err)
    full = str(err.__cause__)
    assert len(full) > 1000  # what azure-identity said, kept on the cause
    assert len(text) < 700, text
    assert "aka.ms" not in text and "\n" not in text
    assert "AZURE_VOICE_LIVE_API_KEY" in text and "az login" in text
    names = re.findall(r"^\s+([A-Za-z]+)Credential:", full, re.MULTILINE)
    assert len(names) >= 5
    assert f"tried {len(names)} ways to sign in" in text
    for name in names:  # every credential of the chain, once, with its first reason
        assert text.count(f"{name}: ") == 1, name


async def test_a_single_failing_credential_keeps_its_first_line(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("azure.identity")
    from azure.identity.aio import EnvironmentCredential

    for name in _AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    auth = TokenCredentialAuth(EnvironmentCredential(), owns=True)
    with pytest.raises(AuthenticationError) as info:
        await auth.headers()
    await auth.aclose()
    text = str(info.value)
    assert "CredentialUnavailableError: EnvironmentCredential authentication unavailable" in text
    assert "aka.ms" not in text and len(text) < 300


def test_credential_failure_summary_never_raises_and_masks() -> None:
    from voicelive_nb.auth import credential_failure_summary, register_secret

    register_secret("s3cr3t-value-0123456789")

    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    assert credential_failure_summary(Weird()) == "Weird"
    assert credential_failure_summary(RuntimeError("")) == "RuntimeError"
    leaked = RuntimeError("Attempted:\n\tFooCredential: token s3cr3t-value-0123456789 refused")
    summary = credential_failure_summary(leaked)
    assert "s3cr3t" not in summary and "Foo: token" in summary
    long = RuntimeError("\n".join(f"\tC{i}Credential: " + "x" * 500 for i in range(50)))
    assert len(credential_failure_summary(long)) <= 600
