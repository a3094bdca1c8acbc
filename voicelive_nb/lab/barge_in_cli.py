"""``voicelive-nb barge-in``: the barge-in lab from the command line (on the built-in emulator).

::

    voicelive-nb barge-in                         # the mixed script, every condition
    voicelive-nb barge-in --no-speech 20 --conditions no_ec,client_ref_ec
    voicelive-nb barge-in --replies 16 --pace realtime --speed 2 --figures out/

It prints the summary table (one row per condition: false barge-ins by cause, missed
interruptions, onset-to-silence time, truncate error, reply audio lost) and with
``--figures DIR`` writes one timeline PNG per condition; ``--json OUT`` writes the rows.
Exit status: 0 done, 1 a condition failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import VoiceLiveError
from .barge_in import CONDITIONS, barge_in_lab, default_script, no_speech_script

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="voicelive-nb barge-in",
        description="Scripted interruptions, backchannels and noises over the assistant's replies, "
        "through an echoing in-memory room, under several echo-cancellation conditions.",
    )
    p.add_argument("--replies", type=int, default=8, help="replies in the mixed script (default 8)")
    p.add_argument(
        "--no-speech",
        type=int,
        metavar="N",
        help="instead: N replies with no user sound (every barge-in is false)",
    )
    p.add_argument(
        "--conditions",
        default=",".join(CONDITIONS),
        help=f"comma-separated, from {', '.join(CONDITIONS)} (default: all)",
    )
    p.add_argument("--offset-ms", type=float, default=900.0, help="cue offset into each reply (default 900)")
    p.add_argument("--delay-ms", type=float, default=50.0, help="echo delay of the room (default 50)")
    p.add_argument("--gain-db", type=float, default=-12.0, help="echo level of the room (default -12 dB)")
    p.add_argument("--pace", choices=("fast", "realtime"), default="realtime")
    p.add_argument(
        "--speed", type=float, default=4.0, help="times real time with --pace realtime (default 4)"
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="unscored replies first (default 0: scored from the first word)",
    )
    p.add_argument("--figures", type=Path, help="write one timeline PNG per condition into this folder")
    p.add_argument("--json", type=Path, help="write the table rows as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.conditions.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONDITIONS]
    if unknown or not names:
        parser.error(
            f"--conditions: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(CONDITIONS)}"
        )
    if args.no_speech is not None and not 1 <= args.no_speech <= 200:
        parser.error("--no-speech: 1 to 200 replies")
    if not 1 <= args.replies <= 200:
        parser.error("--replies: 1 to 200")
    script = (
        no_speech_script(args.no_speech) if args.no_speech else default_script(args.replies, args.offset_ms)
    )
    try:
        result = barge_in_lab(
            script,
            names,
            progress=not args.quiet,
            delay_ms=args.delay_ms,
            gain_db=args.gain_db,
            pace=args.pace,
            speed=args.speed,
            warmup_replies=args.warmup,
        )
    except VoiceLiveError as exc:
        print(f"voicelive-nb barge-in: {exc}", file=sys.stderr)
        return 2
    print(result.text())
    if args.figures is not None:
        args.figures.mkdir(parents=True, exist_ok=True)
        for name, fig in result.figures().items():
            path = args.figures / f"barge_in_{name}.png"
            fig.savefig(path)
            print(f"wrote {path}")
    if args.json is not None:
        args.json.write_text(json.dumps(result.rows(), indent=2))
    return 1 if any(r["error"] for r in result.rows()) else 0
