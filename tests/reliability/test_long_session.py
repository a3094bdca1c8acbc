"""An hour of conversation in seconds: a NotebookSession's memory stays bounded.

A purpose-built loopback peer answers every ``response.create`` with a whole assistant turn
(the event order of the real service: created, output item, content part, audio and
transcript deltas, done events, ``response.done``) streamed as fast as the socket takes it.
The session has no speaker, so replies go to the in-memory fallback speaker — the path that
used to keep every reply twice (+129 MB per hour of conversation).

The numbers: RSS is read after a warm-up (which fills every bounded buffer: the 60 s of
fallback-speaker audio, the Session's event history budget) and again after an hour of
assistant audio; the growth must stay under 10 MB. ``benchmarks/bench_long_session.py`` runs
the same conversation with the bounds off, side by side.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from voicelive_nb.notebook_session import NotebookSession

RATE = 24000
DELTA_MS = 200  # the service sends ~100-200 ms of audio per delta
TURN_S = 20  # assistant audio per turn
HOUR_MS = 3_600_000


class ConversationPeer:
    """Answers each ``response.create`` with a full assistant turn of ``turn_s`` seconds of audio."""

    def __init__(self, turn_s: float = TURN_S) -> None:
        self.turn_s = turn_s
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="conversation-peer", daemon=True)
        self.thread.start()
        pcm = (b"\x10\x00\xf0\xff" * (RATE * DELTA_MS // 1000 // 2))[: RATE * DELTA_MS // 1000 * 2]
        self._audio_b64 = base64.b64encode(pcm).decode("ascii")
        self.turns = 0

        async def start() -> Any:
            from websockets.asyncio.server import serve

            return await serve(self._handler, "127.0.0.1", 0, compression=None, max_size=None)

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.url = f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handler(self, ws: Any) -> None:
        await ws.send(json.dumps({"type": "session.created", "event_id": "ev0", "session": {"id": "sess_1"}}))
        async for raw in ws:
            event = json.loads(raw)
            kind = event.get("type")
            if kind == "session.update":
                await ws.send(
                    json.dumps({"type": "session.updated", "event_id": "ev1", "session": event["session"]})
                )
            elif kind == "response.create":
                await self._turn(ws)

    async def _turn(self, ws: Any) -> None:
        self.turns += 1
        n = self.turns
        rid, iid = f"resp_{n}", f"item_{n}"
        item = {"id": iid, "type": "message", "role": "assistant", "status": "in_progress", "content": []}

        def ev(kind: str, **fields: Any) -> str:
            return json.dumps({"type": kind, "event_id": f"ev_{n}_{kind}", **fields})

        part = {"response_id": rid, "item_id": iid, "output_index": 0, "content_index": 0}
        await ws.send(ev("response.created", response={"id": rid, "status": "in_progress", "output": []}))
        await ws.send(ev("response.output_item.added", response_id=rid, output_index=0, item=item))
        await ws.send(ev("conversation.item.created", previous_item_id=None, item=item))
        await ws.send(ev("response.content_part.added", **part, part={"type": "audio", "transcript": ""}))
        for k in range(int(self.turn_s * 1000 / DELTA_MS)):
            await ws.send(ev("response.audio_transcript.delta", **part, delta=f"word{k} "))
            await ws.send(ev("response.audio.delta", **part, delta=self._audio_b64))
        await ws.send(ev("response.audio.done", **part))
        await ws.send(ev("response.audio_transcript.done", **part, transcript=f"turn {n}"))
        await ws.send(
            ev("response.content_part.done", **part, part={"type": "audio", "transcript": f"turn {n}"})
        )
        done_item = {**item, "status": "completed"}
        await ws.send(ev("response.output_item.done", response_id=rid, output_index=0, item=done_item))
        await ws.send(ev("response.done", response={"id": rid, "status": "completed", "output": [done_item]}))

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@dataclass
class LongSessionResult:
    warmup_ms: int
    measured_ms: int
    rss_growth_bytes: int
    wall_s: float
    held_bytes: int

    @property
    def mb_per_hour(self) -> float:
        return self.rss_growth_bytes / 1e6 / (self.measured_ms / HOUR_MS)


def run_conversation(
    *, warmup_s: float = 900, hours: float = 1.0, speaker_memory_bytes: int | None = 60 * RATE * 2
) -> LongSessionResult:
    """Warm up for ``warmup_s`` of assistant audio, then measure RSS over ``hours`` of it."""
    peer = ConversationPeer()
    s = NotebookSession(
        endpoint=peer.url,
        api_key="k",
        mic=False,
        speaker=False,
        dotenv=False,
        emulator=False,
        speaker_memory_bytes=speaker_memory_bytes,
    )
    try:
        s.start(wait=True, timeout=30)
        t0 = time.monotonic()

        def turns(audio_s: float) -> None:
            for _ in range(max(1, round(audio_s / TURN_S))):
                s.create_response()
                done = s.wait_for("response.done", timeout=60)
                assert done.response["status"] == "completed"

        turns(warmup_s)
        gc.collect()
        rss0, ms0 = rss_bytes(), s.speaker.total_ms  # type: ignore[union-attr]
        turns(hours * 3600)
        gc.collect()
        rss1, ms1 = rss_bytes(), s.speaker.total_ms  # type: ignore[union-attr]
        return LongSessionResult(
            warmup_ms=ms0,
            measured_ms=ms1 - ms0,
            rss_growth_bytes=rss1 - rss0,
            wall_s=time.monotonic() - t0,
            held_bytes=s.speaker.held_bytes,  # type: ignore[union-attr]
        )
    finally:
        s.stop()
        peer.close()


def test_an_hour_of_conversation_stays_within_10_mb() -> None:
    result = run_conversation(warmup_s=900, hours=1.0)
    assert result.measured_ms >= HOUR_MS  # an hour of assistant audio really went through
    assert result.held_bytes <= 60 * RATE * 2 + RATE * DELTA_MS // 1000 * 2  # the fallback speaker's bound
    assert result.mb_per_hour <= 10, (
        f"RSS grew {result.rss_growth_bytes / 1e6:.1f} MB over {result.measured_ms / 60000:.0f} min "
        f"of conversation ({result.mb_per_hour:.1f} MB/h; goal ≤ 10)"
    )
