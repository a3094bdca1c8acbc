"""Traffic recorded against the live services, read from ``../shared/reference/real-traffic/``.

The data is not ours to commit: tests that use it skip, with a reason saying where it comes
from, in a checkout that has no ``shared/`` beside it. Every record is one event of one
recorded connection (a *trace*): ``{"source", "origin", "trace", "seq", "direction", "payload"}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: Where the shared reference data lives, relative to the project root.
REAL_TRAFFIC_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "reference" / "real-traffic"
#: Voice Live's dated-version shape (``response.audio.delta``, flat session).
VOICELIVE_FILE = "voicelive-live.jsonl"
#: The OpenAI Realtime GA shape (``response.output_audio.delta``, ``audio.input/.output``).
GA_FILE = "openai-ga-live.jsonl"

SKIP_REASON = (
    f"no real traffic at {REAL_TRAFFIC_DIR}: it is recorded Voice Live / OpenAI Realtime traffic "
    "(shared/reference/real-traffic beside the checkout, as CI lays it out) and is not committed here"
)


@dataclass(frozen=True)
class Trace:
    """One recorded connection: its name, file, origin and events in order."""

    name: str
    file: str
    origin: str
    records: tuple[dict[str, Any], ...]

    @property
    def short(self) -> str:
        """A test id: the cassette's file name without ``.yaml``."""
        return self.name.rsplit("/", 1)[-1].removesuffix(".yaml")

    @property
    def shape(self) -> str:
        """``"preview"`` (Voice Live dated versions) or ``"ga"`` (OpenAI GA / api-version v1)."""
        return "ga" if self.file == GA_FILE else "preview"

    def server(self) -> list[dict[str, Any]]:
        """The server events' payloads, in order."""
        return [r["payload"] for r in self.records if r["direction"] == "server"]

    def client(self) -> list[dict[str, Any]]:
        """The client events' payloads, in order."""
        return [r["payload"] for r in self.records if r["direction"] == "client"]

    def lines(self) -> list[tuple[str, dict[str, Any]]]:
        """``(direction, payload)`` pairs, in order."""
        return [(r["direction"], r["payload"]) for r in self.records]


def available() -> bool:
    return (REAL_TRAFFIC_DIR / VOICELIVE_FILE).is_file() and (REAL_TRAFFIC_DIR / GA_FILE).is_file()


def require() -> None:
    """Skip the calling test when the data is not there."""
    if not available():
        pytest.skip(SKIP_REASON)


def load(file: str | None = None) -> list[Trace]:
    """Every trace of ``file`` (or of both files), in file order; empty when the data is absent."""
    if not available():
        return []
    files = [file] if file else [VOICELIVE_FILE, GA_FILE]
    traces: list[Trace] = []
    for name in files:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for line in (REAL_TRAFFIC_DIR / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                grouped.setdefault(record["trace"], []).append(record)
        for trace_name, records in grouped.items():
            records.sort(key=lambda r: r["seq"])
            traces.append(Trace(trace_name, name, records[0]["origin"], tuple(records)))
    return traces


def params(file: str | None = None) -> list[Any]:
    """``pytest.param(trace, id=...)`` for every trace, or one skipped param when absent (a list:
    pytest deprecates parametrizing with a generator)."""
    traces = load(file)
    if not traces:
        return [pytest.param(None, id="no-real-traffic", marks=pytest.mark.skip(reason=SKIP_REASON))]
    return [pytest.param(trace, id=f"{trace.shape}-{trace.short}") for trace in traces]
