"""The emulator's sans-I/O core: :class:`ServerProtocol`, one Voice Live session without sockets.

Feed it client frames and the time (:meth:`ServerProtocol.receive`), read the events to send
(:meth:`ServerProtocol.events_to_send`) and when it next wants the clock
(:meth:`ServerProtocol.next_deadline`, then :meth:`ServerProtocol.advance`); run the CPU work it
asks for (:meth:`ServerProtocol.work`: VAD scoring, TTS, ASR) and hand the results back
(:meth:`ServerProtocol.job_done`). Everything a session decides lives here and in the parts it
is made of: validation and errors, ``session.update``, the conversation items (create, retrieve,
delete, truncate with its checks), input text, the input audio and server VAD
(:mod:`.input_audio`), transcription (:mod:`.transcripts`), responses with their pacing,
cancellation and barge-in (:mod:`.responder`), tool calls (:mod:`.tool_turns`). It never reads a
clock, sleeps, starts a thread or touches a socket; ids come from the ``new_id`` it is given.

The asyncio shell is :class:`~.conversation.Conversation` (one pacing timer, an executor for the
jobs, the connection's outbox); tests wire a ``ServerProtocol`` to the client's
:class:`~voicelive_nb.protocol.state.SessionProtocol` in memory with virtual milliseconds.

Error codes used in ``error`` events (``error.type`` is ``invalid_request_error`` unless noted):

=====================================  ================================================================
``invalid_json``                       the frame is not JSON
``invalid_event``                      the JSON is not an object
``missing_required_parameter``         a required field is absent (``param`` names it, e.g. ``type``)
``invalid_value``                      a field has the wrong type or is out of range (``param``)
``unknown_parameter``                  ``session.update`` names a field the service does not know
``unknown_event_type``                 ``type`` is not a client event of Voice Live
``not_supported``                      a known client event the emulator does not implement
``invalid_base64``                     ``input_audio_buffer.append`` audio is not base64
``invalid_audio_length``               PCM16 audio with an odd byte count (or not whole stereo frames)
``input_audio_buffer_commit_empty``    commit with less than 100 ms of audio in the buffer
``conversation_already_has_active_response``  ``response.create`` while a response is in progress
``response_cancel_not_active``         ``response.cancel`` with nothing (or another id) in progress
``item_not_found``                     ``item_id`` / ``previous_item_id`` unknown
``duplicate_item_id``                  ``conversation.item.create`` with an id already used
``cannot_update_model`` / ``cannot_update_voice`` / ``cannot_update_input_audio``  see session_defaults
``session_expired``                    the session reached ``expires_at`` (then close 1001)
``internal_error`` (``server_error``)  a bug in the emulator; the connection stays usable
=====================================  ================================================================
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import session_defaults as sd
from .core import Core, InputProcessing, Job, Outgoing, PassThrough, error_event
from .input_audio import InputAudio
from .items import ItemStore, build_item, item_done, latest_approval, public_item, require_str
from .options import ConversationOptions
from .responder import Responder
from .responses import ActiveResponse, validate_response_params
from .session_defaults import SessionError
from .transcripts import Transcripts
from .wire_shapes import Edge, edge_for

__all__ = ["ServerProtocol", "counter_ids", "decode_client_frame"]

Event = dict[str, Any]
_KNOWN_UNSUPPORTED = frozenset(
    {
        "session.avatar.connect",
        "input_audio.turn.start",
        "input_audio.turn.append",
        "input_audio.turn.end",
        "input_audio.turn.cancel",
        "input_audio.clear",
        "mcp_approval_response",
        "transcription_session.update",
    }
)


def decode_client_frame(data: str | bytes) -> tuple[Any, str | None]:
    """``(message, None)``, or ``(None, what is wrong)`` for a frame that is not usable JSON.

    Pathological frames (nesting deep enough to exhaust the parser's recursion, invalid UTF-8,
    non-JSON) are reported, never raised: the connection stays usable.
    """
    try:
        return json.loads(data), None
    except RecursionError:
        return None, "the message is nested too deeply to parse; send a flat JSON object"
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"the message is not valid JSON: {exc}"


def counter_ids() -> Callable[[str], str]:
    """Deterministic ids (``item_1``, ``resp_2``, …) for in-memory runs and tests."""
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}_{next(counter)}"


class ServerProtocol:
    """One Voice Live session, sans I/O: client text and time in, server events and deadlines out."""

    def __init__(
        self,
        *,
        model: str | None,
        api_version: str | None = None,
        features: Sequence[str] = (),
        agent: Mapping[str, Any] | None = None,
        options: ConversationOptions | None = None,
        now_ms: float = 0.0,
        wall_s: float = 0.0,
        new_id: Callable[[str], str] | None = None,
        input_path: InputProcessing | None = None,
        recognizer_factory: Callable[[], Any] | None = None,
    ) -> None:
        options = options or ConversationOptions()
        new_id = new_id or counter_ids()
        session = sd.new_session(
            model,
            session_id=new_id("sess"),
            now_s=wall_s,
            expires_in_s=options.session_max_s,
            api_version=api_version,
            agent=agent,
        )
        self.core = Core(
            session,
            options,
            new_id=new_id,
            now_ms=now_ms,
            input_path=input_path or PassThrough(),
            api_version=api_version,
            features=tuple(features),
        )
        self.responder = Responder(self.core)
        self.transcripts = Transcripts(self.core, recognizer_factory)
        self.responder.transcripts = self.transcripts
        self.input = InputAudio(self.core, self.responder, self.transcripts)
        self._held: deque[Any] = deque()
        self._edge: Edge = edge_for(api_version)
        self._sent_count = 0
        self._handlers: dict[str, Callable[[Event], None]] = {
            "session.update": self._on_session_update,
            "input_audio_buffer.append": self.input.append,
            "input_audio_buffer.commit": lambda msg: self.input.commit(),
            "input_audio_buffer.clear": lambda msg: self.input.clear(),
            "input_text.delta": self._on_text_delta,
            "input_text.done": self._on_text_done,
            "conversation.item.create": self._on_item_create,
            "conversation.item.retrieve": self._on_item_retrieve,
            "conversation.item.delete": self._on_item_delete,
            "conversation.item.truncate": self._on_item_truncate,
            "response.create": self._on_response_create,
            "response.cancel": self._on_response_cancel,
            "output_audio_buffer.clear": lambda msg: self.core.emit({"type": "output_audio_buffer.cleared"}),
        }
        self._text_inputs: dict[str, list[str]] = {}

    # --- what it holds ------------------------------------------------------------------------------

    @property
    def session(self) -> Event:
        return self.core.session

    @property
    def items(self) -> ItemStore:
        return self.core.items

    @property
    def active_response(self) -> ActiveResponse | None:
        return self.responder.active

    @property
    def input_ms(self) -> float:
        return self.input.position_ms

    # --- input --------------------------------------------------------------------------------------

    def _tick(self, now_ms: float | None) -> None:
        if now_ms is not None and now_ms > self.core.now_ms:
            self.core.now_ms = now_ms

    def start(self, now_ms: float | None = None) -> None:
        """Queue ``session.created`` (the first event of a connection)."""
        self._tick(now_ms)
        self.core.emit({"type": "session.created", "session": copy.deepcopy(self.core.session)})

    def receive(self, data: str | bytes, now_ms: float | None = None) -> None:
        """One client frame (JSON text in the api-version's wire shape); every problem becomes an ``error``."""
        msg = self.parse_message(data)
        if msg is not None:
            self.handle_event(self._edge.client(msg), now_ms)

    def parse_message(self, data: str | bytes) -> Any:
        """Decode one client frame (counted as received); ``None`` after an ``error`` was queued for it."""
        self.core.stats.events_received += 1
        msg, problem = decode_client_frame(data)
        if problem is not None:
            self.core.emit(error_event("invalid_json", problem))
            return None
        return msg

    def handle_event(self, msg: Any, now_ms: float | None = None) -> None:
        """One decoded client event; held back while a blocking job (VAD) of an earlier one runs."""
        self._tick(now_ms)
        if self.core.blocking_jobs or self._held:
            self._held.append(msg)
            return
        self._dispatch(msg)

    def _dispatch(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            text = f"a client event must be a JSON object, got {type(msg).__name__}"
            self.core.emit(error_event("invalid_event", text))
            return
        client_id = msg.get("event_id") if isinstance(msg.get("event_id"), str) else None
        etype = msg.get("type")
        if etype is None or not isinstance(etype, str):
            code, text = (
                ("missing_required_parameter", "missing required parameter 'type'")
                if etype is None
                else ("invalid_value", "'type' must be a string")
            )
            self.core.emit(error_event(code, text, param="type", event_id=client_id))
            return
        handler = self._handlers.get(etype)
        if handler is None:
            if etype in _KNOWN_UNSUPPORTED:
                code, text = "not_supported", f"the emulator does not support '{etype}'"
            else:
                code, text = "unknown_event_type", f"unknown client event type '{etype}'"
            self.core.emit(error_event(code, text, param="type", event_id=client_id))
            return
        try:
            handler(msg)
        except SessionError as exc:
            self.core.emit(
                error_event(
                    exc.code, exc.message, param=exc.param, event_id=client_id, error_type=exc.error_type
                )
            )
        except Exception as exc:
            self.core.failures.append((f"a {etype} event", exc))
            self.core.emit(
                error_event(
                    "internal_error",
                    f"the emulator failed on '{etype}': {type(exc).__name__}: {exc}",
                    event_id=client_id,
                    error_type="server_error",
                )
            )

    # --- output, time and work ----------------------------------------------------------------------

    def next_outgoing(self) -> Outgoing | None:
        """The next queued event and its ``on_sent`` hook (for a shell that sends one at a time)."""
        return self.core.next_outgoing()

    def take_discards(self) -> list[str]:
        """Responses cancelled since the last call whose unsent deltas a shell's own queue must drop."""
        return self.core.take_discards()

    def events_to_send(self, now_ms: float | None = None) -> list[Event]:
        """Drain the outbox, as if every event went on the wire now (hooks run with ``now_ms``)."""
        self._tick(now_ms)
        self.core.take_discards()  # nothing queued downstream: the outbox was the only queue
        out: list[Event] = []
        while (o := self.core.next_outgoing()) is not None:
            if o.on_sent is not None:
                o.on_sent(self.core.now_ms)
            out.append(o.event)
        return out

    def data_to_send(self, now_ms: float | None = None) -> list[str]:
        """:meth:`events_to_send` as wire frames: JSON text with ``event_id``, in the api-version's shape."""
        frames: list[str] = []
        for event in self.events_to_send(now_ms):
            for wire in self._edge.server(dict(event)):
                self._sent_count += 1
                wire.setdefault("event_id", f"event_{self._sent_count}")
                frames.append(json.dumps(wire, separators=(",", ":")))
        return frames

    def next_deadline(self) -> float | None:
        """When (ms) :meth:`advance` has something to do: the next paced audio chunk; None: nothing."""
        return self.responder.next_deadline()

    def advance(self, now_ms: float) -> None:
        """The clock moved on: send what is due."""
        self._tick(now_ms)
        self.responder.advance(self.core.now_ms)

    def work(self) -> list[Job]:
        """Jobs requested since the last call (each once): run them and call :meth:`job_done`."""
        return self.core.take_work()

    def job_done(self, job: Job, result: Any, now_ms: float | None = None) -> None:
        self._tick(now_ms)
        self._settle(job, lambda: job.resolve(result))

    def job_failed(self, job: Job, error: BaseException, now_ms: float | None = None) -> None:
        self._tick(now_ms)
        self._settle(job, lambda: job.fail(error))

    def _settle(self, job: Job, settle: Callable[[], None]) -> None:
        if job.blocking and not job.done:
            self.core.blocking_jobs -= 1
        settle()
        while not self.core.blocking_jobs and self._held:
            self._dispatch(self._held.popleft())

    def transcription_delta(self, item_id: str, delta: str, now_ms: float | None = None) -> None:
        """A stable partial result of the shell's streaming recogniser."""
        self._tick(now_ms)
        self.transcripts.stream_delta(item_id, delta)

    def take_failures(self) -> list[tuple[str, BaseException]]:
        """Bugs caught since the last call (the shell logs them)."""
        out, self.core.failures = self.core.failures, []
        return out

    def close(self) -> None:
        """The connection is gone: nothing more is sent, no plan goes on."""
        self.core.closed = True
        self.responder.close()
        self.transcripts.close()
        self.core.input_path.close()

    def expire(self, now_ms: float | None = None) -> None:
        """The session reached ``expires_at``: cancel any response and send ``session_expired``."""
        self._tick(now_ms)
        if self.responder.active is not None:
            self.responder.cancel(self.responder.active, "client_cancelled", auto_truncate=False)
        self.core.emit(
            error_event(
                "session_expired",
                f"the session reached its maximum duration ({self.core.options.session_max_s:g} s); open a new session",
            )
        )

    # --- session ------------------------------------------------------------------------------------

    def _on_session_update(self, msg: Event) -> None:
        if "session" not in msg:
            raise SessionError(
                "missing_required_parameter", "missing required parameter 'session'", "session"
            )
        core = self.core
        new = sd.apply_session_update(
            core.session,
            msg["session"],
            audio_appended=core.audio_appended,
            audio_produced=core.audio_produced,
            api_version=core.api_version,
            features=core.features,
        )
        old, core.session = core.session, new
        self.input.session_changed(old, new)
        core.emit({"type": "session.updated", "session": copy.deepcopy(new)})

    # --- text input ---------------------------------------------------------------------------------

    def _on_text_delta(self, msg: Event) -> None:
        target = require_str(msg, "id")
        delta = msg.get("delta", "")
        if not isinstance(delta, str):
            raise SessionError("invalid_value", "'delta' must be a string", "delta")
        self._text_inputs.setdefault(target, []).append(delta)

    def _on_text_done(self, msg: Event) -> None:
        target = require_str(msg, "id")
        text = "".join(self._text_inputs.pop(target, []))
        existing = self.core.items.get(target)
        if existing is not None:  # the text becomes the content of an item the client created
            existing["content"] = [{"type": "input_text", "text": text}]
            return
        item: Event = {
            "id": target,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_text", "text": text}],
        }
        previous = self.core.items.insert(item)
        self.core.emit(
            {"type": "conversation.item.created", "previous_item_id": previous, "item": public_item(item)}
        )

    # --- conversation items -------------------------------------------------------------------------

    def _create_item(self, raw: Any, previous_item_id: Any = None, param: str = "item") -> Event:
        items = self.core.items
        if previous_item_id is not None and not isinstance(previous_item_id, str):
            raise SessionError("invalid_value", "'previous_item_id' must be a string", "previous_item_id")
        if previous_item_id not in (None, "root") and previous_item_id not in items:
            raise SessionError(
                "item_not_found", f"previous_item_id '{previous_item_id}' does not exist", "previous_item_id"
            )
        item, audio = build_item(
            raw,
            param,
            existing=items.__contains__,
            new_id=self.core.new_id,
            audio_format=self.core.audio_format,
        )
        previous = items.insert(item, previous_item_id)
        self.core.emit(
            {"type": "conversation.item.created", "previous_item_id": previous, "item": public_item(item)}
        )
        self.core.emit(item_done(previous, public_item(item), ga_only=True))
        if audio is not None:
            self.transcripts.keep(item["id"], audio)
            has_transcript = any(p.get("transcript") for p in item["content"] if p["type"] == "input_audio")
            if not has_transcript and self.core.transcribing():
                self.transcripts.send_events(item["id"])
        return item

    def _on_item_create(self, msg: Event) -> None:
        if "item" not in msg:
            raise SessionError("missing_required_parameter", "missing required parameter 'item'", "item")
        item = self._create_item(msg["item"], msg.get("previous_item_id"))
        answered = item.get("type") == "mcp_approval_response" and latest_approval(self.core.items.items())
        if answered and self.responder.active is None:
            self.responder.start({})  # the service goes on by itself once it has the answer

    def _existing(self, msg: Mapping[str, Any]) -> tuple[str, Event]:
        item_id = require_str(msg, "item_id")
        item = self.core.items.get(item_id)
        if item is None:
            raise SessionError("item_not_found", f"item '{item_id}' does not exist", "item_id")
        return item_id, item

    def _on_item_retrieve(self, msg: Event) -> None:
        _, item = self._existing(msg)
        self.core.emit({"type": "conversation.item.retrieved", "item": public_item(item)})

    def _on_item_delete(self, msg: Event) -> None:
        item_id, _ = self._existing(msg)
        self.core.items.delete(item_id)
        self.transcripts.forget(item_id)
        self.core.emit({"type": "conversation.item.deleted", "item_id": item_id})

    def _on_item_truncate(self, msg: Event) -> None:
        item_id, item = self._existing(msg)
        content_index = msg.get("content_index", 0)
        if not isinstance(content_index, int) or isinstance(content_index, bool):
            raise SessionError("invalid_value", "'content_index' must be an integer", "content_index")
        state = self.responder.audio_items.get(item_id)
        content = item.get("content") or []
        if (
            state is None
            or item.get("role") != "assistant"
            or not 0 <= content_index < len(content)
            or content[content_index].get("type") != "audio"
        ):
            raise SessionError(
                "invalid_value",
                f"only the audio part of an assistant item can be truncated; item '{item_id}' content "
                f"{content_index} is not one",
                "content_index" if state is not None else "item_id",
            )
        end = msg.get("audio_end_ms")
        if end is None:
            raise SessionError(
                "missing_required_parameter", "missing required parameter 'audio_end_ms'", "audio_end_ms"
            )
        if not isinstance(end, (int, float)) or isinstance(end, bool) or not math.isfinite(end) or end < 0:
            raise SessionError(
                "invalid_value", "'audio_end_ms' must be a number of milliseconds >= 0", "audio_end_ms"
            )
        length = state.truncated_ms if state.truncated_ms is not None else state.sent_ms
        if end > math.ceil(length):
            raise SessionError(
                "invalid_value",
                f"audio_end_ms {end} is beyond the audio of item '{item_id}' ({math.floor(length)} ms were sent)",
                "audio_end_ms",
            )
        active = self.responder.active
        if active is not None and active.item_id == item_id:
            # truncating the item that is still being generated stops that response first
            self.responder.cancel(active, "client_cancelled", auto_truncate=False)
        self.responder.truncate(state, float(end), content_index, reported_ms=end)

    # --- responses ----------------------------------------------------------------------------------

    def _on_response_create(self, msg: Event) -> None:
        params = msg.get("response") or {}
        if not isinstance(params, dict):
            raise SessionError("invalid_value", "'response' must be an object", "response")
        active = self.responder.active
        if active is not None:
            if params.get("cancel_previous") is not True:
                raise SessionError(
                    "conversation_already_has_active_response",
                    f"conversation already has an active response ({active.id}); wait for response.done, "
                    "send response.cancel, or set response.cancel_previous",
                    None,
                )
            self.responder.cancel(active, "client_cancelled", auto_truncate=False)
        checked = validate_response_params(
            params, new_id=self.core.new_id, audio_format=self.core.audio_format
        )
        if params.get("commit", True) is not False:
            self.input.commit_for_response()
        for i, raw in enumerate(params.get("append_input_items") or []):
            self._create_item(raw, None, f"response.append_input_items[{i}]")
        self.responder.start(checked)

    def _on_response_cancel(self, msg: Event) -> None:
        active = self.responder.active
        wanted = msg.get("response_id")
        if active is None or (wanted is not None and wanted != active.id):
            which = f"response '{wanted}'" if wanted is not None else "a response"
            raise SessionError(
                "response_cancel_not_active",
                f"cannot cancel {which}: no such response is in progress",
                "response_id" if wanted is not None else None,
            )
        self.responder.cancel(active, "client_cancelled", auto_truncate=False)
