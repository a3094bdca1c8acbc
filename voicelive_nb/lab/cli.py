"""``voicelive-nb sweep``: sweep turn-detection settings over WAV files from the command line.

::

    voicelive-nb sweep a.wav b.wav --truth a.json --truth b.json \\
        --grid threshold=0.3,0.5,0.7 --grid silence_duration_ms=200,500 --json out.json

Without ``--endpoint`` the sweep runs on the built-in emulator (it never reads
``AZURE_VOICE_LIVE_ENDPOINT`` by itself, so nothing is billed by accident); with
``--endpoint https://…`` it runs against that service (key from ``--api-key`` or
``AZURE_VOICE_LIVE_API_KEY``, else Microsoft Entra ID), paced in real time, 2 sessions at a time.

``--truth`` is given once (for every WAV) or once per WAV, in order; without it each WAV's
sidecar label file (``NAME.json``, ``NAME.csv``, ``NAME.txt``) is used. ``--grid NAME=V1,V2``
values are parsed as JSON where possible (``0.5``, ``true``, ``null``), else kept as strings.

It prints the plan (sessions, seconds of audio, estimated tokens, reused runs, quotas), a table
of every configuration ranked best first (the knobs, F1, precision, recall, missed, cut-offs,
merged, false starts, the boundary errors, then the end-of-turn columns ``cutoff_rate`` — false
cut-offs in holds — and ``eot_p50_ms``/``eot_p90_ms`` — latency after a true end of turn;
``--top N`` for the best N only), the end-of-turn figures of the sweep next to the silence-only
baseline (false cut-offs at 300/600/1000 ms, latency at 5 %/10 % cut-offs; see
:mod:`voicelive_nb.lab.turns`), the Pareto frontier, the best configuration and its
``session.update``. ``--json OUT`` also writes everything as JSON (``--json -``: only the JSON,
to stdout).

``--eot-bench FILE`` (repeatable, ``--language LANG`` to keep one language) also replays the rows
of an eot-bench file you have (:mod:`voicelive_nb.lab.eotbench`), each with its own truth.

``--results DIR`` keeps every finished replay in ``DIR/lab-results.sqlite`` as it finishes;
``--resume`` reuses the replays already there and runs only what is missing (after a crash, a
kill or Ctrl-C). ``--eot-gap-ms`` sets the end-of-turn gap for truths without turn ids;
``--connections-per-min`` and ``--tokens-per-min`` the quota scheduler's budgets (default, against
a service: 30 and 120,000). ``--price audio_minute=P`` / ``--price tokens_1m=P`` (and
``--price currency=USD``) price the plan's cost estimate; without a price the cost is unknown
(none is built in). The plan (printed first, and ``plan`` in the JSON) has the audio seconds,
connections, estimated tokens, the least wall time under the quota and the cost; ``usage`` in
the JSON is what the sweep used (tokens the server reported, connections, audio). The JSON written has ``results`` (one per configuration: ``config`` with the knobs, ``session``
for ``session.update``, ``f1``, ``precision``, ``recall``, ``start_error_ms_median``,
``end_error_ms_median``, the p90 errors, false starts, cut-offs, merged, …, the end-of-turn
fields ``false_cutoff_rate``, ``latency_ms_p50``/``p90``, ``holds``, ``eots``, ``frontier``) and
``best`` (the same fields for the best configuration, or null), plus ``plan``, ``cancelled`` and
``eot`` (``sweep`` and ``silence_baseline`` figures, ``frontier``, ``chosen``).

Exit status: 0 done, 1 no configuration could be scored, 2 bad arguments, 130 interrupted
(the partial result is still written).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidValue

__all__ = ["build_parser", "main", "parse_grid"]


def _value(text: str) -> Any:
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in ("none", "null", "off"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        return stripped


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["threshold=0.3,0.5", "type=server_vad"]`` → ``{"threshold": [0.3, 0.5], "type": ["server_vad"]}``."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not name or not values.strip():
            raise InvalidValue(f"--grid expects NAME=V1,V2,... (e.g. threshold=0.3,0.5), got {item!r}")
        if name in grid:
            raise InvalidValue(f"--grid {name} is given twice; list all its values in one --grid")
        grid[name] = [_value(v) for v in values.split(",") if v.strip()]
    return grid


def parse_prices(items: Sequence[str]) -> dict[str, Any] | None:
    """``["audio_minute=0.1", "currency=USD"]`` → a checked prices mapping (None when empty)."""
    if not items:
        return None
    from .quota import check_prices

    prices: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InvalidValue(
                f"--price {item!r}: use NAME=VALUE (audio_minute=0.1, tokens_1m=40, currency=USD)"
            )
        name = name.strip()
        if name == "currency":
            prices[name] = value.strip()
            continue
        try:
            prices[name] = float(value)
        except ValueError:
            raise InvalidValue(f"--price {name}: {value!r} is not a number") from None
    return check_prices(prices)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicelive-nb sweep",
        description="Replay WAV files through Voice Live (or the emulator) over a grid of "
        "turn-detection settings and score each against the truth.",
    )
    parser.add_argument("wavs", nargs="*", metavar="WAV", help="recordings to replay")
    parser.add_argument(
        "--eot-bench",
        action="append",
        default=[],
        metavar="FILE",
        help="also replay the rows of an eot-bench file you have (JSONL, JSON or Parquet; "
        "each row's silences are its truth: the last ends the turn, the others are holds)",
    )
    parser.add_argument(
        "--language", default=None, metavar="LANG", help="only the --eot-bench rows of this language"
    )
    parser.add_argument(
        "--truth",
        action="append",
        default=[],
        metavar="FILE",
        help="label file (JSON {'speech_s': [[start, end], ...]}, CSV or Audacity labels); once for all "
        "WAVs or once per WAV; default: NAME.json/.csv/.txt next to each WAV",
    )
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="a knob and its values: threshold, silence_duration_ms, prefix_padding_ms, speech_duration_ms, "
        "type, noise_suppression, or a dotted session path (repeat for more knobs)",
    )
    parser.add_argument(
        "--endpoint", default=None, help="service endpoint (https://…); default: the built-in emulator"
    )
    parser.add_argument(
        "--api-key", default=None, help="API key for --endpoint (default: from the environment)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=None, help="sessions at a time (default: 2 on a service)"
    )
    parser.add_argument("--base", default=None, metavar="FILE", help="base session configuration (JSON)")
    parser.add_argument("--metric", default="f1", help="what 'best' maximises/minimises (default: f1)")
    parser.add_argument(
        "--json",
        dest="json_out",
        default=None,
        metavar="OUT",
        help="also write every configuration's scores and the best one as JSON to OUT",
    )
    parser.add_argument(
        "--top", type=int, default=None, metavar="N", help="print only the N best rows of the ranked table"
    )
    parser.add_argument(
        "--results",
        default=None,
        metavar="DIR",
        help="keep every finished replay in DIR (SQLite) as it finishes",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse the replays already in --results DIR; run only what is missing",
    )
    parser.add_argument(
        "--eot-gap-ms",
        type=float,
        default=None,
        metavar="MS",
        help="a pause this long ends a turn when the truth has no turn ids (default 1500)",
    )
    parser.add_argument(
        "--connections-per-min", type=int, default=None, metavar="N", help="quota: new connections per minute"
    )
    parser.add_argument(
        "--tokens-per-min", type=int, default=None, metavar="N", help="quota: tokens per minute"
    )
    parser.add_argument(
        "--price",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a price for the plan's cost estimate: audio_minute=P (per minute of audio sent), "
        "tokens_1m=P (per million tokens), currency=LABEL; repeatable (default: cost unknown)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``voicelive-nb sweep`` (``argv`` with or without the leading ``sweep``)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "sweep":
        args_list = args_list[1:]
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse exits 2 on bad arguments, 0 for --help
        return int(exc.code or 0)

    from ..protocol.config import SessionConfig
    from .eotbench import load_eot_bench
    from .sweep import sweep
    from .testsets import as_clip
    from .truth import load_truth

    def fail(message: str) -> int:
        print(f"voicelive-nb sweep: {message}", file=sys.stderr)
        return 2

    try:
        grid = parse_grid(args.grid)
    except ValueError as exc:
        return fail(str(exc))
    if len(args.truth) not in (0, 1, len(args.wavs)):
        return fail(f"give --truth once or once per WAV ({len(args.wavs)}), not {len(args.truth)} times")
    if not args.wavs and not args.eot_bench:
        return fail("give at least one WAV or --eot-bench FILE")
    try:
        clips = [as_clip(Path(w)) for w in args.wavs]
        truths = [load_truth(t) for t in args.truth]
        bench = [c for f in args.eot_bench for c in load_eot_bench(f, language=args.language)]
    except (OSError, ValueError) as exc:
        return fail(str(exc))
    except Exception as exc:  # an unreadable WAV raises the package's AudioError
        return fail(f"{type(exc).__name__}: {exc}")
    if args.eot_bench and not bench:
        return fail(
            "no rows in the --eot-bench file(s)" + (f" in language {args.language}" if args.language else "")
        )
    truth: Any = None
    if len(truths) == 1:
        truth = truths[0] if not bench else [truths[0]] * len(clips) + [None] * len(bench)
    elif truths:
        truth = truths + [None] * len(bench)  # the eot-bench rows keep their own truth
    clips += bench
    base = None
    if args.base:
        try:
            base = SessionConfig.from_dict(json.loads(Path(args.base).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            return fail(f"--base {args.base}: {exc}")
    if args.resume and not args.results:
        return fail("--resume needs --results DIR (where the finished replays are kept)")
    stdout_json = args.json_out == "-"
    quiet = args.quiet or stdout_json
    limits = None
    if args.connections_per_min is not None or args.tokens_per_min is not None:
        from .quota import DEFAULT_CONNECTIONS_PER_MIN, DEFAULT_TOKENS_PER_MIN, QuotaLimits

        try:
            limits = QuotaLimits(
                connections=args.connections_per_min or DEFAULT_CONNECTIONS_PER_MIN,
                tokens=args.tokens_per_min or DEFAULT_TOKENS_PER_MIN,
            )
        except ValueError as exc:
            return fail(str(exc))
    try:
        prices = parse_prices(args.price)
    except ValueError as exc:
        return fail(str(exc))
    endpoint = args.endpoint or "emulator"
    options: dict[str, Any] = {
        "truth": truth,
        "base": base,
        "endpoint": endpoint,
        "api_key": args.api_key,
        "concurrency": args.concurrency,
        "progress": not (args.no_progress or quiet),
        "show_plan": not quiet,
        "results": args.results,
        "resume": args.resume,
        "limits": limits,
        "prices": prices,
    }
    if args.eot_gap_ms is not None:
        options["eot_gap_ms"] = args.eot_gap_ms
    try:
        result = sweep(clips, grid, **options)
    except (ValueError, KeyError) as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("voicelive-nb sweep: interrupted", file=sys.stderr)
        return 130
    out = Path(args.json_out) if args.json_out and not stdout_json else None
    if out is not None:
        try:
            result.save_json(out, args.metric)
        except OSError as exc:
            print(f"voicelive-nb sweep: cannot write {out}: {exc}", file=sys.stderr)
            return 1
    data = result.to_json(args.metric)
    best = data["best"]
    if stdout_json:
        print(json.dumps(data, indent=2))
    if not quiet:
        print(f"ranked by {args.metric} over {len(clips)} clip(s), best first:")
        print(result.format_table(args.metric, top=args.top))
        if best is not None:
            knobs = ", ".join(f"{k}={v}" for k, v in best["config"].items()) or "(base configuration)"
            print(
                f"best: {knobs}: F1 {best['f1']:.3f} (P {best['precision']:.3f}, R {best['recall']:.3f}), "
                f"start {best['start_error_ms_median']} ms, end {best['end_error_ms_median']} ms"
                + (f"; results in {out}" if out is not None else "")
            )
            print(f"session.update: {json.dumps(best['session'])}")
        print(result.describe_eot())
        eot = data["eot"]
        front = ", ".join(str(c) for c in eot["frontier"]) or "none"
        chosen = "none within 5 % cut-offs" if eot["chosen"] is None else f"config {eot['chosen']}"
        print(
            f"Pareto frontier (latency vs false cut-offs): configs {front}; fastest within 5 % cut-offs: {chosen}"
        )
        failed = [r for r in data["results"] if r["errors"]]
        for r in failed:
            print(f"config {r['config']}: {'; '.join(r['errors'])}", file=sys.stderr)
    if result.cancelled:
        return 130
    return 0 if best is not None else 1


if __name__ == "__main__":
    sys.exit(main())
