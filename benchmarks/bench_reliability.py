"""Reliability against hostile peers: fuzzed frames, time to report each misbehaviour, audio lost
at kill -9 mid-recording, and close() against a stalled peer.

    python benchmarks/bench_reliability.py [--frames 3000] [--reps 5]

- fuzz: mutated frames (seeded; the bundled turns in tests/data plus the audit's fatal frames)
  through a real Session on a loopback peer, recording on; prints frames, protocol warnings
  counted, exceptions that escaped (session failed or a torn recording line) — must be 0.
- each misbehaving-peer scenario: median ms from connect to ``failed: ...`` beside its bound
  (the deadlines configured: send 0.5 s, ping every 0.3 s / pong within 0.5 s, connect 0.5 s).
- kill -9 of a child recording 20 ms mic frames: ms of audio the recording lost (what the
  child had reported as recorded, minus what the WAV holds after the kill).
- close(): healthy peer (the floor) against a stalled peer with full buffers (bounded by
  close_timeout_s=0.5 s; before this work it did not return within 100 s).
Compare ratios and bounds, not absolute numbers: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "reliability"))

from hostile_peers import aborts, closes, never_answers, peer, relay_peer, silent, stalls, tcp_peer  # noqa: E402

from voicelive_nb import Session, SessionConfig  # noqa: E402
from voicelive_nb.audio.memory import ArraySource, BufferSink  # noqa: E402
from voicelive_nb.errors import VoiceLiveError  # noqa: E402
from voicelive_nb.recording import Recorder  # noqa: E402

FAST = {"send_timeout_s": 0.5, "ping_interval_s": 0.3, "ping_timeout_s": 0.5, "close_timeout_s": 0.5}


def seeds() -> list[dict[str, Any]]:
    out = []
    for path in sorted((ROOT / "tests" / "data").glob("turn_*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record.get("from") == "server":
                out.append(record["event"])
    return out


def mutate(rng: random.Random, event: dict[str, Any]) -> str | bytes:
    event = json.loads(json.dumps(event))
    keys = list(event)
    op = rng.choice(["replace", "delete", "odd", "deep", "truncate", "bytes", "audio"])
    if op == "replace" and keys:
        event[rng.choice(keys)] = rng.choice([None, 7, -1.5, "x", [], {}, [1, {"a": None}], True])
    elif op == "delete" and keys:
        event.pop(rng.choice(keys))
    elif op == "odd" and keys:
        event[rng.choice(keys)] = rng.choice(["\ud800", "\udfff", "\x00", "AA==", "!!", "A", "é"])
    elif op == "deep":
        depth = rng.randint(50, 950)
        event["extra"] = json.loads("[" * depth + "]" * depth)
    elif op == "audio":
        event = {
            "type": "response.audio.delta",
            "event_id": "e",
            "response_id": "r",
            "item_id": "i",
            "output_index": 0,
            "content_index": 0,
            "delta": rng.choice(["%%%", base64.b64encode(b"\x01\x02\x03").decode(), "AAAA"]),
        }
    text = json.dumps(event)
    if op == "truncate":
        return text[: rng.randint(0, len(text))]
    if op == "bytes":
        data = bytearray(text.encode())
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    return text


async def fuzz(frames: int) -> tuple[int, int, int, float]:
    rng = random.Random(11)
    pool = seeds()
    directory = Path(tempfile.mkdtemp()) / "rec"
    start = time.perf_counter()
    async with relay_peer() as p:
        s = Session(
            SessionConfig.manual(),
            endpoint=p.url,
            api_key="k",
            record=directory,
            sink=BufferSink(),
            dotenv=False,
        )
        await s.open()
        for batch in range(0, frames, 100):
            for _ in range(min(100, frames - batch)):
                p.queue.put_nowait(mutate(rng, rng.choice(pool)))
            p.queue.put_nowait(json.dumps({"type": "fuzz.marker", "n": batch}))
            await s.wait_for("fuzz.marker", timeout=30, predicate=lambda e, n=batch: e.raw.get("n") == n)
        failed = 0 if s.status == "connected" else 1
        await s.close()
    elapsed = time.perf_counter() - start
    rec = Recorder.load(directory)
    escaped = failed + rec.skipped_lines + (0 if rec.complete else 1)
    return frames, s.protocol_warnings, escaped, elapsed


async def time_to_report(make: Any, options: dict[str, Any], stream: bool = False) -> float:
    async with make() as url_or_peer:
        url = url_or_peer if isinstance(url_or_peer, str) else url_or_peer.url
        s = Session(SessionConfig.manual(), endpoint=url, api_key="k", dotenv=False, **{**FAST, **options})
        start = time.perf_counter()
        try:
            await s.open()
            if stream:
                s.stream(ArraySource(bytes(200_000) * 100, 24000, pace="fast"))  # type: ignore[arg-type]
            try:
                await s.wait_for("never.sent", timeout=10)
            except VoiceLiveError:
                pass
        except VoiceLiveError:
            pass
        took = time.perf_counter() - start
        assert s.status.startswith("failed"), s.status
        await s.close()
        return took * 1000


async def close_ms(stalled: bool) -> float:
    async with peer(stalls if stalled else silent) as p:
        s = Session(
            SessionConfig.manual(),
            endpoint=p.url,
            api_key="k",
            dotenv=False,
            **{**FAST, "ping_interval_s": 60.0, "send_timeout_s": 60.0},
        )
        await s.open()
        if stalled:
            s.stream(ArraySource(bytes(200_000) * 100, 24000, pace="fast"))  # type: ignore[arg-type]
            transport = s._transport
            assert transport is not None
            deadline = time.monotonic() + 10
            while transport.buffered_bytes() < 16_000:  # the peer's buffers are full
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
        start = time.perf_counter()
        await s.close()
        return (time.perf_counter() - start) * 1000


CHILD = r"""
import sys, base64
from voicelive_nb.recording import Recorder
rec = Recorder(sys.argv[1])
frame = bytes(range(256)) * 3 + bytes(192)  # 960 bytes: 20 ms at 24 kHz
sent = 0
while True:
    rec.record_sent({"type": "input_audio_buffer.append", "audio": base64.b64encode(frame).decode()})
    sent += len(frame)
    print(sent, flush=True)
"""


def kill9_lost_ms(reps: int) -> list[float]:
    from crash import run_and_kill

    lost = []
    for i in range(reps):
        tmp = Path(tempfile.mkdtemp())
        lines = run_and_kill(tmp, CHILD, [str(tmp / "rec")], tmp / "rec" / "mic.wav", 200_000 + i * 50_000)
        reported = int(lines[-1]) if lines else 0
        kept = len(Recorder.load(tmp / "rec").mic)
        lost.append(max(0, reported - kept) / 48)
    return lost


async def scenarios(reps: int) -> list[tuple[str, float, float]]:
    rows = []
    table = [
        ("close code 1011", lambda: peer(closes(1011, "boom")), {}, False, 1000),
        ("abrupt TCP close", lambda: peer(aborts), {}, False, 1000),
        ("stops answering pings", lambda: peer(stalls), {}, False, (0.3 + 0.5) * 1000 + 300),
        ("stops reading (sending)", lambda: peer(stalls), {"ping_interval_s": 60.0}, True, 500 + 1000),
        (
            "never answers handshake",
            lambda: tcp_peer(never_answers),
            {"connect_timeout_s": 0.5},
            False,
            500 + 300,
        ),
        (
            "no session.created",
            lambda: peer(silent, do_prelude=False),
            {"setup_timeout_s": 0.5},
            False,
            500 + 300,
        ),
    ]
    for name, make, options, stream, bound in table:
        times = [await time_to_report(make, options, stream) for _ in range(reps)]
        rows.append((name, statistics.median(times), float(bound)))
    return rows


async def main_async(args: argparse.Namespace) -> None:
    frames, warnings, escaped, elapsed = await fuzz(args.frames)
    print(
        f"fuzz: {frames} mutated frames through a recording Session in {elapsed:.1f} s; "
        f"{warnings} protocol warnings counted; exceptions escaped: {escaped}"
    )
    print(f"\n{'misbehaving peer':28} {'reported (median ms)':>22} {'bound ms':>10}")
    for name, ms, bound in await scenarios(args.reps):
        print(f"{name:28} {ms:22.0f} {bound:10.0f}{'' if ms <= bound else '  OVER'}")
    healthy = statistics.median([await close_ms(False) for _ in range(args.reps)])
    stalled = statistics.median([await close_ms(True) for _ in range(args.reps)])
    print(
        f"\nclose(): healthy peer {healthy:.1f} ms (floor); stalled peer, full buffers {stalled:.0f} ms "
        f"(bound close_timeout_s = 500 ms; before: did not return within 100,000 ms)"
    )
    lost = kill9_lost_ms(args.reps)
    print(
        f"kill -9 mid-recording: audio lost median {statistics.median(lost):.0f} ms, max {max(lost):.0f} ms "
        f"over {len(lost)} kills (20 ms frames)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--reps", type=int, default=5)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
