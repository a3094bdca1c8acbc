"""``ConnectionOptions``: where a session connects, how it authenticates, and how long it waits.

::

    opts = ConnectionOptions.from_env(model="gpt-realtime")   # arguments, then environment, then .env
    session = Session(config, connection=opts)
    retry = Session(config, connection=opts.replace(connect_timeout_s=30))

One frozen, validated object instead of ~20 flat keywords: a panel can show it
(:meth:`ConnectionOptions.summary`), a supervisor can reuse it for every reconnect, and a test
can give it an in-memory transport (``transport_factory``, see :mod:`voicelive_nb.testing`).
The environment is read in one place, :meth:`ConnectionOptions.from_env`; an options object
built directly means exactly what it says. The API key is a :class:`~voicelive_nb.auth.Secret`
and the repr masks it, the endpoint's credentials, secret query parameters and any key in
``emulator_options``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .auth import ConnectionSettings, Secret, load_settings
from .errors import ConfigError, TransportError
from .transport import TransportFactory, build_url, redact_url

#: The fields whose values are seconds, with the smallest value allowed (the largest is 3600).
TIMEOUT_FIELDS: dict[str, float] = {
    "connect_timeout_s": 0.01,
    "setup_timeout_s": 0.01,
    "send_timeout_s": 0.01,
    "ping_interval_s": 0.01,
    "ping_timeout_s": 0.01,
    "close_timeout_s": 0.0,
}
_MAX_SECONDS = 3600
_SECRET_OPTION_KEYS = ("api_key", "key", "token", "password")


@dataclass(frozen=True, repr=False)
class ConnectionOptions:
    """Where and how a :class:`~voicelive_nb.session.Session` connects (validated, immutable).

    ``endpoint`` ``https://<resource>.services.ai.azure.com`` (or ``wss://``, ``http://``, ``ws://``);
    ``api_key`` or ``credential`` (an azure-identity token credential; neither: Entra ID with
    ``DefaultAzureCredential``); ``model`` or ``agent`` (agent-name, project-name...); ``api_version``
    (dated: the preview wire shape, ``v1``: GA; ``wire_shape`` overrides); ``query`` extra URL
    parameters; ``emulator`` ``True`` / ``False`` / ``"auto"`` (only when no endpoint is set) and
    ``emulator_options`` for :func:`~voicelive_nb.emulator.server.run_emulator`.

    Timeouts (seconds): ``connect_timeout_s`` the handshake; ``setup_timeout_s`` each of
    ``session.created`` and ``session.updated``; ``send_timeout_s`` a blocked send (the peer stopped
    reading); ``ping_interval_s`` / ``ping_timeout_s`` keepalive; ``close_timeout_s`` the closing
    handshake before the connection is dropped.

    ``transport_factory``: ``async (ConnectRequest) -> transport`` that opens the connection instead
    of a WebSocket (see :class:`~voicelive_nb.transport.MessageTransport`). It lives here, not on the
    session, because it is part of *how to connect*: a supervisor that reconnects or rolls over
    builds every new session from this one object, and the factory goes with it.
    """

    endpoint: str | None = None
    api_key: Secret | str | None = None  # a str is wrapped in a Secret: read it back as one
    credential: Any = None
    model: str | None = None
    api_version: str | None = None
    wire_shape: str | None = None
    agent: Mapping[str, str] | None = None
    query: Mapping[str, str] = field(default_factory=dict)
    emulator: bool | str = False
    emulator_options: Mapping[str, Any] = field(default_factory=dict)
    connect_timeout_s: float = 10.0
    setup_timeout_s: float = 15.0
    send_timeout_s: float = 10.0
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    close_timeout_s: float = 3.0
    transport_factory: TransportFactory | None = None
    #: Where each setting came from ("argument", "environment ...", ".env ..."), for diagnostics.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        _check_optional_text("endpoint", self.endpoint)
        if self.endpoint is not None:
            _check_endpoint(self.endpoint)
        object.__setattr__(self, "api_key", _as_secret(self.api_key))
        _check_optional_text("model", self.model)
        _check_optional_text("api_version", self.api_version)
        if self.wire_shape not in (None, "preview", "ga"):
            raise ConfigError(
                "wire_shape", self.wire_shape, "preview or ga (or None to follow the api-version)"
            )
        if self.agent is not None:
            object.__setattr__(self, "agent", _frozen_strings("agent", self.agent))
        object.__setattr__(self, "query", _frozen_strings("query", self.query))
        if not (isinstance(self.emulator, bool) or self.emulator == "auto"):
            raise ConfigError("emulator", self.emulator, "True, False or 'auto'")
        if not isinstance(self.emulator_options, Mapping):
            raise ConfigError(
                "emulator_options", type(self.emulator_options).__name__, "a mapping of run_emulator keywords"
            )
        object.__setattr__(self, "emulator_options", MappingProxyType(dict(self.emulator_options)))
        for name, low in TIMEOUT_FIELDS.items():
            _check_seconds(name, getattr(self, name), low)
        if self.transport_factory is not None and not callable(self.transport_factory):
            raise ConfigError(
                "transport_factory",
                type(self.transport_factory).__name__,
                "None or a callable: async (ConnectRequest) -> transport",
            )
        object.__setattr__(self, "sources", MappingProxyType(dict(self.sources)))

    # ------------------------------------------------------------------ building

    @classmethod
    def from_env(
        cls,
        *,
        environ: Mapping[str, str] | None = None,
        dotenv: bool | str | os.PathLike[str] = True,
        **fields: Any,
    ) -> ConnectionOptions:
        """Options from ``fields``, then the environment, then a ``.env`` file (the one place that reads them).

        ``AZURE_VOICE_LIVE_ENDPOINT``, ``AZURE_VOICE_LIVE_API_KEY``, ``VOICE_LIVE_MODEL`` and
        ``AZURE_VOICE_LIVE_API_VERSION`` fill what ``fields`` leave ``None``; the model and
        api-version defaults are filled in too. ``environ`` defaults to ``os.environ``; ``dotenv``
        is ``False`` (no file), ``True`` (search from the cwd upwards) or a directory.
        """
        _check_names(fields)
        settings = load_settings(
            endpoint=fields.get("endpoint"),
            api_key=fields.get("api_key"),
            model=fields.get("model"),
            api_version=fields.get("api_version"),
            agent=fields.get("agent"),
            environ=environ,
            dotenv=dotenv,
        )
        resolved = {
            **fields,
            "endpoint": settings.endpoint,
            "api_key": settings.api_key,
            "model": settings.model,
            "api_version": settings.api_version,
            "sources": settings.sources,
        }
        return cls(**resolved)

    def replace(self, **changes: Any) -> ConnectionOptions:
        """A copy with ``changes`` (validated again); an unknown name is a :class:`ConfigError`."""
        _check_names(changes)
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ derived

    def settings(self) -> ConnectionSettings:
        """These options as resolved settings (defaults filled, no environment read)."""
        settings = load_settings(
            endpoint=self.endpoint,
            api_key=self.api_key,
            model=self.model,
            api_version=self.api_version,
            agent=self.agent,
            environ={},
            dotenv=False,
        )
        return dataclasses.replace(settings, sources=dict(self.sources) or settings.sources)

    @property
    def uses_emulator(self) -> bool:
        """Whether a session built from these options starts the built-in emulator (:func:`wants_emulator`)."""
        return wants_emulator(self.emulator, self.settings())

    def summary(self, *, emulator_url: str | None = None) -> ConnectionSummary:
        """What a panel shows about these options, with no secret in it."""
        return connection_summary(
            self.settings(),
            emulator=self.uses_emulator,
            emulator_url=emulator_url,
            credential=self.credential,
        )

    def __repr__(self) -> str:
        try:
            shown = [f"{name}={value}" for name, value in self._shown_fields()]
            return f"ConnectionOptions({', '.join(shown)})"
        except Exception:  # a repr must never raise
            return f"<ConnectionOptions at {id(self):#x}>"

    def _shown_fields(self) -> list[tuple[str, str]]:
        """The fields that differ from the defaults, each masked."""
        default = _DEFAULTS
        shown: list[tuple[str, str]] = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "sources" or value == getattr(default, f.name):
                continue
            shown.append((f.name, _masked(f.name, value)))
        return shown


# --- who uses the emulator, and what a panel shows -------------------------------------------------


@dataclass(frozen=True)
class ConnectionSummary:
    """Where a session connects and how, with no secret in it: what a panel shows.

    ``auth`` is ``"emulator"``, ``"api-key"`` (``key`` is then its masked form), ``"token credential"``
    (``credential_type`` names the class) or ``"entra-id"`` (DefaultAzureCredential).
    """

    endpoint: str
    auth: str
    model: str
    api_version: str
    emulator: bool
    emulator_url: str | None = None
    key: str | None = None
    credential_type: str | None = None
    #: The api key as a :class:`Secret` (whose repr is masked), so a view can scrub it from text it shows.
    secret: Secret | None = field(default=None, repr=False, compare=False)


def wants_emulator(mode: object, settings: Any) -> bool:
    """The one "use the built-in emulator?" rule: asked for, or ``"auto"`` with no service configured."""
    return mode is True or (mode == "auto" and not settings.configured)


def connection_summary(
    settings: Any, *, emulator: bool, emulator_url: str | None = None, credential: object = None
) -> ConnectionSummary:
    """Summarise ``settings`` for display: the endpoint redacted, the key masked, never the secret."""
    if emulator:
        auth, key, ctype = "emulator", None, None
    elif settings.api_key is not None:
        auth, key, ctype = "api-key", settings.api_key.masked(), None
    elif credential is not None:
        auth, key, ctype = "token credential", None, type(credential).__name__
    else:
        auth, key, ctype = "entra-id", None, None
    return ConnectionSummary(
        endpoint=redact_url(emulator_url or settings.endpoint or ""),
        auth=auth,
        model=str(settings.model or settings.agent or ""),
        api_version=str(settings.api_version),
        emulator=emulator,
        emulator_url=emulator_url,
        key=key,
        credential_type=ctype,
        secret=settings.api_key,
    )


def fold_connection(
    connection: ConnectionOptions | None,
    *,
    dotenv: bool | str | os.PathLike[str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    **flat: Any,
) -> ConnectionOptions:
    """The options of a constructor that takes ``connection=`` or the flat connection keywords.

    A flat keyword left ``None`` is not given. With ``connection`` every given flat keyword (and
    ``dotenv``) is an error, since it would be silently ignored; without it the flat keywords are
    resolved with :meth:`ConnectionOptions.from_env` (``defaults`` fill what is not given).
    """
    given = {name: value for name, value in flat.items() if value is not None}
    if connection is not None:
        if not isinstance(connection, ConnectionOptions):
            raise ConfigError(
                "connection", type(connection).__name__, "a voicelive_nb.ConnectionOptions (or None)"
            )
        clash = sorted(given) + (["dotenv"] if dotenv is not None else [])
        if clash:
            names = ", ".join(f"{name}=" for name in clash)
            raise ConfigError(
                "connection",
                "ConnectionOptions",
                "connection= alone",
                message=(
                    f"pass either connection= or the connection keywords, not both: got connection= and "
                    f"{names}; put them in the options instead: connection.replace({clash[0]}=...)"
                ),
            )
        return connection
    return ConnectionOptions.from_env(
        dotenv=True if dotenv is None else dotenv, **{**(defaults or {}), **given}
    )


# --- validation ------------------------------------------------------------------------------------

_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(ConnectionOptions))


def _check_names(fields: Mapping[str, Any]) -> None:
    unknown = sorted(set(fields) - _FIELD_NAMES - {"sources"})
    if unknown:
        raise ConfigError(
            unknown[0],
            fields[unknown[0]] if unknown[0] not in _SECRET_OPTION_KEYS else "***",
            "one of " + ", ".join(sorted(_FIELD_NAMES - {"sources"})),
            message=f"unknown connection option {unknown[0]!r}; the options are "
            + ", ".join(sorted(_FIELD_NAMES - {"sources"})),
        )


def _check_optional_text(name: str, value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        shown = type(value).__name__ if not isinstance(value, str) else value
        raise ConfigError(name, shown, "a non-empty string, or None")


def _check_endpoint(endpoint: str) -> None:
    """The endpoint must make a realtime URL (the same rule as when connecting, checked early)."""
    try:
        build_url(endpoint, api_version="check")
    except TransportError as exc:
        raise ConfigError(
            "endpoint", redact_url(endpoint), "an https, http, wss or ws URL with a host", str(exc)
        ) from None


def _as_secret(value: object) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value
    if not isinstance(value, str) or not value:
        shown = "''" if value == "" else type(value).__name__
        raise ConfigError("api_key", shown, "a non-empty string or a voicelive_nb.auth.Secret, or None")
    return Secret(value)


def _frozen_strings(name: str, value: object) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(name, type(value).__name__, "a mapping of strings to strings")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise ConfigError(f"{name}.{key}", type(item).__name__, "a string")
    return MappingProxyType(dict(value))


def _check_seconds(name: str, value: object, low: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not low <= value <= _MAX_SECONDS  # NaN fails this too
    ):
        raise ConfigError(name, value, f"{low:g} to {_MAX_SECONDS} (seconds)")


def _masked(name: str, value: Any) -> str:
    """One field for a repr: secrets masked, URLs redacted, mappings with secret-looking keys masked."""
    if isinstance(value, Secret):
        return repr(value.masked())
    if name == "endpoint" and isinstance(value, str):
        return repr(redact_url(value))
    if name == "credential":
        return f"<{type(value).__name__}>"
    if name == "transport_factory":
        return f"<{getattr(value, '__qualname__', None) or type(value).__name__}>"
    if isinstance(value, Mapping):
        items = (f"{k!r}: {_masked_item(str(k), v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    return repr(value)


def _masked_item(key: str, value: Any) -> str:
    lowered = key.lower()
    if isinstance(value, str) and any(
        word in lowered for word in (*_SECRET_OPTION_KEYS, "authorization", "sig")
    ):
        return "'***'"
    return _masked(key, value)


_DEFAULTS = ConnectionOptions()

__all__ = [
    "TIMEOUT_FIELDS",
    "ConnectionOptions",
    "ConnectionSummary",
    "connection_summary",
    "fold_connection",
    "wants_emulator",
]
