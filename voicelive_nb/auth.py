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
import base64
import inspect
import logging
import os
import re
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import AuthenticationError, InvalidType, InvalidValue, OptionalDependencyMissing

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
            raise InvalidValue("a secret must be a non-empty string")
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
        raise InvalidType("Secret values cannot be pickled")


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


class HeaderCredential:
    """Fixed handshake headers (``api-key`` or ``Authorization``), e.g. moved from an endpoint's query."""

    def __init__(self, headers: Mapping[str, str], *, kind: str | None = None) -> None:
        self._headers = {k: Secret(v) for k, v in headers.items()}
        for value in self._headers.values():
            register_secret(value)
        if kind is None:
            kind = "api-key" if any(k.lower() == "api-key" for k in headers) else "entra-token"
        self.kind = kind

    async def headers(self) -> dict[str, str]:
        return {k: v.reveal() for k, v in self._headers.items()}

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"HeaderCredential({', '.join(f'{k}: {v.masked()}' for k, v in self._headers.items())})"


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
            raise InvalidType(
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
                        f"{credential_failure_summary(exc)}; set {ENV_API_KEY} or run az login",
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


_CHAIN_LINE = re.compile(r"^\s+([A-Za-z]+Credential):\s*(.*)$")
#: The longest reason kept per credential of a chain, and the longest summary.
_REASON_CHARS = 48
_SUMMARY_CHARS = 600


def credential_failure_summary(exc: BaseException) -> str:
    """A short account of why a token credential failed (never raises).

    azure-identity's ``DefaultAzureCredential`` puts every credential of its chain into one
    ~1,500-character message with troubleshooting links; this keeps one clipped line per
    credential (``AzureCli: Azure CLI not found on path``), without the boilerplate.
    The full message stays on the error's ``__cause__``.
    """
    try:
        text = str(exc)
        reasons = []
        for line in text.splitlines():
            match = _CHAIN_LINE.match(line)
            if not match:
                continue
            name, reason = match.groups()
            reason = re.sub(rf"^{name} authentication unavailable\.\s*", "", reason)
            reason = re.split(r"(?<=[.!])\s|\s(?:Visit|See|Please visit)\s", reason, maxsplit=1)[0].rstrip(
                "."
            )
            if len(reason) > _REASON_CHARS:
                reason = reason[: _REASON_CHARS - 3] + "..."
            reasons.append(f"{name.removesuffix('Credential')}: {reason or 'failed'}")
        if reasons:
            head = text.split(None, 1)[0] if text.split() else ""
            chain = head if head.endswith("Credential") else type(exc).__name__
            summary = f"{chain} tried {len(reasons)} ways to sign in, none worked ({'; '.join(reasons)})"
        else:
            first = text.strip().splitlines()[0] if text.strip() else ""
            summary = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        summary = redact_text(summary)
        return summary if len(summary) <= _SUMMARY_CHARS else summary[: _SUMMARY_CHARS - 3] + "..."
    except Exception:  # an error message must never fail
        return type(exc).__name__


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


# --- keeping secrets out of logs, reprs and status text ------------------------------------------

MASK = "***"
#: Secret values shorter than this are not masked by value (they would mask ordinary words);
#: they are still masked where they stand as a header, query parameter, userinfo or token.
MIN_SECRET_CHARS = 8
#: How many distinct live secret values are remembered (oldest forgotten first).
MAX_SECRETS = 256

_secrets_lock = threading.Lock()
_secret_values: dict[str, None] = {}  # insertion-ordered set of every masked form
_secret_sorted: tuple[str, ...] = ()

_SECRET_HEADER = re.compile(
    r"(?im)^([<>]?\s*(?:api-key|authorization|proxy-authorization|ocp-apim-subscription-key|"
    r"x-api-key|cookie|set-cookie)\s*:\s*)\S.*$"
)
_QUERY_SECRET = re.compile(
    r"(?i)\b((?:api[-_]?key|authorization|(?:access|refresh|id|agent[-_]access)?[-_]?token|"
    r"client[-_]?secret|password|key)=)[^&#\s\"']+"
    # an OAuth code or a SAS signature only as a URL's query parameter: "code=feature_not_enabled"
    # in an error or status line is the service's error code, which the user needs to see
    r"|([?&](?:sig|code)=)[^&#\s\"']+"
)
# credentials are long; ordinary words after "basic"/"bearer" in prose are not masked
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{16,}")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s@'\"]+@")


def _b64_forms(data: bytes) -> list[str]:
    """Base64 texts that appear wherever ``data`` is base64-encoded, at any byte alignment."""
    forms = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode("ascii")
        # characters touched by the padding bytes before, or by the bytes after, are not stable
        start = (shift * 4 + 2) // 3 if shift else 0
        end = len(encoded) - (4 if (shift + len(data)) % 3 else 0)
        core = encoded[start:end]
        if len(core) >= MIN_SECRET_CHARS:
            forms.append(core)
            forms.append(core.replace("+", "-").replace("/", "_"))
    full = base64.b64encode(data).decode("ascii")
    forms += [full, full.rstrip("="), base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")]
    return forms


def register_secret(value: str | Secret | None) -> None:
    """Remember a live secret: :func:`redact_text` masks it (and its base64 forms) from now on.

    Called by :class:`~voicelive_nb.session.Session` for the API key, the bearer token, MCP
    header values and URL credentials. Values shorter than :data:`MIN_SECRET_CHARS` are
    ignored (they are masked only where they stand as a header, query parameter or token).
    """
    global _secret_sorted
    if value is None:
        return
    text = value.reveal() if isinstance(value, Secret) else str(value)
    if len(text) < MIN_SECRET_CHARS:
        return
    forms = [text, *_b64_forms(text.encode("utf-8", "surrogatepass"))]
    with _secrets_lock:
        changed = False
        for form in forms:
            if form and form not in _secret_values:
                _secret_values[form] = None
                changed = True
        while len(_secret_values) > MAX_SECRETS * 12:
            del _secret_values[next(iter(_secret_values))]
        if changed:
            _secret_sorted = tuple(sorted(_secret_values, key=len, reverse=True))


def secrets_in(value: Any) -> list[str]:
    """Credential-like values inside a JSON-like value (``headers`` mappings, ``api_key``, ``*_token``…)."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, sub in item.items():
                k = str(key).lower().replace("-", "_")
                if k == "headers" and isinstance(sub, Mapping):
                    found.extend(str(v) for v in sub.values() if isinstance(v, (str, Secret)))
                elif isinstance(sub, str) and (
                    k
                    in (
                        "api_key",
                        "apikey",
                        "authorization",
                        "token",
                        "access_token",
                        "client_secret",
                        "password",
                    )
                    or k.endswith(("_token", "_secret", "_password", "_api_key"))
                ):
                    found.append(sub)
                elif isinstance(sub, (Mapping, list, tuple)):
                    stack.append(sub)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return [v.reveal() if isinstance(v, Secret) else v for v in found]


def redact_text(text: str) -> str:
    """``text`` with every credential masked as ``***``.

    Masks live secret values registered with :func:`register_secret` (and their base64
    forms), ``user:password@`` in URLs, ``api-key=…``/``token=…`` query parameters,
    ``Bearer …``/``Basic …`` credentials and ``api-key: …``/``Authorization: …`` header lines.
    Never raises.
    """
    try:
        for secret in _secret_sorted:
            if secret in text:
                text = text.replace(secret, MASK)
        if "@" in text:
            text = _USERINFO.sub(rf"\g<1>{MASK}@", text)
        if "=" in text:
            text = _QUERY_SECRET.sub(lambda m: f"{m.group(1) or m.group(2)}{MASK}", text)
        if ":" in text:
            text = _SECRET_HEADER.sub(rf"\g<1>{MASK}", text)
        lowered = text.lower()
        if "bearer" in lowered or "basic" in lowered:
            text = _BEARER.sub(rf"\g<1> {MASK}", text)
    except Exception:  # a redactor that raises would leak the message through the traceback
        return MASK
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that masks credentials (see :func:`redact_text`) in every record it sees.

    It formats the message (``msg % args``), masks it, and stores the result as the
    message with no arguments; an exception's traceback text is masked the same way.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what can be shown
            message = f"{record.msg!r} % {record.args!r}"
        masked = redact_text(message)
        if masked != message or record.args:
            record.msg = masked
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


#: The one filter this package installs.
REDACTING_FILTER = RedactingFilter()
#: Loggers this package writes to or drives (and their children).
REDACTED_LOGGERS = ("voicelive_nb", "websockets", "azure")


def install_log_redaction(prefixes: tuple[str, ...] = REDACTED_LOGGERS) -> None:
    """Attach :data:`REDACTING_FILTER` to every existing logger under ``prefixes`` (idempotent).

    A filter on a logger sees only the records logged on that very logger, so it goes on
    each one; :class:`~voicelive_nb.session.Session` calls this when it connects, after the
    credential's library is imported.
    """
    names = list(prefixes)
    for name in list(logging.root.manager.loggerDict):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            names.append(name)
    for name in names:
        logger = logging.getLogger(name)
        if REDACTING_FILTER not in logger.filters:
            logger.addFilter(REDACTING_FILTER)
