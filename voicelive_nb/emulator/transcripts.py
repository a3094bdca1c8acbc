"""Transcription of user audio items in the emulator (pure): decode-after-turn and streaming.

Each user audio item's transcript is one shared :class:`~.core.Pending`: the
``input_audio_transcription`` events and a reply quoting the user both wait for it. It comes
from a ``transcribe`` job (the whole utterance), or — when the shell gave a streaming
recogniser — from a ``stream_finish`` job for the decode that ran while the user spoke (and
the whole-utterance decode when no streaming decoder was free). The recogniser itself
(:class:`voicelive_nb.speech.streaming_asr.StreamingRecognizer`) is made by the shell's factory;
its partial results come back through :meth:`Transcripts.stream_delta`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import StateError
from .core import Core, Job, Pending

__all__ = ["KEEP_USER_AUDIO_ITEMS", "Transcripts"]

#: User audio is kept for transcription on demand for this many of the latest items.
KEEP_USER_AUDIO_ITEMS = 4


class Transcripts:
    """The transcripts of one connection's user audio items."""

    def __init__(self, core: Core, recognizer_factory: Callable[[], Any] | None = None) -> None:
        self.core = core
        self.recognizer_factory = recognizer_factory
        self._audio: dict[str, tuple[bytes, int]] = {}
        self._asr: dict[str, Pending[str]] = {}
        self.streaming: Any = None  # the recogniser, made on first speech

    def keep(self, item_id: str, audio: bytes) -> None:
        """Keep a user item's audio until it is transcribed (only the latest few items)."""
        self._audio[item_id] = (audio, self.core.in_rate)
        while len(self._audio) > KEEP_USER_AUDIO_ITEMS:
            del self._audio[next(iter(self._audio))]

    def forget(self, item_id: str) -> None:
        self._audio.pop(item_id, None)

    def known(self, item_id: str) -> bool:
        """A transcript can still come: the audio is kept, or recognition has started."""
        return item_id in self._audio or item_id in self._asr

    def of(self, item_id: str) -> Pending[str]:
        """The ASR of a user audio item, started on first need and shared."""
        pending = self._asr.get(item_id)
        if pending is None:
            pending = self._asr[item_id] = self._transcribe(item_id)
        return pending

    def _transcribe(self, item_id: str) -> Pending[str]:
        result: Pending[str] = Pending()
        audio, rate = self._audio.get(item_id, (b"", self.core.in_rate))
        if not self.core.options.transcription:
            result.fail(StateError("transcription is switched off in this emulator (transcription=False)"))
            return result
        tr_cfg = self.core.session.get("input_audio_transcription") or {}
        phrases = tr_cfg.get("phrase_list") or None
        job = self.core.request("transcribe", audio, rate, tuple(phrases) if phrases else None)
        job.then(lambda done: self._settle(item_id, done, result))
        return result

    def _settle(self, item_id: str, done: Pending[Any], result: Pending[str]) -> None:
        if done.error is not None:
            result.fail(done.error)
            return
        text = str(done.value)
        self._audio.pop(item_id, None)
        self.core.items.set_transcript(item_id, "input_audio", text)
        result.resolve(text)

    def send_events(self, item_id: str) -> None:
        """``input_audio_transcription`` delta (what streaming did not send) and completed, or failed."""
        self.of(item_id).then(lambda done: self._events(item_id, done))

    def _events(self, item_id: str, done: Pending[str]) -> None:
        base = {"item_id": item_id, "content_index": 0}
        if done.error is not None:
            error = {
                "type": "transcription_error",
                "code": "transcription_failed",
                "message": f"transcription failed: {done.error}",
                "param": None,
            }
            self.core.emit(
                {"type": "conversation.item.input_audio_transcription.failed", **base, "error": error}
            )
            return
        text = str(done.value)
        sent = self.streaming.sent_text(item_id) if self.streaming is not None else ""
        rest = text[len(sent) :] if text.startswith(sent) else ""
        if rest:
            self.core.emit(
                {"type": "conversation.item.input_audio_transcription.delta", **base, "delta": rest}
            )
        self.core.emit(
            {"type": "conversation.item.input_audio_transcription.completed", **base, "transcript": text}
        )

    # --- streaming recognition (the logic is in speech/streaming_asr.py) --------------------------

    def stream_start(self, item_id: str, audio: bytes) -> None:
        """Speech started: recognise it while it is spoken (``audio`` is what was already buffered)."""
        options = self.core.options
        if not (options.transcription and options.streaming_asr) or self.recognizer_factory is None:
            return
        if self.streaming is None:
            self.streaming = self.recognizer_factory()
        phrases = (self.core.session.get("input_audio_transcription") or {}).get("phrase_list") or None
        self.streaming.start(item_id, tuple(phrases) if phrases else None, self.core.in_rate, audio)

    def stream_feed(self, mono: bytes) -> None:
        if self.streaming is not None:
            self.streaming.feed(mono)

    def stream_cancel(self) -> None:
        if self.streaming is not None:
            self.streaming.cancel()

    def stream_finish(self, item_id: str) -> None:
        """Speech stopped: the streamed decode becomes the item's transcript (when one ran)."""
        handle = self.streaming.finish(item_id) if self.streaming is not None else None
        if handle is None or item_id in self._asr:
            return
        result: Pending[str] = Pending()
        self._asr[item_id] = result
        job: Job = self.core.request("stream_finish", handle)
        job.then(lambda done: self._streamed(item_id, done, result))

    def _streamed(self, item_id: str, done: Pending[Any], result: Pending[str]) -> None:
        if done.error is not None:
            result.fail(done.error)
            return
        if done.value is None:  # no decoder was free: decode the utterance now
            self._transcribe(item_id).then(
                lambda whole: (
                    result.fail(whole.error) if whole.error is not None else result.resolve(str(whole.value))
                )
            )
            return
        self._settle(item_id, done, result)

    def stream_delta(self, item_id: str, delta: str) -> None:
        """A stable partial result of the streaming recogniser."""
        if self.core.transcribing():
            self.core.emit(
                {
                    "type": "conversation.item.input_audio_transcription.delta",
                    "item_id": item_id,
                    "content_index": 0,
                    "delta": delta,
                }
            )

    def close(self) -> None:
        if self.streaming is not None:
            self.streaming.close()
