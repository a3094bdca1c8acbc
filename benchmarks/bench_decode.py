"""Decoding speed of received events: voicelive_nb's codec against the official SDK, same run, same stream.

    python benchmarks/bench_decode.py [--reps 31] [--loops 4]

The stream is one realistic voice turn as text frames: session events, VAD events, user
transcription, then a ~5 s reply in 100 ms ``response.audio.delta`` chunks (24 kHz pcm16, 4,800
bytes → 6,400 base64 characters each) interleaved with word-level transcript and timestamp
deltas, then the closing events.

What is timed, per frame:
  json only      ``json.loads(text)``: the floor both decoders stand on.
  voicelive_nb   ``decode_server_event(text)``.
  SDK            ``ServerEvent._deserialize(json.loads(text), [])``, what
                 ``azure.ai.voicelive.aio.VoiceLiveConnection.recv`` does (its extra
                 ``str → bytes → str`` round trip is left out, in the SDK's favour).
The "+ audio bytes" rows also read the PCM of each audio delta (``event.audio`` here, ``event.delta``
in the SDK). Both decoders decode base64 lazily, when that attribute is read: the SDK stores the
string and decodes it again on every read of ``.delta``; we decode once and cache.

Each repetition decodes the stream ``--loops`` times with each method in turn (the order rotates);
the medians over repetitions are printed, and the speed-ups are medians of the per-repetition
ratios, which hold up when other work loads the machine. Compare ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import statistics
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicelive_nb.protocol.codec import decode_server_event
from voicelive_nb.protocol.events import ProtocolWarning, ResponseAudioDelta, UnknownEvent

REPLY_S = 5.0
CHUNK_MS = 100
RATE = 24000


def tone(ms: int, start: int) -> bytes:
    n = RATE * ms // 1000
    return struct.pack(
        f"<{n}h", *(int(6000 * math.sin(2 * math.pi * 220 * (start + i) / RATE)) for i in range(n))
    )


def build_stream() -> list[str]:
    """One turn as the service would send it, compact JSON text frames."""
    events: list[dict[str, object]] = []
    counter = iter(range(1, 100_000))

    def add(wire_type: str, **fields: object) -> None:
        events.append({"type": wire_type, "event_id": f"event_{next(counter):05d}", **fields})

    session = {
        "id": "sess_b",
        "object": "realtime.session",
        "model": "gpt-realtime",
        "expires_at": 1893456000,
        "modalities": ["text", "audio"],
        "voice": {"type": "azure-standard", "name": "en-US-AvaNeural"},
        "input_audio_format": "pcm16",
        "output_audio_format": "pcm16",
        "input_audio_sampling_rate": 24000,
        "turn_detection": {"type": "azure_semantic_vad", "threshold": 0.5, "prefix_padding_ms": 420},
        "input_audio_transcription": {"model": "azure-speech", "language": "en-US"},
        "output_audio_timestamp_types": ["word"],
        "temperature": 0.8,
        "max_response_output_tokens": "inf",
        "tools": [],
        "tool_choice": "auto",
    }
    user = {
        "id": "item_U",
        "object": "realtime.item",
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_audio", "audio": None, "transcript": None}],
    }
    add("session.created", session=session)
    add("session.updated", session=session)
    add("input_audio_buffer.speech_started", audio_start_ms=1180, item_id="item_U")
    add("input_audio_buffer.speech_stopped", audio_end_ms=3020, item_id="item_U")
    add("input_audio_buffer.committed", previous_item_id=None, item_id="item_U")
    add("conversation.item.created", previous_item_id=None, item=user)
    for piece in ("Tell me", " about the", " weather"):
        add(
            "conversation.item.input_audio_transcription.delta",
            item_id="item_U",
            content_index=0,
            delta=piece,
        )
    add(
        "conversation.item.input_audio_transcription.completed",
        item_id="item_U",
        content_index=0,
        transcript="Tell me about the weather.",
    )
    add(
        "response.created",
        response={"id": "resp_B", "object": "realtime.response", "status": "in_progress", "output": []},
    )
    item = {
        "id": "item_A",
        "object": "realtime.item",
        "type": "message",
        "role": "assistant",
        "status": "in_progress",
    }
    add("response.output_item.added", response_id="resp_B", output_index=0, item={**item, "content": []})
    add("conversation.item.created", previous_item_id="item_U", item={**item, "content": []})
    ref = {"response_id": "resp_B", "item_id": "item_A", "output_index": 0, "content_index": 0}
    add("response.content_part.added", **ref, part={"type": "audio", "transcript": ""})

    words = [
        "It",
        "is",
        "sunny",
        "and",
        "warm",
        "today",
        "with",
        "a",
        "light",
        "breeze",
        "from",
        "the",
        "west",
        "and",
        "no",
        "rain",
        "expected",
        "until",
        "the",
        "weekend",
        "when",
        "clouds",
        "roll",
        "in",
    ]
    chunks = int(REPLY_S * 1000 / CHUNK_MS)
    for i in range(chunks):
        if i < len(words):
            add("response.audio_transcript.delta", **ref, delta=("" if i == 0 else " ") + words[i])
            add(
                "response.audio_timestamp.delta",
                **ref,
                audio_offset_ms=i * 200,
                audio_duration_ms=180,
                text=words[i],
                timestamp_type="word",
            )
        pcm = tone(CHUNK_MS, i * RATE * CHUNK_MS // 1000)
        add("response.audio.delta", **ref, delta=base64.b64encode(pcm).decode("ascii"))
    transcript = " ".join(words)
    final = {**item, "status": "completed", "content": [{"type": "audio", "transcript": transcript}]}
    add("response.audio.done", **ref)
    add("response.audio_transcript.done", **ref, transcript=transcript)
    add("response.audio_timestamp.done", **ref)
    add("response.content_part.done", **ref, part={"type": "audio", "transcript": transcript})
    add("response.output_item.done", response_id="resp_B", output_index=0, item=final)
    usage = {
        "total_tokens": 420,
        "input_tokens": 120,
        "output_tokens": 300,
        "input_token_details": {"cached_tokens": 0, "text_tokens": 40, "audio_tokens": 80},
        "output_token_details": {"text_tokens": 60, "audio_tokens": 240},
    }
    response = {"id": "resp_B", "object": "realtime.response", "status": "completed", "status_details": None}
    add("response.done", response={**response, "output": [final], "usage": usage})
    return [json.dumps(e, separators=(",", ":")) for e in events]


def run(method: Callable[[list[str]], object], stream: list[str], loops: int) -> float:
    """Seconds for ``loops`` passes over the stream."""
    start = time.perf_counter()
    for _ in range(loops):
        method(stream)
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=31)
    parser.add_argument("--loops", type=int, default=4)
    args = parser.parse_args(argv)

    stream = build_stream()
    audio = sum('"response.audio.delta"' in t for t in stream)
    print(
        f"stream: {len(stream)} events ({audio} audio deltas of {CHUNK_MS} ms = {audio * CHUNK_MS / 1000:.1f} s), "
        f"{sum(map(len, stream)) / 1e6:.2f} MB of JSON text"
    )

    ours_events = [decode_server_event(t) for t in stream]
    bad = [e for e in ours_events if isinstance(e, (ProtocolWarning, UnknownEvent))]
    if bad:
        print(f"error: the stream did not decode cleanly: {bad[:3]}")
        return 1

    def ours(frames: list[str]) -> None:
        for text in frames:
            decode_server_event(text)

    def ours_audio(frames: list[str]) -> None:
        for text in frames:
            event = decode_server_event(text)
            if type(event) is ResponseAudioDelta:
                event.audio  # noqa: B018

    def json_only(frames: list[str]) -> None:
        for text in frames:
            json.loads(text)

    methods: dict[str, Callable[[list[str]], object]] = {
        "json only": json_only,
        "voicelive_nb": ours,
        "voicelive_nb + audio bytes": ours_audio,
    }

    try:
        from azure.ai.voicelive.models import ServerEvent, ServerEventResponseAudioDelta
    except ImportError:
        print(
            "azure-ai-voicelive is not installed: measuring voicelive_nb only (pip install azure-ai-voicelive)"
        )
        sdk_available = False
    else:
        sdk_available = True
        deserialize = cast(Callable[[Any, list[str]], Any], ServerEvent._deserialize)
        models = [deserialize(json.loads(t), []) for t in stream]
        generic = [m for m in models if type(m) is ServerEvent]
        if generic:
            print(f"error: the SDK fell back to its base class for {len(generic)} events")
            return 1
        first_audio = next(i for i, m in enumerate(models) if type(m) is ServerEventResponseAudioDelta)
        ours_first = ours_events[first_audio]
        assert isinstance(ours_first, ResponseAudioDelta)
        assert models[first_audio].delta == ours_first.audio

        def sdk(frames: list[str]) -> None:
            for text in frames:
                deserialize(json.loads(text), [])

        def sdk_audio(frames: list[str]) -> None:
            for text in frames:
                event = deserialize(json.loads(text), [])
                if type(event) is ServerEventResponseAudioDelta:
                    event.delta  # noqa: B018

        methods["SDK"] = sdk
        methods["SDK + audio bytes"] = sdk_audio

    times: dict[str, list[float]] = {name: [] for name in methods}
    for method in methods.values():  # warm up
        run(method, stream, 1)
    names = list(methods)
    for rep in range(args.reps):
        # rotate the order so that a burst of load on the machine hits every method alike
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            times[name].append(run(methods[name], stream, args.loops))

    per_s = {name: len(stream) * args.loops / statistics.median(t) for name, t in times.items()}
    print(f"\nmedian of {args.reps} repetitions x {args.loops} passes (events per second, higher is better)")
    for name, rate in per_s.items():
        print(f"  {name:28s} {rate:>12,.0f} ev/s   {1e6 / rate:7.2f} us/event")
    if sdk_available:

        def paired(ours_name: str, sdk_name: str) -> float:
            return statistics.median(s / o for o, s in zip(times[ours_name], times[sdk_name], strict=True))

        print("\nspeed-up voicelive_nb / SDK (median of the per-repetition ratios)")
        print(f"  decode only                  {paired('voicelive_nb', 'SDK'):.1f}x")
        print(
            f"  decode + audio bytes         {paired('voicelive_nb + audio bytes', 'SDK + audio bytes'):.1f}x"
        )
        ours_ms = len(stream) / per_s["voicelive_nb + audio bytes"] * 1000
        sdk_ms = len(stream) / per_s["SDK + audio bytes"] * 1000
        print(
            f"  the {REPLY_S:.0f} s reply takes {ours_ms:.2f} ms to decode here, {sdk_ms:.2f} ms with the SDK"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
