"""The exception hierarchy of voicelive_nb.

Every error raised by this package derives from :class:`VoiceLiveError`. Errors from
third-party libraries (websockets, sounddevice, azure-identity) are translated into
these at the edge modules, so callers catch one family.
"""

from __future__ import annotations

import traceback
from typing import Any, ClassVar


class VoiceLiveError(Exception):
    """Base class of every error raised by voicelive_nb.

    These are expected failures (a bad setting, a refused connection, a timeout), so IPython and
    Jupyter show them as one short block, without the library's frames and without any source
    lines (a source line can hold a key typed inline, and would be saved with the notebook).
    Set ``VoiceLiveError.concise_tracebacks = False`` to see the full traceback; bugs (any other
    exception) always get it.
    """

    #: IPython/Jupyter: show only the message (True) or the whole traceback (False).
    concise_tracebacks: ClassVar[bool] = True

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback (it calls this hook when it exists)."""
        if not VoiceLiveError.concise_tracebacks:
            return "".join(traceback.format_exception(type(self), self, self.__traceback__)).splitlines()
        lines = [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]
        cause = self.__cause__ or (None if self.__suppress_context__ else self.__context__)
        if cause is not None and not isinstance(cause, VoiceLiveError):
            module = type(cause).__module__
            name = (
                type(cause).__qualname__ if module == "builtins" else f"{module}.{type(cause).__qualname__}"
            )
            lines.append(f"(caused by {name})")  # its type only: a library's message may quote a secret
        return lines


class ConfigError(VoiceLiveError, ValueError):
    """A session configuration value is invalid.

    ``field`` is the dotted path of the field (``turn_detection.threshold``), ``value`` what
    was given, ``allowed`` a human-readable description of the allowed range or choices.
    """

    def __init__(self, field: str, value: Any, allowed: str, message: str | None = None) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        text = message or f"invalid {field}: {value!r}; allowed: {allowed}"
        super().__init__(text)


class InvalidValue(VoiceLiveError, ValueError):
    """A value given to this package is malformed or out of range (audio, labels, options).

    Session configuration fields raise :class:`ConfigError` instead (which names the field);
    this one is also a :class:`ValueError`, so ``except ValueError`` keeps working.
    """


class InvalidType(VoiceLiveError, TypeError):
    """An argument of a type this package cannot use (also a :class:`TypeError`)."""


class StateError(VoiceLiveError, RuntimeError):
    """The call does not fit the object's state: already running, not started, closed, cancelled.

    Also a :class:`RuntimeError`, as such errors were before.
    """


class NotFound(VoiceLiveError, KeyError):
    """A key, item or name that is not there (also a :class:`KeyError`, for mapping-style lookups)."""


class ProtocolError(VoiceLiveError):
    """A message could not be encoded or violates the Voice Live protocol."""


class ServerError(VoiceLiveError):
    """The service answered with an ``error`` event."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        error_type: str | None = None,
        event_id: str | None = None,
    ) -> None:
        self.code = code
        self.param = param
        self.error_type = error_type
        self.event_id = event_id
        details = ", ".join(f"{k}={v}" for k, v in (("code", code), ("param", param)) if v)
        super().__init__(f"{message} ({details})" if details else message)


class WaitTimeout(VoiceLiveError, TimeoutError):
    """An awaited event did not arrive in time."""


class TransportError(VoiceLiveError):
    """The WebSocket connection could not be opened or was lost."""


class ConnectTimeout(TransportError):
    """Opening the connection took longer than the connect timeout."""


class AuthenticationError(TransportError):
    """The service refused the credential during the handshake (HTTP 401/403)."""

    def __init__(
        self, message: str, *, status: int | None = None, credential_kind: str | None = None
    ) -> None:
        self.status = status
        self.credential_kind = credential_kind
        super().__init__(message)


class HandshakeRefused(TransportError):
    """The service answered the WebSocket handshake with an HTTP error other than 401/403 (such as
    429 too many requests or 503 at capacity): ``status``, and ``retry_after_s`` from its
    ``Retry-After`` header (None when it sent none)."""

    def __init__(self, message: str, *, status: int, retry_after_s: float | None = None) -> None:
        self.status = status
        self.retry_after_s = retry_after_s
        super().__init__(message)


class ConnectionClosed(TransportError):
    """The connection was closed; ``code`` and ``reason`` come from the close frame."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        text = (
            f"connection closed (code {code})" if code is not None else "connection closed (no close frame)"
        )
        if reason:
            text += f": {reason}"
        super().__init__(text)


class AudioError(VoiceLiveError):
    """An audio source, sink or device failed."""


class AudioDeviceUnavailable(AudioError):
    """No usable audio device (PortAudio missing, no device, or the device refused)."""


class OptionalDependencyMissing(VoiceLiveError, ImportError):
    """An optional extra is needed for this feature; the message says what to install."""

    def __init__(self, feature: str, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{feature} needs the '{package}' package; install it with: pip install 'voicelive_nb[{extra}]'"
        )
