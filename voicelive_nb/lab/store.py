"""A local store of finished replays, so that a sweep resumes instead of starting over.

``sweep(..., results="runs/")`` keeps every replay in ``runs/lab-results.sqlite`` the moment it
finishes (one committed SQLite transaction per replay, write-ahead log), keyed by:

* the audio's content hash (SHA-256 of the PCM16 samples and the sample rate — not the file name),
* the effective configuration's hash (the ``session.update`` the replay sends, plus the replay
  options that change what the service hears: tail silence, pacing, responses),
* the endpoint (as shown, credentials masked), the api-version and the model.

Re-running the same sweep with the same ``results=`` reuses every stored replay and runs only
what is missing; ``kill -9`` or a kernel restart loses at most the replays in flight. A stored
replay comes back with its turns, timings and retries; its score is computed again from the
clip's truth as it is now (so fixing a label file does not need a re-run); its events are not
kept (``events`` is empty).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from ..analysis.vad_scoring import BoundaryMapping, score_turns
from ..errors import VoiceLiveError
from ..protocol.config import SessionConfig
from .replay import ReplayResult, Turn
from .testsets import Clip

__all__ = ["STORE_NAME", "ResultStore", "audio_hash", "config_hash", "run_key"]

STORE_NAME = "lab-results.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS replays (
    key TEXT PRIMARY KEY,
    audio_hash TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    api_version TEXT NOT NULL,
    model TEXT NOT NULL,
    clip TEXT NOT NULL,
    knobs TEXT NOT NULL,
    payload TEXT NOT NULL
)
"""


class StoreError(VoiceLiveError):
    """The results store cannot be opened or read."""


def audio_hash(clip: Clip) -> str:
    h = hashlib.sha256()
    h.update(f"pcm16/{clip.sample_rate}/".encode())
    h.update(clip.pcm16)
    return h.hexdigest()


def config_hash(config: SessionConfig, options: dict[str, Any]) -> str:
    effective = {
        "session": config.to_dict(),
        "options": {k: options.get(k) for k in ("responses", "tail_ms", "pace", "transcription")},
    }
    return hashlib.sha256(json.dumps(effective, sort_keys=True, default=str).encode()).hexdigest()


def run_key(audio: str, config: str, endpoint: str, api_version: str, model: str) -> str:
    return hashlib.sha256("\x1f".join((audio, config, endpoint, api_version, model)).encode()).hexdigest()


def _payload(result: ReplayResult) -> str:
    return json.dumps(
        {
            "name": result.name,
            "config": result.config.to_dict(),
            "mapping": [result.mapping.prefix_padding_ms, result.mapping.silence_duration_ms],
            "turns": [dataclasses.asdict(t) for t in result.turns],
            "audio_ms": result.audio_ms,
            "tail_ms": result.tail_ms,
            "sample_rate": result.sample_rate,
            "pace": result.pace,
            "target": result.target,
            "wall_s": result.wall_s,
            "errors": list(result.errors),
            "retries": result.retries,
        }
    )


def _result(payload: str, clip: Clip) -> ReplayResult:
    data = json.loads(payload)
    turns = [Turn(**t) for t in data["turns"]]
    score = None
    if clip.truth is not None:
        score = score_turns(clip.truth.spans_ms, [t.detected for t in turns])
    return ReplayResult(
        name=data["name"],
        config=SessionConfig.from_dict(data["config"]),
        mapping=BoundaryMapping(*data["mapping"]),
        turns=turns,
        events=[],
        audio_ms=data["audio_ms"],
        tail_ms=data["tail_ms"],
        sample_rate=data["sample_rate"],
        pace=data["pace"],
        target=data["target"],
        wall_s=data["wall_s"],
        truth=clip.truth,
        score=score,
        errors=list(data["errors"]),
        retries=data["retries"],
        clip=clip,
    )


class ResultStore:
    """Finished replays in ``DIR/lab-results.sqlite`` (see the module doc). One connection,
    used from one thread at a time."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.directory / STORE_NAME), check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the results store in {self.directory}: {exc}; pass another results= directory"
            ) from None

    @property
    def path(self) -> Path:
        return self.directory / STORE_NAME

    def has(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM replays WHERE key = ?", (key,)).fetchone() is not None

    def get(self, key: str, clip: Clip) -> ReplayResult | None:
        row = self._db.execute("SELECT payload FROM replays WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return _result(row[0], clip)
        except (ValueError, TypeError, KeyError):
            return None  # a record from another version of the lab: run it again

    def put(
        self,
        key: str,
        result: ReplayResult,
        *,
        audio: str,
        config: str,
        endpoint: str,
        api_version: str,
        model: str,
        knobs: dict[str, Any],
    ) -> None:
        """Store one finished replay (committed before this returns)."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO replays VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    audio,
                    config,
                    endpoint,
                    api_version,
                    model,
                    result.name,
                    json.dumps(knobs, default=str),
                    _payload(result),
                ),
            )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM replays").fetchone()[0])

    def rows(self) -> list[dict[str, Any]]:
        """Every stored replay: clip, knobs, endpoint, api-version, model, turns and wall time."""
        out = []
        query = "SELECT clip, knobs, endpoint, api_version, model, payload FROM replays ORDER BY rowid"
        for clip, knobs, endpoint, api_version, model, payload in self._db.execute(query):
            data = json.loads(payload)
            out.append(
                {
                    "clip": clip,
                    **json.loads(knobs),
                    "endpoint": endpoint,
                    "api_version": api_version,
                    "model": model,
                    "turns": len(data["turns"]),
                    "wall_s": data["wall_s"],
                    "retries": data["retries"],
                }
            )
        return out

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ResultStore {self.path}>"
