"""False barge-ins over N assistant replies with nobody talking: no EC / server EC / client EC.

Run: ``python benchmarks/bench_echo_reference.py [--replies 20] [--runs 3] [--rig]``

The assistant's replies (the emulator's eSpeak voice) come back into the microphone; the user
says nothing, so every ``input_audio_buffer.speech_started`` is the assistant interrupting
itself. Conditions, all on one emulator per run:

* ``none``: no echo cancellation (``input_audio_echo_cancellation: null``);
* ``server``: server echo cancellation (the emulator cancels with the audio it *sent*, which
  assumes the client plays it the moment it arrives);
* ``client``: client-reference echo cancellation (channel 1 = what the speaker played).

Where the echo comes from:

* default: :class:`~voicelive_nb.audio.memory.EchoRoom` in memory (50 ms, -12 dB, dull), on
  the microphone's sample clock, as fast as the machine goes;
* ``--rig``: real PortAudio devices through the echoing virtual PulseAudio of the tests
  (tests/virtual_audio.py, ``EchoPath(50, -12)``), in real time (a reply takes its length).

Printed per condition: false barge-ins (median over runs), replies that interrupted themselves
(speaker flushes), seconds of reply audio played, and the ratio of false barge-ins to ``none``.

Measured (20 replies, 1 run, 2-core machine shared with other jobs): in memory none 20, server
6, client 1 (played 10.9 / 59.6 / 77.1 s); through the rig none 20, server 20, client 2
(played 14.9 / 15.0 / 70.7 s). The client reference's few are the first replies, while the
emulator's canceller converges; server EC fails on the rig because the client does not play
the audio the moment it arrives (the speaker's 0.3 s buffer), which is its assumption.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from voicelive_nb.audio.memory import EchoRoom, SilenceSource
from voicelive_nb.protocol.config import SessionConfig
from voicelive_nb.session import Session

RATE = 24000
REPLIES = [
    "the weather in seattle is cloudy with a chance of rain later this afternoon",
    "tomorrow it will be sunny and warm, a good day for a walk in the park",
    "the museum opens at nine and closes at five on weekdays",
]
CONDITIONS = ("none", "server", "client")


def config_for(condition: str) -> SessionConfig:
    base = SessionConfig.server_vad(create_response=False)
    if condition == "none":
        return base.replace(input_audio_echo_cancellation=None)
    if condition == "client":
        return base.with_client_echo_reference()
    return base  # the preset has server echo cancellation


async def until(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)  # polling interval


async def run_room(condition: str, replies: int) -> dict[str, float]:
    room = EchoRoom(SilenceSource(None, pace="fast"), delay_ms=50, gain_db=-12)
    options = {"pace": "fast", "transcription": False, "replies": REPLIES * replies}
    starts: list[int] = []
    async with Session(
        config_for(condition), emulator=True, emulator_options=options, source=room, sink=room.speaker
    ) as s:
        s.on("input_audio_buffer.speech_started", lambda e: starts.append(e.audio_start_ms))
        for _ in range(replies):
            await s.create_response()
            await s.wait_for("response.done", timeout=120)
            await room.wait_until(lambda r: r.speaker.queued_ms() == 0, 120)
            await room.wait_samples(RATE, 120)
        await s.update(instructions="barrier")
    played_s = sum(room.speaker.played_ms(i) for i in room.speaker.started_at) / 1000
    return {"false": len(starts), "flushes": room.speaker.clears, "played_s": played_s}


async def run_rig(condition: str, replies: int) -> dict[str, float]:
    from voicelive_nb.audio.device import MicrophoneSource, SpeakerSink

    speaker = SpeakerSink()
    mic = MicrophoneSource(reference=speaker)
    options = {"pace": "fast", "transcription": False, "replies": REPLIES * replies}
    starts: list[int] = []
    items: list[str] = []
    async with Session(
        config_for(condition), emulator=True, emulator_options=options, source=mic, sink=speaker
    ) as s:
        s.on("input_audio_buffer.speech_started", lambda e: starts.append(e.audio_start_ms))
        s.on("response.audio.delta", lambda e: items.append(e.item_id) if e.item_id not in items else None)
        for _ in range(replies):
            await s.create_response()
            await s.wait_for("response.done", timeout=120)
            await until(lambda: speaker.queued_ms() == 0 and not speaker.playing, 120)
            target = mic.frames_yielded + 40  # the output buffer and the path still hold its end
            await until(lambda t=target: mic.frames_yielded >= t, 60)
        await s.update(instructions="barrier")
        played_s = sum(speaker.played_ms(i) for i in items) / 1000
    return {"false": len(starts), "flushes": speaker.clears, "played_s": played_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replies", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--rig", action="store_true", help="real devices through the echoing virtual PulseAudio"
    )
    args = parser.parse_args()
    rig = None
    if args.rig:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from virtual_audio import EchoPath, VirtualAudio  # type: ignore[import-not-found,unused-ignore]

        rig = VirtualAudio(
            tempfile.mkdtemp(prefix="bench-echo-"), echo=EchoPath(delay_ms=50, gain_db=-12)
        ).start()
    run = run_rig if rig is not None else run_room
    where = (
        "virtual devices, echo rig 50 ms / -12 dB" if rig is not None else "in-memory EchoRoom 50 ms / -12 dB"
    )
    print(f"false barge-ins over {args.replies} replies, nobody talking ({where}), {args.runs} runs")
    results: dict[str, list[dict[str, float]]] = {c: [] for c in CONDITIONS}
    try:
        for _ in range(args.runs):
            for condition in CONDITIONS:
                t0 = time.monotonic()
                out = asyncio.run(run(condition, args.replies))
                out["wall_s"] = time.monotonic() - t0
                results[condition].append(out)
    finally:
        if rig is not None:
            rig.stop()
    base = statistics.median(r["false"] for r in results["none"]) or 1
    print(
        f"{'condition':10s} {'false (median)':>15s} {'all runs':>14s} {'flushes':>8s} {'played s':>9s} {'vs none':>8s}"
    )
    for condition in CONDITIONS:
        rs = results[condition]
        false = statistics.median(r["false"] for r in rs)
        print(
            f"{condition:10s} {false:15g} {[int(r['false']) for r in rs]!s:>14s} "
            f"{statistics.median(r['flushes'] for r in rs):8g} {statistics.median(r['played_s'] for r in rs):9.1f} "
            f"{false / base:8.2f}"
        )


if __name__ == "__main__":
    main()
