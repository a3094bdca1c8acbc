"""``python -m voicelive_nb.emulator``: run the Voice Live emulator until SIGINT/SIGTERM.

The first line on stdout is the URL to connect to (``ws://HOST:PORT``), so a parent process
can start it with ``--port 0`` and read where it listens. Exit status: 0 after a clean stop,
1 when it cannot listen (port in use), 2 for bad arguments (a non-loopback ``--host`` needs
``--allow-remote`` and ``--api-key``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..hosts import is_loopback_host
from .limits import MAX_CONNECTIONS_PER_MINUTE
from .server import EmulatorServer


def _parser(prog: str = "python -m voicelive_nb.emulator") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a local emulator of Azure AI Voice Live (ws://HOST:PORT/voice-live/realtime).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port; 0 picks a free one (default: 8765)")
    parser.add_argument(
        "--api-key", default=None, help="require this api-key (or Bearer token); default: none"
    )
    parser.add_argument(
        "--pace",
        choices=("realtime", "fast"),
        default="realtime",
        help="send reply audio at real-time speed or as fast as possible (default: realtime)",
    )
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback --host (needs --api-key too)"
    )
    parser.add_argument("--no-transcription", action="store_true", help="switch speech recognition off")
    parser.add_argument(
        "--no-streaming-asr",
        action="store_true",
        help="recognise each utterance after its turn ends instead of while it is spoken (slower replies)",
    )
    parser.add_argument(
        "--max-connection-s",
        type=float,
        default=None,
        help="close each connection this many seconds after it opened (default: 3600, as the service)",
    )
    parser.add_argument(
        "--max-connections-per-minute",
        type=int,
        default=MAX_CONNECTIONS_PER_MINUTE,
        help="refuse new connections past this many per minute with HTTP 429; 0: no limit "
        "(default: 30, as the service)",
    )
    parser.add_argument(
        "--tokens-per-minute",
        type=int,
        default=None,
        help="token budget per minute reported in rate_limits.updated (default: 120000, as the service)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="serve connections from N worker processes behind one address, so concurrent sessions "
        "use every core (default: one process)",
    )
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=None,
        help="refuse new connections past this many open ones with HTTP 503 and Retry-After "
        "(with or without --workers; default: no limit)",
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level on stderr (default: WARNING)")
    return parser


async def _serve(args: argparse.Namespace) -> int:
    options: dict[str, Any] = dict(
        api_key=args.api_key,
        pace=args.pace,
        allow_remote=args.allow_remote,
        transcription=not args.no_transcription,
        streaming_asr=not args.no_streaming_asr,
        **{
            name: value
            for name in ("max_connection_s", "max_connections_per_minute", "tokens_per_minute")
            if (value := getattr(args, name)) is not None
        },
    )
    server: Any
    if args.workers is not None:
        from .workers import WorkerPool

        server = WorkerPool(args.workers, args.host, args.port, max_sessions=args.max_sessions, **options)
    else:
        server = EmulatorServer(args.host, args.port, max_sessions=args.max_sessions, **options)
    return await _run_until_signal(server, args)


async def _run_until_signal(server: Any, args: argparse.Namespace) -> int:
    try:
        await server.start()
    except OSError as exc:
        print(f"emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # only now, with the handlers in place, tell the parent where we listen
    print(server.url, flush=True)
    if getattr(args, "on_listening", None) is not None:
        args.on_listening(server.url)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await server.stop()
    return 0


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str = "python -m voicelive_nb.emulator",
    on_listening: Callable[[str], None] | None = None,
) -> int:
    """Entry point of ``python -m voicelive_nb.emulator`` (and ``voicelive-nb emulator``);
    ``on_listening(url)`` runs after the URL line is printed."""
    args = _parser(prog).parse_args(argv)
    args.on_listening = on_listening
    if not is_loopback_host(args.host):
        if not args.allow_remote:
            print(
                f"emulator: refusing to listen on {args.host}: it is not a loopback address; "
                "pass --allow-remote and --api-key KEY to expose the emulator",
                file=sys.stderr,
            )
            return 2
        if not args.api_key:
            print(
                f"emulator: listening on {args.host} needs --api-key KEY so that others cannot use it",
                file=sys.stderr,
            )
            return 2
    if not 0 <= args.port <= 65535:
        print(f"emulator: invalid port {args.port}; use 0 to 65535", file=sys.stderr)
        return 2
    if args.workers is not None and not 1 <= args.workers <= 64:
        print(f"emulator: invalid --workers {args.workers}; use 1 to 64", file=sys.stderr)
        return 2
    if args.max_sessions is not None and args.max_sessions < 1:
        print(f"emulator: invalid --max-sessions {args.max_sessions}; use a positive number", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:
        return 0


def replay_main(argv: Sequence[str] | None = None) -> int:
    """``voicelive-nb replay DIR [--port N]``: serve a recording (or a trace JSONL) until SIGINT/SIGTERM.

    The first line on stdout is the URL. Exit status: 0 after a clean stop, 1 when it cannot
    listen, 2 when the recording cannot be read.
    """
    from .replay import ReplayError, ReplayServer

    parser = argparse.ArgumentParser(
        prog="voicelive-nb replay",
        description="Replay a recording made with Session(record=DIR) on ws://127.0.0.1:PORT/voice-live/realtime.",
    )
    parser.add_argument("directory", help="the recording directory (events.jsonl, mic.wav, assistant.wav)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (default: 0)")
    parser.add_argument("--log-level", default="WARNING", help="logging level on stderr (default: WARNING)")
    args = parser.parse_args(argv)
    args.host = "127.0.0.1"
    if not 0 <= args.port <= 65535:
        print(f"replay: invalid port {args.port}; use 0 to 65535", file=sys.stderr)
        return 2
    try:
        server = ReplayServer(args.directory, args.host, args.port)
    except ReplayError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return asyncio.run(_run_until_signal(server, args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
