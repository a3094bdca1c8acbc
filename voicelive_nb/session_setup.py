"""How a :class:`~voicelive_nb.session.Session` sets itself up and keeps its configuration.

:class:`LiveConfig` owns the session's configuration: the first ``session.update`` once the
service said ``session.created``, :meth:`Session.update` (only what differs is sent), the tool
list kept in step with the registered functions, and the model-aware advice. Around it, pure
helpers computed as data: the checked ``session.update`` payload (the model is the URL's;
secrets registered for masking), a config changed by a partial update (read-only keys of a
server's session dropped), the registered tools merged into a config, the MCP approval item,
and the check that a source can give the echo reference.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from .audio.base import AudioSource
from .auth import register_secret, secrets_in
from .errors import ConfigError
from .protocol.config import SERVER_ONLY_KEYS, SessionConfig, client_echo_reference_problem, config_warnings
from .protocol.wire import is_ga_session, session_from_wire
from .session_audio import client_ec
from .session_events import reason
from .tools import ToolRunner

log = logging.getLogger("voicelive_nb.session")


def session_config(config: SessionConfig | Mapping[str, Any] | None) -> SessionConfig:
    """A session's configuration: as given, from a wire dict, or the server-VAD preset."""
    if config is None:
        return SessionConfig.server_vad()
    if isinstance(config, Mapping):
        return SessionConfig.from_dict(dict(config))
    return config


def check_limits(*, frame_ms: Any, max_events: Any, max_event_bytes: Any) -> None:
    """A session's block size and history limits, else a ConfigError naming the first bad one."""
    if not isinstance(frame_ms, (int, float)) or not 10 <= frame_ms <= 200:
        raise ConfigError("frame_ms", frame_ms, "10 to 200 (milliseconds of audio per append)")
    if not isinstance(max_events, int) or max_events < 1:
        raise ConfigError("max_events", max_events, "an integer of at least 1")
    if not isinstance(max_event_bytes, int) or max_event_bytes < 1:
        raise ConfigError("max_event_bytes", max_event_bytes, "an integer of at least 1 (bytes)")


def check_api_version(config: SessionConfig, api_version: str) -> None:
    """Client-reference echo cancellation needs an api-version that has it, else a ConfigError."""
    if client_ec(config):
        problem = client_echo_reference_problem(api_version)
        if problem is not None:
            raise ConfigError("api_version", api_version, problem)


def update_payload(wire: Mapping[str, Any], model: str | None) -> dict[str, Any]:
    """The ``session`` of a ``session.update``: without ``model`` (chosen when connecting, the
    URL's ``model=``; the service refuses a change), its secrets registered for masking."""
    if "model" in wire:
        log.debug("not sending model=%r in session.update: the model is the URL's (%s)", wire["model"], model)
        wire = {k: v for k, v in wire.items() if k != "model"}
    for secret in secrets_in(wire):
        register_secret(secret)
    return dict(wire)


def advise(config: SessionConfig, model: str | None, known: Sequence[str]) -> list[str]:
    """The model-aware advice about ``config``, logged at WARNING when not in ``known``;
    a DEBUG note names the server-only keys of a server's session that are not sent back."""
    try:
        found = config_warnings(config, model)
    except Exception as exc:  # advice must never stop a session
        found = []
        log.debug("config_warnings failed: %s", reason(exc))
    for text in found:
        if text not in known:
            log.warning("session configuration: %s", text)
    server_only = getattr(config, "server_only", None)
    dropped = sorted(server_only()) if callable(server_only) else []
    if dropped:
        log.debug("not sending the server-only session keys %s", ", ".join(dropped))
    return found


def with_tools(config: SessionConfig, defined: Sequence[Mapping[str, Any]]) -> SessionConfig:
    """``config`` with the registered functions in its ``tools`` (a function of the same name replaced)."""
    if not defined:
        return config
    names = {d["name"] for d in defined}
    current = config.tools if isinstance(config.tools, (list, tuple)) else ()
    kept = [
        t for t in current if getattr(t, "name", None) not in names or getattr(t, "type", "") != "function"
    ]
    return config.replace(tools=[*kept, *defined])


def approval_item(approval_request_id: str, approve: bool, reason: str | None) -> dict[str, Any]:
    """The ``mcp_approval_response`` item answering an MCP approval request (arguments checked)."""
    if not isinstance(approval_request_id, str) or not approval_request_id:
        raise ConfigError(
            "approval_request_id", approval_request_id, "the id of an mcp_approval_request item"
        )
    if not isinstance(approve, bool):
        raise ConfigError("approve", approve, "True or False")
    if reason is not None and not isinstance(reason, str):
        raise ConfigError("reason", reason, "a string or None")
    item: dict[str, Any] = {
        "type": "mcp_approval_response",
        "approval_request_id": approval_request_id,
        "approve": approve,
    }
    if reason is not None:
        item["reason"] = reason
    return item


def check_reference_source(config: Any, source: AudioSource) -> None:
    """With client-reference echo cancellation the source must give stereo (mic, reference)."""
    if not client_ec(config):
        return
    if not getattr(source, "reference_available", False) or not callable(
        getattr(source, "reference_frames", None)
    ):
        why = getattr(source, "reference_problem", None)
        raise ConfigError(
            "input_audio_echo_cancellation.reference_source",
            "client",
            f"a source that gives the echo reference ({type(source).__name__} "
            f"{why or 'cannot'}): MicrophoneSource(reference=speaker) with a SpeakerSink, or an "
            "EchoRoom; or use server echo cancellation",
        )


def updated_config(
    current: SessionConfig, config: SessionConfig | Mapping[str, Any] | None, changes: Mapping[str, Any]
) -> SessionConfig:
    """``current`` changed by a whole config, a partial wire dict (session.update rules) and/or fields."""
    if isinstance(config, SessionConfig):
        new = config
    elif isinstance(config, Mapping):
        new = current.merge_update(writable_update(config))
    else:
        new = current
    return new.replace(**changes) if changes else new


def writable_update(update: Mapping[str, Any]) -> dict[str, Any]:
    """A ``session.update`` payload from a partial dict or a whole session a server sent.

    A GA-shaped session is made flat; a server's session object (it has ``id``, ``object`` or
    ``expires_at``) loses those read-only keys and ``model`` (fixed at connect), with a debug
    note naming them, so re-applying a real ``session.updated`` sends only what can change.
    """
    flat = dict(session_from_wire(update)) if is_ga_session(update) else dict(update)
    if any(key in flat for key in SERVER_ONLY_KEYS):
        dropped = [key for key in (*SERVER_ONLY_KEYS, "model") if key in flat]
        for key in dropped:
            del flat[key]
        log.debug("not sending the server-only session keys %s", ", ".join(dropped))
    return flat


class LiveConfig:
    """The session's configuration and how it reaches the service.

    ``send(event)`` sends a client event; ``wait_updated(errors_before=i)`` waits for the next
    ``session.updated`` and raises an ``error`` event that arrives first (the index is into
    ``errors``, the session's error events, taken just before sending).
    """

    def __init__(
        self,
        config: SessionConfig,
        model: str | None,
        tools: ToolRunner,
        send: Callable[[dict[str, Any]], Awaitable[None]],
        wait_updated: Callable[..., Awaitable[Any]],
        errors: list[Any],
    ) -> None:
        self.config = config
        #: Model-aware advice about the configuration (logged at WARNING when it opens or updates).
        self.warnings: list[str] = []
        self._model = model
        self._tools = tools
        self._send = send
        self._wait_updated = wait_updated
        self._errors = errors

    def check(self) -> None:
        """Keep (and log at WARNING, each once) the model-aware advice about :attr:`config`."""
        self.warnings = advise(self.config, self._model, self.warnings)

    async def send_update(self, wire: Mapping[str, Any]) -> Any:
        """Send ``wire`` as a ``session.update``; the service's ``session.updated``."""
        payload = update_payload(wire, self._model)
        before = len(self._errors)
        await self._send({"type": "session.update", "session": payload})
        return await self._wait_updated(errors_before=before)

    async def open(self) -> None:
        """The first update, once the service said ``session.created``: the whole config and the tools."""
        self.config = with_tools(self.config, self._tools.definitions())
        self.check()
        wire = self.config.to_dict()
        if wire:
            await self.send_update(wire)

    async def update(
        self, config: SessionConfig | Mapping[str, Any] | None, changes: Mapping[str, Any], connected: bool
    ) -> Any:
        """Change the configuration; send what differs when ``connected`` (``session.updated``, or None)."""
        new = updated_config(self.config, config, changes)
        if connected and client_ec(new) != client_ec(self.config):
            raise ConfigError(
                "input_audio_echo_cancellation.reference_source",
                "client" if client_ec(new) else "server",
                "the reference source chosen when the session opened (it is fixed for the session)",
            )
        delta = self.config.diff(new)
        self.config = new
        self.check()
        if not delta:
            return None
        return await self.send_update(delta)

    async def sync_tools(self) -> Any:
        """Send the tool list when the registered functions changed it (``session.updated``, or None)."""
        new = with_tools(self.config, self._tools.definitions())
        delta = self.config.diff(new)
        self.config = new
        return await self.send_update(delta) if delta else None
