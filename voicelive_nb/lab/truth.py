"""The truth a VAD is scored against: where speech really is, in seconds.

Three label formats are read (and written):

* JSON: ``{"speech_s": [[start, end], ...]}`` (a bare list of pairs is accepted too);
* CSV: one ``start,end`` pair per row, in seconds; an optional header row and extra columns
  (a label) are ignored — with a header, columns named ``start``/``start_s`` and
  ``end``/``end_s`` are used;
* Audacity labels (File → Export → Labels): ``start<TAB>end<TAB>label`` per line; the
  ``\\``-prefixed frequency lines of spectral labels are skipped. A zero-length (point) label
  is an error: it has no span.
* Praat TextGrid (long or short text format): the speech tier is the interval tier named
  ``speech``/``vad``/``words``/``utterances`` (else the first interval tier); its intervals with
  a text other than empty, ``sil``, ``sp``, ``#``, ``<sil>``, ``silence`` or ``pause`` are speech.
  An interval tier named ``turn``/``turns``/``speaker-turn`` gives each speech span the text of
  the turn interval that holds its midpoint, as its turn id;
* RTTM (NIST diarization): ``SPEAKER file chan onset duration <NA> <NA> speaker <NA> <NA>`` per
  line (other line types are skipped); the speaker name is the turn id, so consecutive segments
  of one speaker are one turn and a change of speaker ends it.

Turn ids (for the end-of-turn metrics of :mod:`voicelive_nb.lab.turns`): JSON ``"turns":
[id, ...]`` next to ``speech_s`` or ``[start, end, id]`` triples; a CSV column named ``turn``,
``turn_id``, ``speaker_turn``, ``speaker-turn`` or ``speaker``; TextGrid and RTTM as above.
Audacity labels carry none (the gap rule of :mod:`~voicelive_nb.lab.turns` applies).

Or a reference VAD run: :func:`reference_truth` runs the Silero model and segmenter the emulator
uses (:mod:`voicelive_nb.speech`) over the audio offline (no session), and
:meth:`Truth.from_result` takes the speech spans of a replay (for example against Azure, to check
the emulator against the service).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..analysis.vad_scoring import BoundaryMapping, normalize_spans
from ..errors import InvalidValue


class _SpeechOfReplay(Protocol):
    """What :meth:`Truth.from_result` reads of a ``ReplayResult`` (a protocol: replay imports this module)."""

    @property
    def name(self) -> str: ...
    @property
    def speech_spans_s(self) -> list[tuple[float, float]]: ...


__all__ = [
    "TRUTH_SUFFIXES",
    "Truth",
    "find_truth",
    "load_truth",
    "parse_truth",
    "reference_truth",
    "save_truth",
]

#: Sidecar label files looked for next to ``foo.wav``, in this order.
TRUTH_SUFFIXES = (".json", ".truth.json", ".csv", ".labels.txt", ".txt", ".TextGrid", ".rttm")


@dataclass(frozen=True)
class Truth:
    """Speech spans ``(start_s, end_s)``, sorted, overlapping spans merged.

    ``turns``: an optional turn id per span (same order; None when the labels carry none). Two
    consecutive spans with the same id are one turn (the pause between them is a *hold*);
    a different id ends the turn (see :mod:`voicelive_nb.lab.turns`).
    """

    spans_s: tuple[tuple[float, float], ...]
    source: str = ""
    turns: tuple[str, ...] | None = None

    @classmethod
    def from_spans(
        cls,
        spans: Iterable[Sequence[float]],
        *,
        unit: str = "s",
        source: str = "",
        turns: Sequence[Any] | None = None,
    ) -> Truth:
        """From ``[start, end]`` pairs in seconds (``unit="s"``) or milliseconds (``unit="ms"``);
        ``turns``: a turn id per pair (overlapping spans merge and keep the first one's id)."""
        if unit not in ("s", "ms"):
            raise InvalidValue(f"unit must be 's' or 'ms', got {unit!r}")
        scale = 1.0 if unit == "s" else 0.001
        pairs = [(float(a) * scale, float(b) * scale) for a, b in (_pair(s, i) for i, s in enumerate(spans))]
        if turns is None:
            return cls(tuple(normalize_spans(pairs)), source)
        ids = [str(t) for t in turns]
        if len(ids) != len(pairs):
            raise InvalidValue(f"truth needs one turn id per span: {len(pairs)} spans, {len(ids)} turn ids")
        normalize_spans(pairs)  # the same validation, with the same messages
        merged: list[tuple[float, float]] = []
        merged_ids: list[str] = []
        for (a, b), tid in sorted(zip(pairs, ids, strict=True), key=lambda item: item[0]):
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
                merged_ids.append(tid)
        return cls(tuple(merged), source, tuple(merged_ids))

    @classmethod
    def from_result(cls, result: _SpeechOfReplay) -> Truth:
        """The speech spans of a replay, mapped (padding and silence window removed)."""
        return cls(tuple(result.speech_spans_s), source=f"replay of {result.name}")

    @property
    def spans_ms(self) -> list[tuple[float, float]]:
        return [(a * 1000.0, b * 1000.0) for a, b in self.spans_s]

    @property
    def speech_s(self) -> float:
        """Total speech time."""
        return sum(b - a for a, b in self.spans_s)

    def __len__(self) -> int:
        return len(self.spans_s)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"speech_s": [[round(a, 4), round(b, 4)] for a, b in self.spans_s]}
        if self.turns is not None:
            data["turns"] = list(self.turns)
        return data

    def shifted(self, offset_s: float) -> Truth:
        return Truth(tuple((a + offset_s, b + offset_s) for a, b in self.spans_s), self.source, self.turns)


def _pair(span: Any, index: int) -> tuple[float, float]:
    try:
        start, end = span
        return float(start), float(end)
    except (TypeError, ValueError):
        raise InvalidValue(f"truth span {index} must be [start, end] in seconds, got {span!r}") from None


def _sniff(text: str) -> str:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return "json"
    if stripped.startswith("File type") and "ooTextFile" in stripped[:80]:
        return "textgrid"
    first = next((line for line in text.splitlines() if line.strip()), "")
    if any(line.split()[:1] == ["SPEAKER"] for line in text.splitlines()):
        return "rttm"
    return "audacity" if "\t" in first else "csv"


FORMATS = ("json", "csv", "audacity", "textgrid", "rttm")


def parse_truth(text: str, format: str | None = None, *, source: str = "") -> Truth:
    """Parse label text; ``format`` is one of :data:`FORMATS` (guessed when None)."""
    fmt = format or _sniff(text)
    if fmt == "json":
        return _parse_json(text, source)
    if fmt == "csv":
        return _parse_csv(text, source)
    if fmt == "audacity":
        return _parse_audacity(text, source)
    if fmt == "textgrid":
        return _parse_textgrid(text, source)
    if fmt == "rttm":
        return _parse_rttm(text, source)
    raise InvalidValue(f"unknown truth format {format!r}; use {', '.join(FORMATS)}")


def _parse_json(text: str, source: str) -> Truth:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidValue(f"truth {source or 'text'} is not valid JSON: {exc}") from None
    if isinstance(data, dict):
        if "speech_s" in data:
            spans = data["speech_s"]
        elif "speech_ms" in data:
            return Truth.from_spans(data["speech_ms"], unit="ms", source=source)
        else:
            raise InvalidValue(f'truth {source or "JSON"} needs a "speech_s" list of [start, end] pairs')
    else:
        spans = data
    if not isinstance(spans, list):
        raise InvalidValue(f'truth {source or "JSON"}: "speech_s" must be a list of [start, end] pairs')
    turns = data.get("turns") if isinstance(data, dict) else None
    if turns is None and spans and all(isinstance(x, (list, tuple)) and len(x) == 3 for x in spans):
        turns = [x[2] for x in spans]
        spans = [x[:2] for x in spans]
    if turns is not None and not isinstance(turns, list):
        raise InvalidValue(f'truth {source or "JSON"}: "turns" must be a list with one turn id per span')
    return Truth.from_spans(spans, source=source, turns=turns)


def _number(cell: str) -> float | None:
    try:
        value = float(cell.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _parse_csv(text: str, source: str) -> Truth:
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        return Truth((), source)
    start_col, end_col = 0, 1
    turn_col: int | None = None
    header = rows[0]
    first_row = 1
    if len(header) < 2 or _number(header[0]) is None:
        names = [cell.strip().lower() for cell in header]
        for i, name in enumerate(names):
            if name in ("start", "start_s", "begin", "onset"):
                start_col = i
            elif name in ("end", "end_s", "stop", "offset"):
                end_col = i
            elif name in ("turn", "turn_id", "speaker_turn", "speaker-turn", "speaker"):
                turn_col = i
        rows = rows[1:]
        first_row = 2
    spans = []
    turns: list[str] = []
    for n, row in enumerate(rows, start=first_row):
        if len(row) <= max(start_col, end_col):
            raise InvalidValue(f"truth {source or 'CSV'} row {n}: expected start,end, got {row!r}")
        a, b = _number(row[start_col]), _number(row[end_col])
        if a is None or b is None:
            raise InvalidValue(f"truth {source or 'CSV'} row {n}: start and end must be numbers, got {row!r}")
        spans.append((a, b))
        if turn_col is not None:
            turns.append(row[turn_col].strip() if len(row) > turn_col else "")
    return Truth.from_spans(spans, source=source, turns=turns if turn_col is not None else None)


def _parse_audacity(text: str, source: str) -> Truth:
    spans = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("\\"):
            continue
        cells = line.split("\t")
        a = _number(cells[0]) if cells else None
        b = _number(cells[1]) if len(cells) > 1 else None
        if a is None or b is None:
            raise InvalidValue(f"truth {source or 'label file'} line {n}: expected start<TAB>end[<TAB>label]")
        if b <= a:
            raise InvalidValue(
                f"truth {source or 'label file'} line {n}: a point label ({a} s) has no span; "
                "use region labels for speech"
            )
        spans.append((a, b))
    return Truth.from_spans(spans, source=source)


_SILENCE_LABELS = frozenset({"", "sil", "sp", "#", "<sil>", "silence", "pause", "<p:>", "spn"})
_SPEECH_TIERS = ("speech", "vad", "words", "word", "utterances", "utterance")
_TURN_TIERS = ("turn", "turns", "speaker-turn", "speaker_turn", "speaker turn")


def _textgrid_tokens(text: str) -> list[str]:
    """The values of a TextGrid (long or short format): quoted strings (``""`` is a quote)
    and numbers, in order; ``name =`` keys, ``<exists>`` and comments dropped."""
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = i + 1
            buf = []
            while j < n:
                if text[j] == '"':
                    if j + 1 < n and text[j + 1] == '"':
                        buf.append('"')
                        j += 2
                        continue
                    break
                buf.append(text[j])
                j += 1
            tokens.append('"' + "".join(buf))
            i = j + 1
        elif ch == "!":  # a comment to the end of the line
            while i < n and text[i] != "\n":
                i += 1
        elif ch.isdigit() or ch in "-+.":
            j = i
            while j < n and not text[j].isspace():
                j += 1
            if _number(text[i:j]) is not None:
                tokens.append(text[i:j])
            i = j
        else:
            i += 1
    return tokens


def _parse_textgrid(text: str, source: str) -> Truth:
    where = source or "TextGrid"
    tokens = _textgrid_tokens(text)
    # header: "ooTextFile", "TextGrid", xmin, xmax, then the tier count (size)
    strings = [t for t in tokens[:2] if t.startswith('"')]
    if len(strings) < 2 or strings[1][1:] != "TextGrid":
        raise InvalidValue(f"truth {where} is not a Praat TextGrid (no 'Object class = \"TextGrid\"')")
    pos = 2
    try:
        pos += 2  # xmin, xmax
        size = int(float(tokens[pos]))
        pos += 1
        tiers: list[tuple[str, str, list[tuple[float, float, str]]]] = []
        for _ in range(size):
            kind, name = tokens[pos][1:], tokens[pos + 1][1:]
            pos += 4  # class, name, xmin, xmax
            count = int(float(tokens[pos]))
            pos += 1
            items: list[tuple[float, float, str]] = []
            for _ in range(count):
                if kind == "IntervalTier":
                    a, b, label = float(tokens[pos]), float(tokens[pos + 1]), tokens[pos + 2][1:]
                    pos += 3
                else:  # TextTier: points (no span)
                    a, label = float(tokens[pos]), tokens[pos + 1][1:]
                    b = a
                    pos += 2
                items.append((a, b, label))
            tiers.append((kind, name, items))
    except (IndexError, ValueError):
        raise InvalidValue(
            f"truth {where}: the TextGrid is truncated or malformed near value {pos}"
        ) from None
    intervals = [t for t in tiers if t[0] == "IntervalTier"]
    if not intervals:
        raise InvalidValue(f"truth {where}: the TextGrid has no interval tier with speech")
    turn_tier = next((t for t in intervals if t[1].strip().lower() in _TURN_TIERS), None)
    speech_tier = next((t for t in intervals if t[1].strip().lower() in _SPEECH_TIERS), None)
    if speech_tier is None:
        speech_tier = next((t for t in intervals if t is not turn_tier), intervals[0])
    spans = [
        (a, b) for a, b, label in speech_tier[2] if label.strip().lower() not in _SILENCE_LABELS and b > a
    ]
    if turn_tier is None:
        return Truth.from_spans(spans, source=source)
    turns = []
    for a, b in spans:
        mid = (a + b) / 2
        turns.append(next((lab.strip() for x, y, lab in turn_tier[2] if x <= mid < y), ""))
    return Truth.from_spans(spans, source=source, turns=turns)


def _parse_rttm(text: str, source: str) -> Truth:
    spans = []
    turns = []
    for n, line in enumerate(text.splitlines(), start=1):
        cells = line.split()
        if not cells or cells[0].startswith((";", "#")) or cells[0] != "SPEAKER":
            continue  # other RTTM types (SPKR-INFO, LEXEME, ...) carry no speech span
        onset = _number(cells[3]) if len(cells) > 4 else None
        dur = _number(cells[4]) if len(cells) > 4 else None
        if onset is None or dur is None:
            raise InvalidValue(
                f"truth {source or 'RTTM'} line {n}: expected SPEAKER file channel onset duration ..., got {line!r}"
            )
        if dur <= 0:
            continue  # a zero-length segment has no speech
        spans.append((onset, onset + dur))
        turns.append(cells[7] if len(cells) > 7 else "")
    return Truth.from_spans(spans, source=source, turns=turns)


def _format_for(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return {
        ".json": "json",
        ".csv": "csv",
        ".txt": "audacity",
        ".tsv": "audacity",
        ".textgrid": "textgrid",
        ".rttm": "rttm",
    }.get(suffix)


def load_truth(path: str | Path, format: str | None = None) -> Truth:
    """Read a label file (format from the suffix ``.json``/``.csv``/``.txt``, else sniffed)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidValue(f"cannot read truth file {p}: {exc.strerror or exc}") from None
    return parse_truth(text, format or _format_for(p), source=str(p))


def save_truth(path: str | Path, truth: Truth | Iterable[Sequence[float]], format: str | None = None) -> Path:
    """Write ``truth`` as JSON, CSV or Audacity labels (from the suffix unless ``format`` is given)."""
    p = Path(path)
    t = truth if isinstance(truth, Truth) else Truth.from_spans(truth)
    fmt = format or _format_for(p) or "json"
    if fmt == "json":
        text = json.dumps(t.to_json()) + "\n"
    elif fmt == "csv" and t.turns is not None:
        text = "start_s,end_s,turn\n" + "".join(
            f"{a:.4f},{b:.4f},{tid}\n" for (a, b), tid in zip(t.spans_s, t.turns, strict=True)
        )
    elif fmt == "csv":
        text = "start_s,end_s\n" + "".join(f"{a:.4f},{b:.4f}\n" for a, b in t.spans_s)
    elif fmt == "audacity":
        text = "".join(f"{a:.6f}\t{b:.6f}\tspeech\n" for a, b in t.spans_s)
    else:
        raise InvalidValue(f"unknown truth format {fmt!r}; use json, csv or audacity")
    p.write_text(text, encoding="utf-8")
    return p


def find_truth(wav: str | Path) -> Truth | None:
    """The sidecar label file of ``wav`` (``foo.json``, ``foo.truth.json``, ``foo.csv``,
    ``foo.labels.txt`` or ``foo.txt`` next to ``foo.wav``), or None."""
    p = Path(wav)
    for suffix in TRUTH_SUFFIXES:
        candidate = p.with_name(p.stem + suffix)
        if candidate.is_file():
            return load_truth(candidate)
    return None


def reference_truth(
    audio: bytes | str | Path,
    sample_rate: int | None = None,
    *,
    threshold: float = 0.5,
    min_silence_ms: int = 300,
    min_speech_ms: int = 96,
) -> Truth:
    """Truth from an offline reference VAD run: the emulator's Silero model and segmenter (``speech/``).

    No session, no padding: a turn ends after ``min_silence_ms`` of silence and that window is
    subtracted again, so the spans are where the model heard speech (±32 ms windows). Use a
    short ``min_silence_ms`` to separate utterances, a long one to get whole sentences.
    """
    from ..speech.segmenter import VadSegmenter, VadSettings, VadSpeechStarted
    from ..speech.vad import SpeechProbability

    if isinstance(audio, (str, Path)):
        from ..audio.wav import read_wav

        pcm, rate = read_wav(audio)
        label = str(audio)
    else:
        if sample_rate is None:
            raise InvalidValue("reference_truth needs sample_rate for raw PCM16 audio")
        pcm, rate = bytes(audio), sample_rate
        label = "audio"
    probs = SpeechProbability(rate)
    seg = VadSegmenter(
        VadSettings(
            threshold=threshold,
            prefix_padding_ms=0,
            silence_duration_ms=min_silence_ms,
            speech_duration_ms=min_speech_ms,
        ),
        window_ms=SpeechProbability.window_ms,
    )
    step = rate * 2  # one second per feed
    raw: list[tuple[float | None, float | None]] = []
    for i in range(0, len(pcm), step):
        for p in probs.feed(pcm[i : i + step]):
            for ev in seg.push(p):
                if isinstance(ev, VadSpeechStarted):
                    raw.append((float(ev.audio_start_ms), None))
                else:
                    start = raw[-1][0] if raw and raw[-1][1] is None else None
                    if raw and raw[-1][1] is None:
                        raw[-1] = (start, float(ev.audio_end_ms))
                    else:
                        raw.append((None, float(ev.audio_end_ms)))
    total_ms = len(pcm) / 2 * 1000.0 / rate
    turns = BoundaryMapping(0, min_silence_ms).map_turns(raw, audio_total_ms=total_ms)
    spans = [(t.speech_start_ms, t.speech_end_ms) for t in turns if t.speech_end_ms > t.speech_start_ms]
    return Truth.from_spans(spans, unit="ms", source=f"reference VAD of {label} (threshold {threshold})")
