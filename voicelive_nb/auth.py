"""Endpoint settings and credentials: API key or Microsoft Entra ID tokens.

Settings come from arguments first, then environment variables, then a ``.env`` file
(found from the current directory upwards), using the names of the service's own
quickstart: ``AZURE_VOICE_LIVE_ENDPOINT``, ``AZURE_VOICE_LIVE_API_KEY``,
``VOICE_LIVE_MODEL``, ``AZURE_VOICE_LIVE_API_VERSION``. The ``.env`` file never changes
``os.environ``.

Credentials produce the handshake headers. Secrets are wrapped in :class:`Secret`, whose
``repr``/``str`` never show the value, so they cannot leak into logs, reprs or notebook
outputs by accident.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import AuthenticationError, OptionalDependencyMissing

ENV_ENDPOINT = "AZURE_VOICE_LIVE_ENDPOINT"
ENV_API_KEY = "AZURE_VOICE_LIVE_API_KEY"
ENV_MODEL = "VOICE_LIVE_MODEL"
ENV_API_VERSION = "AZURE_VOICE_LIVE_API_VERSION"

DEFAULT_MODEL = "gpt-realtime"
DEFAULT_API_VERSION = "2026-07-15"
DEFAULT_SCOPE = "https://ai.azure.com/.default"
LEGACY_SCOPE = "https://cognitiveservices.azure.com/.default"
#: A token is refreshed when it has less than this many seconds left.
REFRESH_MARGIN_S = 300.0


class Secret:
    """A string that never shows itself in ``repr``, ``str`` or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("a secret must be a non-empty string")
        self._value = value

    def reveal(self) -> str:
        """The secret value itself; only for building handshake headers."""
        return self._value

    def masked(self) -> str:
        """A hint safe to show (``abcd…wxyz (32 chars)`` only for long keys)."""
        v = self._value
        return f"{v[:2]}…{v[-2:]} ({len(v)} chars)" if len(v) >= 16 else f"*** ({len(v)} chars)"

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # never pickle a secret into a file by accident
        raise TypeError("Secret values cannot be pickled")


def read_dotenv(start: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Values of the nearest ``.env`` file (from ``start`` or the cwd upwards), or ``{}``."""
    from dotenv import dotenv_values, find_dotenv

    if start is not None:
        path = os.path.join(os.fspath(start), ".env")
        if not os.path.isfile(path):
            return {}
    else:
        path = find_dotenv(usecwd=True)
        if not path:
            return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


@dataclass(frozen=True)
class ConnectionSettings:
    """Where and how to connect. ``endpoint`` is ``None`` when nothing is configured."""

    endpoint: str | None = None
    api_key: Secret | None = None
    model: str | None = DEFAULT_MODEL
    api_version: str = DEFAULT_API_VERSION
    agent: Mapping[str, str] | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def configured(self) -> bool:
        """True when an endpoint was given (argument, environment or ``.env``)."""
        return bool(self.endpoint)

    def describe(self) -> str:
        """One line for humans, with the key masked."""
        where = self.endpoint or "(none: the built-in emulator is used)"
        auth = f"api-key {self.api_key.masked()}" if self.api_key else "Microsoft Entra ID"
        return f"endpoint {where}; model {self.model}; api-version {self.api_version}; auth {auth}"


def load_settings(
    *,
    endpoint: str | None = None,
    api_key: str | Secret | None = None,
    model: str | None = None,
    api_version: str | None = None,
    agent: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    dotenv: bool | str | os.PathLike[str] = True,
) -> ConnectionSettings:
    """Resolve settings: arguments, then environment, then ``.env``.

    ``dotenv`` may be ``False`` (ignore ``.env``), ``True`` (search from the cwd upwards) or
    a directory to read ``.env`` from. ``environ`` defaults to ``os.environ``.
    """
    env = dict(os.environ if environ is None else environ)
    file_values: dict[str, str] = {}
    if dotenv:
        file_values = read_dotenv(None if dotenv is True else dotenv)
    sources: dict[str, str] = {}

    def pick(name: str, given: Any, env_name: str) -> Any:
        if given is not None:
            sources[name] = "argument"
            return given
        if env.get(env_name):
            sources[name] = f"environment {env_name}"
            return env[env_name]
        if file_values.get(env_name):
            sources[name] = f".env {env_name}"
            return file_values[env_name]
        return None

    ep = pick("endpoint", endpoint, ENV_ENDPOINT)
    key = pick("api_key", api_key, ENV_API_KEY)
    mdl = pick("model", model, ENV_MODEL)
    ver = pick("api_version", api_version, ENV_API_VERSION)
    if key is not None and not isinstance(key, Secret):
        key = Secret(str(key))
    if agent is None and mdl is None:
        mdl = DEFAULT_MODEL
    return ConnectionSettings(
        endpoint=ep.strip() if isinstance(ep, str) and ep.strip() else None,
        api_key=key,
        model=mdl,
        api_version=ver or DEFAULT_API_VERSION,
        agent=agent,
        sources=sources,
    )


class Credential(Protocol):
    """Produces handshake headers; closed when the session ends."""

    kind: str

    async def headers(self) -> dict[str, str]: ...

    async def aclose(self) -> None: ...


class ApiKeyCredential:
    """``api-key: <key>`` on the handshake."""

    kind = "api-key"

    def __init__(self, key: str | Secret) -> None:
        self._key = key if isinstance(key, Secret) else Secret(key)

    async def headers(self) -> dict[str, str]:
        return {"api-key": self._key.reveal()}

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"ApiKeyCredential({self._key.masked()})"


class TokenCredentialAuth:
    """``Authorization: Bearer <token>`` from any azure-core token credential.

    ``credential`` has ``get_token(*scopes)`` returning an object with ``token`` and
    ``expires_on`` (Unix seconds), async (``AsyncTokenCredential``) or sync. Tokens are
    cached and refreshed when less than ``refresh_margin_s`` remain. ``owns=True`` closes
    the credential in :meth:`aclose` (used for the ``DefaultAzureCredential`` this package
    creates itself, so no ``Unclosed client session`` is left behind).
    """

    kind = "entra-token"

    def __init__(
        self,
        credential: Any,
        *,
        scopes: str | tuple[str, ...] = DEFAULT_SCOPE,
        owns: bool = False,
        refresh_margin_s: float = REFRESH_MARGIN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not callable(getattr(credential, "get_token", None)):
            raise TypeError(
                "credential must have a get_token(*scopes) method (an azure-core TokenCredential)"
            )
        self._credential = credential
        self._scopes = (scopes,) if isinstance(scopes, str) else tuple(scopes)
        self._owns = owns
        self._margin = refresh_margin_s
        self._clock = clock
        self._token: str | None = None
        self._expires_on = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0

    @property
    def scopes(self) -> tuple[str, ...]:
        return self._scopes

    async def token(self) -> str:
        """A valid token, fetched anew only when the cached one is close to expiry."""
        async with self._lock:
            if self._token is None or self._clock() >= self._expires_on - self._margin:
                try:
                    result = self._credential.get_token(*self._scopes)
                    if inspect.isawaitable(result):
                        result = await result
                except Exception as exc:  # azure-identity raises its own ClientAuthenticationError
                    raise AuthenticationError(
                        f"could not get a Microsoft Entra ID token for {', '.join(self._scopes)}: "
                        f"{type(exc).__name__}: {exc}; sign in (az login) or set {ENV_API_KEY}",
                        credential_kind=self.kind,
                    ) from exc
                self._token = str(result.token)
                self._expires_on = float(result.expires_on)
                self.fetches += 1
            return self._token

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token()}"}

    async def aclose(self) -> None:
        if not self._owns:
            return
        self._owns = False
        close = getattr(self._credential, "close", None)
        if close is not None:
            result = close()
            if inspect.isawaitable(result):
                await result

    def __repr__(self) -> str:
        return f"TokenCredentialAuth({type(self._credential).__name__}, scopes={self._scopes})"


def default_azure_credential() -> Any:
    """``azure.identity.aio.DefaultAzureCredential()``, with an install hint when missing."""
    try:
        from azure.identity.aio import DefaultAzureCredential
    except ImportError as exc:
        raise OptionalDependencyMissing("Microsoft Entra ID sign-in", "azure-identity", "azure") from exc
    return DefaultAzureCredential()


def make_credential(
    *,
    api_key: str | Secret | None = None,
    credential: Any = None,
    scopes: str | tuple[str, ...] = DEFAULT_SCOPE,
) -> Credential:
    """Pick the credential: an explicit ``credential``, else the API key, else ``DefaultAzureCredential``.

    ``credential`` may be an ``AzureKeyCredential`` (its key is used), a
    :class:`Credential` of this module, or any azure-core (async) token credential.
    """
    if credential is not None:
        if hasattr(credential, "headers") and hasattr(credential, "kind"):
            return credential  # type: ignore[no-any-return]
        key = getattr(credential, "key", None)
        if isinstance(key, str) and not callable(getattr(credential, "get_token", None)):
            return ApiKeyCredential(key)
        return TokenCredentialAuth(credential, scopes=scopes, owns=False)
    if api_key is not None:
        return ApiKeyCredential(api_key)
    return TokenCredentialAuth(default_azure_credential(), scopes=scopes, owns=True)
