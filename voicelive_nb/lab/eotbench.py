"""Read rows in eot-bench's data format (LiveKit's end-of-turn benchmark) from the user's files.

The format, as the eot-bench README documents it: each row is one complete user turn with

* ``id`` and ``language``;
* ``audio``: a Hugging Face ``Audio`` value, either encoded (``{"bytes": ...}`` or
  ``{"path": ...}``, a WAV or another sound file) or decoded (``{"array": [...],
  "sampling_rate": N}``);
* ``silence_spans``: every silence of at least 100 ms as ``{"start": s, "end": s}``; the final
  span is the true end of the turn, every earlier one a mid-turn pause to listen through (a
  *hold*, in :mod:`voicelive_nb.lab.turns`);
* optionally ``messages`` and ``words`` (not needed for end-of-turn timing; ignored here).

So a row becomes a :class:`~voicelive_nb.lab.testsets.Clip` whose truth has the speech between
the silences as spans of one turn: the pauses between them are holds, the last one is the end of
the turn, exactly as eot-bench labels them. Spans shorter than ``min_silence_s`` (default 0.1 s,
as the benchmark's) are not pauses.

Files (:func:`load_eot_bench`): JSON Lines (one row per line), JSON (a list of rows, or an
object with ``rows``), or Parquet (needs pandas with pyarrow). In JSON, ``audio.bytes`` is
base64; ``audio.path`` is relative to the file. Nothing is shipped or downloaded: the user
provides the files (the dataset is ``livekit/eot-bench-data``).
"""

from __future__ import annotations

import base64
import io
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, OptionalDependencyMissing
from .testsets import Clip
from .truth import Truth

__all__ = ["MIN_SILENCE_S", "eot_bench_clip", "eot_bench_truth", "load_eot_bench"]

#: Silences shorter than this are not decision points (eot-bench's default span set).
MIN_SILENCE_S = 0.1
TURN_ID = "turn"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _silences(spans: Any, row_id: str, min_silence_s: float) -> list[tuple[float, float]]:
    if not isinstance(spans, Iterable) or isinstance(spans, (str, bytes, Mapping)):
        raise ConfigError(f"{row_id}.silence_spans", spans, "a list of {'start': s, 'end': s}")
    out: list[tuple[float, float]] = []
    for i, span in enumerate(spans):
        start: Any
        end: Any
        if isinstance(span, Mapping):
            start, end = span.get("start"), span.get("end")
        elif isinstance(span, Sequence) and len(span) == 2:
            start, end = span
        else:
            raise ConfigError(f"{row_id}.silence_spans[{i}]", span, "{'start': s, 'end': s}")
        if not (_is_number(start) and _is_number(end)):
            raise ConfigError(f"{row_id}.silence_spans[{i}]", span, "numbers of seconds")
        a, b = float(start), float(end)
        if b < a:
            raise ConfigError(f"{row_id}.silence_spans[{i}]", span, "an end at or after its start")
        if b - a >= min_silence_s - 1e-9:
            out.append((a, b))
    return sorted(out)


def eot_bench_truth(
    silence_spans: Any,
    duration_s: float,
    *,
    min_silence_s: float = MIN_SILENCE_S,
    row_id: str = "row",
) -> Truth:
    """The truth of one eot-bench row: the speech between its silences, one turn (the pauses
    between the spans are holds, the pause after the last is the end of the turn)."""
    silences = _silences(silence_spans, row_id, min_silence_s)
    spans: list[tuple[float, float]] = []
    cursor = 0.0
    for start, end in silences:
        if start > cursor + 1e-6:
            spans.append((cursor, start))
        cursor = max(cursor, end)
    if not silences and duration_s > 0:
        spans.append((0.0, duration_s))  # no pause at all: one stretch of speech
    if not spans:
        raise ConfigError(f"{row_id}.silence_spans", silence_spans, "speech before the final silence")
    return Truth.from_spans(spans, source=f"eot-bench {row_id}", turns=[TURN_ID] * len(spans))


def _decode_encoded(data: bytes, row_id: str) -> tuple[bytes, int]:
    """An encoded sound file's bytes → mono PCM16 and its rate (WAV here, others via soundfile)."""
    if data[:4] == b"RIFF":
        from ..audio.wav import read_wav

        fd, tmp = tempfile.mkstemp(suffix=".wav")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return read_wav(tmp)
        finally:
            os.unlink(tmp)
    try:
        import soundfile  # type: ignore[import-untyped]
    except ImportError:
        raise OptionalDependencyMissing(f"reading {row_id}'s non-WAV audio", "soundfile", "lab") from None
    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    from ..audio.format import float_to_pcm16

    return float_to_pcm16(samples.mean(axis=1)), int(rate)


def _audio(audio: Any, row_id: str, base_dir: Path | None) -> tuple[bytes, int]:
    if not isinstance(audio, Mapping):
        raise ConfigError(f"{row_id}.audio", type(audio).__name__, "{'bytes'|'path'|'array': ...}")
    if audio.get("array") is not None:
        rate = audio.get("sampling_rate")
        if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
            raise ConfigError(f"{row_id}.audio.sampling_rate", rate, "a positive whole number of Hz")
        import numpy as np

        from ..audio.format import float_to_pcm16

        samples = np.asarray(audio["array"], dtype=np.float32)
        if samples.ndim == 2:
            samples = samples.mean(axis=0 if samples.shape[0] < samples.shape[1] else 1)
        return float_to_pcm16(samples), rate
    data = audio.get("bytes")
    if isinstance(data, str):
        data = base64.b64decode(data)
    if isinstance(data, (bytes, bytearray, memoryview)) and len(data):
        return _decode_encoded(bytes(data), row_id)
    path = audio.get("path")
    if isinstance(path, str) and path:
        p = Path(path)
        if not p.is_absolute() and base_dir is not None:
            p = base_dir / p
        return _decode_encoded(p.read_bytes(), row_id)
    raise ConfigError(f"{row_id}.audio", sorted(audio), "'bytes', 'path' or 'array' with 'sampling_rate'")


def eot_bench_clip(
    row: Mapping[str, Any], *, base_dir: Path | None = None, min_silence_s: float = MIN_SILENCE_S
) -> Clip:
    """One eot-bench row as a clip named ``LANGUAGE/ID`` with its truth."""
    if not isinstance(row, Mapping):
        raise ConfigError("row", type(row).__name__, "a mapping with id, language, audio, silence_spans")
    row_id = str(row.get("id", "row"))
    for key in ("id", "language", "audio", "silence_spans"):
        if key not in row:
            raise ConfigError(f"{row_id}.{key}", None, "present (eot-bench's required fields)")
    pcm, rate = _audio(row["audio"], row_id, base_dir)
    duration = len(pcm) / 2 / rate
    truth = eot_bench_truth(row["silence_spans"], duration, min_silence_s=min_silence_s, row_id=row_id)
    return Clip(pcm, rate, truth, f"{row['language']}/{row_id}")


def _rows(path: Path) -> list[Mapping[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        from .inputs import optional_pandas

        pd = optional_pandas()
        if pd is None:
            raise OptionalDependencyMissing("reading eot-bench Parquet", "pandas", "lab")
        try:
            frame = pd.read_parquet(path)
        except ImportError:
            raise OptionalDependencyMissing("reading eot-bench Parquet", "pyarrow", "lab") from None
        return list(frame.to_dict(orient="records"))
    text = path.read_text(encoding="utf-8")
    if suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    if isinstance(data, Mapping):
        data = data.get("rows", [data])
    if not isinstance(data, list):
        raise ConfigError(str(path), type(data).__name__, "a list of rows, {'rows': [...]} or JSON Lines")
    return data


def load_eot_bench(
    path: str | Path,
    *,
    language: str | None = None,
    limit: int | None = None,
    min_silence_s: float = MIN_SILENCE_S,
) -> list[Clip]:
    """The rows of an eot-bench file as clips with truth, ready for :func:`~voicelive_nb.lab.sweep`
    (``language``: only rows of that language; ``limit``: the first N)."""
    p = Path(path)
    clips: list[Clip] = []
    for row in _rows(p):
        if language is not None and isinstance(row, Mapping) and row.get("language") != language:
            continue
        clips.append(eot_bench_clip(row, base_dir=p.parent, min_silence_s=min_silence_s))
        if limit is not None and len(clips) >= limit:
            break
    return clips
