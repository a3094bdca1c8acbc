"""Responses of the emulator as deadline-driven plans (pure): create, stream, cancel, truncate.

A response's life is a plan: a generator that emits its events in the service's order and
*yields* what it waits for — a :class:`~.core.Job` (TTS render, a transcript, a ``replies=``
coroutine) or an :class:`~.core.Until` (the next paced audio chunk). :class:`Responder` steps
the plans: a resolved job resumes its plan at once, :meth:`Responder.advance` resumes the plans
whose time has come, :meth:`Responder.next_deadline` says when that is. Cancelling a response
(``response.cancel``, barge-in, ``cancel_previous``, truncation of the item being generated)
throws into its plan, which closes the response at once: the deltas not yet handed out are
dropped, so the transcript in the closing events is what was sent.

The assistant audio's playout clock starts when its first delta is on the wire (the ``on_sent``
hook of that event, run by the shell with the time): auto-truncation and filler detection
read it.
"""

from __future__ import annotations

import base64
import copy
import math
import re
from collections.abc import Callable, Generator, Mapping
from typing import Any

from . import session_defaults as sd
from .core import Core, Pending, Until
from .items import item_done
from .responses import (
    ActiveResponse,
    AudioItemState,
    Rendered,
    ScriptedReplies,
    align_words,
    assistant_item,
    default_reply,
    plan_chunks,
    response_object,
    text_until,
    usage,
    words_of,
)
from .tool_turns import CallsSent, Cancelled, ToolTurns
from .transcripts import Transcripts

__all__ = ["Plan", "Responder"]

Event = dict[str, Any]
Plan = Generator["Pending[Any] | Until", Any, None]


def _appender(target: list[str], text: str) -> Callable[[float], None]:
    return lambda _now_ms: target.append(text)


class Responder:
    """The one active response of a connection, the audio items it made, and their plans."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.active: ActiveResponse | None = None
        self.audio_items: dict[str, AudioItemState] = {}
        self.last_audio: AudioItemState | None = None
        self.script = ScriptedReplies(core.options.replies)
        self.tools = ToolTurns(core, self.script, self.heard_text)
        #: The transcripts of user audio items (the input side owns them; set by the protocol).
        self.transcripts: Transcripts | None = None
        self._plans: dict[str, Plan] = {}
        self._waiting: dict[str, Pending[Any]] = {}
        self._wake: dict[str, float] = {}
        self._running: set[str] = set()

    # --- stepping the plans ---------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When the next paced step is due (ms), or None."""
        return min(self._wake.values(), default=None)

    def advance(self, now_ms: float) -> None:
        """Resume every plan whose time has come."""
        for resp_id, due in sorted(self._wake.items(), key=lambda kv: kv[1]):
            if due <= now_ms and self._wake.get(resp_id) == due:
                del self._wake[resp_id]
                self._step(resp_id)

    def _step(self, resp_id: str, value: Any = None, throw: BaseException | None = None) -> None:
        plan = self._plans.get(resp_id)
        if plan is None or resp_id in self._running:
            return  # a cancel from inside the plan itself: it sees ``cancelled`` at its next step
        self._running.add(resp_id)
        try:
            waiting = plan.throw(throw) if throw is not None else plan.send(value)
        except StopIteration:
            self._plans.pop(resp_id, None)
            return
        finally:
            self._running.discard(resp_id)
        if isinstance(waiting, Until):
            self._wake[resp_id] = waiting.ms
            return
        self._waiting[resp_id] = waiting
        waiting.then(lambda p: self._resolved(resp_id, p))

    def _resolved(self, resp_id: str, pending: Pending[Any]) -> None:
        if self._waiting.get(resp_id) is pending:
            del self._waiting[resp_id]
            self._step(resp_id, pending)

    def close(self) -> None:
        """The connection is gone: drop every plan (nothing more is sent)."""
        self._plans.clear()
        self._waiting.clear()
        self._wake.clear()

    # --- starting ---------------------------------------------------------------------------------

    def start(self, params: Mapping[str, Any], trigger_item: str | None = None) -> ActiveResponse:
        session = self.core.session
        modalities = list(params.get("modalities") or session["modalities"])
        output_format = params.get("output_audio_format") or session["output_audio_format"] or "pcm16"
        item_id = self.core.new_id("item")
        resp = ActiveResponse(
            id=self.core.new_id("resp"),
            item_id=item_id,
            modalities=modalities,
            output_format=output_format,
            params=params,
            conversation=params.get("conversation", "auto"),
            max_tokens=params.get("max_output_tokens", session["max_response_output_tokens"]),
            audio=AudioItemState(
                item_id, sd.output_sample_rate(output_format), 1 if output_format.startswith("g711") else 2
            ),
            timestamps="word" in (session.get("output_audio_timestamp_types") or []),
            input_item_id=trigger_item,
        )
        self.active = resp
        self.core.stats.responses += 1
        self._plans[resp.id] = self._run(resp)
        self._step(resp.id)
        return resp

    def _response(self, resp: ActiveResponse, status: str, details: Any, output: list[Event]) -> Event:
        return response_object(resp, self.core.session, self.core.conversation_id, status, details, output)

    def _run(self, resp: ActiveResponse) -> Plan:
        status: str = "completed"
        details: Any = None
        try:
            self.core.emit(
                {"type": "response.created", "response": self._response(resp, "in_progress", None, [])}
            )
            if (yield from self.tools.plan(resp)):
                self.tools.stream_calls(resp)
                raise CallsSent
            if resp.mcp_call is not None:
                self.tools.stream_mcp_call(resp)
            self._open_message(resp)
            text = yield from self._reply_text(resp)
            limit = resp.max_tokens
            if isinstance(limit, int) and words_of(text) > limit:
                text = " ".join(text.split()[:limit])
                resp.incomplete = True
            resp.text = text
            if resp.has_audio:
                yield from self._stream_audio(resp, text)
            else:
                self._stream_text(resp, text)
            if resp.incomplete:
                status, details = "incomplete", {"type": "incomplete", "reason": "max_output_tokens"}
        except CallsSent:
            pass
        except Cancelled:
            status = "cancelled"
            details = {"type": "cancelled", "reason": resp.cancel_reason or "client_cancelled"}
        except Exception as exc:
            self.core.failures.append((f"response {resp.id}", exc))
            status = "failed"
            details = {
                "type": "failed",
                "error": {
                    "type": "server_error",
                    "code": "response_failed",
                    "message": f"{type(exc).__name__}: {exc}",
                },
            }
        self._finish(resp, status, details)

    def _open_message(self, resp: ActiveResponse) -> None:
        """``output_item.added``, the item in the conversation, ``content_part.added``."""
        in_progress = assistant_item(resp, "in_progress", None)
        self.core.emit(
            {
                "type": "response.output_item.added",
                "response_id": resp.id,
                "output_index": resp.message_index,
                "item": in_progress,
            }
        )
        resp.item_opened = True
        if resp.conversation == "auto":
            previous = self.core.items.insert(copy.deepcopy(in_progress))
            resp.previous_item_id = previous
            self.core.emit(
                {"type": "conversation.item.created", "previous_item_id": previous, "item": in_progress}
            )
        part = {"type": "audio", "transcript": ""} if resp.has_audio else {"type": "text", "text": ""}
        self.core.emit({"type": "response.content_part.added", **resp.ids(), "part": part})
        resp.part_opened = True
        stored = self.core.items.get(resp.item_id)
        if stored is not None:
            stored["content"] = [dict(part)]

    # --- what to say --------------------------------------------------------------------------------

    def _reply_text(self, resp: ActiveResponse) -> Generator[Pending[Any], Any, str]:
        params = resp.params
        if isinstance(params.get("pre_generated_text"), str):
            return str(params["pre_generated_text"])
        scripted = self.script.next_text()  # a scripted text wins, even over the quote of a tool's output
        if scripted is not None:
            return scripted
        if resp.planned_text is not None:
            return resp.planned_text
        heard = yield from self.heard_text(params)
        replies = self.core.options.replies
        if callable(replies):
            result: Any = replies(heard)
            if hasattr(result, "__await__"):  # a coroutine: the shell awaits it
                done = yield self.core.request("await", result)
                if done.error is not None:
                    raise done.error
                result = done.value
            return str(result)
        return default_reply(heard)

    def heard_text(self, params: Mapping[str, Any]) -> Generator[Pending[Any], Any, str]:
        """What the user said last: the text of the latest user message (ASR for audio)."""
        items = params.get("input_items")
        candidates = list(items) if items is not None else self.core.items.items()
        for item in reversed(candidates):
            if item.get("type") != "message" or item.get("role") != "user":
                continue
            texts: list[str] = []
            for part in item.get("content", []):
                if part.get("type") == "input_text":
                    texts.append(part.get("text", ""))
                elif part.get("type") == "input_audio":
                    if part.get("transcript"):
                        texts.append(part["transcript"])
                    elif self.transcripts is not None and self.transcripts.known(item["id"]):
                        done = yield self.transcripts.of(item["id"])
                        if done.error is None:  # no transcript: the reply says it heard nothing
                            texts.append(str(done.value))
            return " ".join(t for t in texts if t)
        return ""

    # --- streaming -----------------------------------------------------------------------------------

    def _stream_text(self, resp: ActiveResponse, text: str) -> None:
        for token in re.findall(r"\s*\S+", text) or ([text] if text else []):
            self.core.emit(
                {"type": "response.text.delta", **resp.ids(), "delta": token},
                _appender(resp.sent_text, token),
            )

    def _audio_sent(
        self, resp: ActiveResponse, samples: int, chunk: bytes, rate: int
    ) -> Callable[[float], None]:
        state = resp.audio

        def done(now_ms: float) -> None:
            if state.playout_start_ms is None:
                state.playout_start_ms = now_ms
            state.sent_samples += samples
            if resp.output_format == "pcm16":
                self.core.input_path.sent(self.core.session, chunk, rate, now_ms)
            self.core.audio_produced = True

        return done

    def _stream_audio(self, resp: ActiveResponse, text: str) -> Plan:
        chunk_ms = self.core.options.chunk_ms
        done = yield self.core.request("render", text, resp.output_format, chunk_ms)
        if done.error is not None:
            raise done.error
        rendered: Rendered = done.value
        state = resp.audio
        state.pieces = align_words(text, rendered.words, rendered.total_ms)
        self.audio_items[resp.item_id] = state
        if resp.conversation == "auto":
            self.last_audio = state
        piece_plan = plan_chunks((p.offset_ms for p in state.pieces), len(rendered.chunks), chunk_ms)
        word_plan = plan_chunks((float(w.offset_ms) for w in rendered.words), len(rendered.chunks), chunk_ms)
        realtime = self.core.options.pace == "realtime"
        origin: float | None = None
        for i, chunk in enumerate(rendered.chunks or [b""]):
            if realtime:
                origin = self.core.now_ms if origin is None else origin
                due = origin + i * chunk_ms - self.core.options.lead_ms
                if due > self.core.now_ms:
                    yield Until(due)
            self._emit_chunk(resp, rendered, i, chunk, piece_plan, word_plan)

    def _emit_chunk(
        self,
        resp: ActiveResponse,
        rendered: Rendered,
        i: int,
        chunk: bytes,
        piece_plan: list[list[int]],
        word_plan: list[list[int]],
    ) -> None:
        """One audio chunk: the words that start in it, the audio, their timestamps."""
        r = resp.ids()
        for k in piece_plan[i] if i < len(piece_plan) else []:
            piece = resp.audio.pieces[k].text
            self.core.emit(
                {"type": "response.audio_transcript.delta", **r, "delta": piece},
                _appender(resp.sent_text, piece),
            )
        if chunk:
            self.core.emit(
                {"type": "response.audio.delta", **r, "delta": base64.b64encode(chunk).decode("ascii")},
                self._audio_sent(resp, rendered.chunk_samples[i], chunk, rendered.output_rate),
            )
        if resp.timestamps:
            for k in word_plan[i] if i < len(word_plan) else []:
                w = rendered.words[k]
                self.core.emit(
                    {
                        "type": "response.audio_timestamp.delta",
                        **r,
                        "audio_offset_ms": round(float(w.offset_ms)),
                        "audio_duration_ms": round(float(w.duration_ms)),
                        "text": str(w.text),
                        "timestamp_type": "word",
                    }
                )

    # --- cancelling and closing ------------------------------------------------------------------

    def cancel(self, resp: ActiveResponse, reason: str, *, auto_truncate: bool) -> None:
        """Cancel ``resp``: its closing events are queued when this returns (and the truncation, if asked)."""
        if resp.cancel_reason is None:
            resp.cancel_reason = reason
        resp.cancelled = True
        if resp.id in self._plans:
            self._waiting.pop(resp.id, None)
            self._wake.pop(resp.id, None)
            self._step(resp.id, throw=Cancelled())
        if auto_truncate and resp.audio.sent_samples > 0:
            self.truncate(resp.audio, resp.audio.playout_ms(self.core.now_ms))

    def responding(self) -> bool:
        """A response is in progress, or its audio is still being heard."""
        last = self.last_audio
        return self.active is not None or (last is not None and last.playing(self.core.now_ms))

    def _close_active(self, resp: ActiveResponse, done: Event) -> None:
        if self.active is resp:
            self.active = None
        self.core.emit({"type": "response.done", "response": done})

    def _finish(self, resp: ActiveResponse, status: str, details: Any) -> None:
        if resp.calls:
            self._close_active(resp, self.tools.finish_calls(resp, status, details, self._response))
            return
        cancelled = status == "cancelled"
        if cancelled:
            self.core.stats.responses_cancelled += 1
            # stop sending: unsent deltas of this response are dropped, so "sent" is final
            self.core.drop_unsent(resp.id)
        text = "".join(resp.sent_text) if cancelled else resp.text
        item_status = {"completed": "completed", "failed": "incomplete"}.get(status, "incomplete")
        final_item = assistant_item(resp, item_status, text)
        if resp.part_opened:
            self._close_part(resp, text)
        output: list[Event] = []
        if resp.item_opened:
            output = self._close_item(resp, final_item)
        done = self._response(resp, status, details, output)
        done["usage"] = usage(resp, self.core.session, self.core.items, text)
        self._close_active(resp, done)

    def _close_part(self, resp: ActiveResponse, text: str) -> None:
        r = resp.ids()
        if resp.has_audio:
            self.core.emit({"type": "response.audio.done", **r})
            self.core.emit({"type": "response.audio_transcript.done", **r, "transcript": text})
            if resp.timestamps:
                self.core.emit({"type": "response.audio_timestamp.done", **r})
            part: Event = {"type": "audio", "transcript": text}
        else:
            self.core.emit({"type": "response.text.done", **r, "text": text})
            part = {"type": "text", "text": text}
        self.core.emit({"type": "response.content_part.done", **r, "part": part})

    def _close_item(self, resp: ActiveResponse, final_item: Event) -> list[Event]:
        if not resp.part_opened:
            final_item["content"] = []
        if resp.conversation == "auto" and resp.item_id in self.core.items:
            self.core.emit(item_done(resp.previous_item_id, final_item, ga_only=True))
        self.core.emit(
            {
                "type": "response.output_item.done",
                "response_id": resp.id,
                "output_index": resp.message_index,
                "item": final_item,
            }
        )
        stored = self.core.items.get(resp.item_id)
        if stored is not None:
            stored.clear()
            stored.update(copy.deepcopy(final_item))
        return [*resp.before, final_item]

    # --- truncation ------------------------------------------------------------------------------------

    def truncate(
        self, state: AudioItemState, end_ms: float, content_index: int = 0, reported_ms: float | None = None
    ) -> None:
        """Cut an assistant item's audio at ``end_ms``: its transcript becomes what was heard."""
        state.truncated_ms = end_ms
        self.core.input_path.stop_playout()
        transcript = text_until(state.pieces, end_ms)
        vad = sd.vad_config(self.core.session.get("turn_detection"))
        if vad is not None and vad.appended_text_after_truncation:
            transcript += vad.appended_text_after_truncation
        item = self.core.items.get(state.item_id)
        if item is not None:
            for part in item.get("content", []):
                if part.get("type") == "audio":
                    part["transcript"] = transcript
        self.core.emit(
            {
                "type": "conversation.item.truncated",
                "item_id": state.item_id,
                "content_index": content_index,
                "audio_end_ms": reported_ms if reported_ms is not None else math.floor(end_ms),
            }
        )

    def barge_in(self, *, auto_truncate: bool) -> None:
        """Speech started with ``interrupt_response``: cancel the response, or cut the audio still playing."""
        active = self.active
        if active is not None:
            self.core.stats.barge_ins += 1
            self.cancel(active, "turn_detected", auto_truncate=auto_truncate)
        elif auto_truncate and self.last_audio is not None and self.last_audio.playing(self.core.now_ms):
            self.core.stats.barge_ins += 1
            state = self.last_audio
            self.truncate(state, state.playout_ms(self.core.now_ms))
