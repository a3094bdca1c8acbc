"""Hypothesis fuzzing of the codec and of the whole client reader, recording on.

Mutated real frames (the shared real traffic when present, else ``tests/data``) plus the
frames a hostile-peer audit found fatal go through a real Session connected to a loopback
server that sends them. No exception may escape, the session must stay connected, and the
recording must parse back with no torn line.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import real_traffic
from hostile_peers import Peer, relay_peer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicelive_nb import Session, SessionConfig
from voicelive_nb.audio.memory import BufferSink
from voicelive_nb.protocol.codec import decode_server_event
from voicelive_nb.protocol.events import Event
from voicelive_nb.recording import Recorder

DATA = Path(__file__).resolve().parent.parent / "data"


def seed_frames() -> list[dict[str, Any]]:
    """Server events to mutate: real traffic when available, else the bundled turns."""
    seeds = [p for trace in real_traffic.load() for p in trace.server()]
    if not seeds:
        for path in sorted(DATA.glob("turn_*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                if record.get("from") == "server":
                    seeds.append(record["event"])
    assert seeds, "no seed frames found"
    return seeds


SEEDS = seed_frames()
AUDIO = {
    "type": "response.audio.delta",
    "event_id": "ev",
    "response_id": "r",
    "item_id": "i",
    "output_index": 0,
    "content_index": 0,
    "delta": base64.b64encode(bytes(480)).decode(),
}
#: The frames the audit found ending a recording session, each on its own.
AUDIT_FRAMES = [
    json.dumps({**AUDIO, "delta": "%%% not base64 %%%"}),
    json.dumps({**AUDIO, "delta": base64.b64encode(b"\x01\x02\x03").decode()}),
    '{"type":"response.text.delta","event_id":"e","response_id":"r","item_id":"i","output_index":0,'
    '"content_index":0,"delta":"\\ud800"}',
    '{"type":"conversation.item.created","event_id":"e","item":' + "[" * 900 + "]" * 900 + "}",
    '{"type":"brand.new","x":' + '{"a":' * 900 + "1" + "}" * 900 + "}",
    '{"type":"session.updated","session":{"voice":"\\udfff","tools":[{"headers":{"k":"\\ud83d"}}]}}',
]

json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
odd_strings = st.sampled_from(["\ud800", "\udfff", "\x00", "AA==", "!!", "A", "é" * 3, "\u202e", ""])


@st.composite
def mutated_frame(draw: st.DrawFn) -> str | bytes:
    event = json.loads(json.dumps(draw(st.sampled_from([*SEEDS, AUDIO]))))
    keys = list(event)
    op = draw(st.sampled_from(["replace", "delete", "odd", "deep", "truncate", "bytes", "type"]))
    if op == "replace" and keys:
        event[draw(st.sampled_from(keys))] = draw(json_value)
    elif op == "delete" and keys:
        event.pop(draw(st.sampled_from(keys)))
    elif op == "odd" and keys:
        event[draw(st.sampled_from(keys))] = draw(odd_strings)
    elif op == "deep":
        depth = draw(st.integers(50, 950))
        event[draw(st.sampled_from([*keys, "extra"]))] = json.loads("[" * depth + "]" * depth)
    elif op == "type":
        event["type"] = draw(st.sampled_from(["response.audio.delta", "session.created", "error", 7, None]))
    text = json.dumps(event)
    if op == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    if op == "bytes":
        data = bytearray(text.encode())
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    return text


class Rig:
    """A Session on its own event loop thread, fed through a loopback peer."""

    def __init__(self, record: Path) -> None:
        self.record = record
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.marker = 0
        self.fed = 0
        self.peer: Peer | None = None
        self.session: Session | None = None
        self._ready = self.call(self._start())
        self._stop_event: asyncio.Event | None = None

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        self._stop = asyncio.Event()
        started = asyncio.Event()

        async def run() -> None:
            async with relay_peer() as peer:
                self.peer = peer
                self.session = Session(
                    SessionConfig.manual(),
                    endpoint=peer.url,
                    api_key="k",
                    record=self.record,
                    sink=BufferSink(),
                    dotenv=False,
                )
                await self.session.open()
                started.set()
                await self._stop.wait()
                await self.session.close()

        self._runner = asyncio.ensure_future(run())
        await asyncio.wait(
            [self._runner, asyncio.ensure_future(started.wait())], return_when="FIRST_COMPLETED"
        )
        if self._runner.done():
            self._runner.result()

    async def _feed(self, frames: list[str | bytes]) -> None:
        assert self.peer is not None and self.session is not None
        self.marker += 1
        n = self.marker
        for frame in frames:
            self.peer.queue.put_nowait(frame)
        self.peer.queue.put_nowait(json.dumps({"type": "fuzz.marker", "n": n}))
        await self.session.wait_for("fuzz.marker", timeout=10, predicate=lambda e: e.raw.get("n") == n)

    def feed(self, frames: list[str | bytes]) -> Session:
        self.call(self._feed(frames))
        self.fed += len(frames)
        assert self.session is not None
        return self.session

    def close(self) -> Session:
        async def stop() -> None:
            self._stop.set()
            await self._runner

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
        assert self.session is not None
        return self.session


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path / "rec")
    try:
        yield r
    finally:
        if r.loop.is_running():
            r.close()


@given(st.text(max_size=200) | st.binary(max_size=200) | mutated_frame())
@settings(max_examples=400, deadline=None)
def test_codec_never_raises(frame: str | bytes) -> None:
    event = decode_server_event(frame)
    assert isinstance(event, Event)
    repr(event)  # a repr that raises would break every log line about it


def check_recording(rig: Rig) -> None:
    s = rig.close()
    assert s.status == "closed", s.status
    rec = Recorder.load(rig.record)
    assert rec.complete and rec.skipped_lines == 0
    assert len(rec.of_type("fuzz.marker")) == rig.marker
    received = rec.received()
    assert len(received) >= rig.fed  # every frame left a line


def test_each_audit_frame_is_survived_with_recording_on(rig: Rig) -> None:
    for frame in AUDIT_FRAMES:
        s = rig.feed([frame])
        assert s.status == "connected", (frame[:80], s.status)
    assert s.protocol_warnings >= 3  # the two bad audio deltas and the item nested too deep at least
    check_recording(rig)


def test_mutated_real_frames_never_end_the_session(rig: Rig) -> None:
    @given(st.lists(mutated_frame(), min_size=1, max_size=8))
    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    def fuzz(frames: list[str | bytes]) -> None:
        s = rig.feed(frames)
        assert s.status == "connected", s.status
        assert s.failure is None

    fuzz()
    assert rig.session is not None and rig.session.handler_errors == []
    check_recording(rig)
