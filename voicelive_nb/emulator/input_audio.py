"""The emulator's input audio (pure): the timeline, the buffer, server VAD turns, commit and clear.

Audio arrives with ``input_audio_buffer.append``; it is decoded to mono PCM16, passed through
the injected input processing (noise suppression / echo cancellation, :mod:`.enhance`), added to
the session-wide timeline and the buffer, and scored by the VAD model in a blocking
``vad_score`` job (the model itself comes from a ``vad_model`` job). The probabilities go through
:class:`~voicelive_nb.speech.segmenter.VadSegmenter`; its turns become ``speech_started`` /
``speech_stopped``, the committed user item, barge-in of the response (through the
:class:`~.responder.Responder`) and the automatic response.

``remove_filler_words`` (Azure VAD types) holds a ``speech_started`` back while the assistant
talks until the speech has lasted :data:`FILLER_MAX_MS`; shorter speech is ignored entirely.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..speech.segmenter import (
    VadSegmenter,
    VadSettings,
    VadSpeechStarted,
    VadSpeechStopped,
    release_threshold,
)
from . import session_defaults as sd
from .core import Core, Pending, error_event
from .items import check_audio_length, decode_audio_field, decode_input, item_done, public_item
from .responder import Responder
from .session_defaults import SessionError, VadConfig
from .transcripts import Transcripts

__all__ = ["FILLER_MAX_MS", "IDLE_KEEP_MS", "MAX_BUFFER_MS", "MIN_COMMIT_MS", "InputAudio"]

Event = dict[str, Any]
#: With ``remove_filler_words``, speech shorter than this during a response is a filler, not a barge-in.
FILLER_MAX_MS = 350
#: Manual commit needs at least this much audio (as the service says in its error message).
MIN_COMMIT_MS = 100
#: Audio kept before the current position while no speech is going on (prefix padding comes from here).
IDLE_KEEP_MS = 3000
#: The input buffer never holds more than this; older audio is dropped (with one warning event).
MAX_BUFFER_MS = 10 * 60 * 1000
#: Input arriving this much later than the audio before it ended is a pause of the client (it
#: stopped sending), not network jitter: the server's echo reference skips the pause.
INPUT_PAUSE_MS = 250.0


class InputAudio:
    """Input audio and server VAD of one connection."""

    def __init__(self, core: Core, responder: Responder, transcripts: Transcripts) -> None:
        self.core = core
        self.responder = responder
        self.transcripts = transcripts
        self.samples = 0  # session timeline, samples at the input rate
        self.buffer = bytearray()  # mono PCM16 since the last commit/clear
        self.buffer_start = 0  # timeline sample of buffer[0]
        self._buffer_warned = False
        self._input_due_ms: float | None = None  # when the audio received so far ends, in real time
        self.vad: VadConfig | None = None
        self.model: Any = None  # the speech-probability model, from a vad_model job
        self.segmenter: VadSegmenter | None = None
        self.speech_item_id: str | None = None
        self._speech_start_ms = 0
        # a possible filler: (audio_start_ms, onset_ms, end of its last voiced window)
        self._deferred_start: tuple[int, float, float] | None = None
        self.apply_vad(core.session["turn_detection"])

    @property
    def position_ms(self) -> float:
        """Position of the session-wide input-audio timeline."""
        return self.samples * 1000.0 / self.core.in_rate

    @property
    def buffered_ms(self) -> float:
        return len(self.buffer) / 2 * 1000.0 / self.core.in_rate

    # --- configuration ------------------------------------------------------------------------------

    def session_changed(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        if new["input_audio_sampling_rate"] != old["input_audio_sampling_rate"]:
            self.model = None  # made again at the new rate (only possible before any audio)
        if new["turn_detection"] != old["turn_detection"]:
            self.apply_vad(new["turn_detection"])

    def apply_vad(self, turn_detection: Mapping[str, Any] | None) -> None:
        was = self.vad
        self.vad = sd.vad_config(turn_detection)
        if self.vad is None:
            self.segmenter = None
            self.speech_item_id = None
            self._deferred_start = None
            return
        settings = VadSettings(
            threshold=self.vad.threshold,
            prefix_padding_ms=self.vad.prefix_padding_ms,
            silence_duration_ms=self.vad.silence_duration_ms,
            speech_duration_ms=self.vad.speech_duration_ms,
        )
        if was is None or self.segmenter is None:
            self.segmenter = VadSegmenter(settings, window_ms=32.0, offset_ms=self.position_ms)
            self.segmenter.floor_ms = self.buffer_start * 1000.0 / self.core.in_rate
            if self.model is not None:
                self.model.reset()
        else:
            self.segmenter.update(settings)

    # --- append -------------------------------------------------------------------------------------

    def append(self, msg: Event) -> None:
        if "audio" not in msg:
            raise SessionError("missing_required_parameter", "missing required parameter 'audio'", "audio")
        fmt, channels = self.core.audio_format
        raw = decode_audio_field(msg["audio"], "audio")
        check_audio_length(raw, fmt, channels, "audio")
        if not raw:
            return
        mono = decode_input(raw, fmt, channels)
        self._follow_the_clock(len(mono) // 2)
        mono = self.core.input_path.process(self.core.session, raw, mono)  # noise / echo (enhance.py)
        self.core.audio_appended = True
        rate = self.core.in_rate
        self.samples += len(mono) // 2
        self.core.stats.input_audio_ms += len(mono) / 2 * 1000.0 / rate
        self.buffer += mono
        self.transcripts.stream_feed(mono)
        self._limit_buffer(MAX_BUFFER_MS * rate // 1000 * 2)
        if self.vad is not None and self.segmenter is not None:
            self._score(mono, msg.get("event_id"))

    def _follow_the_clock(self, samples: int) -> None:
        """After a pause in the input longer than :data:`INPUT_PAUSE_MS` (the client stopped
        sending) the server's echo reference catches up with the clock: the reply kept playing."""
        now, rate = self.core.now_ms, self.core.in_rate
        due = self._input_due_ms
        if due is not None and now - due > INPUT_PAUSE_MS:
            self.core.input_path.input_resumed(now, rate)
        # audio sent faster than real time runs ahead of the clock: it is due when it would end
        self._input_due_ms = max(now, due if due is not None else now) + samples * 1000.0 / rate

    def _limit_buffer(self, max_bytes: int) -> None:
        if len(self.buffer) <= max_bytes:
            return
        drop = len(self.buffer) - max_bytes
        del self.buffer[:drop]
        self.buffer_start += drop // 2
        if not self._buffer_warned:
            self._buffer_warned = True
            message = "the input audio buffer holds more than 10 minutes; the oldest audio was dropped"
            self.core.emit(
                {
                    "type": "warning",
                    "warning": {"message": message, "code": "input_audio_buffer_full", "param": None},
                }
            )

    def _failed(self, exc: BaseException, client_id: Any) -> None:
        self.core.failures.append(("VAD", exc))
        self.core.emit(
            error_event(
                "internal_error",
                f"the emulator failed on 'input_audio_buffer.append': {type(exc).__name__}: {exc}",
                event_id=client_id if isinstance(client_id, str) else None,
                error_type="server_error",
            )
        )

    def _score(self, mono: bytes, client_id: Any) -> None:
        if self.model is None:
            job = self.core.request("vad_model", self.core.in_rate, blocking=True)
            job.then(lambda done: self._model_ready(done, mono, client_id))
            return
        job = self.core.request("vad_score", self.model, mono, blocking=True)
        job.then(lambda done: self._scored(done, client_id))

    def _model_ready(self, done: Pending[Any], mono: bytes, client_id: Any) -> None:
        if done.error is not None:
            self._failed(done.error, client_id)
            return
        if self.model is None and self.segmenter is not None:
            self.model = done.value
            # the model scores from here on: align the segmenter's timeline with it
            start_ms = (self.samples - len(mono) // 2) * 1000.0 / self.core.in_rate
            floor = self.segmenter.floor_ms
            self.segmenter.reset(start_ms)
            self.segmenter.floor_ms = min(floor, start_ms)
        if self.model is not None:
            self._score(mono, client_id)

    def _scored(self, done: Pending[Any], client_id: Any) -> None:
        if done.error is not None:
            self._failed(done.error, client_id)
            return
        probs: list[float] = list(done.value or [])
        for p in probs:
            seg = self.segmenter
            if seg is None:  # VAD switched off meanwhile (cannot happen today, be safe)
                return
            self._push(seg, float(p))
        if self.segmenter is not None and not self.segmenter.in_speech:
            self._trim_idle_buffer()

    def _push(self, seg: VadSegmenter, p: float) -> None:
        for ev in seg.push(p):
            # the enhancer's fixed delay taken off, so times stay on the audio the client sent
            delay = self.core.input_path.delay_ms(self.core.session)
            if isinstance(ev, VadSpeechStarted):
                self._vad_started(max(0, ev.audio_start_ms - delay), seg.position_ms)
            elif isinstance(ev, VadSpeechStopped):
                self._vad_stopped(max(0, ev.audio_end_ms - delay))
        deferred = self._deferred_start
        if deferred is not None and seg.in_speech:
            start_ms, onset_ms, voiced_end_ms = deferred
            if p >= release_threshold(seg.settings.threshold):
                voiced_end_ms = seg.position_ms
                self._deferred_start = (start_ms, onset_ms, voiced_end_ms)
            if voiced_end_ms - onset_ms >= FILLER_MAX_MS:
                self._deferred_start = None
                self._speech_started(start_ms)

    def _trim_idle_buffer(self) -> None:
        rate = self.core.in_rate
        keep = (IDLE_KEEP_MS + (self.vad.prefix_padding_ms if self.vad else 0)) * rate // 1000
        excess = len(self.buffer) // 2 - keep
        if excess > 0:
            del self.buffer[: excess * 2]
            self.buffer_start += excess

    # --- turns --------------------------------------------------------------------------------------

    def _vad_started(self, audio_start_ms: int, position_ms: float) -> None:
        vad = self.vad
        assert vad is not None
        if vad.remove_filler_words and self.responder.responding():
            # the segment has been voiced from its onset up to now; decide once it is long enough
            onset = position_ms - vad.speech_duration_ms
            if position_ms - onset < FILLER_MAX_MS:
                self._deferred_start = (audio_start_ms, onset, position_ms)
                return
        self._speech_started(audio_start_ms)

    def _speech_started(self, audio_start_ms: int) -> None:
        self.speech_item_id = self.core.new_id("item")
        self._speech_start_ms = audio_start_ms
        self.core.emit(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": audio_start_ms,
                "item_id": self.speech_item_id,
            }
        )
        self.transcripts.stream_start(
            self.speech_item_id, self._slice(self._speech_start_ms, self.position_ms)
        )
        vad = self.vad
        if vad is not None and vad.interrupt_response:
            self.responder.barge_in(auto_truncate=vad.auto_truncate)

    def _vad_stopped(self, audio_end_ms: int) -> None:
        if self._deferred_start is not None:
            # a filler while the assistant talks: ignored, as if it had not been said
            self._deferred_start = None
            self._drop_until(audio_end_ms)
            return
        item_id = self.speech_item_id or self.core.new_id("item")
        self.speech_item_id = None
        self.core.emit(
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": audio_end_ms, "item_id": item_id}
        )
        audio = self._slice(self._speech_start_ms, audio_end_ms)
        self._drop_until(audio_end_ms)
        self.core.stats.speech_turns += 1
        self.transcripts.stream_finish(item_id)
        self._commit_user_audio(item_id, audio)
        vad = self.vad
        if vad is not None and vad.create_response and self.responder.active is None:
            self.responder.start({}, trigger_item=item_id)

    def _ms_to_sample(self, ms: float) -> int:
        return round(ms * self.core.in_rate / 1000.0)

    def _slice(self, start_ms: float, end_ms: float) -> bytes:
        a = max(0, self._ms_to_sample(start_ms) - self.buffer_start)
        b = max(a, self._ms_to_sample(end_ms) - self.buffer_start)
        return bytes(self.buffer[a * 2 : b * 2])

    def _drop_until(self, end_ms: float) -> None:
        n = min(len(self.buffer) // 2, max(0, self._ms_to_sample(end_ms) - self.buffer_start))
        del self.buffer[: n * 2]
        self.buffer_start += n

    def _commit_user_audio(self, item_id: str, audio: bytes) -> None:
        previous = self.core.items.last_id()
        item: Event = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "audio": None, "transcript": None}],
        }
        self.core.items.insert(item)
        self.transcripts.keep(item_id, audio)
        self.core.emit(
            {"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id}
        )
        self.core.emit(
            {"type": "conversation.item.created", "previous_item_id": previous, "item": public_item(item)}
        )
        # both shapes: the live service closes a committed audio item at once
        self.core.emit(item_done(previous, public_item(item)))
        if self.core.transcribing():
            self.transcripts.send_events(item_id)

    # --- commit and clear ---------------------------------------------------------------------------

    def commit(self) -> None:
        buffered_ms = self.buffered_ms
        if buffered_ms < MIN_COMMIT_MS:
            raise SessionError(
                "input_audio_buffer_commit_empty",
                f"buffer too small: expected at least {MIN_COMMIT_MS}ms of audio, "
                f"but the buffer only has {buffered_ms:.2f}ms of audio",
                None,
            )
        now_ms = self.position_ms
        item_id = self.speech_item_id or self.core.new_id("item")
        if self.segmenter is not None:
            stops = self.segmenter.force_stop(now_ms)
            self._deferred_start = None
            if stops and self.speech_item_id is not None:
                self.core.emit(
                    {
                        "type": "input_audio_buffer.speech_stopped",
                        "audio_end_ms": round(now_ms),
                        "item_id": item_id,
                    }
                )
        self.speech_item_id = None
        self.transcripts.stream_cancel()
        audio = bytes(self.buffer)
        self.buffer.clear()
        self.buffer_start = self.samples
        self._commit_user_audio(item_id, audio)

    def clear(self) -> None:
        self.transcripts.stream_cancel()
        self.buffer.clear()
        self.buffer_start = self.samples
        self.speech_item_id = None
        self._deferred_start = None
        if self.segmenter is not None:
            self.segmenter.reset(self.position_ms)
            if self.model is not None:
                self.model.reset()
        self.core.emit({"type": "input_audio_buffer.cleared"})

    def commit_for_response(self) -> None:
        """``response.create`` without server VAD commits what is buffered (from 100 ms on)."""
        if self.vad is None and self.buffer and self.buffered_ms >= MIN_COMMIT_MS:
            self.commit()
