"""Session recordings that survive a crash and never contain a secret.

A :class:`Recorder` writes, as events happen, into one directory:

- ``events.jsonl``: one JSON object per line,
  ``{"t_mono": s since the recorder started, "t_wall": ISO-8601 UTC, "dir": "sent" | "received" |
  "note", "type": ..., "event": {...}}``;
- ``mic.wav``: the PCM16 of every ``input_audio_buffer.append`` as sent, back to back, so a
  byte offset in it is a position on the service's input-audio timeline (``audio_start_ms``
  × bytes per ms);
- ``assistant.wav``: every ``response.audio.delta`` as received;
- ``items.wav`` (only if needed): base64 ``audio`` carried inside conversation items
  (``conversation.item.create`` with an ``input_audio`` part). It is kept out of ``mic.wav``
  because that audio never enters the input audio buffer, and mixing it in would shift the
  timeline.

In the JSON every audio payload is replaced by a reference
``{"bytes": n, "offset": o, "file": "mic.wav"}``, where ``offset`` is the byte offset into the
file's PCM data (what :func:`~voicelive_nb.audio.wav.read_wav` returns; add 44 for the
offset in the file itself). Audio reaches its WAV before the line that refers to it.

Crash safety: each line is one unbuffered ``write`` (a ``kill -9`` loses at most the line
being written, which :meth:`Recorder.load` skips) and the WAV files are
:class:`~voicelive_nb.audio.wav.WavSink`\\ s, valid after a kill at any moment. ``fsync`` runs
at most every ``fsync_interval_s`` (1 s), which bounds the loss on a power cut.

Secrets: :func:`redact` is applied to every event and note before it is written.
The recorder assumes ``pcm16`` audio on the wire (G.711 would be stored as-is, mislabelled).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._version import __version__
from .audio.wav import WavSink, read_wav
from .auth import redact_text
from .errors import AudioError, VoiceLiveError

__all__ = ["RecordedEvent", "Recorder", "Recording", "RecordingError", "redact"]

EVENTS_FILE = "events.jsonl"
MIC_FILE = "mic.wav"
ASSISTANT_FILE = "assistant.wav"
ITEMS_FILE = "items.wav"
MASK = "***"


class RecordingError(VoiceLiveError):
    """A recording could not be written or read."""


# --- redaction ---------------------------------------------------------------------------------

_SECRET_KEYS = frozenset(
    {
        "api_key",
        "apikey",
        "x_api_key",
        "authorization",
        "proxy_authorization",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "secret",
        "password",
        "passwd",
        "credential",
        "credentials",
        "ocp_apim_subscription_key",
        "subscription_key",
        "cookie",
        "set_cookie",
    }
)
_SECRET_SUFFIXES = ("_token", "_secret", "_password", "_api_key", "_apikey")
#: Values nested deeper than this are stored as their JSON text (a string), so that every line
#: stays readable by ``json.loads`` and by the recursive helpers of whoever reads it.
MAX_DEPTH = 64
#: The key under which a too-deep value's JSON text is kept.
DEEP_KEY = "voicelive_nb.deep_value"


def _is_secret_key(key: str, siblings: Mapping[str, Any]) -> bool:
    k = key.lower().replace("-", "_")
    if k == "token" and "logprob" in siblings:
        return False  # a transcription log-probability entry: the text token, not a credential
    return k in _SECRET_KEYS or k.endswith(_SECRET_SUFFIXES)


def _scrub(text: str) -> str:
    return redact_text(text)


_Hook = Callable[[str, Any, int], Any]
_NO_VALUE = object()


def _transform(value: Any, hook: _Hook | None = None) -> tuple[Any, int]:
    """A redacted JSON-like copy of ``value`` and its depth, without recursion.

    ``hook(key, item, depth)`` may return a replacement for a mapping entry (``_NO_VALUE``
    to go on as usual). Secret keys, ``headers`` mappings and secrets in text are masked.
    """
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 0)]
    deepest = 0
    while stack:
        item, target, slot, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, Mapping):
            out: dict[str, Any] = {}
            target[slot] = out
            for key, sub in item.items():
                skey = str(key)
                if _is_secret_key(skey, item) and sub is not None:
                    out[skey] = MASK
                    continue
                if skey.lower() == "headers" and isinstance(sub, Mapping):
                    out[skey] = {str(h): (MASK if v is not None else None) for h, v in sub.items()}
                    continue
                if hook is not None:
                    replaced = hook(skey, sub, depth + 1)
                    if replaced is not _NO_VALUE:
                        out[skey] = replaced
                        continue
                out[skey] = None
                stack.append((sub, out, skey, depth + 1))
        elif isinstance(item, (list, tuple)):
            seq: list[Any] = [None] * len(item)
            target[slot] = seq
            for index, sub in enumerate(item):
                stack.append((sub, seq, index, depth + 1))
        elif isinstance(item, str):
            target[slot] = _scrub(item)
        elif item is None or isinstance(item, (bool, int, float)):
            target[slot] = item
        else:
            target[slot] = _scrub(repr(item))
    return root[0], deepest


class _Text:
    """Literal JSON text waiting on the serializer's stack (brackets, commas, keys)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _dumps_flat(value: Any) -> str:
    """Compact JSON text of a JSON-like ``value`` of any depth, without recursion."""
    parts: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Text):
            parts.append(item.text)
        elif isinstance(item, dict):
            parts.append("{")
            stack.append(_Text("}"))
            entries = list(item.items())
            for index in range(len(entries) - 1, -1, -1):
                key, sub = entries[index]
                stack.append(sub)
                stack.append(_Text(("," if index else "") + json.dumps(str(key)) + ":"))
        elif isinstance(item, list):
            parts.append("[")
            stack.append(_Text("]"))
            for index in range(len(item) - 1, -1, -1):
                stack.append(item[index])
                if index:
                    stack.append(_Text(","))
        else:
            parts.append(json.dumps(item, default=repr))
    return "".join(parts)


def _cap_depth(value: Any, limit: int = MAX_DEPTH) -> Any:
    """``value`` with every container below ``limit`` levels replaced by ``{DEEP_KEY: its JSON text}``."""
    root: list[Any] = [value]
    stack: list[tuple[Any, Any, int]] = [(root, 0, 0)]
    while stack:
        container, slot, depth = stack.pop()
        item = container[slot]
        if not isinstance(item, (dict, list)):
            continue
        if depth >= limit:
            container[slot] = {DEEP_KEY: _dumps_flat(item)}
            continue
        keys = item.keys() if isinstance(item, dict) else range(len(item))
        for key in keys:
            stack.append((item, key, depth + 1))
    return root[0]


def redact(value: Any) -> Any:
    """A copy of ``value`` (JSON-like: dicts, lists, scalars) with every secret masked.

    Values of credential-like keys (``api-key``, ``api_key``, ``authorization``, ``token``,
    ``access_token``, ``client_secret``, ``password``, ``credential``, ``*_token``, ...,
    compared case-insensitively with ``-`` and ``_`` alike) become ``"***"``, as does every
    value under a ``headers`` mapping (MCP server configs), ``api-key=…``/``token=…`` in
    URL query strings, ``user:password@`` in URLs, ``Bearer …`` in text and every live secret
    value (:func:`~voicelive_nb.auth.register_secret`). ``None`` stays ``None`` (absent is not
    secret). The input is not modified; any depth works (no recursion).
    """
    return _transform(value)[0]


# --- writing -----------------------------------------------------------------------------------


def _b64decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:  # the service tolerates URL-safe alphabet and missing padding; so do we
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class Recorder:
    """Record a session's events and audio into ``directory`` as they happen (see the module doc).

    ``record_sent`` / ``record_received`` take the wire events as plain dicts (they are not
    modified); ``note(kind, **fields)`` records anything else (connection status, errors).
    Safe to call from several threads. Use as a context manager or call :meth:`close`.
    An existing recording in ``directory`` is an error unless ``overwrite=True``.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        session_label: str | None = None,
        input_sample_rate: int = 24000,
        output_sample_rate: int = 24000,
        fsync_interval_s: float | None = 1.0,
        overwrite: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.session_label = session_label
        self.input_sample_rate = input_sample_rate
        self.output_sample_rate = output_sample_rate
        self.fsync_interval_s = fsync_interval_s
        self.events_path = self.directory / EVENTS_FILE
        self.lines_written = 0
        self.fsyncs = 0
        self.fsync_seconds = 0.0
        """Total time spent in ``fsync`` (for the curious: it runs on the caller's thread)."""
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            if self.events_path.exists() and not overwrite:
                raise RecordingError(
                    f"a recording already exists in {self.directory}; choose a new directory or pass overwrite=True"
                )
            if overwrite:
                (self.directory / ITEMS_FILE).unlink(missing_ok=True)
            self._events = open(self.events_path, "wb", buffering=0)  # noqa: SIM115 (kept open until close())
        except OSError as exc:
            raise RecordingError(
                f"cannot create recording in {self.directory}: {exc.strerror or exc}"
            ) from exc
        self._t0 = time.monotonic()
        self._last_sync = self._t0
        self._sinks: dict[str, WavSink] = {}
        try:
            self._sink(MIC_FILE)
            self._sink(ASSISTANT_FILE)
        except AudioError:
            self._close_files()
            raise
        self.note(
            "recording.started",
            label=session_label,
            input_sample_rate=input_sample_rate,
            output_sample_rate=output_sample_rate,
            version=__version__,
        )

    # -- public API

    @property
    def closed(self) -> bool:
        return self._closed

    def record_sent(self, event: Mapping[str, Any]) -> None:
        """Record a client event (as sent on the wire)."""
        self._record("sent", event)

    def record_received(self, event: Mapping[str, Any]) -> None:
        """Record a server event (as received from the wire)."""
        self._record("received", event)

    def note(self, kind: str, **fields: Any) -> None:
        """Record something that is not a wire event (connection status, an error, a marker)."""
        with self._lock:
            body, depth = _transform(fields)
            self._write_line("note", kind, _cap_depth(body) if depth >= MAX_DEPTH else body)

    def close(self) -> None:
        """Finish the recording (idempotent): a closing note, headers, ``fsync``, close."""
        with self._lock:
            if self._closed:
                return
            try:
                sizes = {name: sink.data_bytes for name, sink in self._sinks.items()}
                self._write_line(
                    "note", "recording.closed", {"lines": self.lines_written + 1, "audio_bytes": sizes}
                )
                if self.fsync_interval_s is not None:
                    self._fsync()
            finally:
                self._closed = True
                self._close_files()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def load(directory: str | os.PathLike[str]) -> Recording:
        """Read a recording back (also one cut short by a crash: a torn last line is skipped)."""
        return Recording.load(directory)

    # -- internals

    def _sink(self, name: str) -> WavSink:
        sink = self._sinks.get(name)
        if sink is None:
            sink = WavSink(self.directory / name)
            sink.open(self.output_sample_rate if name == ASSISTANT_FILE else self.input_sample_rate)
            self._sinks[name] = sink
        return sink

    def _store_audio(self, name: str, text: str) -> dict[str, Any]:
        pcm = _b64decode(text)
        if pcm is None:
            return {"invalid_base64": True, "chars": len(text)}
        sink = self._sink(name)
        offset = sink.data_bytes
        # keep the file sample-aligned: an odd payload (a protocol error anyway) gets one zero byte
        sink.write(name, pcm + b"\0" if len(pcm) % 2 else pcm)
        return {"bytes": len(pcm), "offset": offset, "file": name}

    def _record(self, direction: str, event: Mapping[str, Any]) -> None:
        raw_type = event.get("type", "") if isinstance(event, Mapping) else ""
        etype = raw_type if isinstance(raw_type, str) else repr(raw_type)
        top_audio = MIC_FILE if direction == "sent" else ASSISTANT_FILE
        top_key = "audio" if direction == "sent" else ("delta" if etype == "response.audio.delta" else None)

        def audio(key: str, item: Any, depth: int) -> Any:
            if not isinstance(item, str):
                return _NO_VALUE
            if depth == 1:
                return self._store_audio(top_audio, item) if key == top_key else _NO_VALUE
            return self._store_audio(ITEMS_FILE, item) if key == "audio" else _NO_VALUE

        with self._lock:
            if self._closed:
                raise RecordingError(f"recorder for {self.directory} is closed")
            body, depth = _transform(event, audio)
            if depth >= MAX_DEPTH:
                body = _cap_depth(body)
            self._write_line(direction, etype, body)

    def _write_line(self, direction: str, etype: str, body: Any) -> None:
        if self._closed:
            raise RecordingError(f"recorder for {self.directory} is closed")
        now = time.monotonic()
        record = {
            "t_mono": round(now - self._t0, 6),
            "t_wall": _now_iso(),
            "dir": direction,
            "type": etype,
            "event": body,
        }
        # ensure_ascii: any string can be written, even one with a lone surrogate ("\ud800")
        line = json.dumps(record, ensure_ascii=True, separators=(",", ":"), default=repr) + "\n"
        data = memoryview(line.encode("ascii"))
        try:
            while data:
                data = data[self._events.write(data) :]
        except OSError as exc:
            raise RecordingError(f"cannot write {self.events_path}: {exc.strerror or exc}") from exc
        self.lines_written += 1
        if self.fsync_interval_s is not None and now - self._last_sync >= self.fsync_interval_s:
            self._fsync()

    def _fsync(self) -> None:
        start = time.perf_counter()
        os.fsync(self._events.fileno())
        for sink in self._sinks.values():
            sink.sync()
        self._last_sync = time.monotonic()
        self.fsyncs += 1
        self.fsync_seconds += time.perf_counter() - start

    def _close_files(self) -> None:
        for sink in self._sinks.values():
            try:
                sink.close()
            except (AudioError, OSError):
                pass
        self._events.close()


# --- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedEvent:
    """One line of ``events.jsonl``."""

    t_mono: float
    t_wall: str
    dir: str
    type: str
    event: dict[str, Any]


def _refs(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        if isinstance(value.get("file"), str) and "offset" in value and "bytes" in value:
            yield value
            return
        for item in value.values():
            yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


@dataclass
class Recording:
    """A recording read back by :meth:`Recorder.load`."""

    directory: Path
    events: list[RecordedEvent]
    audio_files: dict[str, bytes]
    """PCM16 of each WAV file by name (``mic.wav``, ``assistant.wav``, maybe ``items.wav``)."""
    sample_rates: dict[str, int]
    label: str | None = None
    skipped_lines: int = 0
    """Lines that could not be parsed (a line torn by a crash)."""
    complete: bool = False
    """Whether the recorder was closed cleanly (the last line is ``recording.closed``)."""

    @property
    def mic(self) -> bytes:
        return self.audio_files.get(MIC_FILE, b"")

    @property
    def assistant(self) -> bytes:
        return self.audio_files.get(ASSISTANT_FILE, b"")

    @property
    def input_sample_rate(self) -> int:
        return self.sample_rates.get(MIC_FILE, 24000)

    @property
    def output_sample_rate(self) -> int:
        return self.sample_rates.get(ASSISTANT_FILE, 24000)

    def sent(self) -> list[RecordedEvent]:
        return [e for e in self.events if e.dir == "sent"]

    def received(self) -> list[RecordedEvent]:
        return [e for e in self.events if e.dir == "received"]

    def notes(self) -> list[RecordedEvent]:
        return [e for e in self.events if e.dir == "note"]

    def of_type(self, event_type: str) -> list[RecordedEvent]:
        return [e for e in self.events if e.type == event_type]

    def audio(self, ref_or_event: RecordedEvent | Mapping[str, Any]) -> bytes:
        """The audio an event refers to (all its references, concatenated), or of one reference."""
        target: Any = ref_or_event.event if isinstance(ref_or_event, RecordedEvent) else ref_or_event
        out = bytearray()
        for ref in _refs(target):
            pcm = self.audio_files.get(ref["file"], b"")
            out += pcm[ref["offset"] : ref["offset"] + ref["bytes"]]
        return bytes(out)

    def assistant_as_played(self) -> bytes:
        """The assistant's audio as the user heard it: each item cut where playback was flushed.

        Uses the ``playback_flushed`` notes a :class:`~voicelive_nb.session.Session` writes on
        barge-in (``item_id``, ``played_ms``); items never flushed are kept whole.
        """
        bytes_per_ms = self.output_sample_rate * 2 // 1000
        cut_at: dict[str, int] = {}
        for note in self.of_type("playback_flushed"):
            item = note.event.get("item_id")
            played = note.event.get("played_ms")
            if isinstance(item, str) and isinstance(played, (int, float)):
                cut_at[item] = int(played) * bytes_per_ms
        per_item: dict[str, bytearray] = {}
        for entry in self.of_type("response.audio.delta"):
            item = entry.event.get("item_id")
            if isinstance(item, str):
                per_item.setdefault(item, bytearray()).extend(self.audio(entry))
        out = bytearray()
        for item, pcm in per_item.items():
            out += pcm[: cut_at[item]] if item in cut_at else pcm
        return bytes(out)

    def restore(self, entry: RecordedEvent) -> dict[str, Any]:
        """The event with its audio references turned back into base64 (for replay; secrets stay masked)."""

        def walk(value: Any) -> Any:
            if isinstance(value, dict):
                if isinstance(value.get("file"), str) and "offset" in value and "bytes" in value:
                    return base64.b64encode(self.audio(value)).decode("ascii")
                return {k: walk(v) for k, v in value.items()}
            if isinstance(value, list):
                return [walk(v) for v in value]
            return value

        restored: dict[str, Any] = walk(entry.event)
        return restored

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Recording:
        path = Path(directory)
        events_path = path / EVENTS_FILE
        try:
            raw = events_path.read_bytes()
        except OSError as exc:
            raise RecordingError(f"cannot read recording {path}: {exc.strerror or exc}") from exc
        events: list[RecordedEvent] = []
        skipped = 0
        lines = raw.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()  # the file ends with a newline: nothing torn
        for line in lines:
            try:
                obj = json.loads(line)
                events.append(
                    RecordedEvent(
                        float(obj["t_mono"]),
                        str(obj["t_wall"]),
                        str(obj["dir"]),
                        str(obj["type"]),
                        obj["event"],
                    )
                )
            except (ValueError, KeyError, TypeError):
                skipped += 1  # a line cut by a crash
        audio: dict[str, bytes] = {}
        rates: dict[str, int] = {}
        for name in (MIC_FILE, ASSISTANT_FILE, ITEMS_FILE):
            wav_path = path / name
            if not wav_path.exists():
                continue
            try:
                audio[name], rates[name] = read_wav(wav_path)
            except AudioError:
                audio[name] = b""  # killed between creating the file and writing its header
        label = None
        started = next((e for e in events if e.dir == "note" and e.type == "recording.started"), None)
        if started is not None:
            label = started.event.get("label")
            rates.setdefault(MIC_FILE, int(started.event.get("input_sample_rate", 24000)))
            rates.setdefault(ASSISTANT_FILE, int(started.event.get("output_sample_rate", 24000)))
        complete = bool(events) and events[-1].dir == "note" and events[-1].type == "recording.closed"
        return cls(path, events, audio, rates, label, skipped, complete)
